// SPDX-License-Identifier: GPL-2.0

//! The Orion `Pci`, `IrqVectors` and `IrqRegistration` traits on a bound Linux PCI device:
//! configuration space, bus mastering, BAR mapping and interrupt vectors with handlers.
//!
//! The kernel crate's `alloc_irq_vectors` cannot ask for `PCI_IRQ_AFFINITY` and its
//! registrations borrow the vector allocation (KERNEL-API-MAP §2), so vectors and handlers are
//! on raw bindings here; the allocation is reference counted so that it outlives every
//! registration made from it, as the trait contract requires.

use crate::error::LinuxError;
use crate::mmio::Bar0;
use crate::orion_compat::irq::{
    IrqHandler, IrqKind, IrqRegistration, IrqReturn, IrqVectors, VectorRequest,
};
use crate::orion_compat::pci::{Pci, PciIds, CONFIG_SPACE_LEN};
use core::ffi::{c_int, c_uint, c_void};
use core::ptr;
use kernel::{
    bindings,
    device::Bound,
    error::code,
    pci,
    prelude::*,
    sync::{
        atomic::{Atomic, Full, Relaxed},
        Arc,
    },
};

/// A bound PCI function as the Orion [`Pci`] trait.
pub(crate) struct LinuxPci<'b> {
    pdev: &'b pci::Device<Bound>,
    /// Set while a vector allocation made through this value is alive.
    allocated: Arc<Atomic<bool>>,
}

impl<'b> LinuxPci<'b> {
    /// The Orion view of `pdev`.
    pub(crate) fn new(pdev: &'b pci::Device<Bound>) -> Result<Self> {
        Ok(Self {
            pdev,
            allocated: Arc::new(Atomic::new(false), GFP_KERNEL)?,
        })
    }

    fn raw(&self) -> *mut bindings::pci_dev {
        crate::mmio::raw_pci(self.pdev)
    }

    /// `offset` as a config-space offset for an access of `size` bytes.
    fn at(offset: usize, size: usize) -> Result<c_int, LinuxError> {
        match offset.checked_add(size) {
            Some(end) if end <= CONFIG_SPACE_LEN && offset % size == 0 => {
                // CAST: below 4096.
                Ok(offset as c_int)
            }
            _ => Err(LinuxError(code::EINVAL)),
        }
    }
}

/// A `PCIBIOS_*` result as an error.
fn bios(r: c_int) -> Result<(), LinuxError> {
    if r == 0 {
        Ok(())
    } else {
        Err(LinuxError(code::EIO))
    }
}

impl<'b> Pci for LinuxPci<'b> {
    type Error = LinuxError;
    type Bar = Bar0<'b>;
    type Vectors = LinuxVectors<'b>;

    fn ids(&self) -> PciIds {
        // SAFETY: the device is bound; these fields are set at enumeration and never change.
        unsafe {
            let d = &*self.raw();
            PciIds {
                vendor: d.vendor,
                device: d.device,
                class: d.class,
                revision: d.revision,
                subsystem_vendor: d.subsystem_vendor,
                subsystem_device: d.subsystem_device,
            }
        }
    }

    fn bar_len(&self, index: u8) -> u64 {
        if index >= 6 {
            return 0;
        }
        self.pdev.resource_len(u32::from(index)).unwrap_or(0)
    }

