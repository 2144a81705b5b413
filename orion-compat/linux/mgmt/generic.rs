// SPDX-License-Identifier: GPL-2.0

//! Generic nodes and io_uring passthrough.
//!
//! Each namespace disk gets a character device `/dev/ong<C>n<NSID>` (the role of the reference
//! driver's `/dev/ngXnY`), a misc device whose parent is the PCI device. It takes the same
//! NVMe ioctls as the whole-disk node (through [`nvme_ioctl`], never as a partition) and
//! io_uring passthrough of I/O commands (`NVME_URING_CMD_IO`, `NVME_URING_CMD_IO_VEC`).
//!
//! The kernel crate's `miscdevice` has no `uring_cmd` hook, so these nodes are raw
//! `struct miscdevice`s with this module's own file operations; the io_uring command helpers
//! that are inline in C come from `uring_helper.c`.
//!
//! Lifetimes: a node is unregistered before its disk is removed (see `blk::Io::remove_disk`).
//! An open file holds only the shared state and the NSID: every command looks the namespace's
//! queue up in [`Shared::disks`] and takes a reference on it (`blk_get_queue`), so a file that
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
    bounce, drain, fill, nvme_ioctl, refused, run_admin, scratch, segments_of, sys_admin, user_ptr,
    Bounce, Ctrl, Shared, Via,
};
use crate::blk::nowait;
use crate::orion::passthru::{self, Caller, Checked, Direction, Node, QueueKind};
use crate::orion_compat::Lock as _;
use core::ffi::{c_int, c_uint, c_void};
use core::marker::PhantomPinned;
use core::ptr;
use kernel::ffi::{c_long, c_ulong};
use kernel::{bindings, prelude::*, str::CString, sync::Arc, types::Opaque, uaccess::UserSlice};

/// `IO_URING_F_NONBLOCK` (`<linux/io_uring_types.h>`; `uring_helper.c` checks these values).
const IO_URING_F_NONBLOCK: c_uint = 0x8000_0000;
/// `IO_URING_F_SQE128`: the ring has 128-byte submission queue entries.
const IO_URING_F_SQE128: c_uint = 1 << 8;
/// `IO_URING_F_CQE32`: the ring has 32-byte completion queue entries.
const IO_URING_F_CQE32: c_uint = 1 << 9;
/// `IORING_URING_CMD_FIXED`: the buffer is a registered one.
const IORING_URING_CMD_FIXED: u32 = 1 << 0;
/// `FMODE_WRITE` of `<linux/fs.h>`.
const FMODE_WRITE: c_uint = 1 << 1;

/// What the helper reports of a command (`struct orion_uring_info` in `uring_helper.c`).
#[repr(C)]
struct UringInfo {
    /// The `struct file` (untyped here: its bindings type is not FFI-safe as a whole).
    file: *mut c_void,
    cmd_op: u32,
    flags: u32,
}

extern "C" {
    fn orion_uring_cmd_info(cmd: *const bindings::io_uring_cmd, info: *mut UringInfo);
    fn orion_uring_cmd_copy(cmd: *const bindings::io_uring_cmd, out: *mut UringCmd);
    fn orion_uring_cmd_pdu(cmd: *mut bindings::io_uring_cmd) -> *mut *mut c_void;
    fn orion_uring_cmd_done32(cmd: *mut bindings::io_uring_cmd, ret: i32, res2: u64, flags: c_uint);
    fn orion_uring_cmd_complete_in_task(cmd: *mut bindings::io_uring_cmd);
}

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

/// A reference on a disk's request queue (`blk_get_queue`): the queue's memory stays while it
/// is held. A queue whose disk is being removed is dying and refuses new requests.
pub(crate) struct QueueRef(*mut bindings::request_queue);

// SAFETY: a queue reference may be used and dropped from any thread.
unsafe impl Send for QueueRef {}

impl Drop for QueueRef {
    fn drop(&mut self) {
        // SAFETY: the reference was taken with `blk_get_queue` and is dropped once.
        unsafe { bindings::blk_put_queue(self.0) };
    }
}

