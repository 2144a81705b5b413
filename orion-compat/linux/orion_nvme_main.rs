// SPDX-License-Identifier: GPL-2.0

//! orion_nvme: the orion-nvme driver core as a Rust-for-Linux PCI driver.
//!
//! This crate is the Linux implementation of the Orion driver API and the only place in the
//! project where `unsafe` is allowed: in [`bindings`] (and, until they move there, five
//! blocks in `blk`, each with its own `allow`). The root denies it but for the one place
//! where it owns the bound device's lifecycle: the DMA mask at probe. (It cannot `forbid`
//! unsafe code: that would reach into `bindings`.) The portable core (`src/`) and the API traits
//! (`orion-compat/src/`) are compiled into this crate as modules, unchanged.

#![deny(unsafe_code)]

use kernel::{
    device::{Bound, Core},
    dma::{Device as _, DmaMask},
    pci,
    prelude::*,
    sync::Arc,
};

#[path = "../src/lib.rs"]
pub mod orion_compat;

#[path = "../../src/lib.rs"]
pub mod orion;

use orion::{controller, spec};

mod attrs;
#[allow(unsafe_code)]
mod bindings;
mod blk;
mod ctrl;
mod error;
mod mgmt;
mod mmio;
mod pcidev;
mod platform;
mod reset;
mod sync;

use controller::{Controller, Settings};
use mmio::{Bar0, BoundPci};
use platform::{Ctrl, LinuxClock, LinuxDma, LinuxPlatform, Show};

/// Per-device state, alive from probe until the device is unbound.
///
/// Fields drop in declaration order: the controller (which owns BAR0) is shut down and the
/// BAR unmapped and released before the device is disabled.
struct OrionNvme<'bound> {
    pdev: &'bound pci::Device,
    /// The controller node, `/dev/onvme<C>` (none if its registration failed).
    node: Option<Pin<KBox<mgmt::CtrlNode>>>,
    /// The controller (inside, while up) and what the ioctls need.
    shared: kernel::sync::Arc<ctrl::Shared>,
    _instance: Instance,
    _enabled: mmio::EnabledDevice<'bound>,
}

/// ASCII identity fields of Identify Controller, trailing padding removed.
fn ascii(field: &[u8]) -> &str {
    let s = core::str::from_utf8(field).unwrap_or("?");
    s.trim_end_matches([' ', '\0'])
}

/// Logs each conformance result and a summary line ("conformance<label>: N passed, M failed").
fn log_results(
    pdev: &pci::Device,
    label: &str,
    results: &[(&str, orion_compat::conformance::Outcome)],
) {
    let mut failed = 0;
    for (name, r) in results {
        match r {
            Ok(()) => dev_info!(pdev, "orion_nvme: conformance {}: ok\n", name),
            Err(e) => {
                failed += 1;
                dev_err!(
                    pdev,
                    "orion_nvme: conformance {}: FAILED: {}\n",
                    name,
                    Show(e)
                );
            }
        }
    }
    dev_info!(
        pdev,
        "orion_nvme: conformance{}: {} passed, {} failed\n",
        label,
        results.len() - failed,
        failed
    );
}

/// Runs the Orion driver API conformance kit on this device's Linux implementations (the
/// checks that are safe on a live NVMe BAR0) and logs each result.
fn conformance(pdev: &pci::Device<Core<'_>>, bar: &Bar0, dma: &LinuxDma, clock: &LinuxClock) {
    use orion_compat::conformance as kit;
    // CAST: BAR0 of an NVMe controller is far below 4 GiB.
    let bar_len = pdev.resource_len(0).unwrap_or(0) as usize;
    let results = [
        ("dma.coherent", kit::dma_coherent(dma)),
        ("clock", kit::clock(clock)),
        ("mmio.bounds", kit::mmio_bounds(bar, bar_len)),
        ("sync.locks", kit::locks(&sync::LinuxSync)),
        ("sync.share", kit::share(&sync::LinuxSync)),
        (
            "mmio.read_only",
            kit::mmio_read_only(bar, spec::regs::Offset::Cap.at()),
        ),
    ];
    log_results(pdev, "", &results);
}

/// The controller as brought up: granted I/O queue count and the usable namespaces.
struct Up {
    ctrl: Ctrl,
    granted: u16,
    namespaces: KVec<controller::NamespaceInfo>,
}

/// An interrupt handler that only claims the interrupt.
struct Quiet;

