//! The controller model's configuration and its builder.

use super::SimNvme;
use crate::irq::SimIrqChip;
use crate::pci::{BusMaster, IrqCaps, SimPci};
use crate::{DmaSpace, Sim, VirtualClock};
use orion_compat::pci::PciIds;
use orion_compat::time::Duration;
use std::sync::Arc;

/// One namespace the controller starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceSpec {
    /// Its namespace ID (1..=NN; IDs may be sparse).
    pub nsid: u32,
    /// Its logical block size in bytes; must be one of the controller's LBA formats.
    pub block_size: u32,
    /// Its size in logical blocks (NSZE = NCAP).
    pub blocks: u64,
    /// Whether it starts attached to the controller (active). A detached one is allocated
    /// but inactive, visible only through the namespace-management Identify CNS values.
    pub attached: bool,
    /// IEEE Extended Unique Identifier reported in Identify Namespace and the descriptor
    /// list, if any.
    pub eui64: Option<[u8; 8]>,
    /// Namespace Globally Unique Identifier, if any.
    pub nguid: Option<[u8; 16]>,
    /// Namespace UUID, if any.
    pub uuid: Option<[u8; 16]>,
}

impl NamespaceSpec {
    /// An attached namespace with identifiers derived from `nsid`.
    pub fn new(nsid: u32, block_size: u32, blocks: u64) -> Self {
        let n = nsid.to_be_bytes();
        Self {
            nsid,
            block_size,
            blocks,
            attached: true,
            eui64: Some([0x52, 0x54, 0x00, 0x0e, n[0], n[1], n[2], n[3]]),
            nguid: Some([
                0x4f, 0x52, 0x49, 0x4f, 0x4e, 0x53, 0x49, 0x4d, 0, 0, 0, 0, n[0], n[1], n[2], n[3],
            ]),
            uuid: Some([
                0x6f, 0x72, 0x69, 0x6f, 0x6e, 0x2d, 0x4e, 0x53, 0x80, 0, 0, 0, n[0], n[1], n[2],
                n[3],
            ]),
        }
    }
}

/// Everything a controller model is built from; see [`NvmeBuilder`] for the meaning and
/// defaults of each field.
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) ids: PciIds,
    pub(super) mqes: u16,
    pub(super) to: u8,
    pub(super) dstrd: u8,
    pub(super) nssrs: bool,
    pub(super) css: u8,
    pub(super) mpsmin: u8,
    pub(super) mpsmax: u8,
    pub(super) vs: u32,
    pub(super) ready_delay: Duration,
    pub(super) reset_delay: Duration,
    pub(super) shutdown_delay: Duration,
    pub(super) mdts: u8,
    pub(super) max_io_queues: u16,
    pub(super) default_io_queues: Option<u16>,
    pub(super) vectors: u16,
    pub(super) sn: String,
    pub(super) mn: String,
    pub(super) fr: String,
    pub(super) subnqn: Option<String>,
    pub(super) cntlid: u16,
    pub(super) acl: u8,
    pub(super) aerl: u8,
    pub(super) error_log_entries: u16,
    pub(super) wctemp: u16,
    pub(super) cctemp: u16,
    pub(super) temperature: u16,
    pub(super) maxcmd: u16,
    pub(super) nn: u32,
    pub(super) oncs: u16,
    pub(super) vwc: bool,
    pub(super) sgls: bool,
    pub(super) format_nvm: bool,
    pub(super) ns_management: bool,
    pub(super) ns_create_delete: bool,
    pub(super) dbbuf: bool,
    pub(super) kas: u16,
    pub(super) lba_formats: Vec<u32>,
    pub(super) namespaces: Vec<NamespaceSpec>,
    pub(super) capacity: Option<u64>,
}

/// ONCS bits the model implements (NVMe Base 2.0 Figure 275, byte 520): Compare (0), Dataset
/// Management (2), Write Zeroes (3), Save/Select in Features (4), Timestamp (6), Verify (7).
pub const ONCS_IMPLEMENTED: u16 = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 6) | (1 << 7);

