//! The block side: hardware queues, tags, requests, their completion, and disks.
//!
//! The platform's block layer hands the core requests through a [`BlockHandler`] (on Linux:
//! blk-mq's `queue_rq`), already DMA-mapped into bus-address [`Segment`]s. The core completes
//! each accepted request exactly once through [`BlockQueues::complete`], by hardware queue
//! and tag, so that it never has to store a platform request object: for NVMe the tag is the
//! command identifier.
//!
//! Hardware queues and tags are shared by all the disks (namespaces) of a controller, as one
//! blk-mq tag set is; each [`BlockRequest`] says which disk it is for.
//!
//! A controller reset stops dispatch with [`BlockQueues::quiesce`], hands the requests the
//! dead controller will never answer back with [`BlockQueues::requeue`], and restarts
//! dispatch with [`BlockQueues::resume`]; if the controller came back with a different
//! number of I/O queues, [`BlockQueues::set_hw_queues`] then changes how many hardware queues
//! are in service.

use crate::orion_compat::dma::Segment;
use crate::orion_compat::time::Duration;
use crate::orion_compat::{Error, ErrorKind};

/// The index of a hardware queue, `0 .. QueueConfig::hw_queues`. Requests are only
/// dispatched on the queues in service, `0 .. BlockQueues::hw_queues_in_service()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HwQueue(pub u16);

/// A request's tag, unique among the requests in flight on one hardware queue, in
/// `0 .. QueueConfig::depth`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(pub u16);

/// The identifier the core gave a disk in [`Block::add_disk`] (for NVMe: the NSID).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DiskId(pub u32);

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOp {
    /// Read `blocks` blocks at `lba` into the segments.
    Read,
    /// Write `blocks` blocks at `lba` from the segments.
    Write,
    /// Make every completed write durable. No range, no segments.
    Flush,
    /// Deallocate `blocks` blocks at `lba`. No segments.
    Discard,
    /// Write zeroes to `blocks` blocks at `lba`. No segments.
    WriteZeroes,
}

impl BlockOp {
    /// Whether the operation moves data through segments.
    pub const fn has_data(self) -> bool {
        matches!(self, BlockOp::Read | BlockOp::Write)
    }
}

/// A request as the core receives it, valid for the duration of the call it is passed to.
///
/// # Contract (what the platform promises)
///
/// - `lba` and `blocks` are in units of the disk's logical block size; `lba + blocks` does not
///   pass the disk's capacity. Flush has both zero; every other operation has `blocks > 0`.
/// - For [`BlockOp::Read`] and [`BlockOp::Write`] the segments' lengths add up to exactly
///   `blocks` logical blocks and respect the disk's [`DiskGeometry`] (see
///   [`BlockRequest::check`]); other operations have no segments.
/// - The segments stay mapped until the request is completed.
/// - `fua` is only set on writes, and only if the disk was registered with `fua`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockRequest<'a> {
    /// The hardware queue the request was issued on.
    pub hwq: HwQueue,
    /// Its tag on that queue.
    pub tag: Tag,
    /// The disk it is for.
    pub disk: DiskId,
    /// What it asks for.
    pub op: BlockOp,
    /// The first logical block.
    pub lba: u64,
    /// The number of logical blocks.
    pub blocks: u32,
    /// Force Unit Access: the write is durable when it completes.
    pub fua: bool,
    /// The data buffer, as the device addresses it.
    pub segments: &'a [Segment],
}

