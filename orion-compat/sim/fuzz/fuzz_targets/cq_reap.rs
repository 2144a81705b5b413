//! Completion queue memory written by a device that lies: the reaper must consume at most its
//! budget, never complete a tag that is not outstanding, never complete a tag twice, and
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orion_compat::dma::{CoherentMem, Dma};
use orion_nvme::command::CidSlot;
use orion_nvme::queue::{QueuePair, Reaped};
use orion_nvme::spec::regs::Cap;
use orion_nvme::spec::sqe::Sqe;
use orion_sim::regfile::RegFile;
use orion_sim::Sim;

fuzz_target!(|data: &[u8]| {
    let Some((&[d, k], rest)) = data.split_first_chunk::<2>().map(|(h, r)| (h, r)) else {
        return;
    };
    let depth = 2 + u32::from(d % 63);
    let sim = Sim::new();
    let sq = sim.dma.alloc_coherent(depth as usize * 64, 4096).unwrap();
    let cq = sim.dma.alloc_coherent(depth as usize * 16, 4096).unwrap();
    let n = rest.len().min(depth as usize * 16);
    cq.write_bytes(0, &rest[..n]).unwrap();
    let slots = vec![CidSlot::default(); depth as usize];
    let mut q = QueuePair::new(1, depth, Cap(0), sq, cq, slots).unwrap();
    let outstanding = u32::from(k) % depth;
    for tag in 0..outstanding {
        q.submit(tag as u16, &Sqe::flush(1)).unwrap();
    }
    let regs = RegFile::new(0x2000);
    q.ring(&regs, None).unwrap();
    let mut done = vec![false; depth as usize];
    let budget = depth as usize * 2;
    let reaped = q
        .reap(&regs, None, budget, |r| {
            if let Reaped::Done { tag, .. } = r {
                let t = usize::from(tag);
                assert!(u32::from(tag) < outstanding, "completed a tag never submitted");
                assert!(!done[t], "completed a tag twice");
                done[t] = true;
            }
        })
        .unwrap();
    assert!(reaped <= budget);
    let completed = done.iter().filter(|&&x| x).count();
    assert_eq!(q.in_flight(), outstanding as usize - completed);
});
