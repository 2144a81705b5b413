// SPDX-License-Identifier: GPL-2.0

//! Block I/O on Linux: interrupt vectors, the I/O queues, a blk-mq tag set and one gendisk per
//! namespace.
//!
//! The kernel crate's `block::mq` cannot set queue limits, has no timeout or `map_queues` hook
//! and no per-request driver data (see KERNEL-API-MAP §4), so this module drives blk-mq
//! through the driver's own wrappers ([`crate::bindings::mq`]): [`Io`] implements their
//! [`mq::Ops`]. The NVMe work (building commands, PRP lists, CIDs, reaping, status mapping) is
//! the core's [`IoQueue`]; this module only moves requests between blk-mq and it.
//!
//! Lifetimes: the [`Io`] value is boxed and never moves. Its address is the tag set's driver
//! data, which every callback gets; each [`HwQueue`] is shared with its interrupt handler.
//! [`Io::teardown`] removes the disks, frees the tag set and the interrupts before the queues,
//! so no callback can run once the memory those pointers name is freed.
//!
//! The layer above (the controller's state, the ioctls, the nodes) is reached only through
//! [`Owner`], which it implements: this module imports nothing above it.

use crate::bindings::blk::{status_to_errno, DrvRequest, Queue as BlkQueue};
use crate::bindings::mq::{
    self, BioList, DiskParams, GenDisk, HwCtx, MapError, MapType, Owned, QueueMaps, Refused,
    Request, SgTable, TagSet, TagSetParams, TimedOut, TimeoutReturn,
};
use crate::bindings::sysfs::GroupList;
use crate::mmio::{Bar0, BoundPci};
use crate::orion::command::{CidSlot, IoOp, IoRequest, Segment};
use crate::orion::controller::{Controller, ControllerInfo, CtrlError, Enabled, NamespaceInfo};
use crate::orion::interrupt;
use crate::orion::io::{self, IoQueue};
use crate::orion::namespace::{self, Change, Present, RescanCount};
use crate::orion::queue::ShadowDoorbells;
use crate::orion::recovery::ladder::{self, Expired, LadderHost, LadderNote};
use crate::orion::recovery::reset::{Interruptions, Remapped, ResetIo, ResetNote};
use crate::orion::recovery::{self, Interrupted};
use crate::orion::spec::sqe::Sqe;
use crate::orion_compat::block::{BlockStatus, TimeoutAction};
use crate::orion_compat::irq::{IrqHandler, IrqKind, IrqKinds, IrqReturn, VectorRequest};
use crate::orion_compat::{Dma as _, IrqVectors as _, Lock as _, Locks as _, Pci as _};
use crate::pcidev::{LinuxPci, LinuxRegistration, LinuxVectors};
use crate::platform::{LinuxCoherent, LinuxPlatform, Show};
use crate::sync::{LinuxMutex, LinuxSpin, LinuxSync};
use core::ffi::{c_int, c_uint};
use core::ptr;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::sync::ArcBorrow;
use kernel::{bindings, device::Bound, pci, prelude::*, str::CString, sync::Arc};

pub(crate) mod nowait;

/// What the block layer needs from the driver state above it, which it names only through
/// this trait: bookkeeping of the disks (for the controller node's I/O commands), the disks'
/// front-ends (their ioctls and generic nodes), and the controller's side of the timeout
/// ladder.
///
/// Every method may sleep unless it says otherwise.
pub(crate) trait Owner: Send + Sync + Sized + 'static {
    /// What a disk's front-end keeps while the disk exists; dropped before the disk is
    /// removed.
    type DiskFront: Send;

    /// The block layer has `io_queues` I/O queues of `depth` entries in service (at setup,
    /// and after a reset that changed their number). Never sleeps.
    fn queues_changed(&self, io_queues: u32, depth: u32);

    /// A disk was added for namespace `nsid` on the request queue `q`; an error removes it
    /// again.
    fn disk_added(&self, nsid: u32, q: nowait::QueueRef) -> Result;

    /// Registers the front-end of namespace `nsid`'s disk under the PCI device (after
    /// [`Owner::disk_added`]); an error only leaves the disk without one.
    fn disk_front(
        this: &Arc<Self>,
        nsid: u32,
        pdev: &pci::Device<Bound>,
    ) -> Result<Self::DiskFront>;

    /// Namespace `nsid`'s disk is about to be removed: forget its queue.
    fn disk_removing(&self, nsid: u32);

    /// Every disk is about to be removed.
    fn disks_removing(&self);

    /// An ioctl `cmd` with argument `arg` on an open disk of namespace `nsid` (`partition`
    /// if opened through a partition, `writable` if opened for writing), whose queue is `q`:
    /// the value to return, or the errno.
    fn disk_ioctl(
        this: ArcBorrow<'_, Self>,
        q: BlkQueue<'_>,
        nsid: u32,
        partition: bool,
        writable: bool,
        cmd: u32,
        arg: usize,
    ) -> Result<isize>;

    /// The device is going away: expired requests are ended at once. Never sleeps.
    fn is_stopping(&self) -> bool;

    /// A reset is under way. Never sleeps.
    fn is_recovering(&self) -> bool;

    /// The controller is up (not dead, not between the halves of a reset).
    fn is_live(&self) -> bool;

    /// Sends Abort for command `cid` on submission queue `sqid`: whether the controller
    /// reported it aborted.
    fn abort(&self, sqid: u16, cid: u16) -> core::result::Result<bool, CtrlError>;

    /// Asks for a controller reset, run later from a work item. Never sleeps.
    fn schedule_reset(this: &Arc<Self>);
}

/// Scatterlist entries per request: the most segments a request may have.
const MAX_SEGS: usize = io::MAX_SEGMENTS as usize;
/// Completions handed to blk-mq per batch, outside the queue lock.
const BATCH: usize = 32;
/// Coherent chunk size for PRP list pages.
const LIST_CHUNK: usize = 64 * 1024;

const BLK_STS_OK: u8 = 0;
const BLK_STS_NOTSUPP: u8 = 1;
const BLK_STS_TIMEOUT: u8 = 2;
const BLK_STS_NOSPC: u8 = 3;
const BLK_STS_TRANSPORT: u8 = 4;
const BLK_STS_TARGET: u8 = 5;
const BLK_STS_NEXUS: u8 = 6;
const BLK_STS_MEDIUM: u8 = 7;
const BLK_STS_PROTECTION: u8 = 8;
const BLK_STS_RESOURCE: u8 = 9;
const BLK_STS_IOERR: u8 = 10;
const BLK_STS_DEV_RESOURCE: u8 = 13;
const BLK_FEAT_WRITE_CACHE: u32 = 1 << 0;
const BLK_FEAT_FUA: u32 = 1 << 1;
const REQ_OP_MASK: u32 = (1 << bindings::REQ_OP_BITS) - 1;
const REQ_FUA: u32 = 1 << bindings::req_flag_bits___REQ_FUA;

/// The Linux status for a core status.
fn blk_sts(s: BlockStatus) -> u8 {
    match s {
        BlockStatus::Ok => BLK_STS_OK,
        BlockStatus::NotSupported => BLK_STS_NOTSUPP,
        BlockStatus::Timeout => BLK_STS_TIMEOUT,
        BlockStatus::NoSpace => BLK_STS_NOSPC,
        BlockStatus::Transport => BLK_STS_TRANSPORT,
        BlockStatus::Target => BLK_STS_TARGET,
        BlockStatus::ReservationConflict => BLK_STS_NEXUS,
        BlockStatus::Medium => BLK_STS_MEDIUM,
        BlockStatus::Protection => BLK_STS_PROTECTION,
        BlockStatus::Resource => BLK_STS_RESOURCE,
        BlockStatus::DeviceResource => BLK_STS_DEV_RESOURCE,
        BlockStatus::IoError => BLK_STS_IOERR,
    }
}

