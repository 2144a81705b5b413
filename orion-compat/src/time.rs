//! Monotonic time, delays and bounded waits.
//!
//! Time is counted in whole nanoseconds in a `u64` (about 584 years), with saturating
//! arithmetic: nothing here can overflow or panic. The core never waits without a
//! [`Deadline`].

use crate::orion_compat::{Error, ErrorKind};

/// A span of time, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

impl Duration {
    /// No time at all.
    pub const ZERO: Self = Self(0);
    /// The longest representable span; waits of this length never end by themselves.
    pub const MAX: Self = Self(u64::MAX);

    /// `ns` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    /// `us` microseconds, saturating at [`Duration::MAX`].
    pub const fn from_micros(us: u64) -> Self {
        Self(us.saturating_mul(1_000))
    }

    /// `ms` milliseconds, saturating at [`Duration::MAX`].
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms.saturating_mul(1_000_000))
    }

    /// `s` seconds, saturating at [`Duration::MAX`].
    pub const fn from_secs(s: u64) -> Self {
        Self(s.saturating_mul(1_000_000_000))
    }

    /// The span in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The span in whole microseconds, rounded down.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// The span in whole microseconds, rounded up (for delays, which must not be shorter).
    pub const fn as_micros_ceil(self) -> u64 {
        self.0.div_ceil(1_000)
    }

    /// The span in whole milliseconds, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// The span in whole milliseconds, rounded up (for sleeps, which must not be shorter).
    pub const fn as_millis_ceil(self) -> u64 {
        self.0.div_ceil(1_000_000)
    }

    /// `self + other`, saturating at [`Duration::MAX`].
    pub const fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// `self - other`, or [`Duration::ZERO`] if `other` is longer.
    pub const fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    /// `self * n`, saturating at [`Duration::MAX`].
    pub const fn saturating_mul(self, n: u64) -> Self {
        Self(self.0.saturating_mul(n))
    }

    /// The shorter of `self` and `other`.
    pub const fn min(self, other: Self) -> Self {
        if self.0 <= other.0 {
            self
        } else {
            other
        }
    }

    /// Whether this is [`Duration::ZERO`].
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// A point on a [`Clock`]'s monotonic time line, in nanoseconds since an arbitrary origin.
///
/// Instants from different clocks must not be compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ns` nanoseconds after the clock's origin.
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    /// Nanoseconds since the clock's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// The instant `d` after this one, saturating at the end of time.
    pub const fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(d.0))
    }

    /// The time from `earlier` to `self`, or [`Duration::ZERO`] if `earlier` is later.
    pub const fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

/// A monotonic clock with busy-wait delays and sleeps.
///
/// # Contract
///
/// - [`Clock::now`] never goes backwards, across all threads and CPUs. It has no fixed origin
///   and keeps counting while the system is suspended or not, as the platform chooses.
/// - [`Clock::now`] and [`Clock::delay_us`] may be called from any context, including
///   interrupt handlers and with spin locks held; they never sleep.
/// - [`Clock::sleep`] (and [`Clock::sleep_ms`]) may sleep: call them only from a context
///   that may sleep (never from an interrupt handler, never with a spin lock held).
/// - Every delay and sleep lasts **at least** the time asked for, measured on this clock's
///   [`Clock::now`]; it may last longer (scheduling, timer slack). They are not interruptible
///   and cannot fail.
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Busy-waits for at least `us` microseconds without sleeping.
    ///
    /// Meant for short waits (tens of microseconds) where sleeping is not allowed; it burns
    /// the CPU, so prefer [`Clock::sleep`] where the context allows.
    fn delay_us(&self, us: u32);

    /// Sleeps for at least `d`. Only from a context that may sleep.
    ///
    /// A zero duration may still yield the CPU.
    fn sleep(&self, d: Duration);

    /// Sleeps for at least `ms` milliseconds. Only from a context that may sleep.
    fn sleep_ms(&self, ms: u32) {
        self.sleep(Duration::from_millis(u64::from(ms)));
    }
}

/// The point in time by which a wait must end: every wait in the core is bounded by one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// The deadline `timeout` from now on `clock`.
    pub fn after<C: Clock + ?Sized>(clock: &C, timeout: Duration) -> Self {
        Self {
            at: clock.now().saturating_add(timeout),
        }
    }

    /// The deadline at `at`.
    pub const fn at(at: Instant) -> Self {
        Self { at }
    }

    /// The instant this deadline falls on.
    pub const fn instant(&self) -> Instant {
        self.at
    }

    /// Whether the deadline has passed on `clock` (it passes at its instant exactly).
    pub fn expired<C: Clock + ?Sized>(&self, clock: &C) -> bool {
        clock.now() >= self.at
    }

    /// The time left until the deadline, or [`Duration::ZERO`] once it has passed.
    pub fn remaining<C: Clock + ?Sized>(&self, clock: &C) -> Duration {
        self.at.saturating_duration_since(clock.now())
    }

    /// Polls `check` until it returns `Ok(Some(value))`, sleeping `interval` between polls.
    ///
    /// `Ok` promises that `check` returned a value. [`WaitError::TimedOut`] promises that the
    /// deadline had passed **before** the last call to `check`, which still found nothing, so
    /// a condition that became true while the caller was descheduled is not reported as a
    /// timeout. [`WaitError::Failed`] is the first error `check` returned; polling stops there.
    ///
    /// Sleeps never overshoot the deadline by more than the clock's own slack: the last sleep
    /// is shortened to the time remaining. Only from a context that may sleep.
    pub fn poll<C, T, E>(
        &self,
        clock: &C,
        interval: Duration,
        mut check: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<T, WaitError<E>>
    where
        C: Clock + ?Sized,
    {
        loop {
            let expired = self.expired(clock);
            if let Some(v) = check().map_err(WaitError::Failed)? {
                return Ok(v);
            }
            if expired {
                return Err(WaitError::TimedOut);
            }
            clock.sleep(interval.min(self.remaining(clock)));
        }
    }
}

/// Why a [`Deadline::poll`] ended without a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError<E> {
    /// The deadline passed first.
    TimedOut,
    /// The polled operation failed.
    Failed(E),
}

impl<E: Error> Error for WaitError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            WaitError::TimedOut => ErrorKind::Timeout,
            WaitError::Failed(e) => e.kind(),
        }
    }
}
