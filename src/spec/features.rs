//! Features, NVMe Base 2.0 §5.27.1: identifiers and the typed values of the features the
//! driver gets and sets.
//!
//! A feature's value travels in Set Features CDW11 (and for some features CDW12-15 or a data
//! buffer) and comes back from Get Features in CQE DW0. Each value type here is a
//! `bitfield!` over that dword.

use super::bitfield::bitfield;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A Feature Identifier (FID), NVMe Base 2.0 §5.27.1, Figure "Feature Identifiers".
///
/// A newtype rather than an enum: vendor specific identifiers (C0h-FFh) are legal values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fid(pub u8);

impl Fid {
    /// Arbitration ([`Arbitration`]).
    pub const ARBITRATION: Self = Self(0x01);
    /// Power Management ([`PowerManagement`]).
    pub const POWER_MANAGEMENT: Self = Self(0x02);
    /// LBA Range Type.
    pub const LBA_RANGE_TYPE: Self = Self(0x03);
    /// Temperature Threshold ([`TemperatureThreshold`]).
    pub const TEMPERATURE_THRESHOLD: Self = Self(0x04);
    /// Error Recovery ([`ErrorRecovery`]).
    pub const ERROR_RECOVERY: Self = Self(0x05);
    /// Volatile Write Cache ([`VolatileWriteCache`]).
    pub const VOLATILE_WRITE_CACHE: Self = Self(0x06);
    /// Number of Queues ([`NumberOfQueues`]).
    pub const NUMBER_OF_QUEUES: Self = Self(0x07);
    /// Interrupt Coalescing ([`InterruptCoalescing`]).
    pub const INTERRUPT_COALESCING: Self = Self(0x08);
    /// Interrupt Vector Configuration ([`InterruptVectorConfig`]).
    pub const INTERRUPT_VECTOR_CONFIG: Self = Self(0x09);
    /// Write Atomicity Normal.
    pub const WRITE_ATOMICITY: Self = Self(0x0a);
    /// Asynchronous Event Configuration ([`AsyncEventConfig`]).
    pub const ASYNC_EVENT_CONFIG: Self = Self(0x0b);
    /// Autonomous Power State Transition ([`Apst`], [`ApstTable`]).
    pub const APST: Self = Self(0x0c);
    /// Host Memory Buffer ([`HmbCdw11`], [`HmbDescriptor`]).
    pub const HOST_MEMORY_BUFFER: Self = Self(0x0d);
    /// Timestamp ([`Timestamp`]).
    pub const TIMESTAMP: Self = Self(0x0e);
    /// Keep Alive Timer (CDW11: KATO in milliseconds).
    pub const KEEP_ALIVE_TIMER: Self = Self(0x0f);
    /// Host Controlled Thermal Management.
    pub const HOST_THERMAL_MANAGEMENT: Self = Self(0x10);
    /// Non-Operational Power State Config.
    pub const NON_OPERATIONAL_POWER_STATE: Self = Self(0x11);
    /// Read Recovery Level Config.
    pub const READ_RECOVERY_LEVEL: Self = Self(0x12);
    /// Predictable Latency Mode Config.
    pub const PLM_CONFIG: Self = Self(0x13);
    /// Predictable Latency Mode Window.
    pub const PLM_WINDOW: Self = Self(0x14);
    /// Host Behavior Support.
    pub const HOST_BEHAVIOR: Self = Self(0x16);
    /// Sanitize Config.
    pub const SANITIZE_CONFIG: Self = Self(0x17);
    /// Endurance Group Event Configuration.
    pub const ENDURANCE_EVENT_CONFIG: Self = Self(0x18);
    /// I/O Command Set Profile.
    pub const IO_COMMAND_SET_PROFILE: Self = Self(0x19);
    /// Spinup Control.
    pub const SPINUP_CONTROL: Self = Self(0x1a);
    /// Software Progress Marker.
    pub const SOFTWARE_PROGRESS_MARKER: Self = Self(0x80);
    /// Host Identifier.
    pub const HOST_IDENTIFIER: Self = Self(0x81);
    /// Reservation Notification Mask.
    pub const RESERVATION_NOTIFICATION_MASK: Self = Self(0x82);
    /// Reservation Persistence.
    pub const RESERVATION_PERSISTENCE: Self = Self(0x83);
    /// Namespace Write Protection Config.
    pub const NS_WRITE_PROTECTION: Self = Self(0x84);

