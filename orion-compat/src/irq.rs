//! Interrupts: vectors, handlers and their registration.
//!
//! A device function's vectors come from
//! [`Pci::alloc_irq_vectors`](crate::orion_compat::pci::Pci::alloc_irq_vectors) as an
//! [`IrqVectors`]. A handler is registered on one vector and owned by its
//! [`IrqRegistration`]; dropping the registration unregisters it.
//!
//! Handlers are owned (`'static`), not borrowed, so that forgetting a registration can at
//! worst leak it, never leave the platform calling into freed memory. A handler reaches the
//! state it shares with the rest of the core through a
//! [`Share::Shared`](crate::orion_compat::sync::Share::Shared) handle.

use crate::orion_compat::Error;

/// What a handler did with an interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqReturn {
    /// The interrupt was not for this handler (a shared INTx line, or nothing to reap).
    None,
    /// The handler dealt with the interrupt.
    Handled,
}

/// Code run when a vector fires.
///
/// # Contract
///
/// - [`IrqHandler::handle`] may run in hard interrupt context (Linux), in a thread woken by
///   an event (a user-space runtime) or in a polling loop (the sim, tests). It must therefore
///   never sleep: no mutex, no sleeping allocation, no
///   [`Clock::sleep`](crate::orion_compat::time::Clock::sleep). It may take spin locks
///   ([`Locks::SpinLock`](crate::orion_compat::sync::Locks::SpinLock)) and schedule work.
/// - For one registration, calls never overlap: the handler is not re-entered for its own
///   vector. Handlers of different vectors may run at the same time on different CPUs.
/// - One call may stand for several interrupts raised close together (they coalesce), and
///   the handler must reap everything pending, not one item per call.
pub trait IrqHandler: Send + Sync + 'static {
    /// Handles an interrupt on `vector` (the index within the device's vectors).
    fn handle(&self, vector: u16) -> IrqReturn;
}

/// The kind of interrupt a device function was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqKind {
    /// MSI-X: many independent vectors.
    MsiX,
    /// MSI: up to 32 vectors, a power of two.
    Msi,
    /// The legacy INTx line: one vector, possibly shared with other devices.
    Intx,
}

/// A set of [`IrqKind`]s a caller accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqKinds {
    msix: bool,
    msi: bool,
    intx: bool,
}

impl IrqKinds {
    /// No kind at all.
    pub const NONE: Self = Self {
        msix: false,
        msi: false,
        intx: false,
    };
    /// Every kind: MSI-X, then MSI, then INTx.
    pub const ALL: Self = Self {
        msix: true,
        msi: true,
        intx: true,
    };
    /// MSI-X only.
    pub const MSIX: Self = Self {
        msix: true,
        msi: false,
        intx: false,
    };
    /// MSI only.
    pub const MSI: Self = Self {
        msix: false,
        msi: true,
        intx: false,
    };
    /// INTx only.
    pub const INTX: Self = Self {
        msix: false,
        msi: false,
        intx: true,
    };

    /// This set with `kind` added.
    pub const fn with(self, kind: IrqKind) -> Self {
        match kind {
            IrqKind::MsiX => Self { msix: true, ..self },
            IrqKind::Msi => Self { msi: true, ..self },
            IrqKind::Intx => Self { intx: true, ..self },
        }
    }

    /// This set without `kind`.
    pub const fn without(self, kind: IrqKind) -> Self {
        match kind {
            IrqKind::MsiX => Self {
                msix: false,
                ..self
            },
            IrqKind::Msi => Self { msi: false, ..self },
            IrqKind::Intx => Self {
                intx: false,
                ..self
            },
        }
    }

    /// Whether `kind` is in the set.
    pub const fn contains(self, kind: IrqKind) -> bool {
        match kind {
            IrqKind::MsiX => self.msix,
            IrqKind::Msi => self.msi,
            IrqKind::Intx => self.intx,
        }
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        !(self.msix || self.msi || self.intx)
    }
}

/// What a caller asks of [`Pci::alloc_irq_vectors`](crate::orion_compat::pci::Pci::alloc_irq_vectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorRequest {
    /// The fewest vectors the caller can work with; at least 1.
    pub min: u16,
    /// The most vectors the caller can use; at least `min`.
    pub max: u16,
    /// The kinds the caller accepts, tried in the order MSI-X, MSI, INTx.
    pub kinds: IrqKinds,
    /// How many of the first vectors are left out of CPU spreading (for NVMe: 1, the admin
    /// queue's). The rest are spread over the CPUs where the platform can.
    pub pre_vectors: u16,
}

/// The interrupt vectors allocated to one device function.
///
/// # Contract
///
/// - Vectors are numbered `0 .. count()`; that number is what handlers receive.
/// - At most one handler is registered on a vector at a time.
/// - The allocation stays in place while any registration made from it lives, even if this
///   value is dropped first; it is freed when both are gone.
pub trait IrqVectors {
    /// The backend's error type.
    type Error: Error;

    /// A registration owning a handler of type `H`.
    type Registration<H: IrqHandler>: IrqRegistration<Handler = H>;

    /// How many vectors were granted.
    fn count(&self) -> u16;

    /// The kind of the vectors.
    fn kind(&self) -> IrqKind;

    /// Registers `handler` on `vector`; the vector is enabled on return.
    ///
    /// `Ok` promises the handler will be called for every interrupt on `vector` from now on,
    /// until the registration is dropped or disabled. On error nothing is registered and the
    /// handler is handed back: a vector outside `0 .. count()` is
    /// [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange), a vector that
    /// already has a handler is [`ErrorKind::Busy`](crate::orion_compat::ErrorKind::Busy).
    ///
    /// May sleep: only from a context that may sleep.
    fn register<H: IrqHandler>(
        &self,
        vector: u16,
        handler: H,
    ) -> Result<Self::Registration<H>, (Self::Error, H)>;
}

/// A handler registered on one vector.
///
/// # Contract
///
/// - Dropping the registration unregisters the handler: after the drop returns, the handler
///   is not running and will not be called again, and it has been dropped. Dropping may
///   sleep, so it must not happen in interrupt context or inside the handler itself.
/// - [`IrqRegistration::disable`] and [`IrqRegistration::enable`] nest: the vector is
///   delivered again only when every `disable` has been matched by an `enable`. Enabling
///   more often than disabling is a caller bug.
/// - An interrupt raised while the vector is disabled is not lost: it is delivered once
///   after the matching `enable`.
pub trait IrqRegistration {
    /// The handler type.
    type Handler: IrqHandler;

    /// The handler, for reading its state.
    fn handler(&self) -> &Self::Handler;

    /// The vector this registration is on.
    fn vector(&self) -> u16;

    /// Stops delivery and waits until a running call of the handler has returned.
    ///
    /// May sleep: not from interrupt context and never from the handler itself.
    fn disable(&self);

    /// Undoes one [`IrqRegistration::disable`]; a pending interrupt is then delivered.
    ///
    /// May be called from any context.
    fn enable(&self);

    /// Waits until a running call of the handler (on another CPU) has returned, without
    /// stopping delivery. Used after changing state the handler reads.
    ///
    /// May sleep: not from interrupt context and never from the handler itself.
    fn synchronize(&self);
}
