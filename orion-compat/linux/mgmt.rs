// SPDX-License-Identifier: GPL-2.0

//! The management interface: one controller node per controller, `/dev/onvme<C>` (a misc
//! device, the role of the reference driver's `/dev/nvmeX`), and the NVMe ioctls on it and on
//! the disks: admin and I/O passthrough with the Linux uapi layouts.
//!
//! What may be sent is the core's decision ([`passthru::check`]); this module copies the
//! caller's structure in, moves data through a bounce buffer of coherent memory (the device
//! never sees user pages), runs the command and writes the result back. Admin commands run on
//! the core's polled admin queue under the controller's lock; I/O commands travel as blk-mq
//! driver-private requests on the namespace's disk (see `blk::execute_passthru`).
//!
//! A command whose wait ends in a timeout may still be written by the device later: its
//! bounce buffer is kept (quarantined) until the controller has been shut down.

#![forbid(unsafe_code)]

use crate::bindings::blk::Queue as BlkQueue;
use crate::blk::nowait::QueueRef;
use crate::ctrl::{Bounce, Shared};
use crate::orion::command::Segment;
use crate::orion::controller::CtrlError;
use crate::orion::passthru::bounce::{
    admin_followup, admin_timeout, AdminError, AdminFollowup, BounceError, MAX_TIMEOUT_MS,
};
use crate::orion::passthru::{
    self, Caller, Checked, Completion, Direction, Limits, Node, QueueKind, Refusal,
};
use crate::orion::spec::log::Effects;
use crate::orion_compat::{ErrorKind, Lock as _};
use crate::platform::Ctrl;
use kernel::{
    device::Bound,
    pci,
    prelude::*,
    sync::{Arc, ArcBorrow},
    uaccess::{UserPtr, UserSlice},
};
use zerocopy::{FromBytes, IntoBytes};

mod generic;
mod uapi;
pub(crate) use generic::{GenericNode, NodeData, NodeFile, UserBuf};
use uapi::{ioctl, PassthruCmd, PassthruCmd64, UserIo};

/// The most bytes copied between the caller and a bounce buffer at a time.
const COPY_CHUNK: usize = crate::orion::passthru::bounce::CHUNK;

impl Shared {
    /// The core's verdict on `cmd` from `caller` through `node` for `queue`, a refusal as its
    /// errno.
    pub(crate) fn check(
        &self,
        cmd: &passthru::Command,
        queue: QueueKind,
        node: Node,
        caller: Caller,
    ) -> Result<Checked> {
        passthru::check(cmd, queue, node, caller, &self.limits()).map_err(refused)
    }

    fn limits(&self) -> Limits<'_> {
        Limits {
            max_data: self.max_data,
            effects: self
                .effects
                .as_deref()
                .and_then(|p| Effects::ref_from_bytes(p.as_bytes()).ok()),
            vendor_admin: crate::module_parameters::vendor_admin_opcodes.value(),
            vendor_io: crate::module_parameters::vendor_io_opcodes.value(),
            max_timeout_ms: MAX_TIMEOUT_MS,
        }
    }
}

/// The errno for a bounce buffer that could not be built or filled.
fn bounce_errno(e: BounceError) -> Error {
    match e {
        BounceError::Platform(ErrorKind::NoMemory) => ENOMEM,
        BounceError::Platform(ErrorKind::Gone) => ENODEV,
        BounceError::Platform(_) | BounceError::Prp(_) => EIO,
        BounceError::TooLong | BounceError::OutOfRange => EINVAL,
    }
}

/// A bounce buffer of `len` bytes for a command on `ctrl`.
pub(crate) fn bounce(ctrl: &Ctrl, len: usize) -> Result<Bounce> {
    let n = Bounce::chunks_for(len, ctrl.page_size());
    let mut slots = KVec::with_capacity(n, GFP_KERNEL)?;
    for _ in 0..n {
        slots.push(None, GFP_KERNEL)?;
    }
    ctrl.bounce(len, slots).map_err(bounce_errno)
}

/// The bounce buffer's segments as the block layer's passthrough request takes them.
pub(crate) fn segments_of(b: &Bounce) -> Result<KVec<Segment>> {
    let s = b.segments();
    let mut v = KVec::with_capacity(s.as_slice().len(), GFP_KERNEL)?;
    for seg in s.as_slice() {
        v.push(*seg, GFP_KERNEL)?;
    }
    Ok(v)
}