/// A queue's CID slots.
struct Slots(KVec<CidSlot>);

impl AsRef<[CidSlot]> for Slots {
    fn as_ref(&self) -> &[CidSlot] {
        &self.0
    }
}

impl AsMut<[CidSlot]> for Slots {
    fn as_mut(&mut self) -> &mut [CidSlot] {
        &mut self.0
    }
}

/// A queue's PRP list memory.
struct Lists(KVec<LinuxCoherent>);

impl AsRef<[LinuxCoherent]> for Lists {
    fn as_ref(&self) -> &[LinuxCoherent] {
        &self.0
    }
}

type Queue = IoQueue<LinuxCoherent, Slots, Lists>;

/// One I/O queue's mutable state, under its lock.
struct Inner {
    q: Option<Queue>,
    /// The request each tag in flight belongs to (`None` when free).
    rqs: KVec<Option<Owned<Pdu>>>,
    /// Commands submitted on this queue since it was created.
    submitted: u64,
    /// What the queue keeps while the controller grants fewer queues than probe did (see
    /// [`ResetIo::restore`]): it is out of service until a later reset grants it again.
    parked: Option<Kept>,
}

/// One hardware queue: an NVMe I/O queue pair.
pub(crate) struct HwQueue {
    inner: LinuxSpin<Inner>,
    bar: Bar0,
    shadow: Option<Arc<ShadowDoorbells<LinuxCoherent>>>,
    qid: u16,
    polled: bool,
    /// The interrupt vector its completion queue posts to (`None`: polled).
    vector: Option<u16>,
}

/// Per-request driver data (the tag set's `cmd_size`), right after `struct request`.
#[repr(C)]
pub(crate) struct Pdu {
    /// The `blk_status_t` to end the request with.
    status: u8,
    /// A driver-private (passthrough) request's command; null for block I/O.
    passthru: *const Passthru,
    /// The NVMe status of the completion (raw Status Field, 0 success).
    nvme_status: u16,
    /// Completion Dwords 0 and 1.
    result: u64,
    /// Times a controller reset interrupted this request and it was resubmitted.
    retries: u8,
    /// An Abort was sent for this submission of the request (the timeout ladder's step 2).
    aborted: bool,
    /// The request's data, mapped for DMA by `queue_rq`.
    sg: SgTable<MAX_SEGS>,
}

// SAFETY: `passthru` names a `Passthru` (which is `Send`) that its issuer keeps alive until
// the request ends, in whatever context that happens; the rest is plain data or `Send`.
#[allow(unsafe_code)]
unsafe impl Send for Pdu {}

/// A passthrough command riding a driver-private request: built by the ioctl, which waits
/// for the request and keeps this (and the segments' memory) alive until it ends.
struct Passthru {
    sqe: Sqe,
    segs: *const Segment,
    nsegs: usize,
}

// SAFETY: the segments are coherent memory the command's owner keeps until the request ends,
// from whichever context it ends in.
#[allow(unsafe_code)]
unsafe impl Send for Passthru {}

/// The interrupt handler of one I/O queue: reaps it. It shares the queue with the block
/// layer's state, which drops its registration (and `free_irq` waits for a running handler)
/// before deleting the queue on the controller.
struct QueueIrq(Arc<HwQueue>);

impl IrqHandler for QueueIrq {
    fn handle(&self, _vector: u16) -> IrqReturn {
        if reap(&self.0) > 0 {
            IrqReturn::Handled
        } else {
            IrqReturn::None
        }
    }
}

/// Block-layer state of one controller.
pub(crate) struct Io<O: Owner> {
    /// The PCI device, bound while this value lives (it is torn down before the unbind
    /// completes).
    dev: Arc<BoundPci>,
    /// The tag set; its driver data is this value (boxed, so it never moves).
    set: TagSet<Self>,
    /// Every queue probe created, interrupt-driven ones first, then the polled ones; queue
    /// `i` is I/O queue `i + 1` and hardware context `i`.
    queues: KVec<Arc<HwQueue>>,
    nr_default: u32,
    nr_poll: u32,
    /// How many of `queues` (a prefix) are in service: all of them unless a reset found the
    /// controller granting fewer. The tag set has as many hardware contexts once remapped.
    live: Atomic<u32>,
    /// Set once a reset changed the number of queues: from then on `map_queues` spreads the
    /// CPUs evenly, because asking the vectors' affinity takes the MSI domain's mutex, which
    /// must not be taken while `blk_mq_update_nr_hw_queues` holds the queues frozen (lockdep:
    /// the mutex is held across allocations, which a frozen queue's I/O may wait for).
    remapped: Atomic<bool>,
    /// Bios taken back from requests dispatched to a hardware context whose queue went away
    /// at a reset, submitted again once the contexts are remapped.
    orphans: LinuxSpin<Orphans>,
    /// Vectors beyond the admin one are spread over CPUs (MSI-X or multi-MSI).
    spread: bool,
    /// INTx or MSI: interrupts are masked at the controller with INTMS/INTMC.
    pin_based: bool,
    irqs: KVec<LinuxRegistration<QueueIrq>>,
    vectors: Option<LinuxVectors>,
    /// The shadow doorbell buffers every queue uses, if the controller took them.
    shadow: Option<Arc<ShadowDoorbells<LinuxCoherent>>>,
    /// The disks, changed by probe, rescans and teardown.
    disks: LinuxMutex<KVec<Disk<O>>>,
    /// The controller's memory page size.
    page: u64,
    instance: u32,
    /// The driver state above (the disks' ioctls reach the controller through it).
    owner: Arc<O>,
    /// The I/O queues' depth (entries).
    depth: u32,
    /// The disks' sysfs attribute groups.
    ns_groups: &'static GroupList,
    /// Requests ended by the timeout handler.
    pub(crate) timeouts: kernel::sync::atomic::Atomic<u32>,
}

/// One namespace's disk.
struct Disk<O: Owner> {
    nsid: u32,
    /// Shared only while a rescan or a reset uses it (both under the shared state's I/O
    /// lock); the last reference removes the disk.
    /// Logical block size it was created with.
    lbs: u32,
    /// Its front-end (on Linux: the generic node `/dev/ong<C>n<NSID>`; none if registering it
    /// failed), dropped before the disk is removed.
    front: Option<O::DiskFront>,
    disk: Arc<GenDisk<Io<O>>>,
}

/// What the probe asks for.
pub(crate) struct IoParams {
    /// The disks' sysfs attribute groups.
    pub(crate) ns_groups: &'static GroupList,
    pub(crate) granted: u16,
    pub(crate) poll_queues: u32,
    pub(crate) queue_depth: u32,
    pub(crate) instance: u32,
}

type Ctrl = Controller<LinuxPlatform, Enabled>;

impl<O: Owner> Io<O> {
    /// The device, bound while `self` lives (see [`Io::dev`]).
    fn device(&self) -> &kernel::device::Device {
        self.dev.device().as_ref()
    }

