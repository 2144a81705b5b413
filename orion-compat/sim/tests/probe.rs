//! The core's bring-up at probe ([`orion_nvme::driver::bring_up`]) and queue plan
//! ([`orion_nvme::interrupt`]) against the simulated controller.

#[expect(
    dead_code,
    reason = "this test does not use every part of the shared rig"
)]
mod common;

use common::rig;
use orion_nvme::config::Config;
use orion_nvme::controller::CtrlError;
use orion_nvme::driver::{bring_up, ProbeStep};
use orion_nvme::interrupt::{self, Ask, Plan};
use orion_sim::nvme::{CmdMatch, NvmeBuilder};

#[test]
fn bring_up_finds_the_queues_and_namespaces() {
    let (r, d) = rig(NvmeBuilder::new()
        .max_io_queues(3)
        .namespace(1, 512, 2048)
        .namespace(4, 4096, 64)
        .lba_formats(&[512, 4096]));
    let want = interrupt::queues_wanted(8, &Config::default());
    let mut found = Vec::new();
    let up = bring_up(
        d,
        want,
        |n| found.push((n.nsid, n.block_size)),
        |id, why| panic!("{id}: {why}"),
    )
    .map_err(|(s, e, ..)| (s, e))
    .unwrap();
    assert_eq!(up.granted, 3, "the controller's maximum");
    assert!(up.ctrl.info().is_some());
    assert_eq!(found, [(1, 512), (4, 4096)]);
    assert!(r.nvme.is_ready());
    // The plan over what was granted: two vectors allocated of the four asked for.
    let ask = Ask::of(up.granted, 1);
    assert_eq!(ask.max_vectors(), 3);
    let plan = Plan::new(ask, 2);
    assert_eq!((plan.interrupt, plan.poll, plan.total()), (1, 1, 2));
    assert_eq!(
        interrupt::queue_depth(4096, up.ctrl.cap()),
        up.ctrl.cap().max_queue_entries()
    );
}

#[test]
fn a_failed_step_leaves_the_controller_disabled() {
    let (r, d) = rig(NvmeBuilder::new());
    r.nvme.faults().drop_completions(CmdMatch::admin(0x06), 1);
    match bring_up(d, 1, |_| {}, |_, _| {}) {
        Err((ProbeStep::Identify, CtrlError::Timeout(_))) => {}
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("came up"),
    }
    assert!(!r.nvme.is_ready(), "disabled again");

    let (r, d) = rig(NvmeBuilder::new());
    r.nvme.faults().drop_completions(CmdMatch::admin(0x09), 1);
    assert!(matches!(
        bring_up(d, 1, |_| {}, |_, _| {}),
        Err((ProbeStep::QueueCount, CtrlError::Timeout(_)))
    ));
    assert!(!r.nvme.is_ready());

    let (r, d) = rig(NvmeBuilder::new());
    r.nvme.faults().never_ready(true);
    assert!(matches!(
        bring_up(d, 1, |_| {}, |_, _| {}),
        Err((ProbeStep::Enable, CtrlError::Timeout(_)))
    ));
}
