//! The conformance kit against the host implementation, and against deliberately broken
//! backends to show the kit can fail.

use orion_compat::block::{
    Block, BlockHandler, BlockOp, BlockQueues, BlockRequest, BlockStatus, DiskGeometry, DiskId,
    HwQueue, HwQueueChange, QueueConfig, Tag,
};
use orion_compat::conformance::{self as kit, BlockProbe, ConformanceFailure, Timing};
use orion_compat::dma::{BusAddr, CoherentMem, Direction, Dma, Fence, Segment};
use orion_compat::irq::{IrqKind, IrqKinds, IrqVectors, VectorRequest};
use orion_compat::pci::{Pci, PciIds};
use orion_compat::time::{Clock, Duration, Instant};
use orion_compat::{ErrorKind, Mmio};
use orion_sim::block::{BlockEvent, SimDisk, SimQueues, SubmitError};
use orion_sim::dma::MapLayout;
use orion_sim::irq::DeliveryMode;
use orion_sim::pci::{IrqCaps, SimPci};
use orion_sim::regfile::RegFile;
use orion_sim::{Sim, SimBlock, VirtualClock};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const NVME_IDS: PciIds = PciIds {
    vendor: 0x1b36,
    device: 0x0010,
    class: 0x01_08_02,
    revision: 2,
    subsystem_vendor: 0x1af4,
    subsystem_device: 0x1100,
};

/// A QEMU-like NVMe function whose BAR0 is a plain register file with CAP set.
fn nvme_pci(caps: IrqCaps) -> SimPci {
    let regs = RegFile::new(0x4000);
    regs.write64(0, 0x0040_0020_0f01_07ff).unwrap();
    SimPci::builder(NVME_IDS)
        .bar(0, 0x4000, Arc::new(regs))
        .irq_caps(caps)
        .build()
}

/// Waits are virtual, so short timings keep the suite instant without making it lenient.
const TIMING: Timing = Timing {
    timeout: Duration::from_millis(100),
    settle: Duration::from_millis(5),
};

#[track_caller]
fn pass(r: Result<(), ConformanceFailure>) {
    if let Err(f) = r {
        panic!("conformance failure: {f}");
    }
}

#[track_caller]
fn fails(r: Result<(), ConformanceFailure>, check: &str, rule_part: &str) -> ConformanceFailure {
    let f = r.expect_err("the kit must catch the broken backend");
    assert_eq!(f.check, check, "{f}");
    assert!(f.rule.contains(rule_part), "{f}");
    f
}

/// Plays the block layer for the kit: one read of block 0 for `disk` on `hwq` (queue 0 if
/// that one is out of service), with the lowest tag not in use there.
fn issue_read<H: BlockHandler>(q: &SimQueues<H>, disk: DiskId, hwq: HwQueue) {
    let hwq = if hwq.0 < q.hw_queues_in_service() {
        hwq
    } else {
        HwQueue(0)
    };
    let used: Vec<(HwQueue, Tag)> = q.in_flight().into_iter().chain(q.waiting()).collect();
    let tag = (0..q.config().depth)
        .map(Tag)
        .find(|t| !used.contains(&(hwq, *t)))
        .expect("the kit never fills a queue");
    let segments = [Segment {
        addr: BusAddr(0x10_0000),
        len: 512,
    }];
    let read = BlockRequest {
        hwq,
        tag,
        disk,
        op: BlockOp::Read,
        lba: 0,
        blocks: 1,
        fua: false,
        segments: &segments,
    };
    match q.submit(&read, true) {
        Ok(()) | Err(SubmitError::Waiting) => {}
        Err(e) => panic!("the kit's request was not taken: {e:?}"),
    }
}

fn request(min: u16, max: u16, kinds: IrqKinds) -> VectorRequest {
    VectorRequest {
        min,
        max,
        kinds,
        pre_vectors: 1,
    }
}

