//! The completion Status Field, NVMe Base 2.0 §4.6.1.
//!
//! [`Status`] is the 15-bit field itself (CQE DW3 bits 31:17, or bits 15:1 of the upper
//! half-word); [`PhaseStatus`] is that half-word with the phase tag in bit 0, as it appears in
//! the CQE and in the Error Information log entry.

use super::bitfield::bitfield;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

bitfield! {
    /// The upper half of CQE DW3: phase tag and Status Field, NVMe Base 2.0 §4.6, Figure
    /// "Completion Queue Entry: DW 3". The same layout is the Status Information field of an
    /// Error Information log entry (§5.16.1).
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct PhaseStatus(u16) {
        /// Phase Tag (P): inverted by the controller on each pass through the queue.
        0:0 p / with_p: bool;
        /// The Status Field, see [`Status`].
        15:1 sf / with_sf: u16;
    }
}

impl PhaseStatus {
    /// The decoded Status Field.
    pub const fn status(self) -> Status {
        Status(self.sf())
    }
}

bitfield! {
    /// Status Field (SF), NVMe Base 2.0 §4.6.1, Figure "Completion Queue Entry: Status Field".
    ///
    /// The raw value is the 15-bit field shifted down to bit 0 (without the phase tag).
    pub struct Status(u16) {
        /// Status Code: meaning depends on [`Status::sct`].
        7:0 sc / with_sc: u8;
        /// Status Code Type, see [`Sct`].
        10:8 sct / with_sct: u8;
        /// Command Retry Delay: 0 retry at once, 1-3 select CRDT1-3 of Identify Controller.
        12:11 crd / with_crd: u8;
        /// More: further information is in the Error Information log page.
        13:13 more / with_more: bool;
        /// Do Not Retry: the same command is expected to fail again if resubmitted.
        14:14 dnr / with_dnr: bool;
    }
}

/// Status Code Type, NVMe Base 2.0 §4.6.1.1, Figure "Status Code – Status Code Type Values".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sct {
    /// Generic Command Status (0h), codes in [`generic`].
    Generic,
    /// Command Specific Status (1h), codes in [`cmd`].
    CommandSpecific,
    /// Media and Data Integrity Errors (2h), codes in [`media`].
    MediaDataIntegrity,
    /// Path Related Status (3h), codes in [`path`].
    Path,
    /// A reserved type (4h-6h), carried as its raw value.
    Reserved(u8),
    /// Vendor Specific (7h).
    Vendor,
}

impl Sct {
    /// Decodes the three-bit field (taken modulo 8); every value decodes.
    pub const fn from_bits(v: u8) -> Self {
        match v % 8 {
            0 => Self::Generic,
            1 => Self::CommandSpecific,
            2 => Self::MediaDataIntegrity,
            3 => Self::Path,
            7 => Self::Vendor,
            r => Self::Reserved(r),
        }
    }

    /// The three-bit encoding.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Generic => 0,
            Self::CommandSpecific => 1,
            Self::MediaDataIntegrity => 2,
            Self::Path => 3,
            Self::Reserved(r) => r,
            Self::Vendor => 7,
        }
    }
}

