//! The driver's block side, generic over the platform: the API's block seam
//! ([`BlockHandler`]) over the core's I/O queues, their completion, the block half of a
//! controller reset ([`ResetIo`]) and the timeout ladder's view of a request ([`Expired`]).
//!
//! Ownership runs one way: the platform's [`BlockQueues`] own the handler ([`BlockIo`]), and
//! the handler owns one [`IoQueue`] per hardware queue (each behind the platform's lock) and
//! the register window for the doorbells. The handler never holds its queues; whatever needs
//! them to end a request takes them as an argument: [`reap`] (the queue's interrupt
//! handler), [`BlockReset`] (the reset) and [`BlockExpired`] (a request whose timer expired).
//!
//! Hardware queue `i` is I/O queue `i + 1`, and a request's tag is its command's tag on that
//! queue. The core has no allocator, so the platform supplies every container
//! ([`HwStorage`], the lock type `L` and the slice of locks `Q`).

use crate::orion::command::{CidSlot, IoOp, IoRequest, Segment};
use crate::orion::controller::{Controller, CtrlError, Enabled, Platform};
use crate::orion::io::{IoQueue, MAX_SEGMENTS};
use crate::orion::queue::ShadowDoorbells;
use crate::orion::recovery::ladder::Expired;
use crate::orion::recovery::reset::{Interruptions, Remapped, ResetIo, ResetNote};
use crate::orion::recovery::{after_reset, Interrupted};
use crate::orion_compat::block::{
    BlockHandler, BlockOp, BlockQueues, BlockRequest, BlockStatus, Disk, HwQueue, QueueConfig, Tag,
    TimeoutAction,
};
use crate::orion_compat::dma::{CoherentMem, Dma};
use crate::orion_compat::time::Duration;
use crate::orion_compat::{Lock, Mmio};
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering::Relaxed};

/// The status a request gets when the core ends it because of a reset or a refusal: the
/// block layer's plain I/O error (what the reference driver reports).
pub const FAILED: BlockStatus = BlockStatus::IoError;

/// Completions reaped under the queue's lock before they are ended outside it.
const REAP_BATCH: usize = 32;

/// The containers a platform gives each hardware queue.
pub trait HwStorage: 'static {
    /// Coherent DMA memory (queue rings, PRP list pages, shadow doorbells).
    type Mem: CoherentMem + Send + Sync;
    /// The CID slots, one per tag of the ring.
    type Slots: AsRef<[CidSlot]> + AsMut<[CidSlot]>;
    /// The PRP list memory of every tag (see [`IoQueue::new`]).
    type Lists: AsRef<[Self::Mem]>;
    /// The core's per-tag bookkeeping, at least one entry per tag of the queue.
    type Tags: AsRef<[TagState]> + AsMut<[TagState]>;
}

/// The core's I/O queue over a platform's [`HwStorage`].
pub type Queue<T> =
    IoQueue<<T as HwStorage>::Mem, <T as HwStorage>::Slots, <T as HwStorage>::Lists>;

/// What the core remembers about the request on one tag.
///
/// The API carries no per-request driver data, so what must outlive a requeue (the retry
/// count) is kept by hardware queue and tag: a request the platform dispatches again on
/// another queue or tag starts its count again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TagState {
    /// Resets this request went through.
    retries: u8,
    /// The retry count of a request requeued from this tag, taken by its next dispatch.
    carry: Option<u8>,
    /// Accepted on a hardware queue with no I/O queue behind it (out of service since a
    /// reset granted fewer queues): held here until [`BlockReset`]'s remap requeues it.
    orphan: bool,
    /// An Abort was sent for this submission (the timeout ladder's second step).
    aborted: bool,
}

/// What a queue keeps across a reset, or while out of service: its CID slots (their
/// generations go on, so a completion from before the reset never matches a command after
/// it), its PRP list memory and its shape.
pub struct Kept<T: HwStorage> {
    slots: T::Slots,
    lists: T::Lists,
    per_tag: usize,
    depth: u32,
}

/// One hardware queue's state, behind the platform's lock.
///
/// # Invariants
///
/// At most one of `q` and `parked` is `Some`: the queue is live on the controller, or kept
/// for re-creation (both are `None` only after a failed re-creation lost it).
pub struct HwState<T: HwStorage> {
    qid: u16,
    vector: Option<u16>,
    q: Option<Queue<T>>,
    parked: Option<Kept<T>>,
    tags: T::Tags,
    /// Commands were queued with `last` unset and the doorbell is not rung yet.
    owed: bool,
}

