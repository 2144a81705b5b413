//! The simulated CPU context of each host thread: whether it is in an interrupt handler or
//! holds a spin lock ("atomic"), as a kernel tracks it.
//!
//! The sim uses it to keep the Orion API's context rules honest:
//! - Anything that may sleep calls [`might_sleep`], which panics in atomic context, as the
//!   kernel's `might_sleep()` splats. A core that sleeps under a spin lock or in an interrupt
//!   handler fails its host tests instead of deadlocking a machine later.
//! - An interrupt raised while the thread is atomic is held back and delivered when the
//!   thread leaves its outermost atomic section, as interrupts are while a CPU holds an
//!   IRQ-safe lock. A handler therefore never runs inside a critical section it could
//!   deadlock against.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;

type Deferred = Box<dyn FnOnce()>;

thread_local! {
    static ATOMIC: Cell<u32> = const { Cell::new(0) };
    static IN_IRQ: Cell<u32> = const { Cell::new(0) };
    static DEFERRED: RefCell<VecDeque<Deferred>> = const { RefCell::new(VecDeque::new()) };
}

/// Whether this thread is in atomic context: in an interrupt handler, holding a spin lock,
/// or inside a block-layer call that must not sleep.
pub fn in_atomic() -> bool {
    ATOMIC.with(Cell::get) > 0
}

/// Whether this thread is running an interrupt handler.
pub fn in_irq() -> bool {
    IN_IRQ.with(Cell::get) > 0
}

/// Declares that the caller may sleep.
///
/// # Panics
///
/// In atomic context: the caller broke an Orion API contract.
#[track_caller]
pub fn might_sleep(what: &str) {
    if in_atomic() && !std::thread::panicking() {
        let place = if in_irq() {
            "an interrupt handler"
        } else {
            "atomic context (spin lock held, or a non-sleeping block-layer call)"
        };
        panic!("orion-sim: {what} may sleep, but was called from {place}");
    }
}

/// Runs `f` now, or when this thread leaves atomic context.
pub(crate) fn run_or_defer(f: impl FnOnce() + 'static) {
    if in_atomic() {
        DEFERRED.with(|d| d.borrow_mut().push_back(Box::new(f)));
    } else {
        f();
    }
}

/// A stretch of atomic context on this thread; leaving the outermost one runs what was
/// deferred.
pub(crate) struct AtomicSection {
    irq: bool,
}

impl AtomicSection {
    /// Enters atomic context (a spin lock taken, a non-sleeping call begun).
    pub(crate) fn enter() -> Self {
        ATOMIC.with(|a| a.set(a.get().saturating_add(1)));
        Self { irq: false }
    }

    /// Enters an interrupt handler.
    pub(crate) fn enter_irq() -> Self {
        IN_IRQ.with(|a| a.set(a.get().saturating_add(1)));
        ATOMIC.with(|a| a.set(a.get().saturating_add(1)));
        Self { irq: true }
    }
}

impl Drop for AtomicSection {
    fn drop(&mut self) {
        if self.irq {
            IN_IRQ.with(|a| a.set(a.get().saturating_sub(1)));
        }
        let left = ATOMIC.with(|a| {
            let n = a.get().saturating_sub(1);
            a.set(n);
            n
        });
        if left > 0 {
            return;
        }
        if std::thread::panicking() {
            DEFERRED.with(|d| d.borrow_mut().clear());
            return;
        }
        while let Some(f) = DEFERRED.with(|d| d.borrow_mut().pop_front()) {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn deferred_runs_when_the_outermost_section_ends() {
        let hits = Rc::new(Cell::new(0));
        let outer = AtomicSection::enter();
        let inner = AtomicSection::enter_irq();
        assert!(in_atomic() && in_irq());
        let h = hits.clone();
        run_or_defer(move || h.set(h.get() + 1));
        drop(inner);
        assert_eq!(hits.get(), 0, "still atomic");
        assert!(!in_irq());
        drop(outer);
        assert_eq!(hits.get(), 1);
        assert!(!in_atomic());
        let h = hits.clone();
        run_or_defer(move || h.set(h.get() + 1));
        assert_eq!(hits.get(), 2, "runs at once outside atomic context");
    }

    #[test]
    #[should_panic(expected = "may sleep")]
    fn sleeping_in_atomic_context_panics() {
        let _a = AtomicSection::enter();
        might_sleep("test");
    }
}
