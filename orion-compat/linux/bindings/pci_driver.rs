// SPDX-License-Identifier: GPL-2.0

//! A PCI driver registered as `kernel::pci::Adapter` registers it, plus the callbacks that
//! adapter leaves out: `shutdown` (power-off, reboot, kexec) and the error handlers (PCIe
//! AER/DPC recovery, and the `reset_prepare`/`reset_done` pair around a function reset).
//!
//! The callbacks get the bound device and its driver data (the `Pin<KBox<T::Data>>` the
//! adapter's probe stored), through the safe methods of [`Recovery`].

use core::marker::PhantomData;
use kernel::bindings::{self, pci_channel_state_t, pci_ers_result_t};
use kernel::device::Bound;
use kernel::driver::{DriverLayout, RegistrationOps};
use kernel::types::{ForeignOwnable, Opaque};
use kernel::{pci, prelude::*, ThisModule};

/// What the driver does beyond `pci::Driver`. Every method runs with the device bound and its
/// device lock held (so not concurrently with probe or remove), in process context.
pub(crate) trait Recovery: pci::Driver + 'static {
    /// `shutdown`.
    fn shutdown(pdev: &pci::Device<Bound>, data: Pin<&Self::Data<'_>>);
    /// `error_detected`: the error recovery's channel state; the driver's verdict.
    fn error_detected(
        pdev: &pci::Device<Bound>,
        data: Pin<&Self::Data<'_>>,
        state: pci_channel_state_t,
    ) -> pci_ers_result_t;
    /// `mmio_enabled`.
    fn mmio_enabled(pdev: &pci::Device<Bound>, data: Pin<&Self::Data<'_>>) -> pci_ers_result_t;
    /// `slot_reset`.
    fn slot_reset(pdev: &pci::Device<Bound>, data: Pin<&Self::Data<'_>>) -> pci_ers_result_t;
    /// `reset_prepare`.
    fn reset_prepare(pdev: &pci::Device<Bound>, data: Pin<&Self::Data<'_>>);
    /// `reset_done`.
    fn reset_done(pdev: &pci::Device<Bound>, data: Pin<&Self::Data<'_>>);
    /// `resume`.
    fn resume(pdev: &pci::Device<Bound>, data: Pin<&Self::Data<'_>>);
}

/// The registration adapter of `T`: `pci::Adapter<T>` with `T`'s [`Recovery`] callbacks.
pub(crate) struct Adapter<T>(PhantomData<T>);

// SAFETY: the layout is `pci::Adapter`'s for the same driver: `bindings::pci_driver` (a
// `repr(C)` C type embedding its `struct device_driver` at `DEVICE_DRIVER_OFFSET`), and the
// driver data is what `T::probe` makes.
unsafe impl<T: Recovery> DriverLayout for Adapter<T> {
    type DriverType = bindings::pci_driver;
    type DriverData<'bound> = T::Data<'bound>;
    const DEVICE_DRIVER_OFFSET: usize = <pci::Adapter<T> as DriverLayout>::DEVICE_DRIVER_OFFSET;
}

// SAFETY: `register` and `unregister` are `pci::Adapter`'s, so an `unregister` follows only a
// successful `register` of the same driver structure.
unsafe impl<T: Recovery> RegistrationOps for Adapter<T> {
    unsafe fn register(
        pdrv: &Opaque<Self::DriverType>,
        name: &'static CStr,
        module: &'static ThisModule,
    ) -> Result {
        // SAFETY: the structure is being initialised, not registered yet; `pci::Adapter` sets
        // only `name`, `probe`, `remove` and `id_table`, so these stay. The handlers are a
        // promoted constant, in static memory.
        unsafe {
            (*pdrv.get()).shutdown = Some(shutdown_callback::<T>);
            (*pdrv.get()).err_handler = Handlers::<T>::build();
        }
        // SAFETY: the caller's contract is the adapter's.
        unsafe { <pci::Adapter<T> as RegistrationOps>::register(pdrv, name, module) }
    }

    unsafe fn unregister(pdrv: &Opaque<Self::DriverType>) {
        // SAFETY: the caller's contract is the adapter's.
        unsafe { <pci::Adapter<T> as RegistrationOps>::unregister(pdrv) }
    }
}

/// The error handlers of `T`.
struct Handlers<T>(PhantomData<T>);

impl<T: Recovery> Handlers<T> {
    /// The handlers, in static memory (a promoted constant).
    const fn build() -> &'static bindings::pci_error_handlers {
        &Self::HANDLERS
    }

    const HANDLERS: bindings::pci_error_handlers = bindings::pci_error_handlers {
        error_detected: Some(error_detected_callback::<T>),
        mmio_enabled: Some(mmio_enabled_callback::<T>),
        slot_reset: Some(slot_reset_callback::<T>),
        reset_prepare: Some(reset_prepare_callback::<T>),
        reset_done: Some(reset_done_callback::<T>),
        resume: Some(resume_callback::<T>),
        cor_error_detected: None,
    };
}

/// The bound device and its driver data, if the probe stored it.
///
/// # Safety
///
/// `pdev` is a device bound to the driver `T`, and the caller holds its device lock (so it is
/// not unbound meanwhile) for `'a`.
unsafe fn bound<'a, T: Recovery>(
    pdev: *mut bindings::pci_dev,
) -> Option<(&'a pci::Device<Bound>, Pin<&'a T::Data<'a>>)> {
    // SAFETY: `pci::Device` is `#[repr(transparent)]` over the `struct pci_dev`, which is
    // bound for `'a` (caller's contract). The driver data is null or what `pci::Adapter`'s
    // probe stored with `set_drvdata`, the `into_foreign` of a `Pin<KBox<T::Data>>`, which
    // lives until after `remove`; the device lock keeps `remove` away.
    unsafe {
        let p = bindings::dev_get_drvdata(&raw mut (*pdev).dev);
        if p.is_null() {
            return None;
        }
        Some((
            &*pdev.cast::<pci::Device<Bound>>(),
            <Pin<KBox<T::Data<'a>>> as ForeignOwnable>::borrow(p.cast()),
        ))
    }
}

/// `pci_driver.shutdown`.
///
/// # Safety
///
/// Called by the device core for a device bound to `T`, holding its device lock (so not
/// concurrently with `remove`).
unsafe extern "C" fn shutdown_callback<T: Recovery>(pdev: *mut bindings::pci_dev) {
    // SAFETY: as the device core calls it.
    if let Some((dev, d)) = unsafe { bound::<T>(pdev) } {
        T::shutdown(dev, d);
    }
}

/// `reset_prepare`.
///
/// # Safety
///
/// Called by the PCI core, holding the device lock, for a device bound to `T`.
unsafe extern "C" fn reset_prepare_callback<T: Recovery>(pdev: *mut bindings::pci_dev) {
    // SAFETY: as the PCI core calls it.
    if let Some((dev, d)) = unsafe { bound::<T>(pdev) } {
        T::reset_prepare(dev, d);
    }
}

/// `reset_done`.
///
/// # Safety
///
/// As [`reset_prepare_callback`].
unsafe extern "C" fn reset_done_callback<T: Recovery>(pdev: *mut bindings::pci_dev) {
    // SAFETY: as the PCI core calls it.
    if let Some((dev, d)) = unsafe { bound::<T>(pdev) } {
        T::reset_done(dev, d);
    }
}

/// `error_detected`.
///
/// # Safety
///
/// Called by the PCI core's error recovery, holding the device lock, for a device bound to
/// `T`.
unsafe extern "C" fn error_detected_callback<T: Recovery>(
    pdev: *mut bindings::pci_dev,
    state: pci_channel_state_t,
) -> pci_ers_result_t {
    // SAFETY: as the PCI core calls it.
    match unsafe { bound::<T>(pdev) } {
        Some((dev, d)) => T::error_detected(dev, d, state),
        None => bindings::pci_ers_result_PCI_ERS_RESULT_NONE,
    }
}

/// `mmio_enabled`.
///
/// # Safety
///
/// As [`error_detected_callback`].
unsafe extern "C" fn mmio_enabled_callback<T: Recovery>(
    pdev: *mut bindings::pci_dev,
) -> pci_ers_result_t {
    // SAFETY: as the PCI core calls it.
    match unsafe { bound::<T>(pdev) } {
        Some((dev, d)) => T::mmio_enabled(dev, d),
        None => bindings::pci_ers_result_PCI_ERS_RESULT_NONE,
    }
}

/// `slot_reset`.
///
/// # Safety
///
/// As [`error_detected_callback`].
unsafe extern "C" fn slot_reset_callback<T: Recovery>(
    pdev: *mut bindings::pci_dev,
) -> pci_ers_result_t {
    // SAFETY: as the PCI core calls it.
    match unsafe { bound::<T>(pdev) } {
        Some((dev, d)) => T::slot_reset(dev, d),
        None => bindings::pci_ers_result_PCI_ERS_RESULT_NONE,
    }
}

/// `resume`.
///
/// # Safety
///
/// As [`error_detected_callback`].
unsafe extern "C" fn resume_callback<T: Recovery>(pdev: *mut bindings::pci_dev) {
    // SAFETY: as the PCI core calls it.
    if let Some((dev, d)) = unsafe { bound::<T>(pdev) } {
        T::resume(dev, d);
    }
}
