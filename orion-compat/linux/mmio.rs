// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! `Mmio` over a mapped PCI BAR, and the PCI enable guard.

use crate::error::LinuxError;
use crate::orion_compat::Mmio;
use kernel::{device, error::code, io::Io, pci, prelude::*, sync::Arc};

/// BAR0 of a bound device, as the Orion [`Mmio`] trait. Clones share one mapping: the
/// controller's admin path and every I/O queue ring doorbells through it.
///
/// The mapping is device-managed (`DevresBar`): it is unmapped when the last clone goes or
/// when the device is unbound, whichever comes first; after an unbind every access fails
/// with ENODEV instead of touching an unmapped BAR.
///
/// Accesses use `readl`/`writel` (`readq`/`writeq`) semantics, which give the ordering the
/// trait's contract promises: a write is ordered after earlier writes to coherent memory, and
/// a read completes before later memory reads.
#[derive(Clone)]
pub(crate) struct Bar0 {
    bar: Arc<pci::DevresBar>,
}

impl Bar0 {
    /// Takes a mapped BAR.
    pub(crate) fn new(bar: pci::Bar<'_>) -> Result<Self> {
        Ok(Self {
            bar: Arc::new(bar.into_devres()?, GFP_KERNEL)?,
        })
    }
}

/// ENODEV: the device was unbound and its BAR unmapped.
const GONE: LinuxError = LinuxError(code::ENODEV);

impl Mmio for Bar0 {
    type Error = LinuxError;

    fn read32(&self, offset: usize) -> Result<u32, LinuxError> {
        let bar = self.bar.try_access().ok_or(GONE)?;
        Ok((&*bar).try_read32(offset)?)
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), LinuxError> {
        let bar = self.bar.try_access().ok_or(GONE)?;
        Ok((&*bar).try_write32(value, offset)?)
    }

    fn read64(&self, offset: usize) -> Result<u64, LinuxError> {
        let bar = self.bar.try_access().ok_or(GONE)?;
        Ok((&*bar).try_read64(offset)?)
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), LinuxError> {
        let bar = self.bar.try_access().ok_or(GONE)?;
        Ok((&*bar).try_write64(value, offset)?)
    }
}

/// Saves the configuration space of an enabled, bus-mastering device (`pci_save_state`),
/// which PCI error recovery's `slot_reset` restores after a link reset cleared it. The kernel
/// crate does not wrap it.
pub(crate) fn save_config_state(pdev: &pci::Device<device::Bound>) {
    crate::bindings::pci::save_state(pdev);
}

/// Undoes `pci_enable_device_mem` when dropped; the kernel crate does not.
pub(crate) use crate::bindings::pci::EnabledDevice;

/// A PCI device usable after probe for as long as it stays bound.
pub(crate) use crate::bindings::bound::BoundPci;
