//! Completion status values (NVMe Base 2.0 §4.2.3, "Status Field Definition").

/// The status a completion queue entry carries: Status Code Type, Status Code, More and Do Not
/// Retry (NVMe Base 2.0 §4.2.3, Figure 93).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Status {
    /// Status Code Type (3 bits): 0 generic, 1 command specific, 2 media and data integrity,
    /// 3 path related, 7 vendor specific.
    pub sct: u8,
    /// Status Code.
    pub sc: u8,
    /// Do Not Retry.
    pub dnr: bool,
    /// More: more status is in the Error Information log page.
    pub more: bool,
}

/// Status Code Type values (NVMe Base 2.0 §4.2.3.1, Figure 94).
pub mod sct {
    /// Generic Command Status.
    pub const GENERIC: u8 = 0;
    /// Command Specific Status.
    pub const COMMAND_SPECIFIC: u8 = 1;
    /// Media and Data Integrity Errors.
    pub const MEDIA: u8 = 2;
    /// Path Related Status.
    pub const PATH: u8 = 3;
}

impl Status {
    /// Successful Completion.
    pub const SUCCESS: Self = Self::new(sct::GENERIC, 0x00);

    /// A status with `dnr` and `more` clear.
    pub const fn new(sct: u8, sc: u8) -> Self {
        Self {
            sct,
            sc,
            dnr: false,
            more: false,
        }
    }

    /// The same status with Do Not Retry set.
    pub const fn dnr(self) -> Self {
        Self { dnr: true, ..self }
    }

    /// Whether this is Successful Completion (SCT 0, SC 0).
    pub const fn is_success(self) -> bool {
        self.sct == 0 && self.sc == 0
    }

    /// The 15-bit Status field as it sits in CQE dword 3 bits 31:17 (SC, SCT, CRD 0, M, DNR).
    pub const fn field(self) -> u16 {
        (self.sc as u16)
            | (((self.sct & 0x7) as u16) << 8)
            | ((self.more as u16) << 13)
            | ((self.dnr as u16) << 14)
    }

    /// Decodes the 15-bit Status field of a CQE (the inverse of [`Status::field`]; CRD is
    /// dropped).
    pub const fn from_field(f: u16) -> Self {
        Self {
            sc: (f & 0xff) as u8,
            sct: ((f >> 8) & 0x7) as u8,
            more: f & (1 << 13) != 0,
            dnr: f & (1 << 14) != 0,
        }
    }
}

/// Generic Command Status values (SCT 0), NVMe Base 2.0 §4.2.3.2, Figure 95, and the NVM
/// Command Set specific ones (NVM Command Set 1.0 §3.3.3.1).
pub mod generic {
    use super::Status;
    const fn g(sc: u8) -> Status {
        Status::new(super::sct::GENERIC, sc)
    }
    /// 01h Invalid Command Opcode.
    pub const INVALID_OPCODE: Status = g(0x01).dnr();
    /// 02h Invalid Field in Command.
    pub const INVALID_FIELD: Status = g(0x02).dnr();
    /// 03h Command ID Conflict.
    pub const CID_CONFLICT: Status = g(0x03).dnr();
    /// 04h Data Transfer Error.
    pub const DATA_TRANSFER_ERROR: Status = g(0x04);
    /// 06h Internal Error.
    pub const INTERNAL_ERROR: Status = g(0x06);
    /// 07h Command Abort Requested.
    pub const ABORT_REQUESTED: Status = g(0x07);
    /// 08h Command Aborted due to SQ Deletion.
    pub const ABORTED_SQ_DELETION: Status = g(0x08);
    /// 0Bh Invalid Namespace or Format.
    pub const INVALID_NAMESPACE: Status = g(0x0b).dnr();
    /// 0Ch Command Sequence Error.
    pub const COMMAND_SEQUENCE_ERROR: Status = g(0x0c).dnr();
    /// 0Dh Invalid SGL Segment Descriptor.
    pub const INVALID_SGL_SEGMENT: Status = g(0x0d).dnr();
    /// 0Eh Invalid Number of SGL Descriptors.
    pub const INVALID_SGL_COUNT: Status = g(0x0e).dnr();
    /// 0Fh Data SGL Length Invalid.
    pub const DATA_SGL_LENGTH_INVALID: Status = g(0x0f).dnr();
    /// 11h SGL Descriptor Type Invalid.
    pub const SGL_TYPE_INVALID: Status = g(0x11).dnr();
    /// 13h PRP Offset Invalid.
    pub const PRP_OFFSET_INVALID: Status = g(0x13).dnr();
    /// 19h Keep Alive Timer Expired.
    pub const KEEP_ALIVE_EXPIRED: Status = g(0x19).dnr();
    /// 1Ah Keep Alive Timeout Invalid.
    pub const KEEP_ALIVE_INVALID: Status = g(0x1a).dnr();
    /// 80h LBA Out of Range (NVM Command Set).
    pub const LBA_OUT_OF_RANGE: Status = g(0x80).dnr();
}

