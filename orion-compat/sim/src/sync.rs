//! Locks and shared ownership on std, with the kernel's context rules enforced.

use crate::clock::lock;
use crate::context::{self, AtomicSection};
use orion_compat::sync::{Lock, Locks, Share};
use orion_compat::ErrorKind;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::thread::ThreadId;

/// The sim's [`Locks`] and [`Share`] family. Cloning gives another handle to the same one.
#[derive(Clone, Debug, Default)]
pub struct SimSync {
    fail: Arc<AtomicU32>,
}

impl SimSync {
    /// A family that never fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `n` creations (locks or shared values) fail with
    /// [`ErrorKind::NoMemory`].
    pub fn fail_next(&self, n: u32) {
        self.fail.store(n, Ordering::SeqCst);
    }

    fn injected(&self) -> bool {
        self.fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A mutex that knows its owner, so taking it twice on one thread panics instead of hanging.
#[derive(Debug)]
struct Owned<T> {
    value: Mutex<T>,
    owner: Mutex<Option<ThreadId>>,
}

impl<T> Owned<T> {
    fn new(value: T) -> Self {
        Self {
            value: Mutex::new(value),
            owner: Mutex::new(None),
        }
    }

    fn with<R>(&self, kind: &str, f: impl FnOnce(&mut T) -> R) -> R {
        let me = std::thread::current().id();
        let mut guard: MutexGuard<'_, T> = match self.value.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                if *lock(&self.owner) == Some(me) {
                    panic!("orion-sim: {kind} taken recursively on one thread (deadlock)");
                }
                lock(&self.value)
            }
        };
        *lock(&self.owner) = Some(me);
        let r = f(&mut guard);
        *lock(&self.owner) = None;
        drop(guard);
        r
    }
}

/// The sim's spin lock: IRQ-safe; its critical section is atomic context, so sleeping inside
/// panics and interrupts raised inside are delivered after it is released.
#[derive(Debug)]
pub struct SimSpinLock<T>(Owned<T>);

impl<T> SimSpinLock<T> {
    /// A spin lock holding `value`.
    pub fn new(value: T) -> Self {
        Self(Owned::new(value))
    }
}

impl<T> Lock<T> for SimSpinLock<T> {
    const IRQ_SAFE: bool = true;

    fn lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let atomic = AtomicSection::enter();
        let r = self.0.with("spin lock", f);
        drop(atomic);
        r
    }
}

/// The sim's sleeping mutex: taking it in atomic context panics.
#[derive(Debug)]
pub struct SimMutex<T>(Owned<T>);

impl<T> SimMutex<T> {
    /// A mutex holding `value`.
    pub fn new(value: T) -> Self {
        Self(Owned::new(value))
    }
}

impl<T> Lock<T> for SimMutex<T> {
    const IRQ_SAFE: bool = false;

    fn lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        context::might_sleep("Mutex::lock");
        self.0.with("mutex", f)
    }
}

impl Locks for SimSync {
    type Error = ErrorKind;
    type SpinLock<T: Send> = SimSpinLock<T>;
    type Mutex<T: Send> = SimMutex<T>;

    fn new_spin_lock<T: Send>(&self, value: T) -> Result<SimSpinLock<T>, (ErrorKind, T)> {
        context::might_sleep("Locks::new_spin_lock");
        if self.injected() {
            return Err((ErrorKind::NoMemory, value));
        }
        Ok(SimSpinLock::new(value))
    }

    fn new_mutex<T: Send>(&self, value: T) -> Result<SimMutex<T>, (ErrorKind, T)> {
        context::might_sleep("Locks::new_mutex");
        if self.injected() {
            return Err((ErrorKind::NoMemory, value));
        }
        Ok(SimMutex::new(value))
    }
}

impl Share for SimSync {
    type Error = ErrorKind;
    type Shared<T: Send + Sync + 'static> = Arc<T>;

    fn share<T: Send + Sync + 'static>(&self, value: T) -> Result<Arc<T>, (ErrorKind, T)> {
        context::might_sleep("Share::share");
        if self.injected() {
            return Err((ErrorKind::NoMemory, value));
        }
        Ok(Arc::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "taken recursively")]
    fn recursive_spin_lock_panics_instead_of_hanging() {
        let l = SimSpinLock::new(0);
        l.lock(|_| l.lock(|_| ()));
    }

    #[test]
    #[should_panic(expected = "Mutex::lock may sleep")]
    fn mutex_under_spin_lock_panics() {
        let s = SimSpinLock::new(0);
        let m = SimMutex::new(0);
        s.lock(|_| m.lock(|_| ()));
    }

    #[test]
    fn injected_failures_hand_the_value_back() {
        let s = SimSync::new();
        s.fail_next(1);
        let Err((e, v)) = s.new_mutex(vec![1, 2]) else {
            panic!("expected an injected failure")
        };
        assert_eq!((e, v), (ErrorKind::NoMemory, vec![1, 2]));
        assert!(s.new_mutex(0).is_ok());
    }

    #[test]
    fn spin_lock_excludes_across_threads() {
        let l = Arc::new(SimSpinLock::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        l.lock(|v| *v += 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(l.lock(|v| *v), 4000);
    }
}
