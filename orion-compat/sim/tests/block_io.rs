//! The core's block I/O path ([`orion_nvme::block::BlockIo`]'s `queue_rq` and `commit_rqs`,
//! [`orion_nvme::block::reap`]) through the sim's block layer against the simulated
//! controller: an fio-like mix of reads, writes, flushes, write-zeroes and discards whose
//! data is checked against the model's media, completions that end every request exactly
//! once, batching of doorbells, refusals, and what the device must not be trusted with
//! (bogus command identifiers). The rig is `block_rig/mod.rs`.

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

use block_rig::{Driver, Store};
use orion_compat::block::{
    BlockHandler, BlockOp, BlockQueues, BlockRequest, BlockStatus, DiskId, HwQueue, Tag,
};
use orion_compat::dma::{CoherentMem, Dma, Segment};
use orion_nvme::block::{HwState, TagState};
use orion_nvme::command::CidSlot;
use orion_nvme::io::IoQueue;
use orion_nvme::queue::QueuePair;
use orion_nvme::spec::status::generic;
use orion_sim::block::{BlockEvent, SubmitError};
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::{CmdMatch, NvmeBuilder, Status as SimStatus};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::SeqCst;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A request the test submitted and waits for.
struct Pending {
    op: BlockOp,
    lba: u64,
    blocks: u32,
    /// For reads: what the media held when it was submitted.
    expect: Vec<u8>,
}

const BS: usize = 512;
/// The LBAs the mix touches: small, so requests overlap across rounds.
const SPAN: u64 = 2048;
const MAX_BLOCKS: u64 = 16;
/// Bytes per tag buffer: four pages (the data starts 512 bytes before a page boundary).
const BUF: usize = 4 * 4096;

/// Segments of `len` bytes in `buf`: 512 bytes ending on a page boundary, then the rest from
/// that boundary (so the command needs a PRP list once it touches three pages).
fn segments(buf: &SimCoherent, len: u32) -> (Vec<Segment>, usize) {
    let start = 4096 - BS;
    let first = Segment {
        addr: Driver::addr(buf, start as u64),
        len: BS as u32,
    };
    let mut v = vec![first];
    if len > BS as u32 {
        v.push(Segment {
            addr: Driver::addr(buf, 4096),
            len: len - BS as u32,
        });
    }
    (v, start)
}

/// The media as the test expects it: written blocks; anything else reads as zeroes.
fn media(shadow: &HashMap<u64, Vec<u8>>, lba: u64) -> Vec<u8> {
    shadow.get(&lba).cloned().unwrap_or_else(|| vec![0; BS])
}

#[test]
fn an_fio_like_mix_completes_every_request_exactly_once_with_its_data() {
    fio_mix(false);
}

#[test]
fn the_mix_on_shadow_doorbells_across_resets() {
    fio_mix(true);
}