/// Copies `len` bytes from the caller's `addr` into `b` at `off`, through `tmp`.
pub(crate) fn fill(b: &Bounce, off: usize, addr: u64, len: usize, tmp: &mut [u8]) -> Result {
    let mut r = UserSlice::new(user_ptr(addr)?, len).reader();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(tmp.len());
        let t = tmp.get_mut(..n).filter(|t| !t.is_empty()).ok_or(EINVAL)?;
        r.read_slice(t)?;
        b.write(off + done, t).map_err(bounce_errno)?;
        done += n;
    }
    Ok(())
}

/// Copies `len` bytes of `b` at `off` out to the caller's `addr`, through `tmp`.
pub(crate) fn drain(b: &Bounce, off: usize, addr: u64, len: usize, tmp: &mut [u8]) -> Result {
    let mut w = UserSlice::new(user_ptr(addr)?, len).writer();
    let mut done = 0;
    while done < len {
        let n = (len - done).min(tmp.len());
        let t = tmp.get_mut(..n).filter(|t| !t.is_empty()).ok_or(EINVAL)?;
        b.read(off + done, t).map_err(bounce_errno)?;
        w.write_slice(t)?;
        done += n;
    }
    Ok(())
}

/// A scratch buffer for copying to and from `b`.
pub(crate) fn scratch(b: &Bounce) -> Result<KVec<u8>> {
    Ok(KVec::from_elem(0u8, COPY_CHUNK.min(b.len()), GFP_KERNEL)?)
}

fn user_ptr(addr: u64) -> Result<UserPtr> {
    Ok(UserPtr::from_addr(
        usize::try_from(addr).map_err(|_| EFAULT)?,
    ))
}

/// The errno for a refusal; the reason is logged at debug level.
fn refused(r: Refusal) -> Error {
    match r {
        Refusal::Invalid(why) => {
            pr_debug!("orion_nvme: passthrough refused: {}\n", why);
            EINVAL
        }
        Refusal::Denied => EACCES,
        Refusal::DriverOwned(what) => {
            pr_debug!("orion_nvme: passthrough may not set {}\n", what);
            EACCES
        }
        Refusal::VendorOpcode(op) => {
            pr_info!(
                "orion_nvme: vendor-specific opcode {:#04x} refused (not in vendor_*_opcodes)\n",
                op
            );
            EPERM
        }
    }
}

/// Runs a checked admin command with its data in the caller's `buf`, then what the core says
/// follows (a rescan, or a reset after a timeout).
fn run_admin(shared: ArcBorrow<'_, Shared>, k: &Checked, buf: &UserBuf) -> Result<Completion> {
    let (r, b) = shared.with_ctrl(|ctrl| -> Result<_> {
        let b = bounce(ctrl, k.len as usize)?;
        if k.dir == Direction::ToDevice {
            buf.copy_in(&b)?;
        }
        Ok((
            ctrl.admin_passthru(k.sqe, &b, admin_timeout(k.timeout_ms)),
            b,
        ))
    })??;
    let opcode = k.sqe.opcode();
    let followup = admin_followup(&r, opcode, shared.limits().effects);
    let out = match r {
        Ok(result) => Ok(Completion { status: 0, result }),
        Err(AdminError::Ctrl(CtrlError::Status(s))) => Ok(Completion {
            status: s.0,
            result: 0,
        }),
        Err(AdminError::Ctrl(CtrlError::Timeout(_))) => Err(ETIMEDOUT),
        Err(AdminError::Ctrl(CtrlError::Gone)) => Err(ENODEV),
        Err(AdminError::Bounce(e)) => Err(bounce_errno(e)),
        Err(AdminError::Ctrl(_)) => Err(EIO),
    };
    if let Ok(d) = &out {
        if d.status == 0 && k.dir == Direction::FromDevice {
            buf.copy_out(&b)?;
        }
    }
    match followup {
        AdminFollowup::Rescan => {
            shared.rescan_and_log(format_args!("admin command {:#04x}", opcode));
        }
        AdminFollowup::Reset => {
            // The device may still write the buffer: kept until the controller is shut down.
            shared.quarantine(b);
            pr_warn!(
                "orion_nvme: onvme{}: admin command {:#04x} timed out; resetting the controller\n",
                shared.instance,
                opcode
            );
            Arc::from(shared).schedule_reset();
        }
        AdminFollowup::None => {}
    }
    out
}

/// Runs a checked I/O command on the namespace behind `q` with its data in the caller's `buf`.
fn run_io(shared: &Shared, q: BlkQueue<'_>, k: &Checked, buf: &UserBuf) -> Result<Completion> {
    let b = shared.with_ctrl(|ctrl| bounce(ctrl, k.len as usize))??;
    if k.dir == Direction::ToDevice {
        buf.copy_in(&b)?;
    }
    let segs = segments_of(&b)?;
    match crate::blk::execute_passthru(
        q.as_ptr(),
        k.sqe,
        &segs,
        k.dir == Direction::ToDevice,
        k.timeout_ms,
    ) {
        Ok((status, result)) => {
            if status == 0 && k.dir == Direction::FromDevice {
                buf.copy_out(&b)?;
            }
            Ok(Completion { status, result })
        }
        Err(e) => {
            if e == ETIMEDOUT {
                shared.quarantine(b);
            }
            Err(e)
        }
    }
}

