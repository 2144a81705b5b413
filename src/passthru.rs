//! User passthrough: the management interface's commands as callers hand them in.
//!
//! The wire formats are the `nvme_ioctl.h` ABI that nvme-cli and libnvme speak; a platform
//! without it can still use the checks. Everything here is pure:
//! the platform copies the caller's structure in, asks [`check`] what may be sent, moves the
//! data through a bounce buffer and writes the result back.
//!
//! The permission model is the reference driver's, so a user can reach exactly as far under
//! either driver:
//! - with CAP_SYS_ADMIN, anything but an unlisted vendor-specific opcode;
//! - without it, only on a namespace node (never a partition): the Identify CNS values needed
//!   to form I/O commands (namespace, controller and their command-set specific forms), and
//!   I/O commands the controller's Commands Supported and Effects log marks supported with no
//!   effect beyond changing logical blocks; commands that write data or change blocks only if
//!   the node was opened for writing.
//!
//! Vendor-specific opcodes (admin C0h-FFh, I/O 80h-FFh) are refused to everyone unless the
//! platform's configuration lists them: their effects are unknowable.

use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::orion::spec::features::Fid;
use crate::orion::spec::identify::Cns;
use crate::orion::spec::log::{Effect, Effects};
use crate::orion::spec::opcode::{Admin, DataTransfer, ADMIN_VENDOR_FIRST, IO_VENDOR_FIRST};
use crate::orion::spec::sqe::{IdentifyCdw10, Qword, RwCdw12, RwCdw15, SetFeaturesCdw10, Sqe};

pub mod bounce;

/// `struct nvme_passthru_cmd` (`nvme_admin_cmd`): 32-bit result.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PassthruCmd {
    /// Opcode.
    pub opcode: u8,
    /// Must be zero.
    pub flags: u8,
    /// Reserved; must be zero.
    pub rsvd1: u16,
    /// Namespace ID.
    pub nsid: u32,
    /// Command Dword 2.
    pub cdw2: u32,
    /// Command Dword 3.
    pub cdw3: u32,
    /// User address of the metadata buffer.
    pub metadata: u64,
    /// User address of the data buffer.
    pub addr: u64,
    /// Metadata length in bytes.
    pub metadata_len: u32,
    /// Data length in bytes.
    pub data_len: u32,
    /// Command Dwords 10-15.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
    /// Timeout in milliseconds (0: the driver's default).
    pub timeout_ms: u32,
    /// Completion Dword 0, written back.
    pub result: u32,
}

/// `struct nvme_passthru_cmd64`: 64-bit result (Dwords 0 and 1).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct PassthruCmd64 {
    /// Opcode.
    pub opcode: u8,
    /// Must be zero.
    pub flags: u8,
    /// Reserved; must be zero.
    pub rsvd1: u16,
    /// Namespace ID.
    pub nsid: u32,
    /// Command Dword 2.
    pub cdw2: u32,
    /// Command Dword 3.
    pub cdw3: u32,
    /// User address of the metadata buffer.
    pub metadata: u64,
    /// User address of the data buffer.
    pub addr: u64,
    /// Metadata length in bytes.
    pub metadata_len: u32,
    /// Data length in bytes (`vec_cnt`, the iovec count, for the vectored form).
    pub data_len: u32,
    /// Command Dword 10.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
    /// Timeout in milliseconds (0: the driver's default).
    pub timeout_ms: u32,
    /// Reserved.
    pub rsvd2: u32,
    /// Completion Dwords 0 and 1, written back.
    pub result: u64,
}

impl From<&PassthruCmd> for PassthruCmd64 {
    fn from(c: &PassthruCmd) -> Self {
        Self {
            opcode: c.opcode,
            flags: c.flags,
            rsvd1: c.rsvd1,
            nsid: c.nsid,
            cdw2: c.cdw2,
            cdw3: c.cdw3,
            metadata: c.metadata,
            addr: c.addr,
            metadata_len: c.metadata_len,
            data_len: c.data_len,
            cdw10: c.cdw10,
            cdw11: c.cdw11,
            cdw12: c.cdw12,
            cdw13: c.cdw13,
            cdw14: c.cdw14,
            cdw15: c.cdw15,
            timeout_ms: c.timeout_ms,
            rsvd2: 0,
            result: 0,
        }
    }
}

/// `struct nvme_user_io` (NVME_IOCTL_SUBMIT_IO): a read or write described in blocks.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct UserIo {
    /// Opcode: only Read (02h) and Write (01h) are accepted (as the reference driver).
    pub opcode: u8,
    /// Must be zero.
    pub flags: u8,
    /// CDW12 bits 31:16 (FUA, LR, PRINFO, ...).
    pub control: u16,
    /// Number of blocks, 0's based.
    pub nblocks: u16,
    /// Reserved.
    pub rsvd: u16,
    /// User address of the metadata buffer.
    pub metadata: u64,
    /// User address of the data buffer.
    pub addr: u64,
    /// Starting LBA.
    pub slba: u64,
    /// CDW13 (dataset management).
    pub dsmgmt: u32,
    /// Expected initial logical block reference tag (CDW14).
    pub reftag: u32,
    /// Application tag (CDW15 bits 15:0).
    pub apptag: u16,
    /// Application tag mask (CDW15 bits 31:16).
    pub appmask: u16,
    /// Padding to the C structure's 8-byte alignment.
    pub pad: u32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PassthruCmd>() == 72);
    assert!(offset_of!(PassthruCmd, addr) == 24);
    assert!(offset_of!(PassthruCmd, data_len) == 36);
    assert!(offset_of!(PassthruCmd, timeout_ms) == 64);
    assert!(offset_of!(PassthruCmd, result) == 68);
    assert!(size_of::<PassthruCmd64>() == 80);
    assert!(offset_of!(PassthruCmd64, result) == 72);
    assert!(size_of::<UserIo>() == 48);
    assert!(offset_of!(UserIo, slba) == 24);
    assert!(offset_of!(UserIo, appmask) == 42);
};

