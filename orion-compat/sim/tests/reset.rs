//! The core's reset state machine ([`orion_nvme::recovery::reset`]) and its event poll
//! ([`orion_nvme::events`]) against the simulated controller.
//!
//! The platform's block side here is [`SimIo`]: I/O queues built by the core
//! ([`orion_nvme::io::IoQueue`]) on the model, a list of requests waiting for dispatch (as
//! blk-mq's requeue list) and the bounded wait of a hardware queue remap, driven by the sim's
//! virtual clock. The sequence under test (quiesce, disable, take what is in flight, bring
//! back, resume, remap, give up) is the core's own, the one the kernel module runs.

mod common;

use common::{up, Rig, SimPlatform};
use orion_compat::dma::{CoherentMem, Dma};
use orion_compat::time::{Clock, Duration};
use orion_nvme::command::{CidSlot, IoOp, IoRequest, Segment};
use orion_nvme::controller::{Controller, CtrlError, Disabled, Enabled};
use orion_nvme::events::{self, Event, Poll, ResetReason};
use orion_nvme::io::IoQueue;
use orion_nvme::recovery::reset::{
    Interruptions, NoController, Outcome, Remapped, ResetIo, ResetNote, Slots,
};
use orion_nvme::recovery::{after_reset, BringBackStep, Interrupted, MAX_RETRIES};
use orion_nvme::spec::status::Status;
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::{AsyncEvent, CmdMatch, NvmeBuilder, SimNvme};
use orion_sim::sync::SimMutex;
use orion_sim::VirtualClock;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering::SeqCst};
use std::sync::Mutex;

type Ctrl<S> = Controller<SimPlatform, S>;
type Queue = IoQueue<SimCoherent, Vec<CidSlot>, Vec<SimCoherent>>;
type Live = SimMutex<Option<Ctrl<Enabled>>>;
type Dead = SimMutex<Option<Ctrl<Disabled>>>;

const DEPTH: u32 = 16;
/// The platform's I/O timeout: the bound of a remap's wait.
const IO_TIMEOUT: Duration = Duration::from_millis(30_000);

/// A block request: a 4 KiB read of `lba`, and the resets it went through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Req {
    lba: u64,
    retries: u8,
}

/// What the queues keep across a reset.
struct Kept {
    slots: Vec<CidSlot>,
    lists: Vec<SimCoherent>,
    depth: u32,
}

/// One hardware queue: the core's I/O queue (none while the controller is down or the queue
/// is out of service) and the request on each tag.
struct Hq {
    qid: u16,
    q: Option<Queue>,
    parked: Option<Kept>,
    rqs: Vec<Option<Req>>,
}

/// The block side on the simulator.
struct SimIo {
    nvme: SimNvme,
    clock: VirtualClock,
    page: u64,
    buf: SimCoherent,
    queues: Vec<Mutex<Hq>>,
    /// Queues in service (a prefix of `queues`).
    live: AtomicU16,
    /// The platform's hardware queues: follows `live` at a remap.
    hw: AtomicU16,
    quiesced: AtomicBool,
    dead: AtomicBool,
    /// Requests waiting for dispatch (quiesced, requeued, or no queue free).
    waiting: Mutex<Vec<Req>>,
    done: Mutex<Vec<(Req, Status)>>,
    failed: Mutex<Vec<Req>>,
    notes: Mutex<Vec<ResetNote>>,
}

impl SimIo {
    /// Creates `n` I/O queues on `c` (after Number of Queues granted them).
    fn probe(r: &Rig, c: &mut Ctrl<Enabled>, n: u16) -> Self {
        let granted = c.set_queue_count(n).unwrap();
        assert_eq!(granted, n, "the test asks for what the model grants");
        let page = c.page_size();
        let mut queues = Vec::new();
        for qid in 1..=n {
            let qp = c
                .create_io_queue(
                    qid,
                    DEPTH,
                    Some(qid),
                    vec![CidSlot::default(); DEPTH as usize],
                )
                .unwrap();
            let lists = vec![r
                .sim
                .dma
                .alloc_coherent((DEPTH as usize - 1) * page as usize, page as usize)
                .unwrap()];
            let q = IoQueue::new(qp, lists, 1, page).map_err(|_| ()).unwrap();
            queues.push(Mutex::new(Hq {
                qid,
                q: Some(q),
                parked: None,
                rqs: vec![None; DEPTH as usize - 1],
            }));
        }
        Self {
            nvme: r.nvme.clone(),
            clock: r.sim.clock.clone(),
            page,
            buf: r.sim.dma.alloc_coherent(4096, 4096).unwrap(),
            queues,
            live: AtomicU16::new(n),
            hw: AtomicU16::new(n),
            quiesced: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            waiting: Mutex::new(Vec::new()),
            done: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
        }
    }