    /// True for the vendor specific range C0h-FFh.
    pub const fn is_vendor_specific(self) -> bool {
        self.0 >= 0xc0
    }
}

/// The Select field of Get Features (CDW10.SEL), NVMe Base 2.0 §5.15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sel {
    /// The current value.
    Current = 0,
    /// The default value.
    Default = 1,
    /// The saved value.
    Saved = 2,
    /// The supported capabilities ([`Capabilities`] in CQE DW0).
    Supported = 3,
}

bitfield! {
    /// CQE DW0 of Get Features with [`Sel::Supported`], NVMe Base 2.0 §5.15.
    pub struct Capabilities(u32) {
        /// The feature is saveable.
        0:0 saveable: bool;
        /// The feature is namespace specific.
        1:1 ns_specific: bool;
        /// The feature is changeable.
        2:2 changeable: bool;
    }
}

bitfield! {
    /// Arbitration (FID 01h), NVMe Base 2.0 §5.27.1.
    pub struct Arbitration(u32) {
        /// Arbitration Burst (AB): `2 ^ ab` commands, 111b for no limit.
        2:0 ab / with_ab: u8;
        /// Low Priority Weight (LPW), 0's based.
        15:8 lpw / with_lpw: u8;
        /// Medium Priority Weight (MPW), 0's based.
        23:16 mpw / with_mpw: u8;
        /// High Priority Weight (HPW), 0's based.
        31:24 hpw / with_hpw: u8;
    }
}

bitfield! {
    /// Power Management (FID 02h), NVMe Base 2.0 §5.27.1.
    pub struct PowerManagement(u32) {
        /// Power State (PS).
        4:0 ps / with_ps: u8;
        /// Workload Hint (WH).
        7:5 wh / with_wh: u8;
    }
}

bitfield! {
    /// Temperature Threshold (FID 04h), NVMe Base 2.0 §5.27.1.
    pub struct TemperatureThreshold(u32) {
        /// Temperature Threshold (TMPTH) in kelvins.
        15:0 tmpth / with_tmpth: u16;
        /// Threshold Temperature Select (TMPSEL): 0 composite, 1-8 sensor, Fh all.
        19:16 tmpsel / with_tmpsel: u8;
        /// Threshold Type Select (THSEL), see [`Thsel`].
        21:20 thsel / with_thsel: u8;
    }
}

/// Threshold Type Select of the Temperature Threshold feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thsel {
    /// Over Temperature Threshold.
    Over = 0,
    /// Under Temperature Threshold.
    Under = 1,
}

/// TMPSEL value for the composite temperature.
pub const TMPSEL_COMPOSITE: u8 = 0x0;
/// TMPSEL value for all implemented sensors (Set Features only).
pub const TMPSEL_ALL: u8 = 0xf;

bitfield! {
    /// Error Recovery (FID 05h), NVMe Base 2.0 §5.27.1.
    pub struct ErrorRecovery(u32) {
        /// Time Limited Error Recovery (TLER) in 100 ms units, 0 for no limit.
        15:0 tler / with_tler: u16;
        /// Deallocated or Unwritten Logical Block Error Enable (DULBE).
        16:16 dulbe / with_dulbe: bool;
    }
}

bitfield! {
    /// Volatile Write Cache (FID 06h), NVMe Base 2.0 §5.27.1.
    pub struct VolatileWriteCache(u32) {
        /// Volatile Write Cache Enable (WCE).
        0:0 wce / with_wce: bool;
    }
}

bitfield! {
    /// Number of Queues (FID 07h), NVMe Base 2.0 §5.27.1. In Set Features CDW11 the fields
    /// are the requested counts (NSQR, NCQR); in the completion's DW0 the allocated ones
    /// (NSQA, NCQA). Both are 0's based.
    pub struct NumberOfQueues(u32) {
        /// Number of I/O Submission Queues, 0's based (NSQR / NSQA).
        15:0 nsq / with_nsq: u16;
        /// Number of I/O Completion Queues, 0's based (NCQR / NCQA).
        31:16 ncq / with_ncq: u16;
    }
}

impl NumberOfQueues {
    /// The CDW11 value requesting `sqs` submission and `cqs` completion queues (each at least
    /// 1; 0 is treated as 1). The 0's based encoding never produces the invalid value FFFFh.
    pub const fn request(sqs: u16, cqs: u16) -> Self {
        Self(0)
            .with_nsq(sqs.saturating_sub(1))
            .with_ncq(cqs.saturating_sub(1))
    }

