// SPDX-License-Identifier: GPL-2.0

//! The management interface: one controller node per controller, `/dev/onvme<C>` (a misc
//! device, the role of the reference driver's `/dev/nvmeX`), and the NVMe ioctls on it and on
//! the disks: admin and I/O passthrough with the Linux uapi layouts.
//!
//! What may be sent is the core's decision ([`passthru::check`]); this module copies the
//! caller's structure in, moves data through a bounce buffer of coherent memory (the device
//! never sees user pages), runs the command and writes the result back. Admin commands run on
//! the core's polled admin queue under the controller's lock; I/O commands travel as blk-mq
//! driver-private requests on the namespace's disk (see `blk::execute_passthru`).
//!
//! A command whose wait ends in a timeout may still be written by the device later: its
//! bounce buffer is kept (quarantined) until the controller has been shut down.

#![forbid(unsafe_code)]

use crate::bindings::blk::Queue as BlkQueue;
use crate::orion::command::Segment;
use crate::orion::controller::{ControllerInfo, CtrlError, NamespaceInfo, PageBuf};
use crate::orion::events::{self, Event, Poll};
use crate::orion::namespace::RescanCount;
use crate::orion::passthru::bounce::{
    admin_followup, admin_timeout, AdminError, AdminFollowup, BounceError, MAX_TIMEOUT_MS,
};
use crate::orion::passthru::{
    self, Caller, Checked, Completion, Direction, Limits, Node, QueueKind, Refusal,
};
use crate::orion::spec::identify::NsIds;
use crate::orion::spec::log::Effects;
use crate::orion_compat::{ErrorKind, Lock as _};
use crate::platform::LinuxCoherent;
use crate::sync::LinuxMutex;
use crate::Ctrl;
use kernel::static_lock_class;
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::workqueue::{self, new_delayed_work, new_work, DelayedWork, Work, WorkItem};
use kernel::{
    prelude::*,
    sync::{Arc, ArcBorrow},
    uaccess::{UserPtr, UserSlice},
};
use zerocopy::{FromBytes, IntoBytes};

mod generic;
mod uapi;
pub(crate) use generic::{GenericNode, NodeData, NodeFile, UserBuf};
use uapi::{ioctl, PassthruCmd, PassthruCmd64, UserIo};

/// The core's bounce buffer for passthrough data, in coherent memory (its chunks in a
/// vector: the buffer itself stays small on the kernel stack).
pub(crate) type Bounce =
    crate::orion::passthru::bounce::Bounce<LinuxCoherent, KVec<Option<LinuxCoherent>>>;
/// The most bytes copied between the caller and a bounce buffer at a time.
const COPY_CHUNK: usize = crate::orion::passthru::bounce::CHUNK;

/// Controller state shared by the probe, the controller node, the disks and teardown.
#[pin_data]
pub(crate) struct Shared {
    /// Polls for asynchronous events once a second while the controller is up.
    #[pin]
    events: DelayedWork<Shared>,
    /// Resets the controller when the timeout handler or the event poll asks for it.
    #[pin]
    pub(crate) reset_work: Work<Shared, 1>,
    /// Set when the device goes away: the event work stops re-queueing itself.
    pub(crate) stopping: Atomic<bool>,
    /// A controller reset is in progress.
    pub(crate) resetting: Atomic<bool>,
    /// Resets done since probe.
    pub(crate) resets: Atomic<u32>,
    /// The controller, while it is up. Its lifetime is erased: it is taken out (and the real
    /// lifetime restored) before the device is unbound, see [`Shared::take_ctrl`].
    pub(crate) ctrl: LinuxMutex<Option<Ctrl<'static>>>,
    /// The controller, disabled, after a reset that could not bring it back (lifetime erased
    /// the same way); I/O fails and the ioctls answer ENODEV until the device is unbound.
    pub(crate) dead: LinuxMutex<Option<crate::reset::DeadCtrl<'static>>>,
    /// A function reset between `reset_prepare` and `reset_done` (lifetime erased the same
    /// way).
    pub(crate) parked: LinuxMutex<Option<crate::reset::Parked>>,
    /// Bounce buffers of commands that timed out, freed after the controller is shut down.
    quarantine: LinuxMutex<KVec<Bounce>>,
    /// The controller's Commands Supported and Effects log, if it has one (a page, read as
    /// [`Effects`]).
    effects: Option<KBox<PageBuf>>,
    /// Largest passthrough data transfer (MDTS, capped like block I/O).
    max_data: u32,
    /// The `C` of `onvme<C>`.
    pub(crate) instance: u32,
    /// What sysfs shows of the controller.
    pub(crate) identity: Identity,
    /// Identifiers of each namespace found (replaced by a rescan).
    ns_ids: LinuxMutex<KVec<(u32, NsIds)>>,
    /// The block layer, while it is up (for rescans and resets); see [`Shared::set_io`].
    pub(crate) io: LinuxMutex<Option<IoRef>>,
    /// Queues in use, the admin queue included (0 until the block layer is up).
    queues: Atomic<u32>,
    /// I/O submission queue size, 0's based.
    sqsize: Atomic<u32>,
    /// The disks' queues by NSID, for the controller node's I/O command; held while such a
    /// command runs, emptied before the disks are removed.
    disks: LinuxMutex<KVec<(u32, Queue)>>,
}

