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
        (self.tail + self.depth - self.head) % self.depth
    }

    /// True when no entry is free.
    pub const fn is_full(&self) -> bool {
        (self.tail + 1) % self.depth == self.head
    }

    /// Reserves the slot at the tail and advances the tail. Returns the slot index to write the
    /// entry into. The entry must be fully written before the doorbell announces it.
    pub fn push(&mut self) -> Result<u32, QueueFull> {
        if self.is_full() {
            return Err(QueueFull);
        }
        let slot = self.tail;
        self.tail = (self.tail + 1) % self.depth;
        Ok(slot)
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
        let advance = (new + self.depth - self.head) % self.depth;
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
