//! Interrupts on the host: a registry of handlers per vector that a device model raises.
//!
//! [`SimIrqChip::raise`] delivers synchronously on the raising thread (the default,
//! [`DeliveryMode::Immediate`]) or only marks the vector pending until
//! [`SimIrqChip::deliver_pending`] ([`DeliveryMode::Queued`]), so a test decides exactly when
//! the "interrupt" arrives. Interrupts can be lost on demand ([`SimIrqChip::lose_next`]) to
//! test the core's recovery.
//!
//! The chip keeps the kernel's rules: a handler runs in atomic context and is never re-entered
//! for its own vector; an interrupt raised while the vector is disabled, already in service,
//! or while the raising thread is atomic (holds a spin lock, runs a handler) stays pending and
//! is delivered once, when that ends.

use crate::clock::lock;
use crate::context::{self, AtomicSection};
use orion_compat::irq::{IrqHandler, IrqKind, IrqRegistration, IrqReturn, IrqVectors};
use orion_compat::ErrorKind;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

/// When a raised interrupt reaches its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// At once, on the raising thread (unless held back by the kernel's rules).
    Immediate,
    /// Only when the test calls [`SimIrqChip::deliver_pending`].
    Queued,
}

/// What became of one [`SimIrqChip::raise`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// The handler ran (and returned) before `raise` returned.
    Delivered,
    /// The vector is pending; the handler will run later.
    Pending,
    /// Lost on purpose ([`SimIrqChip::lose_next`]).
    Lost,
    /// No handler is registered on the vector; the interrupt went nowhere.
    NoHandler,
    /// The vector was not allocated.
    NoSuchVector,
}

/// Counters for one vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VectorStats {
    /// Times the vector was raised.
    pub raised: u64,
    /// Times its handler was called.
    pub delivered: u64,
    /// Calls that returned [`IrqReturn::None`].
    pub unhandled: u64,
    /// Interrupts lost on purpose or for want of a handler.
    pub lost: u64,
    /// Whether an interrupt is pending now.
    pub pending: bool,
    /// Whether a handler is registered.
    pub registered: bool,
    /// How many `disable`s are outstanding.
    pub disable_depth: u32,
}

trait DynHandler: Send + Sync {
    fn call(&self, vector: u16) -> IrqReturn;
}

struct Installed<H>(H);

impl<H: IrqHandler> DynHandler for Installed<H> {
    fn call(&self, vector: u16) -> IrqReturn {
        self.0.handle(vector)
    }
}

#[derive(Default)]
struct Slot {
    handler: Option<(u64, Arc<dyn DynHandler>)>,
    disable_depth: u32,
    pending: bool,
    in_service: Option<ThreadId>,
    lose: u32,
    stats: VectorStats,
}

struct ChipState {
    mode: DeliveryMode,
    slots: Vec<Slot>,
    next_id: u64,
}

struct ChipInner {
    state: Mutex<ChipState>,
    idle: Condvar,
}

/// A simulated interrupt controller for one device function. Cloning gives another handle to
/// the same chip.
#[derive(Clone)]
pub struct SimIrqChip {
    inner: Arc<ChipInner>,
}

impl Default for SimIrqChip {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for SimIrqChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state();
        f.debug_struct("SimIrqChip")
            .field("mode", &s.mode)
            .field("vectors", &s.slots.len())
            .finish()
    }
}

/// A handler that raises its own vector forever would loop; this many deliveries in one go
/// is taken as a storm.
const STORM: u32 = 100_000;

impl SimIrqChip {
    /// A chip with no vectors, delivering immediately.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ChipInner {
                state: Mutex::new(ChipState {
                    mode: DeliveryMode::Immediate,
                    slots: Vec::new(),
                    next_id: 0,
                }),
                idle: Condvar::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, ChipState> {
        lock(&self.inner.state)
    }

    /// Gives the chip `count` fresh vectors (what a vector allocation does).
    pub(crate) fn set_vectors(&self, count: u16) {
        let mut s = self.state();
        s.slots.clear();
        s.slots.resize_with(usize::from(count), Slot::default);
    }

    /// How many vectors are allocated.
    pub fn vectors(&self) -> u16 {
        // CAST: slots are only ever sized from a u16.
        self.state().slots.len() as u16
    }

    /// Chooses when raised interrupts are delivered.
    ///
    /// Switching to [`DeliveryMode::Immediate`] does not deliver what is pending; call
    /// [`SimIrqChip::deliver_pending`] for that.
    pub fn set_mode(&self, mode: DeliveryMode) {
        self.state().mode = mode;
    }

