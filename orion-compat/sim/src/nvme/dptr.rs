//! Data pointers: PRP entries and lists (NVMe Base 2.0 §4.1.1) and SGLs (§4.1.2), resolved
//! into the host memory segments a command transfers, and the device's DMA through them.

use super::status::{generic, Status};
use crate::pci::BusMaster;
use crate::DmaSpace;
use orion_compat::dma::BusAddr;

/// Every SGL walk stops after this many descriptors (Invalid Number of SGL Descriptors), so
/// a segment chain that loops back on itself ends.
pub(super) const MAX_SGL_DESCRIPTORS: u64 = 1 << 16;

/// The device's access to host memory.
#[derive(Clone, Debug)]
pub(super) struct Bus {
    pub(super) space: DmaSpace,
    pub(super) bus_master: Option<BusMaster>,
}

/// A DMA access that did not happen: bus mastering off, an address overflow, or a fault the
/// [`DmaSpace`] recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct DmaError;

impl Bus {
    fn allowed(&self) -> Result<(), DmaError> {
        match &self.bus_master {
            Some(bm) if !bm.enabled() => Err(DmaError),
            _ => Ok(()),
        }
    }

    /// The device reads `buf.len()` bytes at `addr`.
    pub(super) fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), DmaError> {
        self.allowed()?;
        if buf.is_empty() {
            return Ok(());
        }
        self.space.read(BusAddr(addr), buf).map_err(|_| DmaError)
    }

    /// The device writes `data` at `addr`.
    pub(super) fn write(&self, addr: u64, data: &[u8]) -> Result<(), DmaError> {
        self.allowed()?;
        if data.is_empty() {
            return Ok(());
        }
        self.space.write(BusAddr(addr), data).map_err(|_| DmaError)
    }

    pub(super) fn read_u32(&self, addr: u64) -> Result<u32, DmaError> {
        let mut b = [0; 4];
        self.read(addr, &mut b).map(|()| u32::from_le_bytes(b))
    }

    pub(super) fn write_u32(&self, addr: u64, v: u32) -> Result<(), DmaError> {
        self.write(addr, &v.to_le_bytes())
    }
}

/// One physically contiguous piece of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Seg {
    pub(super) addr: u64,
    pub(super) len: u64,
}

/// Resolves PRP1/PRP2 for a transfer of `len` bytes with memory pages of `page` bytes (NVMe
/// Base 2.0 §4.1.1).
///
/// PRP1 may carry any dword-aligned offset; a PRP2 data pointer and every PRP list entry
/// must be page aligned (else PRP Offset Invalid). When more than two pages are involved,
/// PRP2 is a PRP list pointer (qword aligned, possibly offset into its page); the list runs
/// to the end of that page, and the last entry of a list page points to the next list page
/// whenever more than one entry is still needed. List reads that fault give Data Transfer
/// Error.
pub(super) fn prp_segments(
    bus: &Bus,
    page: u64,
    prp1: u64,
    prp2: u64,
    len: u64,
) -> Result<Vec<Seg>, Status> {
    let mut segs = Vec::new();
    if len == 0 {
        return Ok(segs);
    }
    let mask = page - 1;
    if prp1 & 3 != 0 {
        return Err(generic::PRP_OFFSET_INVALID);
    }
    let first = len.min(page - (prp1 & mask));
    segs.push(Seg {
        addr: prp1,
        len: first,
    });
    let mut rem = len - first;
    if rem == 0 {
        return Ok(segs);
    }
    if rem <= page {
        if prp2 & mask != 0 {
            return Err(generic::PRP_OFFSET_INVALID);
        }
        segs.push(Seg {
            addr: prp2,
            len: rem,
        });
        return Ok(segs);
    }
    if prp2 & 7 != 0 {
        return Err(generic::PRP_OFFSET_INVALID);
    }
    let mut list = prp2;
    let mut slots = (page - (prp2 & mask)) / 8;
    // Each pass either consumes at least one data page or follows a chain pointer into a
    // fresh list page of at least 512 slots, which then consumes data; so this ends.
    while rem > 0 {
        let needed = rem.div_ceil(page);
        let chained = needed > slots;
        let data_entries = if chained { slots - 1 } else { needed };
        let n_read = if chained { slots } else { needed };
        // CAST: n_read <= slots <= page / 8 <= 2^12, so it fits a usize.
        let mut raw = vec![0u8; (n_read * 8) as usize];
        bus.read(list, &mut raw)
            .map_err(|DmaError| generic::DATA_TRANSFER_ERROR)?;
        let entries: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect();
        for &e in entries
            .iter()
            .take(usize::try_from(data_entries).unwrap_or(0))
        {
            if e & mask != 0 {
                return Err(generic::PRP_OFFSET_INVALID);
            }
            let n = rem.min(page);
            segs.push(Seg { addr: e, len: n });
            rem -= n;
        }
        if chained {
            let next = entries.last().copied().unwrap_or(0);
            if next & mask != 0 {
                return Err(generic::PRP_OFFSET_INVALID);
            }
            list = next;
            slots = page / 8;
        }
    }
    Ok(segs)
}