/// Generic Command Status values (SCT 0h), NVMe Base 2.0 §4.6.1.2.1 and, from 80h, the
/// NVM Command Set's generic values (NVM Cmd Set 1.0 §3.4.1.1).
pub mod generic {
    /// Successful Completion.
    pub const SUCCESS: u8 = 0x00;
    /// Invalid Command Opcode.
    pub const INVALID_OPCODE: u8 = 0x01;
    /// Invalid Field in Command.
    pub const INVALID_FIELD: u8 = 0x02;
    /// Command ID Conflict.
    pub const CID_CONFLICT: u8 = 0x03;
    /// Data Transfer Error.
    pub const DATA_TRANSFER_ERROR: u8 = 0x04;
    /// Commands Aborted due to Power Loss Notification.
    pub const POWER_LOSS: u8 = 0x05;
    /// Internal Error.
    pub const INTERNAL: u8 = 0x06;
    /// Command Abort Requested.
    pub const ABORT_REQUESTED: u8 = 0x07;
    /// Command Aborted due to SQ Deletion.
    pub const ABORTED_SQ_DELETION: u8 = 0x08;
    /// Command Aborted due to Failed Fused Command.
    pub const ABORTED_FUSED_FAIL: u8 = 0x09;
    /// Command Aborted due to Missing Fused Command.
    pub const ABORTED_FUSED_MISSING: u8 = 0x0a;
    /// Invalid Namespace or Format.
    pub const INVALID_NS: u8 = 0x0b;
    /// Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: u8 = 0x0c;
    /// Invalid SGL Segment Descriptor.
    pub const INVALID_SGL_SEGMENT: u8 = 0x0d;
    /// Invalid Number of SGL Descriptors.
    pub const INVALID_SGL_COUNT: u8 = 0x0e;
    /// Data SGL Length Invalid.
    pub const SGL_DATA_LENGTH_INVALID: u8 = 0x0f;
    /// Metadata SGL Length Invalid.
    pub const SGL_METADATA_LENGTH_INVALID: u8 = 0x10;
    /// SGL Descriptor Type Invalid.
    pub const SGL_TYPE_INVALID: u8 = 0x11;
    /// Invalid Use of Controller Memory Buffer.
    pub const INVALID_CMB_USE: u8 = 0x12;
    /// PRP Offset Invalid.
    pub const PRP_OFFSET_INVALID: u8 = 0x13;
    /// Atomic Write Unit Exceeded.
    pub const ATOMIC_WRITE_UNIT_EXCEEDED: u8 = 0x14;
    /// Operation Denied.
    pub const OPERATION_DENIED: u8 = 0x15;
    /// SGL Offset Invalid.
    pub const SGL_OFFSET_INVALID: u8 = 0x16;
    /// Host Identifier Inconsistent Format.
    pub const HOST_ID_INCONSISTENT: u8 = 0x18;
    /// Keep Alive Timer Expired.
    pub const KEEP_ALIVE_EXPIRED: u8 = 0x19;
    /// Keep Alive Timeout Invalid.
    pub const KEEP_ALIVE_INVALID: u8 = 0x1a;
    /// Command Aborted due to Preempt and Abort.
    pub const ABORTED_PREEMPT: u8 = 0x1b;
    /// Sanitize Failed.
    pub const SANITIZE_FAILED: u8 = 0x1c;
    /// Sanitize In Progress.
    pub const SANITIZE_IN_PROGRESS: u8 = 0x1d;
    /// SGL Data Block Granularity Invalid.
    pub const SGL_GRANULARITY_INVALID: u8 = 0x1e;
    /// Command Not Supported for Queue in CMB.
    pub const NOT_SUPPORTED_FOR_CMB_QUEUE: u8 = 0x1f;
    /// Namespace is Write Protected.
    pub const NS_WRITE_PROTECTED: u8 = 0x20;
    /// Command Interrupted.
    pub const COMMAND_INTERRUPTED: u8 = 0x21;
    /// Transient Transport Error.
    pub const TRANSIENT_TRANSPORT: u8 = 0x22;
    /// Command Prohibited by Command and Feature Lockdown.
    pub const PROHIBITED_BY_LOCKDOWN: u8 = 0x23;
    /// Admin Command Media Not Ready.
    pub const ADMIN_MEDIA_NOT_READY: u8 = 0x24;
    /// Invalid I/O Command Set (as established host drivers name and place it).
    pub const INVALID_IO_COMMAND_SET: u8 = 0x2c;
    /// LBA Out of Range.
    pub const LBA_OUT_OF_RANGE: u8 = 0x80;
    /// Capacity Exceeded.
    pub const CAPACITY_EXCEEDED: u8 = 0x81;
    /// Namespace Not Ready.
    pub const NS_NOT_READY: u8 = 0x82;
    /// Reservation Conflict.
    pub const RESERVATION_CONFLICT: u8 = 0x83;
    /// Format In Progress.
    pub const FORMAT_IN_PROGRESS: u8 = 0x84;
}

