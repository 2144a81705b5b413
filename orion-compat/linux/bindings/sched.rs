// SPDX-License-Identifier: GPL-2.0

//! The current task: sleeping and its capabilities.

use core::ffi::c_int;
use kernel::bindings;

/// Sleeps for at least `ms` milliseconds (`msleep`, jiffy granular; `kernel::time::delay`
/// has only `fsleep`, whose short sleeps are `usleep_range` ones).
///
/// Only in process context with no spin lock held (the kernel reports a sleep in atomic
/// context under `CONFIG_DEBUG_ATOMIC_SLEEP`).
#[inline]
pub(crate) fn msleep(ms: u32) {
    // SAFETY: `msleep` may be called with any duration from a context that may sleep;
    // sleeping in atomic context is a bug the kernel reports, not undefined behaviour.
    unsafe { bindings::msleep(ms) };
}

/// Whether the current task holds CAP_SYS_ADMIN (`capable`, which records its use).
#[inline]
pub(crate) fn sys_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    // CAST: CAP_SYS_ADMIN is 21.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as c_int) }
}
