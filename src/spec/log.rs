//! Log pages, NVMe Base 2.0 §5.16.
//!
//! Like the Identify structures, these come from the device and are read in place from an
//! aligned DMA buffer with `zerocopy::FromBytes::ref_from_bytes`; every accessor is total.

use super::bitfield::bitfield;
use super::identify::trim_ascii_field;
use super::status::PhaseStatus;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A Log Page Identifier (LID), NVMe Base 2.0 §5.16.1, Figure "Get Log Page – Log Page
/// Identifiers".
///
/// A newtype rather than an enum: vendor specific identifiers (C0h-FFh) are legal values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LogId(pub u8);

impl LogId {
    /// Supported Log Pages.
    pub const SUPPORTED_LOG_PAGES: Self = Self(0x00);
    /// Error Information ([`ErrorEntry`] array).
    pub const ERROR: Self = Self(0x01);
    /// SMART / Health Information ([`Smart`]).
    pub const SMART: Self = Self(0x02);
    /// Firmware Slot Information ([`FirmwareSlot`]).
    pub const FIRMWARE_SLOT: Self = Self(0x03);
    /// Changed Namespace List ([`ChangedNsList`]).
    pub const CHANGED_NS_LIST: Self = Self(0x04);
    /// Commands Supported and Effects ([`Effects`]).
    pub const COMMAND_EFFECTS: Self = Self(0x05);
    /// Device Self-test.
    pub const DEVICE_SELF_TEST: Self = Self(0x06);
    /// Telemetry Host-Initiated.
    pub const TELEMETRY_HOST: Self = Self(0x07);
    /// Telemetry Controller-Initiated.
    pub const TELEMETRY_CTRL: Self = Self(0x08);
    /// Endurance Group Information.
    pub const ENDURANCE_GROUP: Self = Self(0x09);
    /// Predictable Latency Per NVM Set.
    pub const PRED_LAT_NVMSET: Self = Self(0x0a);
    /// Predictable Latency Event Aggregate.
    pub const PRED_LAT_AGGREGATE: Self = Self(0x0b);
    /// Asymmetric Namespace Access.
    pub const ANA: Self = Self(0x0c);
    /// Persistent Event Log.
    pub const PERSISTENT_EVENT: Self = Self(0x0d);
    /// Endurance Group Event Aggregate.
    pub const ENDURANCE_GROUP_AGGREGATE: Self = Self(0x0f);
    /// Media Unit Status.
    pub const MEDIA_UNIT_STATUS: Self = Self(0x10);
    /// Supported Capacity Configuration List.
    pub const SUPPORTED_CAPACITY_CONFIG: Self = Self(0x11);
    /// Feature Identifiers Supported and Effects.
    pub const FEATURE_EFFECTS: Self = Self(0x12);
    /// NVMe-MI Commands Supported and Effects.
    pub const MI_COMMAND_EFFECTS: Self = Self(0x13);
    /// Command and Feature Lockdown.
    pub const LOCKDOWN: Self = Self(0x14);
    /// Boot Partition.
    pub const BOOT_PARTITION: Self = Self(0x15);
    /// Rotational Media Information.
    pub const ROTATIONAL_MEDIA: Self = Self(0x16);
    /// Discovery (fabrics).
    pub const DISCOVERY: Self = Self(0x70);
    /// Reservation Notification.
    pub const RESERVATION_NOTIFICATION: Self = Self(0x80);
    /// Sanitize Status.
    pub const SANITIZE_STATUS: Self = Self(0x81);

    /// True for the vendor specific range C0h-FFh.
    pub const fn is_vendor_specific(self) -> bool {
        self.0 >= 0xc0
    }
}

/// A 128-bit little-endian unsigned value (counters, capacities), as two 64-bit halves.
///
/// The driver does no 128-bit arithmetic (the kernel's compiler builtins lack parts of it);
/// callers use the halves or [`U128::saturating_u64`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct U128 {
    lo: u64,
    hi: u64,
}

impl U128 {
    /// The value `lo`, with a zero upper half.
    pub const fn from_u64(lo: u64) -> Self {
        Self { lo, hi: 0 }
    }

    /// The low 64 bits.
    pub const fn lo(self) -> u64 {
        self.lo
    }

    /// The high 64 bits.
    pub const fn hi(self) -> u64 {
        self.hi
    }

