//! Host implementation of the Orion driver API, with a simulated NVMe controller, for tests.

pub mod regfile;