/// `struct nvme_uring_cmd`: an io_uring passthrough command (`NVME_URING_CMD_*`), carried in
/// the command area of a 128-byte submission queue entry. It is [`PassthruCmd64`] without the
/// result, which the platform returns in the big completion queue entry instead.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct UringCmd {
    /// Opcode.
    pub opcode: u8,
    /// Must be zero.
    pub flags: u8,
    /// Reserved; must be zero.
    pub rsvd1: u16,
    /// Namespace ID.
    pub nsid: u32,
    /// Command Dword 2.
    pub cdw2: u32,
    /// Command Dword 3.
    pub cdw3: u32,
    /// User address of the metadata buffer.
    pub metadata: u64,
    /// User address of the data buffer (of the iovec array for the vectored forms).
    pub addr: u64,
    /// Metadata length in bytes.
    pub metadata_len: u32,
    /// Data length in bytes (the iovec count for the vectored forms).
    pub data_len: u32,
    /// Command Dword 10.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
    /// Timeout in milliseconds (0: the driver's default).
    pub timeout_ms: u32,
    /// Reserved; must be zero.
    pub rsvd2: u32,
}

impl From<&UringCmd> for PassthruCmd64 {
    fn from(c: &UringCmd) -> Self {
        Self {
            opcode: c.opcode,
            flags: c.flags,
            rsvd1: c.rsvd1,
            nsid: c.nsid,
            cdw2: c.cdw2,
            cdw3: c.cdw3,
            metadata: c.metadata,
            addr: c.addr,
            metadata_len: c.metadata_len,
            data_len: c.data_len,
            cdw10: c.cdw10,
            cdw11: c.cdw11,
            cdw12: c.cdw12,
            cdw13: c.cdw13,
            cdw14: c.cdw14,
            cdw15: c.cdw15,
            timeout_ms: c.timeout_ms,
            rsvd2: c.rsvd2,
            result: 0,
        }
    }
}

/// `struct iovec` of a 64-bit ABI: one piece of a vectored data buffer
/// (`NVME_IOCTL_IO64_CMD_VEC`, `NVME_URING_CMD_*_VEC`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct IoVec {
    /// User address of the piece.
    pub base: u64,
    /// Its length in bytes.
    pub len: u64,
}

/// The most pieces a vectored buffer may have (`UIO_MAXIOV`, the limit of the reference
/// driver's importer).
pub const MAX_IOVECS: u32 = 1024;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<UringCmd>() == 72);
    assert!(offset_of!(UringCmd, addr) == 24);
    assert!(offset_of!(UringCmd, data_len) == 36);
    assert!(offset_of!(UringCmd, cdw10) == 40);
    assert!(offset_of!(UringCmd, timeout_ms) == 64);
    assert!(offset_of!(UringCmd, rsvd2) == 68);
    assert!(size_of::<IoVec>() == 16);
    assert!(offset_of!(IoVec, len) == 8);
};

/// ioctl numbers of `nvme_ioctl.h` (type 'N', the generic _IO/_IOW/_IOWR encoding).
pub mod ioctl {
    use super::{PassthruCmd, PassthruCmd64, UringCmd, UserIo};
    use core::mem::size_of;

    const fn nr(dir: u32, n: u32, size: usize) -> u32 {
        // CAST: every structure here is far below the 14-bit size field's limit.
        (dir << 30) | ((size as u32) << 16) | ((b'N' as u32) << 8) | n
    }
    const NONE: u32 = 0;
    const WRITE: u32 = 1;
    const RW: u32 = 3;

    /// Returns the node's namespace ID.
    pub const ID: u32 = nr(NONE, 0x40, 0);
    /// Admin command, 32-bit result.
    pub const ADMIN_CMD: u32 = nr(RW, 0x41, size_of::<PassthruCmd>());
    /// Read or write in blocks.
    pub const SUBMIT_IO: u32 = nr(WRITE, 0x42, size_of::<UserIo>());
    /// I/O command, 32-bit result.
    pub const IO_CMD: u32 = nr(RW, 0x43, size_of::<PassthruCmd>());
    /// Controller reset.
    pub const RESET: u32 = nr(NONE, 0x44, 0);
    /// NVM subsystem reset.
    pub const SUBSYS_RESET: u32 = nr(NONE, 0x45, 0);
    /// Namespace rescan.
    pub const RESCAN: u32 = nr(NONE, 0x46, 0);
    /// Admin command, 64-bit result.
    pub const ADMIN64_CMD: u32 = nr(RW, 0x47, size_of::<PassthruCmd64>());
    /// I/O command, 64-bit result.
    pub const IO64_CMD: u32 = nr(RW, 0x48, size_of::<PassthruCmd64>());
    /// I/O command with an iovec data buffer, 64-bit result.
    pub const IO64_CMD_VEC: u32 = nr(RW, 0x49, size_of::<PassthruCmd64>());
    /// io_uring command (`cmd_op`): I/O command on a namespace's generic node.
    pub const URING_CMD_IO: u32 = nr(RW, 0x80, size_of::<UringCmd>());
    /// io_uring command: I/O command with an iovec data buffer.
    pub const URING_CMD_IO_VEC: u32 = nr(RW, 0x81, size_of::<UringCmd>());
    /// io_uring command: admin command on the controller node.
    pub const URING_CMD_ADMIN: u32 = nr(RW, 0x82, size_of::<UringCmd>());
    /// io_uring command: admin command with an iovec data buffer.
    pub const URING_CMD_ADMIN_VEC: u32 = nr(RW, 0x83, size_of::<UringCmd>());
}

/// Which queue a passthrough command goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueKind {
    /// The admin queue.
    Admin,
    /// An I/O queue.
    Io,
}

