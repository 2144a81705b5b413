// SPDX-License-Identifier: GPL-2.0

//! A bound PCI device for code that runs outside the driver's callbacks (work items, file
//! operations, the block layer's setup after a reset): usable for as long as the device stays
//! bound, and refused with ENODEV once it is not.
//!
//! The kernel crate hands out `&Device<Bound>` only inside probe and the other callbacks, for
//! their duration. A driver whose state lives in reference-counted objects (shared with open
//! files, work items and interrupt handlers) needs the device after those return, and needs
//! to know when it has gone. [`BoundPci`] holds a reference on the device and a flag that a
//! device-managed action clears while the device is being unbound; [`BoundPci::with`] lends
//! the bound device to a closure with the flag's lock held, so the unbind waits for it.

use core::ptr;
use kernel::{
    bindings,
    device::Bound,
    devres, new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

/// A PCI device and whether it is still bound to this driver.
///
/// # Invariants
///
/// `open` is true from [`BoundPci::new`] until the device-managed action registered there
/// runs, which happens while the device is being unbound from the driver that made it, before
/// the unbind completes. While `open` is held locked and true, the device is therefore bound.
#[pin_data]
pub(crate) struct BoundPci {
    pdev: ARef<pci::Device>,
    #[pin]
    open: Mutex<bool>,
}

/// The device-managed action of a [`BoundPci`]: closes it when the device is unbound.
struct Closer(Arc<BoundPci>);

impl Drop for Closer {
    fn drop(&mut self) {
        // Waits for a running `with` to finish.
        *self.0.open.lock() = false;
    }
}

impl BoundPci {
    /// `pdev`, usable through [`Self::with`] until it is unbound.
    pub(crate) fn new(pdev: &pci::Device<Bound>) -> Result<Arc<Self>> {
        let this = Arc::pin_init(
            pin_init!(Self {
                pdev: pdev.into(),
                open <- new_mutex!(true, "orion_nvme::bound"),
            }),
            GFP_KERNEL,
        )?;
        // INVARIANT: registered on the bound device: the action runs when it is unbound (or at
        // once, if registering fails, and then the error is returned and `this` goes).
        devres::register(pdev.as_ref(), Closer(this.clone()), GFP_KERNEL)?;
        Ok(this)
    }

    /// Runs `f` on the bound device; ENODEV (and `f` not run) once it has been unbound. The
    /// unbind waits for `f` to return, so keep it short, and never wait in it for anything
    /// the unbind does. May sleep.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&pci::Device<Bound>) -> R) -> Result<R> {
        let open = self.open.lock();
        if !*open {
            return Err(ENODEV);
        }
        let p = ptr::from_ref::<pci::Device>(&self.pdev).cast::<pci::Device<Bound>>();
        // SAFETY: `pci::Device` is `#[repr(transparent)]` over the C device whatever its
        // context, and `ARef` keeps that alive. It is bound while `open` is locked and true
        // (type invariant), which lasts until `open` is dropped below, after `f` returned; `f`
        // cannot keep the reference past its call (it is only lent for the call).
        let r = f(unsafe { &*p });
        drop(open);
        Ok(r)
    }

    /// The device, for what needs no binding (its identity, logging).
    pub(crate) fn device(&self) -> &pci::Device {
        &self.pdev
    }

    /// The `struct pci_dev`, for C calls that need a bound device in contexts that cannot
    /// sleep (mapping a request's data in the block layer's `queue_rq`). Making it is safe;
    /// the caller's `unsafe` block must show the device is bound at the time (for example:
    /// the call happens on a queue the driver tears down before the device is unbound).
    pub(crate) fn as_raw(&self) -> *mut bindings::pci_dev {
        ptr::from_ref::<pci::Device>(&self.pdev)
            .cast::<bindings::pci_dev>()
            .cast_mut()
    }
}
