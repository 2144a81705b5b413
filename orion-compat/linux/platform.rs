// SPDX-License-Identifier: GPL-2.0

//! The Orion driver API on the Linux 7.3 kernel crate: DMA-coherent memory, the clock, and
//! the platform bundle the core's `Controller` is driven through.

use crate::error::LinuxError;
use crate::mmio::Bar0;
use crate::orion::controller::{PageBuf, Platform};
use crate::orion_compat::dma::{BusAddr, CoherentMem, Direction, Dma, DmaMapping, Fence, Segment};
use crate::orion_compat::time::{Clock, Duration, Instant};
use core::marker::PhantomData;
use kernel::{
    alloc::KBox,
    device::{Bound, Device},
    dma::Coherent,
    error::code,
    prelude::*,
    sync::barrier::{dma_mb, Full, Read, Write},
    time::{self, delay, Delta, Monotonic},
};

/// The Linux platform for a device bound for `'b`.
pub(crate) struct LinuxPlatform<'b>(PhantomData<&'b ()>);

impl<'b> Platform for LinuxPlatform<'b> {
    type Mmio = Bar0<'b>;
    type Dma = LinuxDma<'b>;
    type Clock = LinuxClock;
    type Scratch = KBox<PageBuf>;
}

/// DMA allocations for one bound device.
pub(crate) struct LinuxDma<'b> {
    dev: &'b Device<Bound>,
}

impl<'b> LinuxDma<'b> {
    /// DMA for `dev`, whose DMA mask has been set.
    pub(crate) fn new(dev: &'b Device<Bound>) -> Self {
        Self { dev }
    }
}

/// A DMA-coherent buffer.
///
/// # Invariants
///
/// `mem` is a live coherent allocation of `mem.len()` bytes; its CPU address is valid for
/// reads and writes of that many bytes for as long as `mem` lives.
pub(crate) struct LinuxCoherent {
    mem: Coherent<[u8]>,
}

impl LinuxCoherent {
    /// The CPU address of byte `offset`, if `len` bytes from there lie inside the buffer.
    fn at(&self, offset: usize, len: usize) -> Result<*mut u8, LinuxError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.mem.len() => {
                Ok(self.mem.as_mut_ptr().cast::<u8>().wrapping_add(offset))
            }
            _ => Err(LinuxError(code::EINVAL)),
        }
    }

    fn aligned(&self, offset: usize, len: usize) -> Result<*mut u8, LinuxError> {
        if offset % len != 0 {
            return Err(LinuxError(code::EINVAL));
        }
        self.at(offset, len)
    }
}

impl CoherentMem for LinuxCoherent {
    type Error = LinuxError;

    fn bus_addr(&self) -> BusAddr {
        BusAddr(self.mem.dma_address())
    }

    fn len(&self) -> usize {
        self.mem.len()
    }

    fn read32(&self, offset: usize) -> Result<u32, LinuxError> {
        let p = self.aligned(offset, 4)?;
        // SAFETY: `p` is 4-byte aligned and the 4 bytes lie inside the live allocation (checked
        // by `aligned`, type invariant). Volatile: the device may write it at any time.
        Ok(u32::from_le(unsafe {
            core::ptr::read_volatile(p.cast::<u32>())
        }))
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), LinuxError> {
        let p = self.aligned(offset, 4)?;
        // SAFETY: as in `read32`; the memory is shared with the device, never referenced.
        unsafe { core::ptr::write_volatile(p.cast::<u32>(), value.to_le()) };
        Ok(())
    }

