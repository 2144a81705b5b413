//! The data structures the controller returns: Identify (NVMe Base 2.0 §5.17.2) and log
//! pages (§5.16.1).

use super::ctrl::Ctrl;
use super::ns::Namespace;
use super::wire::Le;

/// OACS bits (NVMe Base 2.0 Figure 275, bytes 257:256).
const OACS_FORMAT: u16 = 1 << 1;
const OACS_NS_MGMT: u16 = 1 << 3;
const OACS_DBBUF: u16 = 1 << 8;

/// Log page identifiers (NVMe Base 2.0 §5.16, Figure 202).
pub(super) mod lid {
    pub(crate) const ERROR: u8 = 0x01;
    pub(crate) const SMART: u8 = 0x02;
    pub(crate) const FW_SLOT: u8 = 0x03;
    pub(crate) const CHANGED_NS: u8 = 0x04;
    pub(crate) const EFFECTS: u8 = 0x05;
}

impl Ctrl {
    /// OACS as configured.
    pub(super) fn oacs(&self) -> u16 {
        let c = &self.cfg;
        let mut v = 0;
        if c.format_nvm {
            v |= OACS_FORMAT;
        }
        if c.ns_management {
            v |= OACS_NS_MGMT;
        }
        if c.dbbuf {
            v |= OACS_DBBUF;
        }
        v
    }

    /// VWC: bit 0 cache present; bits 2:1 = 11b, Flush with NSID FFFFFFFFh supported.
    fn vwc(&self) -> u8 {
        0x06 | u8::from(self.cfg.vwc)
    }

    /// Whether Flush accepts NSID FFFFFFFFh.
    pub(super) fn flush_broadcast(&self) -> bool {
        self.vwc() & 0x06 == 0x06
    }

    /// Total NVM capacity in bytes.
    pub(super) fn capacity(&self) -> u64 {
        self.cfg.capacity.unwrap_or_else(|| {
            self.cfg
                .namespaces
                .iter()
                .map(|n| n.blocks.saturating_mul(u64::from(n.block_size)))
                .fold(64 << 30, u64::saturating_add)
        })
    }

    /// Capacity not allocated to a namespace.
    pub(super) fn unallocated(&self) -> u64 {
        let used = self
            .namespaces
            .values()
            .map(Namespace::bytes)
            .fold(0, u64::saturating_add);
        self.capacity().saturating_sub(used)
    }

    /// Identify Controller (CNS 01h; NVMe Base 2.0 §5.17.2.1, Figure 275).
    pub(super) fn identify_controller(&self) -> Vec<u8> {
        let c = &self.cfg;
        let mut d = vec![0u8; 4096];
        let mut b = Le(&mut d);
        b.u16(0, c.ids.vendor);
        b.u16(2, c.ids.subsystem_vendor);
        b.ascii(4, 20, &c.sn);
        b.ascii(24, 40, &c.mn);
        b.ascii(64, 8, &c.fr);
        b.u8(72, 6); // RAB
        b.bytes(73, &[0x00, 0x54, 0x52]); // IEEE OUI 52:54:00, least significant byte first
        b.u8(77, c.mdts);
        b.u16(78, c.cntlid);
        b.u32(80, c.vs);
        b.u32(92, 1 << 8); // OAES: Namespace Attribute Notices
        b.u8(111, 1); // CNTRLTYPE: I/O controller
        b.u16(256, self.oacs());
        b.u8(258, c.acl);
        b.u8(259, c.aerl);
        b.u8(260, 0x03); // FRMW: one slot, slot 1 read only
        b.u8(261, 0x06); // LPA: Commands Supported and Effects, extended data
                         // CAST: error_log_entries is 1..=256.
        b.u8(262, (c.error_log_entries - 1) as u8); // ELPE
        b.u8(263, 0); // NPSS
        b.u16(266, c.wctemp);
        b.u16(268, c.cctemp);
        b.u128(280, u128::from(self.capacity())); // TNVMCAP
        b.u128(296, u128::from(self.unallocated())); // UNVMCAP
        b.u16(320, c.kas);
        b.u8(512, 0x66); // SQES
        b.u8(513, 0x44); // CQES
        b.u16(514, c.maxcmd);
        b.u32(516, c.nn);
        b.u16(520, c.oncs);
        b.u8(525, self.vwc());
        b.u8(530, 1); // NVSCC
        b.u32(536, u32::from(c.sgls)); // SGLS
        let nqn = c
            .subnqn
            .clone()
            .unwrap_or_else(|| format!("nqn.2026-01.org.orion:sim:{}", c.sn));
        let n = nqn.as_bytes();
        b.bytes(768, &n[..n.len().min(255)]);
        // Power state 0: 25 W, 16 us entry and exit latency.
        b.u16(2048, 2500);
        b.u32(2052, 16);
        b.u32(2056, 16);
        d
    }