    /// The block layer hands over a request: dispatched at once unless dispatch is stopped.
    fn submit(&self, lba: u64) {
        self.dispatch(Req { lba, retries: 0 });
    }

    fn dispatch(&self, req: Req) {
        if self.dead.load(SeqCst) {
            self.failed.lock().unwrap().push(req);
            return;
        }
        if self.quiesced.load(SeqCst) {
            self.waiting.lock().unwrap().push(req);
            return;
        }
        let live = u64::from(self.live.load(SeqCst).max(1));
        // CAST: below the queue count, a u16.
        let i = (req.lba % live) as usize;
        let mut hq = self.queues[i].lock().unwrap();
        let Hq { q, rqs, .. } = &mut *hq;
        let (Some(q), Some(tag)) = (q.as_mut(), rqs.iter().position(Option::is_none)) else {
            drop(hq);
            self.waiting.lock().unwrap().push(req);
            return;
        };
        let segs = [Segment {
            addr: self.buf.bus_addr().as_u64(),
            len: 4096,
        }];
        let io = IoRequest {
            op: IoOp::Read,
            nsid: 1,
            lba: req.lba,
            blocks: 8,
            fua: false,
            segs: &segs,
        };
        // CAST: below the depth.
        q.submit(tag as u16, &io).unwrap();
        q.ring(&self.nvme, None).unwrap();
        rqs[tag] = Some(req);
    }

    /// The interrupt handlers: reaps every queue in service.
    fn reap(&self) {
        for hq in &self.queues {
            let mut hq = hq.lock().unwrap();
            let Hq { q, rqs, .. } = &mut *hq;
            let Some(q) = q.as_mut() else { continue };
            q.reap(
                &self.nvme,
                None,
                64,
                |tag, _, status, _| {
                    if let Some(r) = rqs[usize::from(tag)].take() {
                        self.done.lock().unwrap().push((r, status));
                    }
                },
                |b| panic!("bogus completion {b:?}"),
            )
            .unwrap();
        }
    }

    fn in_flight(&self) -> usize {
        self.queues
            .iter()
            .map(|hq| hq.lock().unwrap().rqs.iter().flatten().count())
            .sum()
    }

    fn done_ok(&self) -> usize {
        let done = self.done.lock().unwrap();
        done.iter().filter(|(_, s)| s.is_success()).count()
    }

    fn notes(&self) -> Vec<ResetNote> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }
}

impl ResetIo<SimPlatform> for SimIo {
    type Kept = Vec<Option<Kept>>;

    fn quiesce(&self) {
        self.quiesced.store(true, SeqCst);
        self.reap();
    }

    fn mask(&self, _ctrl: &Ctrl<Enabled>) {}

    fn take(&self) -> (Self::Kept, Interruptions) {
        let mut n = Interruptions::default();
        let mut kept = Vec::new();
        for hq in &self.queues {
            let mut hq = hq.lock().unwrap();
            let Hq { q, parked, rqs, .. } = &mut *hq;
            for (tag, slot) in rqs.iter_mut().enumerate() {
                let Some(mut r) = slot.take() else { continue };
                if let Some(q) = q.as_mut() {
                    // CAST: below the depth.
                    assert!(q.cancel(tag as u16), "in flight on the queue too");
                }
                match after_reset(r.retries, false) {
                    Interrupted::Retry => {
                        r.retries += 1;
                        n.retried += 1;
                        self.waiting.lock().unwrap().push(r);
                    }
                    Interrupted::Fail => {
                        n.failed += 1;
                        self.failed.lock().unwrap().push(r);
                    }
                }
            }
            let k = q
                .take()
                .map(|q| {
                    let (qp, lists) = q.into_parts();
                    let depth = qp.depth();
                    let (_sq, _cq, slots) = qp.into_parts();
                    Kept {
                        slots,
                        lists,
                        depth,
                    }
                })
                .or(parked.take());
            kept.push(k);
        }
        (kept, n)
    }

