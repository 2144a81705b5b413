//! The controller state machine: registers, enable/reset/shutdown, queues, doorbells
//! (MMIO and shadow), command fetch, completion posting and interrupts.

use super::config::Config;
use super::dptr::{self, Bus, DmaError, Seg, Xfer};
use super::fault::{take_rule, AsyncEvent, Counters, FaultState};
use super::ns::Namespace;
use super::status::{generic, Status};
use super::wire::{cc, csts, reg, Sqe};
use orion_compat::time::{Duration, Instant};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Size of a submission queue entry (SQES 6) and a completion queue entry (CQES 4).
pub(super) const SQE_SIZE: u64 = 64;
pub(super) const CQE_SIZE: u64 = 16;

/// The model's own cap on one command's data transfer, whatever MDTS says: 1 GiB.
pub(super) const MAX_TRANSFER: u64 = 1 << 30;

/// At most this many asynchronous events wait for an Asynchronous Event Request; later
/// ones are dropped (as QEMU's `aer_max_queued`).
const MAX_QUEUED_EVENTS: usize = 64;

/// A submission queue.
#[derive(Debug)]
pub(super) struct Sq {
    pub(super) base: u64,
    /// Entries (1 + the 0's based size).
    pub(super) size: u32,
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) cqid: u16,
    /// The last invalid shadow tail seen, so it is reported once.
    shadow_bad: Option<u32>,
}

/// A completion waiting for room in its completion queue.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) sqid: u16,
    /// SQHD to report if the submission queue is gone by the time it is posted.
    pub(super) sqhd: u16,
    pub(super) cid: u16,
    pub(super) dw0: u32,
    pub(super) dw1: u32,
    pub(super) status: Status,
}

/// A completion queue.
#[derive(Debug)]
pub(super) struct Cq {
    pub(super) base: u64,
    pub(super) size: u32,
    pub(super) head: u32,
    pub(super) tail: u32,
    pub(super) phase: bool,
    pub(super) ien: bool,
    pub(super) iv: u16,
    pub(super) backlog: VecDeque<Pending>,
    shadow_bad: Option<u32>,
}

impl Sq {
    pub(super) fn new(base: u64, size: u32, cqid: u16) -> Self {
        Self {
            base,
            size,
            head: 0,
            tail: 0,
            cqid,
            shadow_bad: None,
        }
    }
}

impl Cq {
    pub(super) fn new(base: u64, size: u32, ien: bool, iv: u16) -> Self {
        Self {
            base,
            size,
            head: 0,
            tail: 0,
            phase: true,
            ien,
            iv,
            backlog: VecDeque::new(),
            shadow_bad: None,
        }
    }

    fn used(&self) -> u32 {
        (self.tail + self.size - self.head) % self.size
    }

    /// Free entries: a queue of `size` entries holds at most `size - 1`.
    fn free(&self) -> u32 {
        self.size - 1 - self.used()
    }
}

/// A command held back by a fault until released or aborted.
#[derive(Clone, Copy, Debug)]
pub(super) struct Held {
    pub(super) sqid: u16,
    pub(super) sqe: Sqe,
}

/// One Error Information log entry (NVMe Base 2.0 §5.16.1.2, Figure 205).
#[derive(Clone, Copy, Debug)]
pub(super) struct ErrorEntry {
    pub(super) count: u64,
    pub(super) sqid: u16,
    pub(super) cid: u16,
    pub(super) status: u16,
    pub(super) nsid: u32,
}

/// The SMART / Health Information the model keeps.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Smart {
    pub(super) temperature: u16,
    /// Critical warning bits set by a test.
    pub(super) warning: u8,
    pub(super) bytes_read: u64,
    pub(super) bytes_written: u64,
    pub(super) host_reads: u64,
    pub(super) host_writes: u64,
}

/// Current feature values (NVMe Base 2.0 §5.27.1).
#[derive(Clone, Debug)]
pub(super) struct Features {
    pub(super) arbitration: u32,
    pub(super) power_mgmt: u32,
    pub(super) temp_over: u16,
    pub(super) temp_under: u16,
    pub(super) error_recovery: u32,
    pub(super) wce: bool,
    pub(super) nsq: u16,
    pub(super) ncq: u16,
    pub(super) coalescing: u32,
    pub(super) vector_config: BTreeMap<u16, u32>,
    pub(super) write_atomicity: u32,
    pub(super) aec: u32,
    /// Timestamp set by the host: its value in ms and when it was set.
    pub(super) timestamp: Option<(u64, Instant)>,
    /// Keep Alive Timeout in ms (0: off).
    pub(super) kato: u32,
}

