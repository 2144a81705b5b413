//! The simulated NVMe controller driven the way a driver drives hardware: raw register
//! accesses through the PCI function's BAR, submission queue entries built byte by byte in
//! DMA memory, completions reaped by phase tag, and every wait bounded by CAP.TO on the
//! virtual clock.

use orion_compat::dma::{CoherentMem, Dma};
use orion_compat::irq::{IrqHandler, IrqKinds, IrqReturn, IrqVectors, VectorRequest};
use orion_compat::pci::Pci;
use orion_compat::time::{Clock, Deadline, Duration, WaitError};
use orion_compat::Mmio;
use orion_sim::dma::SimCoherent;
use orion_sim::irq::SimIrqRegistration;
use orion_sim::irq::SimVectors;
use orion_sim::nvme::{
    admin_opcode as aop, generic, io_opcode as iop, specific, AsyncEvent, CmdMatch, NamespaceSpec,
    NvmeBuilder, SimNvme, Status,
};
use orion_sim::pci::SimBar;
use orion_sim::{Sim, SimPci};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

// ---- register offsets and fields, from the spec (NVMe Base 2.0 §3.1.3) ----------------------

const CAP: usize = 0x00;
const VS: usize = 0x08;
const INTMS: usize = 0x0c;
const INTMC: usize = 0x10;
const CC: usize = 0x14;
const CSTS: usize = 0x1c;
const NSSR: usize = 0x20;
const AQA: usize = 0x24;
const ASQ: usize = 0x28;
const ACQ: usize = 0x30;

const CC_EN: u32 = 1;
/// IOSQES 6 (64 bytes) and IOCQES 4 (16 bytes).
const CC_ENTRY_SIZES: u32 = (6 << 16) | (4 << 20);
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 2;

const PAGE: usize = 4096;

// ---- the test's own SQE builder and CQE decoder ----------------------------------------------

/// A submission queue entry under construction (NVMe Base 2.0 §4.2.1).
#[derive(Clone, Copy, Debug)]
struct Cmd([u8; 64]);

impl Cmd {
    fn new(opcode: u8) -> Self {
        let mut b = [0u8; 64];
        b[0] = opcode;
        Self(b)
    }

    fn dw(mut self, i: usize, v: u32) -> Self {
        self.0[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        self
    }

    fn nsid(self, nsid: u32) -> Self {
        self.dw(1, nsid)
    }

    fn prp(self, prp1: u64, prp2: u64) -> Self {
        self.dw(6, prp1 as u32)
            .dw(7, (prp1 >> 32) as u32)
            .dw(8, prp2 as u32)
            .dw(9, (prp2 >> 32) as u32)
    }

    /// An SGL first descriptor with PSDT 01b.
    fn sgl(mut self, desc: [u8; 16]) -> Self {
        self.0[1] = (self.0[1] & 0x3f) | (1 << 6);
        self.0[24..40].copy_from_slice(&desc);
        self
    }

    fn cid(mut self, cid: u16) -> Self {
        self.0[2..4].copy_from_slice(&cid.to_le_bytes());
        self
    }

    fn rw(opcode: u8, nsid: u32, slba: u64, blocks: u32) -> Self {
        Self::new(opcode)
            .nsid(nsid)
            .dw(10, slba as u32)
            .dw(11, (slba >> 32) as u32)
            .dw(12, blocks - 1)
    }
}

/// An SGL descriptor (NVMe Base 2.0 §4.1.2): address, length, type in the high nibble of
/// byte 15.
fn sgl_desc(kind: u8, addr: u64, len: u32) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[0..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&len.to_le_bytes());
    d[15] = kind << 4;
    d
}
const SGL_DATA: u8 = 0;
const SGL_SEGMENT: u8 = 2;
const SGL_LAST: u8 = 3;

/// A completion queue entry (NVMe Base 2.0 §4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cqe {
    dw0: u32,
    sqhd: u16,
    sqid: u16,
    cid: u16,
    phase: bool,
    status: Status,
}

impl Cqe {
    fn parse(b: &[u8]) -> Self {
        let dw = |i: usize| u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap());
        Self {
            dw0: dw(0),
            sqhd: dw(2) as u16,
            sqid: (dw(2) >> 16) as u16,
            cid: dw(3) as u16,
            phase: dw(3) & (1 << 16) != 0,
            status: Status::from_field((dw(3) >> 17) as u16),
        }
    }

    fn ok(&self) -> bool {
        self.status.is_success()
    }
}

// ---- a minimal host -----------------------------------------------------------------------

#[derive(Debug, Default)]
struct Count(Arc<AtomicU32>);

impl IrqHandler for Count {
    fn handle(&self, _vector: u16) -> IrqReturn {
        self.0.fetch_add(1, Ordering::SeqCst);
        IrqReturn::Handled
    }
}

struct Queue {
    qid: u16,
    sq: SimCoherent,
    cq: SimCoherent,
    sq_size: u16,
    cq_size: u16,
    tail: u16,
    head: u16,
    phase: bool,
    next_cid: u16,
}

impl Queue {
    fn new(host: &Host, qid: u16, sq_size: u16, cq_size: u16) -> Self {
        Self {
            qid,
            sq: host.alloc(usize::from(sq_size) * 64),
            cq: host.alloc(usize::from(cq_size) * 16),
            sq_size,
            cq_size,
            tail: 0,
            head: 0,
            phase: true,
            next_cid: 0,
        }
    }
}

struct Host {
    sim: Sim,
    pci: SimPci,
    nvme: SimNvme,
    bar: SimBar,
    irqs: Vec<Arc<AtomicU32>>,
    _regs: Vec<SimIrqRegistration<Count>>,
    _vectors: SimVectors,
    stride: usize,
    /// The alignment of every allocation: the memory page size the host programs.
    page: usize,
    queues: Vec<Queue>,
}

impl Host {
    fn new(builder: NvmeBuilder) -> Self {
        let sim = Sim::new();
        let (pci, nvme) = builder.build_pci(&sim);
        pci.set_bus_master(true).unwrap();
        let bar = pci.map_bar(0).unwrap();
        let vectors = pci
            .alloc_irq_vectors(&VectorRequest {
                min: 1,
                max: 8,
                kinds: IrqKinds::ALL,
                pre_vectors: 0,
            })
            .unwrap();
        let mut regs = Vec::new();
        let mut irqs = Vec::new();
        for v in 0..vectors.count() {
            let c = Count::default();
            irqs.push(c.0.clone());
            regs.push(vectors.register(v, c).unwrap());
        }
        let cap = bar.read64(CAP).unwrap();
        let stride = 4usize << ((cap >> 32) & 0xf);
        Self {
            sim,
            pci,
            nvme,
            bar,
            irqs,
            _regs: regs,
            _vectors: vectors,
            stride,
            page: PAGE,
            queues: Vec::new(),
        }
    }

    fn alloc(&self, len: usize) -> SimCoherent {
        self.sim.dma.alloc_coherent(len.max(1), self.page).unwrap()
    }

    fn cap(&self) -> u64 {
        self.bar.read64(CAP).unwrap()
    }

    fn csts(&self) -> u32 {
        self.bar.read32(CSTS).unwrap()
    }

    /// CAP.TO in virtual time.
    fn timeout(&self) -> Duration {
        Duration::from_millis(500 * ((self.cap() >> 24) & 0xff))
    }

    /// Waits, bounded by CAP.TO, for CSTS.RDY to equal `rdy`; a CFS ends the wait early.
    fn wait_rdy(&self, rdy: bool) -> Result<u32, WaitError<()>> {
        let clock = &self.sim.clock;
        Deadline::after(clock, self.timeout()).poll(clock, Duration::from_millis(1), || {
            let csts = self.csts();
            if csts & CSTS_CFS != 0 {
                return Err(());
            }
            Ok(((csts & CSTS_RDY != 0) == rdy).then_some(csts))
        })
    }

    fn doorbell(&self, qid: u16, cq: bool) -> usize {
        0x1000 + (2 * usize::from(qid) + usize::from(cq)) * self.stride
    }

    /// Programs the admin queues and CC (with `cc_extra`), sets EN and waits for RDY.
    fn enable_with(&mut self, asize: u16, cc_extra: u32) -> Result<u32, WaitError<()>> {
        let q = Queue::new(self, 0, asize, asize);
        let aqa = u32::from(asize - 1) | (u32::from(asize - 1) << 16);
        self.bar.write32(AQA, aqa).unwrap();
        self.bar.write64(ASQ, q.sq.bus_addr().0).unwrap();
        self.bar.write64(ACQ, q.cq.bus_addr().0).unwrap();
        self.queues.clear();
        self.queues.push(q);
        self.bar
            .write32(CC, CC_EN | CC_ENTRY_SIZES | cc_extra)
            .unwrap();
        self.wait_rdy(true)
    }

    fn enable(&mut self) {
        self.enable_with(32, 0)
            .expect("controller ready within CAP.TO");
    }

    fn disable(&mut self) {
        let cc = self.bar.read32(CC).unwrap();
        self.bar.write32(CC, cc & !CC_EN).unwrap();
        self.wait_rdy(false).expect("RDY clears within CAP.TO");
        self.queues.clear();
    }

    fn queue(&mut self, qid: u16) -> &mut Queue {
        self.queues.iter_mut().find(|q| q.qid == qid).unwrap()
    }

    /// Writes `cmd` at the SQ tail without ringing; returns its CID.
    fn push(&mut self, qid: u16, cmd: Cmd) -> u16 {
        let q = self.queue(qid);
        let cid = q.next_cid;
        q.next_cid = q.next_cid.wrapping_add(1);
        let cmd = cmd.cid(cid);
        q.sq.write_bytes(usize::from(q.tail) * 64, &cmd.0).unwrap();
        q.tail = (q.tail + 1) % q.sq_size;
        cid
    }

    fn ring(&mut self, qid: u16) {
        let tail = self.queue(qid).tail;
        self.bar
            .write32(self.doorbell(qid, false), u32::from(tail))
            .unwrap();
    }

    fn submit(&mut self, qid: u16, cmd: Cmd) -> u16 {
        let cid = self.push(qid, cmd);
        self.ring(qid);
        cid
    }

    /// Reaps every new completion on `qid`'s CQ and rings its head doorbell once.
    fn reap(&mut self, qid: u16) -> Vec<Cqe> {
        let mut out = Vec::new();
        let q = self.queue(qid);
        loop {
            let mut b = [0u8; 16];
            q.cq.read_bytes(usize::from(q.head) * 16, &mut b).unwrap();
            let e = Cqe::parse(&b);
            if e.phase != q.phase {
                break;
            }
            out.push(e);
            q.head = (q.head + 1) % q.cq_size;
            if q.head == 0 {
                q.phase = !q.phase;
            }
        }
        let head = q.head;
        if !out.is_empty() {
            self.bar
                .write32(self.doorbell(qid, true), u32::from(head))
                .unwrap();
        }
        out
    }

    /// Submits `cmd` and reaps exactly its completion.
    fn run(&mut self, qid: u16, cmd: Cmd) -> Cqe {
        let cid = self.submit(qid, cmd);
        let got = self.reap(qid);
        assert_eq!(got.len(), 1, "one completion for {cmd:?}: {got:?}");
        assert_eq!(got[0].cid, cid);
        assert_eq!(got[0].sqid, qid);
        got[0]
    }

    fn admin(&mut self, cmd: Cmd) -> Cqe {
        self.run(0, cmd)
    }

    /// Runs an admin command that returns `len` bytes into a fresh buffer.
    fn admin_read(&mut self, cmd: Cmd, len: usize) -> (Cqe, Vec<u8>) {
        let buf = self.alloc(len.max(PAGE));
        let e = self.admin(cmd.prp(buf.bus_addr().0, 0));
        let mut d = vec![0u8; len];
        buf.read_bytes(0, &mut d).unwrap();
        (e, d)
    }

    fn identify(&mut self, cns: u32, nsid: u32) -> (Cqe, Vec<u8>) {
        self.admin_read(Cmd::new(aop::IDENTIFY).nsid(nsid).dw(10, cns), PAGE)
    }

    fn set_queues(&mut self, nsq: u16, ncq: u16) -> Cqe {
        let v = u32::from(nsq - 1) | (u32::from(ncq - 1) << 16);
        self.admin(Cmd::new(aop::SET_FEATURES).dw(10, 0x07).dw(11, v))
    }