    /// Submission queues allocated (NSQA + 1).
    pub const fn sq_count(self) -> u32 {
        // CAST: widening u16 to u32.
        self.nsq() as u32 + 1
    }

    /// Completion queues allocated (NCQA + 1).
    pub const fn cq_count(self) -> u32 {
        // CAST: widening u16 to u32.
        self.ncq() as u32 + 1
    }
}

bitfield! {
    /// Interrupt Coalescing (FID 08h), NVMe Base 2.0 §5.27.1.
    pub struct InterruptCoalescing(u32) {
        /// Aggregation Threshold (THR): completions per interrupt, 0's based.
        7:0 thr / with_thr: u8;
        /// Aggregation Time (TIME) in 100 µs units, 0 for none.
        15:8 time / with_time: u8;
    }
}

bitfield! {
    /// Interrupt Vector Configuration (FID 09h), NVMe Base 2.0 §5.27.1.
    pub struct InterruptVectorConfig(u32) {
        /// Interrupt Vector (IV) the setting applies to.
        15:0 iv / with_iv: u16;
        /// Coalescing Disable (CD) for this vector.
        16:16 cd / with_cd: bool;
    }
}

bitfield! {
    /// Asynchronous Event Configuration (FID 0Bh), NVMe Base 2.0 §5.27.1.
    pub struct AsyncEventConfig(u32) {
        /// SMART / Health Critical Warnings: one enable per bit of
        /// [`super::log::CriticalWarning`].
        7:0 smart / with_smart: u8;
        /// Namespace Attribute Notices (NAN).
        8:8 nan / with_nan: bool;
        /// Firmware Activation Notices (FAN).
        9:9 fan / with_fan: bool;
        /// Telemetry Log Notices (TLN).
        10:10 tln / with_tln: bool;
        /// Asymmetric Namespace Access Change Notices (ANACN).
        11:11 anacn / with_anacn: bool;
        /// Predictable Latency Event Aggregate Log Change Notices (PLEALCN).
        12:12 plealcn / with_plealcn: bool;
        /// LBA Status Information Notices (LSIN).
        13:13 lsin / with_lsin: bool;
        /// Endurance Group Event Aggregate Log Change Notices (EGEALCN).
        14:14 egealcn / with_egealcn: bool;
        /// Normal NVM Subsystem Shutdown Notices (NNSSHDN).
        15:15 nnsshdn / with_nnsshdn: bool;
        /// Discovery Log Page Change Notices (DLPCN), fabrics.
        31:31 dlpcn / with_dlpcn: bool;
    }
}

impl AsyncEventConfig {
    /// Every SMART / Health critical warning event enabled (bits 7:0 all set, the reserved
    /// bits 7:6 included, as established host drivers set them) and no notices,
    /// NVMe Base 2.0 §5.27.1 (Asynchronous Event Configuration).
    pub const ALL_CRITICAL_WARNINGS: Self = Self(0).with_smart(u8::MAX);
}

bitfield! {
    /// Autonomous Power State Transition CDW11 (FID 0Ch), NVMe Base 2.0 §5.27.1. The
    /// transition table is the data buffer ([`ApstTable`]).
    pub struct Apst(u32) {
        /// Autonomous Power State Transition Enable (APSTE).
        0:0 apste / with_apste: bool;
    }
}

bitfield! {
    /// One entry of the Autonomous Power State Transition table, NVMe Base 2.0 §5.27.1,
    /// Figure "Autonomous Power State Transition – Power State Entry".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct ApstEntry(u64) {
        /// Idle Transition Power State (ITPS): the state to move to.
        7:3 itps / with_itps: u8;
        /// Idle Time Prior to Transition (ITPT) in milliseconds, 0 to disable the entry.
        31:8 itpt / with_itpt: u32;
    }
}

/// The largest ITPT an [`ApstEntry`] can hold, in milliseconds (24 bits).
pub const APST_MAX_ITPT_MS: u32 = 0x00ff_ffff;

