// SPDX-License-Identifier: GPL-2.0

//! Static device attribute groups whose callbacks are safe functions.
//!
//! An [`Attrs`] type names a [`Host`] (what the attributes' devices are, and so what the
//! callbacks are given) and implements `show`, `store` and `visible` on it; [`Attr`],
//! [`AttrList`], [`Group`] and [`GroupList`] are the C structures, built in statics by `const`
//! functions, whose callbacks are this module's trampolines.

use super::misc::{self, FileOps};
use core::ffi::c_int;
use core::marker::PhantomData;
use core::ptr;
use kernel::ffi::c_char;
use kernel::{bindings, prelude::*};

/// The page sysfs hands a `show` callback, filled by formatting into it.
///
/// # Invariants
///
/// `buf` is the page of one `show` call, and `len < PAGE_SIZE`.
pub(crate) struct Page {
    buf: *mut u8,
    len: usize,
}

impl core::fmt::Write for Page {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // One byte of the page stays free, as sysfs_emit leaves it.
        let room = (bindings::PAGE_SIZE - 1).saturating_sub(self.len);
        let n = s.len().min(room);
        // SAFETY: `buf` is a page (type invariant); `len + n` stays inside it.
        unsafe { ptr::copy_nonoverlapping(s.as_ptr(), self.buf.add(self.len), n) };
        // INVARIANT: at most `PAGE_SIZE - 1`.
        self.len += n;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// What the devices an attribute group is attached to are: how a callback finds what it
/// shows.
///
/// # Safety
///
/// [`Host::get`] is sound for every device a group of this host is attached to, while the
/// attribute's callbacks may run.
pub(crate) unsafe trait Host: 'static {
    /// What the callbacks are given.
    type Ref<'a>: Copy;

    /// What `dev` serves.
    ///
    /// # Safety
    ///
    /// `dev` is a device a group of this host is attached to, in one of its callbacks; the
    /// result is not used after the callback.
    unsafe fn get<'a>(dev: *mut bindings::device) -> Self::Ref<'a>;
}

/// The devices of the misc nodes registered with `F` ([`misc::Registration<F>`]): callbacks
/// get the node's [`FileOps::Node`].
pub(crate) struct MiscHost<F>(PhantomData<F>);

// SAFETY: attached only to misc nodes of `F`, whose driver data is their `miscdevice` (set by
// `misc_register`); `misc_deregister` removes the attributes, waiting for running callbacks,
// before the registration is freed.
unsafe impl<F: FileOps> Host for MiscHost<F> {
    type Ref<'a> = &'a F::Node;

    unsafe fn get<'a>(dev: *mut bindings::device) -> &'a F::Node {
        // SAFETY: caller's contract and the host's: the driver data is the registered
        // `miscdevice` of a `Registration<F>`, alive for the callback.
        unsafe { misc::node_of::<F>(bindings::dev_get_drvdata(dev).cast()) }
    }
}

/// The devices of whole disks whose `private_data` is a `T` and whose queue's `queuedata`
/// holds a `u32` (the driver's NSID): callbacks get both.
pub(crate) struct DiskHost<T>(PhantomData<T>);

// SAFETY: attached (through `device_add_disk`'s groups) only to the disks of a driver that
// keeps a `T` in `private_data` until `free_disk` and a `u32` in `queuedata`; sysfs removes the
// attributes, waiting for running callbacks, before the disk is released.
unsafe impl<T: Sync + 'static> Host for DiskHost<T> {
    type Ref<'a> = (&'a T, u32);

    unsafe fn get<'a>(dev: *mut bindings::device) -> (&'a T, u32) {
        // SAFETY: caller's contract and the host's: a disk's device is the `bd_device` of its
        // whole-disk block device, whose `bd_disk` is the disk.
        unsafe {
            let bdev = dev
                .cast::<u8>()
                .sub(core::mem::offset_of!(bindings::block_device, bd_device))
                .cast::<bindings::block_device>();
            let disk = (*bdev).bd_disk;
            (
                &*(*disk).private_data.cast::<T>(),
                // CAST: the pointer holds a u32.
                (*(*disk).queue).queuedata.addr() as u32,
            )
        }
    }
}