    /// The value, or `u64::MAX` when it does not fit in 64 bits.
    pub const fn saturating_u64(self) -> u64 {
        if self.hi == 0 {
            self.lo
        } else {
            u64::MAX
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Error Information.

bitfield! {
    /// Parameter Error Location of an Error Information entry, NVMe Base 2.0 §5.16.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct ErrorLocation(u16) {
        /// Byte in the command that contained the error.
        7:0 byte: u8;
        /// Bit in that byte.
        10:8 bit: u8;
    }
}

/// An Error Information log entry (LID 01h), NVMe Base 2.0 §5.16.1, Figure "Error
/// Information Log Entry Data Structure". The log is an array of ELPE + 1 of these.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ErrorEntry {
    /// Error Count: unique, incrementing; 0 means the entry is empty.
    pub error_count: u64,
    /// Submission Queue ID of the failed command (FFFFh: not specific to a command).
    pub sqid: u16,
    /// Command ID of the failed command (FFFFh: not specific to a command).
    pub cid: u16,
    /// Status Information: the failed command's status field and phase tag.
    pub status: PhaseStatus,
    /// Parameter Error Location (FFFFh: not specific to a parameter).
    pub parameter_error_location: ErrorLocation,
    /// First LBA that experienced the error, if applicable.
    pub lba: u64,
    /// Namespace of the error (FFFFFFFFh if not namespace specific).
    pub nsid: u32,
    /// Vendor Specific Information Available: LID of a vendor log with more, or 0.
    pub vs: u8,
    /// Transport Type (TRTYPE), 0 if the error is not transport related.
    pub trtype: u8,
    /// Reserved.
    pub rsvd30: [u8; 2],
    /// Command Specific Information.
    pub csi: u64,
    /// Transport Type Specific Information.
    pub ttsi: u16,
    /// Reserved.
    pub rsvd42: [u8; 22],
}

// ---------------------------------------------------------------------------------------------
// SMART / Health.

bitfield! {
    /// Critical Warning of the SMART / Health log, NVMe Base 2.0 §5.16.1. The same bits
    /// enable the corresponding events in the Asynchronous Event Configuration feature.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct CriticalWarning(u8) {
        /// Available spare capacity is below the threshold.
        0:0 spare / with_spare: bool;
        /// A temperature is above an over-temperature or below an under-temperature threshold.
        1:1 temperature / with_temperature: bool;
        /// NVM subsystem reliability is degraded.
        2:2 reliability / with_reliability: bool;
        /// All media are read only.
        3:3 read_only / with_read_only: bool;
        /// The volatile memory backup device has failed.
        4:4 volatile_backup / with_volatile_backup: bool;
        /// The Persistent Memory Region has become read only or unreliable.
        5:5 pmr_read_only / with_pmr_read_only: bool;
    }
}

/// Names the set warning bits, each as ` [name]` in bit order (bits 0-5; the reserved bits
/// 7:6 are not shown), e.g. ` [temperature] [reliability degraded]`; nothing when no bit is
/// set. Bits as in NVMe Base 2.0 §5.16.1, Figure "SMART / Health Information Log Page".
impl core::fmt::Display for CriticalWarning {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (set, name) in [
            (self.spare(), "spare below threshold"),
            (self.temperature(), "temperature"),
            (self.reliability(), "reliability degraded"),
            (self.read_only(), "read-only"),
            (self.volatile_backup(), "volatile memory backup failed"),
            (self.pmr_read_only(), "persistent memory region unreliable"),
        ] {
            if set {
                write!(f, " [{name}]")?;
            }
        }
        Ok(())
    }
}