    /// Creates I/O queue pair `qid` of `size` entries on vector `iv`.
    fn create_pair(&mut self, qid: u16, size: u16, iv: u16) {
        let q = Queue::new(self, qid, size, size);
        let (cq, sq) = (q.cq.bus_addr().0, q.sq.bus_addr().0);
        self.queues.push(q);
        let qd = u32::from(qid) | (u32::from(size - 1) << 16);
        let e = self.admin(
            Cmd::new(aop::CREATE_CQ)
                .prp(cq, 0)
                .dw(10, qd)
                .dw(11, 0b11 | (u32::from(iv) << 16)),
        );
        assert!(e.ok(), "create CQ {qid}: {e:?}");
        let e = self.admin(
            Cmd::new(aop::CREATE_SQ)
                .prp(sq, 0)
                .dw(10, qd)
                .dw(11, 1 | (u32::from(qid) << 16)),
        );
        assert!(e.ok(), "create SQ {qid}: {e:?}");
    }

    fn get_log(&mut self, lid: u8, len: usize, rae: bool) -> (Cqe, Vec<u8>) {
        let numd = (len / 4 - 1) as u32;
        let d10 = u32::from(lid) | (u32::from(rae) << 15) | ((numd & 0xffff) << 16);
        let cmd = Cmd::new(aop::GET_LOG_PAGE)
            .nsid(u32::MAX)
            .dw(10, d10)
            .dw(11, numd >> 16);
        self.admin_read(cmd, len)
    }

    fn irq_count(&self, v: usize) -> u32 {
        self.irqs[v].load(Ordering::SeqCst)
    }
}

