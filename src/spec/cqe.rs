//! The Completion Queue Entry, NVMe Base 2.0 §4.6, and the command specific results the
//! driver decodes from it.

use super::bitfield::bitfield;
use super::opcode::wire_enum;
use super::sqe::Qword;
use super::status::{PhaseStatus, Status};
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// A Completion Queue Entry, NVMe Base 2.0 §4.6, Figure "Common Completion Queue Entry
/// Layout".
///
/// Multi-byte fields are little-endian on the wire and plain integers here (the driver targets
/// little-endian hosts). Everything in a CQE comes from the device: the reaper checks the phase
/// tag first, then validates `sqid` and `cid` before trusting the rest.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Cqe {
    /// DW0: command specific result.
    pub dw0: u32,
    /// DW1: command specific result (reserved for most commands).
    pub dw1: u32,
    /// SQ Head Pointer (SQHD): how far the controller has consumed the submission queue.
    pub sqhd: u16,
    /// SQ Identifier (SQID) of the command.
    pub sqid: u16,
    /// Command Identifier (CID) of the command.
    pub cid: u16,
    /// Phase tag and Status Field.
    pub status: PhaseStatus,
}

/// Size of a completion queue entry in bytes (CC.IOCQES = 4).
pub const CQE_SIZE: usize = 16;

/// Byte offset of the phase tag and Status Field ([`PhaseStatus`], the upper half of DW3) in
/// a completion queue entry, NVMe Base 2.0 §4.6: what a reaper reads first, to see whether
/// the entry is new.
pub const CQE_STATUS_OFFSET: usize = core::mem::offset_of!(Cqe, status);

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Cqe>() == CQE_SIZE);
    assert!(offset_of!(Cqe, dw0) == 0);
    assert!(offset_of!(Cqe, dw1) == 4);
    assert!(offset_of!(Cqe, sqhd) == 8);
    assert!(offset_of!(Cqe, sqid) == 10);
    assert!(offset_of!(Cqe, cid) == 12);
    assert!(offset_of!(Cqe, status) == 14);
    assert!(CQE_STATUS_OFFSET + size_of::<PhaseStatus>() == CQE_SIZE);
};

impl Cqe {
    /// The Phase Tag (P).
    pub const fn phase(&self) -> bool {
        self.status.p()
    }

    /// The Status Field.
    pub const fn status(&self) -> Status {
        self.status.status()
    }

    /// DW0 and DW1 as one 64-bit result (DW0 low).
    pub const fn result64(&self) -> u64 {
        Qword::from_dwords(self.dw0, self.dw1).0
    }
}

bitfield! {
    /// Abort completion DW0, NVMe Base 2.0 §5.1.1, Figure "Abort – Completion Queue Entry
    /// Dword 0".
    pub struct AbortResult(u32) {
        /// Bit 0: set when the controller did not abort the command; clear when it did.
        0:0 not_aborted / with_not_aborted: bool;
    }
}

impl AbortResult {
    /// True when the completion says the command was aborted (bit 0 clear).
    pub const fn aborted(self) -> bool {
        !self.not_aborted()
    }
}

wire_enum! {
    /// Asynchronous Event Type, NVMe Base 2.0 §5.2, Figure "Asynchronous Event Request –
    /// Completion Queue Entry Dword 0".
    pub enum AsyncEventType {
        /// Error status; information is in [`error_info`].
        Error = 0 => "Error status",
        /// SMART / Health status; information is in [`smart_info`].
        SmartHealth = 1 => "SMART / Health status",
        /// Notice; information is in [`notice_info`].
        Notice = 2 => "Notice",
        /// I/O Command Set specific status.
        IoCommandSet = 6 => "I/O Command specific status",
        /// Vendor specific.
        VendorSpecific = 7 => "Vendor specific",
    }
}

bitfield! {
    /// Asynchronous Event Request completion DW0, NVMe Base 2.0 §5.2.
    pub struct AsyncEvent(u32) {
        /// Asynchronous Event Type (AET), see [`AsyncEventType`].
        2:0 aet: u8;
        /// Asynchronous Event Information (AEI), meaning depends on the type.
        15:8 aei: u8;
        /// Log Page Identifier to read (with RAE clear) to clear the event.
        23:16 lid: u8;
    }
}

impl AsyncEvent {
    /// The decoded event type, or the raw value when it is reserved.
    pub const fn event_type(self) -> Result<AsyncEventType, u8> {
        match AsyncEventType::from_raw(self.aet()) {
            Some(t) => Ok(t),
            None => Err(self.aet()),
        }
    }
}

/// Asynchronous Event Information for [`AsyncEventType::Error`], NVMe Base 2.0 §5.2.
pub mod error_info {
    /// Write to Invalid Doorbell Register.
    pub const INVALID_DOORBELL: u8 = 0x00;
    /// Invalid Doorbell Write Value.
    pub const INVALID_DOORBELL_VALUE: u8 = 0x01;
    /// Diagnostic Failure.
    pub const DIAGNOSTIC_FAILURE: u8 = 0x02;
    /// Persistent Internal Error.
    pub const PERSISTENT_INTERNAL: u8 = 0x03;
    /// Transient Internal Error.
    pub const TRANSIENT_INTERNAL: u8 = 0x04;
    /// Firmware Image Load Error.
    pub const FIRMWARE_IMAGE_LOAD: u8 = 0x05;
}

