//! A virtual clock: time moves only when someone sleeps, delays or advances it.
//!
//! Tests are deterministic and instant: a 2-second CSTS.RDY timeout takes no wall time. A
//! device model makes its state machine progress with time through timers
//! ([`VirtualClock::at`], [`VirtualClock::after`]), which fire in order at their instant while
//! time advances, and hooks ([`VirtualClock::on_advance`]), which run after every advance.

use crate::context;
use orion_compat::time::{Clock, Duration, Instant};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Timer = Box<dyn FnOnce(Instant) + Send>;
type Hook = Box<dyn FnMut(Instant) + Send>;

/// Identifies a timer, to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(u64);

/// A deterministic clock for tests. Cloning gives another handle to the same clock.
///
/// [`Clock::sleep`] panics in atomic context (see [`context`]); [`Clock::delay_us`] does not.
#[derive(Clone, Default)]
pub struct VirtualClock {
    inner: Arc<ClockInner>,
}

#[derive(Default)]
struct ClockInner {
    now: AtomicU64,
    timers: Mutex<Timers>,
    hooks: Mutex<Vec<Hook>>,
    slept: AtomicU64,
    delayed: AtomicU64,
}

#[derive(Default)]
struct Timers {
    seq: u64,
    queue: BTreeMap<(u64, u64), Timer>,
}

impl std::fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualClock")
            .field("now_ns", &self.inner.now.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl VirtualClock {
    /// A clock at instant zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock starting at `start`.
    pub fn starting_at(start: Instant) -> Self {
        let c = Self::default();
        c.inner.now.store(start.as_nanos(), Ordering::SeqCst);
        c
    }

    /// Moves time forward by `d`, firing due timers in order, then the hooks.
    pub fn advance(&self, d: Duration) {
        self.advance_to(self.now().saturating_add(d));
    }

    /// Moves time forward to `target` (never backwards), firing timers due by then in order
    /// of their instant, each with the clock set to that instant; then runs the hooks once.
    pub fn advance_to(&self, target: Instant) {
        loop {
            let next = {
                let mut t = lock(&self.inner.timers);
                let key = t.queue.keys().next().copied();
                match key {
                    Some(k) if k.0 <= target.as_nanos() => t.queue.remove(&k).map(|f| (k.0, f)),
                    _ => None,
                }
            };
            let Some((at, f)) = next else { break };
            self.inner.now.fetch_max(at, Ordering::SeqCst);
            f(Instant::from_nanos(at));
        }
        self.inner
            .now
            .fetch_max(target.as_nanos(), Ordering::SeqCst);
        // Hooks run outside the lock, so they may use the clock; one that advances it from
        // inside a hook does not re-enter the hooks.
        let mut hooks = std::mem::take(&mut *lock(&self.inner.hooks));
        let now = self.now();
        for h in &mut hooks {
            h(now);
        }
        let mut slot = lock(&self.inner.hooks);
        hooks.append(&mut slot);
        *slot = hooks;
    }

    /// Calls `f` once when time reaches `when` (at the next advance if it already has).
    pub fn at(&self, when: Instant, f: impl FnOnce(Instant) + Send + 'static) -> TimerId {
        let mut t = lock(&self.inner.timers);
        let seq = t.seq;
        t.seq = t.seq.wrapping_add(1);
        t.queue.insert((when.as_nanos(), seq), Box::new(f));
        TimerId(seq)
    }

    /// Calls `f` once when `d` has passed.
    pub fn after(&self, d: Duration, f: impl FnOnce(Instant) + Send + 'static) -> TimerId {
        self.at(self.now().saturating_add(d), f)
    }

    /// Cancels a timer; returns whether it had not fired yet.
    pub fn cancel(&self, id: TimerId) -> bool {
        let mut t = lock(&self.inner.timers);
        let key = t.queue.keys().find(|k| k.1 == id.0).copied();
        key.and_then(|k| t.queue.remove(&k)).is_some()
    }

    /// Calls `f` with the new time after every advance (including sleeps and delays of
    /// zero), for as long as the clock lives.
    pub fn on_advance(&self, f: impl FnMut(Instant) + Send + 'static) {
        lock(&self.inner.hooks).push(Box::new(f));
    }

    /// The earliest pending timer's instant.
    pub fn next_timer(&self) -> Option<Instant> {
        lock(&self.inner.timers)
            .queue
            .keys()
            .next()
            .map(|k| Instant::from_nanos(k.0))
    }

    /// Total time spent in [`Clock::sleep`].
    pub fn slept(&self) -> Duration {
        Duration::from_nanos(self.inner.slept.load(Ordering::SeqCst))
    }

    /// Total time spent in [`Clock::delay_us`].
    pub fn delayed(&self) -> Duration {
        Duration::from_nanos(self.inner.delayed.load(Ordering::SeqCst))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.inner.now.load(Ordering::SeqCst))
    }

    fn delay_us(&self, us: u32) {
        let d = Duration::from_micros(u64::from(us));
        self.inner.delayed.fetch_add(d.as_nanos(), Ordering::SeqCst);
        self.advance(d);
    }

    fn sleep(&self, d: Duration) {
        context::might_sleep("Clock::sleep");
        self.inner.slept.fetch_add(d.as_nanos(), Ordering::SeqCst);
        self.advance(d);
    }
}

