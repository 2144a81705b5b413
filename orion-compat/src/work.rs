//! Deferred work: a handler run later, in a context that may sleep.
//!
//! Interrupt handlers and the I/O path may not sleep; what needs to (a controller reset, a
//! namespace rescan, an abort that waits) is handed to a [`Work`] item and run by the
//! platform's worker.

use crate::orion_compat::time::Duration;
use crate::orion_compat::Error;

/// Code run by a [`Work`] item.
///
/// # Contract
///
/// [`WorkHandler::run`] runs in a context that may sleep (a worker thread), never in
/// interrupt context and never with a lock held by the platform. Calls never overlap: one
/// item's handler is not re-entered, on any CPU.
pub trait WorkHandler: Send + Sync + 'static {
    /// Does the deferred work.
    fn run(&self);
}

/// A creator of [`Work`] items (on Linux: a workqueue).
pub trait Workqueue {
    /// The backend's error type.
    type Error: Error;

    /// A work item owning a handler of type `H`.
    type Work<H: WorkHandler>: Work<Handler = H>;

    /// Creates an idle work item that runs `handler` when scheduled.
    ///
    /// May sleep (it may allocate). On error nothing was created and the handler is handed
    /// back.
    fn new_work<H: WorkHandler>(&self, handler: H) -> Result<Self::Work<H>, (Self::Error, H)>;
}

/// A handler that can be scheduled to run later.
///
/// # Contract
///
/// - An item is either idle, pending (scheduled, not yet started) or running; it can be
///   running and pending at once (scheduled again while it runs).
/// - Scheduling a pending item does nothing and returns `false`: it still runs once. An item
///   scheduled while it is running runs again after the current run: no request is lost.
/// - [`Work::schedule`] and [`Work::schedule_after`] never sleep and may be called from any
///   context, including interrupt handlers.
/// - Dropping the item cancels it as [`Work::cancel_sync`] does (and may sleep), then drops
///   the handler.
pub trait Work {
    /// The handler type.
    type Handler: WorkHandler;

    /// The handler, for reading its state.
    fn handler(&self) -> &Self::Handler;

    /// Makes the item pending to run as soon as a worker is free.
    ///
    /// Returns `true` if this call made it pending, `false` if it already was.
    fn schedule(&self) -> bool;

    /// Makes the item pending to run after at least `delay`.
    ///
    /// Returns `true` if this call made it pending, `false` if it already was (its earlier
    /// delay is kept).
    fn schedule_after(&self, delay: Duration) -> bool;

    /// Cancels a pending run and waits for a running one to return.
    ///
    /// After it returns the handler is not running and will not run until scheduled again.
    /// Returns whether a pending run was cancelled. May sleep; never call it from the item's
    /// own handler (it would wait for itself).
    fn cancel_sync(&self) -> bool;
}