/// Builds a [`SimNvme`].
///
/// Defaults resemble QEMU's emulated controller: CAP.MQES 2047, CAP.TO 15 (7.5 s),
/// CAP.DSTRD 0, CAP.MPSMIN 0 and MPSMAX 4 (4 KiB..64 KiB pages), CAP.NSSRS set, CAP.CSS NVM
/// only, VS 2.0.0, MDTS 7, 64 I/O queue pairs and 65 interrupt vectors, ACL 3, AERL 3, 64
/// error log entries, WCTEMP 343 K, CCTEMP 373 K, NN 256, ONCS Dataset Management + Write
/// Zeroes + Timestamp, a volatile write cache, SGLs supported, Format NVM, Doorbell Buffer
/// Config and namespace management (with create/delete) supported, no Keep Alive, LBA formats
/// 512 B and 4 KiB, one attached 1 GiB namespace of 512 B blocks as NSID 1, and 1 ms for
/// CSTS.RDY to follow CC.EN and for a shutdown to complete.
#[derive(Clone, Debug)]
pub struct NvmeBuilder {
    cfg: Config,
    chip: Option<SimIrqChip>,
    bus_master: Option<BusMaster>,
}

impl Default for NvmeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// PCI identity of QEMU's NVMe controller (Red Hat 1b36:0010, class 01 08 02).
pub const QEMU_IDS: PciIds = PciIds {
    vendor: 0x1b36,
    device: 0x0010,
    class: 0x01_08_02,
    revision: 2,
    subsystem_vendor: 0x1af4,
    subsystem_device: 0x1100,
};

impl NvmeBuilder {
    /// A builder with the defaults described on [`NvmeBuilder`].
    pub fn new() -> Self {
        Self {
            cfg: Config {
                ids: QEMU_IDS,
                mqes: 2047,
                to: 15,
                dstrd: 0,
                nssrs: true,
                css: 0x01,
                mpsmin: 0,
                mpsmax: 4,
                vs: 0x0002_0000,
                ready_delay: Duration::from_millis(1),
                reset_delay: Duration::from_millis(1),
                shutdown_delay: Duration::from_millis(1),
                mdts: 7,
                max_io_queues: 64,
                default_io_queues: None,
                vectors: 65,
                sn: "ORIONSIM0001".into(),
                mn: "Orion simulated NVMe controller".into(),
                fr: "2.0-sim".into(),
                subnqn: None,
                cntlid: 0,
                acl: 3,
                aerl: 3,
                error_log_entries: 64,
                wctemp: 343,
                cctemp: 373,
                temperature: 310,
                maxcmd: 0,
                nn: 256,
                oncs: (1 << 2) | (1 << 3) | (1 << 6),
                vwc: true,
                sgls: true,
                format_nvm: true,
                ns_management: true,
                ns_create_delete: true,
                dbbuf: true,
                kas: 0,
                lba_formats: vec![512, 4096],
                namespaces: vec![NamespaceSpec::new(1, 512, 1 << 21)],
                capacity: None,
            },
            chip: None,
            bus_master: None,
        }
    }

    /// The PCI identity [`NvmeBuilder::build_pci`] gives the function; Identify Controller
    /// reports its vendor and subsystem vendor as VID and SSVID.
    pub fn pci_ids(mut self, ids: PciIds) -> Self {
        self.cfg.ids = ids;
        self
    }

    /// CAP.MQES: the largest I/O queue, 0's based (1 means two entries, the minimum).
    pub fn mqes(mut self, mqes: u16) -> Self {
        self.cfg.mqes = mqes;
        self
    }

    /// CAP.TO: the worst-case time for CSTS.RDY to follow CC.EN, in 500 ms units. Only
    /// reported; the model's real delays are [`NvmeBuilder::ready_delay`] and
    /// [`NvmeBuilder::reset_delay`].
    pub fn timeout(mut self, to: u8) -> Self {
        self.cfg.to = to;
        self
    }