/// Command Specific Status values (SCT 1h), NVMe Base 2.0 §4.6.1.2.2 and, from 80h, the NVM
/// Command Set's values (NVM Cmd Set 1.0 §3.4.1.2).
pub mod cmd {
    /// Completion Queue Invalid (Create I/O SQ).
    pub const CQ_INVALID: u8 = 0x00;
    /// Invalid Queue Identifier.
    pub const INVALID_QID: u8 = 0x01;
    /// Invalid Queue Size.
    pub const INVALID_QUEUE_SIZE: u8 = 0x02;
    /// Abort Command Limit Exceeded.
    pub const ABORT_LIMIT: u8 = 0x03;
    /// Asynchronous Event Request Limit Exceeded.
    pub const AER_LIMIT: u8 = 0x05;
    /// Invalid Firmware Slot.
    pub const INVALID_FIRMWARE_SLOT: u8 = 0x06;
    /// Invalid Firmware Image.
    pub const INVALID_FIRMWARE_IMAGE: u8 = 0x07;
    /// Invalid Interrupt Vector.
    pub const INVALID_VECTOR: u8 = 0x08;
    /// Invalid Log Page.
    pub const INVALID_LOG_PAGE: u8 = 0x09;
    /// Invalid Format.
    pub const INVALID_FORMAT: u8 = 0x0a;
    /// Firmware Activation Requires Conventional Reset.
    pub const FW_NEEDS_CONVENTIONAL_RESET: u8 = 0x0b;
    /// Invalid Queue Deletion.
    pub const INVALID_QUEUE_DELETION: u8 = 0x0c;
    /// Feature Identifier Not Saveable.
    pub const FEATURE_NOT_SAVEABLE: u8 = 0x0d;
    /// Feature Not Changeable.
    pub const FEATURE_NOT_CHANGEABLE: u8 = 0x0e;
    /// Feature Not Namespace Specific.
    pub const FEATURE_NOT_PER_NS: u8 = 0x0f;
    /// Firmware Activation Requires NVM Subsystem Reset.
    pub const FW_NEEDS_SUBSYSTEM_RESET: u8 = 0x10;
    /// Firmware Activation Requires Controller Level Reset.
    pub const FW_NEEDS_RESET: u8 = 0x11;
    /// Firmware Activation Requires Maximum Time Violation.
    pub const FW_NEEDS_MAX_TIME: u8 = 0x12;
    /// Firmware Activation Prohibited.
    pub const FW_ACTIVATION_PROHIBITED: u8 = 0x13;
    /// Overlapping Range.
    pub const OVERLAPPING_RANGE: u8 = 0x14;
    /// Namespace Insufficient Capacity.
    pub const NS_INSUFFICIENT_CAPACITY: u8 = 0x15;
    /// Namespace Identifier Unavailable.
    pub const NSID_UNAVAILABLE: u8 = 0x16;
    /// Namespace Already Attached.
    pub const NS_ALREADY_ATTACHED: u8 = 0x18;
    /// Namespace Is Private.
    pub const NS_IS_PRIVATE: u8 = 0x19;
    /// Namespace Not Attached.
    pub const NS_NOT_ATTACHED: u8 = 0x1a;
    /// Thin Provisioning Not Supported.
    pub const THIN_PROVISIONING_NOT_SUPPORTED: u8 = 0x1b;
    /// Controller List Invalid.
    pub const CONTROLLER_LIST_INVALID: u8 = 0x1c;
    /// Device Self-test In Progress.
    pub const SELF_TEST_IN_PROGRESS: u8 = 0x1d;
    /// Boot Partition Write Prohibited.
    pub const BOOT_PARTITION_WRITE_PROHIBITED: u8 = 0x1e;
    /// Invalid Controller Identifier.
    pub const INVALID_CONTROLLER_ID: u8 = 0x1f;
    /// Invalid Secondary Controller State.
    pub const INVALID_SECONDARY_STATE: u8 = 0x20;
    /// Invalid Number of Controller Resources.
    pub const INVALID_RESOURCE_COUNT: u8 = 0x21;
    /// Invalid Resource Identifier.
    pub const INVALID_RESOURCE_ID: u8 = 0x22;
    /// Sanitize Prohibited While Persistent Memory Region is Enabled.
    pub const SANITIZE_PROHIBITED_PMR: u8 = 0x23;
    /// ANA Group Identifier Invalid.
    pub const ANA_GROUP_ID_INVALID: u8 = 0x24;
    /// ANA Attach Failed.
    pub const ANA_ATTACH_FAILED: u8 = 0x25;
    /// Insufficient Capacity.
    pub const INSUFFICIENT_CAPACITY: u8 = 0x26;
    /// Namespace Attachment Limit Exceeded.
    pub const NS_ATTACHMENT_LIMIT: u8 = 0x27;
    /// Prohibition of Command Execution Not Supported.
    pub const PROHIBITION_NOT_SUPPORTED: u8 = 0x28;
    /// I/O Command Set Not Supported.
    pub const IO_COMMAND_SET_NOT_SUPPORTED: u8 = 0x29;
    /// I/O Command Set Not Enabled.
    pub const IO_COMMAND_SET_NOT_ENABLED: u8 = 0x2a;
    /// I/O Command Set Combination Rejected.
    pub const IO_COMMAND_SET_COMBINATION_REJECTED: u8 = 0x2b;
    /// Invalid I/O Command Set.
    pub const INVALID_IO_COMMAND_SET: u8 = 0x2c;
    /// Identifier Unavailable.
    pub const IDENTIFIER_UNAVAILABLE: u8 = 0x2d;
    /// Conflicting Attributes (NVM: Dataset Management, Read, Write).
    pub const CONFLICTING_ATTRIBUTES: u8 = 0x80;
    /// Invalid Protection Information.
    pub const INVALID_PROTECTION_INFO: u8 = 0x81;
    /// Attempted Write to Read Only Range.
    pub const WRITE_TO_READ_ONLY_RANGE: u8 = 0x82;
    /// Command Size Limit Exceeded.
    pub const COMMAND_SIZE_LIMIT_EXCEEDED: u8 = 0x83;
}

