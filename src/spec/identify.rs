//! Identify data structures, NVMe Base 2.0 §5.17 and NVM Cmd Set 1.0 §4.1.5.
//!
//! Every structure here is 4096 bytes and comes from the device. They are read in place from
//! the DMA buffer with `zerocopy::FromBytes::ref_from_bytes` (the buffer must be aligned to
//! the structure, which a page-aligned DMA buffer is), and every accessor is total: a field
//! with an out-of-range value yields `None` or is clamped, never a panic. The 4 KiB structures
//! are deliberately not `Copy`, so that a kernel stack never gets a silent 4 KiB copy.

use super::bitfield::bitfield;
use super::log::U128;
use super::opcode::wire_enum;
use super::regs::Vs;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of every Identify data structure.
pub const IDENTIFY_SIZE: usize = 4096;

wire_enum! {
    /// Controller or Namespace Structure (CNS) values, NVMe Base 2.0 §5.17.1, Figure "CNS
    /// Values".
    pub enum Cns {
        /// Identify Namespace data structure for the NVM Command Set ([`Namespace`]).
        Namespace = 0x00 => "Identify Namespace",
        /// Identify Controller data structure ([`Controller`]).
        Controller = 0x01 => "Identify Controller",
        /// Active Namespace ID list ([`NsList`]), NSIDs greater than CDW1.NSID.
        ActiveNsList = 0x02 => "Active Namespace ID list",
        /// Namespace Identification Descriptor list ([`NsIdDescriptors`]).
        NsIdDescriptors = 0x03 => "Namespace Identification Descriptor list",
        /// NVM Set List.
        NvmSetList = 0x04 => "NVM Set List",
        /// I/O Command Set specific Identify Namespace data structure (CDW11.CSI).
        CsNamespace = 0x05 => "I/O Command Set specific Identify Namespace",
        /// I/O Command Set specific Identify Controller data structure (CDW11.CSI).
        CsController = 0x06 => "I/O Command Set specific Identify Controller",
        /// Active Namespace ID list of one I/O Command Set (CDW11.CSI).
        CsActiveNsList = 0x07 => "I/O Command Set specific Active Namespace ID list",
        /// I/O Command Set Independent Identify Namespace data structure.
        CsIndependentNamespace = 0x08 => "I/O Command Set Independent Identify Namespace",
        /// Allocated Namespace ID list.
        AllocatedNsList = 0x10 => "Allocated Namespace ID list",
        /// Identify Namespace data structure for an allocated NSID.
        AllocatedNamespace = 0x11 => "Identify Namespace for an allocated NSID",
        /// Controllers attached to the namespace in NSID ([`CtrlList`]).
        NsAttachedCtrlList = 0x12 => "Namespace Attached Controller list",
        /// All controllers in the NVM subsystem ([`CtrlList`]).
        CtrlList = 0x13 => "Controller list",
        /// Primary Controller Capabilities.
        PrimaryCtrlCaps = 0x14 => "Primary Controller Capabilities",
        /// Secondary Controller list.
        SecondaryCtrlList = 0x15 => "Secondary Controller list",
        /// Namespace Granularity List.
        NsGranularityList = 0x16 => "Namespace Granularity List",
        /// UUID List.
        UuidList = 0x17 => "UUID List",
        /// Domain List.
        DomainList = 0x18 => "Domain List",
        /// Endurance Group List.
        EnduranceGroupList = 0x19 => "Endurance Group List",
        /// Allocated Namespace ID list of one I/O Command Set.
        CsAllocatedNsList = 0x1a => "I/O Command Set specific Allocated Namespace ID list",
        /// I/O Command Set specific Identify Namespace data structure for an allocated NSID.
        CsAllocatedNamespace = 0x1b => "I/O Command Set specific Identify Namespace (allocated)",
        /// Identify I/O Command Set data structure.
        IoCommandSet = 0x1c => "Identify I/O Command Set",
    }
}

/// Command Set Identifier: NVM Command Set, NVMe Base 2.0 §5.17, Figure "Command Set
/// Identifiers".
pub const CSI_NVM: u8 = 0x00;
/// Command Set Identifier: Key Value Command Set.
pub const CSI_KEY_VALUE: u8 = 0x01;
/// Command Set Identifier: Zoned Namespace Command Set.
pub const CSI_ZONED: u8 = 0x02;

/// Strips trailing spaces and NULs from a fixed-width ASCII field.
pub(super) fn trim_ascii_field(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | 0] = s {
        s = rest;
    }
    s
}

/// The bytes of a NUL-terminated field up to its first NUL (or all of it).
fn until_nul(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(n) => s.get(..n).unwrap_or(s),
        None => s,
    }
}

// ---------------------------------------------------------------------------------------------
// Identify Controller.

bitfield! {
    /// Controller Multi-Path I/O and Namespace Sharing Capabilities (CMIC),
    /// NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Cmic(u8) {
        /// The NVM subsystem may have two or more ports.
        0:0 multi_port: bool;
        /// The NVM subsystem may have two or more controllers.
        1:1 multi_ctrl: bool;
        /// The controller is associated with an SR-IOV virtual function.
        2:2 sriov: bool;
        /// Asymmetric Namespace Access Reporting supported.
        3:3 ana: bool;
    }
}

bitfield! {
    /// Optional Asynchronous Events Supported (OAES), NVMe Base 2.0 §5.17.2.1. The bit
    /// positions are those of the Asynchronous Event Configuration feature.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Oaes(u32) {
        /// Namespace Attribute Notices.
        8:8 nan: bool;
        /// Firmware Activation Notices.
        9:9 fan: bool;
        /// Asymmetric Namespace Access Change Notices.
        11:11 anacn: bool;
        /// Predictable Latency Event Aggregate Log Change Notices.
        12:12 plealcn: bool;
        /// LBA Status Information Notices.
        13:13 lsin: bool;
        /// Endurance Group Event Aggregate Log Change Notices.
        14:14 egealcn: bool;
        /// Normal NVM Subsystem Shutdown event.
        15:15 nnsshdn: bool;
        /// Discovery Log Page Change Notification.
        31:31 dlpcn: bool;
    }
}

bitfield! {
    /// Controller Attributes (CTRATT), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Ctratt(u32) {
        /// 128-bit Host Identifier supported.
        0:0 hid128: bool;
        /// Non-Operational Power State Permissive Mode supported.
        1:1 nopspm: bool;
        /// NVM Sets supported.
        2:2 nsets: bool;
        /// Read Recovery Levels supported.
        3:3 rrlvls: bool;
        /// Endurance Groups supported.
        4:4 engrps: bool;
        /// Predictable Latency Mode supported.
        5:5 plm: bool;
        /// Traffic Based Keep Alive supported.
        6:6 tbkas: bool;
        /// Namespace Granularity reported.
        7:7 nsgran: bool;
        /// SQ Associations supported.
        8:8 sqass: bool;
        /// UUID List supported.
        9:9 uuidlist: bool;
        /// Multi-Domain Subsystem.
        10:10 mds: bool;
        /// Fixed Capacity Management.
        11:11 fcm: bool;
        /// Variable Capacity Management.
        12:12 vcm: bool;
        /// Delete Endurance Group supported.
        13:13 deg: bool;
        /// Delete NVM Set supported.
        14:14 dnvms: bool;
        /// Extended LBA Formats Supported (more than 16, FLBAS upper bits used).
        15:15 elbas: bool;
    }
}

/// Controller Type (CNTRLTYPE) values, NVMe Base 2.0 §5.17.2.1.
pub mod cntrltype {
    /// Not reported (pre-1.4 controllers).
    pub const NOT_REPORTED: u8 = 0;
    /// I/O controller.
    pub const IO: u8 = 1;
    /// Discovery controller.
    pub const DISCOVERY: u8 = 2;
    /// Administrative controller.
    pub const ADMIN: u8 = 3;
}

bitfield! {
    /// Optional Admin Command Support (OACS), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Oacs(u16) {
        /// Security Send and Security Receive.
        0:0 security: bool;
        /// Format NVM.
        1:1 format: bool;
        /// Firmware Commit and Firmware Image Download.
        2:2 firmware: bool;
        /// Namespace Management.
        3:3 ns_mgmt: bool;
        /// Device Self-test.
        4:4 self_test: bool;
        /// Directives.
        5:5 directives: bool;
        /// NVMe-MI Send and Receive.
        6:6 nvme_mi: bool;
        /// Virtualization Management.
        7:7 virt_mgmt: bool;
        /// Doorbell Buffer Config.
        8:8 dbbuf: bool;
        /// Get LBA Status.
        9:9 get_lba_status: bool;
        /// Command and Feature Lockdown.
        10:10 lockdown: bool;
    }
}

bitfield! {
    /// Firmware Updates (FRMW), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Frmw(u8) {
        /// The first firmware slot is read only.
        0:0 slot1_ro: bool;
        /// Number of firmware slots (1 to 7).
        3:1 slots: u8;
        /// Firmware activation without reset supported.
        4:4 activate_without_reset: bool;
        /// Multiple update detection supported.
        5:5 smud: bool;
    }
}

