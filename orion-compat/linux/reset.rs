// SPDX-License-Identifier: GPL-2.0

//! Controller reset and recovery (NVMe Base 2.0 §3.7.2): asked for by `NVME_IOCTL_RESET`,
//! sysfs `reset_controller`, the timeout ladder and the event poll (CSTS.CFS, a vanished
//! device).
//!
//! The sequence itself (quiesce, disable, take the commands in flight, bring back, resume,
//! remap with a bounded wait, give up to dead) is the core's
//! ([`crate::orion::recovery::reset`]); the block layer's side of it is [`Io`]'s
//! `ResetIo`. Here the platform's part: which work item runs a reset, the lock that pins
//! the block layer while it runs, the function-reset halves the PCI core calls, and the log.
//!
//! A reset runs with the block layer's lock held (so the device cannot be torn down under
//! it); the controller's lock is held while the controller is taken down and while it is
//! brought back, so admin passthrough and the event poll wait for those (between them the
//! controller is out of its slot and they answer ENODEV). If the controller does not come
//! back, it is kept disabled as [`DeadCtrl`], its disks are marked dead and every request
//! fails with an I/O error until the device is unbound.

#![forbid(unsafe_code)]

use crate::bindings::sched;
use crate::blk::Io;
use crate::ctrl::{DeadCtrl, Shared};
use crate::orion::controller::CtrlError;
use crate::orion::recovery::reset::{NoController, Outcome, Slots};
use crate::orion_compat::Lock as _;
use crate::platform::{Ctrl, LinuxPlatform};
use kernel::prelude::*;
use kernel::sync::atomic::{Full, Relaxed, Release};
use kernel::sync::Arc;
use kernel::workqueue::WorkItem;

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

type LiveSlot = crate::sync::LinuxMutex<Option<Ctrl>>;
type DeadSlot = crate::sync::LinuxMutex<Option<DeadCtrl>>;

impl Shared {
    /// Resets the controller and brings it back with its queues (see the module docs).
    /// `EBUSY` if a reset is already running, `ENODEV` if the controller is dead or being
    /// unbound, `EIO` if it did not come back (it is then dead).
    pub(crate) fn reset(&self, why: &str) -> Result {
        if self.resetting.cmpxchg(false, true, Full).is_err() {
            return Err(EBUSY);
        }
        let r = self.io.lock(|io| match io {
            // Taken out (under this lock) before teardown.
            Some(p) if !self.stopping.load(Relaxed) => Ok(self.reset_locked(p, why)),
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
                o.interrupted.failed,
                o.interrupted.retried
            );
            return Err(EIO);
        }
        pr_info!(
            "orion_nvme: onvme{}: reset {} done ({}): {} requests resubmitted, {} failed\n",
            self.instance,
            n,
            why,
            o.interrupted.retried,
            o.interrupted.failed
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
        match self.with_ctrl(|c| c.subsystem_reset())? {
            Ok(()) => {}
            Err(CtrlError::Unsupported(_)) => return Err(ENOTTY),
            Err(_) => return Err(EIO),
        }
        self.reset("NVM subsystem reset")
    }

    /// The controller's slots, for the core's reset state machine.
    fn slots(&self) -> Slots<'_, LinuxPlatform, LiveSlot, DeadSlot> {
        Slots::new(&self.ctrl, &self.dead)
    }

    /// A whole reset, with the block layer pinned.
    fn reset_locked(&self, io: &Io<Shared>, why: &str) -> Result<Outcome> {
        pr_warn!(
            "orion_nvme: onvme{}: resetting the controller ({})\n",
            self.instance,
            why
        );
        self.slots().reset(io).map_err(|NoController| ENODEV)
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
            // Process context, no spin lock held.
            sched::msleep(10);
            waited += 10;
        }
        pr_warn!(
            "orion_nvme: onvme{}: function reset: quiescing the controller\n",
            self.instance
        );
        let parked = self.io.lock(|io| match io {
            // As in `reset`; the device cannot be unbound (so the `Io` stays here) until
            // `function_reset_done`, because the PCI core holds its lock.
            Some(p) if !self.stopping.load(Relaxed) => self.slots().park(&**p).ok(),
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
        let o = self
            .io
            .lock(|io| io.as_deref().map(|io| self.slots().unpark(io, p)));
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
            Some(io) => self.slots().give_up(&**io, p),
            None => self.slots().give_up_without_io(p),
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

    /// The controller of a device being unbound after a failed reset, for the unbind to drop
    /// (while the device is still bound, so its BAR is unmapped before it is disabled).
    pub(crate) fn take_dead(&self) -> Option<DeadCtrl> {
        self.dead.lock(|d| d.take())
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
            let io = io.as_deref();
            self.slots().power_off(io)
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
