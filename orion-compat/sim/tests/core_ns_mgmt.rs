//! Namespace Management (NVMe Base 2.0 §5.22) driven the way the kernel driver drives it, against
//! the simulated controller: nvme-cli's `create-ns`, `attach-ns`, `detach-ns` and `delete-ns`
//! arrive as admin passthrough (the ioctl structure, [`passthru::check`], the data through a
//! bounce buffer with PRPs, [`Controller::admin_raw`]); the Namespace Attribute Changed event is
//! picked up with [`Controller::poll_async_event`], its Changed Namespace List read with
//! [`Controller::read_log_clearing`], and the namespaces rescanned with
//! [`Controller::for_each_namespace`].

mod common;

use common::{up, SimPlatform};
use orion_compat::time::Duration;
use orion_nvme::controller::{Controller, CtrlError, Enabled, NamespaceInfo};
use orion_nvme::namespace;
use orion_nvme::passthru::bounce::{AdminError, Bounce};
use orion_nvme::passthru::{self, Caller, Command, Direction, Limits, Node, QueueKind};
use orion_nvme::spec::cqe::{notice_info, AsyncEvent, AsyncEventType};
use orion_nvme::spec::identify::{self, Flbas};
use orion_nvme::spec::log::{Effects, LogId};
use orion_nvme::spec::opcode::Admin;
use orion_nvme::spec::sqe::{NsAttachSel, NsMgmtSel, NSID_ALL};
use orion_nvme::spec::status::{cmd, generic, Sct, Status};
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::{NvmeBuilder, SimNvme};
use orion_sim::Sim;
use zerocopy::{FromZeros, IntoBytes};

type Ctrl = Controller<SimPlatform, Enabled>;

const PAGE: usize = 4096;
const MIB: u64 = 1 << 20;

/// The glue's default admin passthrough timeout (a caller's `timeout_ms` of 0).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The sim, the controller model and the core's controller, enabled and identified, with the
/// driver's asynchronous events started (as at probe).
struct Rig {
    /// Keeps the simulator (its memory and clock) alive.
    _sim: Sim,
    nvme: SimNvme,
    c: Ctrl,
    effects: Box<Effects>,
}

fn probe(b: NvmeBuilder) -> Rig {
    let (common::Rig { sim, nvme }, mut c) = up(b);
    c.identify().unwrap();
    let mut effects = Box::new(Effects::new_zeroed());
    assert!(c.command_effects(&mut effects).unwrap());
    c.start_async_events().unwrap();
    Rig {
        _sim: sim,
        nvme,
        c,
        effects,
    }
}

