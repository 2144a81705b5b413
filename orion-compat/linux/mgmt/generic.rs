// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! Generic nodes and io_uring passthrough.
//!
//! Each namespace disk gets a character device `/dev/ong<C>n<NSID>` (the role of the reference
//! driver's `/dev/ngXnY`), a misc device whose parent is the PCI device. It takes the same
//! NVMe ioctls as the whole-disk node (through [`nvme_ioctl`], never as a partition) and
//! io_uring passthrough of I/O commands (`NVME_URING_CMD_IO`, `NVME_URING_CMD_IO_VEC`).
//!
//! The kernel crate's `miscdevice` has no `uring_cmd` hook, so these nodes are
//! [`misc::Registration`]s of the bindings, whose file operations call [`NodeFile`]'s
//! [`FileOps`] methods; io_uring commands come as [`uring::Cmd`]s.
//!
//! Lifetimes: a node is unregistered before its disk is removed (see `blk::Io::remove_disk`).
//! An open file holds only the shared state and the NSID: every command looks the namespace's
//! queue up in `Shared::disks` and takes a reference on it (`blk_get_queue`), so a file that
//! outlives its disk gets ENODEV and never touches a freed queue. A request in flight keeps the
//! disk's removal waiting (`del_gendisk` drains the queue).
//!
//! io_uring I/O commands are asynchronous: the data is copied into a coherent bounce buffer at
//! issue, the request is started with `blk_execute_rq_nowait`, its end (in interrupt context)
//! queues task work, and the task work copies the data out in the submitter's context and posts
//! the completion: the NVMe status in the CQE's `res`, the result in its second (big CQE) word.
//! io_uring admin commands (controller node) run synchronously, from io_uring's worker thread.

use super::uapi::{ioctl, IoVec, PassthruCmd64, UringCmd, MAX_IOVECS};
use super::{
    bounce, drain, fill, nvme_ioctl, refused, run_admin, scratch, segments_of, user_ptr, Via,
};
use crate::bindings::misc::{self, FileOps};
use crate::bindings::sched::sys_admin;
use crate::bindings::uring;
use crate::blk::nowait::{self, QueueRef};
use crate::ctrl::{Bounce, Queue, Shared};
use crate::orion::passthru::{self, Caller, Checked, Direction, Node, QueueKind};
use crate::orion_compat::Lock as _;
use crate::platform::Ctrl;
use kernel::{device::Bound, pci, prelude::*, str::CString, sync::Arc, uaccess::UserSlice};

/// Where a command's data lives in the caller's memory.
pub(crate) enum UserBuf {
    /// One buffer at this address (0: none; the device then sees a zeroed bounce buffer and
    /// whatever it writes is dropped, as with the reference driver's unmapped buffer).
    Flat(u64),
    /// The pieces of a vectored buffer, in order; their lengths add up to the command's.
    Vectored(KVec<IoVec>),
}

impl UserBuf {
    /// Copies the caller's data into `b`.
    pub(crate) fn copy_in(&self, b: &Bounce) -> Result {
        match self {
            Self::Flat(0) => Ok(()),
            Self::Flat(addr) => fill(b, 0, *addr, b.len(), &mut scratch(b)?),
            Self::Vectored(v) => scatter(b, v, fill),
        }
    }

    /// Copies `b` out to the caller's memory.
    pub(crate) fn copy_out(&self, b: &Bounce) -> Result {
        match self {
            Self::Flat(0) => Ok(()),
            Self::Flat(addr) => drain(b, 0, *addr, b.len(), &mut scratch(b)?),
            Self::Vectored(v) => scatter(b, v, drain),
        }
    }
}

/// Runs `f(offset, addr, len, tmp)` for each piece of `v` at its offset in `b`, with a
/// scratch buffer of at most a copy chunk.
fn scatter(
    b: &Bounce,
    v: &[IoVec],
    mut f: impl FnMut(&Bounce, usize, u64, usize, &mut [u8]) -> Result,
) -> Result {
    let mut tmp = scratch(b)?;
    let mut off = 0usize;
    for piece in v {
        let len = usize::try_from(piece.len).map_err(|_| EINVAL)?;
        if len == 0 {
            continue;
        }
        let end = off
            .checked_add(len)
            .filter(|&e| e <= b.len())
            .ok_or(EINVAL)?;
        f(b, off, piece.base, len, &mut tmp)?;
        off = end;
    }
    Ok(())
}

