//! The conformance kit: generic checks that every implementation of the Orion driver API must
//! pass.
//!
//! Each check is a plain function, generic over the trait it checks, that returns `Ok(())` or
//! a [`ConformanceFailure`] naming the rule that broke. The kit uses neither `std` nor `alloc`
//! and never panics, so the same checks run on the host against the sim, inside the Linux
//! kernel module against the real backend, and on the native Orion runtime.
//!
//! Checks that wait take a [`Clock`] and sleep, so run the kit from a context that may sleep.
//! Checks that need the platform to do something the API cannot express (raise an interrupt,
//! run queued work) take a closure for it. Every check cleans up what it created, on success
//! and on failure.

use crate::orion_compat::block::{
    Block, BlockHandler, BlockQueues, BlockRequest, BlockStatus, Disk, DiskGeometry, DiskId,
    HwQueue, HwQueueChange, QueueConfig, Tag, TimeoutAction,
};
use crate::orion_compat::dma::{
    CoherentMem, Direction, Dma, DmaMapping, Fence, MAX_COHERENT_ALIGN,
};
use crate::orion_compat::irq::{
    IrqHandler, IrqKind, IrqKinds, IrqRegistration, IrqReturn, IrqVectors, VectorRequest,
};
use crate::orion_compat::pci::{Pci, CONFIG_SPACE_LEN};
use crate::orion_compat::sync::{Lock, Locks, Share};
use crate::orion_compat::time::{Clock, Deadline, Duration, WaitError};
use crate::orion_compat::work::{Work, WorkHandler, Workqueue};
use crate::orion_compat::{Error, ErrorKind, Mmio};
use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};

/// What broke: the check, the rule, and the values involved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConformanceFailure {
    /// The check that failed, for example `"dma.coherent"`.
    pub check: &'static str,
    /// The rule that was broken, as a sentence fragment.
    pub rule: &'static str,
    /// The value the rule asks for, where there is one.
    pub expected: Option<u64>,
    /// The value found, where there is one.
    pub actual: Option<u64>,
    /// The error the implementation returned, where it returned one.
    pub error: Option<ErrorKind>,
}

impl ConformanceFailure {
    const fn new(check: &'static str, rule: &'static str) -> Self {
        Self {
            check,
            rule,
            expected: None,
            actual: None,
            error: None,
        }
    }

    const fn values(mut self, expected: u64, actual: u64) -> Self {
        self.expected = Some(expected);
        self.actual = Some(actual);
        self
    }

    const fn error(mut self, kind: ErrorKind) -> Self {
        self.error = Some(kind);
        self
    }
}

impl core::fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.check, self.rule)?;
        if let Some(e) = self.expected {
            write!(f, " (expected {e:#x}")?;
            match self.actual {
                Some(a) => write!(f, ", got {a:#x})")?,
                None => write!(f, ")")?,
            }
        }
        if let Some(k) = self.error {
            write!(f, " [error {k:?}]")?;
        }
        Ok(())
    }
}

/// The result of a check.
pub type Outcome = Result<(), ConformanceFailure>;

/// Fails with `rule` unless `cond` holds.
fn ensure(cond: bool, check: &'static str, rule: &'static str) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(ConformanceFailure::new(check, rule))
    }
}

/// Fails with `rule` unless `actual == expected`.
fn ensure_eq(expected: u64, actual: u64, check: &'static str, rule: &'static str) -> Outcome {
    if expected == actual {
        Ok(())
    } else {
        Err(ConformanceFailure::new(check, rule).values(expected, actual))
    }
}

/// Turns an implementation error into a failure.
fn ok<T, E: Error>(
    r: Result<T, E>,
    check: &'static str,
    rule: &'static str,
) -> Result<T, ConformanceFailure> {
    r.map_err(|e| ConformanceFailure::new(check, rule).error(e.kind()))
}

/// Fails unless `r` is an error of kind `kind`. An unexpected `Ok` value is dropped.
fn expect_err<T, E: Error>(
    r: Result<T, E>,
    kind: ErrorKind,
    check: &'static str,
    rule: &'static str,
) -> Outcome {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(ConformanceFailure::new(check, rule).error(e.kind())),
        Ok(_) => Err(ConformanceFailure::new(check, rule)),
    }
}

// ---------------------------------------------------------------------------------------------
// DMA
// ---------------------------------------------------------------------------------------------

const COHERENT: &str = "dma.coherent";

/// The (length, alignment) pairs [`dma_coherent`] allocates, all alive at once.
const COHERENT_CASES: [(usize, usize); 8] = [
    (1, 1),
    (100, 8),
    (64, 64),
    (512, 4096),
    (4096, 4096),
    (8192 + 4, 4096),
    (4096, 16 * 1024),
    (4096, MAX_COHERENT_ALIGN),
];

/// Coherent allocation: alignment, length, zeroing, stable and disjoint bus addresses,
/// little-endian round trips, and bounds checks.
///
/// Allocates at most about 100 KiB, all of it freed before returning. Must run from a
/// context that may sleep.
pub fn dma_coherent<D: Dma>(dma: &D) -> Outcome {
    expect_err(
        dma.alloc_coherent(0, 8),
        ErrorKind::OutOfRange,
        COHERENT,
        "a zero length must be refused",
    )?;
    expect_err(
        dma.alloc_coherent(64, 0),
        ErrorKind::OutOfRange,
        COHERENT,
        "an alignment of 0 must be refused",
    )?;
    expect_err(
        dma.alloc_coherent(64, 48),
        ErrorKind::OutOfRange,
        COHERENT,
        "an alignment that is not a power of two must be refused",
    )?;

    let mut live: [Option<D::Coherent>; COHERENT_CASES.len()] = Default::default();
    for ((len, align), slot) in COHERENT_CASES.into_iter().zip(live.iter_mut()) {
        let mem = ok(
            dma.alloc_coherent(len, align),
            COHERENT,
            "an allocation within the contract must succeed",
        )?;
        let addr = mem.bus_addr();
        if !addr.is_aligned(align as u64) {
            return Err(ConformanceFailure::new(
                COHERENT,
                "the bus address must be a multiple of the alignment",
            )
            .values(align as u64, addr.as_u64()));
        }
        if mem.len() < len {
            return Err(ConformanceFailure::new(
                COHERENT,
                "the block must be at least as long as asked",
            )
            .values(len as u64, mem.len() as u64));
        }
        ensure(
            addr.checked_add(mem.len() as u64).is_some(),
            COHERENT,
            "the block must not wrap the bus address space",
        )?;
        coherent_zeroed(&mem)?;
        *slot = Some(mem);
    }

    // Disjoint: no two live blocks share a bus address.
    for (i, a) in live.iter().enumerate() {
        for b in live.iter().skip(i.saturating_add(1)) {
            if let (Some(a), Some(b)) = (a, b) {
                let (a0, b0) = (a.bus_addr().as_u64(), b.bus_addr().as_u64());
                let a1 = a0.saturating_add(a.len() as u64);
                let b1 = b0.saturating_add(b.len() as u64);
                if a0 < b1 && b0 < a1 {
                    return Err(ConformanceFailure::new(
                        COHERENT,
                        "live blocks must not overlap on the bus",
                    )
                    .values(a0, b0));
                }
            }
        }
    }

    for mem in live.iter().flatten() {
        let before = mem.bus_addr();
        coherent_round_trip(mem)?;
        coherent_bounds(mem)?;
        ensure_eq(
            before.as_u64(),
            mem.bus_addr().as_u64(),
            COHERENT,
            "the bus address must not change",
        )?;
    }
    Ok(())
}

fn coherent_zeroed<C: CoherentMem>(mem: &C) -> Outcome {
    let mut chunk = [0xa5u8; 64];
    let mut off = 0;
    while off < mem.len() {
        let n = chunk.len().min(mem.len().saturating_sub(off));
        let Some(buf) = chunk.get_mut(..n) else {
            return Err(ConformanceFailure::new(COHERENT, "internal: chunk"));
        };
        ok(
            mem.read_bytes(off, buf),
            COHERENT,
            "reading inside the block must succeed",
        )?;
        if let Some(b) = buf.iter().find(|b| **b != 0) {
            return Err(
                ConformanceFailure::new(COHERENT, "a new block must read as zeroes")
                    .values(0, u64::from(*b)),
            );
        }
        off = off.saturating_add(n);
    }
    Ok(())
}