impl Features {
    pub(super) fn defaults(cfg: &Config) -> Self {
        let q = cfg
            .default_io_queues
            .unwrap_or(cfg.max_io_queues)
            .clamp(1, cfg.max_io_queues);
        Self {
            arbitration: 0,
            power_mgmt: 0,
            temp_over: cfg.wctemp,
            temp_under: 0,
            error_recovery: 0,
            wce: cfg.vwc,
            nsq: q,
            ncq: q,
            coalescing: 0,
            vector_config: BTreeMap::new(),
            write_atomicity: 0,
            aec: 0,
            timestamp: None,
            kato: 0,
        }
    }
}

/// What executing a command produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Complete now with this dword 0 and status.
    Done { dw0: u32, status: Status },
    /// The command stays outstanding (an Asynchronous Event Request).
    Deferred,
}

impl Outcome {
    pub(super) const fn ok(dw0: u32) -> Self {
        Self::Done {
            dw0,
            status: Status::SUCCESS,
        }
    }

    pub(super) const fn err(status: Status) -> Self {
        Self::Done { dw0: 0, status }
    }
}

impl From<Status> for Outcome {
    fn from(s: Status) -> Self {
        Self::err(s)
    }
}

/// The whole controller.
#[derive(Debug)]
pub(super) struct Ctrl {
    pub(super) cfg: Config,
    pub(super) bus: Bus,
    /// The time of the current operation.
    pub(super) now: Instant,
    pub(super) boot: Instant,
    cc: u32,
    aqa: u32,
    asq: u64,
    acq: u64,
    intms: u32,
    intms_pending: u32,
    pub(super) enabled: bool,
    rdy: bool,
    rdy_at: Option<(Instant, bool)>,
    pub(super) cfs: bool,
    shst: u32,
    shst_at: Option<Instant>,
    nssro: bool,
    pub(super) gone: bool,
    /// The memory page size latched from CC.MPS at enable.
    pub(super) page: u64,
    /// I/O command set enabled (CC.CSS other than admin only).
    pub(super) io_enabled: bool,
    pub(super) sqs: BTreeMap<u16, Sq>,
    pub(super) cqs: BTreeMap<u16, Cq>,
    pub(super) feat: Features,
    pub(super) aers: VecDeque<u16>,
    pub(super) events: VecDeque<AsyncEvent>,
    /// Events reported and not yet cleared by reading their log page; their type is masked.
    pub(super) reported: Vec<AsyncEvent>,
    pub(super) held: Vec<Held>,
    pub(super) namespaces: BTreeMap<u32, Namespace>,
    /// How many namespaces Namespace Management has created, which makes each one's
    /// identifiers new even when its NSID is reused.
    pub(super) ns_created: u32,
    pub(super) changed_ns: BTreeSet<u32>,
    pub(super) errors: VecDeque<ErrorEntry>,
    pub(super) error_count: u64,
    pub(super) smart: Smart,
    pub(super) dbbuf: Option<(u64, u64)>,
    pub(super) ka_last: Instant,
    pub(super) faults: FaultState,
    pub(super) counters: Counters,
    irqs: BTreeSet<u16>,
}

impl Ctrl {
    pub(super) fn new(cfg: Config, bus: Bus, now: Instant) -> Self {
        let mut namespaces = BTreeMap::new();
        for spec in &cfg.namespaces {
            let flbas = cfg
                .lba_formats
                .iter()
                .position(|s| *s == spec.block_size)
                .unwrap_or(0);
            // CAST: at most 16 formats.
            let mut ns = Namespace::new(flbas as u8, spec.block_size, spec.blocks, spec.attached);
            ns.eui64 = spec.eui64;
            ns.nguid = spec.nguid;
            ns.uuid = spec.uuid;
            namespaces.insert(spec.nsid, ns);
        }
        let smart = Smart {
            temperature: cfg.temperature,
            ..Smart::default()
        };
        Self {
            feat: Features::defaults(&cfg),
            cfg,
            bus,
            now,
            boot: now,
            cc: 0,
            aqa: 0,
            asq: 0,
            acq: 0,
            intms: 0,
            intms_pending: 0,
            enabled: false,
            rdy: false,
            rdy_at: None,
            cfs: false,
            shst: 0,
            shst_at: None,
            nssro: false,
            gone: false,
            page: 4096,
            io_enabled: true,
            sqs: BTreeMap::new(),
            cqs: BTreeMap::new(),
            aers: VecDeque::new(),
            events: VecDeque::new(),
            reported: Vec::new(),
            held: Vec::new(),
            namespaces,
            ns_created: 0,
            changed_ns: BTreeSet::new(),
            errors: VecDeque::new(),
            error_count: 0,
            smart,
            dbbuf: None,
            ka_last: now,
            faults: FaultState::default(),
            counters: Counters::default(),
            irqs: BTreeSet::new(),
        }
    }

    /// The doorbell stride in bytes.
    pub(super) fn stride(&self) -> u64 {
        4u64 << self.cfg.dstrd
    }