    /// Makes the next `n` raises of `vector` vanish, as a lost MSI would.
    pub fn lose_next(&self, vector: u16, n: u32) {
        if let Some(slot) = self.state().slots.get_mut(usize::from(vector)) {
            slot.lose = n;
        }
    }

    /// The counters of `vector`.
    pub fn stats(&self, vector: u16) -> VectorStats {
        self.state()
            .slots
            .get(usize::from(vector))
            .map(|s| {
                let mut st = s.stats;
                st.pending = s.pending;
                st.registered = s.handler.is_some();
                st.disable_depth = s.disable_depth;
                st
            })
            .unwrap_or_default()
    }

    /// The device raises `vector`.
    pub fn raise(&self, vector: u16) -> Raised {
        {
            let mut s = self.state();
            let mode = s.mode;
            let Some(slot) = s.slots.get_mut(usize::from(vector)) else {
                return Raised::NoSuchVector;
            };
            slot.stats.raised += 1;
            if slot.lose > 0 {
                slot.lose -= 1;
                slot.stats.lost += 1;
                return Raised::Lost;
            }
            if slot.handler.is_none() {
                slot.stats.lost += 1;
                return Raised::NoHandler;
            }
            slot.pending = true;
            if mode == DeliveryMode::Queued || slot.disable_depth > 0 || slot.in_service.is_some() {
                return Raised::Pending;
            }
        }
        if context::in_atomic() {
            let chip = self.clone();
            context::run_or_defer(move || {
                chip.deliver(vector, true);
            });
            return Raised::Pending;
        }
        if self.deliver(vector, true) {
            Raised::Delivered
        } else {
            Raised::Pending
        }
    }

    /// Delivers every pending, enabled vector, in vector order; returns how many handler
    /// calls were made. In atomic context the delivery waits until the thread leaves it, and
    /// 0 is returned.
    pub fn deliver_pending(&self) -> usize {
        if context::in_atomic() {
            let chip = self.clone();
            context::run_or_defer(move || {
                chip.deliver_pending();
            });
            return 0;
        }
        let n = self.state().slots.len();
        let mut calls = 0;
        for v in 0..n {
            // CAST: slots are only ever sized from a u16.
            if self.deliver(v as u16, false) {
                calls += 1;
            }
        }
        calls
    }

    /// Runs `vector`'s handler while it is pending and deliverable; returns whether it ran.
    ///
    /// With `repeat`, an interrupt raised again during the handler is delivered right after
    /// it, as hardware would; without, it stays pending.
    fn deliver(&self, vector: u16, repeat: bool) -> bool {
        let me = std::thread::current().id();
        let mut ran = false;
        for _ in 0..STORM {
            let handler = {
                let mut s = self.state();
                let Some(slot) = s.slots.get_mut(usize::from(vector)) else {
                    return ran;
                };
                let Some((_, h)) = &slot.handler else {
                    return ran;
                };
                if !slot.pending || slot.disable_depth > 0 || slot.in_service.is_some() {
                    return ran;
                }
                let h = h.clone();
                slot.pending = false;
                slot.in_service = Some(me);
                h
            };
            let irq = AtomicSection::enter_irq();
            let ret = handler.call(vector);
            {
                let mut s = self.state();
                if let Some(slot) = s.slots.get_mut(usize::from(vector)) {
                    slot.in_service = None;
                    slot.stats.delivered += 1;
                    if ret == IrqReturn::None {
                        slot.stats.unhandled += 1;
                    }
                }
            }
            self.inner.idle.notify_all();
            ran = true;
            // Leaving the handler lets interrupts held back during it through.
            drop(irq);
            if !repeat {
                return ran;
            }
        }
        panic!("orion-sim: interrupt storm on vector {vector}: the handler keeps raising it");
    }

    /// Waits until `vector`'s handler is not running on another thread.
    fn wait_idle<'a>(
        &'a self,
        mut s: MutexGuard<'a, ChipState>,
        vector: u16,
        what: &str,
    ) -> MutexGuard<'a, ChipState> {
        let me = std::thread::current().id();
        loop {
            match s
                .slots
                .get(usize::from(vector))
                .and_then(|slot| slot.in_service)
            {
                Some(t) if t == me => {
                    panic!("orion-sim: {what} called from the vector's own handler (deadlock)")
                }
                Some(_) => {
                    s = self
                        .inner
                        .idle
                        .wait(s)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                None => return s,
            }
        }
    }
}

