//! The block side on the host: a recorder standing in for blk-mq.
//!
//! A test plays the block layer: it sends requests to the core with
//! [`SimQueues::submit`] (checked against the disk's geometry, as blk-mq guarantees), and
//! reads back what the core did — completions, requeues, disks added and resized, queues
//! quiesced and resumed — from the [`SimBlock`]'s event log.
//!
//! Requests the sim holds for the core wait in two lists, dispatched in this order, as blk-mq
//! does for a driver that prepares its requests once (NVMe sets `RQF_DONTPREP`): requests the
//! core requeued go on the dispatch list, in the order they were requeued; requests that
//! arrived while dispatch was stopped follow, in arrival order. They are dispatched when the
//! queues resume or finish changing their hardware queues, or when a test calls
//! [`SimQueues::run_waiting`] (blk-mq's requeue work).
//!
//! [`BlockQueues::set_hw_queues`] waits on the [`SimBlock`]'s clock, so a device model on
//! the same clock completes requests meanwhile; a wait that outlasts its bound never hangs.

use crate::clock::{lock, VirtualClock};
use crate::context::{self, AtomicSection};
use orion_compat::block::{
    Block, BlockHandler, BlockOp, BlockQueues, BlockRequest, BlockStatus, Disk, DiskGeometry,
    DiskId, HwQueue, HwQueueChange, QueueConfig, Tag, TimeoutAction,
};
use orion_compat::dma::Segment;
use orion_compat::time::{Deadline, Duration};
use orion_compat::ErrorKind;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// Something the core did to the block layer, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockEvent {
    /// Hardware queues were created.
    QueuesCreated(QueueConfig),
    /// A disk was registered.
    DiskAdded(DiskId, DiskGeometry),
    /// A disk's capacity changed.
    Capacity(DiskId, u64),
    /// A disk was marked dead.
    DiskDead(DiskId),
    /// A disk was removed.
    DiskRemoved(DiskId),
    /// The core refused a request in `queue_rq`.
    Refused(HwQueue, Tag, BlockStatus),
    /// The core completed a request.
    Completed(HwQueue, Tag, BlockStatus),
    /// The core tried to complete a request that was not in flight.
    BogusCompletion(HwQueue, Tag, BlockStatus),
    /// A request timed out and the core answered.
    TimedOut(HwQueue, Tag, TimeoutAction),
    /// Dispatch stopped (recorded once: quiescing quiesced queues records nothing).
    Quiesced,
    /// Dispatch restarted after a quiesce (resuming running queues records nothing).
    Resumed,
    /// The core handed a request in flight back to the platform.
    Requeued(HwQueue, Tag),
    /// The core tried to requeue a request that was not in flight.
    BogusRequeue(HwQueue, Tag),
    /// The platform failed a waiting request of a dead disk without reaching the core.
    FailedDead(DiskId, HwQueue, Tag),
    /// A waiting request got another hardware queue or tag before it was dispatched (its
    /// queue went out of service, or its tag was taken).
    Retagged {
        /// Where it waited.
        from: (HwQueue, Tag),
        /// Where it is dispatched.
        to: (HwQueue, Tag),
    },
    /// The number of hardware queues in service changed.
    HwQueuesChanged {
        /// The count before.
        from: u16,
        /// The count now.
        to: u16,
        /// Requests were in flight past the bound, so `on_stuck` was called.
        stuck: bool,
    },
    /// A change of hardware queues gave up: these requests were still in flight after
    /// `on_stuck` returned, which is a core bug.
    HwQueuesGaveUp {
        /// The count asked for (not applied).
        to: u16,
        /// The requests `on_stuck` left in flight.
        in_flight: Vec<(HwQueue, Tag)>,
    },
}

/// The sim's [`Block`]: records everything in one event log. Cloning gives another handle to
/// the same log and clock.
#[derive(Clone, Debug, Default)]
pub struct SimBlock {
    events: Arc<Mutex<Vec<BlockEvent>>>,
    clock: VirtualClock,
}

impl SimBlock {
    /// An empty recorder with a clock of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty recorder whose waits sleep on `clock`.
    pub fn with_clock(clock: VirtualClock) -> Self {
        Self {
            events: Arc::default(),
            clock,
        }
    }

    /// The clock waits sleep on.
    pub fn clock(&self) -> &VirtualClock {
        &self.clock
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<BlockEvent> {
        lock(&self.events).clone()
    }

    /// Every event so far, clearing the log.
    pub fn take_events(&self) -> Vec<BlockEvent> {
        std::mem::take(&mut lock(&self.events))
    }

    /// The completions so far, in order.
    pub fn completions(&self) -> Vec<(HwQueue, Tag, BlockStatus)> {
        lock(&self.events)
            .iter()
            .filter_map(|e| match e {
                BlockEvent::Completed(q, t, s) => Some((*q, *t, *s)),
                _ => None,
            })
            .collect()
    }

    fn record(&self, e: BlockEvent) {
        lock(&self.events).push(e);
    }
}

#[derive(Clone, Copy, Debug)]
struct DiskState {
    geometry: DiskGeometry,
    dead: bool,
}

/// A request the sim holds: a copy of what was submitted, so it can be dispatched again.
#[derive(Clone, Debug)]
struct Held {
    hwq: HwQueue,
    tag: Tag,
    disk: DiskId,
    op: BlockOp,
    lba: u64,
    blocks: u32,
    fua: bool,
    segments: Vec<Segment>,
}

impl Held {
    fn new(r: &BlockRequest<'_>) -> Self {
        Self {
            hwq: r.hwq,
            tag: r.tag,
            disk: r.disk,
            op: r.op,
            lba: r.lba,
            blocks: r.blocks,
            fua: r.fua,
            segments: r.segments.to_vec(),
        }
    }

    fn request(&self) -> BlockRequest<'_> {
        BlockRequest {
            hwq: self.hwq,
            tag: self.tag,
            disk: self.disk,
            op: self.op,
            lba: self.lba,
            blocks: self.blocks,
            fua: self.fua,
            segments: &self.segments,
        }
    }

    fn id(&self) -> (HwQueue, Tag) {
        (self.hwq, self.tag)
    }
}

struct QueuesState {
    /// Per hardware queue, per tag: the request in flight (accepted by the core).
    in_flight: Vec<Vec<Option<Held>>>,
    /// Requests the core requeued, dispatched first.
    requeued: VecDeque<Held>,
    /// Requests that arrived while dispatch was stopped.
    waiting: VecDeque<Held>,
    quiesced: bool,
    /// A `set_hw_queues` call is in progress: dispatch is stopped (blk-mq's freeze).
    changing: bool,
    /// Hardware queues `0 .. in_service` are in service.
    in_service: u16,
    disks: BTreeMap<DiskId, DiskState>,
}