impl ApstEntry {
    /// An entry moving to power state `itps` after `itpt_ms` milliseconds idle (clamped to
    /// [`APST_MAX_ITPT_MS`]).
    pub const fn new(itps: u8, itpt_ms: u32) -> Self {
        let itpt = if itpt_ms > APST_MAX_ITPT_MS {
            APST_MAX_ITPT_MS
        } else {
            itpt_ms
        };
        Self(0).with_itps(itps).with_itpt(itpt)
    }
}

/// The Autonomous Power State Transition data structure: one entry per power state (the entry
/// for state N says where state N goes when idle), NVMe Base 2.0 §5.27.1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ApstTable {
    /// Entries for power states 0-31.
    pub entries: [ApstEntry; 32],
}

bitfield! {
    /// The Timestamp feature's 8-byte data buffer (FID 0Eh), NVMe Base 2.0 §5.27.1,
    /// Figure "Timestamp".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Timestamp(u64) {
        /// Milliseconds since midnight, 1 January 1970 UTC (48 bits).
        47:0 timestamp / with_timestamp: u64;
        /// Synch: the controller may have stopped counting (e.g. in a non-operational state).
        48:48 synch: bool;
        /// Timestamp Origin: 000b reset to zero by a reset, 001b set by Set Features.
        51:49 origin: u8;
    }
}

bitfield! {
    /// Host Memory Buffer CDW11 (FID 0Dh), NVMe Base 2.0 §5.27.1. CDW12 is the buffer size
    /// (HSIZE, in memory pages), CDW13-14 the descriptor list address (HMDLLA/HMDLUA, 16-byte
    /// aligned) and CDW15 the descriptor count (HMDLEC).
    pub struct HmbCdw11(u32) {
        /// Enable Host Memory (EHM).
        0:0 ehm / with_ehm: bool;
        /// Memory Return (MR): the buffer is the one used before a reset.
        1:1 mr / with_mr: bool;
    }
}

/// A Host Memory Buffer Descriptor Entry, NVMe Base 2.0 §5.27.1, Figure "Host Memory Buffer
/// – Host Memory Buffer Descriptor Entry".
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct HmbDescriptor {
    /// Buffer Address (BADD), memory page aligned.
    pub badd: u64,
    /// Buffer Size (BSIZE) in memory pages.
    pub bsize: u32,
    /// Reserved.
    pub rsvd: u32,
}

