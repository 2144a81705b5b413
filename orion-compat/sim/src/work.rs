//! Deferred work on the host: a queue run on demand, on the virtual clock.
//!
//! Nothing runs by itself. A test calls [`SimWorkqueue::run_pending`] to run every item that
//! is due, or turns on [`SimWorkqueue::run_when_time_advances`] so that due items run whenever
//! the virtual clock moves outside atomic context — in particular while the core sleeps,
//! which is what a worker thread would have done meanwhile.

use crate::clock::{lock, VirtualClock};
use crate::context;
use orion_compat::time::{Clock, Duration, Instant};
use orion_compat::work::{Work, WorkHandler, Workqueue};
use orion_compat::ErrorKind;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::ThreadId;

type Key = (u64, u64);

trait DynWork: Send + Sync {
    fn run_keyed(&self, key: Key) -> bool;
}

struct WqState {
    seq: u64,
    queue: BTreeMap<Key, Arc<dyn DynWork>>,
    ran: u64,
}

struct WqInner {
    clock: VirtualClock,
    state: Mutex<WqState>,
    fail: AtomicU32,
}

/// The sim's [`Workqueue`]. Cloning gives another handle to the same queue.
#[derive(Clone)]
pub struct SimWorkqueue {
    inner: Arc<WqInner>,
}

impl std::fmt::Debug for SimWorkqueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner.state);
        f.debug_struct("SimWorkqueue")
            .field("pending", &s.queue.len())
            .field("ran", &s.ran)
            .finish()
    }
}

/// More runs than this in one [`SimWorkqueue::run_pending`] is taken as an item that keeps
/// rescheduling itself with no delay.
const STORM: usize = 100_000;

impl SimWorkqueue {
    /// An empty queue whose delays are measured on `clock`.
    pub fn new(clock: VirtualClock) -> Self {
        Self {
            inner: Arc::new(WqInner {
                clock,
                state: Mutex::new(WqState {
                    seq: 0,
                    queue: BTreeMap::new(),
                    ran: 0,
                }),
                fail: AtomicU32::new(0),
            }),
        }
    }

    /// Runs every item due by now, in order of due time then scheduling, including items
    /// that become due while this runs; returns how many ran.
    ///
    /// # Panics
    ///
    /// In atomic context (work runs where it may sleep), or if items keep rescheduling
    /// themselves without delay.
    pub fn run_pending(&self) -> usize {
        context::might_sleep("running deferred work");
        run_pending(&self.inner)
    }

    /// From now on, runs due items after every advance of the clock made outside atomic
    /// context.
    pub fn run_when_time_advances(&self) {
        let weak: Weak<WqInner> = Arc::downgrade(&self.inner);
        self.inner.clock.on_advance(move |_| {
            if let Some(inner) = weak.upgrade() {
                if !context::in_atomic() {
                    run_pending(&inner);
                }
            }
        });
    }

    /// How many items are pending.
    pub fn pending(&self) -> usize {
        lock(&self.inner.state).queue.len()
    }

    /// When the earliest pending item is due.
    pub fn next_due(&self) -> Option<Instant> {
        lock(&self.inner.state)
            .queue
            .keys()
            .next()
            .map(|k| Instant::from_nanos(k.0))
    }

    /// How many handler runs there have been.
    pub fn runs(&self) -> u64 {
        lock(&self.inner.state).ran
    }

    /// Makes the next `n` [`Workqueue::new_work`] calls fail with [`ErrorKind::NoMemory`].
    pub fn fail_next(&self, n: u32) {
        self.inner.fail.store(n, Ordering::SeqCst);
    }
}

fn run_pending(inner: &WqInner) -> usize {
    let mut ran = 0;
    loop {
        let now = inner.clock.now().as_nanos();
        let next = {
            let mut s = lock(&inner.state);
            let key = s.queue.keys().next().copied();
            match key {
                Some(k) if k.0 <= now => s.queue.remove(&k).map(|w| (k, w)),
                _ => None,
            }
        };
        let Some((key, item)) = next else {
            return ran;
        };
        if item.run_keyed(key) {
            ran += 1;
            lock(&inner.state).ran += 1;
            assert!(
                ran < STORM,
                "orion-sim: work storm: items keep rescheduling themselves"
            );
        }
    }
}

#[derive(Default)]
struct ItemState {
    pending: Option<Key>,
    running: Option<ThreadId>,
}

struct ItemInner<H> {
    handler: H,
    state: Mutex<ItemState>,
    idle: Condvar,
    wq: Weak<WqInner>,
}

impl<H: WorkHandler> DynWork for ItemInner<H> {
    fn run_keyed(&self, key: Key) -> bool {
        {
            let mut s = lock(&self.state);
            if s.pending != Some(key) {
                return false;
            }
            s.pending = None;
            s.running = Some(std::thread::current().id());
        }
        self.handler.run();
        lock(&self.state).running = None;
        self.idle.notify_all();
        true
    }
}

/// A work item on a [`SimWorkqueue`].
pub struct SimWork<H: WorkHandler> {
    inner: Arc<ItemInner<H>>,
}

