// SPDX-License-Identifier: GPL-2.0

//! Request queue references and driver-private requests started without waiting
//! (`blk_execute_rq_nowait`), whose end hands their owner back.
//!
//! `P` is the driver's per-request data (the tag set's `cmd_size`): a [`QueueRef<P>`] is a
//! queue whose every request carries an initialised `P`, which is what lets [`DrvRequest`]
//! hand it out.

use core::ffi::c_uint;
use core::marker::PhantomData;
use kernel::{bindings, prelude::*};

/// A reference on a request queue (`blk_get_queue`): the queue's memory stays while it is
/// held. A queue whose disk is being removed is dying and refuses new requests.
///
/// # Invariants
///
/// `q` is a queue this value holds one reference on, whose tag set reserves an initialised
/// `P` after every request.
pub(crate) struct QueueRef<P> {
    q: *mut bindings::request_queue,
    _pdu: PhantomData<fn() -> P>,
}

// SAFETY: a queue reference may be used and dropped from any thread.
unsafe impl<P> Send for QueueRef<P> {}
// SAFETY: shared access only reads the pointer; the queue's own locking covers the rest.
unsafe impl<P> Sync for QueueRef<P> {}

impl<P> QueueRef<P> {
    /// Takes a reference on `q`; `None` when the queue is dying.
    ///
    /// # Safety
    ///
    /// `q` is a live request queue (for the call) whose tag set reserves an initialised `P`
    /// after every request.
    pub(crate) unsafe fn get(q: *mut bindings::request_queue) -> Option<Self> {
        // SAFETY: caller's contract.
        if unsafe { bindings::blk_get_queue(q) } {
            // INVARIANT: the reference was just taken; the `P` is the caller's contract.
            Some(Self {
                q,
                _pdu: PhantomData,
            })
        } else {
            None
        }
    }

    /// The queue, for the C calls that take it; valid while `self` lives.
    pub(crate) fn as_ptr(&self) -> *mut bindings::request_queue {
        self.q
    }

    /// Another reference on the queue; `None` when it is dying.
    pub(crate) fn try_clone(&self) -> Option<Self> {
        // SAFETY: the queue is live while `self` holds its reference (type invariant), and its
        // requests carry a `P`.
        unsafe { Self::get(self.q) }
    }

    /// The queue, borrowed while `self` holds its reference.
    #[inline]
    pub(crate) fn borrow(&self) -> Queue<'_> {
        // SAFETY: the queue is live while `self` holds its reference (type invariant).
        unsafe { Queue::new(self.q) }
    }
}

/// A request queue that is live for `'a`.
///
/// # Invariants
///
/// `q` is a live request queue for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct Queue<'a> {
    q: *mut bindings::request_queue,
    _live: PhantomData<&'a bindings::request_queue>,
}

impl<'a> Queue<'a> {
    /// Borrows `q`.
    ///
    /// # Safety
    ///
    /// `q` is a live request queue for `'a`.
    #[inline]
    pub(crate) unsafe fn new(q: *mut bindings::request_queue) -> Self {
        // INVARIANT: the caller's contract.
        Self {
            q,
            _live: PhantomData,
        }
    }

    /// The queue, for the C calls that take it; valid for `'a`.
    #[inline]
    pub(crate) fn as_ptr(self) -> *mut bindings::request_queue {
        self.q
    }

    /// The queue's logical block size, in bytes.
    #[inline]
    pub(crate) fn logical_block_size(self) -> u32 {
        // SAFETY: the queue is live (type invariant); the limits are read as the block layer's
        // own readers do (`queue_logical_block_size`), without a lock.
        unsafe { (*self.q).limits.logical_block_size }
    }

    /// The queue's `queuedata`, as the integer its disk was made with.
    #[inline]
    pub(crate) fn queuedata(self) -> usize {
        // SAFETY: the queue is live (type invariant); `queuedata` is set when it is made.
        unsafe { (*self.q).queuedata }.addr()
    }

    /// The queue's request timeout, in jiffies.
    pub(crate) fn rq_timeout(self) -> u32 {
        // SAFETY: the queue is live (type invariant); read as the block layer's own readers
        // do, without a lock.
        unsafe { (*self.q).rq_timeout }
    }

    /// Dispatches the requests on the queue's requeue list (`blk_mq_kick_requeue_list`).
    pub(crate) fn kick_requeue_list(self) {
        // SAFETY: the queue is live (type invariant).
        unsafe { bindings::blk_mq_kick_requeue_list(self.q) };
    }
}

impl<P> Drop for QueueRef<P> {
    fn drop(&mut self) {
        // SAFETY: the reference was taken with `blk_get_queue` (type invariant), dropped once.
        unsafe { bindings::blk_put_queue(self.q) };
    }
}

/// The errno for a `blk_status_t` (`blk_status_to_errno`).
pub(crate) fn status_to_errno(s: bindings::blk_status_t) -> Error {
    // SAFETY: a plain table lookup.
    Error::from_errno(unsafe { bindings::blk_status_to_errno(s) })
}

/// What a driver-private request's end calls: its owner, with the request's data and
/// status. It runs in whatever context the request ends in (interrupt included), so it must
/// not sleep.
pub(crate) trait EndIo<P>: Send + Sized + 'static {
    /// The request ended with `status`; blk-mq frees it after this returns.
    fn end(this: KBox<Self>, pdu: &mut P, status: bindings::blk_status_t);
}