/// A host with the controller enabled, queues granted and I/O pair 1 (64 entries, vector 1).
fn ready(builder: NvmeBuilder) -> Host {
    let mut h = Host::new(builder);
    h.enable();
    assert!(h.set_queues(4, 4).ok());
    h.create_pair(1, 64, 1);
    h
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// A PRP list for `buf` (page-aligned, `pages` pages, data starting `off` bytes in) built in
/// host memory; returns (prp1, prp2) and keeps the list pages alive in `keep`.
fn prps(
    h: &Host,
    buf: &SimCoherent,
    off: usize,
    len: usize,
    keep: &mut Vec<SimCoherent>,
) -> (u64, u64) {
    prps_paged(h, buf, off, len, PAGE, keep)
}

/// [`prps`] for memory pages of `page` bytes (`buf` must be aligned to `page`).
fn prps_paged(
    h: &Host,
    buf: &SimCoherent,
    off: usize,
    len: usize,
    page: usize,
    keep: &mut Vec<SimCoherent>,
) -> (u64, u64) {
    let base = buf.bus_addr().0;
    let prp1 = base + off as u64;
    let first = (page - off % page).min(len);
    let rest = len - first;
    if rest == 0 {
        return (prp1, 0);
    }
    let pages: Vec<u64> = (0..rest.div_ceil(page))
        .map(|i| base + (off + first) as u64 + (i * page) as u64)
        .collect();
    if pages.len() == 1 {
        return (prp1, pages[0]);
    }
    // Chain list pages: a full page of entries, or one less and a pointer to the next.
    let slots = page / 8;
    let mut lists: Vec<SimCoherent> = Vec::new();
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < pages.len() {
        let left = pages.len() - i;
        let n = if left <= slots { left } else { slots - 1 };
        chunks.push(pages[i..i + n].to_vec());
        i += n;
    }
    for _ in &chunks {
        lists.push(h.sim.dma.alloc_coherent(page, page).unwrap());
    }
    for (k, chunk) in chunks.iter().enumerate() {
        for (j, p) in chunk.iter().enumerate() {
            lists[k].write64(j * 8, *p).unwrap();
        }
        if k + 1 < chunks.len() {
            lists[k]
                .write64((slots - 1) * 8, lists[k + 1].bus_addr().0)
                .unwrap();
        }
    }
    let prp2 = lists[0].bus_addr().0;
    keep.extend(lists);
    (prp1, prp2)
}

// ---- registers and the enable handshake ---------------------------------------------------

#[test]
fn capabilities_and_version_read_as_configured() {
    let h = Host::new(NvmeBuilder::new());
    let cap = h.cap();
    assert_eq!(cap & 0xffff, 2047, "MQES");
    assert_eq!((cap >> 16) & 1, 1, "CQR");
    assert_eq!((cap >> 24) & 0xff, 15, "TO");
    assert_eq!((cap >> 32) & 0xf, 0, "DSTRD");
    assert_eq!((cap >> 36) & 1, 1, "NSSRS");
    assert_eq!((cap >> 37) & 0xff, 1, "CSS: NVM");
    assert_eq!(((cap >> 48) & 0xf, (cap >> 52) & 0xf), (0, 4), "MPSMIN/MAX");
    assert_eq!(h.bar.read32(VS), Ok(0x0002_0000));
    assert_eq!(h.csts(), 0);
    assert_eq!(h.pci.bar_len(0), 0x4000);
    assert!(h.bar.read32(2).is_err(), "misaligned");

    let h = Host::new(
        NvmeBuilder::new()
            .mqes(1)
            .dstrd(4)
            .mps(1, 3)
            .timeout(2)
            .nssrs(false)
            .version(0x0001_0400),
    );
    let cap = h.cap();
    assert_eq!(cap & 0xffff, 1);
    assert_eq!((cap >> 32) & 0xf, 4);
    assert_eq!((cap >> 36) & 1, 0);
    assert_eq!(((cap >> 48) & 0xf, (cap >> 52) & 0xf), (1, 3));
    assert_eq!(h.bar.read32(VS), Ok(0x0001_0400));
    assert_eq!(h.stride, 64);
}

#[test]
fn ready_follows_enable_after_the_delay_and_reset_clears_it() {
    let mut h = Host::new(NvmeBuilder::new().ready_delay(Duration::from_millis(40)));
    let start = h.sim.clock.now();
    h.enable();
    let waited = h.sim.clock.now().saturating_duration_since(start);
    assert!(waited >= Duration::from_millis(40), "{waited:?}");
    assert!(waited < h.timeout());
    assert!(h.nvme.is_ready());

    // RDY is not 1 before the delay: check right after the write.
    let cc = h.bar.read32(CC).unwrap();
    h.bar.write32(CC, cc & !CC_EN).unwrap();
    assert_eq!(h.csts() & CSTS_RDY, CSTS_RDY, "reset takes the reset delay");
    h.wait_rdy(false).unwrap();
    h.bar.write32(CC, cc).unwrap();
    assert_eq!(h.csts() & CSTS_RDY, 0, "not ready at once");
    h.sim.clock.advance(Duration::from_millis(39));
    assert_eq!(h.csts() & CSTS_RDY, 0);
    h.sim.clock.advance(Duration::from_millis(1));
    assert_eq!(h.csts() & CSTS_RDY, CSTS_RDY);
}

#[test]
fn an_invalid_configuration_at_enable_is_a_fatal_status() {
    // MPS above MPSMAX.
    let mut h = Host::new(NvmeBuilder::new().mps(0, 1));
    assert_eq!(h.enable_with(8, 2 << 7), Err(WaitError::Failed(())));
    assert_eq!(h.csts() & (CSTS_CFS | CSTS_RDY), CSTS_CFS);
    // Reset recovers.
    h.bar.write32(CC, 0).unwrap();
    assert_eq!(h.csts() & CSTS_CFS, 0);
    h.enable_with(8, 1 << 7).unwrap();

    // ASQ aligned to 4 KiB but not to the 8 KiB memory page; ASQ's low 12 bits are
    // reserved and read back as 0.
    let h = Host::new(NvmeBuilder::new());
    let q = h.sim.dma.alloc_coherent(4 * PAGE, 2 * PAGE).unwrap();
    h.bar.write32(AQA, 0x0007_0007).unwrap();
    h.bar
        .write64(ASQ, q.bus_addr().0 + PAGE as u64 + 64)
        .unwrap();
    assert_eq!(h.bar.read64(ASQ), Ok(q.bus_addr().0 + PAGE as u64));
    h.bar.write64(ACQ, q.bus_addr().0).unwrap();
    h.bar
        .write32(CC, CC_EN | CC_ENTRY_SIZES | (1 << 7))
        .unwrap();
    assert_eq!(h.csts() & CSTS_CFS, CSTS_CFS, "ASQ not page aligned");
    // A one-entry admin queue, missing entry sizes, an unsupported CSS.
    for (aqa, cc) in [
        (0x0000_0007, CC_EN | CC_ENTRY_SIZES),
        (0x0007_0007, CC_EN),
        (0x0007_0007, CC_EN | CC_ENTRY_SIZES | (6 << 4)),
    ] {
        h.bar.write32(CC, 0).unwrap();
        h.wait_rdy(false).unwrap();
        assert_eq!(h.csts(), 0);
        h.bar.write32(AQA, aqa).unwrap();
        h.bar.write64(ASQ, q.bus_addr().0).unwrap();
        h.bar.write32(CC, cc).unwrap();
        assert_eq!(h.csts() & CSTS_CFS, CSTS_CFS, "AQA {aqa:#x} CC {cc:#x}");
    }
}

#[test]
fn enabling_before_ready_cleared_breaks_the_handshake() {
    let mut h = Host::new(NvmeBuilder::new().reset_delay(Duration::from_millis(5)));
    h.enable();
    let cc = h.bar.read32(CC).unwrap();
    h.bar.write32(CC, cc & !CC_EN).unwrap();
    h.bar.write32(CC, cc).unwrap();
    assert_eq!(h.csts() & CSTS_CFS, CSTS_CFS);
}

#[test]
fn shutdown_reports_processing_then_complete() {
    let mut h = Host::new(NvmeBuilder::new().shutdown_delay(Duration::from_millis(3)));
    h.enable();
    let cc = h.bar.read32(CC).unwrap();
    h.bar.write32(CC, cc | (1 << 14)).unwrap();
    assert_eq!((h.csts() >> 2) & 3, 0b01);
    h.sim.clock.advance(Duration::from_millis(3));
    assert_eq!((h.csts() >> 2) & 3, 0b10);
    // After shutdown the controller ignores commands; a reset brings it back.
    let before = h.nvme.counters().admin(aop::IDENTIFY);
    h.submit(0, Cmd::new(aop::IDENTIFY).dw(10, 1));
    assert_eq!(h.nvme.counters().admin(aop::IDENTIFY), before);
    h.disable();
    assert_eq!((h.csts() >> 2) & 3, 0);
    h.enable();
    let (e, _) = h.identify(1, 0);
    assert!(e.ok());
}

#[test]
fn subsystem_reset_resets_everything_and_sets_nssro() {
    let h = ready(NvmeBuilder::new());
    h.bar.write32(NSSR, 0x1234).unwrap();
    assert!(h.nvme.is_ready(), "only the magic value resets");
    h.bar.write32(NSSR, 0x4e56_4d65).unwrap();
    assert_eq!(h.bar.read32(CC), Ok(0));
    assert_eq!(h.bar.read32(AQA), Ok(0));
    h.wait_rdy(false).unwrap();
    assert_eq!(h.csts() & 0x10, 0x10, "NSSRO");
    assert!(h.nvme.io_submission_queues().is_empty());
    h.bar.write32(CSTS, 0x10).unwrap();
    assert_eq!(h.csts() & 0x10, 0, "NSSRO is write-1-to-clear");

    // Without NSSRS the register does nothing.
    let h = ready(NvmeBuilder::new().nssrs(false));
    h.bar.write32(NSSR, 0x4e56_4d65).unwrap();
    assert!(h.nvme.is_ready());
}

#[test]
fn controller_reset_deletes_io_queues_and_drops_aers() {
    let mut h = ready(NvmeBuilder::new());
    h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    assert_eq!(h.nvme.outstanding_aers(), 1);
    h.disable();
    assert!(h.nvme.io_submission_queues().is_empty());
    assert!(h.nvme.io_completion_queues().is_empty());
    assert_eq!(h.nvme.outstanding_aers(), 0);
    h.enable();
    // Queue 1 is gone: deleting it fails, creating it again works.
    let e = h.admin(Cmd::new(aop::DELETE_SQ).dw(10, 1));
    assert_eq!(e.status, specific::INVALID_QUEUE_ID);
    h.create_pair(1, 16, 1);
}

// ---- identify and features ------------------------------------------------------------------

#[test]
fn identify_controller_reports_the_configuration() {
    let mut h = Host::new(
        NvmeBuilder::new()
            .mdts(5)
            .identity("SN123", "Model X", "FW1")
            .nn(1000)
            .cntlid(7)
            .acl(1)
            .aerl(2)
            .sgls(false)
            .doorbell_buffer(false)
            .ns_management(false, false)
            .oncs(0xffff)
            .maxcmd(128)
            .keep_alive(10),
    );
    h.enable();
    let (e, d) = h.identify(1, 0);
    assert!(e.ok());
    let u16_at = |o: usize| u16::from_le_bytes([d[o], d[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    assert_eq!(u16_at(0), 0x1b36);
    assert_eq!(u16_at(2), 0x1af4);
    assert_eq!(&d[4..24], b"SN123               ");
    assert_eq!(&d[24..31], b"Model X");
    assert_eq!(&d[64..72], b"FW1     ");
    assert_eq!(d[77], 5, "MDTS");
    assert_eq!(u16_at(78), 7, "CNTLID");
    assert_eq!(u32_at(80), 0x0002_0000, "VER");
    assert_eq!(u16_at(256), 0x0002, "OACS: format only");
    assert_eq!((d[258], d[259]), (1, 2), "ACL, AERL");
    assert_eq!(d[262], 63, "ELPE");
    assert_eq!(d[263], 0, "NPSS");
    assert_eq!((u16_at(266), u16_at(268)), (343, 373));
    assert_eq!(u16_at(320), 10, "KAS");
    assert_eq!((d[512], d[513]), (0x66, 0x44));
    assert_eq!(u16_at(514), 128);
    assert_eq!(u32_at(516), 1000, "NN");
    assert_eq!(u16_at(520), 0xdd, "ONCS: only what the model implements");
    assert_eq!(d[525] & 1, 1, "VWC");
    assert_eq!(u32_at(536), 0, "SGLS");
    assert!(d[768..].starts_with(b"nqn."));

    let mut h = ready(NvmeBuilder::new());
    let (_, d) = h.identify(1, 0);
    assert_eq!(
        u16::from_le_bytes([d[256], d[257]]),
        0x10a,
        "format, ns mgmt, dbbuf"
    );
    assert_eq!(u32::from_le_bytes(d[536..540].try_into().unwrap()), 1);
}

#[test]
fn identify_namespaces_lists_and_descriptors() {
    let mut h = ready(
        NvmeBuilder::new()
            .namespace(3, 4096, 1 << 18)
            .namespace(70, 512, 1000)
            .namespace_spec(NamespaceSpec {
                attached: false,
                ..NamespaceSpec::new(9, 512, 100)
            }),
    );
    let (e, d) = h.identify(2, 0);
    assert!(e.ok());
    let ids: Vec<u32> = d
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .take_while(|v| *v != 0)
        .collect();
    assert_eq!(ids, [1, 3, 70], "active only, ascending");
    let (_, d) = h.identify(2, 3);
    assert_eq!(u32::from_le_bytes(d[0..4].try_into().unwrap()), 70);
    assert_eq!(
        h.identify(2, 0xffff_fffe).0.status,
        generic::INVALID_NAMESPACE
    );

    let (e, d) = h.identify(0, 3);
    assert!(e.ok());
    assert_eq!(
        u64::from_le_bytes(d[0..8].try_into().unwrap()),
        1 << 18,
        "NSZE"
    );
    let flbas = usize::from(d[26] & 0xf);
    let lbaf = u32::from_le_bytes(d[128 + 4 * flbas..132 + 4 * flbas].try_into().unwrap());
    assert_eq!((lbaf >> 16) & 0xff, 12, "4 KiB blocks");
    assert_eq!(d[25], 1, "NLBAF: two formats");

    // Inactive but valid NSIDs read zeroes; beyond NN is invalid.
    let (e, d) = h.identify(0, 9);
    assert!(e.ok() && d.iter().all(|b| *b == 0));
    assert_eq!(h.identify(0, 0).0.status, generic::INVALID_NAMESPACE);
    assert_eq!(h.identify(0, 257).0.status, generic::INVALID_NAMESPACE);
    // The allocated list (CNS 10h) includes the detached one.
    let (_, d) = h.identify(0x10, 0);
    assert_eq!(u32::from_le_bytes(d[8..12].try_into().unwrap()), 9);

    let (e, d) = h.identify(3, 70);
    assert!(e.ok());
    let mut kinds = Vec::new();
    let mut o = 0;
    while d[o] != 0 {
        kinds.push((d[o], d[o + 1]));
        o += 4 + usize::from(d[o + 1]);
    }
    assert_eq!(kinds, [(1, 8), (2, 16), (3, 16), (4, 1)]);
    assert_eq!(h.identify(3, 9).0.status, generic::INVALID_NAMESPACE);
    assert_eq!(h.identify(0x42, 0).0.status, generic::INVALID_FIELD);
}

#[test]
fn number_of_queues_grants_the_minimum_and_locks_once_queues_exist() {
    let mut h = Host::new(NvmeBuilder::new().max_io_queues(8));
    h.enable();
    let e = h.set_queues(100, 3);
    assert!(e.ok());
    assert_eq!(e.dw0, 7 | (2 << 16), "0's based NSQA 8, NCQA 3");
    let e = h.admin(Cmd::new(aop::GET_FEATURES).dw(10, 0x07));
    assert_eq!(e.dw0, 7 | (2 << 16));
    let e = h.admin(Cmd::new(aop::SET_FEATURES).dw(10, 0x07).dw(11, 0xffff));
    assert_eq!(e.status, generic::INVALID_FIELD);
    h.create_pair(3, 8, 0);
    // CQ 4 is beyond NCQA.
    let cq = h.alloc(PAGE);
    let e = h.admin(
        Cmd::new(aop::CREATE_CQ)
            .prp(cq.bus_addr().0, 0)
            .dw(10, 4 | (7 << 16))
            .dw(11, 1),
    );
    assert_eq!(e.status, specific::INVALID_QUEUE_ID);
    assert_eq!(h.set_queues(2, 2).status, generic::COMMAND_SEQUENCE_ERROR);
}

#[test]
fn queue_creation_and_deletion_are_validated() {
    let mut h = Host::new(NvmeBuilder::new().mqes(15).vectors(4));
    h.enable();
    assert!(h.set_queues(4, 4).ok());
    let mem = h.alloc(PAGE);
    let a = mem.bus_addr().0;
    let cq = |qid: u32, size: u32, d11: u32, prp: u64| {
        Cmd::new(aop::CREATE_CQ)
            .prp(prp, 0)
            .dw(10, qid | ((size - 1) << 16))
            .dw(11, d11)
    };
    let sq = |qid: u32, size: u32, cqid: u32, prp: u64| {
        Cmd::new(aop::CREATE_SQ)
            .prp(prp, 0)
            .dw(10, qid | ((size - 1) << 16))
            .dw(11, 1 | (cqid << 16))
    };
    let cases = [
        (cq(0, 8, 1, a), specific::INVALID_QUEUE_ID),
        (cq(5, 8, 1, a), specific::INVALID_QUEUE_ID),
        (cq(1, 1, 1, a), specific::INVALID_QUEUE_SIZE),
        (cq(1, 17, 1, a), specific::INVALID_QUEUE_SIZE),
        (cq(1, 8, 0, a), generic::INVALID_FIELD),
        (cq(1, 8, 1, a + 64), generic::PRP_OFFSET_INVALID),
        (cq(1, 8, 1 | (4 << 16), a), specific::INVALID_VECTOR),
        (sq(1, 8, 1, a), specific::CQ_INVALID),
        (sq(1, 8, 0, a), specific::CQ_INVALID),
    ];
    for (cmd, want) in cases {
        assert_eq!(h.admin(cmd).status, want, "{cmd:?}");
    }
    assert!(h.admin(cq(1, 16, 0b11, a)).ok());
    assert_eq!(
        h.admin(cq(1, 16, 1, a)).status,
        specific::INVALID_QUEUE_ID,
        "exists"
    );
    let s = h.alloc(PAGE);
    assert!(h.admin(sq(1, 16, 1, s.bus_addr().0)).ok());
    let del_cq = Cmd::new(aop::DELETE_CQ).dw(10, 1);
    assert_eq!(h.admin(del_cq).status, specific::INVALID_QUEUE_DELETION);
    assert!(h.admin(Cmd::new(aop::DELETE_SQ).dw(10, 1)).ok());
    assert!(h.admin(del_cq).ok());
    assert_eq!(h.admin(del_cq).status, specific::INVALID_QUEUE_ID);
    assert_eq!(
        h.admin(Cmd::new(aop::DELETE_CQ).dw(10, 0)).status,
        specific::INVALID_QUEUE_ID
    );
    assert_eq!(h.admin(Cmd::new(0x7f)).status, generic::INVALID_OPCODE);
    assert_eq!(h.nvme.counters().admin(0x7f), 1);
}

#[test]
fn features_read_back_and_unknown_ones_are_invalid() {
    let mut h = ready(NvmeBuilder::new());
    let set = |f: u32, v: u32| Cmd::new(aop::SET_FEATURES).dw(10, f).dw(11, v);
    let get = |f: u32| Cmd::new(aop::GET_FEATURES).dw(10, f);
    assert_eq!(h.admin(get(0x06)).dw0, 1, "write cache enabled by default");
    assert!(h.admin(set(0x06, 0)).ok());
    assert_eq!(h.admin(get(0x06)).dw0, 0);
    assert!(h.admin(set(0x08, 0x0a05)).ok());
    assert_eq!(h.admin(get(0x08)).dw0, 0x0a05);
    assert!(h.admin(set(0x01, 0x0302_0103)).ok());
    assert_eq!(h.admin(get(0x01)).dw0, 0x0302_0103);
    assert_eq!(
        h.admin(set(0x02, 1)).status,
        generic::INVALID_FIELD,
        "PS1 > NPSS"
    );
    assert_eq!(
        h.admin(get(0x04)).dw0,
        343,
        "over threshold defaults to WCTEMP"
    );
    assert_eq!(h.admin(get(0x0c)).status, generic::INVALID_FIELD, "no APST");
    assert_eq!(h.admin(set(0x7e, 0)).status, generic::INVALID_FIELD);
    assert_eq!(
        h.admin(set(0x06, 1).nsid(1)).status,
        specific::NOT_NAMESPACE_SPECIFIC
    );
    assert_eq!(
        h.admin(get(0x06 | (1 << 8))).status,
        generic::INVALID_FIELD,
        "no save/select"
    );

    // Timestamp: set by the host, then it runs with the virtual clock.
    let buf = h.alloc(PAGE);
    buf.write64(0, 1_000_000).unwrap();
    assert!(h.admin(set(0x0e, 0).prp(buf.bus_addr().0, 0)).ok());
    h.sim.clock.advance(Duration::from_millis(250));
    let (e, d) = h.admin_read(get(0x0e), 8);
    assert!(e.ok());
    let ts = u64::from_le_bytes(d.try_into().unwrap());
    assert_eq!(ts & ((1 << 48) - 1), 1_000_250);
    assert_eq!((ts >> 49) & 7, 1, "origin: set by host");
}

#[test]
fn temperature_over_threshold_raises_a_smart_event() {
    let mut h = ready(NvmeBuilder::new());
    // Enable temperature warnings in Async Event Configuration.
    assert!(h
        .admin(Cmd::new(aop::SET_FEATURES).dw(10, 0x0b).dw(11, 0x02))
        .ok());
    let cid = h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    assert!(h.reap(0).is_empty());
    h.nvme.set_temperature(350);
    let got = h.reap(0);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].cid, cid);
    assert_eq!(
        got[0].dw0,
        1 | (1 << 8) | (2 << 16),
        "SMART, temperature, log 02h"
    );
    let (e, d) = h.get_log(2, 512, false);
    assert!(e.ok());
    assert_eq!(d[0] & 0x02, 0x02, "critical warning: temperature");
    assert_eq!(u16::from_le_bytes([d[1], d[2]]), 350);
    // Raising the threshold clears the condition.
    assert!(h
        .admin(Cmd::new(aop::SET_FEATURES).dw(10, 0x04).dw(11, 360))
        .ok());
    let (_, d) = h.get_log(2, 512, false);
    assert_eq!(d[0] & 0x02, 0);
}

// ---- data path ------------------------------------------------------------------------------

#[test]
fn write_and_read_back_through_prp_lists() {
    let mut h = ready(NvmeBuilder::new().mdts(0));
    // 2.5 MiB starting 512 bytes into a page: PRP1 with an offset, then a chained list.
    let len = 5 << 19;
    let blocks = (len / 512) as u32;
    let data = pattern(len, 7);
    let wbuf = h.alloc(len + PAGE);
    wbuf.write_bytes(512, &data).unwrap();
    let mut keep = Vec::new();
    let (p1, p2) = prps(&h, &wbuf, 512, len, &mut keep);
    let e = h.run(
        1,
        Cmd::rw(iop::WRITE, 1, 100, blocks)
            .prp(p1, p2)
            .dw(12, (blocks - 1) | (1 << 30)),
    );
    assert!(e.ok(), "{e:?}");
    assert_eq!(h.nvme.read_block(1, 100).unwrap(), data[..512]);
    assert_eq!(
        h.nvme.read_block(1, 100 + u64::from(blocks) - 1).unwrap(),
        data[len - 512..]
    );
    let rbuf = h.alloc(len + PAGE);
    let (p1, p2) = prps(&h, &rbuf, 512, len, &mut keep);
    let e = h.run(1, Cmd::rw(iop::READ, 1, 100, blocks).prp(p1, p2));
    assert!(e.ok(), "{e:?}");
    let mut back = vec![0u8; len];
    rbuf.read_bytes(512, &mut back).unwrap();
    assert!(back == data);
    assert!(h.irq_count(1) >= 2, "I/O completions interrupt on vector 1");

    // Two pages: PRP2 is a data pointer.
    let b = h.alloc(2 * PAGE);
    b.write_bytes(0, &pattern(2 * PAGE, 1)).unwrap();
    let e = h.run(
        1,
        Cmd::rw(iop::WRITE, 1, 0, 16).prp(b.bus_addr().0, b.bus_addr().0 + PAGE as u64),
    );
    assert!(e.ok());
    assert_eq!(
        h.nvme.read_block(1, 8).unwrap(),
        pattern(2 * PAGE, 1)[PAGE..PAGE + 512]
    );
}

#[test]
fn larger_memory_pages_change_the_prp_rules() {
    // 8 KiB memory pages: CC.MPS 1, within MPSMIN 0..MPSMAX 2.
    let page = 2 * PAGE;
    let mut h = Host::new(NvmeBuilder::new().mps(0, 2).mdts(0));
    h.page = page;
    h.enable_with(16, 1 << 7).unwrap();
    assert!(h.set_queues(1, 1).ok());
    h.create_pair(1, 16, 1);
    // 2 MiB from 1 KiB into a page: 256 data pages, so one 1024-slot list page, no chain.
    let len = 2 << 20;
    let data = pattern(len, 5);
    let b = h.alloc(len + page);
    b.write_bytes(1024, &data).unwrap();
    let mut keep = Vec::new();
    let (p1, p2) = prps_paged(&h, &b, 1024, len, page, &mut keep);
    let w = Cmd::rw(iop::WRITE, 1, 0, (len / 512) as u32).prp(p1, p2);
    assert!(h.run(1, w).ok());
    assert_eq!(h.nvme.read_block(1, 15).unwrap(), data[15 * 512..16 * 512]);
    // A 4 KiB-aligned PRP2 data pointer is misaligned for 8 KiB pages.
    let two = Cmd::rw(iop::READ, 1, 0, 24).prp(b.bus_addr().0, b.bus_addr().0 + PAGE as u64);
    assert_eq!(h.run(1, two).status, generic::PRP_OFFSET_INVALID);
    let two = Cmd::rw(iop::READ, 1, 0, 24).prp(b.bus_addr().0 + 4096, b.bus_addr().0 + page as u64);
    assert!(h.run(1, two).ok(), "PRP1 may start anywhere in its page");
}

#[test]
fn misplaced_prp_offsets_are_rejected() {
    let mut h = ready(NvmeBuilder::new());
    let b = h.alloc(4 * PAGE);
    let a = b.bus_addr().0;
    let list = h.alloc(PAGE);
    list.write64(0, a + PAGE as u64).unwrap();
    list.write64(8, a + 2 * PAGE as u64 + 8).unwrap();
    let cases = [
        // PRP1 not dword aligned.
        Cmd::rw(iop::READ, 1, 0, 1).prp(a + 2, 0),
        // PRP2 data pointer with an offset.
        Cmd::rw(iop::READ, 1, 0, 16).prp(a, a + PAGE as u64 + 512),
        // The second list entry has an offset.
        Cmd::rw(iop::READ, 1, 0, 24).prp(a, list.bus_addr().0),
    ];
    for c in cases {
        assert_eq!(h.run(1, c).status, generic::PRP_OFFSET_INVALID, "{c:?}");
    }
    // A list pointer into unmapped memory: Data Transfer Error.
    let e = h.run(1, Cmd::rw(iop::READ, 1, 0, 24).prp(a, 0xdead_0000));
    assert_eq!(e.status, generic::DATA_TRANSFER_ERROR);
    // A data page that is not there.
    let e = h.run(1, Cmd::rw(iop::WRITE, 1, 0, 16).prp(a, 0x10_0000_0000));
    assert_eq!(e.status, generic::DATA_TRANSFER_ERROR);
    assert!(!h.sim.space.take_faults().is_empty());
}

#[test]
fn sgl_data_blocks_segments_and_length_checks() {
    let mut h = ready(NvmeBuilder::new());
    let data = pattern(3 * 512, 3);
    let a = h.alloc(PAGE);
    let b = h.alloc(PAGE);
    a.write_bytes(0, &data[..1024]).unwrap();
    b.write_bytes(100, &data[1024..]).unwrap();
    // A segment of two data blocks and a last-segment pointer to one more.
    let seg = h.alloc(PAGE);
    let last = h.alloc(PAGE);
    seg.write_bytes(0, &sgl_desc(SGL_DATA, a.bus_addr().0, 600))
        .unwrap();
    seg.write_bytes(16, &sgl_desc(SGL_DATA, a.bus_addr().0 + 600, 424))
        .unwrap();
    seg.write_bytes(32, &sgl_desc(SGL_LAST, last.bus_addr().0, 16))
        .unwrap();
    last.write_bytes(0, &sgl_desc(SGL_DATA, b.bus_addr().0 + 100, 512))
        .unwrap();
    let w = Cmd::rw(iop::WRITE, 1, 10, 3).sgl(sgl_desc(SGL_SEGMENT, seg.bus_addr().0, 48));
    assert!(h.run(1, w).ok());
    assert_eq!(h.nvme.read_block(1, 12).unwrap(), data[1024..]);
    // Read it back into one data block.
    let r = h.alloc(PAGE);
    let e = h.run(
        1,
        Cmd::rw(iop::READ, 1, 10, 3).sgl(sgl_desc(SGL_DATA, r.bus_addr().0, 1536)),
    );
    assert!(e.ok());
    let mut back = vec![0; 1536];
    r.read_bytes(0, &mut back).unwrap();
    assert_eq!(back, data);

    let ra = r.bus_addr().0;
    let short = Cmd::rw(iop::READ, 1, 0, 2).sgl(sgl_desc(SGL_DATA, ra, 1000));
    assert_eq!(h.run(1, short).status, generic::DATA_SGL_LENGTH_INVALID);
    let long = Cmd::rw(iop::READ, 1, 0, 1).sgl(sgl_desc(SGL_DATA, ra, 1000));
    assert_eq!(h.run(1, long).status, generic::DATA_SGL_LENGTH_INVALID);
    let bad = Cmd::rw(iop::READ, 1, 0, 1).sgl(sgl_desc(0x1, ra, 512));
    assert_eq!(
        h.run(1, bad).status,
        generic::SGL_TYPE_INVALID,
        "bit bucket"
    );
    // A segment pointer that is not last in its segment.
    seg.write_bytes(0, &sgl_desc(SGL_SEGMENT, last.bus_addr().0, 16))
        .unwrap();
    let c = Cmd::rw(iop::READ, 1, 0, 1).sgl(sgl_desc(SGL_SEGMENT, seg.bus_addr().0, 48));
    assert_eq!(h.run(1, c).status, generic::INVALID_SGL_SEGMENT);
    // A segment that points to itself: the walk is bounded.
    let looped = h.alloc(PAGE);
    looped
        .write_bytes(0, &sgl_desc(SGL_SEGMENT, looped.bus_addr().0, 16))
        .unwrap();
    let c = Cmd::rw(iop::READ, 1, 0, 1).sgl(sgl_desc(SGL_SEGMENT, looped.bus_addr().0, 16));
    assert_eq!(h.run(1, c).status, generic::INVALID_SGL_COUNT);
    // Admin commands use PRPs only.
    let c = Cmd::new(aop::IDENTIFY)
        .dw(10, 1)
        .sgl(sgl_desc(SGL_DATA, ra, 4096));
    assert_eq!(h.admin(c).status, generic::INVALID_FIELD);

    // Without SGL support PSDT 01b is an invalid field.
    let mut h = ready(NvmeBuilder::new().sgls(false));
    let c = Cmd::rw(iop::READ, 1, 0, 1).sgl(sgl_desc(SGL_DATA, ra, 512));
    assert_eq!(h.run(1, c).status, generic::INVALID_FIELD);
}

#[test]
fn mdts_range_and_namespace_are_checked() {
    let mut h = ready(NvmeBuilder::new().mdts(2).namespace(5, 4096, 64));
    let b = h.alloc(8 * PAGE);
    let mut keep = Vec::new();
    let (p1, p2) = prps(&h, &b, 0, 4 * PAGE, &mut keep);
    assert!(
        h.run(1, Cmd::rw(iop::READ, 5, 0, 4).prp(p1, p2)).ok(),
        "16 KiB is MDTS"
    );
    let (p1, p2) = prps(&h, &b, 0, 5 * PAGE, &mut keep);
    let e = h.run(1, Cmd::rw(iop::READ, 5, 0, 5).prp(p1, p2));
    assert_eq!(e.status, generic::INVALID_FIELD);
    let e = h.run(1, Cmd::rw(iop::READ, 5, 63, 2).prp(p1, p2));
    assert_eq!(e.status, generic::LBA_OUT_OF_RANGE);
    let e = h.run(1, Cmd::rw(iop::READ, 5, u64::MAX, 1).prp(p1, p2));
    assert_eq!(e.status, generic::LBA_OUT_OF_RANGE);
    for nsid in [0, 2, 6, u32::MAX] {
        let e = h.run(1, Cmd::rw(iop::READ, nsid, 0, 1).prp(p1, p2));
        assert_eq!(e.status, generic::INVALID_NAMESPACE, "NSID {nsid}");
    }
    assert_eq!(h.run(1, Cmd::new(0x7d)).status, generic::INVALID_OPCODE);
    assert!(h.run(1, Cmd::new(iop::FLUSH).nsid(u32::MAX)).ok());
    assert!(h.run(1, Cmd::new(iop::FLUSH).nsid(5)).ok());
    assert_eq!(
        h.run(1, Cmd::new(iop::FLUSH).nsid(4)).status,
        generic::INVALID_NAMESPACE
    );
    // Write Zeroes is not bound by MDTS.
    assert!(h.run(1, Cmd::rw(iop::WRITE_ZEROES, 5, 0, 64)).ok());
    assert_eq!(h.nvme.counters().io(iop::READ), 8);
}

#[test]
fn deallocated_and_zeroed_blocks_read_as_zeroes() {
    let mut h = ready(NvmeBuilder::new().namespace(2, 4096, 1 << 18));
    let b = h.alloc(4 * PAGE);
    b.write_bytes(0, &pattern(4 * PAGE, 9)).unwrap();
    let mut keep = Vec::new();
    let (p1, p2) = prps(&h, &b, 0, 4 * PAGE, &mut keep);
    assert!(h.run(1, Cmd::rw(iop::WRITE, 2, 1000, 4).prp(p1, p2)).ok());
    assert!(h.run(1, Cmd::rw(iop::WRITE, 2, 2000, 4).prp(p1, p2)).ok());
    // Deallocate 1001..1003 and 2000, through a two-range DSM.
    let r = h.alloc(PAGE);
    r.write32(4, 2).unwrap();
    r.write64(8, 1001).unwrap();
    r.write32(16 + 4, 1).unwrap();
    r.write64(16 + 8, 2000).unwrap();
    let dsm = Cmd::new(iop::DSM)
        .nsid(2)
        .prp(r.bus_addr().0, 0)
        .dw(10, 1)
        .dw(11, 1 << 2);
    assert!(h.run(1, dsm).ok());
    assert_eq!(h.nvme.read_block(2, 1001).unwrap(), vec![0; 4096]);
    assert_eq!(
        h.nvme.read_block(2, 1003).unwrap(),
        pattern(4 * PAGE, 9)[3 * PAGE..]
    );
    assert!(h
        .run(
            1,
            Cmd::rw(iop::WRITE_ZEROES, 2, 2001, 2).dw(12, 1 | (1 << 25))
        )
        .ok());
    let rb = h.alloc(4 * PAGE);
    let (p1, p2) = prps(&h, &rb, 0, 4 * PAGE, &mut keep);
    assert!(h.run(1, Cmd::rw(iop::READ, 2, 2000, 4).prp(p1, p2)).ok());
    let mut back = vec![0; 4 * PAGE];
    rb.read_bytes(0, &mut back).unwrap();
    assert!(back[..3 * PAGE].iter().all(|b| *b == 0));
    assert_eq!(back[3 * PAGE..], pattern(4 * PAGE, 9)[3 * PAGE..]);
    // A range past the end fails and changes nothing.
    r.write64(8, (1 << 18) - 1).unwrap();
    let e = h.run(1, dsm);
    assert_eq!(e.status, generic::LBA_OUT_OF_RANGE);
    assert_ne!(h.nvme.read_block(2, 1000).unwrap(), vec![0; 4096]);
}

#[test]
fn a_full_completion_queue_is_never_overrun() {
    // MQES 1: two-entry queues, so each holds one entry at a time.
    let mut h = Host::new(NvmeBuilder::new().mqes(1));
    h.enable();
    assert!(h.set_queues(1, 1).ok());
    h.create_pair(1, 2, 1);
    let a = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    let b = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert_eq!(
        h.nvme.counters().io(iop::FLUSH),
        1,
        "b waits for room in the CQ"
    );
    let first = h.reap(1);
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].cid, first[0].sqhd), (a, 1));
    // Reaping rang the CQ head doorbell, which let b through.
    assert_eq!(h.nvme.counters().io(iop::FLUSH), 2);
    let second = h.reap(1);
    assert_eq!((second[0].cid, second[0].sqhd), (b, 0));
    let c = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    let third = h.reap(1);
    assert_eq!(third[0].cid, c);
    let phases = [first[0].phase, second[0].phase, third[0].phase];
    assert_eq!(phases, [true, true, false], "the phase flips on each wrap");
}

