// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! The Orion driver API on the Linux 7.3 kernel crate: DMA-coherent memory, the clock, and
//! the platform bundle the core's `Controller` is driven through.

use crate::bindings::dma::CoherentBytes;
use crate::error::LinuxError;
use crate::mmio::{Bar0, BoundPci};
use crate::orion::controller::{Controller, Enabled, PageBuf, Platform};
use crate::orion_compat::dma::{BusAddr, CoherentMem, Direction, Dma, DmaMapping, Fence, Segment};
use crate::orion_compat::time::{Clock, Duration, Instant};
use kernel::{
    alloc::KBox,
    error::code,
    prelude::*,
    sync::{
        barrier::{dma_mb, Full, Read, Write},
        Arc,
    },
    time::{self, delay, Delta, Monotonic},
};

/// The Linux platform: what the core's `Controller` is driven through. Nothing in it borrows
/// the device: BAR0 and DMA reach it through device-managed handles that refuse with ENODEV
/// once it is unbound.
pub(crate) struct LinuxPlatform;

impl Platform for LinuxPlatform {
    type Mmio = Bar0;
    type Dma = LinuxDma;
    type Clock = LinuxClock;
    type Scratch = KBox<PageBuf>;
}

/// The controller, once brought up by the core.
pub(crate) type Ctrl = Controller<LinuxPlatform, Enabled>;

/// Prints a core type (which implements `core::fmt::Display`) through the kernel's formatting
/// macros, which use their own `Display` trait.
pub(crate) struct Show<'a, T>(pub(crate) &'a T);

impl<T: core::fmt::Display> kernel::fmt::Display for Show<'_, T> {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(self.0, f)
    }
}

/// DMA allocations for one device, while it is bound.
pub(crate) struct LinuxDma {
    dev: Arc<BoundPci>,
}

impl LinuxDma {
    /// DMA for `dev`, whose DMA mask has been set.
    pub(crate) fn new(dev: Arc<BoundPci>) -> Self {
        Self { dev }
    }
}

/// A DMA-coherent buffer.
pub(crate) struct LinuxCoherent {
    mem: CoherentBytes,
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
        Ok(u32::from_le(self.mem.read32(offset)?))
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), LinuxError> {
        Ok(self.mem.write32(offset, value.to_le())?)
    }

    fn read64(&self, offset: usize) -> Result<u64, LinuxError> {
        Ok(u64::from_le(self.mem.read64(offset)?))
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), LinuxError> {
        Ok(self.mem.write64(offset, value.to_le())?)
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), LinuxError> {
        Ok(self.mem.read_bytes(offset, buf)?)
    }

    fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), LinuxError> {
        Ok(self.mem.write_bytes(offset, data)?)
    }

    fn zero(&self, offset: usize, len: usize) -> Result<(), LinuxError> {
        Ok(self.mem.zero(offset, len)?)
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

impl Dma for LinuxDma {
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
        let mem = self
            .dev
            .with(|pdev| CoherentBytes::zeroed(pdev.as_ref(), size))??;
        if mem.dma_address() % (align as u64) != 0 {
            return Err(LinuxError(code::ENOMEM));
        }
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