/// Checks a vectored command (`data_len` is its iovec count) and reads its iovecs from the
/// caller: permission and the command's fields first, then the count, the array (EFAULT if
/// unreadable) and the total length against the transfer limit.
pub(crate) fn import_vectored(
    shared: &Shared,
    c: &PassthruCmd64,
    queue: QueueKind,
    node: Node,
    caller: Caller,
) -> Result<(Checked, UserBuf)> {
    let lim = shared.limits();
    let n = passthru::check_vector_count(
        &c.command(),
        c.data_len,
        MAX_IOVECS,
        queue,
        node,
        caller,
        &lim,
    )
    .map_err(refused)?;
    let mut vecs = KVec::from_elem(IoVec::default(), n, GFP_KERNEL)?;
    if n > 0 {
        let bytes = vecs.as_mut_slice().as_mut_bytes();
        UserSlice::new(user_ptr(c.addr)?, bytes.len())
            .reader()
            .read_slice(bytes)?;
    }
    let lens = vecs.iter().map(|v| v.len);
    let k =
        passthru::check_vectored(&c.command(), lens, queue, node, caller, &lim).map_err(refused)?;
    Ok((k, UserBuf::Vectored(vecs)))
}

impl Shared {
    /// A reference on namespace `nsid`'s queue, while it has a disk; ENODEV when it has none
    /// (any more). With `nowait`, EAGAIN instead of waiting for the disks' lock.
    fn queue_ref(&self, nsid: u32, nowait: bool) -> Result<QueueRef> {
        let find = |d: &mut KVec<(u32, Queue)>| -> Result<QueueRef> {
            let q = d
                .iter()
                .find(|(n, _)| *n == nsid)
                .map(|(_, q)| q)
                .ok_or(ENODEV)?;
            q.get_ref().ok_or(ENODEV)
        };
        if nowait {
            self.disks.try_lock(find).unwrap_or(Err(EAGAIN))
        } else {
            self.disks.lock(find)
        }
    }

    /// Runs `f` on the controller, if it is up; with `nowait`, EAGAIN instead of waiting for
    /// the controller's lock (an admin command may hold it for long).
    fn ctrl_do<R>(&self, nowait: bool, f: impl FnOnce(&mut Ctrl) -> R) -> Result<R> {
        if nowait {
            self.ctrl
                .try_lock(|c| c.as_mut().map(f))
                .ok_or(EAGAIN)?
                .ok_or(ENODEV)
        } else {
            self.with_ctrl(f)
        }
    }
}

/// What a node serves.
#[derive(Clone, Copy)]
enum Kind {
    /// The controller node: admin commands.
    Controller,
    /// A namespace's generic node.
    Namespace(u32),
}

/// What a node serves: the registration's data, which its files and (for the controller
/// node) its sysfs attributes see.
pub(crate) struct NodeData {
    shared: Arc<Shared>,
    kind: Kind,
}

impl NodeData {
    /// The controller's shared state.
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

/// A registered node (`/dev/ong<C>n<NSID>`); dropping it unregisters the node. Files opened
/// before stay usable (their commands fail with ENODEV once the namespace's disk is gone).
pub(crate) struct GenericNode(misc::Registration<NodeFile>);

impl GenericNode {
    /// Registers the generic node of namespace `nsid`, under the PCI device `pdev`.
    pub(crate) fn register(
        shared: &Arc<Shared>,
        nsid: u32,
        pdev: &pci::Device<Bound>,
    ) -> Result<Self> {
        let name = CString::try_from_fmt(fmt!("ong{}n{}", shared.instance, nsid))?;
        Self::new(shared.clone(), Kind::Namespace(nsid), name, pdev)
    }

    /// Registers the controller node `/dev/onvme<C>` under the PCI device `pdev`, as the
    /// reference driver's `/dev/nvmeX` is a child of its PCI device: a tool that starts from
    /// the PCI device finds the node (`<pci device>/misc/onvme<C>`) and its attributes.
    pub(crate) fn controller(shared: Arc<Shared>, pdev: &pci::Device<Bound>) -> Result<Self> {
        let name = CString::try_from_fmt(fmt!("onvme{}", shared.instance))?;
        Self::new(shared, Kind::Controller, name, pdev)
    }