    fn queue_count(&self) -> u16 {
        // CAST: at most the u16 probe asked for.
        self.queues.len() as u16
    }

    fn live_queues(&self) -> u16 {
        self.live.load(SeqCst)
    }

    fn restore(
        &self,
        ctrl: &mut Ctrl<Enabled>,
        kept: Self::Kept,
        granted: u16,
    ) -> Result<(), CtrlError> {
        let n = usize::from(granted).min(self.queues.len());
        for (i, (hq, k)) in self.queues.iter().zip(kept).enumerate() {
            let k = k.ok_or(CtrlError::Invalid("queue state lost"))?;
            let mut hq = hq.lock().unwrap();
            if i >= n {
                hq.parked = Some(k);
                continue;
            }
            let qp = ctrl.create_io_queue(hq.qid, k.depth, Some(hq.qid), k.slots)?;
            let q = IoQueue::new(qp, k.lists, 1, self.page)
                .map_err(|_| CtrlError::Invalid("list memory"))?;
            hq.q = Some(q);
        }
        // CAST: at most the queue count, a u16.
        self.live.store(n as u16, SeqCst);
        Ok(())
    }

    fn resume(&self, dead: bool) {
        if dead {
            self.dead.store(true, SeqCst);
        }
        self.quiesced.store(false, SeqCst);
        let waiting = std::mem::take(&mut *self.waiting.lock().unwrap());
        for r in waiting {
            self.dispatch(r);
        }
    }

    fn remap(&self, stuck: &mut dyn FnMut(u32)) -> Option<Remapped> {
        let (from, to) = (self.hw.load(SeqCst), self.live.load(SeqCst));
        if from == to || to == 0 {
            return None;
        }
        // Waits for the requests in flight, at most one I/O timeout.
        let start = self.clock.now();
        loop {
            self.reap();
            if self.in_flight() == 0 {
                break;
            }
            if self.clock.now().saturating_duration_since(start) >= IO_TIMEOUT {
                // CAST: 30 000 ms.
                stuck(IO_TIMEOUT.as_millis() as u32);
                assert_eq!(self.in_flight(), 0, "the core ended every request");
                break;
            }
            self.clock.sleep(Duration::from_millis(100));
        }
        self.hw.store(to, SeqCst);
        Some(Remapped {
            from: u32::from(from),
            to: u32::from(to),
            resubmitted: 0,
            failed: 0,
        })
    }

    fn note(&self, note: ResetNote) {
        self.notes.lock().unwrap().push(note);
    }
}

/// A controller with `queues` I/O queues in service, its slots and its block side.
struct Driver {
    r: Rig,
    live: Live,
    dead: Dead,
    io: SimIo,
}

impl Driver {
    fn probe(b: NvmeBuilder, queues: u16) -> Self {
        let (r, mut c) = up(b);
        c.identify().unwrap();
        let io = SimIo::probe(&r, &mut c, queues);
        c.start_async_events().unwrap();
        Self {
            r,
            live: SimMutex::new(Some(c)),
            dead: SimMutex::new(None),
            io,
        }
    }

    fn slots(&self) -> Slots<'_, SimPlatform, Live, Dead> {
        Slots::new(&self.live, &self.dead)
    }

    fn is_live(&self) -> bool {
        orion_compat::Lock::lock(&self.live, |c| c.is_some())
    }

    fn is_dead(&self) -> bool {
        orion_compat::Lock::lock(&self.dead, |c| c.is_some())
    }

    fn poll(&self) -> Poll {
        orion_compat::Lock::lock(&self.live, |c| events::poll(c.as_mut().unwrap()).unwrap())
    }
}

