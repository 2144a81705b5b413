//! Recovery decisions: the timeout ladder for a stuck command, and what becomes of the
//! commands a controller reset interrupts.
//!
//! The ladder follows the practice of the reference host driver (and NVMe Base 2.0 §5.1 on
//! Abort): a command whose timer expires is first looked for in its completion queue (the
//! interrupt may have been missed); if it is really outstanding, the controller is asked once
//! to abort it and the command gets another timeout period; if it is still outstanding after
//! that, or an abort cannot be sent, the controller is reset. Commands in flight at a reset
//! never complete on their own: block I/O is resubmitted up to [`MAX_RETRIES`] times,
//! passthrough commands fail at once (their caller decides whether to retry).

pub mod ladder;
pub mod reset;

use crate::orion::controller::{Controller, CtrlError, Disabled, Enabled, Platform};
use crate::orion::spec::cqe::AbortResult;
use crate::orion::spec::sqe::Sqe;
use crate::orion::spec::status::Status;
use crate::orion_compat::time::Duration;

/// How many times a request interrupted by controller resets is resubmitted before it fails
/// (the reference driver's default).
pub const MAX_RETRIES: u8 = 5;

/// The next step for a command whose timer expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutStep {
    /// Reaping its queue found the completion: the command is done, nothing more to do.
    Completed,
    /// First expiry: send Abort for it (once) and give it another timeout period.
    Abort,
    /// The abort did not end it, or no abort can be sent: reset the controller.
    Reset,
    /// A reset is already under way (or the controller is gone): it will end the command;
    /// re-arm the timer.
    Wait,
}

/// What the timeout handler knows when a command's timer expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The command is no longer outstanding after reaping its completion queue.
    pub reaped: bool,
    /// An Abort was already sent for this submission of the command.
    pub aborted: bool,
    /// A controller reset is in progress or the controller is dead.
    pub recovering: bool,
    /// The admin queue can take an Abort (the controller is up and not being reset).
    pub can_abort: bool,
}

/// The ladder: reap, then Abort once, then reset.
pub const fn on_timeout(e: Expiry) -> TimeoutStep {
    if e.reaped {
        TimeoutStep::Completed
    } else if e.recovering {
        TimeoutStep::Wait
    } else if !e.aborted && e.can_abort {
        TimeoutStep::Abort
    } else {
        TimeoutStep::Reset
    }
}

/// The next step once the Abort for a timed-out command is over: the controller answered it
/// (whether or not it aborted the command), so the command gets its second timeout period
/// ([`TimeoutStep::Wait`]); or the Abort itself failed (it timed out or could not be
/// submitted), so the admin queue is not working either and the controller is reset now
/// ([`TimeoutStep::Reset`]) rather than after that period, or after one Abort per stuck
/// command.
pub const fn after_abort(answered: bool) -> TimeoutStep {
    if answered {
        TimeoutStep::Wait
    } else {
        TimeoutStep::Reset
    }
}

/// What becomes of a command a controller reset interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// Submit it again once the controller is back.
    Retry,
    /// End it with an error.
    Fail,
}

/// A command in flight at a reset: block I/O that has been retried fewer than
/// [`MAX_RETRIES`] times is resubmitted; passthrough commands and exhausted retries fail.
pub const fn after_reset(retries: u8, passthrough: bool) -> Interrupted {
    if passthrough || retries >= MAX_RETRIES {
        Interrupted::Fail
    } else {
        Interrupted::Retry
    }
}

/// Whether Abort's completion (DW0 bit 0 clear, NVMe Base 2.0 §5.1.1) says the command was
/// aborted; when set, the controller did not abort it.
pub const fn abort_succeeded(dw0: u32) -> bool {
    AbortResult(dw0).aborted()
}

/// How long the timeout ladder waits for an Abort to complete.
pub const ABORT_TIMEOUT: Duration = Duration::from_millis(5_000);

/// The status a request's caller sees when a reset ended its command (Command Aborted By
/// Host, as the reference driver reports it).
pub const ENDED_BY_RESET: Status = Status::ABORTED_BY_HOST;

/// The ladder's second rung: sends Abort for command `cid` on submission queue `sqid` and
/// waits for it, at most [`ABORT_TIMEOUT`]. `Ok(true)` when the controller says it aborted
/// the command, `Ok(false)` when it did not (the command may complete on its own); `Err`
/// when the Abort itself failed, which [`after_abort`] answers with a reset.
pub fn abort<P: Platform>(
    ctrl: &mut Controller<P, Enabled>,
    sqid: u16,
    cid: u16,
) -> Result<bool, CtrlError> {
    let dw0 = ctrl.admin_raw(Sqe::abort(sqid, cid), ABORT_TIMEOUT)?;
    // CAST: DW0 is the low half of the result.
    Ok(abort_succeeded(dw0 as u32))
}

