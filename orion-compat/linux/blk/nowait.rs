// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! Passthrough commands that do not wait: a driver-private request started with
//! `blk_execute_rq_nowait` whose end calls back its owner. The generic nodes' io_uring path
//! (`mgmt::generic`) uses them; the ioctls wait with [`super::execute_passthru`].
//!
//! The request travels exactly like an ioctl's (`queue_rq` submits the [`Passthru`], the
//! interrupt reaps it, `complete` or the timeout handler ends it); only its end differs.

use super::{Passthru, Pdu, BLK_STS_OK, BLK_STS_TIMEOUT};
use crate::bindings::blk::{status_to_errno, DrvRequest, EndIo};
use crate::orion::command::Segment;
use crate::orion::spec::sqe::Sqe;
use core::ptr;
use kernel::{bindings, prelude::*};

/// A reference on one of our disks' request queues: its requests carry a [`Pdu`].
pub(crate) type QueueRef = crate::bindings::blk::QueueRef<Pdu>;

/// How a command ended: the NVMe status (0 success) and result of a command that reached the
/// device, or the errno of one that never completed (ETIMEDOUT when it timed out).
pub(crate) type Outcome = Result<(u16, u64)>;

/// A command to start without waiting: what `queue_rq` submits for the request.
pub(crate) struct Command {
    pt: Passthru,
}

impl Command {
    /// The command `sqe` moving data through `segs` (coherent memory of the controller), which
    /// must stay where they are until the command has ended (the owner keeps them).
    pub(crate) fn new(sqe: Sqe, segs: &[Segment]) -> Self {
        Self {
            pt: Passthru {
                sqe,
                segs: segs.as_ptr(),
                nsegs: segs.len(),
            },
        }
    }
}

/// What owns a started command: it keeps the command and the memory its segments describe
/// until [`Owner::ended`], which the request's end calls once, in whatever context the request
/// ends in (interrupt included), so it must not sleep.
pub(crate) trait Owner: Send + Sized + 'static {
    /// The command.
    fn command(&self) -> &Command;

    /// The command ended with `outcome`.
    fn ended(this: KBox<Self>, outcome: Outcome);
}

/// A request for a command on one of our disks, not started yet.
pub(crate) struct Request(DrvRequest<Pdu>);

impl Request {
    /// A request on the namespace behind `q`: data to the device if `write`, timing out after
    /// `timeout_ms` (0: the default). EAGAIN when `nowait` and no request could be had at
    /// once; ENODEV when the disk is going away.
    pub(crate) fn alloc(q: &QueueRef, write: bool, timeout_ms: u32, nowait: bool) -> Result<Self> {
        let mut rq = DrvRequest::alloc(q, write, nowait)?;
        let p = rq.pdu();
        p.nvme_status = 0;
        p.result = 0;
        rq.set_timeout_ms(timeout_ms);
        Ok(Self(rq))
    }

    /// Starts `owner`'s command; its [`Owner::ended`] will be called exactly once.
    pub(crate) fn start<O: Owner>(mut self, owner: KBox<O>) {
        // The owner is boxed: its command stays in place while the request is out, which is
        // what `queue_rq` reads (and `end` clears before handing the owner back).
        self.0.pdu().passthru = &raw const owner.command().pt;
        self.0.execute_nowait(owner);
    }
}

impl<O: Owner> EndIo<Pdu> for O {
    /// The request's end: reads how the command ended and tells its owner; blk-mq then frees
    /// the request.
    fn end(this: KBox<Self>, p: &mut Pdu, sts: bindings::blk_status_t) {
        let outcome = match sts {
            BLK_STS_OK => Ok((0, p.result)),
            BLK_STS_TIMEOUT => Err(ETIMEDOUT),
            _ if p.nvme_status != 0 => Ok((p.nvme_status, p.result)),
            s => Err(status_to_errno(s)),
        };
        // The tag's next user is not a passthrough command until it says so.
        p.passthru = ptr::null();
        O::ended(this, outcome);
    }
}