impl<T: HwStorage> HwState<T> {
    /// The state of a queue created on the controller (`q`, with the interrupt `vector` it
    /// was created with) and `tags`, which must have an entry for each of `q`'s tags; if it
    /// has fewer, both are handed back.
    #[allow(
        clippy::result_large_err,
        reason = "a refusal hands the queue back; its size differs per platform"
    )]
    pub fn new(
        q: Queue<T>,
        vector: Option<u16>,
        tags: T::Tags,
    ) -> Result<Self, (Queue<T>, T::Tags)> {
        if (tags.as_ref().len() as u64) < u64::from(q.tags()) {
            return Err((q, tags));
        }
        // INVARIANT: live, nothing parked.
        Ok(Self {
            qid: q.pair().qid(),
            vector,
            q: Some(q),
            parked: None,
            tags,
            owed: false,
        })
    }

    /// Requests in flight on this queue: commands on the device plus requests held as
    /// orphans.
    fn in_flight(&self) -> usize {
        let on_device = self.q.as_ref().map_or(0, |q| q.pair().in_flight());
        on_device + self.tags.as_ref().iter().filter(|t| t.orphan).count()
    }
}

/// Counters the handler keeps for the platform's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCounts {
    /// Completion entries the device should not have posted, and completions the platform
    /// refused (the request was not in flight): each ended nothing.
    pub bogus: u32,
    /// Requests refused in [`BlockHandler::queue_rq`].
    pub refused: u32,
    /// Doorbell writes that failed (the command then times out).
    pub ring_failed: u32,
    /// Calls to [`BlockHandler::timeout`].
    pub timeouts: u32,
}

/// The core's [`BlockHandler`]: one [`IoQueue`] per hardware queue, each behind a lock `L`
/// of the platform's (one taken from interrupt handlers, so IRQ-safe), in a slice `Q`, and
/// the register window `M` for the doorbells.
///
/// Disk `DiskId(n)` is namespace `n`.
pub struct BlockIo<T: HwStorage, M, L, Q> {
    mmio: M,
    shadow: Option<ShadowDoorbells<T::Mem>>,
    queues: Q,
    /// Queues in service on the controller (a prefix of `queues`).
    live: AtomicU16,
    page: u64,
    bogus: AtomicU32,
    refused: AtomicU32,
    ring_failed: AtomicU32,
    timeouts: AtomicU32,
    storage: PhantomData<fn() -> (T, L)>,
}

