// SPDX-License-Identifier: GPL-2.0

//! A reference whose lifetime its holder cannot name: lent by an owner that promises to take
//! it back before the referent goes.

use core::ptr::NonNull;

/// A shared reference to a `T` owned elsewhere, lent until the lender drops this value.
///
/// # Invariants
///
/// `ptr` points at a live `T` while this value exists, which may be used by shared
/// reference from any thread.
pub(crate) struct Lent<T>(NonNull<T>);

// SAFETY: the referent may be used by shared reference from any thread (type invariant).
unsafe impl<T> Send for Lent<T> {}
// SAFETY: as above; `Lent` gives out only shared references.
unsafe impl<T> Sync for Lent<T> {}

impl<T> Lent<T> {
    /// Lends `*ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` points at a `T` that stays alive (not moved, not dropped, not mutably borrowed)
    /// until the returned value is dropped, and that may be used by shared reference from any
    /// thread: the lender keeps the `Lent` where it can take it back (for example in a slot
    /// under a lock, which it empties before the `T` goes).
    #[inline]
    pub(crate) unsafe fn new(ptr: NonNull<T>) -> Self {
        // INVARIANT: the caller's contract.
        Self(ptr)
    }

    /// The lent value.
    #[inline]
    pub(crate) fn get(&self) -> &T {
        // SAFETY: alive while `self` is (type invariant); the borrow cannot outlive `self`.
        unsafe { self.0.as_ref() }
    }
}