impl BlockRequest<'_> {
    /// Checks the request against the disk's geometry, as the platform promises it holds.
    ///
    /// Returns [`ErrorKind::OutOfRange`] on the first broken rule. The platform's own
    /// implementations and tests use this; the core may use it to distrust its platform.
    pub fn check(&self, geometry: &DiskGeometry) -> Result<(), ErrorKind> {
        let oor = Err(ErrorKind::OutOfRange);
        let end = self.lba.checked_add(u64::from(self.blocks));
        if end.is_none_or(|end| end > geometry.capacity) {
            return oor;
        }
        if (self.op == BlockOp::Flush) != (self.blocks == 0)
            || (self.op == BlockOp::Flush && self.lba != 0)
        {
            return oor;
        }
        if self.fua && (self.op != BlockOp::Write || !geometry.fua) {
            return oor;
        }
        if !self.op.has_data() {
            return if self.segments.is_empty() {
                Ok(())
            } else {
                oor
            };
        }
        let n = self.segments.len();
        if n == 0 || n > usize::from(geometry.max_segments) {
            return oor;
        }
        let boundary = u64::from(geometry.virt_boundary_mask);
        let align = u64::from(geometry.dma_alignment_mask);
        let mut total: u64 = 0;
        for (i, seg) in self.segments.iter().enumerate() {
            let start = seg.addr.as_u64();
            let len = u64::from(seg.len);
            let Some(seg_end) = start.checked_add(len) else {
                return oor;
            };
            if seg.len == 0 || seg.len > geometry.max_segment_size {
                return oor;
            }
            if start & align != 0 || len & align != 0 {
                return oor;
            }
            if (i > 0 && start & boundary != 0) || (i + 1 < n && seg_end & boundary != 0) {
                return oor;
            }
            total = total.saturating_add(len);
        }
        let expected = u64::from(self.blocks).checked_mul(u64::from(geometry.logical_block_size));
        if expected != Some(total) || total > u64::from(geometry.max_transfer) {
            return oor;
        }
        Ok(())
    }
}

/// How a request ended, as the platform's block layer understands it.
///
/// The core maps NVMe status codes onto these (as the C driver's `nvme_error_status` does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Success.
    Ok,
    /// The operation is not supported.
    NotSupported,
    /// The request timed out.
    Timeout,
    /// The device is out of space (or capacity was exceeded).
    NoSpace,
    /// The path to the device failed; another path may work.
    Transport,
    /// The device refused the request; retrying will not help.
    Target,
    /// A reservation conflict.
    ReservationConflict,
    /// A media error (unrecovered read, write fault).
    Medium,
    /// End-to-end protection information did not match.
    Protection,
    /// Out of a platform resource; try again later.
    Resource,
    /// Out of a device resource; try again when a request on the device completes.
    DeviceResource,
    /// Any other I/O error.
    IoError,
}

/// What [`BlockQueues::set_hw_queues`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HwQueueChange {
    /// The number of hardware queues in service before the call.
    pub from: u16,
    /// The number in service now.
    pub to: u16,
    /// Requests were still in flight when the bound passed, so `on_stuck` was called.
    pub stuck: bool,
}

/// The shape of a controller's hardware queues, shared by all its disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The number of hardware queues (for NVMe: I/O queue pairs); at least 1.
    pub hw_queues: u16,
    /// Tags per hardware queue: the most requests in flight on one queue; at least 1.
    pub depth: u16,
}

/// Deallocation limits of a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscardLimits {
    /// The most logical blocks one discard request may cover; at least 1.
    pub max_blocks: u32,
    /// The deallocation granularity, in logical blocks; at least 1.
    pub granularity: u32,
}

/// A disk's geometry and limits, given when it is registered.
///
/// Sizes are in bytes unless the field says blocks, which are logical blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskGeometry {
    /// The logical block size: a power of two, at least 512. Platforms may refuse sizes
    /// larger than their page size with
    /// [`ErrorKind::Unsupported`].
    pub logical_block_size: u32,
    /// The physical block size: a power of two, at least the logical block size.
    pub physical_block_size: u32,
    /// The capacity, in logical blocks.
    pub capacity: u64,
    /// The most bytes one read or write may move; at least one logical block.
    pub max_transfer: u32,
    /// The most segments one request may have; at least 1.
    pub max_segments: u16,
    /// The most bytes one segment may have; at least 512.
    pub max_segment_size: u32,
    /// Segments must not leave gaps at this boundary (for PRPs: memory page size - 1): every
    /// segment but the first starts on it and every segment but the last ends on it. Zero for
    /// no such rule; otherwise one less than a power of two.
    pub virt_boundary_mask: u32,
    /// Segment addresses and lengths are multiples of this plus one (for NVMe: 3, dword
    /// alignment); one less than a power of two.
    pub dma_alignment_mask: u32,
    /// Deallocation support, if any.
    pub discard: Option<DiscardLimits>,
    /// The most logical blocks one write-zeroes request may cover; 0 if not supported.
    pub max_write_zeroes_blocks: u32,
    /// The disk has a volatile write cache, so flushes are needed.
    pub write_cache: bool,
    /// The disk honours Force Unit Access on writes.
    pub fua: bool,
}