impl<H: WorkHandler> std::fmt::Debug for SimWork<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner.state);
        f.debug_struct("SimWork")
            .field("pending", &s.pending.is_some())
            .field("running", &s.running.is_some())
            .finish()
    }
}

impl<H: WorkHandler> SimWork<H> {
    /// Whether the item is pending.
    pub fn is_pending(&self) -> bool {
        lock(&self.inner.state).pending.is_some()
    }
}

impl Workqueue for SimWorkqueue {
    type Error = ErrorKind;
    type Work<H: WorkHandler> = SimWork<H>;

    fn new_work<H: WorkHandler>(&self, handler: H) -> Result<SimWork<H>, (ErrorKind, H)> {
        context::might_sleep("Workqueue::new_work");
        let failed = self
            .inner
            .fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failed {
            return Err((ErrorKind::NoMemory, handler));
        }
        Ok(SimWork {
            inner: Arc::new(ItemInner {
                handler,
                state: Mutex::default(),
                idle: Condvar::new(),
                wq: Arc::downgrade(&self.inner),
            }),
        })
    }
}

impl<H: WorkHandler> Work for SimWork<H> {
    type Handler = H;

    fn handler(&self) -> &H {
        &self.inner.handler
    }

    fn schedule(&self) -> bool {
        self.schedule_after(Duration::ZERO)
    }

    fn schedule_after(&self, delay: Duration) -> bool {
        let Some(wq) = self.inner.wq.upgrade() else {
            return false;
        };
        let mut s = lock(&self.inner.state);
        if s.pending.is_some() {
            return false;
        }
        let mut q = lock(&wq.state);
        let key = (wq.clock.now().saturating_add(delay).as_nanos(), q.seq);
        q.seq += 1;
        q.queue.insert(key, self.inner.clone());
        s.pending = Some(key);
        true
    }

    fn cancel_sync(&self) -> bool {
        context::might_sleep("Work::cancel_sync");
        let mut s = lock(&self.inner.state);
        let was = s.pending.take();
        if let (Some(key), Some(wq)) = (was, self.inner.wq.upgrade()) {
            lock(&wq.state).queue.remove(&key);
        }
        let me = std::thread::current().id();
        while let Some(t) = s.running {
            assert!(
                t != me,
                "orion-sim: Work::cancel_sync called from the item's own handler (deadlock)"
            );
            s = self
                .inner
                .idle
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        was.is_some()
    }
}

impl<H: WorkHandler> Drop for SimWork<H> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.cancel_sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[derive(Debug)]
    struct Count(Arc<AtomicU64>);
    impl WorkHandler for Count {
        fn run(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn delayed_work_runs_when_due() {
        let clock = VirtualClock::new();
        let wq = SimWorkqueue::new(clock.clone());
        let n = Arc::new(AtomicU64::new(0));
        let w = wq.new_work(Count(n.clone())).unwrap();
        assert!(w.schedule_after(Duration::from_millis(5)));
        assert!(!w.schedule());
        assert_eq!(wq.run_pending(), 0);
        assert_eq!(wq.next_due(), Some(Instant::from_nanos(5_000_000)));
        clock.advance(Duration::from_millis(5));
        assert_eq!(wq.run_pending(), 1);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        assert!(!w.is_pending());
    }

    #[test]
    fn work_runs_while_the_core_sleeps() {
        let clock = VirtualClock::new();
        let wq = SimWorkqueue::new(clock.clone());
        wq.run_when_time_advances();
        let n = Arc::new(AtomicU64::new(0));
        let w = wq.new_work(Count(n.clone())).unwrap();
        w.schedule_after(Duration::from_millis(1));
        clock.delay_us(2000);
        assert_eq!(
            n.load(Ordering::SeqCst),
            1,
            "a delay outside atomic context lets work run"
        );
        w.schedule();
        {
            let _atomic = context::AtomicSection::enter();
            clock.delay_us(10);
        }
        assert_eq!(n.load(Ordering::SeqCst), 1, "not from atomic context");
        clock.sleep_ms(1);
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[derive(Debug)]
    struct Rearm(Mutex<Option<Arc<SimWork<Rearm>>>>, Arc<AtomicU64>);
    impl WorkHandler for Rearm {
        fn run(&self) {
            if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
                if let Some(w) = &*self.0.lock().unwrap() {
                    assert!(w.schedule(), "an item scheduled while running runs again");
                }
            }
        }
    }

    #[test]
    fn scheduling_a_running_item_runs_it_again() {
        let wq = SimWorkqueue::new(VirtualClock::new());
        let n = Arc::new(AtomicU64::new(0));
        let w = Arc::new(wq.new_work(Rearm(Mutex::new(None), n.clone())).unwrap());
        *w.handler().0.lock().unwrap() = Some(w.clone());
        w.schedule();
        assert_eq!(wq.run_pending(), 2);
        assert_eq!(n.load(Ordering::SeqCst), 2);
        w.handler().0.lock().unwrap().take();
    }
}