#[test]
fn sqhd_reports_the_consumed_entries() {
    let mut h = ready(NvmeBuilder::new());
    for _ in 0..5 {
        h.push(1, Cmd::new(iop::FLUSH).nsid(1));
    }
    h.ring(1);
    let got = h.reap(1);
    assert_eq!(got.len(), 5);
    let sqhd: Vec<u16> = got.iter().map(|e| e.sqhd).collect();
    assert_eq!(sqhd, [1, 2, 3, 4, 5], "the head when each entry was posted");
}

// ---- admin extras ---------------------------------------------------------------------------

#[test]
fn async_events_are_held_until_requested_and_masked_until_read() {
    let mut h = ready(NvmeBuilder::new().aerl(1));
    let a = h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    let b = h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    assert!(h.reap(0).is_empty());
    let c = h.run(0, Cmd::new(aop::ASYNC_EVENT));
    assert_eq!(c.status, specific::AER_LIMIT);
    let vendor = AsyncEvent {
        event_type: 7,
        info: 0x42,
        log_page: 0xc0,
    };
    h.nvme.raise_event(vendor);
    h.nvme.raise_event(vendor);
    let got = h.reap(0);
    assert_eq!(got.len(), 1, "the second event of the type waits: {got:?}");
    assert_eq!((got[0].cid, got[0].dw0), (a, vendor.dw0()));
    // Namespace change notices are off by default (AEC bit 8).
    assert!(h.nvme.set_attached(1, false));
    assert!(h.reap(0).is_empty());
    assert!(h
        .admin(Cmd::new(aop::SET_FEATURES).dw(10, 0x0b).dw(11, 1 << 8))
        .ok());
    assert!(h.nvme.set_attached(1, true));
    let got = h.reap(0);
    assert_eq!((got[0].cid, got[0].dw0), (b, 0x0004_0002));
    let (e, d) = h.get_log(4, 4096, false);
    assert!(e.ok());
    assert_eq!(u32::from_le_bytes(d[0..4].try_into().unwrap()), 1);
    let (_, d) = h.get_log(4, 4096, false);
    assert_eq!(
        u32::from_le_bytes(d[0..4].try_into().unwrap()),
        0,
        "cleared on read"
    );
    // The vendor event is still masked; reading its log page is not possible, so it stays.
    h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    assert!(h.reap(0).is_empty());
}