/// 300 rounds of a random batch on two queues, each reaped before the next; with `dbbuf`,
/// on shadow doorbells and with a controller reset every 100 rounds (`dbbuf`).
fn fio_mix(dbbuf: bool) {
    let d = Driver::probe_with(NvmeBuilder::new().max_io_queues(2), 2, 64, dbbuf);
    assert_eq!(d.r.nvme.doorbell_buffer().is_some(), dbbuf);
    assert_eq!(d.geometry.logical_block_size as usize, BS);
    assert!(d.geometry.discard.is_some() && d.geometry.max_write_zeroes_blocks >= 16);
    let nsid = d.namespaces[0].nsid;
    let depth = d.queues.config().depth;
    // One data buffer per hardware queue and tag.
    let bufs: Vec<Vec<SimCoherent>> = (0..2)
        .map(|_| {
            (0..depth)
                .map(|_| d.r.sim.dma.alloc_coherent(BUF, 4096).unwrap())
                .collect()
        })
        .collect();
    let setup = d.r.sim.block.take_events();
    assert!(matches!(
        setup.as_slice(),
        [BlockEvent::QueuesCreated(_), BlockEvent::DiskAdded(..)]
    ));
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut shadow: HashMap<u64, Vec<u8>> = HashMap::new();
    let (mut submitted, mut ended, mut reads_checked) = (0usize, 0usize, 0usize);
    let mut by_op: BTreeMap<&'static str, usize> = BTreeMap::new();
    for round in 0..300 {
        if dbbuf && round % 100 == 99 {
            let o = d.reset().unwrap();
            assert_eq!((o.dead, o.interrupted), (false, Default::default()));
            assert!(d.r.nvme.doorbell_buffer().is_some(), "handed over again");
            let events = d.r.sim.block.take_events();
            assert_eq!(events, [BlockEvent::Quiesced, BlockEvent::Resumed]);
        }
        let mut pending: HashMap<(HwQueue, Tag), Pending> = HashMap::new();
        let mut next_tag = [0u16; 2];
        let batch = 1 + rng.below(24);
        for _ in 0..batch {
            let hwq = rng.below(2) as usize;
            let blocks = 1 + rng.below(MAX_BLOCKS) as u32;
            let lba = rng.below(SPAN - MAX_BLOCKS);
            // Requests in flight together never overlap, so each sees the media as it was
            // when submitted.
            let overlaps = pending.values().any(|p| {
                p.op != BlockOp::Flush
                    && lba < p.lba + u64::from(p.blocks)
                    && p.lba < lba + u64::from(blocks)
            });
            if overlaps {
                continue;
            }
            let op = match rng.below(20) {
                0..=8 => BlockOp::Write,
                9..=16 => BlockOp::Read,
                17 => BlockOp::Flush,
                18 => BlockOp::WriteZeroes,
                _ => BlockOp::Discard,
            };
            let tag = Tag(next_tag[hwq]);
            next_tag[hwq] += 1;
            let buf = &bufs[hwq][usize::from(tag.0)];
            let len = blocks * BS as u32;
            let (segs, start) = segments(buf, len);
            let mut expect = Vec::new();
            match op {
                BlockOp::Write => {
                    let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                    buf.write_bytes(start, &data).unwrap();
                    for (i, b) in data.chunks(BS).enumerate() {
                        shadow.insert(lba + i as u64, b.to_vec());
                    }
                }
                BlockOp::Read => {
                    buf.zero(0, BUF).unwrap();
                    for i in 0..u64::from(blocks) {
                        expect.extend(media(&shadow, lba + i));
                    }
                }
                BlockOp::WriteZeroes | BlockOp::Discard => {
                    for i in 0..u64::from(blocks) {
                        shadow.remove(&(lba + i));
                    }
                }
                BlockOp::Flush => {}
            }
            let (lba, blocks) = if op == BlockOp::Flush {
                (0, 0)
            } else {
                (lba, blocks)
            };
            let rq = BlockRequest {
                // CAST: 0 or 1.
                hwq: HwQueue(hwq as u16),
                tag,
                disk: DiskId(nsid),
                op,
                lba,
                blocks,
                fua: op == BlockOp::Write && rng.below(4) == 0,
                segments: if op.has_data() { &segs } else { &[] },
            };
            // Mostly batched: `last` only now and then, the rest rung by commit_rqs.
            let last = rng.below(4) == 0;
            d.queues.submit(&rq, last).unwrap();
            submitted += 1;
            *by_op.entry(format!("{op:?}").leak()).or_default() += 1;
            pending.insert(
                (rq.hwq, tag),
                Pending {
                    op,
                    lba,
                    blocks,
                    expect,
                },
            );
        }
        for q in 0..2 {
            d.queues.commit(HwQueue(q));
        }
        let reaped = d.reap();
        assert_eq!(reaped as usize, pending.len(), "round {round}");
        for e in d.r.sim.block.take_events() {
            let BlockEvent::Completed(hwq, tag, status) = e else {
                panic!("round {round}: unexpected {e:?}");
            };
            assert_eq!(status, BlockStatus::Ok, "round {round}");
            let p = pending
                .remove(&(hwq, tag))
                .unwrap_or_else(|| panic!("round {round}: {hwq:?} {tag:?} ended twice"));
            ended += 1;
            if p.op == BlockOp::Read {
                let buf = &bufs[usize::from(hwq.0)][usize::from(tag.0)];
                let mut got = vec![0; p.expect.len()];
                buf.read_bytes(4096 - BS, &mut got).unwrap();
                assert!(got == p.expect, "round {round}: read of {} differs", p.lba);
                reads_checked += 1;
            }
        }
        assert!(pending.is_empty(), "round {round}: not ended");
        assert_eq!(d.in_flight(), 0);
    }
    assert_eq!(ended, submitted);
    assert!(
        submitted > 2000 && reads_checked > 800,
        "{submitted} {reads_checked}"
    );
    assert_eq!(by_op.len(), 5, "every operation was issued: {by_op:?}");
    let c = d.r.nvme.counters();
    assert_eq!(
        (c.io(0x01) + c.io(0x02)) as usize,
        by_op["Write"] + by_op["Read"],
        "each command reached the device once"
    );
    // The media holds what the test wrote.
    for lba in 0..SPAN {
        assert!(
            d.r.nvme.read_block(nsid, lba).unwrap() == media(&shadow, lba),
            "lba {lba}"
        );
    }
    assert_eq!(d.queues.handler().counts().bogus, 0);
    assert_eq!(d.queues.handler().counts().refused, 0);
}

