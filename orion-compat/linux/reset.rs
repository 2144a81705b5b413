// SPDX-License-Identifier: GPL-2.0

//! Controller reset and recovery (NVMe Base 2.0 §3.7.2): asked for by `NVME_IOCTL_RESET`,
//! sysfs `reset_controller`, the timeout ladder and the event poll (CSTS.CFS, a vanished
//! device).
//!
//! A reset runs with the block layer's lock held (so the device cannot be torn down under
//! it); the controller's lock is held while the controller is taken down (steps 1-2) and
//! while it is brought back (step 3), so admin passthrough and the event poll wait for those
//! (between them the controller is out of its slot and they answer ENODEV). A function reset
//! by the PCI core runs the same two halves from `reset_prepare` and `reset_done`:
//! 1. dispatch stops (`blk_mq_quiesce_tagset`) and completions already posted are reaped;
//! 2. the controller is disabled, which drops every queue; the commands still in flight are
//!    unmapped and resubmitted later or failed ([`crate::orion::recovery::after_reset`]);
//! 3. the controller is enabled and identified again, as many I/O queues as probe created
//!    are asked for, the shadow doorbells are handed back and the queues granted are created
//!    again over their old CID slots and PRP list memory; events are re-armed;
//! 4. dispatch resumes and the interrupted requests go out again;
//! 5. if the controller now grants a different number of queues (fewer, or more again after
//!    fewer, up to probe's), blk-mq remaps its hardware contexts to the queues in service;
//!    requests held by a context that goes away give their bios back, which are submitted
//!    again afterwards (a cache flush or passthrough command there fails); then the
//!    namespaces are rescanned (capacity and format changes, namespaces that came or went).
//!
//! If the controller does not come back (it never gets ready, fails Identify, grants no I/O
//! queue), it is kept disabled as [`DeadCtrl`], its disks are marked dead and every request
//! fails with an I/O error until the device is unbound.

use crate::blk::{Interruptions, Io};
use crate::mgmt::Shared;
use crate::orion::controller::{Controller, CtrlError, Disabled};
use crate::orion::recovery;
use crate::orion::spec::regs::{Offset, NSSR_RESET};
use crate::orion::spec::sqe::Sqe;
use crate::orion_compat::time::Duration;
use crate::orion_compat::{Lock as _, Mmio as _};
use crate::platform::LinuxPlatform;
use crate::Ctrl;
use kernel::prelude::*;
use kernel::sync::atomic::{Acquire, Full, Relaxed, Release};
use kernel::sync::{Arc, ArcBorrow};
use kernel::workqueue::{Work, WorkItem};

/// A controller that a reset could not bring back, kept (disabled) until unbind.
pub(crate) type DeadCtrl<'b> = Controller<LinuxPlatform<'b>, Disabled>;

/// How long the timeout handler waits for an Abort to complete.
const ABORT_TIMEOUT: Duration = Duration::from_millis(5_000);

kernel::impl_has_work! {
    impl HasWork<Self, 1> for Shared { self.reset_work }
}

impl WorkItem<1> for Shared {
    type Pointer = Arc<Shared>;

    fn run(this: Arc<Shared>) {
        if this.stopping.load(Relaxed) {
            return;
        }
        // A reset already under way (or a dead controller) is the answer already.
        let _ = this.reset("recovery");
    }
}

/// A reset between its halves: the controller disabled and what its queues keep.
pub(crate) struct Parked {
    ctrl: DeadCtrl<'static>,
    kept: KVec<Option<crate::blk::Kept>>,
    counts: crate::blk::Interruptions,
}

/// What the interrupted requests became, for the log.
struct Outcome {
    dead: bool,
    retried: u32,
    failed: u32,
}

impl Shared {
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
    pub(crate) fn abort(&self, sqid: u16, cid: u16) -> Result<bool> {
        let dw0 = self
            .with_ctrl(|c| c.admin_raw(Sqe::abort(sqid, cid), ABORT_TIMEOUT))?
            .map_err(|_| EIO)?;
        // CAST: DW0 is the low half of the result.
        Ok(crate::orion::recovery::abort_succeeded(dw0 as u32))
    }

    /// Queues a reset on the system workqueue (from the timeout handler and the event poll,
    /// which must not run one themselves). A reset already queued is not queued twice.
    pub(crate) fn schedule_reset(&self) {
        if self.stopping.load(Relaxed) || self.is_recovering() {
            return;
        }
        // SAFETY: every `Shared` lives in an `Arc` (it is only made by `Shared::new`, through
        // `Arc::pin_init`), and `&self` keeps that `Arc` alive for the duration of the call,
        // so `self` is the pointer `Arc::into_raw` would give.
        let this: Arc<Shared> = unsafe { ArcBorrow::from_raw(core::ptr::from_ref(self)) }.into();
        // Already queued: the reference comes back and is dropped.
        let _ = crate::mgmt::queue().enqueue::<_, 1>(this);
    }

