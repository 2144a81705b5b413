//! DMA on the host: memory with fake but stable bus addresses, and the device's view of it.
//!
//! A [`DmaSpace`] is the simulated bus. [`SimDma`] allocates coherent blocks and maps
//! streaming buffers into it; a device model reads and writes it by bus address (fetching
//! SQEs and PRP lists, posting CQEs) through [`DmaSpace::read`] and [`DmaSpace::write`].
//!
//! Addresses start at 4 GiB, are never reused, and every region is followed by an unmapped
//! guard page, so a device access past the end of a buffer, into a freed buffer or in the
//! wrong direction is recorded as a [`DmaFault`] instead of silently reaching other memory.

use crate::clock::lock;
use crate::context;
use orion_compat::dma::{
    BusAddr, CoherentMem, Direction, Dma, DmaMapping, Fence, Segment, MAX_COHERENT_ALIGN,
};
use orion_compat::ErrorKind;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// The bus page size the sim lays regions out in.
pub const BUS_PAGE: u64 = 4096;

/// The first bus address handed out.
pub const BUS_BASE: u64 = 1 << 32;

/// Which way a device access went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaAccess {
    /// The device read memory.
    Read,
    /// The device wrote memory.
    Write,
}

/// Why a device access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultReason {
    /// Some byte of the access is not inside one live region (never mapped, freed, or past
    /// the end of a buffer).
    Unmapped,
    /// The region is mapped for the other direction (the device wrote a to-device buffer or
    /// read a from-device one).
    Direction,
}

/// A device access that the simulated IOMMU refused. Recorded in the [`DmaSpace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    /// The first bus address of the access.
    pub addr: BusAddr,
    /// Its length in bytes.
    pub len: usize,
    /// Its direction.
    pub access: DmaAccess,
    /// Why it failed.
    pub reason: FaultReason,
}

/// What a live region of the bus is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// A coherent block.
    Coherent,
    /// One segment of a streaming mapping, in its direction.
    Streaming(Direction),
}

/// A live region, as [`DmaSpace::region_at`] describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// Its first bus address.
    pub base: BusAddr,
    /// Its length in bytes.
    pub len: usize,
    /// What it is.
    pub kind: RegionKind,
}

type Backing = Arc<Mutex<Vec<u8>>>;

#[derive(Clone)]
struct Region {
    len: usize,
    mem: Backing,
    mem_off: usize,
    kind: RegionKind,
}

#[derive(Default)]
struct Space {
    regions: BTreeMap<u64, Region>,
    next: u64,
    faults: Vec<DmaFault>,
}

/// The simulated bus: every live DMA region by bus address. Cloning gives another handle to
/// the same bus.
#[derive(Clone, Default)]
pub struct DmaSpace {
    inner: Arc<Mutex<Space>>,
}

impl std::fmt::Debug for DmaSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.inner);
        f.debug_struct("DmaSpace")
            .field("regions", &s.regions.len())
            .field("faults", &s.faults.len())
            .finish()
    }
}

fn round_up(v: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    Some(v.checked_add(mask)? & !mask)
}

impl DmaSpace {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Places a region of `len` bytes whose first byte sits `first_offset` bytes into a
    /// block aligned to `align`, and returns its bus address.
    fn insert(
        &self,
        len: usize,
        align: u64,
        first_offset: u64,
        mem: Backing,
        mem_off: usize,
        kind: RegionKind,
    ) -> Option<BusAddr> {
        let mut s = lock(&self.inner);
        let next = s.next.max(BUS_BASE);
        let block = round_up(next, align.max(BUS_PAGE))?;
        let base = block.checked_add(first_offset)?;
        let end = base.checked_add(len as u64)?;
        s.next = round_up(end, BUS_PAGE)?.checked_add(BUS_PAGE)?;
        s.regions.insert(
            base,
            Region {
                len,
                mem,
                mem_off,
                kind,
            },
        );
        Some(BusAddr(base))
    }

    fn remove(&self, base: BusAddr) {
        lock(&self.inner).regions.remove(&base.0);
    }