#[test]
fn namespace_management_and_attachment() {
    let mut h = ready(
        NvmeBuilder::new()
            .capacity(1 << 30)
            .namespace(1, 512, 1 << 20),
    );
    let idns = h.alloc(PAGE);
    idns.write64(0, 1 << 17).unwrap();
    idns.write64(8, 1 << 17).unwrap();
    idns.write_bytes(26, &[1]).unwrap(); // 4 KiB format
    let e = h.admin(Cmd::new(aop::NS_MANAGEMENT).prp(idns.bus_addr().0, 0));
    assert!(e.ok(), "{e:?}");
    let nsid = e.dw0;
    assert_eq!(nsid, 2);
    // Too big for what is left.
    let e = h.admin(Cmd::new(aop::NS_MANAGEMENT).prp(idns.bus_addr().0, 0));
    assert_eq!(e.status, specific::NS_INSUFFICIENT_CAPACITY);
    assert_eq!(
        h.identify(2, 0).1[0..4],
        [1, 0, 0, 0],
        "still only NSID 1 active"
    );

    let list = h.alloc(PAGE);
    list.write_bytes(0, &[1, 0, 0, 0]).unwrap(); // one controller: CNTLID 0
    let attach = |sel: u32| {
        Cmd::new(aop::NS_ATTACHMENT)
            .nsid(nsid)
            .dw(10, sel)
            .prp(list.bus_addr().0, 0)
    };
    assert!(h.admin(attach(0)).ok());
    assert_eq!(h.admin(attach(0)).status, specific::NS_ALREADY_ATTACHED);
    assert_eq!(h.nvme.active_namespaces(), [1, 2]);
    let b = h.alloc(PAGE);
    assert!(h
        .run(1, Cmd::rw(iop::WRITE, nsid, 5, 1).prp(b.bus_addr().0, 0))
        .ok());
    assert!(h.admin(attach(1)).ok());
    assert_eq!(h.admin(attach(1)).status, specific::NS_NOT_ATTACHED);
    list.write_bytes(2, &[9, 0]).unwrap();
    assert_eq!(h.admin(attach(0)).status, specific::CONTROLLER_LIST_INVALID);
    let e = h.admin(Cmd::new(aop::NS_MANAGEMENT).nsid(nsid).dw(10, 1));
    assert!(e.ok());
    assert_eq!(h.nvme.namespace_geometry(nsid), None);
    let (_, d) = h.get_log(4, 4096, false);
    assert_eq!(u32::from_le_bytes(d[0..4].try_into().unwrap()), 2);

    // QEMU 7.2's quirk: OACS bit 3 set, create/delete unsupported.
    let mut h = ready(NvmeBuilder::new().ns_management(true, false));
    let e = h.admin(Cmd::new(aop::NS_MANAGEMENT).prp(idns.bus_addr().0, 0));
    assert_eq!(e.status, generic::INVALID_OPCODE);
}

#[test]
fn format_changes_the_block_size_and_erases() {
    let mut h = ready(NvmeBuilder::new().namespace(1, 512, 1 << 12));
    assert!(h.nvme.write_block(1, 3, &[0xaa; 512]));
    let e = h.admin(Cmd::new(aop::FORMAT_NVM).nsid(1).dw(10, 1));
    assert!(e.ok());
    assert_eq!(h.nvme.namespace_geometry(1), Some((4096, 1 << 9)));
    assert_eq!(h.nvme.read_block(1, 3).unwrap(), vec![0; 4096]);
    let e = h.admin(Cmd::new(aop::FORMAT_NVM).nsid(1).dw(10, 2));
    assert_eq!(e.status, specific::INVALID_FORMAT);
    let e = h.admin(Cmd::new(aop::FORMAT_NVM).nsid(1).dw(10, 1 << 5));
    assert_eq!(
        e.status,
        specific::INVALID_FORMAT,
        "no protection information"
    );
}

#[test]
fn failed_commands_are_recorded_in_the_error_log() {
    let mut h = ready(NvmeBuilder::new().error_log_entries(4));
    let bad = h.run(1, Cmd::rw(iop::READ, 9, 0, 1));
    assert_eq!(bad.status, generic::INVALID_NAMESPACE);
    let (e, d) = h.get_log(1, 256, false);
    assert!(e.ok());
    assert_eq!(
        u64::from_le_bytes(d[0..8].try_into().unwrap()),
        1,
        "error count"
    );
    assert_eq!(u16::from_le_bytes([d[8], d[9]]), 1, "SQID");
    assert_eq!(u16::from_le_bytes([d[10], d[11]]), bad.cid);
    assert_eq!(
        Status::from_field(u16::from_le_bytes([d[12], d[13]]) >> 1),
        generic::INVALID_NAMESPACE
    );
    assert_eq!(
        h.get_log(0x33, 512, false).0.status,
        specific::INVALID_LOG_PAGE
    );
    // Effects log: Read supported, Write changes content.
    let (_, d) = h.get_log(5, 4096, false);
    let io = |op: usize| u32::from_le_bytes(d[1024 + 4 * op..1028 + 4 * op].try_into().unwrap());
    assert_eq!((io(2) & 3, io(1) & 3), (1, 3));
}

#[test]
fn invalid_doorbell_writes_raise_error_events() {
    let mut h = ready(NvmeBuilder::new());
    let cid = h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    h.bar.write32(h.doorbell(9, false), 1).unwrap();
    let got = h.reap(0);
    assert_eq!(
        (got[0].cid, got[0].dw0),
        (cid, 0x0001_0000),
        "invalid doorbell register"
    );
    assert_eq!(h.nvme.counters().invalid_doorbell_writes, 1);
    h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    h.get_log(1, 64, false);
    h.bar.write32(h.doorbell(1, false), 64).unwrap();
    let got = h.reap(0);
    assert_eq!(
        got.last().unwrap().dw0,
        0x0001_0100,
        "invalid doorbell write value"
    );
    // A CQ head beyond what was posted is invalid too.
    h.bar.write32(h.doorbell(1, true), 3).unwrap();
    assert_eq!(h.nvme.counters().invalid_doorbell_writes, 3);
}

#[test]
fn doorbell_stride_is_honoured() {
    let mut h = ready(NvmeBuilder::new().dstrd(4));
    assert!(h.run(1, Cmd::new(iop::FLUSH).nsid(1)).ok());
    let c = h.nvme.counters();
    assert_eq!((c.sq_doorbells(1), c.cq_doorbells(1)), (1, 1));
    // A write between doorbells hits nothing.
    h.bar.write32(0x1004, 1).unwrap();
    assert_eq!(h.nvme.counters().invalid_doorbell_writes, 0);
}

#[test]
fn interrupt_mask_defers_the_vector_until_cleared() {
    let mut h = ready(NvmeBuilder::new());
    let before = h.irq_count(1);
    h.bar.write32(INTMS, 1 << 1).unwrap();
    assert_eq!(h.bar.read32(INTMS), Ok(2));
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert_eq!(h.irq_count(1), before);
    h.bar.write32(INTMC, 1 << 1).unwrap();
    assert_eq!(h.irq_count(1), before + 1);
    assert_eq!(h.reap(1).len(), 1);
}

