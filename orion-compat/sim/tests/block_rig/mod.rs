//! The rig shared by the tests of the core's block side (`reset.rs`, `block_io.rs`): a
//! controller on the simulated PCI function with I/O queues the core created, the core's
//! handler ([`orion_nvme::block::BlockIo`]) behind the sim's real block layer
//! ([`orion_sim::block::SimQueues`]) with one disk per namespace, and the controller's slots
//! for the reset state machine. The test plays blk-mq (submit) and the interrupt handlers
//! ([`orion_nvme::block::reap`]).

use crate::common::{up, Rig, SimPlatform};
use orion_compat::block::{
    Block, BlockOp, BlockQueues, BlockRequest, BlockStatus, DiskGeometry, DiskId, HwQueue, Tag,
};
use orion_compat::dma::{BusAddr, CoherentMem, Dma, Segment};
use orion_compat::time::Duration;
use orion_compat::ErrorKind;
use orion_compat::Mmio;
use orion_nvme::block::{BlockIo, BlockReset, HwState, HwStorage, TagState};
use orion_nvme::command::CidSlot;
use orion_nvme::controller::{Controller, Disabled, Enabled, NamespaceInfo};
use orion_nvme::io::{disk_geometry, IoQueue};
use orion_nvme::recovery::reset::{Interruptions, NoController, Outcome, Parked, ResetNote, Slots};
use orion_sim::block::{BlockEvent, SimDisk, SimQueues, SubmitError};
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::{NvmeBuilder, SimNvme};
use orion_sim::sync::{SimMutex, SimSpinLock};
use orion_sim::VirtualClock;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Mutex;

pub(crate) type Ctrl<S> = Controller<SimPlatform, S>;
pub(crate) type Live = SimMutex<Option<Ctrl<Enabled>>>;
pub(crate) type Dead = SimMutex<Option<Ctrl<Disabled>>>;

/// The sim's containers for each hardware queue.
pub(crate) struct Store;

impl HwStorage for Store {
    type Mem = SimCoherent;
    type Slots = Vec<CidSlot>;
    type Lists = Vec<SimCoherent>;
    type Tags = Vec<TagState>;
}

pub(crate) type Hw = SimSpinLock<HwState<Store>>;
pub(crate) type Handler = BlockIo<Store, Doorbells, Hw, Vec<Hw>>;

/// The handler's register window: the model's, with doorbell writes that fail on demand.
pub(crate) struct Doorbells {
    nvme: SimNvme,
    /// Writes fail while set.
    pub(crate) fail: AtomicBool,
}

impl Mmio for Doorbells {
    type Error = ErrorKind;

    fn read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        self.nvme.read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        if self.fail.load(SeqCst) {
            return Err(ErrorKind::Gone);
        }
        self.nvme.write32(offset, value)
    }
    fn read64(&self, offset: usize) -> Result<u64, ErrorKind> {
        self.nvme.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) -> Result<(), ErrorKind> {
        if self.fail.load(SeqCst) {
            return Err(ErrorKind::Gone);
        }
        self.nvme.write64(offset, value)
    }
}
pub(crate) type Queues = SimQueues<Handler>;
pub(crate) type Reset<'a> = BlockReset<'a, Queues, SimDisk>;

/// Ring entries per I/O queue (so 15 tags).
pub(crate) const DEPTH: u32 = 16;
/// The platform's I/O timeout: the bound of a remap's wait.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_millis(30_000);

/// A controller with its I/O queues in service, its slots and its block side. Dropped, it
/// powers the controller off (which ends whatever a test left in flight) and the sim then
/// checks that no request is left anywhere.
pub(crate) struct Driver {
    pub(crate) r: Rig,
    pub(crate) live: Live,
    pub(crate) dead: Dead,
    /// Declared before the queues: disks are dropped first.
    pub(crate) disks: Vec<SimDisk>,
    pub(crate) queues: Queues,
    pub(crate) namespaces: Vec<NamespaceInfo>,
    pub(crate) geometry: DiskGeometry,
    /// A 4 KiB buffer the reset tests read into.
    pub(crate) buf: SimCoherent,
    notes: Mutex<Vec<ResetNote>>,
    /// Requests the block layer failed at once because their disk is dead.
    rejected: Mutex<u32>,
}

impl Driver {
    /// Probes a controller built by `b` with `queues` I/O queues, all granted.
    pub(crate) fn probe(b: NvmeBuilder, queues: u16) -> Self {
        Self::probe_with(b, queues, DEPTH, false)
    }

