// SPDX-License-Identifier: GPL-2.0

//! sysfs attributes in the layout nvme-cli and libnvme read from the reference driver's
//! devices: the controller's on its node (`/sys/class/misc/onvme<C>/`) and the namespace's on
//! each disk (`/sys/block/onvme<C>n<NSID>/`). Values and formats are the reference driver's.

use crate::mgmt::{CtrlNode, Shared};
use crate::orion::spec::identify::NsIds;
use core::ffi::c_int;
use core::fmt::Write;
use core::ptr;
use kernel::ffi::c_char;
use kernel::{bindings, prelude::*};

/// One page: what sysfs hands a `show` callback.
struct Page {
    buf: *mut u8,
    len: usize,
}

impl Write for Page {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // One byte of the page stays free, as sysfs_emit leaves it.
        let room = (bindings::PAGE_SIZE - 1).saturating_sub(self.len);
        let n = s.len().min(room);
        // SAFETY: `buf` is a page sysfs provides for this call; `len + n` stays inside it.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.len), n) };
        self.len += n;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// ASCII field with trailing spaces and NULs removed.
fn trimmed(f: &[u8]) -> &[u8] {
    let n = f
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    f.get(..n).unwrap_or(&[])
}

fn ascii(f: &[u8]) -> &str {
    core::str::from_utf8(f).unwrap_or("?")
}

/// Hex digits of `bytes`, no separator (`%*phN`).
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// A 16-byte identifier as a UUID (`%pU`: big-endian, lowercase).
struct Uuid<'a>(&'a [u8; 16]);

impl core::fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let u = self.0;
        write!(
            f,
            "{}-{}-{}-{}-{}",
            Hex(&u[..4]),
            Hex(&u[4..6]),
            Hex(&u[6..8]),
            Hex(&u[8..10]),
            Hex(&u[10..])
        )
    }
}

/// Space-separated hex bytes (`%8ph`).
struct SpacedHex<'a>(&'a [u8]);

impl core::fmt::Display for SpacedHex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Formats an attribute into the page; returns the length or an errno.
fn emit(buf: *mut c_char, f: impl FnOnce(&mut Page) -> core::fmt::Result) -> isize {
    let mut p = Page {
        buf: buf.cast(),
        len: 0,
    };
    match f(&mut p) {
        // CAST: at most a page.
        Ok(()) => p.len as isize,
        Err(_) => EINVAL.to_errno() as isize,
    }
}

/// The attribute's name.
///
/// # Safety
///
/// `attr` is one of the attributes below.
unsafe fn name_of<'a>(attr: *mut bindings::device_attribute) -> &'a [u8] {
    // SAFETY: our attributes have static NUL-terminated names.
    unsafe { CStr::from_char_ptr((*attr).attr.name).to_bytes() }
}

/// `show` of the controller node's attributes.
///
/// # Safety
///
/// Called by sysfs for an attribute of a controller node's device while it is registered.
unsafe extern "C" fn ctrl_show(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: a misc device's driver data is its `struct miscdevice`, which for our nodes is
    // the registration inside a `CtrlNode`; sysfs removes the attributes (and waits for
    // running callbacks) before the registration is dropped.
    let shared = unsafe {
        let misc = bindings::dev_get_drvdata(dev).cast::<bindings::miscdevice>();
        CtrlNode::shared_of(misc)
    };
    // SAFETY: `attr` is ours.
    let name = unsafe { name_of(attr) };
    let id = &shared.identity;
    emit(buf, |p| match name {
        // The whole space-padded fields, as the reference driver shows them.
        b"model" => writeln!(p, "{}", ascii(&id.model)),
        b"serial" => writeln!(p, "{}", ascii(&id.serial)),
        b"firmware_rev" => writeln!(p, "{}", ascii(&id.firmware)),
        b"cntlid" => writeln!(p, "{}", id.cntlid),
        b"transport" => writeln!(p, "pcie"),
        b"address" => writeln!(p, "{}", ascii(trimmed(&id.address))),
        b"subsysnqn" => writeln!(p, "{}", ascii(trimmed(&id.subnqn))),
        b"numa_node" => writeln!(p, "{}", id.numa_node),
        b"state" => writeln!(p, "{}", shared.state()),
        b"queue_count" => writeln!(p, "{}", shared.queue_count()),
        b"sqsize" => writeln!(p, "{}", shared.sqsize()),
        _ => Err(core::fmt::Error),
    })
}