    /// Sets up vectors, I/O queues, the tag set and a disk per usable namespace. On error,
    /// everything done so far is undone (the controller stays enabled).
    #[inline(never)]
    pub(crate) fn start(
        dev: Arc<BoundPci>,
        ctrl: &mut Ctrl,
        bar: &Bar0,
        namespaces: &[NamespaceInfo],
        p: &IoParams,
        owner: Arc<O>,
    ) -> Result<KBox<Self>> {
        let mut io = KBox::new(
            Io {
                dev,
                set: TagSet::new()?,
                queues: KVec::new(),
                nr_default: 0,
                nr_poll: 0,
                spread: false,
                pin_based: false,
                irqs: KVec::new(),
                vectors: None,
                shadow: None,
                disks: LinuxMutex::with_class(
                    KVec::new(),
                    c"orion_nvme::disks",
                    kernel::static_lock_class!(),
                )?,
                page: 4096,
                instance: p.instance,
                owner,
                depth: 0,
                ns_groups: p.ns_groups,
                timeouts: kernel::sync::atomic::Atomic::new(0),
                live: Atomic::new(0),
                remapped: Atomic::new(false),
                orphans: LinuxSync
                    .new_spin_lock(Orphans::default())
                    .map_err(|(e, _)| e.0)?,
            },
            GFP_KERNEL,
        )?;
        match io.setup(ctrl, bar, namespaces, p) {
            Ok(()) => Ok(io),
            Err(e) => {
                io.teardown(Some(ctrl));
                Err(e)
            }
        }
    }

    fn setup(
        &mut self,
        ctrl: &mut Ctrl,
        bar: &Bar0,
        namespaces: &[NamespaceInfo],
        p: &IoParams,
    ) -> Result {
        // The core's queue and vector plan: vector 0 is the admin queue's, the rest serve
        // one interrupt queue each; poll queues have none.
        let ask = interrupt::Ask::of(p.granted, p.poll_queues);
        let dev = self.dev.clone();
        let pdev = dev.device();
        let pci = LinuxPci::new(dev.clone())?;
        let request = VectorRequest {
            min: 1,
            max: ask.max_vectors(),
            kinds: IrqKinds::ALL,
            pre_vectors: 1,
        };
        let vectors = pci.alloc_irq_vectors(&request).map_err(|e| {
            dev_err!(pdev, "orion_nvme: no interrupt vector ({:?})\n", e.0);
            e.0
        })?;
        let nvec = u32::from(vectors.count());
        let kind = vectors.kind();
        let plan = interrupt::Plan::new(ask, vectors.count());
        self.spread = plan.spread;
        let (nr_default, nr_poll) = (plan.interrupt, plan.poll);
        self.nr_default = nr_default;
        self.nr_poll = nr_poll;
        let kind = match kind {
            IrqKind::MsiX => "MSI-X",
            IrqKind::Msi => "MSI",
            IrqKind::Intx => "INTx",
        };
        self.vectors = Some(vectors);
        self.pin_based = kind != "MSI-X";

        let total = u32::from(plan.total());
        let shadow = match ctrl.setup_shadow_doorbells(plan.total()) {
            Ok(s) => s.map(|s| Arc::new(s, GFP_KERNEL)).transpose()?,
            Err(e) => {
                dev_warn!(pdev, "orion_nvme: shadow doorbells refused: {:?}\n", e);
                None
            }
        };
        let depth = interrupt::queue_depth(p.queue_depth, ctrl.cap());
        let page = ctrl.page_size();
        let max_transfer = ctrl
            .info()
            .map_or(page as u32, |i| io::max_transfer(i, page));
        let per_tag = io::list_pages_per_tag(max_transfer, page);
        let pg = page as usize;
        let per_chunk = LIST_CHUNK.checked_div(pg).unwrap_or(1).max(1);
        let tags = (depth - 1) as usize;
        let chunks = (tags * per_tag).div_ceil(per_chunk);

        self.queues.reserve(total as usize, GFP_KERNEL)?;
        for i in 0..total {
            // CAST: i < total <= 65535.
            let qid = (i + 1) as u16;
            // CAST: as above.
            let vector = plan.vector_of(i as u16);
            let mut slots = KVec::with_capacity(depth as usize, GFP_KERNEL)?;
            for _ in 0..depth {
                slots.push(CidSlot::default(), GFP_KERNEL)?;
            }
            let mut lists = KVec::with_capacity(chunks, GFP_KERNEL)?;
            for _ in 0..chunks {
                let c = ctrl
                    .dma()
                    .alloc_coherent(per_chunk * pg, pg)
                    .map_err(|e| e.0)?;
                lists.push(c, GFP_KERNEL)?;
            }
            let qp = ctrl
                .create_io_queue(qid, depth, vector, Slots(slots))
                .map_err(|e| {
                    dev_err!(
                        pdev,
                        "orion_nvme: creating I/O queue {} failed: {:?}\n",
                        qid,
                        e
                    );
                    ENODEV
                })?;
            let q = match IoQueue::new(qp, Lists(lists), per_tag, page) {
                Ok(q) => q,
                Err((qp, _)) => {
                    dev_err!(pdev, "orion_nvme: I/O queue {} list memory\n", qid);
                    let _ = ctrl.delete_io_queue(qp);
                    return Err(ENOMEM);
                }
            };
            let mut rqs = KVec::with_capacity(tags, GFP_KERNEL)?;
            for _ in 0..tags {
                rqs.push(None, GFP_KERNEL)?;
            }
            let inner = LinuxSync
                .new_spin_lock(Inner {
                    q: Some(q),
                    rqs,
                    submitted: 0,
                    parked: None,
                })
                .map_err(|(e, _)| e.0)?;
            let hq = Arc::new(
                HwQueue {
                    inner,
                    bar: bar.clone(),
                    shadow: shadow.clone(),
                    qid,
                    polled: vector.is_none(),
                    vector,
                },
                GFP_KERNEL,
            )?;
            self.queues.push(hq, GFP_KERNEL)?;
        }

        if let Some(vectors) = &self.vectors {
            for hq in self.queues.iter().take(nr_default as usize) {
                let Some(v) = hq.vector else { continue };
                let handler = QueueIrq(hq.clone());
                let reg = vectors.register(v, handler).map_err(|(e, _)| {
                    dev_err!(pdev, "orion_nvme: vector {}: {:?}\n", v, e.0);
                    e.0
                })?;
                self.irqs.push(reg, GFP_KERNEL)?;
            }
        }
        if self.pin_based {
            // The handlers are in place: unmask the controller's interrupts (probe masked
            // them while the admin queue was busy). No admin command runs until teardown.
            ctrl.unmask_interrupts().map_err(|e| {
                dev_err!(pdev, "orion_nvme: unmasking interrupts: {:?}\n", e);
                EIO
            })?;
        }
        dev_info!(
            pdev,
            "orion_nvme: {} {} vectors, {} I/O queues ({} interrupt, {} poll) of depth {}, {}shadow doorbells\n",
            nvec,
            kind,
            total,
            nr_default,
            nr_poll,
            depth,
            if shadow.is_some() { "" } else { "no " }
        );
        self.depth = depth;
        self.owner.queues_changed(total, depth);
        self.shadow = shadow;
        self.live.store(total, Relaxed);

        // The tag set.
        let me = ptr::from_mut(self).cast_const();
        let params = TagSetParams {
            nr_hw_queues: total,
            nr_maps: if nr_poll > 0 { mq::ALL_MAPS } else { 1 },
            queue_depth: depth - 1,
        };
        // SAFETY:
        // 1. `self` is boxed by `start` and never moves; `teardown` frees the tag set (after
        //    removing the disks) before the box is dropped, and `drop` leaks what a missed
        //    teardown leaves.
        // 2. The device stays bound while `self` lives: it is torn down before the unbind
        //    completes (see `Io::dev`).
        // 3. All zeroes is a valid `Pdu`: integers, `false`, a null pointer and an unmapped
        //    table.
        #[allow(unsafe_code)]
        unsafe { self.set.alloc(me, &dev, &params) }?;

        self.page = page;
        if let Some(info) = ctrl.info() {
            for ns in namespaces {
                self.add_namespace(info, ns)?;
            }
        }
        Ok(())
    }

    /// Adds a disk for namespace `ns`, unless the core says its format cannot be served.
    fn add_namespace(&self, info: &ControllerInfo, ns: &NamespaceInfo) -> Result {
        match namespace::disk_for(info, ns, self.page) {
            Ok(g) => self.add_disk(ns, &g),
            Err(why) => {
                dev_warn!(
                    self.dev.device(),
                    "orion_nvme: namespace {}: {}; no disk\n",
                    ns.nsid,
                    Show(&why)
                );
                Ok(())
            }
        }
    }