/// The steps of bringing a controller back after a reset (NVMe Base 2.0 §3.7.2, reset step
/// 3), named for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BringBackStep {
    /// CC.EN = 1 and the bounded wait for CSTS.RDY.
    Enable,
    /// Identify Controller again (a firmware activation may have changed it).
    Identify,
    /// Set Features (Number of Queues): as many as probe created are asked for.
    QueueCount,
    /// The platform's re-creation of the queues granted.
    Queues,
}

impl BringBackStep {
    /// What the step is called in the log.
    pub const fn name(self) -> &'static str {
        match self {
            BringBackStep::Enable => "enabling",
            BringBackStep::Identify => "Identify Controller",
            BringBackStep::QueueCount => "Set Features (Number of Queues)",
            BringBackStep::Queues => "re-creating the I/O queues",
        }
    }
}

/// What the platform does for [`bring_back`]: its side of the queues.
pub trait QueueRestore<P: Platform> {
    /// The controller is enabled again (before any command: a platform on pin-based
    /// interrupts masks them here).
    fn enabled(&mut self, ctrl: &Controller<P, Enabled>);

    /// Re-creates the I/O queues the controller now grants (`granted`, which may differ from
    /// what was asked for) over the memory they kept. An error fails the bring-back.
    fn restore(&mut self, ctrl: &mut Controller<P, Enabled>, granted: u16)
        -> Result<(), CtrlError>;
}

/// Reset step 3: enables the disabled controller, identifies it again, asks for `want` I/O
/// queues and has the platform re-create the queues granted. `Ok` is the controller back in
/// service with the number of queues granted; on any failure the controller is disabled
/// again (best effort) and handed back with the step that failed: the caller keeps it as
/// dead.
#[expect(
    clippy::result_large_err,
    reason = "a failed bring-back hands the controller back, as the core's transitions do"
)]
#[expect(
    clippy::type_complexity,
    reason = "the transition's two outcomes, spelled out"
)]
pub fn bring_back<P: Platform, R: QueueRestore<P>>(
    disabled: Controller<P, Disabled>,
    want: u16,
    platform: &mut R,
) -> Result<(Controller<P, Enabled>, u16), (BringBackStep, CtrlError, Controller<P, Disabled>)> {
    let mut c = match disabled.enable() {
        Ok(c) => c,
        Err((e, d)) => return Err((BringBackStep::Enable, e, d)),
    };
    platform.enabled(&c);
    let r = (|| -> Result<u16, (BringBackStep, CtrlError)> {
        c.identify().map_err(|e| (BringBackStep::Identify, e))?;
        let granted = c
            .set_queue_count(want)
            .map_err(|e| (BringBackStep::QueueCount, e))?;
        platform
            .restore(&mut c, granted)
            .map_err(|e| (BringBackStep::Queues, e))?;
        Ok(granted)
    })();
    match r {
        Ok(granted) => Ok((c, granted)),
        Err((step, e)) => match c.reset() {
            Ok(d) | Err((_, d)) => Err((step, e, d)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRESH: Expiry = Expiry {
        reaped: false,
        aborted: false,
        recovering: false,
        can_abort: true,
    };

    #[test]
    fn ladder_reaps_then_aborts_then_resets() {
        assert_eq!(
            on_timeout(Expiry {
                reaped: true,
                ..FRESH
            }),
            TimeoutStep::Completed
        );
        assert_eq!(on_timeout(FRESH), TimeoutStep::Abort);
        assert_eq!(
            on_timeout(Expiry {
                aborted: true,
                ..FRESH
            }),
            TimeoutStep::Reset
        );
    }

    #[test]
    fn ladder_resets_when_no_abort_can_be_sent() {
        assert_eq!(
            on_timeout(Expiry {
                can_abort: false,
                ..FRESH
            }),
            TimeoutStep::Reset
        );
    }

    #[test]
    fn ladder_waits_for_a_reset_in_progress() {
        for aborted in [false, true] {
            assert_eq!(
                on_timeout(Expiry {
                    aborted,
                    recovering: true,
                    ..FRESH
                }),
                TimeoutStep::Wait
            );
        }
        // A completion found by the reap wins even during a reset.
        assert_eq!(
            on_timeout(Expiry {
                reaped: true,
                recovering: true,
                ..FRESH
            }),
            TimeoutStep::Completed
        );
    }

    #[test]
    fn interrupted_io_is_retried_up_to_the_limit() {
        for r in 0..MAX_RETRIES {
            assert_eq!(after_reset(r, false), Interrupted::Retry, "retry {r}");
        }
        assert_eq!(after_reset(MAX_RETRIES, false), Interrupted::Fail);
        assert_eq!(after_reset(u8::MAX, false), Interrupted::Fail);
    }

    #[test]
    fn interrupted_passthrough_fails() {
        assert_eq!(after_reset(0, true), Interrupted::Fail);
    }

    #[test]
    fn an_abort_that_fails_resets_at_once() {
        assert_eq!(after_abort(true), TimeoutStep::Wait);
        assert_eq!(after_abort(false), TimeoutStep::Reset);
    }

    #[test]
    fn abort_result_bit() {
        assert!(abort_succeeded(0));
        assert!(!abort_succeeded(1));
        assert!(abort_succeeded(0xffff_fffe));
    }
}