    /// CAP.DSTRD: doorbells are `4 << dstrd` bytes apart (0..=15).
    pub fn dstrd(mut self, dstrd: u8) -> Self {
        self.cfg.dstrd = dstrd;
        self
    }

    /// CAP.NSSRS: whether NVM Subsystem Reset (the NSSR register) is supported.
    pub fn nssrs(mut self, on: bool) -> Self {
        self.cfg.nssrs = on;
        self
    }

    /// CAP.CSS, the 8-bit Command Sets Supported field: bit 0 NVM command set, bit 6 one or
    /// more I/O command sets (CC.CSS 110b), bit 7 admin only (CC.CSS 111b).
    pub fn css(mut self, css: u8) -> Self {
        self.cfg.css = css;
        self
    }

    /// CAP.MPSMIN and CAP.MPSMAX: memory page sizes `2^(12+n)` the controller accepts.
    pub fn mps(mut self, min: u8, max: u8) -> Self {
        self.cfg.mpsmin = min;
        self.cfg.mpsmax = max;
        self
    }

    /// The VS register, e.g. `0x0001_0400` for 1.4.0.
    pub fn version(mut self, vs: u32) -> Self {
        self.cfg.vs = vs;
        self
    }

    /// How long CSTS.RDY takes to become 1 after CC.EN goes 0 to 1, on the virtual clock.
    pub fn ready_delay(mut self, d: Duration) -> Self {
        self.cfg.ready_delay = d;
        self
    }

    /// How long CSTS.RDY takes to become 0 after CC.EN goes 1 to 0 (or an NVM subsystem
    /// reset).
    pub fn reset_delay(mut self, d: Duration) -> Self {
        self.cfg.reset_delay = d;
        self
    }

    /// How long CSTS.SHST stays 01b (processing) before 10b (complete) after CC.SHN is set.
    pub fn shutdown_delay(mut self, d: Duration) -> Self {
        self.cfg.shutdown_delay = d;
        self
    }

    /// MDTS: the largest data transfer is `2^mdts` minimum-size pages; 0 is unlimited.
    pub fn mdts(mut self, mdts: u8) -> Self {
        self.cfg.mdts = mdts;
        self
    }

    /// The most I/O submission and completion queues Set Features Number of Queues grants
    /// (1..=65535); the BAR has a doorbell pair for each.
    pub fn max_io_queues(mut self, n: u16) -> Self {
        self.cfg.max_io_queues = n;
        self
    }

    /// How many I/O queues of each kind are allocated before any Set Features Number of
    /// Queues (default: [`NvmeBuilder::max_io_queues`]; the spec leaves it to the
    /// implementation).
    pub fn default_io_queues(mut self, n: u16) -> Self {
        self.cfg.default_io_queues = Some(n);
        self
    }

    /// How many interrupt vectors the function has: a completion queue's IV must be below
    /// it, and [`NvmeBuilder::build_pci`] offers that many MSI-X vectors.
    pub fn vectors(mut self, n: u16) -> Self {
        self.cfg.vectors = n;
        self
    }

    /// Serial number, model number and firmware revision (ASCII, space padded).
    pub fn identity(mut self, sn: &str, mn: &str, fr: &str) -> Self {
        self.cfg.sn = sn.into();
        self.cfg.mn = mn.into();
        self.cfg.fr = fr.into();
        self
    }

    /// SUBNQN (default derived from the serial number).
    pub fn subnqn(mut self, nqn: &str) -> Self {
        self.cfg.subnqn = Some(nqn.into());
        self
    }

    /// CNTLID.
    pub fn cntlid(mut self, id: u16) -> Self {
        self.cfg.cntlid = id;
        self
    }

    /// ACL: concurrently outstanding Abort commands, 0's based.
    pub fn acl(mut self, acl: u8) -> Self {
        self.cfg.acl = acl;
        self
    }

    /// AERL: concurrently outstanding Asynchronous Event Requests, 0's based.
    pub fn aerl(mut self, aerl: u8) -> Self {
        self.cfg.aerl = aerl;
        self
    }

