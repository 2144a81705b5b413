//! The core against the simulated controller (`orion-sim`): bring-up, I/O on every queue,
//! shutdown, controllers configured in ways QEMU's defaults never are, and injected faults.
//! The model was written from the spec independently of this crate.

mod common;

use common::{rig, up, Rig, SimPlatform};
use orion_compat::dma::{CoherentMem, Dma};
use orion_compat::pci::Pci;
use orion_compat::time::{Clock, Duration};
use orion_compat::{ErrorKind, Mmio};
use orion_nvme::command::{build_io, CidSlot, DataPointer, IoOp, IoRequest, ListPages, Segment};
use orion_nvme::controller::{
    Controller, CtrlError, Disabled, Enabled, NamespaceInfo, RegisterSnapshot, Settings, Wait,
};
use orion_nvme::queue::{QueueError, QueuePair, Reaped};
use orion_nvme::spec::regs::{Csts, Offset, Shutdown};
use orion_nvme::spec::status::{Sct, Status};
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::{CmdMatch, NvmeBuilder, Status as SimStatus};
use orion_sim::regfile::RegFile;
use orion_sim::{Sim, SimDma};

type Ctrl<S> = Controller<SimPlatform, S>;
type IoQueue = QueuePair<SimCoherent, Vec<CidSlot>>;

/// List pages for PRP lists / SGL segments, in simulated DMA memory.
struct Lists(Vec<SimCoherent>);

impl Lists {
    fn new(dma: &SimDma, n: usize, page: u64) -> Self {
        Self(
            (0..n)
                .map(|_| dma.alloc_coherent(page as usize, page as usize).unwrap())
                .collect(),
        )
    }
}

impl ListPages for Lists {
    fn pages(&self) -> usize {
        self.0.len()
    }
    fn bus_addr(&self, page: usize) -> u64 {
        self.0[page].bus_addr().as_u64()
    }
    fn write(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        self.0[page].write_bytes(offset, bytes).unwrap();
    }
}

/// A data buffer split into page-sized pieces scattered in bus space (as a real scatterlist
/// would be), with the first piece starting at `offset` into its page.
struct Buffer {
    pieces: Vec<SimCoherent>,
    segs: Vec<Segment>,
}

impl Buffer {
    fn new(dma: &SimDma, len: usize, offset: usize, page: usize) -> Self {
        let mut pieces = Vec::new();
        let mut segs = Vec::new();
        let mut left = len;
        let mut off = offset;
        while left > 0 {
            let m = dma.alloc_coherent(page, page).unwrap();
            let n = (page - off).min(left);
            segs.push(Segment {
                addr: m.bus_addr().as_u64() + off as u64,
                len: n as u32,
            });
            pieces.push(m);
            left -= n;
            off = 0;
        }
        Self { pieces, segs }
    }
    fn fill(&self, pattern: impl Fn(usize) -> u8) {
        let mut i = 0;
        for (m, s) in self.pieces.iter().zip(&self.segs) {
            let off = (s.addr - m.bus_addr().as_u64()) as usize;
            let data: Vec<u8> = (0..s.len as usize).map(|k| pattern(i + k)).collect();
            m.write_bytes(off, &data).unwrap();
            i += s.len as usize;
        }
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (m, s) in self.pieces.iter().zip(&self.segs) {
            let off = (s.addr - m.bus_addr().as_u64()) as usize;
            let mut b = vec![0; s.len as usize];
            m.read_bytes(off, &mut b).unwrap();
            out.extend(b);
        }
        out
    }
}

/// Submits one command on `q` and reaps until its completion; returns its status.
fn run(
    c: &Ctrl<Enabled>,
    q: &mut IoQueue,
    tag: u16,
    req: &IoRequest<'_>,
    dptr: DataPointer,
    lists: &mut Lists,
) -> Status {
    let sqe = build_io(req, c.page_size(), dptr, lists).unwrap();
    q.submit(tag, &sqe).unwrap();
    q.ring(c.mmio(), None).unwrap();
    let mut got = None;
    for _ in 0..10 {
        q.reap(c.mmio(), None, 64, |r| match r {
            Reaped::Done { tag: t, status, .. } if t == tag => got = Some(status),
            other => panic!("unexpected {other:?}"),
        })
        .unwrap();
        if let Some(s) = got {
            return s;
        }
    }
    panic!("no completion for tag {tag}");
}

/// A Flush of namespace 1: a command that moves no data.
fn flush_sqe(c: &Ctrl<Enabled>, lists: &mut Lists) -> orion_nvme::spec::sqe::Sqe {
    build_io(&FLUSH, c.page_size(), DataPointer::Prp, lists).unwrap()
}

/// A Flush of namespace 1 as a request.
const FLUSH: IoRequest<'static> = IoRequest {
    op: IoOp::Flush,
    nsid: 1,
    lba: 0,
    blocks: 0,
    fua: false,
    segs: &[],
};

/// A 4 KiB read (8 blocks of 512 B at LBA 0 of namespace 1) into `segs`.
fn read_4k(segs: &[Segment]) -> IoRequest<'_> {
    IoRequest {
        op: IoOp::Read,
        nsid: 1,
        lba: 0,
        blocks: 8,
        fua: false,
        segs,
    }
}

/// I/O queue 1 with `depth` entries on vector 1.
fn io_queue(c: &mut Ctrl<Enabled>, depth: u32) -> IoQueue {
    c.create_io_queue(1, depth, Some(1), vec![CidSlot::default(); depth as usize])
        .unwrap()
}

fn namespaces(c: &mut Ctrl<Enabled>) -> Vec<NamespaceInfo> {
    let mut v = Vec::new();
    c.for_each_namespace(|n| v.push(n), |id, why| panic!("ns {id} skipped: {why}"))
        .unwrap();
    v
}