/// Frees the vector allocation when the last of [`SimVectors`] and its registrations goes.
pub(crate) struct Allocation {
    chip: SimIrqChip,
    on_free: Box<dyn Fn() + Send + Sync>,
}

impl Allocation {
    pub(crate) fn new(chip: SimIrqChip, on_free: impl Fn() + Send + Sync + 'static) -> Self {
        Self {
            chip,
            on_free: Box::new(on_free),
        }
    }
}

impl std::fmt::Debug for Allocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Allocation")
            .field("chip", &self.chip)
            .finish_non_exhaustive()
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        self.chip.set_vectors(0);
        (self.on_free)();
    }
}

/// Vectors allocated by [`SimPci`](crate::pci::SimPci), on its [`SimIrqChip`].
#[derive(Debug)]
pub struct SimVectors {
    alloc: Arc<Allocation>,
    count: u16,
    kind: IrqKind,
}

impl SimVectors {
    pub(crate) fn new(alloc: Allocation, count: u16, kind: IrqKind) -> Self {
        alloc.chip.set_vectors(count);
        Self {
            alloc: Arc::new(alloc),
            count,
            kind,
        }
    }

    /// The chip the vectors are on.
    pub fn chip(&self) -> &SimIrqChip {
        &self.alloc.chip
    }
}

impl IrqVectors for SimVectors {
    type Error = ErrorKind;
    type Registration<H: IrqHandler> = SimIrqRegistration<H>;

    fn count(&self) -> u16 {
        self.count
    }

    fn kind(&self) -> IrqKind {
        self.kind
    }

    fn register<H: IrqHandler>(
        &self,
        vector: u16,
        handler: H,
    ) -> Result<SimIrqRegistration<H>, (ErrorKind, H)> {
        context::might_sleep("IrqVectors::register");
        let mut s = self.alloc.chip.state();
        let id = s.next_id;
        let Some(slot) = s.slots.get_mut(usize::from(vector)) else {
            return Err((ErrorKind::OutOfRange, handler));
        };
        if slot.handler.is_some() {
            return Err((ErrorKind::Busy, handler));
        }
        let installed = Arc::new(Installed(handler));
        slot.handler = Some((id, installed.clone() as Arc<dyn DynHandler>));
        slot.pending = false;
        slot.disable_depth = 0;
        s.next_id += 1;
        Ok(SimIrqRegistration {
            alloc: self.alloc.clone(),
            vector,
            id,
            installed,
        })
    }
}

/// A handler registered on a [`SimIrqChip`] vector.
pub struct SimIrqRegistration<H> {
    alloc: Arc<Allocation>,
    vector: u16,
    id: u64,
    installed: Arc<Installed<H>>,
}

impl<H> std::fmt::Debug for SimIrqRegistration<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimIrqRegistration")
            .field("vector", &self.vector)
            .finish_non_exhaustive()
    }
}

impl<H: IrqHandler> IrqRegistration for SimIrqRegistration<H> {
    type Handler = H;

    fn handler(&self) -> &H {
        &self.installed.0
    }

    fn vector(&self) -> u16 {
        self.vector
    }

    fn disable(&self) {
        context::might_sleep("IrqRegistration::disable");
        let chip = &self.alloc.chip;
        let mut s = chip.state();
        if let Some(slot) = s.slots.get_mut(usize::from(self.vector)) {
            slot.disable_depth += 1;
        }
        drop(chip.wait_idle(s, self.vector, "IrqRegistration::disable"));
    }

    fn enable(&self) {
        let chip = &self.alloc.chip;
        let deliver = {
            let mut s = chip.state();
            let mode = s.mode;
            let Some(slot) = s.slots.get_mut(usize::from(self.vector)) else {
                return;
            };
            assert!(
                slot.disable_depth > 0,
                "orion-sim: unbalanced IrqRegistration::enable on vector {}",
                self.vector
            );
            slot.disable_depth -= 1;
            slot.disable_depth == 0 && slot.pending && mode == DeliveryMode::Immediate
        };
        if deliver {
            let c = chip.clone();
            let v = self.vector;
            context::run_or_defer(move || {
                c.deliver(v, true);
            });
        }
    }

