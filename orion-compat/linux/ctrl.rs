// SPDX-License-Identifier: GPL-2.0

//! The controller's state once probe has brought it up, shared by the probe, the controller
//! node, the disks and teardown: where the controller lives (up, dead after a reset that
//! could not bring it back, or between the halves of a function reset), its block layer, the
//! event poll and rescans, and the buffers of timed-out commands. The reset work is in
//! `reset.rs`; the ioctls and nodes that reach the controller through this state are in
//! `mgmt.rs`, above it.

#![forbid(unsafe_code)]

use crate::bindings::work;
use crate::blk::{nowait::QueueRef, Io, Kept};
use crate::orion::controller::{
    Controller, ControllerInfo, CtrlError, Disabled, NamespaceInfo, PageBuf,
};
use crate::orion::events::{self, Event, Poll};
use crate::orion::namespace::RescanCount;
use crate::orion::recovery::reset as core_reset;
use crate::orion::spec::identify::NsIds;
use crate::orion_compat::Lock as _;
use crate::platform::{Ctrl, LinuxCoherent, LinuxPlatform, Show};
use crate::sync::LinuxMutex;
use kernel::static_lock_class;
use kernel::sync::atomic::{Acquire, Atomic, Relaxed};
use kernel::workqueue::{self, new_delayed_work, new_work, DelayedWork, Work, WorkItem};
use kernel::{prelude::*, sync::Arc};

/// A controller that a reset could not bring back, kept (disabled) until unbind.
pub(crate) type DeadCtrl = Controller<LinuxPlatform, Disabled>;

/// A reset between its halves: the controller disabled and what its queues keep.
pub(crate) type Parked = core_reset::Parked<LinuxPlatform, KVec<Option<Kept>>>;

/// The core's bounce buffer for passthrough data, in coherent memory (its chunks in a
/// vector: the buffer itself stays small on the kernel stack).
pub(crate) type Bounce =
    crate::orion::passthru::bounce::Bounce<LinuxCoherent, KVec<Option<LinuxCoherent>>>;

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
    /// The controller, while it is up; taken out for teardown before the device is unbound
    /// (see [`Shared::take_ctrl`]). Its BAR and DMA refuse with ENODEV after an unbind.
    pub(crate) ctrl: LinuxMutex<Option<Ctrl>>,
    /// The controller, disabled, after a reset that could not bring it back; I/O fails and
    /// the ioctls answer ENODEV until the device is unbound.
    pub(crate) dead: LinuxMutex<Option<DeadCtrl>>,
    /// A function reset between `reset_prepare` and `reset_done`.
    pub(crate) parked: LinuxMutex<Option<Parked>>,
    /// Bounce buffers of commands that timed out, freed after the controller is shut down.
    quarantine: LinuxMutex<KVec<Bounce>>,
    /// The controller's Commands Supported and Effects log, if it has one (a page, read as
    /// `spec::log::Effects`).
    pub(crate) effects: Option<KBox<PageBuf>>,
    /// Largest passthrough data transfer (MDTS, capped like block I/O).
    pub(crate) max_data: u32,
    /// The `C` of `onvme<C>`.
    pub(crate) instance: u32,
    /// What sysfs shows of the controller.
    pub(crate) identity: Identity,
    /// Identifiers of each namespace found (replaced by a rescan).
    ns_ids: LinuxMutex<KVec<(u32, NsIds)>>,
    /// The block layer, while it is up (for rescans and resets); see [`Shared::set_io`]. It
    /// holds a reference on this state, a cycle the bound device breaks at unbind by taking
    /// it out ([`Shared::clear_io`]) before tearing it down.
    pub(crate) io: LinuxMutex<Option<KBox<Io<Shared>>>>,
    /// Queues in use, the admin queue included (0 until the block layer is up).
    queues: Atomic<u32>,
    /// I/O submission queue size, 0's based.
    sqsize: Atomic<u32>,
    /// The disks' queues by NSID, for the controller node's I/O command; held while such a
    /// command runs, emptied before the disks are removed.
    pub(crate) disks: LinuxMutex<KVec<(u32, Queue)>>,
}