/// The workqueue for the event poll and resets: the kernel's default unbound one (the
/// kernel crate's `system()` is the per-CPU queue 7.3 deprecates).
pub(crate) fn queue() -> &'static workqueue::Queue {
    crate::bindings::work::system_dfl()
}

/// How often the admin queue is polled for asynchronous events (about a second).
// CAST: HZ is at most 1000.
const EVENT_POLL_JIFFIES: usize = kernel::bindings::HZ as usize;

kernel::impl_has_delayed_work! {
    impl HasDelayedWork<Self> for Shared { self.events }
}

impl WorkItem for Shared {
    type Pointer = Arc<Shared>;

    fn run(this: Arc<Shared>) {
        if this.stopping.load(Relaxed) {
            return;
        }
        Shared::poll_events(&this);
        if !this.stopping.load(Relaxed) {
            let _ = queue().enqueue_delayed(this, EVENT_POLL_JIFFIES);
        }
    }
}

/// The controller's block layer, owned by the bound device and lent to the shared state
/// while it is up (lifetime erased as the controller's is, see [`Shared::ctrl`]).
pub(crate) type IoRef = crate::bindings::lend::Lent<crate::blk::Io<'static>>;

/// A disk's request queue, with a reference held on it while it is listed.
pub(crate) struct Queue(crate::blk::nowait::QueueRef);

impl Queue {
    /// A reference on the queue; `None` when it is dying.
    pub(crate) fn get_ref(&self) -> Option<crate::blk::nowait::QueueRef> {
        self.0.try_clone()
    }
}

/// The controller's identity as sysfs shows it.
pub(crate) struct Identity {
    pub(crate) vid: u16,
    pub(crate) cntlid: u16,
    pub(crate) model: [u8; 40],
    pub(crate) serial: [u8; 20],
    pub(crate) firmware: [u8; 8],
    pub(crate) subnqn: [u8; 256],
    /// The PCI address, NUL padded.
    pub(crate) address: [u8; 32],
    pub(crate) numa_node: i32,
}

impl Identity {
    /// From Identify Controller and the PCI device.
    pub(crate) fn new(
        info: &ControllerInfo,
        pdev: &kernel::pci::Device<kernel::device::Bound>,
    ) -> Self {
        let mut address = [0u8; 32];
        let dev: &kernel::device::Device<kernel::device::Bound> = pdev.as_ref();
        let name = dev.name();
        for (d, s) in address.iter_mut().zip(name.to_bytes()) {
            *d = *s;
        }
        Self {
            vid: info.vid,
            cntlid: info.cntlid,
            model: info.mn,
            serial: info.sn,
            firmware: info.fr,
            subnqn: info.subnqn,
            address,
            // Without CONFIG_NUMA every device is on no particular node.
            numa_node: -1,
        }
    }
}