    /// Brings the disks in line with the namespaces found by a rescan, as the core's
    /// [`namespace::diff`] says: disks of namespaces that are gone (or were reformatted) are
    /// removed, new namespaces get disks, changed capacities are announced.
    pub(crate) fn rescan(
        &self,
        info: &ControllerInfo,
        found: &[NamespaceInfo],
    ) -> Result<RescanCount> {
        let mut r = RescanCount::default();
        let mut present: KVec<Present> = KVec::new();
        let mut oom = false;
        self.disks.lock(|d| {
            for x in d.iter() {
                let shift = x.lbs.trailing_zeros().saturating_sub(9);
                let sectors = x.disk.nr_sectors();
                let p = Present {
                    nsid: x.nsid,
                    block_size: x.lbs,
                    blocks: sectors >> shift,
                };
                oom |= present.push(p, GFP_KERNEL).is_err();
            }
        });
        if oom {
            return Err(ENOMEM);
        }
        for change in namespace::diff(&present, found) {
            match change {
                Change::Remove { nsid, .. } => {
                    self.remove_disk(nsid);
                    r.removed += 1;
                }
                Change::Resize { nsid, blocks } => {
                    let disk = self.disks.lock(|d| {
                        d.iter()
                            .find(|x| x.nsid == nsid)
                            .map(|x| (x.disk.clone(), x.lbs))
                    });
                    if let Some((disk, lbs)) = disk {
                        // Compared capped: a lying NSZE is not resized again at every rescan.
                        let sectors = sectors_of(blocks, lbs);
                        if disk.nr_sectors() != sectors {
                            disk.set_capacity_and_notify(sectors);
                            r.resized += 1;
                        }
                    }
                }
                Change::Add(ns) => {
                    let before = self.disks.lock(|d| d.len());
                    self.add_namespace(info, ns)?;
                    if self.disks.lock(|d| d.len()) > before {
                        r.added += 1;
                    }
                }
            }
        }
        Ok(r)
    }

    /// Removes namespace `nsid`'s disk, waiting for its requests.
    fn remove_disk(&self, nsid: u32) {
        self.owner.disk_removing(nsid);
        let taken = self.disks.lock(|d| {
            let i = d.iter().position(|x| x.nsid == nsid)?;
            Some(d.remove(i))
        });
        if let Some(Ok(x)) = taken {
            drop(x.front);
            dev_info!(
                self.dev.device(),
                "orion_nvme: disk onvme{}n{} removed\n",
                self.instance,
                nsid
            );
            // Removed (`del_gendisk`, `put_disk`) with the last reference, this one.
            drop(x.disk);
        }
    }

    fn add_disk(&self, ns: &NamespaceInfo, g: &crate::orion_compat::block::DiskGeometry) -> Result {
        let pdev = self.dev.device();
        if g.check().is_err() || g.logical_block_size > 4096 {
            dev_warn!(
                pdev,
                "orion_nvme: namespace {}: {}-byte blocks are not supported here; no disk\n",
                ns.nsid,
                g.logical_block_size
            );
            return Ok(());
        }
        let shift = g.logical_block_size.trailing_zeros() - 9;
        let mut lim = bindings::queue_limits {
            logical_block_size: g.logical_block_size,
            physical_block_size: g.physical_block_size,
            io_min: g.physical_block_size,
            max_hw_sectors: g.max_transfer >> 9,
            max_segments: g.max_segments,
            // CAST: widening.
            virt_boundary_mask: g.virt_boundary_mask as usize,
            dma_alignment: g.dma_alignment_mask,
            max_write_zeroes_sectors: g.max_write_zeroes_blocks.saturating_mul(1 << shift),
            ..Default::default()
        };
        if let Some(d) = g.discard {
            lim.max_hw_discard_sectors = d.max_blocks.saturating_mul(1 << shift);
            lim.discard_granularity = g.logical_block_size * d.granularity;
            lim.max_discard_segments = 1;
        }
        if g.write_cache {
            lim.features |= BLK_FEAT_WRITE_CACHE;
        }
        if g.fua {
            lim.features |= BLK_FEAT_FUA;
        }
        let name = CString::try_from_fmt(fmt!("onvme{}n{}", self.instance, ns.nsid))?;
        let disk = GenDisk::add(
            &self.set,
            DiskParams {
                lim,
                // The NSID travels as the queue's `queuedata`.
                queuedata: ns.nsid as usize,
                name: &name,
                capacity: sectors_of(ns.blocks, g.logical_block_size),
                // One reference on the owner per disk, dropped by `free_disk`.
                owner: self.owner.clone(),
                parent: self.device(),
                groups: self.ns_groups,
            },
        )?;
        // Without memory for it, the disk is removed again.
        let disk = Arc::new(disk, GFP_KERNEL)?;
        let lbs = g.logical_block_size;
        let pushed = self.disks.lock(|d| {
            d.push(
                Disk {
                    nsid: ns.nsid,
                    disk: disk.clone(),
                    lbs,
                    front: None,
                },
                GFP_KERNEL,
            )
        });
        if pushed.is_err() {
            // Not yet known to anyone else: removed again as `disk` goes.
            return Err(ENOMEM);
        }
        // A fresh disk's queue is not dying.
        let q = disk.queue_ref().ok_or(ENODEV)?;
        self.owner.disk_added(ns.nsid, q)?;
        // The front-end last: its commands find the queue through the owner.
        let front = self
            .dev
            .with(|p| O::disk_front(&self.owner, ns.nsid, p))
            .and_then(|r| r);
        match front {
            Ok(n) => self.disks.lock(|d| {
                if let Some(x) = d.iter_mut().find(|x| Arc::ptr_eq(&x.disk, &disk)) {
                    x.front = Some(n);
                }
            }),
            Err(e) => dev_warn!(
                pdev,
                "orion_nvme: no generic node /dev/ong{}n{}: {:?}\n",
                self.instance,
                ns.nsid,
                e
            ),
        }
        dev_info!(
            pdev,
            "orion_nvme: disk onvme{}n{}: {} blocks of {} bytes, max transfer {} KiB{}{}\n",
            self.instance,
            ns.nsid,
            ns.blocks,
            g.logical_block_size,
            g.max_transfer / 1024,
            if g.write_cache { ", write cache" } else { "" },
            if g.discard.is_some() { ", discard" } else { "" }
        );
        Ok(())
    }

    /// Removes the disks (waiting for their requests), frees the tag set and interrupts,
    /// deletes the I/O queues on the controller and frees the vectors.
    /// Without a controller (it died in a reset), nothing is deleted on the device.
    pub(crate) fn teardown(&mut self, mut ctrl: Option<&mut Ctrl>) {
        self.owner.disks_removing();
        while let Some(x) = self.disks.lock(|d| d.pop()) {
            drop(x.front);
            // Removed with the last reference, this one.
            drop(x.disk);
        }
        // No queue uses it any more.
        self.set.free();
        if let (true, Some(c)) = (self.pin_based, ctrl.as_deref()) {
            // Admin commands follow; with no handler of ours left, keep the (possibly shared)
            // line quiet: mask at the controller again (see probe).
            mask_pin_interrupts(c);
        }
        self.irqs.clear();
        let alive = ctrl.as_deref().is_some_and(|c| c.check_alive().is_ok());
        while let Some(hq) = self.queues.pop() {
            let (q, n) = hq.inner.lock(|i| (i.q.take(), i.submitted));
            dev_info!(
                self.dev.device(),
                "orion_nvme: I/O queue {} ({}): {} commands\n",
                hq.qid,
                if hq.polled { "poll" } else { "interrupt" },
                n
            );
            if let (Some(q), true, Some(c)) = (q, alive, ctrl.as_deref_mut()) {
                let (qp, _lists) = q.into_parts();
                let _ = c.delete_io_queue(qp);
            }
        }
        // Freed once no registration holds them.
        self.vectors = None;
    }
}

