//! The core's reset state machine ([`orion_nvme::recovery::reset`]), its block side
//! ([`orion_nvme::block::BlockReset`] over the core's handler [`orion_nvme::block::BlockIo`]),
//! the timeout ladder over a block request ([`orion_nvme::block::BlockExpired`]) and the
//! event poll ([`orion_nvme::events`]) against the simulated controller.
//!
//! Requests go through the sim's real block layer ([`orion_sim::block::SimQueues`]: quiesce,
//! requeue, resume, the bounded wait of a hardware queue remap on the virtual clock, dead
//! disks) into the core's `queue_rq`, and come back through the core's `reap`. Every step of
//! a reset (quiesce, disable, take what is in flight, bring back, resume, remap, give up) is
//! core code: the same the kernel module runs. The rig is `block_rig/mod.rs`.

#[allow(
    dead_code,
    reason = "this test does not use every part of the shared rig"
)]
mod block_rig;
#[allow(
    dead_code,
    reason = "this test does not use every part of the shared rig"
)]
mod common;

use block_rig::{Driver, IO_TIMEOUT};
use orion_compat::block::{BlockQueues, BlockStatus, HwQueue, Tag};
use orion_compat::time::Clock;
use orion_nvme::controller::CtrlError;
use orion_nvme::events::{self, Event, Poll, ResetReason};
use orion_nvme::recovery::reset::{Interruptions, NoController, Outcome, Remapped, ResetNote};
use orion_nvme::recovery::{BringBackStep, MAX_RETRIES};
use orion_sim::block::{BlockEvent, SubmitError};
use orion_sim::nvme::{AsyncEvent, CmdMatch, NvmeBuilder};

fn poll(d: &Driver) -> Poll {
    orion_compat::Lock::lock(&d.live, |c| events::poll(c.as_mut().unwrap()).unwrap())
}

#[test]
fn a_reset_resubmits_what_was_in_flight_and_comes_back() {
    let d = Driver::probe(NvmeBuilder::new(), 2);
    // Two reads whose completions the controller loses, two that complete.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 2);
    for lba in 0..4 {
        d.submit(lba * 8).unwrap();
    }
    assert_eq!(d.reap(), 2);
    assert_eq!((d.done_ok(), d.in_flight()), (2, 2));
    let o = d.reset().unwrap();
    assert_eq!(
        o,
        Outcome {
            dead: false,
            interrupted: Interruptions {
                retried: 2,
                failed: 0
            }
        }
    );
    assert_eq!(d.requeues(), 2, "handed back to the block layer");
    // Resubmitted at resume, on the re-created queues, and done now.
    assert_eq!(d.reap(), 2);
    assert_eq!((d.done_ok(), d.in_flight(), d.waiting()), (4, 0, 0));
    assert_eq!(d.r.nvme.io_submission_queues(), [1, 2]);
    assert_eq!(d.r.nvme.outstanding_aers(), 1, "events armed again");
    assert!(d.notes().is_empty(), "nothing to report");
    assert!(d.is_live() && !d.is_dead());
    let events = d.r.sim.block.events();
    assert!(events.contains(&BlockEvent::Quiesced) && events.contains(&BlockEvent::Resumed));
}

#[test]
fn the_queue_count_shrinks_and_grows_across_resets() {
    let d = Driver::probe(NvmeBuilder::new().max_io_queues(4), 4);
    d.r.nvme.faults().grant_io_queues(Some(2));
    let o = d.reset().unwrap();
    assert!(!o.dead);
    assert_eq!(
        d.notes(),
        [
            ResetNote::Granted {
                granted: 2,
                asked: 4,
                in_service: 4
            },
            ResetNote::Remapped(Remapped {
                from: 4,
                to: 2,
                resubmitted: 0,
                failed: 0
            })
        ]
    );
    assert_eq!(d.r.nvme.io_submission_queues(), [1, 2]);
    assert_eq!(d.queues.handler().live_queues(), 2);
    assert_eq!(
        d.queues.hw_queues_in_service(),
        2,
        "the block layer followed"
    );
    for lba in 0..8 {
        d.submit(lba).unwrap();
    }
    d.reap();
    assert_eq!(d.done_ok(), 8, "served by the two queues left");
    // The controller grants all four again: the parked queues come back.
    d.r.nvme.faults().grant_io_queues(None);
    d.reset().unwrap();
    assert_eq!(
        d.notes(),
        [
            ResetNote::Granted {
                granted: 4,
                asked: 4,
                in_service: 2
            },
            ResetNote::Remapped(Remapped {
                from: 2,
                to: 4,
                resubmitted: 0,
                failed: 0
            })
        ]
    );
    assert_eq!(d.r.nvme.io_submission_queues(), [1, 2, 3, 4]);
    assert_eq!(d.queues.hw_queues_in_service(), 4);
    for lba in 0..8 {
        d.submit(lba).unwrap();
    }
    d.reap();
    assert_eq!(d.done_ok(), 16);
    let per_queue = |q| {
        d.r.sim
            .block
            .completions()
            .iter()
            .filter(|c| c.0 == HwQueue(q))
            .count()
    };
    assert_eq!([0, 1, 2, 3].map(per_queue), [6, 6, 2, 2]);
}

