//! Reset step 3 through the core (`recovery::bring_back`) against the simulated controller:
//! the controller comes back with the queues it grants, or is handed back disabled with the
//! step that failed.

#[expect(
    dead_code,
    reason = "this test does not use every part of the shared rig"
)]
mod common;

use common::{rig, up, SimPlatform};
use orion_nvme::controller::{Controller, CtrlError, Enabled};
use orion_nvme::recovery::{bring_back, BringBackStep, QueueRestore};
use orion_sim::nvme::{CmdMatch, NvmeBuilder};

/// The platform side, recorded: how often the controller came up and what was granted.
#[derive(Default)]
struct Recorder {
    enabled: u32,
    granted: Vec<u16>,
    fail_restore: bool,
}

impl QueueRestore<SimPlatform> for Recorder {
    fn enabled(&mut self, _ctrl: &Controller<SimPlatform, Enabled>) {
        self.enabled += 1;
    }
    fn restore(
        &mut self,
        ctrl: &mut Controller<SimPlatform, Enabled>,
        granted: u16,
    ) -> Result<(), CtrlError> {
        // The controller is identified again by the time the queues are restored.
        assert!(ctrl.info().is_some());
        self.granted.push(granted);
        if self.fail_restore {
            Err(CtrlError::Invalid("test"))
        } else {
            Ok(())
        }
    }
}

#[test]
fn brought_back_with_the_queues_granted() {
    let (r, c) = up(NvmeBuilder::new().max_io_queues(3));
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    assert!(!r.nvme.is_ready());
    let mut p = Recorder::default();
    let (c, granted) = bring_back(d, 8, &mut p)
        .map_err(|(s, e, _)| (s, e))
        .unwrap();
    assert_eq!(granted, 3, "fewer than asked for: the controller's maximum");
    assert_eq!((p.enabled, p.granted.as_slice()), (1, &[3u16][..]));
    assert!(r.nvme.is_ready());
    assert!(c.info().is_some());
}

#[test]
fn a_failed_step_hands_the_controller_back_disabled() {
    // Never ready: enabling fails, nothing else is tried.
    let (r, d) = rig(NvmeBuilder::new());
    r.nvme.faults().never_ready(true);
    let mut p = Recorder::default();
    match bring_back(d, 2, &mut p) {
        Err((BringBackStep::Enable, CtrlError::Timeout(_), _)) => {}
        other => panic!("{:?}", other.map(|(_, g)| g).map_err(|(s, e, _)| (s, e))),
    }
    assert_eq!(p.enabled, 0);

    // Identify lost: the controller is disabled again, the queues never restored.
    let (r, c) = up(NvmeBuilder::new());
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    r.nvme.faults().drop_completions(CmdMatch::admin(0x06), 1);
    let mut p = Recorder::default();
    match bring_back(d, 2, &mut p) {
        Err((BringBackStep::Identify, CtrlError::Timeout(_), _)) => {}
        other => panic!("{:?}", other.map(|(_, g)| g).map_err(|(s, e, _)| (s, e))),
    }
    assert_eq!((p.enabled, p.granted.len()), (1, 0));
    assert!(!r.nvme.is_ready(), "handed back disabled");

    // The platform's queues fail: disabled again, the step named.
    let (r, c) = up(NvmeBuilder::new());
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    let mut p = Recorder {
        fail_restore: true,
        ..Default::default()
    };
    match bring_back(d, 2, &mut p) {
        Err((BringBackStep::Queues, CtrlError::Invalid("test"), d)) => {
            assert!(!r.nvme.is_ready());
            // And the controller handed back can be brought back later.
            let mut ok = Recorder::default();
            assert!(bring_back(d, 2, &mut ok).is_ok());
            assert!(r.nvme.is_ready());
        }
        other => panic!("{:?}", other.map(|(_, g)| g).map_err(|(s, e, _)| (s, e))),
    }
    assert_eq!(BringBackStep::Queues.name(), "re-creating the I/O queues");
}