impl Shared {
    /// Shared state for a controller that is being brought up (no controller inside yet).
    pub(crate) fn new(
        instance: u32,
        max_data: u32,
        effects: Option<KBox<PageBuf>>,
        identity: Identity,
        namespaces: &[NamespaceInfo],
    ) -> Result<Arc<Self>> {
        let ctrl = LinuxMutex::with_class(None, c"orion_nvme::ctrl", static_lock_class!())?;
        let quarantine =
            LinuxMutex::with_class(KVec::new(), c"orion_nvme::quarantine", static_lock_class!())?;
        let disks =
            LinuxMutex::with_class(KVec::new(), c"orion_nvme::node_disks", static_lock_class!())?;
        let ns_ids = LinuxMutex::with_class(
            ids_of(namespaces)?,
            c"orion_nvme::ns_ids",
            static_lock_class!(),
        )?;
        let io = LinuxMutex::with_class(None, c"orion_nvme::io", static_lock_class!())?;
        let dead = LinuxMutex::with_class(None, c"orion_nvme::dead", static_lock_class!())?;
        let parked = LinuxMutex::with_class(None, c"orion_nvme::parked", static_lock_class!())?;
        Arc::pin_init(
            pin_init!(Self {
                events <- new_delayed_work!("orion_nvme::events"),
                reset_work <- new_work!("orion_nvme::reset"),
                stopping: Atomic::new(false),
                resetting: Atomic::new(false),
                resets: Atomic::new(0),
                ctrl,
                dead,
                parked,
                quarantine,
                effects,
                max_data,
                instance,
                identity,
                ns_ids,
                io,
                queues: Atomic::new(0),
                sqsize: Atomic::new(0),
                disks,
            }),
            GFP_KERNEL,
        )
    }

    /// Arms asynchronous events and starts polling for them.
    pub(crate) fn start_events(self: &Arc<Self>) {
        let r = self.with_ctrl(|c| c.start_async_events());
        if !matches!(r, Ok(Ok(()))) {
            pr_warn!(
                "orion_nvme: onvme{}: no asynchronous events: {:?}\n",
                self.instance,
                r.map(|x| x.map_err(|_| ()))
            );
            return;
        }
        let _ = queue().enqueue_delayed(self.clone(), EVENT_POLL_JIFFIES);
    }

    /// Stops the event and reset work: no new run starts, a queued one is cancelled (its
    /// reference released) and a running one is waited for. Call before the controller is
    /// taken.
    pub(crate) fn stop_events(self: &Arc<Self>) {
        self.stopping.store(true, Relaxed);
        self.cancel_reset_work();
        crate::bindings::work::cancel_delayed_sync::<_, 0>(self);
    }

    /// One poll through the core ([`events::poll`]): a controller that failed (CSTS.CFS)
    /// or vanished is reset (the reset decides whether it comes back); a completed event is
    /// serviced (its log page read, which clears it, the request re-armed) and reported, and
    /// a namespace change rescans.
    fn poll_events(self: &Arc<Self>) {
        let polled = match self.with_ctrl(events::poll) {
            Ok(Ok(p)) => p,
            _ => return,
        };
        let s = match polled {
            Poll::Quiet => return,
            Poll::Reset(why) => {
                pr_err!(
                    "orion_nvme: onvme{}: {}; resetting\n",
                    self.instance,
                    why.describe()
                );
                self.schedule_reset();
                return;
            }
            Poll::Event(s) => s,
        };
        match s.event {
            Event::Smart { info, warning } => pr_crit!(
                "orion_nvme: onvme{}: SMART/Health event (information {:#04x}): critical warning {:#04x}{}\n",
                self.instance,
                info,
                warning.0,
                crate::Show(&warning)
            ),
            Event::NamespacesChanged => {}
            Event::Other { kind, info, log } => pr_info!(
                "orion_nvme: onvme{}: asynchronous event {:?} information {:#04x} log {:#04x}\n",
                self.instance,
                kind,
                info,
                log
            ),
        }
        if let Some(e) = s.failed {
            pr_warn!(
                "orion_nvme: onvme{}: handling an asynchronous event: {:?}\n",
                self.instance,
                e
            );
        }
        if s.event.needs_rescan() {
            match self.rescan() {
                Ok(x) => pr_info!(
                    "orion_nvme: onvme{}: namespaces changed: {} disks added, {} removed, {} resized\n",
                    self.instance,
                    x.added,
                    x.removed,
                    x.resized
                ),
                Err(e) => pr_warn!("orion_nvme: onvme{}: rescan after a namespace change: {:?}\n", self.instance, e),
            }
        }
    }