impl orion_compat::irq::IrqHandler for Quiet {
    fn handle(&self, _vector: u16) -> orion_compat::irq::IrqReturn {
        orion_compat::irq::IrqReturn::Handled
    }
}

/// Runs the PCI and interrupt checks of the conformance kit on the Linux implementations,
/// with the controller up: the admin completion queue posts on vector 0, so an admin command
/// raises it. Runs before the block layer allocates its own vectors.
fn conformance_irq(pdev: &pci::Device<Core<'_>>, dev: &Arc<BoundPci>, ctrl: &mut Ctrl) {
    use orion_compat::conformance as kit;
    use orion_compat::irq::{IrqKinds, VectorRequest};
    use orion_compat::{Clock as _, IrqRegistration as _, IrqVectors as _};
    use spec::features::{Fid, Sel};
    let Ok(lp) = pcidev::LinuxPci::new(dev.clone()) else {
        dev_err!(pdev, "orion_nvme: conformance (pci/irq): out of memory\n");
        return;
    };
    let clock = LinuxClock::new();
    let mut results = KVec::new();
    let _ = results.push(("pci.config", kit::pci_config(&lp)), GFP_KERNEL);
    let request = VectorRequest {
        min: 1,
        max: 1,
        kinds: IrqKinds::ALL,
        pre_vectors: 0,
    };
    match kit::pci_vectors(&lp, &request) {
        Ok(v) => {
            let _ = results.push(("pci.vectors", Ok(())), GFP_KERNEL);
            // QEMU's controller only signals MSI-X vectors that a completion queue created
            // while MSI-X was on uses; the admin queue predates the vectors, so a throwaway
            // I/O queue on vector 0 arms it (and is deleted after the check).
            let slots = [orion::command::CidSlot::default(); 2];
            let armed = ctrl.create_io_queue(1, 2, Some(0), slots);
            // The Create I/O SQ completion already signalled vector 0 while it had no
            // handler (masked: left pending). A throwaway handler takes that interrupt so the
            // kit's counts start from a quiet vector.
            if let Ok(drain) = v.register(0, Quiet) {
                clock.sleep(orion_compat::time::Duration::from_millis(20));
                drain.synchronize();
                drop(drain);
            }
            let mut raise = |_v: u16| {
                let _ = ctrl.admin_command(
                    spec::sqe::Sqe::get_features(Fid::NUMBER_OF_QUEUES, Sel::Current),
                    false,
                );
            };
            if v.kind() == orion_compat::irq::IrqKind::Intx {
                // INTx is level-triggered: the line stays up until the admin queue is reaped,
                // which the core's polled admin path does at once, so "held back while
                // disabled, delivered once after enable" cannot be observed through it.
                dev_info!(
                    pdev,
                    "orion_nvme: conformance irq.delivery: SKIPPED: INTx is level-triggered and acknowledged by the admin path\n"
                );
            } else {
                let r =
                    kit::irq_delivery(&v, &clock, 0, kit::Timing::DEFAULT, &mut raise, &mut || {});
                let _ = results.push(("irq.delivery", r), GFP_KERNEL);
            }
            if let Ok(q) = armed {
                let _ = ctrl.delete_io_queue(q);
            }
        }
        Err(e) => {
            let _ = results.push(("pci.vectors", Err(e)), GFP_KERNEL);
        }
    }
    log_results(pdev, " (pci/irq)", &results);
}

/// Logs a failed bring-up step; the probe fails with ENODEV.
fn step_failed(pdev: &pci::Device<Core<'_>>, what: &str, e: controller::CtrlError) -> Error {
    dev_err!(pdev, "orion_nvme: {} failed: {:?}\n", what, e);
    ENODEV
}

