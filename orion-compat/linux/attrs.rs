// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! sysfs attributes in the layout nvme-cli and libnvme read from the reference driver's
//! devices: the controller's on its node (`/sys/class/misc/onvme<C>/`) and the namespace's on
//! each disk (`/sys/block/onvme<C>n<NSID>/`). Values and formats are the reference driver's.

use crate::bindings::sysfs::{Attr, AttrList, Attrs, DiskHost, Group, GroupList, MiscHost, Page};
use crate::ctrl::Shared;
use crate::mgmt::{NodeData, NodeFile};
use core::fmt::Write;
use kernel::prelude::*;

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

/// The controller node's attributes (`/sys/class/misc/onvme<C>/`).
struct CtrlAttrs;

impl Attrs for CtrlAttrs {
    type Host = MiscHost<NodeFile>;

    fn show(node: &NodeData, name: &[u8], p: &mut Page) -> core::fmt::Result {
        let shared = node.shared();
        let id = &shared.identity;
        match name {
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
        }
    }

    /// Any write to `reset_controller` resets the controller and returns when it is back (or
    /// failed); any write to `rescan_controller` rescans the namespaces. As the reference
    /// driver, the write's length is returned on success.
    fn store(node: &NodeData, name: &[u8]) -> Result {
        let shared = node.shared();
        match name {
            b"reset_controller" => shared.reset("sysfs reset_controller"),
            b"rescan_controller" => shared.rescan().map(|_| ()),
            _ => Err(EINVAL),
        }
    }
}

/// The disks' namespace attributes (`/sys/block/onvme<C>n<NSID>/`): a disk carries a reference
/// on the shared state in `private_data` and its NSID in `queuedata`.
struct NsAttrs;

impl Attrs for NsAttrs {
    type Host = DiskHost<Shared>;

    fn show((shared, nsid): (&Shared, u32), name: &[u8], p: &mut Page) -> core::fmt::Result {
        let ids = shared.ns_ids(nsid).unwrap_or_default();
        let id = &shared.identity;
        match name {
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
        }
    }

    /// Hides identifier attributes a namespace does not have, as the reference driver does.
    fn visible((shared, nsid): (&Shared, u32), name: &[u8]) -> bool {
        let ids = shared.ns_ids(nsid).unwrap_or_default();
        match name {
            b"uuid" => ids.uuid.is_some_and(|u| u.iter().any(|&b| b != 0)),
            b"nguid" => ids.nguid.is_some(),
            b"eui" => ids.eui64.is_some(),
            _ => true,
        }
    }
}

static CTRL_ATTRS: [Attr; 13] = [
    Attr::ro::<CtrlAttrs>(c"model"),
    Attr::ro::<CtrlAttrs>(c"serial"),
    Attr::ro::<CtrlAttrs>(c"firmware_rev"),
    Attr::ro::<CtrlAttrs>(c"cntlid"),
    Attr::ro::<CtrlAttrs>(c"transport"),
    Attr::ro::<CtrlAttrs>(c"address"),
    Attr::ro::<CtrlAttrs>(c"subsysnqn"),
    Attr::ro::<CtrlAttrs>(c"numa_node"),
    Attr::ro::<CtrlAttrs>(c"state"),
    Attr::ro::<CtrlAttrs>(c"queue_count"),
    Attr::ro::<CtrlAttrs>(c"sqsize"),
    Attr::wo::<CtrlAttrs>(c"reset_controller"),
    Attr::wo::<CtrlAttrs>(c"rescan_controller"),
];

static CTRL_LIST: AttrList<14> = AttrList::new(&CTRL_ATTRS);

/// The controller node's attributes (attach only to controller nodes).
pub(crate) static CTRL_GROUP: Group<MiscHost<NodeFile>> =
    Group::new::<CtrlAttrs, 14>(&CTRL_LIST, false);

static NS_ATTRS: [Attr; 6] = [
    Attr::ro::<NsAttrs>(c"nsid"),
    Attr::ro::<NsAttrs>(c"wwid"),
    Attr::ro::<NsAttrs>(c"uuid"),
    Attr::ro::<NsAttrs>(c"nguid"),
    Attr::ro::<NsAttrs>(c"eui"),
    Attr::ro::<NsAttrs>(c"csi"),
];

static NS_LIST: AttrList<7> = AttrList::new(&NS_ATTRS);

/// The disks' namespace attributes.
static NS_GROUP: Group<<NsAttrs as Attrs>::Host> = Group::new::<NsAttrs, 7>(&NS_LIST, true);

/// The disks' attribute groups (for `device_add_disk`, only on the driver's disks).
pub(crate) static NS_GROUPS: GroupList = GroupList::new(&NS_GROUP);
