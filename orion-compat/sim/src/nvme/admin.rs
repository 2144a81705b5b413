//! Admin commands (NVMe Base 2.0 §5).

use super::ctrl::{Cq, Ctrl, Outcome, Sq};
use super::data::lid;
use super::dptr::{DmaError, Xfer};
use super::ns::{self, Namespace};
use super::status::{generic, specific, Status};
use super::wire::{get_u16, get_u64, Sqe};

/// Admin opcodes (NVMe Base 2.0 §5, Figure 139).
pub mod op {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Get Log Page.
    pub const GET_LOG_PAGE: u8 = 0x02;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Abort.
    pub const ABORT: u8 = 0x08;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0a;
    /// Asynchronous Event Request.
    pub const ASYNC_EVENT: u8 = 0x0c;
    /// Namespace Management.
    pub const NS_MANAGEMENT: u8 = 0x0d;
    /// Namespace Attachment.
    pub const NS_ATTACHMENT: u8 = 0x15;
    /// Keep Alive.
    pub const KEEP_ALIVE: u8 = 0x18;
    /// Doorbell Buffer Config.
    pub const DBBUF_CONFIG: u8 = 0x7c;
    /// Format NVM.
    pub const FORMAT_NVM: u8 = 0x80;
}

/// Feature identifiers (NVMe Base 2.0 §5.27.1, Figure 317).
mod fid {
    pub(super) const ARBITRATION: u8 = 0x01;
    pub(super) const POWER_MGMT: u8 = 0x02;
    pub(super) const TEMP_THRESHOLD: u8 = 0x04;
    pub(super) const ERROR_RECOVERY: u8 = 0x05;
    pub(super) const VWC: u8 = 0x06;
    pub(super) const NUM_QUEUES: u8 = 0x07;
    pub(super) const COALESCING: u8 = 0x08;
    pub(super) const VECTOR_CONFIG: u8 = 0x09;
    pub(super) const WRITE_ATOMICITY: u8 = 0x0a;
    pub(super) const ASYNC_EVENT_CONFIG: u8 = 0x0b;
    pub(super) const TIMESTAMP: u8 = 0x0e;
    pub(super) const KEEP_ALIVE: u8 = 0x0f;
}

const BROADCAST: u32 = u32::MAX;

/// Command Set Identifier of the NVM Command Set (NVMe Base 2.0 §5.22's CDW11 CSI).
const CSI_NVM: u8 = 0x00;

/// The host software specified fields of a Namespace Management create data structure (NVMe
/// Base 2.0 §5.22), which sit at their Identify Namespace offsets (NVM Command Set 1.0
/// §4.1.5.1, Figure 97). The rest of the 4 KiB is ignored.
#[derive(Clone, Copy, Debug)]
struct CreateFields {
    /// Namespace Size (bytes 7:0), in logical blocks.
    nsze: u64,
    /// Namespace Capacity (bytes 15:8), in logical blocks.
    ncap: u64,
    /// Formatted LBA Size (byte 26).
    flbas: u8,
    /// End-to-end Data Protection Type Settings (byte 29).
    dps: u8,
    /// Namespace Multi-path I/O and Namespace Sharing Capabilities (byte 30).
    nmic: u8,
}

impl CreateFields {
    fn parse(d: &[u8]) -> Self {
        let byte = |o: usize| d.get(o).copied().unwrap_or(0);
        Self {
            nsze: get_u64(d, 0),
            ncap: get_u64(d, 8),
            flbas: byte(26),
            dps: byte(29),
            nmic: byte(30),
        }
    }

    /// The LBA format index FLBAS selects: bits 3:0, with bits 6:5 as its two most
    /// significant bits.
    fn format_index(self) -> u8 {
        (self.flbas & 0xf) | (((self.flbas >> 5) & 0x3) << 4)
    }
}

type Result<T = Outcome> = std::result::Result<T, Status>;

fn done(r: Result) -> Outcome {
    r.unwrap_or_else(Outcome::err)
}