    /// Rescans after `why` (a reset, a command that changes namespaces) and logs what the
    /// disks did, if anything, or why the rescan failed.
    pub(crate) fn rescan_and_log(&self, why: core::fmt::Arguments<'_>) {
        match self.rescan() {
            Ok(x) if x.any() => pr_info!(
                "orion_nvme: onvme{}: after {}: {} disks added, {} removed, {} resized\n",
                self.instance,
                why,
                x.added,
                x.removed,
                x.resized
            ),
            Ok(_) => {}
            Err(e) => pr_warn!(
                "orion_nvme: onvme{}: rescan after {}: {:?}\n",
                self.instance,
                why,
                e
            ),
        }
    }

    /// Records the queues the block layer set up: I/O queue count and depth.
    pub(crate) fn set_queues(&self, io_queues: u32, depth: u32) {
        self.queues.store(io_queues + 1, Relaxed);
        self.sqsize.store(depth.saturating_sub(1), Relaxed);
    }

    pub(crate) fn queue_count(&self) -> u32 {
        self.queues.load(Relaxed)
    }

    pub(crate) fn sqsize(&self) -> u32 {
        self.sqsize.load(Relaxed)
    }

    /// Records a disk added for namespace `nsid`.
    pub(crate) fn add_disk(&self, nsid: u32, q: crate::blk::nowait::QueueRef) -> Result {
        self.disks
            .lock(|d| d.push((nsid, Queue(q)), GFP_KERNEL))
            .map_err(|_| ENOMEM)
    }

    /// Forgets the disks (waiting for a controller-node I/O command that uses one).
    pub(crate) fn forget_disks(&self) {
        self.disks.lock(|d| d.clear());
    }

    /// Whether the controller is up (not being torn down).
    pub(crate) fn is_live(&self) -> bool {
        self.ctrl.lock(|c| c.is_some())
    }

    /// The identifiers of namespace `nsid`.
    pub(crate) fn ns_ids(&self, nsid: u32) -> Option<NsIds> {
        self.ns_ids
            .lock(|l| l.iter().find(|(n, _)| *n == nsid).map(|(_, i)| *i))
    }

    /// Makes the block layer reachable for rescans.
    pub(crate) fn set_io(&self, io: IoRef) {
        self.io.lock(|i| *i = Some(io));
    }

    /// Makes the block layer unreachable (waiting for a rescan in progress).
    pub(crate) fn clear_io(&self) {
        self.io.lock(|i| *i = None);
    }

    /// Forgets namespace `nsid`'s disk (waiting for a controller-node command using it).
    pub(crate) fn forget_disk(&self, nsid: u32) {
        self.disks.lock(|d| d.retain(|(n, _)| *n != nsid));
    }

    /// Rescans the namespaces: disks appear for new ones, go for gone ones, and follow
    /// capacity and format changes.
    pub(crate) fn rescan(&self) -> Result<RescanCount> {
        let mut found = KVec::new();
        let mut oom = false;
        let info = self.with_ctrl(|ctrl| -> Result<ControllerInfo> {
            ctrl.for_each_namespace(
                |ns| oom |= found.push(ns, GFP_KERNEL).is_err(),
                |nsid, why| pr_warn!("orion_nvme: namespace {} skipped: {}\n", nsid, why),
            )
            .map_err(|e| {
                pr_warn!("orion_nvme: rescan failed: {:?}\n", e);
                EIO
            })?;
            ctrl.info().cloned().ok_or(ENODEV)
        })??;
        if oom {
            return Err(ENOMEM);
        }
        let ids = ids_of(&found)?;
        self.ns_ids.lock(|l| *l = ids);
        self.io.lock(|io| match io {
            Some(p) => p.get().rescan(&info, &found),
            None => Err(ENODEV),
        })
    }