/// The SMART / Health Information log (LID 02h), NVMe Base 2.0 §5.16.1, Figure "SMART /
/// Health Information Log Page".
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Smart {
    /// Critical Warning.
    pub critical_warning: CriticalWarning,
    /// Composite Temperature in kelvins (unaligned: read with [`Smart::composite_temperature`]).
    pub temperature: [u8; 2],
    /// Available Spare, percent of the spare capacity.
    pub avail_spare: u8,
    /// Available Spare Threshold, percent.
    pub spare_thresh: u8,
    /// Percentage Used of the rated life (may exceed 100).
    pub percent_used: u8,
    /// Endurance Group Critical Warning Summary.
    pub endu_grp_crit_warn_sumry: u8,
    /// Reserved.
    pub rsvd7: [u8; 25],
    /// Data Units Read, in thousands of 512-byte units.
    pub data_units_read: U128,
    /// Data Units Written, in thousands of 512-byte units.
    pub data_units_written: U128,
    /// Host Read Commands.
    pub host_reads: U128,
    /// Host Write Commands.
    pub host_writes: U128,
    /// Controller Busy Time in minutes.
    pub ctrl_busy_time: U128,
    /// Power Cycles.
    pub power_cycles: U128,
    /// Power On Hours.
    pub power_on_hours: U128,
    /// Unsafe Shutdowns.
    pub unsafe_shutdowns: U128,
    /// Media and Data Integrity Errors.
    pub media_errors: U128,
    /// Number of Error Information Log Entries over the controller's life.
    pub num_err_log_entries: U128,
    /// Warning Composite Temperature Time in minutes.
    pub warning_temp_time: u32,
    /// Critical Composite Temperature Time in minutes.
    pub critical_comp_time: u32,
    /// Temperature Sensors 1-8 in kelvins (0: not implemented).
    pub temp_sensor: [u16; 8],
    /// Thermal Management Temperature 1 Transition Count.
    pub thm_temp1_trans_count: u32,
    /// Thermal Management Temperature 2 Transition Count.
    pub thm_temp2_trans_count: u32,
    /// Total Time For Thermal Management Temperature 1, in seconds.
    pub thm_temp1_total_time: u32,
    /// Total Time For Thermal Management Temperature 2, in seconds.
    pub thm_temp2_total_time: u32,
    /// Reserved.
    pub rsvd232: [u8; 280],
}

impl Smart {
    /// Composite Temperature in kelvins.
    pub const fn composite_temperature(&self) -> u16 {
        u16::from_le_bytes(self.temperature)
    }

    /// Temperature sensor `n` (1-8) in kelvins, or `None` when `n` is out of range or the
    /// sensor is not implemented.
    pub fn temperature_sensor(&self, n: usize) -> Option<u16> {
        let t = *self.temp_sensor.get(n.checked_sub(1)?)?;
        (t != 0).then_some(t)
    }
}

// ---------------------------------------------------------------------------------------------
// Firmware Slot Information.

bitfield! {
    /// Active Firmware Info (AFI), NVMe Base 2.0 §5.16.1.
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Afi(u8) {
        /// The slot (1-7) the running firmware came from.
        2:0 active: u8;
        /// The slot to activate at the next reset, 0 if not set.
        6:4 next: u8;
    }
}

/// The Firmware Slot Information log (LID 03h), NVMe Base 2.0 §5.16.1.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct FirmwareSlot {
    /// Active Firmware Info.
    pub afi: Afi,
    /// Reserved.
    pub rsvd1: [u8; 7],
    /// Firmware Revision for Slots 1-7 (FRS1-FRS7), ASCII; zero if the slot is empty.
    pub frs: [[u8; 8]; 7],
    /// Reserved.
    pub rsvd64: [u8; 448],
}

impl FirmwareSlot {
    /// The revision in slot `slot` (1-7) without padding, or `None` for an empty slot or an
    /// out-of-range number.
    pub fn revision(&self, slot: u8) -> Option<&[u8]> {
        let raw = self.frs.get(usize::from(slot).checked_sub(1)?)?;
        let s = trim_ascii_field(raw);
        (!s.is_empty()).then_some(s)
    }
}

// ---------------------------------------------------------------------------------------------
// Changed Namespace List.

/// The Changed Namespace List log (LID 04h), NVMe Base 2.0 §5.16.1: up to 1024 NSIDs whose
/// Identify data changed, zero-filled after the last.
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct ChangedNsList {
    /// The identifiers; the first zero ends the list.
    pub ids: [u32; 1024],
}

impl ChangedNsList {
    /// True when more than 1024 namespaces changed: the first entry is FFFFFFFFh and the host
    /// must rescan every namespace.
    pub fn overflowed(&self) -> bool {
        self.ids.first() == Some(&0xffff_ffff)
    }