#[test]
fn keep_alive_expiry_is_fatal() {
    let mut h = ready(NvmeBuilder::new().keep_alive(1));
    assert!(h
        .admin(Cmd::new(aop::SET_FEATURES).dw(10, 0x0f).dw(11, 300))
        .ok());
    h.sim.clock.advance(Duration::from_millis(200));
    assert!(h.admin(Cmd::new(aop::KEEP_ALIVE)).ok());
    h.sim.clock.advance(Duration::from_millis(200));
    assert_eq!(h.csts() & CSTS_CFS, 0);
    h.sim.clock.advance(Duration::from_millis(200));
    assert_eq!(h.csts() & CSTS_CFS, CSTS_CFS);
    // Without KAS the command does not exist.
    let mut h = ready(NvmeBuilder::new());
    assert_eq!(
        h.admin(Cmd::new(aop::KEEP_ALIVE)).status,
        generic::INVALID_OPCODE
    );
}

#[test]
fn shadow_doorbells_are_read_at_process_and_eventidx_written() {
    let mut h = ready(NvmeBuilder::new());
    let shadow = h.alloc(PAGE);
    let eventidx = h.alloc(PAGE);
    let e =
        h.admin(Cmd::new(aop::DBBUF_CONFIG).prp(shadow.bus_addr().0 + 8, eventidx.bus_addr().0));
    assert_eq!(e.status, generic::INVALID_FIELD, "not page aligned");
    let e = h.admin(Cmd::new(aop::DBBUF_CONFIG).prp(shadow.bus_addr().0, eventidx.bus_addr().0));
    assert!(e.ok());
    assert!(h.nvme.doorbell_buffer().is_some());
    // Two flushes announced through the shadow SQ 1 tail only.
    h.push(1, Cmd::new(iop::FLUSH).nsid(1));
    h.push(1, Cmd::new(iop::FLUSH).nsid(1));
    shadow.write32(2 * 4, 2).unwrap();
    assert_eq!(
        h.nvme.counters().io(iop::FLUSH),
        0,
        "no MMIO write, nothing yet"
    );
    h.nvme.process();
    assert_eq!(h.nvme.counters().io(iop::FLUSH), 2);
    assert_eq!(eventidx.read32(2 * 4), Ok(2), "SQ EventIdx: the tail seen");
    // The host consumes and reports its CQ head through the shadow buffer.
    let q = h.queue(1);
    let mut got = 0;
    loop {
        let mut b = [0u8; 16];
        q.cq.read_bytes(usize::from(q.head) * 16, &mut b).unwrap();
        if Cqe::parse(&b).phase != q.phase {
            break;
        }
        q.head += 1;
        got += 1;
    }
    assert_eq!(got, 2);
    shadow.write32(3 * 4, 2).unwrap();
    h.nvme.process();
    assert_eq!(eventidx.read32(3 * 4), Ok(2), "CQ EventIdx: the head seen");
    // An MMIO doorbell still works, and lands in the shadow buffer too.
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert_eq!(h.nvme.counters().io(iop::FLUSH), 3);
    assert_eq!(shadow.read32(2 * 4), Ok(3));
    // Without OACS bit 8 the command does not exist.
    let mut h = ready(NvmeBuilder::new().doorbell_buffer(false));
    let e = h.admin(Cmd::new(aop::DBBUF_CONFIG).prp(shadow.bus_addr().0, eventidx.bus_addr().0));
    assert_eq!(e.status, generic::INVALID_OPCODE);
}

#[test]
fn command_id_conflicts_with_an_outstanding_command() {
    let mut h = ready(NvmeBuilder::new());
    let cid = h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    let q = h.queue(0);
    q.next_cid = cid;
    let e = h.admin(Cmd::new(aop::IDENTIFY).dw(10, 1));
    assert_eq!(e.status, generic::CID_CONFLICT);
}

// ---- namespace management (NVMe Base 2.0 §5.22) --------------------------------------------

/// A host for the namespace-management tests: NSID 1 of 2048 × 512 B (1 MiB) attached,
/// formats 512 B and 4 KiB, 4 MiB of total capacity. Sizes stay small; media is sparse anyway.
fn mgmt_host() -> Host {
    ready(NvmeBuilder::new().namespace(1, 512, 2048).capacity(4 << 20))
}

const MIB: u64 = 1 << 20;

/// The host software specified fields of a create (Identify Namespace offsets).
#[derive(Clone, Copy, Debug)]
struct Create {
    nsze: u64,
    ncap: u64,
    flbas: u8,
    dps: u8,
    nmic: u8,
    csi: u8,
}

impl Create {
    /// `blocks` blocks (NCAP = NSZE) of LBA format `flbas`, NVM command set.
    fn new(blocks: u64, flbas: u8) -> Self {
        Self {
            nsze: blocks,
            ncap: blocks,
            flbas,
            dps: 0,
            nmic: 0,
            csi: 0,
        }
    }
}

impl Host {
    /// Namespace Management create (SEL 0h) with `c`'s fields in a fresh data page.
    fn ns_create(&mut self, c: Create) -> Cqe {
        let d = self.alloc(PAGE);
        d.write64(0, c.nsze).unwrap();
        d.write64(8, c.ncap).unwrap();
        d.write_bytes(26, &[c.flbas]).unwrap();
        d.write_bytes(29, &[c.dps, c.nmic]).unwrap();
        let cmd = Cmd::new(aop::NS_MANAGEMENT)
            .dw(11, u32::from(c.csi) << 24)
            .prp(d.bus_addr().0, 0);
        self.admin(cmd)
    }

    /// Namespace Management delete (SEL 1h) of `nsid`.
    fn ns_delete_cmd(nsid: u32) -> Cmd {
        Cmd::new(aop::NS_MANAGEMENT).nsid(nsid).dw(10, 1)
    }

    /// Namespace Attachment attach (SEL 0h) or detach (1h) of `nsid` to controller 0; the
    /// list page is kept in `keep` until the command has run.
    fn ns_attach_cmd(&self, nsid: u32, sel: u32, keep: &mut Vec<SimCoherent>) -> Cmd {
        let list = self.alloc(PAGE);
        list.write_bytes(0, &[1, 0, 0, 0]).unwrap(); // one ID: CNTLID 0
        let cmd = Cmd::new(aop::NS_ATTACHMENT)
            .nsid(nsid)
            .dw(10, sel)
            .prp(list.bus_addr().0, 0);
        keep.push(list);
        cmd
    }

    /// Runs an admin command while Asynchronous Event Requests may be outstanding: returns
    /// its completion and the other completions reaped with it (completed events).
    fn admin_seeing_events(&mut self, cmd: Cmd) -> (Cqe, Vec<Cqe>) {
        let cid = self.submit(0, cmd);
        let got = self.reap(0);
        let (mine, others): (Vec<Cqe>, Vec<Cqe>) = got.into_iter().partition(|e| e.cid == cid);
        assert_eq!(mine.len(), 1, "one completion for {cmd:?}: {mine:?}");
        (mine[0], others)
    }

    /// Turns on Namespace Attribute Notices (AEC bit 8) and leaves one request outstanding;
    /// returns its CID.
    fn arm_namespace_events(&mut self) -> u16 {
        let aec = Cmd::new(aop::SET_FEATURES).dw(10, 0x0b).dw(11, 1 << 8);
        assert!(self.admin(aec).ok());
        self.rearm()
    }

    fn rearm(&mut self) -> u16 {
        let cid = self.submit(0, Cmd::new(aop::ASYNC_EVENT));
        assert!(self.reap(0).is_empty(), "the request stays outstanding");
        cid
    }

    /// The Changed Namespace List, read with RAE clear (which clears it and the event).
    fn changed_namespaces(&mut self) -> Vec<u32> {
        let (e, d) = self.get_log(4, 4096, false);
        assert!(e.ok(), "{e:?}");
        ids_of(&d)
    }

    /// The IDs an Identify namespace list (CNS 02h active, 10h allocated) returns.
    fn ns_list(&mut self, cns: u32) -> Vec<u32> {
        let (e, d) = self.identify(cns, 0);
        assert!(e.ok(), "{e:?}");
        ids_of(&d)
    }

    /// TNVMCAP and UNVMCAP from Identify Controller.
    fn capacities(&mut self) -> (u128, u128) {
        let (e, d) = self.identify(1, 0);
        assert!(e.ok());
        let u128_at = |o: usize| u128::from_le_bytes(d[o..o + 16].try_into().unwrap());
        (u128_at(280), u128_at(296))
    }
}

/// The non-zero 32-bit IDs at the start of a list page.
fn ids_of(d: &[u8]) -> Vec<u32> {
    d.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .take_while(|v| *v != 0)
        .collect()
}

/// Status Code Type, Status Code and DNR, as raw numbers.
fn raw(e: &Cqe) -> (u8, u8, bool) {
    (e.status.sct, e.status.sc, e.status.dnr)
}

/// The Namespace Attribute Changed event's dword 0: notice (2h), information 00h, log 04h.
const NS_CHANGED_DW0: u32 = 0x0004_0002;

/// NSZE, NCAP, the block size FLBAS selects and NVMCAP of an Identify Namespace page.
fn geometry(d: &[u8]) -> (u64, u64, u32, u128) {
    let u64_at = |o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    let idx = usize::from((d[26] & 0xf) | ((d[26] >> 5) & 3) << 4);
    let lbaf = u32::from_le_bytes(d[128 + 4 * idx..132 + 4 * idx].try_into().unwrap());
    let nvmcap = u128::from_le_bytes(d[48..64].try_into().unwrap());
    (u64_at(0), u64_at(8), 1 << ((lbaf >> 16) & 0xff), nvmcap)
}