/// Brings the controller up through the core ([`orion::driver::bring_up`]: enable, Identify,
/// Number of Queues, the namespaces) and logs what it found.
fn bring_up(
    pdev: &pci::Device<Core<'_>>,
    bar: Bar0,
    dma: LinuxDma,
    clock: LinuxClock,
) -> Result<KBox<Up>> {
    let fail = |what: &str, e: controller::CtrlError| step_failed(pdev, what, e);
    // Allocated first, so a failure cannot leave an enabled controller behind.
    let slot = KBox::<Up>::new_uninit(GFP_KERNEL)?;
    let scratch = KBox::<controller::PageBuf>::zeroed(GFP_KERNEL)?;
    let ctrl = Controller::<LinuxPlatform, _>::new(bar, dma, clock, scratch, Settings::default())
        .map_err(|e| fail("taking over the controller", e))?;
    let want = orion::interrupt::queues_wanted(kernel::cpu::nr_cpu_ids(), &config());
    let mut namespaces = KVec::new();
    let mut oom = false;
    let up = orion::driver::bring_up(
        ctrl,
        want,
        |ns| oom |= namespaces.push(ns, GFP_KERNEL).is_err(),
        |nsid, why| dev_warn!(pdev, "orion_nvme: namespace {} skipped: {}\n", nsid, why),
    )
    .map_err(|(step, e)| fail(step.name(), e))?;
    if oom {
        let _ = up.ctrl.reset();
        return Err(ENOMEM);
    }
    if let Some(info) = up.ctrl.info() {
        dev_info!(
            pdev,
            "orion_nvme: ready: model '{}' serial '{}' firmware '{}' cntlid {} mdts {} nn {}\n",
            ascii(&info.mn),
            ascii(&info.sn),
            ascii(&info.fr),
            info.cntlid,
            info.max_transfer.unwrap_or(0),
            info.nn
        );
    }
    dev_info!(
        pdev,
        "orion_nvme: {} I/O queues granted ({} asked)\n",
        up.granted,
        want
    );
    for ns in namespaces.iter() {
        dev_info!(
            pdev,
            "orion_nvme: namespace {}: {} blocks of {} bytes\n",
            ns.nsid,
            ns.blocks,
            ns.block_size
        );
    }
    Ok(KBox::write(
        slot,
        Up {
            ctrl: up.ctrl,
            granted: up.granted,
            namespaces,
        },
    ))
}

/// Controller instance numbers (the `C` in disk names `onvme<C>n<NSID>`): the lowest free
/// number, released when the device is unbound.
static INSTANCES: kernel::sync::atomic::Atomic<u64> = kernel::sync::atomic::Atomic::new(0);

/// A claimed instance number.
struct Instance(u32);

impl Instance {
    fn claim() -> Option<Self> {
        use kernel::sync::atomic::{Full, Relaxed};
        let mut cur = INSTANCES.load(Relaxed);
        loop {
            let free = (!cur).trailing_zeros();
            if free >= 64 {
                return None;
            }
            match INSTANCES.cmpxchg(cur, cur | (1 << free), Full) {
                Ok(_) => return Some(Self(free)),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        use kernel::sync::atomic::{Full, Relaxed};
        let mut cur = INSTANCES.load(Relaxed);
        while let Err(now) = INSTANCES.cmpxchg(cur, cur & !(1u64 << self.0), Full) {
            cur = now;
        }
    }
}

/// The controller's Commands Supported and Effects log, if it has one and it can be read.
fn command_effects(
    pdev: &pci::Device<Core<'_>>,
    ctrl: &mut Ctrl,
) -> Option<KBox<controller::PageBuf>> {
    use zerocopy::FromBytes as _;
    let mut page = KBox::<controller::PageBuf>::zeroed(GFP_KERNEL).ok()?;
    let log =
        spec::log::Effects::mut_from_bytes(zerocopy::IntoBytes::as_mut_bytes(&mut *page)).ok()?;
    match ctrl.command_effects(log) {
        Ok(true) => Some(page),
        Ok(false) => None,
        Err(e) => {
            dev_warn!(
                pdev,
                "orion_nvme: Commands Supported and Effects log: {:?}\n",
                e
            );
            None
        }
    }
}

/// The second half of probe, once the controller is up: passthrough state, the block layer
/// and the controller node.
#[inline(never)]
fn finish_probe<'b>(
    pdev: &'b pci::Device<Core<'_>>,
    dev: Arc<BoundPci>,
    up: KBox<Up>,
    instance: Instance,
    enabled: mmio::EnabledDevice<'b>,
    shared_bar: Bar0,
) -> Result<OrionNvme<'b>> {
    let Up {
        mut ctrl,
        granted,
        namespaces,
    } = KBox::into_inner(up);
    if module_parameters::conformance.value() {
        conformance_irq(pdev, &dev, &mut ctrl);
    }
    // The Commands Supported and Effects log decides what unprivileged passthrough may send.
    let effects = command_effects(pdev, &mut ctrl);
    let max_data = ctrl
        .info()
        .map_or(4096, |i| orion::io::max_transfer(i, ctrl.page_size()));
    let identity = match ctrl.info() {
        Some(i) => ctrl::Identity::new(i, pdev),
        None => {
            let _ = ctrl.shutdown();
            return Err(ENODEV);
        }
    };
    let shared = match ctrl::Shared::new(instance.0, max_data, effects, identity, &namespaces) {
        Ok(s) => s,
        Err(e) => {
            let _ = ctrl.shutdown();
            return Err(e);
        }
    };
    let cfg = config();
    let params = blk::IoParams {
        ns_groups: &attrs::NS_GROUPS,
        granted,
        poll_queues: cfg.poll_queues,
        queue_depth: cfg.queue_depth,
        instance: instance.0,
    };
    let io = match blk::Io::start(
        dev,
        &mut ctrl,
        &shared_bar,
        &namespaces,
        &params,
        shared.clone(),
    ) {
        Ok(io) => io,
        Err(e) => {
            dev_err!(pdev, "orion_nvme: block I/O setup failed: {:?}\n", e);
            let _ = ctrl.shutdown();
            return Err(e);
        }
    };
    shared.set_io(io);
    shared.put_ctrl(ctrl);
    shared.start_events();
    let node = match mgmt::CtrlNode::register(shared.clone(), pdev, &attrs::CTRL_GROUP) {
        Ok(n) => Some(n),
        Err(e) => {
            dev_warn!(
                pdev,
                "orion_nvme: no controller node /dev/onvme{}: {:?}\n",
                instance.0,
                e
            );
            None
        }
    };
    Ok(OrionNvme {
        pdev,
        node,
        shared,
        _instance: instance,
        _enabled: enabled,
    })
}

