// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! Locks and shared values of the Orion driver API on the kernel's `SpinLockIrq`, `Mutex` and
//! `Arc`.

use crate::error::LinuxError;
use crate::orion_compat::sync::{Lock, Locks, Share};
use kernel::{
    alloc::KBox,
    error::code,
    new_mutex, new_spinlock_irq,
    prelude::*,
    sync::{Arc, Mutex, SpinLockIrq, UniqueArc},
};

/// The kernel's locks and reference counting.
pub(crate) struct LinuxSync;

/// The protected value, movable: the Orion `Lock` hands out `&mut T` and never pins `T`, so
/// the kernel lock's guard may give mutable access whatever `T` is.
struct Unpinned<T>(T);

impl<T> Unpin for Unpinned<T> {}

/// An IRQ-safe spin lock (interrupts are disabled while it is held).
pub(crate) struct LinuxSpin<T>(Pin<KBox<SpinLockIrq<Unpinned<T>>>>);

/// A sleeping mutex; never taken from interrupt context.
pub(crate) struct LinuxMutex<T>(Pin<KBox<Mutex<Unpinned<T>>>>);

impl<T: Send> Lock<T> for LinuxSpin<T> {
    const IRQ_SAFE: bool = true;

    fn lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.lock();
        f(&mut guard.0)
    }
}

impl<T: Send> LinuxMutex<T> {
    /// A mutex in its own lockdep class (`key` from `static_lock_class!()` at the call
    /// site): the glue nests some of its mutexes, which lockdep would otherwise take for
    /// recursive locking of the one class `Locks::new_mutex` gives them all.
    pub(crate) fn with_class(
        value: T,
        name: &'static CStr,
        key: Pin<&'static kernel::sync::LockClassKey>,
    ) -> Result<Self> {
        let slot = KBox::<Mutex<Unpinned<T>>>::new_uninit(GFP_KERNEL)?;
        match slot.write_pin_init(Mutex::new(Unpinned(value), name, key)) {
            Ok(lock) => Ok(LinuxMutex(lock)),
            Err(never) => match never {},
        }
    }
}

impl<T: Send> LinuxMutex<T> {
    /// Runs `f` under the lock if it is free right now; `None` (and `f` not run) if it is held.
    /// For callers that must not sleep waiting for it (io_uring's non-blocking issue).
    pub(crate) fn try_lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut guard = self.0.try_lock()?;
        Some(f(&mut guard.0))
    }
}

impl<T: Send> Lock<T> for LinuxMutex<T> {
    const IRQ_SAFE: bool = false;

    fn lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut guard = self.0.lock();
        f(&mut guard.0)
    }
}

impl Locks for LinuxSync {
    type Error = LinuxError;
    type SpinLock<T: Send> = LinuxSpin<T>;
    type Mutex<T: Send> = LinuxMutex<T>;

    fn new_spin_lock<T: Send>(&self, value: T) -> Result<LinuxSpin<T>, (LinuxError, T)> {
        // Allocate first, so that a failure can hand the value back untouched.
        let slot = match KBox::<SpinLockIrq<Unpinned<T>>>::new_uninit(GFP_KERNEL) {
            Ok(slot) => slot,
            Err(_) => return Err((LinuxError(code::ENOMEM), value)),
        };
        match slot.write_pin_init(new_spinlock_irq!(Unpinned(value), "orion_nvme")) {
            Ok(lock) => Ok(LinuxSpin(lock)),
            Err(never) => match never {},
        }
    }

    fn new_mutex<T: Send>(&self, value: T) -> Result<LinuxMutex<T>, (LinuxError, T)> {
        let slot = match KBox::<Mutex<Unpinned<T>>>::new_uninit(GFP_KERNEL) {
            Ok(slot) => slot,
            Err(_) => return Err((LinuxError(code::ENOMEM), value)),
        };
        match slot.write_pin_init(new_mutex!(Unpinned(value), "orion_nvme")) {
            Ok(lock) => Ok(LinuxMutex(lock)),
            Err(never) => match never {},
        }
    }
}

impl Share for LinuxSync {
    type Error = LinuxError;
    type Shared<T: Send + Sync + 'static> = Arc<T>;

    fn share<T: Send + Sync + 'static>(&self, value: T) -> Result<Arc<T>, (LinuxError, T)> {
        match UniqueArc::<T>::new_uninit(GFP_KERNEL) {
            Ok(slot) => Ok(slot.write(value).into()),
            Err(_) => Err((LinuxError(code::ENOMEM), value)),
        }
    }
}
