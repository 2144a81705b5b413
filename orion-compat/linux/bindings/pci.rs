// SPDX-License-Identifier: GPL-2.0

//! What the driver needs of a bound PCI function beyond `kernel::pci`: configuration-space
//! accessors that report failure, bus mastering on a bound (not only probing) device, the
//! saved state, the enable guard, and interrupt vectors allocated with affinity whose
//! handlers can be disabled, enabled and synchronised.
//!
//! The kernel crate's `alloc_irq_vectors` cannot ask for `PCI_IRQ_AFFINITY`, and its handler
//! registrations borrow the vector allocation; here the allocation is reference counted and
//! every registration holds a reference, so the vectors outlive their handlers. Neither
//! borrows the device: they reach it through a [`BoundPci`].

use super::bound::BoundPci;
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

/// The bytes of a PCI Express function's configuration space.
pub(crate) const CONFIG_SPACE_LEN: usize = 4096;

/// The `struct pci_dev` of `pdev`, for the C calls the kernel crate does not wrap.
///
/// `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>`, so the pointer is
/// valid for as long as the reference is. Making it is safe; using it is the caller's `unsafe`.
pub(crate) fn as_raw(pdev: &pci::Device<Bound>) -> *mut bindings::pci_dev {
    ptr::from_ref(pdev).cast::<bindings::pci_dev>().cast_mut()
}

/// `offset` as a configuration-space offset for an access of `size` bytes: naturally aligned
/// and inside the space.
fn config_at(offset: usize, size: usize) -> Result<c_int> {
    match offset.checked_add(size) {
        // CAST: below 4096.
        Some(end) if end <= CONFIG_SPACE_LEN && offset % size == 0 => Ok(offset as c_int),
        _ => Err(code::EINVAL),
    }
}

/// A `PCIBIOS_*` result: EIO for any failure.
fn bios(r: c_int) -> Result {
    if r == 0 {
        Ok(())
    } else {
        Err(code::EIO)
    }
}

/// Reads the configuration byte at `offset` (EINVAL outside the space, EIO if the access
/// failed).
pub(crate) fn config_read8(pdev: &pci::Device<Bound>, offset: usize) -> Result<u8> {
    let at = config_at(offset, 1)?;
    let mut v = 0;
    // SAFETY: `as_raw` gives a valid `struct pci_dev` of a bound device; `at` is an aligned
    // offset inside its configuration space; `v` is a valid out pointer for the call.
    bios(unsafe { bindings::pci_read_config_byte(as_raw(pdev), at, &mut v) })?;
    Ok(v)
}

/// Reads the configuration word at `offset`, as [`config_read8`].
pub(crate) fn config_read16(pdev: &pci::Device<Bound>, offset: usize) -> Result<u16> {
    let at = config_at(offset, 2)?;
    let mut v = 0;
    // SAFETY: as in `config_read8`.
    bios(unsafe { bindings::pci_read_config_word(as_raw(pdev), at, &mut v) })?;
    Ok(v)
}

/// Reads the configuration dword at `offset`, as [`config_read8`].
pub(crate) fn config_read32(pdev: &pci::Device<Bound>, offset: usize) -> Result<u32> {
    let at = config_at(offset, 4)?;
    let mut v = 0;
    // SAFETY: as in `config_read8`.
    bios(unsafe { bindings::pci_read_config_dword(as_raw(pdev), at, &mut v) })?;
    Ok(v)
}

/// Writes the configuration byte at `offset`, as [`config_read8`].
pub(crate) fn config_write8(pdev: &pci::Device<Bound>, offset: usize, value: u8) -> Result {
    let at = config_at(offset, 1)?;
    // SAFETY: a valid device of a bound function and an aligned in-range offset.
    bios(unsafe { bindings::pci_write_config_byte(as_raw(pdev), at, value) })
}

/// Writes the configuration word at `offset`, as [`config_read8`].
pub(crate) fn config_write16(pdev: &pci::Device<Bound>, offset: usize, value: u16) -> Result {
    let at = config_at(offset, 2)?;
    // SAFETY: as in `config_write8`.
    bios(unsafe { bindings::pci_write_config_word(as_raw(pdev), at, value) })
}

/// Writes the configuration dword at `offset`, as [`config_read8`].
pub(crate) fn config_write32(pdev: &pci::Device<Bound>, offset: usize, value: u32) -> Result {
    let at = config_at(offset, 4)?;
    // SAFETY: as in `config_write8`.
    bios(unsafe { bindings::pci_write_config_dword(as_raw(pdev), at, value) })
}