impl Ctrl {
    /// Executes an admin command.
    pub(super) fn admin(&mut self, sqe: &Sqe) -> Outcome {
        let c = &self.cfg;
        let supported = match sqe.opcode() {
            op::DELETE_SQ
            | op::CREATE_SQ
            | op::GET_LOG_PAGE
            | op::DELETE_CQ
            | op::CREATE_CQ
            | op::IDENTIFY
            | op::ABORT
            | op::SET_FEATURES
            | op::GET_FEATURES
            | op::ASYNC_EVENT => true,
            op::NS_MANAGEMENT => c.ns_create_delete,
            op::NS_ATTACHMENT => c.ns_management,
            op::KEEP_ALIVE => c.kas != 0,
            op::DBBUF_CONFIG => c.dbbuf,
            op::FORMAT_NVM => c.format_nvm,
            _ => false,
        };
        if !supported {
            return generic::INVALID_OPCODE.into();
        }
        // Fused operations are not supported (FUSES 0), and admin commands use PRPs only.
        if sqe.fuse() != 0 || sqe.psdt() != 0 {
            return generic::INVALID_FIELD.into();
        }
        done(match sqe.opcode() {
            op::DELETE_SQ => self.delete_sq(sqe),
            op::CREATE_SQ => self.create_sq(sqe),
            op::GET_LOG_PAGE => self.get_log_page(sqe),
            op::DELETE_CQ => self.delete_cq(sqe),
            op::CREATE_CQ => self.create_cq(sqe),
            op::IDENTIFY => self.identify(sqe),
            op::ABORT => Ok(self.abort(sqe)),
            op::SET_FEATURES => self.set_features(sqe),
            op::GET_FEATURES => self.get_features(sqe),
            op::ASYNC_EVENT => self.async_event_request(sqe),
            op::NS_MANAGEMENT => self.ns_management(sqe),
            op::NS_ATTACHMENT => self.ns_attachment(sqe),
            op::DBBUF_CONFIG => self.dbbuf_config(sqe),
            op::FORMAT_NVM => self.format_nvm(sqe),
            // Keep Alive: the timer was restarted when the command was fetched.
            _ => Ok(Outcome::ok(0)),
        })
    }

    fn io_queue_exists(&self) -> bool {
        self.sqs.keys().any(|q| *q != 0) || self.cqs.keys().any(|q| *q != 0)
    }

    /// Create I/O Completion Queue (NVMe Base 2.0 §5.4). Checks, in order: QID, QSIZE, PC,
    /// PRP1, IV.
    fn create_cq(&mut self, sqe: &Sqe) -> Result {
        let (d10, d11) = (sqe.cdw(10), sqe.cdw(11));
        // CAST: 16-bit fields.
        let qid = (d10 & 0xffff) as u16;
        let qsize = d10 >> 16;
        let pc = d11 & 1 != 0;
        let ien = d11 & 2 != 0;
        let iv = (d11 >> 16) as u16;
        if qid == 0 || qid > self.feat.ncq || self.cqs.contains_key(&qid) {
            return Err(specific::INVALID_QUEUE_ID);
        }
        if qsize == 0 || qsize > u32::from(self.cfg.mqes) {
            return Err(specific::INVALID_QUEUE_SIZE);
        }
        if !pc {
            return Err(generic::INVALID_FIELD);
        }
        let base = sqe.prp1();
        if base == 0 {
            return Err(generic::INVALID_FIELD);
        }
        if base % self.page != 0 {
            return Err(generic::PRP_OFFSET_INVALID);
        }
        if iv >= self.cfg.vectors {
            return Err(specific::INVALID_VECTOR);
        }
        self.reset_shadow_slot(2 * u64::from(qid) + 1)?;
        self.cqs.insert(qid, Cq::new(base, qsize + 1, ien, iv));
        Ok(Outcome::ok(0))
    }

    /// Create I/O Submission Queue (NVMe Base 2.0 §5.5). Checks, in order: QID, QSIZE, CQID,
    /// PC, PRP1.
    fn create_sq(&mut self, sqe: &Sqe) -> Result {
        let (d10, d11) = (sqe.cdw(10), sqe.cdw(11));
        // CAST: 16-bit fields.
        let qid = (d10 & 0xffff) as u16;
        let qsize = d10 >> 16;
        let pc = d11 & 1 != 0;
        let cqid = (d11 >> 16) as u16;
        if qid == 0 || qid > self.feat.nsq || self.sqs.contains_key(&qid) {
            return Err(specific::INVALID_QUEUE_ID);
        }
        if qsize == 0 || qsize > u32::from(self.cfg.mqes) {
            return Err(specific::INVALID_QUEUE_SIZE);
        }
        if cqid == 0 || !self.cqs.contains_key(&cqid) {
            return Err(specific::CQ_INVALID);
        }
        if !pc {
            return Err(generic::INVALID_FIELD);
        }
        let base = sqe.prp1();
        if base == 0 {
            return Err(generic::INVALID_FIELD);
        }
        if base % self.page != 0 {
            return Err(generic::PRP_OFFSET_INVALID);
        }
        self.reset_shadow_slot(2 * u64::from(qid))?;
        self.sqs.insert(qid, Sq::new(base, qsize + 1, cqid));
        Ok(Outcome::ok(0))
    }

