//! Asynchronous events and the health check, polled by the platform's periodic work.
//!
//! One [`poll`] first checks the controller is alive (CSTS.CFS clear, registers not all ones:
//! otherwise it must be reset), then services a completed Asynchronous Event Request, if any
//! (NVMe Base 2.0 §5.2): the log page the event points at is read with Retain Asynchronous
//! Event clear, which clears the event, and the request is armed again. What the event means
//! for the driver comes back as an [`Event`]: a SMART / Health warning to report, or a
//! namespace change that calls for a rescan.

use crate::orion::controller::{Controller, CtrlError, Enabled, Platform};
use crate::orion::spec::cqe::{notice_info, AsyncEvent, AsyncEventType};
use crate::orion::spec::log::{CriticalWarning, LogId, Smart};
use crate::orion::spec::sqe::NSID_ALL;
use zerocopy::FromBytes;

/// Why the controller must be reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetReason {
    /// CSTS.CFS: the controller hit a fatal error.
    Fatal,
    /// The registers read all ones: the device is gone, or its link is down.
    Gone,
}

impl ResetReason {
    /// What the log says.
    pub const fn describe(self) -> &'static str {
        match self {
            ResetReason::Fatal => "controller fatal status (CSTS.CFS)",
            ResetReason::Gone => "controller registers read all ones (device gone?)",
        }
    }
}

/// What a serviced asynchronous event means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A SMART / Health event: `info` is its Asynchronous Event Information, `warning` the
    /// Critical Warning of the SMART log read to clear it.
    Smart {
        /// Asynchronous Event Information.
        info: u8,
        /// The log's Critical Warning.
        warning: CriticalWarning,
    },
    /// Attached namespaces changed (a Notice): rescan them.
    NamespacesChanged,
    /// Any other event, reported as it came (its log page, if it names one, was read).
    Other {
        /// The event type, or its raw value when reserved.
        kind: Result<AsyncEventType, u8>,
        /// Asynchronous Event Information.
        info: u8,
        /// The log page it pointed at (0 for none).
        log: u8,
    },
}

impl Event {
    /// Whether the namespaces must be rescanned.
    pub const fn needs_rescan(&self) -> bool {
        matches!(self, Event::NamespacesChanged)
    }

    /// What the event is, for the event and the bytes of its log to clear it.
    fn of(ev: AsyncEvent) -> (Self, Option<(LogId, u32, usize)>) {
        match ev.event_type() {
            Ok(AsyncEventType::SmartHealth) => (
                Event::Smart {
                    info: ev.aei(),
                    warning: CriticalWarning(0),
                },
                Some((LogId::SMART, NSID_ALL, core::mem::size_of::<Smart>())),
            ),
            Ok(AsyncEventType::Notice) if ev.aei() == notice_info::NS_ATTRIBUTE_CHANGED => (
                Event::NamespacesChanged,
                Some((LogId::CHANGED_NS_LIST, 0, 4096)),
            ),
            kind => (
                Event::Other {
                    kind,
                    info: ev.aei(),
                    log: ev.lid(),
                },
                (ev.lid() != 0).then_some((LogId(ev.lid()), NSID_ALL, 64)),
            ),
        }
    }
}

/// An event taken from the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Serviced {
    /// What it means.
    pub event: Event,
    /// Reading its log page or arming the next request failed (the event is still
    /// reported; the next poll tries to arm again).
    pub failed: Option<CtrlError>,
}

/// What one poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing new.
    Quiet,
    /// The controller must be reset.
    Reset(ResetReason),
    /// An event, serviced.
    Event(Serviced),
}

/// The health check alone: why the controller must be reset, if it must. A platform error
/// reading CSTS is not a reason (the next poll looks again).
pub fn health<P: Platform>(ctrl: &Controller<P, Enabled>) -> Option<ResetReason> {
    match ctrl.check_alive() {
        Err(CtrlError::Fatal) => Some(ResetReason::Fatal),
        Err(CtrlError::Gone) => Some(ResetReason::Gone),
        _ => None,
    }
}

/// One poll: the health check, then a completed event serviced (its log read and cleared,
/// the next request armed, even when reading the log failed). A request that completed with
/// an error is not armed again (the controller refused it). `Err` only when the admin queue
/// itself could not be reaped.
pub fn poll<P: Platform>(ctrl: &mut Controller<P, Enabled>) -> Result<Poll, CtrlError> {
    if let Some(why) = health(ctrl) {
        return Ok(Poll::Reset(why));
    }
    let Some(ev) = ctrl.poll_async_event()? else {
        return Ok(Poll::Quiet);
    };
    let (mut event, log) = Event::of(ev);
    let mut failed = None;
    if let Some((lid, nsid, len)) = log {
        match ctrl.read_log_clearing(lid, nsid, len) {
            Ok(bytes) => {
                if let Event::Smart { warning, .. } = &mut event {
                    if let Ok((smart, _)) = Smart::read_from_prefix(bytes) {
                        *warning = smart.critical_warning;
                    }
                }
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Err(e) = ctrl.arm_async_event() {
        failed = failed.or(Some(e));
    }
    Ok(Poll::Event(Serviced { event, failed }))
}
