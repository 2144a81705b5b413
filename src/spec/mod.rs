//! NVMe wire formats: registers, commands, completions, data structures.
//!
//! Sections cited are from NVM Express Base Specification 2.0 ("NVMe Base 2.0") and the NVM
//! Command Set Specification 1.0 ("NVM Cmd Set 1.0").

mod bitfield;
pub mod regs;