#[test]
fn a_reset_resubmits_what_was_in_flight_and_comes_back() {
    let d = Driver::probe(NvmeBuilder::new(), 2);
    // Two reads whose completions the controller loses, two that complete.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 2);
    for lba in 0..4 {
        d.io.submit(lba * 8);
    }
    d.io.reap();
    assert_eq!((d.io.done_ok(), d.io.in_flight()), (2, 2));
    let o = d.slots().reset(&d.io).unwrap();
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
    // Resubmitted at resume, on the re-created queues, and done now.
    d.io.reap();
    assert_eq!((d.io.done_ok(), d.io.in_flight()), (4, 0));
    assert!(d
        .io
        .done
        .lock()
        .unwrap()
        .iter()
        .any(|(r, _)| r.retries == 1));
    assert_eq!(d.r.nvme.io_submission_queues(), [1, 2]);
    assert_eq!(d.r.nvme.outstanding_aers(), 1, "events armed again");
    assert!(d.io.notes().is_empty(), "nothing to report");
    assert!(d.is_live() && !d.is_dead());
}

#[test]
fn the_queue_count_shrinks_and_grows_across_resets() {
    let d = Driver::probe(NvmeBuilder::new().max_io_queues(4), 4);
    d.r.nvme.faults().grant_io_queues(Some(2));
    let o = d.slots().reset(&d.io).unwrap();
    assert!(!o.dead);
    assert_eq!(
        d.io.notes(),
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
    assert_eq!(d.io.live_queues(), 2);
    for lba in 0..8 {
        d.io.submit(lba);
    }
    d.io.reap();
    assert_eq!(d.io.done_ok(), 8, "served by the two queues left");
    // The controller grants all four again: the parked queues come back.
    d.r.nvme.faults().grant_io_queues(None);
    d.slots().reset(&d.io).unwrap();
    assert_eq!(
        d.io.notes(),
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
    for lba in 0..8 {
        d.io.submit(lba);
    }
    d.io.reap();
    assert_eq!(d.io.done_ok(), 16);
}

#[test]
fn a_remap_that_gets_stuck_gives_the_controller_up() {
    let d = Driver::probe(NvmeBuilder::new().max_io_queues(2), 2);
    // Fewer queues after the reset, and the controller loses every read from now on: the
    // requests resubmitted at resume never end, so the remap's wait runs out.
    d.r.nvme.faults().grant_io_queues(Some(1));
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1000);
    for lba in 0..3 {
        d.io.submit(lba);
    }
    assert_eq!(d.io.in_flight(), 3);
    let before = d.r.sim.clock.now();
    let o = d.slots().reset(&d.io).unwrap();
    assert!(o.dead, "{o:?}");
    assert!(d.r.sim.clock.now().saturating_duration_since(before) >= IO_TIMEOUT);
    let notes = d.io.notes();
    assert!(notes.contains(&ResetNote::Stuck(30_000)), "{notes:?}");
    assert!(!d.is_live() && d.is_dead());
    // Nothing waits and nothing is in flight: all three failed.
    assert_eq!(d.io.in_flight(), 0);
    assert!(d.io.waiting.lock().unwrap().is_empty());
    assert_eq!(d.io.failed.lock().unwrap().len(), 3);
    // Later requests fail at once, and there is nothing left to reset.
    d.io.submit(9);
    assert_eq!(d.io.failed.lock().unwrap().len(), 4);
    assert_eq!(d.slots().reset(&d.io).err(), Some(NoController));
}

#[test]
fn a_controller_that_does_not_come_back_is_dead() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.io.submit(0);
    d.r.nvme.faults().never_ready(true);
    let o = d.slots().reset(&d.io).unwrap();
    assert!(o.dead);
    assert!(matches!(
        d.io.notes().as_slice(),
        [ResetNote::StepFailed(
            BringBackStep::Enable,
            CtrlError::Timeout(_)
        )]
    ));
    assert!(!d.is_live() && d.is_dead());
    // The interrupted read was to be retried, but the disks are dead: it fails.
    assert_eq!(*d.io.failed.lock().unwrap(), [Req { lba: 0, retries: 1 }]);
    assert_eq!(d.slots().reset(&d.io).err(), Some(NoController));
}