#[test]
fn requests_on_a_queue_that_went_away_are_sent_again_on_the_others() {
    let d = Driver::probe(NvmeBuilder::new().max_io_queues(2), 2);
    // One read on each queue is lost; after the reset only one queue is granted.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 2);
    d.submit(0).unwrap();
    d.submit(1).unwrap();
    d.r.nvme.faults().grant_io_queues(Some(1));
    let o = d.reset().unwrap();
    assert_eq!((o.dead, o.interrupted.retried), (false, 2));
    // The one requeued from queue 1 reached the core on it before the remap, was held
    // there (not on the device) and handed back to go out on queue 0.
    let notes = d.notes();
    assert_eq!(
        notes.last(),
        Some(&ResetNote::Remapped(Remapped {
            from: 2,
            to: 1,
            resubmitted: 1,
            failed: 0
        })),
        "{notes:?}"
    );
    assert_eq!(d.requeues(), 3);
    d.reap();
    assert_eq!((d.done_ok(), d.in_flight(), d.waiting()), (2, 0, 0));
    let c = d.r.sim.block.completions();
    assert!(c.iter().all(|c| c.0 == HwQueue(0)), "{c:?}");
    assert_eq!(d.r.nvme.io_submission_queues(), [1]);
}

#[test]
fn a_remap_that_gets_stuck_gives_the_controller_up() {
    let d = Driver::probe(NvmeBuilder::new().max_io_queues(2), 2);
    // Fewer queues after the reset, and the controller loses every read from now on: the
    // requests resubmitted at resume never end, so the remap's wait runs out.
    d.r.nvme.faults().grant_io_queues(Some(1));
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1000);
    for lba in 0..3 {
        d.submit(lba).unwrap();
    }
    assert_eq!(d.in_flight(), 3);
    let before = d.clock().now();
    let o = d.reset().unwrap();
    assert!(o.dead, "{o:?}");
    assert!(d.clock().now().saturating_duration_since(before) >= IO_TIMEOUT);
    let notes = d.notes();
    assert!(notes.contains(&ResetNote::Stuck(30_000)), "{notes:?}");
    assert!(!d.is_live() && d.is_dead());
    let events = d.r.sim.block.events();
    assert!(
        events.contains(&BlockEvent::HwQueuesChanged {
            from: 2,
            to: 1,
            stuck: true
        }),
        "{events:?}"
    );
    // Nothing waits and nothing is in flight: all three failed.
    assert_eq!((d.in_flight(), d.waiting()), (0, 0));
    assert_eq!(d.failed(), 3);
    // Later requests fail at once, and there is nothing left to reset.
    assert_eq!(d.submit(9), Err(SubmitError::DiskDead));
    assert_eq!(d.failed(), 4);
    assert_eq!(d.reset().err(), Some(NoController));
}

#[test]
fn a_controller_that_does_not_come_back_is_dead() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    d.r.nvme.faults().never_ready(true);
    let o = d.reset().unwrap();
    assert!(o.dead);
    assert!(matches!(
        d.notes().as_slice(),
        [ResetNote::StepFailed(
            BringBackStep::Enable,
            CtrlError::Timeout(_)
        )]
    ));
    assert!(!d.is_live() && d.is_dead());
    // The interrupted read was requeued to be retried, but the disks are dead: it fails.
    assert_eq!(d.requeues(), 1);
    let events = d.r.sim.block.events();
    let nsid = d.namespaces[0].nsid;
    assert!(
        events.contains(&BlockEvent::FailedDead(
            orion_compat::block::DiskId(nsid),
            HwQueue(0),
            Tag(0)
        )),
        "{events:?}"
    );
    assert_eq!((d.failed(), d.waiting()), (1, 0));
    assert_eq!(d.reset().err(), Some(NoController));
}