impl<T, M, L, Q> BlockIo<T, M, L, Q>
where
    T: HwStorage,
    M: Mmio,
    L: Lock<HwState<T>>,
    Q: AsRef<[L]>,
{
    /// A handler over `queues` (hardware queue `i` is `queues[i]`, all live on the
    /// controller), ringing doorbells through `mmio`, for a controller with memory page size
    /// `page`.
    pub fn new(mmio: M, queues: Q, page: u64) -> Self {
        // CAST: saturated to the u16 a queue count is.
        let live = u16::try_from(queues.as_ref().len()).unwrap_or(u16::MAX);
        Self {
            mmio,
            shadow: None,
            queues,
            live: AtomicU16::new(live),
            page,
            bogus: AtomicU32::new(0),
            refused: AtomicU32::new(0),
            ring_failed: AtomicU32::new(0),
            timeouts: AtomicU32::new(0),
            storage: PhantomData,
        }
    }

    /// Uses the shadow doorbell buffers `sh` (from
    /// [`Controller::setup_shadow_doorbells`], set up before the queues were created): the
    /// doorbells are then written there, and through MMIO only when the controller's EventIdx
    /// asks for it. A reset hands them to the controller again.
    pub fn with_shadow_doorbells(mut self, sh: ShadowDoorbells<T::Mem>) -> Self {
        self.shadow = Some(sh);
        self
    }

    /// The shape to create the platform's queues with: one hardware queue per I/O queue,
    /// and as many tags as the smallest queue has.
    pub fn config(&self) -> QueueConfig {
        let depth = self
            .queues
            .as_ref()
            .iter()
            .map(|l| l.lock(|h| h.q.as_ref().map_or(0, |q| q.tags())))
            .min()
            .unwrap_or(0);
        QueueConfig {
            hw_queues: self.queue_count(),
            // CAST: saturated; a ring is at most 65536 entries.
            depth: u16::try_from(depth).unwrap_or(u16::MAX),
        }
    }

    /// The register window the doorbells are rung through.
    pub fn mmio(&self) -> &M {
        &self.mmio
    }

    /// The I/O queues the handler has (created at probe).
    pub fn queue_count(&self) -> u16 {
        u16::try_from(self.queues.as_ref().len()).unwrap_or(u16::MAX)
    }

    /// The I/O queues in service on the controller.
    pub fn live_queues(&self) -> u16 {
        self.live.load(Relaxed)
    }

    /// The submission queue ID behind hardware queue `hwq` (what an Abort names).
    pub fn sqid(&self, hwq: HwQueue) -> Option<u16> {
        self.queue(hwq).map(|l| l.lock(|h| h.qid))
    }

    /// Requests in flight on every queue, as the core sees them.
    pub fn in_flight(&self) -> usize {
        self.queues
            .as_ref()
            .iter()
            .map(|l| l.lock(|h| h.in_flight()))
            .sum()
    }

    /// The counters so far.
    pub fn counts(&self) -> BlockCounts {
        BlockCounts {
            bogus: self.bogus.load(Relaxed),
            refused: self.refused.load(Relaxed),
            ring_failed: self.ring_failed.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
        }
    }

    fn queue(&self, hwq: HwQueue) -> Option<&L> {
        self.queues.as_ref().get(usize::from(hwq.0))
    }

    fn ring(&self, q: &mut Queue<T>) {
        if q.ring(&self.mmio, self.shadow.as_ref()).is_err() {
            self.ring_failed.fetch_add(1, Relaxed);
        }
    }

    fn submit(&self, r: &BlockRequest<'_>, last: bool) -> Result<(), BlockStatus> {
        let l = self.queue(r.hwq).ok_or(FAILED)?;
        let op = match r.op {
            BlockOp::Read => IoOp::Read,
            BlockOp::Write => IoOp::Write,
            BlockOp::Flush => IoOp::Flush,
            BlockOp::Discard => IoOp::Discard,
            BlockOp::WriteZeroes => IoOp::WriteZeroes,
        };
        let mut segs = [Segment { addr: 0, len: 0 }; MAX_SEGMENTS as usize];
        let n = r.segments.len();
        if n > segs.len() {
            return Err(FAILED);
        }
        for (d, s) in segs.iter_mut().zip(r.segments) {
            *d = Segment {
                addr: s.addr.as_u64(),
                len: s.len,
            };
        }
        let req = IoRequest {
            op,
            nsid: r.disk.0,
            lba: r.lba,
            blocks: r.blocks,
            fua: r.fua,
            segs: segs.get(..n).unwrap_or_default(),
        };
        let out_of_service = r.hwq.0 >= self.live_queues();
        let tag = r.tag.0;
        l.lock(|h| {
            let HwState { q, tags, owed, .. } = h;
            let t = tags.as_mut().get_mut(usize::from(tag)).ok_or(FAILED)?;
            if t.orphan {
                return Err(FAILED);
            }
            let retries = t.carry.take().unwrap_or(0);
            let Some(q) = q.as_mut() else {
                if !out_of_service {
                    t.carry = (retries > 0).then_some(retries);
                    return Err(FAILED);
                }
                // The queue went away at a reset and the platform has not remapped yet: keep
                // the request until the remap hands it back.
                *t = TagState {
                    retries,
                    orphan: true,
                    ..TagState::default()
                };
                return Ok(());
            };
            if let Err(e) = q.submit(tag, &req) {
                t.carry = (retries > 0).then_some(retries);
                return Err(e.block_status());
            }
            *t = TagState {
                retries,
                ..TagState::default()
            };
            if last {
                *owed = false;
                self.ring(q);
            } else {
                *owed = true;
            }
            Ok(())
        })
    }

    /// Takes the next request in flight on queue `i` at or after `from` off its queue (its
    /// completion, should it come, is refused): its tag and retry count.
    fn take_next(&self, l: &L, from: usize) -> Option<(u16, u8)> {
        l.lock(|h| {
            let HwState { q, tags, .. } = h;
            tags.as_mut()
                .iter_mut()
                .enumerate()
                .skip(from)
                .find_map(|(i, t)| {
                    // CAST: tags come from a u16 depth.
                    let tag = u16::try_from(i).ok()?;
                    let on_device = q.as_mut().is_some_and(|q| q.cancel(tag));
                    if on_device || t.orphan {
                        t.orphan = false;
                        Some((tag, t.retries))
                    } else {
                        None
                    }
                })
        })
    }

    /// The next orphan on queue `l` at or after `from`, no longer an orphan: its tag, with
    /// its retry count carried to its next dispatch.
    fn take_orphan(&self, l: &L, from: usize) -> Option<u16> {
        l.lock(|h| {
            h.tags
                .as_mut()
                .iter_mut()
                .enumerate()
                .skip(from)
                .find(|(_, t)| t.orphan)
                .and_then(|(i, t)| {
                    t.orphan = false;
                    t.carry = Some(t.retries);
                    u16::try_from(i).ok()
                })
        })
    }
}