#[test]
fn a_request_interrupted_by_too_many_resets_fails() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme
        .faults()
        .drop_completions(CmdMatch::io(0x02), u32::from(MAX_RETRIES) + 1);
    d.io.submit(0);
    for i in 0..MAX_RETRIES {
        let o = d.slots().reset(&d.io).unwrap();
        assert_eq!(o.interrupted.retried, 1, "reset {i}");
    }
    let o = d.slots().reset(&d.io).unwrap();
    assert_eq!(
        o.interrupted,
        Interruptions {
            retried: 0,
            failed: 1
        }
    );
    assert_eq!(
        *d.io.failed.lock().unwrap(),
        [Req {
            lba: 0,
            retries: MAX_RETRIES
        }]
    );
    assert!(d.is_live(), "the controller itself is fine");
}

#[test]
fn cfs_mid_io_is_found_by_the_poll_and_the_reset_recovers() {
    let d = Driver::probe(NvmeBuilder::new(), 2);
    assert_eq!(d.poll(), Poll::Quiet);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 2);
    for lba in 0..2 {
        d.io.submit(lba);
    }
    d.r.nvme.faults().fail_now();
    assert_eq!(d.poll(), Poll::Reset(ResetReason::Fatal));
    let o = d.slots().reset(&d.io).unwrap();
    assert_eq!((o.dead, o.interrupted.retried), (false, 2));
    d.io.reap();
    assert_eq!((d.io.done_ok(), d.io.in_flight()), (2, 0));
    assert_eq!(d.poll(), Poll::Quiet, "CFS cleared by the reset");
}

#[test]
fn a_function_reset_in_two_halves() {
    // The bus resets the function between the halves (its registers start over).
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.io.submit(0);
    let p = d.slots().park(&d.io).unwrap();
    assert!(!d.is_live(), "out of its slot between the halves");
    assert!(!d.r.nvme.is_ready());
    d.io.submit(8);
    assert_eq!(d.io.waiting.lock().unwrap().len(), 2, "dispatch stopped");
    let o = d.slots().unpark(&d.io, p);
    assert!(!o.dead);
    d.io.reap();
    assert_eq!(d.io.done_ok(), 2);
    // Given up instead (error recovery failed): everything fails.
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.io.submit(0);
    let p = d.slots().park(&d.io).unwrap();
    let n = d.slots().give_up(&d.io, p);
    assert_eq!(n.retried, 1);
    assert!(d.is_dead());
    assert_eq!(d.io.failed.lock().unwrap().len(), 1);
}

#[test]
fn power_off_shuts_down_and_fails_what_is_left() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.io.submit(0);
    assert_eq!(d.slots().power_off(Some(&d.io)), Some(Ok(())));
    assert!(!d.r.nvme.is_ready());
    assert!(!d.is_live() && d.is_dead());
    assert_eq!(d.io.failed.lock().unwrap().len(), 1);
    assert_eq!(d.slots().power_off(Some(&d.io)), None, "once");
}

