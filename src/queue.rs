//! Submission and completion queue ring state, NVMe Base 2.0 §3.3.1 and §4.1.
//!
//! These types hold indices and the phase tag only; the entries live in memory the platform
//! provides. Keeping the arithmetic here, free of memory, lets every depth from 2 to 65536 be
//! tested exhaustively and keeps the wrap rules in one place.

/// A queue was created with a depth the spec does not allow (below 2 or above 65536).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadDepth(pub u32);

/// Checks a queue depth: at least 2 entries (one is always left empty) and at most 65536
/// (CAP.MQES is 16 bits, 0's based).
const fn check_depth(depth: u32) -> Result<u32, BadDepth> {
    if depth < 2 || depth > 65536 {
        Err(BadDepth(depth))
    } else {
        Ok(depth)
    }
}

/// The index after `i` in a ring of `depth` entries.
///
/// Written without `%`: a division the compiler cannot prove non-zero leaves a panic path
/// behind, which the kernel's objtool flags in the module.
const fn next(i: u32, depth: u32) -> u32 {
    if i + 1 >= depth {
        0
    } else {
        i + 1
    }
}

/// Entries from `from` forward to `to` in a ring of `depth` entries (both below `depth`).
const fn distance(from: u32, to: u32, depth: u32) -> u32 {
    if to >= from {
        to - from
    } else {
        to + depth - from
    }
}

/// Submission queue ring: the host owns the tail, the controller reports its head in every
/// completion (SQHD).
///
/// # Invariants
///
/// `tail < depth` and `head < depth`; the queue is full when advancing the tail would make it
/// equal to the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SqRing {
    depth: u32,
    tail: u32,
    head: u32,
    /// Tail value last written to the doorbell.
    rung: u32,
}

/// The submission queue has no free entry; the caller keeps its command and retries later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// The controller reported a submission queue head that cannot be right.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSqHead(pub u16);

impl SqRing {
    /// An empty ring of `depth` entries.
    pub const fn new(depth: u32) -> Result<Self, BadDepth> {
        match check_depth(depth) {
            // INVARIANT: all indices start at 0 < depth.
            Ok(depth) => Ok(Self {
                depth,
                tail: 0,
                head: 0,
                rung: 0,
            }),
            Err(e) => Err(e),
        }
    }

    /// The ring depth in entries.
    pub const fn depth(&self) -> u32 {
        self.depth
    }

    /// The current tail: the slot the next command goes into.
    pub const fn tail(&self) -> u32 {
        self.tail
    }

    /// Entries submitted and not yet consumed by the controller (as far as we know).
    pub const fn in_use(&self) -> u32 {
        distance(self.head, self.tail, self.depth)
    }

    /// True when no entry is free.
    pub const fn is_full(&self) -> bool {
        next(self.tail, self.depth) == self.head
    }

    /// Reserves the slot at the tail and advances the tail. Returns the slot index to write the
    /// entry into. The entry must be fully written before the doorbell announces it.
    pub fn push(&mut self) -> Result<u32, QueueFull> {
        if self.is_full() {
            return Err(QueueFull);
        }
        let slot = self.tail;
        self.tail = next(self.tail, self.depth);
        Ok(slot)
    }

    /// Takes back the slot the last [`SqRing::push`] returned (it was never announced).
    pub fn unpush(&mut self) {
        if self.tail != self.rung {
            self.tail = if self.tail == 0 {
                self.depth - 1
            } else {
                self.tail - 1
            };
        }
    }

    /// Records that the doorbell now holds the current tail, and returns the previous doorbell
    /// value (for the shadow doorbell rule), or `None` if nothing new was queued.
    pub fn ring(&mut self) -> Option<(u32, u32)> {
        if self.rung == self.tail {
            return None;
        }
        let old = self.rung;
        self.rung = self.tail;
        Some((old, self.tail))
    }