/// Media and Data Integrity Errors (SCT 2h), NVM Cmd Set 1.0 §3.4.1.3.
pub mod media {
    /// Write Fault.
    pub const WRITE_FAULT: u8 = 0x80;
    /// Unrecovered Read Error.
    pub const UNRECOVERED_READ_ERROR: u8 = 0x81;
    /// End-to-end Guard Check Error.
    pub const GUARD_CHECK: u8 = 0x82;
    /// End-to-end Application Tag Check Error.
    pub const APPTAG_CHECK: u8 = 0x83;
    /// End-to-end Reference Tag Check Error.
    pub const REFTAG_CHECK: u8 = 0x84;
    /// Compare Failure.
    pub const COMPARE_FAILURE: u8 = 0x85;
    /// Access Denied.
    pub const ACCESS_DENIED: u8 = 0x86;
    /// Deallocated or Unwritten Logical Block.
    pub const DEALLOCATED_OR_UNWRITTEN: u8 = 0x87;
    /// End-to-End Storage Tag Check Error.
    pub const STORAGE_TAG_CHECK: u8 = 0x88;
}

/// Path Related Status values (SCT 3h), NVMe Base 2.0 §4.6.1.2.4.
pub mod path {
    /// Internal Path Error.
    pub const INTERNAL_PATH_ERROR: u8 = 0x00;
    /// Asymmetric Access Persistent Loss.
    pub const ANA_PERSISTENT_LOSS: u8 = 0x01;
    /// Asymmetric Access Inaccessible.
    pub const ANA_INACCESSIBLE: u8 = 0x02;
    /// Asymmetric Access Transition.
    pub const ANA_TRANSITION: u8 = 0x03;
    /// Controller Pathing Error.
    pub const CONTROLLER_PATHING_ERROR: u8 = 0x60;
    /// Host Pathing Error.
    pub const HOST_PATHING_ERROR: u8 = 0x70;
    /// Command Aborted By Host.
    pub const ABORTED_BY_HOST: u8 = 0x71;
}

