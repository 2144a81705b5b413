// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! The Orion `Pci`, `IrqVectors` and `IrqRegistration` traits on a bound Linux PCI device:
//! configuration space, bus mastering, BAR mapping and interrupt vectors with handlers.
//!
//! The kernel crate's `alloc_irq_vectors` cannot ask for `PCI_IRQ_AFFINITY` and its
//! registrations borrow the vector allocation (KERNEL-API-MAP §2), so vectors and handlers
//! come from [`crate::bindings::pci`], whose allocation is reference counted so that it
//! outlives every registration made from it, as the trait contract requires.

use crate::bindings::pci as bpci;
use crate::error::LinuxError;
use crate::mmio::{Bar0, BoundPci};
use crate::orion_compat::irq::{
    IrqHandler, IrqKind, IrqRegistration, IrqReturn, IrqVectors, VectorRequest,
};
use crate::orion_compat::pci::{Pci, PciIds, CONFIG_SPACE_LEN};
use kernel::{
    error::code,
    prelude::*,
    sync::{
        atomic::{Atomic, Full, Relaxed},
        Arc,
    },
};

/// A bound PCI function as the Orion [`Pci`] trait. Once the function is unbound every
/// access fails with ENODEV and it reads as not present.
pub(crate) struct LinuxPci {
    dev: Arc<BoundPci>,
    /// Set while a vector allocation made through this value is alive.
    allocated: Arc<Atomic<bool>>,
}

impl LinuxPci {
    /// The Orion view of `dev`.
    pub(crate) fn new(dev: Arc<BoundPci>) -> Result<Self> {
        Ok(Self {
            dev,
            allocated: Arc::new(Atomic::new(false), GFP_KERNEL)?,
        })
    }

    /// Checks `offset` for an access of `size` bytes.
    fn at(offset: usize, size: usize) -> Result<usize, LinuxError> {
        match offset.checked_add(size) {
            Some(end) if end <= CONFIG_SPACE_LEN && offset % size == 0 => Ok(offset),
            _ => Err(LinuxError(code::EINVAL)),
        }
    }
}