    /// The live region containing `addr`.
    pub fn region_at(&self, addr: BusAddr) -> Option<RegionInfo> {
        let s = lock(&self.inner);
        let (base, r) = s.regions.range(..=addr.0).next_back()?;
        (addr.0 - base < r.len as u64).then_some(RegionInfo {
            base: BusAddr(*base),
            len: r.len,
            kind: r.kind,
        })
    }

    /// How many regions are live (coherent blocks plus mapped segments): 0 once everything
    /// was freed and unmapped.
    pub fn live_regions(&self) -> usize {
        lock(&self.inner).regions.len()
    }

    /// The faults recorded so far.
    pub fn faults(&self) -> Vec<DmaFault> {
        lock(&self.inner).faults.clone()
    }

    /// The faults recorded so far, clearing the record.
    pub fn take_faults(&self) -> Vec<DmaFault> {
        std::mem::take(&mut lock(&self.inner).faults)
    }

    /// Finds the backing of `len` bytes at `addr`, or records a fault.
    fn resolve(
        &self,
        addr: BusAddr,
        len: usize,
        access: DmaAccess,
    ) -> Result<(Backing, usize), DmaFault> {
        let mut s = lock(&self.inner);
        let fault = |reason| DmaFault {
            addr,
            len,
            access,
            reason,
        };
        let found = s
            .regions
            .range(..=addr.0)
            .next_back()
            .filter(|(base, r)| {
                let off = addr.0 - **base;
                off.checked_add(len as u64)
                    .is_some_and(|end| end <= r.len as u64)
            })
            .map(|(base, r)| (addr.0 - *base, r.clone()));
        let result = match found {
            None => Err(fault(FaultReason::Unmapped)),
            Some((off, r)) => {
                let allowed = match (r.kind, access) {
                    (RegionKind::Coherent, _) => true,
                    (RegionKind::Streaming(d), DmaAccess::Read) => d.device_reads(),
                    (RegionKind::Streaming(d), DmaAccess::Write) => d.device_writes(),
                };
                if allowed {
                    // CAST: `off < r.len`, which is a usize.
                    Ok((r.mem, r.mem_off + off as usize))
                } else {
                    Err(fault(FaultReason::Direction))
                }
            }
        };
        if let Err(f) = result {
            s.faults.push(f);
        }
        result
    }

    /// The device reads `buf.len()` bytes at `addr`.
    ///
    /// The access must lie inside one live region the device may read; otherwise nothing is
    /// read and the fault is recorded and returned.
    pub fn read(&self, addr: BusAddr, buf: &mut [u8]) -> Result<(), DmaFault> {
        let (mem, off) = self.resolve(addr, buf.len(), DmaAccess::Read)?;
        buf.copy_from_slice(&lock(&mem)[off..off + buf.len()]);
        Ok(())
    }

    /// The device writes `data` at `addr`.
    ///
    /// The access must lie inside one live region the device may write; otherwise nothing is
    /// written and the fault is recorded and returned.
    pub fn write(&self, addr: BusAddr, data: &[u8]) -> Result<(), DmaFault> {
        let (mem, off) = self.resolve(addr, data.len(), DmaAccess::Write)?;
        lock(&mem)[off..off + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// The device reads a little-endian `u32`.
    pub fn read32(&self, addr: BusAddr) -> Result<u32, DmaFault> {
        let mut b = [0; 4];
        self.read(addr, &mut b).map(|()| u32::from_le_bytes(b))
    }

    /// The device reads a little-endian `u64`.
    pub fn read64(&self, addr: BusAddr) -> Result<u64, DmaFault> {
        let mut b = [0; 8];
        self.read(addr, &mut b).map(|()| u64::from_le_bytes(b))
    }

    /// The device writes a little-endian `u32`.
    pub fn write32(&self, addr: BusAddr, value: u32) -> Result<(), DmaFault> {
        self.write(addr, &value.to_le_bytes())
    }

    /// The device writes a little-endian `u64`.
    pub fn write64(&self, addr: BusAddr, value: u64) -> Result<(), DmaFault> {
        self.write(addr, &value.to_le_bytes())
    }
}

/// How [`SimDma::map`] cuts a buffer into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLayout {
    /// The size of the pieces, a power of two; each piece gets its own bus page(s), not
    /// adjacent to the others, as a buffer scattered over physical memory is.
    pub page: usize,
    /// How far into its first page the buffer starts, less than `page`.
    pub first_offset: usize,
}

impl MapLayout {
    /// Pieces of 4 KiB, page-aligned: the usual shape of a block request.
    pub const PAGES: Self = Self {
        page: 4096,
        first_offset: 0,
    };