/// The whole kit, against one set of sim services.
fn run_kit(sim: &Sim, pci: &SimPci) -> Result<(), ConformanceFailure> {
    kit::dma_coherent(&sim.dma)?;
    for layout in [
        MapLayout::PAGES,
        MapLayout {
            page: 4096,
            first_offset: 100,
        },
        MapLayout::CONTIGUOUS,
    ] {
        sim.dma.set_map_layout(layout);
        for len in [0, 1, 4096, 3 * 4096 + 100] {
            let (buf, r) = kit::dma_streaming(&sim.dma, vec![0; len]);
            assert_eq!(buf.len(), len, "the kit hands the buffer back");
            r?;
        }
    }
    kit::clock(&sim.clock)?;
    kit::locks(&sim.sync)?;
    kit::share(&sim.sync)?;
    kit::pci_config(pci)?;
    let bar = pci.map_bar(0).map_err(|_| ConformanceFailure {
        check: "test",
        rule: "map BAR0",
        expected: None,
        actual: None,
        error: None,
    })?;
    kit::mmio_bounds(&bar, 0x4000)?;
    kit::mmio_read_only(&bar, 0)?;
    kit::mmio_scratch(&bar, 0x1000, 0x100)?;
    let vectors = kit::pci_vectors(pci, &request(1, 4, IrqKinds::ALL))?;
    let chip = pci.irq_chip().clone();
    for v in 0..vectors.count() {
        kit::irq_delivery(
            &vectors,
            &sim.clock,
            v,
            TIMING,
            &mut |v| {
                chip.raise(v);
            },
            &mut || {},
        )?;
    }
    let wq = sim.workqueue.clone();
    kit::work(&sim.workqueue, &sim.clock, TIMING, &mut || {
        wq.run_pending();
    })?;
    kit::block_queues(&sim.block)?;
    kit::block_reset(&sim.block, TIMING)?;
    kit::block_reset_requests(
        &sim.block,
        &sim.clock,
        TIMING,
        &mut issue_read::<BlockProbe>,
        &mut || {},
    )?;
    Ok(())
}

#[test]
fn the_sim_passes_the_whole_kit() {
    let sim = Sim::new();
    let pci = nvme_pci(IrqCaps::QEMU_NVME);
    pass(run_kit(&sim, &pci));
    assert_eq!(
        sim.space.live_regions(),
        0,
        "the kit frees everything it allocates"
    );
    assert!(sim.space.faults().is_empty());
    assert!(
        sim.clock.slept() > Duration::ZERO,
        "the kit's waits ran on the virtual clock"
    );
}

#[test]
fn every_vector_kind_passes_irq_delivery() {
    for (caps, kind, count) in [
        (
            IrqCaps {
                msix: 8,
                msi: 0,
                intx: false,
            },
            IrqKind::MsiX,
            4,
        ),
        (
            IrqCaps {
                msix: 0,
                msi: 32,
                intx: false,
            },
            IrqKind::Msi,
            4,
        ),
        (
            IrqCaps {
                msix: 0,
                msi: 0,
                intx: true,
            },
            IrqKind::Intx,
            1,
        ),
    ] {
        let sim = Sim::new();
        let pci = nvme_pci(caps);
        let min = if kind == IrqKind::Intx { 1 } else { 2 };
        let vectors = kit::pci_vectors(&pci, &request(min, 4, IrqKinds::ALL)).unwrap();
        assert_eq!((vectors.kind(), vectors.count()), (kind, count));
        let chip = pci.irq_chip().clone();
        for v in 0..vectors.count() {
            pass(kit::irq_delivery(
                &vectors,
                &sim.clock,
                v,
                TIMING,
                &mut |v| {
                    chip.raise(v);
                },
                &mut || {},
            ));
        }
    }
}

#[test]
fn queued_interrupt_delivery_passes_with_a_pump() {
    let sim = Sim::new();
    let pci = nvme_pci(IrqCaps::QEMU_NVME);
    let vectors = kit::pci_vectors(&pci, &request(1, 2, IrqKinds::MSIX)).unwrap();
    let chip = pci.irq_chip().clone();
    chip.set_mode(DeliveryMode::Queued);
    let (raiser, pumper) = (chip.clone(), chip.clone());
    pass(kit::irq_delivery(
        &vectors,
        &sim.clock,
        1,
        TIMING,
        &mut |v| {
            raiser.raise(v);
        },
        &mut || {
            pumper.deliver_pending();
        },
    ));
    let stats = chip.stats(1);
    assert_eq!((stats.raised, stats.delivered, stats.lost), (2, 2, 0));
}