/// The device node a command came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// The controller node.
    Controller,
    /// A namespace's whole-disk node.
    Namespace(u32),
    /// A partition of a namespace's disk (never unprivileged passthrough: it would escape the
    /// partition).
    Partition(u32),
}

/// Who is asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Holds CAP_SYS_ADMIN.
    pub sys_admin: bool,
    /// The node was opened for writing.
    pub writable: bool,
}

/// What the driver can take.
#[derive(Clone, Copy)]
pub struct Limits<'a> {
    /// Largest data transfer in bytes.
    pub max_data: u32,
    /// The controller's Commands Supported and Effects log, when it has one.
    pub effects: Option<&'a Effects>,
    /// Vendor-specific admin opcodes the configuration allows (each nonzero byte is one).
    pub vendor_admin: u64,
    /// Vendor-specific I/O opcodes the configuration allows (each nonzero byte is one).
    pub vendor_io: u64,
    /// Longest timeout a caller may ask for, in milliseconds.
    pub max_timeout_ms: u32,
}

/// Why a command is refused; each maps to one errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A field is out of range (EINVAL).
    Invalid(&'static str),
    /// The caller may not send this command here (EACCES, as the reference driver).
    Denied,
    /// A vendor-specific opcode the configuration does not list (EPERM).
    VendorOpcode(u8),
    /// A setting the driver manages itself (EACCES for everyone, as the reference driver).
    DriverOwned(&'static str),
}

/// Data direction of a checked command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// No data.
    None,
    /// Host to controller: copy the caller's buffer in before submitting.
    ToDevice,
    /// Controller to host: copy the buffer out after success.
    FromDevice,
}

/// A command that may be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The command, without CID and data pointer.
    pub sqe: Sqe,
    /// Data length in bytes (0: none).
    pub len: u32,
    /// Data direction.
    pub dir: Direction,
    /// Timeout in milliseconds, 0 for the driver's default.
    pub timeout_ms: u32,
}

/// Whether `opcode` on `queue` is vendor specific.
pub const fn is_vendor(queue: QueueKind, opcode: u8) -> bool {
    match queue {
        QueueKind::Admin => opcode >= ADMIN_VENDOR_FIRST,
        QueueKind::Io => opcode >= IO_VENDOR_FIRST,
    }
}

/// Whether `list` (each nonzero byte an opcode) names `opcode`.
pub fn listed(list: u64, opcode: u8) -> bool {
    opcode != 0 && list.to_le_bytes().contains(&opcode)
}

/// Checks a configured vendor opcode list: every nonzero byte must be a vendor-specific
/// opcode of `queue`.
pub fn check_vendor_list(queue: QueueKind, list: u64) -> Result<(), u8> {
    match list
        .to_le_bytes()
        .iter()
        .find(|&&b| b != 0 && !is_vendor(queue, b))
    {
        Some(&b) => Err(b),
        None => Ok(()),
    }
}

/// Identify CNS values an unprivileged caller may ask for: what forming I/O commands needs.
fn unprivileged_identify(cdw10: u32) -> bool {
    matches!(
        Cns::from_raw(IdentifyCdw10(cdw10).cns()),
        Some(
            Cns::Namespace
                | Cns::Controller
                | Cns::CsNamespace
                | Cns::CsController
                | Cns::CsIndependentNamespace
        )
    )
}

/// Whether an unprivileged caller may send `cmd` (the reference driver's rules): never
/// through a partition; the Identify subset through any node the caller could open; I/O
/// commands only through a namespace node.
fn unprivileged_ok(
    cmd: &PassthruCmd64,
    queue: QueueKind,
    node: Node,
    caller: Caller,
    effects: Option<&Effects>,
) -> bool {
    if let Node::Partition(_) = node {
        return false;
    }
    match queue {
        QueueKind::Admin => cmd.opcode == Admin::Identify.raw() && unprivileged_identify(cmd.cdw10),
        QueueKind::Io if node == Node::Controller => false,
        QueueKind::Io => {
            let Some(e) = effects else { return false };
            let e: Effect = e.io(cmd.opcode);
            if !e.csupp() {
                return false;
            }
            // Anything beyond "supported, changes logical blocks, UUID selection, scope" is
            // an effect the caller must be trusted with.
            let known = Effect::default()
                .with_csupp(true)
                .with_lbcc(true)
                .with_uss(true)
                .with_csp(0xfff);
            if e.0 & !known.0 != 0 {
                return false;
            }
            let writes = matches!(
                DataTransfer::of(cmd.opcode),
                DataTransfer::HostToController | DataTransfer::Bidirectional
            );
            !((writes || e.lbcc()) && !caller.writable)
        }
    }
}

/// Whether a successful admin passthrough command with `opcode` may have changed the
/// namespaces (their inventory, capacity or format), so the host must rescan them: Format
/// NVM, Namespace Management and Namespace Attachment always (whatever a log says), and any
/// command the Commands Supported and Effects log marks with Namespace Inventory Change or
/// Namespace Capability Change (NVMe Base 2.0 §5.16.1.6).
pub fn changes_namespaces(opcode: u8, effects: Option<&Effects>) -> bool {
    let known = [Admin::FormatNvm, Admin::NsManagement, Admin::NsAttachment];
    known.iter().any(|a| a.raw() == opcode)
        || effects.is_some_and(|e| {
            let x = e.admin(opcode);
            x.csupp() && (x.nic() || x.ncc())
        })
}