    /// Number of Error Information log entries kept (ELPE + 1), 1..=256.
    pub fn error_log_entries(mut self, n: u16) -> Self {
        self.cfg.error_log_entries = n;
        self
    }

    /// WCTEMP and CCTEMP in kelvin; WCTEMP is also the default over-temperature threshold.
    pub fn temperature_thresholds(mut self, wctemp: u16, cctemp: u16) -> Self {
        self.cfg.wctemp = wctemp;
        self.cfg.cctemp = cctemp;
        self
    }

    /// The initial composite temperature, in kelvin.
    pub fn temperature(mut self, kelvin: u16) -> Self {
        self.cfg.temperature = kelvin;
        self
    }

    /// MAXCMD (0: not reported).
    pub fn maxcmd(mut self, n: u16) -> Self {
        self.cfg.maxcmd = n;
        self
    }

    /// NN: the largest namespace ID.
    pub fn nn(mut self, nn: u32) -> Self {
        self.cfg.nn = nn;
        self
    }

    /// ONCS; only the bits in [`ONCS_IMPLEMENTED`] are honoured (the others are cleared).
    pub fn oncs(mut self, oncs: u16) -> Self {
        self.cfg.oncs = oncs & ONCS_IMPLEMENTED;
        self
    }

    /// Whether a volatile write cache is present (VWC bit 0).
    pub fn volatile_write_cache(mut self, on: bool) -> Self {
        self.cfg.vwc = on;
        self
    }

    /// SGLS: `true` for 1 (SGLs supported, no alignment requirement), `false` for 0.
    pub fn sgls(mut self, on: bool) -> Self {
        self.cfg.sgls = on;
        self
    }

    /// Whether Format NVM is supported (OACS bit 1).
    pub fn format_nvm(mut self, on: bool) -> Self {
        self.cfg.format_nvm = on;
        self
    }

    /// Namespace management and attachment (OACS bit 3). With `create_delete` false the
    /// controller reports the bit but answers Namespace Management with Invalid Command
    /// Opcode, as QEMU 7.2 does outside an NVM subsystem.
    pub fn ns_management(mut self, on: bool, create_delete: bool) -> Self {
        self.cfg.ns_management = on;
        self.cfg.ns_create_delete = on && create_delete;
        self
    }

    /// Whether Doorbell Buffer Config is supported (OACS bit 8).
    pub fn doorbell_buffer(mut self, on: bool) -> Self {
        self.cfg.dbbuf = on;
        self
    }

    /// KAS in 100 ms units; 0 means Keep Alive is not supported.
    pub fn keep_alive(mut self, kas: u16) -> Self {
        self.cfg.kas = kas;
        self
    }

    /// The LBA formats (data sizes in bytes: powers of two from 512 to 64 KiB, at most 16),
    /// in format-index order. Namespaces added earlier must use one of them.
    pub fn lba_formats(mut self, sizes: &[u32]) -> Self {
        self.cfg.lba_formats = sizes.to_vec();
        self
    }

    /// Removes every namespace (including the default one).
    pub fn no_namespaces(mut self) -> Self {
        self.cfg.namespaces.clear();
        self
    }

    /// Adds an attached namespace `nsid` of `blocks` blocks of `block_size` bytes, replacing
    /// one with the same ID (the default NSID 1 included).
    pub fn namespace(self, nsid: u32, block_size: u32, blocks: u64) -> Self {
        self.namespace_spec(NamespaceSpec::new(nsid, block_size, blocks))
    }

    /// Adds a namespace described in full, replacing one with the same ID.
    pub fn namespace_spec(mut self, spec: NamespaceSpec) -> Self {
        self.cfg.namespaces.retain(|n| n.nsid != spec.nsid);
        self.cfg.namespaces.push(spec);
        self
    }