/// SGL descriptor types (NVMe Base 2.0 §4.1.2.1, Figure 89).
const SGL_DATA_BLOCK: u8 = 0x0;
const SGL_SEGMENT: u8 = 0x2;
const SGL_LAST_SEGMENT: u8 = 0x3;

#[derive(Clone, Copy, Debug)]
struct Desc {
    addr: u64,
    len: u32,
    kind: u8,
    subtype: u8,
}

fn parse_desc(b: &[u8]) -> Desc {
    let mut a = [0; 8];
    let mut l = [0; 4];
    if b.len() >= 16 {
        a.copy_from_slice(&b[0..8]);
        l.copy_from_slice(&b[8..12]);
    }
    let id = b.get(15).copied().unwrap_or(0xff);
    Desc {
        addr: u64::from_le_bytes(a),
        len: u32::from_le_bytes(l),
        kind: id >> 4,
        subtype: id & 0xf,
    }
}

/// Resolves an SGL (the first descriptor `sgl1` from the command) for a transfer of `len`
/// bytes (NVMe Base 2.0 §4.1.2).
///
/// Supported descriptors are Data Block, Segment and Last Segment with the Address subtype;
/// any other type or subtype is SGL Descriptor Type Invalid. A Segment or Last Segment
/// descriptor may only be the last descriptor of a segment, a Last Segment's segment may not
/// chain further, a Segment's segment must chain, and a segment's length must be a non-zero
/// multiple of 16 (else Invalid SGL Segment Descriptor). The data blocks must add up to
/// exactly `len` (else Data SGL Length Invalid: the model does not set SGLS bit 20). More
/// than [`MAX_SGL_DESCRIPTORS`] descriptors is Invalid Number of SGL Descriptors.
pub(super) fn sgl_segments(bus: &Bus, sgl1: &[u8], len: u64) -> Result<Vec<Seg>, Status> {
    let mut segs = Vec::new();
    let mut total: u64 = 0;
    let mut push = |segs: &mut Vec<Seg>, d: &Desc| -> Result<(), Status> {
        total = total
            .checked_add(u64::from(d.len))
            .ok_or(generic::DATA_SGL_LENGTH_INVALID)?;
        if total > len {
            return Err(generic::DATA_SGL_LENGTH_INVALID);
        }
        if d.len > 0 {
            segs.push(Seg {
                addr: d.addr,
                len: u64::from(d.len),
            });
        }
        Ok(())
    };
    let first = parse_desc(sgl1);
    if first.subtype != 0 {
        return Err(generic::SGL_TYPE_INVALID);
    }
    let mut next = match first.kind {
        SGL_DATA_BLOCK => {
            push(&mut segs, &first)?;
            None
        }
        SGL_SEGMENT | SGL_LAST_SEGMENT => Some(first),
        _ => return Err(generic::SGL_TYPE_INVALID),
    };
    let mut count: u64 = 1;
    while let Some(seg) = next.take() {
        let last = seg.kind == SGL_LAST_SEGMENT;
        if seg.len == 0 || seg.len % 16 != 0 {
            return Err(generic::INVALID_SGL_SEGMENT);
        }
        let n = u64::from(seg.len / 16);
        count = count.saturating_add(n);
        if count > MAX_SGL_DESCRIPTORS {
            return Err(generic::INVALID_SGL_COUNT);
        }
        // Read the segment a page of descriptors at a time.
        let mut i: u64 = 0;
        while i < n {
            let chunk = (n - i).min(256);
            // CAST: chunk <= 256.
            let mut raw = vec![0u8; (chunk * 16) as usize];
            let addr = seg
                .addr
                .checked_add(i * 16)
                .ok_or(generic::DATA_TRANSFER_ERROR)?;
            bus.read(addr, &mut raw)
                .map_err(|DmaError| generic::DATA_TRANSFER_ERROR)?;
            for (j, b) in raw.chunks_exact(16).enumerate() {
                let d = parse_desc(b);
                // CAST: j < 256.
                let is_last = i + j as u64 + 1 == n;
                if d.subtype != 0 {
                    return Err(generic::SGL_TYPE_INVALID);
                }
                match d.kind {
                    SGL_DATA_BLOCK => push(&mut segs, &d)?,
                    SGL_SEGMENT | SGL_LAST_SEGMENT => {
                        if !is_last || last {
                            return Err(generic::INVALID_SGL_SEGMENT);
                        }
                        next = Some(d);
                    }
                    _ => return Err(generic::SGL_TYPE_INVALID),
                }
            }
            i += chunk;
        }
        if !last && next.is_none() {
            return Err(generic::INVALID_SGL_SEGMENT);
        }
    }
    if total != len {
        return Err(generic::DATA_SGL_LENGTH_INVALID);
    }
    Ok(segs)
}