#[test]
fn events_are_serviced_and_armed_again() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    assert_eq!(d.poll(), Poll::Quiet);
    d.r.nvme.raise_event(AsyncEvent::NAMESPACE_CHANGED);
    match d.poll() {
        Poll::Event(s) => {
            assert_eq!((s.event, s.failed), (Event::NamespacesChanged, None));
            assert!(s.event.needs_rescan());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.r.nvme.outstanding_aers(), 1);
    assert_eq!(d.poll(), Poll::Quiet, "reported once");
    // A temperature over the threshold: the warning comes from the SMART log read.
    d.r.nvme.set_temperature(400);
    match d.poll() {
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
    match d.poll() {
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
    assert_eq!(d.poll(), Poll::Reset(ResetReason::Gone));
    // The reset cannot bring it back: dead, bounded.
    let o = d.slots().reset(&d.io).unwrap();
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
    let o = d.slots().reset(&d.io).unwrap();
    assert!(!o.dead);
    d.io.submit(0);
    d.io.reap();
    assert_eq!(d.io.done_ok(), 1);

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
use orion_nvme::recovery::ladder::{self, Expired, LadderHost, LadderNote};

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

/// The request on `tag` of queue `hwq`, whose timer expired.
struct Timer<'a> {
    io: &'a SimIo,
    hwq: usize,
    tag: usize,
    req: Option<Req>,
    aborted: bool,
}

impl<'a> Timer<'a> {
    fn new(io: &'a SimIo, hwq: usize, tag: usize) -> Self {
        let req = io.queues[hwq].lock().unwrap().rqs[tag];
        assert!(req.is_some(), "tag {tag} in flight");
        Self {
            io,
            hwq,
            tag,
            req,
            aborted: false,
        }
    }
}

impl Expired for Timer<'_> {
    fn reap_and_find(&mut self, cancel: bool) -> Option<u16> {
        self.io.reap();
        let mut hq = self.io.queues[self.hwq].lock().unwrap();
        let Hq { q, rqs, .. } = &mut *hq;
        let q = q.as_mut()?;
        rqs[self.tag]?;
        // CAST: below the depth.
        let cid = q.cid_of(self.tag as u16);
        if cancel {
            // CAST: as above.
            q.cancel(self.tag as u16);
            rqs[self.tag] = None;
        }
        cid
    }
    fn aborted(&self) -> bool {
        self.aborted
    }
    fn set_aborted(&mut self) {
        self.aborted = true;
    }
    fn fail_timed_out(&mut self) {
        self.io
            .failed
            .lock()
            .unwrap()
            .push(self.req.take().unwrap());
    }
}

#[test]
fn ladder_a_missed_interrupt_is_found_by_the_reap() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.io.submit(0);
    // The completion is posted, but no interrupt handler ran.
    let h = Host::new(&d);
    let mut t = Timer::new(&d.io, 0, 0);
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::Done);
    assert_eq!(d.io.done_ok(), 1);
    assert!(h.notes.borrow().is_empty() && h.resets.get() == 0);
}

#[test]
fn ladder_a_held_command_is_aborted() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().hold_next(CmdMatch::io(0x02));
    d.io.submit(0);
    let h = Host::new(&d);
    let mut t = Timer::new(&d.io, 0, 0);
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::ResetTimer);
    assert!(matches!(
        h.notes.borrow().as_slice(),
        [LadderNote::Abort {
            result: Ok(true),
            ..
        }]
    ));
    // The next expiry finds it completed (Command Abort Requested): no reset.
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::Done);
    assert_eq!(h.resets.get(), 0);
    let done = d.io.done.lock().unwrap();
    assert!(
        matches!(done.as_slice(), [(_, s)] if !s.is_success()),
        "{done:?}"
    );
}

#[test]
fn ladder_a_lost_command_gets_one_abort_then_a_reset_that_resubmits_it() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    d.io.submit(0);
    let h = Host::new(&d);
    let mut t = Timer::new(&d.io, 0, 0);
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::ResetTimer);
    assert_eq!(h.resets.get(), 0, "the Abort was answered: one more period");
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::ResetTimer);
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
    let o = d.slots().reset(&d.io).unwrap();
    assert_eq!(o.interrupted.retried, 1);
    d.io.reap();
    assert_eq!(d.io.done_ok(), 1);
}

#[test]
fn ladder_an_abort_that_fails_resets_at_once() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    // The Abort's own completion is lost too: the admin queue is not working either.
    d.r.nvme.faults().drop_completions(CmdMatch::admin(0x08), 1);
    d.io.submit(0);
    let h = Host::new(&d);
    let mut t = Timer::new(&d.io, 0, 0);
    let before = d.r.sim.clock.now();
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::ResetTimer);
    assert!(
        d.r.sim.clock.now().saturating_duration_since(before)
            >= orion_nvme::recovery::ABORT_TIMEOUT
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
    d.io.submit(0);
    let mut h = Host::new(&d);
    h.recovering = true;
    let mut t = Timer::new(&d.io, 0, 0);
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::ResetTimer);
    assert!(
        h.notes.borrow().is_empty() && h.resets.get() == 0,
        "left to the reset"
    );
    h.recovering = false;
    h.stopping = true;
    assert_eq!(ladder::expired(&h, &mut t, 1), TimeoutAction::Done);
    assert_eq!(*h.notes.borrow(), [LadderNote::FailedInTeardown]);
    assert_eq!(d.io.failed.lock().unwrap().len(), 1);
    assert_eq!(d.io.in_flight(), 0);
}