/// The callbacks of an attribute group. `name` is the attribute's.
pub(crate) trait Attrs: 'static {
    /// What the devices are.
    type Host: Host;

    /// `show`: formats the value into `page` (an error: EINVAL).
    fn show(r: <Self::Host as Host>::Ref<'_>, name: &[u8], page: &mut Page) -> core::fmt::Result;

    /// `store` of a write-only attribute (the written bytes are not looked at). On success the
    /// write's length is returned.
    fn store(_r: <Self::Host as Host>::Ref<'_>, _name: &[u8]) -> Result {
        Err(EINVAL)
    }

    /// Whether the attribute is shown (for groups made with `visible`).
    fn visible(_r: <Self::Host as Host>::Ref<'_>, _name: &[u8]) -> bool {
        true
    }
}

/// The name of an attribute.
///
/// # Safety
///
/// `attr` is one of the [`Attr`]s of this module (a static NUL-terminated name).
unsafe fn name_of<'a>(attr: *const bindings::attribute) -> &'a [u8] {
    // SAFETY: caller's contract.
    unsafe { CStr::from_char_ptr((*attr).name).to_bytes() }
}

/// `show` of the attributes of `A`.
///
/// # Safety
///
/// Called by sysfs for an attribute of `A` on a device of `A::Host`, with its page.
unsafe extern "C" fn show<A: Attrs>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    buf: *mut c_char,
) -> isize {
    // SAFETY: caller's contract (the attribute is ours, the device `A::Host`'s).
    let (r, name) = unsafe { (A::Host::get(dev), name_of(&raw const (*attr).attr)) };
    // INVARIANT: the call's page, empty.
    let mut page = Page {
        buf: buf.cast(),
        len: 0,
    };
    match A::show(r, name, &mut page) {
        // CAST: at most a page.
        Ok(()) => page.len as isize,
        Err(_) => EINVAL.to_errno() as isize,
    }
}

/// `store` of the write-only attributes of `A`.
///
/// # Safety
///
/// As [`show`].
unsafe extern "C" fn store<A: Attrs>(
    dev: *mut bindings::device,
    attr: *mut bindings::device_attribute,
    _buf: *const c_char,
    count: usize,
) -> isize {
    // SAFETY: caller's contract.
    let (r, name) = unsafe { (A::Host::get(dev), name_of(&raw const (*attr).attr)) };
    match A::store(r, name) {
        // CAST: a sysfs write is at most a page.
        Ok(()) => count as isize,
        Err(e) => e.to_errno() as isize,
    }
}

/// `is_visible` of the groups of `A`.
///
/// # Safety
///
/// Called by sysfs for an attribute of `A` on the kobject of a device of `A::Host`.
unsafe extern "C" fn visible<A: Attrs>(
    kobj: *mut bindings::kobject,
    attr: *mut bindings::attribute,
    _n: c_int,
) -> bindings::umode_t {
    // SAFETY: caller's contract: the kobject is the `kobj` of a device of `A::Host`, and the
    // attribute is ours.
    let (r, name) = unsafe {
        let dev = kobj
            .cast::<u8>()
            .sub(core::mem::offset_of!(bindings::device, kobj))
            .cast::<bindings::device>();
        (A::Host::get(dev), name_of(attr))
    };
    if A::visible(r, name) {
        // SAFETY: ours, and immutable.
        unsafe { (*attr).mode }
    } else {
        0
    }
}

/// A `device_attribute` in a static.
#[repr(transparent)]
pub(crate) struct Attr(bindings::device_attribute);

// SAFETY: immutable after initialisation; the kernel only reads it.
unsafe impl Sync for Attr {}

