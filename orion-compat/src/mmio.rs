//! Memory-mapped register access.

use crate::orion_compat::Error;

/// Access to one memory-mapped register window (for NVMe: BAR0).
///
/// # Contract
///
/// - Offsets are in bytes from the start of the window. An access that does not fit inside the
///   window, or is not naturally aligned, returns an error of kind
///   [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) and touches nothing.
/// - `Ok` from a write promises that the write has been issued to the device, ordered after
///   every earlier CPU write to memory shared with the device (so a doorbell write is seen
///   after the queue entry it announces). It does not promise the device has acted on it.
/// - `Ok` from a read promises that the value came from the device, and that later CPU reads of
///   shared memory are not performed before it.
/// - A device that has gone away may read as all ones; the implementation is not required to
///   detect that, the caller is.
/// - 64-bit accesses may be performed as two 32-bit accesses, low dword first, where the
///   platform cannot do a single one; registers that need atomicity must be read as 32-bit.
/// - All methods may be called from interrupt context and never sleep.
pub trait Mmio {
    /// The backend's error type.
    type Error: Error;

    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> Result<u32, Self::Error>;
    /// Writes `value` to the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32) -> Result<(), Self::Error>;
    /// Reads the 64-bit register at `offset`.
    fn read64(&self, offset: usize) -> Result<u64, Self::Error>;
    /// Writes `value` to the 64-bit register at `offset`.
    fn write64(&self, offset: usize, value: u64) -> Result<(), Self::Error>;
}