fn coherent_round_trip<C: CoherentMem>(mem: &C) -> Outcome {
    let len = mem.len();
    let rt = "a value written must read back";
    if len >= 4 {
        let last = (len & !3).saturating_sub(4);
        for (off, v) in [(0, 0x1122_3344u32), (last, 0xdead_beef)] {
            ok(
                mem.write32(off, v),
                COHERENT,
                "an aligned 32-bit write inside must succeed",
            )?;
            mem.fence(Fence::Full);
            ensure_eq(
                u64::from(v),
                u64::from(ok(mem.read32(off), COHERENT, rt)?),
                COHERENT,
                rt,
            )?;
        }
        let mut le = [0u8; 4];
        ok(mem.read_bytes(0, &mut le), COHERENT, rt)?;
        ensure_eq(
            0x1122_3344,
            u64::from(u32::from_le_bytes(le)),
            COHERENT,
            "32-bit values must be stored little-endian",
        )?;
    }
    if len >= 8 {
        let v = 0x0102_0304_0506_0708u64;
        ok(
            mem.write64(0, v),
            COHERENT,
            "an aligned 64-bit write inside must succeed",
        )?;
        mem.fence(Fence::Write);
        ensure_eq(v, ok(mem.read64(0), COHERENT, rt)?, COHERENT, rt)?;
        ensure_eq(
            0x0506_0708,
            u64::from(ok(mem.read32(0), COHERENT, rt)?),
            COHERENT,
            "64-bit values must be stored little-endian",
        )?;
        ok(
            mem.write_bytes(0, &[1, 2, 3, 4, 5, 6, 7, 8]),
            COHERENT,
            "a byte write inside must succeed",
        )?;
        mem.fence(Fence::Read);
        ensure_eq(
            0x0807_0605_0403_0201,
            ok(mem.read64(0), COHERENT, rt)?,
            COHERENT,
            "bytes must land in order",
        )?;
        ok(mem.zero(0, 8), COHERENT, "zeroing inside must succeed")?;
        ensure_eq(
            0,
            ok(mem.read64(0), COHERENT, rt)?,
            COHERENT,
            "zeroed bytes must read as zero",
        )?;
    }
    let Some(last) = len.checked_sub(1) else {
        return Err(ConformanceFailure::new(
            COHERENT,
            "a block must not be empty",
        ));
    };
    ok(
        mem.write_bytes(last, &[0x5a]),
        COHERENT,
        "writing the last byte must succeed",
    )?;
    let mut b = [0u8; 1];
    ok(mem.read_bytes(last, &mut b), COHERENT, rt)?;
    ensure_eq(0x5a, u64::from(b[0]), COHERENT, rt)
}

fn coherent_bounds<C: CoherentMem>(mem: &C) -> Outcome {
    let len = mem.len();
    let oor = ErrorKind::OutOfRange;
    let end32 = (len.saturating_add(3)) & !3;
    let end64 = (len.saturating_add(7)) & !7;
    expect_err(
        mem.read32(end32),
        oor,
        COHERENT,
        "a 32-bit read past the end must be refused",
    )?;
    expect_err(
        mem.write32(end32, 1),
        oor,
        COHERENT,
        "a 32-bit write past the end must be refused",
    )?;
    expect_err(
        mem.read64(end64),
        oor,
        COHERENT,
        "a 64-bit read past the end must be refused",
    )?;
    expect_err(
        mem.write64(end64, 1),
        oor,
        COHERENT,
        "a 64-bit write past the end must be refused",
    )?;
    expect_err(
        mem.read32(usize::MAX & !3),
        oor,
        COHERENT,
        "an offset near usize::MAX must be refused",
    )?;
    expect_err(
        mem.read_bytes(usize::MAX, &mut [0; 2]),
        oor,
        COHERENT,
        "a byte range that overflows must be refused",
    )?;
    expect_err(
        mem.zero(len, 1),
        oor,
        COHERENT,
        "zeroing past the end must be refused",
    )?;
    if len >= 8 {
        expect_err(
            mem.read32(2),
            oor,
            COHERENT,
            "a misaligned 32-bit read must be refused",
        )?;
        expect_err(
            mem.write32(2, 1),
            oor,
            COHERENT,
            "a misaligned 32-bit write must be refused",
        )?;
        expect_err(
            mem.read64(4),
            oor,
            COHERENT,
            "a misaligned 64-bit read must be refused",
        )?;
        expect_err(
            mem.write64(4, 1),
            oor,
            COHERENT,
            "a misaligned 64-bit write must be refused",
        )?;
        ensure_eq(
            0,
            ok(mem.read64(0), COHERENT, "reading inside must succeed")?,
            COHERENT,
            "a refused write must touch nothing",
        )?;
    }
    if let Some(last) = len.checked_sub(1) {
        let mut before = [0u8; 1];
        ok(
            mem.read_bytes(last, &mut before),
            COHERENT,
            "reading the last byte must succeed",
        )?;
        expect_err(
            mem.write_bytes(last, &[0xee, 0xee]),
            oor,
            COHERENT,
            "a byte write running past the end must be refused",
        )?;
        let mut after = [0u8; 1];
        ok(
            mem.read_bytes(last, &mut after),
            COHERENT,
            "reading the last byte must succeed",
        )?;
        ensure_eq(
            u64::from(before[0]),
            u64::from(after[0]),
            COHERENT,
            "a refused byte write must touch nothing",
        )?;
    }
    Ok(())
}

const STREAMING: &str = "dma.streaming";

/// Streaming mappings of `buf`: segments cover the buffer exactly and do not overlap, the
/// direction is kept, and unmapping hands back the same bytes.
///
/// An empty `buf` checks instead that mapping it is refused with
/// [`ErrorKind::OutOfRange`] and the buffer handed back. The buffer is always handed back,
/// with its contents overwritten by a test pattern.
pub fn dma_streaming<D: Dma>(dma: &D, buf: D::Buf) -> (D::Buf, Outcome) {
    if buf.as_ref().is_empty() {
        return match dma.map(buf, Direction::ToDevice) {
            Err((e, buf)) => {
                let r = ensure(
                    e.kind() == ErrorKind::OutOfRange,
                    STREAMING,
                    "mapping an empty buffer must be refused as out of range",
                );
                (buf, r)
            }
            Ok(m) => (
                dma.unmap(m),
                Err(ConformanceFailure::new(
                    STREAMING,
                    "mapping an empty buffer must be refused",
                )),
            ),
        };
    }
    let mut buf = buf;
    for (i, b) in buf.as_mut().iter_mut().enumerate() {
        *b = pattern(i);
    }
    for dir in [
        Direction::ToDevice,
        Direction::FromDevice,
        Direction::Bidirectional,
    ] {
        let len = buf.as_ref().len();
        let mapping = match dma.map(buf, dir) {
            Ok(m) => m,
            Err((e, buf)) => {
                return (
                    buf,
                    Err(
                        ConformanceFailure::new(STREAMING, "mapping a buffer must succeed")
                            .error(e.kind()),
                    ),
                )
            }
        };
        let r = mapping_shape(&mapping, dir, len);
        buf = dma.unmap(mapping);
        if r.is_err() {
            return (buf, r);
        }
        let changed = buf
            .as_ref()
            .iter()
            .enumerate()
            .find(|(i, b)| **b != pattern(*i))
            .map(|(i, b)| (pattern(i), *b));
        if let Some((want, got)) = changed {
            let f =
                ConformanceFailure::new(STREAMING, "map and unmap must hand back the same bytes");
            return (buf, Err(f.values(u64::from(want), u64::from(got))));
        }
    }
    (buf, Ok(()))
}