    /// Applies the SQ head a completion reported (SQHD, §4.6).
    ///
    /// The head may only move forward through entries we submitted: a value outside
    /// `[head, tail]` (modulo wrap) is a lying device and is rejected without changing state.
    pub fn set_head(&mut self, sqhd: u16) -> Result<(), BadSqHead> {
        let new = u32::from(sqhd);
        if new >= self.depth {
            return Err(BadSqHead(sqhd));
        }
        let advance = distance(self.head, new, self.depth);
        if advance > self.in_use() {
            return Err(BadSqHead(sqhd));
        }
        self.head = new;
        Ok(())
    }
}

/// Completion queue ring: the controller posts entries with a phase tag that flips on every
/// wrap; the host consumes them and reports its head through the doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqRing {
    depth: u32,
    head: u32,
    phase: bool,
}

impl CqRing {
    /// An empty ring of `depth` entries. The controller's first pass writes phase 1 (§4.6).
    pub const fn new(depth: u32) -> Result<Self, BadDepth> {
        match check_depth(depth) {
            Ok(depth) => Ok(Self {
                depth,
                head: 0,
                phase: true,
            }),
            Err(e) => Err(e),
        }
    }

    /// The ring depth in entries.
    pub const fn depth(&self) -> u32 {
        self.depth
    }

    /// The slot the next completion will appear in.
    pub const fn head(&self) -> u32 {
        self.head
    }

    /// The phase tag value that marks the entry at the head as new.
    pub const fn phase(&self) -> bool {
        self.phase
    }

    /// True when an entry carrying phase tag `p` at the head is a new completion.
    pub const fn is_new(&self, p: bool) -> bool {
        p == self.phase
    }

    /// Consumes the entry at the head; flips the expected phase on wrap.
    pub fn advance(&mut self) {
        self.head += 1;
        if self.head == self.depth {
            self.head = 0;
            self.phase = !self.phase;
        }
    }
}

/// The shadow doorbell rule, NVMe Base 2.0 §5.8 (Doorbell Buffer Config): after moving a
/// doorbell value from `old` to `new`, the MMIO doorbell must be written only if the
/// controller's EventIdx lies in `[old, new)` modulo 2^16.
pub const fn shadow_needs_mmio(event_idx: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event_idx).wrapping_sub(1) < new.wrapping_sub(old)
}

use crate::orion::command::{CidError, CidSlot, CidTable};
use crate::orion::spec::cqe::{Cqe, CQE_SIZE, CQE_STATUS_OFFSET};
use crate::orion::spec::regs::{Cap, DOORBELL_BASE};
use crate::orion::spec::sqe::Sqe;
use crate::orion::spec::status::{PhaseStatus, Status};
use crate::orion_compat::dma::{CoherentMem, Fence};
use crate::orion_compat::{Error, ErrorKind, Mmio};
use zerocopy::{FromBytes, IntoBytes};

/// Size of a submission queue entry in bytes (CC.IOSQES = 6).
pub const SQE_SIZE: usize = 64;

/// Errors from queue operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// No free submission queue entry; the command was not queued.
    Full,
    /// The tag is out of range or already in flight (a caller bug).
    BadTag(u16),
    /// Queue memory is missing or too small for the depth.
    BadMemory,
    /// The platform failed an access to queue memory or a doorbell.
    Platform(ErrorKind),
}

/// What the reaper found in one completion queue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A genuine completion of the command with this tag.
    Done {
        /// The tag the command was submitted with.
        tag: u16,
        /// The command's status.
        status: Status,
        /// DW0 (low) and DW1 (high) of the completion.
        result: u64,
    },
    /// An entry the device should not have posted: its CID, SQ or SQ head is wrong. It was
    /// consumed (the ring moves on) but completes nothing.
    Bogus(BogusCompletion),
}

/// Why a completion queue entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BogusCompletion {
    /// The CID does not match an outstanding command.
    Cid(CidError),
    /// The entry names a submission queue that does not feed this completion queue.
    Sqid(u16),
    /// The SQ head pointer in the entry cannot be right.
    SqHead(u16),
}