/// What a queue keeps across a controller reset: its CID slots (their generations go on,
/// so a completion from before the reset can never match a command after it), its PRP list
/// memory and its shape.
pub(crate) struct Kept {
    slots: Slots,
    lists: Lists,
    per_tag: usize,
    depth: u32,
}

/// Bios waiting to be submitted again.
#[derive(Default)]
struct Orphans {
    list: BioList,
    /// Requests that could not be given back to the block layer this way and failed.
    failed: u32,
}

impl<O: Owner> Io<O> {
    /// Ends or resubmits one request a reset interrupted (taken off its queue).
    fn interrupted(&self, mut rq: Owned<Pdu>, n: &mut Interruptions) {
        let p = rq.pdu();
        p.sg.unmap();
        match recovery::after_reset(p.retries, !p.passthru.is_null()) {
            Interrupted::Retry => {
                p.retries += 1;
                n.retried += 1;
                // Not on the device; blk-mq dispatches it again once the queues are
                // unquiesced and the requeue list kicked.
                rq.requeue(false);
            }
            Interrupted::Fail => {
                n.failed += 1;
                p.status = BLK_STS_IOERR;
                // What a passthrough caller sees for a command a reset ended, as the
                // reference driver reports it.
                p.nvme_status = recovery::ENDED_BY_RESET.0;
                p.result = 0;
                rq.end(BLK_STS_IOERR);
            }
        }
    }

    /// `queue_rq` for a hardware context whose queue went away at a reset (see
    /// [`ResetIo::restore`]): the request's bios are taken back (to be submitted again by
    /// [`ResetIo::remap`]) and the empty request ends. A request with no bios of its own (the
    /// flush machinery's cache flush) or a passthrough command cannot be sent elsewhere:
    /// it fails, as a passthrough command interrupted by a reset does.
    fn give_back<'a>(&self, rq: Request<'a, Pdu>) -> Result<(), Refused<'a, Pdu>> {
        let mut rq = rq.start();
        let (op, has_bio) = (rq.cmd_flags() & REQ_OP_MASK, rq.has_bio());
        let passthru =
            op == bindings::req_op_REQ_OP_DRV_IN || op == bindings::req_op_REQ_OP_DRV_OUT;
        if has_bio && !passthru {
            // The request is not on the device; its bios move to the list (the list lock
            // orders this against `remap` taking it).
            self.orphans.lock(|o| rq.steal_bios(&mut o.list));
            rq.pdu().status = BLK_STS_OK;
            // It has no bios left to complete.
            rq.end(BLK_STS_OK);
        } else {
            self.orphans.lock(|o| o.failed += 1);
            let p = rq.pdu();
            p.status = BLK_STS_IOERR;
            p.nvme_status = recovery::ENDED_BY_RESET.0;
            p.result = 0;
            rq.end(BLK_STS_IOERR);
        }
        Ok(())
    }
}

/// The block side of the core's reset state machine ([`recovery::reset`]).
impl<O: Owner> ResetIo<LinuxPlatform> for Io<O> {
    type Kept = KVec<Option<Kept>>;

    /// Reset step 1: no new dispatch (requests wait in blk-mq), then what the controller has
    /// already completed is reaped and ended normally.
    fn quiesce(&self) {
        self.set.quiesce();
        for hq in self.queues.iter() {
            reap(hq);
        }
    }

    /// Masks pin-based interrupts at the controller while the admin queue is busy (see
    /// [`mask_pin_interrupts`]); MSI-X needs nothing.
    fn mask(&self, ctrl: &Ctrl) {
        if self.pin_based {
            mask_pin_interrupts(ctrl);
        }
    }

    /// Reset step 2, once the controller is disabled (it can no longer complete or DMA):
    /// every command still in flight is taken off its queue, its data unmapped, and its
    /// request resubmitted later or failed ([`recovery::after_reset`]); the queue pairs are
    /// dropped, keeping what the queues need to be created again.
    fn take(&self) -> (Self::Kept, Interruptions) {
        let mut kept = KVec::new();
        let mut n = Interruptions::default();
        for hq in self.queues.iter() {
            loop {
                let mut batch: [Option<Owned<Pdu>>; BATCH] = [const { None }; BATCH];
                let mut got = 0;
                hq.inner.lock(|inner| {
                    let Inner { q, rqs, .. } = inner;
                    for (tag, slot) in rqs.iter_mut().enumerate() {
                        if got == BATCH {
                            break;
                        }
                        if slot.is_none() {
                            continue;
                        }
                        if let Some(q) = q.as_mut() {
                            // CAST: tags are below the queue depth, a u16.
                            q.cancel(tag as u16);
                        }
                        if let Some(b) = batch.get_mut(got) {
                            *b = core::mem::take(slot);
                            got += 1;
                        }
                    }
                });
                for rq in batch.iter_mut().take(got).filter_map(Option::take) {
                    // In flight on this queue and just taken off it under the lock.
                    self.interrupted(rq, &mut n);
                }
                if got < BATCH {
                    break;
                }
            }
            let (q, parked) = hq.inner.lock(|i| (i.q.take(), i.parked.take()));
            let k = q
                .map(|q| {
                    let per_tag = q.per_tag();
                    let (qp, lists) = q.into_parts();
                    let depth = qp.depth();
                    let (_sq, _cq, slots) = qp.into_parts();
                    Kept {
                        slots,
                        lists,
                        per_tag,
                        depth,
                    }
                })
                .or(parked);
            // Without room to keep it, the queue is simply not recreated (its requests fail).
            let _ = kept.push(k, GFP_KERNEL);
        }
        (kept, n)
    }

    /// Reset step 3, on the enabled controller: the shadow doorbells are handed back and the
    /// first `granted` queues (the number the controller now grants, which may be fewer than
    /// at probe, or more again) are created over what they kept; the rest stay parked, out
    /// of service. Their hardware contexts go away at [`ResetIo::remap`]; until then a request
    /// dispatched to one is given back to the block layer (`queue_rq`).
    fn restore(
        &self,
        ctrl: &mut Ctrl,
        kept: Self::Kept,
        granted: u16,
    ) -> core::result::Result<(), CtrlError> {
        // CAST: at most the count granted at probe, a u16.
        let n = (u32::from(granted)).min(self.queues.len() as u32);
        if n == 0 {
            return Err(CtrlError::Invalid("no I/O queue granted"));
        }
        if let Some(sh) = &self.shadow {
            ctrl.restore_shadow_doorbells(sh)?;
        }
        for (i, (hq, k)) in self.queues.iter().zip(kept).enumerate() {
            let k = k.ok_or(CtrlError::Invalid("queue state lost"))?;
            // CAST: i < queues.len() <= 65535.
            if i as u32 >= n {
                hq.inner.lock(|x| x.parked = Some(k));
                continue;
            }
            let qp = ctrl.create_io_queue(hq.qid, k.depth, hq.vector, k.slots)?;
            let q = IoQueue::new(qp, k.lists, k.per_tag, self.page).map_err(|(qp, _)| {
                let _ = ctrl.delete_io_queue(qp);
                CtrlError::Invalid("I/O queue list memory")
            })?;
            hq.inner.lock(|i| i.q = Some(q));
        }
        // Before dispatch resumes: `queue_rq` tells the contexts that went away by it.
        self.live.store(n, Relaxed);
        if self.pin_based {
            ctrl.unmask_interrupts()?;
        }
        Ok(())
    }

