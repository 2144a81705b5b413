//! Namespaces: which ones get a disk, and what a rescan changes.
//!
//! Discovery itself (Identify Active Namespace ID list, Identify Namespace for each) is
//! [`Controller::for_each_namespace`](crate::controller::Controller::for_each_namespace).
//! This module decides what the platform's block side does with the result: a disk per
//! namespace whose format the driver serves ([`disk_for`]), and after a rescan the difference
//! between the disks there are and the namespaces found ([`diff`]): disks added for new
//! namespaces, removed for namespaces that went away or were reformatted to another block
//! size or to a format with metadata, and resized for namespaces whose capacity changed.

use crate::orion::controller::{ControllerInfo, NamespaceInfo};
use crate::orion::io;
use crate::orion_compat::block::DiskGeometry;

/// Why a namespace gets no disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDisk {
    /// Its format carries this many bytes of metadata per block, which the driver does not
    /// transfer (so a read or write would fail or corrupt data).
    Metadata(u16),
    /// Its block size gives a geometry the API's rules refuse.
    Geometry(u32),
}

impl core::fmt::Display for NoDisk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoDisk::Metadata(n) => write!(f, "{n} bytes of metadata per block are not supported"),
            NoDisk::Geometry(bs) => write!(f, "{bs}-byte blocks give no valid disk geometry"),
        }
    }
}

/// The disk geometry for namespace `ns` on a controller described by `info` with memory page
/// size `page`, or why it gets no disk. The platform may still refuse the geometry (a block
/// size above its page size).
pub fn disk_for(
    info: &ControllerInfo,
    ns: &NamespaceInfo,
    page: u64,
) -> Result<DiskGeometry, NoDisk> {
    if ns.metadata != 0 {
        return Err(NoDisk::Metadata(ns.metadata));
    }
    let g = io::disk_geometry(info, ns, page);
    g.check().map_err(|_| NoDisk::Geometry(ns.block_size))?;
    Ok(g)
}

/// A disk the driver has, as a rescan compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Present {
    /// Its namespace.
    pub nsid: u32,
    /// The logical block size it was created with.
    pub block_size: u32,
    /// Its capacity now, in those blocks.
    pub blocks: u64,
}

/// Why a rescan removes a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The namespace is no longer active (deleted or detached).
    Gone,
    /// It was reformatted: another block size or metadata. If the new format can be served,
    /// a [`Change::Add`] for it follows, after the removal.
    Reformatted,
}

/// One thing a rescan does, in the order [`diff`] yields them: removals and resizes of the
/// disks there are first, then additions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change<'a> {
    /// Remove the disk of namespace `nsid`.
    Remove {
        /// The namespace.
        nsid: u32,
        /// Why.
        why: Removal,
    },
    /// The namespace's capacity changed: the disk now has `blocks` logical blocks.
    Resize {
        /// The namespace.
        nsid: u32,
        /// Its new capacity, in its logical blocks.
        blocks: u64,
    },
    /// A namespace with no disk: add one (if [`disk_for`] allows).
    Add(&'a NamespaceInfo),
}

/// What a rescan did, for the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RescanCount {
    /// Disks added.
    pub added: u32,
    /// Disks removed.
    pub removed: u32,
    /// Disks whose capacity changed.
    pub resized: u32,
}

impl RescanCount {
    /// Whether anything changed.
    pub const fn any(&self) -> bool {
        self.added + self.removed + self.resized > 0
    }
}

