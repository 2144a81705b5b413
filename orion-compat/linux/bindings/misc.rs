// SPDX-License-Identifier: GPL-2.0

//! A misc device (`struct miscdevice`) with ioctl and io_uring command file operations.
//!
//! `kernel::miscdevice` has no `uring_cmd` hook and no parent device, so this is its own
//! registration: a node holds a [`FileOps::Node`], each open file a [`FileOps`] value made
//! from it, and the file operations call the trait's safe methods.

use super::uring;
use core::ffi::{c_int, c_uint};
use core::marker::PhantomPinned;
use kernel::ffi::{c_long, c_ulong};
use kernel::{bindings, device, prelude::*, str::CString, types::Opaque};

/// `FMODE_WRITE` of `<linux/fs.h>` (`uring_helper.c` checks the value).
const FMODE_WRITE: c_uint = 1 << 1;

/// What a node's files do. One value per open file, made by [`FileOps::open`] and dropped on
/// its last close.
pub(crate) trait FileOps: Sized + Send + Sync + 'static {
    /// What the registration holds for its files (and its sysfs attributes).
    type Node: Send + Sync + 'static;

    /// `open`: the file's state.
    fn open(node: &Self::Node) -> Result<Self>;

    /// `unlocked_ioctl`: `writable` is whether the file was opened for writing. The value (or
    /// the errno) is what the system call returns.
    fn ioctl(&self, writable: bool, cmd: u32, arg: usize) -> Result<isize>;

    /// `uring_cmd`: an io_uring command on the file. The command is consumed on every path:
    /// the returned [`uring::Issued`] says how io_uring learns its end.
    fn uring_cmd(&self, writable: bool, cmd: uring::Cmd) -> uring::Issued;
}

/// The `struct miscdevice` with what it points at.
#[repr(C)]
struct Inner<F: FileOps> {
    misc: Opaque<bindings::miscdevice>,
    /// The device name `misc.name` points at.
    _name: CString,
    node: F::Node,
    _pin: PhantomPinned,
}

/// A registered misc device; dropping it deregisters the device. Files opened before stay
/// usable: each holds its own [`FileOps`] value.
///
/// # Invariants
///
/// The `miscdevice` inside is registered, with [`VTable::<F>`]'s operations, until `drop`.
pub(crate) struct Registration<F: FileOps> {
    inner: Pin<KBox<Inner<F>>>,
}

// SAFETY: the `miscdevice` is written only by the misc core (under its `misc_mtx`) and by
// registration and drop; the rest is immutable, and `F::Node` is `Send + Sync`.
unsafe impl<F: FileOps> Send for Registration<F> {}
// SAFETY: as above; shared access only reads.
unsafe impl<F: FileOps> Sync for Registration<F> {}

impl<F: FileOps> Registration<F> {
    /// Registers `/dev/<name>` (a dynamic minor) as a child of `parent` (which the device
    /// core holds a reference on while the node exists), serving `node`.
    pub(crate) fn register(
        name: CString,
        parent: &device::Device<device::Bound>,
        node: F::Node,
    ) -> Result<Self> {
        let misc = bindings::miscdevice {
            // CAST: 255.
            minor: bindings::MISC_DYNAMIC_MINOR as c_int,
            name: name.as_char_ptr(),
            fops: VTable::<F>::build(),
            parent: core::ptr::from_ref(parent)
                .cast::<bindings::device>()
                .cast_mut(),
            ..Default::default()
        };
        let inner = KBox::pin(
            Inner {
                misc: Opaque::new(misc),
                _name: name,
                node,
                _pin: PhantomPinned,
            },
            GFP_KERNEL,
        )?;
        // SAFETY: `misc` is initialised and pinned (boxed): it stays at this address until it
        // is deregistered in `drop`; its name (owned by `inner`) and file operations (a
        // promoted constant) outlive the registration; `parent` is a live device
        // (`device::Device` is transparent over `struct device`).
        let r = unsafe { bindings::misc_register(inner.misc.get()) };
        if r != 0 {
            // Not registered: the box is freed without deregistering.
            return Err(Error::from_errno(r));
        }
        // INVARIANT: registered above.
        Ok(Self { inner })
    }

    /// The node's device (`/sys/class/misc/<name>`), for the C calls that take it.
    pub(crate) fn device(&self) -> *mut bindings::device {
        // SAFETY: registered (type invariant), so `this_device` is set and stays until
        // deregistration; reading the field races with nothing (written before
        // `misc_register` returned).
        unsafe { (*self.inner.misc.get()).this_device }
    }
}

impl<F: FileOps> Registration<F> {
    /// Adds the attribute group `group` to the node's device (`sysfs_create_group`);
    /// deregistering the node removes it with the device.
    pub(crate) fn add_group(
        &self,
        group: &'static super::sysfs::Group<super::sysfs::MiscHost<F>>,
    ) -> Result {
        // SAFETY: registered (type invariant), so the device is live and registered; the
        // group is for the misc nodes of `F` (its host), which this node is, and is static.
        let r =
            unsafe { bindings::sysfs_create_group(&raw mut (*self.device()).kobj, group.as_ptr()) };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        Ok(())
    }
}

