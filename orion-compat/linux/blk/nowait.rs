// SPDX-License-Identifier: GPL-2.0

//! Passthrough commands that do not wait: a driver-private request started with
//! `blk_execute_rq_nowait` whose end calls back its owner. The generic nodes' io_uring path
//! (`mgmt::generic`) uses them; the ioctls wait with [`super::execute_passthru`].
//!
//! The request travels exactly like an ioctl's (`queue_rq` submits the [`Passthru`], the
//! interrupt reaps it, `complete` or the timeout handler ends it); only its end differs.

use super::{pdu, Passthru, BLK_STS_OK, BLK_STS_TIMEOUT};
use crate::orion::command::Segment;
use crate::orion::spec::sqe::Sqe;
use core::ffi::{c_uint, c_void};
use core::ptr;
use kernel::{bindings, prelude::*};

/// How a command ended: the NVMe status (0 success) and result of a command that reached the
/// device, or the errno of one that never completed (ETIMEDOUT when it timed out).
pub(crate) type Outcome = Result<(u16, u64)>;

/// The owner's callback, run once when the command ends. It runs in whatever context the
/// request ends in (interrupt included), so it must not sleep.
///
/// # Safety
///
/// Called only by this module, with the `ctx` given to [`Command::new`].
pub(crate) type EndFn = unsafe fn(ctx: *mut c_void, outcome: Outcome);

/// A command to start without waiting.
pub(crate) struct Command {
    pt: Passthru,
    end: EndFn,
    ctx: *mut c_void,
}

impl Command {
    /// The command `sqe` moving data through `segs` (coherent memory of the controller),
    /// reporting to `end(ctx, ..)`.
    pub(crate) fn new(sqe: Sqe, segs: &[Segment], end: EndFn, ctx: *mut c_void) -> Self {
        Self {
            pt: Passthru {
                sqe,
                segs: segs.as_ptr(),
                nsegs: segs.len(),
            },
            end,
            ctx,
        }
    }
}

/// Starts `cmd` on the namespace behind `q`. `Ok`: `cmd`'s `end` will be called exactly once.
/// `Err`: the command was not sent and `end` will never be called (EAGAIN when `nowait` and
/// no request could be had at once; ENODEV when the disk is going away).
///
/// # Safety
///
/// 1. `q` is the queue of one of our disks and the caller holds a reference on it
///    (`blk_get_queue`) until `end` has run.
/// 2. `cmd`, and the memory its segments describe, stay valid and in place until `end` has
///    run.
pub(crate) unsafe fn start(
    q: *mut bindings::request_queue,
    cmd: *const Command,
    write: bool,
    timeout_ms: u32,
    nowait: bool,
) -> Result {
    let mut op = if write {
        bindings::req_op_REQ_OP_DRV_OUT
    } else {
        bindings::req_op_REQ_OP_DRV_IN
    };
    let mut flags = 0;
    if nowait {
        op |= 1 << bindings::req_flag_bits___REQ_NOWAIT;
        flags = bindings::BLK_MQ_REQ_NOWAIT;
    }
    // SAFETY: `q` is alive (condition 1); a dying queue refuses with ENODEV.
    let rq = kernel::error::from_err_ptr(unsafe { bindings::blk_mq_alloc_request(q, op, flags) })?;
    // SAFETY:
    // 1. `rq` is a fresh request of our tag set, ours until it is handed to blk-mq below.
    // 2. `cmd` outlives the request (condition 2): `queue_rq` reads its `Passthru` while the
    //    request is in flight, `end_io` reads `end` and `ctx` before calling `end`.
    unsafe {
        let p = pdu(rq);
        p.passthru = &raw const (*cmd).pt;
        p.nvme_status = 0;
        p.result = 0;
        if timeout_ms != 0 {
            // CAST: jiffies for at most an hour fit a u32.
            (*rq).timeout = bindings::__msecs_to_jiffies(timeout_ms) as c_uint;
        }
        (*rq).end_io = Some(end_io);
        (*rq).end_io_data = cmd.cast_mut().cast();
        bindings::blk_execute_rq_nowait(rq, false);
    }
    Ok(())
}

/// The request's end: reads how the command ended and tells its owner; blk-mq then frees the
/// request.
///
/// # Safety
///
/// Called by blk-mq once, for a request started by [`start`].
unsafe extern "C" fn end_io(
    rq: *mut bindings::request,
    sts: bindings::blk_status_t,
    _iob: *const bindings::io_comp_batch,
) -> bindings::rq_end_io_ret {
    // SAFETY: `start` set `end_io_data` to a `Command` that lives until its `end` has run.
    let (end, ctx, outcome) = unsafe {
        let cmd = (*rq).end_io_data.cast::<Command>();
        let p = pdu(rq);
        let outcome = match sts {
            BLK_STS_OK => Ok((0, p.result)),
            BLK_STS_TIMEOUT => Err(ETIMEDOUT),
            _ if p.nvme_status != 0 => Ok((p.nvme_status, p.result)),
            s => Err(Error::from_errno(bindings::blk_status_to_errno(s))),
        };
        // The tag's next user is not a passthrough command until it says so.
        p.passthru = ptr::null();
        ((*cmd).end, (*cmd).ctx, outcome)
    };
    // SAFETY: `ctx` is the one given with `end`; nothing of `cmd` is touched after this (its
    // owner may free it at once).
    unsafe { end(ctx, outcome) };
    bindings::rq_end_io_ret_RQ_END_IO_FREE
}