/// Turns bus mastering on (`pci_set_master`) or off (`pci_clear_master`).
pub(crate) fn set_bus_master(pdev: &pci::Device<Bound>, enable: bool) {
    let raw = as_raw(pdev);
    // SAFETY: a valid device of a bound function; both only update its command register
    // (and the `is_busmaster` flag) under the PCI core's own locking.
    unsafe {
        if enable {
            bindings::pci_set_master(raw);
        } else {
            bindings::pci_clear_master(raw);
        }
    }
}

/// Whether the function still answers on the bus (`pci_device_is_present`).
pub(crate) fn is_present(pdev: &pci::Device<Bound>) -> bool {
    // SAFETY: a valid device of a bound function; the call only reads its vendor ID.
    unsafe { bindings::pci_device_is_present(as_raw(pdev)) }
}

/// Saves the configuration space of an enabled device (`pci_save_state`), which PCI error
/// recovery's `slot_reset` restores after a link reset cleared it.
pub(crate) fn save_state(pdev: &pci::Device<Bound>) {
    // SAFETY: a valid device of a bound function; saving its state only reads its
    // configuration space into the device's own save area.
    unsafe { bindings::pci_save_state(as_raw(pdev)) };
}

/// Restores the configuration space saved by [`save_state`] after a link reset cleared it
/// (`pci_restore_state`, which consumes the saved state), then saves it again for a later
/// recovery.
pub(crate) fn restore_and_save_state(pdev: &pci::Device<Bound>) {
    // SAFETY: a valid device of a bound function; restoring writes back the state saved in
    // the device's own save area (nothing if none was saved), saving reads it again.
    unsafe {
        bindings::pci_restore_state(as_raw(pdev));
        bindings::pci_save_state(as_raw(pdev));
    }
}

/// Undoes `pci_enable_device_mem` when dropped; the kernel crate does not.
///
/// # Invariants
///
/// `pdev` was successfully enabled by this driver's probe, once, and is bound while this
/// value lives.
pub(crate) struct EnabledDevice<'a> {
    pdev: &'a pci::Device<Bound>,
}

impl<'a> EnabledDevice<'a> {
    /// Records that `pdev` has just been enabled.
    pub(crate) fn new(pdev: &'a pci::Device<Bound>) -> Self {
        // INVARIANT: called right after a successful `enable_device_mem` in probe.
        Self { pdev }
    }
}

impl Drop for EnabledDevice<'_> {
    fn drop(&mut self) {
        // SAFETY:
        // 1. `as_raw` gives a valid pointer to the device's `struct pci_dev`.
        // 2. By the type invariant the device is bound and was enabled once by this driver, so
        //    this balances exactly that enable.
        unsafe { bindings::pci_disable_device(as_raw(self.pdev)) };
    }
}

/// The kind of interrupt vectors a function was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VectorKind {
    /// MSI-X.
    MsiX,
    /// MSI.
    Msi,
    /// The pin (INTx), possibly shared with other functions.
    Intx,
}

/// What to ask `pci_alloc_irq_vectors_affinity` for.
pub(crate) struct VectorAsk {
    /// At least this many vectors (nonzero), or the allocation fails.
    pub(crate) min: u16,
    /// At most this many.
    pub(crate) max: u16,
    /// The kinds that may be used, tried MSI-X first, then MSI, then INTx.
    pub(crate) msix: bool,
    pub(crate) msi: bool,
    pub(crate) intx: bool,
    /// Vectors at the start left out of the affinity spreading.
    pub(crate) pre_vectors: u16,
    /// Spread the other vectors over the CPUs (`PCI_IRQ_AFFINITY`).
    pub(crate) spread: bool,
}

/// An interrupt handler on one vector.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Handles an interrupt on `vector`; whether it was this device's.
    fn handle(&self, vector: u16) -> bool;
}

/// One vector allocation; freed when the last [`Vectors`] and [`Registration`] holding it is
/// dropped, then `owner` is dropped.
///
/// # Invariants
///
/// `pdev` has `count` vectors allocated by `pci_alloc_irq_vectors_affinity`, of `kind`, and
/// `used` has `count` entries.
struct Alloc<T> {
    pdev: Arc<BoundPci>,
    count: u16,
    kind: VectorKind,
    /// Whether each vector has a handler.
    used: KVec<Atomic<bool>>,
    _owner: T,
}

impl<T> Drop for Alloc<T> {
    fn drop(&mut self) {
        let freed = self.pdev.with(|pdev| {
            // SAFETY: by the type invariant the device has vectors allocated; every
            // registration holds a reference on this allocation, so no handler is left on
            // them; the device is bound for the call.
            unsafe { bindings::pci_free_irq_vectors(as_raw(pdev)) }
        });
        if freed.is_err() {
            // The driver frees its vectors before its device is unbound; the PCI core frees
            // what is left when the device goes.
            pr_warn!("orion_nvme: interrupt vectors outlived their device\n");
        }
    }
}

