// SPDX-License-Identifier: GPL-2.0

//! The io_uring command a `uring_cmd` hook is given, and its completion.
//!
//! `<linux/io_uring/cmd.h>` is not among the headers the kernel crate's bindings come from
//! (`struct io_uring_cmd` is opaque there and its helpers are inline), so the few accesses go
//! through `uring_helper.c`, which only forwards.
//!
//! A command is completed exactly once: [`Cmd`] is consumed by [`Cmd::fail`] (io_uring
//! completes it with the errno), [`Cmd::done32`] (completed at once) or [`Cmd::defer`]
//! (completed later through the [`Pending`] half, in the submitter's task).

use core::ffi::{c_int, c_uint, c_void};
use core::ptr;
use kernel::{bindings, prelude::*};

/// `IO_URING_F_NONBLOCK` (`<linux/io_uring_types.h>`; `uring_helper.c` checks these values).
const IO_URING_F_NONBLOCK: c_uint = 0x8000_0000;
/// `IO_URING_F_SQE128`: the ring has 128-byte submission queue entries.
const IO_URING_F_SQE128: c_uint = 1 << 8;
/// `IO_URING_F_CQE32`: the ring has 32-byte completion queue entries.
const IO_URING_F_CQE32: c_uint = 1 << 9;
/// `IORING_URING_CMD_FIXED`: the buffer is a registered one.
const IORING_URING_CMD_FIXED: u32 = 1 << 0;
/// The size of the command a 128-byte SQE carries for NVMe (`struct nvme_uring_cmd`).
pub(crate) const NVME_CMD_LEN: usize = 72;

/// What the helper reports of a command (`struct orion_uring_info` in `uring_helper.c`).
#[repr(C)]
struct Info {
    /// The `struct file` (untyped here: its bindings type is not FFI-safe as a whole).
    file: *mut c_void,
    cmd_op: u32,
    flags: u32,
}

/// The driver's words in a command's private area (`struct orion_uring_pdu`): the state of a
/// deferred command and the function that finishes it.
#[repr(C)]
struct Slot {
    state: *mut c_void,
    finish: Option<unsafe extern "C" fn(*mut c_void, bool, *mut i32, *mut u64)>,
}

extern "C" {
    fn orion_uring_cmd_info(cmd: *const bindings::io_uring_cmd, info: *mut Info);
    fn orion_uring_cmd_copy(cmd: *const bindings::io_uring_cmd, out: *mut u8);
    fn orion_uring_cmd_pdu(cmd: *mut bindings::io_uring_cmd) -> *mut Slot;
    fn orion_uring_cmd_done32(cmd: *mut bindings::io_uring_cmd, ret: i32, res2: u64, flags: c_uint);
    fn orion_uring_cmd_complete_in_task(cmd: *mut bindings::io_uring_cmd);
}

/// An io_uring command being issued, not yet completed.
///
/// # Invariants
///
/// `ptr` is a live command that io_uring has handed to a `uring_cmd` hook with `issue_flags`
/// and that nothing has completed; `info` is what the helper reported of it.
pub(crate) struct Cmd {
    ptr: *mut bindings::io_uring_cmd,
    issue_flags: c_uint,
    info: Info,
}

/// How a `uring_cmd` hook tells io_uring about a command it was given: the hook's return
/// value. Only a [`Cmd`] makes one, once.
pub(crate) struct Issued(c_int);

impl Issued {
    /// The hook's return value.
    pub(super) fn into_ret(self) -> c_int {
        self.0
    }
}

impl Cmd {
    /// The command io_uring hands the hook.
    ///
    /// # Safety
    ///
    /// `ptr` is a live command handed to a `uring_cmd` hook with `issue_flags`, not completed,
    /// and the returned value is the only one made for it.
    pub(super) unsafe fn new(ptr: *mut bindings::io_uring_cmd, issue_flags: c_uint) -> Self {
        let mut info = Info {
            file: ptr::null_mut(),
            cmd_op: 0,
            flags: 0,
        };
        // SAFETY: `ptr` is a live command (caller's contract); `info` is a valid out pointer.
        unsafe { orion_uring_cmd_info(ptr, &mut info) };
        // INVARIANT: caller's contract.
        Self {
            ptr,
            issue_flags,
            info,
        }
    }

    /// The file the command was issued on.
    pub(super) fn file(&self) -> *mut bindings::file {
        self.info.file.cast()
    }

    /// The command's operation (`sqe->cmd_op`).
    pub(crate) fn op(&self) -> u32 {
        self.info.cmd_op
    }

    /// Whether the buffer is a registered one (`IORING_URING_CMD_FIXED`).
    pub(crate) fn fixed_buffer(&self) -> bool {
        self.info.flags & IORING_URING_CMD_FIXED != 0
    }

    /// Whether the ring has 128-byte SQEs and 32-byte CQEs.
    pub(crate) fn big_entries(&self) -> bool {
        let big = IO_URING_F_SQE128 | IO_URING_F_CQE32;
        self.issue_flags & big == big
    }

    /// Whether the command must not block (`IO_URING_F_NONBLOCK`): EAGAIN has io_uring issue
    /// it again from a worker that may.
    pub(crate) fn nonblocking(&self) -> bool {
        self.issue_flags & IO_URING_F_NONBLOCK != 0
    }