impl QueuesState {
    fn slot(&mut self, hwq: HwQueue, tag: Tag) -> Option<&mut Option<Held>> {
        self.in_flight
            .get_mut(usize::from(hwq.0))
            .and_then(|q| q.get_mut(usize::from(tag.0)))
    }

    /// The requests the platform holds back, in dispatch order.
    fn held_back(&self) -> impl Iterator<Item = &Held> {
        self.requeued.iter().chain(&self.waiting)
    }

    /// Whether `(hwq, tag)` belongs to a request in flight or held back.
    fn tag_taken(&self, hwq: HwQueue, tag: Tag) -> bool {
        let in_flight = self
            .in_flight
            .get(usize::from(hwq.0))
            .and_then(|q| q.get(usize::from(tag.0)))
            .is_some_and(Option::is_some);
        in_flight || self.held_back().any(|h| h.id() == (hwq, tag))
    }

    fn stopped(&self) -> bool {
        self.quiesced || self.changing
    }

    fn idle(&self) -> bool {
        self.in_flight.iter().flatten().all(Option::is_none)
    }

    /// Where held-back request `h` is dispatched: its own queue and tag while they are in
    /// service and free, else queue `hwq % in_service` (its tag, or the lowest free one),
    /// else the lowest free tag of the next queues; `None` if every tag is taken. `later`
    /// are the requests dispatched after it, which keep the tags they hold.
    fn place(&self, h: &Held, later: &[Held]) -> Option<(HwQueue, Tag)> {
        let count = self.in_service;
        let free = |q: u16, t: u16| {
            let id = (HwQueue(q), Tag(t));
            let slot_free = self
                .in_flight
                .get(usize::from(q))
                .and_then(|tags| tags.get(usize::from(t)))
                .is_some_and(Option::is_none);
            slot_free && !later.iter().any(|l| l.hwq.0 < count && l.id() == id)
        };
        if h.hwq.0 < count && free(h.hwq.0, h.tag.0) {
            return Some(h.id());
        }
        let home = h.hwq.0.checked_rem(count)?;
        if free(home, h.tag.0) {
            return Some((HwQueue(home), h.tag));
        }
        let depth = self.in_flight.first().map_or(0, Vec::len);
        (0..count)
            .map(|k| {
                // CAST: below `count`, a u16.
                ((u32::from(home) + u32::from(k)) % u32::from(count)) as u16
            })
            .find_map(|q| {
                (0..depth)
                    // CAST: tags come from the u16 depth.
                    .map(|t| t as u16)
                    .find(|&t| free(q, t))
                    .map(|t| (HwQueue(q), Tag(t)))
            })
    }

    /// Takes the held-back requests of dead disks out of the lists.
    fn take_dead(&mut self) -> Vec<Held> {
        let disks = &self.disks;
        let dead = |h: &Held| disks.get(&h.disk).is_some_and(|d| d.dead);
        let mut out = Vec::new();
        for list in [&mut self.requeued, &mut self.waiting] {
            let (gone, kept): (VecDeque<Held>, VecDeque<Held>) =
                std::mem::take(list).into_iter().partition(|h| dead(h));
            *list = kept;
            out.extend(gone);
        }
        out
    }
}

/// Why [`SimQueues::submit`] did not hand a request to the core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The request breaks what blk-mq promises (bad queue, tag in use, unknown disk,
    /// geometry): a bug in the test.
    Invalid(ErrorKind),
    /// The disk is dead; blk-mq fails the request without calling the core.
    DiskDead,
    /// The core refused it with this status.
    Refused(BlockStatus),
    /// Dispatch is stopped: the request waits in the sim, holding its tag, and reaches the
    /// core when dispatch runs again.
    Waiting,
}

/// Hardware queues on a [`SimBlock`], dispatching to the core's handler.
///
/// Each hardware queue has a dispatch lock, held across every handler call for it (blk-mq's
/// RCU read side): quiescing takes each in turn to wait for running calls.
pub struct SimQueues<H: BlockHandler> {
    handler: H,
    config: QueueConfig,
    state: Arc<Mutex<QueuesState>>,
    dispatch: Vec<Mutex<()>>,
    block: SimBlock,
}