    /// Adds `group` to the node's device (removed with it).
    pub(crate) fn add_group(
        &self,
        group: &'static crate::bindings::sysfs::Group<crate::bindings::sysfs::MiscHost<NodeFile>>,
    ) -> Result {
        self.0.add_group(group)
    }

    fn new(
        shared: Arc<Shared>,
        kind: Kind,
        name: CString,
        pdev: &pci::Device<Bound>,
    ) -> Result<Self> {
        let node = NodeData { shared, kind };
        Ok(Self(misc::Registration::register(
            name,
            pdev.as_ref(),
            node,
        )?))
    }
}

/// An open node: what its commands need, held until the file is released.
pub(crate) struct NodeFile {
    shared: Arc<Shared>,
    kind: Kind,
}

impl FileOps for NodeFile {
    type Node = NodeData;

    /// Records the node's shared state and kind in the file.
    fn open(node: &NodeData) -> Result<Self> {
        Ok(Self {
            shared: node.shared.clone(),
            kind: node.kind,
        })
    }

    /// The NVMe ioctls, as on the whole-disk node (or the controller node).
    fn ioctl(&self, writable: bool, cmd: u32, arg: usize) -> Result<isize> {
        match self.kind {
            Kind::Controller => nvme_ioctl(
                self.shared.as_arc_borrow(),
                Via::Controller,
                writable,
                cmd,
                arg,
            ),
            // The node's NSID needs no queue: it answers even once the disk is gone (as the
            // reference driver's generic node).
            // CAST: an NSID is at most 0xffff_fffe; isize is 64 bits here.
            Kind::Namespace(nsid) if cmd == ioctl::ID => Ok(nsid as isize),
            Kind::Namespace(nsid) => self.shared.queue_ref(nsid, false).and_then(|q| {
                // The reference keeps the queue for the whole command.
                nvme_ioctl(
                    self.shared.as_arc_borrow(),
                    Via::Disk(q.borrow(), nsid, false),
                    writable,
                    cmd,
                    arg,
                )
            }),
        }
    }

