// SPDX-License-Identifier: GPL-2.0

//! Block I/O on Linux: interrupt vectors, the I/O queues, a blk-mq tag set and one gendisk per
//! namespace, on raw bindings.
//!
//! The kernel crate's `block::mq` cannot set queue limits, has no timeout or `map_queues` hook
//! and no per-request driver data (see KERNEL-API-MAP §4), so this module drives blk-mq
//! directly. The NVMe work (building commands, PRP lists, CIDs, reaping, status mapping) is the
//! core's [`IoQueue`]; this module only moves requests between blk-mq and it.
//!
//! Lifetimes: the [`Io`] value is boxed and never moves. Its address is the tag set's
//! `driver_data` and every hardware context's `driver_data`; each [`HwQueue`] is shared with
//! its interrupt handler. [`Io::teardown`] removes the disks, frees the tag set and the
//! interrupts before the queues, so no callback can run once the memory those pointers name
//! is freed.
//!
//! The layer above (the controller's state, the ioctls, the nodes) is reached only through
//! [`Owner`], which it implements: this module imports nothing above it.

use crate::bindings::blk::{status_to_errno, DrvRequest, Queue as BlkQueue};
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
use core::ffi::{c_int, c_uint, c_void};
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
const RQF_DONTPREP: bindings::req_flags_t = 1 << bindings::rqf_flags___RQF_DONTPREP;

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
    /// The request each tag in flight belongs to (null when free).
    rqs: KVec<*mut bindings::request>,
    /// Commands submitted on this queue since it was created.
    submitted: u64,
    /// What the queue keeps while the controller grants fewer queues than probe did (see
    /// [`ResetIo::restore`]): it is out of service until a later reset grants it again.
    parked: Option<Kept>,
}

// SAFETY: the request pointers are only dereferenced while blk-mq guarantees the request is
// alive (between `queue_rq` and its completion), from whichever CPU holds the lock.
unsafe impl Send for Inner {}

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
    /// Scatterlist entries handed to `dma_map_sg` (0: nothing is mapped).
    nents: c_int,
    /// Direction of the mapping.
    dir: bindings::dma_data_direction,
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
    sg: [bindings::scatterlist; MAX_SEGS],
}

/// A passthrough command riding a driver-private request: built by the ioctl, which waits
/// for the request and keeps this (and the segments' memory) alive until it ends.
struct Passthru {
    sqe: Sqe,
    segs: *const Segment,
    nsegs: usize,
}

// SAFETY: the segments are coherent memory the command's owner keeps until the request ends,
// from whichever context it ends in.
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
    set: KBox<bindings::blk_mq_tag_set>,
    set_live: bool,
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
    disks: LinuxMutex<KVec<Disk<O::DiskFront>>>,
    /// The tag set, for the C side (which changes it): taken once from `set` in `setup`.
    set_ptr: *mut bindings::blk_mq_tag_set,
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

// SAFETY: the raw pointers name the tag set and disks this value owns; all of them may be
// used from any thread.
unsafe impl<O: Owner> Send for Io<O> {}
// SAFETY: as above; shared access only reads them or goes through the queues' locks.
unsafe impl<O: Owner> Sync for Io<O> {}

/// One namespace's disk.
struct Disk<F> {
    nsid: u32,
    disk: *mut bindings::gendisk,
    /// Logical block size it was created with.
    lbs: u32,
    /// Its front-end (on Linux: the generic node `/dev/ong<C>n<NSID>`; none if registering it
    /// failed), dropped before the disk is removed.
    front: Option<F>,
}