/// Checks a passthrough command from `caller` through `node` for `queue` and builds it.
///
/// The order is the reference driver's where it has the check: flags and the NSID of an I/O
/// command, then permission (an unprivileged caller sees EACCES before anything else), then
/// the fields it maps (metadata, length) and orion's own checks.
pub fn check(
    cmd: &PassthruCmd64,
    queue: QueueKind,
    node: Node,
    caller: Caller,
    lim: &Limits<'_>,
) -> Result<Checked, Refusal> {
    if cmd.flags != 0 {
        return Err(Refusal::Invalid("flags"));
    }
    // An I/O command through a namespace node may only name that namespace. (Admin
    // commands through it are the controller's, as with the reference driver.)
    if let (QueueKind::Io, Node::Namespace(nsid) | Node::Partition(nsid)) = (queue, node) {
        if cmd.nsid != nsid {
            return Err(Refusal::Invalid("nsid is not this namespace's"));
        }
    }
    if !caller.sys_admin && !unprivileged_ok(cmd, queue, node, caller, lim.effects) {
        return Err(Refusal::Denied);
    }
    if cmd.rsvd1 != 0 || cmd.rsvd2 != 0 {
        // The reference driver ignores these; they are reserved, so a nonzero value is a
        // malformed request.
        return Err(Refusal::Invalid("reserved field"));
    }
    if cmd.metadata_len != 0 && cmd.metadata != 0 {
        // No namespace with metadata gets a node, so no command can carry any.
        return Err(Refusal::Invalid("metadata on a namespace without metadata"));
    }
    if cmd.data_len > lim.max_data {
        return Err(Refusal::Invalid("data length beyond the transfer limit"));
    }
    if cmd.timeout_ms > lim.max_timeout_ms {
        return Err(Refusal::Invalid("timeout"));
    }
    if queue == QueueKind::Admin && cmd.opcode == Admin::SetFeatures.raw() {
        if let Some(what) = driver_owned_feature(Fid(SetFeaturesCdw10(cmd.cdw10).fid())) {
            return Err(Refusal::DriverOwned(what));
        }
    }
    if queue == QueueKind::Admin && is_queue_management(cmd.opcode) {
        // The driver owns its queues and doorbell buffer: creating or deleting them behind
        // its back would corrupt its state.
        return Err(Refusal::Invalid(
            "queue and event management belong to the driver",
        ));
    }
    // After the permission check, so an unprivileged caller sees EACCES as under the
    // reference driver; a privileged one learns the opcode needs listing.
    if is_vendor(queue, cmd.opcode)
        && !listed(
            match queue {
                QueueKind::Admin => lim.vendor_admin,
                QueueKind::Io => lim.vendor_io,
            },
            cmd.opcode,
        )
    {
        return Err(Refusal::VendorOpcode(cmd.opcode));
    }
    let dir = if cmd.data_len == 0 {
        Direction::None
    } else {
        match DataTransfer::of(cmd.opcode) {
            DataTransfer::HostToController => Direction::ToDevice,
            DataTransfer::ControllerToHost => Direction::FromDevice,
            // No data direction in the opcode: the reference driver maps the buffer as
            // controller-to-host; so do we (nothing is copied in).
            DataTransfer::None => Direction::FromDevice,
            DataTransfer::Bidirectional => {
                return Err(Refusal::Invalid("bidirectional data transfer"));
            }
        }
    };
    let mut sqe = Sqe::new(cmd.opcode).with_nsid(cmd.nsid);
    sqe.cdw2 = cmd.cdw2;
    sqe.cdw3 = cmd.cdw3;
    sqe.cdw10 = cmd.cdw10;
    sqe.cdw11 = cmd.cdw11;
    sqe.cdw12 = cmd.cdw12;
    sqe.cdw13 = cmd.cdw13;
    sqe.cdw14 = cmd.cdw14;
    sqe.cdw15 = cmd.cdw15;
    Ok(Checked {
        sqe,
        len: cmd.data_len,
        dir,
        timeout_ms: cmd.timeout_ms,
    })
}

/// Checks a vectored command before its iovecs are read (`data_len` is their count): every
/// check of [`check`] that does not depend on the data length, so an unprivileged caller is
/// refused (EACCES) before its array is looked at, then the count (at most [`MAX_IOVECS`]).
/// Returns the number of iovecs to read.
pub fn check_vector_count(
    cmd: &PassthruCmd64,
    queue: QueueKind,
    node: Node,
    caller: Caller,
    lim: &Limits<'_>,
) -> Result<usize, Refusal> {
    let header = PassthruCmd64 {
        data_len: 0,
        ..*cmd
    };
    check(&header, queue, node, caller, lim)?;
    if cmd.data_len > MAX_IOVECS {
        return Err(Refusal::Invalid("more iovecs than UIO_MAXIOV"));
    }
    // CAST: at most MAX_IOVECS.
    Ok(cmd.data_len as usize)
}

/// Checks a vectored command with its iovecs (read from the caller after
/// [`check_vector_count`]): their total length is the command's data length, checked as
/// [`check`] checks a flat buffer's, so a total beyond the transfer limit is refused before
/// any piece is touched. Empty pieces are allowed; no piece at all means no data.
pub fn check_vectored(
    cmd: &PassthruCmd64,
    vecs: &[IoVec],
    queue: QueueKind,
    node: Node,
    caller: Caller,
    lim: &Limits<'_>,
) -> Result<Checked, Refusal> {
    if vecs.len() != cmd.data_len as usize || cmd.data_len > MAX_IOVECS {
        return Err(Refusal::Invalid("iovec count"));
    }
    let mut total: u64 = 0;
    for v in vecs {
        total = total
            .checked_add(v.len)
            .filter(|&t| t <= u64::from(lim.max_data))
            .ok_or(Refusal::Invalid("iovecs beyond the transfer limit"))?;
    }
    let flat = PassthruCmd64 {
        // CAST: at most max_data, a u32.
        data_len: total as u32,
        ..*cmd
    };
    check(&flat, queue, node, caller, lim)
}

/// Features the driver sets itself, which passthrough may not change (the reference driver
/// refuses the same three): Number of Queues, Autonomous Power State Transition, Keep Alive
/// Timer.
fn driver_owned_feature(fid: Fid) -> Option<&'static str> {
    match fid {
        Fid::NUMBER_OF_QUEUES => Some("Number of Queues"),
        Fid::APST => Some("Autonomous Power State Transition"),
        Fid::KEEP_ALIVE_TIMER => Some("Keep Alive Timer"),
        _ => None,
    }
}