bitfield! {
    /// Log Page Attributes (LPA), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Lpa(u8) {
        /// SMART / Health log available per namespace.
        0:0 smart_per_ns: bool;
        /// Commands Supported and Effects log supported.
        1:1 cmd_effects: bool;
        /// Extended data for Get Log Page (NUMDU, offsets) supported.
        2:2 extended: bool;
        /// Telemetry logs supported.
        3:3 telemetry: bool;
        /// Persistent Event log supported.
        4:4 persistent_event: bool;
    }
}

bitfield! {
    /// Queue entry sizes (SQES and CQES), NVMe Base 2.0 §5.17.2.1: log2 of bytes.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct EntrySize(u8) {
        /// Required (minimum) entry size, log2 bytes.
        3:0 required: u8;
        /// Maximum entry size, log2 bytes.
        7:4 max: u8;
    }
}

impl EntrySize {
    /// True when entries of `2 ^ log2` bytes are within the controller's range.
    pub const fn allows(self, log2: u8) -> bool {
        self.required() <= log2 && log2 <= self.max()
    }
}

bitfield! {
    /// Optional NVM Command Support (ONCS), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Oncs(u16) {
        /// Compare.
        0:0 compare: bool;
        /// Write Uncorrectable.
        1:1 write_uncorrectable: bool;
        /// Dataset Management.
        2:2 dsm: bool;
        /// Write Zeroes.
        3:3 write_zeroes: bool;
        /// Save field in Set Features and Select in Get Features.
        4:4 save_select: bool;
        /// Reservations.
        5:5 reservations: bool;
        /// Timestamp feature.
        6:6 timestamp: bool;
        /// Verify.
        7:7 verify: bool;
        /// Copy.
        8:8 copy: bool;
    }
}

bitfield! {
    /// Fused Operation Support (FUSES), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Fuses(u16) {
        /// Compare and Write fused operation.
        0:0 compare_and_write: bool;
    }
}

bitfield! {
    /// Format NVM Attributes (FNA), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Fna(u8) {
        /// Format applies to all namespaces.
        0:0 format_all: bool;
        /// Secure erase applies to all namespaces.
        1:1 erase_all: bool;
        /// Cryptographic erase supported.
        2:2 crypto_erase: bool;
        /// Format NVM with NSID FFFFFFFFh is not supported.
        3:3 no_broadcast: bool;
    }
}

bitfield! {
    /// Volatile Write Cache (VWC), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Vwc(u8) {
        /// A volatile write cache is present.
        0:0 present: bool;
        /// Flush with NSID FFFFFFFFh: 00b not indicated, 10b not supported, 11b supported.
        2:1 flush_broadcast: u8;
    }
}

bitfield! {
    /// SGL Support (SGLS), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Sgls(u32) {
        /// 00b SGLs not supported, 01b supported without alignment rules, 10b supported with
        /// dword alignment and granularity.
        1:0 support: u8;
        /// Keyed SGL Data Block supported.
        2:2 keyed: bool;
        /// SGL Bit Bucket supported.
        16:16 bit_bucket: bool;
        /// Byte aligned contiguous physical buffer of metadata supported.
        17:17 byte_aligned_metadata: bool;
        /// SGL length larger than the data to transfer supported.
        18:18 oversized: bool;
        /// MPTR holding an SGL descriptor supported.
        19:19 metadata_sgl: bool;
        /// Address field as an offset supported.
        20:20 offset: bool;
        /// Transport SGL Data Block supported.
        21:21 transport: bool;
    }
}

impl Sgls {
    /// True when the controller accepts SGLs for NVM command data.
    pub const fn supported(self) -> bool {
        self.support() == 1 || self.support() == 2
    }
}

bitfield! {
    /// Autonomous Power State Transition Attributes (APSTA), NVMe Base 2.0 §5.17.2.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Apsta(u8) {
        /// Autonomous Power State Transitions Supported (APSTS).
        0:0 apsts: bool;
    }
}

bitfield! {
    /// Byte 3 of a power state descriptor, NVMe Base 2.0 §5.17.2.1, Figure "Power State
    /// Descriptor Data Structure".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct PsFlags(u8) {
        /// Max Power Scale (MXPS): MP is in 0.0001 W units when set, 0.01 W when clear.
        0:0 mxps: bool;
        /// Non-Operational State (NOPS): no I/O is processed in this state.
        1:1 nops: bool;
    }
}

bitfield! {
    /// A latency or throughput rank of a power state (RRT, RRL, RWT, RWL), 0 is best.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct PsRank(u8) {
        /// The relative rank.
        4:0 rank: u8;
    }
}

bitfield! {
    /// Idle Power Scale (IPS) byte of a power state descriptor.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct PsIdleScale(u8) {
        /// 00b not reported, 01b 0.0001 W, 10b 0.01 W.
        7:6 ips: u8;
    }
}

bitfield! {
    /// Active Power Workload and Scale byte of a power state descriptor.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct PsActive(u8) {
        /// Active Power Workload (APW).
        2:0 apw: u8;
        /// Active Power Scale (APS): 00b not reported, 01b 0.0001 W, 10b 0.01 W.
        7:6 aps: u8;
    }
}

/// A Power State Descriptor, NVMe Base 2.0 §5.17.2.1, Figure "Power State Descriptor Data
/// Structure".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct PowerState {
    /// Maximum Power (MP), in units set by [`PsFlags::mxps`].
    pub mp: u16,
    /// Reserved.
    pub rsvd2: u8,
    /// Max power scale and non-operational state flags.
    pub flags: PsFlags,
    /// Entry Latency (ENLAT) in microseconds.
    pub enlat: u32,
    /// Exit Latency (EXLAT) in microseconds.
    pub exlat: u32,
    /// Relative Read Throughput (RRT).
    pub rrt: PsRank,
    /// Relative Read Latency (RRL).
    pub rrl: PsRank,
    /// Relative Write Throughput (RWT).
    pub rwt: PsRank,
    /// Relative Write Latency (RWL).
    pub rwl: PsRank,
    /// Idle Power (IDLP), in units set by IPS.
    pub idlp: u16,
    /// Idle Power Scale (IPS).
    pub ips: PsIdleScale,
    /// Reserved.
    pub rsvd19: u8,
    /// Active Power (ACTP), in units set by APS.
    pub actp: u16,
    /// Active Power Workload and Scale.
    pub apws: PsActive,
    /// Reserved.
    pub rsvd23: [u8; 9],
}

impl PowerState {
    /// Maximum power in microwatts.
    pub const fn max_power_uw(&self) -> u32 {
        // CAST: widening u16 to u32; at most 65535 * 10000 < 2^32.
        let mp = self.mp as u32;
        if self.flags.mxps() {
            mp * 100
        } else {
            mp * 10_000
        }
    }

    /// True for a non-operational power state.
    pub const fn non_operational(&self) -> bool {
        self.flags.nops()
    }
}

