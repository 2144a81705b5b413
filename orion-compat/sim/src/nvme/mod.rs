//! A simulated NVMe controller: a state machine of NVMe Base 2.0 and the NVM Command Set
//! 1.0, written from the specification independently of the driver, as the driver's "honest
//! opponent" in host tests.
//!
//! The model sits behind BAR0 as an [`orion_compat::Mmio`], reads and writes host memory by
//! bus address through a [`DmaSpace`](crate::DmaSpace), raises completion interrupts on a
//! [`SimIrqChip`](crate::SimIrqChip) and measures its delays on a
//! [`VirtualClock`](crate::VirtualClock). Build it with [`NvmeBuilder`]; steer it with
//! [`SimNvme`] (events, temperature, block contents, counters) and [`Faults`].
//!
//! ```
//! use orion_compat::pci::Pci;
//! use orion_compat::Mmio;
//! use orion_sim::nvme::NvmeBuilder;
//! use orion_sim::Sim;
//!
//! let sim = Sim::new();
//! let (pci, nvme) = NvmeBuilder::new().mdts(5).namespace(2, 4096, 1 << 18).build_pci(&sim);
//! pci.set_bus_master(true).unwrap();
//! let bar = pci.map_bar(0).unwrap();
//! assert_eq!(bar.read32(0x08), Ok(0x0002_0000)); // VS 2.0.0
//! nvme.faults().lose_next_interrupts(1);
//! assert_eq!(nvme.counters().completions, 0);
//! ```
//!
//! # What it implements
//!
//! - Registers (NVMe Base 2.0 §3.1.3): CAP (MQES, CQR=1, TO, DSTRD, NSSRS, CSS, MPSMIN,
//!   MPSMAX), VS, INTMS/INTMC (a mask over vectors 0..32, raised once unmasked), CC, CSTS
//!   (RDY, CFS, SHST, NSSRO), NSSR, AQA, ASQ, ACQ, and the doorbells at
//!   `0x1000 + (2y [+1]) * (4 << DSTRD)`. 64-bit accesses are two 32-bit ones, low first.
//! - CC.EN 0→1 validates CC (MPS within CAP, CSS supported, AMS round robin, IOSQES 6 and
//!   IOCQES 4 unless admin-only) and AQA/ASQ/ACQ (at least two entries, non-zero and page
//!   aligned); a bad configuration sets CSTS.CFS. CSTS.RDY follows after the ready delay on
//!   the virtual clock. CC.EN 1→0 is a controller reset; CC.SHN shuts down (SHST 01b then
//!   10b); NSSR "NVMe" is a subsystem reset with CSTS.NSSRO.
//! - Queues: the admin pair and I/O pairs through Create/Delete with the spec's checks;
//!   phase tags, SQHD in every entry, a completion queue is never overrun (a submission queue
//!   whose completion queue is full waits), MSI-X style interrupts per completion queue.
//!   Invalid doorbell writes raise the Error asynchronous events and log an error.
//! - Shadow doorbells (Doorbell Buffer Config, §5.8) for I/O queues, read at
//!   [`SimNvme::process`] and every doorbell write, with EventIdx written back.
//! - Admin: Identify (CNS 00h, 01h, 02h, 03h, 05h, 06h, 10h–13h, 1Ch), Get/Set Features
//!   (Arbitration, Power Management, Temperature Threshold, Error Recovery, Volatile Write
//!   Cache, Number of Queues, Interrupt Coalescing, Interrupt Vector Configuration, Write
//!   Atomicity, Async Event Configuration, Timestamp, Keep Alive Timer), Get Log Page (Error
//!   Information, SMART / Health, Firmware Slot, Changed Namespace List, Commands Supported
//!   and Effects), Abort, Asynchronous Event Request, Doorbell Buffer Config, Keep Alive,
//!   Namespace Management (create a private NVM namespace, fully provisioned, in one of the
//!   LBA formats without protection information, from TNVMCAP; delete one or all),
//!   Namespace Attachment (this controller only), Format NVM. Attach, detach and the delete
//!   of an attached namespace go into the Changed Namespace List and raise Namespace
//!   Attribute Changed when AEC enables it.
//! - NVM: Flush, Write, Read, Compare, Write Zeroes, Dataset Management (deallocate), Verify,
//!   on sparse in-memory namespaces; PRPs and lists (§4.1.1), SGL Data Block / Segment / Last
//!   Segment (§4.1.2); MDTS, LBA range, namespace and SGL length checks; DMA faults complete
//!   with Data Transfer Error.
//! - Faults ([`Faults`]) and [`Counters`].
//!
//! # What it does not implement
//!
//! Physically non-contiguous queues (CAP.CQR is 1), weighted round robin arbitration,
//! fused commands, metadata and protection information, SGL Bit Bucket / Keyed / Transport
//! descriptors and SGLs for admin commands, the controller memory buffer, persistent memory
//! region, boot partitions, power states beyond PS0 and APST, host memory buffer, firmware
//! download/commit, self-test, sanitize, security send/receive, reservations, directives,
//! Copy, Write Uncorrectable, zoned and key-value command sets, multiple controllers or
//! ANA, Traffic Based Keep Alive, and interrupt coalescing (the feature is stored but every
//! completion batch interrupts at once). Commands complete synchronously, inside the
//! doorbell write or [`SimNvme::process`].