#[test]
fn created_namespace_is_allocated_then_active_once_attached_and_gone_after_delete() {
    let mut h = mgmt_host();
    let (_, d) = h.identify(1, 0);
    assert_ne!(
        u16::from_le_bytes([d[256], d[257]]) & (1 << 3),
        0,
        "OACS ns mgmt"
    );
    assert_eq!(h.capacities(), (4 << 20, 3 << 20), "TNVMCAP, UNVMCAP");
    let aer = h.arm_namespace_events();

    // Create 1 MiB of 4 KiB blocks (FLBAS 1): NSID 2, allocated, not attached.
    let e = h.ns_create(Create::new(256, 1));
    assert!(e.ok(), "{e:?}");
    assert_eq!(e.dw0, 2, "the lowest free NSID");
    assert_eq!(h.capacities().1, 2 << 20, "UNVMCAP shrinks by 1 MiB");
    assert_eq!(h.ns_list(0x02), [1], "not active");
    assert_eq!(h.ns_list(0x10), [1, 2], "allocated");
    let (e, d) = h.identify(0x00, 2);
    assert!(
        e.ok() && d.iter().all(|b| *b == 0),
        "CNS 00h: inactive reads zeroes"
    );
    let (e, d) = h.identify(0x11, 2);
    assert!(e.ok());
    assert_eq!(geometry(&d), (256, 256, 4096, u128::from(MIB)));
    assert_eq!((d[29], d[30]), (0, 0), "DPS, NMIC");
    assert_eq!(h.identify(0x03, 2).0.status, generic::INVALID_NAMESPACE);
    let b = h.alloc(2 * PAGE);
    let mut keep = Vec::new();
    let (p1, p2) = prps(&h, &b, 0, 2 * PAGE, &mut keep);
    let e = h.run(1, Cmd::rw(iop::WRITE, 2, 10, 2).prp(p1, p2));
    assert_eq!(e.status, generic::INVALID_NAMESPACE, "no I/O before attach");
    assert!(h.reap(0).is_empty(), "a create reports nothing");
    assert_eq!(h.nvme.outstanding_aers(), 1);
    assert_eq!(h.changed_namespaces(), Vec::<u32>::new());

    // Attach: active, reported, and I/O works.
    let cmd = h.ns_attach_cmd(2, 0, &mut keep);
    let (e, events) = h.admin_seeing_events(cmd);
    assert!(e.ok(), "{e:?}");
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].cid, events[0].dw0), (aer, NS_CHANGED_DW0));
    assert_eq!(h.changed_namespaces(), [2]);
    assert_eq!(h.ns_list(0x02), [1, 2]);
    let (_, d) = h.identify(0x00, 2);
    assert_eq!(geometry(&d), (256, 256, 4096, u128::from(MIB)));
    let (e, d) = h.identify(0x03, 2);
    assert!(e.ok());
    let kinds: Vec<u8> = [0usize, 20, 40].iter().map(|o| d[*o]).collect();
    assert_eq!(kinds, [2, 3, 4], "NGUID, UUID, CSI descriptors");
    let first_nguid = d[4..20].to_vec();
    b.write_bytes(0, &pattern(2 * PAGE, 5)).unwrap();
    assert!(h.run(1, Cmd::rw(iop::WRITE, 2, 10, 2).prp(p1, p2)).ok());
    let rb = h.alloc(2 * PAGE);
    let (r1, r2) = prps(&h, &rb, 0, 2 * PAGE, &mut keep);
    assert!(h.run(1, Cmd::rw(iop::READ, 2, 10, 2).prp(r1, r2)).ok());
    let mut back = vec![0; 2 * PAGE];
    rb.read_bytes(0, &mut back).unwrap();
    assert_eq!(back, pattern(2 * PAGE, 5));
    assert_eq!(
        h.nvme.read_block(2, 11).unwrap(),
        pattern(2 * PAGE, 5)[PAGE..]
    );
    let e = h.run(1, Cmd::rw(iop::READ, 2, 255, 2).prp(r1, r2));
    assert_eq!(e.status, generic::LBA_OUT_OF_RANGE, "NSZE is the end");

    // Detach: reported again, inactive, data kept while allocated.
    let aer = h.rearm();
    let cmd = h.ns_attach_cmd(2, 1, &mut keep);
    let (e, events) = h.admin_seeing_events(cmd);
    assert!(e.ok(), "{e:?}");
    assert_eq!((events[0].cid, events[0].dw0), (aer, NS_CHANGED_DW0));
    assert_eq!(h.changed_namespaces(), [2]);
    assert_eq!(h.ns_list(0x02), [1]);
    assert_eq!(
        h.nvme.read_block(2, 10).unwrap(),
        pattern(2 * PAGE, 5)[..PAGE]
    );

    // Delete the detached namespace: not attached here, so nothing is reported.
    h.rearm();
    let (e, events) = h.admin_seeing_events(Host::ns_delete_cmd(2));
    assert!(e.ok(), "{e:?}");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(h.nvme.outstanding_aers(), 1);
    assert_eq!(h.changed_namespaces(), Vec::<u32>::new());
    assert_eq!(h.ns_list(0x10), [1]);
    let (e, d) = h.identify(0x11, 2);
    assert!(
        e.ok() && d.iter().all(|b| *b == 0),
        "CNS 11h: unallocated reads zeroes"
    );
    assert_eq!(h.nvme.namespace_geometry(2), None);
    assert_eq!(h.capacities().1, 3 << 20, "capacity returned");

    // The NSID is reused, the identity is not.
    let e = h.ns_create(Create::new(2048, 0));
    assert_eq!((e.status, e.dw0), (Status::SUCCESS, 2));
    let (_, d) = h.identify(0x11, 2);
    assert_eq!(geometry(&d), (2048, 2048, 512, u128::from(MIB)));
    assert_ne!(d[104..120], first_nguid[..], "a new NGUID");
    assert_eq!(h.nvme.read_block(2, 10).unwrap(), vec![0; 512], "new media");
}

#[test]
fn deleting_an_attached_namespace_detaches_it_and_reports_the_change() {
    let mut h = mgmt_host();
    let e = h.ns_create(Create::new(128, 1));
    assert!(e.ok());
    let nsid = e.dw0;
    let mut keep = Vec::new();
    let cmd = h.ns_attach_cmd(nsid, 0, &mut keep);
    assert!(h.admin(cmd).ok(), "notices are off: no event yet");
    assert_eq!(h.changed_namespaces(), [nsid]);
    let aer = h.arm_namespace_events();

    let (e, events) = h.admin_seeing_events(Host::ns_delete_cmd(nsid));
    assert!(e.ok(), "{e:?}");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0].cid, events[0].dw0), (aer, NS_CHANGED_DW0));
    assert_eq!(h.changed_namespaces(), [nsid]);
    assert_eq!(h.ns_list(0x02), [1]);
    assert_eq!(h.ns_list(0x10), [1]);
    let e = h.run(1, Cmd::rw(iop::READ, nsid, 0, 1));
    assert_eq!(e.status, generic::INVALID_NAMESPACE);
    // Attaching what no longer exists.
    let cmd = h.ns_attach_cmd(nsid, 0, &mut keep);
    assert_eq!(raw(&h.admin(cmd)), (0, 0x0b, true));
}

#[test]
fn changes_while_an_event_is_unread_are_listed_once_read() {
    let mut h = mgmt_host();
    let aer = h.arm_namespace_events();
    let (a, b) = (
        h.ns_create(Create::new(64, 0)).dw0,
        h.ns_create(Create::new(64, 1)).dw0,
    );
    assert_eq!((a, b), (2, 3));
    let mut keep = Vec::new();
    let cmd = h.ns_attach_cmd(a, 0, &mut keep);
    let (e, events) = h.admin_seeing_events(cmd);
    assert!(e.ok());
    assert_eq!((events[0].cid, events[0].dw0), (aer, NS_CHANGED_DW0));
    // A second request waits: the event type stays masked until the log is read.
    h.rearm();
    let cmd = h.ns_attach_cmd(b, 0, &mut keep);
    let (e, events) = h.admin_seeing_events(cmd);
    assert!(e.ok());
    assert!(events.is_empty(), "masked: {events:?}");
    assert_eq!(h.changed_namespaces(), [a, b], "both changes, ascending");
    let (e, events) = h.admin_seeing_events(Host::ns_delete_cmd(a));
    assert!(e.ok());
    assert_eq!(events.len(), 1, "unmasked by the read: {events:?}");
    assert_eq!(events[0].dw0, NS_CHANGED_DW0);
    assert_eq!(h.changed_namespaces(), [a]);
}

#[test]
fn create_checks_its_fields_and_allocates_nothing_on_failure() {
    let mut h = mgmt_host();
    // (fields, SCT, SC): Invalid Format 0Ah, Invalid Field 02h, Thin Provisioning Not
    // Supported 1Bh, Namespace Insufficient Capacity 15h, I/O Command Set Not Supported 29h.
    let cases = [
        (Create::new(8, 2), 1, 0x0a),
        (Create::new(8, 0x20), 1, 0x0a), // FLBAS bits 6:5: format 16
        (
            Create {
                dps: 1,
                ..Create::new(8, 0)
            },
            1,
            0x0a,
        ),
        (
            Create {
                nmic: 1,
                ..Create::new(8, 0)
            },
            0,
            0x02,
        ),
        (Create::new(0, 0), 0, 0x02),
        (
            Create {
                ncap: 9,
                ..Create::new(8, 0)
            },
            0,
            0x02,
        ),
        (
            Create {
                ncap: 4,
                ..Create::new(8, 0)
            },
            1,
            0x1b,
        ),
        (Create::new((3 << 20) / 512 + 1, 0), 1, 0x15),
        (Create::new(u64::MAX / 512 + 1, 1), 1, 0x15), // bytes overflow
        (
            Create {
                csi: 2,
                ..Create::new(8, 0)
            },
            1,
            0x29,
        ),
    ];
    for (c, sct, sc) in cases {
        let e = h.ns_create(c);
        assert_eq!(raw(&e), (sct, sc, true), "{c:?}");
        assert_eq!(e.dw0, 0);
    }
    assert_eq!(h.ns_list(0x10), [1], "nothing allocated");
    assert_eq!(h.capacities().1, 3 << 20);
    let e = h.admin(Cmd::new(aop::NS_MANAGEMENT).dw(10, 2));
    assert_eq!(raw(&e), (0, 0x02, true), "SEL 2h");
    // Exactly what is left fits; then nothing does.
    let e = h.ns_create(Create::new((3 << 20) / 4096, 1));
    assert_eq!((e.status, e.dw0), (Status::SUCCESS, 2));
    assert_eq!(h.capacities().1, 0);
    assert_eq!(raw(&h.ns_create(Create::new(1, 0))), (1, 0x15, true));
    // FLBAS bit 4 (metadata placement) means nothing without metadata.
    assert!(h.admin(Host::ns_delete_cmd(2)).ok());
    assert!(h.ns_create(Create::new(8, 0x10)).ok());
}

#[test]
fn no_free_nsid_is_namespace_identifier_unavailable() {
    let mut h = ready(NvmeBuilder::new().nn(3).namespace(1, 512, 64).capacity(MIB));
    assert_eq!(h.ns_create(Create::new(8, 0)).dw0, 2);
    assert_eq!(h.ns_create(Create::new(8, 0)).dw0, 3);
    let e = h.ns_create(Create::new(8, 0));
    assert_eq!(raw(&e), (1, 0x16, true));
    assert_eq!(h.ns_list(0x10), [1, 2, 3]);
    assert!(h.admin(Host::ns_delete_cmd(2)).ok());
    assert_eq!(
        h.ns_create(Create::new(8, 0)).dw0,
        2,
        "a freed NSID is reused"
    );
}

#[test]
fn delete_needs_an_allocated_nsid_and_ffffffffh_deletes_all() {
    let mut h = mgmt_host();
    for nsid in [0, 2, 256, 257] {
        let e = h.admin(Host::ns_delete_cmd(nsid));
        assert_eq!(raw(&e), (0, 0x0b, true), "NSID {nsid}");
    }
    let (a, b) = (
        h.ns_create(Create::new(64, 0)).dw0,
        h.ns_create(Create::new(8, 1)).dw0,
    );
    let mut keep = Vec::new();
    let cmd = h.ns_attach_cmd(a, 0, &mut keep);
    assert!(h.admin(cmd).ok());
    assert_eq!(h.changed_namespaces(), [a]);
    assert_eq!(h.ns_list(0x02), [1, a]);
    assert_eq!(h.ns_list(0x10), [1, a, b]);
    let aer = h.arm_namespace_events();

    let (e, events) = h.admin_seeing_events(Host::ns_delete_cmd(u32::MAX));
    assert!(e.ok(), "{e:?}");
    assert_eq!(events.len(), 1, "one event for the lot: {events:?}");
    assert_eq!((events[0].cid, events[0].dw0), (aer, NS_CHANGED_DW0));
    assert_eq!(h.changed_namespaces(), [1, a], "the attached ones only");
    assert_eq!(h.ns_list(0x10), Vec::<u32>::new());
    assert_eq!(h.ns_list(0x02), Vec::<u32>::new());
    assert_eq!(
        h.capacities(),
        (4 << 20, 4 << 20),
        "all capacity unallocated"
    );
    assert!(h.nvme.active_namespaces().is_empty());
    assert!(
        h.admin(Host::ns_delete_cmd(u32::MAX)).ok(),
        "nothing left to delete"
    );
}

#[test]
fn namespace_management_off_leaves_oacs_bit_3_and_the_commands_out() {
    let mut h = ready(NvmeBuilder::new().ns_management(false, false));
    let (_, d) = h.identify(1, 0);
    assert_eq!(u16::from_le_bytes([d[256], d[257]]) & (1 << 3), 0);
    assert_eq!(raw(&h.ns_create(Create::new(8, 0))), (0, 0x01, true));
    assert_eq!(raw(&h.admin(Host::ns_delete_cmd(1))), (0, 0x01, true));
    let mut keep = Vec::new();
    let cmd = h.ns_attach_cmd(1, 1, &mut keep);
    assert_eq!(raw(&h.admin(cmd)), (0, 0x01, true));
    for cns in [0x10, 0x11] {
        assert_eq!(raw(&h.identify(cns, 1).0), (0, 0x02, true), "CNS {cns:#x}");
    }
    // The effects log lists neither command.
    let (_, d) = h.get_log(5, 4096, false);
    let admin = |op: usize| u32::from_le_bytes(d[4 * op..4 * op + 4].try_into().unwrap());
    assert_eq!((admin(0x0d), admin(0x15)), (0, 0));
    assert_eq!(h.nvme.active_namespaces(), [1]);
}

// ---- faults ---------------------------------------------------------------------------------