// SAFETY: a gendisk may be managed from any thread.
unsafe impl<F: Send> Send for Disk<F> {}

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
    /// The device's `struct pci_dev`: bound while `self` lives (see [`Io::dev`]).
    fn pdev(&self) -> *mut bindings::pci_dev {
        self.dev.as_raw()
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
                set: KBox::new(bindings::blk_mq_tag_set::default(), GFP_KERNEL)?,
                set_live: false,
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
                set_ptr: ptr::null_mut(),
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
                rqs.push(ptr::null_mut(), GFP_KERNEL)?;
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
        let me = ptr::from_mut(self).cast::<c_void>();
        self.set_ptr = &raw mut *self.set;
        let set = &mut *self.set;
        set.ops = &Self::OPS;
        set.nr_hw_queues = total;
        set.nr_maps = if nr_poll > 0 {
            bindings::hctx_type_HCTX_MAX_TYPES
        } else {
            1
        };
        set.queue_depth = depth - 1;
        set.cmd_size = core::mem::size_of::<Pdu>() as c_uint;
        set.numa_node = bindings::NUMA_NO_NODE;
        set.driver_data = me;
        // SAFETY: `set` is initialised as the function requires and stays at this address
        // (boxed) until `blk_mq_free_tag_set` in `teardown`.
        let r = unsafe { bindings::blk_mq_alloc_tag_set(set) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        self.set_live = true;

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
                // SAFETY: the disk is ours and live (removal happens only here and in
                // teardown, both under the shared state's I/O lock).
                let sectors = unsafe { (*(*x.disk).part0).bd_nr_sectors };
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
                    let disk = self
                        .disks
                        .lock(|d| d.iter().find(|x| x.nsid == nsid).map(|x| (x.disk, x.lbs)));
                    if let Some((disk, lbs)) = disk {
                        // Compared capped: a lying NSZE is not resized again at every rescan.
                        let sectors = sectors_of(blocks, lbs);
                        // SAFETY: as above.
                        if unsafe { (*(*disk).part0).bd_nr_sectors } != sectors {
                            // SAFETY: as above.
                            unsafe { bindings::set_capacity_and_notify(disk, sectors) };
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
            // SAFETY: the disk was added by `add_disk` and is removed once (it left the list).
            unsafe {
                bindings::del_gendisk(x.disk);
                bindings::put_disk(x.disk);
            }
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
        let key = kernel::static_lock_class!();
        // SAFETY: the tag set is live; `lim` is a valid, initialised limits struct; the NSID
        // travels as the queue's `queuedata` (an integer, never dereferenced).
        let disk = unsafe {
            bindings::__blk_mq_alloc_disk(
                self.set_ptr,
                &mut lim,
                ptr::without_provenance_mut(ns.nsid as usize),
                key.as_ptr(),
            )
        };
        let disk = kernel::error::from_err_ptr(disk)?;
        let name = CString::try_from_fmt(fmt!("onvme{}n{}", self.instance, ns.nsid))?;
        // SAFETY: `disk` is a freshly allocated gendisk we own; the name is NUL terminated
        // (the last byte stays 0) and fits `disk_name`.
        let r = unsafe {
            for (d, s) in (*disk).disk_name.iter_mut().take(31).zip(name.to_bytes()) {
                *d = *s;
            }
            (*disk).fops = &Self::FOPS.0;
            // One reference on the owner per disk, dropped by `free_disk`.
            (*disk).private_data = Arc::into_raw(self.owner.clone()).cast_mut().cast();
            bindings::set_capacity(disk, sectors_of(ns.blocks, g.logical_block_size));
            bindings::device_add_disk(&raw mut (*self.pdev()).dev, disk, self.ns_groups.as_ptr())
        };
        if r != 0 {
            // SAFETY: the disk was never added, so `free_disk` will not run: release the
            // owner's reference here, then drop our reference on the disk.
            unsafe {
                drop(Arc::from_raw((*disk).private_data.cast::<O>()));
                (*disk).private_data = ptr::null_mut();
                bindings::put_disk(disk);
            }
            return Err(Error::from_errno(r));
        }
        let lbs = g.logical_block_size;
        let pushed = self.disks.lock(|d| {
            d.push(
                Disk {
                    nsid: ns.nsid,
                    disk,
                    lbs,
                    front: None,
                },
                GFP_KERNEL,
            )
        });
        if pushed.is_err() {
            // SAFETY: added above, not yet known to anyone else: remove it again.
            unsafe {
                bindings::del_gendisk(disk);
                bindings::put_disk(disk);
            }
            return Err(ENOMEM);
        }
        // SAFETY: the disk is live, so its queue is; the tag set of our disks reserves a
        // `Pdu` after every request (`cmd_size`). A fresh disk's queue is not dying.
        let q = unsafe { nowait::QueueRef::get((*disk).queue) }.ok_or(ENODEV)?;
        self.owner.disk_added(ns.nsid, q)?;
        // The front-end last: its commands find the queue through the owner.
        let front = self
            .dev
            .with(|p| O::disk_front(&self.owner, ns.nsid, p))
            .and_then(|r| r);
        match front {
            Ok(n) => self.disks.lock(|d| {
                if let Some(x) = d.iter_mut().find(|x| x.disk == disk) {
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
            // SAFETY: each disk was added by `add_disk` and is removed once.
            unsafe {
                bindings::del_gendisk(x.disk);
                bindings::put_disk(x.disk);
            }
        }
        if self.set_live {
            // SAFETY: allocated by `blk_mq_alloc_tag_set`, no queue uses it any more.
            unsafe { bindings::blk_mq_free_tag_set(&mut *self.set) };
            self.set_live = false;
        }
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

/// Bios waiting to be submitted again (a `bio_list`: chained through `bi_next`).
#[derive(Default)]
struct Orphans {
    list: bindings::bio_list,
    /// Requests that could not be given back to the block layer this way and failed.
    failed: u32,
}

// SAFETY: the bios are owned by this list (taken off their ended requests) until submitted
// again; any thread may do that.
unsafe impl Send for Orphans {}

impl<O: Owner> Io<O> {
    /// Ends or resubmits one request a reset interrupted.
    ///
    /// # Safety
    ///
    /// `rq` is one of our requests that was in flight and is owned by the caller.
    unsafe fn interrupted(&self, rq: *mut bindings::request, n: &mut Interruptions) {
        // SAFETY: caller's contract.
        unsafe { unmap(self, rq) };
        // SAFETY: as above.
        let p = unsafe { pdu(rq) };
        match recovery::after_reset(p.retries, !p.passthru.is_null()) {
            Interrupted::Retry => {
                p.retries += 1;
                n.retried += 1;
                // SAFETY: a started request of ours, not on the device; blk-mq dispatches it
                // again once the queues are unquiesced and the requeue list kicked.
                unsafe { bindings::blk_mq_requeue_request(rq, false) };
            }
            Interrupted::Fail => {
                n.failed += 1;
                p.status = BLK_STS_IOERR;
                // What a passthrough caller sees for a command a reset ended, as the
                // reference driver reports it.
                p.nvme_status = recovery::ENDED_BY_RESET.0;
                p.result = 0;
                // SAFETY: ours to end, once.
                unsafe { bindings::blk_mq_end_request(rq, BLK_STS_IOERR) };
            }
        }
    }

    /// `queue_rq` for a hardware context whose queue went away at a reset (see
    /// [`ResetIo::restore`]): the request's bios are taken back (to be submitted again by
    /// [`ResetIo::remap`]) and the empty request ends. A request with no bios of its own (the
    /// flush machinery's cache flush) or a passthrough command cannot be sent elsewhere:
    /// it fails, as a passthrough command interrupted by a reset does.
    ///
    /// # Safety
    ///
    /// `rq` is a request blk-mq handed to `queue_rq`, owned by us.
    unsafe fn give_back(&self, rq: *mut bindings::request) -> bindings::blk_status_t {
        // SAFETY: caller's contract.
        let (op, has_bio) = unsafe {
            bindings::blk_mq_start_request(rq);
            ((*rq).cmd_flags & REQ_OP_MASK, !(*rq).bio.is_null())
        };
        // SAFETY: as above.
        let p = unsafe { pdu(rq) };
        let passthru =
            op == bindings::req_op_REQ_OP_DRV_IN || op == bindings::req_op_REQ_OP_DRV_OUT;
        if has_bio && !passthru {
            // SAFETY: the request is ours and not on the device; its bios move to the list
            // (the list lock orders this against `remap` taking it).
            self.orphans
                .lock(|o| unsafe { bindings::blk_steal_bios(&mut o.list, rq) });
            p.status = BLK_STS_OK;
            // SAFETY: ours to end, once; it has no bios left to complete.
            unsafe { bindings::blk_mq_end_request(rq, BLK_STS_OK) };
        } else {
            self.orphans.lock(|o| o.failed += 1);
            p.status = BLK_STS_IOERR;
            p.nvme_status = recovery::ENDED_BY_RESET.0;
            p.result = 0;
            // SAFETY: as above.
            unsafe { bindings::blk_mq_end_request(rq, BLK_STS_IOERR) };
        }
        BLK_STS_OK
    }
}

/// The block side of the core's reset state machine ([`recovery::reset`]).
impl<O: Owner> ResetIo<LinuxPlatform> for Io<O> {
    type Kept = KVec<Option<Kept>>;

    /// Reset step 1: no new dispatch (requests wait in blk-mq), then what the controller has
    /// already completed is reaped and ended normally.
    fn quiesce(&self) {
        // SAFETY: the tag set is live while `self` is (freed only by `teardown`).
        unsafe { bindings::blk_mq_quiesce_tagset(self.set_ptr) };
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
                let mut batch = [ptr::null_mut::<bindings::request>(); BATCH];
                let mut got = 0;
                hq.inner.lock(|inner| {
                    let Inner { q, rqs, .. } = inner;
                    for (tag, slot) in rqs.iter_mut().enumerate() {
                        if got == BATCH {
                            break;
                        }
                        if slot.is_null() {
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
                for &rq in batch.iter().take(got) {
                    // SAFETY: `rq` was in flight on this queue and has just been taken off
                    // it under the lock, so nothing else ends it; its mapping is ours.
                    unsafe { self.interrupted(rq, &mut n) };
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
                    // SAFETY: the disk is live (removed only under the shared I/O lock,
                    // which the caller holds).
                    unsafe { bindings::blk_mark_disk_dead(x.disk) };
                }
            }
        });
        // SAFETY: the tag set is live; it was quiesced by `quiesce`.
        unsafe { bindings::blk_mq_unquiesce_tagset(self.set_ptr) };
        self.disks.lock(|d| {
            for x in d.iter() {
                // SAFETY: as above; the disk's queue lives as long as the disk.
                unsafe { bindings::blk_mq_kick_requeue_list((*x.disk).queue) };
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
        // SAFETY: the tag set is live while `self` is; `nr_hw_queues` only changes here.
        let from = unsafe { (*self.set_ptr).nr_hw_queues };
        if to == from || to == 0 {
            return None;
        }
        self.remapped.store(true, Relaxed);
        // The disks cannot go away meanwhile: they are removed only under the shared state's
        // I/O lock, which the reset holds. Without memory for the list, no bound.
        let mut queues: KVec<*mut bindings::request_queue> = KVec::new();
        let complete = self.disks.lock(|d| {
            d.iter().all(|x| {
                // SAFETY: the disk is live (see above); its queue lives as long as it does.
                queues.push(unsafe { (*x.disk).queue }, GFP_KERNEL).is_ok()
            })
        });
        if !complete {
            queues.clear();
        }
        let mut budget: c_uint = 0;
        for &q in queues.iter() {
            // SAFETY: `q` is a live queue of one of our disks (see above). The freeze is
            // undone below, in this function; `_non_owner` because lockdep must not see it
            // as held across the controller teardown `stuck` may do.
            unsafe {
                budget = budget.max((*q).rq_timeout);
                bindings::blk_freeze_queue_start_non_owner(q);
            }
        }
        // CAST: a u32 fits the kernel's 64-bit unsigned long.
        let mut left = budget as kernel::ffi::c_ulong;
        for &q in queues.iter() {
            // SAFETY: as above; sleeping is allowed (process context, no spin lock held).
            let r = unsafe { bindings::blk_mq_freeze_queue_wait_timeout(q, left) };
            if r <= 0 {
                // CAST: jiffies to milliseconds; an io_timeout fits a u32 in either.
                stuck((u64::from(budget) * 1000 / u64::from(bindings::CONFIG_HZ)) as u32);
                break;
            }
            // CAST: positive, the jiffies left of `left`.
            left = r as kernel::ffi::c_ulong;
        }
        // CAST: to <= queues.len() <= 65535.
        // SAFETY: as above; called from process context without spin locks, dispatch
        // running (the freeze inside waits for requests to end).
        unsafe { bindings::blk_mq_update_nr_hw_queues(self.set_ptr, to as c_int) };
        for &q in queues.iter() {
            // SAFETY: frozen (started) above, once.
            unsafe { bindings::blk_mq_unfreeze_queue_non_owner(q) };
        }
        self.owner.queues_changed(to, self.depth);
        let (list, failed) = self
            .orphans
            .lock(|o| (core::mem::take(&mut o.list), core::mem::take(&mut o.failed)));
        let mut bio = list.head;
        let mut resubmitted = 0;
        while !bio.is_null() {
            // SAFETY: the bios on the list are ours (taken off ended requests) and chained
            // through `bi_next`; each is unlinked before it is handed back to the block layer.
            unsafe {
                let next = (*bio).bi_next;
                (*bio).bi_next = ptr::null_mut();
                bindings::submit_bio_noacct(bio);
                bio = next;
            }
            resubmitted += 1;
        }
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
        if self.set_live || self.disks.lock(|d| !d.is_empty()) || !self.irqs.is_empty() {
            pr_err!("block state dropped without teardown; leaking it\n");
            let q = core::mem::take(&mut self.queues);
            core::mem::forget(q);
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

/// The `Io` a hardware context belongs to.
///
/// # Safety
///
/// `hctx` is a live hardware context of one of our tag sets.
unsafe fn io_of<'a, O: Owner>(
    hctx: *mut bindings::blk_mq_hw_ctx,
) -> Option<(&'a Io<O>, &'a HwQueue)> {
    // SAFETY: `init_hctx` stored the `Io` address in `driver_data`; the `Io` outlives the tag
    // set. `queue_num` indexes the queues (one per hardware queue, same order).
    unsafe {
        let io = &*(*hctx).driver_data.cast::<Io<O>>();
        let hq = &**io.queues.get((*hctx).queue_num as usize)?;
        Some((io, hq))
    }
}

/// # Safety
///
/// `rq` is a request of one of our tag sets.
unsafe fn pdu<'a>(rq: *mut bindings::request) -> &'a mut Pdu {
    // SAFETY: the tag set's `cmd_size` reserves a `Pdu` after every request.
    unsafe { &mut *bindings::blk_mq_rq_to_pdu(rq).cast::<Pdu>() }
}

/// Unmaps a request's data, if mapped.
///
/// # Safety
///
/// `rq` is one of our requests and `io` its controller's state.
unsafe fn unmap<O: Owner>(io: &Io<O>, rq: *mut bindings::request) {
    // SAFETY: caller's contract.
    let p = unsafe { pdu(rq) };
    if p.nents > 0 {
        // SAFETY: `sg[..nents]` was mapped with this device and direction in `queue_rq`.
        unsafe {
            bindings::dma_unmap_sg_attrs(
                &raw mut (*io.pdev()).dev,
                p.sg.as_mut_ptr(),
                p.nents,
                p.dir,
                0,
            )
        };
        p.nents = 0;
    }
}

/// Reaps `hq`'s completion queue and ends the requests found; returns the entries consumed.
fn reap(hq: &HwQueue) -> usize {
    let mut total = 0;
    loop {
        let mut done = [ptr::null_mut::<bindings::request>(); BATCH];
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
                    let rq = core::mem::take(slot);
                    if rq.is_null() {
                        return;
                    }
                    // SAFETY: `rq` was in flight on this tag, so it is alive.
                    let p = unsafe { pdu(rq) };
                    // Passthrough failures are the caller's to report.
                    if status != BlockStatus::Ok && p.passthru.is_null() {
                        pr_warn!("qid {} tag {}: {}\n", hq.qid, tag, Show(&raw));
                    }
                    p.status = blk_sts(status);
                    p.nvme_status = raw.0;
                    p.result = result;
                    if let Some(d) = done.get_mut(n) {
                        *d = rq;
                        n += 1;
                    }
                },
                |bogus| pr_warn!("qid {}: bogus completion {:?}\n", hq.qid, bogus),
            );
            r.unwrap_or(0)
        });
        for &rq in &done[..n] {
            // SAFETY: `rq` is in flight and completed exactly once (its tag was cleared above).
            unsafe { bindings::blk_mq_complete_request(rq) };
        }
        total += consumed;
        if consumed < BATCH {
            return total;
        }
    }
}

/// blk-mq `init_hctx`: every hardware context points at the controller's [`Io`].
///
/// # Safety
///
/// Called by blk-mq for a hardware context of our tag set.
unsafe extern "C" fn init_hctx(
    hctx: *mut bindings::blk_mq_hw_ctx,
    data: *mut c_void,
    _idx: c_uint,
) -> c_int {
    // SAFETY: blk-mq passes a live context and our tag set's `driver_data`.
    unsafe { (*hctx).driver_data = data };
    0
}

/// blk-mq `queue_rq`: maps the request's data and submits its command.
///
/// # Safety
///
/// Called by blk-mq with a context of our tag set and a request it hands us.
unsafe extern "C" fn queue_rq<O: Owner>(
    hctx: *mut bindings::blk_mq_hw_ctx,
    bd: *const bindings::blk_mq_queue_data,
) -> bindings::blk_status_t {
    // SAFETY: blk-mq calls with a live context of our tag set and a request it owns.
    let Some((io, hq)) = (unsafe { io_of::<O>(hctx) }) else {
        return BLK_STS_IOERR;
    };
    // SAFETY: as above.
    let (rq, last) = unsafe { ((*bd).rq, (*bd).last) };
    // SAFETY: as above.
    if unsafe { (*hctx).queue_num } >= io.live.load(Relaxed) {
        // SAFETY: as above.
        return unsafe { io.give_back(rq) };
    }
    // SAFETY: `rq` is owned by us until ended.
    let (op, flags, sector, bytes, q, tag) = unsafe {
        let r = &*rq;
        (
            r.cmd_flags & REQ_OP_MASK,
            r.cmd_flags,
            r.__sector,
            r.__data_len,
            r.q,
            r.tag,
        )
    };
    // SAFETY: `q` is the request's live queue; `queuedata` carries the NSID.
    // CAST: the pointer holds a u32 NSID.
    let (nsid, lbs) = unsafe { ((*q).queuedata.addr() as u32, (*q).limits.logical_block_size) };
    let shift = lbs.trailing_zeros().saturating_sub(9);
    let Ok(tag) = u16::try_from(tag) else {
        return BLK_STS_IOERR;
    };
    // SAFETY: `rq` is ours to start.
    unsafe { bindings::blk_mq_start_request(rq) };
    // SAFETY: as above.
    let p = unsafe { pdu(rq) };
    p.status = BLK_STS_OK;
    p.nents = 0;
    p.aborted = false;
    // SAFETY: as above. The first dispatch of a request (not a resubmission after a reset)
    // starts its retry count; RQF_DONTPREP marks it prepared and survives requeues.
    unsafe {
        if (*rq).rq_flags & RQF_DONTPREP == 0 {
            p.retries = 0;
            (*rq).rq_flags |= RQF_DONTPREP;
        }
    }
    if op == bindings::req_op_REQ_OP_DRV_IN || op == bindings::req_op_REQ_OP_DRV_OUT {
        // SAFETY: the ioctl that built this request keeps its `Passthru` alive until the
        // request ends.
        let Some(pt) = (unsafe { p.passthru.as_ref() }) else {
            return BLK_STS_IOERR;
        };
        // SAFETY: as above, `segs[..nsegs]` lives as long.
        let segs = unsafe { core::slice::from_raw_parts(pt.segs, pt.nsegs) };
        return submit(hq, tag, rq, last, |q| q.submit_raw(tag, pt.sqe, segs));
    }
    let lba = sector >> shift;
    let blocks = bytes >> (shift + 9);
    let io_op = match op {
        bindings::req_op_REQ_OP_READ => IoOp::Read,
        bindings::req_op_REQ_OP_WRITE => IoOp::Write,
        bindings::req_op_REQ_OP_FLUSH => IoOp::Flush,
        bindings::req_op_REQ_OP_DISCARD => IoOp::Discard,
        bindings::req_op_REQ_OP_WRITE_ZEROES => IoOp::WriteZeroes,
        _ => return BLK_STS_NOTSUPP,
    };
    let mut segs = [Segment { addr: 0, len: 0 }; MAX_SEGS];
    let mut nsegs = 0;
    if matches!(io_op, IoOp::Read | IoOp::Write) {
        p.dir = if io_op == IoOp::Read {
            bindings::dma_data_direction::DMA_FROM_DEVICE
        } else {
            bindings::dma_data_direction::DMA_TO_DEVICE
        };
        let mut last_sg = ptr::null_mut();
        // Only as many entries as the request has segments are initialised (most requests
        // have one): the table is reused, so its end marker must be where mapping stops.
        // SAFETY: `rq` is ours.
        let nseg = unsafe { (*rq).nr_phys_segments };
        if usize::from(nseg) > MAX_SEGS {
            return BLK_STS_IOERR;
        }
        // SAFETY: `sg` has at least `nseg.max(1)` entries (checked above, and the queue's
        // max_segments is at most MAX_SEGS); the request's bios are stable while we own it.
        let n = unsafe {
            bindings::sg_init_table(p.sg.as_mut_ptr(), c_uint::from(nseg.max(1)));
            bindings::__blk_rq_map_sg(rq, p.sg.as_mut_ptr(), &mut last_sg)
        };
        if n <= 0 {
            return BLK_STS_IOERR;
        }
        // SAFETY: `sg[..n]` describes the request's pages; the device is bound (requests
        // arrive only while the tag set lives, and `Io` frees it before the unbind ends).
        let mapped = unsafe {
            bindings::dma_map_sg_attrs(&raw mut (*io.pdev()).dev, p.sg.as_mut_ptr(), n, p.dir, 0)
        };
        if mapped == 0 {
            return BLK_STS_RESOURCE;
        }
        p.nents = n;
        for (i, s) in segs.iter_mut().enumerate().take(mapped as usize) {
            // SAFETY: entry `i` is among the `mapped` entries dma_map_sg filled in.
            unsafe {
                let e = p.sg.as_mut_ptr().add(i);
                *s = Segment {
                    addr: bindings::sg_dma_address(e),
                    len: bindings::sg_dma_len(e),
                };
            }
            nsegs += 1;
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
    match submit(hq, tag, rq, last, |q| q.submit(tag, &req)) {
        BLK_STS_OK => BLK_STS_OK,
        st => {
            // SAFETY: the request was not handed to the device; its mapping is ours.
            unsafe { unmap(io, rq) };
            st
        }
    }
}

/// Submits a request's command on `hq` under `tag` with `build`, records the request and
/// rings the doorbell if it is the last of a batch.
fn submit(
    hq: &HwQueue,
    tag: u16,
    rq: *mut bindings::request,
    last: bool,
    build: impl FnOnce(&mut Queue) -> Result<(), io::SubmitError>,
) -> u8 {
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
        *slot = rq;
        inner.submitted += 1;
        if last {
            let _ = q.ring(&hq.bar, hq.shadow.as_deref());
        }
        Ok(())
    });
    match res {
        Ok(()) => BLK_STS_OK,
        Err(s) => s,
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

/// blk-mq `commit_rqs`: rings the doorbell owed for the last requests queued.
///
/// # Safety
///
/// Called by blk-mq with a context of our tag set.
unsafe extern "C" fn commit_rqs<O: Owner>(hctx: *mut bindings::blk_mq_hw_ctx) {
    // SAFETY: a live context of our tag set.
    let Some((_, hq)) = (unsafe { io_of::<O>(hctx) }) else {
        return;
    };
    hq.inner.lock(|inner| {
        if let Some(q) = inner.q.as_mut() {
            let _ = q.ring(&hq.bar, hq.shadow.as_deref());
        }
    });
}

/// blk-mq `complete`: unmaps the data and ends the request with the status stored by
/// [`reap`].
///
/// # Safety
///
/// Called by blk-mq for a request of our tag set that was completed.
unsafe extern "C" fn complete<O: Owner>(rq: *mut bindings::request) {
    // SAFETY: `rq` is ours and was completed by `reap` or the timeout handler.
    unsafe {
        if let Some((io, _)) = io_of::<O>((*rq).mq_hctx) {
            unmap(io, rq);
        }
        bindings::blk_mq_end_request(rq, pdu(rq).status);
    }
}

/// blk-mq `poll`: reaps a poll queue.
///
/// # Safety
///
/// Called by blk-mq with a context of our tag set.
unsafe extern "C" fn poll<O: Owner>(
    hctx: *mut bindings::blk_mq_hw_ctx,
    _iob: *mut bindings::io_comp_batch,
) -> c_int {
    // SAFETY: a live context of our tag set.
    let Some((_, hq)) = (unsafe { io_of::<O>(hctx) }) else {
        return 0;
    };
    // CAST: bounded by the queue depth.
    reap(hq) as c_int
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
struct LadderRq<'a, O: Owner> {
    io: &'a Io<O>,
    hq: &'a HwQueue,
    rq: *mut bindings::request,
    tag: u16,
}

impl<O: Owner> Expired for LadderRq<'_, O> {
    fn reap_and_find(&mut self, cancel: bool) -> Option<u16> {
        reap(self.hq);
        let (rq, tag) = (self.rq, self.tag);
        self.hq.inner.lock(|inner| {
            let q = inner.q.as_mut()?;
            let slot = inner.rqs.get_mut(usize::from(tag))?;
            if *slot != rq || !q.in_flight(tag) {
                return None;
            }
            let cid = q.cid_of(tag);
            if cancel {
                q.cancel(tag);
                *slot = ptr::null_mut();
            }
            cid
        })
    }

    fn aborted(&self) -> bool {
        // SAFETY: the request is ours while blk-mq's timeout holds it.
        unsafe { pdu(self.rq) }.aborted
    }

    fn set_aborted(&mut self) {
        // SAFETY: as above.
        unsafe { pdu(self.rq) }.aborted = true;
    }

    fn fail_timed_out(&mut self) {
        // SAFETY: the request is ours again (its CID was cancelled); ended once.
        unsafe {
            pdu(self.rq).status = BLK_STS_TIMEOUT;
            unmap(self.io, self.rq);
            bindings::blk_mq_end_request(self.rq, BLK_STS_TIMEOUT);
        }
    }
}

/// blk-mq `timeout`: the core's timeout ladder ([`ladder::expired`]): the queue is reaped
/// first (a missed interrupt); a command really outstanding gets one Abort and another
/// period; if it is still outstanding then, the controller is reset, which resubmits or
/// fails it. While the device is being unbound the command is cancelled and fails.
///
/// # Safety
///
/// Called by blk-mq for a request of our tag set, holding a reference on it.
unsafe extern "C" fn timeout<O: Owner>(
    rq: *mut bindings::request,
) -> bindings::blk_eh_timer_return {
    // SAFETY: blk-mq holds a reference on `rq` for the duration of the call.
    let Some((io, hq)) = (unsafe { io_of::<O>((*rq).mq_hctx) }) else {
        return bindings::blk_eh_timer_return_BLK_EH_DONE;
    };
    // SAFETY: as above.
    let Ok(tag) = u16::try_from(unsafe { (*rq).tag }) else {
        return bindings::blk_eh_timer_return_BLK_EH_DONE;
    };
    let host = LadderCtrl {
        io,
        qid: hq.qid,
        tag,
    };
    let mut req = LadderRq { io, hq, rq, tag };
    match ladder::expired(&host, &mut req, hq.qid) {
        TimeoutAction::Done => bindings::blk_eh_timer_return_BLK_EH_DONE,
        TimeoutAction::ResetTimer => bindings::blk_eh_timer_return_BLK_EH_RESET_TIMER,
    }
}

/// The disks' `ioctl`: the NVMe ioctls (anything else is ENOTTY).
///
/// # Safety
///
/// Called by the block layer for an open block device of one of our disks.
unsafe extern "C" fn blk_ioctl<O: Owner>(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: kernel::ffi::c_ulong,
) -> c_int {
    /// `BLK_OPEN_WRITE` of `<linux/blkdev.h>`.
    const BLK_OPEN_WRITE: bindings::blk_mode_t = 1 << 1;
    // SAFETY: the device is open, so its disk, the disk's queue and `private_data` (a
    // reference on the owner from `Arc::into_raw`, dropped only by `free_disk`) are alive.
    let (owner, q, partition) = unsafe {
        let disk = (*bdev).bd_disk;
        (
            ArcBorrow::from_raw((*disk).private_data.cast::<O>()),
            (*disk).queue,
            (*disk).part0 != bdev,
        )
    };
    // SAFETY: the device is open, so its disk's queue is live for the call.
    let q = unsafe { BlkQueue::new(q) };
    // CAST: `queuedata` carries a u32 NSID (see `add_disk`).
    let nsid = q.queuedata() as u32;
    match O::disk_ioctl(
        owner,
        q,
        nsid,
        partition,
        mode & BLK_OPEN_WRITE != 0,
        cmd,
        arg,
    ) {
        // CAST: the value is an NSID or a 15-bit status.
        Ok(v) => v as c_int,
        Err(e) => e.to_errno(),
    }
}

/// The disks' `free_disk`: drops the disk's reference on the owner.
///
/// # Safety
///
/// Called once by the block layer when one of our disks is freed.
unsafe extern "C" fn free_disk<O: Owner>(disk: *mut bindings::gendisk) {
    // SAFETY: `add_disk` stored a reference from `Arc::into_raw` here; this is its only
    // release.
    unsafe {
        let p = (*disk).private_data.cast::<O>();
        if !p.is_null() {
            drop(Arc::from_raw(p));
        }
    }
}

/// blk-mq `map_queues`: interrupt queues follow their vectors' CPU affinity, poll queues
/// are spread evenly.
///
/// # Safety
///
/// Called by blk-mq for our tag set.
unsafe extern "C" fn map_queues<O: Owner>(set: *mut bindings::blk_mq_tag_set) {
    // SAFETY: our tag set; `driver_data` is its `Io`.
    unsafe {
        let io = &*(*set).driver_data.cast::<Io<O>>();
        let maps = &mut (*set).map;
        // The queues in service are a prefix: interrupt-driven ones first (at least one).
        let live = io.live.load(Relaxed).max(1);
        let nr_default = io.nr_default.min(live);
        let nr_poll = io.nr_poll.min(live - nr_default);
        let def = &mut maps[bindings::hctx_type_HCTX_TYPE_DEFAULT as usize];
        def.nr_queues = nr_default;
        def.queue_offset = 0;
        // With fewer queues than vectors, some CPUs' vectors serve no queue, and once the
        // queue count changed (see `remapped`): spread the CPUs evenly instead of by affinity.
        if io.spread && nr_default == io.nr_default && !io.remapped.load(Relaxed) {
            // Follow the vectors' CPU affinity (vector 0 is the admin queue's).
            bindings::blk_mq_map_hw_queues(def, &raw mut (*io.pdev()).dev, 1);
        } else {
            bindings::blk_mq_map_queues(def);
        }
        if (*set).nr_maps > bindings::hctx_type_HCTX_TYPE_POLL {
            maps[bindings::hctx_type_HCTX_TYPE_READ as usize].nr_queues = 0;
            let pollm = &mut maps[bindings::hctx_type_HCTX_TYPE_POLL as usize];
            pollm.nr_queues = nr_poll;
            pollm.queue_offset = nr_default;
            if nr_poll > 0 {
                bindings::blk_mq_map_queues(pollm);
            }
        }
    }
}

/// [`Io::FOPS`] (its module pointer makes it `!Sync` as bindgen sees it).
struct Fops(bindings::block_device_operations);

// SAFETY: the table is never written; the module it names lives as long as the table.
unsafe impl Sync for Fops {}

impl<O: Owner> Io<O> {
    /// The disks' operations. In static memory (a promoted constant): a disk held open (a
    /// file descriptor kept across unbind) outlives the controller's block state, and its
    /// last close still calls through them (`release`) and `free_disk`.
    const FOPS: Fops = Fops(bindings::block_device_operations {
        submit_bio: None,
        poll_bio: None,
        open: None,
        release: None,
        ioctl: Some(blk_ioctl::<O>),
        compat_ioctl: None,
        check_events: None,
        unlock_native_capacity: None,
        getgeo: None,
        set_read_only: None,
        free_disk: Some(free_disk::<O>),
        swap_slot_free_notify: None,
        report_zones: None,
        devnode: None,
        get_unique_id: None,
        // The module cannot be unloaded while a disk is open.
        owner: <crate::OrionModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr(),
        pr_ops: ptr::null(),
        alternative_gpt_sector: None,
    });

    /// The blk-mq callbacks, in static memory (a promoted constant). Fields that only some
    /// configurations have (`show_rq` exists only with `CONFIG_BLK_DEBUG_FS`) are never
    /// named: they start zeroed.
    #[allow(clippy::needless_update)]
    const OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(queue_rq::<O>),
        commit_rqs: Some(commit_rqs::<O>),
        queue_rqs: None,
        get_budget: None,
        put_budget: None,
        set_rq_budget_token: None,
        get_rq_budget_token: None,
        timeout: Some(timeout::<O>),
        poll: Some(poll::<O>),
        complete: Some(complete::<O>),
        init_hctx: Some(init_hctx),
        exit_hctx: None,
        init_request: None,
        exit_request: None,
        cleanup_rq: None,
        busy: None,
        map_queues: Some(map_queues::<O>),
        ..pin_init::zeroed()
    };
}