impl<T, M, L, Q> BlockHandler for BlockIo<T, M, L, Q>
where
    T: HwStorage,
    M: Mmio + Send + Sync + 'static,
    L: Lock<HwState<T>> + 'static,
    Q: AsRef<[L]> + Send + Sync + 'static,
{
    /// Builds the request's command and queues it on its hardware queue under its tag,
    /// ringing the doorbell if `last`; takes only the queue's lock and never sleeps.
    ///
    /// Refusals: a build or queue error maps through
    /// [`SubmitError::block_status`](crate::orion::io::SubmitError::block_status) (a full
    /// queue is [`BlockStatus::DeviceResource`]); a queue or tag the core does not have, more
    /// segments than [`MAX_SEGMENTS`], or a queue that is in service but not live is
    /// [`FAILED`].
    ///
    /// A request on a hardware queue that went out of service at a reset (the controller
    /// granted fewer queues, and the platform has not remapped yet) is accepted and held
    /// without reaching the device; [`BlockReset`]'s remap hands it back with
    /// [`BlockQueues::requeue`].
    fn queue_rq(&self, request: &BlockRequest<'_>, last: bool) -> Result<(), BlockStatus> {
        let r = self.submit(request, last);
        if r.is_err() {
            self.refused.fetch_add(1, Relaxed);
        }
        r
    }

    /// Rings the doorbell owed by requests queued with `last` unset.
    fn commit_rqs(&self, hwq: HwQueue) {
        if let Some(l) = self.queue(hwq) {
            l.lock(|h| {
                if let (true, Some(q)) = (h.owed, h.q.as_mut()) {
                    h.owed = false;
                    self.ring(q);
                }
            });
        }
    }

    /// Always [`TimeoutAction::ResetTimer`]: the handler cannot end a request itself (it does
    /// not hold its queues), so it answers as the ladder's first step does for a command
    /// still outstanding. The full ladder (reap, Abort, reset) runs where the queues are at
    /// hand: the platform's timeout path calls
    /// [`ladder::expired`](crate::orion::recovery::ladder::expired) with a [`BlockExpired`].
    /// Counted in [`BlockCounts::timeouts`].
    fn timeout(&self, _hwq: HwQueue, _tag: Tag) -> TimeoutAction {
        self.timeouts.fetch_add(1, Relaxed);
        TimeoutAction::ResetTimer
    }
}

/// The handler behind a platform's queues.
type Handler<B> = <B as BlockQueues>::Handler;

/// What one [`reap`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReapCounts {
    /// Requests ended through [`BlockQueues::complete`].
    pub completed: u32,
    /// Entries that ended nothing (counted in [`BlockCounts::bogus`] too).
    pub bogus: u32,
}