struct OrionNvmeDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <OrionNvmeDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_class(kernel::bindings::PCI_CLASS_STORAGE_EXPRESS, 0xff_ffff),
        ()
    )]
);

impl pci::Driver for OrionNvmeDriver {
    type IdInfo = ();
    type Data<'bound> = OrionNvme<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        let enabled = mmio::EnabledDevice::new(pdev);
        // SAFETY: probe runs before any DMA allocation or mapping for this device.
        #[allow(unsafe_code)]
        unsafe {
            pdev.dma_set_mask_and_coherent(DmaMask::new::<64>())?
        };
        pdev.set_master();
        mmio::save_config_state(pdev);
        let dev = BoundPci::new(pdev)?;
        let bar = Bar0::new(pdev.iomap_region(0, c"orion_nvme")?)?;
        let regs = controller::RegisterSnapshot::read(&bar).map_err(|e| {
            dev_err!(pdev, "cannot read controller registers: {:?}\n", e);
            ENODEV
        })?;
        dev_info!(
            pdev,
            "orion_nvme: bound {:04x}:{:04x}: {}\n",
            pdev.vendor_id().as_raw(),
            pdev.device_id(),
            Show(&regs)
        );
        let dma = LinuxDma::new(dev.clone());
        let clock = LinuxClock::new();
        if module_parameters::conformance.value() {
            conformance(pdev, &bar, &dma, &clock);
        }
        let instance = Instance::claim().ok_or_else(|| {
            dev_err!(pdev, "orion_nvme: too many controllers\n");
            EBUSY
        })?;
        let shared_bar = bar.clone();
        // Bring-up and the rest run in separate frames, so the deep call chains under each
        // (enable, add_disk) do not stack on top of both: the kernel stack is 16 KiB.
        let up = bring_up(pdev, bar, dma, clock)?;
        finish_probe(pdev, dev, up, instance, enabled, shared_bar)
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let csts = this
            .shared
            .with_ctrl(|c| c.raw_status())
            .unwrap_or(u32::MAX);
        dev_info!(pdev, "orion_nvme: unbinding (csts {:#x})\n", csts);
    }
}

impl Drop for OrionNvme<'_> {
    fn drop(&mut self) {
        // The controller node first (no new opens; open files get ENODEV once the controller
        // is taken below), then disks and I/O queues (their requests drain), then an orderly
        // shutdown (CC.SHN) before the BAR goes away; the device is still bound here.
        self.node = None;
        self.shared.stop_events();
        // Up, or dead after a failed reset (then already disabled).
        let mut ctrl = self.shared.take_ctrl();
        let dead = self.shared.take_dead();
        if let Some(mut io) = self.shared.clear_io() {
            io.teardown(ctrl.as_mut());
            let t = io.timeouts.load(kernel::sync::atomic::Relaxed);
            if t > 0 {
                dev_warn!(self.pdev, "orion_nvme: {} requests timed out\n", t);
            }
        }
        let resets = self.shared.resets.load(kernel::sync::atomic::Relaxed);
        if resets > 0 {
            dev_info!(self.pdev, "orion_nvme: {} controller resets\n", resets);
        }
        match ctrl {
            Some(ctrl) => match ctrl.shutdown() {
                Ok(_) => dev_info!(self.pdev, "orion_nvme: shutdown complete\n"),
                Err((e, _)) => dev_warn!(self.pdev, "orion_nvme: shutdown failed: {:?}\n", e),
            },
            None if dead.is_some() => {
                dev_warn!(self.pdev, "orion_nvme: controller was dead (disabled)\n")
            }
            None => return,
        }
        drop(dead);
        // The controller is disabled: no late DMA into buffers of timed-out commands.
        let n = self.shared.release_quarantine();
        if n > 0 {
            dev_info!(
                self.pdev,
                "orion_nvme: freed {} buffers of timed-out commands\n",
                n
            );
        }
    }
}