#[test]
fn a_request_interrupted_by_too_many_resets_fails() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme
        .faults()
        .drop_completions(CmdMatch::io(0x02), u32::from(MAX_RETRIES) + 1);
    d.submit(0).unwrap();
    for i in 0..MAX_RETRIES {
        let o = d.reset().unwrap();
        assert_eq!(o.interrupted.retried, 1, "reset {i}");
    }
    let o = d.reset().unwrap();
    assert_eq!(
        o.interrupted,
        Interruptions {
            retried: 0,
            failed: 1
        }
    );
    assert_eq!(d.requeues(), usize::from(MAX_RETRIES));
    assert_eq!(
        d.r.sim.block.completions(),
        [(HwQueue(0), Tag(0), BlockStatus::IoError)]
    );
    assert!(d.is_live(), "the controller itself is fine");
    // A new request on the same tag starts its count again.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    assert_eq!(d.reset().unwrap().interrupted.retried, 1);
    d.reap();
    assert_eq!(d.done_ok(), 1);
}

#[test]
fn cfs_mid_io_is_found_by_the_poll_and_the_reset_recovers() {
    let d = Driver::probe(NvmeBuilder::new(), 2);
    assert_eq!(poll(&d), Poll::Quiet);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 2);
    for lba in 0..2 {
        d.submit(lba).unwrap();
    }
    d.r.nvme.faults().fail_now();
    assert_eq!(poll(&d), Poll::Reset(ResetReason::Fatal));
    let o = d.reset().unwrap();
    assert_eq!((o.dead, o.interrupted.retried), (false, 2));
    d.reap();
    assert_eq!((d.done_ok(), d.in_flight()), (2, 0));
    assert_eq!(poll(&d), Poll::Quiet, "CFS cleared by the reset");
}

#[test]
fn a_function_reset_in_two_halves() {
    // The bus resets the function between the halves (its registers start over).
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    let p = d.park().unwrap();
    assert!(!d.is_live(), "out of its slot between the halves");
    assert!(!d.r.nvme.is_ready());
    assert_eq!(d.submit(8), Err(SubmitError::Waiting));
    assert_eq!(d.waiting(), 2, "dispatch stopped");
    let o = d.unpark(p);
    assert!(!o.dead);
    d.reap();
    assert_eq!(d.done_ok(), 2);
    // Given up instead (error recovery failed): everything fails.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    let p = d.park().unwrap();
    let n = d.give_up(p);
    assert_eq!(n.retried, 1);
    assert!(d.is_dead());
    assert_eq!((d.failed(), d.waiting(), d.in_flight()), (1, 0, 0));
}

#[test]
fn power_off_shuts_down_and_fails_what_is_left() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    assert_eq!(d.power_off(), Some(Ok(())));
    assert!(!d.r.nvme.is_ready());
    assert!(!d.is_live() && d.is_dead());
    assert_eq!((d.failed(), d.waiting(), d.in_flight()), (1, 0, 0));
    assert_eq!(d.power_off(), None, "once");
}

