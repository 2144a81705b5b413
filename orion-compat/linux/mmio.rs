// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! `Mmio` over a mapped PCI BAR, and the PCI enable guard.

use crate::error::LinuxError;
use crate::orion_compat::Mmio;
use kernel::{bindings, device, io::Io, pci, prelude::*, sync::Arc};

/// BAR0 of a bound device, as the Orion [`Mmio`] trait. Clones share one mapping: the
/// controller's admin path and every I/O queue ring doorbells through it.
///
/// Accesses use `readl`/`writel` (`readq`/`writeq`) semantics, which give the ordering the
/// trait's contract promises: a write is ordered after earlier writes to coherent memory, and
/// a read completes before later memory reads.
#[derive(Clone)]
pub(crate) struct Bar0<'a> {
    bar: Arc<pci::Bar<'a>>,
}

impl<'a> Bar0<'a> {
    /// Takes a mapped BAR.
    pub(crate) fn new(bar: pci::Bar<'a>) -> Result<Self> {
        Ok(Self {
            bar: Arc::new(bar, GFP_KERNEL)?,
        })
    }
}

impl Mmio for Bar0<'_> {
    type Error = LinuxError;

    fn read32(&self, offset: usize) -> Result<u32, LinuxError> {
        Ok((&*self.bar).try_read32(offset)?)
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), LinuxError> {
        Ok((&*self.bar).try_write32(value, offset)?)
    }

    fn read64(&self, offset: usize) -> Result<u64, LinuxError> {
        Ok((&*self.bar).try_read64(offset)?)
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), LinuxError> {
        Ok((&*self.bar).try_write64(value, offset)?)
    }
}

/// The `struct pci_dev` behind a bound device, for the bindings the kernel crate does not wrap
/// (see [`crate::bindings::pci::as_raw`]).
pub(crate) fn raw_pci(pdev: &pci::Device<device::Bound>) -> *mut bindings::pci_dev {
    crate::bindings::pci::as_raw(pdev)
}

/// Saves the configuration space of an enabled, bus-mastering device (`pci_save_state`),
/// which PCI error recovery's `slot_reset` restores after a link reset cleared it. The kernel
/// crate does not wrap it.
pub(crate) fn save_config_state(pdev: &pci::Device<device::Bound>) {
    crate::bindings::pci::save_state(pdev);
}

/// Undoes `pci_enable_device_mem` when dropped; the kernel crate does not.
pub(crate) use crate::bindings::pci::EnabledDevice;