impl Attr {
    /// A read-only attribute (mode 0444) shown by `A::show`.
    // Debug kernels (CONFIG_DEBUG_LOCK_ALLOC) add lockdep fields to `struct attribute`;
    // without them the update is empty.
    #[allow(clippy::needless_update)]
    pub(crate) const fn ro<A: Attrs>(name: &'static CStr) -> Self {
        Self(bindings::device_attribute {
            // The rest (lockdep keys on debug kernels) starts zeroed, as the C initialisers
            // leave it.
            attr: bindings::attribute {
                name: kernel::str::as_char_ptr_in_const_context(name),
                mode: 0o444,
                ..pin_init::zeroed()
            },
            __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 {
                show: Some(show::<A>),
            },
            __bindgen_anon_2: bindings::device_attribute__bindgen_ty_2 { store: None },
        })
    }

    /// A write-only (root) attribute (mode 0200) handled by `A::store`.
    #[allow(clippy::needless_update)]
    pub(crate) const fn wo<A: Attrs>(name: &'static CStr) -> Self {
        Self(bindings::device_attribute {
            attr: bindings::attribute {
                name: kernel::str::as_char_ptr_in_const_context(name),
                mode: 0o200,
                ..pin_init::zeroed()
            },
            __bindgen_anon_1: bindings::device_attribute__bindgen_ty_1 { show: None },
            __bindgen_anon_2: bindings::device_attribute__bindgen_ty_2 {
                store: Some(store::<A>),
            },
        })
    }
}

/// The null-terminated array of attribute pointers of a group, `N` of them and the null.
#[repr(transparent)]
pub(crate) struct AttrList<const M: usize>([*const bindings::attribute; M]);

// SAFETY: pointers to immutable statics.
unsafe impl<const M: usize> Sync for AttrList<M> {}

impl<const M: usize> AttrList<M> {
    /// The list of `attrs`, null-terminated; `M` must be `N + 1` (checked at compile time).
    pub(crate) const fn new<const N: usize>(attrs: &'static [Attr; N]) -> Self {
        assert!(
            N + 1 == M,
            "an attribute list has one entry more than its attributes"
        );
        let mut list = [ptr::null(); M];
        let mut i = 0;
        while i < N {
            list[i] = &raw const attrs[i].0.attr;
            i += 1;
        }
        Self(list)
    }
}

/// An `attribute_group` in a static, for devices of host `H`.
#[repr(transparent)]
pub(crate) struct Group<H>(bindings::attribute_group, PhantomData<fn() -> H>);

// SAFETY: immutable; the kernel only reads it.
unsafe impl<H> Sync for Group<H> {}

impl<H: Host> Group<H> {
    /// The group of `list`, whose attributes are all `A`'s; `is_visible` asks `A::visible`
    /// when `with_visible`.
    pub(crate) const fn new<A: Attrs<Host = H>, const M: usize>(
        list: &'static AttrList<M>,
        with_visible: bool,
    ) -> Self {
        let is_visible: Option<
            unsafe extern "C" fn(*mut bindings::kobject, *mut bindings::attribute, c_int) -> _,
        > = if with_visible {
            Some(visible::<A>)
        } else {
            None
        };
        Self(
            bindings::attribute_group {
                name: ptr::null(),
                __bindgen_anon_1: bindings::attribute_group__bindgen_ty_1 { is_visible },
                is_bin_visible: None,
                bin_size: None,
                __bindgen_anon_2: bindings::attribute_group__bindgen_ty_2 {
                    attrs_const: list.0.as_ptr(),
                },
                bin_attrs: ptr::null(),
            },
            PhantomData,
        )
    }

    /// The group, for the C calls that attach it: only to devices of its host `H`.
    pub(crate) fn as_ptr(&'static self) -> *const bindings::attribute_group {
        &self.0
    }
}

/// The null-terminated group list `device_add_disk` takes, of one group.
#[repr(transparent)]
pub(crate) struct GroupList([*const bindings::attribute_group; 2]);

// SAFETY: pointers to immutable statics.
unsafe impl Sync for GroupList {}

impl GroupList {
    /// The list of `group` alone.
    pub(crate) const fn new<H: Host>(group: &'static Group<H>) -> Self {
        Self([&raw const group.0, ptr::null()])
    }

    /// The list, for the C calls that attach it: only to devices of its groups' hosts.
    pub(crate) fn as_ptr(&'static self) -> *mut *const bindings::attribute_group {
        self.0.as_ptr().cast_mut()
    }
}