#[test]
fn a_full_queue_is_reaped_in_batches_and_rung_once_by_commit() {
    let d = Driver::probe_with(NvmeBuilder::new(), 1, 64, false);
    let tags = d.queues.config().depth;
    assert_eq!(tags, 63);
    let nsid = d.namespaces[0].nsid;
    let doorbells = || d.r.nvme.counters().sq_doorbells(1);
    let before = doorbells();
    for t in 0..tags {
        let rq = BlockRequest {
            hwq: HwQueue(0),
            tag: Tag(t),
            disk: DiskId(nsid),
            op: BlockOp::Read,
            lba: u64::from(t) * 8,
            blocks: 8,
            fua: false,
            segments: &[Segment {
                addr: d.buf.bus_addr(),
                len: 4096,
            }],
        };
        d.queues.submit(&rq, false).unwrap();
    }
    assert_eq!(doorbells(), before, "no doorbell before commit_rqs");
    assert_eq!(d.r.nvme.counters().io(0x02), 0);
    d.queues.commit(HwQueue(0));
    assert_eq!(doorbells(), before + 1, "one doorbell for the batch");
    d.queues.commit(HwQueue(0));
    assert_eq!(doorbells(), before + 1, "nothing owed any more");
    // More than one reap batch is waiting on the completion queue.
    let r = orion_nvme::block::reap(&d.queues, HwQueue(0));
    assert_eq!((r.completed, r.bogus), (63, 0));
    assert_eq!(d.done_ok(), 63);
}

#[test]
fn bogus_completions_are_counted_and_end_nothing() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    // A completion with another command's identifier, then one nobody asked for, then a
    // duplicate.
    d.r.nvme.faults().wrong_cid_next(CmdMatch::io(0x02), 0x0abc);
    d.submit(0).unwrap();
    assert!(d.r.nvme.faults().stray_completion(1, 0x0def));
    let r = orion_nvme::block::reap(&d.queues, HwQueue(0));
    assert_eq!((r.completed, r.bogus), (0, 2));
    assert_eq!(
        d.in_flight(),
        1,
        "the request still waits for its own completion"
    );
    d.r.nvme.faults().duplicate_next(CmdMatch::io(0x02));
    d.submit(8).unwrap();
    let r = orion_nvme::block::reap(&d.queues, HwQueue(0));
    assert_eq!((r.completed, r.bogus), (1, 1));
    assert_eq!(d.queues.handler().counts().bogus, 3);
    assert_eq!(d.done_ok(), 1);
    // A reset ends the one whose completion was lost to the wrong identifier.
    assert_eq!(d.reset().unwrap().interrupted.retried, 1);
    d.reap();
    assert_eq!((d.done_ok(), d.in_flight()), (2, 0));
    // A queue the core does not have reaps nothing.
    assert_eq!(
        orion_nvme::block::reap(&d.queues, HwQueue(7)),
        Default::default()
    );
}

#[test]
fn nvme_errors_end_requests_with_the_mapped_status() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.r.nvme.faults().force_status(
        CmdMatch::io(0x02),
        SimStatus::new(0, generic::LBA_OUT_OF_RANGE),
    );
    d.submit(0).unwrap();
    d.reap();
    assert_eq!(
        d.r.sim.block.completions(),
        [(HwQueue(0), Tag(0), BlockStatus::NoSpace)]
    );
}

