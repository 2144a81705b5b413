// SPDX-License-Identifier: GPL-2.0

//! Cancelling work items whose queued runs hold an [`Arc`] (`kernel::workqueue` enqueues them
//! but cannot cancel them), and the kernel's default unbound workqueue.

use kernel::bindings;
use kernel::sync::Arc;
use kernel::workqueue::{self, HasDelayedWork, HasWork, Work, WorkItem};

/// The kernel's default unbound workqueue, `system_dfl_wq` (the kernel crate's `system()` is
/// the per-CPU queue 7.3 deprecates).
#[inline]
pub(crate) fn system_dfl() -> &'static workqueue::Queue {
    // SAFETY: `system_dfl_wq` is created at boot, before any module loads, and never freed.
    unsafe { workqueue::Queue::from_raw(bindings::system_dfl_wq) }
}

/// Cancels `this`'s work item `ID` if it is queued, releasing the reference its queued run
/// held, and waits for a run in progress to end (`cancel_work_sync`).
pub(crate) fn cancel_sync<T, const ID: u64>(this: &Arc<T>)
where
    T: HasWork<T, ID> + WorkItem<ID, Pointer = Arc<T>>,
{
    let ptr = Arc::as_ptr(this).cast_mut();
    // SAFETY: `ptr` points at a live `T` (the `Arc` holds it); its work item is initialised
    // (a `T` is only made with it), and `cancel_work_sync` is safe on any initialised item.
    let pending = unsafe { bindings::cancel_work_sync(Work::raw_get(T::raw_get_work(ptr))) };
    if pending {
        // SAFETY: a queued run holds one reference, handed over by `enqueue` (the `Arc`
        // `RawWorkItem` implementation leaks it with `Arc::into_raw`); the run was cancelled,
        // so that reference is released here, once.
        drop(unsafe { Arc::from_raw(ptr.cast_const()) });
    }
}

/// Cancels `this`'s delayed work item `ID` if it is queued (pending or its timer running),
/// releasing the reference its queued run held, and waits for a run in progress to end
/// (`cancel_delayed_work_sync`).
pub(crate) fn cancel_delayed_sync<T, const ID: u64>(this: &Arc<T>)
where
    T: HasDelayedWork<T, ID> + WorkItem<ID, Pointer = Arc<T>>,
{
    let ptr = Arc::as_ptr(this).cast_mut();
    // SAFETY: `ptr` points at a live `T`; `HasDelayedWork` promises its work item is the
    // `work` of a `struct delayed_work`, which starts with it, so the work pointer is the
    // delayed work's; `cancel_delayed_work_sync` is safe on any initialised item.
    let pending = unsafe {
        let work = Work::raw_get(T::raw_get_work(ptr));
        bindings::cancel_delayed_work_sync(work.cast())
    };
    if pending {
        // SAFETY: as in `cancel_sync`: the cancelled run's reference (from `enqueue_delayed`)
        // is released here, once.
        drop(unsafe { Arc::from_raw(ptr.cast_const()) });
    }
}