    /// The changed identifiers up to the first zero (empty after an overflow).
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let skip = if self.overflowed() { self.ids.len() } else { 0 };
        self.ids
            .iter()
            .copied()
            .skip(skip)
            .take_while(|&id| id != 0)
    }
}

// ---------------------------------------------------------------------------------------------
// Commands Supported and Effects.

bitfield! {
    /// A Commands Supported and Effects entry, NVMe Base 2.0 §5.16.1, Figure "Commands
    /// Supported and Effects Data Structure".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Effect(u32) {
        /// Command Supported (CSUPP).
        0:0 csupp / with_csupp: bool;
        /// Logical Block Content Change (LBCC).
        1:1 lbcc / with_lbcc: bool;
        /// Namespace Capability Change (NCC).
        2:2 ncc / with_ncc: bool;
        /// Namespace Inventory Change (NIC).
        3:3 nic / with_nic: bool;
        /// Controller Capability Change (CCC).
        4:4 ccc / with_ccc: bool;
        /// Command Submission and Execution (CSE): 0 no restriction, 1 no other command to the
        /// same namespace, 2 no other command to any namespace.
        18:16 cse / with_cse: u8;
        /// UUID Selection Supported (USS).
        19:19 uss / with_uss: bool;
        /// Command Scope (CSP).
        31:20 csp / with_csp: u16;
    }
}

/// The Commands Supported and Effects log (LID 05h), NVMe Base 2.0 §5.16.1.
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct Effects {
    /// Admin Command Supported entries, indexed by opcode (ACS0-ACS255).
    pub acs: [Effect; 256],
    /// I/O Command Supported entries, indexed by opcode (IOCS0-IOCS255).
    pub iocs: [Effect; 256],
    /// Reserved.
    pub rsvd: [u8; 2048],
}

impl Effects {
    /// The entry for admin opcode `opcode`.
    pub fn admin(&self, opcode: u8) -> Effect {
        self.acs
            .get(usize::from(opcode))
            .copied()
            .unwrap_or_default()
    }

    /// The entry for I/O opcode `opcode`.
    pub fn io(&self, opcode: u8) -> Effect {
        self.iocs
            .get(usize::from(opcode))
            .copied()
            .unwrap_or_default()
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<U128>() == 16);
    assert!(size_of::<ErrorEntry>() == 64);
    assert!(offset_of!(ErrorEntry, sqid) == 8);
    assert!(offset_of!(ErrorEntry, cid) == 10);
    assert!(offset_of!(ErrorEntry, status) == 12);
    assert!(offset_of!(ErrorEntry, parameter_error_location) == 14);
    assert!(offset_of!(ErrorEntry, lba) == 16);
    assert!(offset_of!(ErrorEntry, nsid) == 24);
    assert!(offset_of!(ErrorEntry, vs) == 28);
    assert!(offset_of!(ErrorEntry, trtype) == 29);
    assert!(offset_of!(ErrorEntry, csi) == 32);
    assert!(offset_of!(ErrorEntry, ttsi) == 40);
    assert!(size_of::<Smart>() == 512);
    assert!(offset_of!(Smart, temperature) == 1);
    assert!(offset_of!(Smart, avail_spare) == 3);
    assert!(offset_of!(Smart, percent_used) == 5);
    assert!(offset_of!(Smart, data_units_read) == 32);
    assert!(offset_of!(Smart, data_units_written) == 48);
    assert!(offset_of!(Smart, host_reads) == 64);
    assert!(offset_of!(Smart, host_writes) == 80);
    assert!(offset_of!(Smart, ctrl_busy_time) == 96);
    assert!(offset_of!(Smart, power_cycles) == 112);
    assert!(offset_of!(Smart, power_on_hours) == 128);
    assert!(offset_of!(Smart, unsafe_shutdowns) == 144);
    assert!(offset_of!(Smart, media_errors) == 160);
    assert!(offset_of!(Smart, num_err_log_entries) == 176);
    assert!(offset_of!(Smart, warning_temp_time) == 192);
    assert!(offset_of!(Smart, critical_comp_time) == 196);
    assert!(offset_of!(Smart, temp_sensor) == 200);
    assert!(offset_of!(Smart, thm_temp1_trans_count) == 216);
    assert!(offset_of!(Smart, thm_temp2_total_time) == 228);
    assert!(size_of::<FirmwareSlot>() == 512);
    assert!(offset_of!(FirmwareSlot, frs) == 8);
    assert!(size_of::<ChangedNsList>() == 4096);
    assert!(size_of::<Effects>() == 4096);
    assert!(offset_of!(Effects, iocs) == 1024);
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion::spec::status::{generic, Sct};
    use zerocopy::{FromBytes, FromZeros};

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn put(b: &mut [u8], at: usize, v: &[u8]) {
        b[at..at + v.len()].copy_from_slice(v);
    }