mod admin;
mod config;
mod ctrl;
mod data;
mod dptr;
mod fault;
mod io;
mod ns;
mod status;
mod wire;

pub use config::{NamespaceSpec, NvmeBuilder, ONCS_IMPLEMENTED, QEMU_IDS};
pub use fault::{AsyncEvent, CmdMatch, Counters, HeldCommand, QueueMatch};
pub use status::{generic, media, sct, specific, Status};

pub use admin::op as admin_opcode;
pub use io::op as io_opcode;

use crate::clock::lock;
use crate::irq::SimIrqChip;
use crate::pci::BusMaster;
use crate::{DmaSpace, VirtualClock};
use config::Config;
use ctrl::{Ctrl, Pending};
use dptr::Bus;
use ns::Namespace;
use orion_compat::time::{Clock, Duration};
use orion_compat::{ErrorKind, Mmio};
use std::sync::{Arc, Mutex};

struct Shared {
    ctrl: Mutex<Ctrl>,
    clock: VirtualClock,
    chip: Option<SimIrqChip>,
    bar_len: u64,
}

impl Shared {
    /// Runs `f` on the controller at the clock's current time, then raises the interrupts it
    /// asked for, outside the lock (a handler may ring doorbells).
    fn with<R>(&self, f: impl FnOnce(&mut Ctrl) -> R) -> R {
        let (r, irqs) = {
            let mut c = lock(&self.ctrl);
            c.tick(self.clock.now());
            let r = f(&mut c);
            (r, c.take_irqs())
        };
        if let Some(chip) = &self.chip {
            for (v, lose) in irqs {
                if lose {
                    chip.lose_next(v, 1);
                }
                chip.raise(v);
            }
        }
        r
    }
}

/// A simulated NVMe controller. Cloning gives another handle to the same controller; one
/// handle backs BAR0 (it implements [`Mmio`]) while the test keeps another.
#[derive(Clone)]
pub struct SimNvme {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for SimNvme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNvme")
            .field("bar_len", &self.inner.bar_len)
            .finish_non_exhaustive()
    }
}

impl SimNvme {
    /// A builder with QEMU-like defaults.
    pub fn builder() -> NvmeBuilder {
        NvmeBuilder::new()
    }

    fn from_parts(
        cfg: Config,
        space: DmaSpace,
        clock: VirtualClock,
        chip: Option<SimIrqChip>,
        bus_master: Option<BusMaster>,
    ) -> Self {
        let bar_len = config::bar_len(&cfg);
        let ctrl = Ctrl::new(cfg, Bus { space, bus_master }, clock.now());
        Self {
            inner: Arc::new(Shared {
                ctrl: Mutex::new(ctrl),
                clock,
                chip,
                bar_len,
            }),
        }
    }

