//! A toy device built on the sim the way the NVMe controller model will be: registers with
//! side effects behind a BAR, DMA by bus address through the `DmaSpace`, progress on clock
//! timers, and completion by interrupt. It shows the pieces compose, and how a model uses
//! them.
//!
//! The device copies `LEN` bytes from bus address `SRC` to `DST` 10 us after `GO` is written,
//! then sets `STATUS` (1 done, 2 DMA fault) and raises vector 0.

use orion_compat::dma::{BusAddr, CoherentMem, Dma};
use orion_compat::irq::{
    IrqHandler, IrqKinds, IrqRegistration, IrqReturn, IrqVectors, VectorRequest,
};
use orion_compat::pci::{Pci, PciIds};
use orion_compat::time::{Clock, Deadline, Duration, WaitError};
use orion_compat::{ErrorKind, Mmio};
use orion_sim::pci::{BusMaster, IrqCaps};
use orion_sim::regfile::RegFile;
use orion_sim::{DmaSpace, Sim, SimIrqChip, SimPci, VirtualClock};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const SRC: usize = 0x00;
const DST: usize = 0x08;
const LEN: usize = 0x10;
const GO: usize = 0x14;
const STATUS: usize = 0x18;

/// The device's side: its registers plus what it reaches through the platform.
struct Copier {
    regs: Arc<RegFile>,
    space: DmaSpace,
    clock: VirtualClock,
    chip: SimIrqChip,
    bus_master: BusMaster,
}

impl Copier {
    fn run(regs: &RegFile, space: &DmaSpace, chip: &SimIrqChip) {
        let src = BusAddr(regs.read64(SRC).unwrap());
        let dst = BusAddr(regs.read64(DST).unwrap());
        let mut buf = vec![0; regs.read32(LEN).unwrap() as usize];
        let ok = space
            .read(src, &mut buf)
            .and_then(|()| space.write(dst, &buf));
        regs.write32(STATUS, if ok.is_ok() { 1 } else { 2 })
            .unwrap();
        chip.raise(0);
    }
}

impl Mmio for Copier {
    type Error = ErrorKind;
    fn read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        self.regs.read32(offset)
    }
    fn write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        self.regs.write32(offset, value)?;
        if offset == GO && value == 1 && self.bus_master.enabled() {
            let (regs, space, chip) = (self.regs.clone(), self.space.clone(), self.chip.clone());
            self.clock.after(Duration::from_micros(10), move |_| {
                Copier::run(&regs, &space, &chip)
            });
        }
        Ok(())
    }
    fn read64(&self, offset: usize) -> Result<u64, ErrorKind> {
        self.regs.read64(offset)
    }
    fn write64(&self, offset: usize, value: u64) -> Result<(), ErrorKind> {
        self.regs.write64(offset, value)
    }
}

/// The driver's interrupt handler: counts completions.
#[derive(Debug, Default)]
struct Done(Arc<AtomicU32>);

impl IrqHandler for Done {
    fn handle(&self, _vector: u16) -> IrqReturn {
        self.0.fetch_add(1, Ordering::SeqCst);
        IrqReturn::Handled
    }
}

fn device(sim: &Sim) -> SimPci {
    let builder = SimPci::builder(PciIds::default()).irq_caps(IrqCaps::QEMU_NVME);
    let model = Arc::new(Copier {
        regs: Arc::new(RegFile::new(0x100)),
        space: sim.space.clone(),
        clock: sim.clock.clone(),
        chip: builder.irq_chip(),
        bus_master: builder.bus_master(),
    });
    builder.bar(0, 0x100, model).build()
}

/// The driver's side of one copy: program, ring, wait for the interrupt (bounded), check.
fn copy<M: Mmio<Error = ErrorKind>>(
    sim: &Sim,
    bar: &M,
    src: BusAddr,
    dst: BusAddr,
    len: u32,
    irqs: &AtomicU32,
) -> Result<u32, WaitError<ErrorKind>> {
    let before = irqs.load(Ordering::SeqCst);
    bar.write64(SRC, src.0).unwrap();
    bar.write64(DST, dst.0).unwrap();
    bar.write32(LEN, len).unwrap();
    bar.write32(STATUS, 0).unwrap();
    bar.write32(GO, 1).unwrap();
    Deadline::after(&sim.clock, Duration::from_millis(1)).poll(
        &sim.clock,
        Duration::from_micros(4),
        || Ok((irqs.load(Ordering::SeqCst) > before).then_some(())),
    )?;
    bar.read32(STATUS).map_err(WaitError::Failed)
}

#[test]
fn a_device_model_does_dma_by_bus_address_and_interrupts() {
    let sim = Sim::new();
    let pci = device(&sim);
    let bar = pci.map_bar(0).unwrap();
    let vectors = pci
        .alloc_irq_vectors(&VectorRequest {
            min: 1,
            max: 1,
            kinds: IrqKinds::ALL,
            pre_vectors: 0,
        })
        .unwrap();
    let irq = vectors.register(0, Done::default()).unwrap();
    let irqs = irq.handler().0.clone();
    let src = sim.dma.alloc_coherent(4096, 4096).unwrap();
    let dst = sim.dma.alloc_coherent(4096, 4096).unwrap();
    src.write_bytes(0, b"orion").unwrap();

    // Bus mastering off: the device does nothing, and the wait ends at its deadline.
    let start = sim.clock.now();
    assert_eq!(
        copy(&sim, &bar, src.bus_addr(), dst.bus_addr(), 5, &irqs),
        Err(WaitError::TimedOut)
    );
    assert!(sim.clock.now().saturating_duration_since(start) >= Duration::from_millis(1));

    pci.set_bus_master(true).unwrap();
    assert_eq!(
        copy(&sim, &bar, src.bus_addr(), dst.bus_addr(), 5, &irqs),
        Ok(1)
    );
    let mut out = [0; 5];
    dst.read_bytes(0, &mut out).unwrap();
    assert_eq!(&out, b"orion");

    // A copy that runs past the end of the destination faults on the guard page, not into
    // some other buffer.
    let tail = BusAddr(dst.bus_addr().0 + 4094);
    assert_eq!(copy(&sim, &bar, src.bus_addr(), tail, 5, &irqs), Ok(2));
    assert_eq!(sim.space.take_faults().len(), 1);

    // A lost interrupt: the bounded wait times out, and the status register tells the truth.
    pci.irq_chip().lose_next(0, 1);
    assert_eq!(
        copy(&sim, &bar, src.bus_addr(), dst.bus_addr(), 5, &irqs),
        Err(WaitError::TimedOut)
    );
    assert_eq!(bar.read32(STATUS), Ok(1));

    // Use after free: the device writes to a buffer the driver already freed.
    let freed = dst.bus_addr();
    drop(dst);
    assert_eq!(copy(&sim, &bar, src.bus_addr(), freed, 5, &irqs), Ok(2));
    drop((src, irq, vectors));
    assert_eq!(sim.space.live_regions(), 0);
}