#[test]
fn requests_the_core_cannot_take_are_refused() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    let h = d.queues.handler();
    let nsid = d.namespaces[0].nsid;
    let seg = Segment {
        addr: d.buf.bus_addr(),
        len: 4096,
    };
    let read = BlockRequest {
        hwq: HwQueue(0),
        tag: Tag(0),
        disk: DiskId(nsid),
        op: BlockOp::Read,
        lba: 0,
        blocks: 8,
        fua: false,
        segments: std::slice::from_ref(&seg),
    };
    // What the platform promises not to send, straight to the handler.
    let no_queue = BlockRequest {
        hwq: HwQueue(3),
        ..read
    };
    assert_eq!(h.queue_rq(&no_queue, true), Err(BlockStatus::IoError));
    let no_tag = BlockRequest {
        tag: Tag(99),
        ..read
    };
    assert_eq!(h.queue_rq(&no_tag, true), Err(BlockStatus::IoError));
    let many = vec![seg; usize::from(orion_nvme::io::MAX_SEGMENTS) + 1];
    let too_many = BlockRequest {
        segments: &many,
        ..read
    };
    assert_eq!(h.queue_rq(&too_many, true), Err(BlockStatus::IoError));
    // NLB is 16 bits: the command cannot be built.
    let too_long = BlockRequest {
        op: BlockOp::WriteZeroes,
        blocks: 70_000,
        segments: &[],
        ..read
    };
    assert_eq!(h.queue_rq(&too_long, true), Err(BlockStatus::IoError));
    assert_eq!(h.counts().refused, 4);
    assert_eq!(h.in_flight(), 0);
    assert_eq!(
        d.r.nvme.counters().io(0x02),
        0,
        "nothing reached the device"
    );
    // Through the block layer (its checks do not cover NLB), a refusal ends the request.
    let (tag, r) = d.submit_on(HwQueue(0), too_long, true);
    assert_eq!(r, Err(SubmitError::Refused(BlockStatus::IoError)));
    assert!(d.r.sim.block.events().contains(&BlockEvent::Refused(
        HwQueue(0),
        tag,
        BlockStatus::IoError
    )));
    assert_eq!(h.counts().refused, 5);
    // After power-off the queue is gone while still counted in service.
    assert_eq!(d.power_off(), Some(Ok(())));
    assert_eq!(h.queue_rq(&read, true), Err(BlockStatus::IoError));
    assert_eq!(h.counts().refused, 6);
}

#[test]
fn a_doorbell_that_fails_is_counted() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    d.queues.handler().mmio().fail.store(true, SeqCst);
    d.submit(0).unwrap();
    assert_eq!(d.queues.handler().counts().ring_failed, 1);
    assert_eq!(d.r.nvme.counters().io(0x02), 0, "the device never saw it");
    d.queues.handler().mmio().fail.store(false, SeqCst);
    // The next doorbell announces both.
    d.submit(8).unwrap();
    d.reap();
    assert_eq!((d.done_ok(), d.in_flight()), (2, 0));
}

#[test]
fn a_queue_state_needs_a_tag_entry_per_tag() {
    let d = Driver::probe(NvmeBuilder::new(), 1);
    let (cap, page) = orion_compat::Lock::lock(&d.live, |c| {
        let c = c.as_ref().unwrap();
        (c.cap(), c.page_size())
    });
    let mem = |n| d.r.sim.dma.alloc_coherent(n, 4096).unwrap();
    let qp = QueuePair::new(
        9,
        16,
        cap,
        mem(16 * 64),
        mem(16 * 16),
        vec![CidSlot::default(); 16],
    )
    .unwrap();
    let q = IoQueue::new(qp, vec![mem(15 * 4096)], 1, page)
        .map_err(|_| ())
        .unwrap();
    let r = HwState::<Store>::new(q, Some(9), vec![TagState::default(); 14]);
    let Err((q, tags)) = r else {
        panic!("15 tags need 15 entries")
    };
    assert_eq!((q.tags(), tags.len()), (15, 14));
    assert!(HwState::<Store>::new(q, Some(9), vec![TagState::default(); 15]).is_ok());
}