/// The Identify Controller data structure (CNS 01h), NVMe Base 2.0 §5.17.2.1, Figure
/// "Identify – Identify Controller Data Structure, I/O Command Set Independent".
///
/// Field names are the spec's. Multi-byte fields are little-endian on the wire and plain
/// integers here (the driver targets little-endian hosts).
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Controller {
    /// PCI Vendor ID (VID).
    pub vid: u16,
    /// PCI Subsystem Vendor ID (SSVID).
    pub ssvid: u16,
    /// Serial Number (SN), ASCII, space padded.
    pub sn: [u8; 20],
    /// Model Number (MN), ASCII, space padded.
    pub mn: [u8; 40],
    /// Firmware Revision (FR), ASCII, space padded.
    pub fr: [u8; 8],
    /// Recommended Arbitration Burst (RAB), log2 commands.
    pub rab: u8,
    /// IEEE OUI Identifier (IEEE), least significant byte first.
    pub ieee: [u8; 3],
    /// Controller Multi-Path I/O and Namespace Sharing Capabilities (CMIC).
    pub cmic: Cmic,
    /// Maximum Data Transfer Size (MDTS): `2 ^ mdts` units of CAP.MPSMIN, 0 for no limit.
    pub mdts: u8,
    /// Controller ID (CNTLID).
    pub cntlid: u16,
    /// Version (VER), same layout as the VS register.
    pub ver: u32,
    /// RTD3 Resume Latency (RTD3R) in microseconds.
    pub rtd3r: u32,
    /// RTD3 Entry Latency (RTD3E) in microseconds.
    pub rtd3e: u32,
    /// Optional Asynchronous Events Supported (OAES).
    pub oaes: Oaes,
    /// Controller Attributes (CTRATT).
    pub ctratt: Ctratt,
    /// Read Recovery Levels Supported (RRLS).
    pub rrls: u16,
    /// Reserved.
    pub rsvd102: [u8; 9],
    /// Controller Type (CNTRLTYPE), see [`cntrltype`].
    pub cntrltype: u8,
    /// FRU Globally Unique Identifier (FGUID).
    pub fguid: [u8; 16],
    /// Command Retry Delay Times 1-3 (CRDT1-3), in 100 ms units.
    pub crdt: [u16; 3],
    /// Reserved.
    pub rsvd134: [u8; 119],
    /// NVM Subsystem Report (NVMSR), NVMe-MI.
    pub nvmsr: u8,
    /// VPD Write Cycle Information (VWCI), NVMe-MI.
    pub vwci: u8,
    /// Management Endpoint Capabilities (MEC), NVMe-MI.
    pub mec: u8,
    /// Optional Admin Command Support (OACS).
    pub oacs: Oacs,
    /// Abort Command Limit (ACL), 0's based.
    pub acl: u8,
    /// Asynchronous Event Request Limit (AERL), 0's based.
    pub aerl: u8,
    /// Firmware Updates (FRMW).
    pub frmw: Frmw,
    /// Log Page Attributes (LPA).
    pub lpa: Lpa,
    /// Error Log Page Entries (ELPE), 0's based.
    pub elpe: u8,
    /// Number of Power States Support (NPSS), 0's based.
    pub npss: u8,
    /// Admin Vendor Specific Command Configuration (AVSCC).
    pub avscc: u8,
    /// Autonomous Power State Transition Attributes (APSTA).
    pub apsta: Apsta,
    /// Warning Composite Temperature Threshold (WCTEMP) in kelvins.
    pub wctemp: u16,
    /// Critical Composite Temperature Threshold (CCTEMP) in kelvins.
    pub cctemp: u16,
    /// Maximum Time for Firmware Activation (MTFA) in 100 ms units.
    pub mtfa: u16,
    /// Host Memory Buffer Preferred Size (HMPRE) in 4 KiB units.
    pub hmpre: u32,
    /// Host Memory Buffer Minimum Size (HMMIN) in 4 KiB units.
    pub hmmin: u32,
    /// Total NVM Capacity (TNVMCAP) in bytes.
    pub tnvmcap: U128,
    /// Unallocated NVM Capacity (UNVMCAP) in bytes.
    pub unvmcap: U128,
    /// Replay Protected Memory Block Support (RPMBS).
    pub rpmbs: u32,
    /// Extended Device Self-test Time (EDSTT) in minutes.
    pub edstt: u16,
    /// Device Self-test Options (DSTO).
    pub dsto: u8,
    /// Firmware Update Granularity (FWUG) in 4 KiB units.
    pub fwug: u8,
    /// Keep Alive Support (KAS): granularity in 100 ms units, 0 if unsupported.
    pub kas: u16,
    /// Host Controlled Thermal Management Attributes (HCTMA).
    pub hctma: u16,
    /// Minimum Thermal Management Temperature (MNTMT) in kelvins.
    pub mntmt: u16,
    /// Maximum Thermal Management Temperature (MXTMT) in kelvins.
    pub mxtmt: u16,
    /// Sanitize Capabilities (SANICAP).
    pub sanicap: u32,
    /// Host Memory Buffer Minimum Descriptor Entry Size (HMMINDS) in 4 KiB units.
    pub hmminds: u32,
    /// Host Memory Maximum Descriptors Entries (HMMAXD).
    pub hmmaxd: u16,
    /// NVM Set Identifier Maximum (NSETIDMAX).
    pub nsetidmax: u16,
    /// Endurance Group Identifier Maximum (ENDGIDMAX).
    pub endgidmax: u16,
    /// ANA Transition Time (ANATT) in seconds.
    pub anatt: u8,
    /// Asymmetric Namespace Access Capabilities (ANACAP).
    pub anacap: u8,
    /// ANA Group Identifier Maximum (ANAGRPMAX).
    pub anagrpmax: u32,
    /// Number of ANA Group Identifiers (NANAGRPID).
    pub nanagrpid: u32,
    /// Persistent Event Log Size (PELS) in 64 KiB units.
    pub pels: u32,
    /// Domain Identifier.
    pub domainid: u16,
    /// Reserved.
    pub rsvd358: [u8; 10],
    /// Max Endurance Group Capacity (MEGCAP) in bytes.
    pub megcap: U128,
    /// Reserved.
    pub rsvd384: [u8; 128],
    /// Submission Queue Entry Size (SQES).
    pub sqes: EntrySize,
    /// Completion Queue Entry Size (CQES).
    pub cqes: EntrySize,
    /// Maximum Outstanding Commands (MAXCMD), fabrics; 0 on PCIe.
    pub maxcmd: u16,
    /// Number of Namespaces (NN): the largest valid NSID.
    pub nn: u32,
    /// Optional NVM Command Support (ONCS).
    pub oncs: Oncs,
    /// Fused Operation Support (FUSES).
    pub fuses: Fuses,
    /// Format NVM Attributes (FNA).
    pub fna: Fna,
    /// Volatile Write Cache (VWC).
    pub vwc: Vwc,
    /// Atomic Write Unit Normal (AWUN) in logical blocks, 0's based.
    pub awun: u16,
    /// Atomic Write Unit Power Fail (AWUPF) in logical blocks, 0's based.
    pub awupf: u16,
    /// I/O Command Set Vendor Specific Command Configuration (ICSVSCC).
    pub icsvscc: u8,
    /// Namespace Write Protection Capabilities (NWPC).
    pub nwpc: u8,
    /// Atomic Compare & Write Unit (ACWU) in logical blocks, 0's based.
    pub acwu: u16,
    /// Optional Copy Formats Supported (OCFS).
    pub ocfs: u16,
    /// SGL Support (SGLS).
    pub sgls: Sgls,
    /// Maximum Number of Allowed Namespaces (MNAN).
    pub mnan: u32,
    /// Maximum Domain Namespace Attachments (MAXDNA).
    pub maxdna: U128,
    /// Maximum I/O Controller Namespace Attachments (MAXCNA).
    pub maxcna: u32,
    /// Reserved.
    pub rsvd564: [u8; 204],
    /// NVM Subsystem NVMe Qualified Name (SUBNQN), UTF-8, NUL terminated.
    pub subnqn: [u8; 256],
    /// Reserved.
    pub rsvd1024: [u8; 768],
    /// NVMe over Fabrics fields (IOCCSZ, IORCSZ, ICDOFF, FCATT, MSDBD, OFCS); unused on PCIe.
    pub fabrics: [u8; 256],
    /// Power State Descriptors 0-31 (PSD0-PSD31); only `npss + 1` are valid.
    pub psd: [PowerState; 32],
    /// Vendor Specific.
    pub vs: [u8; 1024],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PowerState>() == 32);
    assert!(offset_of!(PowerState, enlat) == 4);
    assert!(offset_of!(PowerState, idlp) == 16);
    assert!(offset_of!(PowerState, actp) == 20);
    assert!(size_of::<Controller>() == IDENTIFY_SIZE);
    assert!(offset_of!(Controller, sn) == 4);
    assert!(offset_of!(Controller, mn) == 24);
    assert!(offset_of!(Controller, fr) == 64);
    assert!(offset_of!(Controller, rab) == 72);
    assert!(offset_of!(Controller, ieee) == 73);
    assert!(offset_of!(Controller, cmic) == 76);
    assert!(offset_of!(Controller, mdts) == 77);
    assert!(offset_of!(Controller, cntlid) == 78);
    assert!(offset_of!(Controller, ver) == 80);
    assert!(offset_of!(Controller, oaes) == 92);
    assert!(offset_of!(Controller, ctratt) == 96);
    assert!(offset_of!(Controller, cntrltype) == 111);
    assert!(offset_of!(Controller, crdt) == 128);
    assert!(offset_of!(Controller, oacs) == 256);
    assert!(offset_of!(Controller, acl) == 258);
    assert!(offset_of!(Controller, aerl) == 259);
    assert!(offset_of!(Controller, frmw) == 260);
    assert!(offset_of!(Controller, lpa) == 261);
    assert!(offset_of!(Controller, elpe) == 262);
    assert!(offset_of!(Controller, npss) == 263);
    assert!(offset_of!(Controller, apsta) == 265);
    assert!(offset_of!(Controller, wctemp) == 266);
    assert!(offset_of!(Controller, cctemp) == 268);
    assert!(offset_of!(Controller, mtfa) == 270);
    assert!(offset_of!(Controller, hmpre) == 272);
    assert!(offset_of!(Controller, hmmin) == 276);
    assert!(offset_of!(Controller, tnvmcap) == 280);
    assert!(offset_of!(Controller, kas) == 320);
    assert!(offset_of!(Controller, pels) == 352);
    assert!(offset_of!(Controller, megcap) == 368);
    assert!(offset_of!(Controller, sqes) == 512);
    assert!(offset_of!(Controller, cqes) == 513);
    assert!(offset_of!(Controller, maxcmd) == 514);
    assert!(offset_of!(Controller, nn) == 516);
    assert!(offset_of!(Controller, oncs) == 520);
    assert!(offset_of!(Controller, fuses) == 522);
    assert!(offset_of!(Controller, fna) == 524);
    assert!(offset_of!(Controller, vwc) == 525);
    assert!(offset_of!(Controller, awun) == 526);
    assert!(offset_of!(Controller, awupf) == 528);
    assert!(offset_of!(Controller, acwu) == 532);
    assert!(offset_of!(Controller, sgls) == 536);
    assert!(offset_of!(Controller, mnan) == 540);
    assert!(offset_of!(Controller, maxcna) == 560);
    assert!(offset_of!(Controller, subnqn) == 768);
    assert!(offset_of!(Controller, fabrics) == 1792);
    assert!(offset_of!(Controller, psd) == 2048);
    assert!(offset_of!(Controller, vs) == 3072);
};