/// The interrupt handler of hardware queue `hwq`: reaps its completion queue and ends each
/// request through [`BlockQueues::complete`] with its status. Never sleeps; takes the
/// queue's lock in short stretches and ends requests outside it.
///
/// A completion the device should not have posted (a bogus CID) or one the platform refuses
/// is counted and ends nothing. A `hwq` the core does not have, or a queue not live, reaps
/// nothing.
pub fn reap<T, M, L, Q, B>(queues: &B, hwq: HwQueue) -> ReapCounts
where
    T: HwStorage,
    M: Mmio + Send + Sync + 'static,
    L: Lock<HwState<T>> + 'static,
    Q: AsRef<[L]> + Send + Sync + 'static,
    B: BlockQueues<Handler = BlockIo<T, M, L, Q>>,
{
    let io: &Handler<B> = queues.handler();
    let mut out = ReapCounts::default();
    let Some(l) = io.queue(hwq) else {
        return out;
    };
    loop {
        let mut batch = [(0u16, BlockStatus::Ok); REAP_BATCH];
        let mut got = 0;
        let mut bogus = 0u32;
        let consumed = l.lock(|h| {
            let Some(q) = h.q.as_mut() else { return 0 };
            q.reap(
                &io.mmio,
                io.shadow.as_ref(),
                REAP_BATCH,
                |tag, status, _, _| {
                    if let Some(b) = batch.get_mut(got) {
                        *b = (tag, status);
                        got += 1;
                    }
                },
                |_| bogus += 1,
            )
            .unwrap_or(0)
        });
        for &(tag, status) in batch.iter().take(got) {
            if queues.complete(hwq, Tag(tag), status).is_ok() {
                out.completed += 1;
            } else {
                bogus += 1;
            }
        }
        out.bogus += bogus;
        io.bogus.fetch_add(bogus, Relaxed);
        if consumed < REAP_BATCH {
            return out;
        }
    }
}

/// Reaps every queue the handler has.
fn reap_all<T, M, L, Q, B>(queues: &B)
where
    T: HwStorage,
    M: Mmio + Send + Sync + 'static,
    L: Lock<HwState<T>> + 'static,
    Q: AsRef<[L]> + Send + Sync + 'static,
    B: BlockQueues<Handler = BlockIo<T, M, L, Q>>,
{
    for i in 0..queues.handler().queue_count() {
        reap(queues, HwQueue(i));
    }
}

/// Proof that [`ResetIo::take`] ran: the queues keep what they need in their own state.
#[derive(Debug)]
pub struct Taken(());

/// The block side of a reset ([`ResetIo`]) over a platform's queues `B` (whose handler is a
/// [`BlockIo`]) and its disks `D`.
///
/// It serves controllers whose queues have interrupt vectors of their own (MSI-X): its
/// [`ResetIo::mask`] does nothing (pin-based interrupts are not masked at the controller).
pub struct BlockReset<'a, B, D> {
    queues: &'a B,
    disks: &'a [D],
    bound: Duration,
    notes: &'a dyn Fn(ResetNote),
}

impl<'a, B, D> BlockReset<'a, B, D> {
    /// The reset's block side over `queues`, marking `disks` dead when the controller is
    /// given up; a remap waits at most `bound` (the platform's I/O timeout) for requests in
    /// flight. `notes` hears what the reset reports.
    pub fn new(
        queues: &'a B,
        disks: &'a [D],
        bound: Duration,
        notes: &'a dyn Fn(ResetNote),
    ) -> Self {
        Self {
            queues,
            disks,
            bound,
            notes,
        }
    }
}