impl DiskGeometry {
    /// Checks the rules stated on each field.
    ///
    /// Returns [`ErrorKind::OutOfRange`] on the first broken rule.
    pub fn check(&self) -> Result<(), ErrorKind> {
        let pow2_mask = |m: u32| m.checked_add(1).is_some_and(u32::is_power_of_two);
        let ok = self.logical_block_size.is_power_of_two()
            && self.logical_block_size >= 512
            && self.physical_block_size.is_power_of_two()
            && self.physical_block_size >= self.logical_block_size
            && self.max_transfer >= self.logical_block_size
            && self.max_segments >= 1
            && self.max_segment_size >= 512
            && (self.virt_boundary_mask == 0 || pow2_mask(self.virt_boundary_mask))
            && pow2_mask(self.dma_alignment_mask)
            && self
                .discard
                .is_none_or(|d| d.max_blocks >= 1 && d.granularity >= 1);
        if ok {
            Ok(())
        } else {
            Err(ErrorKind::OutOfRange)
        }
    }
}

/// What the core wants done with a request that timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutAction {
    /// The request is still in the core's hands; give it another full timeout.
    ResetTimer,
    /// The core has completed the request (or will, through
    /// [`BlockQueues::complete`]); the platform must not end it itself.
    Done,
}

/// The core's side of the block layer: the platform calls these.
///
/// # Contract
///
/// - [`BlockHandler::queue_rq`] and [`BlockHandler::commit_rqs`] may run in a context that
///   must not sleep (Linux runs them under RCU). Calls for different hardware queues may run
///   at the same time; calls for one hardware queue never overlap.
/// - [`BlockHandler::timeout`] runs in a context that may sleep.
pub trait BlockHandler: Send + Sync + 'static {
    /// Takes a request.
    ///
    /// `Ok` means the core has accepted the request and will complete it exactly once
    /// through [`BlockQueues::complete`]. `Err(status)` means it did not: the platform ends
    /// the request with `status`, or requeues it for [`BlockStatus::Resource`] and
    /// [`BlockStatus::DeviceResource`], and the core must never complete it.
    ///
    /// `last` is `false` when the platform knows more requests for this hardware queue
    /// follow at once, so the core may delay ringing the doorbell until a call with `last`
    /// set, or until [`BlockHandler::commit_rqs`].
    fn queue_rq(&self, request: &BlockRequest<'_>, last: bool) -> Result<(), BlockStatus>;

    /// Announces that no more requests follow for `hwq` for now: ring any doorbell still
    /// owed.
    fn commit_rqs(&self, hwq: HwQueue);

    /// A request has been in flight longer than the platform's timeout.
    fn timeout(&self, hwq: HwQueue, tag: Tag) -> TimeoutAction;
}

/// The platform's block layer.
///
/// # Contract
///
/// Both methods may sleep: call them from a context that may sleep.
pub trait Block {
    /// The backend's error type.
    type Error: Error;

    /// Hardware queues dispatching to a handler of type `H`.
    type Queues<H: BlockHandler>: BlockQueues<Handler = H>;

    /// A registered disk.
    type Disk: Disk;

    /// Creates hardware queues that hand requests to `handler`.
    ///
    /// `Ok` promises no request is dispatched before a disk is added on the queues. A
    /// `config` with zero queues or zero depth is an
    /// [`ErrorKind::OutOfRange`] error. On error
    /// nothing was created and the handler is handed back.
    fn alloc_queues<H: BlockHandler>(
        &self,
        config: QueueConfig,
        handler: H,
    ) -> Result<Self::Queues<H>, (Self::Error, H)>;