impl<F: FileOps> Drop for Registration<F> {
    fn drop(&mut self) {
        // SAFETY: registered (type invariant), deregistered once. `misc_deregister` waits for
        // an `open` in progress (both hold `misc_mtx`) and removes the device with its sysfs
        // attributes (waiting for their running callbacks), so nothing reaches `inner` after.
        unsafe { bindings::misc_deregister(self.inner.misc.get()) };
    }
}

/// The node data of the registration whose `miscdevice` is `misc`.
///
/// # Safety
///
/// `misc` is the `miscdevice` of a registered [`Registration<F>`], which stays registered for
/// `'a`.
pub(super) unsafe fn node_of<'a, F: FileOps>(misc: *mut bindings::miscdevice) -> &'a F::Node {
    // SAFETY: caller's contract; the `miscdevice` is the `misc` field of an `Inner<F>`
    // (`Opaque` is transparent).
    unsafe {
        let inner =
            kernel::container_of!(misc.cast::<Opaque<bindings::miscdevice>>(), Inner<F>, misc);
        &(*inner).node
    }
}

/// The open file's state and whether it was opened for writing.
///
/// # Safety
///
/// `file` is an open file of a node registered with `F`, between `open` and `release`.
unsafe fn file_of<'a, F: FileOps>(file: *mut bindings::file) -> (&'a F, bool) {
    // SAFETY: `open` stored a boxed `F` in `private_data`, freed only by `release`; `f_mode`
    // is fixed at open.
    unsafe {
        (
            &*(*file).private_data.cast::<F>(),
            (*file).f_mode & FMODE_WRITE != 0,
        )
    }
}

/// The file operations of nodes registered with `F`.
pub(crate) struct VTable<F>(core::marker::PhantomData<F>);

impl<F: FileOps> VTable<F> {
    /// The file operations, in static memory (a promoted constant).
    const fn build() -> &'static bindings::file_operations {
        &Self::FOPS
    }

    const FOPS: bindings::file_operations = bindings::file_operations {
        owner: <crate::OrionModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr(),
        open: Some(Self::open),
        release: Some(Self::release),
        unlocked_ioctl: Some(Self::ioctl),
        uring_cmd: Some(Self::uring_cmd),
        uring_cmd_iopoll: Some(Self::uring_cmd_iopoll),
        ..pin_init::zeroed()
    };

    /// `open`: makes the file's state.
    ///
    /// # Safety
    ///
    /// Called by `misc_open` for one of our nodes, with its `miscdevice` in `private_data`.
    unsafe extern "C" fn open(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `misc_open` holds `misc_mtx`, so the node is registered (and alive) for the
        // call, and put its `miscdevice` in `private_data`.
        let node = unsafe { node_of::<F>((*file).private_data.cast()) };
        let of = match F::open(node).and_then(|f| Ok(KBox::new(f, GFP_KERNEL)?)) {
            Ok(of) => of,
            Err(e) => return e.to_errno(),
        };
        // SAFETY: the file is being opened by us; `release` takes the box back.
        unsafe { (*file).private_data = KBox::into_raw(of).cast() };
        0
    }

    /// `release`: drops the file's state.
    ///
    /// # Safety
    ///
    /// Called once per file opened with [`Self::open`].
    unsafe extern "C" fn release(_inode: *mut bindings::inode, file: *mut bindings::file) -> c_int {
        // SAFETY: `open` stored a boxed `F` here; this is its only release.
        unsafe { drop(KBox::from_raw((*file).private_data.cast::<F>())) };
        0
    }

    /// `unlocked_ioctl`.
    ///
    /// # Safety
    ///
    /// Called by the VFS for an open file of one of our nodes.
    unsafe extern "C" fn ioctl(file: *mut bindings::file, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: caller's contract.
        let (f, writable) = unsafe { file_of::<F>(file) };
        match f.ioctl(writable, cmd, arg) {
            // CAST: `long` and `isize` are the same width in the kernel.
            Ok(v) => v as c_long,
            // CAST: an errno fits any width.
            Err(e) => e.to_errno() as c_long,
        }
    }

    /// `uring_cmd`: an io_uring command.
    ///
    /// # Safety
    ///
    /// Called by io_uring for a live command on an open file of one of our nodes.
    unsafe extern "C" fn uring_cmd(
        ioucmd: *mut bindings::io_uring_cmd,
        issue_flags: c_uint,
    ) -> c_int {
        // SAFETY: caller's contract: a live, not yet completed command.
        let cmd = unsafe { uring::Cmd::new(ioucmd, issue_flags) };
        // SAFETY: the command holds its file, one of ours, open.
        let (f, writable) = unsafe { file_of::<F>(cmd.file()) };
        f.uring_cmd(writable, cmd).into_ret()
    }

    /// `uring_cmd_iopoll`: on a polled ring (`IORING_SETUP_IOPOLL`) io_uring keeps issued
    /// commands on its poll list and calls this while it waits. Commands here always complete
    /// interrupt-driven (through task work, which the waiting submitter runs), so there is
    /// nothing to poll: without this hook a polled ring would not wait for them at all.
    extern "C" fn uring_cmd_iopoll(
        _ioucmd: *mut bindings::io_uring_cmd,
        _iob: *mut bindings::io_comp_batch,
        _poll_flags: c_uint,
    ) -> c_int {
        0
    }
}