/// The driver's configuration: the `[nvme]` defaults with the module parameters applied.
fn config() -> orion::config::Config {
    orion::config::Config {
        queue_count: module_parameters::queue_count.value(),
        queue_depth: module_parameters::queue_depth.value(),
        poll_queues: module_parameters::poll_queues.value(),
        ..orion::config::Config::default()
    }
}

/// Checks the vendor opcode lists: each nonzero byte must be a vendor-specific opcode.
fn check_vendor_params() -> Result {
    use orion::passthru::{check_vendor_list, QueueKind};
    let lists = [
        (
            "vendor_admin_opcodes",
            QueueKind::Admin,
            module_parameters::vendor_admin_opcodes.value(),
            "C0h-FFh",
        ),
        (
            "vendor_io_opcodes",
            QueueKind::Io,
            module_parameters::vendor_io_opcodes.value(),
            "80h-FFh",
        ),
    ];
    for (name, q, list, range) in lists {
        if let Err(b) = check_vendor_list(q, list) {
            pr_err!(
                "orion_nvme: module parameter {}: opcode {:#04x} is not vendor specific ({})\n",
                name,
                b,
                range
            );
            return Err(EINVAL);
        }
    }
    Ok(())
}

/// What the kernel crate's PCI adapter leaves out: `shutdown` (power-off and reboot shut the
/// controllers down in order) and the PCI error handlers. A function reset by the PCI core
/// (sysfs `reset`, or recovery) is bracketed by a controller reset split in two halves.
impl bindings::pci_driver::Recovery for OrionNvmeDriver {
    /// The controller is shut down (CC.SHN) with dispatch stopped.
    fn shutdown(_pdev: &pci::Device<Bound>, d: Pin<&OrionNvme<'_>>) {
        d.shared.power_off();
    }

    /// What the PCI core's error recovery found.
    /// - A non-fatal error (`io_normal`, the link still up): carry on; `mmio_enabled` checks
    ///   the controller before recovery ends.
    /// - A fatal one (`io_frozen`: the link is being reset): the first half of a controller
    ///   reset, and a slot reset is asked for.
    /// - A permanent failure: the controller is dead and its I/O fails.
    fn error_detected(
        _pdev: &pci::Device<Bound>,
        d: Pin<&OrionNvme<'_>>,
        state: kernel::bindings::pci_channel_state_t,
    ) -> kernel::bindings::pci_ers_result_t {
        use kernel::bindings as b;
        let what = match state {
            b::pci_channel_io_normal => "non-fatal, link up",
            b::pci_channel_io_frozen => "fatal, link reset",
            b::pci_channel_io_perm_failure => "permanent failure",
            _ => "unknown channel state",
        };
        dev_err!(
            d.pdev,
            "orion_nvme: PCI error detected ({}, channel state {})\n",
            what,
            state
        );
        match state {
            b::pci_channel_io_normal => b::pci_ers_result_PCI_ERS_RESULT_CAN_RECOVER,
            b::pci_channel_io_perm_failure => {
                // A recovery that began a reset and then failed ends that reset here.
                if !d.shared.function_reset_abandon() {
                    d.shared.power_off();
                }
                b::pci_ers_result_PCI_ERS_RESULT_DISCONNECT
            }
            _ => {
                d.shared.function_reset_prepare();
                b::pci_ers_result_PCI_ERS_RESULT_NEED_RESET
            }
        }
    }