    /// The I/O queues in service.
    fn live_queues(&self) -> u16 {
        // CAST: at most the count granted at probe, a u16.
        self.live.load(Relaxed) as u16
    }

    /// The I/O queues asked for at a reset: as many as probe created.
    fn queue_count(&self) -> u16 {
        // CAST: at most the count granted at probe, a u16.
        self.queues.len() as u16
    }

    /// Reset step 4: dispatch resumes and the interrupted requests go out again. With `dead`
    /// (the controller did not come back) the disks are marked dead first, so everything
    /// queued and submitted later fails at once instead of waiting.
    fn resume(&self, dead: bool) {
        self.disks.lock(|d| {
            for x in d.iter() {
                if dead {
                    x.disk.mark_dead();
                }
            }
        });
        // Quiesced by `quiesce`.
        self.set.unquiesce();
        self.disks.lock(|d| {
            for x in d.iter() {
                x.disk.queue().kick_requeue_list();
            }
        });
    }

    /// Reset step 5, after dispatch resumed, when the controller granted a different number
    /// of queues than the tag set has hardware contexts: blk-mq remaps the contexts to the
    /// queues now in service (it waits, frozen, for every request still held by one, which
    /// includes the ones `queue_rq` gives back), then the bios given back are submitted again
    /// and land on the new contexts. `None` when nothing changed.
    ///
    /// The wait is bounded: the disks' queues start freezing first, and if a request is
    /// still in flight one I/O timeout (the longest of the disks' `io_timeout`) later, the
    /// controller is not working after all and `stuck` is called, which must make every
    /// request end (it kills the controller); the remap then goes on, on a dead controller.
    /// While a reset runs, the timeout handler leaves stuck commands to it, so without this
    /// bound a controller that stops completing here would hang the reset for good.
    fn remap(&self, stuck: &mut dyn FnMut(u32)) -> Option<Remapped> {
        let to = self.live.load(Relaxed);
        // `nr_hw_queues` only changes here.
        let from = self.set.nr_hw_queues();
        if to == from || to == 0 {
            return None;
        }
        self.remapped.store(true, Relaxed);
        // The disks cannot go away meanwhile: they are removed only under the shared state's
        // I/O lock, which the reset holds (and these references would only delay it). Without
        // memory for the list, no bound.
        let mut disks: KVec<Arc<GenDisk<Self>>> = KVec::new();
        let complete = self.disks.lock(|d| {
            d.iter()
                .all(|x| disks.push(x.disk.clone(), GFP_KERNEL).is_ok())
        });
        if !complete {
            disks.clear();
        }
        let mut budget: c_uint = 0;
        for d in disks.iter() {
            budget = budget.max(d.queue().rq_timeout());
            // Undone below, in this function; `_non_owner` because lockdep must not see it as
            // held across the controller teardown `stuck` may do.
            d.start_freeze();
        }
        // CAST: a u32 fits the kernel's 64-bit unsigned long.
        let mut left = budget as kernel::ffi::c_ulong;
        for d in disks.iter() {
            // Process context, no spin lock held.
            let r = d.freeze_wait_timeout(left);
            if r <= 0 {
                // CAST: jiffies to milliseconds; an io_timeout fits a u32 in either.
                stuck((u64::from(budget) * 1000 / u64::from(bindings::CONFIG_HZ)) as u32);
                break;
            }
            // CAST: positive, the jiffies left of `left`.
            left = r as kernel::ffi::c_ulong;
        }
        // Process context without spin locks, dispatch running (the freeze inside waits for
        // requests to end).
        self.set.update_nr_hw_queues(to);
        for d in disks.iter() {
            d.unfreeze();
        }
        self.owner.queues_changed(to, self.depth);
        let (list, failed) = self
            .orphans
            .lock(|o| (core::mem::take(&mut o.list), core::mem::take(&mut o.failed)));
        let resubmitted = list.submit_all();
        Some(Remapped {
            from,
            to,
            resubmitted,
            failed,
        })
    }

    fn note(&self, note: ResetNote) {
        let c = self.instance;
        match note {
            ResetNote::DisableFailed(e) => {
                pr_warn!("orion_nvme: onvme{}: disabling for the reset: {:?}\n", c, e)
            }
            ResetNote::Granted {
                granted,
                asked,
                in_service,
            } => pr_warn!(
                "orion_nvme: onvme{}: reset: the controller grants {} I/O queues (probe made {}, {} were in service)\n",
                c,
                granted,
                asked,
                in_service
            ),
            ResetNote::StepFailed(step, e) => {
                pr_err!("orion_nvme: onvme{}: reset: {} failed: {:?}\n", c, step.name(), e)
            }
            ResetNote::Remapped(m) => pr_info!(
                "orion_nvme: onvme{}: I/O queues in service: {} -> {}; {} bios given back and resubmitted, {} requests failed\n",
                c,
                m.from,
                m.to,
                m.resubmitted,
                m.failed
            ),
            ResetNote::Stuck(ms) => pr_err!(
                "orion_nvme: onvme{}: reset: requests still in flight {} ms after dispatch resumed; the controller is not working\n",
                c,
                ms
            ),
            ResetNote::NoEvents(e) => pr_warn!(
                "orion_nvme: onvme{}: no asynchronous events after reset: {:?}\n",
                c,
                e
            ),
        }
    }
}

impl<O: Owner> Drop for Io<O> {
    fn drop(&mut self) {
        // `teardown` must have run; if not (a bug), at least never free memory a live
        // registration points at: leak instead.
        if self.set.is_live() || self.disks.lock(|d| !d.is_empty()) || !self.irqs.is_empty() {
            pr_err!("block state dropped without teardown; leaking it\n");
            let q = core::mem::take(&mut self.queues);
            core::mem::forget(q);
            // The disks are leaked too (their fronts are dropped).
            for x in self.disks.lock(core::mem::take) {
                drop(x.front);
                core::mem::forget(x.disk);
            }
            let i = core::mem::take(&mut self.irqs);
            core::mem::forget(i);
            core::mem::forget(self.vectors.take());
        }
    }
}

/// A capacity of `blocks` logical blocks of `lbs` bytes in 512-byte sectors, saturating: a
/// lying NSZE must not wrap it.
fn sectors_of(blocks: u64, lbs: u32) -> u64 {
    let shift = lbs.trailing_zeros().saturating_sub(9);
    blocks.min(u64::MAX >> shift) << shift
}

/// Masks the controller's pin-based/MSI interrupts (INTMS). The admin queue is polled, but
/// its completions still raise them; on a line shared with another controller's handler, a
/// level interrupt nobody acknowledges storms until the kernel disables the line. Only legal
/// while MSI-X is off.
pub(crate) fn mask_pin_interrupts(ctrl: &Ctrl) {
    let _ = ctrl.mask_interrupts();
}

/// Reaps `hq`'s completion queue and completes the requests found; returns the entries
/// consumed.
fn reap(hq: &HwQueue) -> usize {
    let mut total = 0;
    loop {
        let mut done: [Option<Owned<Pdu>>; BATCH] = [const { None }; BATCH];
        let mut n = 0;
        let consumed = hq.inner.lock(|inner| {
            let Inner { q, rqs, .. } = inner;
            let Some(q) = q.as_mut() else { return 0 };
            let r = q.reap(
                &hq.bar,
                hq.shadow.as_deref(),
                BATCH,
                |tag, status, raw, result| {
                    let Some(slot) = rqs.get_mut(usize::from(tag)) else {
                        return;
                    };
                    let Some(mut rq) = slot.take() else {
                        return;
                    };
                    let p = rq.pdu();
                    // Passthrough failures are the caller's to report.
                    if status != BlockStatus::Ok && p.passthru.is_null() {
                        pr_warn!("qid {} tag {}: {}\n", hq.qid, tag, Show(&raw));
                    }
                    p.status = blk_sts(status);
                    p.nvme_status = raw.0;
                    p.result = result;
                    if let Some(d) = done.get_mut(n) {
                        *d = Some(rq);
                        n += 1;
                    }
                },
                |bogus| pr_warn!("qid {}: bogus completion {:?}\n", hq.qid, bogus),
            );
            r.unwrap_or(0)
        });
        // Each completed exactly once: its tag was cleared above.
        for rq in done.iter_mut().take(n).filter_map(Option::take) {
            rq.complete();
        }
        total += consumed;
        if consumed < BATCH {
            return total;
        }
    }
}