    #[test]
    fn smart_log_bytes() {
        let mut p = Page([0; 4096]);
        let b = &mut p.0[..512];
        b[0] = 0b0000_0110; // temperature, reliability
        put(b, 1, &[0x40, 0x01]); // 320 K
        b[3] = 100;
        b[4] = 10;
        b[5] = 3;
        put(b, 32, &1_234_567u64.to_le_bytes());
        put(b, 48, &[0xff; 8]);
        put(b, 56, &[0x01, 0, 0, 0, 0, 0, 0, 0]); // 2^64 + 2^64 - 1 written
        put(b, 112, &42u64.to_le_bytes());
        put(b, 128, &9001u64.to_le_bytes());
        put(b, 144, &7u64.to_le_bytes());
        put(b, 192, &15u32.to_le_bytes());
        put(b, 196, &2u32.to_le_bytes());
        put(b, 200, &0x0140u16.to_le_bytes()); // sensor 1
        put(b, 214, &0x0150u16.to_le_bytes()); // sensor 8
        put(b, 216, &5u32.to_le_bytes());
        let s = Smart::ref_from_bytes(&p.0[..512]).unwrap();
        assert!(s.critical_warning.temperature() && s.critical_warning.reliability());
        assert!(!s.critical_warning.spare() && !s.critical_warning.read_only());
        assert_eq!(s.composite_temperature(), 0x0140);
        assert_eq!(
            (s.avail_spare, s.spare_thresh, s.percent_used),
            (100, 10, 3)
        );
        assert_eq!(s.data_units_read, U128::from_u64(1_234_567));
        assert_eq!(s.data_units_written.lo(), u64::MAX);
        assert_eq!(s.data_units_written.hi(), 1);
        assert_eq!(s.data_units_written.saturating_u64(), u64::MAX);
        assert_eq!(s.power_cycles.saturating_u64(), 42);
        assert_eq!(s.power_on_hours.lo(), 9001);
        assert_eq!(s.unsafe_shutdowns.lo(), 7);
        assert_eq!((s.warning_temp_time, s.critical_comp_time), (15, 2));
        assert_eq!(s.temperature_sensor(1), Some(0x0140));
        assert_eq!(s.temperature_sensor(8), Some(0x0150));
        assert_eq!(s.temperature_sensor(2), None);
        assert_eq!(s.temperature_sensor(0), None);
        assert_eq!(s.temperature_sensor(9), None);
        assert_eq!(s.thm_temp1_trans_count, 5);
        assert_eq!(
            std::format!("{}", s.critical_warning),
            " [temperature] [reliability degraded]"
        );
    }

    #[test]
    fn critical_warning_names() {
        use std::string::String;
        assert_eq!(std::format!("{}", CriticalWarning(0)), "");
        assert_eq!(
            std::format!("{}", CriticalWarning(0x3f)),
            " [spare below threshold] [temperature] [reliability degraded] [read-only] \
             [volatile memory backup failed] [persistent memory region unreliable]"
        );
        // The reserved bits 7:6 are not named.
        assert_eq!(
            std::format!("{}", CriticalWarning(0xc1)),
            " [spare below threshold]"
        );
        // Every value reads as the names of bits 0-5 in order.
        const NAMES: [&str; 6] = [
            "spare below threshold",
            "temperature",
            "reliability degraded",
            "read-only",
            "volatile memory backup failed",
            "persistent memory region unreliable",
        ];
        for v in 0..=u8::MAX {
            let mut want = String::new();
            for (i, n) in NAMES.iter().enumerate() {
                if v & (1 << i) != 0 {
                    want.push_str(&std::format!(" [{n}]"));
                }
            }
            assert_eq!(std::format!("{}", CriticalWarning(v)), want);
        }
    }