/// Admin opcodes that manage the driver's own queues and events (Create/Delete I/O SQ/CQ,
/// Doorbell Buffer Config, Asynchronous Event Request: a caller's request would take the
/// driver's events).
fn is_queue_management(opcode: u8) -> bool {
    matches!(
        Admin::from_raw(opcode),
        Some(
            Admin::DeleteIoSq
                | Admin::CreateIoSq
                | Admin::DeleteIoCq
                | Admin::CreateIoCq
                | Admin::DoorbellBufferConfig
                | Admin::AsyncEventRequest
        )
    )
}

/// Turns a SUBMIT_IO request into the equivalent passthrough command for namespace `nsid`
/// with `lba_shift`-sized blocks. Only Read and Write are accepted.
pub fn user_io(io: &UserIo, nsid: u32, lba_shift: u32) -> Result<PassthruCmd64, Refusal> {
    use crate::orion::spec::opcode::Nvm;
    if io.flags != 0 {
        return Err(Refusal::Invalid("flags"));
    }
    if io.opcode != Nvm::Read.raw() && io.opcode != Nvm::Write.raw() {
        return Err(Refusal::Invalid("SUBMIT_IO takes only Read and Write"));
    }
    let len = (u64::from(io.nblocks) + 1) << lba_shift;
    let data_len = u32::try_from(len).map_err(|_| Refusal::Invalid("length"))?;
    Ok(PassthruCmd64 {
        opcode: io.opcode,
        nsid,
        addr: io.addr,
        metadata: io.metadata,
        data_len,
        // SLBA in CDW10-11, low dword first.
        cdw10: Qword(io.slba).lo(),
        cdw11: Qword(io.slba).hi(),
        cdw12: RwCdw12(0).with_nlb(io.nblocks).with_control(io.control).0,
        cdw13: io.dsmgmt,
        cdw14: io.reftag,
        cdw15: RwCdw15(0).with_elbat(io.apptag).with_elbatm(io.appmask).0,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion::spec::opcode::Nvm;
    use zerocopy::{FromBytes as _, FromZeros};

    fn lim(effects: Option<&Effects>) -> Limits<'_> {
        Limits {
            max_data: 128 * 1024,
            effects,
            vendor_admin: 0,
            vendor_io: 0,
            max_timeout_ms: 3_600_000,
        }
    }

    const ROOT: Caller = Caller {
        sys_admin: true,
        writable: true,
    };
    const USER_RO: Caller = Caller {
        sys_admin: false,
        writable: false,
    };
    const USER_RW: Caller = Caller {
        sys_admin: false,
        writable: true,
    };

    fn identify(cns: u32) -> PassthruCmd64 {
        PassthruCmd64 {
            opcode: Admin::Identify.raw(),
            data_len: 4096,
            cdw10: cns,
            ..Default::default()
        }
    }

    fn effects_supporting(ops: &[(u8, bool)]) -> Effects {
        let mut e = Effects::new_zeroed();
        for &(op, lbcc) in ops {
            e.iocs[usize::from(op)] = Effect::default().with_csupp(true).with_lbcc(lbcc);
        }
        e
    }

    #[test]
    fn namespace_changing_commands_are_known_or_from_the_log() {
        for op in [0x80, 0x0d, 0x15] {
            assert!(changes_namespaces(op, None), "{op:#04x}");
        }
        for op in [0x06, 0x02, 0x09, 0x84, 0xc0] {
            assert!(!changes_namespaces(op, None), "{op:#04x}");
        }
        let mut e = effects_supporting(&[]);
        e.acs[0xc1] = Effect::default().with_csupp(true).with_nic(true);
        e.acs[0xc2] = Effect::default().with_csupp(true).with_ncc(true);
        e.acs[0xc3] = Effect::default().with_csupp(true).with_lbcc(true);
        // Effects of a command the log says is not supported mean nothing.
        e.acs[0xc4] = Effect::default().with_nic(true);
        assert!(changes_namespaces(0xc1, Some(&e)));
        assert!(changes_namespaces(0xc2, Some(&e)));
        assert!(!changes_namespaces(0xc3, Some(&e)));
        assert!(!changes_namespaces(0xc4, Some(&e)));
        assert!(
            changes_namespaces(0x80, Some(&e)),
            "known whatever the log says"
        );
    }

    #[test]
    fn ioctl_numbers_match_the_uapi() {
        assert_eq!(ioctl::ID, 0x4e40);
        assert_eq!(ioctl::ADMIN_CMD, 0xc048_4e41);
        assert_eq!(ioctl::SUBMIT_IO, 0x4030_4e42);
        assert_eq!(ioctl::IO_CMD, 0xc048_4e43);
        assert_eq!(ioctl::RESET, 0x4e44);
        assert_eq!(ioctl::SUBSYS_RESET, 0x4e45);
        assert_eq!(ioctl::RESCAN, 0x4e46);
        assert_eq!(ioctl::ADMIN64_CMD, 0xc050_4e47);
        assert_eq!(ioctl::IO64_CMD, 0xc050_4e48);
        assert_eq!(ioctl::IO64_CMD_VEC, 0xc050_4e49);
    }

    #[test]
    fn root_builds_identify_with_every_dword() {
        let mut c = identify(1);
        c.cdw11 = 0x0100_0000;
        c.cdw14 = 7;
        let k = check(&c, QueueKind::Admin, Node::Controller, ROOT, &lim(None)).unwrap();
        assert_eq!(k.sqe.opcode(), 0x06);
        assert_eq!(k.sqe.cdw10, 1);
        assert_eq!(k.sqe.cdw11, 0x0100_0000);
        assert_eq!(k.sqe.cdw14, 7);
        assert_eq!(k.dir, Direction::FromDevice);
        assert_eq!(k.len, 4096);
    }

    #[test]
    fn malformed_fields_are_invalid_for_everyone() {
        for who in [ROOT, USER_RO] {
            let l = lim(None);
            let mut c = identify(1);
            c.flags = 1;
            assert_eq!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid("flags"))
            );
            let mut c = identify(1);
            c.rsvd1 = 1;
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid(_))
            ));
            let mut c = identify(1);
            c.rsvd2 = 1;
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid(_))
            ));
            let mut c = identify(1);
            c.data_len = 128 * 1024 + 1;
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid(_))
            ));
            let mut c = identify(1);
            c.timeout_ms = u32::MAX;
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid(_))
            ));
            let mut c = identify(0);
            c.metadata = 0x1000;
            c.metadata_len = 8;
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid(_))
            ));
        }
    }

    #[test]
    fn unprivileged_admin_is_the_identify_subset_never_on_a_partition() {
        let l = lim(None);
        for cns in [0u32, 1, 5, 6, 8] {
            assert!(
                check(
                    &identify(cns),
                    QueueKind::Admin,
                    Node::Namespace(1),
                    USER_RO,
                    &l
                )
                .is_ok(),
                "cns {cns}"
            );
            // Through a controller node the caller was allowed to open, as the reference
            // driver does.
            assert!(check(
                &identify(cns),
                QueueKind::Admin,
                Node::Controller,
                USER_RO,
                &l
            )
            .is_ok());
            assert_eq!(
                check(
                    &identify(cns),
                    QueueKind::Admin,
                    Node::Partition(1),
                    USER_RW,
                    &l
                ),
                Err(Refusal::Denied)
            );
        }
        for cns in [2u32, 3, 0x10, 0x12, 0x13] {
            assert_eq!(
                check(
                    &identify(cns),
                    QueueKind::Admin,
                    Node::Namespace(1),
                    USER_RW,
                    &l
                ),
                Err(Refusal::Denied),
                "cns {cns}"
            );
        }
        let log = PassthruCmd64 {
            opcode: Admin::GetLogPage.raw(),
            data_len: 512,
            ..Default::default()
        };
        assert_eq!(
            check(&log, QueueKind::Admin, Node::Namespace(1), USER_RW, &l),
            Err(Refusal::Denied)
        );
        assert!(check(&log, QueueKind::Admin, Node::Namespace(1), ROOT, &l).is_ok());
    }

    #[test]
    fn unprivileged_io_follows_the_effects_log() {
        let read = PassthruCmd64 {
            opcode: Nvm::Read.raw(),
            nsid: 1,
            data_len: 512,
            ..Default::default()
        };
        let write = PassthruCmd64 {
            opcode: Nvm::Write.raw(),
            nsid: 1,
            data_len: 512,
            ..Default::default()
        };
        // No effects log: nothing for unprivileged callers.
        assert_eq!(
            check(
                &read,
                QueueKind::Io,
                Node::Namespace(1),
                USER_RW,
                &lim(None)
            ),
            Err(Refusal::Denied)
        );
        let e = effects_supporting(&[(0x02, false), (0x01, true)]);
        let l = lim(Some(&e));
        assert!(check(&read, QueueKind::Io, Node::Namespace(1), USER_RO, &l).is_ok());
        assert_eq!(
            check(&write, QueueKind::Io, Node::Namespace(1), USER_RO, &l),
            Err(Refusal::Denied)
        );
        assert!(check(&write, QueueKind::Io, Node::Namespace(1), USER_RW, &l).is_ok());
        assert_eq!(
            check(&read, QueueKind::Io, Node::Partition(1), USER_RW, &l),
            Err(Refusal::Denied)
        );
        // Unsupported opcode, and a supported one with an effect beyond LBCC.
        let flush = PassthruCmd64 {
            opcode: 0x00,
            nsid: 1,
            ..Default::default()
        };
        assert_eq!(
            check(&flush, QueueKind::Io, Node::Namespace(1), USER_RW, &l),
            Err(Refusal::Denied)
        );
        let mut e2 = effects_supporting(&[(0x00, false)]);
        e2.iocs[0] = e2.iocs[0].with_ncc(true);
        assert_eq!(
            check(
                &flush,
                QueueKind::Io,
                Node::Namespace(1),
                USER_RW,
                &lim(Some(&e2))
            ),
            Err(Refusal::Denied)
        );
        // The nsid must be the node's.
        let other = PassthruCmd64 { nsid: 2, ..read };
        assert!(matches!(
            check(&other, QueueKind::Io, Node::Namespace(1), ROOT, &l),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn vendor_opcodes_need_listing_even_for_root() {
        let mut l = lim(None);
        let va = PassthruCmd64 {
            opcode: 0xc1,
            ..Default::default()
        };
        let vi = PassthruCmd64 {
            opcode: 0x81,
            nsid: 1,
            ..Default::default()
        };
        assert_eq!(
            check(&va, QueueKind::Admin, Node::Controller, ROOT, &l),
            Err(Refusal::VendorOpcode(0xc1))
        );
        assert_eq!(
            check(&vi, QueueKind::Io, Node::Namespace(1), ROOT, &l),
            Err(Refusal::VendorOpcode(0x81))
        );
        l.vendor_admin = 0xc1;
        l.vendor_io = 0x81_00;
        assert!(check(&va, QueueKind::Admin, Node::Controller, ROOT, &l).is_ok());
        assert!(check(&vi, QueueKind::Io, Node::Namespace(1), ROOT, &l).is_ok());
        // Listed, but still not for an unprivileged caller.
        assert_eq!(
            check(&va, QueueKind::Admin, Node::Namespace(1), USER_RW, &l),
            Err(Refusal::Denied)
        );
        assert_eq!(check_vendor_list(QueueKind::Admin, 0xc1_c0), Ok(()));
        assert_eq!(check_vendor_list(QueueKind::Admin, 0x80), Err(0x80));
        assert_eq!(check_vendor_list(QueueKind::Io, 0x80_ff), Ok(()));
        assert_eq!(check_vendor_list(QueueKind::Io, 0x02), Err(0x02));
    }

    #[test]
    fn driver_owned_features_are_refused_to_root() {
        for fid in [0x07u32, 0x0c, 0x0f] {
            let c = PassthruCmd64 {
                opcode: Admin::SetFeatures.raw(),
                cdw10: fid,
                ..Default::default()
            };
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Controller, ROOT, &lim(None)),
                Err(Refusal::DriverOwned(_))
            ));
        }
        let temp = PassthruCmd64 {
            opcode: Admin::SetFeatures.raw(),
            cdw10: 0x04,
            ..Default::default()
        };
        assert!(check(&temp, QueueKind::Admin, Node::Controller, ROOT, &lim(None)).is_ok());
        let get = PassthruCmd64 {
            opcode: Admin::GetFeatures.raw(),
            cdw10: 0x07,
            ..Default::default()
        };
        assert!(check(&get, QueueKind::Admin, Node::Controller, ROOT, &lim(None)).is_ok());
    }

    #[test]
    fn queue_management_is_the_drivers() {
        for op in [0x00u8, 0x01, 0x04, 0x05, 0x0c, 0x7c] {
            let c = PassthruCmd64 {
                opcode: op,
                ..Default::default()
            };
            assert!(
                matches!(
                    check(&c, QueueKind::Admin, Node::Controller, ROOT, &lim(None)),
                    Err(Refusal::Invalid(_))
                ),
                "opcode {op:#x}"
            );
        }
    }

    #[test]
    fn submit_io_becomes_read_or_write() {
        let io = UserIo {
            opcode: 0x02,
            nblocks: 7,
            slba: 0x1_0000_0002,
            addr: 0x1000,
            control: 0x4000,
            ..Default::default()
        };
        let c = user_io(&io, 3, 9).unwrap();
        assert_eq!(
            (c.nsid, c.data_len, c.cdw10, c.cdw11, c.cdw12),
            (3, 4096, 2, 1, 0x4000_0007)
        );
        let tagged = UserIo {
            control: 0xffff,
            dsmgmt: 0x8765_4321,
            reftag: 0xdead_beef,
            apptag: 0x1234,
            appmask: 0xff00,
            ..io
        };
        let c = user_io(&tagged, 3, 9).unwrap();
        assert_eq!(
            (c.cdw12, c.cdw13, c.cdw14, c.cdw15),
            (0xffff_0007, 0x8765_4321, 0xdead_beef, 0xff00_1234)
        );
        assert!(user_io(&UserIo { opcode: 0x09, ..io }, 3, 9).is_err());
        assert!(user_io(&UserIo { flags: 1, ..io }, 3, 9).is_err());
        // 65536 blocks of 64 KiB do not fit a u32 length.
        assert!(user_io(
            &UserIo {
                nblocks: u16::MAX,
                ..io
            },
            3,
            16
        )
        .is_err());
    }

    #[test]
    fn uring_numbers_match_the_uapi() {
        // _IOWR('N', 0x80..0x83, struct nvme_uring_cmd), 72 bytes.
        assert_eq!(ioctl::URING_CMD_IO, 0xc048_4e80);
        assert_eq!(ioctl::URING_CMD_IO_VEC, 0xc048_4e81);
        assert_eq!(ioctl::URING_CMD_ADMIN, 0xc048_4e82);
        assert_eq!(ioctl::URING_CMD_ADMIN_VEC, 0xc048_4e83);
    }

    #[test]
    fn uring_cmd_reads_as_the_uapi_lays_it_out() {
        // The bytes of a `struct nvme_uring_cmd` as a C caller fills it: Read, NSID 1, a
        // buffer at 0x1000 of 4096 bytes, CDW10 7, CDW12 7, timeout 500 ms.
        let mut raw = [0u8; 72];
        raw[0] = 0x02;
        raw[4..8].copy_from_slice(&1u32.to_le_bytes());
        raw[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        raw[36..40].copy_from_slice(&4096u32.to_le_bytes());
        raw[40..44].copy_from_slice(&7u32.to_le_bytes());
        raw[48..52].copy_from_slice(&7u32.to_le_bytes());
        raw[64..68].copy_from_slice(&500u32.to_le_bytes());
        raw[68..72].copy_from_slice(&9u32.to_le_bytes());
        let u = UringCmd::read_from_bytes(&raw[..]).unwrap();
        assert_eq!(
            (u.opcode, u.nsid, u.addr, u.data_len, u.cdw10, u.cdw12),
            (2, 1, 0x1000, 4096, 7, 7)
        );
        let c = PassthruCmd64::from(&u);
        assert_eq!((c.addr, c.data_len, c.timeout_ms), (0x1000, 4096, 500));
        // The reserved word is carried over, so `check` refuses it as for the ioctls.
        assert_eq!(c.rsvd2, 9);
        assert_eq!(c.result, 0);
        let e = effects_supporting(&[(0x02, false)]);
        assert!(matches!(
            check(&c, QueueKind::Io, Node::Namespace(1), ROOT, &lim(Some(&e))),
            Err(Refusal::Invalid(_))
        ));
        let ok = PassthruCmd64 { rsvd2: 0, ..c };
        let k = check(
            &ok,
            QueueKind::Io,
            Node::Namespace(1),
            USER_RO,
            &lim(Some(&e)),
        )
        .unwrap();
        assert_eq!(
            (k.len, k.dir, k.timeout_ms),
            (4096, Direction::FromDevice, 500)
        );
    }

    #[test]
    fn iovec_reads_as_a_64_bit_struct_iovec() {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&0x7fff_0000_1000u64.to_le_bytes());
        raw[8..16].copy_from_slice(&512u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x2000u64.to_le_bytes());
        raw[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let v = <[IoVec]>::ref_from_bytes(&raw[..]).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            IoVec {
                base: 0x7fff_0000_1000,
                len: 512
            }
        );
        assert_eq!(v[1].len, u64::MAX);
    }

    fn vec_write(count: u32) -> PassthruCmd64 {
        PassthruCmd64 {
            opcode: Nvm::Write.raw(),
            nsid: 1,
            addr: 0x1000,
            data_len: count,
            cdw12: 7,
            ..Default::default()
        }
    }

    fn pieces(lens: &[u64]) -> Vec<IoVec> {
        lens.iter()
            .enumerate()
            .map(|(i, &len)| IoVec {
                base: 0x10_0000 * (i as u64 + 1),
                len,
            })
            .collect()
    }

    #[test]
    fn vector_count_is_checked_after_permission() {
        let e = effects_supporting(&[(0x02, false), (0x01, true)]);
        let l = lim(Some(&e));
        let n = |c: &PassthruCmd64, who| {
            check_vector_count(c, QueueKind::Io, Node::Namespace(1), who, &l)
        };
        assert_eq!(n(&vec_write(3), ROOT), Ok(3));
        assert_eq!(n(&vec_write(0), ROOT), Ok(0));
        assert_eq!(n(&vec_write(MAX_IOVECS), ROOT), Ok(1024));
        assert!(matches!(
            n(&vec_write(MAX_IOVECS + 1), ROOT),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            n(&vec_write(u32::MAX), ROOT),
            Err(Refusal::Invalid(_))
        ));
        // A count far beyond the transfer limit is not a length: it is not refused as one.
        assert_eq!(n(&vec_write(1000), USER_RW), Ok(1000));
        // Unprivileged and read-only: a write is refused before the count is looked at.
        assert_eq!(n(&vec_write(u32::MAX), USER_RO), Err(Refusal::Denied));
        // Fields are checked as for a flat command.
        let bad = PassthruCmd64 {
            flags: 1,
            ..vec_write(2)
        };
        assert_eq!(n(&bad, ROOT), Err(Refusal::Invalid("flags")));
        let other = PassthruCmd64 {
            nsid: 2,
            ..vec_write(2)
        };
        assert!(matches!(n(&other, ROOT), Err(Refusal::Invalid(_))));
    }

    #[test]
    fn vectored_length_is_the_sum_of_the_pieces() {
        let l = lim(None);
        let v = |c: &PassthruCmd64, p: &[IoVec]| {
            check_vectored(c, p, QueueKind::Io, Node::Namespace(1), ROOT, &l)
        };
        let p = pieces(&[512, 0, 1024, 2560]);
        let k = v(&vec_write(4), &p).unwrap();
        assert_eq!((k.len, k.dir), (4096, Direction::ToDevice));
        assert_eq!(k.sqe.cdw12, 7);
        // Exactly the limit, then one byte over.
        assert_eq!(
            v(&vec_write(2), &pieces(&[64 * 1024, 64 * 1024]))
                .unwrap()
                .len,
            128 * 1024
        );
        assert!(matches!(
            v(&vec_write(2), &pieces(&[64 * 1024, 64 * 1024 + 1])),
            Err(Refusal::Invalid(_))
        ));
        // Lengths that would wrap a 64-bit sum.
        assert!(matches!(
            v(&vec_write(2), &pieces(&[u64::MAX, 2])),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            v(&vec_write(1), &pieces(&[u64::MAX])),
            Err(Refusal::Invalid(_))
        ));
        // The count must be the array's.
        assert!(matches!(v(&vec_write(3), &p), Err(Refusal::Invalid(_))));
        // No pieces: no data.
        assert_eq!(v(&vec_write(0), &[]).unwrap().dir, Direction::None);
        let read = PassthruCmd64 {
            opcode: Nvm::Read.raw(),
            ..vec_write(1)
        };
        assert_eq!(
            v(&read, &pieces(&[512])).unwrap().dir,
            Direction::FromDevice
        );
    }

    #[test]
    fn vectored_checks_never_panic() {
        use proptest::prelude::*;
        let e = effects_supporting(&[(0x02, false), (0x01, true)]);
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 80), lens in proptest::collection::vec(any::<u64>(), 0..8), admin in any::<bool>(), w in any::<bool>())| {
            let mut cmd = PassthruCmd64::read_from_bytes(&bytes[..]).unwrap();
            let caller = Caller { sys_admin: admin, writable: w };
            let l = lim(Some(&e));
            let _ = check_vector_count(&cmd, QueueKind::Io, Node::Namespace(1), caller, &l);
            cmd.data_len = lens.len() as u32;
            let p = pieces(&lens);
            if let Ok(k) = check_vectored(&cmd, &p, QueueKind::Io, Node::Namespace(1), caller, &l) {
                prop_assert!(k.len <= 128 * 1024);
                prop_assert_eq!(u64::from(k.len), lens.iter().sum::<u64>());
            }
        });
    }

    #[test]
    fn every_field_combination_is_answered_without_panic() {
        use proptest::prelude::*;
        let e = effects_supporting(&[(0x02, false), (0x01, true)]);
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 80), q in any::<bool>(), n in 0u32..4, admin in any::<bool>(), w in any::<bool>())| {
            let cmd = PassthruCmd64::read_from_bytes(&bytes[..]).unwrap();
            let queue = if q { QueueKind::Admin } else { QueueKind::Io };
            let node = match n { 0 => Node::Controller, 1 => Node::Namespace(1), _ => Node::Partition(1) };
            let caller = Caller { sys_admin: admin, writable: w };
            if let Ok(k) = check(&cmd, queue, node, caller, &lim(Some(&e))) {
                prop_assert!(k.len <= 128 * 1024);
                prop_assert!(!is_vendor(queue, cmd.opcode));
                prop_assert!(caller.sys_admin || !matches!(node, Node::Partition(_)));
                prop_assert!(caller.sys_admin || queue == QueueKind::Admin || matches!(node, Node::Namespace(_)));
            }
        });
    }
}