/// Asynchronous Event Information for [`AsyncEventType::SmartHealth`], NVMe Base 2.0 §5.2.
pub mod smart_info {
    /// NVM Subsystem Reliability.
    pub const RELIABILITY: u8 = 0x00;
    /// Temperature Threshold.
    pub const TEMPERATURE: u8 = 0x01;
    /// Spare Below Threshold.
    pub const SPARE: u8 = 0x02;
}

/// Asynchronous Event Information for [`AsyncEventType::Notice`], NVMe Base 2.0 §5.2.
pub mod notice_info {
    /// Attached Namespace Attribute Changed: read the Changed Namespace List log.
    pub const NS_ATTRIBUTE_CHANGED: u8 = 0x00;
    /// Firmware Activation Starting.
    pub const FIRMWARE_ACTIVATION_STARTING: u8 = 0x01;
    /// Telemetry Log Changed.
    pub const TELEMETRY_LOG_CHANGED: u8 = 0x02;
    /// Asymmetric Namespace Access Change.
    pub const ANA_CHANGE: u8 = 0x03;
    /// Predictable Latency Event Aggregate Log Change.
    pub const PLE_AGGREGATE_CHANGE: u8 = 0x04;
    /// LBA Status Information Alert.
    pub const LBA_STATUS_ALERT: u8 = 0x05;
    /// Endurance Group Event Aggregate Log Page Change.
    pub const EG_AGGREGATE_CHANGE: u8 = 0x06;
    /// Discovery Log Page Change (fabrics).
    pub const DISCOVERY_LOG_CHANGE: u8 = 0xf0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion::spec::status::{generic, Sct};
    use zerocopy::{FromBytes, IntoBytes};

    #[test]
    fn decodes_successful_completion_bytes() {
        // Identify completion from the admin queue: DW0 0, SQHD 5, SQID 0, CID 0x1234,
        // phase 1, success.
        let raw: [u8; 16] = [
            0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x00, 0x00, 0x00, 0x34, 0x12, 0x01, 0x00,
        ];
        let cqe = Cqe::read_from_bytes(&raw).unwrap();
        assert_eq!(cqe.sqhd, 5);
        assert_eq!(cqe.sqid, 0);
        assert_eq!(cqe.cid, 0x1234);
        assert!(cqe.phase());
        assert!(cqe.status().is_success());
        assert_eq!(cqe.as_bytes(), &raw);
    }

    #[test]
    fn decodes_error_completion_bytes() {
        // Invalid Field in Command with DNR, phase 0, on SQ 3: DW3 = 0x8004_0009.
        let raw: [u8; 16] = [
            0xaa, 0, 0, 0, 0xbb, 0, 0, 0, 0x10, 0x00, 0x03, 0x00, 0x09, 0x00, 0x04, 0x80,
        ];
        let cqe = Cqe::read_from_bytes(&raw).unwrap();
        assert_eq!((cqe.dw0, cqe.dw1), (0xaa, 0xbb));
        assert_eq!(cqe.result64(), 0xbb_0000_00aa);
        assert_eq!((cqe.sqhd, cqe.sqid, cqe.cid), (0x10, 3, 9));
        assert!(!cqe.phase());
        let st = cqe.status();
        assert!(st.is(Sct::Generic, generic::INVALID_FIELD));
        assert!(st.dnr());
        assert!(!st.is_success());
    }

    #[test]
    fn async_event_result() {
        // Notice, Namespace Attribute Changed, log page 04h.
        let ev = AsyncEvent(0x0004_0002);
        assert_eq!(ev.event_type(), Ok(AsyncEventType::Notice));
        assert_eq!(ev.aei(), notice_info::NS_ATTRIBUTE_CHANGED);
        assert_eq!(ev.lid(), 0x04);
        // SMART temperature threshold, log page 02h.
        let ev = AsyncEvent(0x0002_0101);
        assert_eq!(ev.event_type(), Ok(AsyncEventType::SmartHealth));
        assert_eq!(ev.aei(), smart_info::TEMPERATURE);
        assert_eq!(AsyncEvent(5).event_type(), Err(5));
    }

    #[test]
    fn abort_result_and_status_offset() {
        assert!(AbortResult(0).aborted());
        assert!(!AbortResult(0).not_aborted());
        assert!(!AbortResult(1).aborted());
        // Only bit 0 counts; the rest is reserved.
        assert!(AbortResult(0xffff_fffe).aborted());
        assert!(!AbortResult(u32::MAX).aborted());
        assert_eq!(AbortResult(0).with_not_aborted(true).0, 1);
        assert_eq!(AbortResult(1).with_not_aborted(false).0, 0);
        // The status half-word is the last two bytes of the entry.
        assert_eq!(CQE_STATUS_OFFSET, 14);
        let raw: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x80];
        let ps = PhaseStatus::read_from_bytes(&raw[CQE_STATUS_OFFSET..]).unwrap();
        assert_eq!(ps, Cqe::read_from_bytes(&raw).unwrap().status);
        assert!(ps.p());
    }

    #[test]
    fn garbage_and_short_buffers() {
        let cqe = Cqe::read_from_bytes(&[0xff; 16]).unwrap();
        assert!(cqe.phase());
        assert_eq!(cqe.status().kind(), Sct::Vendor);
        let _ = std::format!("{}", cqe.status());
        assert!(Cqe::read_from_bytes(&[0u8; 15]).is_err());
        assert!(Cqe::read_from_bytes(&[0u8; 17]).is_err());
    }
}