/// The Host Memory Buffer Attributes returned by Get Features (FID 0Dh),
/// NVMe Base 2.0 §5.27.1.
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct HmbAttributes {
    /// Host Memory Buffer Size (HSIZE) in memory pages.
    pub hsize: u32,
    /// Host Memory Descriptor List Address Lower (HMDLAL).
    pub hmdlal: u32,
    /// Host Memory Descriptor List Address Upper (HMDLAU).
    pub hmdlau: u32,
    /// Host Memory Descriptor List Entry Count (HMDLEC).
    pub hmdlec: u32,
    /// Reserved.
    pub rsvd: [u8; 4080],
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<ApstEntry>() == 8);
    assert!(size_of::<ApstTable>() == 256);
    assert!(size_of::<Timestamp>() == 8);
    assert!(size_of::<HmbDescriptor>() == 16);
    assert!(size_of::<HmbAttributes>() == 4096);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion::spec::sqe::Sqe;
    use zerocopy::{FromBytes, IntoBytes};

    #[test]
    fn number_of_queues_encoding() {
        let req = NumberOfQueues::request(16, 16);
        assert_eq!(req.0, 0x000f_000f);
        assert_eq!(NumberOfQueues::request(0, 1).0, 0);
        assert_eq!(NumberOfQueues::request(u16::MAX, u16::MAX).0, 0xfffe_fffe);
        // QEMU answers 64 SQs and 64 CQs: DW0 = 0x003f_003f.
        let got = NumberOfQueues(0x003f_003f);
        assert_eq!((got.sq_count(), got.cq_count()), (64, 64));
        // Garbage decodes to the 0's based maximum, never overflows.
        assert_eq!(NumberOfQueues(u32::MAX).sq_count(), 65536);
        let s = Sqe::set_features(Fid::NUMBER_OF_QUEUES, req.0, false);
        assert_eq!((s.cdw10, s.cdw11), (0x07, 0x000f_000f));
    }

    #[test]
    fn simple_feature_values() {
        assert_eq!(VolatileWriteCache(0).with_wce(true).0, 1);
        assert_eq!(PowerManagement(0).with_ps(3).with_wh(2).0, 0x43);
        let t = TemperatureThreshold(0)
            .with_tmpth(343)
            .with_tmpsel(TMPSEL_COMPOSITE)
            .with_thsel(Thsel::Under as u8);
        assert_eq!(t.0, 0x0010_0157);
        assert_eq!(TemperatureThreshold(0x000f_0000).tmpsel(), TMPSEL_ALL);
        let e = ErrorRecovery(0).with_tler(50).with_dulbe(true);
        assert_eq!(e.0, 0x0001_0032);
        let a = Arbitration(0)
            .with_ab(7)
            .with_lpw(1)
            .with_mpw(2)
            .with_hpw(3);
        assert_eq!(a.0, 0x0302_0107);
        let ic = InterruptCoalescing(0).with_thr(7).with_time(10);
        assert_eq!(ic.0, 0x0a07);
        let iv = InterruptVectorConfig(0).with_iv(5).with_cd(true);
        assert_eq!(iv.0, 0x0001_0005);
        let aec = AsyncEventConfig(0)
            .with_smart(0x1f)
            .with_nan(true)
            .with_fan(true);
        assert_eq!(aec.0, 0x031f);
        assert!(AsyncEventConfig(0x8000_0000).dlpcn());
        // What the driver enables: every critical warning, plus NAN when OAES has it.
        let all = AsyncEventConfig::ALL_CRITICAL_WARNINGS;
        assert_eq!(all.0, 0xff);
        assert_eq!(all.with_nan(false).0, 0xff);
        assert_eq!(all.with_nan(true).0, 0x1ff);
        assert!(all.with_nan(true).nan() && !all.nan());
        assert_eq!(AsyncEventConfig(0x1ff).smart(), 0xff);
        let caps = Capabilities(0b101);
        assert!(caps.saveable() && !caps.ns_specific() && caps.changeable());
        assert_eq!(Apst(0).with_apste(true).0, 1);
        assert!(Fid(0xc1).is_vendor_specific() && !Fid::APST.is_vendor_specific());
    }

    #[test]
    fn apst_table_bytes() {
        let mut t = ApstTable::default();
        t.entries[0] = ApstEntry::new(3, 100);
        t.entries[1] = ApstEntry::new(4, 0x0200_0000); // clamped
        let b = t.as_bytes();
        assert_eq!(b.len(), 256);
        assert_eq!(&b[..8], &[0x18, 100, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&b[8..16], &[0x20, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let back = ApstTable::read_from_bytes(b).unwrap();
        assert_eq!(back.entries[0].itps(), 3);
        assert_eq!(back.entries[0].itpt(), 100);
        assert_eq!(back.entries[1].itpt(), APST_MAX_ITPT_MS);
        assert!(ApstTable::read_from_bytes(&b[..255]).is_err());
    }

    #[test]
    fn timestamp_bytes() {
        // 2026-01-01T00:00:00Z = 1_767_225_600_000 ms, set by Set Features, synch clear.
        let raw = [0x00, 0xa8, 0xda, 0x76, 0x9b, 0x01, 0x02, 0x00];
        let t = Timestamp::read_from_bytes(&raw).unwrap();
        assert_eq!(t.timestamp(), 1_767_225_600_000);
        assert_eq!(t.origin(), 1);
        assert!(!t.synch());
        let set = Timestamp(0).with_timestamp(1_767_225_600_000);
        assert_eq!(&set.as_bytes()[..6], &raw[..6]);
        // A value wider than 48 bits is masked, never spilling into the flags.
        assert_eq!(
            Timestamp(0).with_timestamp(u64::MAX).0,
            0x0000_ffff_ffff_ffff
        );
    }

    #[test]
    fn host_memory_buffer() {
        let d = HmbDescriptor {
            badd: 0x1_2345_6000,
            bsize: 256,
            rsvd: 0,
        };
        assert_eq!(
            d.as_bytes(),
            &[0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0, 0x00, 0x01, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(HmbCdw11(0).with_ehm(true).with_mr(true).0, 3);
        let mut raw = [0u8; 4096];
        raw[..4].copy_from_slice(&1024u32.to_le_bytes());
        raw[12..16].copy_from_slice(&4u32.to_le_bytes());
        let a = HmbAttributes::read_from_bytes(&raw[..]).unwrap();
        assert_eq!((a.hsize, a.hmdlec), (1024, 4));
    }
}