    /// Identify Namespace (CNS 00h/11h; NVM Command Set 1.0 §4.1.5.1, Figure 97). With
    /// `None`, the capabilities common to all namespaces (NSID FFFFFFFFh).
    pub(super) fn identify_namespace(&self, ns: Option<&Namespace>) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let mut b = Le(&mut d);
        if let Some(ns) = ns {
            b.u64(0, ns.nsze);
            b.u64(8, ns.nsze);
            b.u64(16, ns.used());
            b.u8(26, ns.flbas & 0xf | ((ns.flbas >> 4) << 5));
            b.u128(48, u128::from(ns.bytes())); // NVMCAP
            if let Some(g) = ns.nguid {
                b.bytes(104, &g);
            }
            if let Some(e) = ns.eui64 {
                b.bytes(120, &e);
            }
        }
        // CAST: at most 16 formats.
        b.u8(25, (self.cfg.lba_formats.len() - 1) as u8); // NLBAF
        b.u8(33, 0x09); // DLFEAT: deallocated blocks read 0; Write Zeroes DEAC supported
        for (i, size) in self.cfg.lba_formats.iter().enumerate() {
            // LBAF: MS 0, LBADS, RP 0.
            b.u32(128 + 4 * i, size.trailing_zeros() << 16);
        }
        d
    }

    /// Active (or, with `allocated`, allocated) namespace IDs above `after` (CNS 02h/10h).
    pub(super) fn ns_list(&self, after: u32, allocated: bool) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let mut b = Le(&mut d);
        let ids = self
            .namespaces
            .iter()
            .filter(|(id, ns)| **id > after && (allocated || ns.attached))
            .map(|(id, _)| *id)
            .take(1024);
        for (i, id) in ids.enumerate() {
            b.u32(4 * i, id);
        }
        d
    }

    /// Namespace Identification Descriptor list (CNS 03h; NVMe Base 2.0 §5.17.2.3).
    pub(super) fn ns_descriptors(ns: &Namespace) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let mut off = 0;
        let mut put = |kind: u8, id: &[u8]| {
            let mut b = Le(&mut d);
            b.u8(off, kind);
            // CAST: identifiers are at most 16 bytes.
            b.u8(off + 1, id.len() as u8);
            b.bytes(off + 4, id);
            off += 4 + id.len();
        };
        if let Some(e) = ns.eui64 {
            put(0x1, &e);
        }
        if let Some(g) = ns.nguid {
            put(0x2, &g);
        }
        if let Some(u) = ns.uuid {
            put(0x3, &u);
        }
        put(0x4, &[0]); // CSI: NVM Command Set
        d
    }

    /// A controller list holding this controller only (CNS 12h/13h).
    pub(super) fn controller_list(&self, after: u16) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        if self.cfg.cntlid >= after {
            let mut b = Le(&mut d);
            b.u16(0, 1);
            b.u16(2, self.cfg.cntlid);
        }
        d
    }

    /// Error Information log (NVMe Base 2.0 §5.16.1.2): ELPE + 1 entries, newest first.
    pub(super) fn error_log(&self) -> Vec<u8> {
        let mut d = vec![0u8; 64 * usize::from(self.cfg.error_log_entries)];
        let mut b = Le(&mut d);
        for (i, e) in self.errors.iter().enumerate() {
            let o = 64 * i;
            b.u64(o, e.count);
            b.u16(o + 8, e.sqid);
            b.u16(o + 10, e.cid);
            b.u16(o + 12, e.status << 1);
            b.u16(o + 14, 0xffff); // Parameter Error Location: not specific
            b.u32(o + 24, e.nsid);
        }
        d
    }

    /// SMART / Health Information (NVMe Base 2.0 §5.16.1.3, Figure 207), controller wide.
    pub(super) fn smart_log(&self) -> Vec<u8> {
        let s = &self.smart;
        let mut d = vec![0u8; 512];
        let mut b = Le(&mut d);
        b.u8(0, self.critical_warning());
        b.u16(1, s.temperature);
        b.u8(3, 100); // Available Spare
        b.u8(4, 10); // Available Spare Threshold
                     // Data units are thousands of 512-byte units, rounded up.
        let units = |bytes: u64| u128::from(bytes.div_ceil(512).div_ceil(1000));
        b.u128(32, units(s.bytes_read));
        b.u128(48, units(s.bytes_written));
        b.u128(64, u128::from(s.host_reads));
        b.u128(80, u128::from(s.host_writes));
        b.u128(112, 1); // Power Cycles
        let hours = self.now.saturating_duration_since(self.boot).as_millis() / 3_600_000;
        b.u128(128, u128::from(hours));
        b.u128(176, u128::from(self.error_count));
        d
    }

    /// Firmware Slot Information (NVMe Base 2.0 §5.16.1.4): slot 1 active, holding FR.
    pub(super) fn fw_slot_log(&self) -> Vec<u8> {
        let mut d = vec![0u8; 512];
        let mut b = Le(&mut d);
        b.u8(0, 0x01);
        b.ascii(8, 8, &self.cfg.fr);
        d
    }

    /// Changed Namespace List (NVMe Base 2.0 §5.16.1.5): up to 1024 IDs, or FFFFFFFFh first
    /// when more changed.
    pub(super) fn changed_ns_log(&self) -> Vec<u8> {
        let mut d = vec![0u8; 4096];
        let mut b = Le(&mut d);
        if self.changed_ns.len() > 1024 {
            b.u32(0, u32::MAX);
        } else {
            for (i, id) in self.changed_ns.iter().enumerate() {
                b.u32(4 * i, *id);
            }
        }
        d
    }

    /// Commands Supported and Effects (NVMe Base 2.0 §5.16.1.6) for the NVM command set.
    pub(super) fn effects_log(&self) -> Vec<u8> {
        const CSUPP: u32 = 1 << 0;
        const LBCC: u32 = 1 << 1;
        const NCC: u32 = 1 << 2;
        const NIC: u32 = 1 << 3;
        const CCC: u32 = 1 << 4;
        // CSE 001b: no other command for the namespace while it runs.
        const CSE_NS: u32 = 1 << 16;
        let c = &self.cfg;
        let mut d = vec![0u8; 4096];
        let mut b = Le(&mut d);
        let mut admin = vec![
            (0x00, CSUPP),
            (0x01, CSUPP),
            (0x02, CSUPP),
            (0x04, CSUPP),
            (0x05, CSUPP),
            (0x06, CSUPP),
            (0x08, CSUPP),
            (0x09, CSUPP),
            (0x0a, CSUPP),
            (0x0c, CSUPP),
        ];
        if c.ns_create_delete {
            admin.push((0x0d, CSUPP | NIC | CCC));
        }
        if c.ns_management {
            admin.push((0x15, CSUPP | NIC | CCC));
        }
        if c.kas != 0 {
            admin.push((0x18, CSUPP));
        }
        if c.dbbuf {
            admin.push((0x7c, CSUPP));
        }
        if c.format_nvm {
            admin.push((0x80, CSUPP | LBCC | NCC | NIC | CSE_NS));
        }
        for (op, v) in admin {
            b.u32(4 * op, v);
        }
        let mut io = vec![(0x00, CSUPP | LBCC), (0x01, CSUPP | LBCC), (0x02, CSUPP)];
        if c.oncs & (1 << 0) != 0 {
            io.push((0x05, CSUPP));
        }
        if c.oncs & (1 << 3) != 0 {
            io.push((0x08, CSUPP | LBCC));
        }
        if c.oncs & (1 << 2) != 0 {
            io.push((0x09, CSUPP | LBCC));
        }
        if c.oncs & (1 << 7) != 0 {
            io.push((0x0c, CSUPP));
        }
        for (op, v) in io {
            b.u32(1024 + 4 * op, v);
        }
        d
    }
}
