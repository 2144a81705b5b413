//! The reset state machine (NVMe Base 2.0 §3.7.2), one sequence for every reason a reset is
//! asked for (a user, the timeout ladder, the health check) and for the two halves of a
//! function reset done by the bus:
//! 1. dispatch stops and completions already posted are reaped ([`ResetIo::quiesce`]);
//! 2. the controller is disabled, which drops every queue; the commands still in flight are
//!    taken off their queues and resubmitted later or failed ([`super::after_reset`]),
//!    keeping what the queues need to be created again ([`ResetIo::take`]);
//! 3. the controller is enabled and identified again, as many I/O queues as probe created
//!    are asked for and the queues granted are created again ([`super::bring_back`]);
//! 4. dispatch resumes and the interrupted requests go out again ([`ResetIo::resume`]);
//! 5. if the controller now grants a different number of queues, the platform's hardware
//!    queues follow with a bounded wait ([`ResetIo::remap`]); requests still in flight when
//!    the bound passes mean the controller is not working after all: it is taken down again
//!    and kept as dead ([`give_up`]);
//! 6. asynchronous events are armed again.
//!
//! Steps 1-2 are [`park`], 3-6 [`unpark`], both with the controller's lock held while the
//! controller is out of its slot, so that admin commands wait for them. If the controller
//! does not come back, it is kept disabled in the dead slot, the disks are marked dead and
//! every request fails until the device goes away.
//!
//! The platform supplies its block side through [`ResetIo`] and hears what happened through
//! [`ResetIo::note`]; the decisions and their order are here.

use super::{bring_back, BringBackStep, QueueRestore};
use crate::orion::controller::{Controller, CtrlError, Disabled, Enabled, Platform};
use crate::orion_compat::Lock;
use core::marker::PhantomData;

/// Requests a reset interrupted, by fate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Interruptions {
    /// Resubmitted once dispatch resumes.
    pub retried: u32,
    /// Failed.
    pub failed: u32,
}

impl Interruptions {
    fn add(self, o: Interruptions) -> Self {
        Interruptions {
            retried: self.retried.saturating_add(o.retried),
            failed: self.failed.saturating_add(o.failed),
        }
    }
}

/// What a change in the number of hardware queues in service did (reset step 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Remapped {
    /// Queues in service before.
    pub from: u32,
    /// Queues in service now.
    pub to: u32,
    /// Requests held by a queue that went away and sent again on the others.
    pub resubmitted: u32,
    /// Requests that could not be sent elsewhere and failed.
    pub failed: u32,
}

/// Something the platform should tell its user about a reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetNote {
    /// Disabling the controller for the reset failed (it is treated as disabled anyway).
    DisableFailed(CtrlError),
    /// The controller grants a different number of I/O queues than were in service.
    Granted {
        /// Granted now.
        granted: u16,
        /// Created at probe (and asked for).
        asked: u16,
        /// In service before the reset.
        in_service: u16,
    },
    /// Bringing the controller back failed at this step: it is dead.
    StepFailed(BringBackStep, CtrlError),
    /// The hardware queues in service changed.
    Remapped(Remapped),
    /// Requests were still in flight this many milliseconds after dispatch resumed: the
    /// controller is not working and is given up.
    Stuck(u32),
    /// Asynchronous events could not be armed again.
    NoEvents(CtrlError),
}

/// The platform's block side of a reset, over the I/O queues it holds.
///
/// # Contract
///
/// Every method is called from a context that may sleep, with the driver's reset running
/// (one at a time). [`ResetIo::take`] runs only on a disabled controller, so no queue can
/// complete or DMA while it runs.
pub trait ResetIo<P: Platform> {
    /// What the I/O queues keep across a reset (their CID slots, list memory and shape).
    type Kept;

    /// Step 1: stops dispatch (requests wait in the platform) and reaps what the controller
    /// already completed, ending those requests normally.
    fn quiesce(&self);

    /// The admin queue is about to be busy on `ctrl` (a pin-based platform masks the
    /// controller's interrupts here; MSI-X needs nothing).
    fn mask(&self, ctrl: &Controller<P, Enabled>);