#[test]
fn events_are_serviced_and_armed_again() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    assert_eq!(poll(&d), Poll::Quiet);
    d.r.nvme.raise_event(AsyncEvent::NAMESPACE_CHANGED);
    match poll(&d) {
        Poll::Event(s) => {
            assert_eq!((s.event, s.failed), (Event::NamespacesChanged, None));
            assert!(s.event.needs_rescan());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.r.nvme.outstanding_aers(), 1);
    assert_eq!(poll(&d), Poll::Quiet, "reported once");
    // A temperature over the threshold: the warning comes from the SMART log read.
    d.r.nvme.set_temperature(400);
    match poll(&d) {
        Poll::Event(s) => match s.event {
            Event::Smart { warning, .. } => {
                assert!(warning.temperature() && !warning.spare());
                assert!(!s.event.needs_rescan());
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(d.r.nvme.outstanding_aers(), 1);
}

#[test]
fn an_event_whose_log_cannot_be_read_is_still_armed_again() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.raise_event(AsyncEvent::NAMESPACE_CHANGED);
    // The Get Log Page that would clear it is lost.
    d.r.nvme.faults().drop_completions(CmdMatch::admin(0x02), 1);
    match poll(&d) {
        Poll::Event(s) => {
            assert_eq!(s.event, Event::NamespacesChanged);
            assert!(matches!(s.failed, Some(CtrlError::Timeout(_))), "{s:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.r.nvme.outstanding_aers(), 1);
}

#[test]
fn a_vanished_device_is_found_by_the_poll() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().device_gone();
    assert_eq!(poll(&d), Poll::Reset(ResetReason::Gone));
    // The reset cannot bring it back: dead, bounded.
    let o = d.reset().unwrap();
    assert!(o.dead);
    assert!(d.is_dead());
}

#[test]
fn a_subsystem_reset_is_followed_by_a_controller_reset() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    let csts = orion_compat::Lock::lock(&d.live, |c| {
        let c = c.as_ref().unwrap();
        c.subsystem_reset().unwrap();
        c.raw_status()
    });
    // The subsystem reset took place: CSTS.NSSRO says so.
    assert!(orion_nvme::spec::regs::Csts(csts).nssro(), "{csts:#x}");
    let o = d.reset().unwrap();
    assert!(!o.dead);
    d.submit(0).unwrap();
    d.reap();
    assert_eq!(d.done_ok(), 1);

    let d = Driver::probe(NvmeBuilder::new().nssrs(false), 1);
    let r = orion_compat::Lock::lock(&d.live, |c| c.as_ref().unwrap().subsystem_reset());
    assert!(matches!(r, Err(CtrlError::Unsupported(_))), "{r:?}");
    let csts = orion_compat::Lock::lock(&d.live, |c| c.as_ref().unwrap().raw_status());
    assert!(
        !orion_nvme::spec::regs::Csts(csts).nssro(),
        "nothing was written"
    );
}

// ---- the timeout ladder ------------------------------------------------------------------

use orion_compat::block::TimeoutAction;
use orion_nvme::block::BlockExpired;
use orion_nvme::recovery::ladder::{self, LadderHost, LadderNote};

/// The controller's side of the ladder on the sim: Abort through the live controller, a
/// reset recorded (the test runs it).
struct Host<'a> {
    d: &'a Driver,
    stopping: bool,
    recovering: bool,
    resets: std::cell::Cell<u32>,
    notes: std::cell::RefCell<Vec<LadderNote>>,
}

impl<'a> Host<'a> {
    fn new(d: &'a Driver) -> Self {
        Self {
            d,
            stopping: false,
            recovering: false,
            resets: std::cell::Cell::new(0),
            notes: std::cell::RefCell::new(Vec::new()),
        }
    }
}

impl LadderHost for Host<'_> {
    fn stopping(&self) -> bool {
        self.stopping
    }
    fn recovering(&self) -> bool {
        self.recovering
    }
    fn can_abort(&self) -> bool {
        self.d.is_live()
    }
    fn abort(&self, sqid: u16, cid: u16) -> Result<bool, CtrlError> {
        orion_compat::Lock::lock(&self.d.live, |c| {
            orion_nvme::recovery::abort(c.as_mut().ok_or(CtrlError::Gone)?, sqid, cid)
        })
    }
    fn schedule_reset(&self) {
        self.resets.set(self.resets.get() + 1);
    }
    fn note(&self, note: LadderNote) {
        self.notes.borrow_mut().push(note);
    }
}

/// The ladder for the request on tag 0 of hardware queue 0, as the platform's timeout path
/// runs it.
fn expire(h: &Host<'_>, t: &mut BlockExpired<'_, block_rig::Queues>) -> TimeoutAction {
    let sqid = h.d.queues.handler().sqid(HwQueue(0)).unwrap();
    assert_eq!(sqid, 1);
    ladder::expired(h, t, sqid)
}

#[test]
fn ladder_a_missed_interrupt_is_found_by_the_reap() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.submit(0).unwrap();
    // The completion is posted, but no interrupt handler ran.
    let h = Host::new(&d);
    let mut t = BlockExpired::new(&d.queues, HwQueue(0), Tag(0));
    assert_eq!(expire(&h, &mut t), TimeoutAction::Done);
    assert_eq!(d.done_ok(), 1);
    assert!(h.notes.borrow().is_empty() && h.resets.get() == 0);
}