    fn map_bar(&self, index: u8) -> Result<Bar0<'b>, LinuxError> {
        if index >= 6 {
            return Err(LinuxError(code::EINVAL));
        }
        let bar = self
            .pdev
            .iomap_region(u32::from(index), c"orion_nvme")
            .map_err(LinuxError)?;
        Bar0::new(bar).map_err(LinuxError)
    }

    fn config_read8(&self, offset: usize) -> Result<u8, LinuxError> {
        let at = Self::at(offset, 1)?;
        let mut v = 0;
        // SAFETY: a bound device and an in-range offset; `v` is a valid out pointer.
        bios(unsafe { bindings::pci_read_config_byte(self.raw(), at, &mut v) })?;
        Ok(v)
    }

    fn config_read16(&self, offset: usize) -> Result<u16, LinuxError> {
        let at = Self::at(offset, 2)?;
        let mut v = 0;
        // SAFETY: as in `config_read8`.
        bios(unsafe { bindings::pci_read_config_word(self.raw(), at, &mut v) })?;
        Ok(v)
    }

    fn config_read32(&self, offset: usize) -> Result<u32, LinuxError> {
        let at = Self::at(offset, 4)?;
        let mut v = 0;
        // SAFETY: as in `config_read8`.
        bios(unsafe { bindings::pci_read_config_dword(self.raw(), at, &mut v) })?;
        Ok(v)
    }

    fn config_write8(&self, offset: usize, value: u8) -> Result<(), LinuxError> {
        let at = Self::at(offset, 1)?;
        // SAFETY: a bound device and an in-range offset.
        bios(unsafe { bindings::pci_write_config_byte(self.raw(), at, value) })
    }

    fn config_write16(&self, offset: usize, value: u16) -> Result<(), LinuxError> {
        let at = Self::at(offset, 2)?;
        // SAFETY: as in `config_write8`.
        bios(unsafe { bindings::pci_write_config_word(self.raw(), at, value) })
    }

    fn config_write32(&self, offset: usize, value: u32) -> Result<(), LinuxError> {
        let at = Self::at(offset, 4)?;
        // SAFETY: as in `config_write8`.
        bios(unsafe { bindings::pci_write_config_dword(self.raw(), at, value) })
    }

    fn set_bus_master(&self, enable: bool) -> Result<(), LinuxError> {
        // SAFETY: a bound, enabled device.
        unsafe {
            if enable {
                bindings::pci_set_master(self.raw());
            } else {
                bindings::pci_clear_master(self.raw());
            }
        }
        Ok(())
    }

    fn alloc_irq_vectors(&self, r: &VectorRequest) -> Result<LinuxVectors<'b>, LinuxError> {
        if r.min == 0 || r.min > r.max || r.kinds.is_empty() || r.pre_vectors > r.max {
            return Err(LinuxError(code::EINVAL));
        }
        if self.allocated.cmpxchg(false, true, Full).is_err() {
            return Err(LinuxError(code::EBUSY));
        }
        let mut flags = 0;
        for (kind, bit) in [
            (IrqKind::MsiX, bindings::PCI_IRQ_MSIX),
            (IrqKind::Msi, bindings::PCI_IRQ_MSI),
            (IrqKind::Intx, bindings::PCI_IRQ_INTX),
        ] {
            if r.kinds.contains(kind) {
                flags |= bit;
            }
        }
        let mut affd = bindings::irq_affinity {
            pre_vectors: c_uint::from(r.pre_vectors),
            ..Default::default()
        };
        if r.pre_vectors < r.max {
            flags |= bindings::PCI_IRQ_AFFINITY;
        }
        // SAFETY: a bound, enabled device with no vectors allocated (the flag above);
        // `affd` lives across the call.
        let got = unsafe {
            bindings::pci_alloc_irq_vectors_affinity(
                self.raw(),
                c_uint::from(r.min),
                c_uint::from(r.max),
                flags,
                &mut affd,
            )
        };
        if got < 0 {
            self.allocated.store(false, Relaxed);
            return Err(LinuxError(Error::from_errno(got)));
        }
        // SAFETY: reading the MSI state bits the allocation just set.
        let kind = unsafe {
            let d = &*self.raw();
            if d.msix_enabled() != 0 {
                IrqKind::MsiX
            } else if d.msi_enabled() != 0 {
                IrqKind::Msi
            } else {
                IrqKind::Intx
            }
        };
        // CAST: at most r.max, a u16.
        let count = got as u16;
        let mut used = KVec::with_capacity(usize::from(count), GFP_KERNEL).map_err(|_| {
            // SAFETY: allocated just above and not handed out.
            unsafe { bindings::pci_free_irq_vectors(self.raw()) };
            self.allocated.store(false, Relaxed);
            LinuxError(code::ENOMEM)
        })?;
        for _ in 0..count {
            // Capacity reserved above: cannot fail.
            let _ = used.push(Atomic::new(false), GFP_KERNEL);
        }
        let alloc = VectorAlloc {
            pdev: self.raw(),
            count,
            kind,
            used,
            allocated: self.allocated.clone(),
            _bound: core::marker::PhantomData,
        };
        let inner = Arc::new(alloc, GFP_KERNEL).map_err(|_| LinuxError(code::ENOMEM))?;
        Ok(LinuxVectors { inner })
    }

    fn is_present(&self) -> bool {
        // SAFETY: a bound device.
        unsafe { bindings::pci_device_is_present(self.raw()) }
    }
}

/// One vector allocation; freed when the last of the vectors and their registrations is
/// dropped.
///
/// # Invariants
///
/// `pdev` is bound for `'b` and has `count` vectors allocated by `alloc_irq_vectors`.
struct VectorAlloc<'b> {
    pdev: *mut bindings::pci_dev,
    count: u16,
    kind: IrqKind,
    /// Whether each vector has a handler.
    used: KVec<Atomic<bool>>,
    allocated: Arc<Atomic<bool>>,
    _bound: core::marker::PhantomData<&'b ()>,
}

// SAFETY: the device pointer is only used for calls the kernel allows from any thread.
unsafe impl Send for VectorAlloc<'_> {}
// SAFETY: as above; the flags are atomics.
unsafe impl Sync for VectorAlloc<'_> {}

impl Drop for VectorAlloc<'_> {
    fn drop(&mut self) {
        // SAFETY: by the type invariant; every registration holds a reference, so none is
        // left when this runs.
        unsafe { bindings::pci_free_irq_vectors(self.pdev) };
        self.allocated.store(false, Relaxed);
    }
}

/// Interrupt vectors of a bound device.
pub(crate) struct LinuxVectors<'b> {
    inner: Arc<VectorAlloc<'b>>,
}