    /// Step 2: takes every command still in flight off its queue and resubmits it later or
    /// fails it as [`super::after_reset`] decides; drops the queue pairs, keeping what they
    /// need to be created again.
    fn take(&self) -> (Self::Kept, Interruptions);

    /// The I/O queues probe created: what a reset asks for.
    fn queue_count(&self) -> u16;

    /// The I/O queues in service now.
    fn live_queues(&self) -> u16;

    /// Step 3's last part: re-creates the first `granted` queues on `ctrl` over what they
    /// kept and parks the rest out of service. An error fails the bring-back.
    fn restore(
        &self,
        ctrl: &mut Controller<P, Enabled>,
        kept: Self::Kept,
        granted: u16,
    ) -> Result<(), CtrlError>;

    /// Step 4: dispatch resumes. With `dead` the disks are marked dead first, so everything
    /// waiting or submitted later fails at once instead of waiting.
    fn resume(&self, dead: bool);

    /// Step 5: if the queues in service differ from the platform's hardware queues, remaps
    /// them, waiting for requests in flight at most one I/O timeout; if that bound passes,
    /// calls `stuck` once with it in milliseconds (which ends every request in flight) and
    /// finishes. `None` when nothing changed.
    fn remap(&self, stuck: &mut dyn FnMut(u32)) -> Option<Remapped>;

    /// Tells the user what happened.
    fn note(&self, note: ResetNote);
}

/// Where the driver keeps its controller: the live slot while it is up, the dead slot once a
/// reset gave up on it. Both behind the platform's locks (mutexes: the reset sleeps inside).
pub struct Slots<'a, P, L, D> {
    live: &'a L,
    dead: &'a D,
    platform: PhantomData<fn() -> P>,
}

/// A reset between its halves: the controller disabled and what its queues keep.
pub struct Parked<P: Platform, K> {
    ctrl: Controller<P, Disabled>,
    kept: K,
    counts: Interruptions,
}

/// How a reset ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The controller did not come back: it is dead.
    pub dead: bool,
    /// What became of the requests it interrupted (on a dead controller, the retried ones
    /// fail too, when dispatch resumes).
    pub interrupted: Interruptions,
}

/// No controller to reset: it is dead or gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoController;