    /// Registers disk `id` on `queues` with `geometry`; requests may arrive at once (if the
    /// queues are quiesced, they wait until [`BlockQueues::resume`]).
    ///
    /// A geometry that fails [`DiskGeometry::check`] is an
    /// [`ErrorKind::OutOfRange`] error, an `id`
    /// already registered on the queues an
    /// [`ErrorKind::Busy`] one. Disks must be dropped
    /// before their queues.
    fn add_disk<H: BlockHandler>(
        &self,
        queues: &Self::Queues<H>,
        id: DiskId,
        geometry: &DiskGeometry,
    ) -> Result<Self::Disk, Self::Error>;
}

/// A controller's hardware queues (on Linux: a blk-mq tag set).
///
/// # Contract
///
/// - Dispatch to the handler is either running or quiesced ([`BlockQueues::quiesce`]); it
///   starts running. Quiescing covers every disk on the queues, including disks added while
///   quiesced.
/// - Hardware queues `0 .. hw_queues_in_service()` are in service, and requests are only
///   dispatched on them. All of them are at first; only [`BlockQueues::set_hw_queues`]
///   changes the count.
/// - A request is in flight from the moment the core accepts it in
///   [`BlockHandler::queue_rq`] until the core ends it with [`BlockQueues::complete`] or hands
///   it back with [`BlockQueues::requeue`]. A request the platform holds (waiting for
///   dispatch, or requeued) is not in flight: the core knows nothing of it and must not end
///   it.
/// - Dropping the queues waits for running handler calls to return and drops the handler; it
///   may sleep. Every disk on them must have been dropped first and every accepted request
///   completed.
pub trait BlockQueues {
    /// The backend's error type.
    type Error: Error;

    /// The handler type.
    type Handler: BlockHandler;

    /// The handler, for reading its state.
    fn handler(&self) -> &Self::Handler;

    /// The shape the queues were created with.
    fn config(&self) -> QueueConfig;

    /// Ends the request with tag `tag` on `hwq` with `status`.
    ///
    /// `Ok` promises the request was in flight (accepted by
    /// [`BlockHandler::queue_rq`] and not yet completed) and has now been handed back to the
    /// platform: the core must forget it and may reuse the tag's resources. A `hwq` or `tag`
    /// out of range, or a tag not in flight (a bogus command identifier from the device) is an
    /// [`ErrorKind::OutOfRange`] error and ends
    /// nothing.
    ///
    /// May be called from any context, including interrupt handlers; never sleeps.
    fn complete(&self, hwq: HwQueue, tag: Tag, status: BlockStatus) -> Result<(), Self::Error>;

    /// Stops dispatch on every hardware queue, for every disk.
    ///
    /// After it returns, no [`BlockHandler::queue_rq`] or [`BlockHandler::commit_rqs`] call
    /// is running and none starts until [`BlockQueues::resume`]. Requests the platform
    /// receives meanwhile wait inside it; they are not failed (unless their disk is dead, see
    /// [`Disk::mark_dead`]). Requests in flight stay in flight: the core may still complete
    /// or requeue them, and the platform may still call [`BlockHandler::timeout`] for them.
    ///
    /// Quiescing quiesced queues is the same as quiescing them once: one
    /// [`BlockQueues::resume`] undoes any number of calls. May sleep (it waits for running
    /// handler calls to return), so never call it from the handler.
    fn quiesce(&self);

    /// Restarts dispatch stopped by [`BlockQueues::quiesce`].
    ///
    /// Requests that waited inside the platform, requeued ones included, are dispatched to
    /// [`BlockHandler::queue_rq`] again, in an order the platform chooses, possibly from
    /// inside this call: hold no lock the handler takes. Resuming queues that are not
    /// quiesced only dispatches what waits. May sleep.
    fn resume(&self);