/// The shadow doorbell and EventIdx buffers of Doorbell Buffer Config, NVMe Base 2.0 §5.8.
/// Both have the doorbell registers' layout (stride `4 << CAP.DSTRD`, starting at offset 0).
#[derive(Debug)]
pub struct ShadowDoorbells<C> {
    /// Shadow doorbell values the host writes.
    pub shadow: C,
    /// EventIdx values the controller writes.
    pub event_idx: C,
}

/// One submission queue and the completion queue it posts to (they share the queue ID).
///
/// Owns the rings' memory, their indices and the command identifiers of this queue. `S` is
/// the CID slot storage, one per tag.
#[derive(Debug)]
pub struct QueuePair<C, S> {
    qid: u16,
    sq_mem: C,
    cq_mem: C,
    sq: SqRing,
    cq: CqRing,
    cids: CidTable<S>,
    sq_db: usize,
    cq_db: usize,
    /// CQ head value last reported to the controller.
    cq_reported: u32,
}

fn plat<E: Error>(e: E) -> QueueError {
    QueueError::Platform(e.kind())
}

impl<C: CoherentMem, S: AsRef<[CidSlot]> + AsMut<[CidSlot]>> QueuePair<C, S> {
    /// A queue pair of `depth` entries on queue `qid` over the given ring memory (zeroed, so
    /// no stale phase bits), with one CID slot per tag in `slots`.
    pub fn new(
        qid: u16,
        depth: u32,
        cap: Cap,
        sq_mem: C,
        cq_mem: C,
        slots: S,
    ) -> Result<Self, QueueError> {
        let sq = SqRing::new(depth).map_err(|_| QueueError::BadMemory)?;
        let cq = CqRing::new(depth).map_err(|_| QueueError::BadMemory)?;
        let d = depth as usize;
        if sq_mem.len() < d * SQE_SIZE || cq_mem.len() < d * CQE_SIZE {
            return Err(QueueError::BadMemory);
        }
        let cids = CidTable::new(slots).ok_or(QueueError::BadMemory)?;
        Ok(Self {
            qid,
            sq_mem,
            cq_mem,
            sq,
            cq,
            cids,
            sq_db: cap.sq_tail_doorbell(qid),
            cq_db: cap.cq_head_doorbell(qid),
            cq_reported: 0,
        })
    }

    /// The queue ID.
    pub fn qid(&self) -> u16 {
        self.qid
    }

    /// The ring depth.
    pub fn depth(&self) -> u32 {
        self.sq.depth()
    }

    /// Bus address of the submission ring (for Create I/O SQ / ASQ).
    pub fn sq_bus_addr(&self) -> u64 {
        self.sq_mem.bus_addr().as_u64()
    }

    /// Bus address of the completion ring (for Create I/O CQ / ACQ).
    pub fn cq_bus_addr(&self) -> u64 {
        self.cq_mem.bus_addr().as_u64()
    }