#[test]
fn work_passes_when_it_runs_as_time_advances() {
    let sim = Sim::new();
    sim.workqueue.run_when_time_advances();
    pass(kit::work(&sim.workqueue, &sim.clock, TIMING, &mut || {}));
}

#[test]
fn kit_checks_run_from_another_thread() {
    let sim = Sim::new();
    let pci = nvme_pci(IrqCaps::QEMU_NVME);
    let r = std::thread::spawn(move || run_kit(&sim, &pci))
        .join()
        .unwrap();
    pass(r);
}

// ---------------------------------------------------------------------------------------------
// Broken backends: each must be caught, by the rule it breaks.
// ---------------------------------------------------------------------------------------------

/// Wraps a DMA allocator and breaks its coherent blocks in one way.
struct Broken<D> {
    inner: D,
    fault: Fault,
}

#[derive(Clone, Copy)]
enum Fault {
    /// Reports bus addresses 8 bytes off.
    Misaligned,
    /// Hands out memory that is not zeroed.
    Dirty,
    /// Reports a different bus address on every call.
    Unstable,
    /// Stores 32-bit values big-endian.
    BigEndian,
}

struct BrokenMem<C> {
    inner: C,
    fault: Fault,
    calls: std::sync::atomic::AtomicU64,
}

impl<C: CoherentMem> CoherentMem for BrokenMem<C> {
    type Error = C::Error;

    fn bus_addr(&self) -> BusAddr {
        let a = self.inner.bus_addr();
        match self.fault {
            Fault::Misaligned => BusAddr(a.0 + 8),
            Fault::Unstable => {
                let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                BusAddr(a.0 + 4096 * (n % 2))
            }
            _ => a,
        }
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read32(&self, offset: usize) -> Result<u32, C::Error> {
        let v = self.inner.read32(offset)?;
        Ok(match self.fault {
            Fault::BigEndian => v.swap_bytes(),
            _ => v,
        })
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), C::Error> {
        let v = match self.fault {
            Fault::BigEndian => value.swap_bytes(),
            _ => value,
        };
        self.inner.write32(offset, v)
    }
    fn read64(&self, offset: usize) -> Result<u64, C::Error> {
        self.inner.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) -> Result<(), C::Error> {
        self.inner.write64(offset, value)
    }
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), C::Error> {
        self.inner.read_bytes(offset, buf)
    }
    fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), C::Error> {
        self.inner.write_bytes(offset, data)
    }
    fn zero(&self, offset: usize, len: usize) -> Result<(), C::Error> {
        self.inner.zero(offset, len)
    }
    fn fence(&self, kind: Fence) {
        self.inner.fence(kind)
    }
}

impl<D: Dma> Dma for Broken<D> {
    type Error = D::Error;
    type Coherent = BrokenMem<D::Coherent>;
    type Buf = D::Buf;
    type Mapping = D::Mapping;

    fn alloc_coherent(&self, len: usize, align: usize) -> Result<Self::Coherent, D::Error> {
        let inner = self.inner.alloc_coherent(len, align)?;
        if let Fault::Dirty = self.fault {
            let _ = inner.write_bytes(len - 1, &[0xcc]);
        }
        Ok(BrokenMem {
            inner,
            fault: self.fault,
            calls: Default::default(),
        })
    }
    fn map(&self, buf: D::Buf, dir: Direction) -> Result<D::Mapping, (D::Error, D::Buf)> {
        self.inner.map(buf, dir)
    }
    fn unmap(&self, mapping: D::Mapping) -> D::Buf {
        self.inner.unmap(mapping)
    }
}

#[test]
fn the_kit_catches_a_misaligned_dma_backend() {
    let sim = Sim::new();
    let broken = Broken {
        inner: sim.dma.clone(),
        fault: Fault::Misaligned,
    };
    let f = fails(
        kit::dma_coherent(&broken),
        "dma.coherent",
        "multiple of the alignment",
    );
    assert_eq!(
        f.expected,
        Some(64),
        "8 bytes off still passes align 8; align 64 breaks"
    );
    let text = f.to_string();
    assert!(
        text.starts_with("dma.coherent: the bus address must be a multiple"),
        "{text}"
    );
    assert_eq!(
        sim.space.live_regions(),
        0,
        "a failing check still frees what it allocated"
    );
}