    /// Probes a controller built by `b` with `queues` I/O queues of `depth` ring entries,
    /// on shadow doorbells (Doorbell Buffer Config) if `shadow`.
    pub(crate) fn probe_with(b: NvmeBuilder, queues: u16, depth: u32, shadow: bool) -> Self {
        let (r, mut c) = up(b);
        c.identify().unwrap();
        let granted = c.set_queue_count(queues).unwrap();
        assert_eq!(granted, queues, "the test asks for what the model grants");
        let page = c.page_size();
        let sh = if shadow {
            Some(
                c.setup_shadow_doorbells(queues)
                    .unwrap()
                    .expect("DBBC offered"),
            )
        } else {
            None
        };
        let mut hw = Vec::new();
        for qid in 1..=queues {
            let slots = vec![CidSlot::default(); depth as usize];
            let qp = c.create_io_queue(qid, depth, Some(qid), slots).unwrap();
            let lists = vec![r
                .sim
                .dma
                .alloc_coherent((depth as usize - 1) * page as usize, page as usize)
                .unwrap()];
            let q = IoQueue::new(qp, lists, 1, page).map_err(|_| ()).unwrap();
            let tags = vec![TagState::default(); depth as usize - 1];
            let st = HwState::new(q, Some(qid), tags).map_err(|_| ()).unwrap();
            hw.push(SimSpinLock::new(st));
        }
        let mut namespaces = Vec::new();
        c.for_each_namespace(|n| namespaces.push(n), |id, why| panic!("ns {id}: {why}"))
            .unwrap();
        let geometry = disk_geometry(c.info().unwrap(), &namespaces[0], page);
        c.start_async_events().unwrap();
        let bar = Doorbells {
            nvme: r.nvme.clone(),
            fail: AtomicBool::new(false),
        };
        let mut handler: Handler = BlockIo::new(bar, hw, page);
        if let Some(sh) = sh {
            handler = handler.with_shadow_doorbells(sh);
        }
        let config = handler.config();
        assert_eq!(
            (config.hw_queues, u32::from(config.depth)),
            (queues, depth - 1)
        );
        let q = r
            .sim
            .block
            .alloc_queues(config, handler)
            .map_err(|(e, _)| e)
            .unwrap();
        let disks = namespaces
            .iter()
            .map(|n| {
                let g = disk_geometry(c.info().unwrap(), n, page);
                r.sim.block.add_disk(&q, DiskId(n.nsid), &g).unwrap()
            })
            .collect();
        let buf = r.sim.dma.alloc_coherent(4096, 4096).unwrap();
        Self {
            live: SimMutex::new(Some(c)),
            dead: SimMutex::new(None),
            disks,
            queues: q,
            namespaces,
            geometry,
            buf,
            notes: Mutex::new(Vec::new()),
            rejected: Mutex::new(0),
            r,
        }
    }

    pub(crate) fn clock(&self) -> &VirtualClock {
        &self.r.sim.clock
    }