/// The blk-mq callbacks of the controller's tag set and the disks' operations.
impl<O: Owner> mq::Ops for Io<O> {
    type Pdu = Pdu;
    type DiskOwner = O;
    type Module = crate::OrionModule;

    /// Maps the request's data and submits its command.
    #[inline]
    fn queue_rq<'a>(
        &self,
        hw: HwCtx<'a>,
        rq: Request<'a, Pdu>,
        last: bool,
    ) -> Result<(), Refused<'a, Pdu>> {
        let qn = hw.queue_num();
        let Some(hq) = self.queues.get(qn as usize) else {
            return Err(Refused::unstarted(rq, BLK_STS_IOERR));
        };
        if qn >= self.live.load(Relaxed) {
            return self.give_back(rq);
        }
        let (op, flags, sector, bytes, tag) = (
            rq.cmd_flags() & REQ_OP_MASK,
            rq.cmd_flags(),
            rq.sector(),
            rq.data_len(),
            rq.tag(),
        );
        let q = rq.queue();
        // CAST: `queuedata` carries a u32 NSID.
        let (nsid, lbs) = (q.queuedata() as u32, q.logical_block_size());
        let shift = lbs.trailing_zeros().saturating_sub(9);
        let Ok(tag) = u16::try_from(tag) else {
            return Err(Refused::unstarted(rq, BLK_STS_IOERR));
        };
        let mut rq = rq.start();
        // The first dispatch of a request (not a resubmission after a reset) starts its retry
        // count; RQF_DONTPREP marks it prepared and survives requeues.
        let first = rq.first_dispatch();
        // The driver data once for the whole dispatch (one `blk_mq_rq_to_pdu`).
        let (p, data) = rq.pdu_and_data();
        p.status = BLK_STS_OK;
        p.sg.clear();
        p.aborted = false;
        if first {
            p.retries = 0;
        }
        if op == bindings::req_op_REQ_OP_DRV_IN || op == bindings::req_op_REQ_OP_DRV_OUT {
            // SAFETY: the ioctl or the generic node that built this request keeps its
            // `Passthru`, and the memory `segs[..nsegs]` describes, alive until the request
            // ends (see `execute_passthru` and `nowait::Request::start`).
            #[allow(unsafe_code)]
            let cmd = unsafe {
                p.passthru
                    .as_ref()
                    .map(|pt| (pt.sqe, core::slice::from_raw_parts(pt.segs, pt.nsegs)))
            };
            let Some((sqe, segs)) = cmd else {
                return Err(Refused::started(rq, BLK_STS_IOERR));
            };
            return submit(hq, tag, rq, last, |q| q.submit_raw(tag, sqe, segs))
                .map_err(|(rq, st)| Refused::started(rq, st));
        }
        let lba = sector >> shift;
        let blocks = bytes >> (shift + 9);
        let io_op = match op {
            bindings::req_op_REQ_OP_READ => IoOp::Read,
            bindings::req_op_REQ_OP_WRITE => IoOp::Write,
            bindings::req_op_REQ_OP_FLUSH => IoOp::Flush,
            bindings::req_op_REQ_OP_DISCARD => IoOp::Discard,
            bindings::req_op_REQ_OP_WRITE_ZEROES => IoOp::WriteZeroes,
            _ => return Err(Refused::started(rq, BLK_STS_NOTSUPP)),
        };
        let mut segs = [Segment { addr: 0, len: 0 }; MAX_SEGS];
        let mut nsegs = 0;
        if matches!(io_op, IoOp::Read | IoOp::Write) {
            match p.sg.map(&data, io_op == IoOp::Write) {
                Ok(mapped) => {
                    for (s, (addr, len)) in segs.iter_mut().zip(p.sg.dma_segments(mapped)) {
                        *s = Segment { addr, len };
                        nsegs += 1;
                    }
                }
                Err(MapError::Segments) => return Err(Refused::started(rq, BLK_STS_IOERR)),
                Err(MapError::Dma) => return Err(Refused::started(rq, BLK_STS_RESOURCE)),
            }
        }
        let req = IoRequest {
            op: io_op,
            nsid,
            lba,
            blocks,
            fua: flags & REQ_FUA != 0 && io_op == IoOp::Write,
            segs: &segs[..nsegs],
        };
        submit(hq, tag, rq, last, |q| q.submit(tag, &req)).map_err(|(mut rq, st)| {
            // The request was not handed to the device.
            rq.pdu().sg.unmap();
            Refused::started(rq, st)
        })
    }

    /// Rings the doorbell owed for the last requests queued.
    #[inline]
    fn commit_rqs(&self, hw: HwCtx<'_>) {
        let Some(hq) = self.queues.get(hw.queue_num() as usize) else {
            return;
        };
        hq.inner.lock(|inner| {
            if let Some(q) = inner.q.as_mut() {
                let _ = q.ring(&hq.bar, hq.shadow.as_deref());
            }
        });
    }

    /// Unmaps the data and ends the request with the status stored by [`reap`].
    #[inline]
    fn complete(&self, mut rq: Owned<Pdu>) {
        if self.queues.get(rq.queue_num() as usize).is_some() {
            rq.pdu().sg.unmap();
        }
        let status = rq.pdu().status;
        rq.end(status);
    }

    /// Reaps a poll queue.
    #[inline]
    fn poll(&self, hw: HwCtx<'_>) -> c_int {
        let Some(hq) = self.queues.get(hw.queue_num() as usize) else {
            return 0;
        };
        // CAST: bounded by the queue depth.
        reap(hq) as c_int
    }

    /// The core's timeout ladder ([`ladder::expired`]): the queue is reaped first (a missed
    /// interrupt); a command really outstanding gets one Abort and another period; if it is
    /// still outstanding then, the controller is reset, which resubmits or fails it. While
    /// the device is being unbound the command is cancelled and fails.
    fn timeout(&self, rq: TimedOut<'_, Pdu>) -> TimeoutReturn {
        let Some(hq) = self.queues.get(rq.queue_num() as usize) else {
            return TimeoutReturn::Done;
        };
        let Ok(tag) = u16::try_from(rq.tag()) else {
            return TimeoutReturn::Done;
        };
        let host = LadderCtrl {
            io: self,
            qid: hq.qid,
            tag,
        };
        let mut req = LadderRq {
            hq,
            rq,
            tag,
            taken: None,
        };
        match ladder::expired(&host, &mut req, hq.qid) {
            TimeoutAction::Done => TimeoutReturn::Done,
            TimeoutAction::ResetTimer => TimeoutReturn::ResetTimer,
        }
    }

    /// Interrupt queues follow their vectors' CPU affinity, poll queues are spread evenly.
    fn map_queues(&self, maps: &mut QueueMaps<'_>) {
        // The queues in service are a prefix: interrupt-driven ones first (at least one).
        let live = self.live.load(Relaxed).max(1);
        let nr_default = self.nr_default.min(live);
        let nr_poll = self.nr_poll.min(live - nr_default);
        let mut def = maps.map(MapType::Default);
        def.set_nr_queues(nr_default);
        def.set_queue_offset(0);
        // With fewer queues than vectors, some CPUs' vectors serve no queue, and once the
        // queue count changed (see `remapped`): spread the CPUs evenly instead of by affinity.
        if self.spread && nr_default == self.nr_default && !self.remapped.load(Relaxed) {
            // Follow the vectors' CPU affinity (vector 0 is the admin queue's).
            def.map_hw_queues(self.device(), 1);
        } else {
            def.map_queues();
        }
        if maps.nr_maps() > bindings::hctx_type_HCTX_TYPE_POLL {
            maps.map(MapType::Read).set_nr_queues(0);
            let mut pollm = maps.map(MapType::Poll);
            pollm.set_nr_queues(nr_poll);
            pollm.set_queue_offset(nr_default);
            if nr_poll > 0 {
                pollm.map_queues();
            }
        }
    }

    /// The disks' `ioctl`: the NVMe ioctls (anything else is ENOTTY).
    fn ioctl(
        owner: ArcBorrow<'_, O>,
        q: BlkQueue<'_>,
        partition: bool,
        writable: bool,
        cmd: u32,
        arg: usize,
    ) -> c_int {
        // CAST: `queuedata` carries a u32 NSID (see `add_disk`).
        let nsid = q.queuedata() as u32;
        match O::disk_ioctl(owner, q, nsid, partition, writable, cmd, arg) {
            // CAST: the value is an NSID or a 15-bit status.
            Ok(v) => v as c_int,
            Err(e) => e.to_errno(),
        }
    }
}