    /// Whether the controller fetches and completes commands now.
    pub(super) fn running(&self) -> bool {
        self.enabled && self.rdy && !self.cfs && self.shst != 2 && !self.gone
    }

    // ---- time ----------------------------------------------------------------------------

    /// Applies what time has brought: CSTS.RDY transitions, shutdown completion, Keep Alive
    /// expiry.
    pub(super) fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if let Some((at, v)) = self.rdy_at {
            if self.now >= at {
                self.rdy = v;
                self.rdy_at = None;
            }
        }
        if let Some(at) = self.shst_at {
            if self.now >= at {
                self.shst = 2;
                self.shst_at = None;
            }
        }
        if self.running() && self.feat.kato > 0 {
            let kato = Duration::from_millis(u64::from(self.feat.kato));
            if self.now.saturating_duration_since(self.ka_last) > kato {
                // NVMe Base 2.0 §3.9.4: on expiry the controller records an error and
                // stops, reporting a fatal status.
                self.log_error(0, 0xffff, generic::KEEP_ALIVE_EXPIRED, 0);
                self.feat.kato = 0;
                self.cfs = true;
            }
        }
    }

    // ---- registers -------------------------------------------------------------------------

    fn cap(&self) -> u64 {
        let c = &self.cfg;
        u64::from(c.mqes)
            | (1 << 16) // CQR: queues must be physically contiguous
            | (u64::from(c.to) << 24)
            | (u64::from(c.dstrd & 0xf) << 32)
            | (u64::from(c.nssrs) << 36)
            | (u64::from(c.css) << 37)
            | (u64::from(c.mpsmin & 0xf) << 48)
            | (u64::from(c.mpsmax & 0xf) << 52)
    }

    fn csts(&self) -> u32 {
        let mut v = self.shst << csts::SHST_SHIFT;
        if self.rdy {
            v |= csts::RDY;
        }
        if self.cfs {
            v |= csts::CFS;
        }
        if self.nssro {
            v |= csts::NSSRO;
        }
        v
    }

    /// A 32-bit register read (doorbells and reserved registers read 0).
    pub(super) fn read32(&self, off: usize) -> u32 {
        if self.gone {
            return u32::MAX;
        }
        // CAST: the halves of 64-bit registers.
        match off {
            reg::CAP => self.cap() as u32,
            o if o == reg::CAP + 4 => (self.cap() >> 32) as u32,
            reg::VS => self.cfg.vs,
            reg::INTMS | reg::INTMC => self.intms,
            reg::CC => self.cc,
            reg::CSTS => self.csts(),
            reg::AQA => self.aqa,
            reg::ASQ => self.asq as u32,
            o if o == reg::ASQ + 4 => (self.asq >> 32) as u32,
            reg::ACQ => self.acq as u32,
            o if o == reg::ACQ + 4 => (self.acq >> 32) as u32,
            _ => 0,
        }
    }

    /// A 32-bit register write.
    pub(super) fn write32(&mut self, off: usize, v: u32) {
        if self.gone {
            return;
        }
        match off {
            reg::INTMS => self.intms |= v,
            reg::INTMC => {
                let cleared = self.intms & v;
                self.intms &= !v;
                let fire = self.intms_pending & cleared;
                self.intms_pending &= !cleared;
                for bit in 0..32u16 {
                    if fire & (1 << bit) != 0 {
                        self.irqs.insert(bit);
                    }
                }
            }
            reg::CC => self.write_cc(v),
            // NSSRO is write-1-to-clear.
            reg::CSTS if v & csts::NSSRO != 0 => self.nssro = false,
            reg::NSSR if self.cfg.nssrs && v == reg::NSSR_MAGIC => self.subsystem_reset(),
            reg::AQA => self.aqa = v & 0x0fff_0fff,
            reg::ASQ => self.asq = (self.asq & !0xffff_ffff) | u64::from(v & !0xfff),
            o if o == reg::ASQ + 4 => {
                self.asq = (self.asq & 0xffff_ffff) | (u64::from(v) << 32);
            }
            reg::ACQ => self.acq = (self.acq & !0xffff_ffff) | u64::from(v & !0xfff),
            o if o == reg::ACQ + 4 => {
                self.acq = (self.acq & 0xffff_ffff) | (u64::from(v) << 32);
            }
            o if o >= reg::DOORBELLS => self.doorbell(o - reg::DOORBELLS, v),
            _ => {}
        }
    }

    fn write_cc(&mut self, v: u32) {
        let old = self.cc;
        self.cc = v;
        if !self.enabled && cc::en(v) {
            self.enable();
        } else if self.enabled && !cc::en(v) {
            self.reset(false);
        }
        if cc::shn(v) != 0 && cc::shn(old) == 0 && self.shst == 0 {
            // NVMe Base 2.0 §3.6.1: shutdown processing, then complete.
            self.shst = 1;
            self.shst_at = Some(self.now.saturating_add(self.cfg.shutdown_delay));
            self.tick(self.now);
        }
    }

    /// CC.EN 0 to 1 (NVMe Base 2.0 §3.5.1 step 7): validate the configuration, set up the
    /// admin queues, and become ready after the ready delay.
    fn enable(&mut self) {
        self.enabled = true;
        if self.rdy || self.rdy_at.is_some() {
            // Enabled before CSTS.RDY reached 0 after a reset: the host broke the handshake.
            self.cfs = true;
            return;
        }
        let c = &self.cfg;
        let v = self.cc;
        let mps = cc::mps(v);
        let css_ok = match cc::css(v) {
            0 => c.css & 0x01 != 0,
            6 => c.css & 0x40 != 0,
            7 => c.css & 0x80 != 0,
            _ => false,
        };
        let io = cc::css(v) != 7;
        let entries_ok = !io || (cc::iosqes(v) == 6 && cc::iocqes(v) == 4);
        let page = 1u64 << (12 + mps);
        let asqs = self.aqa & 0xfff;
        let acqs = (self.aqa >> 16) & 0xfff;
        let valid = mps >= u32::from(c.mpsmin)
            && mps <= u32::from(c.mpsmax)
            && css_ok
            && cc::ams(v) == 0
            && entries_ok
            && asqs >= 1
            && acqs >= 1
            && self.asq != 0
            && self.acq != 0
            && self.asq % page == 0
            && self.acq % page == 0;
        if !valid {
            self.cfs = true;
            return;
        }
        self.page = page;
        self.io_enabled = io;
        if cc::shn(v) == 0 {
            self.shst = 0;
            self.shst_at = None;
        }
        self.sqs.insert(0, Sq::new(self.asq, asqs + 1, 0));
        self.cqs.insert(0, Cq::new(self.acq, acqs + 1, true, 0));
        if !self.faults.never_ready {
            let d = self.faults.ready_delay.unwrap_or(self.cfg.ready_delay);
            self.rdy_at = Some((self.now.saturating_add(d), true));
            self.tick(self.now);
        }
    }

    /// Controller reset (CC.EN 1 to 0, NVMe Base 2.0 §3.7.2): every command is dropped, I/O
    /// queues are deleted, the admin queues forgotten, features return to their defaults,
    /// and CSTS.RDY drops after the reset delay. AQA/ASQ/ACQ keep their values.
    fn reset(&mut self, subsystem: bool) {
        self.enabled = false;
        self.sqs.clear();
        self.cqs.clear();
        self.held.clear();
        self.aers.clear();
        self.events.clear();
        self.reported.clear();
        self.dbbuf = None;
        self.feat = Features::defaults(&self.cfg);
        self.intms = 0;
        self.intms_pending = 0;
        self.cfs = false;
        self.shst = 0;
        self.shst_at = None;
        self.rdy_at = if self.rdy {
            Some((self.now.saturating_add(self.cfg.reset_delay), false))
        } else {
            None
        };
        if subsystem {
            self.cc = 0;
            self.aqa = 0;
            self.asq = 0;
            self.acq = 0;
            self.nssro = true;
        }
        self.tick(self.now);
    }

    /// NVM Subsystem Reset (NVMe Base 2.0 §3.7.1): a controller reset that also returns CC
    /// and the admin queue registers to 0, and sets CSTS.NSSRO.
    fn subsystem_reset(&mut self) {
        self.reset(true);
    }

    // ---- doorbells -------------------------------------------------------------------------

    fn doorbell(&mut self, rel: usize, v: u32) {
        let stride = self.stride();
        let rel = rel as u64;
        if rel % stride != 0 {
            return;
        }
        let idx = rel / stride;
        let Ok(qid) = u16::try_from(idx / 2) else {
            return;
        };
        let is_cq = idx % 2 == 1;
        let counter = if is_cq {
            &mut self.counters.cq_doorbell_writes
        } else {
            &mut self.counters.sq_doorbell_writes
        };
        *counter.entry(qid).or_default() += 1;
        if !self.running() {
            return;
        }
        if is_cq {
            self.set_cq_head(qid, v, true);
        } else {
            self.set_sq_tail(qid, v, true);
        }
        self.process();
    }

    fn set_sq_tail(&mut self, qid: u16, v: u32, mmio: bool) {
        let Some(sq) = self.sqs.get_mut(&qid) else {
            self.doorbell_error(AsyncEvent::INVALID_DOORBELL_REGISTER, qid);
            return;
        };
        if v >= sq.size {
            self.doorbell_error(AsyncEvent::INVALID_DOORBELL_VALUE, qid);
            return;
        }
        sq.tail = v;
        if mmio && qid != 0 {
            self.write_shadow(2 * u64::from(qid), v);
        }
    }

    fn set_cq_head(&mut self, qid: u16, v: u32, mmio: bool) {
        let Some(cq) = self.cqs.get_mut(&qid) else {
            self.doorbell_error(AsyncEvent::INVALID_DOORBELL_REGISTER, qid);
            return;
        };
        // The new head may only move over entries the controller has posted.
        let consumed = (v.wrapping_add(cq.size).wrapping_sub(cq.head)) % cq.size.max(1);
        if v >= cq.size || consumed > cq.used() {
            self.doorbell_error(AsyncEvent::INVALID_DOORBELL_VALUE, qid);
            return;
        }
        cq.head = v;
        if mmio && qid != 0 {
            self.write_shadow(2 * u64::from(qid) + 1, v);
        }
        self.flush_cq(qid);
    }

    /// An MMIO doorbell write on a queue with a shadow doorbell also lands in the shadow
    /// buffer, so the two never disagree.
    fn write_shadow(&mut self, slot: u64, v: u32) {
        if let Some((shadow, _)) = self.dbbuf {
            let addr = shadow.wrapping_add(slot * self.stride());
            if self.bus.write_u32(addr, v).is_err() {
                self.cfs = true;
            }
        }
    }

    fn doorbell_error(&mut self, ev: AsyncEvent, qid: u16) {
        self.counters.invalid_doorbell_writes += 1;
        self.log_error(qid, 0xffff, Status::SUCCESS, 0);
        self.queue_event(ev);
    }

    /// Reads the shadow doorbells of the I/O queues (Doorbell Buffer Config, NVMe Base 2.0
    /// §5.8): the shadow tail/head is authoritative for every I/O queue while a buffer is
    /// configured. The admin queue always uses its MMIO doorbells.
    fn pull_shadow(&mut self) {
        let Some((shadow, _)) = self.dbbuf else {
            return;
        };
        let stride = self.stride();
        let sq_ids: Vec<u16> = self.sqs.keys().copied().filter(|q| *q != 0).collect();
        for qid in sq_ids {
            let addr = shadow.wrapping_add(2 * u64::from(qid) * stride);
            let Ok(v) = self.bus.read_u32(addr) else {
                self.cfs = true;
                return;
            };
            let Some(sq) = self.sqs.get_mut(&qid) else {
                continue;
            };
            if v == sq.tail {
                continue;
            }
            if v < sq.size {
                sq.tail = v;
                sq.shadow_bad = None;
            } else if sq.shadow_bad != Some(v) {
                sq.shadow_bad = Some(v);
                self.doorbell_error(AsyncEvent::INVALID_DOORBELL_VALUE, qid);
            }
        }
        let cq_ids: Vec<u16> = self.cqs.keys().copied().filter(|q| *q != 0).collect();
        for qid in cq_ids {
            let addr = shadow.wrapping_add((2 * u64::from(qid) + 1) * stride);
            let Ok(v) = self.bus.read_u32(addr) else {
                self.cfs = true;
                return;
            };
            let Some(cq) = self.cqs.get_mut(&qid) else {
                continue;
            };
            if v == cq.head || cq.shadow_bad == Some(v) {
                continue;
            }
            let consumed = (v.wrapping_add(cq.size).wrapping_sub(cq.head)) % cq.size.max(1);
            if v >= cq.size || consumed > cq.used() {
                cq.shadow_bad = Some(v);
                self.doorbell_error(AsyncEvent::INVALID_DOORBELL_VALUE, qid);
                continue;
            }
            cq.shadow_bad = None;
            cq.head = v;
            self.flush_cq(qid);
        }
    }

    /// Writes the EventIdx of every I/O queue: the SQ tail and CQ head the controller has
    /// seen, so the host rings the MMIO doorbell for anything past them.
    fn push_eventidx(&mut self) {
        let Some((_, eventidx)) = self.dbbuf else {
            return;
        };
        let stride = self.stride();
        let mut writes = Vec::new();
        for (qid, sq) in self.sqs.iter().filter(|(q, _)| **q != 0) {
            writes.push((2 * u64::from(*qid) * stride, sq.tail));
        }
        for (qid, cq) in self.cqs.iter().filter(|(q, _)| **q != 0) {
            writes.push(((2 * u64::from(*qid) + 1) * stride, cq.head));
        }
        for (off, v) in writes {
            if self.bus.write_u32(eventidx.wrapping_add(off), v).is_err() {
                self.cfs = true;
                return;
            }
        }
    }

    // ---- processing ------------------------------------------------------------------------

    /// Fetches and executes every command the host has made visible, round robin across
    /// submission queues, stopping at a queue whose completion queue is full; then posts
    /// what fits and updates the EventIdx buffer.
    pub(super) fn process(&mut self) {
        if !self.running() {
            return;
        }
        self.pull_shadow();
        // Each step consumes one entry that was there when processing started (the host
        // cannot add entries meanwhile), so this ends.
        loop {
            let mut progress = false;
            let ids: Vec<u16> = self.sqs.keys().copied().collect();
            for id in ids {
                if !self.running() {
                    return;
                }
                progress |= self.step(id);
            }
            if !progress {
                break;
            }
        }
        let cqs: Vec<u16> = self.cqs.keys().copied().collect();
        for id in cqs {
            self.flush_cq(id);
        }
        self.deliver_events();
        if self.running() {
            self.push_eventidx();
        }
    }

    /// Fetches and executes one command from submission queue `sqid`, if it has one and its
    /// completion queue has room.
    fn step(&mut self, sqid: u16) -> bool {
        let Some(sq) = self.sqs.get(&sqid) else {
            return false;
        };
        if sq.head == sq.tail {
            return false;
        }
        let room = self
            .cqs
            .get(&sq.cqid)
            .is_some_and(|cq| cq.free() as usize > cq.backlog.len());
        if !room {
            return false;
        }
        let addr = sq.base.saturating_add(u64::from(sq.head) * SQE_SIZE);
        let mut raw = [0u8; 64];
        if self.bus.read(addr, &mut raw).is_err() {
            // The controller cannot reach its own queue: a fatal error (as QEMU does).
            self.cfs = true;
            return false;
        }
        if let Some(sq) = self.sqs.get_mut(&sqid) {
            sq.head = (sq.head + 1) % sq.size;
        }
        let sqe = Sqe(raw);
        let counter = if sqid == 0 {
            &mut self.counters.admin_commands
        } else {
            &mut self.counters.io_commands
        };
        *counter.entry(sqe.opcode()).or_default() += 1;
        self.dispatch(sqid, sqe);
        true
    }

    /// Runs one fetched command through the fault rules and executes it.
    fn dispatch(&mut self, sqid: u16, sqe: Sqe) {
        let (cid, op) = (sqe.cid(), sqe.opcode());
        let conflict = self
            .held
            .iter()
            .any(|h| h.sqid == sqid && h.sqe.cid() == cid)
            || (sqid == 0 && self.aers.contains(&cid));
        if conflict {
            self.complete(sqid, sqe, 0, generic::CID_CONFLICT);
            return;
        }
        if take_rule(&mut self.faults.hold, |m| m, sqid, op).is_some() {
            self.held.push(Held { sqid, sqe });
            return;
        }
        if let Some((_, status)) = take_rule(&mut self.faults.force_status, |r| &r.0, sqid, op) {
            self.complete(sqid, sqe, 0, status);
            return;
        }
        self.execute(sqid, sqe);
    }

    /// Executes a command and completes it (unless it stays outstanding).
    pub(super) fn execute(&mut self, sqid: u16, sqe: Sqe) {
        self.ka_last_traffic(sqid, &sqe);
        let out = if sqid == 0 {
            self.admin(&sqe)
        } else {
            self.io(&sqe)
        };
        if let Outcome::Done { dw0, status } = out {
            self.complete(sqid, sqe, dw0, status);
        }
    }

    fn ka_last_traffic(&mut self, sqid: u16, sqe: &Sqe) {
        // Without Traffic Based Keep Alive only the Keep Alive command restarts the timer.
        if sqid == 0 && sqe.opcode() == 0x18 {
            self.ka_last = self.now;
        }
    }

    /// Completes the command `sqe` from `sqid`: logs a failure, applies the completion
    /// faults, and queues the entry on the submission queue's completion queue.
    pub(super) fn complete(&mut self, sqid: u16, sqe: Sqe, dw0: u32, status: Status) {
        let (cid, op) = (sqe.cid(), sqe.opcode());
        if !status.is_success() {
            self.log_error(sqid, cid, status, sqe.nsid());
        }
        let faults = &mut self.faults;
        if let Some(i) = faults.drop.iter().position(|r| r.0.matches(sqid, op)) {
            if let Some(r) = faults.drop.get_mut(i) {
                r.1 = r.1.saturating_sub(1);
                if r.1 == 0 {
                    faults.drop.remove(i);
                }
            }
            self.counters.dropped_completions += 1;
            return;
        }
        let cid = take_rule(&mut faults.replace_cid, |r| &r.0, sqid, op).map_or(cid, |r| r.1);
        let dup = take_rule(&mut faults.duplicate, |m| m, sqid, op).is_some();
        let Some(sq) = self.sqs.get(&sqid) else {
            return;
        };
        let cqid = sq.cqid;
        let p = Pending {
            sqid,
            // CAST: queue sizes are at most 65536 entries, so the head fits SQHD.
            sqhd: sq.head as u16,
            cid,
            dw0,
            dw1: 0,
            status,
        };
        self.post(cqid, p);
        if dup {
            self.post(cqid, p);
        }
    }

    /// Queues `p` on completion queue `cqid` and posts what fits.
    pub(super) fn post(&mut self, cqid: u16, p: Pending) {
        if let Some(cq) = self.cqs.get_mut(&cqid) {
            cq.backlog.push_back(p);
            self.flush_cq(cqid);
        }
    }

    /// Writes waiting completions into completion queue `cqid` while it has room (NVMe Base
    /// 2.0 §4.2.2: SQHD from the submission queue now, the phase tag inverted on each wrap),
    /// and asks for its interrupt.
    pub(super) fn flush_cq(&mut self, cqid: u16) {
        if !self.running() {
            return;
        }
        let mut posted = false;
        loop {
            let Some(cq) = self.cqs.get(&cqid) else {
                return;
            };
            if cq.free() == 0 {
                break;
            }
            let Some(p) = cq.backlog.front().copied() else {
                break;
            };
            // CAST: see `complete`.
            let sqhd = self.sqs.get(&p.sqid).map_or(p.sqhd, |s| s.head as u16);
            let dw2 = u32::from(sqhd) | (u32::from(p.sqid) << 16);
            let dw3 = u32::from(p.cid)
                | (u32::from(cq.phase) << 16)
                | (u32::from(p.status.field()) << 17);
            let mut e = [0u8; 16];
            e[0..4].copy_from_slice(&p.dw0.to_le_bytes());
            e[4..8].copy_from_slice(&p.dw1.to_le_bytes());
            e[8..12].copy_from_slice(&dw2.to_le_bytes());
            e[12..16].copy_from_slice(&dw3.to_le_bytes());
            let addr = cq.base.saturating_add(u64::from(cq.tail) * CQE_SIZE);
            if self.bus.write(addr, &e).is_err() {
                self.cfs = true;
                return;
            }
            let Some(cq) = self.cqs.get_mut(&cqid) else {
                return;
            };
            cq.backlog.pop_front();
            cq.tail = (cq.tail + 1) % cq.size;
            if cq.tail == 0 {
                cq.phase = !cq.phase;
            }
            self.counters.completions += 1;
            posted = true;
        }
        if posted {
            if let Some(cq) = self.cqs.get(&cqid) {
                if cq.ien {
                    let iv = cq.iv;
                    self.interrupt(iv);
                }
            }
        }
    }

    fn interrupt(&mut self, v: u16) {
        if v < 32 && self.intms & (1 << v) != 0 {
            self.intms_pending |= 1 << v;
        } else {
            self.irqs.insert(v);
        }
    }

    /// The interrupts to raise now, each with whether to lose it on purpose.
    pub(super) fn take_irqs(&mut self) -> Vec<(u16, bool)> {
        let irqs = std::mem::take(&mut self.irqs);
        let mut out = Vec::with_capacity(irqs.len());
        for v in irqs {
            let lose = self.faults.lose_irqs > 0;
            if lose {
                self.faults.lose_irqs -= 1;
                self.counters.lost_interrupts += 1;
            }
            *self.counters.interrupts.entry(v).or_default() += 1;
            out.push((v, lose));
        }
        if self.gone {
            out.clear();
        }
        out
    }

    // ---- events and errors -----------------------------------------------------------------

    /// Queues an asynchronous event and delivers it if an Asynchronous Event Request is
    /// outstanding.
    pub(super) fn queue_event(&mut self, ev: AsyncEvent) {
        if self.events.len() < MAX_QUEUED_EVENTS {
            self.events.push_back(ev);
        }
        self.deliver_events();
    }

    /// Completes outstanding Asynchronous Event Requests with queued events whose type is
    /// not masked (NVMe Base 2.0 §5.2: after an event is reported, events of its type wait
    /// until the host reads the event's log page with RAE clear).
    pub(super) fn deliver_events(&mut self) {
        if !self.running() {
            return;
        }
        while !self.aers.is_empty() {
            let masked = |ev: &AsyncEvent, reported: &[AsyncEvent]| {
                reported.iter().any(|r| r.event_type == ev.event_type)
            };
            let Some(i) = self.events.iter().position(|e| !masked(e, &self.reported)) else {
                return;
            };
            let Some(ev) = self.events.remove(i) else {
                return;
            };
            let Some(cid) = self.aers.pop_front() else {
                return;
            };
            self.reported.push(ev);
            let mut sqe = Sqe([0; 64]);
            sqe.0[0] = 0x0c;
            sqe.0[2..4].copy_from_slice(&cid.to_le_bytes());
            self.complete(0, sqe, ev.dw0(), Status::SUCCESS);
        }
    }

    /// Clears the events reported against log page `lid` (a Get Log Page with RAE clear).
    pub(super) fn clear_events(&mut self, lid: u8) {
        self.reported.retain(|e| e.log_page != lid);
        self.deliver_events();
    }

    /// Records an Error Information log entry.
    pub(super) fn log_error(&mut self, sqid: u16, cid: u16, status: Status, nsid: u32) {
        self.error_count = self.error_count.wrapping_add(1).max(1);
        self.errors.push_front(ErrorEntry {
            count: self.error_count,
            sqid,
            cid,
            status: status.field(),
            nsid,
        });
        self.errors
            .truncate(usize::from(self.cfg.error_log_entries));
    }

    /// Records a namespace change and raises Namespace Attribute Changed if enabled (AEC
    /// bit 8).
    pub(super) fn namespace_changed(&mut self, nsid: u32) {
        self.changed_ns.insert(nsid);
        if self.feat.aec & (1 << 8) != 0
            && !self.events.contains(&AsyncEvent::NAMESPACE_CHANGED)
            && !self.reported.contains(&AsyncEvent::NAMESPACE_CHANGED)
        {
            self.queue_event(AsyncEvent::NAMESPACE_CHANGED);
        }
    }

    /// The critical warning byte: what the test set, plus the temperature bit while the
    /// composite temperature is outside its thresholds.
    pub(super) fn critical_warning(&self) -> u8 {
        let t = self.smart.temperature;
        let hot = t >= self.feat.temp_over;
        let cold = self.feat.temp_under != 0 && t <= self.feat.temp_under;
        self.smart.warning | if hot || cold { 0x02 } else { 0 }
    }

    /// Raises a SMART / Health event for every critical warning bit that went from 0 to 1
    /// and is enabled in AEC bits 7:0.
    pub(super) fn warning_changed(&mut self, before: u8) {
        let new = self.critical_warning() & !before;
        // CAST: AEC bits 7:0 are the critical warning mask.
        let enabled = new & (self.feat.aec as u8);
        for bit in 0..8u8 {
            if enabled & (1 << bit) != 0 {
                // Event info: 01h temperature, 02h spare below threshold, 00h reliability.
                let info = match bit {
                    0 => 0x02,
                    1 => 0x01,
                    _ => 0x00,
                };
                self.queue_event(AsyncEvent {
                    event_type: 1,
                    info,
                    log_page: 0x02,
                });
            }
        }
    }

    // ---- data ------------------------------------------------------------------------------

    /// Resolves a command's data pointer for a transfer of `len` bytes: MDTS, then PRPs
    /// (PSDT 00b) or, for I/O commands with SGLs supported, an SGL (PSDT 01b).
    pub(super) fn data_segments(
        &self,
        sqe: &Sqe,
        len: u64,
        admin: bool,
    ) -> Result<Vec<Seg>, Status> {
        if len == 0 {
            return Ok(Vec::new());
        }
        self.check_transfer(len)?;
        match sqe.psdt() {
            0 => dptr::prp_segments(&self.bus, self.page, sqe.prp1(), sqe.prp2(), len),
            1 if self.cfg.sgls && !admin => dptr::sgl_segments(&self.bus, sqe.sgl1(), len),
            _ => Err(generic::INVALID_FIELD),
        }
    }

    /// Checks a transfer of `len` bytes against MDTS (in units of the minimum page size; 0
    /// unlimited) and the model's own 1 GiB cap: Invalid Field when larger.
    pub(super) fn check_transfer(&self, len: u64) -> Result<(), Status> {
        let mdts = u32::from(self.cfg.mdts);
        let shift = 12 + u32::from(self.cfg.mpsmin) + mdts;
        if mdts != 0 && shift < 64 && len > 1 << shift {
            return Err(generic::INVALID_FIELD);
        }
        if len > MAX_TRANSFER {
            return Err(generic::INVALID_FIELD);
        }
        Ok(())
    }

    /// Sends `data` to the host through the command's data pointer.
    pub(super) fn send(&self, sqe: &Sqe, data: &[u8], admin: bool) -> Result<(), Status> {
        let segs = self.data_segments(sqe, data.len() as u64, admin)?;
        Xfer::new(&self.bus, segs)
            .put(data)
            .map_err(|DmaError| generic::DATA_TRANSFER_ERROR)
    }

    /// Receives `len` bytes from the host through the command's data pointer.
    pub(super) fn receive(&self, sqe: &Sqe, len: usize, admin: bool) -> Result<Vec<u8>, Status> {
        let segs = self.data_segments(sqe, len as u64, admin)?;
        let mut buf = vec![0; len];
        Xfer::new(&self.bus, segs)
            .get(&mut buf)
            .map_err(|DmaError| generic::DATA_TRANSFER_ERROR)?;
        Ok(buf)
    }
}
