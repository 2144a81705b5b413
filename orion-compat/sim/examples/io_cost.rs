//! Benchmark, not a test: the driver core's cost of one 4 KiB read (build the command and its
//! PRPs, submit, ring the doorbell, reap the completion) against the simulated controller.
//! Run under callgrind by `scripts/bench-core.sh`, which counts the instructions executed in
//! the core's own functions (`orion_nvme::*`) and divides by the number of reads.
//!
//! Usage: io_cost [READS] [BATCH]

use orion_compat::dma::{CoherentMem, Dma};
use orion_compat::pci::Pci;
use orion_nvme::command::{build_io, CidSlot, DataPointer, IoOp, IoRequest, ListPages, Segment};
use orion_nvme::controller::{Controller, PageBuf, Platform, Settings};
use orion_nvme::queue::Reaped;
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::NvmeBuilder;
use orion_sim::pci::SimBar;
use orion_sim::{Sim, SimDma, VirtualClock};

struct P;
impl Platform for P {
    type Mmio = SimBar;
    type Dma = SimDma;
    type Clock = VirtualClock;
    type Scratch = Box<PageBuf>;
}

struct Lists(SimCoherent);
impl ListPages for Lists {
    fn pages(&self) -> usize {
        1
    }
    fn bus_addr(&self, _page: usize) -> u64 {
        self.0.bus_addr().as_u64()
    }
    fn write(&mut self, _page: usize, offset: usize, bytes: &[u8]) {
        let _ = self.0.write_bytes(offset, bytes);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let reads: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let batch: u16 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let sim = Sim::new();
    let (pci, _nvme) = NvmeBuilder::new().build_pci(&sim);
    pci.set_bus_master(true).expect("bus master");
    let bar = pci.map_bar(0).expect("BAR0");
    let ctrl = Controller::<P, _>::new(
        bar,
        sim.dma.clone(),
        sim.clock.clone(),
        Box::new([0; 512]),
        Settings::default(),
    )
    .expect("controller");
    let mut c = ctrl.enable().map_err(|(e, _)| e).expect("enable");
    c.identify().expect("identify");
    c.set_queue_count(1).expect("queues");
    let mut q = c
        .create_io_queue(1, 256, Some(1), vec![CidSlot::default(); 256])
        .expect("queue");
    let buf = sim
        .dma
        .alloc_coherent(4096 * usize::from(batch), 4096)
        .expect("buffer");
    let mut lists = Lists(sim.dma.alloc_coherent(4096, 4096).expect("list"));
    let page = c.page_size();
    let mut done = 0u32;
    while done < reads {
        for t in 0..batch {
            let seg = [Segment {
                addr: buf.bus_addr().as_u64() + u64::from(t) * 4096,
                len: 4096,
            }];
            let req = IoRequest {
                op: IoOp::Read,
                nsid: 1,
                lba: u64::from(done + u32::from(t)) * 8 % 1_000_000,
                blocks: 8,
                fua: false,
                segs: &seg,
            };
            let sqe = build_io(&req, page, DataPointer::Prp, &mut lists).expect("build");
            q.submit(t, &sqe).expect("submit");
        }
        q.ring(c.mmio(), None).expect("ring");
        let mut n = 0;
        q.reap(c.mmio(), None, 256, |r| {
            assert!(matches!(r, Reaped::Done { status, .. } if status.is_success()));
            n += 1;
        })
        .expect("reap");
        assert_eq!(n, batch);
        done += u32::from(batch);
    }
    println!("{done} reads");
}