    /// Cancels a queued reset (releasing its reference) and waits for a running one.
    pub(crate) fn cancel_reset_work(self: &Arc<Self>) {
        let w: *const Work<Shared, 1> = &self.reset_work;
        // SAFETY: `reset_work` is a live work item of this `Shared`.
        let pending = unsafe { kernel::bindings::cancel_work_sync(Work::raw_get(w)) };
        if pending {
            // SAFETY: a queued run holds one reference, handed over by `enqueue`
            // (`Arc::into_raw`); it was cancelled, so that reference is released here.
            unsafe { drop(Arc::from_raw(Arc::as_ptr(self))) };
        }
    }

    /// Resets the controller and brings it back with its queues (see the module docs).
    /// `EBUSY` if a reset is already running, `ENODEV` if the controller is dead or being
    /// unbound, `EIO` if it did not come back (it is then dead).
    pub(crate) fn reset(&self, why: &str) -> Result {
        if self.resetting.cmpxchg(false, true, Full).is_err() {
            return Err(EBUSY);
        }
        let r = self.io.lock(|io| match io {
            // SAFETY: the pointer is set while the `Io` lives and cleared (under this lock)
            // before it is torn down.
            Some(p) if !self.stopping.load(Relaxed) => Ok(self.reset_locked(unsafe { &*p.0 }, why)),
            _ => Err(ENODEV),
        });
        self.resetting.store(false, Release);
        self.after_reset(r??, why)
    }

    /// Logs how a reset went and, if the controller is back, rescans the namespaces.
    fn after_reset(&self, o: Outcome, why: &str) -> Result {
        let n = self.resets.fetch_add(1, Relaxed) + 1;
        if o.dead {
            pr_err!(
                "orion_nvme: onvme{}: controller did not come back from reset ({}); {} requests failed, {} will fail\n",
                self.instance,
                why,
                o.failed,
                o.retried
            );
            return Err(EIO);
        }
        pr_info!(
            "orion_nvme: onvme{}: reset {} done ({}): {} requests resubmitted, {} failed\n",
            self.instance,
            n,
            why,
            o.retried,
            o.failed
        );
        // Revalidate the namespaces: a format or capacity change, or namespaces that came or
        // went while the controller was down.
        self.rescan_and_log(format_args!("reset"));
        Ok(())
    }

    /// NVM Subsystem Reset (`NVME_IOCTL_SUBSYS_RESET`): only where CAP.NSSRS says the
    /// controller supports it (`ENOTTY` otherwise, as the reference driver); the subsystem
    /// reset resets this controller too, so a controller reset follows.
    pub(crate) fn subsystem_reset(&self) -> Result {
        let supported = self.with_ctrl(|c| c.cap().nssrs())?;
        if !supported {
            return Err(ENOTTY);
        }
        self.with_ctrl(|c| c.mmio().write32(Offset::Nssr.at(), NSSR_RESET))?
            .map_err(|e| e.0)?;
        self.reset("NVM subsystem reset")
    }

    /// Steps 1-4, with the block layer pinned.
    fn reset_locked(&self, io: &Io<'static>, why: &str) -> Result<Outcome> {
        pr_warn!(
            "orion_nvme: onvme{}: resetting the controller ({})\n",
            self.instance,
            why
        );
        let p = self.park(io)?;
        Ok(self.unpark(io, p))
    }

    /// Steps 1 and 2: dispatch stopped, the controller disabled, what was in flight taken
    /// off the queues (resubmitted later or failed), the queues' state kept. With no
    /// controller (dead, or being unbound) dispatch resumes and nothing else happens.
    fn park(&self, io: &Io<'static>) -> Result<Parked> {
        io.quiesce();
        let r = self.ctrl.lock(|slot| -> Result<Parked> {
            let ctrl = slot.take().ok_or(ENODEV)?;
            io.mask_pins(&ctrl);
            let disabled = match ctrl.reset() {
                Ok(d) => d,
                Err((e, d)) => {
                    pr_warn!(
                        "orion_nvme: onvme{}: disabling for the reset: {:?}\n",
                        self.instance,
                        e
                    );
                    d
                }
            };
            let (kept, counts) = io.take_queues();
            Ok(Parked {
                ctrl: disabled,
                kept,
                counts,
            })
        });
        if r.is_err() {
            io.resume(false);
        }
        r
    }