#[test]
fn ladder_a_held_command_is_aborted() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().hold_next(CmdMatch::io(0x02));
    d.submit(0).unwrap();
    let h = Host::new(&d);
    let mut t = BlockExpired::new(&d.queues, HwQueue(0), Tag(0));
    assert_eq!(expire(&h, &mut t), TimeoutAction::ResetTimer);
    assert!(matches!(
        h.notes.borrow().as_slice(),
        [LadderNote::Abort {
            result: Ok(true),
            ..
        }]
    ));
    // The next expiry finds it completed (Command Abort Requested): no reset.
    assert_eq!(expire(&h, &mut t), TimeoutAction::Done);
    assert_eq!(h.resets.get(), 0);
    let done = d.r.sim.block.completions();
    assert!(
        matches!(done.as_slice(), [(HwQueue(0), Tag(0), s)] if *s != BlockStatus::Ok),
        "{done:?}"
    );
}

#[test]
fn ladder_a_lost_command_gets_one_abort_then_a_reset_that_resubmits_it() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    let h = Host::new(&d);
    let mut t = BlockExpired::new(&d.queues, HwQueue(0), Tag(0));
    assert_eq!(expire(&h, &mut t), TimeoutAction::ResetTimer);
    assert_eq!(h.resets.get(), 0, "the Abort was answered: one more period");
    assert_eq!(expire(&h, &mut t), TimeoutAction::ResetTimer);
    assert_eq!(h.resets.get(), 1);
    let notes = h.notes.borrow().clone();
    assert!(
        matches!(
            notes.as_slice(),
            [
                LadderNote::Abort {
                    result: Ok(false),
                    ..
                },
                LadderNote::Reset { .. }
            ]
        ),
        "{notes:?}"
    );
    // The reset the ladder asked for resubmits the request, which completes.
    let o = d.reset().unwrap();
    assert_eq!(o.interrupted.retried, 1);
    d.reap();
    assert_eq!(d.done_ok(), 1);
    // Resubmitted, it is a fresh submission: its Abort is forgotten.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    let h = Host::new(&d);
    let mut t = BlockExpired::new(&d.queues, HwQueue(0), Tag(0));
    assert_eq!(expire(&h, &mut t), TimeoutAction::ResetTimer);
    assert_eq!(h.resets.get(), 0, "an Abort first again");
}

#[test]
fn ladder_an_abort_that_fails_resets_at_once() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    // The Abort's own completion is lost too: the admin queue is not working either.
    d.r.nvme.faults().drop_completions(CmdMatch::admin(0x08), 1);
    d.submit(0).unwrap();
    let h = Host::new(&d);
    let mut t = BlockExpired::new(&d.queues, HwQueue(0), Tag(0));
    let before = d.clock().now();
    assert_eq!(expire(&h, &mut t), TimeoutAction::ResetTimer);
    assert!(
        d.clock().now().saturating_duration_since(before) >= orion_nvme::recovery::ABORT_TIMEOUT
    );
    assert_eq!(h.resets.get(), 1, "no second period");
    assert!(matches!(
        h.notes.borrow().as_slice(),
        [LadderNote::Abort {
            result: Err(CtrlError::Timeout(_)),
            ..
        }]
    ));
}

#[test]
fn ladder_waits_for_a_reset_and_fails_in_teardown() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    let mut h = Host::new(&d);
    h.recovering = true;
    let mut t = BlockExpired::new(&d.queues, HwQueue(0), Tag(0));
    assert_eq!(expire(&h, &mut t), TimeoutAction::ResetTimer);
    assert!(
        h.notes.borrow().is_empty() && h.resets.get() == 0,
        "left to the reset"
    );
    h.recovering = false;
    h.stopping = true;
    assert_eq!(expire(&h, &mut t), TimeoutAction::Done);
    assert_eq!(*h.notes.borrow(), [LadderNote::FailedInTeardown]);
    assert_eq!(
        d.r.sim.block.completions(),
        [(HwQueue(0), Tag(0), BlockStatus::Timeout)]
    );
    assert_eq!((d.failed(), d.in_flight()), (1, 0));
}

#[test]
fn the_handlers_timeout_leaves_the_request_to_the_ladder() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.submit(0).unwrap();
    // blk-mq's own timer: the handler cannot end the request, so it re-arms the timer.
    assert_eq!(
        d.queues.expire(HwQueue(0), Tag(0)),
        Some(TimeoutAction::ResetTimer)
    );
    assert_eq!(d.queues.handler().counts().timeouts, 1);
    assert_eq!(d.in_flight(), 1, "still in flight");
}