impl Status {
    /// Successful Completion, with no other bits set.
    pub const SUCCESS: Self = Self(0);

    /// Command Aborted By Host (SCT 3h Path Related Status, SC 71h), NVMe Base 2.0
    /// §4.6.1.2.4, with CRD, More and DNR clear: the status a host driver reports for a
    /// command it ended itself (for example one a controller reset interrupted).
    pub const ABORTED_BY_HOST: Self = Self::new(Sct::Path, path::ABORTED_BY_HOST);

    /// A status of the given type and code, with CRD, More and DNR clear.
    pub const fn new(sct: Sct, sc: u8) -> Self {
        Self(0).with_sct(sct.bits()).with_sc(sc)
    }

    /// The decoded Status Code Type.
    pub const fn kind(self) -> Sct {
        Sct::from_bits(self.sct())
    }

    /// True for Successful Completion (SCT 0h, SC 0h), whatever CRD, More and DNR say.
    pub const fn is_success(self) -> bool {
        self.sct() == 0 && self.sc() == generic::SUCCESS
    }

    /// True when the status has the given type and code.
    pub const fn is(self, sct: Sct, sc: u8) -> bool {
        self.sct() == sct.bits() && self.sc() == sc
    }

    /// The name established host drivers print for this status, or `None` for codes it does not
    /// know (vendor specific, reserved).
    pub const fn name(self) -> Option<&'static str> {
        match self.kind() {
            Sct::Generic => generic_name(self.sc()),
            Sct::CommandSpecific => cmd_name(self.sc()),
            Sct::MediaDataIntegrity => media_name(self.sc()),
            Sct::Path => path_name(self.sc()),
            Sct::Reserved(_) | Sct::Vendor => None,
        }
    }
}

const fn generic_name(sc: u8) -> Option<&'static str> {
    use generic::*;
    Some(match sc {
        SUCCESS => "Success",
        INVALID_OPCODE => "Invalid Command Opcode",
        INVALID_FIELD => "Invalid Field in Command",
        CID_CONFLICT => "Command ID Conflict",
        DATA_TRANSFER_ERROR => "Data Transfer Error",
        POWER_LOSS => "Commands Aborted due to Power Loss Notification",
        INTERNAL => "Internal Error",
        ABORT_REQUESTED => "Command Abort Requested",
        ABORTED_SQ_DELETION => "Command Aborted due to SQ Deletion",
        ABORTED_FUSED_FAIL => "Command Aborted due to Failed Fused Command",
        ABORTED_FUSED_MISSING => "Command Aborted due to Missing Fused Command",
        INVALID_NS => "Invalid Namespace or Format",
        COMMAND_SEQUENCE_ERROR => "Command Sequence Error",
        INVALID_SGL_SEGMENT => "Invalid SGL Segment Descriptor",
        INVALID_SGL_COUNT => "Invalid Number of SGL Descriptors",
        SGL_DATA_LENGTH_INVALID => "Data SGL Length Invalid",
        SGL_METADATA_LENGTH_INVALID => "Metadata SGL Length Invalid",
        SGL_TYPE_INVALID => "SGL Descriptor Type Invalid",
        INVALID_CMB_USE => "Invalid Use of Controller Memory Buffer",
        PRP_OFFSET_INVALID => "PRP Offset Invalid",
        ATOMIC_WRITE_UNIT_EXCEEDED => "Atomic Write Unit Exceeded",
        OPERATION_DENIED => "Operation Denied",
        SGL_OFFSET_INVALID => "SGL Offset Invalid",
        HOST_ID_INCONSISTENT => "Host Identifier Inconsistent Format",
        KEEP_ALIVE_EXPIRED => "Keep Alive Timer Expired",
        KEEP_ALIVE_INVALID => "Keep Alive Timeout Invalid",
        ABORTED_PREEMPT => "Command Aborted due to Preempt and Abort",
        SANITIZE_FAILED => "Sanitize Failed",
        SANITIZE_IN_PROGRESS => "Sanitize In Progress",
        SGL_GRANULARITY_INVALID => "SGL Data Block Granularity Invalid",
        NOT_SUPPORTED_FOR_CMB_QUEUE => "Command Not Supported for Queue in CMB",
        NS_WRITE_PROTECTED => "Namespace is Write Protected",
        COMMAND_INTERRUPTED => "Command Interrupted",
        TRANSIENT_TRANSPORT => "Transient Transport Error",
        PROHIBITED_BY_LOCKDOWN => "Command Prohibited by Command and Feature Lockdown",
        ADMIN_MEDIA_NOT_READY => "Admin Command Media Not Ready",
        INVALID_IO_COMMAND_SET => "Invalid IO Command Set",
        LBA_OUT_OF_RANGE => "LBA Out of Range",
        CAPACITY_EXCEEDED => "Capacity Exceeded",
        NS_NOT_READY => "Namespace Not Ready",
        RESERVATION_CONFLICT => "Reservation Conflict",
        FORMAT_IN_PROGRESS => "Format In Progress",
        _ => return None,
    })
}