/// A position in a list of segments, through which data moves in order.
#[derive(Debug)]
pub(super) struct Xfer<'a> {
    bus: &'a Bus,
    segs: Vec<Seg>,
    idx: usize,
    off: u64,
}

impl<'a> Xfer<'a> {
    pub(super) fn new(bus: &'a Bus, segs: Vec<Seg>) -> Self {
        Self {
            bus,
            segs,
            idx: 0,
            off: 0,
        }
    }

    /// Runs `f(addr, range)` over the next `n` bytes, piece by piece.
    fn step(
        &mut self,
        n: usize,
        mut f: impl FnMut(u64, std::ops::Range<usize>) -> Result<(), DmaError>,
    ) -> Result<(), DmaError> {
        let mut done = 0usize;
        while done < n {
            let seg = *self.segs.get(self.idx).ok_or(DmaError)?;
            let avail = seg.len.saturating_sub(self.off);
            if avail == 0 {
                // Segments are never empty; this only guards the loop.
                self.idx += 1;
                self.off = 0;
                continue;
            }
            // CAST: the piece is at most n - done, a usize.
            let piece = avail.min((n - done) as u64) as usize;
            let addr = seg.addr.checked_add(self.off).ok_or(DmaError)?;
            f(addr, done..done + piece)?;
            done += piece;
            self.off += piece as u64;
            if self.off == seg.len {
                self.idx += 1;
                self.off = 0;
            }
        }
        Ok(())
    }

    /// The device writes `data` to the host at the current position.
    pub(super) fn put(&mut self, data: &[u8]) -> Result<(), DmaError> {
        let bus = self.bus;
        self.step(data.len(), |addr, r| bus.write(addr, &data[r]))
    }

    /// The device reads `buf.len()` bytes from the host at the current position.
    pub(super) fn get(&mut self, buf: &mut [u8]) -> Result<(), DmaError> {
        let bus = self.bus;
        self.step(buf.len(), |addr, r| bus.read(addr, &mut buf[r]))
    }
}