impl Rig {
    /// An admin passthrough command from root on the controller node, run through the
    /// core's passthrough service as a platform's front end runs it: checked, `user`'s data
    /// copied into the core's bounce buffer for a host-to-device command (and back out for
    /// device-to-host), `admin_passthru` with the caller's timeout. `Ok` carries the result
    /// written back (DW0), `Err` the NVMe status returned.
    fn admin_ioctl(&mut self, cmd: &Command, user: &mut [u8]) -> Result<u32, Status> {
        let max_data = self
            .c
            .info()
            .and_then(|i| i.max_transfer)
            .map_or(u32::MAX, |m| u32::try_from(m).unwrap_or(u32::MAX));
        let limits = Limits {
            max_data,
            effects: Some(&self.effects),
            vendor_admin: 0,
            vendor_io: 0,
            max_timeout_ms: 3_600_000,
        };
        let root = Caller {
            sys_admin: true,
            writable: true,
        };
        let k = passthru::check(cmd, QueueKind::Admin, Node::Controller, root, &limits)
            .expect("root may send it");
        let len = k.len as usize;
        assert!(
            user.len() >= len,
            "the caller's buffer holds data_len bytes"
        );
        let slots: Vec<Option<SimCoherent>> =
            (0..Bounce::<SimCoherent, Vec<_>>::chunks_for(len, self.c.page_size()))
                .map(|_| None)
                .collect();
        let bounce = self.c.bounce(len, slots).unwrap();
        if k.dir == Direction::ToDevice {
            bounce.write(0, &user[..len]).unwrap();
        }
        let timeout = match k.timeout_ms {
            0 => ADMIN_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        match self.c.admin_passthru(k.sqe, &bounce, timeout) {
            Ok(result) => {
                if k.dir == Direction::FromDevice {
                    bounce.read(0, &mut user[..len]).unwrap();
                }
                // CAST: the 32-bit ioctl writes back DW0.
                Ok(result as u32)
            }
            Err(AdminError::Ctrl(CtrlError::Status(s))) => Err(s),
            Err(e) => panic!("not a device status: {e:?}"),
        }
    }

    /// `nvme create-ns --nsze=blocks --ncap=blocks --flbas=format`: Namespace Management
    /// create with an Identify Namespace structure holding the host's fields, NSID 0.
    fn create_ns(&mut self, blocks: u64, format: u8) -> Result<u32, Status> {
        let mut id = identify::Namespace::new_zeroed();
        id.nsze = blocks;
        id.ncap = blocks;
        id.flbas = Flbas::from_index(format);
        let cmd = Command {
            opcode: Admin::NsManagement.raw(),
            data_len: PAGE as u32,
            cdw10: NsMgmtSel::Create as u32,
            cdw11: 0, // CSI 00h: NVM
            ..Default::default()
        };
        self.admin_ioctl(&cmd, id.as_mut_bytes())
    }

    /// `nvme attach-ns` / `detach-ns --controllers=<this one>`.
    fn attachment(&mut self, nsid: u32, sel: NsAttachSel) -> Result<u32, Status> {
        let cntlid = self.c.info().unwrap().cntlid;
        let mut list = identify::CtrlList::new(&[cntlid]);
        let cmd = Command {
            opcode: Admin::NsAttachment.raw(),
            nsid,
            data_len: PAGE as u32,
            cdw10: sel as u32,
            ..Default::default()
        };
        self.admin_ioctl(&cmd, list.as_mut_bytes())
    }

    /// `nvme delete-ns --namespace-id=nsid`.
    fn delete_ns(&mut self, nsid: u32) -> Result<u32, Status> {
        let cmd = Command {
            opcode: Admin::NsManagement.raw(),
            nsid,
            cdw10: NsMgmtSel::Delete as u32,
            ..Default::default()
        };
        self.admin_ioctl(&cmd, &mut [])
    }

    /// What the glue's event work does on a Namespace Attribute Changed notice: reads the
    /// Changed Namespace List (clearing the event), re-arms the request; returns the IDs it
    /// listed. Panics if no such event is there.
    fn take_namespace_event(&mut self) -> Vec<u32> {
        let ev: AsyncEvent = self
            .c
            .poll_async_event()
            .unwrap()
            .expect("a Namespace Attribute Changed event");
        assert_eq!(ev.event_type(), Ok(AsyncEventType::Notice));
        assert_eq!(ev.aei(), notice_info::NS_ATTRIBUTE_CHANGED);
        assert_eq!(ev.lid(), LogId::CHANGED_NS_LIST.0);
        let log = self
            .c
            .read_log_clearing(LogId::CHANGED_NS_LIST, 0, PAGE)
            .unwrap();
        let ids = log
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .take_while(|&id| id != 0)
            .collect();
        self.c.arm_async_event().unwrap();
        ids
    }

    fn no_event(&mut self) {
        assert_eq!(self.c.poll_async_event().unwrap(), None);
        assert_eq!(self.nvme.outstanding_aers(), 1, "the request is still out");
    }

    /// The rescan: every usable active namespace.
    fn scan(&mut self) -> Vec<NamespaceInfo> {
        let mut v = Vec::new();
        self.c
            .for_each_namespace(|n| v.push(n), |id, why| panic!("ns {id} skipped: {why}"))
            .unwrap();
        v
    }

    /// (NSID, blocks, block size) of every namespace the rescan finds.
    fn scan_geometry(&mut self) -> Vec<(u32, u64, u32)> {
        self.scan()
            .iter()
            .map(|n| (n.nsid, n.blocks, n.block_size))
            .collect()
    }
}

/// A controller with Namespace Management: NSID 1 of 2048 × 512 B attached, formats 512 B and
/// 4 KiB, 4 MiB of NVM capacity.
fn mgmt() -> NvmeBuilder {
    NvmeBuilder::new()
        .namespace(1, 512, 2048)
        .lba_formats(&[512, 4096])
        .capacity(4 * MIB)
}

/// Create, attach, event, rescan; detach, event, rescan; delete: the namespace's whole life
/// through the management interface, with the numbers the host sees at each step.
#[test]
fn created_and_attached_namespace_is_found_by_the_rescan_and_gone_after_detach_and_delete() {
    let mut r = probe(mgmt());
    let info = r.c.info().unwrap();
    assert!(info.oacs.ns_mgmt(), "OACS bit 3");
    assert!(info.oaes.nan(), "Namespace Attribute Notices");
    assert_eq!(r.scan_geometry(), [(1, 2048, 512)]);

    // create-ns: 256 blocks of 4 KiB (format 1); allocated, not attached, nothing reported.
    let nsid = r.create_ns(256, 1).unwrap();
    assert_eq!(nsid, 2, "the lowest free NSID comes back in DW0");
    assert_eq!(r.nvme.namespace_geometry(nsid), Some((4096, 256)));
    r.no_event();
    assert_eq!(r.scan_geometry(), [(1, 2048, 512)], "not attached yet");

    // attach-ns: the event comes (reaped by the attach's own wait), the list names it, and
    // the rescan finds it with its size and block size.
    r.attachment(nsid, NsAttachSel::Attach).unwrap();
    assert_eq!(r.take_namespace_event(), [nsid]);
    assert_eq!(r.scan_geometry(), [(1, 2048, 512), (nsid, 256, 4096)]);
    let found = r.scan()[1];
    assert_eq!(found.metadata, 0);
    assert!(
        found.ids.nguid.is_some() && found.ids.uuid.is_some(),
        "{:?}",
        found.ids
    );
    assert_eq!(found.ids.csi, Some(0), "NVM command set");
    assert_eq!(r.nvme.active_namespaces(), [1, nsid]);

    // detach-ns: the event again, and the rescan no longer finds it.
    r.attachment(nsid, NsAttachSel::Detach).unwrap();
    assert_eq!(r.take_namespace_event(), [nsid]);
    assert_eq!(r.scan_geometry(), [(1, 2048, 512)]);

    // delete-ns of the detached namespace: gone, and nothing to report to this controller.
    assert_eq!(r.delete_ns(nsid), Ok(0));
    r.no_event();
    assert_eq!(r.nvme.namespace_geometry(nsid), None);
    assert_eq!(r.scan_geometry(), [(1, 2048, 512)]);
    // A second delete: the NSID is no longer allocated.
    let s = r.delete_ns(nsid).unwrap_err();
    assert!(s.is(Sct::Generic, generic::INVALID_NS) && s.dnr(), "{s:?}");

    // The NSID is free again; the new namespace is a different one (new NGUID).
    assert_eq!(r.create_ns(2048, 0), Ok(nsid));
    r.attachment(nsid, NsAttachSel::Attach).unwrap();
    assert_eq!(r.take_namespace_event(), [nsid]);
    let again = r.scan()[1];
    assert_eq!(
        (again.nsid, again.blocks, again.block_size),
        (nsid, 2048, 512)
    );
    assert_ne!(again.ids.nguid, found.ids.nguid);
}

/// `nvme delete-ns` of an attached namespace (no detach first) and with NSID FFFFFFFFh: the
/// controller detaches what was attached, which the event and the rescan both show.
#[test]
fn deleting_attached_namespaces_raises_the_event_and_the_rescan_drops_them() {
    let mut r = probe(mgmt());
    let a = r.create_ns(64, 0).unwrap();
    let b = r.create_ns(16, 1).unwrap();
    assert_eq!((a, b), (2, 3));
    r.attachment(a, NsAttachSel::Attach).unwrap();
    assert_eq!(r.take_namespace_event(), [a]);
    r.attachment(b, NsAttachSel::Attach).unwrap();
    assert_eq!(r.take_namespace_event(), [b]);
    assert_eq!(
        r.scan_geometry(),
        [(1, 2048, 512), (a, 64, 512), (b, 16, 4096)]
    );

    assert_eq!(r.delete_ns(a), Ok(0));
    assert_eq!(r.take_namespace_event(), [a]);
    assert_eq!(r.scan_geometry(), [(1, 2048, 512), (b, 16, 4096)]);

    assert_eq!(r.delete_ns(NSID_ALL), Ok(0));
    assert_eq!(r.take_namespace_event(), [1, b], "every attached namespace");
    assert_eq!(r.scan_geometry(), []);
    assert!(r.nvme.active_namespaces().is_empty());
}

/// Errors reach the caller as the controller's status, with SCT and SC intact, and leave
/// nothing behind.
#[test]
fn create_errors_come_back_as_the_controller_status() {
    let mut r = probe(mgmt().nn(3));
    let s = r.create_ns(8, 2).unwrap_err();
    assert!(
        s.is(Sct::CommandSpecific, cmd::INVALID_FORMAT) && s.dnr(),
        "{s:?}"
    );
    // 3 MiB are unallocated: one block of 512 B more does not fit.
    let s = r.create_ns(3 * MIB / 512 + 1, 0).unwrap_err();
    assert!(
        s.is(Sct::CommandSpecific, cmd::NS_INSUFFICIENT_CAPACITY),
        "{s:?}"
    );
    assert_eq!(r.create_ns(8, 0), Ok(2));
    assert_eq!(r.create_ns(8, 1), Ok(3));
    let s = r.create_ns(8, 0).unwrap_err();
    assert!(s.is(Sct::CommandSpecific, cmd::NSID_UNAVAILABLE), "{s:?}");
    r.no_event();
    assert_eq!(r.scan_geometry(), [(1, 2048, 512)]);
}

/// Without Namespace Management, 0Dh is Invalid Command Opcode and OACS bit 3 is clear; with
/// QEMU 7.2's quirk (bit 3 set, create and delete missing) the opcode is refused just the same.
#[test]
fn namespace_management_off_is_invalid_command_opcode() {
    for (b, oacs) in [
        (NvmeBuilder::new().ns_management(false, false), false),
        (NvmeBuilder::new().ns_management(true, false), true),
    ] {
        let mut r = probe(b);
        assert_eq!(r.c.info().unwrap().oacs.ns_mgmt(), oacs);
        let s = r.create_ns(8, 0).unwrap_err();
        assert!(
            s.is(Sct::Generic, generic::INVALID_OPCODE) && s.dnr(),
            "{s:?}"
        );
        let s = r.delete_ns(1).unwrap_err();
        assert!(s.is(Sct::Generic, generic::INVALID_OPCODE), "{s:?}");
        r.no_event();
        assert_eq!(
            r.scan_geometry(),
            [(1, 1 << 21, 512)],
            "the default namespace stays"
        );
    }
}

/// The disks a driver keeps, brought in line after each namespace change by the core's
/// rescan diff ([`namespace::diff`]) and disk rule ([`namespace::disk_for`]): the platform
/// part (the disks themselves) is this list.
struct Disks(Vec<namespace::Present>);

impl Disks {
    /// Applies one rescan; returns the changes it made, as the core counts them.
    fn rescan(&mut self, r: &mut Rig) -> namespace::RescanCount {
        let found = r.scan();
        let info = r.c.info().unwrap().clone();
        let page = r.c.page_size();
        let changes: Vec<_> = namespace::diff(&self.0, &found).collect();
        let mut n = namespace::RescanCount::default();
        for c in changes {
            match c {
                namespace::Change::Remove { nsid, .. } => {
                    self.0.retain(|p| p.nsid != nsid);
                    n.removed += 1;
                }
                namespace::Change::Resize { nsid, blocks } => {
                    let p = self.0.iter_mut().find(|p| p.nsid == nsid).unwrap();
                    p.blocks = blocks;
                    n.resized += 1;
                }
                namespace::Change::Add(ns) => {
                    let g = namespace::disk_for(&info, ns, page).unwrap();
                    assert_eq!(
                        (g.capacity, g.logical_block_size),
                        (ns.blocks, ns.block_size)
                    );
                    self.0.push(namespace::Present {
                        nsid: ns.nsid,
                        block_size: g.logical_block_size,
                        blocks: g.capacity,
                    });
                    n.added += 1;
                }
            }
        }
        n
    }