impl Controller {
    /// The serial number without its padding.
    pub fn serial(&self) -> &[u8] {
        trim_ascii_field(&self.sn)
    }

    /// The model number without its padding.
    pub fn model(&self) -> &[u8] {
        trim_ascii_field(&self.mn)
    }

    /// The firmware revision without its padding.
    pub fn firmware(&self) -> &[u8] {
        trim_ascii_field(&self.fr)
    }

    /// The NVM Subsystem NQN up to its terminating NUL.
    pub fn subnqn(&self) -> &[u8] {
        until_nul(&self.subnqn)
    }

    /// The version the controller implements.
    pub const fn version(&self) -> Vs {
        Vs(self.ver)
    }

    /// The largest transfer in bytes, given CAP.MPSMIN in bytes; `None` when the controller
    /// sets no limit (MDTS 0). Saturates at `u64::MAX` for absurd values.
    pub const fn max_transfer_bytes(&self, min_page_size: u64) -> Option<u64> {
        if self.mdts == 0 {
            return None;
        }
        match 2u64.checked_pow(self.mdts as u32) {
            Some(units) => Some(units.saturating_mul(min_page_size)),
            None => Some(u64::MAX),
        }
    }

    /// The valid power state descriptors (`npss + 1`, at most 32).
    pub fn power_states(&self) -> &[PowerState] {
        self.psd.get(..=usize::from(self.npss)).unwrap_or(&self.psd)
    }

    /// True when Autonomous Power State Transitions are supported.
    pub const fn apst_supported(&self) -> bool {
        self.apsta.apsts()
    }

    /// Host Memory Buffer preferred size in bytes (0: no HMB wanted).
    pub const fn hmb_preferred_bytes(&self) -> u64 {
        // CAST: widening u32 to u64.
        self.hmpre as u64 * 4096
    }

    /// Host Memory Buffer minimum size in bytes.
    pub const fn hmb_min_bytes(&self) -> u64 {
        // CAST: widening u32 to u64.
        self.hmmin as u64 * 4096
    }
}

// ---------------------------------------------------------------------------------------------
// Identify Controller (NVM Command Set).

/// The I/O Command Set specific Identify Controller data structure for the NVM Command Set
/// (CNS 06h, CSI 00h), NVM Cmd Set 1.0 §4.1.5.2, Figure "Identify – I/O Command Set Specific
/// Identify Controller Data Structure for the NVM Command Set".
///
/// The size limits are powers of two in units of the minimum memory page size (CAP.MPSMIN);
/// 0 means no limit.
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NvmController {
    /// Verify Size Limit (VSL): `2 ^ vsl` minimum pages, 0 for no limit.
    pub vsl: u8,
    /// Write Zeroes Size Limit (WZSL): `2 ^ wzsl` minimum pages, 0 for no limit.
    pub wzsl: u8,
    /// Write Uncorrectable Size Limit (WUSL): `2 ^ wusl` minimum pages, 0 for no limit.
    pub wusl: u8,
    /// Dataset Management Ranges Limit (DMRL): ranges per command, 0 for no limit.
    pub dmrl: u8,
    /// Dataset Management Range Size Limit (DMRSL): logical blocks per range, 0 for no limit.
    pub dmrsl: u32,
    /// Dataset Management Size Limit (DMSL): logical blocks per command, 0 for no limit.
    pub dmsl: u64,
    /// Reserved.
    pub rsvd16: [u8; 4080],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<NvmController>() == IDENTIFY_SIZE);
    assert!(offset_of!(NvmController, vsl) == 0);
    assert!(offset_of!(NvmController, wzsl) == 1);
    assert!(offset_of!(NvmController, wusl) == 2);
    assert!(offset_of!(NvmController, dmrl) == 3);
    assert!(offset_of!(NvmController, dmrsl) == 4);
    assert!(offset_of!(NvmController, dmsl) == 8);
    assert!(offset_of!(NvmController, rsvd16) == 16);
};

impl NvmController {
    /// The largest Write Zeroes in bytes, given CAP.MPSMIN in bytes: `None` when WZSL sets no
    /// limit (0) or is implausibly large (32 or more).
    pub const fn max_write_zeroes_bytes(&self, min_page_size: u64) -> Option<u64> {
        if self.wzsl != 0 && self.wzsl < 32 {
            Some(min_page_size << self.wzsl)
        } else {
            None
        }
    }

    /// The largest Dataset Management range in logical blocks, or `None` when DMRSL sets no
    /// limit.
    pub const fn max_dealloc_blocks(&self) -> Option<u32> {
        if self.dmrsl != 0 {
            Some(self.dmrsl)
        } else {
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Identify Namespace (NVM Command Set).

bitfield! {
    /// Namespace Features (NSFEAT), NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Nsfeat(u8) {
        /// Thin provisioning supported (NCAP may be less than NSZE).
        0:0 thinp: bool;
        /// NAWUN, NAWUPF and NACWU are valid (instead of the controller-wide values).
        1:1 nsabp: bool;
        /// Deallocated or Unwritten Logical Block error supported.
        2:2 dae: bool;
        /// NGUID and EUI64 are never reused.
        3:3 uidreuse: bool;
        /// NPWG, NPWA, NPDG, NPDA and NOWS are valid.
        4:4 optperf: bool;
    }
}

bitfield! {
    /// Formatted LBA Size (FLBAS), NVM Cmd Set 1.0 §4.1.5.1. The format index is split: bits
    /// 3:0 are its low four bits and bits 6:5 its upper two (NVMe 2.0, up to 64 formats).
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Flbas(u8) {
        /// Low four bits of the LBA format index.
        3:0 lo / with_lo: u8;
        /// Metadata is transferred at the end of the data LBA (extended LBA).
        4:4 extended / with_extended: bool;
        /// Upper two bits of the LBA format index.
        6:5 hi / with_hi: u8;
    }
}

impl Flbas {
    /// The LBA format index in use (0..=63).
    pub const fn index(self) -> u8 {
        self.hi() * 16 + self.lo()
    }

    /// An FLBAS value selecting format `index` (taken modulo 64).
    pub const fn from_index(index: u8) -> Self {
        Self(0).with_lo(index % 16).with_hi(index / 16 % 4)
    }
}

bitfield! {
    /// Metadata Capabilities (MC), NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Mc(u8) {
        /// Metadata can be transferred as part of an extended data LBA.
        0:0 extended: bool;
        /// Metadata can be transferred in a separate buffer.
        1:1 separate: bool;
    }
}

bitfield! {
    /// End-to-end Data Protection Capabilities (DPC), NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Dpc(u8) {
        /// Protection Information Type 1 supported.
        0:0 type1: bool;
        /// Protection Information Type 2 supported.
        1:1 type2: bool;
        /// Protection Information Type 3 supported.
        2:2 type3: bool;
        /// PI may be in the first bytes of metadata.
        3:3 first: bool;
        /// PI may be in the last bytes of metadata.
        4:4 last: bool;
    }
}

bitfield! {
    /// End-to-end Data Protection Type Settings (DPS), NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Dps(u8) {
        /// Protection Information Type (PIT): 0 none, 1-3 type 1-3.
        2:0 pit: u8;
        /// PI is in the first bytes of metadata (else the last).
        3:3 pip: bool;
    }
}

bitfield! {
    /// Namespace Multi-path I/O and Namespace Sharing Capabilities (NMIC),
    /// NVMe Base 2.0 §5.17.2.1 / NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Nmic(u8) {
        /// Shared namespace: may be attached to two or more controllers.
        0:0 shrns: bool;
        /// Dispersed namespace.
        1:1 disns: bool;
    }
}

bitfield! {
    /// Deallocate Logical Block Features (DLFEAT), NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Dlfeat(u8) {
        /// Read behaviour of deallocated blocks: 000b not reported, 001b zeroes, 010b all ones.
        2:0 read_value: u8;
        /// Write Zeroes with DEAC deallocates.
        3:3 write_zeroes_deallocates: bool;
        /// The guard field of deallocated blocks holds the CRC of their data.
        4:4 guard_crc: bool;
    }
}

bitfield! {
    /// Namespace Attributes (NSATTR), NVM Cmd Set 1.0 §4.1.5.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Nsattr(u8) {
        /// Write Protected: the namespace is currently write protected.
        0:0 wp: bool;
    }
}