fn pattern(i: usize) -> u8 {
    // CAST: the low byte of a mix of the index; truncation is the point.
    (i ^ (i >> 8) ^ 0x5a) as u8
}

fn mapping_shape<M: DmaMapping>(m: &M, dir: Direction, len: usize) -> Outcome {
    ensure(
        m.direction() == dir,
        STREAMING,
        "the mapping must keep its direction",
    )?;
    let segs = m.segments();
    ensure(
        !segs.is_empty(),
        STREAMING,
        "a mapping must have at least one segment",
    )?;
    let mut total: u64 = 0;
    for (i, s) in segs.iter().enumerate() {
        ensure(s.len > 0, STREAMING, "no segment may be empty")?;
        let end = s.addr.checked_add(u64::from(s.len));
        ensure(
            end.is_some(),
            STREAMING,
            "a segment must not wrap the bus address space",
        )?;
        for t in segs.iter().skip(i.saturating_add(1)) {
            let (a0, b0) = (s.addr.as_u64(), t.addr.as_u64());
            let a1 = a0.saturating_add(u64::from(s.len));
            let b1 = b0.saturating_add(u64::from(t.len));
            if a0 < b1 && b0 < a1 {
                return Err(
                    ConformanceFailure::new(STREAMING, "segments must not overlap").values(a0, b0),
                );
            }
        }
        total = total.saturating_add(u64::from(s.len));
    }
    ensure_eq(
        len as u64,
        total,
        STREAMING,
        "segments must cover the buffer exactly",
    )
}

// ---------------------------------------------------------------------------------------------
// MMIO
// ---------------------------------------------------------------------------------------------

const MMIO_SCRATCH: &str = "mmio.scratch";

/// Register round trips and ordering on a scratch window that behaves like memory: `len`
/// bytes at `offset`, both multiples of 8, `len` at least 16.
///
/// Every dword is written, then all are read back in order (each read sees the last write to
/// its register); a register written twice keeps the second value; 64-bit accesses split into
/// a low dword at `offset` and a high dword at `offset + 4`; misaligned accesses are refused
/// and touch nothing. The window is left zeroed. Never sleeps.
pub fn mmio_scratch<M: Mmio>(mmio: &M, offset: usize, len: usize) -> Outcome {
    let check = MMIO_SCRATCH;
    ensure(
        offset % 8 == 0 && len % 8 == 0 && len >= 16,
        check,
        "the scratch window must be 8-aligned and at least 16 bytes",
    )?;
    let Some(end) = offset.checked_add(len) else {
        return Err(ConformanceFailure::new(
            check,
            "the scratch window must not wrap",
        ));
    };
    let value = |off: usize| -> u32 {
        // CAST: a pattern; truncation of the offset is harmless.
        0xa5a5_0000 ^ (off as u32).wrapping_mul(0x9e37_79b9)
    };
    let rt = "a 32-bit register must read back the last value written";
    for off in (offset..end).step_by(4) {
        ok(
            mmio.write32(off, 0xffff_ffff),
            check,
            "a write inside the window must succeed",
        )?;
        ok(
            mmio.write32(off, value(off)),
            check,
            "a write inside the window must succeed",
        )?;
    }
    for off in (offset..end).step_by(4) {
        ensure_eq(
            u64::from(value(off)),
            u64::from(ok(mmio.read32(off), check, rt)?),
            check,
            rt,
        )?;
    }

    let v = 0x8877_6655_4433_2211u64;
    ok(
        mmio.write64(offset, v),
        check,
        "a 64-bit write inside the window must succeed",
    )?;
    ensure_eq(
        v,
        ok(mmio.read64(offset), check, "a 64-bit read must succeed")?,
        check,
        "a 64-bit register must read back",
    )?;
    ensure_eq(
        0x4433_2211,
        u64::from(ok(mmio.read32(offset), check, rt)?),
        check,
        "the low dword of a 64-bit write must be at the lower offset",
    )?;
    let hi_off = offset.saturating_add(4);
    ensure_eq(
        0x8877_6655,
        u64::from(ok(mmio.read32(hi_off), check, rt)?),
        check,
        "the high dword of a 64-bit write must be at offset + 4",
    )?;
    ok(
        mmio.write32(offset, 0x0bad_f00d),
        check,
        "a write inside the window must succeed",
    )?;
    ok(
        mmio.write32(hi_off, 0x1234_5678),
        check,
        "a write inside the window must succeed",
    )?;
    ensure_eq(
        0x1234_5678_0bad_f00d,
        ok(mmio.read64(offset), check, "a 64-bit read must succeed")?,
        check,
        "a 64-bit read must combine the two dwords",
    )?;

    let oor = ErrorKind::OutOfRange;
    let odd = offset.saturating_add(2);
    expect_err(
        mmio.read32(odd),
        oor,
        check,
        "a misaligned 32-bit read must be refused",
    )?;
    expect_err(
        mmio.write32(odd, 0),
        oor,
        check,
        "a misaligned 32-bit write must be refused",
    )?;
    expect_err(
        mmio.read64(hi_off),
        oor,
        check,
        "a misaligned 64-bit read must be refused",
    )?;
    expect_err(
        mmio.write64(hi_off, 0),
        oor,
        check,
        "a misaligned 64-bit write must be refused",
    )?;
    ensure_eq(
        0x1234_5678_0bad_f00d,
        ok(mmio.read64(offset), check, "a 64-bit read must succeed")?,
        check,
        "a refused write must touch nothing",
    )?;

    for off in (offset..end).step_by(8) {
        ok(
            mmio.write64(off, 0),
            check,
            "a write inside the window must succeed",
        )?;
    }
    Ok(())
}

const MMIO_BOUNDS: &str = "mmio.bounds";

/// Bounds checks on a window of `window_len` bytes, using reads only, so it is safe on a real
/// device's BAR: accesses at or past the end, straddling it, near `usize::MAX` or misaligned
/// must be refused with [`ErrorKind::OutOfRange`]. Never sleeps.
pub fn mmio_bounds<M: Mmio>(mmio: &M, window_len: usize) -> Outcome {
    let check = MMIO_BOUNDS;
    let oor = ErrorKind::OutOfRange;
    ensure(
        window_len >= 16 && window_len % 8 == 0,
        check,
        "the window must be 8-aligned and at least 16 bytes",
    )?;
    expect_err(
        mmio.read32(window_len),
        oor,
        check,
        "a 32-bit read at the end must be refused",
    )?;
    expect_err(
        mmio.read64(window_len),
        oor,
        check,
        "a 64-bit read at the end must be refused",
    )?;
    expect_err(
        mmio.read64(window_len.saturating_sub(4)),
        oor,
        check,
        "a 64-bit read straddling the end must be refused",
    )?;
    expect_err(
        mmio.read32(usize::MAX & !3),
        oor,
        check,
        "an offset near usize::MAX must be refused",
    )?;
    expect_err(
        mmio.read64(usize::MAX & !7),
        oor,
        check,
        "an offset near usize::MAX must be refused",
    )?;
    expect_err(
        mmio.read32(1),
        oor,
        check,
        "a misaligned 32-bit read must be refused",
    )?;
    expect_err(
        mmio.read32(2),
        oor,
        check,
        "a misaligned 32-bit read must be refused",
    )?;
    expect_err(
        mmio.read64(4),
        oor,
        check,
        "a misaligned 64-bit read must be refused",
    )?;
    ok(
        mmio.read32(window_len.saturating_sub(4)),
        check,
        "the last dword must be readable",
    )?;
    Ok(())
}

const MMIO_READ_ONLY: &str = "mmio.read_only";