    /// Hands the controller over to the shared state (its lifetime erased by the bound
    /// device, which takes it back with [`Shared::take_ctrl`] before unbinding completes).
    pub(crate) fn put_ctrl(&self, ctrl: Ctrl<'static>) {
        self.ctrl.lock(|c| *c = Some(ctrl));
    }

    /// Takes the controller back for teardown; afterwards every ioctl fails with ENODEV.
    pub(crate) fn take_ctrl(&self) -> Option<Ctrl<'static>> {
        self.ctrl.lock(|c| c.take())
    }

    /// Runs `f` on the controller, if it is up.
    pub(crate) fn with_ctrl<R>(&self, f: impl FnOnce(&mut Ctrl<'static>) -> R) -> Result<R> {
        self.ctrl.lock(|c| c.as_mut().map(f)).ok_or(ENODEV)
    }

    /// Frees quarantined buffers; call only once the controller can no longer write memory.
    pub(crate) fn release_quarantine(&self) -> usize {
        self.quarantine.lock(|q| {
            let n = q.len();
            q.clear();
            n
        })
    }

    /// The core's verdict on `cmd` from `caller` through `node` for `queue`, a refusal as its
    /// errno.
    pub(crate) fn check(
        &self,
        cmd: &passthru::Command,
        queue: QueueKind,
        node: Node,
        caller: Caller,
    ) -> Result<Checked> {
        passthru::check(cmd, queue, node, caller, &self.limits()).map_err(refused)
    }

    fn limits(&self) -> Limits<'_> {
        Limits {
            max_data: self.max_data,
            effects: self
                .effects
                .as_deref()
                .and_then(|p| Effects::ref_from_bytes(p.as_bytes()).ok()),
            vendor_admin: crate::module_parameters::vendor_admin_opcodes.value(),
            vendor_io: crate::module_parameters::vendor_io_opcodes.value(),
            max_timeout_ms: MAX_TIMEOUT_MS,
        }
    }

    fn quarantine(&self, b: Bounce) {
        self.quarantine.lock(move |q| {
            if q.reserve(1, GFP_KERNEL).is_ok() {
                // Cannot fail: the room is reserved.
                let _ = q.push_within_capacity(b);
            } else {
                // Leaked rather than freed under the device.
                core::mem::forget(b);
            }
        });
    }
}

/// The identifiers of `namespaces`, by NSID.
fn ids_of(namespaces: &[NamespaceInfo]) -> Result<KVec<(u32, NsIds)>> {
    let mut v = KVec::with_capacity(namespaces.len(), GFP_KERNEL)?;
    for ns in namespaces {
        v.push((ns.nsid, ns.ids), GFP_KERNEL)?;
    }
    Ok(v)
}

/// The errno for a bounce buffer that could not be built or filled.
fn bounce_errno(e: BounceError) -> Error {
    match e {
        BounceError::Platform(ErrorKind::NoMemory) => ENOMEM,
        BounceError::Platform(ErrorKind::Gone) => ENODEV,
        BounceError::Platform(_) | BounceError::Prp(_) => EIO,
        BounceError::TooLong | BounceError::OutOfRange => EINVAL,
    }
}

/// A bounce buffer of `len` bytes for a command on `ctrl`.
pub(crate) fn bounce(ctrl: &Ctrl<'_>, len: usize) -> Result<Bounce> {
    let n = Bounce::chunks_for(len, ctrl.page_size());
    let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        slots.push(None, GFP_KERNEL)?;
    }
    ctrl.bounce(len, slots).map_err(bounce_errno)
}

/// The bounce buffer's segments as the block layer's passthrough request takes them.
pub(crate) fn segments_of(b: &Bounce) -> Result<KVec<Segment>> {
    let s = b.segments();
    let mut v = KVec::with_capacity(s.as_slice().len(), GFP_KERNEL)?;
    for seg in s.as_slice() {
        v.push(*seg, GFP_KERNEL)?;
    }
    Ok(v)
}