    fn read64(&self, offset: usize) -> Result<u64, LinuxError> {
        let p = self.aligned(offset, 8)?;
        // SAFETY: as in `read32`, for 8 aligned bytes.
        Ok(u64::from_le(unsafe {
            core::ptr::read_volatile(p.cast::<u64>())
        }))
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), LinuxError> {
        let p = self.aligned(offset, 8)?;
        // SAFETY: as in `read64`.
        unsafe { core::ptr::write_volatile(p.cast::<u64>(), value.to_le()) };
        Ok(())
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), LinuxError> {
        let p = self.at(offset, buf.len())?;
        // Whole aligned 8-byte words at a time (a queue entry is 16 or 64 bytes at an aligned
        // offset), bytes for anything else.
        if p.cast::<u64>().is_aligned() && buf.len() % 8 == 0 {
            for (i, chunk) in buf.chunks_exact_mut(8).enumerate() {
                // SAFETY: `p + 8 * i` is 8-byte aligned and its 8 bytes lie inside the live
                // allocation (checked by `at` for the whole range, type invariant).
                let w = unsafe { core::ptr::read_volatile(p.add(8 * i).cast::<u64>()) };
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            return Ok(());
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: `p + i` lies inside the live allocation (checked by `at` for the whole
            // range, type invariant).
            *b = unsafe { core::ptr::read_volatile(p.add(i)) };
        }
        Ok(())
    }

    fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), LinuxError> {
        let p = self.at(offset, data.len())?;
        if p.cast::<u64>().is_aligned() && data.len() % 8 == 0 {
            for (i, chunk) in data.chunks_exact(8).enumerate() {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                // SAFETY: as in `read_bytes`, for an aligned word.
                unsafe {
                    core::ptr::write_volatile(p.add(8 * i).cast::<u64>(), u64::from_ne_bytes(w))
                };
            }
            return Ok(());
        }
        for (i, b) in data.iter().enumerate() {
            // SAFETY: as in `read_bytes`.
            unsafe { core::ptr::write_volatile(p.add(i), *b) };
        }
        Ok(())
    }

    fn zero(&self, offset: usize, len: usize) -> Result<(), LinuxError> {
        let p = self.at(offset, len)?;
        for i in 0..len {
            // SAFETY: as in `read_bytes`.
            unsafe { core::ptr::write_volatile(p.add(i), 0) };
        }
        Ok(())
    }

    fn fence(&self, kind: Fence) {
        match kind {
            Fence::Read => dma_mb(Read),
            Fence::Write => dma_mb(Write),
            Fence::Full => dma_mb(Full),
        }
    }
}

/// Streaming mappings are not implemented on Linux yet (block I/O, issue #4); this type is
/// never constructed.
pub(crate) struct NoMapping(core::convert::Infallible);

impl DmaMapping for NoMapping {
    fn segments(&self) -> &[Segment] {
        match self.0 {}
    }

    fn direction(&self) -> Direction {
        match self.0 {}
    }
}

/// The buffer type of streaming mappings; like [`NoMapping`], never constructed yet.
pub(crate) struct NoBuf(core::convert::Infallible);

impl AsRef<[u8]> for NoBuf {
    fn as_ref(&self) -> &[u8] {
        match self.0 {}
    }
}

impl AsMut<[u8]> for NoBuf {
    fn as_mut(&mut self) -> &mut [u8] {
        match self.0 {}
    }
}

impl Dma for LinuxDma<'_> {
    type Error = LinuxError;
    type Coherent = LinuxCoherent;
    type Buf = NoBuf;
    type Mapping = NoMapping;

    fn alloc_coherent(&self, len: usize, align: usize) -> Result<LinuxCoherent, LinuxError> {
        if len == 0 || !align.is_power_of_two() {
            return Err(LinuxError(code::EINVAL));
        }
        // dma_alloc_coherent aligns to the allocation's page order: asking for at least
        // `align` bytes (rounded to a power of two) gives at least `align` alignment.
        let size = len.max(align).next_power_of_two();
        let mem = Coherent::<u8>::zeroed_slice(self.dev, size, GFP_KERNEL)?;
        if mem.dma_address() % (align as u64) != 0 {
            return Err(LinuxError(code::ENOMEM));
        }
        // INVARIANT: a live allocation of `size` bytes.
        Ok(LinuxCoherent { mem })
    }

    fn map(&self, buf: NoBuf, _dir: Direction) -> Result<NoMapping, (LinuxError, NoBuf)> {
        Err((LinuxError(code::EOPNOTSUPP), buf))
    }

    fn unmap(&self, mapping: NoMapping) -> NoBuf {
        match mapping.0 {}
    }
}

/// The monotonic clock, counted from when the driver's clock was created.
pub(crate) struct LinuxClock {
    base: time::Instant<Monotonic>,
}

impl LinuxClock {
    /// A clock starting now.
    pub(crate) fn new() -> Self {
        Self {
            base: time::Instant::<Monotonic>::now(),
        }
    }
}

impl Clock for LinuxClock {
    fn now(&self) -> Instant {
        let d = time::Instant::<Monotonic>::now() - self.base;
        // CAST: monotonic time since `base` is never negative.
        Instant::from_nanos(d.as_nanos() as u64)
    }

    fn delay_us(&self, us: u32) {
        // udelay is loop-calibrated and ran short under emulation (the conformance kit caught
        // 50 us lasting 35 us under QEMU TCG); top it up against the monotonic clock so the
        // "at least" in the contract holds.
        let start = time::Instant::<Monotonic>::now();
        let want = i64::from(us) * 1000;
        delay::udelay(Delta::from_micros(i64::from(us)));
        while (time::Instant::<Monotonic>::now() - start).as_nanos() < want {
            core::hint::spin_loop();
        }
    }

    fn sleep(&self, d: Duration) {
        // CAST: sleeps the core asks for are bounded by CAP.TO and the admin timeout, far
        // below i64::MAX nanoseconds; saturate anyway.
        let ns = i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        delay::fsleep(Delta::from_nanos(ns));
    }
}