impl Shared {
    /// A reference on namespace `nsid`'s queue, while it has a disk; ENODEV when it has none
    /// (any more). With `nowait`, EAGAIN instead of waiting for the disks' lock.
    fn queue_ref(&self, nsid: u32, nowait: bool) -> Result<QueueRef> {
        let find = |d: &mut KVec<(u32, super::Queue)>| -> Result<QueueRef> {
            let q = d
                .iter()
                .find(|(n, _)| *n == nsid)
                .map(|(_, q)| q.0)
                .ok_or(ENODEV)?;
            // SAFETY: a listed queue is the queue of a registered disk (entries are removed,
            // under this lock, before the disk is).
            if unsafe { bindings::blk_get_queue(q) } {
                Ok(QueueRef(q))
            } else {
                Err(ENODEV)
            }
        };
        if nowait {
            self.disks.try_lock(find).unwrap_or(Err(EAGAIN))
        } else {
            self.disks.lock(find)
        }
    }

    /// Runs `f` on the controller, if it is up; with `nowait`, EAGAIN instead of waiting for
    /// the controller's lock (an admin command may hold it for long).
    fn ctrl_do<R>(&self, nowait: bool, f: impl FnOnce(&mut Ctrl<'static>) -> R) -> Result<R> {
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

/// A misc device with this module's file operations, registered while a [`GenericNode`]
/// holds it.
struct RawNode {
    misc: Opaque<bindings::miscdevice>,
    /// The device name `misc.name` points at.
    _name: CString,
    shared: Arc<Shared>,
    kind: Kind,
    _pin: PhantomPinned,
}

// SAFETY: the `miscdevice` is written only by the misc core (under its `misc_mtx`) and by
// `GenericNode`'s registration and drop; everything else is immutable or `Send + Sync`.
unsafe impl Send for RawNode {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for RawNode {}

/// A registered node (`/dev/ong<C>n<NSID>`); dropping it unregisters the node. Files opened
/// before stay usable (their commands fail with ENODEV once the namespace's disk is gone).
///
/// # Invariants
///
/// The `miscdevice` inside is registered until `drop`.
pub(crate) struct GenericNode(Pin<KBox<RawNode>>);

impl GenericNode {
    /// Registers the generic node of namespace `nsid`, under the PCI device `pdev`.
    pub(crate) fn register(
        shared: &Arc<Shared>,
        nsid: u32,
        pdev: *mut bindings::pci_dev,
    ) -> Result<Self> {
        let name = CString::try_from_fmt(fmt!("ong{}n{}", shared.instance, nsid))?;
        // SAFETY: `pdev` is the bound PCI device of the caller's controller.
        let parent = unsafe { &raw mut (*pdev).dev };
        Self::new(shared.clone(), Kind::Namespace(nsid), name, parent)
    }

    /// Registers the controller node `/dev/onvme<C>` under the PCI device `pdev`, as the
    /// reference driver's `/dev/nvmeX` is a child of its PCI device: a tool that starts from
    /// the PCI device finds the node (`<pci device>/misc/onvme<C>`) and its attributes.
    pub(crate) fn controller(shared: Arc<Shared>, pdev: *mut bindings::pci_dev) -> Result<Self> {
        let name = CString::try_from_fmt(fmt!("onvme{}", shared.instance))?;
        // SAFETY: `pdev` is the bound PCI device of the caller's controller.
        let parent = unsafe { &raw mut (*pdev).dev };
        Self::new(shared, Kind::Controller, name, parent)
    }

    /// The node's device (`/sys/class/misc/<name>`).
    pub(crate) fn device(&self) -> *mut bindings::device {
        // SAFETY: registered (type invariant), so `this_device` is set and stays.
        unsafe { (*self.0.misc.get()).this_device }
    }

    fn new(
        shared: Arc<Shared>,
        kind: Kind,
        name: CString,
        parent: *mut bindings::device,
    ) -> Result<Self> {
        let misc = bindings::miscdevice {
            // CAST: 255.
            minor: bindings::MISC_DYNAMIC_MINOR as c_int,
            name: name.as_char_ptr(),
            fops: &FOPS.0,
            parent,
            ..Default::default()
        };
        let node = KBox::pin(
            RawNode {
                misc: Opaque::new(misc),
                _name: name,
                shared,
                kind,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `misc` is initialised and pinned (boxed): it stays at this address until
        // it is deregistered; its name (owned by the node) and file operations (static)
        // outlive the registration.
        let r = unsafe { bindings::misc_register(node.misc.get()) };
        if r != 0 {
            // Not registered: the box is freed without deregistering.
            return Err(Error::from_errno(r));
        }
        // INVARIANT: registered above.
        Ok(Self(node))
    }
}

impl Drop for GenericNode {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant), deregistered once. `misc_deregister` waits for
        // an `open` in progress (both hold `misc_mtx`), so nothing uses the node afterwards.
        unsafe { bindings::misc_deregister(self.0.misc.get()) };
    }
}

/// The shared state of the node whose `miscdevice` is `misc` (as sysfs hands it to the
/// controller node's attributes: a misc device's driver data is its `miscdevice`).
///
/// # Safety
///
/// `misc` is the `miscdevice` of a registered [`GenericNode`], which outlives `'a`.
pub(crate) unsafe fn shared_of<'a>(misc: *mut bindings::miscdevice) -> &'a Shared {
    // SAFETY: caller's contract; the `miscdevice` is the `misc` field of a `RawNode`.
    unsafe {
        let node =
            kernel::container_of!(misc.cast::<Opaque<bindings::miscdevice>>(), RawNode, misc);
        &(*node).shared
    }
}

/// The nodes' file operations.
struct Fops(bindings::file_operations);

// SAFETY: never written after initialisation; the kernel only reads it.
unsafe impl Sync for Fops {}

static FOPS: Fops = Fops(bindings::file_operations {
    owner: <crate::OrionModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr(),
    open: Some(open),
    release: Some(release),
    unlocked_ioctl: Some(ioctl),
    uring_cmd: Some(uring_cmd),
    uring_cmd_iopoll: Some(uring_cmd_iopoll),
    ..pin_init::zeroed()
});

/// An open node: what its commands need, held until the file is released.
struct OpenFile {
    shared: Arc<Shared>,
    kind: Kind,
}

/// `open`: records the node's shared state and kind in the file.
///
/// # Safety
///
/// Called by `misc_open` for one of our nodes, with its `miscdevice` in `private_data`.
unsafe extern "C" fn open(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `misc_open` holds `misc_mtx`, so the node is registered (and alive) for the
    // call; its `miscdevice` is the `misc` field of a `RawNode`.
    let (shared, kind) = unsafe {
        let misc = (*file).private_data.cast::<Opaque<bindings::miscdevice>>();
        let node = &*kernel::container_of!(misc, RawNode, misc);
        (node.shared.clone(), node.kind)
    };
    match KBox::new(OpenFile { shared, kind }, GFP_KERNEL) {
        Ok(of) => {
            // SAFETY: the file is being opened by us; `release` takes the box back.
            unsafe { (*file).private_data = KBox::into_raw(of).cast() };
            0
        }
        Err(e) => Error::from(e).to_errno(),
    }
}

/// `release`: drops what `open` recorded.
///
/// # Safety
///
/// Called once per file opened with [`open`].
unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
    // SAFETY: `open` stored a boxed `OpenFile` here; this is its only release.
    unsafe { drop(KBox::from_raw((*file).private_data.cast::<OpenFile>())) };
    0
}

/// The file of an open node.
///
/// # Safety
///
/// `file` is an open file of one of our nodes.
unsafe fn open_file<'a>(file: *mut bindings::file) -> (&'a OpenFile, bool) {
    // SAFETY: `open` stored an `OpenFile`, alive until `release`.
    unsafe {
        (
            &*(*file).private_data.cast::<OpenFile>(),
            (*file).f_mode & FMODE_WRITE != 0,
        )
    }
}

/// `unlocked_ioctl`: the NVMe ioctls, as on the whole-disk node (or the controller node).
///
/// # Safety
///
/// Called by the VFS for an open file of one of our nodes.
unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: as above.
    let (of, writable) = unsafe { open_file(file) };
    let r = match of.kind {
        Kind::Controller => nvme_ioctl(&of.shared, Via::Controller, writable, cmd, arg),
        // The node's NSID needs no queue: it answers even once the disk is gone (as the
        // reference driver's generic node).
        // CAST: an NSID is at most 0xffff_fffe; isize is 64 bits here.
        Kind::Namespace(nsid) if cmd == ioctl::ID => Ok(nsid as isize),
        Kind::Namespace(nsid) => of.shared.queue_ref(nsid, false).and_then(|q| {
            // The reference keeps the queue for the whole command.
            nvme_ioctl(&of.shared, Via::Disk(q.0, nsid, false), writable, cmd, arg)
        }),
    };
    match r {
        // CAST: an NSID or a 15-bit status.
        Ok(v) => v as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}

/// `uring_cmd`: an io_uring passthrough command.
///
/// # Safety
///
/// Called by io_uring for a command on an open file of one of our nodes.
unsafe extern "C" fn uring_cmd(ioucmd: *mut bindings::io_uring_cmd, issue_flags: c_uint) -> c_int {
    let mut info = UringInfo {
        file: ptr::null_mut(),
        cmd_op: 0,
        flags: 0,
    };
    // SAFETY: `ioucmd` is the live command io_uring hands us.
    unsafe { orion_uring_cmd_info(ioucmd, &mut info) };
    // SAFETY: the command holds its file, one of ours, open.
    let (of, writable) = unsafe { open_file(info.file.cast()) };
    match issue(of, ioucmd, &info, writable, issue_flags) {
        Ok(()) => EIOCBQUEUED.to_errno(),
        Err(e) => e.to_errno(),
    }
}

/// `uring_cmd_iopoll`: on a polled ring (`IORING_SETUP_IOPOLL`) io_uring keeps issued
/// commands on its poll list and calls this while it waits. Commands here always complete
/// interrupt-driven (through task work, which the waiting submitter runs), so there is nothing
/// to poll: without this hook a polled ring would not wait for them at all.
///
/// # Safety
///
/// Called by io_uring for a command issued on one of our nodes.
unsafe extern "C" fn uring_cmd_iopoll(
    _ioucmd: *mut bindings::io_uring_cmd,
    _iob: *mut bindings::io_comp_batch,
    _poll_flags: c_uint,
) -> c_int {
    0
}

/// Checks and issues a command. `Ok`: it will be (or was) completed with
/// `orion_uring_cmd_done32`; `Err`: io_uring completes it with the errno (EAGAIN: it issues
/// it again from a worker that may block).
fn issue(
    of: &OpenFile,
    ioucmd: *mut bindings::io_uring_cmd,
    info: &UringInfo,
    writable: bool,
    issue_flags: c_uint,
) -> Result {
    // The command needs a 128-byte SQE, the result a 32-byte CQE.
    let big = IO_URING_F_SQE128 | IO_URING_F_CQE32;
    if issue_flags & big != big {
        return Err(EOPNOTSUPP);
    }
    let (queue, node, vectored) = match (of.kind, info.cmd_op) {
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
    let nowait = issue_flags & IO_URING_F_NONBLOCK != 0;
    if queue == QueueKind::Admin && nowait {
        // Admin commands wait on the polled admin queue: from a worker.
        return Err(EAGAIN);
    }
    let mut u = UringCmd::default();
    // SAFETY: a 128-byte SQE (checked above) holds the command; `u` is its size.
    unsafe { orion_uring_cmd_copy(ioucmd, &mut u) };
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
    if k.len != 0 && info.flags & IORING_URING_CMD_FIXED != 0 {
        // Registered buffers are not supported: data always goes through a bounce buffer.
        return Err(EOPNOTSUPP);
    }
    match (queue, node) {
        (QueueKind::Admin, _) => {
            let d = run_admin(&of.shared, &k, &buf)?;
            // SAFETY: `ioucmd` is live and completed once, with the flags it was issued with.
            unsafe { orion_uring_cmd_done32(ioucmd, i32::from(d.status), d.result, issue_flags) };
            Ok(())
        }
        (QueueKind::Io, Node::Namespace(nsid)) => start_io(of, ioucmd, nsid, &k, buf, nowait),
        (QueueKind::Io, _) => Err(ENOTTY),
    }
}

/// An I/O command in flight: everything that must live until it has been completed.
struct InFlight {
    shared: Arc<Shared>,
    /// Keeps the queue while the request is out.
    _q: QueueRef,
    bounce: Bounce,
    /// The bounce buffer as the device sees it (what `cmd` points at).
    segs: KVec<crate::orion::command::Segment>,
    cmd: Option<nowait::Command>,
    buf: UserBuf,
    dir: Direction,
    /// How it ended (set by [`ended`]).
    outcome: nowait::Outcome,
    ioucmd: *mut bindings::io_uring_cmd,
}

/// Bounces the data in and starts an I/O command without waiting.
fn start_io(
    of: &OpenFile,
    ioucmd: *mut bindings::io_uring_cmd,
    nsid: u32,
    k: &Checked,
    buf: UserBuf,
    nowait: bool,
) -> Result {
    let q = of.shared.queue_ref(nsid, nowait)?;
    let qp = q.0;
    let bounce = of
        .shared
        .ctrl_do(nowait, |ctrl| bounce(ctrl, k.len as usize))??;
    if k.dir == Direction::ToDevice {
        buf.copy_in(&bounce)?;
    }
    let segs = segments_of(&bounce)?;
    let st = KBox::new(
        InFlight {
            shared: of.shared.clone(),
            _q: q,
            bounce,
            segs,
            cmd: None,
            buf,
            dir: k.dir,
            outcome: Err(EIO),
            ioucmd,
        },
        GFP_KERNEL,
    )?;
    let st = KBox::into_raw(st);
    // SAFETY: `st` was just leaked: ours alone until the request is started.
    let cmd = unsafe {
        let c = nowait::Command::new(k.sqe, &(*st).segs, ended, st.cast());
        &raw const *(*st).cmd.insert(c)
    };
    // SAFETY: the command's private word is ours; `orion_nvme_uring_finish` takes the state
    // back from it.
    unsafe { *orion_uring_cmd_pdu(ioucmd) = st.cast() };
    // SAFETY:
    // 1. `q` holds a reference on the queue, kept in the state until it is dropped.
    // 2. The state (the command and the bounce buffer its segments describe) is boxed, stays
    //    in place and is freed only by `orion_nvme_uring_finish`, after `ended`.
    let r = unsafe { nowait::start(qp, cmd, k.dir == Direction::ToDevice, k.timeout_ms, nowait) };
    if let Err(e) = r {
        // SAFETY: not started, so `ended` will not run: the state is still ours.
        drop(unsafe { KBox::from_raw(st) });
        return Err(e);
    }
    Ok(())
}

/// The request's end (any context): records the outcome and finishes in task context.
///
/// # Safety
///
/// `ctx` is the `InFlight` of a started command, which nothing else touches until the task
/// work runs.
unsafe fn ended(ctx: *mut c_void, outcome: nowait::Outcome) {
    let st = ctx.cast::<InFlight>();
    // SAFETY: caller's contract; queueing the task work orders this store before it runs.
    unsafe {
        (*st).outcome = outcome;
        orion_uring_cmd_complete_in_task((*st).ioucmd);
    }
}

impl InFlight {
    /// The completion's `res` and `res2`: the NVMe status (0 success) or -errno, and the
    /// result. Data read from the device goes out to the caller first (only while
    /// `user_ok`: otherwise -EINTR, as the reference driver when the submitter is gone).
    fn finish(self, user_ok: bool) -> (i32, u64) {
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

/// Finishes an I/O command in task context (called by `uring_helper.c`'s task work, which
/// then posts the completion with `ret` and `res2`).
///
/// # Safety
///
/// `ioucmd` is a command started by [`start_io`] whose request has ended; called once.
#[no_mangle]
unsafe extern "C" fn orion_nvme_uring_finish(
    ioucmd: *mut bindings::io_uring_cmd,
    user_ok: bool,
    ret: *mut i32,
    res2: *mut u64,
) {
    // SAFETY: `start_io` left the state's address in the private word; `ended` has run, so
    // the state is ours again.
    let st = unsafe { KBox::from_raw((*orion_uring_cmd_pdu(ioucmd)).cast::<InFlight>()) };
    let (r, result) = KBox::into_inner(st).finish(user_ok);
    // SAFETY: the helper passes its locals.
    unsafe {
        *ret = r;
        *res2 = result;
    }
}