    /// Steps 3 and 4: the controller back with its queues (or dead), dispatch resumed,
    /// events re-armed.
    fn unpark(&self, io: &Io<'static>, p: Parked) -> Outcome {
        let up = self
            .ctrl
            .lock(|slot| match bring_back(p.ctrl, io, p.kept, self.instance) {
                Ok(c) => {
                    *slot = Some(c);
                    true
                }
                Err(d) => {
                    self.dead.lock(|x| *x = Some(d));
                    false
                }
            });
        io.resume(!up);
        let mut stuck = None;
        let remapped = if up {
            io.remap(|ms| stuck = Some(self.give_up_stuck(io, ms)))
        } else {
            None
        };
        if let Some(m) = remapped {
            pr_info!(
                "orion_nvme: onvme{}: I/O queues in service: {} -> {}; {} bios given back and resubmitted, {} requests failed\n",
                self.instance,
                m.from,
                m.to,
                m.resubmitted,
                m.failed
            );
        }
        let up = up && stuck.is_none();
        if up {
            let _ = self.with_ctrl(|c| {
                if let Err(e) = c.start_async_events() {
                    pr_warn!(
                        "orion_nvme: onvme{}: no asynchronous events after reset: {:?}\n",
                        self.instance,
                        e
                    );
                }
            });
        }
        let more = stuck.unwrap_or_default();
        Outcome {
            dead: !up,
            retried: p.counts.retried + more.retried,
            failed: p.counts.failed + more.failed,
        }
    }

    /// Reset step 5 found requests still in flight an I/O timeout (`ms`) after dispatch
    /// resumed: the controller is not working after all. It is taken down again (steps 1
    /// and 2) and kept as dead, and every request fails.
    fn give_up_stuck(&self, io: &Io<'static>, ms: u32) -> Interruptions {
        pr_err!(
            "orion_nvme: onvme{}: reset: requests still in flight {} ms after dispatch resumed; the controller is not working\n",
            self.instance,
            ms
        );
        match self.park(io) {
            Ok(p) => self.give_up(io, p),
            Err(_) => Interruptions::default(),
        }
    }

    /// Keeps a parked controller as dead: what was taken off its queues fails, and so does
    /// every request from now on. What the interrupted requests became.
    fn give_up(&self, io: &Io<'static>, p: Parked) -> Interruptions {
        self.dead.lock(|x| *x = Some(p.ctrl));
        drop(p.kept);
        io.resume(true);
        p.counts
    }

    /// The PCI core is about to reset the function (`reset_prepare`: a function-level reset
    /// through sysfs `reset`, or one it does for recovery): reset steps 1 and 2, and the
    /// reset stays marked in progress until [`Shared::function_reset_done`]. The device lock
    /// the PCI core holds from here to there keeps the device bound.
    pub(crate) fn function_reset_prepare(&self) {
        // A reset of our own may be running: it ends within the controller's timeouts.
        let mut waited = 0;
        while self.resetting.cmpxchg(false, true, Full).is_err() {
            if waited >= 60_000 {
                pr_err!(
                    "orion_nvme: onvme{}: a reset is still running; the function reset goes ahead without preparation\n",
                    self.instance
                );
                return;
            }
            // SAFETY: sleeping is allowed here (process context, no spin lock held).
            unsafe { kernel::bindings::msleep(10) };
            waited += 10;
        }
        pr_warn!(
            "orion_nvme: onvme{}: function reset: quiescing the controller\n",
            self.instance
        );
        let parked = self.io.lock(|io| match io {
            // SAFETY: as in `reset`; the pointer stays valid until `function_reset_done`
            // because the device cannot be unbound while the PCI core holds its lock.
            Some(p) if !self.stopping.load(Relaxed) => self.park(unsafe { &*p.0 }).ok(),
            _ => None,
        });
        match parked {
            Some(p) => self.parked.lock(|x| *x = Some(p)),
            None => self.resetting.store(false, Release),
        }
    }

    /// The function reset is over (`reset_done`): reset steps 3 and 4 on the freshly reset
    /// controller (its configuration space restored by the PCI core), then the rescan.
    pub(crate) fn function_reset_done(&self, why: &str) {
        let Some(p) = self.parked.lock(|x| x.take()) else {
            return;
        };
        let o = self.io.lock(|io| {
            // SAFETY: as in `function_reset_prepare`.
            io.as_ref().map(|ptr| self.unpark(unsafe { &*ptr.0 }, p))
        });
        self.resetting.store(false, Release);
        if let Some(o) = o {
            let _ = self.after_reset(o, why);
        }
    }