/// The interrupt vectors of a bound function, with `owner` (whatever the caller wants dropped
/// right after the vectors are freed).
pub(crate) struct Vectors<T: Send + Sync> {
    inner: Arc<Alloc<T>>,
}

/// Allocates vectors on `dev` (`pci_alloc_irq_vectors_affinity`). On failure `owner` is
/// dropped and the errno returned (ENODEV if the device is no longer bound).
pub(crate) fn alloc_vectors<T: Send + Sync>(
    dev: &Arc<BoundPci>,
    ask: &VectorAsk,
    owner: T,
) -> Result<Vectors<T>> {
    dev.with(|pdev| alloc_on(pdev, dev.clone(), ask, owner))?
}

/// [`alloc_vectors`] on the bound `pdev`, which `dev` names.
fn alloc_on<T: Send + Sync>(
    pdev: &pci::Device<Bound>,
    dev: Arc<BoundPci>,
    ask: &VectorAsk,
    owner: T,
) -> Result<Vectors<T>> {
    if ask.min == 0 || ask.min > ask.max || ask.pre_vectors > ask.max {
        return Err(code::EINVAL);
    }
    let mut flags = 0;
    for (on, bit) in [
        (ask.msix, bindings::PCI_IRQ_MSIX),
        (ask.msi, bindings::PCI_IRQ_MSI),
        (ask.intx, bindings::PCI_IRQ_INTX),
    ] {
        if on {
            flags |= bit;
        }
    }
    if ask.spread {
        flags |= bindings::PCI_IRQ_AFFINITY;
    }
    // Reserved before the vectors, so that nothing can fail once they are allocated.
    let mut used = KVec::with_capacity(usize::from(ask.max), GFP_KERNEL)?;
    let mut affd = bindings::irq_affinity {
        pre_vectors: c_uint::from(ask.pre_vectors),
        ..Default::default()
    };
    // SAFETY: a valid device of a bound function; `affd` lives across the call. The PCI core
    // refuses a second MSI or MSI-X allocation on a function that has one.
    let got = unsafe {
        bindings::pci_alloc_irq_vectors_affinity(
            as_raw(pdev),
            c_uint::from(ask.min),
            c_uint::from(ask.max),
            flags,
            &mut affd,
        )
    };
    if got < 0 {
        return Err(Error::from_errno(got));
    }
    // SAFETY: a valid device; reading the MSI state bits the allocation just set.
    let kind = unsafe {
        let d = &*as_raw(pdev);
        if d.msix_enabled() != 0 {
            VectorKind::MsiX
        } else if d.msi_enabled() != 0 {
            VectorKind::Msi
        } else {
            VectorKind::Intx
        }
    };
    // CAST: at most `ask.max`, a u16.
    let count = got as u16;
    for _ in 0..count {
        // Capacity reserved above: cannot fail.
        let _ = used.push_within_capacity(Atomic::new(false));
    }
    // INVARIANT: `count` vectors of `kind` were just allocated; `used` has `count` entries.
    let alloc = Alloc {
        pdev: dev,
        count,
        kind,
        used,
        _owner: owner,
    };
    // On failure the allocation is dropped, which frees the vectors.
    let inner = Arc::new(alloc, GFP_KERNEL)?;
    Ok(Vectors { inner })
}

/// A handler as the IRQ core calls it (its address is the `dev_id`).
struct Slot<H> {
    handler: H,
    vector: u16,
}

/// The `irq_handler_t` of a [`Registration`] of `H`.
///
/// # Safety
///
/// Called by the IRQ core with the `dev_id` `Vectors::register` requested the interrupt with:
/// a pinned `Slot<H>` alive until `free_irq` returns.
unsafe extern "C" fn trampoline<H: Handler>(
    _irq: c_int,
    dev_id: *mut c_void,
) -> bindings::irqreturn_t {
    // SAFETY: caller's contract.
    let slot = unsafe { &*dev_id.cast::<Slot<H>>() };
    if slot.handler.handle(slot.vector) {
        bindings::irqreturn::IRQ_HANDLED
    } else {
        bindings::irqreturn::IRQ_NONE
    }
}

impl<T: Send + Sync> Vectors<T> {
    /// How many vectors were allocated.
    pub(crate) fn count(&self) -> u16 {
        self.inner.count
    }

    /// Their kind.
    pub(crate) fn kind(&self) -> VectorKind {
        self.inner.kind
    }