    /// One contiguous segment for the whole buffer.
    pub const CONTIGUOUS: Self = Self {
        page: 1 << 40,
        first_offset: 0,
    };
}

#[derive(Debug)]
struct DmaConfig {
    layout: MapLayout,
}

/// The sim's [`Dma`]: coherent blocks and streaming mappings in a [`DmaSpace`]. Cloning gives
/// another handle to the same allocator.
#[derive(Clone, Debug)]
pub struct SimDma {
    space: DmaSpace,
    config: Arc<Mutex<DmaConfig>>,
    fail_alloc: Arc<AtomicU32>,
    fail_map: Arc<AtomicU32>,
}

impl SimDma {
    /// An allocator on `space`, mapping with [`MapLayout::PAGES`].
    pub fn new(space: DmaSpace) -> Self {
        Self {
            space,
            config: Arc::new(Mutex::new(DmaConfig {
                layout: MapLayout::PAGES,
            })),
            fail_alloc: Arc::default(),
            fail_map: Arc::default(),
        }
    }

    /// The bus this allocator places memory on.
    pub fn space(&self) -> &DmaSpace {
        &self.space
    }

    /// Changes how later mappings are cut into segments.
    ///
    /// # Panics
    ///
    /// If `layout.page` is not a power of two or `first_offset` is not below it.
    pub fn set_map_layout(&self, layout: MapLayout) {
        assert!(layout.page.is_power_of_two() && layout.first_offset < layout.page);
        lock(&self.config).layout = layout;
    }

    /// Makes the next `n` coherent allocations fail with [`ErrorKind::NoMemory`].
    pub fn fail_next_allocs(&self, n: u32) {
        self.fail_alloc.store(n, Ordering::SeqCst);
    }

    /// Makes the next `n` mappings fail with [`ErrorKind::NoMemory`].
    pub fn fail_next_maps(&self, n: u32) {
        self.fail_map.store(n, Ordering::SeqCst);
    }
}

fn take_one(n: &AtomicU32) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// A coherent block in a [`DmaSpace`].
#[derive(Debug)]
pub struct SimCoherent {
    space: DmaSpace,
    mem: Backing,
    addr: BusAddr,
    len: usize,
}

impl SimCoherent {
    fn range(
        &self,
        offset: usize,
        n: usize,
        align: usize,
    ) -> Result<std::ops::Range<usize>, ErrorKind> {
        let end = offset.checked_add(n).ok_or(ErrorKind::OutOfRange)?;
        if end > self.len || offset % align != 0 {
            return Err(ErrorKind::OutOfRange);
        }
        Ok(offset..end)
    }

    fn read<const N: usize>(&self, offset: usize) -> Result<[u8; N], ErrorKind> {
        let r = self.range(offset, N, N)?;
        let mut out = [0; N];
        out.copy_from_slice(&lock(&self.mem)[r]);
        Ok(out)
    }

    fn write<const N: usize>(&self, offset: usize, v: [u8; N]) -> Result<(), ErrorKind> {
        let r = self.range(offset, N, N)?;
        lock(&self.mem)[r].copy_from_slice(&v);
        Ok(())
    }
}

impl Drop for SimCoherent {
    fn drop(&mut self) {
        context::might_sleep("dropping coherent DMA memory");
        self.space.remove(self.addr);
    }
}

impl CoherentMem for SimCoherent {
    type Error = ErrorKind;

    fn bus_addr(&self) -> BusAddr {
        self.addr
    }

    fn len(&self) -> usize {
        self.len
    }

    fn read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        self.read::<4>(offset).map(u32::from_le_bytes)
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        self.write(offset, value.to_le_bytes())
    }