const fn cmd_name(sc: u8) -> Option<&'static str> {
    use cmd::*;
    Some(match sc {
        CQ_INVALID => "Completion Queue Invalid",
        INVALID_QID => "Invalid Queue Identifier",
        INVALID_QUEUE_SIZE => "Invalid Queue Size",
        ABORT_LIMIT => "Abort Command Limit Exceeded",
        AER_LIMIT => "Asynchronous Event Request Limit Exceeded",
        INVALID_FIRMWARE_SLOT => "Invalid Firmware Slot",
        INVALID_FIRMWARE_IMAGE => "Invalid Firmware Image",
        INVALID_VECTOR => "Invalid Interrupt Vector",
        INVALID_LOG_PAGE => "Invalid Log Page",
        INVALID_FORMAT => "Invalid Format",
        FW_NEEDS_CONVENTIONAL_RESET => "Firmware Activation Requires Conventional Reset",
        INVALID_QUEUE_DELETION => "Invalid Queue Deletion",
        FEATURE_NOT_SAVEABLE => "Feature Identifier Not Saveable",
        FEATURE_NOT_CHANGEABLE => "Feature Not Changeable",
        FEATURE_NOT_PER_NS => "Feature Not Namespace Specific",
        FW_NEEDS_SUBSYSTEM_RESET => "Firmware Activation Requires NVM Subsystem Reset",
        FW_NEEDS_RESET => "Firmware Activation Requires Reset",
        FW_NEEDS_MAX_TIME => "Firmware Activation Requires Maximum Time Violation",
        FW_ACTIVATION_PROHIBITED => "Firmware Activation Prohibited",
        OVERLAPPING_RANGE => "Overlapping Range",
        NS_INSUFFICIENT_CAPACITY => "Namespace Insufficient Capacity",
        NSID_UNAVAILABLE => "Namespace Identifier Unavailable",
        NS_ALREADY_ATTACHED => "Namespace Already Attached",
        NS_IS_PRIVATE => "Namespace Is Private",
        NS_NOT_ATTACHED => "Namespace Not Attached",
        THIN_PROVISIONING_NOT_SUPPORTED => "Thin Provisioning Not Supported",
        CONTROLLER_LIST_INVALID => "Controller List Invalid",
        SELF_TEST_IN_PROGRESS => "Device Self-test In Progress",
        BOOT_PARTITION_WRITE_PROHIBITED => "Boot Partition Write Prohibited",
        INVALID_CONTROLLER_ID => "Invalid Controller Identifier",
        INVALID_SECONDARY_STATE => "Invalid Secondary Controller State",
        INVALID_RESOURCE_COUNT => "Invalid Number of Controller Resources",
        INVALID_RESOURCE_ID => "Invalid Resource Identifier",
        SANITIZE_PROHIBITED_PMR => "Sanitize Prohibited",
        ANA_GROUP_ID_INVALID => "ANA Group Identifier Invalid",
        ANA_ATTACH_FAILED => "ANA Attach Failed",
        INSUFFICIENT_CAPACITY => "Insufficient Capacity",
        NS_ATTACHMENT_LIMIT => "Namespace Attachment Limit Exceeded",
        PROHIBITION_NOT_SUPPORTED => "Prohibition of Command Execution Not Supported",
        IO_COMMAND_SET_NOT_SUPPORTED => "I/O Command Set Not Supported",
        IO_COMMAND_SET_NOT_ENABLED => "I/O Command Set Not Enabled",
        IO_COMMAND_SET_COMBINATION_REJECTED => "I/O Command Set Combination Rejected",
        INVALID_IO_COMMAND_SET => "Invalid I/O Command Set",
        IDENTIFIER_UNAVAILABLE => "Identifier Unavailable",
        CONFLICTING_ATTRIBUTES => "Conflicting Attributes",
        INVALID_PROTECTION_INFO => "Invalid Protection Information",
        WRITE_TO_READ_ONLY_RANGE => "Attempted Write to Read Only Range",
        COMMAND_SIZE_LIMIT_EXCEEDED => "Command Size Limit Exceeded",
        _ => return None,
    })
}

