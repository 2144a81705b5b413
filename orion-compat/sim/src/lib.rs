//! Host implementation of the Orion driver API, with a simulated NVMe controller, for tests.
//!
//! Every trait of `orion-compat` has a host implementation here, built so that tests are
//! deterministic and a device model can sit behind them:
//! - [`clock::VirtualClock`]: time moves only when the core sleeps or delays, or a test
//!   advances it; timers and hooks let a model progress with time.
//! - [`dma::SimDma`] on a [`dma::DmaSpace`]: memory with stable fake bus addresses that a
//!   model reads and writes by bus address, with faults recorded for stray accesses.
//! - [`pci::SimPci`]: configuration space, BARs backed by a model's [`orion_compat::Mmio`],
//!   and vectors on an [`irq::SimIrqChip`] that the model raises.
//! - [`sync::SimSync`], [`work::SimWorkqueue`], [`block::SimBlock`]: locks, deferred work run
//!   on demand, and a recorder standing in for blk-mq.
//!
//! The sim enforces the API's context rules (see [`context`]): sleeping in an interrupt
//! handler or under a spin lock panics, and interrupts are held back while a spin lock is
//! held. Fault injection (failed allocations, lost interrupts, surprise removal) is on each
//! type.

pub mod block;
pub mod clock;
pub mod context;
pub mod dma;
pub mod irq;
pub mod nvme;
pub mod pci;
pub mod regfile;
pub mod sync;
pub mod work;

pub use block::SimBlock;
pub use clock::VirtualClock;
pub use dma::{DmaSpace, SimDma};
pub use irq::SimIrqChip;
pub use pci::SimPci;
pub use sync::SimSync;
pub use work::SimWorkqueue;

/// Every host service except the PCI function (which needs a device model), wired together:
/// one clock, one bus.
#[derive(Clone, Debug)]
pub struct Sim {
    /// The virtual clock.
    pub clock: VirtualClock,
    /// The simulated bus a device model reads and writes.
    pub space: DmaSpace,
    /// DMA allocation and mapping on `space`.
    pub dma: SimDma,
    /// Locks and shared values.
    pub sync: SimSync,
    /// Deferred work, timed on `clock`.
    pub workqueue: SimWorkqueue,
    /// The block-layer recorder, waiting on `clock`.
    pub block: SimBlock,
}

impl Sim {
    /// A fresh set of services at time zero.
    pub fn new() -> Self {
        let clock = VirtualClock::new();
        let space = DmaSpace::new();
        Self {
            dma: SimDma::new(space.clone()),
            workqueue: SimWorkqueue::new(clock.clone()),
            sync: SimSync::new(),
            block: SimBlock::with_clock(clock.clone()),
            clock,
            space,
        }
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}