/// Clears the "allocated" flag of a [`LinuxPci`] when the vectors are freed.
struct Release(Arc<Atomic<bool>>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

impl Pci for LinuxPci {
    type Error = LinuxError;
    type Bar = Bar0;
    type Vectors = LinuxVectors;

    fn ids(&self) -> PciIds {
        let d = self.dev.device();
        PciIds {
            vendor: d.vendor_id().as_raw(),
            device: d.device_id(),
            class: d.pci_class().as_raw(),
            revision: d.revision_id(),
            subsystem_vendor: d.subsystem_vendor_id(),
            subsystem_device: d.subsystem_device_id(),
        }
    }

    fn bar_len(&self, index: u8) -> u64 {
        if index >= 6 {
            return 0;
        }
        self.dev
            .device()
            .resource_len(u32::from(index))
            .unwrap_or(0)
    }

    fn map_bar(&self, index: u8) -> Result<Bar0, LinuxError> {
        if index >= 6 {
            return Err(LinuxError(code::EINVAL));
        }
        let bar = self.dev.with(|p| {
            let bar = p.iomap_region(u32::from(index), c"orion_nvme")?;
            Bar0::new(bar)
        })??;
        Ok(bar)
    }

    fn config_read8(&self, offset: usize) -> Result<u8, LinuxError> {
        let at = Self::at(offset, 1)?;
        Ok(self.dev.with(|p| bpci::config_read8(p, at))??)
    }

    fn config_read16(&self, offset: usize) -> Result<u16, LinuxError> {
        let at = Self::at(offset, 2)?;
        Ok(self.dev.with(|p| bpci::config_read16(p, at))??)
    }

    fn config_read32(&self, offset: usize) -> Result<u32, LinuxError> {
        let at = Self::at(offset, 4)?;
        Ok(self.dev.with(|p| bpci::config_read32(p, at))??)
    }

    fn config_write8(&self, offset: usize, value: u8) -> Result<(), LinuxError> {
        let at = Self::at(offset, 1)?;
        Ok(self.dev.with(|p| bpci::config_write8(p, at, value))??)
    }

    fn config_write16(&self, offset: usize, value: u16) -> Result<(), LinuxError> {
        let at = Self::at(offset, 2)?;
        Ok(self.dev.with(|p| bpci::config_write16(p, at, value))??)
    }

    fn config_write32(&self, offset: usize, value: u32) -> Result<(), LinuxError> {
        let at = Self::at(offset, 4)?;
        Ok(self.dev.with(|p| bpci::config_write32(p, at, value))??)
    }

    fn set_bus_master(&self, enable: bool) -> Result<(), LinuxError> {
        Ok(self.dev.with(|p| bpci::set_bus_master(p, enable))?)
    }

    fn alloc_irq_vectors(&self, r: &VectorRequest) -> Result<LinuxVectors, LinuxError> {
        if r.min == 0 || r.min > r.max || r.kinds.is_empty() || r.pre_vectors > r.max {
            return Err(LinuxError(code::EINVAL));
        }
        if self.allocated.cmpxchg(false, true, Full).is_err() {
            return Err(LinuxError(code::EBUSY));
        }
        let ask = bpci::VectorAsk {
            min: r.min,
            max: r.max,
            msix: r.kinds.contains(IrqKind::MsiX),
            msi: r.kinds.contains(IrqKind::Msi),
            intx: r.kinds.contains(IrqKind::Intx),
            pre_vectors: r.pre_vectors,
            spread: r.pre_vectors < r.max,
        };
        // The flag is cleared when the allocation is freed (or at once if it fails).
        let inner = bpci::alloc_vectors(&self.dev, &ask, Release(self.allocated.clone()))?;
        Ok(LinuxVectors { inner })
    }

    fn is_present(&self) -> bool {
        self.dev.with(bpci::is_present).unwrap_or(false)
    }
}

/// Interrupt vectors of a bound device.
pub(crate) struct LinuxVectors {
    inner: bpci::Vectors<Release>,
}

/// An Orion handler as the bindings' handler.
struct Adapt<H>(H);

impl<H: IrqHandler> bpci::Handler for Adapt<H> {
    fn handle(&self, vector: u16) -> bool {
        matches!(self.0.handle(vector), IrqReturn::Handled)
    }
}

/// A handler registered on one vector.
pub(crate) struct LinuxRegistration<H: IrqHandler> {
    reg: bpci::Registration<Release, Adapt<H>>,
}

impl IrqVectors for LinuxVectors {
    type Error = LinuxError;
    type Registration<H: IrqHandler> = LinuxRegistration<H>;

    fn count(&self) -> u16 {
        self.inner.count()
    }

    fn kind(&self) -> IrqKind {
        match self.inner.kind() {
            bpci::VectorKind::MsiX => IrqKind::MsiX,
            bpci::VectorKind::Msi => IrqKind::Msi,
            bpci::VectorKind::Intx => IrqKind::Intx,
        }
    }

    fn register<H: IrqHandler>(
        &self,
        vector: u16,
        handler: H,
    ) -> Result<LinuxRegistration<H>, (LinuxError, H)> {
        match self.inner.register(vector, Adapt(handler)) {
            Ok(reg) => Ok(LinuxRegistration { reg }),
            Err((e, Adapt(h))) => Err((LinuxError(e), h)),
        }
    }
}

impl<H: IrqHandler> IrqRegistration for LinuxRegistration<H> {
    type Handler = H;

    fn handler(&self) -> &H {
        &self.reg.handler().0
    }

    fn vector(&self) -> u16 {
        self.reg.vector()
    }

    fn disable(&self) {
        // Nests and waits for a running handler; an interrupt that arrives while disabled is
        // left pending and replayed by `enable`.
        self.reg.disable();
    }

    fn enable(&self) {
        // The caller balances the calls (trait contract).
        self.reg.enable();
    }

    fn synchronize(&self) {
        self.reg.synchronize();
    }
}