#[test]
fn the_kit_catches_other_broken_dma_backends() {
    let sim = Sim::new();
    for (fault, rule) in [
        (Fault::Dirty, "zeroes"),
        (Fault::Unstable, "must not change"),
        (Fault::BigEndian, "little-endian"),
    ] {
        let broken = Broken {
            inner: sim.dma.clone(),
            fault,
        };
        fails(kit::dma_coherent(&broken), "dma.coherent", rule);
    }
}

#[test]
fn the_kit_catches_a_lost_interrupt() {
    let sim = Sim::new();
    let pci = nvme_pci(IrqCaps::QEMU_NVME);
    let vectors = kit::pci_vectors(&pci, &request(1, 1, IrqKinds::ALL)).unwrap();
    let chip = pci.irq_chip().clone();
    chip.lose_next(0, 1);
    let f = fails(
        kit::irq_delivery(
            &vectors,
            &sim.clock,
            0,
            TIMING,
            &mut |v| {
                chip.raise(v);
            },
            &mut || {},
        ),
        "irq.delivery",
        "exactly once",
    );
    assert_eq!((f.expected, f.actual), (Some(1), Some(0)));
    assert!(
        sim.clock.now() >= Instant::from_nanos(TIMING.timeout.as_nanos()),
        "it waited the timeout, on the clock"
    );
}

#[test]
fn the_kit_catches_a_duplicated_interrupt() {
    let sim = Sim::new();
    let pci = nvme_pci(IrqCaps::QEMU_NVME);
    let vectors = kit::pci_vectors(&pci, &request(1, 1, IrqKinds::ALL)).unwrap();
    let chip = pci.irq_chip().clone();
    let f = fails(
        kit::irq_delivery(
            &vectors,
            &sim.clock,
            0,
            TIMING,
            &mut |v| {
                chip.raise(v);
                chip.raise(v);
            },
            &mut || {},
        ),
        "irq.delivery",
        "exactly once",
    );
    assert_eq!((f.expected, f.actual), (Some(1), Some(2)));
}

/// A clock whose sleeps last half as long as asked.
struct HastyClock(VirtualClock);

impl Clock for HastyClock {
    fn now(&self) -> Instant {
        self.0.now()
    }
    fn delay_us(&self, us: u32) {
        self.0.delay_us(us)
    }
    fn sleep(&self, d: Duration) {
        self.0.sleep(Duration::from_nanos(d.as_nanos() / 2))
    }
}

#[test]
fn the_kit_catches_a_clock_that_sleeps_short() {
    let f = fails(
        kit::clock(&HastyClock(VirtualClock::new())),
        "time.clock",
        "sleep(1 ms)",
    );
    assert_eq!((f.expected, f.actual), (Some(1_000_000), Some(500_000)));
}

/// A register window that splits 64-bit accesses high dword first and ignores bounds.
struct SloppyMmio(RegFile);

impl Mmio for SloppyMmio {
    type Error = ErrorKind;
    fn read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        Ok(self.0.read32(offset).unwrap_or(0))
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        self.0.write32(offset & !3, value)
    }
    fn read64(&self, offset: usize) -> Result<u64, ErrorKind> {
        let v = self.0.read64(offset)?;
        Ok(v.rotate_left(32))
    }
    fn write64(&self, offset: usize, value: u64) -> Result<(), ErrorKind> {
        self.0.write64(offset, value.rotate_left(32))
    }
}

#[test]
fn the_kit_catches_a_sloppy_register_window() {
    let m = SloppyMmio(RegFile::new(0x100));
    fails(kit::mmio_scratch(&m, 0, 0x40), "mmio.scratch", "low dword");
    fails(
        kit::mmio_bounds(&m, 0x100),
        "mmio.bounds",
        "at the end must be refused",
    );
}