/// The changes that bring the disks `present` in line with the namespaces `found` by a
/// rescan. A namespace is matched by NSID; each present disk yields at most one removal or
/// resize, each found namespace without a disk (or whose disk is removed as reformatted) one
/// addition. Duplicated NSIDs in `found` (a device that lies) yield one addition.
pub fn diff<'p, 'f>(
    present: &'p [Present],
    found: &'f [NamespaceInfo],
) -> impl Iterator<Item = Change<'f>> + use<'p, 'f> {
    let kept = move |nsid: u32| {
        present.iter().any(|p| {
            p.nsid == nsid
                && found
                    .iter()
                    .find(|n| n.nsid == nsid)
                    .is_some_and(|n| same_format(p, n))
        })
    };
    let changes =
        present
            .iter()
            .filter_map(move |p| match found.iter().find(|n| n.nsid == p.nsid) {
                None => Some(Change::Remove {
                    nsid: p.nsid,
                    why: Removal::Gone,
                }),
                Some(n) if !same_format(p, n) => Some(Change::Remove {
                    nsid: p.nsid,
                    why: Removal::Reformatted,
                }),
                Some(n) if n.blocks != p.blocks => Some(Change::Resize {
                    nsid: p.nsid,
                    blocks: n.blocks,
                }),
                Some(_) => None,
            });
    let adds = found.iter().enumerate().filter_map(move |(i, n)| {
        let first = found.iter().position(|m| m.nsid == n.nsid) == Some(i);
        (first && !kept(n.nsid)).then_some(Change::Add(n))
    });
    changes.chain(adds)
}

/// Whether a disk still serves the namespace's format.
fn same_format(p: &Present, n: &NamespaceInfo) -> bool {
    n.block_size == p.block_size && n.metadata == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion::spec::identify::NsIds;

    fn ns(nsid: u32, blocks: u64, block_size: u32, metadata: u16) -> NamespaceInfo {
        NamespaceInfo {
            nsid,
            blocks,
            block_size,
            physical_block_size: block_size,
            metadata,
            ids: NsIds::default(),
        }
    }

    fn disk(nsid: u32, blocks: u64, block_size: u32) -> Present {
        Present {
            nsid,
            block_size,
            blocks,
        }
    }

    #[test]
    fn nothing_changed_nothing_to_do() {
        let present = [disk(1, 100, 512), disk(3, 8, 4096)];
        let found = [ns(1, 100, 512, 0), ns(3, 8, 4096, 0)];
        assert_eq!(diff(&present, &found).count(), 0);
    }

    #[test]
    fn every_kind_of_change_in_order() {
        let present = [
            disk(1, 100, 512),  // resized
            disk(2, 100, 512),  // gone
            disk(3, 100, 512),  // reformatted to 4096
            disk(4, 100, 512),  // reformatted with metadata: removed, not re-added
            disk(5, 100, 4096), // unchanged
        ];
        let found = [
            ns(1, 200, 512, 0),
            ns(3, 12, 4096, 0),
            ns(4, 100, 512, 8),
            ns(5, 100, 4096, 0),
            ns(9, 7, 512, 0), // new
        ];
        let got: Vec<_> = diff(&present, &found).collect();
        assert_eq!(
            got,
            [
                Change::Resize {
                    nsid: 1,
                    blocks: 200
                },
                Change::Remove {
                    nsid: 2,
                    why: Removal::Gone
                },
                Change::Remove {
                    nsid: 3,
                    why: Removal::Reformatted
                },
                Change::Remove {
                    nsid: 4,
                    why: Removal::Reformatted
                },
                Change::Add(&found[1]),
                Change::Add(&found[2]),
                Change::Add(&found[4]),
            ]
        );
        // The metadata namespace's addition is then refused by `disk_for`.
        assert_eq!(found[2].metadata, 8);
    }

    #[test]
    fn duplicate_nsids_from_a_lying_device_add_once() {
        let found = [ns(2, 10, 512, 0), ns(2, 99, 4096, 0)];
        let got: Vec<_> = diff(&[], &found).collect();
        assert_eq!(got, [Change::Add(&found[0])]);
        // Already present: the first report wins, no churn.
        let present = [disk(2, 10, 512)];
        assert_eq!(diff(&present, &found).count(), 0);
    }

    #[test]
    fn everything_gone() {
        let present = [disk(1, 1, 512), disk(2, 1, 512)];
        let got: Vec<_> = diff(&present, &[]).collect();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|c| matches!(
            c,
            Change::Remove {
                why: Removal::Gone,
                ..
            }
        )));
    }
}