    /// A copy of the [`NVME_CMD_LEN`]-byte command in the 128-byte SQE (EOPNOTSUPP when the
    /// ring's SQEs are 64 bytes). The submission ring is shared with user space, so the copy
    /// is what gets checked and used.
    pub(crate) fn read_cmd(&self) -> Result<[u8; NVME_CMD_LEN]> {
        if self.issue_flags & IO_URING_F_SQE128 == 0 {
            return Err(EOPNOTSUPP);
        }
        let mut out = [0u8; NVME_CMD_LEN];
        // SAFETY: a live command (type invariant) with a 128-byte SQE (checked above), whose
        // command area holds `NVME_CMD_LEN` bytes; `out` is that size.
        unsafe { orion_uring_cmd_copy(self.ptr, out.as_mut_ptr()) };
        Ok(out)
    }

    /// io_uring completes the command with `e` (the hook returns the errno).
    pub(crate) fn fail(self, e: Error) -> Issued {
        Issued(e.to_errno())
    }

    /// Completes the command now: `ret` in the CQE's `res`, `res2` in the big CQE's first
    /// extra word (the hook then returns EIOCBQUEUED).
    pub(crate) fn done32(self, ret: i32, res2: u64) -> Issued {
        // SAFETY: a live, uncompleted command (type invariant), completed once (`self` is
        // consumed) with the flags it was issued with, from its issue hook.
        unsafe { orion_uring_cmd_done32(self.ptr, ret, res2, self.issue_flags) };
        Issued(EIOCBQUEUED.to_errno())
    }

    /// Leaves the command to be completed later through the returned [`Pending`] (the hook
    /// returns EIOCBQUEUED).
    pub(crate) fn defer(self) -> (Issued, Pending) {
        (Issued(EIOCBQUEUED.to_errno()), Pending { ptr: self.ptr })
    }
}

/// What finishes a deferred command in the submitter's task.
pub(crate) trait Finish: Send + Sized + 'static {
    /// The completion's `res` and `res2`. `user_ok`: the submitter's memory may be written
    /// (false when io_uring runs the work on the submitter's behalf from a kernel thread,
    /// because the submitter is going away).
    fn finish(this: KBox<Self>, user_ok: bool) -> (i32, u64);
}

/// A deferred command: issued, accepted (EIOCBQUEUED) and not completed.
///
/// # Invariants
///
/// `ptr` is a live command that was deferred and that nothing has completed or queued.
pub(crate) struct Pending {
    ptr: *mut bindings::io_uring_cmd,
}

// SAFETY: a deferred command may be completed from any context (`complete_in_task` queues task
// work, which io_uring allows from interrupt context).
unsafe impl Send for Pending {}

/// Takes back the state of a deferred command and finishes it: `ret` and `res2` for the
/// completion.
///
/// # Safety
///
/// `state` is a `KBox<T>` leaked by [`Pending::complete_in_task`], reclaimed once; `ret` and
/// `res2` are valid for writes.
unsafe extern "C" fn finish_boxed<T: Finish>(
    state: *mut c_void,
    user_ok: bool,
    ret: *mut i32,
    res2: *mut u64,
) {
    // SAFETY: caller's contract.
    let state = unsafe { KBox::from_raw(state.cast::<T>()) };
    let (r, result) = T::finish(state, user_ok);
    // SAFETY: caller's contract.
    unsafe {
        *ret = r;
        *res2 = result;
    }
}

impl Pending {
    /// Queues `state` to finish the command in the submitter's task (any context, interrupt
    /// included): [`Finish::finish`] says how it ended and the completion is posted.
    pub(crate) fn complete_in_task<T: Finish>(self, state: KBox<T>) {
        let p = self.ptr;
        // SAFETY: a live, deferred command (type invariant): its private area is the driver's
        // until it is completed; the task work reads it back once.
        unsafe {
            orion_uring_cmd_pdu(p).write(Slot {
                state: KBox::into_raw(state).cast(),
                finish: Some(finish_boxed::<T>),
            });
            orion_uring_cmd_complete_in_task(p);
        }
    }
}

/// Finishes a deferred command in task context (called by `uring_helper.c`'s task work,
/// which then posts the completion with `ret` and `res2`).
///
/// # Safety
///
/// `ioucmd` is a command queued by [`Pending::complete_in_task`]; called once for it, with
/// valid `ret` and `res2`.
#[no_mangle]
unsafe extern "C" fn orion_nvme_uring_finish(
    ioucmd: *mut bindings::io_uring_cmd,
    user_ok: bool,
    ret: *mut i32,
    res2: *mut u64,
) {
    // SAFETY: `complete_in_task` wrote the slot before queueing this work.
    let slot = unsafe { orion_uring_cmd_pdu(ioucmd).read() };
    match slot.finish {
        // SAFETY: the slot's state is the box `finish` was instantiated for, reclaimed once
        // (this runs once per command); the helper passes its locals for `ret` and `res2`.
        Some(finish) => unsafe { finish(slot.state, user_ok, ret, res2) },
        // SAFETY: the helper passes its locals.
        None => unsafe {
            *ret = EIO.to_errno();
            *res2 = 0;
        },
    }
}
