//! The timeout ladder as a sequence: what happens when a request's timer expires, from the
//! reap that looks for a missed interrupt to the reset (the decisions themselves are
//! [`super::on_timeout`] and [`super::after_abort`]).
//!
//! While the device is being unbound there is no recovery: a command still outstanding is
//! taken off its queue and its request fails with a timeout, because the teardown must not
//! wait forever.

use super::{after_abort, on_timeout, Expiry, TimeoutStep};
use crate::orion::controller::CtrlError;
use crate::orion_compat::block::TimeoutAction;

/// The request whose timer expired, as its platform holds it.
pub trait Expired {
    /// Reaps the request's completion queue (an interrupt may have been missed), then
    /// answers whether the request's command is still outstanding: its CID if it is. With
    /// `cancel`, an outstanding command is also taken off its queue (its completion, should
    /// it come, is refused) in the same step, so the request is the caller's to end.
    fn reap_and_find(&mut self, cancel: bool) -> Option<u16>;

    /// Whether an Abort was already sent for this submission of the request.
    fn aborted(&self) -> bool;

    /// Records that an Abort was sent for it.
    fn set_aborted(&mut self);

    /// Ends the request with a timeout (only after [`Expired::reap_and_find`] cancelled it).
    fn fail_timed_out(&mut self);
}

/// The controller's side of the ladder.
pub trait LadderHost {
    /// The device is being unbound.
    fn stopping(&self) -> bool;

    /// A reset is in progress or the controller is dead: the reset ends the command.
    fn recovering(&self) -> bool;

    /// The admin queue can take an Abort now (the controller is up).
    fn can_abort(&self) -> bool;

    /// Sends Abort for `cid` on submission queue `sqid` and waits for it (see
    /// [`super::abort`]).
    fn abort(&self, sqid: u16, cid: u16) -> Result<bool, CtrlError>;

    /// Asks for a controller reset, run later from a context that may sleep.
    fn schedule_reset(&self);

    /// Tells the user what the ladder did.
    fn note(&self, note: LadderNote);
}

/// Something the ladder did, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LadderNote {
    /// The command timed out during teardown and its request failed.
    FailedInTeardown,
    /// An Abort was sent for `cid`: `Ok(aborted)`, or `Err` if the Abort failed (a reset
    /// follows).
    Abort {
        /// The command.
        cid: u16,
        /// How it went.
        result: Result<bool, CtrlError>,
    },
    /// The command is still outstanding after its Abort: the controller is reset.
    Reset {
        /// The command.
        cid: u16,
    },
}

/// Runs the ladder for one expired request on submission queue `sqid`; what the platform
/// does with the request's timer.
pub fn expired<H: LadderHost, R: Expired>(host: &H, req: &mut R, sqid: u16) -> TimeoutAction {
    if host.stopping() {
        if req.reap_and_find(true).is_some() {
            req.fail_timed_out();
            host.note(LadderNote::FailedInTeardown);
        }
        return TimeoutAction::Done;
    }
    let cid = req.reap_and_find(false);
    let recovering = host.recovering();
    let step = on_timeout(Expiry {
        reaped: cid.is_none(),
        aborted: req.aborted(),
        recovering,
        can_abort: !recovering && host.can_abort(),
    });
    match (step, cid) {
        (TimeoutStep::Completed, _) | (_, None) => TimeoutAction::Done,
        (TimeoutStep::Wait, _) => TimeoutAction::ResetTimer,
        (TimeoutStep::Abort, Some(cid)) => {
            req.set_aborted();
            let result = host.abort(sqid, cid);
            host.note(LadderNote::Abort { cid, result });
            if after_abort(result.is_ok()) == TimeoutStep::Reset {
                host.schedule_reset();
            }
            TimeoutAction::ResetTimer
        }
        (TimeoutStep::Reset, Some(cid)) => {
            host.note(LadderNote::Reset { cid });
            host.schedule_reset();
            TimeoutAction::ResetTimer
        }
    }
}
