//! orion-nvme: a portable NVMe host driver core.
//!
//! The core knows nothing about any operating system. It is written against the Orion driver
//! API ([`orion_compat`]) and is built twice: as a host library (tests, simulator, tools) and,
//! unchanged, inside the platform's driver crate (today a loadable kernel module), where it is a module of the
//! kernel crate (`cfg(orion_kernel)`).

#![cfg_attr(not(any(orion_kernel, test)), no_std)]
#![forbid(unsafe_code)]

// Paths inside the core are written `crate::orion::...` (the core) and `crate::orion_compat::...`
// (the API), which resolve the same way in the host crate (through these aliases) and in the
// kernel crate (where both are modules at the crate root).
#[cfg(not(orion_kernel))]
extern crate orion_compat;
#[cfg(not(orion_kernel))]
extern crate self as orion;

pub mod block;
pub mod command;
pub mod config;
pub mod controller;
pub mod driver;
pub mod events;
pub mod interrupt;
pub mod io;
pub mod namespace;
pub mod passthru;
pub mod queue;
pub mod recovery;
pub mod spec;