impl<'a, P, L, D> Slots<'a, P, L, D>
where
    P: Platform,
    L: Lock<Option<Controller<P, Enabled>>>,
    D: Lock<Option<Controller<P, Disabled>>>,
{
    /// The slots: `live` holds the controller in service, `dead` the one a failed reset
    /// kept disabled.
    pub fn new(live: &'a L, dead: &'a D) -> Self {
        Self {
            live,
            dead,
            platform: PhantomData,
        }
    }

    /// Steps 1 and 2: dispatch stopped, the controller disabled, what was in flight taken
    /// off the queues. With no live controller, dispatch resumes and nothing else happens.
    pub fn park<I: ResetIo<P>>(&self, io: &I) -> Result<Parked<P, I::Kept>, NoController> {
        io.quiesce();
        let r = self.live.lock(|slot| {
            let ctrl = slot.take().ok_or(NoController)?;
            io.mask(&ctrl);
            let disabled = match ctrl.reset() {
                Ok(d) => d,
                Err((e, d)) => {
                    io.note(ResetNote::DisableFailed(e));
                    d
                }
            };
            let (kept, counts) = io.take();
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

    /// Steps 3 to 6: the controller back with its queues (or dead), dispatch resumed, the
    /// hardware queues remapped if their number changed, events armed again.
    pub fn unpark<I: ResetIo<P>>(&self, io: &I, p: Parked<P, I::Kept>) -> Outcome {
        let Parked { ctrl, kept, counts } = p;
        let up = self.live.lock(|slot| {
            let want = io.queue_count();
            let mut r = Restore {
                io,
                kept: Some(kept),
                want,
            };
            match bring_back(ctrl, want, &mut r) {
                Ok((c, _granted)) => {
                    *slot = Some(c);
                    true
                }
                Err((step, e, d)) => {
                    io.note(ResetNote::StepFailed(step, e));
                    self.dead.lock(|x| *x = Some(d));
                    false
                }
            }
        });
        io.resume(!up);
        let mut more = None;
        if up {
            if let Some(m) = io.remap(&mut |ms| more = Some(self.give_up_stuck(io, ms))) {
                io.note(ResetNote::Remapped(m));
            }
        }
        let up = up && more.is_none();
        if up {
            let armed = self
                .live
                .lock(|slot| slot.as_mut().map(|c| c.start_async_events()));
            if let Some(Err(e)) = armed {
                io.note(ResetNote::NoEvents(e));
            }
        }
        Outcome {
            dead: !up,
            interrupted: counts.add(more.unwrap_or_default()),
        }
    }

    /// A whole reset: [`Slots::park`] then [`Slots::unpark`].
    pub fn reset<I: ResetIo<P>>(&self, io: &I) -> Result<Outcome, NoController> {
        let p = self.park(io)?;
        Ok(self.unpark(io, p))
    }

    /// Keeps a parked controller as dead: what was taken off its queues fails, and so does
    /// every request from now on. What the interrupted requests became.
    pub fn give_up<I: ResetIo<P>>(&self, io: &I, p: Parked<P, I::Kept>) -> Interruptions {
        self.dead.lock(|x| *x = Some(p.ctrl));
        drop(p.kept);
        io.resume(true);
        p.counts
    }

    /// Keeps a parked controller as dead when the block side is already gone (the device is
    /// going away): nothing to resume. What the interrupted requests became.
    pub fn give_up_without_io<K>(&self, p: Parked<P, K>) -> Interruptions {
        self.dead.lock(|x| *x = Some(p.ctrl));
        p.counts
    }

    /// Step 5 found requests still in flight `ms` after dispatch resumed: the controller is
    /// taken down again and kept as dead, and every request fails.
    fn give_up_stuck<I: ResetIo<P>>(&self, io: &I, ms: u32) -> Interruptions {
        io.note(ResetNote::Stuck(ms));
        match self.park(io) {
            Ok(p) => self.give_up(io, p),
            Err(NoController) => Interruptions::default(),
        }
    }

    /// An orderly shutdown for power-off (CC.SHN, NVMe Base 2.0 §3.6.1), so the controller
    /// can commit its volatile write cache: dispatch stops, completions already posted are
    /// reaped, the controller is shut down and kept disabled as dead, and whatever was still
    /// in flight or waits fails, so nothing waits for it afterwards. `None` without a live
    /// controller; otherwise how the shutdown went.
    pub fn power_off<I: ResetIo<P>>(&self, io: Option<&I>) -> Option<Result<(), CtrlError>> {
        if let Some(io) = io {
            io.quiesce();
        }
        let r = self.live.lock(|slot| {
            let ctrl = slot.take()?;
            if let Some(io) = io {
                io.mask(&ctrl);
            }
            let (r, d) = match ctrl.shutdown() {
                Ok(d) => (Ok(()), d),
                Err((e, d)) => (Err(e), d),
            };
            self.dead.lock(|x| *x = Some(d));
            Some(r)
        });
        if let Some(io) = io {
            let _ = io.take();
            io.resume(true);
        }
        r
    }
}

/// The platform's side of step 3 for [`bring_back`]: interrupts masked once the controller
/// is enabled, the queues granted re-created over what they kept.
struct Restore<'a, I, K> {
    io: &'a I,
    kept: Option<K>,
    want: u16,
}

impl<P: Platform, I: ResetIo<P>> QueueRestore<P> for Restore<'_, I, I::Kept> {
    fn enabled(&mut self, c: &Controller<P, Enabled>) {
        self.io.mask(c);
    }

    fn restore(&mut self, c: &mut Controller<P, Enabled>, granted: u16) -> Result<(), CtrlError> {
        let in_service = self.io.live_queues();
        if granted != in_service {
            self.io.note(ResetNote::Granted {
                granted,
                asked: self.want,
                in_service,
            });
        }
        let kept = self
            .kept
            .take()
            .ok_or(CtrlError::Invalid("queues restored twice"))?;
        self.io.restore(c, kept, granted)
    }
}