/// A read-only 64-bit register at `offset` (for NVMe: CAP at 0) reads the same twice, and a
/// 64-bit read agrees with its two 32-bit halves. Safe on a real device. Never sleeps.
pub fn mmio_read_only<M: Mmio>(mmio: &M, offset: usize) -> Outcome {
    let check = MMIO_READ_ONLY;
    let r = "reading the register must succeed";
    let a = ok(mmio.read64(offset), check, r)?;
    let b = ok(mmio.read64(offset), check, r)?;
    ensure_eq(a, b, check, "a read-only register must read the same twice")?;
    let lo = ok(mmio.read32(offset), check, r)?;
    let hi = ok(mmio.read32(offset.saturating_add(4)), check, r)?;
    ensure_eq(
        a,
        u64::from(lo) | (u64::from(hi) << 32),
        check,
        "a 64-bit read must equal its two 32-bit halves",
    )
}

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

const CLOCK: &str = "time.clock";

/// The clock is monotonic, every delay and sleep lasts at least what was asked, and
/// [`Deadline`] behaves: expiry, remaining time, and [`Deadline::poll`]'s three outcomes.
///
/// Sleeps about 10 ms in all. Must run from a context that may sleep.
pub fn clock<C: Clock>(clock: &C) -> Outcome {
    let mut prev = clock.now();
    for _ in 0..1000 {
        let now = clock.now();
        if now < prev {
            return Err(
                ConformanceFailure::new(CLOCK, "now() must never go backwards")
                    .values(prev.as_nanos(), now.as_nanos()),
            );
        }
        prev = now;
    }

    let at_least = |what: &'static str, d: Duration, f: &dyn Fn()| -> Outcome {
        let start = clock.now();
        f();
        let took = clock.now().saturating_duration_since(start);
        if took < d {
            return Err(ConformanceFailure::new(CLOCK, what).values(d.as_nanos(), took.as_nanos()));
        }
        Ok(())
    };
    at_least(
        "delay_us(50) must last at least 50 us",
        Duration::from_micros(50),
        &|| clock.delay_us(50),
    )?;
    at_least(
        "delay_us(1) must last at least 1 us",
        Duration::from_micros(1),
        &|| clock.delay_us(1),
    )?;
    at_least(
        "sleep(1 ms) must last at least 1 ms",
        Duration::from_millis(1),
        &|| clock.sleep(Duration::from_millis(1)),
    )?;
    at_least(
        "sleep(1500 us) must last at least 1500 us",
        Duration::from_micros(1500),
        &|| clock.sleep(Duration::from_micros(1500)),
    )?;
    at_least(
        "sleep_ms(2) must last at least 2 ms",
        Duration::from_millis(2),
        &|| clock.sleep_ms(2),
    )?;
    at_least("sleep(0) must return", Duration::ZERO, &|| {
        clock.sleep(Duration::ZERO)
    })?;

    let d0 = Deadline::after(clock, Duration::ZERO);
    ensure(
        d0.expired(clock),
        CLOCK,
        "a deadline of zero must be expired at once",
    )?;
    ensure(
        d0.remaining(clock).is_zero(),
        CLOCK,
        "an expired deadline must have no time remaining",
    )?;
    let far = Deadline::after(clock, Duration::from_secs(3600));
    ensure(
        !far.expired(clock),
        CLOCK,
        "a deadline an hour away must not be expired",
    )?;
    let d1 = Deadline::after(clock, Duration::from_millis(1));
    clock.sleep(Duration::from_millis(1));
    ensure(
        d1.expired(clock),
        CLOCK,
        "a deadline must be expired after sleeping its length",
    )?;

    // poll: a value, a failure, a timeout.
    let calls = AtomicU32::new(0);
    let got = Deadline::after(clock, Duration::from_secs(10)).poll(
        clock,
        Duration::from_micros(100),
        || {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            Ok::<_, ErrorKind>(if n >= 2 { Some(n) } else { None })
        },
    );
    ensure(
        got == Ok(2),
        CLOCK,
        "poll must return the first value found",
    )?;
    let failed = Deadline::after(clock, Duration::from_secs(10)).poll(
        clock,
        Duration::from_micros(100),
        || Err::<Option<()>, _>(ErrorKind::Gone),
    );
    ensure(
        failed == Err(WaitError::Failed(ErrorKind::Gone)),
        CLOCK,
        "poll must stop at the first error",
    )?;
    let timeout = Duration::from_millis(3);
    let start = clock.now();
    let timed_out = Deadline::after(clock, timeout).poll(clock, Duration::from_millis(1), || {
        Ok::<Option<()>, ErrorKind>(None)
    });
    let took = clock.now().saturating_duration_since(start);
    ensure(
        timed_out == Err(WaitError::TimedOut),
        CLOCK,
        "poll must time out when nothing is found",
    )?;
    if took < timeout {
        return Err(
            ConformanceFailure::new(CLOCK, "poll must not time out before the deadline")
                .values(timeout.as_nanos(), took.as_nanos()),
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

const LOCKS: &str = "sync.locks";

/// Spin locks are IRQ-safe and mutexes are not; a lock hands out its value, keeps what the
/// closure wrote, and returns the closure's result; two different locks nest.
///
/// Must run from a context that may sleep.
pub fn locks<L: Locks>(locks: &L) -> Outcome {
    ensure(
        <L::SpinLock<u64> as Lock<u64>>::IRQ_SAFE,
        LOCKS,
        "a spin lock must be IRQ-safe",
    )?;
    ensure(
        !<L::Mutex<u64> as Lock<u64>>::IRQ_SAFE,
        LOCKS,
        "a mutex must not claim to be IRQ-safe",
    )?;
    let spin = locks.new_spin_lock(1u64).map_err(|(e, _)| {
        ConformanceFailure::new(LOCKS, "creating a spin lock must succeed").error(e.kind())
    })?;
    let mutex = locks.new_mutex(10u64).map_err(|(e, _)| {
        ConformanceFailure::new(LOCKS, "creating a mutex must succeed").error(e.kind())
    })?;
    let r = mutex.lock(|m| {
        *m += 1;
        spin.lock(|s| {
            *s += *m;
            *s
        })
    });
    ensure_eq(12, r, LOCKS, "lock must return the closure's result")?;
    ensure_eq(
        12,
        spin.lock(|s| *s),
        LOCKS,
        "a spin lock must keep what was written",
    )?;
    ensure_eq(
        11,
        mutex.lock(|m| *m),
        LOCKS,
        "a mutex must keep what was written",
    )
}

const SHARE: &str = "sync.share";

/// A shared value dereferences to what was shared, clones point at the same value, and the
/// value is dropped exactly once, when the last handle is.
///
/// Must run from a context that may sleep.
pub fn share<S: Share>(share: &S) -> Outcome {
    /// Counts its own drops in a shared counter.
    struct Tracked<P: core::ops::Deref<Target = AtomicU32>> {
        value: u32,
        drops: P,
    }
    impl<P: core::ops::Deref<Target = AtomicU32>> Drop for Tracked<P> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }
    let rule = "sharing a value must succeed";
    let drops = share
        .share(AtomicU32::new(0))
        .map_err(|(e, _)| ConformanceFailure::new(SHARE, rule).error(e.kind()))?;
    let a = share
        .share(Tracked {
            value: 7,
            drops: drops.clone(),
        })
        .map_err(|(e, _)| ConformanceFailure::new(SHARE, rule).error(e.kind()))?;
    ensure_eq(
        7,
        u64::from(a.value),
        SHARE,
        "a shared value must dereference to what was shared",
    )?;
    let b = a.clone();
    ensure(
        core::ptr::eq(&*a, &*b),
        SHARE,
        "clones must point at the same value",
    )?;
    drop(a);
    ensure_eq(
        0,
        u64::from(drops.load(Ordering::Relaxed)),
        SHARE,
        "the value must live while a handle does",
    )?;
    drop(b);
    ensure_eq(
        1,
        u64::from(drops.load(Ordering::Relaxed)),
        SHARE,
        "the value must be dropped once, with the last handle",
    )
}

// ---------------------------------------------------------------------------------------------
// PCI and interrupts
// ---------------------------------------------------------------------------------------------

const PCI: &str = "pci.config";

/// Configuration space agrees with [`Pci::ids`], refuses misaligned and out-of-range
/// accesses, and [`Pci::set_bus_master`] drives Command bit 2 (restored afterwards);
/// malformed vector requests and BAR indexes are refused without allocating anything.
///
/// Safe on a real device before it is set up. Must run from a context that may sleep.
pub fn pci_config<P: Pci>(pci: &P) -> Outcome {
    let ids = pci.ids();
    let r = "a configuration read must succeed";
    ensure_eq(
        u64::from(ids.vendor),
        u64::from(ok(pci.config_read16(0x00), PCI, r)?),
        PCI,
        "the vendor ID must match offset 0x00",
    )?;
    ensure_eq(
        u64::from(ids.device),
        u64::from(ok(pci.config_read16(0x02), PCI, r)?),
        PCI,
        "the device ID must match offset 0x02",
    )?;
    let id32 = ok(pci.config_read32(0x00), PCI, r)?;
    ensure_eq(
        u64::from(ids.vendor) | (u64::from(ids.device) << 16),
        u64::from(id32),
        PCI,
        "a 32-bit read must combine vendor and device, little-endian",
    )?;
    let class_rev = ok(pci.config_read32(0x08), PCI, r)?;
    ensure_eq(
        u64::from(ids.class),
        u64::from(class_rev >> 8),
        PCI,
        "the class code must match offsets 0x09..0x0b",
    )?;
    ensure_eq(
        u64::from(ids.revision),
        u64::from(ok(pci.config_read8(0x08), PCI, r)?),
        PCI,
        "the revision must match offset 0x08",
    )?;
    ensure_eq(
        u64::from(ids.subsystem_vendor),
        u64::from(ok(pci.config_read16(0x2c), PCI, r)?),
        PCI,
        "the subsystem vendor must match offset 0x2c",
    )?;
    ensure_eq(
        u64::from(ids.subsystem_device),
        u64::from(ok(pci.config_read16(0x2e), PCI, r)?),
        PCI,
        "the subsystem ID must match offset 0x2e",
    )?;

    let oor = ErrorKind::OutOfRange;
    expect_err(
        pci.config_read16(0x01),
        oor,
        PCI,
        "a misaligned 16-bit read must be refused",
    )?;
    expect_err(
        pci.config_read32(0x02),
        oor,
        PCI,
        "a misaligned 32-bit read must be refused",
    )?;
    expect_err(
        pci.config_write16(0x05, 0),
        oor,
        PCI,
        "a misaligned 16-bit write must be refused",
    )?;
    expect_err(
        pci.config_write32(0x06, 0),
        oor,
        PCI,
        "a misaligned 32-bit write must be refused",
    )?;
    expect_err(
        pci.config_read8(CONFIG_SPACE_LEN),
        oor,
        PCI,
        "a read past configuration space must be refused",
    )?;
    expect_err(
        pci.config_read32(usize::MAX & !3),
        oor,
        PCI,
        "an offset near usize::MAX must be refused",
    )?;
    expect_err(
        pci.config_write8(CONFIG_SPACE_LEN, 0),
        oor,
        PCI,
        "a write past configuration space must be refused",
    )?;

    const MASTER: u16 = 1 << 2;
    let cmd = ok(pci.config_read16(0x04), PCI, r)?;
    let restore = cmd & MASTER != 0;
    let mut result = (|| {
        ok(
            pci.set_bus_master(true),
            PCI,
            "turning bus mastering on must succeed",
        )?;
        ensure(
            ok(pci.config_read16(0x04), PCI, r)? & MASTER != 0,
            PCI,
            "bus mastering on must set Command bit 2",
        )?;
        ok(
            pci.set_bus_master(false),
            PCI,
            "turning bus mastering off must succeed",
        )?;
        ensure(
            ok(pci.config_read16(0x04), PCI, r)? & MASTER == 0,
            PCI,
            "bus mastering off must clear Command bit 2",
        )
    })();
    if let Err(e) = pci.set_bus_master(restore) {
        result = result.and(Err(ConformanceFailure::new(
            PCI,
            "restoring bus mastering must succeed",
        )
        .error(e.kind())));
    }
    result?;

    expect_err(pci.map_bar(6), oor, PCI, "BAR index 6 must be refused")?;
    ensure_eq(0, pci.bar_len(6), PCI, "BAR 6 must have no length")?;
    let good = VectorRequest {
        min: 1,
        max: 1,
        kinds: IrqKinds::ALL,
        pre_vectors: 0,
    };
    for (bad, rule) in [
        (
            VectorRequest { min: 0, ..good },
            "a vector request with min 0 must be refused",
        ),
        (
            VectorRequest {
                min: 2,
                max: 1,
                ..good
            },
            "a vector request with min > max must be refused",
        ),
        (
            VectorRequest {
                kinds: IrqKinds::NONE,
                ..good
            },
            "a vector request with no kinds must be refused",
        ),
        (
            VectorRequest {
                pre_vectors: 2,
                ..good
            },
            "a vector request with pre_vectors > max must be refused",
        ),
    ] {
        expect_err(pci.alloc_irq_vectors(&bad), oor, PCI, rule)?;
    }
    Ok(())
}

const VECTORS: &str = "pci.vectors";

/// Allocates vectors for `request` and checks what came back against the request and the
/// fallback rules, and that a second allocation is refused as busy. Returns the vectors for
/// [`irq_delivery`].
///
/// Must run from a context that may sleep.
pub fn pci_vectors<P: Pci>(
    pci: &P,
    request: &VectorRequest,
) -> Result<P::Vectors, ConformanceFailure> {
    let v = ok(
        pci.alloc_irq_vectors(request),
        VECTORS,
        "a valid vector request must succeed",
    )?;
    let n = v.count();
    if n < request.min || n > request.max {
        return Err(
            ConformanceFailure::new(VECTORS, "the vector count must be within min..=max")
                .values(u64::from(request.max), u64::from(n)),
        );
    }
    ensure(
        request.kinds.contains(v.kind()),
        VECTORS,
        "the vector kind must be one that was asked for",
    )?;
    match v.kind() {
        IrqKind::MsiX => {}
        IrqKind::Msi => ensure(
            n.is_power_of_two() && n <= 32,
            VECTORS,
            "MSI must give a power of two, at most 32",
        )?,
        IrqKind::Intx => ensure_eq(
            1,
            u64::from(n),
            VECTORS,
            "INTx must give exactly one vector",
        )?,
    }
    expect_err(
        pci.alloc_irq_vectors(request),
        ErrorKind::Busy,
        VECTORS,
        "a second allocation must be refused as busy",
    )?;
    Ok(v)
}

const IRQ: &str = "irq.delivery";

/// Timing for checks that wait for an asynchronous event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// The longest an event may take to show up.
    pub timeout: Duration,
    /// How long to keep watching after an event, to catch duplicates, and how long an event
    /// that must not happen is waited for.
    pub settle: Duration,
}