impl<T, M, L, Q, B, D> BlockReset<'_, B, D>
where
    T: HwStorage,
    M: Mmio + Send + Sync + 'static,
    L: Lock<HwState<T>> + 'static,
    Q: AsRef<[L]> + Send + Sync + 'static,
    B: BlockQueues<Handler = BlockIo<T, M, L, Q>>,
{
    /// Hands every orphan back to the platform: how many went back, how many it refused.
    fn requeue_orphans(&self) -> (u32, u32) {
        let io = self.queues.handler();
        let (mut back, mut refused) = (0, 0);
        for (i, l) in io.queues.as_ref().iter().enumerate() {
            let hwq = HwQueue(u16::try_from(i).unwrap_or(u16::MAX));
            let mut from = 0;
            while let Some(tag) = io.take_orphan(l, from) {
                from = usize::from(tag) + 1;
                match self.queues.requeue(hwq, Tag(tag)) {
                    Ok(()) => back += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        (back, refused)
    }
}

impl<P, T, M, L, Q, B, D> ResetIo<P> for BlockReset<'_, B, D>
where
    P: Platform,
    T: HwStorage<Mem = <P::Dma as Dma>::Coherent>,
    M: Mmio + Send + Sync + 'static,
    L: Lock<HwState<T>> + 'static,
    Q: AsRef<[L]> + Send + Sync + 'static,
    B: BlockQueues<Handler = BlockIo<T, M, L, Q>>,
    D: Disk,
{
    type Kept = Taken;

    /// Quiesces the queues, then reaps every queue.
    fn quiesce(&self) {
        self.queues.quiesce();
        reap_all(self.queues);
    }

    /// Nothing: see [`BlockReset`].
    fn mask(&self, _ctrl: &Controller<P, Enabled>) {}

    /// Takes every request in flight off its queue (orphans included) and requeues it or
    /// fails it with [`FAILED`] as [`after_reset`] decides; a requeue the platform refuses
    /// counts as failed. Each live queue is then parked, keeping its slots and list memory.
    fn take(&self) -> (Taken, Interruptions) {
        let io = self.queues.handler();
        let mut n = Interruptions::default();
        for (i, l) in io.queues.as_ref().iter().enumerate() {
            let hwq = HwQueue(u16::try_from(i).unwrap_or(u16::MAX));
            let mut from = 0;
            while let Some((tag, retries)) = io.take_next(l, from) {
                from = usize::from(tag) + 1;
                let ok = match after_reset(retries, false) {
                    Interrupted::Retry => {
                        l.lock(|h| {
                            if let Some(t) = h.tags.as_mut().get_mut(usize::from(tag)) {
                                t.carry = Some(retries.saturating_add(1));
                            }
                        });
                        self.queues.requeue(hwq, Tag(tag)).is_ok()
                    }
                    Interrupted::Fail => {
                        let _ = self.queues.complete(hwq, Tag(tag), FAILED);
                        false
                    }
                };
                if ok {
                    n.retried += 1;
                } else {
                    n.failed += 1;
                }
            }
            // The rings' memory is freed outside the lock: freeing may sleep.
            let Some(q) = l.lock(|h| {
                h.owed = false;
                h.q.take()
            }) else {
                continue;
            };
            let per_tag = q.per_tag();
            let (qp, lists) = q.into_parts();
            let depth = qp.depth();
            let (sq, cq, slots) = qp.into_parts();
            drop((sq, cq));
            // INVARIANT: the queue moves from live to parked.
            l.lock(|h| {
                h.parked = Some(Kept {
                    slots,
                    lists,
                    per_tag,
                    depth,
                })
            });
        }
        (Taken(()), n)
    }

    fn queue_count(&self) -> u16 {
        self.queues.handler().queue_count()
    }

    fn live_queues(&self) -> u16 {
        self.queues.handler().live_queues()
    }

    /// Hands the shadow doorbells (if any) to the controller again, then re-creates the
    /// first `granted` queues (at most as many as probe created) over what they kept; the
    /// rest stay parked, out of service. No queue granted, or a queue whose
    /// state was lost, is an error.
    fn restore(
        &self,
        ctrl: &mut Controller<P, Enabled>,
        _kept: Taken,
        granted: u16,
    ) -> Result<(), CtrlError> {
        let io = self.queues.handler();
        let n = usize::from(granted).min(io.queues.as_ref().len());
        if n == 0 {
            return Err(CtrlError::Invalid("no I/O queue granted"));
        }
        if let Some(sh) = &io.shadow {
            ctrl.restore_shadow_doorbells(sh)?;
        }
        for (i, l) in io.queues.as_ref().iter().enumerate() {
            if i >= n {
                if !l.lock(|h| h.parked.is_some()) {
                    return Err(CtrlError::Invalid("queue state lost"));
                }
                continue;
            }
            let (qid, vector, k) = l.lock(|h| (h.qid, h.vector, h.parked.take()));
            let k = k.ok_or(CtrlError::Invalid("queue state lost"))?;
            let qp = ctrl.create_io_queue(qid, k.depth, vector, k.slots)?;
            let q = IoQueue::new(qp, k.lists, k.per_tag, io.page).map_err(|(qp, _)| {
                let _ = ctrl.delete_io_queue(qp);
                CtrlError::Invalid("I/O queue list memory")
            })?;
            // INVARIANT: parked was taken above; the queue is live again.
            l.lock(|h| h.q = Some(q));
        }
        // Relaxed: dispatch is stopped; resuming it (through the platform's locks) orders
        // this store before the next `queue_rq`.
        // CAST: n <= granted, a u16.
        io.live.store(n as u16, Relaxed);
        Ok(())
    }

    /// Marks every disk dead first if `dead`, then resumes the queues.
    fn resume(&self, dead: bool) {
        if dead {
            for d in self.disks {
                d.mark_dead();
            }
        }
        self.queues.resume();
    }

    /// When the queues in service on the controller differ from the platform's: reaps every
    /// queue, hands the orphans back, and changes the platform's count with
    /// [`BlockQueues::set_hw_queues`], waiting at most the bound. If the bound passes, the
    /// queues are reaped again (an interrupt may have been missed) and orphans handed back;
    /// only if requests are still in flight then is `stuck` called with the bound in
    /// milliseconds. The retry counts kept on queues out of service are dropped afterwards.
    fn remap(&self, stuck: &mut dyn FnMut(u32)) -> Option<Remapped> {
        let io = self.queues.handler();
        let to = io.live_queues();
        let from = self.queues.hw_queues_in_service();
        if from == to || to == 0 {
            return None;
        }
        reap_all(self.queues);
        let (mut resubmitted, mut failed) = self.requeue_orphans();
        let ms = u32::try_from(self.bound.as_millis()).unwrap_or(u32::MAX);
        let r = self.queues.set_hw_queues(to, self.bound, &mut || {
            reap_all(self.queues);
            let (b, f) = self.requeue_orphans();
            resubmitted += b;
            failed += f;
            if io.in_flight() > 0 {
                stuck(ms);
            }
        });
        for l in io.queues.as_ref().iter().skip(usize::from(to)) {
            l.lock(|h| h.tags.as_mut().iter_mut().for_each(|t| t.carry = None));
        }
        let now = r.map_or_else(|_| self.queues.hw_queues_in_service(), |c| c.to);
        Some(Remapped {
            from: u32::from(from),
            to: u32::from(now),
            resubmitted,
            failed,
        })
    }

    fn note(&self, note: ResetNote) {
        (self.notes)(note);
    }
}

/// A request whose timer expired, as the timeout ladder
/// ([`ladder::expired`](crate::orion::recovery::ladder::expired)) sees it: tag `tag` on
/// hardware queue `hwq` of `queues`.
pub struct BlockExpired<'a, B> {
    queues: &'a B,
    hwq: HwQueue,
    tag: Tag,
}

impl<'a, B> BlockExpired<'a, B> {
    /// The request on `tag` of `hwq`.
    pub fn new(queues: &'a B, hwq: HwQueue, tag: Tag) -> Self {
        Self { queues, hwq, tag }
    }
}

impl<T, M, L, Q, B> Expired for BlockExpired<'_, B>
where
    T: HwStorage,
    M: Mmio + Send + Sync + 'static,
    L: Lock<HwState<T>> + 'static,
    Q: AsRef<[L]> + Send + Sync + 'static,
    B: BlockQueues<Handler = BlockIo<T, M, L, Q>>,
{
    /// Reaps the request's queue, then looks for its command on the device.
    fn reap_and_find(&mut self, cancel: bool) -> Option<u16> {
        reap(self.queues, self.hwq);
        let tag = self.tag.0;
        self.queues.handler().queue(self.hwq)?.lock(|h| {
            let q = h.q.as_mut()?;
            let cid = q.cid_of(tag)?;
            if cancel {
                q.cancel(tag);
            }
            Some(cid)
        })
    }

    fn aborted(&self) -> bool {
        let tag = usize::from(self.tag.0);
        self.queues
            .handler()
            .queue(self.hwq)
            .is_some_and(|l| l.lock(|h| h.tags.as_ref().get(tag).is_some_and(|t| t.aborted)))
    }

    fn set_aborted(&mut self) {
        let tag = usize::from(self.tag.0);
        if let Some(l) = self.queues.handler().queue(self.hwq) {
            l.lock(|h| {
                if let Some(t) = h.tags.as_mut().get_mut(tag) {
                    t.aborted = true;
                }
            });
        }
    }

    /// Ends the request with [`BlockStatus::Timeout`].
    fn fail_timed_out(&mut self) {
        let _ = self
            .queues
            .complete(self.hwq, self.tag, BlockStatus::Timeout);
    }
}