    /// The length of the register window (BAR0).
    pub fn bar_len(&self) -> u64 {
        self.inner.bar_len
    }

    /// Processes whatever the host has made visible: reads the shadow doorbells (when a
    /// doorbell buffer is configured), executes queued commands and posts completions that
    /// fit. MMIO doorbell writes do this by themselves.
    pub fn process(&self) {
        self.inner.with(Ctrl::process);
    }

    /// The fault-injection handle of this controller.
    pub fn faults(&self) -> Faults {
        Faults {
            inner: self.inner.clone(),
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        lock(&self.inner.ctrl).counters.clone()
    }

    /// Whether CSTS.RDY is 1 now.
    pub fn is_ready(&self) -> bool {
        self.inner.with(|c| c.read32(wire::reg::CSTS) & 1 != 0)
    }

    /// The I/O submission queues that exist, by ID.
    pub fn io_submission_queues(&self) -> Vec<u16> {
        lock(&self.inner.ctrl)
            .sqs
            .keys()
            .copied()
            .filter(|q| *q != 0)
            .collect()
    }

    /// The I/O completion queues that exist, by ID.
    pub fn io_completion_queues(&self) -> Vec<u16> {
        lock(&self.inner.ctrl)
            .cqs
            .keys()
            .copied()
            .filter(|q| *q != 0)
            .collect()
    }

    /// How many Asynchronous Event Requests are outstanding.
    pub fn outstanding_aers(&self) -> usize {
        lock(&self.inner.ctrl).aers.len()
    }

    /// The doorbell buffer addresses (shadow, EventIdx) if Doorbell Buffer Config is active.
    pub fn doorbell_buffer(&self) -> Option<(u64, u64)> {
        lock(&self.inner.ctrl).dbbuf
    }

    /// Queues an asynchronous event; it completes an outstanding Asynchronous Event Request
    /// now or when one arrives, unless an event of the same type was reported and not yet
    /// cleared by reading its log page.
    pub fn raise_event(&self, ev: AsyncEvent) {
        self.inner.with(|c| c.queue_event(ev));
    }

    /// Sets the composite temperature (kelvin). Crossing a temperature threshold sets
    /// critical warning bit 1 and, if enabled in Async Event Configuration, raises a SMART /
    /// Health event.
    pub fn set_temperature(&self, kelvin: u16) {
        self.inner.with(|c| {
            let before = c.critical_warning();
            c.smart.temperature = kelvin;
            c.warning_changed(before);
        });
    }

    /// Sets the critical warning bits a test controls (SMART byte 0); newly set bits raise
    /// SMART / Health events where Async Event Configuration enables them.
    pub fn set_critical_warning(&self, bits: u8) {
        self.inner.with(|c| {
            let before = c.critical_warning();
            c.smart.warning = bits;
            c.warning_changed(before);
        });
    }

    /// The active namespace IDs.
    pub fn active_namespaces(&self) -> Vec<u32> {
        lock(&self.inner.ctrl)
            .namespaces
            .iter()
            .filter(|(_, n)| n.attached)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The block size and size in blocks of allocated namespace `nsid`.
    pub fn namespace_geometry(&self, nsid: u32) -> Option<(u32, u64)> {
        lock(&self.inner.ctrl)
            .namespaces
            .get(&nsid)
            .map(|n| (n.block_size, n.nsze))
    }

    /// Block `lba` of namespace `nsid` as the device holds it (zeroes if never written or
    /// deallocated); `None` if there is no such namespace or block.
    pub fn read_block(&self, nsid: u32, lba: u64) -> Option<Vec<u8>> {
        let c = lock(&self.inner.ctrl);
        let ns = c.namespaces.get(&nsid)?;
        if lba >= ns.nsze {
            return None;
        }
        // CAST: block sizes are at most 64 KiB.
        Some(
            ns.block(lba)
                .map_or_else(|| vec![0; ns.block_size as usize], <[u8]>::to_vec),
        )
    }

    /// Stores `data` as block `lba` of namespace `nsid`, behind the host's back. Returns
    /// false (and changes nothing) if there is no such block or `data` is not one block long.
    pub fn write_block(&self, nsid: u32, lba: u64, data: &[u8]) -> bool {
        let mut c = lock(&self.inner.ctrl);
        let Some(ns) = c.namespaces.get_mut(&nsid) else {
            return false;
        };
        if lba >= ns.nsze || data.len() != ns.block_size as usize {
            return false;
        }
        ns.store(lba, data.into());
        true
    }

    /// Creates a namespace as another host would (and attaches it if `spec.attached`),
    /// recording it in the Changed Namespace List and raising Namespace Attribute Changed
    /// when enabled. Returns false if the ID is taken or outside 1..=NN, or the block size is
    /// not an LBA format.
    pub fn add_namespace(&self, spec: NamespaceSpec) -> bool {
        self.inner.with(|c| {
            let Some(idx) = c.cfg.lba_formats.iter().position(|s| *s == spec.block_size) else {
                return false;
            };
            if spec.nsid == 0
                || spec.nsid > c.cfg.nn
                || spec.blocks == 0
                || c.namespaces.contains_key(&spec.nsid)
            {
                return false;
            }
            // CAST: at most 16 formats.
            let mut ns = Namespace::new(idx as u8, spec.block_size, spec.blocks, spec.attached);
            ns.eui64 = spec.eui64;
            ns.nguid = spec.nguid;
            ns.uuid = spec.uuid;
            c.namespaces.insert(spec.nsid, ns);
            if spec.attached {
                c.namespace_changed(spec.nsid);
            }
            true
        })
    }

    /// Attaches or detaches namespace `nsid` as another host would, with the same change
    /// notification as [`SimNvme::add_namespace`]. Returns false if it is not allocated or
    /// already in that state.
    pub fn set_attached(&self, nsid: u32, attached: bool) -> bool {
        self.inner.with(|c| {
            let Some(ns) = c.namespaces.get_mut(&nsid) else {
                return false;
            };
            if ns.attached == attached {
                return false;
            }
            ns.attached = attached;
            c.namespace_changed(nsid);
            true
        })
    }

    /// How many Error Information entries were recorded since the controller was built.
    pub fn error_count(&self) -> u64 {
        lock(&self.inner.ctrl).error_count
    }

    fn check(&self, offset: usize, n: usize) -> Result<(), ErrorKind> {
        let end = offset.checked_add(n).ok_or(ErrorKind::OutOfRange)?;
        if offset % n != 0 || end as u64 > self.inner.bar_len {
            return Err(ErrorKind::OutOfRange);
        }
        Ok(())
    }
}

impl Mmio for SimNvme {
    type Error = ErrorKind;

    fn read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        self.check(offset, 4)?;
        Ok(self.inner.with(|c| c.read32(offset)))
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        self.check(offset, 4)?;
        self.inner.with(|c| c.write32(offset, value));
        Ok(())
    }

    fn read64(&self, offset: usize) -> Result<u64, ErrorKind> {
        self.check(offset, 8)?;
        Ok(self
            .inner
            .with(|c| u64::from(c.read32(offset)) | (u64::from(c.read32(offset + 4)) << 32)))
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), ErrorKind> {
        self.check(offset, 8)?;
        // CAST: the two halves.
        self.inner.with(|c| {
            c.write32(offset, value as u32);
            c.write32(offset + 4, (value >> 32) as u32);
        });
        Ok(())
    }
}

/// Fault injection for one controller. Cloning gives another handle to the same controller.
///
/// The per-command faults are one-shot rules matched, in the order they were added, against
/// each command the controller fetches ([`CmdMatch`]).
#[derive(Clone)]
pub struct Faults {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl Faults {
    /// A fatal controller error now: CSTS.CFS becomes 1 and nothing more is processed until
    /// a controller reset (CC.EN 1→0) or subsystem reset.
    pub fn fail_now(&self) {
        self.inner.with(|c| c.cfs = true);
    }