/// Locks a std mutex, ignoring poisoning: a panicking test has already failed.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn timers_fire_in_order_at_their_instant() {
        let c = VirtualClock::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        for (at, tag) in [(30, "c"), (10, "a"), (20, "b"), (10, "a2")] {
            let l = log.clone();
            c.at(Instant::from_nanos(at), move |now| {
                l.lock().unwrap().push((tag, now.as_nanos()))
            });
        }
        let cancelled = c.at(Instant::from_nanos(15), |_| panic!("cancelled"));
        assert!(c.cancel(cancelled));
        assert!(!c.cancel(cancelled));
        c.advance(Duration::from_nanos(25));
        assert_eq!(*log.lock().unwrap(), [("a", 10), ("a2", 10), ("b", 20)]);
        assert_eq!(c.now(), Instant::from_nanos(25));
        assert_eq!(c.next_timer(), Some(Instant::from_nanos(30)));
        c.sleep(Duration::from_nanos(4));
        assert_eq!(log.lock().unwrap().len(), 3, "not before its instant");
        c.sleep(Duration::from_nanos(1));
        assert_eq!(log.lock().unwrap().len(), 4, "at its instant exactly");
        c.delay_us(1);
        assert_eq!(c.slept(), Duration::from_nanos(5));
        assert_eq!(c.delayed(), Duration::from_micros(1));
    }

    #[test]
    fn hooks_see_every_advance_and_may_use_the_clock() {
        let c = VirtualClock::starting_at(Instant::from_nanos(1_000));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, c2) = (seen.clone(), c.clone());
        c.on_advance(move |now| {
            s.lock().unwrap().push(now.as_nanos());
            // A model may arm a timer from a hook.
            c2.after(Duration::from_nanos(1), |_| {});
        });
        c.sleep_ms(1);
        c.advance(Duration::ZERO);
        assert_eq!(*seen.lock().unwrap(), [1_001_000, 1_001_000]);
        assert_eq!(c.next_timer(), Some(Instant::from_nanos(1_001_001)));
    }

    #[test]
    fn a_timer_may_rearm_itself() {
        let c = VirtualClock::new();
        let ticks = Arc::new(AtomicU64::new(0));
        fn arm(c: &VirtualClock, ticks: Arc<AtomicU64>) {
            let c2 = c.clone();
            c.after(Duration::from_micros(10), move |_| {
                ticks.fetch_add(1, Ordering::SeqCst);
                arm(&c2, ticks);
            });
        }
        arm(&c, ticks.clone());
        c.advance(Duration::from_micros(35));
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
    }
}