bitfield! {
    /// An LBA Format entry, NVM Cmd Set 1.0 §4.1.5.1, Figure "LBA Format Data Structure".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct LbaFormat(u32) {
        /// Metadata Size (MS) in bytes per logical block.
        15:0 ms / with_ms: u16;
        /// LBA Data Size (LBADS): log2 bytes; at least 9 when the format is valid.
        23:16 lbads / with_lbads: u8;
        /// Relative Performance (RP): 0 best, 3 degraded.
        25:24 rp / with_rp: u8;
    }
}

impl LbaFormat {
    /// The data size in bytes, or `None` when LBADS is out of the valid range (below 512
    /// bytes, which also means "format not available", or 2 GiB and above).
    pub const fn data_size(self) -> Option<u32> {
        let lbads = self.lbads();
        if lbads < 9 || lbads > 30 {
            return None;
        }
        Some(2u32.pow(lbads as u32))
    }
}

/// The most LBA formats a namespace can report (NLBAF is at most 63, 0's based).
pub const MAX_LBA_FORMATS: usize = 64;

/// The Identify Namespace data structure for the NVM Command Set (CNS 00h), NVM Cmd Set 1.0
/// §4.1.5.1, Figure "Identify – Identify Namespace Data Structure, NVM Command Set Specific".
///
/// An inactive NSID returns all zeroes; [`Namespace::is_active`] tells the two apart.
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Namespace {
    /// Namespace Size (NSZE) in logical blocks.
    pub nsze: u64,
    /// Namespace Capacity (NCAP) in logical blocks.
    pub ncap: u64,
    /// Namespace Utilization (NUSE) in logical blocks.
    pub nuse: u64,
    /// Namespace Features (NSFEAT).
    pub nsfeat: Nsfeat,
    /// Number of LBA Formats (NLBAF), 0's based.
    pub nlbaf: u8,
    /// Formatted LBA Size (FLBAS).
    pub flbas: Flbas,
    /// Metadata Capabilities (MC).
    pub mc: Mc,
    /// End-to-end Data Protection Capabilities (DPC).
    pub dpc: Dpc,
    /// End-to-end Data Protection Type Settings (DPS).
    pub dps: Dps,
    /// Namespace Multi-path I/O and Namespace Sharing Capabilities (NMIC).
    pub nmic: Nmic,
    /// Reservation Capabilities (RESCAP).
    pub rescap: u8,
    /// Format Progress Indicator (FPI).
    pub fpi: u8,
    /// Deallocate Logical Block Features (DLFEAT).
    pub dlfeat: Dlfeat,
    /// Namespace Atomic Write Unit Normal (NAWUN), 0's based.
    pub nawun: u16,
    /// Namespace Atomic Write Unit Power Fail (NAWUPF), 0's based.
    pub nawupf: u16,
    /// Namespace Atomic Compare & Write Unit (NACWU), 0's based.
    pub nacwu: u16,
    /// Namespace Atomic Boundary Size Normal (NABSN), 0's based.
    pub nabsn: u16,
    /// Namespace Atomic Boundary Offset (NABO).
    pub nabo: u16,
    /// Namespace Atomic Boundary Size Power Fail (NABSPF), 0's based.
    pub nabspf: u16,
    /// Namespace Optimal I/O Boundary (NOIOB) in logical blocks, 0 if not reported.
    pub noiob: u16,
    /// NVM Capacity (NVMCAP) in bytes.
    pub nvmcap: U128,
    /// Namespace Preferred Write Granularity (NPWG), 0's based.
    pub npwg: u16,
    /// Namespace Preferred Write Alignment (NPWA), 0's based.
    pub npwa: u16,
    /// Namespace Preferred Deallocate Granularity (NPDG), 0's based.
    pub npdg: u16,
    /// Namespace Preferred Deallocate Alignment (NPDA), 0's based.
    pub npda: u16,
    /// Namespace Optimal Write Size (NOWS), 0's based.
    pub nows: u16,
    /// Maximum Single Source Range Length (MSSRL) for Copy.
    pub mssrl: u16,
    /// Maximum Copy Length (MCL).
    pub mcl: u32,
    /// Maximum Source Range Count (MSRC), 0's based.
    pub msrc: u8,
    /// Reserved.
    pub rsvd81: [u8; 11],
    /// ANA Group Identifier (ANAGRPID).
    pub anagrpid: u32,
    /// Reserved.
    pub rsvd96: [u8; 3],
    /// Namespace Attributes (NSATTR).
    pub nsattr: Nsattr,
    /// NVM Set Identifier (NVMSETID).
    pub nvmsetid: u16,
    /// Endurance Group Identifier (ENDGID).
    pub endgid: u16,
    /// Namespace Globally Unique Identifier (NGUID).
    pub nguid: [u8; 16],
    /// IEEE Extended Unique Identifier (EUI64).
    pub eui64: [u8; 8],
    /// LBA Format Support (LBAF0-LBAF63); only `nlbaf + 1` are valid.
    pub lbaf: [LbaFormat; MAX_LBA_FORMATS],
    /// Reserved and vendor specific.
    pub vs: [u8; 3712],
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Namespace>() == IDENTIFY_SIZE);
    assert!(offset_of!(Namespace, ncap) == 8);
    assert!(offset_of!(Namespace, nuse) == 16);
    assert!(offset_of!(Namespace, nsfeat) == 24);
    assert!(offset_of!(Namespace, nlbaf) == 25);
    assert!(offset_of!(Namespace, flbas) == 26);
    assert!(offset_of!(Namespace, mc) == 27);
    assert!(offset_of!(Namespace, dpc) == 28);
    assert!(offset_of!(Namespace, dps) == 29);
    assert!(offset_of!(Namespace, nmic) == 30);
    assert!(offset_of!(Namespace, dlfeat) == 33);
    assert!(offset_of!(Namespace, nawun) == 34);
    assert!(offset_of!(Namespace, noiob) == 46);
    assert!(offset_of!(Namespace, nvmcap) == 48);
    assert!(offset_of!(Namespace, npwg) == 64);
    assert!(offset_of!(Namespace, npda) == 70);
    assert!(offset_of!(Namespace, nows) == 72);
    assert!(offset_of!(Namespace, mcl) == 76);
    assert!(offset_of!(Namespace, msrc) == 80);
    assert!(offset_of!(Namespace, anagrpid) == 92);
    assert!(offset_of!(Namespace, nsattr) == 99);
    assert!(offset_of!(Namespace, nvmsetid) == 100);
    assert!(offset_of!(Namespace, endgid) == 102);
    assert!(offset_of!(Namespace, nguid) == 104);
    assert!(offset_of!(Namespace, eui64) == 120);
    assert!(offset_of!(Namespace, lbaf) == 128);
    assert!(offset_of!(Namespace, vs) == 384);
};

impl Namespace {
    /// True when the NSID is active (an inactive NSID reads as all zeroes).
    pub const fn is_active(&self) -> bool {
        self.nsze != 0
    }

    /// Number of valid LBA formats (`nlbaf + 1`, at most 64).
    pub const fn lba_format_count(&self) -> usize {
        let n = self.nlbaf as usize + 1;
        if n > MAX_LBA_FORMATS {
            MAX_LBA_FORMATS
        } else {
            n
        }
    }

    /// The valid LBA formats.
    pub fn lba_formats(&self) -> &[LbaFormat] {
        self.lbaf
            .get(..self.lba_format_count())
            .unwrap_or(&self.lbaf)
    }

    /// The LBA format in use, or `None` when FLBAS points past the valid formats.
    pub fn current_lba_format(&self) -> Option<LbaFormat> {
        self.lba_formats()
            .get(usize::from(self.flbas.index()))
            .copied()
    }

    /// The logical block size in bytes of the format in use, or `None` when the format is
    /// missing or invalid.
    pub fn block_size(&self) -> Option<u32> {
        self.current_lba_format()?.data_size()
    }

    /// Metadata bytes per logical block of the format in use.
    pub fn metadata_size(&self) -> Option<u16> {
        Some(self.current_lba_format()?.ms())
    }

    /// Namespace size in bytes, or `None` when the format is invalid or the product
    /// overflows.
    pub fn size_bytes(&self) -> Option<u64> {
        self.nsze.checked_mul(u64::from(self.block_size()?))
    }

    /// True when the namespace is write protected.
    pub const fn write_protected(&self) -> bool {
        self.nsattr.wp()
    }
}

// ---------------------------------------------------------------------------------------------
// Lists.

/// A Namespace ID list (CNS 02h, 07h, 10h, 1Ah), NVMe Base 2.0 §5.17.2: up to 1024 NSIDs in
/// increasing order, zero-filled after the last.
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct NsList {
    /// The identifiers; the first zero ends the list.
    pub ids: [u32; 1024],
}

const _: () = assert!(core::mem::size_of::<NsList>() == IDENTIFY_SIZE);

impl NsList {
    /// The identifiers up to the first zero.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ids.iter().copied().take_while(|&id| id != 0)
    }

    /// The last identifier in a full list: where to continue with the next Identify, or `None`
    /// when the list is not full (there are no more).
    pub fn continue_after(&self) -> Option<u32> {
        match self.ids.last() {
            Some(&id) if id != 0 => Some(id),
            _ => None,
        }
    }
}