#[test]
fn the_kit_catches_a_pci_function_that_misreports_its_ids() {
    struct Liar(SimPci);
    impl Pci for Liar {
        type Error = ErrorKind;
        type Bar = <SimPci as Pci>::Bar;
        type Vectors = <SimPci as Pci>::Vectors;
        fn ids(&self) -> PciIds {
            PciIds {
                device: 0x1234,
                ..self.0.ids()
            }
        }
        fn bar_len(&self, index: u8) -> u64 {
            self.0.bar_len(index)
        }
        fn map_bar(&self, index: u8) -> Result<Self::Bar, ErrorKind> {
            self.0.map_bar(index)
        }
        fn config_read8(&self, offset: usize) -> Result<u8, ErrorKind> {
            self.0.config_read8(offset)
        }
        fn config_read16(&self, offset: usize) -> Result<u16, ErrorKind> {
            self.0.config_read16(offset)
        }
        fn config_read32(&self, offset: usize) -> Result<u32, ErrorKind> {
            self.0.config_read32(offset)
        }
        fn config_write8(&self, offset: usize, value: u8) -> Result<(), ErrorKind> {
            self.0.config_write8(offset, value)
        }
        fn config_write16(&self, offset: usize, value: u16) -> Result<(), ErrorKind> {
            self.0.config_write16(offset, value)
        }
        fn config_write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
            self.0.config_write32(offset, value)
        }
        fn set_bus_master(&self, enable: bool) -> Result<(), ErrorKind> {
            self.0.set_bus_master(enable)
        }
        fn alloc_irq_vectors(&self, request: &VectorRequest) -> Result<Self::Vectors, ErrorKind> {
            self.0.alloc_irq_vectors(request)
        }
        fn is_present(&self) -> bool {
            self.0.is_present()
        }
    }
    let f = fails(
        kit::pci_config(&Liar(nvme_pci(IrqCaps::QEMU_NVME))),
        "pci.config",
        "device ID",
    );
    assert_eq!((f.expected, f.actual), (Some(0x1234), Some(0x0010)));
}

#[test]
fn the_reset_checks_drive_the_sim_through_each_path() {
    let sim = Sim::new();
    pass(kit::block_reset(&sim.block, TIMING));
    pass(kit::block_reset_requests(
        &sim.block,
        &sim.clock,
        TIMING,
        &mut issue_read::<BlockProbe>,
        &mut || {},
    ));
    let events = sim.block.events();
    for (from, to, stuck) in [(3, 1, false), (1, 3, false), (2, 1, true), (1, 2, true)] {
        assert!(
            events.contains(&BlockEvent::HwQueuesChanged { from, to, stuck }),
            "{from} -> {to}"
        );
    }
    let requeued = |e: &&BlockEvent| matches!(e, BlockEvent::Requeued(..));
    assert_eq!(events.iter().filter(requeued).count(), 2, "{events:?}");
    assert!(events.iter().any(|e| matches!(
        e,
        BlockEvent::Retagged {
            from: (HwQueue(1), _),
            to: (HwQueue(0), _)
        }
    )));
    assert!(events.contains(&BlockEvent::Completed(
        HwQueue(0),
        Tag(0),
        BlockStatus::IoError
    )));
    assert_eq!(
        events.last(),
        Some(&BlockEvent::DiskRemoved(DiskId(1))),
        "the kit cleans up"
    );
}

/// How [`FlawedBlock`] breaks the reset contracts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Counts quiesces, as blk-mq's quiesce depth does: two need two resumes.
    CountedQuiesce,
    /// Always reports the created count as in service.
    StaleInService,
    /// Quiescing does nothing.
    NoQuiesce,
    /// Never lets the core end stuck requests: `on_stuck` is not called.
    SkipsOnStuck,
}

/// The sim's block layer with one [`Flaw`].
struct FlawedBlock {
    inner: SimBlock,
    flaw: Flaw,
}

struct FlawedQueues<H: BlockHandler> {
    inner: SimQueues<H>,
    flaw: Flaw,
    depth: AtomicU32,
}

impl Block for FlawedBlock {
    type Error = ErrorKind;
    type Queues<H: BlockHandler> = FlawedQueues<H>;
    type Disk = SimDisk;

    fn alloc_queues<H: BlockHandler>(
        &self,
        config: QueueConfig,
        handler: H,
    ) -> Result<FlawedQueues<H>, (ErrorKind, H)> {
        Ok(FlawedQueues {
            inner: self.inner.alloc_queues(config, handler)?,
            flaw: self.flaw,
            depth: AtomicU32::new(0),
        })
    }

    fn add_disk<H: BlockHandler>(
        &self,
        queues: &FlawedQueues<H>,
        id: DiskId,
        geometry: &DiskGeometry,
    ) -> Result<SimDisk, ErrorKind> {
        self.inner.add_disk(&queues.inner, id, geometry)
    }
}