/// Where an ioctl came in.
pub(crate) enum Via<'a> {
    /// The controller node.
    Controller,
    /// A disk: its queue, NSID and whether the node is a partition.
    Disk(BlkQueue<'a>, u32, bool),
}

/// Reads a `T` from the caller's `arg`.
fn read_arg<T: FromBytes>(arg: usize) -> Result<T> {
    let mut raw = [0u8; 80];
    let n = core::mem::size_of::<T>();
    let buf = raw.get_mut(..n).ok_or(EINVAL)?;
    UserSlice::new(UserPtr::from_addr(arg), n)
        .reader()
        .read_slice(buf)?;
    T::read_from_bytes(buf).map_err(|_| EINVAL)
}

/// The NVMe ioctls, shared by the controller node and the disks. Returns the NVMe status (0
/// on success, as the reference driver) or an errno.
pub(crate) fn nvme_ioctl(
    shared: ArcBorrow<'_, Shared>,
    via: Via<'_>,
    writable: bool,
    cmd: u32,
    arg: usize,
) -> Result<isize> {
    let caller = Caller {
        sys_admin: crate::bindings::sched::sys_admin(),
        writable,
    };
    let node = match via {
        Via::Controller => Node::Controller,
        Via::Disk(_, nsid, false) => Node::Namespace(nsid),
        Via::Disk(_, nsid, true) => Node::Partition(nsid),
    };
    match cmd {
        ioctl::ID => match via {
            // CAST: an NSID is at most 0xffff_fffe; isize is 64 bits here.
            Via::Disk(_, nsid, _) => Ok(nsid as isize),
            Via::Controller => Err(ENOTTY),
        },
        ioctl::ADMIN_CMD | ioctl::ADMIN64_CMD => {
            let wide = cmd == ioctl::ADMIN64_CMD;
            let c = if wide {
                read_arg::<PassthruCmd64>(arg)?
            } else {
                PassthruCmd64::from(&read_arg::<PassthruCmd>(arg)?)
            };
            let k = shared.check(&c.command(), QueueKind::Admin, node, caller)?;
            let d = run_admin(shared, &k, &UserBuf::Flat(c.addr))?;
            write_result(arg, wide, d.result)?;
            // CAST: a 15-bit status.
            Ok(d.status as isize)
        }
        ioctl::IO_CMD if matches!(via, Via::Controller) => {
            // The reference driver's deprecated I/O on the controller node: only with exactly
            // one namespace, which it then goes to (held, so teardown waits for it).
            shared.disks.lock(|d| match d.as_slice() {
                [(nsid, q)] => nvme_ioctl(
                    shared,
                    Via::Disk(q.0.borrow(), *nsid, false),
                    writable,
                    cmd,
                    arg,
                ),
                _ => Err(EINVAL),
            })
        }
        ioctl::IO_CMD | ioctl::IO64_CMD | ioctl::IO64_CMD_VEC | ioctl::SUBMIT_IO => {
            let Via::Disk(q, nsid, _) = via else {
                return Err(ENOTTY);
            };
            let wide = cmd == ioctl::IO64_CMD || cmd == ioctl::IO64_CMD_VEC;
            let (k, buf) = match cmd {
                ioctl::IO64_CMD_VEC => {
                    let c = read_arg::<PassthruCmd64>(arg)?;
                    generic::import_vectored(&shared, &c, QueueKind::Io, node, caller)?
                }
                ioctl::SUBMIT_IO => {
                    let io = read_arg::<UserIo>(arg)?;
                    let lbs = q.logical_block_size();
                    let b = io.block_io().map_err(refused)?;
                    let n = passthru::block_io(&b, nsid, lbs.trailing_zeros()).map_err(refused)?;
                    let k = shared.check(&n, QueueKind::Io, node, caller)?;
                    (k, UserBuf::Flat(io.addr))
                }
                _ => {
                    let c = if cmd == ioctl::IO64_CMD {
                        read_arg::<PassthruCmd64>(arg)?
                    } else {
                        PassthruCmd64::from(&read_arg::<PassthruCmd>(arg)?)
                    };
                    let k = shared.check(&c.command(), QueueKind::Io, node, caller)?;
                    (k, UserBuf::Flat(c.addr))
                }
            };
            let d = run_io(&shared, q, &k, &buf)?;
            if cmd != ioctl::SUBMIT_IO {
                write_result(arg, wide, d.result)?;
            }
            // CAST: a 15-bit status.
            Ok(d.status as isize)
        }
        ioctl::RESET | ioctl::SUBSYS_RESET | ioctl::RESCAN => match via {
            // Controller operations: not on a namespace node (as the reference driver).
            Via::Disk(..) => Err(ENOTTY),
            Via::Controller if !caller.sys_admin => Err(EACCES),
            Via::Controller if cmd == ioctl::RESCAN => {
                let r = shared.rescan()?;
                pr_info!(
                    "orion_nvme: onvme{}: rescan: {} disks added, {} removed, {} resized\n",
                    shared.instance,
                    r.added,
                    r.removed,
                    r.resized
                );
                Ok(0)
            }
            Via::Controller if cmd == ioctl::RESET => shared.reset("NVME_IOCTL_RESET").map(|()| 0),
            Via::Controller => shared.subsystem_reset().map(|()| 0),
        },
        _ => Err(ENOTTY),
    }
}

