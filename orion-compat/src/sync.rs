//! Locks and shared ownership.
//!
//! Locks are closure-style ([`Lock::lock`] runs a closure with the protected value), so they
//! map onto a kernel `SpinLock`/`Mutex` guard, a `std::sync::Mutex` and a bare-metal spin
//! lock alike, and a guard can never escape the critical section.
//!
//! Locks and shared values are created through a [`Locks`] / [`Share`] family, because some
//! platforms cannot build them in place: a kernel lock must be pinned and initialised with a
//! lock class, so the Linux implementation allocates it. Create them at setup time, never on
//! the I/O path.

use crate::orion_compat::Error;

/// A lock around a value of type `T`.
///
/// # Contract
///
/// - [`Lock::lock`] runs `f` with exclusive access to the value and returns what `f` returns.
///   No other `lock` call on the same lock runs `f` at the same time, on any CPU or thread.
/// - Memory written inside `f` is visible to the next holder.
/// - Locks are not recursive: calling `lock` on a lock from inside its own `f` deadlocks (the
///   sim implementation panics instead). Take nested locks in one fixed order.
/// - Whether `lock` may be called from interrupt context, and whether `f` may sleep, depends
///   on the kind of lock: see [`Locks::SpinLock`] and [`Locks::Mutex`], and
///   [`Lock::IRQ_SAFE`].
pub trait Lock<T> {
    /// Whether this lock may be taken from interrupt context as well as from threads.
    ///
    /// An IRQ-safe lock keeps interrupts away from the CPU that holds it (on Linux:
    /// `SpinLockIrq`), so a handler that takes it cannot deadlock against the thread it
    /// interrupted. `f` must then never sleep.
    const IRQ_SAFE: bool;

    /// Runs `f` with exclusive access to the protected value.
    fn lock<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

/// A family of lock types, and the way to create them.
pub trait Locks {
    /// The backend's error type.
    type Error: Error;

    /// A lock that may be taken in any context, including interrupt handlers.
    ///
    /// Its [`Lock::IRQ_SAFE`] is `true`. The critical section must be short and must never
    /// sleep: no [`Clock::sleep`](crate::orion_compat::time::Clock::sleep), no mutex, no
    /// allocation that may sleep.
    type SpinLock<T: Send>: Lock<T> + Send + Sync;

    /// A lock whose critical section may sleep (wait for a command, allocate, sleep).
    ///
    /// Its [`Lock::IRQ_SAFE`] is `false`: take it only from a context that may sleep, never
    /// from an interrupt handler and never with a spin lock held.
    type Mutex<T: Send>: Lock<T> + Send + Sync;

    /// Creates a spin lock holding `value`.
    ///
    /// May sleep (it may allocate). On error, nothing was created and `value` is handed back.
    fn new_spin_lock<T: Send>(&self, value: T) -> Result<Self::SpinLock<T>, (Self::Error, T)>;

    /// Creates a mutex holding `value`.
    ///
    /// May sleep (it may allocate). On error, nothing was created and `value` is handed back.
    fn new_mutex<T: Send>(&self, value: T) -> Result<Self::Mutex<T>, (Self::Error, T)>;
}

/// Shared, reference-counted ownership of a value: what an interrupt, work or block handler
/// holds to reach the state it shares with the rest of the core.
///
/// The core has no allocator of its own; this is the one way it gets a value that several
/// owners keep alive (on Linux: `kernel::sync::Arc`; on the host: `std::sync::Arc`).
pub trait Share {
    /// The backend's error type.
    type Error: Error;

    /// A shared handle to a `T`. Cloning it is cheap and never fails or sleeps; the value is
    /// dropped when the last handle is.
    type Shared<T: Send + Sync + 'static>: core::ops::Deref<Target = T>
        + Clone
        + Send
        + Sync
        + 'static;

    /// Moves `value` into shared ownership.
    ///
    /// May sleep (it allocates). On error, nothing was created and `value` is handed back.
    fn share<T: Send + Sync + 'static>(
        &self,
        value: T,
    ) -> Result<Self::Shared<T>, (Self::Error, T)>;
}