    /// Hands the request with tag `tag` on `hwq` back to the platform unfinished, to be
    /// dispatched again.
    ///
    /// `Ok` promises the request was in flight and is now the platform's again: the core
    /// must forget it, as after [`BlockQueues::complete`], and may reuse the tag's
    /// resources. The platform dispatches it to [`BlockHandler::queue_rq`] again, possibly on
    /// another hardware queue and with another tag: after [`BlockQueues::resume`] if the
    /// queues are quiesced, after the change if [`BlockQueues::set_hw_queues`] is under way,
    /// otherwise soon, from another context and never from inside this call. The same requests are refused as by [`BlockQueues::complete`]: a `hwq` or `tag`
    /// out of range, or a tag not in flight, is an [`ErrorKind::OutOfRange`] error and ends
    /// nothing.
    ///
    /// May be called from any context, including interrupt handlers; never sleeps.
    fn requeue(&self, hwq: HwQueue, tag: Tag) -> Result<(), Self::Error>;

    /// The number of hardware queues in service: requests are only dispatched on
    /// `0 .. hw_queues_in_service()`.
    ///
    /// It starts at `config().hw_queues` and changes only through
    /// [`BlockQueues::set_hw_queues`]. Never sleeps; any context.
    fn hw_queues_in_service(&self) -> u16;

    /// Changes the number of hardware queues in service to `count`, as after a controller
    /// reset that granted a different number of I/O queues.
    ///
    /// The platform holds new requests back and waits for every request in flight to end
    /// (completed or requeued). The wait is bounded: if requests are still in flight once
    /// `bound` has passed, the platform calls `on_stuck` once, on this thread, in a context
    /// that may sleep and with no platform lock held, and the core must have ended every
    /// request in flight by the time it returns (for example by completing them with an
    /// error status or requeueing them). Then the platform remaps: requests it holds back,
    /// requeued ones included, are dispatched on the queues that remain in service, possibly
    /// with other tags, and dispatch runs again. The wait happens even if `count` is the
    /// current count.
    ///
    /// `Ok` promises `count` queues are in service now; the [`HwQueueChange`] says whether
    /// `on_stuck` was called. [`BlockQueues::config`] keeps the shape the queues were created
    /// with. Refusals, which change nothing and call no `on_stuck`:
    /// - a `count` of zero or above `config().hw_queues` is an [`ErrorKind::OutOfRange`]
    ///   error;
    /// - a call while the queues are quiesced, or while another change is in progress (a
    ///   call from `on_stuck`), is an [`ErrorKind::Busy`] error.
    ///
    /// Requests still in flight after `on_stuck` returned are a core bug: the platform then
    /// gives up with an [`ErrorKind::Timeout`] error, keeps the count in service, and lets
    /// dispatch run again; the requests stay in flight.
    ///
    /// Call it with dispatch running, from a context that may sleep and never from the
    /// handler; it sleeps for up to about `bound`, plus the time `on_stuck` takes.
    fn set_hw_queues(
        &self,
        count: u16,
        bound: Duration,
        on_stuck: &mut dyn FnMut(),
    ) -> Result<HwQueueChange, Self::Error>;
}

/// A registered disk.
///
/// # Contract
///
/// Dropping it removes the disk: no new request arrives for it after the drop returns. It
/// may sleep and waits for every request of the disk to end, both those in flight and those
/// waiting inside the platform (in quiesced queues, or requeued). So end them first:
/// complete or requeue those in flight, and for those waiting, mark the disk dead and resume
/// the queues; a disk dropped with requests waiting in quiesced queues may wait forever.
pub trait Disk {
    /// The disk's identifier.
    fn id(&self) -> DiskId;

    /// Changes the capacity, in logical blocks (namespace resize).
    ///
    /// Requests the platform receives after it returns are checked against the new capacity.
    /// Requests it already holds (in flight, or waiting in quiesced queues) are not checked
    /// again, so one may reach past a shrunk end: the device refuses it. May sleep.
    fn set_capacity(&self, blocks: u64);

    /// Marks the disk dead (the device is gone): from now on its requests fail without
    /// reaching the handler.
    ///
    /// That covers new requests, which fail at once, and those waiting inside the platform
    /// (received while the queues were quiesced, or requeued, before or after this call),
    /// which fail at once or at the latest when the queues resume: none waits forever.
    /// Requests in flight still have to be ended by the core; requeueing one fails it.
    /// Marking a dead disk dead again changes nothing. May sleep.
    fn mark_dead(&self);
}