const fn media_name(sc: u8) -> Option<&'static str> {
    use media::*;
    Some(match sc {
        WRITE_FAULT => "Write Fault",
        UNRECOVERED_READ_ERROR => "Unrecovered Read Error",
        GUARD_CHECK => "End-to-end Guard Check Error",
        APPTAG_CHECK => "End-to-end Application Tag Check Error",
        REFTAG_CHECK => "End-to-end Reference Tag Check Error",
        COMPARE_FAILURE => "Compare Failure",
        ACCESS_DENIED => "Access Denied",
        DEALLOCATED_OR_UNWRITTEN => "Deallocated or Unwritten Logical Block",
        STORAGE_TAG_CHECK => "End-to-End Storage Tag Check Error",
        _ => return None,
    })
}

const fn path_name(sc: u8) -> Option<&'static str> {
    use path::*;
    Some(match sc {
        INTERNAL_PATH_ERROR => "Internal Pathing Error",
        ANA_PERSISTENT_LOSS => "Asymmetric Access Persistent Loss",
        ANA_INACCESSIBLE => "Asymmetric Access Inaccessible",
        ANA_TRANSITION => "Asymmetric Access Transition",
        CONTROLLER_PATHING_ERROR => "Controller Pathing Error",
        HOST_PATHING_ERROR => "Host Pathing Error",
        ABORTED_BY_HOST => "Host Aborted Command",
        _ => return None,
    })
}