    /// An io_uring passthrough command.
    fn uring_cmd(&self, writable: bool, cmd: uring::Cmd) -> uring::Issued {
        let p = match prepare(self, &cmd, writable) {
            Ok(p) => p,
            Err(e) => return cmd.fail(e),
        };
        match (p.queue, p.node) {
            (QueueKind::Admin, _) => match run_admin(self.shared.as_arc_borrow(), &p.k, &p.buf) {
                Ok(d) => cmd.done32(i32::from(d.status), d.result),
                Err(e) => cmd.fail(e),
            },
            (QueueKind::Io, Node::Namespace(nsid)) => match prepare_io(self, nsid, p) {
                Ok((mut st, rq)) => {
                    let (issued, pending) = cmd.defer();
                    st.pending = Some(pending);
                    rq.start(st);
                    issued
                }
                Err(e) => cmd.fail(e),
            },
            (QueueKind::Io, _) => cmd.fail(ENOTTY),
        }
    }
}

/// A checked io_uring command, ready to run.
struct Prepared {
    k: Checked,
    buf: UserBuf,
    queue: QueueKind,
    node: Node,
    nowait: bool,
}

/// Checks a command (EAGAIN: io_uring issues it again from a worker that may block).
fn prepare(of: &NodeFile, cmd: &uring::Cmd, writable: bool) -> Result<Prepared> {
    // The command needs a 128-byte SQE, the result a 32-byte CQE.
    if !cmd.big_entries() {
        return Err(EOPNOTSUPP);
    }
    let (queue, node, vectored) = match (of.kind, cmd.op()) {
        (Kind::Namespace(n), ioctl::URING_CMD_IO) => (QueueKind::Io, Node::Namespace(n), false),
        (Kind::Namespace(n), ioctl::URING_CMD_IO_VEC) => (QueueKind::Io, Node::Namespace(n), true),
        (Kind::Controller, ioctl::URING_CMD_ADMIN) => (QueueKind::Admin, Node::Controller, false),
        (Kind::Controller, ioctl::URING_CMD_ADMIN_VEC) => {
            (QueueKind::Admin, Node::Controller, true)
        }
        // As the reference driver: I/O only on a namespace's node, admin only on the
        // controller's.
        _ => return Err(ENOTTY),
    };
    let nowait = cmd.nonblocking();
    if queue == QueueKind::Admin && nowait {
        // Admin commands wait on the polled admin queue: from a worker.
        return Err(EAGAIN);
    }
    let u = UringCmd::read_from_bytes(&cmd.read_cmd()?).map_err(|_| EINVAL)?;
    let c = PassthruCmd64::from(&u);
    let caller = Caller {
        sys_admin: sys_admin(),
        writable,
    };
    let (k, buf) = if vectored {
        import_vectored(&of.shared, &c, queue, node, caller)?
    } else {
        let k = of.shared.check(&c.command(), queue, node, caller)?;
        // As the reference driver maps it: a length needs a buffer.
        if k.len != 0 && c.addr == 0 {
            return Err(EFAULT);
        }
        (k, UserBuf::Flat(c.addr))
    };
    if k.len != 0 && cmd.fixed_buffer() {
        // Registered buffers are not supported: data always goes through a bounce buffer.
        return Err(EOPNOTSUPP);
    }
    Ok(Prepared {
        k,
        buf,
        queue,
        node,
        nowait,
    })
}

/// An I/O command in flight: everything that must live until it has been completed.
struct InFlight {
    shared: Arc<Shared>,
    /// Keeps the queue while the request is out.
    _q: QueueRef,
    bounce: Bounce,
    /// The bounce buffer as the device sees it (what `cmd` points at).
    _segs: KVec<crate::orion::command::Segment>,
    cmd: nowait::Command,
    buf: UserBuf,
    dir: Direction,
    /// How it ended (set by [`nowait::Owner::ended`]).
    outcome: nowait::Outcome,
    /// The io_uring command, completed once the request has ended.
    pending: Option<uring::Pending>,
}

/// Bounces the data in and makes the request of an I/O command, ready to start.
fn prepare_io(of: &NodeFile, nsid: u32, p: Prepared) -> Result<(KBox<InFlight>, nowait::Request)> {
    let k = &p.k;
    let q = of.shared.queue_ref(nsid, p.nowait)?;
    let bounce = of
        .shared
        .ctrl_do(p.nowait, |ctrl| bounce(ctrl, k.len as usize))??;
    if k.dir == Direction::ToDevice {
        p.buf.copy_in(&bounce)?;
    }
    let segs = segments_of(&bounce)?;
    // The segments' memory stays where it is when the vector moves into the state.
    let cmd = nowait::Command::new(k.sqe, &segs);
    let st = KBox::new(
        InFlight {
            shared: of.shared.clone(),
            _q: q,
            bounce,
            _segs: segs,
            cmd,
            buf: p.buf,
            dir: k.dir,
            outcome: Err(EIO),
            pending: None,
        },
        GFP_KERNEL,
    )?;
    let rq = nowait::Request::alloc(&st._q, k.dir == Direction::ToDevice, k.timeout_ms, p.nowait)?;
    Ok((st, rq))
}

impl nowait::Owner for InFlight {
    fn command(&self) -> &nowait::Command {
        &self.cmd
    }

    /// The request's end (any context): records the outcome and finishes in task context.
    fn ended(mut this: KBox<Self>, outcome: nowait::Outcome) {
        this.outcome = outcome;
        if let Some(pending) = this.pending.take() {
            pending.complete_in_task(this);
        }
    }
}

impl uring::Finish for InFlight {
    fn finish(this: KBox<Self>, user_ok: bool) -> (i32, u64) {
        KBox::into_inner(this).result(user_ok)
    }
}

impl InFlight {
    /// The completion's `res` and `res2`: the NVMe status (0 success) or -errno, and the
    /// result. Data read from the device goes out to the caller first (only while
    /// `user_ok`: otherwise -EINTR, as the reference driver when the submitter is gone).
    fn result(self, user_ok: bool) -> (i32, u64) {
        let Self {
            shared,
            bounce,
            buf,
            dir,
            outcome,
            ..
        } = self;
        match outcome {
            Ok((0, result)) => {
                if dir == Direction::FromDevice {
                    if !user_ok {
                        return (EINTR.to_errno(), result);
                    }
                    if let Err(e) = buf.copy_out(&bounce) {
                        return (e.to_errno(), result);
                    }
                }
                (0, result)
            }
            Ok((status, result)) => (i32::from(status), result),
            Err(e) => {
                if e == ETIMEDOUT {
                    // The device may still write it: kept until the controller is shut down.
                    shared.quarantine(bounce);
                }
                (e.to_errno(), 0)
            }
        }
    }
}