impl<H: BlockHandler> std::fmt::Debug for SimQueues<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimQueues")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<H: BlockHandler> SimQueues<H> {
    /// Plays blk-mq's `queue_rq`: checks `request` as blk-mq guarantees it (on a hardware
    /// queue in service, with a free tag), marks it in flight and hands it to the core in a
    /// context that must not sleep.
    ///
    /// While dispatch is stopped (quiesced, or the hardware queues changing) the request is
    /// kept instead ([`SubmitError::Waiting`]).
    pub fn submit(&self, request: &BlockRequest<'_>, last: bool) -> Result<(), SubmitError> {
        let invalid = SubmitError::Invalid(ErrorKind::OutOfRange);
        let serial = self
            .dispatch
            .get(usize::from(request.hwq.0))
            .ok_or(invalid)?;
        let _serial = lock(serial);
        {
            let mut s = lock(&self.state);
            let disk = *s.disks.get(&request.disk).ok_or(invalid)?;
            if request.hwq.0 >= s.in_service || request.tag.0 >= self.config.depth {
                return Err(invalid);
            }
            if s.tag_taken(request.hwq, request.tag) {
                return Err(SubmitError::Invalid(ErrorKind::Busy));
            }
            if disk.dead {
                return Err(SubmitError::DiskDead);
            }
            request
                .check(&disk.geometry)
                .map_err(SubmitError::Invalid)?;
            if s.stopped() {
                s.waiting.push_back(Held::new(request));
                return Err(SubmitError::Waiting);
            }
            if let Some(slot) = s.slot(request.hwq, request.tag) {
                *slot = Some(Held::new(request));
            }
        }
        let result = {
            let _atomic = AtomicSection::enter();
            self.handler.queue_rq(request, last)
        };
        match result {
            Ok(()) => Ok(()),
            Err(status) => {
                self.refused(request.hwq, request.tag, status);
                Err(SubmitError::Refused(status))
            }
        }
    }

    fn refused(&self, hwq: HwQueue, tag: Tag, status: BlockStatus) {
        if let Some(slot) = lock(&self.state).slot(hwq, tag) {
            *slot = None;
        }
        self.block.record(BlockEvent::Refused(hwq, tag, status));
    }

    /// Plays blk-mq's `commit_rqs` for `hwq`; does nothing while dispatch is stopped.
    ///
    /// # Panics
    ///
    /// If `hwq` is not in service.
    pub fn commit(&self, hwq: HwQueue) {
        let _serial = lock(&self.dispatch[usize::from(hwq.0)]);
        let s = lock(&self.state);
        assert!(
            hwq.0 < s.in_service,
            "orion-sim: commit on {hwq:?}, which is not in service"
        );
        if s.stopped() {
            return;
        }
        drop(s);
        let _atomic = AtomicSection::enter();
        self.handler.commit_rqs(hwq);
    }

    /// Plays blk-mq's requeue work and queue run: dispatches every request held back
    /// (requeued ones first), unless dispatch is stopped. Requests of dead disks fail
    /// instead ([`BlockEvent::FailedDead`]); a request the core refuses is ended with its
    /// status ([`BlockEvent::Refused`]), with no retry.
    ///
    /// A request whose hardware queue went out of service moves to queue
    /// `hwq % hw_queues_in_service()`, keeping its tag if it is free there
    /// ([`BlockEvent::Retagged`]); one that finds no free tag at all keeps waiting.
    /// Requests are dispatched in batches, one per hardware queue, with `last` set on the
    /// batch's final request, and `commit_rqs` called if the core refused that one after
    /// accepting others.
    pub fn run_waiting(&self) {
        let (dead, retagged, mut batches) = {
            let mut guard = lock(&self.state);
            let s = &mut *guard;
            let dead = s.take_dead();
            let mut retagged = Vec::new();
            let mut batches: BTreeMap<HwQueue, Vec<Held>> = BTreeMap::new();
            if !s.stopped() {
                let todo: Vec<Held> = s.requeued.drain(..).chain(s.waiting.drain(..)).collect();
                for (i, h) in todo.iter().enumerate() {
                    let later = todo.get(i + 1..).unwrap_or_default();
                    let Some((hwq, tag)) = s.place(h, later) else {
                        s.requeued.push_back(h.clone());
                        continue;
                    };
                    let mut h = h.clone();
                    if (hwq, tag) != h.id() {
                        retagged.push((h.id(), (hwq, tag)));
                        h.hwq = hwq;
                        h.tag = tag;
                    }
                    if let Some(slot) = s.slot(hwq, tag) {
                        *slot = Some(h.clone());
                    }
                    batches.entry(hwq).or_default().push(h);
                }
            }
            (dead, retagged, batches)
        };
        for h in dead {
            self.block
                .record(BlockEvent::FailedDead(h.disk, h.hwq, h.tag));
        }
        for (from, to) in retagged {
            self.block.record(BlockEvent::Retagged { from, to });
        }
        let mut undone = Vec::new();
        while let Some((hwq, batch)) = batches.pop_first() {
            let Some(serial) = self.dispatch.get(usize::from(hwq.0)) else {
                continue;
            };
            let _serial = lock(serial);
            if lock(&self.state).stopped() {
                // Stopped meanwhile: what was not dispatched waits again.
                undone.extend(batch);
                undone.extend(std::mem::take(&mut batches).into_values().flatten());
                break;
            }
            self.dispatch_batch(hwq, &batch);
        }
        if !undone.is_empty() {
            let mut s = lock(&self.state);
            for h in undone.iter().rev() {
                if let Some(slot) = s.slot(h.hwq, h.tag) {
                    *slot = None;
                }
                s.requeued.push_front(h.clone());
            }
        }
    }

    /// Hands one hardware queue's batch to the core; the caller holds the dispatch lock.
    fn dispatch_batch(&self, hwq: HwQueue, batch: &[Held]) {
        let mut owed = false;
        for (i, h) in batch.iter().enumerate() {
            let last = i + 1 == batch.len();
            let result = {
                let _atomic = AtomicSection::enter();
                self.handler.queue_rq(&h.request(), last)
            };
            match result {
                Ok(()) => owed = !last,
                Err(status) => self.refused(h.hwq, h.tag, status),
            }
        }
        if owed {
            let _atomic = AtomicSection::enter();
            self.handler.commit_rqs(hwq);
        }
    }

    /// Plays blk-mq's timeout handling for a request in flight; `None` if it is not.
    pub fn expire(&self, hwq: HwQueue, tag: Tag) -> Option<TimeoutAction> {
        context::might_sleep("SimQueues::expire");
        self.disk_of(hwq, tag)?;
        let action = self.handler.timeout(hwq, tag);
        self.block.record(BlockEvent::TimedOut(hwq, tag, action));
        Some(action)
    }

    /// The disk of the request in flight on `hwq` with `tag`.
    pub fn disk_of(&self, hwq: HwQueue, tag: Tag) -> Option<DiskId> {
        lock(&self.state)
            .slot(hwq, tag)
            .and_then(|slot| slot.as_ref())
            .map(|h| h.disk)
    }

    /// The requests in flight, by queue then tag.
    pub fn in_flight(&self) -> Vec<(HwQueue, Tag)> {
        let s = lock(&self.state);
        s.in_flight
            .iter()
            .flatten()
            .flatten()
            .map(Held::id)
            .collect()
    }

    /// The requests the sim holds back, in the order they will be dispatched.
    pub fn waiting(&self) -> Vec<(HwQueue, Tag)> {
        lock(&self.state).held_back().map(Held::id).collect()
    }

    /// Whether dispatch is quiesced.
    pub fn is_quiesced(&self) -> bool {
        lock(&self.state).quiesced
    }

    /// The geometry a disk currently has.
    pub fn geometry(&self, id: DiskId) -> Option<DiskGeometry> {
        lock(&self.state).disks.get(&id).map(|d| d.geometry)
    }
}

impl<H: BlockHandler> BlockQueues for SimQueues<H> {
    type Error = ErrorKind;
    type Handler = H;

    fn handler(&self) -> &H {
        &self.handler
    }

    fn config(&self) -> QueueConfig {
        self.config
    }

    fn complete(&self, hwq: HwQueue, tag: Tag, status: BlockStatus) -> Result<(), ErrorKind> {
        let held = lock(&self.state).slot(hwq, tag).and_then(Option::take);
        if held.is_some() {
            self.block.record(BlockEvent::Completed(hwq, tag, status));
            Ok(())
        } else {
            self.block
                .record(BlockEvent::BogusCompletion(hwq, tag, status));
            Err(ErrorKind::OutOfRange)
        }
    }