    /// Whether later enables never set CSTS.RDY.
    pub fn never_ready(&self, on: bool) {
        self.inner.with(|c| c.faults.never_ready = on);
    }

    /// Limits the I/O queues later Set Features (Number of Queues) grant to `n` (at least 1),
    /// below the configured maximum, as a controller whose resources changed (a firmware
    /// update, a virtual function re-provisioned) does; `None` lifts the limit.
    pub fn grant_io_queues(&self, n: Option<u16>) {
        self.inner
            .with(|c| c.faults.queue_limit = n.map(|n| n.max(1)));
    }

    /// Overrides the ready delay for later enables (`None` returns to the configured one);
    /// e.g. longer than CAP.TO to make a driver time out.
    pub fn ready_delay(&self, d: Option<Duration>) {
        self.inner.with(|c| c.faults.ready_delay = d);
    }

    /// The next `n` matching commands execute, but their completions are never posted.
    pub fn drop_completions(&self, m: CmdMatch, n: u32) {
        if n > 0 {
            self.inner.with(|c| c.faults.drop.push((m, n)));
        }
    }

    /// The next matching command's completion is posted twice (same CID).
    pub fn duplicate_next(&self, m: CmdMatch) {
        self.inner.with(|c| c.faults.duplicate.push(m));
    }

