//! User passthrough: the management interface's commands as callers hand them in.
//!
//! The platform's front end decodes its caller's request (whatever its wire format) into the
//! API's neutral [`Command`], asks [`check`] what may be sent, moves the data through a
//! [`bounce`] buffer and reports the [`Completion`] back. Everything here but the bounce
//! buffer is pure.
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

use crate::orion::spec::features::Fid;
use crate::orion::spec::identify::Cns;
use crate::orion::spec::log::{Effect, Effects};
use crate::orion::spec::opcode::{Admin, DataTransfer, ADMIN_VENDOR_FIRST, IO_VENDOR_FIRST};
use crate::orion::spec::sqe::{IdentifyCdw10, Qword, RwCdw12, RwCdw15, SetFeaturesCdw10, Sqe};

pub mod bounce;

pub use crate::orion_compat::passthru::{Command, Completion};

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
    cmd: &Command,
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
    cmd: &Command,
    queue: QueueKind,
    node: Node,
    caller: Caller,
    lim: &Limits<'_>,
) -> Result<Checked, Refusal> {
    if cmd.bad_flags {
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
    if cmd.reserved_set {
        // The reference driver ignores these; they are reserved, so a nonzero value is a
        // malformed request.
        return Err(Refusal::Invalid("reserved field"));
    }
    if cmd.metadata {
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

/// Checks a vectored command before its pieces are read: every check of [`check`] that
/// does not depend on the data length, so an unprivileged caller is refused (EACCES) before
/// its array is looked at, then the number of pieces (at most `max_pieces`, the front end's
/// limit). Returns the number of pieces to read.
pub fn check_vector_count(
    cmd: &Command,
    pieces: u32,
    max_pieces: u32,
    queue: QueueKind,
    node: Node,
    caller: Caller,
    lim: &Limits<'_>,
) -> Result<usize, Refusal> {
    let header = Command {
        data_len: 0,
        ..*cmd
    };
    check(&header, queue, node, caller, lim)?;
    if pieces > max_pieces {
        return Err(Refusal::Invalid("more pieces than the platform takes"));
    }
    usize::try_from(pieces).map_err(|_| Refusal::Invalid("piece count"))
}

/// Checks a vectored command with the lengths of its pieces (read from the caller after
/// [`check_vector_count`]): their total is the command's data length, checked as [`check`]
/// checks a flat buffer's, so a total beyond the transfer limit is refused before any piece
/// is touched. Empty pieces are allowed; no piece at all means no data.
pub fn check_vectored(
    cmd: &Command,
    lens: impl IntoIterator<Item = u64>,
    queue: QueueKind,
    node: Node,
    caller: Caller,
    lim: &Limits<'_>,
) -> Result<Checked, Refusal> {
    let mut total: u64 = 0;
    for len in lens {
        total = total
            .checked_add(len)
            .filter(|&t| t <= u64::from(lim.max_data))
            .ok_or(Refusal::Invalid("pieces beyond the transfer limit"))?;
    }
    let flat = Command {
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

/// A read or write described in blocks, as a block-I/O passthrough request gives it: the
/// NVM command set's Read and Write fields (NVM Command Set 1.0 §3.2.4, §3.2.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockIo {
    /// Opcode: only Read (02h) and Write (01h) are accepted (as the reference driver).
    pub opcode: u8,
    /// Number of blocks, 0's based.
    pub nblocks: u16,
    /// CDW12 bits 31:16 (FUA, LR, PRINFO, ...).
    pub control: u16,
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
}

/// Turns a block read or write into the equivalent passthrough command for namespace `nsid`
/// with `lba_shift`-sized blocks. Only Read and Write are accepted.
pub fn block_io(io: &BlockIo, nsid: u32, lba_shift: u32) -> Result<Command, Refusal> {
    use crate::orion::spec::opcode::Nvm;
    if io.opcode != Nvm::Read.raw() && io.opcode != Nvm::Write.raw() {
        return Err(Refusal::Invalid(
            "a block request takes only Read and Write",
        ));
    }
    let len = (u64::from(io.nblocks) + 1) << lba_shift;
    let data_len = u32::try_from(len).map_err(|_| Refusal::Invalid("length"))?;
    Ok(Command {
        opcode: io.opcode,
        nsid,
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
    use zerocopy::FromZeros;

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

    fn identify(cns: u32) -> Command {
        Command {
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
            c.bad_flags = true;
            assert_eq!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid("flags"))
            );
            let mut c = identify(1);
            c.reserved_set = true;
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Namespace(1), who, &l),
                Err(Refusal::Invalid(_))
            ));
            let mut c = identify(1);
            c.reserved_set = true;
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
            c.metadata = true;
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
        let log = Command {
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
        let read = Command {
            opcode: Nvm::Read.raw(),
            nsid: 1,
            data_len: 512,
            ..Default::default()
        };
        let write = Command {
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
        let flush = Command {
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
        let other = Command { nsid: 2, ..read };
        assert!(matches!(
            check(&other, QueueKind::Io, Node::Namespace(1), ROOT, &l),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn vendor_opcodes_need_listing_even_for_root() {
        let mut l = lim(None);
        let va = Command {
            opcode: 0xc1,
            ..Default::default()
        };
        let vi = Command {
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
            let c = Command {
                opcode: Admin::SetFeatures.raw(),
                cdw10: fid,
                ..Default::default()
            };
            assert!(matches!(
                check(&c, QueueKind::Admin, Node::Controller, ROOT, &lim(None)),
                Err(Refusal::DriverOwned(_))
            ));
        }
        let temp = Command {
            opcode: Admin::SetFeatures.raw(),
            cdw10: 0x04,
            ..Default::default()
        };
        assert!(check(&temp, QueueKind::Admin, Node::Controller, ROOT, &lim(None)).is_ok());
        let get = Command {
            opcode: Admin::GetFeatures.raw(),
            cdw10: 0x07,
            ..Default::default()
        };
        assert!(check(&get, QueueKind::Admin, Node::Controller, ROOT, &lim(None)).is_ok());
    }

    #[test]
    fn queue_management_is_the_drivers() {
        for op in [0x00u8, 0x01, 0x04, 0x05, 0x0c, 0x7c] {
            let c = Command {
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
    fn block_io_becomes_read_or_write() {
        let io = BlockIo {
            opcode: 0x02,
            nblocks: 7,
            slba: 0x1_0000_0002,
            control: 0x4000,
            ..Default::default()
        };
        let c = block_io(&io, 3, 9).unwrap();
        assert_eq!(
            (c.nsid, c.data_len, c.cdw10, c.cdw11, c.cdw12),
            (3, 4096, 2, 1, 0x4000_0007)
        );
        let tagged = BlockIo {
            control: 0xffff,
            dsmgmt: 0x8765_4321,
            reftag: 0xdead_beef,
            apptag: 0x1234,
            appmask: 0xff00,
            ..io
        };
        let c = block_io(&tagged, 3, 9).unwrap();
        assert_eq!(
            (c.cdw12, c.cdw13, c.cdw14, c.cdw15),
            (0xffff_0007, 0x8765_4321, 0xdead_beef, 0xff00_1234)
        );
        assert!(block_io(&BlockIo { opcode: 0x09, ..io }, 3, 9).is_err());
        // 65536 blocks of 64 KiB do not fit a u32 length.
        assert!(block_io(
            &BlockIo {
                nblocks: u16::MAX,
                ..io
            },
            3,
            16
        )
        .is_err());
    }

    fn vec_write(count: u32) -> Command {
        Command {
            opcode: Nvm::Write.raw(),
            nsid: 1,
            data_len: count,
            cdw12: 7,
            ..Default::default()
        }
    }

    /// The front end's limit on pieces in the tests (a 1024-entry iovec limit).
    const MAX_PIECES: u32 = 1024;

    /// A command decoded from arbitrary bytes, every field free.
    fn arbitrary(b: &[u8]) -> Command {
        let d = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        Command {
            opcode: b[0],
            nsid: d(1),
            cdw2: d(2),
            cdw3: d(3),
            cdw10: d(4),
            cdw11: d(5),
            cdw12: d(6),
            cdw13: d(7),
            cdw14: d(8),
            cdw15: d(9),
            data_len: d(10),
            timeout_ms: d(11),
            bad_flags: b[48] & 1 != 0,
            reserved_set: b[49] & 1 != 0,
            metadata: b[50] & 1 != 0,
        }
    }

    #[test]
    fn vector_count_is_checked_after_permission() {
        let e = effects_supporting(&[(0x02, false), (0x01, true)]);
        let l = lim(Some(&e));
        let n = |c: &Command, who| {
            check_vector_count(
                c,
                c.data_len,
                MAX_PIECES,
                QueueKind::Io,
                Node::Namespace(1),
                who,
                &l,
            )
        };
        assert_eq!(n(&vec_write(3), ROOT), Ok(3));
        assert_eq!(n(&vec_write(0), ROOT), Ok(0));
        assert_eq!(n(&vec_write(MAX_PIECES), ROOT), Ok(1024));
        assert!(matches!(
            n(&vec_write(MAX_PIECES + 1), ROOT),
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
        let bad = Command {
            bad_flags: true,
            ..vec_write(2)
        };
        assert_eq!(n(&bad, ROOT), Err(Refusal::Invalid("flags")));
        let other = Command {
            nsid: 2,
            ..vec_write(2)
        };
        assert!(matches!(n(&other, ROOT), Err(Refusal::Invalid(_))));
    }

    #[test]
    fn vectored_length_is_the_sum_of_the_pieces() {
        let l = lim(None);
        let v = |c: &Command, p: &[u64]| {
            check_vectored(
                c,
                p.iter().copied(),
                QueueKind::Io,
                Node::Namespace(1),
                ROOT,
                &l,
            )
        };
        let p = [512, 0, 1024, 2560];
        let k = v(&vec_write(4), &p).unwrap();
        assert_eq!((k.len, k.dir), (4096, Direction::ToDevice));
        assert_eq!(k.sqe.cdw12, 7);
        // Exactly the limit, then one byte over.
        assert_eq!(
            v(&vec_write(2), &([64 * 1024, 64 * 1024])).unwrap().len,
            128 * 1024
        );
        assert!(matches!(
            v(&vec_write(2), &([64 * 1024, 64 * 1024 + 1])),
            Err(Refusal::Invalid(_))
        ));
        // Lengths that would wrap a 64-bit sum.
        assert!(matches!(
            v(&vec_write(2), &([u64::MAX, 2])),
            Err(Refusal::Invalid(_))
        ));
        assert!(matches!(
            v(&vec_write(1), &([u64::MAX])),
            Err(Refusal::Invalid(_))
        ));
        // No pieces: no data.
        assert_eq!(v(&vec_write(0), &[]).unwrap().dir, Direction::None);
        let read = Command {
            opcode: Nvm::Read.raw(),
            ..vec_write(1)
        };
        assert_eq!(v(&read, &([512])).unwrap().dir, Direction::FromDevice);
    }

    #[test]
    fn vectored_checks_never_panic() {
        use proptest::prelude::*;
        let e = effects_supporting(&[(0x02, false), (0x01, true)]);
        proptest!(|(bytes in proptest::collection::vec(any::<u8>(), 80), lens in proptest::collection::vec(any::<u64>(), 0..8), admin in any::<bool>(), w in any::<bool>())| {
            let cmd = arbitrary(&bytes);
            let caller = Caller { sys_admin: admin, writable: w };
            let l = lim(Some(&e));
            let _ = check_vector_count(&cmd, cmd.data_len, MAX_PIECES, QueueKind::Io, Node::Namespace(1), caller, &l);
            if let Ok(k) = check_vectored(&cmd, lens.iter().copied(), QueueKind::Io, Node::Namespace(1), caller, &l) {
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
            let cmd = arbitrary(&bytes);
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