    fn quiesce(&self) {
        context::might_sleep("BlockQueues::quiesce");
        let first = !std::mem::replace(&mut lock(&self.state).quiesced, true);
        for serial in &self.dispatch {
            drop(lock(serial));
        }
        if first {
            self.block.record(BlockEvent::Quiesced);
        }
    }

    fn resume(&self) {
        context::might_sleep("BlockQueues::resume");
        if std::mem::replace(&mut lock(&self.state).quiesced, false) {
            self.block.record(BlockEvent::Resumed);
        }
        self.run_waiting();
    }

    fn hw_queues_in_service(&self) -> u16 {
        lock(&self.state).in_service
    }

    /// Stops dispatch, waits (sleeping on the block's clock, in steps of a 256th of `bound`
    /// but at least 1 ms) for the requests in flight to end, calls `on_stuck` if the bound
    /// passes first, then changes the count and dispatches what waits
    /// ([`SimQueues::run_waiting`]). Requests `on_stuck` leaves in flight are reported
    /// ([`BlockEvent::HwQueuesGaveUp`]) with [`ErrorKind::Timeout`].
    fn set_hw_queues(
        &self,
        count: u16,
        bound: Duration,
        on_stuck: &mut dyn FnMut(),
    ) -> Result<HwQueueChange, ErrorKind> {
        context::might_sleep("BlockQueues::set_hw_queues");
        let from = {
            let mut s = lock(&self.state);
            if count == 0 || count > self.config.hw_queues {
                return Err(ErrorKind::OutOfRange);
            }
            if s.stopped() {
                return Err(ErrorKind::Busy);
            }
            s.changing = true;
            s.in_service
        };
        // As blk-mq's freeze: no handler call runs from here on.
        for serial in &self.dispatch {
            drop(lock(serial));
        }
        let clock = &self.block.clock;
        let step = Duration::from_nanos((bound.as_nanos() / 256).max(1_000_000));
        let drained = Deadline::after(clock, bound).poll(clock, step, || {
            Ok::<_, Infallible>(lock(&self.state).idle().then_some(()))
        });
        let stuck = drained.is_err();
        if stuck {
            on_stuck();
            let left = self.in_flight();
            if !left.is_empty() {
                lock(&self.state).changing = false;
                self.block.record(BlockEvent::HwQueuesGaveUp {
                    to: count,
                    in_flight: left,
                });
                self.run_waiting();
                return Err(ErrorKind::Timeout);
            }
        }
        {
            let mut s = lock(&self.state);
            s.in_service = count;
            s.changing = false;
        }
        self.block.record(BlockEvent::HwQueuesChanged {
            from,
            to: count,
            stuck,
        });
        self.run_waiting();
        Ok(HwQueueChange {
            from,
            to: count,
            stuck,
        })
    }

    fn requeue(&self, hwq: HwQueue, tag: Tag) -> Result<(), ErrorKind> {
        let mut s = lock(&self.state);
        match s.slot(hwq, tag).and_then(Option::take) {
            Some(held) => {
                s.requeued.push_back(held);
                drop(s);
                self.block.record(BlockEvent::Requeued(hwq, tag));
                Ok(())
            }
            None => {
                drop(s);
                self.block.record(BlockEvent::BogusRequeue(hwq, tag));
                Err(ErrorKind::OutOfRange)
            }
        }
    }
}

impl<H: BlockHandler> Drop for SimQueues<H> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        context::might_sleep("dropping BlockQueues");
        let s = lock(&self.state);
        assert!(
            s.disks.is_empty(),
            "orion-sim: block queues dropped before their disks"
        );
        let busy = s.in_flight.iter().flatten().flatten().count();
        let held = s.held_back().count();
        assert!(
            busy == 0 && held == 0,
            "orion-sim: block queues dropped with {busy} requests in flight and {held} waiting"
        );
    }
}

/// A disk registered on [`SimQueues`].
#[derive(Debug)]
pub struct SimDisk {
    id: DiskId,
    state: Arc<Mutex<QueuesState>>,
    block: SimBlock,
}

impl Disk for SimDisk {
    fn id(&self) -> DiskId {
        self.id
    }

    fn set_capacity(&self, blocks: u64) {
        context::might_sleep("Disk::set_capacity");
        if let Some(d) = lock(&self.state).disks.get_mut(&self.id) {
            d.geometry.capacity = blocks;
        }
        self.block.record(BlockEvent::Capacity(self.id, blocks));
    }

    fn mark_dead(&self) {
        context::might_sleep("Disk::mark_dead");
        let failed = {
            let mut s = lock(&self.state);
            if let Some(d) = s.disks.get_mut(&self.id) {
                d.dead = true;
            }
            s.take_dead()
        };
        self.block.record(BlockEvent::DiskDead(self.id));
        for h in failed {
            self.block
                .record(BlockEvent::FailedDead(h.disk, h.hwq, h.tag));
        }
    }
}

impl Drop for SimDisk {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        context::might_sleep("dropping a Disk");
        let mut s = lock(&self.state);
        let busy = s
            .in_flight
            .iter()
            .flatten()
            .flatten()
            .filter(|h| h.disk == self.id)
            .count();
        let held = s.held_back().filter(|h| h.disk == self.id).count();
        assert!(
            busy == 0 && held == 0,
            "orion-sim: disk {:?} removed with {busy} requests in flight and {held} waiting \
             (del_gendisk would hang)",
            self.id
        );
        s.disks.remove(&self.id);
        drop(s);
        self.block.record(BlockEvent::DiskRemoved(self.id));
    }
}

impl std::fmt::Debug for QueuesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuesState")
            .field("disks", &self.disks.len())
            .field("quiesced", &self.quiesced)
            .field("in_service", &self.in_service)
            .finish_non_exhaustive()
    }
}

impl Block for SimBlock {
    type Error = ErrorKind;
    type Queues<H: BlockHandler> = SimQueues<H>;
    type Disk = SimDisk;

    fn alloc_queues<H: BlockHandler>(
        &self,
        config: QueueConfig,
        handler: H,
    ) -> Result<SimQueues<H>, (ErrorKind, H)> {
        context::might_sleep("Block::alloc_queues");
        if config.hw_queues == 0 || config.depth == 0 {
            return Err((ErrorKind::OutOfRange, handler));
        }
        let q = usize::from(config.hw_queues);
        let in_flight = vec![vec![None; usize::from(config.depth)]; q];
        self.record(BlockEvent::QueuesCreated(config));
        Ok(SimQueues {
            handler,
            config,
            state: Arc::new(Mutex::new(QueuesState {
                in_flight,
                requeued: VecDeque::new(),
                waiting: VecDeque::new(),
                quiesced: false,
                changing: false,
                in_service: config.hw_queues,
                disks: BTreeMap::new(),
            })),
            dispatch: (0..q).map(|_| Mutex::new(())).collect(),
            block: self.clone(),
        })
    }