#[test]
fn fault_fatal_status_now() {
    let mut h = ready(NvmeBuilder::new());
    h.nvme.faults().fail_now();
    assert_eq!(h.csts() & CSTS_CFS, CSTS_CFS);
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert!(h.reap(1).is_empty(), "nothing is processed");
    h.disable();
    h.enable();
    assert_eq!(h.csts() & CSTS_CFS, 0);
}

#[test]
fn fault_never_ready_and_slow_ready_time_out_at_cap_to() {
    let mut h = Host::new(NvmeBuilder::new().timeout(4));
    h.nvme.faults().never_ready(true);
    let start = h.sim.clock.now();
    assert_eq!(h.enable_with(8, 0), Err(WaitError::TimedOut));
    let waited = h.sim.clock.now().saturating_duration_since(start);
    assert_eq!(waited, Duration::from_secs(2), "exactly CAP.TO");
    h.bar.write32(CC, 0).unwrap();
    h.nvme.faults().never_ready(false);
    h.nvme.faults().ready_delay(Some(Duration::from_secs(3)));
    assert_eq!(h.enable_with(8, 0), Err(WaitError::TimedOut));
    h.sim.clock.advance(Duration::from_secs(1));
    assert!(h.nvme.is_ready(), "slow, not dead");
}

#[test]
fn fault_dropped_completions_match_opcode_and_queue() {
    let mut h = ready(NvmeBuilder::new());
    h.nvme
        .faults()
        .drop_completions(CmdMatch::io(iop::FLUSH), 2);
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert!(
        h.run(0, Cmd::new(aop::GET_FEATURES).dw(10, 7)).ok(),
        "other commands pass"
    );
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert!(h.reap(1).is_empty());
    assert!(h.run(1, Cmd::new(iop::FLUSH).nsid(1)).ok(), "only two");
    let c = h.nvme.counters();
    assert_eq!((c.io(iop::FLUSH), c.dropped_completions), (3, 2));
}

#[test]
fn fault_duplicate_and_unknown_cid_completions() {
    let mut h = ready(NvmeBuilder::new());
    h.nvme.faults().duplicate_next(CmdMatch::sq(1));
    let cid = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    let got = h.reap(1);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|e| e.cid == cid));

    h.nvme.faults().wrong_cid_next(CmdMatch::ANY, 0xbeef);
    let cid = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    let got = h.reap(1);
    assert_eq!(got.len(), 1);
    assert_ne!(cid, 0xbeef);
    assert_eq!(got[0].cid, 0xbeef);

    assert!(h.nvme.faults().stray_completion(1, 0x4242));
    let got = h.reap(1);
    assert_eq!(got[0].cid, 0x4242);
    assert!(!h.nvme.faults().stray_completion(9, 1));
}

#[test]
fn fault_forced_status_skips_execution() {
    let mut h = ready(NvmeBuilder::new());
    let st = Status {
        sct: 2,
        sc: 0x81,
        dnr: true,
        more: true,
    };
    h.nvme.faults().force_status(CmdMatch::io(iop::WRITE), st);
    let b = h.alloc(PAGE);
    b.write_bytes(0, &[0x55; 512]).unwrap();
    let e = h.run(1, Cmd::rw(iop::WRITE, 1, 7, 1).prp(b.bus_addr().0, 0));
    assert_eq!(e.status, st);
    assert_eq!(
        h.nvme.read_block(1, 7).unwrap(),
        vec![0; 512],
        "not executed"
    );
    assert!(h
        .run(1, Cmd::rw(iop::WRITE, 1, 7, 1).prp(b.bus_addr().0, 0))
        .ok());
    assert_eq!(h.nvme.read_block(1, 7).unwrap(), vec![0x55; 512]);
}

#[test]
fn fault_lost_interrupt() {
    let mut h = ready(NvmeBuilder::new());
    let before = h.irq_count(1);
    h.nvme.faults().lose_next_interrupts(1);
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert_eq!(h.irq_count(1), before, "lost");
    assert_eq!(h.pci.irq_chip().stats(1).lost, 1);
    assert_eq!(h.reap(1).len(), 1, "the completion is there for a poller");
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert_eq!(h.irq_count(1), before + 1);
    assert_eq!(h.nvme.counters().lost_interrupts, 1);
}

#[test]
fn fault_held_command_is_abortable_or_released() {
    let mut h = ready(NvmeBuilder::new());
    h.nvme.faults().hold_next(CmdMatch::io(iop::READ));
    let b = h.alloc(PAGE);
    let cid = h.submit(1, Cmd::rw(iop::READ, 1, 0, 1).prp(b.bus_addr().0, 0));
    assert!(h.reap(1).is_empty());
    assert_eq!(h.nvme.faults().held().len(), 1);
    // Abort of something already completed: not aborted (bit 0 = 1).
    let e = h.admin(Cmd::new(aop::ABORT).dw(10, 1 | (0x999 << 16)));
    assert_eq!((e.status, e.dw0 & 1), (Status::SUCCESS, 1));
    let e = h.admin(Cmd::new(aop::ABORT).dw(10, 1 | (u32::from(cid) << 16)));
    assert_eq!((e.status, e.dw0 & 1), (Status::SUCCESS, 0));
    let got = h.reap(1);
    assert_eq!((got[0].cid, got[0].status), (cid, generic::ABORT_REQUESTED));

    h.nvme.faults().hold_next(CmdMatch::ANY);
    let cid = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert!(h.reap(1).is_empty());
    assert_eq!(h.nvme.faults().release_held(), 1);
    let got = h.reap(1);
    assert_eq!((got[0].cid, got[0].status), (cid, Status::SUCCESS));

    // Deleting the queue aborts what it holds.
    h.nvme.faults().hold_next(CmdMatch::ANY);
    let cid = h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert!(h.admin(Cmd::new(aop::DELETE_SQ).dw(10, 1)).ok());
    let got = h.reap(1);
    assert_eq!(
        (got[0].cid, got[0].status),
        (cid, generic::ABORTED_SQ_DELETION)
    );
}

#[test]
fn abort_reaches_an_outstanding_aer_and_clear_forgets_rules() {
    let mut h = ready(NvmeBuilder::new());
    let aer = h.submit(0, Cmd::new(aop::ASYNC_EVENT));
    let e = h.submit(0, Cmd::new(aop::ABORT).dw(10, u32::from(aer) << 16));
    let got = h.reap(0);
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].cid, got[0].status), (aer, generic::ABORT_REQUESTED));
    assert_eq!((got[1].cid, got[1].dw0 & 1), (e, 0));
    assert_eq!(h.nvme.outstanding_aers(), 0);

    h.nvme.faults().drop_completions(CmdMatch::ANY, 5);
    h.nvme.faults().hold_next(CmdMatch::ANY);
    h.nvme.faults().clear();
    assert!(h.run(1, Cmd::new(iop::FLUSH).nsid(1)).ok());
}

#[test]
fn fault_device_gone_reads_all_ones() {
    let mut h = ready(NvmeBuilder::new());
    h.nvme.faults().device_gone();
    assert_eq!(h.csts(), u32::MAX);
    assert_eq!(h.bar.read64(CAP), Ok(u64::MAX));
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert!(h.reap(1).is_empty());
    assert_eq!(h.nvme.counters().io(iop::FLUSH), 0);
}

#[test]
fn bus_mastering_off_stops_the_controller() {
    let mut h = ready(NvmeBuilder::new());
    h.pci.set_bus_master(false).unwrap();
    h.submit(1, Cmd::new(iop::FLUSH).nsid(1));
    assert_eq!(h.csts() & CSTS_CFS, CSTS_CFS, "cannot fetch its own queue");
}

// ---- robustness ----------------------------------------------------------------------------

/// xorshift64*: deterministic garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn garbage_commands_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..6 {
        let mut h = ready(
            NvmeBuilder::new()
                .mdts(if round % 2 == 0 { 0 } else { 3 })
                .namespace(2, 4096, 1 << 20)
                .oncs(0xffff)
                .keep_alive(1),
        );
        let mem = h.alloc(16 * PAGE);
        let base = mem.bus_addr().0;
        // Fill memory with plausible pointers, so PRP lists and SGL segments are walked.
        for i in 0..(16 * PAGE / 8) {
            let v = match rng.next() % 4 {
                0 => base + (rng.next() % (16 * PAGE as u64)),
                1 => base + (rng.next() % 16) * PAGE as u64,
                _ => rng.next(),
            };
            mem.write64(i * 8, v).unwrap();
        }
        let mut succeeded = 0;
        for _ in 0..400 {
            let mut cmd = Cmd([0; 64]);
            for i in 0..16 {
                cmd = cmd.dw(i, rng.next() as u32);
            }
            // Half the commands are nearly well formed (an implemented opcode, sane flags, a
            // real namespace, a small range, pointers into `mem`) with one or two fields
            // left random, so the deeper paths (PRP lists, SGL segments, the namespaces) run.
            if rng.next() % 2 == 0 {
                let ops = [0x00, 0x01, 0x02, 0x05, 0x08, 0x09, 0x0c];
                let op = ops[(rng.next() % ops.len() as u64) as usize];
                let keep = cmd;
                cmd = Cmd::new(op)
                    .nsid(1 + (rng.next() % 2) as u32)
                    .dw(10, (rng.next() % 4096) as u32)
                    .dw(12, (rng.next() % 8) as u32);
                let p = base + (rng.next() % 16) * PAGE as u64;
                let p2 = base + (rng.next() % (16 * PAGE as u64));
                let p2 = if rng.next() % 2 == 0 {
                    p2 & !4095
                } else {
                    p2 & !7
                };
                cmd = cmd.prp(p, p2);
                if rng.next() % 3 == 0 {
                    let kind = [SGL_DATA, SGL_SEGMENT, SGL_LAST][(rng.next() % 3) as usize];
                    let len = [512, 4096, 16, 48, rng.next() as u32][(rng.next() % 5) as usize];
                    let addr = base + (rng.next() % (16 * PAGE as u64));
                    cmd = cmd.sgl(sgl_desc(kind, addr, len));
                }
                // One random dword from the garbage.
                let i = (rng.next() % 16) as usize;
                if rng.next() % 2 == 0 {
                    cmd = cmd.dw(
                        i,
                        u32::from_le_bytes(keep.0[i * 4..i * 4 + 4].try_into().unwrap()),
                    );
                }
            }
            let qid = if rng.next() % 3 == 0 { 0 } else { 1 };
            if qid == 0 && rng.next() % 2 == 0 {
                // Keep away from commands that reset the world too often.
                let ops = [0x02, 0x06, 0x08, 0x09, 0x0a, 0x0d, 0x15, 0x7c, 0x80];
                cmd.0[0] = ops[(rng.next() % ops.len() as u64) as usize];
            }
            if !h.nvme.is_ready() || h.csts() & CSTS_CFS != 0 {
                break;
            }
            h.submit(qid, cmd);
            succeeded += h.reap(0).iter().filter(|e| e.ok()).count();
            if h.nvme.io_completion_queues().contains(&1) {
                succeeded += h.reap(1).iter().filter(|e| e.ok()).count();
            }
            h.nvme.process();
        }
        // Random register traffic, including doorbells of queues that do not exist.
        for _ in 0..200 {
            let off = ((rng.next() % 0x1100) & !3) as usize;
            if off == CC || off == NSSR {
                continue;
            }
            let _ = h.bar.write32(off, rng.next() as u32);
            let _ = h.bar.read32(off);
        }
        h.nvme.process();
        assert!(succeeded > 20, "round {round}: only {succeeded} succeeded");
    }
}

#[test]
fn garbage_register_writes_never_panic() {
    let mut rng = Rng(42);
    let h = Host::new(NvmeBuilder::new().dstrd(2));
    let mem = h.alloc(PAGE);
    for _ in 0..5000 {
        let off = ((rng.next() % 0x1200) & !3) as usize;
        let v = match rng.next() % 3 {
            0 => mem.bus_addr().0 as u32,
            1 => rng.next() as u32 | 1,
            _ => rng.next() as u32,
        };
        let _ = h.bar.write32(off, v);
        let _ = h.bar.read64(off & !7);
        if rng.next() % 50 == 0 {
            h.sim.clock.advance(Duration::from_millis(rng.next() % 5));
        }
    }
}