    /// Commands submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.cids.in_flight()
    }

    /// The CID of `tag`'s outstanding command, if one is.
    pub fn cid_of(&self, tag: u16) -> Option<u16> {
        self.cids.cid_of(tag)
    }

    /// True when `tag` has no command outstanding.
    pub fn tag_is_free(&self, tag: u16) -> bool {
        self.cids.is_free(tag)
    }

    /// Copies `sqe` into the next submission slot under `tag`'s command identifier. The
    /// controller does not see it until [`QueuePair::ring`]. On error nothing was queued and
    /// the tag stays free.
    pub fn submit(&mut self, tag: u16, sqe: &Sqe) -> Result<(), QueueError> {
        if self.sq.is_full() {
            return Err(QueueError::Full);
        }
        let cid = self.cids.start(tag).ok_or(QueueError::BadTag(tag))?;
        let slot = match self.sq.push() {
            Ok(slot) => slot,
            Err(QueueFull) => {
                self.cids.cancel(tag);
                return Err(QueueError::Full);
            }
        };
        let entry = sqe.with_cid(cid);
        if let Err(e) = self
            .sq_mem
            .write_bytes(slot as usize * SQE_SIZE, entry.as_bytes())
        {
            // The slot is consumed but never announced; undo so the ring stays consistent.
            self.cids.cancel(tag);
            self.sq.unpush();
            return Err(plat(e));
        }
        Ok(())
    }

    /// Announces every entry queued since the last call with one doorbell write (or none,
    /// when a shadow doorbell's EventIdx says the controller does not need one).
    pub fn ring<M: Mmio>(
        &mut self,
        mmio: &M,
        shadow: Option<&ShadowDoorbells<C>>,
    ) -> Result<(), QueueError> {
        let Some((old, new)) = self.sq.ring() else {
            return Ok(());
        };
        write_doorbell(mmio, shadow, self.sq_db, old, new)
    }

    /// Reaps up to `budget` new completions, calling `f` for each, then reports the new CQ
    /// head with one doorbell write. Returns the number of entries consumed.
    pub fn reap<M: Mmio>(
        &mut self,
        mmio: &M,
        shadow: Option<&ShadowDoorbells<C>>,
        budget: usize,
        mut f: impl FnMut(Reaped),
    ) -> Result<usize, QueueError> {
        let mut n = 0;
        while n < budget {
            let off = self.cq.head() as usize * CQE_SIZE;
            let mut ps = [0u8; 2];
            self.cq_mem
                .read_bytes(off + CQE_STATUS_OFFSET, &mut ps)
                .map_err(plat)?;
            if !self.cq.is_new(PhaseStatus(u16::from_le_bytes(ps)).p()) {
                break;
            }
            // The phase tag says the entry is complete; without this barrier the CPU could
            // have read the rest of the entry before the tag, i.e. from the previous pass.
            self.cq_mem.fence(Fence::Read);
            let mut raw = [0u8; CQE_SIZE];
            self.cq_mem.read_bytes(off, &mut raw).map_err(plat)?;
            self.cq.advance();
            n += 1;
            let Ok(cqe) = Cqe::read_from_bytes(&raw) else {
                continue;
            };
            if cqe.sqid != self.qid {
                f(Reaped::Bogus(BogusCompletion::Sqid(cqe.sqid)));
                continue;
            }
            if self.sq.set_head(cqe.sqhd).is_err() {
                f(Reaped::Bogus(BogusCompletion::SqHead(cqe.sqhd)));
            }
            match self.cids.complete(cqe.cid) {
                Ok(tag) => f(Reaped::Done {
                    tag,
                    status: cqe.status(),
                    result: cqe.result64(),
                }),
                Err(e) => f(Reaped::Bogus(BogusCompletion::Cid(e))),
            }
        }
        if n > 0 {
            let old = self.cq_reported;
            let new = self.cq.head();
            self.cq_reported = new;
            write_doorbell(mmio, shadow, self.cq_db, old, new)?;
        }
        Ok(n)
    }

    /// Forgets `tag`'s command (timed out, aborted, or the queue is being torn down): a later
    /// completion for it is refused as bogus.
    pub fn cancel(&mut self, tag: u16) -> bool {
        self.cids.cancel(tag)
    }

    /// Gives back the ring memory and slot storage (after the controller deleted the queue).
    pub fn into_parts(self) -> (C, C, S) {
        (self.sq_mem, self.cq_mem, self.cids.into_slots())
    }
}