/// Bring-up, Identify, queues, a write/read round trip on every queue and namespace through
/// PRPs and SGLs, then an orderly shutdown.
fn full_cycle(b: NvmeBuilder, queues: u16, depth: u32) {
    let (r, mut c) = up(b);
    let info = c.identify().unwrap().clone();
    let granted = c.set_queue_count(queues).unwrap();
    assert!(granted >= 1 && granted <= queues);
    let nss = namespaces(&mut c);
    assert!(!nss.is_empty());
    let depth = depth.min(c.cap().max_queue_entries());
    let page = c.page_size() as usize;
    let mut qs: Vec<IoQueue> = (1..=granted)
        .map(|qid| {
            c.create_io_queue(
                qid,
                depth,
                Some(qid),
                vec![CidSlot::default(); depth as usize],
            )
            .unwrap()
        })
        .collect();
    let mut lists = Lists::new(&r.sim.dma, 4, c.page_size());
    let max_xfer = info.max_transfer.unwrap_or(1 << 20).min(256 << 10) as usize;
    for (qi, q) in qs.iter_mut().enumerate() {
        for ns in &nss {
            let bs = ns.block_size as usize;
            for (k, dptr) in [DataPointer::Prp, DataPointer::Sgl].into_iter().enumerate() {
                if dptr == DataPointer::Sgl && !info.sgls {
                    continue;
                }
                let len = (max_xfer / bs).max(1) * bs;
                let lba = (qi as u64 * 7919 + k as u64 * 131) % (ns.blocks - (len / bs) as u64);
                let w = Buffer::new(&r.sim.dma, len, 4 * (qi + 1) % page, page);
                let seed = qi * 31 + ns.nsid as usize * 7 + k;
                w.fill(|i| (i * 13 + seed) as u8);
                let req = |op, segs| IoRequest {
                    op,
                    nsid: ns.nsid,
                    lba,
                    blocks: (len / bs) as u32,
                    fua: k == 1,
                    segs,
                };
                let st = run(&c, q, 0, &req(IoOp::Write, &w.segs), dptr, &mut lists);
                assert!(st.is_success(), "write q{} ns{}: {st:?}", q.qid(), ns.nsid);
                // The model's own view of the medium has exactly the bytes we wrote.
                let first = r.nvme.read_block(ns.nsid, lba).unwrap();
                assert_eq!(&first[..], &w.bytes()[..bs]);
                let rd = Buffer::new(&r.sim.dma, len, 0, page);
                let st = run(&c, q, 1, &req(IoOp::Read, &rd.segs), dptr, &mut lists);
                assert!(st.is_success(), "read: {st:?}");
                assert_eq!(rd.bytes(), w.bytes(), "q{} ns{} {dptr:?}", q.qid(), ns.nsid);
            }
        }
    }
    // Flush, write zeroes and discard read back as zeroes.
    let q = &mut qs[0];
    let ns = nss[0];
    let bs = ns.block_size as usize;
    let none: [Segment; 0] = [];
    let st = run(
        &c,
        q,
        1,
        &IoRequest {
            op: IoOp::Flush,
            nsid: ns.nsid,
            lba: 0,
            blocks: 0,
            fua: false,
            segs: &none,
        },
        DataPointer::Prp,
        &mut lists,
    );
    assert!(st.is_success());
    for op in [IoOp::WriteZeroes, IoOp::Discard] {
        let w = Buffer::new(&r.sim.dma, 2 * bs, 0, page);
        w.fill(|_| 0xa5);
        let wr = IoRequest {
            op: IoOp::Write,
            nsid: ns.nsid,
            lba: 10,
            blocks: 2,
            fua: false,
            segs: &w.segs,
        };
        assert!(run(&c, q, 1, &wr, DataPointer::Prp, &mut lists).is_success());
        let z = IoRequest {
            op,
            nsid: ns.nsid,
            lba: 10,
            blocks: 2,
            fua: false,
            segs: &none,
        };
        assert!(run(&c, q, 1, &z, DataPointer::Prp, &mut lists).is_success());
        let rd = Buffer::new(&r.sim.dma, 2 * bs, 0, page);
        let rq = IoRequest {
            op: IoOp::Read,
            nsid: ns.nsid,
            lba: 10,
            blocks: 2,
            fua: false,
            segs: &rd.segs,
        };
        assert!(run(&c, q, 1, &rq, DataPointer::Prp, &mut lists).is_success());
        assert!(
            rd.bytes().iter().all(|&b| b == 0),
            "{op:?} reads back as zeroes"
        );
    }
    for q in qs {
        c.delete_io_queue(q).unwrap();
    }
    assert!(r.nvme.io_submission_queues().is_empty());
    let d = c.shutdown().map_err(|(e, _)| e).unwrap();
    let csts = Csts(d.mmio().read32(Offset::Csts.at()).unwrap());
    assert!(!csts.rdy());
}

#[test]
fn qemu_like_controller_full_cycle() {
    full_cycle(NvmeBuilder::new(), 4, 64);
}

#[test]
fn several_namespaces_sparse_ids_mixed_block_sizes() {
    let b = NvmeBuilder::new()
        .no_namespaces()
        .namespace(1, 512, 1 << 16)
        .namespace(2, 4096, 1 << 14)
        .namespace(7, 512, 1 << 12);
    let (_r, mut c) = up(b);
    c.identify().unwrap();
    let nss = namespaces(&mut c);
    let got: Vec<(u32, u32, u64)> = nss
        .iter()
        .map(|n| (n.nsid, n.block_size, n.blocks))
        .collect();
    assert_eq!(
        got,
        vec![(1, 512, 1 << 16), (2, 4096, 1 << 14), (7, 512, 1 << 12)]
    );
}

/// More namespaces than one window of the active list: every one is found once, in order,
/// with the identifiers the controller reports.
#[test]
fn many_namespaces_across_list_windows() {
    let mut b = NvmeBuilder::new().no_namespaces().nn(1024);
    let want: Vec<u32> = (1..=150).map(|i| i * 3).collect();
    for &n in &want {
        b = b.namespace(n, 512, 1 << 10);
    }
    let (_r, mut c) = up(b);
    c.identify().unwrap();
    let nss = namespaces(&mut c);
    let got: Vec<u32> = nss.iter().map(|n| n.nsid).collect();
    assert_eq!(got, want);
}

/// Controllers nobody's QEMU command line produces: two-entry queues, wide doorbell strides,
/// 8 KiB minimum pages, tiny and unlimited MDTS, no SGLs, one I/O queue.
#[test]
fn unusual_controllers_full_cycle() {
    full_cycle(NvmeBuilder::new().mqes(1), 2, 64);
    full_cycle(NvmeBuilder::new().dstrd(4).max_io_queues(3), 8, 16);
    full_cycle(
        NvmeBuilder::new().mps(1, 4).namespace(1, 4096, 1 << 16),
        2,
        32,
    );
    full_cycle(NvmeBuilder::new().mdts(1).sgls(false), 2, 8);
    full_cycle(NvmeBuilder::new().mdts(0).max_io_queues(1), 16, 1024);
}

#[test]
fn queue_count_is_what_the_controller_grants() {
    let (_r, mut c) = up(NvmeBuilder::new().max_io_queues(3));
    c.identify().unwrap();
    assert_eq!(c.set_queue_count(64).unwrap(), 3);
}