/// A Controller List (CNS 12h, 13h; also the data of Namespace Attachment), NVMe Base 2.0
/// §5.17.2, Figure "Controller List Format".
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CtrlList {
    /// Number of Identifiers.
    pub num: u16,
    /// Controller identifiers; only `num` are valid.
    pub ids: [u16; 2047],
}

const _: () = assert!(core::mem::size_of::<CtrlList>() == IDENTIFY_SIZE);

impl CtrlList {
    /// A list holding `ids` (at most 2047; extra ones are dropped).
    pub fn new(ids: &[u16]) -> Self {
        let mut l = Self {
            num: 0,
            ids: [0; 2047],
        };
        for (slot, &id) in l.ids.iter_mut().zip(ids) {
            *slot = id;
            l.num += 1;
        }
        l
    }

    /// The valid identifiers (clamped to the array when `num` is out of range).
    pub fn ids(&self) -> &[u16] {
        self.ids.get(..usize::from(self.num)).unwrap_or(&self.ids)
    }
}

// ---------------------------------------------------------------------------------------------
// Namespace Identification Descriptors.

/// Namespace Identifier Type (NIDT) values, NVMe Base 2.0 §5.17.2, Figure "Namespace
/// Identification Descriptor".
pub mod nidt {
    /// IEEE Extended Unique Identifier, 8 bytes.
    pub const EUI64: u8 = 0x1;
    /// Namespace Globally Unique Identifier, 16 bytes.
    pub const NGUID: u8 = 0x2;
    /// Namespace UUID, 16 bytes.
    pub const UUID: u8 = 0x3;
    /// Command Set Identifier, 1 byte.
    pub const CSI: u8 = 0x4;
}

/// One Namespace Identification Descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsId<'a> {
    /// IEEE Extended Unique Identifier.
    Eui64([u8; 8]),
    /// Namespace Globally Unique Identifier.
    Nguid([u8; 16]),
    /// Namespace UUID.
    Uuid([u8; 16]),
    /// Command Set Identifier.
    Csi(u8),
    /// A type this driver does not know, with its raw identifier bytes.
    Other {
        /// Namespace Identifier Type.
        nidt: u8,
        /// Namespace Identifier.
        nid: &'a [u8],
    },
}

/// A malformed Namespace Identification Descriptor list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsIdError {
    /// The descriptor at `offset` runs past the end of the buffer.
    Truncated {
        /// Byte offset of the descriptor header.
        offset: usize,
    },
    /// A known type at `offset` has the wrong length.
    BadLength {
        /// Byte offset of the descriptor header.
        offset: usize,
        /// Namespace Identifier Type.
        nidt: u8,
        /// Namespace Identifier Length as reported.
        nidl: u8,
    },
}

/// Iterator over a Namespace Identification Descriptor list (CNS 03h), NVMe Base 2.0 §5.17.2.
///
/// Each descriptor is a 4-byte header (NIDT, NIDL, two reserved bytes) followed by NIDL bytes.
/// The list ends at a descriptor with NIDT or NIDL zero, or at the end of the buffer. Every
/// length is checked against the buffer and known types against their fixed size; the first
/// error is yielded once and ends the iteration. Any input, however garbled, terminates.
#[derive(Clone, Debug)]
pub struct NsIdDescriptors<'a> {
    rest: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> NsIdDescriptors<'a> {
    /// Iterates over the descriptors in `buf` (normally the 4096-byte Identify data).
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            rest: buf,
            offset: 0,
            done: false,
        }
    }

    fn fail(&mut self, e: NsIdError) -> Option<Result<NsId<'a>, NsIdError>> {
        self.done = true;
        Some(Err(e))
    }
}

impl<'a> Iterator for NsIdDescriptors<'a> {
    type Item = Result<NsId<'a>, NsIdError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let offset = self.offset;
        let Some((header, body)) = self.rest.split_first_chunk::<4>() else {
            // Fewer than four bytes left: nothing more can be described.
            self.done = true;
            return None;
        };
        let [ty, len, _, _] = *header;
        if ty == 0 || len == 0 {
            self.done = true;
            return None;
        }
        let Some((nid, rest)) = body.split_at_checked(usize::from(len)) else {
            return self.fail(NsIdError::Truncated { offset });
        };
        let item = match (ty, nid) {
            (nidt::EUI64, _) => nid.try_into().ok().map(NsId::Eui64),
            (nidt::NGUID, _) => nid.try_into().ok().map(NsId::Nguid),
            (nidt::UUID, _) => nid.try_into().ok().map(NsId::Uuid),
            (nidt::CSI, [csi]) => Some(NsId::Csi(*csi)),
            (nidt::CSI, _) => None,
            _ => Some(NsId::Other { nidt: ty, nid }),
        };
        let Some(item) = item else {
            return self.fail(NsIdError::BadLength {
                offset,
                nidt: ty,
                nidl: len,
            });
        };
        self.rest = rest;
        self.offset = offset + 4 + usize::from(len);
        Some(Ok(item))
    }
}

/// The identifiers of a namespace gathered from its descriptor list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NsIds {
    /// IEEE EUI-64, if reported.
    pub eui64: Option<[u8; 8]>,
    /// NGUID, if reported.
    pub nguid: Option<[u8; 16]>,
    /// UUID, if reported.
    pub uuid: Option<[u8; 16]>,
    /// Command Set Identifier, if reported.
    pub csi: Option<u8>,
}