/// The workqueue for the event poll and resets: the kernel's default unbound one (the
/// kernel crate's `system()` is the per-CPU queue 7.3 deprecates).
pub(crate) fn queue() -> &'static workqueue::Queue {
    work::system_dfl()
}

/// How often the admin queue is polled for asynchronous events (about a second).
// CAST: HZ is at most 1000.
const EVENT_POLL_JIFFIES: usize = kernel::bindings::HZ as usize;

kernel::impl_has_work! {
    impl HasWork<Self, 1> for Shared { self.reset_work }
}

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

/// A disk's request queue, with a reference held on it while it is listed.
pub(crate) struct Queue(pub(crate) QueueRef);

impl Queue {
    /// A reference on the queue; `None` when it is dying.
    pub(crate) fn get_ref(&self) -> Option<QueueRef> {
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

    /// The controller's state as sysfs `state` shows it (the reference driver's words).
    pub(crate) fn state(&self) -> &'static str {
        if self.resetting.load(Acquire) {
            "resetting"
        } else if self.is_live() {
            "live"
        } else if self.dead.lock(|d| d.is_some()) {
            "dead"
        } else {
            "deleting"
        }
    }

    /// Whether the device is being unbound.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// Whether a reset is in progress or the controller is dead (the timeout ladder then
    /// leaves commands to the reset).
    pub(crate) fn is_recovering(&self) -> bool {
        self.resetting.load(Acquire) || self.dead.lock(|d| d.is_some())
    }

    /// Sends Abort for command `cid` on submission queue `sqid` and waits for its
    /// completion: `Ok(true)` when the controller says it aborted the command.
    pub(crate) fn abort(&self, sqid: u16, cid: u16) -> core::result::Result<bool, CtrlError> {
        self.with_ctrl(|c| crate::orion::recovery::abort(c, sqid, cid))
            .unwrap_or(Err(CtrlError::Gone))
    }

    /// Queues a reset on the system workqueue (from the timeout handler and the event poll,
    /// which must not run one themselves). A reset already queued is not queued twice.
    pub(crate) fn schedule_reset(self: &Arc<Self>) {
        if self.stopping.load(Relaxed) || self.is_recovering() {
            return;
        }
        // Already queued: the reference comes back and is dropped.
        let _ = work::system_dfl().enqueue::<_, 1>(self.clone());
    }

    /// Cancels a queued reset (releasing its reference) and waits for a running one.
    pub(crate) fn cancel_reset_work(self: &Arc<Self>) {
        work::cancel_sync::<_, 1>(self);
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
        work::cancel_delayed_sync::<_, 0>(self);
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
                Show(&warning)
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
    pub(crate) fn add_disk(&self, nsid: u32, q: QueueRef) -> Result {
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

    /// Hands the block layer over, reachable for rescans and resets.
    pub(crate) fn set_io(&self, io: KBox<Io<Shared>>) {
        self.io.lock(|i| *i = Some(io));
    }

    /// Takes the block layer back for teardown (waiting for a rescan or reset in progress);
    /// from then on neither finds it.
    pub(crate) fn clear_io(&self) -> Option<KBox<Io<Shared>>> {
        self.io.lock(|i| i.take())
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
            Some(p) => p.rescan(&info, &found),
            None => Err(ENODEV),
        })
    }

    /// Hands the controller over to the shared state (the bound device takes it back with
    /// [`Shared::take_ctrl`] before unbinding completes).
    pub(crate) fn put_ctrl(&self, ctrl: Ctrl) {
        self.ctrl.lock(|c| *c = Some(ctrl));
    }

    /// Takes the controller back for teardown; afterwards every ioctl fails with ENODEV.
    pub(crate) fn take_ctrl(&self) -> Option<Ctrl> {
        self.ctrl.lock(|c| c.take())
    }

    /// Runs `f` on the controller, if it is up.
    pub(crate) fn with_ctrl<R>(&self, f: impl FnOnce(&mut Ctrl) -> R) -> Result<R> {
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

    pub(crate) fn quarantine(&self, b: Bounce) {
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