/// Copies `len` bytes from the caller's `addr` into `b` at `off`, through `tmp`.
pub(crate) fn fill(b: &Bounce, off: usize, addr: u64, len: usize, tmp: &mut [u8]) -> Result {
    let mut r = UserSlice::new(user_ptr(addr)?, len).reader();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(tmp.len());
        let t = tmp.get_mut(..n).filter(|t| !t.is_empty()).ok_or(EINVAL)?;
        r.read_slice(t)?;
        b.write(off + done, t).map_err(bounce_errno)?;
        done += n;
    }
    Ok(())
}

/// Copies `len` bytes of `b` at `off` out to the caller's `addr`, through `tmp`.
pub(crate) fn drain(b: &Bounce, off: usize, addr: u64, len: usize, tmp: &mut [u8]) -> Result {
    let mut w = UserSlice::new(user_ptr(addr)?, len).writer();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(tmp.len());
        let t = tmp.get_mut(..n).filter(|t| !t.is_empty()).ok_or(EINVAL)?;
        b.read(off + done, t).map_err(bounce_errno)?;
        w.write_slice(t)?;
        done += n;
    }
    Ok(())
}

/// A scratch buffer for copying to and from `b`.
pub(crate) fn scratch(b: &Bounce) -> Result<KVec<u8>> {
    Ok(KVec::from_elem(0u8, COPY_CHUNK.min(b.len()), GFP_KERNEL)?)
}

fn user_ptr(addr: u64) -> Result<UserPtr> {
    Ok(UserPtr::from_addr(
        usize::try_from(addr).map_err(|_| EFAULT)?,
    ))
}

/// The errno for a refusal; the reason is logged at debug level.
fn refused(r: Refusal) -> Error {
    match r {
        Refusal::Invalid(why) => {
            pr_debug!("orion_nvme: passthrough refused: {}\n", why);
            EINVAL
        }
        Refusal::Denied => EACCES,
        Refusal::DriverOwned(what) => {
            pr_debug!("orion_nvme: passthrough may not set {}\n", what);
            EACCES
        }
        Refusal::VendorOpcode(op) => {
            pr_info!(
                "orion_nvme: vendor-specific opcode {:#04x} refused (not in vendor_*_opcodes)\n",
                op
            );
            EPERM
        }
    }
}

/// Runs a checked admin command with its data in the caller's `buf`, then what the core says
/// follows (a rescan, or a reset after a timeout).
fn run_admin(shared: ArcBorrow<'_, Shared>, k: &Checked, buf: &UserBuf) -> Result<Completion> {
    let (r, b) = shared.with_ctrl(|ctrl| -> Result<_> {
        let b = bounce(ctrl, k.len as usize)?;
        if k.dir == Direction::ToDevice {
            buf.copy_in(&b)?;
        }
        Ok((
            ctrl.admin_passthru(k.sqe, &b, admin_timeout(k.timeout_ms)),
            b,
        ))
    })??;
    let opcode = k.sqe.opcode();
    let followup = admin_followup(&r, opcode, shared.limits().effects);
    let out = match r {
        Ok(result) => Ok(Completion { status: 0, result }),
        Err(AdminError::Ctrl(CtrlError::Status(s))) => Ok(Completion {
            status: s.0,
            result: 0,
        }),
        Err(AdminError::Ctrl(CtrlError::Timeout(_))) => Err(ETIMEDOUT),
        Err(AdminError::Ctrl(CtrlError::Gone)) => Err(ENODEV),
        Err(AdminError::Bounce(e)) => Err(bounce_errno(e)),
        Err(AdminError::Ctrl(_)) => Err(EIO),
    };
    if let Ok(d) = &out {
        if d.status == 0 && k.dir == Direction::FromDevice {
            buf.copy_out(&b)?;
        }
    }
    match followup {
        AdminFollowup::Rescan => {
            shared.rescan_and_log(format_args!("admin command {:#04x}", opcode));
        }
        AdminFollowup::Reset => {
            // The device may still write the buffer: kept until the controller is shut down.
            shared.quarantine(b);
            pr_warn!(
                "orion_nvme: onvme{}: admin command {:#04x} timed out; resetting the controller\n",
                shared.instance,
                opcode
            );
            Arc::from(shared).schedule_reset();
        }
        AdminFollowup::None => {}
    }
    out
}