/// Formats as established host drivers log a failed command's status:
/// `Invalid Field in Command (sct 0x0 / sc 0x2) DNR`, with `MORE` and `DNR` when set and
/// `Unknown` for codes without a name.
impl core::fmt::Display for Status {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (sct {:#x} / sc {:#x})",
            self.name().unwrap_or("Unknown"),
            self.sct(),
            self.sc()
        )?;
        if self.more() {
            f.write_str(" MORE")?;
        }
        if self.dnr() {
            f.write_str(" DNR")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn decodes_cqe_status_halfword() {
        // DW3 = 0x8004_0007: CID 7, phase 0, SF = 0x4002 -> DNR, SCT 0, SC 2.
        let dw3: u32 = 0x8004_0007;
        let upper = dw3.to_le_bytes();
        let ps = PhaseStatus(u16::from_le_bytes([upper[2], upper[3]]));
        assert!(!ps.p());
        let st = ps.status();
        assert_eq!(st.sc(), generic::INVALID_FIELD);
        assert_eq!(st.kind(), Sct::Generic);
        assert!(st.dnr());
        assert!(!st.more());
        assert_eq!(st.crd(), 0);
        assert_eq!(
            st.to_string(),
            "Invalid Field in Command (sct 0x0 / sc 0x2) DNR"
        );
    }

    #[test]
    fn success_with_phase() {
        let ps = PhaseStatus(0x0001);
        assert!(ps.p());
        assert!(ps.status().is_success());
        assert_eq!(ps.status(), Status::SUCCESS);
        assert_eq!(ps.status().to_string(), "Success (sct 0x0 / sc 0x0)");
    }

    #[test]
    fn all_fields_in_place() {
        // SC 0x81, SCT 2, CRD 3, More, DNR; phase 1.
        let st = Status(0)
            .with_sc(0x81)
            .with_sct(2)
            .with_crd(3)
            .with_more(true)
            .with_dnr(true);
        assert_eq!(st.0, 0x7a81);
        let ps = PhaseStatus(0).with_p(true).with_sf(st.0);
        assert_eq!(ps.0, 0xf503);
        assert_eq!(ps.status(), st);
        assert_eq!(st.kind(), Sct::MediaDataIntegrity);
        assert!(st.is(Sct::MediaDataIntegrity, media::UNRECOVERED_READ_ERROR));
        assert_eq!(
            st.to_string(),
            "Unrecovered Read Error (sct 0x2 / sc 0x81) MORE DNR"
        );
    }

    #[test]
    fn command_specific_and_path_names() {
        let st = Status::new(Sct::CommandSpecific, cmd::INVALID_QUEUE_SIZE);
        assert_eq!(st.name(), Some("Invalid Queue Size"));
        assert!(!st.is_success());
        let st = Status::new(Sct::Path, path::ANA_TRANSITION);
        assert_eq!(
            st.to_string(),
            "Asymmetric Access Transition (sct 0x3 / sc 0x3)"
        );
        let st = Status::new(Sct::Generic, generic::LBA_OUT_OF_RANGE);
        assert_eq!(st.name(), Some("LBA Out of Range"));
    }

    #[test]
    fn aborted_by_host_constant() {
        // SCT 3h in bits 10:8, SC 71h in bits 7:0 of the (phase-less) Status Field.
        assert_eq!(Status::ABORTED_BY_HOST.0, 0x371);
        assert_eq!(Status::ABORTED_BY_HOST.kind(), Sct::Path);
        assert!(Status::ABORTED_BY_HOST.is(Sct::Path, path::ABORTED_BY_HOST));
        assert!(!Status::ABORTED_BY_HOST.dnr() && !Status::ABORTED_BY_HOST.more());
        assert_eq!(Status(0x371), Status::ABORTED_BY_HOST);
        assert_eq!(
            Status::ABORTED_BY_HOST.to_string(),
            "Host Aborted Command (sct 0x3 / sc 0x71)"
        );
    }

    #[test]
    fn unknown_and_vendor_codes_format_without_panic() {
        assert_eq!(
            Status::new(Sct::Vendor, 0xc3).to_string(),
            "Unknown (sct 0x7 / sc 0xc3)"
        );
        assert_eq!(Status::new(Sct::Generic, 0x7f).name(), None);
        assert_eq!(Sct::from_bits(5), Sct::Reserved(5));
        // Every possible 15-bit field decodes and formats.
        for raw in 0..=0x7fffu16 {
            let st = Status(raw);
            let _ = st.name();
            assert_eq!(Sct::from_bits(st.sct()).bits(), st.sct());
        }
        let _ = Status(0x7fff).to_string();
    }
}