/// Submits a request's command on `hq` under `tag` with `build`, records the request and
/// rings the doorbell if it is the last of a batch. On error, the request comes back with
/// the status to end it with.
fn submit(
    hq: &HwQueue,
    tag: u16,
    rq: Owned<Pdu>,
    last: bool,
    build: impl FnOnce(&mut Queue) -> Result<(), io::SubmitError>,
) -> Result<(), (Owned<Pdu>, u8)> {
    let mut rq = Some(rq);
    let res = hq.inner.lock(|inner| {
        let Some(q) = inner.q.as_mut() else {
            return Err(BLK_STS_IOERR);
        };
        let Some(slot) = inner.rqs.get_mut(usize::from(tag)) else {
            return Err(BLK_STS_IOERR);
        };
        build(q).map_err(|e| {
            pr_warn!("qid {} tag {}: not submitted: {:?}\n", hq.qid, tag, e);
            blk_sts(e.block_status())
        })?;
        *slot = rq.take();
        inner.submitted += 1;
        if last {
            let _ = q.ring(&hq.bar, hq.shadow.as_deref());
        }
        Ok(())
    });
    match (res, rq) {
        (Err(s), Some(rq)) => Err((rq, s)),
        _ => Ok(()),
    }
}

/// Runs a passthrough command on the namespace behind `q` as a driver-private request and
/// waits for it. `segs` is the data in coherent memory (the caller's bounce buffer). Returns
/// the NVMe status (0 success) and result, or an errno when the command never completed.
pub(crate) fn execute_passthru(
    q: *mut bindings::request_queue,
    sqe: Sqe,
    segs: &[Segment],
    write: bool,
    timeout_ms: u32,
) -> Result<(u16, u64)> {
    // SAFETY: `q` is the queue of one of our disks, which the caller has open (the queue an
    // ioctl got, live for its call); our disks' tag set reserves a `Pdu` after every request.
    // A dying queue refuses.
    #[allow(unsafe_code)]
    let mut rq = unsafe { DrvRequest::<Pdu>::alloc_on(q, write, false) }?;
    let pt = Passthru {
        sqe,
        segs: segs.as_ptr(),
        nsegs: segs.len(),
    };
    let p = rq.pdu();
    // `pt` outlives the synchronous execution.
    p.passthru = &pt;
    p.nvme_status = 0;
    p.result = 0;
    rq.set_timeout_ms(timeout_ms);
    let (sts, nvme, result) = rq.execute(|p, sts| {
        let out = (sts, p.nvme_status, p.result);
        p.passthru = ptr::null();
        out
    });
    match sts {
        BLK_STS_OK => Ok((0, result)),
        BLK_STS_TIMEOUT => Err(ETIMEDOUT),
        _ if nvme != 0 => Ok((nvme, result)),
        s => Err(status_to_errno(s)),
    }
}

/// The controller's side of the timeout ladder, for one expired request.
struct LadderCtrl<'a, O: Owner> {
    io: &'a Io<O>,
    qid: u16,
    tag: u16,
}

impl<O: Owner> LadderHost for LadderCtrl<'_, O> {
    fn stopping(&self) -> bool {
        self.io.owner.is_stopping()
    }

    fn recovering(&self) -> bool {
        self.io.owner.is_recovering()
    }

    fn can_abort(&self) -> bool {
        // Waits for the controller's lock: only asked when no reset runs.
        self.io.owner.is_live()
    }

    fn abort(&self, sqid: u16, cid: u16) -> core::result::Result<bool, CtrlError> {
        self.io.owner.abort(sqid, cid)
    }

    fn schedule_reset(&self) {
        O::schedule_reset(&self.io.owner);
    }

    fn note(&self, note: LadderNote) {
        let (c, qid, tag) = (self.io.instance, self.qid, self.tag);
        match note {
            LadderNote::FailedInTeardown => {
                self.io.timeouts.fetch_add(1, Relaxed);
                pr_warn!(
                    "onvme{}: qid {} tag {} timed out during teardown; failing it\n",
                    c,
                    qid,
                    tag
                );
            }
            LadderNote::Abort { cid, result } => {
                self.io.timeouts.fetch_add(1, Relaxed);
                pr_warn!(
                    "onvme{}: qid {} tag {} (cid {:#06x}) timed out; Abort: {}\n",
                    c,
                    qid,
                    tag,
                    cid,
                    match result {
                        Ok(true) => "aborted",
                        Ok(false) => "not aborted",
                        Err(_) => "failed; resetting the controller",
                    }
                );
            }
            LadderNote::Reset { cid } => pr_warn!(
                "onvme{}: qid {} tag {} (cid {:#06x}) still outstanding after Abort; resetting the controller\n",
                c,
                qid,
                tag,
                cid
            ),
        }
    }
}

/// The expired request, as blk-mq's timeout handler holds it.
struct LadderRq<'a> {
    hq: &'a HwQueue,
    rq: TimedOut<'a, Pdu>,
    tag: u16,
    /// The request's handle, once [`Expired::reap_and_find`] cancelled its command.
    taken: Option<Owned<Pdu>>,
}

impl Expired for LadderRq<'_> {
    fn reap_and_find(&mut self, cancel: bool) -> Option<u16> {
        reap(self.hq);
        let (rq, tag, taken) = (&self.rq, self.tag, &mut self.taken);
        self.hq.inner.lock(|inner| {
            let q = inner.q.as_mut()?;
            let slot = inner.rqs.get_mut(usize::from(tag))?;
            if !slot.as_ref().is_some_and(|o| rq.is(o)) || !q.in_flight(tag) {
                return None;
            }
            let cid = q.cid_of(tag);
            if cancel {
                q.cancel(tag);
                *taken = slot.take();
            }
            cid
        })
    }

    fn aborted(&self) -> bool {
        // Written only by `queue_rq` (before the request is out) and here.
        self.rq.pdu_ref().aborted
    }

    fn set_aborted(&mut self) {
        self.rq.pdu().aborted = true;
    }

    fn fail_timed_out(&mut self) {
        // The request is ours again (its CID was cancelled); ended once.
        if let Some(mut rq) = self.taken.take() {
            let p = rq.pdu();
            p.status = BLK_STS_TIMEOUT;
            p.sg.unmap();
            rq.end(BLK_STS_TIMEOUT);
        }
    }
}