/// Runs a checked I/O command on the namespace behind `q` with its data in the caller's `buf`.
fn run_io(shared: &Shared, q: BlkQueue<'_>, k: &Checked, buf: &UserBuf) -> Result<Completion> {
    let b = shared.with_ctrl(|ctrl| bounce(ctrl, k.len as usize))??;
    if k.dir == Direction::ToDevice {
        buf.copy_in(&b)?;
    }
    let segs = segments_of(&b)?;
    match crate::blk::execute_passthru(
        q.as_ptr(),
        k.sqe,
        &segs,
        k.dir == Direction::ToDevice,
        k.timeout_ms,
    ) {
        Ok((status, result)) => {
            if status == 0 && k.dir == Direction::FromDevice {
                buf.copy_out(&b)?;
            }
            Ok(Completion { status, result })
        }
        Err(e) => {
            if e == ETIMEDOUT {
                shared.quarantine(b);
            }
            Err(e)
        }
    }
}

/// Where an ioctl came in.
pub(crate) enum Via<'a> {
    /// The controller node.
    Controller,
    /// A disk: its queue, NSID and whether the node is a partition.
    Disk(BlkQueue<'a>, u32, bool),
}

/// Reads a `T` from the caller's `arg`.
fn read_arg<T: FromBytes>(arg: usize) -> Result<T> {
    let mut raw = [0u8; 80];
    let n = core::mem::size_of::<T>();
    let buf = raw.get_mut(..n).ok_or(EINVAL)?;
    UserSlice::new(UserPtr::from_addr(arg), n)
        .reader()
        .read_slice(buf)?;
    T::read_from_bytes(buf).map_err(|_| EINVAL)
}

/// The NVMe ioctls, shared by the controller node and the disks. Returns the NVMe status (0
/// on success, as the reference driver) or an errno.
pub(crate) fn nvme_ioctl(
    shared: ArcBorrow<'_, Shared>,
    via: Via<'_>,
    writable: bool,
    cmd: u32,
    arg: usize,
) -> Result<isize> {
    let caller = Caller {
        sys_admin: crate::bindings::sched::sys_admin(),
        writable,
    };
    let node = match via {
        Via::Controller => Node::Controller,
        Via::Disk(_, nsid, false) => Node::Namespace(nsid),
        Via::Disk(_, nsid, true) => Node::Partition(nsid),
    };
    match cmd {
        ioctl::ID => match via {
            // CAST: an NSID is at most 0xffff_fffe; isize is 64 bits here.
            Via::Disk(_, nsid, _) => Ok(nsid as isize),
            Via::Controller => Err(ENOTTY),
        },
        ioctl::ADMIN_CMD | ioctl::ADMIN64_CMD => {
            let wide = cmd == ioctl::ADMIN64_CMD;
            let c = if wide {
                read_arg::<PassthruCmd64>(arg)?
            } else {
                PassthruCmd64::from(&read_arg::<PassthruCmd>(arg)?)
            };
            let k = shared.check(&c.command(), QueueKind::Admin, node, caller)?;
            let d = run_admin(shared, &k, &UserBuf::Flat(c.addr))?;
            write_result(arg, wide, d.result)?;
            // CAST: a 15-bit status.
            Ok(d.status as isize)
        }
        ioctl::IO_CMD if matches!(via, Via::Controller) => {
            // The reference driver's deprecated I/O on the controller node: only with exactly
            // one namespace, which it then goes to (held, so teardown waits for it).
            shared.disks.lock(|d| match d.as_slice() {
                [(nsid, q)] => nvme_ioctl(
                    shared,
                    Via::Disk(q.0.borrow(), *nsid, false),
                    writable,
                    cmd,
                    arg,
                ),
                _ => Err(EINVAL),
            })
        }
        ioctl::IO_CMD | ioctl::IO64_CMD | ioctl::IO64_CMD_VEC | ioctl::SUBMIT_IO => {
            let Via::Disk(q, nsid, _) = via else {
                return Err(ENOTTY);
            };
            let wide = cmd == ioctl::IO64_CMD || cmd == ioctl::IO64_CMD_VEC;
            let (k, buf) = match cmd {
                ioctl::IO64_CMD_VEC => {
                    let c = read_arg::<PassthruCmd64>(arg)?;
                    generic::import_vectored(&shared, &c, QueueKind::Io, node, caller)?
                }
                ioctl::SUBMIT_IO => {
                    let io = read_arg::<UserIo>(arg)?;
                    let lbs = q.logical_block_size();
                    let b = io.block_io().map_err(refused)?;
                    let n = passthru::block_io(&b, nsid, lbs.trailing_zeros()).map_err(refused)?;
                    let k = shared.check(&n, QueueKind::Io, node, caller)?;
                    (k, UserBuf::Flat(io.addr))
                }
                _ => {
                    let c = if cmd == ioctl::IO64_CMD {
                        read_arg::<PassthruCmd64>(arg)?
                    } else {
                        PassthruCmd64::from(&read_arg::<PassthruCmd>(arg)?)
                    };
                    let k = shared.check(&c.command(), QueueKind::Io, node, caller)?;
                    (k, UserBuf::Flat(c.addr))
                }
            };
            let d = run_io(&shared, q, &k, &buf)?;
            if cmd != ioctl::SUBMIT_IO {
                write_result(arg, wide, d.result)?;
            }
            // CAST: a 15-bit status.
            Ok(d.status as isize)
        }
        ioctl::RESET | ioctl::SUBSYS_RESET | ioctl::RESCAN => match via {
            // Controller operations: not on a namespace node (as the reference driver).
            Via::Disk(..) => Err(ENOTTY),
            Via::Controller if !caller.sys_admin => Err(EACCES),
            Via::Controller if cmd == ioctl::RESCAN => {
                let r = shared.rescan()?;
                pr_info!(
                    "orion_nvme: onvme{}: rescan: {} disks added, {} removed, {} resized\n",
                    shared.instance,
                    r.added,
                    r.removed,
                    r.resized
                );
                Ok(0)
            }
            Via::Controller if cmd == ioctl::RESET => shared.reset("NVME_IOCTL_RESET").map(|()| 0),
            Via::Controller => shared.subsystem_reset().map(|()| 0),
        },
        _ => Err(ENOTTY),
    }
}