impl NsIds {
    /// Gathers the identifiers in `buf`, or the first error in the list.
    pub fn parse(buf: &[u8]) -> Result<Self, NsIdError> {
        let mut ids = Self::default();
        for d in NsIdDescriptors::new(buf) {
            match d? {
                NsId::Eui64(v) => ids.eui64 = Some(v),
                NsId::Nguid(v) => ids.nguid = Some(v),
                NsId::Uuid(v) => ids.uuid = Some(v),
                NsId::Csi(v) => ids.csi = Some(v),
                NsId::Other { .. } => {}
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;
    use zerocopy::{FromBytes, FromZeros, IntoBytes};

    /// A page-aligned 4 KiB buffer, as a DMA buffer would be.
    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn put(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }

    /// Identify Controller bytes resembling QEMU 7.2's `-device nvme`.
    fn qemu_controller() -> Page {
        let mut p = Page([0; 4096]);
        let b = &mut p.0;
        put(b, 0, &0x1b36u16.to_le_bytes()); // VID
        put(b, 2, &0x1af4u16.to_le_bytes()); // SSVID
        put(b, 4, b"deadbeef            ");
        let mut mn = [b' '; 40];
        mn[..15].copy_from_slice(b"QEMU NVMe Ctrl\0");
        put(b, 24, &mn);
        put(b, 64, b"7.2.0   ");
        b[72] = 6; // RAB
        put(b, 73, &[0x00, 0x54, 0x52]); // IEEE
        b[76] = 0b1011; // CMIC
        b[77] = 7; // MDTS
        put(b, 78, &0x0001u16.to_le_bytes()); // CNTLID
        put(b, 80, &0x0001_0400u32.to_le_bytes()); // VER 1.4.0
        put(b, 92, &0x0000_0100u32.to_le_bytes()); // OAES: NAN
        put(b, 96, &0x0000_8000u32.to_le_bytes()); // CTRATT: ELBAS
        b[111] = cntrltype::IO;
        put(b, 128, &[0x0a, 0x00, 0x14, 0x00, 0x1e, 0x00]); // CRDT1-3
        put(b, 256, &0x010au16.to_le_bytes()); // OACS
        b[258] = 3; // ACL
        b[259] = 3; // AERL
        b[260] = 0b0000_0011; // FRMW: slot 1 RO, 1 slot
        b[261] = 0b0000_0111; // LPA
        b[262] = 63; // ELPE
        b[263] = 1; // NPSS: two power states
        b[265] = 1; // APSTA
        put(b, 266, &343u16.to_le_bytes()); // WCTEMP
        put(b, 268, &373u16.to_le_bytes()); // CCTEMP
        put(b, 270, &5u16.to_le_bytes()); // MTFA
        put(b, 272, &0x400u32.to_le_bytes()); // HMPRE
        put(b, 276, &0x100u32.to_le_bytes()); // HMMIN
        put(
            b,
            280,
            &[0x00, 0x00, 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ); // TNVMCAP
        b[512] = 0x66; // SQES
        b[513] = 0x44; // CQES
        put(b, 514, &0u16.to_le_bytes()); // MAXCMD
        put(b, 516, &256u32.to_le_bytes()); // NN
        put(b, 520, &0x015du16.to_le_bytes()); // ONCS
        put(b, 522, &1u16.to_le_bytes()); // FUSES
        b[524] = 0b0101; // FNA
        b[525] = 0b111; // VWC
        put(b, 526, &7u16.to_le_bytes()); // AWUN
        put(b, 528, &3u16.to_le_bytes()); // AWUPF
        put(b, 536, &0x0001_0001u32.to_le_bytes()); // SGLS
        put(b, 540, &256u32.to_le_bytes()); // MNAN
        put(b, 768, b"nqn.2019-08.org.qemu:deadbeef\0");
        // PSD0: 25 W, enlat 16, exlat 4; PSD1: non-operational, 0.5 W in 0.0001 W units.
        put(b, 2048, &2500u16.to_le_bytes());
        put(b, 2052, &16u32.to_le_bytes());
        put(b, 2056, &4u32.to_le_bytes());
        put(b, 2048 + 20, &900u16.to_le_bytes());
        b[2048 + 22] = 0b0100_0010; // APS 01b, APW 2
        put(b, 2080, &5000u16.to_le_bytes());
        b[2083] = 0b11; // MXPS, NOPS
        b[2080 + 12] = 0xe3; // RRT rank 3 with reserved bits set
        p
    }

    #[test]
    fn controller_fields_at_their_offsets() {
        let page = qemu_controller();
        let c = Controller::ref_from_bytes(&page.0).unwrap();
        assert_eq!((c.vid, c.ssvid), (0x1b36, 0x1af4));
        assert_eq!(c.serial(), b"deadbeef");
        assert_eq!(c.model(), b"QEMU NVMe Ctrl");
        assert_eq!(c.firmware(), b"7.2.0");
        assert_eq!(c.rab, 6);
        assert_eq!(c.ieee, [0x00, 0x54, 0x52]);
        assert!(c.cmic.multi_port() && c.cmic.multi_ctrl() && !c.cmic.sriov() && c.cmic.ana());
        assert_eq!(c.mdts, 7);
        assert_eq!(c.max_transfer_bytes(4096), Some(512 * 1024));
        assert_eq!(c.cntlid, 1);
        let v = c.version();
        assert_eq!((v.mjr(), v.mnr(), v.ter()), (1, 4, 0));
        assert!(c.oaes.nan() && !c.oaes.fan());
        assert!(c.ctratt.elbas() && !c.ctratt.hid128());
        assert_eq!(c.cntrltype, cntrltype::IO);
        assert_eq!(c.crdt, [10, 20, 30]);
        assert!(c.oacs.format() && c.oacs.ns_mgmt() && c.oacs.dbbuf());
        assert!(!c.oacs.security() && !c.oacs.firmware());
        assert_eq!((c.acl, c.aerl), (3, 3));
        assert!(c.frmw.slot1_ro());
        assert_eq!(c.frmw.slots(), 1);
        assert!(c.lpa.smart_per_ns() && c.lpa.cmd_effects() && c.lpa.extended());
        assert_eq!(c.elpe, 63);
        assert_eq!(c.npss, 1);
        assert!(c.apst_supported());
        assert_eq!((c.wctemp, c.cctemp, c.mtfa), (343, 373, 5));
        assert_eq!(c.hmb_preferred_bytes(), 4 * 1024 * 1024);
        assert_eq!(c.hmb_min_bytes(), 1024 * 1024);
        assert_eq!(c.tnvmcap.lo(), 0x4000_0000);
        assert_eq!(c.tnvmcap.hi(), 0x0100_0000_0000_0000);
        assert_eq!(c.tnvmcap.saturating_u64(), u64::MAX);
        assert_eq!((c.sqes.required(), c.sqes.max()), (6, 6));
        assert!(c.sqes.allows(6) && !c.sqes.allows(7));
        assert_eq!((c.cqes.required(), c.cqes.max()), (4, 4));
        assert_eq!(c.nn, 256);
        assert!(c.oncs.compare() && c.oncs.dsm() && c.oncs.write_zeroes());
        assert!(c.oncs.save_select() && c.oncs.timestamp() && c.oncs.copy());
        assert!(!c.oncs.write_uncorrectable() && !c.oncs.reservations());
        assert!(c.fuses.compare_and_write());
        assert!(c.fna.format_all() && c.fna.crypto_erase() && !c.fna.erase_all());
        assert!(c.vwc.present());
        assert_eq!(c.vwc.flush_broadcast(), 3);
        assert_eq!((c.awun, c.awupf), (7, 3));
        assert!(c.sgls.supported() && c.sgls.bit_bucket() && !c.sgls.keyed());
        assert_eq!(c.mnan, 256);
        assert_eq!(c.subnqn(), b"nqn.2019-08.org.qemu:deadbeef");
        let ps = c.power_states();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].max_power_uw(), 25_000_000);
        assert_eq!((ps[0].enlat, ps[0].exlat), (16, 4));
        assert_eq!(ps[0].actp, 900);
        assert_eq!((ps[0].apws.apw(), ps[0].apws.aps()), (2, 1));
        assert!(!ps[0].non_operational());
        assert!(ps[1].non_operational());
        assert_eq!(ps[1].max_power_uw(), 500_000);
        assert_eq!(ps[1].rrt.rank(), 3);
    }

    #[test]
    fn controller_garbage_is_total() {
        let page = Page([0xff; 4096]);
        let c = Controller::ref_from_bytes(&page.0).unwrap();
        assert_eq!(c.serial(), &[0xff; 20][..]);
        assert_eq!(c.power_states().len(), 32);
        assert_eq!(c.max_transfer_bytes(4096), Some(u64::MAX));
        assert_eq!(c.subnqn().len(), 256);
        assert!(c.max_transfer_bytes(0).is_some());
        let zero = Controller::new_zeroed();
        assert_eq!(zero.max_transfer_bytes(4096), None);
        assert_eq!(zero.serial(), b"");
        assert_eq!(zero.power_states().len(), 1);
        // Short and misaligned buffers are refused, not read.
        assert!(Controller::ref_from_bytes(&page.0[..4095]).is_err());
        let big = vec![0u8; 8192];
        let off = (0..8)
            .find(|i| (big.as_ptr() as usize + i) % 8 != 0)
            .unwrap();
        assert!(Controller::ref_from_bytes(&big[off..off + 4096]).is_err());
        // A copy works whatever the alignment.
        assert!(Controller::read_from_bytes(&big[off..off + 4096]).is_ok());
    }

    fn namespace_bytes() -> Page {
        let mut p = Page([0; 4096]);
        let b = &mut p.0;
        put(b, 0, &0x0020_0000u64.to_le_bytes()); // NSZE: 2 Mi blocks
        put(b, 8, &0x0020_0000u64.to_le_bytes()); // NCAP
        put(b, 16, &0x0001_0000u64.to_le_bytes()); // NUSE
        b[24] = 0b1_0101; // NSFEAT: THINP, DAE, OPTPERF
        b[25] = 19; // NLBAF: 20 formats
        b[26] = 0b0011_0001; // FLBAS: index 0x11 = 17, extended metadata
        b[27] = 0b11; // MC
        b[28] = 0b1_1001; // DPC
        b[29] = 0b1001; // DPS: type 1, first
        b[30] = 1; // NMIC
        b[33] = 0b1001; // DLFEAT: reads zeroes, write zeroes deallocates
        put(b, 46, &32u16.to_le_bytes()); // NOIOB
        put(b, 48, &0x1_0000_0000u64.to_le_bytes()); // NVMCAP low
        put(b, 64, &7u16.to_le_bytes()); // NPWG
        put(b, 66, &7u16.to_le_bytes()); // NPWA
        put(b, 68, &15u16.to_le_bytes()); // NPDG
        put(b, 70, &15u16.to_le_bytes()); // NPDA
        put(b, 72, &31u16.to_le_bytes()); // NOWS
        put(b, 92, &2u32.to_le_bytes()); // ANAGRPID
        b[99] = 1; // NSATTR
        put(b, 104, &[0x11; 16]); // NGUID
        put(b, 120, &[0x22; 8]); // EUI64
                                 // LBAF0: 512 B, LBAF1: 4 KiB + 8 B metadata, LBAF17: 4 KiB + 64 B, RP 2.
        put(b, 128, &[0x00, 0x00, 0x09, 0x00]);
        put(b, 132, &[0x08, 0x00, 0x0c, 0x01]);
        put(b, 128 + 17 * 4, &[0x40, 0x00, 0x0c, 0x02]);
        p
    }

    #[test]
    fn namespace_fields_at_their_offsets() {
        let page = namespace_bytes();
        let ns = Namespace::ref_from_bytes(&page.0).unwrap();
        assert!(ns.is_active());
        assert_eq!(
            (ns.nsze, ns.ncap, ns.nuse),
            (0x20_0000, 0x20_0000, 0x1_0000)
        );
        assert!(ns.nsfeat.thinp() && ns.nsfeat.dae() && ns.nsfeat.optperf());
        assert!(!ns.nsfeat.nsabp());
        assert_eq!(ns.lba_format_count(), 20);
        assert_eq!(ns.flbas.index(), 17);
        assert!(ns.flbas.extended());
        assert!(ns.mc.extended() && ns.mc.separate());
        assert!(ns.dpc.type1() && ns.dpc.first() && ns.dpc.last() && !ns.dpc.type2());
        assert_eq!(ns.dps.pit(), 1);
        assert!(ns.dps.pip());
        assert!(ns.nmic.shrns());
        assert_eq!(ns.dlfeat.read_value(), 1);
        assert!(ns.dlfeat.write_zeroes_deallocates());
        assert_eq!(ns.noiob, 32);
        assert_eq!(ns.nvmcap.lo(), 0x1_0000_0000);
        assert_eq!(
            (ns.npwg, ns.npwa, ns.npdg, ns.npda, ns.nows),
            (7, 7, 15, 15, 31)
        );
        assert_eq!(ns.anagrpid, 2);
        assert!(ns.write_protected());
        assert_eq!(ns.nguid, [0x11; 16]);
        assert_eq!(ns.eui64, [0x22; 8]);
        let f = ns.current_lba_format().unwrap();
        assert_eq!((f.ms(), f.lbads(), f.rp()), (64, 12, 2));
        assert_eq!(ns.block_size(), Some(4096));
        assert_eq!(ns.metadata_size(), Some(64));
        assert_eq!(ns.size_bytes(), Some(8 * 1024 * 1024 * 1024));
        assert_eq!(ns.lba_formats()[0].data_size(), Some(512));
        assert_eq!(ns.lba_formats()[1].ms(), 8);
    }

    #[test]
    fn flbas_index_encoding() {
        assert_eq!(Flbas(0x61).index(), 0x31);
        assert_eq!(Flbas(0x0f).index(), 15);
        assert_eq!(Flbas(0xff).index(), 63);
        assert_eq!(Flbas::from_index(17).0, 0x21);
        assert_eq!(Flbas::from_index(63).index(), 63);
    }

    #[test]
    fn namespace_garbage_is_total() {
        // FLBAS pointing past NLBAF.
        let mut page = namespace_bytes();
        page.0[25] = 3;
        let ns = Namespace::ref_from_bytes(&page.0).unwrap();
        assert_eq!(ns.current_lba_format(), None);
        assert_eq!(ns.block_size(), None);
        assert_eq!(ns.size_bytes(), None);
        // An invalid LBADS.
        let mut page = namespace_bytes();
        page.0[128 + 17 * 4 + 2] = 4;
        let ns = Namespace::ref_from_bytes(&page.0).unwrap();
        assert_eq!(ns.block_size(), None);
        assert_eq!(LbaFormat(0x00ff_0000).data_size(), None);
        // All ones.
        let page = Page([0xff; 4096]);
        let ns = Namespace::ref_from_bytes(&page.0).unwrap();
        assert_eq!(ns.lba_format_count(), 64);
        assert_eq!(ns.flbas.index(), 63);
        assert_eq!(ns.block_size(), None);
        // All zeroes: an inactive NSID.
        let ns = Namespace::new_zeroed();
        assert!(!ns.is_active());
        assert_eq!(ns.lba_formats().len(), 1);
        assert_eq!(ns.block_size(), None);
    }

    #[test]
    fn nvm_controller_limits() {
        // WZSL 5 (32 pages), DMRSL 0x1_0000 blocks, DMSL 0x1_0000_0000 blocks.
        let mut p = Page([0; 4096]);
        let b = &mut p.0;
        b[0] = 3; // VSL
        b[1] = 5; // WZSL
        b[2] = 4; // WUSL
        b[3] = 255; // DMRL
        put(b, 4, &0x0001_0000u32.to_le_bytes()); // DMRSL
        put(b, 8, &0x1_0000_0000u64.to_le_bytes()); // DMSL
        let id = NvmController::ref_from_bytes(&p.0).unwrap();
        assert_eq!((id.vsl, id.wzsl, id.wusl, id.dmrl), (3, 5, 4, 255));
        assert_eq!(id.dmrsl, 0x1_0000);
        assert_eq!(id.dmsl, 0x1_0000_0000);
        assert_eq!(id.max_write_zeroes_bytes(4096), Some(128 * 1024));
        assert_eq!(id.max_dealloc_blocks(), Some(0x1_0000));
        assert_eq!(id.as_bytes(), &p.0[..]);
        // No limits: all zeroes; an implausible WZSL is no limit either.
        let none = NvmController::new_zeroed();
        assert_eq!(none.max_write_zeroes_bytes(4096), None);
        assert_eq!(none.max_dealloc_blocks(), None);
        let mut big = NvmController::new_zeroed();
        big.wzsl = 32;
        assert_eq!(big.max_write_zeroes_bytes(4096), None);
        big.wzsl = 31;
        assert_eq!(big.max_write_zeroes_bytes(4096), Some(4096 << 31));
        assert!(NvmController::ref_from_bytes(&p.0[..4095]).is_err());
    }

    #[test]
    fn namespace_lists() {
        let mut l = NsList::new_zeroed();
        l.ids[..3].copy_from_slice(&[1, 2, 7]);
        assert_eq!(l.iter().collect::<Vec<_>>(), [1, 2, 7]);
        assert_eq!(l.continue_after(), None);
        let full =
            NsList::read_from_bytes(&(1..=1024u32).flat_map(u32::to_le_bytes).collect::<Vec<_>>())
                .unwrap();
        assert_eq!(full.iter().count(), 1024);
        assert_eq!(full.continue_after(), Some(1024));

        let c = CtrlList::new(&[1, 5, 9]);
        assert_eq!(&c.as_bytes()[..8], &[3, 0, 1, 0, 5, 0, 9, 0]);
        assert_eq!(c.ids(), &[1, 5, 9]);
        let mut bad = CtrlList::new_zeroed();
        bad.num = 0xffff;
        assert_eq!(bad.ids().len(), 2047);
    }

    fn descriptor(nidt: u8, nid: &[u8]) -> Vec<u8> {
        let mut v = vec![nidt, nid.len() as u8, 0, 0];
        v.extend_from_slice(nid);
        v
    }

    #[test]
    fn ns_id_descriptors_parse() {
        let mut buf = Vec::new();
        buf.extend(descriptor(nidt::EUI64, &[1, 2, 3, 4, 5, 6, 7, 8]));
        buf.extend(descriptor(nidt::NGUID, &[0xaa; 16]));
        buf.extend(descriptor(nidt::UUID, &[0xbb; 16]));
        buf.extend(descriptor(nidt::CSI, &[CSI_NVM]));
        buf.extend(descriptor(0x7, &[9, 9]));
        buf.resize(4096, 0);
        let items: Vec<_> = NsIdDescriptors::new(&buf).collect();
        assert_eq!(
            items,
            [
                Ok(NsId::Eui64([1, 2, 3, 4, 5, 6, 7, 8])),
                Ok(NsId::Nguid([0xaa; 16])),
                Ok(NsId::Uuid([0xbb; 16])),
                Ok(NsId::Csi(0)),
                Ok(NsId::Other {
                    nidt: 7,
                    nid: &[9, 9]
                }),
            ]
        );
        let ids = NsIds::parse(&buf).unwrap();
        assert_eq!(ids.eui64, Some([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(ids.uuid, Some([0xbb; 16]));
        assert_eq!(ids.csi, Some(CSI_NVM));
        assert_eq!(NsIds::parse(&[0; 4096]), Ok(NsIds::default()));
    }

    #[test]
    fn ns_id_descriptors_reject_garbage() {
        // A UUID descriptor claiming 8 bytes.
        let mut buf = descriptor(nidt::EUI64, &[1; 8]);
        buf.extend(descriptor(nidt::UUID, &[2; 8]));
        buf.resize(64, 0);
        let items: Vec<_> = NsIdDescriptors::new(&buf).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[1],
            Err(NsIdError::BadLength {
                offset: 12,
                nidt: nidt::UUID,
                nidl: 8
            })
        );
        // A length that runs off the end of the buffer.
        let buf = [nidt::NGUID, 16, 0, 0, 1, 2, 3];
        assert_eq!(
            NsIdDescriptors::new(&buf).collect::<Vec<_>>(),
            [Err(NsIdError::Truncated { offset: 0 })]
        );
        assert!(NsIds::parse(&buf).is_err());
        // Short headers and empty buffers end quietly.
        assert_eq!(NsIdDescriptors::new(&[1, 8]).count(), 0);
        assert_eq!(NsIdDescriptors::new(&[]).count(), 0);
        // All ones: every descriptor is an unknown type 0xff of 255 bytes; the walk ends.
        let ones = [0xffu8; 4096];
        let n = NsIdDescriptors::new(&ones).count();
        assert!(n <= 4096 / 259 + 1);
        // Every short prefix of a valid list, and pseudo-random bytes, terminate without
        // panicking.
        let mut valid = descriptor(nidt::NGUID, &[3; 16]);
        valid.extend(descriptor(nidt::CSI, &[2]));
        for end in 0..valid.len() {
            let _ = NsIdDescriptors::new(&valid[..end]).count();
        }
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                x.to_le_bytes()[2]
            })
            .collect();
        assert!(NsIdDescriptors::new(&noise).count() <= 4096 / 5 + 1);
    }
}