    pub(crate) fn slots(&self) -> Slots<'_, SimPlatform, Live, Dead> {
        Slots::new(&self.live, &self.dead)
    }

    /// Runs `f` with the core's reset block side over the queues and disks.
    pub(crate) fn with_io<R>(&self, f: impl FnOnce(&Reset<'_>) -> R) -> R {
        let note = |n| self.notes.lock().unwrap().push(n);
        let io = BlockReset::new(&self.queues, &self.disks, IO_TIMEOUT, &note);
        f(&io)
    }

    pub(crate) fn reset(&self) -> Result<Outcome, NoController> {
        self.with_io(|io| self.slots().reset(io))
    }

    pub(crate) fn park(
        &self,
    ) -> Result<Parked<SimPlatform, orion_nvme::block::Taken>, NoController> {
        self.with_io(|io| self.slots().park(io))
    }

    pub(crate) fn unpark(&self, p: Parked<SimPlatform, orion_nvme::block::Taken>) -> Outcome {
        self.with_io(|io| self.slots().unpark(io, p))
    }

    pub(crate) fn give_up(
        &self,
        p: Parked<SimPlatform, orion_nvme::block::Taken>,
    ) -> Interruptions {
        self.with_io(|io| self.slots().give_up(io, p))
    }

    pub(crate) fn power_off(&self) -> Option<Result<(), orion_nvme::controller::CtrlError>> {
        self.with_io(|io| self.slots().power_off(Some(io)))
    }

    pub(crate) fn notes(&self) -> Vec<ResetNote> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }

    pub(crate) fn is_live(&self) -> bool {
        orion_compat::Lock::lock(&self.live, |c| c.is_some())
    }

    pub(crate) fn is_dead(&self) -> bool {
        orion_compat::Lock::lock(&self.dead, |c| c.is_some())
    }

    /// The block layer hands over `request` on the first free tag of `hwq` (a tag held by a
    /// request in flight or waiting is taken); the tag, and what the sim said.
    pub(crate) fn submit_on(
        &self,
        hwq: HwQueue,
        request: BlockRequest<'_>,
        last: bool,
    ) -> (Tag, Result<(), SubmitError>) {
        for t in 0..self.queues.config().depth {
            let rq = BlockRequest {
                hwq,
                tag: Tag(t),
                ..request
            };
            match self.queues.submit(&rq, last) {
                Err(SubmitError::Invalid(ErrorKind::Busy)) => continue,
                Err(SubmitError::DiskDead) => {
                    *self.rejected.lock().unwrap() += 1;
                    return (Tag(t), Err(SubmitError::DiskDead));
                }
                r => return (Tag(t), r),
            }
        }
        panic!("no free tag on {hwq:?}");
    }

    /// A 4 KiB read of `lba` into [`Driver::buf`], on hardware queue `lba % in service`.
    pub(crate) fn submit(&self, lba: u64) -> Result<(), SubmitError> {
        let blocks = 4096 / self.geometry.logical_block_size;
        let seg = [Segment {
            addr: self.buf.bus_addr(),
            len: 4096,
        }];
        let n = u64::from(self.queues.hw_queues_in_service());
        // CAST: below the queue count, a u16.
        let hwq = HwQueue((lba % n) as u16);
        let rq = BlockRequest {
            hwq,
            tag: Tag(0),
            disk: DiskId(self.namespaces[0].nsid),
            op: BlockOp::Read,
            lba,
            blocks,
            fua: false,
            segments: &seg,
        };
        self.submit_on(hwq, rq, true).1
    }

    /// The interrupt handlers: reaps every queue.
    pub(crate) fn reap(&self) -> u32 {
        (0..self.queues.config().hw_queues)
            .map(|q| orion_nvme::block::reap(&self.queues, HwQueue(q)).completed)
            .sum()
    }

    /// Requests in flight, as the platform sees them; checked against the core's count.
    pub(crate) fn in_flight(&self) -> usize {
        let n = self.queues.in_flight().len();
        assert_eq!(self.queues.handler().in_flight(), n, "core and sim agree");
        n
    }

    /// Requests the platform holds back (requeued or waiting for dispatch).
    pub(crate) fn waiting(&self) -> usize {
        self.queues.waiting().len()
    }

    /// Requests completed successfully.
    pub(crate) fn done_ok(&self) -> usize {
        self.r
            .sim
            .block
            .completions()
            .iter()
            .filter(|c| c.2 == BlockStatus::Ok)
            .count()
    }

    /// Requests that failed: completed with an error, failed by the platform because their
    /// disk is dead (waiting, or at once when submitted).
    pub(crate) fn failed(&self) -> usize {
        let events = self.r.sim.block.events();
        let errors = events
            .iter()
            .filter(|e| match e {
                BlockEvent::Completed(_, _, s) => *s != BlockStatus::Ok,
                BlockEvent::FailedDead(..) => true,
                _ => false,
            })
            .count();
        errors + *self.rejected.lock().unwrap() as usize
    }

    /// How many times the core requeued a request.
    pub(crate) fn requeues(&self) -> usize {
        let events = self.r.sim.block.events();
        events
            .iter()
            .filter(|e| matches!(e, BlockEvent::Requeued(..)))
            .count()
    }

    /// The bus address of a coherent buffer, for segments.
    pub(crate) fn addr(c: &SimCoherent, offset: u64) -> BusAddr {
        BusAddr(c.bus_addr().as_u64() + offset)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        // The device goes away: whatever is left in flight or waiting fails.
        let _ = self.power_off();
        assert_eq!(self.queues.handler().in_flight(), 0);
        let events = self.r.sim.block.events();
        assert!(
            !events.iter().any(|e| matches!(
                e,
                BlockEvent::BogusCompletion(..)
                    | BlockEvent::BogusRequeue(..)
                    | BlockEvent::HwQueuesGaveUp { .. }
            )),
            "{events:?}"
        );
    }
}