#[test]
fn one_doorbell_per_batch() {
    let (r, mut c) = up(NvmeBuilder::new());
    c.set_queue_count(1).unwrap();
    let mut q = io_queue(&mut c, 64);
    let page = c.page_size() as usize;
    let mut lists = Lists::new(&r.sim.dma, 1, c.page_size());
    let bufs: Vec<Buffer> = (0..16)
        .map(|_| Buffer::new(&r.sim.dma, 4096, 0, page))
        .collect();
    for (i, b) in bufs.iter().enumerate() {
        let req = IoRequest {
            lba: i as u64 * 8,
            ..read_4k(&b.segs)
        };
        let sqe = build_io(&req, c.page_size(), DataPointer::Prp, &mut lists).unwrap();
        q.submit(i as u16, &sqe).unwrap();
    }
    let before = (
        r.nvme.counters().sq_doorbells(1),
        r.nvme.counters().cq_doorbells(1),
    );
    q.ring(c.mmio(), None).unwrap();
    let mut done = 0;
    q.reap(c.mmio(), None, 64, |x| {
        assert!(matches!(x, Reaped::Done { status, .. } if status.is_success()));
        done += 1;
    })
    .unwrap();
    assert_eq!(done, 16);
    let after = (
        r.nvme.counters().sq_doorbells(1),
        r.nvme.counters().cq_doorbells(1),
    );
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 1),
        "one SQ and one CQ doorbell for 16 commands"
    );
}

#[test]
fn full_queue_hands_the_command_back() {
    let (r, mut c) = up(NvmeBuilder::new());
    c.set_queue_count(1).unwrap();
    let mut q = io_queue(&mut c, 4);
    let mut lists = Lists::new(&r.sim.dma, 1, c.page_size());
    let sqe = flush_sqe(&c, &mut lists);
    for t in 0..3 {
        q.submit(t, &sqe).unwrap();
    }
    assert_eq!(q.submit(3, &sqe), Err(QueueError::Full));
    assert!(q.tag_is_free(3), "a refused submit leaves the tag free");
    assert_eq!(q.submit(0, &sqe), Err(QueueError::Full));
    q.ring(c.mmio(), None).unwrap();
    assert_eq!(q.reap(c.mmio(), None, 64, |_| {}).unwrap(), 3);
    q.submit(3, &sqe).unwrap();
}

// ---- faults ----------------------------------------------------------------------------

#[test]
fn fault_cfs_during_enable_is_fatal_and_bounded() {
    let (r, c) = rig(NvmeBuilder::new());
    r.nvme.faults().fail_now();
    let t0 = r.sim.clock.now();
    let (e, _c) = c.enable().map(|_| ()).unwrap_err();
    assert_eq!(e, CtrlError::Fatal);
    assert!(r.sim.clock.now().saturating_duration_since(t0) <= Duration::from_millis(7500));
}

#[test]
fn fault_never_ready_times_out_after_cap_to() {
    let (r, c) = rig(NvmeBuilder::new().timeout(4));
    r.nvme.faults().never_ready(true);
    let t0 = r.sim.clock.now();
    let (e, c) = c.enable().map(|_| ()).unwrap_err();
    assert_eq!(e, CtrlError::Timeout(Wait::Ready));
    let waited = r.sim.clock.now().saturating_duration_since(t0);
    assert!(waited >= Duration::from_millis(2000), "waited {waited:?}");
    assert!(
        waited <= Duration::from_millis(2100 + 2000),
        "waited {waited:?}"
    );
    // Handed back disabled: a second try works once the device behaves.
    r.nvme.faults().never_ready(false);
    assert!(c.enable().is_ok());
}

#[test]
fn fault_slow_ready_within_to_succeeds() {
    let (r, c) = rig(NvmeBuilder::new().timeout(10));
    r.nvme
        .faults()
        .ready_delay(Some(Duration::from_millis(3000)));
    assert!(c.enable().is_ok());
    let _ = r;
}

#[test]
fn fault_slow_ready_beyond_to_fails() {
    let (r, c) = rig(NvmeBuilder::new().timeout(2));
    r.nvme
        .faults()
        .ready_delay(Some(Duration::from_millis(5000)));
    assert_eq!(
        c.enable().map(|_| ()).unwrap_err().0,
        CtrlError::Timeout(Wait::Ready)
    );
}

#[test]
fn fault_dropped_admin_completion_times_out_and_controller_recovers() {
    let (r, c) = rig(NvmeBuilder::new());
    let mut c = c.enable().map_err(|(e, _)| e).unwrap();
    r.nvme.faults().drop_completions(CmdMatch::admin(0x06), 1);
    let t0 = r.sim.clock.now();
    assert_eq!(
        c.identify().map(|_| ()),
        Err(CtrlError::Timeout(Wait::Admin))
    );
    assert!(r.sim.clock.now().saturating_duration_since(t0) >= Duration::from_secs(60));
    // The controller still works afterwards.
    assert!(c.identify().is_ok());
}