/// Writes a doorbell value, through the shadow buffer when there is one (NVMe Base 2.0 §5.8).
fn write_doorbell<M: Mmio, C: CoherentMem>(
    mmio: &M,
    shadow: Option<&ShadowDoorbells<C>>,
    db: usize,
    old: u32,
    new: u32,
) -> Result<(), QueueError> {
    if let Some(sh) = shadow {
        let off = db - DOORBELL_BASE;
        sh.shadow.write32(off, new).map_err(plat)?;
        // The shadow value must be visible to the controller before we read EventIdx, or we
        // could skip the MMIO write the controller is waiting for.
        sh.shadow.fence(Fence::Full);
        let ev = sh.event_idx.read32(off).map_err(plat)?;
        // CAST: doorbell values are ring indices below 65536; the rule works modulo 2^16.
        if !shadow_needs_mmio(ev as u16, new as u16, old as u16) {
            return Ok(());
        }
    }
    mmio.write32(db, new).map_err(plat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limits() {
        assert_eq!(SqRing::new(1), Err(BadDepth(1)));
        assert_eq!(CqRing::new(65537), Err(BadDepth(65537)));
        assert!(SqRing::new(2).is_ok() && CqRing::new(65536).is_ok());
    }

    /// Fill, drain and wrap at every depth from 2 to 4096 (and the 65536 maximum): the SQ holds
    /// exactly depth-1 entries, slots come back in order, and the CQ phase flips exactly once
    /// per wrap.
    #[test]
    fn wrap_around_every_depth() {
        for depth in (2..=4096).chain([65536]) {
            let mut sq = SqRing::new(depth).unwrap();
            let mut cq = CqRing::new(depth).unwrap();
            let mut expect_slot = 0;
            let mut flips = 0;
            // Three passes around the ring, in batches of depth-1.
            for _pass in 0..3 {
                for _ in 0..depth - 1 {
                    assert_eq!(sq.push(), Ok(expect_slot));
                    expect_slot = (expect_slot + 1) % depth;
                }
                assert!(sq.is_full());
                assert_eq!(sq.push(), Err(QueueFull));
                assert!(sq.ring().is_some());
                assert!(sq.ring().is_none());
                for _ in 0..depth - 1 {
                    let before = cq.phase();
                    cq.advance();
                    if cq.phase() != before {
                        flips += 1;
                        assert_eq!(cq.head(), 0);
                    }
                }
                // CAST: tail < depth <= 65536, so it fits SQHD's 16 bits.
                sq.set_head(sq.tail() as u16).unwrap();
                assert_eq!(sq.in_use(), 0);
            }
            assert_eq!(flips, 3 * (depth - 1) / depth, "depth {depth}");
        }
    }

    #[test]
    fn lying_sq_head_is_rejected() {
        let mut sq = SqRing::new(8).unwrap();
        for _ in 0..3 {
            sq.push().unwrap();
        }
        // Head may move to 0..=3 only.
        assert_eq!(sq.set_head(5), Err(BadSqHead(5)));
        assert_eq!(sq.set_head(8), Err(BadSqHead(8)));
        assert_eq!(sq.set_head(0xffff), Err(BadSqHead(0xffff)));
        assert_eq!(sq.in_use(), 3);
        sq.set_head(2).unwrap();
        assert_eq!(sq.in_use(), 1);
        // Going backwards is as wrong as going too far.
        assert_eq!(sq.set_head(1), Err(BadSqHead(1)));
    }

    #[test]
    fn shadow_doorbell_event_idx_rule() {
        // EventIdx inside [old, new): the controller asked to be told.
        assert!(shadow_needs_mmio(5, 8, 5));
        assert!(shadow_needs_mmio(7, 8, 5));
        // EventIdx == new or beyond: not yet.
        assert!(!shadow_needs_mmio(8, 8, 5));
        assert!(!shadow_needs_mmio(20, 8, 5));
        // Before old: already told.
        assert!(!shadow_needs_mmio(4, 8, 5));
        // Wrap-around of the 16-bit index space.
        assert!(shadow_needs_mmio(0xfffe, 2, 0xfffd));
        assert!(shadow_needs_mmio(1, 2, 0xfffd));
        assert!(!shadow_needs_mmio(2, 2, 0xfffd));
        // Exhaustive cross-check against the definition for small windows.
        for old in [0u16, 100, 0xfff0] {
            for step in 1..20u16 {
                let new = old.wrapping_add(step);
                for k in 0..40u16 {
                    let ev = old.wrapping_sub(10).wrapping_add(k);
                    let inside = ev.wrapping_sub(old) < step;
                    assert_eq!(shadow_needs_mmio(ev, new, old), inside, "{old} {new} {ev}");
                }
            }
        }
    }
}