    fn synchronize(&self) {
        context::might_sleep("IrqRegistration::synchronize");
        let chip = &self.alloc.chip;
        drop(chip.wait_idle(chip.state(), self.vector, "IrqRegistration::synchronize"));
    }
}

impl<H> Drop for SimIrqRegistration<H> {
    fn drop(&mut self) {
        context::might_sleep("dropping an IrqRegistration");
        let chip = &self.alloc.chip;
        // While unwinding (a test already failed, perhaps inside the handler), don't wait.
        let mut s = if std::thread::panicking() {
            chip.state()
        } else {
            chip.wait_idle(chip.state(), self.vector, "dropping an IrqRegistration")
        };
        let mut removed = None;
        if let Some(slot) = s.slots.get_mut(usize::from(self.vector)) {
            if slot.handler.as_ref().is_some_and(|(id, _)| *id == self.id) {
                removed = slot.handler.take();
                slot.pending = false;
                slot.disable_depth = 0;
            }
        }
        // The handler is dropped outside the chip's lock: its drop may use the chip.
        drop(s);
        drop(removed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::{IrqCaps, SimPci};
    use crate::sync::SimSpinLock;
    use orion_compat::irq::{IrqKinds, VectorRequest};
    use orion_compat::pci::{Pci, PciIds};
    use orion_compat::sync::Lock;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::mpsc;

    fn vectors(n: u16) -> (SimPci, SimVectors) {
        let pci = SimPci::builder(PciIds::default())
            .irq_caps(IrqCaps::QEMU_NVME)
            .build();
        let v = pci
            .alloc_irq_vectors(&VectorRequest {
                min: n,
                max: n,
                kinds: IrqKinds::MSIX,
                pre_vectors: 0,
            })
            .unwrap();
        (pci, v)
    }

    /// Counts calls, checks it is never re-entered, and runs an action on its first call.
    #[derive(Default)]
    struct Probe {
        calls: AtomicU32,
        busy: AtomicBool,
        saw_irq_context: AtomicBool,
        on_first: Mutex<Option<Box<dyn FnOnce() + Send>>>,
    }

    impl std::fmt::Debug for Probe {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Probe")
        }
    }

    impl IrqHandler for Probe {
        fn handle(&self, _vector: u16) -> IrqReturn {
            assert!(!self.busy.swap(true, Ordering::SeqCst), "re-entered");
            self.saw_irq_context
                .store(context::in_irq() && context::in_atomic(), Ordering::SeqCst);
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                if let Some(f) = lock(&self.on_first).take() {
                    f();
                }
            }
            self.busy.store(false, Ordering::SeqCst);
            IrqReturn::Handled
        }
    }

    fn calls<H: IrqRegistration<Handler = Probe>>(r: &H) -> u32 {
        r.handler().calls.load(Ordering::SeqCst)
    }

    #[test]
    fn handlers_run_in_interrupt_context() {
        let (pci, v) = vectors(2);
        let r = v.register(1, Probe::default()).unwrap();
        assert_eq!(pci.irq_chip().raise(1), Raised::Delivered);
        assert_eq!(calls(&r), 1);
        assert!(r.handler().saw_irq_context.load(Ordering::SeqCst));
        assert_eq!(pci.irq_chip().raise(0), Raised::NoHandler);
        assert_eq!(pci.irq_chip().raise(2), Raised::NoSuchVector);
    }

    #[test]
    fn an_interrupt_raised_under_a_spin_lock_waits_for_the_unlock() {
        let (pci, v) = vectors(1);
        let r = v.register(0, Probe::default()).unwrap();
        let l = SimSpinLock::new(());
        l.lock(|()| {
            assert_eq!(pci.irq_chip().raise(0), Raised::Pending);
            assert_eq!(calls(&r), 0, "held back while the lock is held");
        });
        assert_eq!(calls(&r), 1, "delivered on unlock");
    }

    #[test]
    fn a_handler_raising_its_own_vector_runs_again_after_it_returns() {
        let (pci, v) = vectors(1);
        let probe = Probe::default();
        let chip = pci.irq_chip().clone();
        *lock(&probe.on_first) = Some(Box::new(move || {
            assert_eq!(chip.raise(0), Raised::Pending);
        }));
        let r = v.register(0, probe).unwrap();
        assert_eq!(pci.irq_chip().raise(0), Raised::Delivered);
        assert_eq!(calls(&r), 2);
    }