/// Command Specific Status values (SCT 1), NVMe Base 2.0 §4.2.3.3, Figure 97.
pub mod specific {
    use super::Status;
    const fn c(sc: u8) -> Status {
        Status::new(super::sct::COMMAND_SPECIFIC, sc).dnr()
    }
    /// 00h Completion Queue Invalid (Create I/O Submission Queue).
    pub const CQ_INVALID: Status = c(0x00);
    /// 01h Invalid Queue Identifier (Create/Delete I/O queues).
    pub const INVALID_QUEUE_ID: Status = c(0x01);
    /// 02h Invalid Queue Size (Create I/O queues).
    pub const INVALID_QUEUE_SIZE: Status = c(0x02);
    /// 03h Abort Command Limit Exceeded.
    pub const ABORT_LIMIT: Status = c(0x03);
    /// 05h Asynchronous Event Request Limit Exceeded.
    pub const AER_LIMIT: Status = c(0x05);
    /// 08h Invalid Interrupt Vector (Create I/O Completion Queue).
    pub const INVALID_VECTOR: Status = c(0x08);
    /// 09h Invalid Log Page (Get Log Page).
    pub const INVALID_LOG_PAGE: Status = c(0x09);
    /// 0Ah Invalid Format (Format NVM, Namespace Management).
    pub const INVALID_FORMAT: Status = c(0x0a);
    /// 0Ch Invalid Queue Deletion (Delete I/O Completion Queue).
    pub const INVALID_QUEUE_DELETION: Status = c(0x0c);
    /// 0Dh Feature Identifier Not Saveable (Set Features).
    pub const NOT_SAVEABLE: Status = c(0x0d);
    /// 0Fh Feature Not Namespace Specific (Set Features).
    pub const NOT_NAMESPACE_SPECIFIC: Status = c(0x0f);
    /// 15h Namespace Insufficient Capacity (Namespace Management).
    pub const NS_INSUFFICIENT_CAPACITY: Status = c(0x15);
    /// 16h Namespace Identifier Unavailable (Namespace Management).
    pub const NSID_UNAVAILABLE: Status = c(0x16);
    /// 18h Namespace Already Attached (Namespace Attachment).
    pub const NS_ALREADY_ATTACHED: Status = c(0x18);
    /// 1Ah Namespace Not Attached (Namespace Attachment).
    pub const NS_NOT_ATTACHED: Status = c(0x1a);
    /// 1Bh Thin Provisioning Not Supported (Namespace Management).
    pub const THIN_PROVISIONING_NOT_SUPPORTED: Status = c(0x1b);
    /// 1Ch Controller List Invalid (Namespace Attachment).
    pub const CONTROLLER_LIST_INVALID: Status = c(0x1c);
    /// 29h I/O Command Set Not Supported (Namespace Management create).
    pub const IOCS_NOT_SUPPORTED: Status = c(0x29);
}

/// Media and Data Integrity Errors (SCT 2), NVM Command Set 1.0 §3.3.3.2.
pub mod media {
    use super::Status;
    /// 85h Compare Failure.
    pub const COMPARE_FAILURE: Status = Status::new(super::sct::MEDIA, 0x85).dnr();
}