    /// The next matching command's completion carries `cid` instead of its own.
    pub fn wrong_cid_next(&self, m: CmdMatch, cid: u16) {
        self.inner.with(|c| c.faults.replace_cid.push((m, cid)));
    }

    /// Posts, right away, a successful completion for `cid` that no command asked for, on
    /// submission queue `sqid`'s completion queue. Returns false if the queue does not exist
    /// or the controller is not running.
    pub fn stray_completion(&self, sqid: u16, cid: u16) -> bool {
        self.inner.with(|c| {
            let Some(sq) = c.sqs.get(&sqid) else {
                return false;
            };
            if !c.running() {
                return false;
            }
            let cqid = sq.cqid;
            // CAST: queue sizes are at most 65536 entries.
            let sqhd = sq.head as u16;
            c.post(
                cqid,
                Pending {
                    sqid,
                    sqhd,
                    cid,
                    dw0: 0,
                    dw1: 0,
                    status: Status::SUCCESS,
                },
            );
            true
        })
    }

    /// The next matching command is not executed and completes with `status`.
    pub fn force_status(&self, m: CmdMatch, status: Status) {
        self.inner.with(|c| c.faults.force_status.push((m, status)));
    }

    /// The next `n` interrupts the controller raises are lost on the interrupt chip.
    pub fn lose_next_interrupts(&self, n: u32) {
        self.inner
            .with(|c| c.faults.lose_irqs = c.faults.lose_irqs.saturating_add(n));
    }

    /// The next matching command is fetched but neither executed nor completed until
    /// [`Faults::release_held`], an Abort naming it, deletion of its queue (Command Aborted
    /// due to SQ Deletion) or a reset (dropped).
    pub fn hold_next(&self, m: CmdMatch) {
        self.inner.with(|c| c.faults.hold.push(m));
    }

    /// The commands held now, oldest first.
    pub fn held(&self) -> Vec<HeldCommand> {
        lock(&self.inner.ctrl)
            .held
            .iter()
            .map(|h| HeldCommand {
                sqid: h.sqid,
                cid: h.sqe.cid(),
                opcode: h.sqe.opcode(),
            })
            .collect()
    }

    /// Executes and completes every held command, oldest first; returns how many.
    pub fn release_held(&self) -> usize {
        self.inner.with(|c| {
            let held = std::mem::take(&mut c.held);
            let n = held.len();
            for h in held {
                if c.running() {
                    c.execute(h.sqid, h.sqe);
                }
            }
            c.process();
            n
        })
    }

    /// Surprise removal as the controller sees it: every register reads all ones, writes and
    /// doorbells are ignored, no more DMA or interrupts.
    pub fn device_gone(&self) {
        self.inner.with(|c| c.gone = true);
    }

    /// Forgets every pending one-shot rule and the ready faults.
    pub fn clear(&self) {
        self.inner.with(|c| c.faults = Default::default());
    }
}