    fn add_disk<H: BlockHandler>(
        &self,
        queues: &SimQueues<H>,
        id: DiskId,
        geometry: &DiskGeometry,
    ) -> Result<SimDisk, ErrorKind> {
        context::might_sleep("Block::add_disk");
        geometry.check()?;
        let mut s = lock(&queues.state);
        if s.disks.contains_key(&id) {
            return Err(ErrorKind::Busy);
        }
        s.disks.insert(
            id,
            DiskState {
                geometry: *geometry,
                dead: false,
            },
        );
        drop(s);
        self.record(BlockEvent::DiskAdded(id, *geometry));
        Ok(SimDisk {
            id,
            state: queues.state.clone(),
            block: self.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orion_compat::block::BlockOp;
    use orion_compat::conformance::SAMPLE_GEOMETRY;
    use orion_compat::dma::{BusAddr, Segment};
    use orion_compat::time::Clock;

    /// Accepts everything and remembers what it got; refuses flushes.
    #[derive(Debug, Default)]
    struct Core {
        got: Mutex<Vec<(HwQueue, Tag, BlockOp, bool)>>,
        commits: Mutex<Vec<HwQueue>>,
        sleep_in_queue_rq: bool,
    }

    impl BlockHandler for Core {
        fn queue_rq(&self, r: &BlockRequest<'_>, last: bool) -> Result<(), BlockStatus> {
            if self.sleep_in_queue_rq {
                context::might_sleep("test core");
            }
            if r.op == BlockOp::Flush {
                return Err(BlockStatus::NotSupported);
            }
            lock(&self.got).push((r.hwq, r.tag, r.op, last));
            Ok(())
        }
        fn commit_rqs(&self, hwq: HwQueue) {
            lock(&self.commits).push(hwq);
        }
        fn timeout(&self, _hwq: HwQueue, _tag: Tag) -> TimeoutAction {
            TimeoutAction::ResetTimer
        }
    }

    const SEGS: [Segment; 2] = [
        Segment {
            addr: BusAddr(0x1_0000_0200),
            len: 3584,
        },
        Segment {
            addr: BusAddr(0x1_0001_0000),
            len: 512,
        },
    ];

    fn read(tag: u16) -> BlockRequest<'static> {
        BlockRequest {
            hwq: HwQueue(1),
            tag: Tag(tag),
            disk: DiskId(1),
            op: BlockOp::Read,
            lba: 8,
            blocks: 8,
            fua: false,
            segments: &SEGS,
        }
    }

    fn setup(core: Core) -> (SimBlock, SimQueues<Core>, SimDisk) {
        let b = SimBlock::new();
        let q = b
            .alloc_queues(
                QueueConfig {
                    hw_queues: 2,
                    depth: 4,
                },
                core,
            )
            .unwrap();
        let d = b.add_disk(&q, DiskId(1), &SAMPLE_GEOMETRY).unwrap();
        (b, q, d)
    }

    #[test]
    fn a_request_goes_from_submit_to_completion() {
        let (b, q, d) = setup(Core::default());
        q.submit(&read(3), false).unwrap();
        q.commit(HwQueue(1));
        assert_eq!(
            *lock(&q.handler().got),
            [(HwQueue(1), Tag(3), BlockOp::Read, false)]
        );
        assert_eq!(*lock(&q.handler().commits), [HwQueue(1)]);
        assert_eq!(q.in_flight(), [(HwQueue(1), Tag(3))]);
        assert_eq!(
            q.expire(HwQueue(1), Tag(3)),
            Some(TimeoutAction::ResetTimer)
        );
        q.complete(HwQueue(1), Tag(3), BlockStatus::Ok).unwrap();
        assert_eq!(
            q.complete(HwQueue(1), Tag(3), BlockStatus::Ok),
            Err(ErrorKind::OutOfRange)
        );
        assert_eq!(q.expire(HwQueue(1), Tag(3)), None);
        assert_eq!(b.completions(), [(HwQueue(1), Tag(3), BlockStatus::Ok)]);
        drop(d);
        drop(q);
        let events = b.events();
        assert_eq!(
            events.first(),
            Some(&BlockEvent::QueuesCreated(QueueConfig {
                hw_queues: 2,
                depth: 4
            }))
        );
        assert!(events.contains(&BlockEvent::BogusCompletion(
            HwQueue(1),
            Tag(3),
            BlockStatus::Ok
        )));
        assert_eq!(events.last(), Some(&BlockEvent::DiskRemoved(DiskId(1))));
    }

    #[test]
    fn refused_requests_are_not_in_flight() {
        let (b, q, _d) = setup(Core::default());
        let flush = BlockRequest {
            op: BlockOp::Flush,
            lba: 0,
            blocks: 0,
            segments: &[],
            ..read(0)
        };
        assert_eq!(
            q.submit(&flush, true),
            Err(SubmitError::Refused(BlockStatus::NotSupported))
        );
        assert!(q.in_flight().is_empty());
        assert!(b.events().contains(&BlockEvent::Refused(
            HwQueue(1),
            Tag(0),
            BlockStatus::NotSupported
        )));
    }

    #[test]
    fn what_blk_mq_promises_is_checked() {
        let (_b, q, d) = setup(Core::default());
        let invalid = |r: &BlockRequest<'_>| q.submit(r, true).unwrap_err();
        assert_eq!(
            invalid(&BlockRequest {
                blocks: 7,
                ..read(0)
            }),
            SubmitError::Invalid(ErrorKind::OutOfRange),
            "length mismatch"
        );
        assert_eq!(
            invalid(&BlockRequest {
                lba: 2041,
                ..read(0)
            }),
            SubmitError::Invalid(ErrorKind::OutOfRange),
            "past capacity"
        );
        assert_eq!(
            invalid(&BlockRequest {
                tag: Tag(4),
                ..read(0)
            }),
            SubmitError::Invalid(ErrorKind::OutOfRange)
        );
        assert_eq!(
            invalid(&BlockRequest {
                disk: DiskId(9),
                ..read(0)
            }),
            SubmitError::Invalid(ErrorKind::OutOfRange)
        );
        q.submit(&read(0), true).unwrap();
        assert_eq!(
            invalid(&read(0)),
            SubmitError::Invalid(ErrorKind::Busy),
            "tag in use"
        );
        q.complete(HwQueue(1), Tag(0), BlockStatus::Medium).unwrap();
        d.mark_dead();
        assert_eq!(invalid(&read(0)), SubmitError::DiskDead);
        d.set_capacity(4096);
        assert_eq!(q.geometry(DiskId(1)).map(|g| g.capacity), Some(4096));
    }

    #[test]
    fn disks_and_queues_are_checked_when_added() {
        let b = SimBlock::new();
        let q = b
            .alloc_queues(
                QueueConfig {
                    hw_queues: 1,
                    depth: 1,
                },
                Core::default(),
            )
            .unwrap();
        let bad = DiskGeometry {
            physical_block_size: 256,
            ..SAMPLE_GEOMETRY
        };
        assert_eq!(
            b.add_disk(&q, DiskId(1), &bad).unwrap_err(),
            ErrorKind::OutOfRange
        );
        let d = b.add_disk(&q, DiskId(1), &SAMPLE_GEOMETRY).unwrap();
        assert_eq!(
            b.add_disk(&q, DiskId(1), &SAMPLE_GEOMETRY).unwrap_err(),
            ErrorKind::Busy
        );
        assert_eq!(d.id(), DiskId(1));
    }

    #[test]
    #[should_panic(expected = "test core may sleep, but was called from atomic context")]
    fn queue_rq_must_not_sleep() {
        let (_b, q, _d) = setup(Core {
            sleep_in_queue_rq: true,
            ..Core::default()
        });
        let _ = q.submit(&read(0), true);
    }

    #[test]
    #[should_panic(expected = "requests in flight")]
    fn removing_a_disk_with_requests_in_flight_panics() {
        let (_b, q, d) = setup(Core::default());
        q.submit(&read(0), true).unwrap();
        drop(d);
    }

    fn got(q: &SimQueues<Core>) -> Vec<(HwQueue, Tag, BlockOp, bool)> {
        lock(&q.handler().got).clone()
    }

    #[test]
    fn quiesced_queues_hold_requests_until_resume() {
        let (b, q, _d) = setup(Core::default());
        q.quiesce();
        q.quiesce();
        assert!(q.is_quiesced());
        assert_eq!(q.submit(&read(2), false), Err(SubmitError::Waiting));
        assert_eq!(q.submit(&read(0), true), Err(SubmitError::Waiting));
        assert_eq!(
            q.submit(&read(2), true),
            Err(SubmitError::Invalid(ErrorKind::Busy)),
            "a waiting request holds its tag"
        );
        q.commit(HwQueue(1));
        assert!(got(&q).is_empty(), "no queue_rq while quiesced");
        assert!(
            lock(&q.handler().commits).is_empty(),
            "no commit_rqs either"
        );
        assert!(
            q.in_flight().is_empty(),
            "waiting requests are not in flight"
        );
        assert_eq!(
            q.complete(HwQueue(1), Tag(2), BlockStatus::Ok),
            Err(ErrorKind::OutOfRange),
            "the core cannot end a request it never got"
        );
        assert_eq!(q.waiting(), [(HwQueue(1), Tag(2)), (HwQueue(1), Tag(0))]);
        q.resume();
        assert!(!q.is_quiesced());
        assert_eq!(
            got(&q),
            [
                (HwQueue(1), Tag(2), BlockOp::Read, false),
                (HwQueue(1), Tag(0), BlockOp::Read, true)
            ],
            "dispatched in arrival order, one batch with last on its end"
        );
        assert!(q.waiting().is_empty());
        assert_eq!(q.in_flight(), [(HwQueue(1), Tag(0)), (HwQueue(1), Tag(2))]);
        q.resume();
        let marks: Vec<BlockEvent> = b
            .events()
            .into_iter()
            .filter(|e| matches!(e, BlockEvent::Quiesced | BlockEvent::Resumed))
            .collect();
        assert_eq!(
            marks,
            [BlockEvent::Quiesced, BlockEvent::Resumed],
            "quiescing twice is once; resuming running queues is nothing"
        );
        for t in [0, 2] {
            q.complete(HwQueue(1), Tag(t), BlockStatus::Ok).unwrap();
        }
    }

    #[test]
    fn a_refusal_at_resume_ends_the_request_and_rings_what_is_owed() {
        let (b, q, _d) = setup(Core::default());
        let flush = BlockRequest {
            op: BlockOp::Flush,
            lba: 0,
            blocks: 0,
            segments: &[],
            ..read(1)
        };
        q.quiesce();
        assert_eq!(q.submit(&read(0), true), Err(SubmitError::Waiting));
        assert_eq!(q.submit(&flush, true), Err(SubmitError::Waiting));
        q.resume();
        assert_eq!(got(&q), [(HwQueue(1), Tag(0), BlockOp::Read, false)]);
        assert_eq!(
            *lock(&q.handler().commits),
            [HwQueue(1)],
            "the accepted read was sent without last: its doorbell is owed"
        );
        assert_eq!(q.in_flight(), [(HwQueue(1), Tag(0))]);
        assert!(b.events().contains(&BlockEvent::Refused(
            HwQueue(1),
            Tag(1),
            BlockStatus::NotSupported
        )));
        q.complete(HwQueue(1), Tag(0), BlockStatus::Ok).unwrap();
    }

    #[test]
    fn quiesce_waits_for_a_running_queue_rq() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration as Wall;

        /// Accepts, but only returns from `queue_rq` once released.
        #[derive(Debug, Default)]
        struct Gate {
            entered: AtomicBool,
            release: AtomicBool,
        }
        impl BlockHandler for Gate {
            fn queue_rq(&self, _r: &BlockRequest<'_>, _last: bool) -> Result<(), BlockStatus> {
                self.entered.store(true, Ordering::SeqCst);
                while !self.release.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                Ok(())
            }
            fn commit_rqs(&self, _hwq: HwQueue) {}
            fn timeout(&self, _hwq: HwQueue, _tag: Tag) -> TimeoutAction {
                TimeoutAction::ResetTimer
            }
        }

        let b = SimBlock::new();
        let config = QueueConfig {
            hw_queues: 2,
            depth: 4,
        };
        let q = b.alloc_queues(config, Gate::default()).unwrap();
        let d = b.add_disk(&q, DiskId(1), &SAMPLE_GEOMETRY).unwrap();
        let quiesced = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| q.submit(&read(0), true));
            while !q.handler().entered.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            s.spawn(|| {
                q.quiesce();
                quiesced.store(true, Ordering::SeqCst);
            });
            std::thread::sleep(Wall::from_millis(50));
            let early = quiesced.load(Ordering::SeqCst);
            q.handler().release.store(true, Ordering::SeqCst);
            assert!(!early, "quiesce returned while queue_rq was running");
        });
        assert!(quiesced.load(Ordering::SeqCst));
        assert_eq!(q.in_flight(), [(HwQueue(1), Tag(0))]);
        q.complete(HwQueue(1), Tag(0), BlockStatus::Ok).unwrap();
        drop(d);
    }

    #[test]
    fn a_requeued_request_is_dispatched_again_at_resume_before_new_ones() {
        let (b, q, _d) = setup(Core::default());
        q.submit(&read(0), true).unwrap();
        q.quiesce();
        q.requeue(HwQueue(1), Tag(0)).unwrap();
        assert!(q.in_flight().is_empty(), "the core must forget it");
        assert_eq!(
            q.requeue(HwQueue(1), Tag(0)),
            Err(ErrorKind::OutOfRange),
            "a requeued request is no longer in flight"
        );
        assert_eq!(
            q.complete(HwQueue(1), Tag(0), BlockStatus::Ok),
            Err(ErrorKind::OutOfRange)
        );
        assert_eq!(q.requeue(HwQueue(2), Tag(0)), Err(ErrorKind::OutOfRange));
        assert_eq!(q.requeue(HwQueue(0), Tag(4)), Err(ErrorKind::OutOfRange));
        assert_eq!(q.submit(&read(3), true), Err(SubmitError::Waiting));
        assert_eq!(q.waiting(), [(HwQueue(1), Tag(0)), (HwQueue(1), Tag(3))]);
        q.resume();
        assert_eq!(
            got(&q),
            [
                (HwQueue(1), Tag(0), BlockOp::Read, true),
                (HwQueue(1), Tag(0), BlockOp::Read, false),
                (HwQueue(1), Tag(3), BlockOp::Read, true)
            ],
            "first dispatch, then the requeued one, then the one that waited"
        );
        let events = b.events();
        let at = |e: &BlockEvent| events.iter().position(|x| x == e);
        assert!(at(&BlockEvent::Quiesced) < at(&BlockEvent::Requeued(HwQueue(1), Tag(0))));
        assert!(at(&BlockEvent::Requeued(HwQueue(1), Tag(0))) < at(&BlockEvent::Resumed));
        assert!(events.contains(&BlockEvent::BogusRequeue(HwQueue(1), Tag(0))));
        for t in [0, 3] {
            q.complete(HwQueue(1), Tag(t), BlockStatus::Ok).unwrap();
        }
    }

    #[test]
    fn a_requeue_while_running_waits_for_the_requeue_work() {
        let (_b, q, _d) = setup(Core::default());
        q.submit(&read(1), true).unwrap();
        q.requeue(HwQueue(1), Tag(1)).unwrap();
        assert_eq!(got(&q).len(), 1, "never dispatched from inside requeue");
        assert_eq!(q.waiting(), [(HwQueue(1), Tag(1))]);
        q.run_waiting();
        assert_eq!(got(&q).len(), 2);
        assert_eq!(q.in_flight(), [(HwQueue(1), Tag(1))]);
        q.complete(HwQueue(1), Tag(1), BlockStatus::Ok).unwrap();
    }

    #[test]
    fn a_dead_disks_waiting_requests_fail_without_reaching_the_core() {
        let (b, q, d) = setup(Core::default());
        q.submit(&read(0), true).unwrap();
        q.quiesce();
        assert_eq!(q.submit(&read(1), true), Err(SubmitError::Waiting));
        d.mark_dead();
        assert!(q.waiting().is_empty(), "failed at mark_dead");
        q.requeue(HwQueue(1), Tag(0)).unwrap();
        assert_eq!(q.waiting(), [(HwQueue(1), Tag(0))]);
        q.resume();
        assert!(q.waiting().is_empty(), "failed at resume");
        assert_eq!(got(&q).len(), 1, "neither reached the core again");
        let events = b.events();
        let dead = events
            .iter()
            .position(|e| *e == BlockEvent::DiskDead(DiskId(1)));
        let first = events
            .iter()
            .position(|e| *e == BlockEvent::FailedDead(DiskId(1), HwQueue(1), Tag(1)));
        let second = events
            .iter()
            .position(|e| *e == BlockEvent::FailedDead(DiskId(1), HwQueue(1), Tag(0)));
        let resumed = events.iter().position(|e| *e == BlockEvent::Resumed);
        assert!(dead.is_some() && dead < first && first < resumed && resumed < second);
        drop(d);
        assert_eq!(b.events().last(), Some(&BlockEvent::DiskRemoved(DiskId(1))));
    }

    #[test]
    #[should_panic(expected = "1 waiting")]
    fn removing_a_disk_with_requests_waiting_panics() {
        let (_b, q, d) = setup(Core::default());
        q.quiesce();
        assert_eq!(q.submit(&read(0), true), Err(SubmitError::Waiting));
        drop(d);
    }

    fn on(hwq: u16, tag: u16) -> BlockRequest<'static> {
        BlockRequest {
            hwq: HwQueue(hwq),
            ..read(tag)
        }
    }

    fn changes(b: &SimBlock) -> Vec<BlockEvent> {
        b.events()
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    BlockEvent::HwQueuesChanged { .. } | BlockEvent::HwQueuesGaveUp { .. }
                )
            })
            .collect()
    }

    #[test]
    fn bad_hw_queue_changes_are_refused_and_change_nothing() {
        let (b, q, _d) = setup(Core::default());
        let mut calls = 0;
        let bound = Duration::from_millis(10);
        for count in [0, 3] {
            assert_eq!(
                q.set_hw_queues(count, bound, &mut || calls += 1),
                Err(ErrorKind::OutOfRange)
            );
        }
        q.quiesce();
        assert_eq!(
            q.set_hw_queues(1, bound, &mut || calls += 1),
            Err(ErrorKind::Busy),
            "quiesced queues could never drain"
        );
        q.resume();
        assert_eq!(calls, 0);
        assert_eq!(q.hw_queues_in_service(), 2);
        assert!(changes(&b).is_empty());
        assert_eq!(
            q.set_hw_queues(2, bound, &mut || calls += 1),
            Ok(HwQueueChange {
                from: 2,
                to: 2,
                stuck: false
            }),
            "the same count is a change too"
        );
        assert_eq!(b.clock().now().as_nanos(), 0, "idle queues do not wait");
    }

    #[test]
    fn a_hw_queue_change_waits_for_requests_in_flight() {
        let (b, q, d) = setup(Core::default());
        let q = Arc::new(q);
        q.submit(&read(1), true).unwrap();
        let (q2, arrived) = (q.clone(), Arc::new(Mutex::new(None)));
        let a2 = arrived.clone();
        b.clock().after(Duration::from_millis(5), move |_| {
            // The device answers, and a new request arrives during the change.
            q2.complete(HwQueue(1), Tag(1), BlockStatus::Ok).unwrap();
            *lock(&a2) = Some(q2.submit(&on(0, 3), true));
        });
        let mut calls = 0;
        let change = q.set_hw_queues(1, Duration::from_secs(1), &mut || calls += 1);
        assert_eq!(
            change,
            Ok(HwQueueChange {
                from: 2,
                to: 1,
                stuck: false
            })
        );
        assert_eq!(calls, 0);
        let now = b.clock().now().as_nanos();
        assert!((5_000_000..1_000_000_000).contains(&now), "waited {now} ns");
        assert_eq!(
            *lock(&arrived),
            Some(Err(SubmitError::Waiting)),
            "held back during the change"
        );
        assert_eq!(q.in_flight(), [(HwQueue(0), Tag(3))], "dispatched after it");
        assert_eq!(q.hw_queues_in_service(), 1);
        assert_eq!(q.config().hw_queues, 2, "the creation shape stays");
        assert_eq!(
            q.submit(&read(0), true),
            Err(SubmitError::Invalid(ErrorKind::OutOfRange)),
            "queue 1 is out of service"
        );
        assert_eq!(
            changes(&b),
            [BlockEvent::HwQueuesChanged {
                from: 2,
                to: 1,
                stuck: false
            }]
        );
        q.complete(HwQueue(0), Tag(3), BlockStatus::Ok).unwrap();
        drop(d);
    }

    #[test]
    fn a_stuck_change_calls_on_stuck_once_and_moves_requeued_requests() {
        let (b, q, _d) = setup(Core::default());
        q.submit(&on(0, 2), true).unwrap();
        q.submit(&on(1, 2), true).unwrap();
        let mut calls = 0;
        let bound = Duration::from_millis(10);
        let change = q.set_hw_queues(1, bound, &mut || {
            calls += 1;
            assert_eq!(
                q.set_hw_queues(1, bound, &mut || {}),
                Err(ErrorKind::Busy),
                "a change is in progress"
            );
            for (hwq, tag) in q.in_flight() {
                q.requeue(hwq, tag).unwrap();
            }
        });
        assert_eq!(
            change,
            Ok(HwQueueChange {
                from: 2,
                to: 1,
                stuck: true
            })
        );
        assert_eq!(calls, 1);
        assert!(b.clock().now().as_nanos() >= 10_000_000, "the bound passed");
        assert_eq!(
            got(&q)[2..],
            [
                (HwQueue(0), Tag(2), BlockOp::Read, false),
                (HwQueue(0), Tag(0), BlockOp::Read, true)
            ],
            "queue 1's request moved to 1 % 1 = 0, and tag 2 there was taken"
        );
        assert!(b.events().contains(&BlockEvent::Retagged {
            from: (HwQueue(1), Tag(2)),
            to: (HwQueue(0), Tag(0))
        }));
        assert_eq!(
            changes(&b),
            [BlockEvent::HwQueuesChanged {
                from: 2,
                to: 1,
                stuck: true
            }]
        );
        for t in [0, 2] {
            q.complete(HwQueue(0), Tag(t), BlockStatus::Ok).unwrap();
        }
    }

    #[test]
    fn on_stuck_may_fail_the_requests_instead() {
        let (b, q, _d) = setup(Core::default());
        q.submit(&read(0), true).unwrap();
        let change = q.set_hw_queues(1, Duration::ZERO, &mut || {
            q.complete(HwQueue(1), Tag(0), BlockStatus::IoError)
                .unwrap();
        });
        assert_eq!(change.map(|c| c.stuck), Ok(true));
        assert_eq!(
            b.completions(),
            [(HwQueue(1), Tag(0), BlockStatus::IoError)]
        );
        assert!(q.in_flight().is_empty() && q.waiting().is_empty());
        assert_eq!(got(&q).len(), 1, "a failed request is not dispatched again");
    }

    #[test]
    fn requests_left_in_flight_by_on_stuck_are_reported_not_waited_for() {
        let (b, q, _d) = setup(Core::default());
        q.submit(&read(0), true).unwrap();
        let mut calls = 0;
        let change = q.set_hw_queues(1, Duration::from_millis(3), &mut || calls += 1);
        assert_eq!(change, Err(ErrorKind::Timeout));
        assert_eq!(calls, 1);
        assert_eq!(q.hw_queues_in_service(), 2, "nothing changed");
        assert_eq!(
            changes(&b),
            [BlockEvent::HwQueuesGaveUp {
                to: 1,
                in_flight: vec![(HwQueue(1), Tag(0))]
            }]
        );
        assert_eq!(q.submit(&read(1), true), Ok(()), "dispatch runs again");
        for t in [0, 1] {
            q.complete(HwQueue(1), Tag(t), BlockStatus::Ok).unwrap();
        }
    }

    #[test]
    fn a_waiting_request_with_no_free_tag_keeps_waiting() {
        let b = SimBlock::new();
        let config = QueueConfig {
            hw_queues: 2,
            depth: 1,
        };
        let q = b.alloc_queues(config, Core::default()).unwrap();
        let _d = b.add_disk(&q, DiskId(1), &SAMPLE_GEOMETRY).unwrap();
        q.submit(&on(0, 0), true).unwrap();
        q.submit(&on(1, 0), true).unwrap();
        q.requeue(HwQueue(0), Tag(0)).unwrap();
        q.requeue(HwQueue(1), Tag(0)).unwrap();
        let change = q.set_hw_queues(1, Duration::ZERO, &mut || {});
        assert_eq!(change.map(|c| c.stuck), Ok(false));
        assert_eq!(q.in_flight(), [(HwQueue(0), Tag(0))]);
        assert_eq!(q.waiting(), [(HwQueue(1), Tag(0))], "one tag, two requests");
        q.complete(HwQueue(0), Tag(0), BlockStatus::Ok).unwrap();
        q.run_waiting();
        assert!(q.waiting().is_empty());
        assert_eq!(q.in_flight(), [(HwQueue(0), Tag(0))]);
        assert!(b.events().contains(&BlockEvent::Retagged {
            from: (HwQueue(1), Tag(0)),
            to: (HwQueue(0), Tag(0))
        }));
        q.complete(HwQueue(0), Tag(0), BlockStatus::Ok).unwrap();
    }
}