fn write_result(arg: usize, wide: bool, result: u64) -> Result {
    let (off, bytes): (usize, &[u8]) = if wide {
        (
            core::mem::offset_of!(PassthruCmd64, result),
            &result.to_le_bytes()[..],
        )
    } else {
        (
            core::mem::offset_of!(PassthruCmd, result),
            &result.to_le_bytes()[..4],
        )
    };
    let at = arg.checked_add(off).ok_or(EFAULT)?;
    UserSlice::new(UserPtr::from_addr(at), bytes.len())
        .writer()
        .write_slice(bytes)
}

/// The controller node of one controller, `/dev/onvme<C>`: a [`GenericNode`] serving the
/// controller (the admin ioctls and io_uring admin commands), with the controller's sysfs
/// attributes.
pub(crate) struct CtrlNode {
    /// Registered while this lives (dropping it unregisters the node).
    _node: GenericNode,
}

impl CtrlNode {
    /// Registers `/dev/onvme<instance>`, a child of the PCI device `pdev`, with its sysfs
    /// attributes.
    pub(crate) fn register(
        shared: Arc<Shared>,
        pdev: &kernel::pci::Device<kernel::device::Bound>,
    ) -> Result<Pin<KBox<Self>>> {
        let instance = shared.instance;
        let node = GenericNode::controller(shared, pdev)?;
        // The attributes go with the device: `misc_deregister` removes them. (They follow
        // the add event; libnvme reads them when it scans, not from the event.)
        if let Err(e) = node.add_group(&crate::attrs::CTRL_GROUP) {
            pr_warn!(
                "orion_nvme: onvme{}: no sysfs attributes ({})\n",
                instance,
                e.to_errno()
            );
        }
        Ok(KBox::pin(Self { _node: node }, GFP_KERNEL)?)
    }
}