fn write_result(arg: usize, wide: bool, result: u64) -> Result {
    let (off, bytes): (usize, &[u8]) = if wide {
        (
            core::mem::offset_of!(PassthruCmd64, result),
            &result.to_le_bytes()[..],
        )
    } else {
        (
            core::mem::offset_of!(PassthruCmd, result),
            &result.to_le_bytes()[..4],
        )
    };
    let at = arg.checked_add(off).ok_or(EFAULT)?;
    UserSlice::new(UserPtr::from_addr(at), bytes.len())
        .writer()
        .write_slice(bytes)
}

/// The controller node of one controller, `/dev/onvme<C>`: a [`GenericNode`] serving the
/// controller (the admin ioctls and io_uring admin commands), with the controller's sysfs
/// attributes.
pub(crate) struct CtrlNode {
    /// Registered while this lives (dropping it unregisters the node).
    _node: GenericNode,
}

impl CtrlNode {
    /// Registers `/dev/onvme<instance>`, a child of the PCI device `pdev`, with the sysfs
    /// attributes `attrs`.
    pub(crate) fn register(
        shared: Arc<Shared>,
        pdev: &pci::Device<Bound>,
        attrs: &'static crate::bindings::sysfs::Group<crate::bindings::sysfs::MiscHost<NodeFile>>,
    ) -> Result<Pin<KBox<Self>>> {
        let instance = shared.instance;
        let node = GenericNode::controller(shared, pdev)?;
        // The attributes go with the device: `misc_deregister` removes them. (They follow
        // the add event; libnvme reads them when it scans, not from the event.)
        if let Err(e) = node.add_group(attrs) {
            pr_warn!(
                "orion_nvme: onvme{}: no sysfs attributes ({})\n",
                instance,
                e.to_errno()
            );
        }
        Ok(KBox::pin(Self { _node: node }, GFP_KERNEL)?)
    }
}

/// The block layer's view of the controller's state: the disks' queues for the controller
/// node, their generic nodes, their ioctls, and the timeout ladder's questions.
impl crate::blk::Owner for Shared {
    type DiskFront = GenericNode;

    fn queues_changed(&self, io_queues: u32, depth: u32) {
        self.set_queues(io_queues, depth);
    }

    fn disk_added(&self, nsid: u32, q: QueueRef) -> Result {
        self.add_disk(nsid, q)
    }

    fn disk_front(this: &Arc<Self>, nsid: u32, pdev: &pci::Device<Bound>) -> Result<GenericNode> {
        GenericNode::register(this, nsid, pdev)
    }

    fn disk_removing(&self, nsid: u32) {
        self.forget_disk(nsid);
    }

    fn disks_removing(&self) {
        self.forget_disks();
    }

    fn disk_ioctl(
        this: ArcBorrow<'_, Self>,
        q: BlkQueue<'_>,
        nsid: u32,
        partition: bool,
        writable: bool,
        cmd: u32,
        arg: usize,
    ) -> Result<isize> {
        nvme_ioctl(this, Via::Disk(q, nsid, partition), writable, cmd, arg)
    }

    fn is_stopping(&self) -> bool {
        Shared::is_stopping(self)
    }

    fn is_recovering(&self) -> bool {
        Shared::is_recovering(self)
    }

    fn is_live(&self) -> bool {
        Shared::is_live(self)
    }

    fn abort(&self, sqid: u16, cid: u16) -> core::result::Result<bool, CtrlError> {
        Shared::abort(self, sqid, cid)
    }

    fn schedule_reset(this: &Arc<Self>) {
        Shared::schedule_reset(this);
    }
}