    /// After a non-fatal error, the controller must still answer its registers with CSTS.CFS
    /// clear; if not, the first half of a controller reset, and a slot reset.
    fn mmio_enabled(
        _pdev: &pci::Device<Bound>,
        d: Pin<&OrionNvme<'_>>,
    ) -> kernel::bindings::pci_ers_result_t {
        use kernel::bindings as b;
        match d.shared.with_ctrl(|c| c.check_alive().map(|_| ())) {
            Ok(Ok(())) => {
                dev_info!(
                    d.pdev,
                    "orion_nvme: controller healthy after the PCI error\n"
                );
                b::pci_ers_result_PCI_ERS_RESULT_RECOVERED
            }
            Ok(Err(e)) => {
                dev_err!(
                    d.pdev,
                    "orion_nvme: controller unhealthy after the PCI error ({:?}); asking for a slot reset\n",
                    e
                );
                d.shared.function_reset_prepare();
                b::pci_ers_result_PCI_ERS_RESULT_NEED_RESET
            }
            // Dead already, or being unbound: nothing to recover.
            Err(_) => b::pci_ers_result_PCI_ERS_RESULT_DISCONNECT,
        }
    }

    /// The link was reset, which reset the function and cleared its configuration space; the
    /// state saved at probe is restored (and saved again for a later recovery), then the
    /// second half of the controller reset. Recovered if the controller came back.
    fn slot_reset(
        pdev: &pci::Device<Bound>,
        d: Pin<&OrionNvme<'_>>,
    ) -> kernel::bindings::pci_ers_result_t {
        use kernel::bindings as b;
        bindings::pci::restore_and_save_state(pdev);
        d.shared.function_reset_done("PCI error recovery");
        if d.shared.is_live() {
            b::pci_ers_result_PCI_ERS_RESULT_RECOVERED
        } else {
            b::pci_ers_result_PCI_ERS_RESULT_DISCONNECT
        }
    }

    /// The first half of a controller reset, before the function reset.
    fn reset_prepare(_pdev: &pci::Device<Bound>, d: Pin<&OrionNvme<'_>>) {
        d.shared.function_reset_prepare();
    }

    /// The second half, after the function reset.
    fn reset_done(_pdev: &pci::Device<Bound>, d: Pin<&OrionNvme<'_>>) {
        d.shared.function_reset_done("function reset");
    }

    /// Recovery is over and I/O flows again.
    fn resume(_pdev: &pci::Device<Bound>, d: Pin<&OrionNvme<'_>>) {
        dev_info!(
            d.pdev,
            "orion_nvme: PCI error recovery done: controller {}\n",
            d.shared.state()
        );
    }
}

/// The module: checks its parameters, then registers the PCI driver.
#[pin_data]
struct OrionModule {
    _config_ok: (),
    #[pin]
    _driver: kernel::driver::Registration<bindings::pci_driver::Adapter<OrionNvmeDriver>>,
}

impl kernel::InPlaceModule for OrionModule {
    fn init(module: &'static kernel::ThisModule) -> impl PinInit<Self, Error> {
        let checked = config()
            .validate()
            .map_err(|e| {
                pr_err!("orion_nvme: module parameter {}\n", Show(&e));
                EINVAL
            })
            .and_then(|()| check_vendor_params());
        try_pin_init!(Self {
            _config_ok: checked?,
            _driver <- kernel::driver::Registration::new(
                <Self as kernel::ModuleMetadata>::NAME,
                module,
            ),
        })
    }
}

module! {
    type: OrionModule,
    name: "orion_nvme",
    authors: ["orion-nvme developers"],
    description: "orion-nvme: NVMe host driver (portable Rust core)",
    license: "GPL v2",
    params: {
        queue_count: u32 {
            default: 8,
            description: "I/O queues to ask each controller for (1..=64; fewer may be granted)",
        },
        queue_depth: u32 {
            default: 1024,
            description: "Entries per I/O queue (2..=4096; CAP.MQES may lower it)",
        },
        poll_queues: u32 {
            default: 0,
            description: "Polled I/O queues for io_uring IOPOLL (0..=64), out of queue_count + poll_queues asked",
        },
        vendor_admin_opcodes: u64 {
            default: 0,
            description: "Vendor-specific admin opcodes (C0h-FFh) passthrough may send, one per nonzero byte (e.g. 0xc1c0); others are refused with EPERM",
        },
        vendor_io_opcodes: u64 {
            default: 0,
            description: "Vendor-specific I/O opcodes (80h-FFh) passthrough may send, one per nonzero byte; others are refused with EPERM",
        },
        conformance: bool {
            default: false,
            description: "Run the Orion driver API conformance kit at probe and log the results",
        },
    },
}