    #[test]
    fn error_entry_bytes() {
        let mut raw = [0u8; 64];
        put(&mut raw, 0, &3u64.to_le_bytes());
        put(&mut raw, 8, &1u16.to_le_bytes());
        put(&mut raw, 10, &0x0042u16.to_le_bytes());
        put(&mut raw, 12, &0x8005u16.to_le_bytes()); // phase 1, DNR, SC 02h
        put(&mut raw, 14, &0x0328u16.to_le_bytes()); // byte 40, bit 3
        put(&mut raw, 16, &0x1000u64.to_le_bytes());
        put(&mut raw, 24, &1u32.to_le_bytes());
        let e = ErrorEntry::read_from_bytes(&raw).unwrap();
        assert_eq!((e.error_count, e.sqid, e.cid), (3, 1, 0x42));
        assert!(e.status.p());
        let st = e.status.status();
        assert!(st.is(Sct::Generic, generic::INVALID_FIELD) && st.dnr());
        assert_eq!(e.parameter_error_location.byte(), 40);
        assert_eq!(e.parameter_error_location.bit(), 3);
        assert_eq!((e.lba, e.nsid), (0x1000, 1));
        assert!(ErrorEntry::read_from_bytes(&raw[..63]).is_err());
    }

    #[test]
    fn firmware_slot_bytes() {
        let mut p = Page([0; 4096]);
        p.0[0] = 0x21; // active 1, next 2
        put(&mut p.0, 8, b"1.0.0   ");
        put(&mut p.0, 16, b"2.0.1\0\0\0");
        let f = FirmwareSlot::ref_from_bytes(&p.0[..512]).unwrap();
        assert_eq!((f.afi.active(), f.afi.next()), (1, 2));
        assert_eq!(f.revision(1), Some(&b"1.0.0"[..]));
        assert_eq!(f.revision(2), Some(&b"2.0.1"[..]));
        assert_eq!(f.revision(3), None);
        assert_eq!(f.revision(0), None);
        assert_eq!(f.revision(8), None);
        assert_eq!(f.revision(255), None);
    }

    #[test]
    fn changed_ns_list() {
        let mut l = ChangedNsList::new_zeroed();
        l.ids[..2].copy_from_slice(&[3, 9]);
        assert!(!l.overflowed());
        assert_eq!(l.iter().collect::<std::vec::Vec<_>>(), [3, 9]);
        l.ids[0] = 0xffff_ffff;
        assert!(l.overflowed());
        assert_eq!(l.iter().count(), 0);
        let full = ChangedNsList::read_from_bytes(&[0x11; 4096]).unwrap();
        assert_eq!(full.iter().count(), 1024);
    }

    #[test]
    fn effects_log() {
        let mut p = Page([0; 4096]);
        // Format NVM (80h): supported, LBCC, NCC, NIC, CSE 2 (like QEMU reports).
        put(&mut p.0, 0x80 * 4, &0x0002_000fu32.to_le_bytes());
        // I/O Write (01h): supported, LBCC.
        put(&mut p.0, 1024 + 4, &0x0000_0003u32.to_le_bytes());
        let e = Effects::ref_from_bytes(&p.0).unwrap();
        let f = e.admin(0x80);
        assert!(f.csupp() && f.lbcc() && f.ncc() && f.nic() && !f.ccc());
        assert_eq!(f.cse(), 2);
        let w = e.io(0x01);
        assert!(w.csupp() && w.lbcc() && !w.ncc());
        assert!(!e.io(0xff).csupp());
        assert_eq!(Effect(0xfff8_0000).csp(), 0xfff);
        assert!(Effect(0xfff8_0000).uss());
    }

    #[test]
    fn log_ids() {
        assert_eq!(LogId::SMART.0, 2);
        assert!(LogId(0xc0).is_vendor_specific());
        assert!(!LogId::SANITIZE_STATUS.is_vendor_specific());
    }

    #[test]
    fn short_and_misaligned_buffers_are_refused() {
        let p = Page([0; 4096]);
        assert!(Smart::ref_from_bytes(&p.0[..511]).is_err());
        assert!(Smart::ref_from_bytes(&p.0[4..516]).is_err());
        assert!(Smart::read_from_bytes(&p.0[4..516]).is_ok());
        assert!(Effects::ref_from_bytes(&p.0[..4095]).is_err());
    }
}
