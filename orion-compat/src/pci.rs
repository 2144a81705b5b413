//! The PCI function a driver is bound to.

use crate::orion_compat::irq::{IrqVectors, VectorRequest};
use crate::orion_compat::{Error, Mmio};

/// The identity of a PCI function, from its configuration header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciIds {
    /// Vendor ID (offset 0x00).
    pub vendor: u16,
    /// Device ID (offset 0x02).
    pub device: u16,
    /// Class code: base class, sub-class and programming interface (offsets 0x0b..0x09),
    /// in the low 24 bits. NVMe is 0x01_08_02.
    pub class: u32,
    /// Revision ID (offset 0x08).
    pub revision: u8,
    /// Subsystem vendor ID (offset 0x2c).
    pub subsystem_vendor: u16,
    /// Subsystem ID (offset 0x2e).
    pub subsystem_device: u16,
}

/// Size of a PCI Express function's configuration space, in bytes.
pub const CONFIG_SPACE_LEN: usize = 4096;

/// The PCI function a driver is bound to, enabled for memory access.
///
/// # Contract
///
/// - The function stays bound while this value lives. Its BAR mappings and vectors hold what
///   they need to stay valid on their own (no borrow of this value), so a driver can keep
///   them side by side in one structure.
/// - Configuration-space offsets are in bytes, within [`CONFIG_SPACE_LEN`] (the platform may
///   allow only the first 256 bytes). An access outside, or not naturally aligned, is an
///   [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) error and touches
///   nothing. A removed device reads as all ones.
/// - [`Pci::ids`], [`Pci::bar_len`] and [`Pci::is_present`] may be called from any context.
///   Every other method may sleep: call it from a context that may sleep.
pub trait Pci {
    /// The backend's error type.
    type Error: Error;

    /// A mapped BAR.
    type Bar: Mmio;

    /// An allocation of interrupt vectors.
    type Vectors: IrqVectors;

    /// The function's identity.
    fn ids(&self) -> PciIds;

    /// The length in bytes of BAR `index` (0..=5), or 0 if it is absent.
    fn bar_len(&self, index: u8) -> u64;

    /// Maps memory BAR `index` (0..=5) for register access.
    ///
    /// `Ok` promises the whole BAR is reachable through the returned window, offsets
    /// `0 .. bar_len(index)`. Dropping the window unmaps it. A BAR may be mapped once at a
    /// time: a second mapping is an
    /// [`ErrorKind::Busy`](crate::orion_compat::ErrorKind::Busy) error, an absent or I/O BAR
    /// an [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) one.
    fn map_bar(&self, index: u8) -> Result<Self::Bar, Self::Error>;

    /// Reads the byte at `offset` in configuration space.
    fn config_read8(&self, offset: usize) -> Result<u8, Self::Error>;
    /// Reads the 16-bit word at `offset` in configuration space.
    fn config_read16(&self, offset: usize) -> Result<u16, Self::Error>;
    /// Reads the 32-bit dword at `offset` in configuration space.
    fn config_read32(&self, offset: usize) -> Result<u32, Self::Error>;
    /// Writes the byte at `offset` in configuration space.
    fn config_write8(&self, offset: usize, value: u8) -> Result<(), Self::Error>;
    /// Writes the 16-bit word at `offset` in configuration space.
    fn config_write16(&self, offset: usize, value: u16) -> Result<(), Self::Error>;
    /// Writes the 32-bit dword at `offset` in configuration space.
    fn config_write32(&self, offset: usize, value: u32) -> Result<(), Self::Error>;

    /// Turns bus mastering on or off (Command register bit 2).
    ///
    /// With it off the device cannot reach memory at all: turn it on before the controller is
    /// enabled, off after it has been disabled.
    fn set_bus_master(&self, enable: bool) -> Result<(), Self::Error>;

    /// Allocates interrupt vectors, falling back from MSI-X to MSI to INTx as `request`
    /// allows.
    ///
    /// `Ok` promises between `request.min` and `request.max` vectors of one kind in
    /// `request.kinds`: MSI-X if it can give at least `min`, else MSI (a power of two, at
    /// most 32), else the single INTx vector if `min` is 1. `min` of zero, `min > max`, an
    /// empty `kinds` or `pre_vectors > max` is an
    /// [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) error; when no
    /// kind can give `min` vectors the error is
    /// [`ErrorKind::NoMemory`](crate::orion_compat::ErrorKind::NoMemory) or
    /// [`ErrorKind::Unsupported`](crate::orion_compat::ErrorKind::Unsupported). One allocation
    /// at a time: a second one while the first lives is
    /// [`ErrorKind::Busy`](crate::orion_compat::ErrorKind::Busy).
    fn alloc_irq_vectors(&self, request: &VectorRequest) -> Result<Self::Vectors, Self::Error>;

    /// Whether the device still answers on the bus (`false` after a surprise removal).
    ///
    /// Use it to tell a removed device from a register that happens to read all ones.
    fn is_present(&self) -> bool;
}