/// `store` of the controller node's write-only attributes: any write to `reset_controller`
/// resets the controller and returns when it is back (or failed); any write to
/// `rescan_controller` rescans the namespaces. As the reference driver, the write's length is
/// returned on success.
///
/// # Safety
///
/// Called by sysfs for an attribute of a controller node's device while it is registered.
unsafe extern "C" fn ctrl_store(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    _buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: as in `ctrl_show`.
    let shared = unsafe {
        let misc = bindings::dev_get_drvdata(dev).cast::<bindings::miscdevice>();
        CtrlNode::shared_of(misc)
    };
    // SAFETY: `attr` is ours.
    let r = match unsafe { name_of(attr) } {
        b"reset_controller" => shared.reset("sysfs reset_controller"),
        b"rescan_controller" => shared.rescan().map(|_| ()),
        _ => Err(EINVAL),
    };
    match r {
        // CAST: a sysfs write is at most a page.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// The shared state and NSID of the disk whose device is `dev`.
///
/// # Safety
///
/// `dev` is the device of one of our disks, registered for the returned lifetime.
unsafe fn namespace_of<'a>(dev: *mut bindings::device) -> (&'a Shared, u32) {
    // SAFETY: a disk's device is the `bd_device` of its whole-disk block device; our disks
    // carry a reference on the shared state in `private_data` (released only by
    // `free_disk`) and the NSID in `queuedata`.
    unsafe {
        let bdev = dev
            .cast::<u8>()
            .sub(core::mem::offset_of!(bindings::block_device, bd_device))
            .cast::<bindings::block_device>();
        let disk = (*bdev).bd_disk;
        (
            &*(*disk).private_data.cast::<Shared>(),
            // CAST: the pointer holds a u32 NSID.
            (*(*disk).queue).queuedata.addr() as u32,
        )
    }
}

/// `show` of the disks' namespace attributes.
///
/// # Safety
///
/// Called by sysfs for an attribute of one of our disks while the disk is registered.
unsafe extern "C" fn ns_show(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: sysfs calls this for one of our disks' devices while it is registered.
    let (shared, nsid) = unsafe { namespace_of(dev) };
    // SAFETY: `attr` is ours.
    let name = unsafe { name_of(attr) };
    let ids = shared.ns_ids(nsid).unwrap_or_default();
    let id = &shared.identity;
    emit(buf, |p| match name {
        b"nsid" => writeln!(p, "{nsid}"),
        b"wwid" => {
            if let Some(u) = ids.uuid.filter(|u| u.iter().any(|&b| b != 0)) {
                writeln!(p, "uuid.{}", Uuid(&u))
            } else if let Some(g) = ids.nguid {
                writeln!(p, "eui.{}", Hex(&g))
            } else if let Some(e) = ids.eui64 {
                writeln!(p, "eui.{}", Hex(&e))
            } else {
                writeln!(
                    p,
                    "nvme.{:04x}-{}-{}-{:08x}",
                    id.vid,
                    Hex(trimmed(&id.serial)),
                    Hex(trimmed(&id.model)),
                    nsid
                )
            }
        }
        b"uuid" => writeln!(p, "{}", Uuid(&ids.uuid.unwrap_or_default())),
        b"nguid" => writeln!(p, "{}", Uuid(&ids.nguid.unwrap_or_default())),
        b"eui" => writeln!(p, "{}", SpacedHex(&ids.eui64.unwrap_or_default())),
        b"csi" => writeln!(p, "{}", ids.csi.unwrap_or(0)),
        _ => Err(core::fmt::Error),
    })
}

/// Hides identifier attributes a namespace does not have, as the reference driver does.
///
/// # Safety
///
/// Called by sysfs for one of our disks' attributes.
unsafe extern "C" fn ns_visible(
    kobj: *mut bindings::kobject,
    attr: *mut bindings::attribute,
    _n: c_int,
) -> bindings::umode_t {
    // SAFETY: `kobj` is the kobject of one of our disks' devices, which is registered.
    let ids: NsIds = unsafe {
        let dev = kobj
            .cast::<u8>()
            .sub(core::mem::offset_of!(bindings::device, kobj))
            .cast::<bindings::device>();
        let (shared, nsid) = namespace_of(dev);
        shared.ns_ids(nsid).unwrap_or_default()
    };
    // SAFETY: our attributes have static NUL-terminated names.
    let name = unsafe { CStr::from_char_ptr((*attr).name).to_bytes() };
    let shown = match name {
        b"uuid" => ids.uuid.is_some_and(|u| u.iter().any(|&b| b != 0)),
        b"nguid" => ids.nguid.is_some(),
        b"eui" => ids.eui64.is_some(),
        _ => true,
    };
    if shown {
        // SAFETY: as above.
        unsafe { (*attr).mode }
    } else {
        0
    }
}

/// A `device_attribute` in a static.
#[repr(transparent)]
struct Attr(bindings::device_attribute);
// SAFETY: immutable after initialisation; the kernel only reads it.
unsafe impl Sync for Attr {}

// Debug kernels (CONFIG_DEBUG_LOCK_ALLOC) add lockdep fields to `struct attribute`; without
// them the update is empty.
#[allow(clippy::needless_update)]
const fn attr(
    name: &'static CStr,
    show: unsafe extern "C" fn(
        *mut bindings::device,
        *mut bindings::device_attribute,
        *mut c_char,
    ) -> isize,
) -> Attr {
    Attr(bindings::device_attribute {
        // The rest (lockdep keys on debug kernels) starts zeroed, as the C initialisers leave it.
        attr: bindings::attribute {
            name: kernel::str::as_char_ptr_in_const_context(name),
            mode: 0o444,
            ..pin_init::zeroed()
        },
        __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 { show: Some(show) },
        __bindgen_anon_2: bindings::device_attribute__bindgen_ty_2 { store: None },
    })
}

/// A write-only (root) attribute: the reference driver's mode for controller actions.
#[allow(clippy::needless_update)]
const fn attr_wo(
    name: &'static CStr,
    store: unsafe extern "C" fn(
        *mut bindings::device,
        *mut bindings::device_attribute,
        *const c_char,
        usize,
    ) -> isize,
) -> Attr {
    Attr(bindings::device_attribute {
        attr: bindings::attribute {
            name: kernel::str::as_char_ptr_in_const_context(name),
            mode: 0o200,
            ..pin_init::zeroed()
        },
        __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 { show: None },
        __bindgen_anon_2: bindings::device_attribute__bindgen_ty_2 { store: Some(store) },
    })
}

/// A null-terminated array of attribute pointers in a static.
#[repr(transparent)]
struct AttrList<const N: usize>([*const bindings::attribute; N]);
// SAFETY: pointers to immutable statics.
unsafe impl<const N: usize> Sync for AttrList<N> {}

/// An `attribute_group` in a static.
#[repr(transparent)]
pub(crate) struct Group(bindings::attribute_group);
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    pub(crate) fn as_ptr(&'static self) -> *const bindings::attribute_group {
        &self.0
    }
}