    /// A queue created while a doorbell buffer is configured starts at 0 in both buffers.
    fn reset_shadow_slot(&mut self, slot: u64) -> Result<()> {
        if let Some((shadow, eventidx)) = self.dbbuf {
            let off = slot * self.stride();
            let ok = self.bus.write_u32(shadow.wrapping_add(off), 0).is_ok()
                && self.bus.write_u32(eventidx.wrapping_add(off), 0).is_ok();
            if !ok {
                return Err(generic::DATA_TRANSFER_ERROR);
            }
        }
        Ok(())
    }

    /// Delete I/O Submission Queue (NVMe Base 2.0 §5.6): commands still held on it complete
    /// with Command Aborted due to SQ Deletion first.
    fn delete_sq(&mut self, sqe: &Sqe) -> Result {
        // CAST: 16-bit field.
        let qid = (sqe.cdw(10) & 0xffff) as u16;
        if qid == 0 || !self.sqs.contains_key(&qid) {
            return Err(specific::INVALID_QUEUE_ID);
        }
        let (mine, rest): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|h| h.sqid == qid);
        self.held = rest;
        for h in mine {
            self.complete(h.sqid, h.sqe, 0, generic::ABORTED_SQ_DELETION);
        }
        self.sqs.remove(&qid);
        Ok(Outcome::ok(0))
    }

    /// Delete I/O Completion Queue (NVMe Base 2.0 §5.7).
    fn delete_cq(&mut self, sqe: &Sqe) -> Result {
        // CAST: 16-bit field.
        let qid = (sqe.cdw(10) & 0xffff) as u16;
        if qid == 0 || !self.cqs.contains_key(&qid) {
            return Err(specific::INVALID_QUEUE_ID);
        }
        if self.sqs.values().any(|s| s.cqid == qid) {
            return Err(specific::INVALID_QUEUE_DELETION);
        }
        self.cqs.remove(&qid);
        Ok(Outcome::ok(0))
    }

    /// The namespace `nsid` if it is active (allocated and attached).
    pub(super) fn active_ns(&self, nsid: u32) -> Option<&Namespace> {
        self.namespaces.get(&nsid).filter(|n| n.attached)
    }

    /// Identify (NVMe Base 2.0 §5.17).
    fn identify(&mut self, sqe: &Sqe) -> Result {
        let d10 = sqe.cdw(10);
        let cns = d10 & 0xff;
        // CAST: 16-bit field.
        let cntid = (d10 >> 16) as u16;
        let csi = sqe.cdw(11) >> 24;
        let nsid = sqe.nsid();
        let nn = self.cfg.nn;
        let mgmt = self.cfg.ns_management;
        let valid_nsid = nsid >= 1 && nsid <= nn;
        let data = match cns {
            // Identify Namespace: an inactive valid NSID returns zeroes.
            0x00 => {
                if nsid == BROADCAST && mgmt {
                    self.identify_namespace(None)
                } else if !valid_nsid {
                    return Err(generic::INVALID_NAMESPACE);
                } else {
                    match self.active_ns(nsid) {
                        Some(ns) => self.identify_namespace(Some(ns)),
                        None => vec![0; 4096],
                    }
                }
            }
            0x01 => self.identify_controller(),
            0x02 | 0x10 if cns == 0x02 || mgmt => {
                if nsid >= 0xffff_fffe {
                    return Err(generic::INVALID_NAMESPACE);
                }
                self.ns_list(nsid, cns == 0x10)
            }
            0x03 => match self.active_ns(nsid) {
                Some(ns) => Ctrl::ns_descriptors(ns),
                None => return Err(generic::INVALID_NAMESPACE),
            },
            // I/O command set specific Identify Namespace / Controller for the NVM command
            // set: nothing beyond the defaults, so all zeroes.
            0x05 | 0x06 => {
                if csi != 0 {
                    return Err(generic::INVALID_FIELD);
                }
                if cns == 0x05 && self.active_ns(nsid).is_none() {
                    return Err(generic::INVALID_NAMESPACE);
                }
                vec![0; 4096]
            }
            0x11 if mgmt => {
                if !valid_nsid {
                    return Err(generic::INVALID_NAMESPACE);
                }
                match self.namespaces.get(&nsid) {
                    Some(ns) => self.identify_namespace(Some(ns)),
                    None => vec![0; 4096],
                }
            }
            0x12 if mgmt => {
                if !valid_nsid {
                    return Err(generic::INVALID_NAMESPACE);
                }
                match self.active_ns(nsid) {
                    Some(_) => self.controller_list(cntid),
                    None => vec![0; 4096],
                }
            }
            0x13 if mgmt => self.controller_list(cntid),
            // I/O Command Set data structure: vector 0 supports the NVM command set only.
            0x1c => {
                let mut d = vec![0u8; 4096];
                if cntid == self.cfg.cntlid {
                    d[0] = 1;
                }
                d
            }
            _ => return Err(generic::INVALID_FIELD),
        };
        self.send(sqe, &data, true)?;
        Ok(Outcome::ok(0))
    }

    /// Get Log Page (NVMe Base 2.0 §5.16). Reading past the end of a page returns zeroes; an
    /// offset past the end is Invalid Field. With RAE clear, events reported against the page
    /// are cleared, and so is the Changed Namespace List.
    fn get_log_page(&mut self, sqe: &Sqe) -> Result {
        let (d10, d11, d14) = (sqe.cdw(10), sqe.cdw(11), sqe.cdw(14));
        // CAST: 8-bit field.
        let id = (d10 & 0xff) as u8;
        let rae = d10 & (1 << 15) != 0;
        let numd = ((u64::from(d11 & 0xffff) << 16) | u64::from(d10 >> 16)) + 1;
        let len = numd * 4;
        let offset = u64::from(sqe.cdw(12)) | (u64::from(sqe.cdw(13)) << 32);
        let ot = d14 & (1 << 23) != 0;
        let csi = d14 >> 24;
        let nsid = sqe.nsid();
        let log = match id {
            lid::ERROR => self.error_log(),
            lid::SMART => {
                if nsid != 0 && nsid != BROADCAST {
                    return Err(generic::INVALID_FIELD);
                }
                self.smart_log()
            }
            lid::FW_SLOT => self.fw_slot_log(),
            lid::CHANGED_NS => self.changed_ns_log(),
            lid::EFFECTS => {
                if csi != 0 {
                    return Err(generic::INVALID_FIELD);
                }
                self.effects_log()
            }
            _ => return Err(specific::INVALID_LOG_PAGE),
        };
        if ot || offset % 4 != 0 || offset > log.len() as u64 {
            return Err(generic::INVALID_FIELD);
        }
        let segs = self.data_segments(sqe, len, true)?;
        let mut x = Xfer::new(&self.bus, segs);
        // CAST: offset <= log.len().
        let part = log.get(offset as usize..).unwrap_or(&[]);
        let n = (part.len() as u64).min(len);
        // CAST: n <= part.len().
        let head = part.get(..n as usize).unwrap_or(&[]);
        let xfer_err = |DmaError| generic::DATA_TRANSFER_ERROR;
        x.put(head).map_err(xfer_err)?;
        let mut left = len - n;
        let zeroes = [0u8; 4096];
        while left > 0 {
            let k = left.min(4096);
            // CAST: k <= 4096.
            x.put(&zeroes[..k as usize]).map_err(xfer_err)?;
            left -= k;
        }
        if !rae {
            if id == lid::CHANGED_NS {
                self.changed_ns.clear();
            }
            self.clear_events(id);
        }
        Ok(Outcome::ok(0))
    }

    /// Abort (NVMe Base 2.0 §5.1): only a held command or an outstanding Asynchronous Event
    /// Request can be aborted; everything else has already completed. Dword 0 bit 0 is 1 when
    /// the command was not aborted.
    fn abort(&mut self, sqe: &Sqe) -> Outcome {
        let d10 = sqe.cdw(10);
        // CAST: 16-bit fields.
        let sqid = (d10 & 0xffff) as u16;
        let cid = (d10 >> 16) as u16;
        if let Some(i) = self
            .held
            .iter()
            .position(|h| h.sqid == sqid && h.sqe.cid() == cid)
        {
            let h = self.held.remove(i);
            self.complete(h.sqid, h.sqe, 0, generic::ABORT_REQUESTED);
            return Outcome::ok(0);
        }
        if sqid == 0 {
            if let Some(i) = self.aers.iter().position(|c| *c == cid) {
                self.aers.remove(i);
                let mut aer = Sqe([0; 64]);
                aer.0[0] = op::ASYNC_EVENT;
                aer.0[2..4].copy_from_slice(&cid.to_le_bytes());
                self.complete(0, aer, 0, generic::ABORT_REQUESTED);
                return Outcome::ok(0);
            }
        }
        Outcome::ok(1)
    }

    /// Asynchronous Event Request (NVMe Base 2.0 §5.2): stays outstanding until an event.
    fn async_event_request(&mut self, sqe: &Sqe) -> Result {
        if self.aers.len() > usize::from(self.cfg.aerl) {
            return Err(specific::AER_LIMIT);
        }
        self.aers.push_back(sqe.cid());
        self.deliver_events();
        Ok(Outcome::Deferred)
    }

    /// Doorbell Buffer Config (NVMe Base 2.0 §5.8): PRP1 the shadow doorbells, PRP2 the
    /// EventIdx buffer, both memory page aligned. The current I/O queue tails and heads are
    /// written to both.
    fn dbbuf_config(&mut self, sqe: &Sqe) -> Result {
        let (shadow, eventidx) = (sqe.prp1(), sqe.prp2());
        if shadow == 0 || eventidx == 0 || shadow % self.page != 0 || eventidx % self.page != 0 {
            return Err(generic::INVALID_FIELD);
        }
        let stride = self.stride();
        let mut writes = Vec::new();
        for (qid, sq) in self.sqs.iter().filter(|(q, _)| **q != 0) {
            writes.push((2 * u64::from(*qid) * stride, sq.tail));
        }
        for (qid, cq) in self.cqs.iter().filter(|(q, _)| **q != 0) {
            writes.push(((2 * u64::from(*qid) + 1) * stride, cq.head));
        }
        for (off, v) in writes {
            let ok = self.bus.write_u32(shadow.wrapping_add(off), v).is_ok()
                && self.bus.write_u32(eventidx.wrapping_add(off), v).is_ok();
            if !ok {
                return Err(generic::DATA_TRANSFER_ERROR);
            }
        }
        self.dbbuf = Some((shadow, eventidx));
        Ok(Outcome::ok(0))
    }

    /// Set Features (NVMe Base 2.0 §5.27).
    fn set_features(&mut self, sqe: &Sqe) -> Result {
        let (d10, d11) = (sqe.cdw(10), sqe.cdw(11));
        // CAST: 8-bit field.
        let f = (d10 & 0xff) as u8;
        let save = d10 & (1 << 31) != 0;
        let nsid = sqe.nsid();
        if save {
            return Err(if self.save_select() {
                specific::NOT_SAVEABLE
            } else {
                generic::INVALID_FIELD
            });
        }
        let ns_scoped = f == fid::ERROR_RECOVERY;
        if !ns_scoped && nsid != 0 && nsid != BROADCAST {
            return Err(specific::NOT_NAMESPACE_SPECIFIC);
        }
        if ns_scoped && nsid != 0 && nsid != BROADCAST && self.active_ns(nsid).is_none() {
            return Err(generic::INVALID_NAMESPACE);
        }
        let mut dw0 = 0;
        match f {
            fid::ARBITRATION => self.feat.arbitration = d11,
            fid::POWER_MGMT => {
                if d11 & 0x1f != 0 {
                    return Err(generic::INVALID_FIELD); // NPSS is 0
                }
                self.feat.power_mgmt = d11 & 0xff;
            }
            fid::TEMP_THRESHOLD => {
                // CAST: 16-bit field.
                let th = (d11 & 0xffff) as u16;
                let sel = (d11 >> 16) & 0xf;
                let kind = (d11 >> 20) & 0x3;
                if sel != 0 && sel != 0xf {
                    return Err(generic::INVALID_FIELD); // only the composite temperature
                }
                let before = self.critical_warning();
                match kind {
                    0 => self.feat.temp_over = th,
                    1 => self.feat.temp_under = th,
                    _ => return Err(generic::INVALID_FIELD),
                }
                self.warning_changed(before);
            }
            fid::ERROR_RECOVERY => {
                if d11 & (1 << 16) != 0 {
                    return Err(generic::INVALID_FIELD); // DULBE: NSFEAT.DAE is 0
                }
                self.feat.error_recovery = d11 & 0xffff;
            }
            fid::VWC => {
                if !self.cfg.vwc {
                    return Err(generic::INVALID_FIELD);
                }
                self.feat.wce = d11 & 1 != 0;
            }
            fid::NUM_QUEUES => {
                if self.io_queue_exists() {
                    return Err(generic::COMMAND_SEQUENCE_ERROR);
                }
                let nsqr = d11 & 0xffff;
                let ncqr = d11 >> 16;
                if nsqr == 0xffff || ncqr == 0xffff {
                    return Err(generic::INVALID_FIELD);
                }
                let limit = self.faults.queue_limit.unwrap_or(u16::MAX);
                let max = u32::from(self.cfg.max_io_queues.min(limit));
                // CAST: both are at most max_io_queues, a u16.
                self.feat.nsq = (nsqr + 1).min(max) as u16;
                self.feat.ncq = (ncqr + 1).min(max) as u16;
                dw0 = self.num_queues_dw0();
            }
            fid::COALESCING => self.feat.coalescing = d11 & 0xffff,
            fid::VECTOR_CONFIG => {
                // CAST: 16-bit field.
                let iv = (d11 & 0xffff) as u16;
                if iv >= self.cfg.vectors {
                    return Err(generic::INVALID_FIELD);
                }
                self.feat.vector_config.insert(iv, d11 & (1 << 16));
            }
            fid::WRITE_ATOMICITY => self.feat.write_atomicity = d11 & 1,
            fid::ASYNC_EVENT_CONFIG => self.feat.aec = d11,
            fid::TIMESTAMP if self.cfg.oncs & (1 << 6) != 0 => {
                let d = self.receive(sqe, 8, true)?;
                let ms = get_u64(&d, 0) & ((1 << 48) - 1);
                self.feat.timestamp = Some((ms, self.now));
            }
            fid::KEEP_ALIVE if self.cfg.kas != 0 => {
                self.feat.kato = d11;
                self.ka_last = self.now;
            }
            _ => return Err(generic::INVALID_FIELD),
        }
        Ok(Outcome::ok(dw0))
    }

    fn save_select(&self) -> bool {
        self.cfg.oncs & (1 << 4) != 0
    }

    fn num_queues_dw0(&self) -> u32 {
        u32::from(self.feat.nsq - 1) | (u32::from(self.feat.ncq - 1) << 16)
    }

    /// Get Features (NVMe Base 2.0 §5.15). SEL 001b and 010b report the default (nothing is
    /// saveable), 011b the capabilities; they need ONCS bit 4.
    fn get_features(&mut self, sqe: &Sqe) -> Result {
        let (d10, d11) = (sqe.cdw(10), sqe.cdw(11));
        // CAST: 8-bit field.
        let f = (d10 & 0xff) as u8;
        let sel = (d10 >> 8) & 0x7;
        if sel != 0 && !self.save_select() {
            return Err(generic::INVALID_FIELD);
        }
        if sel > 3 {
            return Err(generic::INVALID_FIELD);
        }
        let supported = matches!(
            f,
            fid::ARBITRATION
                | fid::POWER_MGMT
                | fid::TEMP_THRESHOLD
                | fid::ERROR_RECOVERY
                | fid::NUM_QUEUES
                | fid::COALESCING
                | fid::VECTOR_CONFIG
                | fid::WRITE_ATOMICITY
                | fid::ASYNC_EVENT_CONFIG
        ) || (f == fid::VWC && self.cfg.vwc)
            || (f == fid::TIMESTAMP && self.cfg.oncs & (1 << 6) != 0)
            || (f == fid::KEEP_ALIVE && self.cfg.kas != 0);
        if !supported {
            return Err(generic::INVALID_FIELD);
        }
        if sel == 3 {
            // Capabilities: changeable (bit 2), namespace specific (bit 1).
            let ns = if f == fid::ERROR_RECOVERY { 1 << 1 } else { 0 };
            return Ok(Outcome::ok((1 << 2) | ns));
        }
        let defaults = super::ctrl::Features::defaults(&self.cfg);
        let cur = if sel == 0 { &self.feat } else { &defaults };
        let dw0 = match f {
            fid::ARBITRATION => cur.arbitration,
            fid::POWER_MGMT => cur.power_mgmt,
            fid::TEMP_THRESHOLD => {
                let sel_t = (d11 >> 16) & 0xf;
                let kind = (d11 >> 20) & 0x3;
                let th = match (sel_t, kind) {
                    (0, 0) => cur.temp_over,
                    (0, 1) => cur.temp_under,
                    _ => return Err(generic::INVALID_FIELD),
                };
                u32::from(th) | (kind << 20)
            }
            fid::ERROR_RECOVERY => cur.error_recovery,
            fid::VWC => u32::from(cur.wce),
            fid::NUM_QUEUES => u32::from(cur.nsq - 1) | (u32::from(cur.ncq - 1) << 16),
            fid::COALESCING => cur.coalescing,
            fid::VECTOR_CONFIG => {
                // CAST: 16-bit field.
                let iv = (d11 & 0xffff) as u16;
                if iv >= self.cfg.vectors {
                    return Err(generic::INVALID_FIELD);
                }
                u32::from(iv) | cur.vector_config.get(&iv).copied().unwrap_or(0)
            }
            fid::WRITE_ATOMICITY => cur.write_atomicity,
            fid::ASYNC_EVENT_CONFIG => cur.aec,
            fid::TIMESTAMP => {
                // Timestamp data (NVMe Base 2.0 §5.27.1.10): 48-bit ms, then Synch 0 and
                // Timestamp Origin (000b since reset, 001b set by the host).
                let (ms, origin) = match cur.timestamp {
                    Some((ms, at)) => (
                        ms.wrapping_add(self.now.saturating_duration_since(at).as_millis()),
                        1u8,
                    ),
                    None => (
                        self.now.saturating_duration_since(self.boot).as_millis(),
                        0u8,
                    ),
                };
                let mut d = [0u8; 8];
                d[..6].copy_from_slice(&ms.to_le_bytes()[..6]);
                d[6] = origin << 1;
                self.send(sqe, &d, true)?;
                0
            }
            _ => cur.kato,
        };
        Ok(Outcome::ok(dw0))
    }

    /// Namespace Management (NVMe Base 2.0 §5.22): create (SEL 0h) or delete (SEL 1h); any
    /// other SEL is Invalid Field.
    fn ns_management(&mut self, sqe: &Sqe) -> Result {
        match sqe.cdw(10) & 0xf {
            0 => self.ns_create(sqe),
            1 => self.ns_delete(sqe.nsid()),
            _ => Err(generic::INVALID_FIELD),
        }
    }

    /// Namespace Management create: a namespace described by the host software specified
    /// fields, allocated from the unallocated capacity, under the lowest free NSID, which
    /// dword 0 returns. It is not attached, so nothing is reported to the host. Checks, in
    /// order: CSI (NVM only), the data transfer, FLBAS, DPS, NMIC, NSZE/NCAP, capacity, a
    /// free NSID. ANAGRPID, NVMSETID and ENDGID are ignored: the model has no ANA, NVM Sets
    /// or Endurance Groups, and 0h in them lets the controller choose.
    fn ns_create(&mut self, sqe: &Sqe) -> Result {
        // CAST: 8-bit field.
        let csi = (sqe.cdw(11) >> 24) as u8;
        if csi != CSI_NVM {
            return Err(specific::IOCS_NOT_SUPPORTED);
        }
        let f = CreateFields::parse(&self.receive(sqe, 4096, true)?);
        let idx = f.format_index();
        let Some(&bs) = self.cfg.lba_formats.get(usize::from(idx)) else {
            return Err(specific::INVALID_FORMAT);
        };
        // No format carries metadata, so there is no protection information to enable (as
        // Format NVM).
        if f.dps & 0x0f != 0 {
            return Err(specific::INVALID_FORMAT);
        }
        // NMIC bit 0: shared. CMIC says the subsystem has one controller.
        if f.nmic & 0x01 != 0 {
            return Err(generic::INVALID_FIELD);
        }
        if f.nsze == 0 || f.ncap == 0 || f.ncap > f.nsze {
            return Err(generic::INVALID_FIELD);
        }
        if f.ncap != f.nsze {
            return Err(specific::THIN_PROVISIONING_NOT_SUPPORTED);
        }
        let bytes = f.nsze.checked_mul(u64::from(bs));
        if bytes.is_none_or(|b| b > self.unallocated()) {
            return Err(specific::NS_INSUFFICIENT_CAPACITY);
        }
        // The lowest free NSID; at most one more probe than there are namespaces.
        let free = (1..=self.cfg.nn).find(|id| !self.namespaces.contains_key(id));
        let Some(nsid) = free else {
            return Err(specific::NSID_UNAVAILABLE);
        };
        self.ns_created = self.ns_created.wrapping_add(1).max(1);
        let mut ns = Namespace::new(idx, bs, f.nsze, false);
        let (nguid, uuid) = ns::created_ids(nsid, self.ns_created);
        ns.nguid = Some(nguid);
        ns.uuid = Some(uuid);
        self.namespaces.insert(nsid, ns);
        Ok(Outcome::ok(nsid))
    }

    /// Namespace Management delete of `nsid`, or of every namespace with FFFFFFFFh; an NSID
    /// that is not allocated is Invalid Namespace or Format. A namespace attached to this
    /// controller is detached first, which goes into the Changed Namespace List and raises
    /// Namespace Attribute Changed.
    fn ns_delete(&mut self, nsid: u32) -> Result {
        let ids: Vec<u32> = if nsid == BROADCAST {
            self.namespaces.keys().copied().collect()
        } else if self.namespaces.contains_key(&nsid) {
            vec![nsid]
        } else {
            return Err(generic::INVALID_NAMESPACE);
        };
        for id in ids {
            if let Some(ns) = self.namespaces.remove(&id) {
                if ns.attached {
                    self.namespace_changed(id);
                }
            }
        }
        Ok(Outcome::ok(0))
    }

    /// Namespace Attachment (NVMe Base 2.0 §5.23): attach (SEL 0h) or detach (SEL 1h) the
    /// namespace to the controllers in the list, which must name this controller only.
    fn ns_attachment(&mut self, sqe: &Sqe) -> Result {
        let sel = sqe.cdw(10) & 0xf;
        let nsid = sqe.nsid();
        if sel > 1 || nsid == BROADCAST {
            return Err(generic::INVALID_FIELD);
        }
        if !self.namespaces.contains_key(&nsid) {
            return Err(generic::INVALID_NAMESPACE);
        }
        let d = self.receive(sqe, 4096, true)?;
        let n = usize::from(get_u16(&d, 0));
        let ids: Vec<u16> = (0..n.min(2047)).map(|i| get_u16(&d, 2 + 2 * i)).collect();
        if n == 0 || n > 2047 || ids.iter().any(|id| *id != self.cfg.cntlid) {
            return Err(specific::CONTROLLER_LIST_INVALID);
        }
        let Some(ns) = self.namespaces.get_mut(&nsid) else {
            return Err(generic::INVALID_NAMESPACE);
        };
        let attach = sel == 0;
        if ns.attached == attach {
            return Err(if attach {
                specific::NS_ALREADY_ATTACHED
            } else {
                specific::NS_NOT_ATTACHED
            });
        }
        ns.attached = attach;
        self.namespace_changed(nsid);
        Ok(Outcome::ok(0))
    }

    /// Format NVM (NVM Command Set 1.0 §4.1.2 / NVMe Base 2.0 §5.14): the new format must be
    /// one of the controller's, without protection information; SES 000b or 001b. The data
    /// is erased and the size in bytes kept.
    fn format_nvm(&mut self, sqe: &Sqe) -> Result {
        let d10 = sqe.cdw(10);
        // CAST: 4 + 2 bits.
        let idx = ((d10 & 0xf) | (((d10 >> 12) & 0x3) << 4)) as u8;
        let pi = (d10 >> 5) & 0x7;
        let ses = (d10 >> 9) & 0x7;
        if ses > 1 {
            return Err(generic::INVALID_FIELD);
        }
        let Some(&bs) = self.cfg.lba_formats.get(usize::from(idx)) else {
            return Err(specific::INVALID_FORMAT);
        };
        if pi != 0 {
            return Err(specific::INVALID_FORMAT);
        }
        let nsid = sqe.nsid();
        let ids: Vec<u32> = if nsid == BROADCAST {
            self.namespaces
                .iter()
                .filter(|(_, n)| n.attached)
                .map(|(id, _)| *id)
                .collect()
        } else if self.active_ns(nsid).is_some() {
            vec![nsid]
        } else {
            return Err(generic::INVALID_NAMESPACE);
        };
        for id in ids {
            if let Some(ns) = self.namespaces.get_mut(&id) {
                ns.format(idx, bs);
            }
        }
        Ok(Outcome::ok(0))
    }
}
