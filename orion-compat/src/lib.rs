//! The Orion driver API: the small set of services a device driver core needs from its
//! platform, as traits with written contracts.
//!
//! The driver core (`orion-nvme`) is written against these traits only. Each platform provides
//! an implementation: `linux/` (Rust-for-Linux, the only home of `unsafe`), `sim/` (a host
//! model for tests) and, later, the native Orion runtime.
//!
//! Contracts are written so that they hold whether a completion is reaped from an interrupt
//! handler, a thread woken by an event, or a polling loop.

#![cfg_attr(not(orion_kernel), no_std)]
#![forbid(unsafe_code)]

// Items are referred to as `crate::orion_compat::...`, which resolves here through this alias
// and in the kernel crate, where this crate is the module `orion_compat` at the root.
#[cfg(not(orion_kernel))]
extern crate self as orion_compat;

pub mod block;
pub mod conformance;
pub mod dma;
pub mod irq;
pub mod mmio;
pub mod passthru;
pub mod pci;
pub mod sync;
pub mod time;
pub mod work;

pub use block::{Block, BlockHandler, BlockQueues, Disk};
pub use dma::{BusAddr, CoherentMem, Dma, DmaMapping, Segment};
pub use irq::{IrqHandler, IrqRegistration, IrqVectors};
pub use mmio::Mmio;
pub use pci::Pci;
pub use sync::{Lock, Locks, Share};
pub use time::{Clock, Deadline};
pub use work::{Work, WorkHandler, Workqueue};

/// The platform-neutral classification of a failure reported by an implementation.
///
/// Every backend has its own error type; each of its values maps to one `ErrorKind` through
/// [`Error::kind`], so the core can decide what to do without knowing the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something outside the resource (an offset past the end of a BAR,
    /// a misaligned access). A bug in the caller, never a device failure.
    OutOfRange,
    /// The platform could not provide memory or another resource right now.
    NoMemory,
    /// The device no longer answers (surprise removal, link down).
    Gone,
    /// The operation did not finish in the time allowed.
    Timeout,
    /// The resource is taken (a BAR already mapped, a vector that already has a handler);
    /// it may become free once its holder lets go. On Linux: `EBUSY`.
    Busy,
    /// The platform does not offer this service.
    Unsupported,
    /// Any other platform failure.
    Other,
}

/// An error reported by an implementation of the Orion driver API.
pub trait Error: core::fmt::Debug {
    /// The platform-neutral kind of this error.
    fn kind(&self) -> ErrorKind;
}

impl Error for ErrorKind {
    fn kind(&self) -> ErrorKind {
        *self
    }
}
