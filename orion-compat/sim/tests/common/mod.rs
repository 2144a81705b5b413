//! The rig shared by the core's tests against the simulated controller (`core.rs`,
//! `core_ns_mgmt.rs`): the core's platform on the simulator and a controller on a fresh
//! simulated PCI function.

use orion_compat::pci::Pci;
use orion_nvme::controller::{Controller, Disabled, Enabled, PageBuf, Platform, Settings};
use orion_sim::nvme::{NvmeBuilder, SimNvme};
use orion_sim::pci::SimBar;
use orion_sim::{Sim, SimDma, VirtualClock};

/// The core's platform on the simulator (shared with the other host test modules).
pub(crate) struct SimPlatform;

impl Platform for SimPlatform {
    type Mmio = SimBar;
    type Dma = SimDma;
    type Clock = VirtualClock;
    type Scratch = Box<PageBuf>;
}

pub(crate) struct Rig {
    pub(crate) sim: Sim,
    pub(crate) nvme: SimNvme,
}

pub(crate) fn rig(b: NvmeBuilder) -> (Rig, Controller<SimPlatform, Disabled>) {
    let sim = Sim::new();
    let (pci, nvme) = b.build_pci(&sim);
    pci.set_bus_master(true).unwrap();
    let bar = pci.map_bar(0).unwrap();
    let ctrl = Controller::new(
        bar,
        sim.dma.clone(),
        sim.clock.clone(),
        Box::new([0u64; 512]),
        Settings::default(),
    )
    .unwrap();
    (Rig { sim, nvme }, ctrl)
}

pub(crate) fn up(b: NvmeBuilder) -> (Rig, Controller<SimPlatform, Enabled>) {
    let (r, c) = rig(b);
    let c = c.enable().map_err(|(e, _)| e).unwrap();
    (r, c)
}