static CTRL_ATTRS: [Attr; 13] = [
    attr(c"model", ctrl_show),
    attr(c"serial", ctrl_show),
    attr(c"firmware_rev", ctrl_show),
    attr(c"cntlid", ctrl_show),
    attr(c"transport", ctrl_show),
    attr(c"address", ctrl_show),
    attr(c"subsysnqn", ctrl_show),
    attr(c"numa_node", ctrl_show),
    attr(c"state", ctrl_show),
    attr(c"queue_count", ctrl_show),
    attr(c"sqsize", ctrl_show),
    attr_wo(c"reset_controller", ctrl_store),
    attr_wo(c"rescan_controller", ctrl_store),
];

static CTRL_LIST: AttrList<14> = AttrList([
    &CTRL_ATTRS[0].0.attr,
    &CTRL_ATTRS[1].0.attr,
    &CTRL_ATTRS[2].0.attr,
    &CTRL_ATTRS[3].0.attr,
    &CTRL_ATTRS[4].0.attr,
    &CTRL_ATTRS[5].0.attr,
    &CTRL_ATTRS[6].0.attr,
    &CTRL_ATTRS[7].0.attr,
    &CTRL_ATTRS[8].0.attr,
    &CTRL_ATTRS[9].0.attr,
    &CTRL_ATTRS[10].0.attr,
    &CTRL_ATTRS[11].0.attr,
    &CTRL_ATTRS[12].0.attr,
    ptr::null(),
]);

/// The controller node's attributes.
pub(crate) static CTRL_GROUP: Group = Group(bindings::attribute_group {
    name: ptr::null(),
    __bindgen_anon_1: bindings::attribute_group__bindgen_ty_1 { is_visible: None },
    is_bin_visible: None,
    bin_size: None,
    __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
        attrs_const: CTRL_LIST.0.as_ptr(),
    },
    bin_attrs: ptr::null(),
});

static NS_ATTRS: [Attr; 6] = [
    attr(c"nsid", ns_show),
    attr(c"wwid", ns_show),
    attr(c"uuid", ns_show),
    attr(c"nguid", ns_show),
    attr(c"eui", ns_show),
    attr(c"csi", ns_show),
];

static NS_LIST: AttrList<7> = AttrList([
    &NS_ATTRS[0].0.attr,
    &NS_ATTRS[1].0.attr,
    &NS_ATTRS[2].0.attr,
    &NS_ATTRS[3].0.attr,
    &NS_ATTRS[4].0.attr,
    &NS_ATTRS[5].0.attr,
    ptr::null(),
]);

/// The disks' namespace attributes.
pub(crate) static NS_GROUP: Group = Group(bindings::attribute_group {
    name: ptr::null(),
    __bindgen_anon_1: bindings::attribute_group__bindgen_ty_1 {
        is_visible: Some(ns_visible),
    },
    is_bin_visible: None,
    bin_size: None,
    __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
        attrs_const: NS_LIST.0.as_ptr(),
    },
    bin_attrs: ptr::null(),
});

/// The null-terminated group list `device_add_disk` takes.
#[repr(transparent)]
pub(crate) struct GroupList([*const bindings::attribute_group; 2]);
// SAFETY: pointers to immutable statics.
unsafe impl Sync for GroupList {}

impl GroupList {
    pub(crate) fn as_ptr(&'static self) -> *mut *const bindings::attribute_group {
        self.0.as_ptr().cast_mut()
    }
}

/// The disks' attribute groups.
pub(crate) static NS_GROUPS: GroupList = GroupList([&NS_GROUP.0, ptr::null()]);