    /// Total NVM capacity in bytes (TNVMCAP), which namespace management allocates from
    /// (default: the initial namespaces plus 64 GiB).
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.cfg.capacity = Some(bytes);
        self
    }

    /// The interrupt chip completion queues raise their vectors on (default: none, so no
    /// interrupt is delivered).
    pub fn irq_chip(mut self, chip: SimIrqChip) -> Self {
        self.chip = Some(chip);
        self
    }

    /// The function's bus-master state: while it is off the controller cannot reach memory
    /// (default: always on).
    pub fn bus_master(mut self, bm: BusMaster) -> Self {
        self.bus_master = Some(bm);
        self
    }

    /// The BAR0 length the configuration needs: registers plus a doorbell pair per queue,
    /// rounded up to a power of two, at least 16 KiB.
    pub fn bar_len(&self) -> u64 {
        bar_len(&self.cfg)
    }

    /// Builds the controller on `space`, timed by `clock`.
    ///
    /// # Panics
    ///
    /// If the configuration is inconsistent (a test bug, never something a driver can
    /// cause): MQES 0, DSTRD above 15, MPSMIN above MPSMAX or MPSMAX above 15, no or zero I/O
    /// queues, no vectors, an LBA format that is not a power of two from 512 B to 64 KiB or
    /// more than 16 of them, a namespace whose ID is 0 or above NN, whose block size is not
    /// one of the formats or whose size is 0, or 0 or more than 256 error log entries.
    pub fn build(self, space: DmaSpace, clock: VirtualClock) -> SimNvme {
        let c = &self.cfg;
        assert!(
            c.mqes >= 1,
            "nvme model: MQES must be at least 1 (two entries)"
        );
        assert!(c.dstrd <= 15, "nvme model: DSTRD above 15");
        assert!(
            c.mpsmin <= c.mpsmax && c.mpsmax <= 15,
            "nvme model: bad MPSMIN/MPSMAX"
        );
        assert!(c.max_io_queues >= 1, "nvme model: no I/O queues");
        assert!(c.vectors >= 1, "nvme model: no interrupt vectors");
        assert!(
            (1..=256).contains(&c.error_log_entries),
            "nvme model: error log entries must be 1..=256"
        );
        assert!(
            !c.lba_formats.is_empty()
                && c.lba_formats.len() <= 16
                && c.lba_formats
                    .iter()
                    .all(|s| s.is_power_of_two() && (512..=65536).contains(s)),
            "nvme model: LBA formats must be 1..=16 powers of two from 512 to 65536"
        );
        for n in &c.namespaces {
            assert!(
                n.nsid >= 1 && n.nsid <= c.nn,
                "nvme model: NSID {} outside 1..=NN",
                n.nsid
            );
            assert!(
                c.lba_formats.contains(&n.block_size),
                "nvme model: namespace {} block size {} is not an LBA format",
                n.nsid,
                n.block_size
            );
            assert!(n.blocks > 0, "nvme model: namespace {} is empty", n.nsid);
        }
        SimNvme::from_parts(self.cfg, space, clock, self.chip, self.bus_master)
    }

    /// Builds the controller and a PCI function around it on `sim`'s bus and clock: BAR0
    /// backed by the model, [`NvmeBuilder::vectors`] MSI-X vectors (plus MSI and INTx) on
    /// the function's interrupt chip, and DMA gated by the function's bus mastering.
    ///
    /// # Panics
    ///
    /// As [`NvmeBuilder::build`].
    pub fn build_pci(self, sim: &Sim) -> (SimPci, SimNvme) {
        let pb = SimPci::builder(self.cfg.ids).irq_caps(IrqCaps {
            msix: self.cfg.vectors,
            msi: 32,
            intx: true,
        });
        let len = self.bar_len();
        let nvme = self
            .irq_chip(pb.irq_chip())
            .bus_master(pb.bus_master())
            .build(sim.space.clone(), sim.clock.clone());
        let pci = pb.bar(0, len, Arc::new(nvme.clone())).build();
        (pci, nvme)
    }
}

pub(super) fn bar_len(c: &Config) -> u64 {
    let stride = 4u64 << c.dstrd;
    let end = 0x1000 + 2 * (u64::from(c.max_io_queues) + 1) * stride;
    end.next_power_of_two().max(0x4000)
}