    fn ids(&self) -> Vec<(u32, u32, u64)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .map(|p| (p.nsid, p.block_size, p.blocks))
            .collect();
        v.sort_unstable();
        v
    }
}

/// Namespaces created, attached, deleted and created again with another block size under the
/// same NSID: each rescan adds, removes and re-adds the disks, and a rescan with nothing
/// changed does nothing.
#[test]
fn the_rescan_diff_follows_namespace_management() {
    let mut r = probe(mgmt());
    let mut d = Disks(Vec::new());
    let count = |added, removed, resized| namespace::RescanCount {
        added,
        removed,
        resized,
    };
    assert_eq!(d.rescan(&mut r), count(1, 0, 0));
    assert_eq!(d.ids(), [(1, 512, 2048)]);
    assert_eq!(d.rescan(&mut r), count(0, 0, 0), "nothing changed");

    let a = r.create_ns(64, 0).unwrap();
    r.attachment(a, NsAttachSel::Attach).unwrap();
    assert_eq!(r.take_namespace_event(), [a]);
    assert_eq!(d.rescan(&mut r), count(1, 0, 0));
    assert_eq!(d.ids(), [(1, 512, 2048), (a, 512, 64)]);

    // Same NSID, new format: the old disk goes, a 4 KiB one comes.
    assert_eq!(r.delete_ns(a), Ok(0));
    assert_eq!(r.take_namespace_event(), [a]);
    assert_eq!(r.create_ns(32, 1), Ok(a));
    r.attachment(a, NsAttachSel::Attach).unwrap();
    assert_eq!(r.take_namespace_event(), [a]);
    assert_eq!(d.rescan(&mut r), count(1, 1, 0));
    assert_eq!(d.ids(), [(1, 512, 2048), (a, 4096, 32)]);

    // Everything deleted: every disk goes.
    assert_eq!(r.delete_ns(NSID_ALL), Ok(0));
    assert_eq!(r.take_namespace_event(), [1, a]);
    assert_eq!(d.rescan(&mut r), count(0, 2, 0));
    assert!(d.ids().is_empty());
}