impl Timing {
    /// Generous defaults for real hardware under emulation: 1 s timeout, 20 ms settle.
    pub const DEFAULT: Self = Self {
        timeout: Duration::from_secs(1),
        settle: Duration::from_millis(20),
    };
}

/// Counts calls; what the kit registers as an interrupt and work handler.
struct Counter {
    calls: AtomicU32,
    last_vector: AtomicU32,
}

impl Counter {
    const fn new() -> Self {
        Self {
            calls: AtomicU32::new(0),
            last_vector: AtomicU32::new(u32::MAX),
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl IrqHandler for Counter {
    fn handle(&self, vector: u16) -> IrqReturn {
        self.last_vector.store(u32::from(vector), Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        IrqReturn::Handled
    }
}

impl WorkHandler for Counter {
    fn run(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// Waits until `calls` reaches `want`, then for `settle` more, and checks it is exactly
/// `want`.
fn exactly<C: Clock>(
    clock: &C,
    timing: Timing,
    calls: &dyn Fn() -> u32,
    want: u32,
    pump: &mut dyn FnMut(),
    check: &'static str,
    rule: &'static str,
) -> Outcome {
    let interval =
        Duration::from_nanos(timing.settle.as_nanos() / 10).min(Duration::from_millis(1));
    let waited = Deadline::after(clock, timing.timeout).poll(clock, interval, || {
        pump();
        Ok::<_, ErrorKind>((calls() >= want).then_some(()))
    });
    if waited.is_err() {
        return Err(
            ConformanceFailure::new(check, rule).values(u64::from(want), u64::from(calls()))
        );
    }
    let settle = Deadline::after(clock, timing.settle);
    while !settle.expired(clock) {
        pump();
        clock.sleep(interval.min(settle.remaining(clock)));
    }
    pump();
    ensure_eq(u64::from(want), u64::from(calls()), check, rule)
}

/// Interrupt delivery on `vector`: registration rules, a raised vector reaching its handler
/// exactly once with its own number, no delivery while disabled, the held-back interrupt
/// delivered once after enable, and a dropped registration freeing the vector.
///
/// `raise` makes the device (or the platform's model of it) raise a vector; `pump` gives a
/// platform that delivers from a polling loop the chance to (a no-op where interrupts arrive
/// by themselves). Must run from a context that may sleep.
pub fn irq_delivery<V, C>(
    vectors: &V,
    clock: &C,
    vector: u16,
    timing: Timing,
    raise: &mut dyn FnMut(u16),
    pump: &mut dyn FnMut(),
) -> Outcome
where
    V: IrqVectors,
    C: Clock,
{
    ensure(
        vector < vectors.count(),
        IRQ,
        "the vector under test must have been allocated",
    )?;
    match vectors.register(vectors.count(), Counter::new()) {
        Err((e, _)) => ensure(
            e.kind() == ErrorKind::OutOfRange,
            IRQ,
            "registering past count() must be refused as out of range",
        )?,
        Ok(_) => {
            return Err(ConformanceFailure::new(
                IRQ,
                "registering past count() must be refused",
            ))
        }
    }
    let reg = vectors.register(vector, Counter::new()).map_err(|(e, _)| {
        ConformanceFailure::new(IRQ, "registering a handler must succeed").error(e.kind())
    })?;
    ensure_eq(
        u64::from(vector),
        u64::from(reg.vector()),
        IRQ,
        "the registration must be on the vector asked for",
    )?;
    match vectors.register(vector, Counter::new()) {
        Err((e, _)) => ensure(
            e.kind() == ErrorKind::Busy,
            IRQ,
            "a second handler on a vector must be refused as busy",
        )?,
        Ok(_) => {
            return Err(ConformanceFailure::new(
                IRQ,
                "a second handler on a vector must be refused",
            ))
        }
    }

    let h = reg.handler();
    let base = h.calls();
    raise(vector);
    exactly(
        clock,
        timing,
        &|| h.calls(),
        base.saturating_add(1),
        pump,
        IRQ,
        "a raised vector must reach its handler exactly once",
    )?;
    ensure_eq(
        u64::from(vector),
        u64::from(h.last_vector.load(Ordering::SeqCst)),
        IRQ,
        "the handler must be told its vector",
    )?;

    reg.disable();
    raise(vector);
    pump();
    clock.sleep(timing.settle);
    pump();
    let held = h.calls();
    reg.enable();
    ensure_eq(
        u64::from(base.saturating_add(1)),
        u64::from(held),
        IRQ,
        "a disabled vector must not reach its handler",
    )?;
    exactly(
        clock,
        timing,
        &|| h.calls(),
        base.saturating_add(2),
        pump,
        IRQ,
        "an interrupt held back by disable must be delivered once after enable",
    )?;

    reg.synchronize();
    drop(reg);
    let again = vectors.register(vector, Counter::new()).map_err(|(e, _)| {
        ConformanceFailure::new(
            IRQ,
            "a vector must be free again once its registration is dropped",
        )
        .error(e.kind())
    })?;
    drop(again);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Deferred work
// ---------------------------------------------------------------------------------------------

const WORK: &str = "work";

/// Deferred work: a scheduled item runs exactly as often as `schedule` said it became
/// pending, a delayed item does not run early, and cancelling a pending item stops it.
///
/// `pump` gives the platform's workers a chance to run (a no-op where they run on their
/// own). Must run from a context that may sleep.
pub fn work<W, C>(wq: &W, clock: &C, timing: Timing, pump: &mut dyn FnMut()) -> Outcome
where
    W: Workqueue,
    C: Clock,
{
    let item = wq.new_work(Counter::new()).map_err(|(e, _)| {
        ConformanceFailure::new(WORK, "creating a work item must succeed").error(e.kind())
    })?;
    let h = item.handler();

    ensure(
        item.schedule_after(Duration::from_secs(3600)),
        WORK,
        "scheduling an idle item must make it pending",
    )?;
    ensure(
        !item.schedule(),
        WORK,
        "scheduling a pending item must report it was already pending",
    )?;
    ensure(
        item.cancel_sync(),
        WORK,
        "cancelling a pending item must report it was pending",
    )?;
    exactly(
        clock,
        timing,
        &|| h.calls(),
        0,
        pump,
        WORK,
        "a cancelled item must not run",
    )?;
    ensure(
        !item.cancel_sync(),
        WORK,
        "cancelling an idle item must report nothing was pending",
    )?;

    let mut want = 0u32;
    for _ in 0..2 {
        if item.schedule() {
            want = want.saturating_add(1);
        }
    }
    ensure(
        want >= 1,
        WORK,
        "scheduling an idle item must make it pending",
    )?;
    exactly(
        clock,
        timing,
        &|| h.calls(),
        want,
        pump,
        WORK,
        "an item must run once per time it became pending",
    )?;

    let delay = Duration::from_millis(5);
    let start = clock.now();
    ensure(
        item.schedule_after(delay),
        WORK,
        "scheduling an idle item must make it pending",
    )?;
    pump();
    if h.calls() != want && clock.now().saturating_duration_since(start) < delay {
        return Err(ConformanceFailure::new(
            WORK,
            "a delayed item must not run before its delay",
        ));
    }
    exactly(
        clock,
        timing,
        &|| h.calls(),
        want.saturating_add(1),
        pump,
        WORK,
        "a delayed item must run once",
    )?;
    let took = clock.now().saturating_duration_since(start);
    if took < delay {
        return Err(
            ConformanceFailure::new(WORK, "a delayed item must not run before its delay")
                .values(delay.as_nanos(), took.as_nanos()),
        );
    }
    item.cancel_sync();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Block
// ---------------------------------------------------------------------------------------------

const BLOCK: &str = "block.queues";

/// A block handler that refuses every request.
struct Refuse;

impl BlockHandler for Refuse {
    fn queue_rq(&self, _request: &BlockRequest<'_>, _last: bool) -> Result<(), BlockStatus> {
        Err(BlockStatus::IoError)
    }

    fn commit_rqs(&self, _hwq: HwQueue) {}

    fn timeout(&self, _hwq: HwQueue, _tag: Tag) -> TimeoutAction {
        TimeoutAction::ResetTimer
    }
}

/// A geometry that passes [`DiskGeometry::check`]: 512-byte blocks, 1 MiB, PRP-style limits.
pub const SAMPLE_GEOMETRY: DiskGeometry = DiskGeometry {
    logical_block_size: 512,
    physical_block_size: 4096,
    capacity: 2048,
    max_transfer: 128 * 1024,
    max_segments: 32,
    max_segment_size: 4096,
    virt_boundary_mask: 4095,
    dma_alignment_mask: 3,
    discard: None,
    max_write_zeroes_blocks: 0,
    write_cache: true,
    fua: true,
};

/// Hardware queues: malformed shapes are refused with the handler handed back, the shape is
/// kept, completing a request that is not in flight is refused and ends nothing, and a
/// malformed disk geometry is refused. Adds no disk.
///
/// Must run from a context that may sleep.
pub fn block_queues<B: Block>(block: &B) -> Outcome {
    let oor = ErrorKind::OutOfRange;
    for (bad, rule) in [
        (
            QueueConfig {
                hw_queues: 0,
                depth: 4,
            },
            "zero hardware queues must be refused",
        ),
        (
            QueueConfig {
                hw_queues: 1,
                depth: 0,
            },
            "a depth of zero must be refused",
        ),
    ] {
        match block.alloc_queues(bad, Refuse) {
            Err((e, _)) => ensure(e.kind() == oor, BLOCK, rule)?,
            Ok(_) => return Err(ConformanceFailure::new(BLOCK, rule)),
        }
    }
    let config = QueueConfig {
        hw_queues: 2,
        depth: 4,
    };
    let queues = block.alloc_queues(config, Refuse).map_err(|(e, _)| {
        ConformanceFailure::new(BLOCK, "creating hardware queues must succeed").error(e.kind())
    })?;
    ensure(
        queues.config() == config,
        BLOCK,
        "the queues must keep their shape",
    )?;
    for (hwq, tag, rule) in [
        (2, 0, "completing on a queue out of range must be refused"),
        (0, 4, "completing a tag out of range must be refused"),
        (1, 3, "completing a tag not in flight must be refused"),
    ] {
        expect_err(
            queues.complete(HwQueue(hwq), Tag(tag), BlockStatus::Ok),
            oor,
            BLOCK,
            rule,
        )?;
    }
    let bad = DiskGeometry {
        logical_block_size: 1000,
        ..SAMPLE_GEOMETRY
    };
    expect_err(
        block.add_disk(&queues, DiskId(1), &bad),
        oor,
        BLOCK,
        "a malformed geometry must be refused",
    )?;
    Ok(())
}

const RESET: &str = "block.reset";

/// The shape [`block_reset`] creates: three hardware queues, four tags each.
const RESET_SHAPE: QueueConfig = QueueConfig {
    hw_queues: 3,
    depth: 4,
};

/// What a controller reset does to idle queues (no disk, no request): quiescing twice is
/// undone by one resume and resuming running queues changes nothing, requeueing a request
/// that is not in flight is refused and ends nothing, and `set_hw_queues` refuses counts
/// out of range and quiesced queues but, on idle queues, goes down to one queue in service
/// and back up without calling `on_stuck`.
///
/// `timing.timeout` bounds each change. Must run from a context that may sleep.
pub fn block_reset<B: Block>(block: &B, timing: Timing) -> Outcome {
    let queues = block.alloc_queues(RESET_SHAPE, Refuse).map_err(|(e, _)| {
        ConformanceFailure::new(RESET, "creating hardware queues must succeed").error(e.kind())
    })?;
    let outcome = reset_idle(&queues, timing);
    // Leave the queues running whatever failed, so dropping them cannot wait on dispatch.
    queues.resume();
    outcome
}

fn reset_idle<Q: BlockQueues>(queues: &Q, timing: Timing) -> Outcome {
    let oor = ErrorKind::OutOfRange;
    let calls = Cell::new(0u32);
    let mut on_stuck = || calls.set(calls.get().saturating_add(1));
    let created = RESET_SHAPE.hw_queues;
    in_service(
        queues,
        created,
        "new queues must have every hardware queue in service",
    )?;

    for (count, rule) in [
        (0, "a change to zero hardware queues must be refused"),
        (
            created.saturating_add(1),
            "a change to more hardware queues than created must be refused",
        ),
    ] {
        expect_err(
            queues.set_hw_queues(count, timing.timeout, &mut on_stuck),
            oor,
            RESET,
            rule,
        )?;
    }
    in_service(queues, created, "a refused change must change nothing")?;

    for (hwq, tag, rule) in [
        (
            created,
            0,
            "requeueing on a queue out of range must be refused",
        ),
        (
            0,
            RESET_SHAPE.depth,
            "requeueing a tag out of range must be refused",
        ),
        (1, 2, "requeueing a tag not in flight must be refused"),
    ] {
        expect_err(queues.requeue(HwQueue(hwq), Tag(tag)), oor, RESET, rule)?;
    }

    queues.quiesce();
    queues.quiesce();
    expect_err(
        queues.requeue(HwQueue(0), Tag(0)),
        oor,
        RESET,
        "requeueing a tag not in flight must be refused while quiesced too",
    )?;
    expect_err(
        queues.set_hw_queues(1, timing.timeout, &mut on_stuck),
        ErrorKind::Busy,
        RESET,
        "changing the hardware queues of quiesced queues must be refused as busy",
    )?;
    in_service(queues, created, "a refused change must change nothing")?;
    queues.resume();

    let steps = [
        (
            1,
            "after two quiesces and one resume, dispatch must run: a change to one queue \
             must succeed",
        ),
        (1, "a change to the count in service must succeed"),
        (
            created,
            "a change back up to the created count must succeed",
        ),
    ];
    let mut from = created;
    for (count, rule) in steps {
        let change = ok(
            queues.set_hw_queues(count, timing.timeout, &mut on_stuck),
            RESET,
            rule,
        )?;
        ensure(
            change
                == HwQueueChange {
                    from,
                    to: count,
                    stuck: false,
                },
            RESET,
            "a change of idle queues must report the old and new counts and no stuck wait",
        )?;
        in_service(queues, count, "a change must put `count` queues in service")?;
        from = count;
    }
    ensure_eq(
        0,
        u64::from(calls.get()),
        RESET,
        "a change of idle queues must not call on_stuck",
    )?;
    ensure(
        queues.config() == RESET_SHAPE,
        RESET,
        "config() must keep the shape the queues were created with",
    )?;

    queues.resume();
    queues.quiesce();
    queues.resume();
    ok(
        queues.set_hw_queues(created, timing.timeout, &mut on_stuck),
        RESET,
        "resuming running queues must change nothing: one quiesce and one resume later, \
         dispatch must run",
    )?;
    Ok(())
}

fn in_service<Q: BlockQueues>(queues: &Q, want: u16, rule: &'static str) -> Outcome {
    ensure_eq(
        u64::from(want),
        u64::from(queues.hw_queues_in_service()),
        RESET,
        rule,
    )
}

const REQUESTS: &str = "block.reset_requests";

/// The shape [`block_reset_requests`] creates.
const REQUESTS_SHAPE: QueueConfig = QueueConfig {
    hw_queues: 2,
    depth: 4,
};

/// The disk [`block_reset_requests`] adds, with [`SAMPLE_GEOMETRY`].
const PROBE_DISK: DiskId = DiskId(1);

/// The most requests a [`BlockProbe`] holds at once.
const PROBE_SLOTS: usize = 8;

/// A free [`BlockProbe`] slot: no request has hardware queue and tag `0xffff`, as both are
/// below a `u16` count.
const FREE: u32 = u32::MAX;

/// The handler [`block_reset_requests`] registers: it accepts every request, never completes
/// one by itself, and remembers which are in flight. Platforms meet it only in the type of
/// their `issue` closure.
#[derive(Debug)]
pub struct BlockProbe {
    accepted: AtomicU32,
    slots: [AtomicU32; PROBE_SLOTS],
}

impl BlockProbe {
    const fn new() -> Self {
        Self {
            accepted: AtomicU32::new(0),
            slots: [const { AtomicU32::new(FREE) }; PROBE_SLOTS],
        }
    }

    fn accepted(&self) -> u32 {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The requests it holds, in slot order.
    fn held(&self) -> impl Iterator<Item = (HwQueue, Tag)> + '_ {
        self.slots.iter().filter_map(|s| {
            let v = s.load(Ordering::SeqCst);
            // CAST: the halves of a value `pack` made from two u16.
            (v != FREE).then_some((HwQueue((v >> 16) as u16), Tag(v as u16)))
        })
    }

    /// Forgets a request the kit ended or handed back.
    fn forget(&self, hwq: HwQueue, tag: Tag) {
        let code = pack(hwq, tag);
        for s in &self.slots {
            if s.compare_exchange(code, FREE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// A request's hardware queue and tag in one slot value.
fn pack(hwq: HwQueue, tag: Tag) -> u32 {
    (u32::from(hwq.0) << 16) | u32::from(tag.0)
}

impl BlockHandler for BlockProbe {
    fn queue_rq(&self, request: &BlockRequest<'_>, _last: bool) -> Result<(), BlockStatus> {
        let code = pack(request.hwq, request.tag);
        for s in &self.slots {
            if s.compare_exchange(FREE, code, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                self.accepted.fetch_add(1, Ordering::SeqCst);
                return Ok(());
            }
        }
        Err(BlockStatus::IoError)
    }

    fn commit_rqs(&self, _hwq: HwQueue) {}

    fn timeout(&self, _hwq: HwQueue, _tag: Tag) -> TimeoutAction {
        TimeoutAction::ResetTimer
    }
}

/// How [`block_reset_requests`] asks the platform to send one request for a disk to the
/// queues `Q`, on a hardware queue if the platform can choose.
pub type Issue<'a, Q> = dyn FnMut(&Q, DiskId, HwQueue) + 'a;

/// Requests through a controller reset, on two hardware queues of four tags and one disk
/// ([`SAMPLE_GEOMETRY`]): a request requeued while quiesced and one issued meanwhile reach
/// the handler only after resume, once each; a requeued request is no longer in flight;
/// `set_hw_queues` with a request stuck past its bound calls `on_stuck` exactly once, a
/// request requeued from there comes back on a queue still in service, and one failed from
/// there does not come back.
///
/// `issue` makes the platform's block layer send the queues one request for the disk (a
/// read of one block will do), on the given hardware queue if the platform can choose; it
/// need not wait for it to arrive. `pump` gives a platform that dispatches from a polling
/// loop the chance to. Must run from a context that may sleep; takes about ten times
/// `timing.settle` when the platform dispatches at once.
pub fn block_reset_requests<B, C>(
    block: &B,
    clock: &C,
    timing: Timing,
    issue: &mut Issue<'_, B::Queues<BlockProbe>>,
    pump: &mut dyn FnMut(),
) -> Outcome
where
    B: Block,
    C: Clock,
{
    let queues = block
        .alloc_queues(REQUESTS_SHAPE, BlockProbe::new())
        .map_err(|(e, _)| {
            ConformanceFailure::new(REQUESTS, "creating hardware queues must succeed")
                .error(e.kind())
        })?;
    let disk = ok(
        block.add_disk(&queues, PROBE_DISK, &SAMPLE_GEOMETRY),
        REQUESTS,
        "adding a disk with a valid geometry must succeed",
    )?;
    let outcome = reset_requests(&queues, clock, timing, issue, pump);
    // Whatever failed: what waits fails with the disk, what is in flight the kit ends.
    disk.mark_dead();
    queues.resume();
    for sweep in 0..2 {
        if sweep > 0 {
            clock.sleep(timing.settle);
        }
        pump();
        for (hwq, tag) in queues.handler().held() {
            queues.handler().forget(hwq, tag);
            // An error here is already reported, or the request was ended meanwhile.
            let _ = queues.complete(hwq, tag, BlockStatus::IoError);
        }
    }
    drop(disk);
    outcome
}

fn reset_requests<Q, C>(
    queues: &Q,
    clock: &C,
    timing: Timing,
    issue: &mut Issue<'_, Q>,
    pump: &mut dyn FnMut(),
) -> Outcome
where
    Q: BlockQueues<Handler = BlockProbe>,
    C: Clock,
{
    let oor = ErrorKind::OutOfRange;
    let probe = queues.handler();
    let accepted = || probe.accepted();

    issue(queues, PROBE_DISK, HwQueue(1));
    exactly(
        clock,
        timing,
        &accepted,
        1,
        pump,
        REQUESTS,
        "an issued request must reach the handler exactly once",
    )?;
    let (hwq, tag) = probe.held().next().ok_or(ConformanceFailure::new(
        REQUESTS,
        "the request the handler accepted must be in flight",
    ))?;
    queues.quiesce();
    ok(
        queues.requeue(hwq, tag),
        REQUESTS,
        "requeueing a request in flight must succeed",
    )?;
    probe.forget(hwq, tag);
    expect_err(
        queues.requeue(hwq, tag),
        oor,
        REQUESTS,
        "a requeued request is not in flight: requeueing it again must be refused",
    )?;
    expect_err(
        queues.complete(hwq, tag, BlockStatus::Ok),
        oor,
        REQUESTS,
        "a requeued request is not in flight: completing it must be refused",
    )?;
    issue(queues, PROBE_DISK, HwQueue(0));
    exactly(
        clock,
        timing,
        &accepted,
        1,
        pump,
        REQUESTS,
        "quiesced queues must dispatch nothing, requeued or new",
    )?;
    queues.resume();
    exactly(
        clock,
        timing,
        &accepted,
        3,
        pump,
        REQUESTS,
        "after resume, the requeued request and the one that waited must each be \
         dispatched once",
    )?;
    for (hwq, tag) in probe.held() {
        probe.forget(hwq, tag);
        ok(
            queues.complete(hwq, tag, BlockStatus::Ok),
            REQUESTS,
            "completing a dispatched request must succeed",
        )?;
    }

    issue(queues, PROBE_DISK, HwQueue(1));
    exactly(
        clock,
        timing,
        &accepted,
        4,
        pump,
        REQUESTS,
        "an issued request must reach the handler exactly once",
    )?;
    let calls = Cell::new(0u32);
    let refused = Cell::new(None);
    let mut requeue_all = || {
        calls.set(calls.get().saturating_add(1));
        for (hwq, tag) in probe.held() {
            probe.forget(hwq, tag);
            if let Err(e) = queues.requeue(hwq, tag) {
                refused.set(Some(e.kind()));
            }
        }
    };
    let change = ok(
        queues.set_hw_queues(1, timing.settle, &mut requeue_all),
        REQUESTS,
        "a change whose on_stuck requeues what is in flight must succeed",
    )?;
    stuck_change(change, 2, 1, calls.get(), refused.get())?;
    exactly(
        clock,
        timing,
        &accepted,
        5,
        pump,
        REQUESTS,
        "a request requeued from on_stuck must be dispatched again once",
    )?;
    ensure(
        probe.held().all(|(hwq, _)| hwq.0 < 1),
        REQUESTS,
        "requests must only be dispatched on hardware queues in service",
    )?;

    calls.set(0);
    let mut fail_all = || {
        calls.set(calls.get().saturating_add(1));
        for (hwq, tag) in probe.held() {
            probe.forget(hwq, tag);
            if let Err(e) = queues.complete(hwq, tag, BlockStatus::IoError) {
                refused.set(Some(e.kind()));
            }
        }
    };
    let change = ok(
        queues.set_hw_queues(2, timing.settle, &mut fail_all),
        REQUESTS,
        "a change whose on_stuck fails what is in flight must succeed",
    )?;
    stuck_change(change, 1, 2, calls.get(), refused.get())?;
    exactly(
        clock,
        timing,
        &accepted,
        5,
        pump,
        REQUESTS,
        "a request failed from on_stuck must not be dispatched again",
    )?;
    ensure_eq(
        2,
        u64::from(queues.hw_queues_in_service()),
        REQUESTS,
        "a change must put `count` queues in service",
    )
}

/// Checks what a change that had to call `on_stuck` reports.
fn stuck_change(
    change: HwQueueChange,
    from: u16,
    to: u16,
    calls: u32,
    refused: Option<ErrorKind>,
) -> Outcome {
    ensure(
        change
            == HwQueueChange {
                from,
                to,
                stuck: true,
            },
        REQUESTS,
        "a change with a request in flight past the bound must report the counts and that it \
         was stuck",
    )?;
    ensure_eq(
        1,
        u64::from(calls),
        REQUESTS,
        "on_stuck must be called exactly once",
    )?;
    match refused {
        Some(kind) => Err(ConformanceFailure::new(
            REQUESTS,
            "ending a request in flight from on_stuck must succeed",
        )
        .error(kind)),
        None => Ok(()),
    }
}