    fn read64(&self, offset: usize) -> Result<u64, ErrorKind> {
        self.read::<8>(offset).map(u64::from_le_bytes)
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), ErrorKind> {
        self.write(offset, value.to_le_bytes())
    }

    fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), ErrorKind> {
        let r = self.range(offset, buf.len(), 1)?;
        buf.copy_from_slice(&lock(&self.mem)[r]);
        Ok(())
    }

    fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), ErrorKind> {
        let r = self.range(offset, data.len(), 1)?;
        lock(&self.mem)[r].copy_from_slice(data);
        Ok(())
    }

    fn zero(&self, offset: usize, len: usize) -> Result<(), ErrorKind> {
        let r = self.range(offset, len, 1)?;
        lock(&self.mem)[r].fill(0);
        Ok(())
    }

    fn fence(&self, _kind: Fence) {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// A streaming mapping in a [`DmaSpace`]; owns the buffer until [`Dma::unmap`].
#[derive(Debug)]
pub struct SimMapping {
    space: DmaSpace,
    mem: Backing,
    segments: Vec<Segment>,
    dir: Direction,
    live: bool,
}

impl SimMapping {
    fn release(&mut self) {
        if std::mem::take(&mut self.live) {
            for s in &self.segments {
                self.space.remove(s.addr);
            }
        }
    }
}

impl Drop for SimMapping {
    fn drop(&mut self) {
        self.release();
    }
}

impl DmaMapping for SimMapping {
    fn segments(&self) -> &[Segment] {
        &self.segments
    }

    fn direction(&self) -> Direction {
        self.dir
    }
}

impl Dma for SimDma {
    type Error = ErrorKind;
    type Coherent = SimCoherent;
    type Buf = Vec<u8>;
    type Mapping = SimMapping;

    fn alloc_coherent(&self, len: usize, align: usize) -> Result<SimCoherent, ErrorKind> {
        context::might_sleep("Dma::alloc_coherent");
        if len == 0 || !align.is_power_of_two() {
            return Err(ErrorKind::OutOfRange);
        }
        if take_one(&self.fail_alloc) || align > MAX_COHERENT_ALIGN.max(1 << 30) {
            return Err(ErrorKind::NoMemory);
        }
        let mem: Backing = Arc::new(Mutex::new(vec![0; len]));
        let addr = self
            .space
            .insert(len, align as u64, 0, mem.clone(), 0, RegionKind::Coherent)
            .ok_or(ErrorKind::NoMemory)?;
        Ok(SimCoherent {
            space: self.space.clone(),
            mem,
            addr,
            len,
        })
    }

    fn map(&self, buf: Vec<u8>, dir: Direction) -> Result<SimMapping, (ErrorKind, Vec<u8>)> {
        if buf.is_empty() {
            return Err((ErrorKind::OutOfRange, buf));
        }
        if take_one(&self.fail_map) {
            return Err((ErrorKind::NoMemory, buf));
        }
        let layout = lock(&self.config).layout;
        let len = buf.len();
        let mem: Backing = Arc::new(Mutex::new(buf));
        let mut m = SimMapping {
            space: self.space.clone(),
            mem: mem.clone(),
            segments: Vec::new(),
            dir,
            live: true,
        };
        let mut off = 0usize;
        let mut first_offset = layout.first_offset;
        while off < len {
            let piece = (layout.page - first_offset).min(len - off);
            let placed = self.space.insert(
                piece,
                layout.page as u64,
                first_offset as u64,
                mem.clone(),
                off,
                RegionKind::Streaming(dir),
            );
            let (Some(addr), Ok(seg_len)) = (placed, u32::try_from(piece)) else {
                m.release();
                let buf = std::mem::take(&mut *lock(&mem));
                return Err((ErrorKind::NoMemory, buf));
            };
            m.segments.push(Segment { addr, len: seg_len });
            off += piece;
            first_offset = 0;
        }
        Ok(m)
    }

    fn unmap(&self, mut mapping: SimMapping) -> Vec<u8> {
        mapping.release();
        std::mem::take(&mut *lock(&mapping.mem))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_sees_coherent_memory_by_bus_address() {
        let space = DmaSpace::new();
        let dma = SimDma::new(space.clone());
        let q = dma.alloc_coherent(4096, 4096).unwrap();
        q.write32(8, 0xfeed_f00d).unwrap();
        assert_eq!(space.read32(BusAddr(q.bus_addr().0 + 8)), Ok(0xfeed_f00d));
        space.write64(BusAddr(q.bus_addr().0 + 16), 7).unwrap();
        assert_eq!(q.read64(16), Ok(7));
        let info = space.region_at(BusAddr(q.bus_addr().0 + 4095)).unwrap();
        assert_eq!(
            (info.base, info.len, info.kind),
            (q.bus_addr(), 4096, RegionKind::Coherent)
        );

        // One byte past the end is the guard page.
        let past = BusAddr(q.bus_addr().0 + 4096);
        assert_eq!(
            space.read32(past).unwrap_err().reason,
            FaultReason::Unmapped
        );
        assert!(space.region_at(past).is_none());
        let freed = q.bus_addr();
        drop(q);
        assert_eq!(
            space.read32(freed).unwrap_err().reason,
            FaultReason::Unmapped
        );
        assert_eq!(space.take_faults().len(), 2);
        assert_eq!(space.live_regions(), 0);
    }

    #[test]
    fn addresses_are_never_reused() {
        let dma = SimDma::new(DmaSpace::new());
        let a = dma.alloc_coherent(64, 64).unwrap().bus_addr();
        let b = dma.alloc_coherent(64, 64).unwrap().bus_addr();
        assert_ne!(a, b);
        assert!(a.0 >= BUS_BASE);
    }

    #[test]
    fn streaming_segments_follow_the_layout_and_direction() {
        let space = DmaSpace::new();
        let dma = SimDma::new(space.clone());
        dma.set_map_layout(MapLayout {
            page: 4096,
            first_offset: 512,
        });
        let buf: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let m = dma.map(buf.clone(), Direction::ToDevice).unwrap();
        let lens: Vec<u32> = m.segments().iter().map(|s| s.len).collect();
        assert_eq!(lens, [3584, 4096, 2320]);
        assert_eq!(m.segments()[0].addr.0 % 4096, 512);
        assert!(m.segments()[1].addr.is_aligned(4096));
        // Pieces are not adjacent on the bus.
        assert_ne!(m.segments()[0].addr.0 + 3584, m.segments()[1].addr.0);
        let mut b = [0u8; 4];
        space.read(m.segments()[1].addr, &mut b).unwrap();
        assert_eq!(b, buf[3584..3588]);
        let f = space.write(m.segments()[0].addr, &[0]).unwrap_err();
        assert_eq!(f.reason, FaultReason::Direction);
        let back = dma.unmap(m);
        assert_eq!(back, buf);
        assert_eq!(space.live_regions(), 0);

        dma.set_map_layout(MapLayout::CONTIGUOUS);
        let m = dma.map(vec![0; 3], Direction::FromDevice).unwrap();
        space.write(m.segments()[0].addr, &[1, 2, 3]).unwrap();
        assert_eq!(
            space
                .read(m.segments()[0].addr, &mut [0])
                .unwrap_err()
                .reason,
            FaultReason::Direction
        );
        assert_eq!(dma.unmap(m), [1, 2, 3]);
    }

    #[test]
    fn failures_hand_the_buffer_back() {
        let dma = SimDma::new(DmaSpace::new());
        dma.fail_next_maps(1);
        assert_eq!(
            dma.map(vec![9], Direction::ToDevice).unwrap_err(),
            (ErrorKind::NoMemory, vec![9])
        );
        assert_eq!(
            dma.map(Vec::new(), Direction::ToDevice).unwrap_err().0,
            ErrorKind::OutOfRange
        );
        dma.fail_next_allocs(1);
        assert_eq!(dma.alloc_coherent(8, 8).unwrap_err(), ErrorKind::NoMemory);
        assert!(dma.alloc_coherent(8, 8).is_ok());
    }
}