#[test]
fn fault_error_status_is_reported_with_dnr() {
    let (r, mut c) = up(NvmeBuilder::new());
    r.nvme.faults().force_status(
        CmdMatch::admin(0x06),
        orion_sim::nvme::generic::INVALID_FIELD,
    );
    match c.identify() {
        Err(CtrlError::Status(s)) => {
            assert_eq!((s.kind(), s.sc(), s.dnr()), (Sct::Generic, 0x02, true));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fault_io_error_status_reaches_the_request() {
    let (r, mut c) = up(NvmeBuilder::new());
    c.set_queue_count(1).unwrap();
    let mut q = io_queue(&mut c, 16);
    let mut lists = Lists::new(&r.sim.dma, 1, c.page_size());
    let b = Buffer::new(&r.sim.dma, 4096, 0, 4096);
    r.nvme
        .faults()
        .force_status(CmdMatch::io(0x02), SimStatus::new(2, 0x81));
    let req = read_4k(&b.segs);
    let st = run(&c, &mut q, 5, &req, DataPointer::Prp, &mut lists);
    assert_eq!((st.kind(), st.sc()), (Sct::MediaDataIntegrity, 0x81));
    // Out-of-range LBA: the device's own check, seen as such.
    let far = IoRequest {
        lba: 1 << 40,
        ..req
    };
    let st = run(&c, &mut q, 5, &far, DataPointer::Prp, &mut lists);
    assert_eq!((st.kind(), st.sc(), st.dnr()), (Sct::Generic, 0x80, true));
}

fn io_queue_with_one_read(r: &Rig, c: &mut Ctrl<Enabled>) -> (IoQueue, Lists, Buffer) {
    c.set_queue_count(1).unwrap();
    let q: IoQueue = c
        .create_io_queue(1, 16, Some(1), vec![CidSlot::default(); 16])
        .unwrap();
    let lists = Lists::new(&r.sim.dma, 1, c.page_size());
    let b = Buffer::new(&r.sim.dma, 4096, 0, 4096);
    (q, lists, b)
}

#[test]
fn fault_duplicate_cid_completes_once() {
    let (r, mut c) = up(NvmeBuilder::new());
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    r.nvme.faults().duplicate_next(CmdMatch::io(0x02));
    let req = read_4k(&b.segs);
    let sqe = build_io(&req, c.page_size(), DataPointer::Prp, &mut lists).unwrap();
    q.submit(9, &sqe).unwrap();
    q.ring(c.mmio(), None).unwrap();
    let mut seen = Vec::new();
    q.reap(c.mmio(), None, 64, |x| seen.push(x)).unwrap();
    assert_eq!(seen.len(), 2);
    assert!(matches!(seen[0], Reaped::Done { tag: 9, .. }));
    assert!(matches!(seen[1], Reaped::Bogus(_)), "{:?}", seen[1]);
    assert_eq!(q.in_flight(), 0);
}

#[test]
fn fault_unknown_and_wrong_cids_are_refused() {
    let (r, mut c) = up(NvmeBuilder::new());
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    assert!(r.nvme.faults().stray_completion(1, 0x0abc));
    let mut seen = Vec::new();
    q.reap(c.mmio(), None, 64, |x| seen.push(x)).unwrap();
    assert!(matches!(seen.as_slice(), [Reaped::Bogus(_)]), "{seen:?}");
    // A completion carrying another command's CID: the real command stays outstanding.
    r.nvme.faults().wrong_cid_next(CmdMatch::io(0x02), 0x0123);
    let req = read_4k(&b.segs);
    let sqe = build_io(&req, c.page_size(), DataPointer::Prp, &mut lists).unwrap();
    q.submit(2, &sqe).unwrap();
    q.ring(c.mmio(), None).unwrap();
    seen.clear();
    q.reap(c.mmio(), None, 64, |x| seen.push(x)).unwrap();
    assert!(matches!(seen.as_slice(), [Reaped::Bogus(_)]), "{seen:?}");
    assert_eq!(q.in_flight(), 1, "the genuine command is still outstanding");
    assert!(q.cancel(2));
}

#[test]
fn fault_lost_interrupt_is_recovered_by_reaping() {
    let (r, mut c) = up(NvmeBuilder::new());
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    r.nvme.faults().lose_next_interrupts(1);
    let req = read_4k(&b.segs);
    // The completion is posted even though its interrupt is lost; the timeout path's first
    // rung (reap the CQ) finds it.
    let st = run(&c, &mut q, 1, &req, DataPointer::Prp, &mut lists);
    assert!(st.is_success());
    assert_eq!(r.nvme.counters().lost_interrupts, 1);
}

#[test]
fn fault_device_gone_fails_fast() {
    let (r, mut c) = up(NvmeBuilder::new());
    r.nvme.faults().device_gone();
    let t0 = r.sim.clock.now();
    assert_eq!(c.identify().map(|_| ()), Err(CtrlError::Gone));
    assert!(
        r.sim.clock.now().saturating_duration_since(t0) < Duration::from_secs(1),
        "no waiting out the admin timeout"
    );
    assert_eq!(c.check_alive(), Err(CtrlError::Gone));
    let (e, _) = c.shutdown().map(|_| ()).unwrap_err();
    assert_eq!(e, CtrlError::Gone);
}

#[test]
fn fault_device_gone_at_probe() {
    let sim = Sim::new();
    let (pci, nvme) = NvmeBuilder::new().build_pci(&sim);
    nvme.faults().device_gone();
    let bar = pci.map_bar(0).unwrap();
    let r = Controller::<SimPlatform, Disabled>::new(
        bar,
        sim.dma.clone(),
        sim.clock.clone(),
        Box::new([0; 512]),
        Settings::default(),
    );
    assert_eq!(r.err(), Some(CtrlError::Gone));
}

#[test]
fn fault_cfs_mid_io_is_seen_by_admin_and_alive_check() {
    let (r, mut c) = up(NvmeBuilder::new());
    let (_q, _lists, _b) = io_queue_with_one_read(&r, &mut c);
    r.nvme.faults().fail_now();
    assert_eq!(c.check_alive(), Err(CtrlError::Fatal));
    assert_eq!(c.identify().map(|_| ()), Err(CtrlError::Fatal));
    // Reset clears it: disable, enable again, and I/O works.
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    let mut c = d.enable().map_err(|(e, _)| e).unwrap();
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    let req = read_4k(&b.segs);
    assert!(run(&c, &mut q, 1, &req, DataPointer::Prp, &mut lists).is_success());
}

#[test]
fn shutdown_reports_complete() {
    // Shutdown processing that takes a while (but less than CAP.TO) is waited for.
    let (r, c) = up(NvmeBuilder::new().shutdown_delay(Duration::from_millis(1500)));
    let t0 = r.sim.clock.now();
    let d = c.shutdown().map_err(|(e, _)| e).unwrap();
    assert!(r.sim.clock.now().saturating_duration_since(t0) >= Duration::from_millis(1500));
    let csts = Csts(d.mmio().read32(Offset::Csts.at()).unwrap());
    assert!(!csts.rdy());
    let _ = Shutdown::None;
}

#[test]
fn shadow_doorbells_follow_event_idx() {
    let (r, mut c) = up(NvmeBuilder::new());
    c.identify().unwrap();
    c.set_queue_count(1).unwrap();
    let sh = c
        .setup_shadow_doorbells(1)
        .unwrap()
        .expect("the model offers Doorbell Buffer Config");
    let mut q = io_queue(&mut c, 64);
    let mut lists = Lists::new(&r.sim.dma, 1, c.page_size());
    let sqe = flush_sqe(&c, &mut lists);
    let sq_db = c.cap().sq_tail_doorbell(1) - 0x1000;
    // EventIdx inside the new window: the controller asked to be told, so MMIO is written.
    for t in 0..4 {
        q.submit(t, &sqe).unwrap();
    }
    let mmio0 = r.nvme.counters().sq_doorbells(1);
    q.ring(c.mmio(), Some(&sh)).unwrap();
    assert_eq!(r.nvme.counters().sq_doorbells(1), mmio0 + 1);
    assert_eq!(sh.shadow.read32(sq_db).unwrap(), 4, "shadow tail written");
    let mut n = 0;
    q.reap(c.mmio(), Some(&sh), 64, |_| n += 1).unwrap();
    assert_eq!(n, 4);
    // EventIdx behind the window (the controller is polling the shadow buffer): no MMIO; the
    // controller finds the commands on its own.
    sh.event_idx.write32(sq_db, 2).unwrap();
    for t in 4..8 {
        q.submit(t, &sqe).unwrap();
    }
    q.ring(c.mmio(), Some(&sh)).unwrap();
    assert_eq!(r.nvme.counters().sq_doorbells(1), mmio0 + 1, "MMIO skipped");
    assert_eq!(sh.shadow.read32(sq_db).unwrap(), 8);
    r.nvme.process();
    n = 0;
    q.reap(c.mmio(), Some(&sh), 64, |x| {
        assert!(matches!(x, Reaped::Done { status, .. } if status.is_success()));
        n += 1;
    })
    .unwrap();
    assert_eq!(
        n, 4,
        "the controller picked the commands up from the shadow doorbell"
    );
}

#[test]
fn no_shadow_doorbells_without_oacs_support() {
    let (_r, mut c) = up(NvmeBuilder::new().doorbell_buffer(false));
    c.identify().unwrap();
    assert!(c.setup_shadow_doorbells(4).unwrap().is_none());
}

/// A buffer made of pieces with the given lengths, each in its own page-aligned allocation
/// (so pieces are never adjacent in bus space), the first starting at `first_off`.
fn pieces(dma: &SimDma, lens: &[usize], first_off: usize) -> Buffer {
    let mut b = Buffer {
        pieces: Vec::new(),
        segs: Vec::new(),
    };
    for (i, &len) in lens.iter().enumerate() {
        let off = if i == 0 { first_off } else { 0 };
        let m = dma
            .alloc_coherent((off + len).div_ceil(4096) * 4096, 4096)
            .unwrap();
        b.segs.push(Segment {
            addr: m.bus_addr().as_u64() + off as u64,
            len: len as u32,
        });
        b.pieces.push(m);
    }
    b
}

mod model_props {
    use super::*;
    use proptest::prelude::*;

    /// Piece lengths for PRPs: the first runs to its page end, inner pieces are whole pages,
    /// the last is anything; total a whole number of 512 B blocks.
    fn prp_layout() -> impl Strategy<Value = (usize, Vec<usize>)> {
        (0usize..1024, 0usize..6, 1usize..4096).prop_map(|(off4, inner, last)| {
            let off = off4 * 4;
            let mut lens = vec![4096 - off];
            lens.extend(std::iter::repeat_n(4096, inner));
            let total: usize = lens.iter().sum::<usize>() + last;
            let last = last + (512 - total % 512) % 512;
            lens.push(last);
            (off, lens)
        })
    }

    /// Piece lengths for SGLs: anything, dword multiples, total a whole number of blocks.
    fn sgl_layout() -> impl Strategy<Value = (usize, Vec<usize>)> {
        (0usize..1024, prop::collection::vec(1usize..2048, 1..40)).prop_map(|(off4, raw)| {
            let mut lens: Vec<usize> = raw.into_iter().map(|l| l * 4).collect();
            let total: usize = lens.iter().sum();
            if let Some(l) = lens.last_mut() {
                *l += (512 - total % 512) % 512;
            }
            (off4 * 4, lens)
        })
    }

    fn round_trip(
        c: &Ctrl<Enabled>,
        r: &Rig,
        q: &mut IoQueue,
        off: usize,
        lens: &[usize],
        dptr: DataPointer,
        lba: u64,
    ) {
        let mut lists = Lists::new(&r.sim.dma, 2, c.page_size());
        let w = pieces(&r.sim.dma, lens, off);
        w.fill(|i| (i as u8).wrapping_mul(31).wrapping_add(lba as u8));
        let total: usize = lens.iter().sum();
        let blocks = (total / 512) as u32;
        let req = IoRequest {
            op: IoOp::Write,
            nsid: 1,
            lba,
            blocks,
            fua: false,
            segs: &w.segs,
        };
        assert!(run(c, q, 0, &req, dptr, &mut lists).is_success());
        // The controller model stored exactly the bytes of the scattered buffer.
        let want = w.bytes();
        for b in 0..u64::from(blocks) {
            let got = r.nvme.read_block(1, lba + b).unwrap();
            let k = b as usize * 512;
            assert_eq!(&got[..], &want[k..k + 512], "block {b}");
        }
        // And reads them back into a differently scattered buffer.
        let rd = pieces(&r.sim.dma, &[total], 0);
        let req = IoRequest {
            op: IoOp::Read,
            nsid: 1,
            lba,
            blocks,
            fua: false,
            segs: &rd.segs,
        };
        assert!(run(c, q, 1, &req, DataPointer::Prp, &mut lists).is_success());
        assert_eq!(rd.bytes(), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn random_prp_buffers_reach_the_medium_exactly((off, lens) in prp_layout(), lba in 0u64..100_000) {
            let (r, mut c) = up(NvmeBuilder::new());
            c.set_queue_count(1).unwrap();
            let mut q = io_queue(&mut c, 8);
            round_trip(&c, &r, &mut q, off, &lens, DataPointer::Prp, lba);
        }

        #[test]
        fn random_sgl_buffers_reach_the_medium_exactly((off, lens) in sgl_layout(), lba in 0u64..100_000) {
            let (r, mut c) = up(NvmeBuilder::new());
            c.set_queue_count(1).unwrap();
            let mut q = io_queue(&mut c, 8);
            round_trip(&c, &r, &mut q, off, &lens, DataPointer::Sgl, lba);
        }
    }
}

/// The platform-facing I/O queue (`io::IoQueue`): many large requests in flight at once, each
/// with its own PRP list pages carved from shared chunks, completed out of one reap with the
/// right tags and statuses; the data lands where each request said.
#[test]
fn io_queue_many_tags_in_flight_use_their_own_lists() {
    use orion_compat::block::BlockStatus;
    use orion_nvme::io::{self, IoQueue as PlatformQueue};
    let (r, mut c) = up(NvmeBuilder::new());
    let info = c.identify().unwrap().clone();
    c.set_queue_count(1).unwrap();
    let page = c.page_size();
    let pg = page as usize;
    let depth = 16u32;
    let max = io::max_transfer(&info, page);
    let per_tag = io::list_pages_per_tag(max, page);
    let tags = depth as usize - 1;
    let chunks = |n: usize| -> Vec<SimCoherent> {
        (0..n)
            .map(|_| r.sim.dma.alloc_coherent(3 * pg, pg).unwrap())
            .collect()
    };
    let qp = c
        .create_io_queue(1, depth, Some(1), vec![CidSlot::default(); depth as usize])
        .unwrap();
    // Too little list memory for every tag is refused, and the queue pair handed back.
    let (qp, _) = PlatformQueue::new(qp, chunks(1), per_tag, page)
        .err()
        .expect("too little list memory must be refused");
    // Chunks of 3 pages: some tags' lists straddle two chunks.
    let mut q = PlatformQueue::new(qp, chunks((tags * per_tag).div_ceil(3)), per_tag, page)
        .map_err(|_| "refused")
        .unwrap();
    assert_eq!(q.tags(), depth - 1);
    let bs = 512usize;
    let len = max as usize;
    let bufs: Vec<Buffer> = (0..tags)
        .map(|t| {
            let b = Buffer::new(&r.sim.dma, len, 4 * (t + 1), pg);
            b.fill(|i| (i * 7 + t * 13) as u8);
            b
        })
        .collect();
    for (t, b) in bufs.iter().enumerate() {
        let req = IoRequest {
            op: IoOp::Write,
            nsid: 1,
            lba: (t * len / bs) as u64,
            blocks: (len / bs) as u32,
            fua: false,
            segs: &b.segs,
        };
        q.submit(t as u16, &req).unwrap();
        assert!(q.in_flight(t as u16));
    }
    // A tag beyond the queue's is refused, not queued.
    assert!(q.submit(tags as u16, &FLUSH).is_err());
    q.ring(c.mmio(), None).unwrap();
    let mut done = vec![];
    for _ in 0..10 {
        q.reap(
            c.mmio(),
            None,
            64,
            |tag, st, _, _| done.push((tag, st)),
            |b| panic!("bogus {b:?}"),
        )
        .unwrap();
    }
    done.sort_by_key(|&(t, _)| t);
    let want: Vec<(u16, BlockStatus)> = (0..tags as u16).map(|t| (t, BlockStatus::Ok)).collect();
    assert_eq!(done, want);
    for (t, b) in bufs.iter().enumerate() {
        let lba = (t * len / bs) as u64;
        let last = lba + (len / bs) as u64 - 1;
        let w = b.bytes();
        assert_eq!(
            r.nvme.read_block(1, lba).unwrap()[..],
            w[..bs],
            "tag {t} first block"
        );
        assert_eq!(
            r.nvme.read_block(1, last).unwrap()[..],
            w[len - bs..],
            "tag {t} last block"
        );
    }
    // A passthrough Read (caller-built command, raw segments) of tag 2's first two blocks
    // completes with its result and brings back the data written through tag 2.
    let raw = Buffer::new(&r.sim.dma, 2 * bs, 0, pg);
    let sqe = orion_nvme::spec::sqe::Sqe::read(1, (2 * len / bs) as u64, 1);
    q.submit_raw(0, sqe, &raw.segs).unwrap();
    q.ring(c.mmio(), None).unwrap();
    let mut got = None;
    for _ in 0..10 {
        q.reap(
            c.mmio(),
            None,
            8,
            |t, s, _, res| got = Some((t, s, res)),
            |b| panic!("bogus {b:?}"),
        )
        .unwrap();
        if got.is_some() {
            break;
        }
    }
    assert_eq!(got, Some((0, BlockStatus::Ok, 0)));
    assert_eq!(raw.bytes()[..], bufs[2].bytes()[..2 * bs]);
    // A segment list PRPs cannot express is refused before the device sees it.
    let bad = [
        Segment {
            addr: 0x1002,
            len: 100,
        },
        Segment {
            addr: 0x5000,
            len: 512,
        },
    ];
    assert!(q
        .submit_raw(1, orion_nvme::spec::sqe::Sqe::read(1, 0, 1), &bad)
        .is_err());
    assert!(!q.in_flight(1));
    // A read past the end of the namespace completes with an error the block layer sees as
    // out of space, like the reference driver's mapping.
    let rd = Buffer::new(&r.sim.dma, bs, 0, pg);
    let past = IoRequest {
        op: IoOp::Read,
        nsid: 1,
        lba: u64::MAX - 1,
        blocks: 1,
        fua: false,
        segs: &rd.segs,
    };
    q.submit(0, &past).unwrap();
    q.ring(c.mmio(), None).unwrap();
    let mut st = None;
    q.reap(
        c.mmio(),
        None,
        8,
        |_, s, _, _| st = Some(s),
        |b| panic!("bogus {b:?}"),
    )
    .unwrap();
    assert_eq!(st, Some(BlockStatus::NoSpace));
}

/// Asynchronous events: the request stays outstanding, an event is picked up whether an
/// unrelated admin command reaps it on the way or the poll does, reading the log clears it,
/// and re-arming works; a SMART critical warning (temperature) comes through too.
#[test]
fn async_events_are_reported_and_rearmed() {
    use orion_nvme::spec::cqe::AsyncEventType;
    use orion_nvme::spec::log::LogId;
    let (r, mut c) = up(NvmeBuilder::new());
    c.identify().unwrap();
    c.start_async_events().unwrap();
    assert_eq!(c.poll_async_event().unwrap(), None);
    r.nvme
        .raise_event(orion_sim::nvme::AsyncEvent::NAMESPACE_CHANGED);
    // An unrelated admin command reaps the event's completion while it waits.
    c.set_queue_count(1).unwrap();
    let ev = c
        .poll_async_event()
        .unwrap()
        .expect("namespace change event");
    assert_eq!(ev.event_type(), Ok(AsyncEventType::Notice));
    assert_eq!(ev.lid(), LogId::CHANGED_NS_LIST.0);
    assert_eq!(c.poll_async_event().unwrap(), None, "reported once");
    c.read_log_clearing(LogId::CHANGED_NS_LIST, 0, 4096)
        .unwrap();
    c.arm_async_event().unwrap();
    // A temperature over the threshold: a SMART / Health event found by the poll itself.
    r.nvme.set_temperature(400);
    let ev = c.poll_async_event().unwrap().expect("SMART event");
    assert_eq!(ev.event_type(), Ok(AsyncEventType::SmartHealth));
    let smart = c.read_log_clearing(LogId::SMART, u32::MAX, 512).unwrap();
    assert_ne!(smart[0] & 0x02, 0, "critical warning: temperature");
    c.arm_async_event().unwrap();
    assert_eq!(c.poll_async_event().unwrap(), None);
}

/// Builds the 4 KiB read of `b` under `tag` on `q` and rings the doorbell.
fn submit_read(c: &Ctrl<Enabled>, q: &mut IoQueue, lists: &mut Lists, b: &Buffer, tag: u16) {
    let sqe = build_io(&read_4k(&b.segs), c.page_size(), DataPointer::Prp, lists).unwrap();
    q.submit(tag, &sqe).unwrap();
    q.ring(c.mmio(), None).unwrap();
}

/// Reaps `q` once and returns the status of `tag`'s completion (anything else fails the
/// test).
fn reaped_status(c: &Ctrl<Enabled>, q: &mut IoQueue, tag: u16) -> Status {
    let mut st = None;
    q.reap(c.mmio(), None, 64, |x| match x {
        Reaped::Done { tag: t, status, .. } if t == tag => st = Some(status),
        other => panic!("unexpected {other:?}"),
    })
    .unwrap();
    st.unwrap_or_else(|| panic!("no completion for tag {tag}"))
}

/// The timeout ladder against the model: a stuck command the controller can abort ends
/// with Command Abort Requested after the Abort; no reset is needed.
#[test]
fn fault_timeout_abort_succeeds() {
    use orion_nvme::recovery::{abort_succeeded, on_timeout, Expiry, TimeoutStep};
    use orion_nvme::spec::sqe::Sqe;
    let (r, mut c) = up(NvmeBuilder::new());
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    r.nvme.faults().hold_next(CmdMatch::io(0x02));
    submit_read(&c, &mut q, &mut lists, &b, 3);
    // The timer expires: reaping finds nothing, so the ladder asks for an Abort.
    let mut seen = 0;
    q.reap(c.mmio(), None, 64, |_| seen += 1).unwrap();
    assert_eq!(seen, 0);
    let e = Expiry {
        reaped: false,
        aborted: false,
        recovering: false,
        can_abort: true,
    };
    assert_eq!(on_timeout(e), TimeoutStep::Abort);
    let cid = q.cid_of(3).expect("tag 3 in flight");
    assert_eq!(cid & 0xfff, 3);
    let dw0 = c.admin_command(Sqe::abort(1, cid), false).unwrap();
    // CAST: DW0 is the low half.
    assert!(
        abort_succeeded(dw0 as u32),
        "the model aborts held commands"
    );
    let st = reaped_status(&c, &mut q, 3);
    assert_eq!(
        (st.kind(), st.sc()),
        (Sct::Generic, 0x07),
        "Command Abort Requested"
    );
    assert_eq!(q.cid_of(3), None);
}

/// The ladder's last rung: the command is lost inside the controller (its completion never
/// comes), Abort cannot find it, so the next expiry resets the controller. After the reset
/// the same queue is created again over the same CID slots, the request is resubmitted and
/// completes, and the lost command's late completion could never be matched to it.
#[test]
fn fault_timeout_abort_fails_then_reset_and_resubmit() {
    use orion_nvme::recovery::{
        abort_succeeded, after_reset, on_timeout, Expiry, Interrupted, TimeoutStep,
    };
    use orion_nvme::spec::sqe::Sqe;
    let (r, mut c) = up(NvmeBuilder::new());
    c.identify().unwrap();
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    // Data to find again after the reset.
    assert!(r.nvme.write_block(1, 0, &[0x5a; 512]));
    r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    submit_read(&c, &mut q, &mut lists, &b, 4);
    let cid_before = q.cid_of(4).unwrap();
    let dw0 = c.admin_command(Sqe::abort(1, cid_before), false).unwrap();
    // CAST: DW0 is the low half.
    assert!(
        !abort_succeeded(dw0 as u32),
        "nothing to abort: it was lost"
    );
    let e = Expiry {
        reaped: false,
        aborted: true,
        recovering: false,
        can_abort: true,
    };
    assert_eq!(on_timeout(e), TimeoutStep::Reset);
    // Reset: disable (every queue is gone), cancel what was in flight, enable again.
    assert!(q.cancel(4));
    assert_eq!(after_reset(0, false), Interrupted::Retry);
    let (_, _, slots) = q.into_parts();
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    assert!(r.nvme.io_submission_queues().is_empty(), "queues dropped");
    let mut c = d.enable().map_err(|(e, _)| e).unwrap();
    c.identify().unwrap();
    assert_eq!(c.set_queue_count(1).unwrap(), 1);
    let mut q = c.create_io_queue(1, 16, Some(1), slots).unwrap();
    submit_read(&c, &mut q, &mut lists, &b, 4);
    let cid_after = q.cid_of(4).unwrap();
    assert_ne!(
        cid_after, cid_before,
        "a new generation: the lost CID stays stale"
    );
    assert!(reaped_status(&c, &mut q, 4).is_success());
    assert_eq!(&b.bytes()[..512], &[0x5a; 512][..]);
}

/// After a reset the controller gets the same shadow doorbell buffers again (zeroed, since
/// queues restart at 0) and the event request is re-armed: both work as before.
#[test]
fn reset_restores_shadow_doorbells_and_async_events() {
    let (r, mut c) = up(NvmeBuilder::new());
    c.identify().unwrap();
    c.set_queue_count(1).unwrap();
    let sh = c.setup_shadow_doorbells(1).unwrap().expect("DBBC offered");
    c.start_async_events().unwrap();
    assert_eq!(r.nvme.outstanding_aers(), 1);
    let mut q = io_queue(&mut c, 64);
    let mut lists = Lists::new(&r.sim.dma, 1, c.page_size());
    let sqe = flush_sqe(&c, &mut lists);
    for t in 0..5 {
        q.submit(t, &sqe).unwrap();
    }
    q.ring(c.mmio(), Some(&sh)).unwrap();
    let mut n = 0;
    q.reap(c.mmio(), Some(&sh), 64, |_| n += 1).unwrap();
    assert_eq!(n, 5);
    let (_, _, slots) = q.into_parts();
    let mut c = c
        .reset()
        .map_err(|(e, _)| e)
        .unwrap()
        .enable()
        .map_err(|(e, _)| e)
        .unwrap();
    assert_eq!(
        r.nvme.doorbell_buffer(),
        None,
        "a reset forgets the buffers"
    );
    c.identify().unwrap();
    c.set_queue_count(1).unwrap();
    c.restore_shadow_doorbells(&sh).unwrap();
    assert_eq!(
        r.nvme.doorbell_buffer(),
        Some((
            sh.shadow.bus_addr().as_u64(),
            sh.event_idx.bus_addr().as_u64()
        ))
    );
    let sq_db = c.cap().sq_tail_doorbell(1) - 0x1000;
    assert_eq!(
        sh.shadow.read32(sq_db).unwrap(),
        0,
        "zeroed for the new queue"
    );
    let mut q = c.create_io_queue(1, 64, Some(1), slots).unwrap();
    for t in 0..3 {
        q.submit(t, &sqe).unwrap();
    }
    q.ring(c.mmio(), Some(&sh)).unwrap();
    n = 0;
    q.reap(c.mmio(), Some(&sh), 64, |x| {
        assert!(matches!(x, Reaped::Done { status, .. } if status.is_success()));
        n += 1;
    })
    .unwrap();
    assert_eq!(n, 3);
    assert_eq!(sh.shadow.read32(sq_db).unwrap(), 3);
    // The old event request died with the reset; arming again is not refused as a duplicate.
    c.start_async_events().unwrap();
    assert_eq!(r.nvme.outstanding_aers(), 1);
    r.nvme.set_temperature(400);
    assert!(c.poll_async_event().unwrap().is_some(), "events flow again");
}

/// A controller that never becomes ready again after a reset: enable times out within
/// CAP.TO and hands the controller back disabled; once it behaves, enabling works.
#[test]
fn fault_never_ready_after_reset() {
    let (r, c) = up(NvmeBuilder::new());
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    r.nvme.faults().never_ready(true);
    let t0 = r.sim.clock.now();
    let (e, d) = d.enable().map(|_| ()).unwrap_err();
    assert_eq!(e, CtrlError::Timeout(Wait::Ready));
    let waited = r.sim.clock.now().saturating_duration_since(t0);
    assert!(waited <= Duration::from_millis(u64::from(d.cap().to()) * 500 + 1000));
    r.nvme.faults().never_ready(false);
    let mut c = d.enable().map_err(|(e, _)| e).unwrap();
    c.identify().unwrap();
}

/// A controller slower to reset than CAP.TO says: the disable times out with CSTS.RDY still
/// 1 and hands the controller back. The next enable must wait for RDY to clear before
/// setting CC.EN (enabling early breaks the handshake, and the simulated controller then
/// reports CFS), and must not take the stale RDY for ready: it comes up and identifies.
#[test]
fn fault_slow_disable_next_enable_waits_for_not_ready() {
    // CAP.TO = 2 (1 s); CSTS.RDY drops 1.5 s after CC.EN is cleared.
    let (r, c) = up(NvmeBuilder::new()
        .timeout(2)
        .reset_delay(Duration::from_millis(1500)));
    let t0 = r.sim.clock.now();
    let (e, d) = c.reset().map(|_| ()).unwrap_err();
    assert_eq!(e, CtrlError::Timeout(Wait::NotReady));
    assert!(r.sim.clock.now().saturating_duration_since(t0) < Duration::from_millis(1500));
    let mut c = d.enable().map_err(|(e, _)| e).unwrap();
    assert!(
        r.sim.clock.now().saturating_duration_since(t0) >= Duration::from_millis(1500),
        "enabled before the controller was idle"
    );
    let csts = c.check_alive().unwrap();
    assert!(csts.rdy() && !csts.cfs(), "csts {:#x}", csts.0);
    c.identify().unwrap();
}

/// CSTS.CFS while a command is outstanding (the device swallowed it, then failed): the
/// alive check sees the fatal status (the platform glue's health check then resets), the
/// command is cancelled and resubmitted after the reset over the queue's old CID slots, it
/// completes with the data, and a completion carrying the old CID that turns up afterwards
/// is refused instead of ending the new command.
#[test]
fn fault_cfs_with_a_command_in_flight_reset_resubmits() {
    use orion_nvme::recovery::{after_reset, Interrupted};
    let (r, mut c) = up(NvmeBuilder::new());
    c.identify().unwrap();
    let (mut q, mut lists, b) = io_queue_with_one_read(&r, &mut c);
    assert!(r.nvme.write_block(1, 0, &[0xc3; 512]));
    r.nvme.faults().drop_completions(CmdMatch::io(0x02), 1);
    submit_read(&c, &mut q, &mut lists, &b, 7);
    let cid_before = q.cid_of(7).unwrap();
    r.nvme.faults().fail_now();
    assert_eq!(c.check_alive(), Err(CtrlError::Fatal));
    assert_eq!(q.in_flight(), 1);
    // The reset: the outstanding command is taken off its queue and will be retried.
    assert!(q.cancel(7));
    assert_eq!(after_reset(0, false), Interrupted::Retry);
    let (_, _, slots) = q.into_parts();
    let d = c.reset().map_err(|(e, _)| e).unwrap();
    let mut c = d.enable().map_err(|(e, _)| e).unwrap();
    assert!(
        c.check_alive().is_ok_and(|s| !s.cfs()),
        "the reset cleared CFS"
    );
    c.identify().unwrap();
    assert_eq!(c.set_queue_count(1).unwrap(), 1);
    let mut q = c.create_io_queue(1, 16, Some(1), slots).unwrap();
    // A stale completion for the command from before the reset: refused.
    assert!(r.nvme.faults().stray_completion(1, cid_before));
    let mut seen = Vec::new();
    q.reap(c.mmio(), None, 64, |x| seen.push(x)).unwrap();
    assert!(matches!(seen.as_slice(), [Reaped::Bogus(_)]), "{seen:?}");
    submit_read(&c, &mut q, &mut lists, &b, 7);
    assert_ne!(q.cid_of(7).unwrap(), cid_before);
    assert!(reaped_status(&c, &mut q, 7).is_success());
    assert_eq!(&b.bytes()[..512], &[0xc3; 512][..]);
    assert_eq!(q.in_flight(), 0);
}

// ---- register snapshot -------------------------------------------------------------------

#[test]
fn snapshot_reads_and_formats() {
    let regs = RegFile::new(0x2000);
    regs.write64(Offset::Cap.at(), 0x0040_0020_0f01_07ff)
        .unwrap();
    regs.write32(Offset::Vs.at(), 0x0001_0400).unwrap();
    regs.write32(Offset::Csts.at(), 1).unwrap();
    let snap = RegisterSnapshot::read(&regs).unwrap();
    assert_eq!(snap.cap.mqes(), 0x7ff);
    assert_eq!(snap.vs.mnr(), 4);
    let text = format!("{snap}");
    assert!(
        text.starts_with("NVMe 1.4.0 cap 0x004000200f0107ff"),
        "{text}"
    );
    assert!(text.contains("mqes 2047 (2048 entries)"), "{text}");
    assert!(text.contains("to 15 (7500 ms)"), "{text}");
    assert!(text.contains("dstrd 0 (4 B)"), "{text}");
    assert!(
        text.contains("mpsmin 0 (4 KiB) mpsmax 4 (64 KiB)"),
        "{text}"
    );
    assert!(text.contains("rdy 1 cfs 0"), "{text}");
}

#[test]
fn snapshot_of_removed_device_is_gone() {
    let regs = RegFile::gone(0x2000);
    assert_eq!(RegisterSnapshot::read(&regs), Err(CtrlError::Gone));
}

#[test]
fn snapshot_out_of_range_is_platform_error() {
    let regs = RegFile::new(0x10);
    assert_eq!(
        RegisterSnapshot::read(&regs),
        Err(CtrlError::Platform(ErrorKind::OutOfRange))
    );
}