    /// Registers `handler` on `vector` (`request_irq`; shared on INTx), which must not have
    /// one. The handler is handed back with the error on failure (EINVAL: no such vector,
    /// EBUSY: it has a handler).
    pub(crate) fn register<H: Handler>(
        &self,
        vector: u16,
        handler: H,
    ) -> Result<Registration<T, H>, (Error, H)> {
        let a = &self.inner;
        let Some(used) = a.used.get(usize::from(vector)) else {
            return Err((code::EINVAL, handler));
        };
        if used.cmpxchg(false, true, Full).is_err() {
            return Err((code::EBUSY, handler));
        }
        let irq = a.pdev.with(|pdev| {
            // SAFETY: a valid, bound device with `count` vectors allocated (type invariant of
            // `Alloc`), and `vector` is below `count` (it has a `used` entry).
            unsafe { bindings::pci_irq_vector(as_raw(pdev), c_uint::from(vector)) }
        });
        let irq = match irq {
            Ok(irq) => irq,
            Err(e) => {
                used.store(false, Relaxed);
                return Err((e, handler));
            }
        };
        if irq < 0 {
            used.store(false, Relaxed);
            return Err((Error::from_errno(irq), handler));
        }
        // Allocated first, so that a failure can hand the handler back.
        let boxed = match KBox::<Slot<H>>::new_uninit(GFP_KERNEL) {
            Ok(b) => b,
            Err(_) => {
                used.store(false, Relaxed);
                return Err((code::ENOMEM, handler));
            }
        };
        let slot = KBox::write(boxed, Slot { handler, vector });
        let dev_id = ptr::from_ref::<Slot<H>>(&slot).cast_mut().cast::<c_void>();
        let flags = if a.kind == VectorKind::Intx {
            bindings::IRQF_SHARED as usize
        } else {
            0
        };
        // CAST: checked non-negative above.
        let irq = irq as c_uint;
        // SAFETY: `trampoline::<H>` matches `irq_handler_t` and gets `dev_id`, the address of
        // the boxed `Slot<H>`: it is not moved out of the box (the registration keeps it and
        // hands out only shared references) and is freed only after `free_irq` in `Drop`. The
        // name is static.
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
            // Never registered: nothing points at the slot.
            let Slot { handler, .. } = KBox::into_inner(slot);
            return Err((Error::from_errno(r), handler));
        }
        // INVARIANT: requested just above with the slot's address.
        Ok(Registration {
            slot,
            irq,
            vector,
            alloc: a.clone(),
        })
    }
}

/// A handler registered on one vector; dropping it frees the interrupt (`free_irq`, which
/// waits for a running handler).
///
/// # Invariants
///
/// `irq` is requested with `trampoline::<H>` and the address of `*slot` as `dev_id`.
pub(crate) struct Registration<T: Send + Sync, H: Handler> {
    slot: KBox<Slot<H>>,
    irq: c_uint,
    vector: u16,
    alloc: Arc<Alloc<T>>,
}

impl<T: Send + Sync, H: Handler> Registration<T, H> {
    /// The handler.
    pub(crate) fn handler(&self) -> &H {
        &self.slot.handler
    }

    /// The vector it is registered on.
    pub(crate) fn vector(&self) -> u16 {
        self.vector
    }

    /// Disables the interrupt (`disable_irq`: nests, and waits for a running handler); one that
    /// arrives while disabled is left pending and replayed by [`Self::enable`].
    pub(crate) fn disable(&self) {
        // SAFETY: `irq` is requested (type invariant).
        unsafe { bindings::disable_irq(self.irq) };
    }

    /// Undoes one [`Self::disable`] (`enable_irq`; the IRQ core warns on an unbalanced one).
    pub(crate) fn enable(&self) {
        // SAFETY: `irq` is requested (type invariant).
        unsafe { bindings::enable_irq(self.irq) };
    }

    /// Waits for a running handler to return (`synchronize_irq`).
    pub(crate) fn synchronize(&self) {
        // SAFETY: `irq` is requested (type invariant).
        unsafe { bindings::synchronize_irq(self.irq) };
    }
}

impl<T: Send + Sync, H: Handler> Drop for Registration<T, H> {
    fn drop(&mut self) {
        let dev_id = ptr::from_ref::<Slot<H>>(&self.slot)
            .cast_mut()
            .cast::<c_void>();
        // SAFETY: requested with exactly this `dev_id` (type invariant) and freed once, here;
        // after `free_irq` returns the handler is not running and will not be called again, so
        // the slot may be freed with `self`.
        unsafe { bindings::free_irq(self.irq, dev_id) };
        if let Some(u) = self.alloc.used.get(usize::from(self.vector)) {
            u.store(false, Relaxed);
        }
    }
}