    #[test]
    fn a_disabled_vector_keeps_one_pending_interrupt() {
        let (pci, v) = vectors(1);
        let r = v.register(0, Probe::default()).unwrap();
        r.disable();
        r.disable();
        for _ in 0..3 {
            assert_eq!(pci.irq_chip().raise(0), Raised::Pending);
        }
        r.enable();
        assert_eq!(calls(&r), 0, "disable nests");
        r.enable();
        assert_eq!(
            calls(&r),
            1,
            "three raises while disabled coalesce into one"
        );
        let s = pci.irq_chip().stats(0);
        assert_eq!(
            (s.raised, s.delivered, s.pending, s.disable_depth),
            (3, 1, false, 0)
        );
    }

    #[test]
    fn lost_interrupts_never_arrive() {
        let (pci, v) = vectors(1);
        let r = v.register(0, Probe::default()).unwrap();
        pci.irq_chip().lose_next(0, 2);
        assert_eq!(pci.irq_chip().raise(0), Raised::Lost);
        assert_eq!(pci.irq_chip().raise(0), Raised::Lost);
        assert_eq!(pci.irq_chip().raise(0), Raised::Delivered);
        assert_eq!(calls(&r), 1);
        assert_eq!(pci.irq_chip().stats(0).lost, 2);
    }

    #[test]
    fn queued_mode_delivers_only_when_asked() {
        let (pci, v) = vectors(2);
        let r0 = v.register(0, Probe::default()).unwrap();
        let r1 = v.register(1, Probe::default()).unwrap();
        let chip = pci.irq_chip();
        chip.set_mode(DeliveryMode::Queued);
        chip.raise(1);
        chip.raise(1);
        chip.raise(0);
        assert_eq!((calls(&r0), calls(&r1)), (0, 0));
        assert_eq!(chip.deliver_pending(), 2);
        assert_eq!((calls(&r0), calls(&r1)), (1, 1));
        assert_eq!(chip.deliver_pending(), 0);
    }

    #[test]
    fn registrations_keep_the_allocation_and_free_the_vector_on_drop() {
        let (pci, v) = vectors(1);
        let r = v.register(0, Probe::default()).unwrap();
        drop(v);
        assert_eq!(
            pci.irq_chip().raise(0),
            Raised::Delivered,
            "the allocation outlives SimVectors"
        );
        let req = VectorRequest {
            min: 1,
            max: 1,
            kinds: IrqKinds::ALL,
            pre_vectors: 0,
        };
        assert_eq!(pci.alloc_irq_vectors(&req).unwrap_err(), ErrorKind::Busy);
        drop(r);
        assert_eq!(pci.irq_chip().vectors(), 0);
        let v = pci.alloc_irq_vectors(&req).unwrap();
        let r = v.register(0, Probe::default());
        assert!(r.is_ok());
    }

    #[test]
    fn an_interrupt_raised_during_the_handler_on_another_thread_is_delivered_after_it() {
        let (pci, v) = vectors(1);
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let probe = Probe::default();
        let release_rx = Mutex::new(release_rx);
        *lock(&probe.on_first) = Some(Box::new(move || {
            entered_tx.send(()).unwrap();
            lock(&release_rx).recv().unwrap();
        }));
        let r = v.register(0, probe).unwrap();
        let chip = pci.irq_chip().clone();
        let first = std::thread::spawn(move || chip.raise(0));
        entered_rx.recv().unwrap();
        assert_eq!(
            pci.irq_chip().raise(0),
            Raised::Pending,
            "in service elsewhere"
        );
        release_tx.send(()).unwrap();
        assert_eq!(first.join().unwrap(), Raised::Delivered);
        assert_eq!(
            calls(&r),
            2,
            "the second raise ran on the first thread, after it"
        );
    }

    #[test]
    #[should_panic(expected = "Clock::sleep may sleep, but was called from an interrupt handler")]
    fn sleeping_in_a_handler_panics() {
        use crate::clock::VirtualClock;
        use orion_compat::time::{Clock, Duration};
        let (pci, v) = vectors(1);
        let probe = Probe::default();
        *lock(&probe.on_first) = Some(Box::new(|| VirtualClock::new().sleep(Duration::ZERO)));
        let _r = v.register(0, probe).unwrap();
        pci.irq_chip().raise(0);
    }

    #[test]
    #[should_panic(expected = "unbalanced")]
    fn unbalanced_enable_panics() {
        let (_pci, v) = vectors(1);
        let r = v.register(0, Probe::default()).unwrap();
        r.enable();
    }
}