    /// The function reset that [`Shared::function_reset_prepare`] began will not finish
    /// (PCI error recovery gave up on the device): the parked controller is kept as dead
    /// and what was taken off its queues fails. Whether a reset was in progress.
    pub(crate) fn function_reset_abandon(&self) -> bool {
        let Some(p) = self.parked.lock(|x| x.take()) else {
            return false;
        };
        let counts = self.io.lock(|io| match io {
            // SAFETY: as in `function_reset_prepare`.
            Some(ptr) => self.give_up(unsafe { &*ptr.0 }, p),
            None => {
                self.dead.lock(|x| *x = Some(p.ctrl));
                p.counts
            }
        });
        self.resetting.store(false, Release);
        pr_err!(
            "orion_nvme: onvme{}: PCI error recovery failed: controller dead; {} requests failed, {} will fail\n",
            self.instance,
            counts.failed,
            counts.retried
        );
        true
    }

    /// The controller of a device being unbound after a failed reset, with its real lifetime.
    pub(crate) fn take_dead<'b>(&self) -> Option<DeadCtrl<'b>> {
        let d = self.dead.lock(|d| d.take())?;
        // SAFETY: restores the lifetime erased when it was stored (the device is bound).
        Some(unsafe { core::mem::transmute::<DeadCtrl<'static>, DeadCtrl<'b>>(d) })
    }
}

/// The block layer's side of reset step 3 ([`recovery::bring_back`]): pin interrupts masked
/// once the controller is enabled, the queues granted re-created over what they kept.
struct Restore<'a> {
    io: &'a Io<'static>,
    kept: Option<KVec<Option<crate::blk::Kept>>>,
    want: u16,
    instance: u32,
}

impl recovery::QueueRestore<LinuxPlatform<'static>> for Restore<'_> {
    fn enabled(&mut self, c: &Ctrl<'static>) {
        self.io.mask_pins(c);
    }

    fn restore(
        &mut self,
        c: &mut Ctrl<'static>,
        granted: u16,
    ) -> core::result::Result<(), CtrlError> {
        if granted != self.io.live_queues() {
            pr_warn!(
                "orion_nvme: onvme{}: reset: the controller grants {} I/O queues (probe made {}, {} were in service)\n",
                self.instance,
                granted,
                self.want,
                self.io.live_queues()
            );
        }
        let kept = self
            .kept
            .take()
            .ok_or(CtrlError::Invalid("queues restored twice"))?;
        self.io.restore_queues(c, kept, granted)
    }
}

/// Step 3 through the core: enable, identify, queue count, queues. On failure the
/// controller is handed back disabled, and what failed is logged.
#[expect(
    clippy::result_large_err,
    reason = "a failed bring-up hands the controller back, as the core's transitions do"
)]
fn bring_back(
    disabled: DeadCtrl<'static>,
    io: &Io<'static>,
    kept: KVec<Option<crate::blk::Kept>>,
    instance: u32,
) -> core::result::Result<Ctrl<'static>, DeadCtrl<'static>> {
    let want = io.queue_count();
    let mut r = Restore {
        io,
        kept: Some(kept),
        want,
        instance,
    };
    match recovery::bring_back(disabled, want, &mut r) {
        Ok((c, _granted)) => Ok(c),
        Err((step, e, d)) => {
            pr_err!(
                "orion_nvme: onvme{}: reset: {} failed: {:?}\n",
                instance,
                step.name(),
                e
            );
            Err(d)
        }
    }
}

impl Shared {
    /// The device's `shutdown` (power-off, reboot, kexec): no new events or resets, dispatch
    /// stops, completions already posted are reaped, then an orderly shutdown (CC.SHN, NVMe
    /// Base 2.0 §3.6.1) so the controller can commit its volatile write cache. Whatever is
    /// still in flight or queued afterwards fails (the controller is kept disabled, as dead),
    /// so an unbind that might still follow cannot wait for it.
    pub(crate) fn power_off(self: &Arc<Self>) {
        self.stop_events();
        let done = self.io.lock(|io| {
            // SAFETY: the pointer is set while the `Io` lives and cleared (under this lock)
            // before it is torn down.
            let io = io.as_ref().map(|p| unsafe { &*p.0 });
            if let Some(io) = io {
                io.quiesce();
            }
            let r = self.ctrl.lock(|slot| {
                let ctrl = slot.take()?;
                if let Some(io) = io {
                    io.mask_pins(&ctrl);
                }
                let (r, d) = match ctrl.shutdown() {
                    Ok(d) => (Ok(()), d),
                    Err((e, d)) => (Err(e), d),
                };
                self.dead.lock(|x| *x = Some(d));
                Some(r)
            });
            if let Some(io) = io {
                let _ = io.take_queues();
                io.resume(true);
            }
            r
        });
        match done {
            Some(Ok(())) => pr_info!(
                "orion_nvme: onvme{}: shutdown complete (power off)\n",
                self.instance
            ),
            Some(Err(e)) => pr_warn!(
                "orion_nvme: onvme{}: shutdown at power off failed: {:?}\n",
                self.instance,
                e
            ),
            None => {}
        }
    }
}