impl<H: BlockHandler> BlockQueues for FlawedQueues<H> {
    type Error = ErrorKind;
    type Handler = H;

    fn handler(&self) -> &H {
        self.inner.handler()
    }
    fn config(&self) -> QueueConfig {
        self.inner.config()
    }
    fn complete(&self, hwq: HwQueue, tag: Tag, status: BlockStatus) -> Result<(), ErrorKind> {
        self.inner.complete(hwq, tag, status)
    }
    fn quiesce(&self) {
        match self.flaw {
            Flaw::NoQuiesce => {}
            Flaw::CountedQuiesce => {
                self.depth.fetch_add(1, Ordering::SeqCst);
                self.inner.quiesce();
            }
            _ => self.inner.quiesce(),
        }
    }
    fn resume(&self) {
        if self.flaw == Flaw::CountedQuiesce {
            let left = self
                .depth
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |d| d.checked_sub(1));
            if left != Ok(1) {
                return;
            }
        }
        self.inner.resume();
    }
    fn requeue(&self, hwq: HwQueue, tag: Tag) -> Result<(), ErrorKind> {
        self.inner.requeue(hwq, tag)
    }
    fn hw_queues_in_service(&self) -> u16 {
        match self.flaw {
            Flaw::StaleInService => self.inner.config().hw_queues,
            _ => self.inner.hw_queues_in_service(),
        }
    }
    fn set_hw_queues(
        &self,
        count: u16,
        bound: Duration,
        on_stuck: &mut dyn FnMut(),
    ) -> Result<HwQueueChange, ErrorKind> {
        match self.flaw {
            Flaw::SkipsOnStuck => self.inner.set_hw_queues(count, bound, &mut || {}),
            _ => self.inner.set_hw_queues(count, bound, on_stuck),
        }
    }
}

fn flawed(sim: &Sim, flaw: Flaw) -> FlawedBlock {
    FlawedBlock {
        inner: sim.block.clone(),
        flaw,
    }
}

fn reset_requests(sim: &Sim, flaw: Flaw) -> Result<(), ConformanceFailure> {
    kit::block_reset_requests(
        &flawed(sim, flaw),
        &sim.clock,
        TIMING,
        &mut |q: &FlawedQueues<BlockProbe>, disk, hwq| issue_read(&q.inner, disk, hwq),
        &mut || {},
    )
}

#[test]
fn the_kit_catches_a_counted_quiesce() {
    let sim = Sim::new();
    fails(
        kit::block_reset(&flawed(&sim, Flaw::CountedQuiesce), TIMING),
        "block.reset",
        "after two quiesces and one resume",
    );
}

#[test]
fn the_kit_catches_a_stale_count_in_service() {
    let sim = Sim::new();
    let f = fails(
        kit::block_reset(&flawed(&sim, Flaw::StaleInService), TIMING),
        "block.reset",
        "put `count` queues in service",
    );
    assert_eq!((f.expected, f.actual), (Some(1), Some(3)));
}

#[test]
fn the_kit_catches_a_quiesce_that_stops_nothing() {
    let sim = Sim::new();
    fails(
        kit::block_reset(&flawed(&sim, Flaw::NoQuiesce), TIMING),
        "block.reset",
        "quiesced queues must be refused as busy",
    );
    fails(
        reset_requests(&sim, Flaw::NoQuiesce),
        "block.reset_requests",
        "quiesced queues must dispatch nothing",
    );
    let left = sim.block.events();
    assert_eq!(
        left.last(),
        Some(&BlockEvent::DiskRemoved(DiskId(1))),
        "the kit cleans up after a failure too"
    );
}

#[test]
fn the_kit_catches_a_change_that_never_calls_on_stuck() {
    let sim = Sim::new();
    pass(kit::block_reset(&flawed(&sim, Flaw::SkipsOnStuck), TIMING));
    let f = fails(
        reset_requests(&sim, Flaw::SkipsOnStuck),
        "block.reset_requests",
        "on_stuck requeues what is in flight must succeed",
    );
    assert_eq!(f.error, Some(ErrorKind::Timeout));
    assert!(sim
        .block
        .events()
        .iter()
        .any(|e| matches!(e, BlockEvent::HwQueuesGaveUp { to: 1, .. })));
}