/// A handler registered on one vector.
pub(crate) struct LinuxRegistration<'b, H: IrqHandler> {
    reg: Pin<KBox<Reg<H>>>,
    irq: c_uint,
    vector: u16,
    alloc: Arc<VectorAlloc<'b>>,
}

/// The handler as the IRQ core calls it (its address is the `dev_id`).
struct Reg<H> {
    handler: H,
    vector: u16,
}

/// # Safety
///
/// Called by the IRQ core with the `dev_id` of a live `LinuxRegistration<H>`.
unsafe extern "C" fn trampoline<H: IrqHandler>(
    _irq: c_int,
    dev_id: *mut c_void,
) -> bindings::irqreturn_t {
    // SAFETY: `dev_id` is the pinned `Reg<H>`, alive until `free_irq` returns.
    let reg = unsafe { &*dev_id.cast::<Reg<H>>() };
    match reg.handler.handle(reg.vector) {
        IrqReturn::Handled => bindings::irqreturn::IRQ_HANDLED,
        IrqReturn::None => bindings::irqreturn::IRQ_NONE,
    }
}

impl<'b> IrqVectors for LinuxVectors<'b> {
    type Error = LinuxError;
    type Registration<H: IrqHandler> = LinuxRegistration<'b, H>;

    fn count(&self) -> u16 {
        self.inner.count
    }

    fn kind(&self) -> IrqKind {
        self.inner.kind
    }

    fn register<H: IrqHandler>(
        &self,
        vector: u16,
        handler: H,
    ) -> Result<LinuxRegistration<'b, H>, (LinuxError, H)> {
        let a = &self.inner;
        let Some(used) = a.used.get(usize::from(vector)) else {
            return Err((LinuxError(code::EINVAL), handler));
        };
        if used.cmpxchg(false, true, Full).is_err() {
            return Err((LinuxError(code::EBUSY), handler));
        }
        // SAFETY: `vector` is below the allocated count.
        let irq = unsafe { bindings::pci_irq_vector(a.pdev, c_uint::from(vector)) };
        if irq < 0 {
            used.store(false, Relaxed);
            return Err((LinuxError(Error::from_errno(irq)), handler));
        }
        // Allocate first, so that a failure can hand the handler back.
        let slot = match KBox::<Reg<H>>::new_uninit(GFP_KERNEL) {
            Ok(slot) => slot,
            Err(_) => {
                used.store(false, Relaxed);
                return Err((LinuxError(code::ENOMEM), handler));
            }
        };
        let reg = KBox::into_pin(slot.write(Reg { handler, vector }));
        let dev_id = ptr::from_ref::<Reg<H>>(&reg).cast_mut().cast::<c_void>();
        let flags = if a.kind == IrqKind::Intx {
            bindings::IRQF_SHARED as usize
        } else {
            0
        };
        // CAST: checked non-negative above.
        let irq = irq as c_uint;
        // SAFETY: `trampoline::<H>` matches `irq_handler_t`; `dev_id` is pinned and lives
        // until `free_irq` in `Drop`; the name is static.
        let r = unsafe {
            bindings::request_irq(
                irq,
                Some(trampoline::<H>),
                flags,
                c"orion_nvme".as_char_ptr(),
                dev_id,
            )
        };
        if r != 0 {
            used.store(false, Relaxed);
            // SAFETY: `reg` was never registered; moving the handler out of the pin is fine
            // because nothing points at it.
            let Reg { handler, .. } = KBox::into_inner(unsafe { Pin::into_inner_unchecked(reg) });
            return Err((LinuxError(Error::from_errno(r)), handler));
        }
        Ok(LinuxRegistration {
            reg,
            irq,
            vector,
            alloc: a.clone(),
        })
    }
}

impl<H: IrqHandler> IrqRegistration for LinuxRegistration<'_, H> {
    type Handler = H;

    fn handler(&self) -> &H {
        &self.reg.handler
    }

    fn vector(&self) -> u16 {
        self.vector
    }

    fn disable(&self) {
        // SAFETY: `irq` has our handler registered. `disable_irq` nests and waits for a
        // running handler; an interrupt that arrives while disabled is left pending and
        // replayed by `enable_irq`.
        unsafe { bindings::disable_irq(self.irq) };
    }

    fn enable(&self) {
        // SAFETY: as in `disable`; the caller balances the calls (trait contract).
        unsafe { bindings::enable_irq(self.irq) };
    }

    fn synchronize(&self) {
        // SAFETY: `irq` is a valid, requested interrupt.
        unsafe { bindings::synchronize_irq(self.irq) };
    }
}

impl<H: IrqHandler> Drop for LinuxRegistration<'_, H> {
    fn drop(&mut self) {
        let dev_id = ptr::from_ref::<Reg<H>>(&self.reg)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: registered in `register` with exactly this `dev_id`; after `free_irq`
        // returns the handler is not running and will not be called again, so `reg` may be
        // dropped with `self`.
        unsafe { bindings::free_irq(self.irq, dev_id) };
        if let Some(u) = self.alloc.used.get(usize::from(self.vector)) {
            u.store(false, Relaxed);
        }
    }
}