/// A driver-private request (`REQ_OP_DRV_IN` or `REQ_OP_DRV_OUT`), allocated and not started.
/// Dropping it frees it.
///
/// # Invariants
///
/// `rq` is a request allocated by `blk_mq_alloc_request`, owned by this value, carrying an
/// initialised `P`. An allocated request keeps its queue entered (`q_usage_counter`), so the
/// queue stays until the request is freed: removing the disk freezes the queue and waits.
pub(crate) struct DrvRequest<P> {
    rq: *mut bindings::request,
    _pdu: PhantomData<fn() -> P>,
}

// SAFETY: a request that is not started may be filled, started or freed from any thread.
unsafe impl<P> Send for DrvRequest<P> {}

impl<P> DrvRequest<P> {
    /// Allocates a request on `q`: data to the device if `write`. With `nowait`, the request
    /// is `REQ_NOWAIT` and EAGAIN comes at once when no tag is free; ENODEV when the queue is
    /// dying.
    pub(crate) fn alloc(q: &QueueRef<P>, write: bool, nowait: bool) -> Result<Self> {
        // SAFETY: `q` holds a reference on a live queue whose requests carry a `P` (type
        // invariant of `QueueRef`).
        unsafe { Self::alloc_on(q.as_ptr(), write, nowait) }
    }

    /// As [`Self::alloc`], on the queue `q`.
    ///
    /// # Safety
    ///
    /// `q` is a live request queue (for the call) whose tag set reserves an initialised `P`
    /// after every request.
    pub(crate) unsafe fn alloc_on(
        q: *mut bindings::request_queue,
        write: bool,
        nowait: bool,
    ) -> Result<Self> {
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
        // SAFETY: `q` is live (caller's contract); a dying queue refuses with ENODEV.
        let rq =
            kernel::error::from_err_ptr(unsafe { bindings::blk_mq_alloc_request(q, op, flags) })?;
        // INVARIANT: a fresh request of `q`'s tag set, which reserves a `P` (caller's
        // contract).
        Ok(Self {
            rq,
            _pdu: PhantomData,
        })
    }

    /// The request's driver data.
    pub(crate) fn pdu(&mut self) -> &mut P {
        // SAFETY: the tag set reserves an initialised `P` after the request (type invariant);
        // the request is ours alone until started.
        unsafe { &mut *bindings::blk_mq_rq_to_pdu(self.rq).cast::<P>() }
    }

    /// Times the request out after `ms` milliseconds (0: the queue's default).
    pub(crate) fn set_timeout_ms(&mut self, ms: u32) {
        if ms != 0 {
            // SAFETY: a plain conversion.
            // CAST: jiffies for at most an hour fit a u32.
            let j = unsafe { bindings::__msecs_to_jiffies(ms) } as c_uint;
            // SAFETY: the request is ours alone until started (type invariant).
            unsafe { (*self.rq).timeout = j };
        }
    }

    /// Runs the request and waits for it to end (`blk_execute_rq`), then gives `f` its data
    /// and status, then frees it. Sleeps.
    pub(crate) fn execute<R>(mut self, f: impl FnOnce(&mut P, bindings::blk_status_t) -> R) -> R {
        // SAFETY: the request is ours and not started (type invariant), started once here
        // (`self` is consumed); once ended, blk-mq leaves it to us to free (no `end_io`),
        // which `drop` does below.
        let sts = unsafe { bindings::blk_execute_rq(self.rq, false) };
        f(self.pdu(), sts)
    }

    /// Starts the request (`blk_execute_rq_nowait`); when it ends, `E::end(owner, ..)` runs
    /// once and the request is freed.
    pub(crate) fn execute_nowait<E: EndIo<P>>(self, owner: KBox<E>) {
        let rq = self.rq;
        core::mem::forget(self);
        // SAFETY:
        // 1. `rq` is ours (type invariant) and handed to blk-mq here, once (`self` is
        //    forgotten, so it is not freed by `drop`).
        // 2. `end_io::<P, E>` gets `end_io_data`, the leaked owner, which it takes back once.
        unsafe {
            (*rq).end_io = Some(end_io::<P, E>);
            (*rq).end_io_data = KBox::into_raw(owner).cast();
            bindings::blk_execute_rq_nowait(rq, false);
        }
    }
}

impl<P> Drop for DrvRequest<P> {
    fn drop(&mut self) {
        // SAFETY: an allocated request that was never started (type invariant).
        unsafe { bindings::blk_mq_free_request(self.rq) };
    }
}

/// A started request's end: hands the owner back; blk-mq then frees the request.
///
/// # Safety
///
/// Called by blk-mq once, for a request started by [`DrvRequest::execute_nowait`] with an
/// owner of type `E` on a queue whose requests carry a `P`.
unsafe extern "C" fn end_io<P, E: EndIo<P>>(
    rq: *mut bindings::request,
    sts: bindings::blk_status_t,
    _iob: *const bindings::io_comp_batch,
) -> bindings::rq_end_io_ret {
    // SAFETY: caller's contract: `end_io_data` is the leaked `KBox<E>`, reclaimed once here;
    // the request carries a `P`, which blk-mq no longer touches while the end runs.
    let (owner, pdu) = unsafe {
        (
            KBox::from_raw((*rq).end_io_data.cast::<E>()),
            &mut *bindings::blk_mq_rq_to_pdu(rq).cast::<P>(),
        )
    };
    E::end(owner, pdu, sts);
    bindings::rq_end_io_ret_RQ_END_IO_FREE
}
