//! The controller's bring-up at probe: enable, identify, the queue count, the namespaces.
//!
//! On any failure after the controller was enabled it is disabled again before the error
//! comes back, so the platform can free the admin queue's memory safely.

use crate::orion::controller::{Controller, CtrlError, Disabled, Enabled, NamespaceInfo, Platform};

/// The bring-up steps, named for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// CC.EN = 1 and the bounded wait for CSTS.RDY.
    Enable,
    /// Identify Controller.
    Identify,
    /// Set Features (Number of Queues).
    QueueCount,
    /// Identify of the active namespaces.
    Namespaces,
}

impl ProbeStep {
    /// What the step is called in the log.
    pub const fn name(self) -> &'static str {
        match self {
            ProbeStep::Enable => "enabling",
            ProbeStep::Identify => "Identify Controller",
            ProbeStep::QueueCount => "Set Features (Number of Queues)",
            ProbeStep::Namespaces => "namespace discovery",
        }
    }
}

/// What the bring-up found.
pub struct Up<P: Platform> {
    /// The controller, enabled and identified.
    pub ctrl: Controller<P, Enabled>,
    /// The I/O queues it grants.
    pub granted: u16,
}

/// Enables `ctrl`, masks its pin-based interrupts (no handler is in place yet; the block
/// side unmasks them once it has one), identifies it, asks for `want` I/O queues and walks
/// its namespaces, handing each usable one to `found` and each skipped one (with why) to
/// `skipped`. On failure the step and the error come back, the controller disabled.
pub fn bring_up<P: Platform>(
    ctrl: Controller<P, Disabled>,
    want: u16,
    found: impl FnMut(NamespaceInfo),
    skipped: impl FnMut(u32, &str),
) -> Result<Up<P>, (ProbeStep, CtrlError)> {
    let mut ctrl = ctrl.enable().map_err(|(e, _)| (ProbeStep::Enable, e))?;
    let r = (|| {
        // Masking is only meaningful without MSI-X, and harmless on a controller that
        // ignores it; a failure here shows up at Identify.
        let _ = ctrl.mask_interrupts();
        ctrl.identify().map_err(|e| (ProbeStep::Identify, e))?;
        let granted = ctrl
            .set_queue_count(want)
            .map_err(|e| (ProbeStep::QueueCount, e))?;
        ctrl.for_each_namespace(found, skipped)
            .map_err(|e| (ProbeStep::Namespaces, e))?;
        Ok(granted)
    })();
    match r {
        Ok(granted) => Ok(Up { ctrl, granted }),
        Err(e) => {
            // Disabled before the admin queue's memory goes away, whatever failed.
            let _ = ctrl.reset();
            Err(e)
        }
    }
}
