//! The block side on the host: a recorder standing in for blk-mq.
//!
//! A test plays the block layer: it sends requests to the core with
//! [`SimQueues::submit`] (checked against the disk's geometry, as blk-mq guarantees), and
//! reads back what the core did — completions, disks added and resized — from the
//! [`SimBlock`]'s event log.

use crate::clock::lock;
use crate::context::{self, AtomicSection};
use orion_compat::block::{
    Block, BlockHandler, BlockQueues, BlockRequest, BlockStatus, Disk, DiskGeometry, DiskId,
    HwQueue, QueueConfig, Tag, TimeoutAction,
};
use orion_compat::ErrorKind;
use std::collections::BTreeMap;
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
}

/// The sim's [`Block`]: records everything in one event log. Cloning gives another handle to
/// the same log.
#[derive(Clone, Debug, Default)]
pub struct SimBlock {
    events: Arc<Mutex<Vec<BlockEvent>>>,
}

impl SimBlock {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
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

struct QueuesState {
    /// Per hardware queue, per tag: the disk of the request in flight.
    in_flight: Vec<Vec<Option<DiskId>>>,
    disks: BTreeMap<DiskId, DiskState>,
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
}

/// Hardware queues on a [`SimBlock`], dispatching to the core's handler.
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
    /// Plays blk-mq's `queue_rq`: checks `request` as blk-mq guarantees it, marks it in
    /// flight and hands it to the core in a context that must not sleep.
    pub fn submit(&self, request: &BlockRequest<'_>, last: bool) -> Result<(), SubmitError> {
        {
            let mut s = lock(&self.state);
            let disk = *s
                .disks
                .get(&request.disk)
                .ok_or(SubmitError::Invalid(ErrorKind::OutOfRange))?;
            let slot = s
                .in_flight
                .get_mut(usize::from(request.hwq.0))
                .and_then(|q| q.get_mut(usize::from(request.tag.0)))
                .ok_or(SubmitError::Invalid(ErrorKind::OutOfRange))?;
            if slot.is_some() {
                return Err(SubmitError::Invalid(ErrorKind::Busy));
            }
            if disk.dead {
                return Err(SubmitError::DiskDead);
            }
            request
                .check(&disk.geometry)
                .map_err(SubmitError::Invalid)?;
            *slot = Some(request.disk);
        }
        let result = {
            let _serial = lock(&self.dispatch[usize::from(request.hwq.0)]);
            let _atomic = AtomicSection::enter();
            self.handler.queue_rq(request, last)
        };
        if let Err(status) = result {
            let mut s = lock(&self.state);
            if let Some(slot) = s
                .in_flight
                .get_mut(usize::from(request.hwq.0))
                .and_then(|q| q.get_mut(usize::from(request.tag.0)))
            {
                *slot = None;
            }
            drop(s);
            self.block
                .record(BlockEvent::Refused(request.hwq, request.tag, status));
            return Err(SubmitError::Refused(status));
        }
        Ok(())
    }

    /// Plays blk-mq's `commit_rqs` for `hwq`.
    ///
    /// # Panics
    ///
    /// If `hwq` is out of range.
    pub fn commit(&self, hwq: HwQueue) {
        let _serial = lock(&self.dispatch[usize::from(hwq.0)]);
        let _atomic = AtomicSection::enter();
        self.handler.commit_rqs(hwq);
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
            .in_flight
            .get(usize::from(hwq.0))
            .and_then(|q| q.get(usize::from(tag.0)))
            .copied()
            .flatten()
    }

    /// The requests in flight, by queue then tag.
    pub fn in_flight(&self) -> Vec<(HwQueue, Tag)> {
        let s = lock(&self.state);
        let mut out = Vec::new();
        for (q, tags) in s.in_flight.iter().enumerate() {
            for (t, d) in tags.iter().enumerate() {
                if d.is_some() {
                    // CAST: both come from u16 counts in the queue config.
                    out.push((HwQueue(q as u16), Tag(t as u16)));
                }
            }
        }
        out
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
        let mut s = lock(&self.state);
        let slot = s
            .in_flight
            .get_mut(usize::from(hwq.0))
            .and_then(|q| q.get_mut(usize::from(tag.0)))
            .filter(|slot| slot.is_some());
        match slot {
            Some(slot) => {
                *slot = None;
                drop(s);
                self.block.record(BlockEvent::Completed(hwq, tag, status));
                Ok(())
            }
            None => {
                drop(s);
                self.block
                    .record(BlockEvent::BogusCompletion(hwq, tag, status));
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
        let busy = s.in_flight.iter().flatten().filter(|d| d.is_some()).count();
        assert!(
            busy == 0,
            "orion-sim: block queues dropped with {busy} requests in flight"
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
        if let Some(d) = lock(&self.state).disks.get_mut(&self.id) {
            d.dead = true;
        }
        self.block.record(BlockEvent::DiskDead(self.id));
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
            .filter(|d| **d == Some(self.id))
            .count();
        assert!(
            busy == 0,
            "orion-sim: disk {:?} removed with {busy} requests in flight (del_gendisk would hang)",
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
}
