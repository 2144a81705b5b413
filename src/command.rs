//! Command identifiers and data pointers: CID allocation and validation, PRP and SGL
//! construction.

use crate::orion::spec::sgl;
use crate::orion::spec::sqe::{DsmRange, Sqe};
use zerocopy::IntoBytes;

/// Bits of a command identifier that carry the tag; the bits above carry a generation count.
pub const CID_TAG_BITS: u32 = 12;
/// The largest queue depth whose tags fit [`CID_TAG_BITS`].
pub const MAX_TAGGED_DEPTH: u32 = 1 << CID_TAG_BITS;
const GEN_MASK: u8 = 0x0f;

/// The bookkeeping of one command slot (one tag) on a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CidSlot {
    generation: u8,
    in_flight: bool,
}

/// Why a completion's command identifier was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CidError {
    /// The tag part is beyond the queue depth.
    OutOfRange(u16),
    /// No command with this tag is outstanding (a duplicate or invented completion).
    NotInFlight(u16),
    /// The tag is outstanding but under a different generation (a stale completion).
    StaleGeneration(u16),
}

/// Command identifiers for one queue: each outstanding command's CID is its tag plus a 4-bit
/// generation that changes every time the tag is reused, so a late or duplicated completion
/// for an earlier use of the tag is recognised instead of completing the wrong request.
///
/// The slot storage is provided by the caller (no allocation here).
#[derive(Debug)]
pub struct CidTable<S> {
    slots: S,
}

impl<S: AsRef<[CidSlot]> + AsMut<[CidSlot]>> CidTable<S> {
    /// Wraps `slots`, one per tag. Fails if there are more tags than fit a CID.
    pub fn new(slots: S) -> Option<Self> {
        let n = slots.as_ref().len();
        if n == 0 || n > MAX_TAGGED_DEPTH as usize {
            return None;
        }
        Some(Self { slots })
    }

    /// Marks `tag` in flight and returns the CID to put in the command, or `None` if the tag
    /// is out of range or already in flight (a caller bug: the tag allocator owns uniqueness).
    pub fn start(&mut self, tag: u16) -> Option<u16> {
        let slot = self.slots.as_mut().get_mut(usize::from(tag))?;
        if slot.in_flight {
            return None;
        }
        slot.generation = (slot.generation + 1) & GEN_MASK;
        slot.in_flight = true;
        Some((u16::from(slot.generation) << CID_TAG_BITS) | tag)
    }

    /// Validates the CID of a completion and, if it is genuine, ends the command and returns
    /// its tag. A refused CID changes nothing.
    pub fn complete(&mut self, cid: u16) -> Result<u16, CidError> {
        let tag = cid & ((1 << CID_TAG_BITS) - 1);
        // CAST: the generation is the top 4 bits of a u16.
        let generation = (cid >> CID_TAG_BITS) as u8;
        let slot = self
            .slots
            .as_mut()
            .get_mut(usize::from(tag))
            .ok_or(CidError::OutOfRange(cid))?;
        if !slot.in_flight {
            return Err(CidError::NotInFlight(cid));
        }
        if slot.generation != generation {
            return Err(CidError::StaleGeneration(cid));
        }
        slot.in_flight = false;
        Ok(tag)
    }

    /// Ends `tag` without a completion (timeout, abort, controller reset): a completion that
    /// arrives for it later will be refused as not in flight.
    pub fn cancel(&mut self, tag: u16) -> bool {
        match self.slots.as_mut().get_mut(usize::from(tag)) {
            Some(slot) if slot.in_flight => {
                slot.in_flight = false;
                true
            }
            _ => false,
        }
    }

    /// The CID `tag`'s outstanding command carries (for Abort), or `None` when the tag has
    /// no command in flight.
    pub fn cid_of(&self, tag: u16) -> Option<u16> {
        let slot = self.slots.as_ref().get(usize::from(tag))?;
        slot.in_flight
            .then_some((u16::from(slot.generation) << CID_TAG_BITS) | tag)
    }

    /// True when `tag` is in range and has no command outstanding.
    pub fn is_free(&self, tag: u16) -> bool {
        self.slots
            .as_ref()
            .get(usize::from(tag))
            .is_some_and(|s| !s.in_flight)
    }

    /// Gives back the slot storage.
    pub fn into_slots(self) -> S {
        self.slots
    }

    /// Number of commands in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.as_ref().iter().filter(|s| s.in_flight).count()
    }
}

/// One DMA segment of a data buffer, as a bus address and a length in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Bus (device-visible) address of the first byte.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// Where PRP lists and SGL segments are written: pre-allocated list pages, one memory page
/// each.
///
/// In the kernel these are DMA-coherent pages owned by the request's tag; in the simulator,
/// host memory the controller model can read.
pub trait ListPages {
    /// Number of list pages available for this command.
    fn pages(&self) -> usize;
    /// Bus address of list page `page` (page aligned).
    fn bus_addr(&self, page: usize) -> u64;
    /// Writes `bytes` at byte `offset` of list page `page` (always inside the page).
    fn write(&mut self, page: usize, offset: usize, bytes: &[u8]);
}

/// Why a segment list cannot be described with PRPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// No data, or a segment of length zero.
    Empty,
    /// The first address is not dword aligned (§4.1.1: bits 1:0 must be zero).
    Misaligned,
    /// A segment other than the first does not start on a page boundary, or one other than the
    /// last does not end on one: PRPs cannot express the gap (use an SGL or split the I/O).
    Gap(usize),
    /// More list pages would be needed than the caller provided.
    TooLong,
    /// The page size is not a power of two of at least 4 KiB.
    BadPageSize,
}

/// PRP1 and PRP2 of a command (§4.1.1), plus how many list entries were written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prps {
    /// PRP Entry 1: the first byte of data, possibly with an offset into its page.
    pub prp1: u64,
    /// PRP Entry 2: zero, the second page, or the first PRP list page.
    pub prp2: u64,
    /// Entries written to list pages (including chain pointers).
    pub list_entries: usize,
}

/// Builds the PRPs for `segs`, NVMe Base 2.0 §4.3.1, with host memory page size `page`.
///
/// PRP1 carries the first byte (any dword-aligned offset). If the data ends within PRP1's
/// page, PRP2 is zero; if it ends within the next page, PRP2 points at that page; otherwise
/// PRP2 points at a list of page addresses, and when a list page fills, its last entry points
/// at the next list page.
pub fn build_prps<L: ListPages>(
    segs: &[Segment],
    page: u64,
    list: &mut L,
) -> Result<Prps, PrpError> {
    if page < 4096 || !page.is_power_of_two() {
        return Err(PrpError::BadPageSize);
    }
    let first = segs.first().ok_or(PrpError::Empty)?;
    if first.addr & 3 != 0 {
        return Err(PrpError::Misaligned);
    }
    // Pass 1: validate and count the page entries after PRP1.
    let mut entries = 0u64;
    for (i, s) in segs.iter().enumerate() {
        if s.len == 0 {
            return Err(PrpError::Empty);
        }
        let start = s.addr;
        let end = start
            .checked_add(u64::from(s.len))
            .ok_or(PrpError::Gap(i))?;
        if i > 0 && start % page != 0 {
            return Err(PrpError::Gap(i));
        }
        if i + 1 < segs.len() && end % page != 0 {
            return Err(PrpError::Gap(i));
        }
        // Pages this segment touches; the first segment's first page is PRP1's.
        let pages = (end - 1) / page - start / page + 1;
        entries += if i == 0 { pages - 1 } else { pages };
    }
    let mut pages_iter = segs.iter().enumerate().flat_map(|(i, s)| {
        let first_page = if i == 0 {
            s.addr / page + 1
        } else {
            s.addr / page
        };
        let last_page = (s.addr + u64::from(s.len) - 1) / page;
        (first_page..=last_page).map(move |p| p * page)
    });
    match entries {
        0 => Ok(Prps {
            prp1: first.addr,
            prp2: 0,
            list_entries: 0,
        }),
        1 => Ok(Prps {
            prp1: first.addr,
            prp2: pages_iter.next().ok_or(PrpError::Empty)?,
            list_entries: 0,
        }),
        n => {
            let per_page = page / 8;
            // Every list page but the last gives its final slot to the chain pointer.
            let list_pages = if n <= per_page {
                1
            } else {
                (n - 1).div_ceil(per_page - 1)
            };
            if list_pages > list.pages() as u64 {
                return Err(PrpError::TooLong);
            }
            let mut written = 0usize;
            let mut remaining = n;
            let mut lp = 0usize;
            while remaining > 0 {
                let last_list_page = remaining <= per_page;
                let here = if last_list_page {
                    remaining
                } else {
                    per_page - 1
                };
                for idx in 0..here {
                    let addr = pages_iter.next().ok_or(PrpError::Empty)?;
                    // CAST: idx < per_page <= 2^13 on any supported page size.
                    list.write(lp, idx as usize * 8, &addr.to_le_bytes());
                    written += 1;
                }
                remaining -= here;
                if !last_list_page {
                    // CAST: as above.
                    let next = list.bus_addr(lp + 1);
                    list.write(lp, (per_page - 1) as usize * 8, &next.to_le_bytes());
                    written += 1;
                    lp += 1;
                }
            }
            Ok(Prps {
                prp1: first.addr,
                prp2: list.bus_addr(0),
                list_entries: written,
            })
        }
    }
}

/// Why a segment list cannot be described with an SGL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SglError {
    /// No data, or a segment of length zero.
    Empty,
    /// More list pages would be needed than the caller provided.
    TooLong,
    /// The page size is not a power of two of at least 4 KiB.
    BadPageSize,
}

/// Builds the SGL for `segs`, NVMe Base 2.0 §4.3.2, and returns the descriptor for the
/// command's DPTR (SGL1).
///
/// One segment is a Data Block descriptor in the command itself. More go into list pages of
/// Data Block descriptors; the command points at the first with a Last Segment descriptor when
/// one page holds them all, otherwise with a Segment descriptor, and every full page ends with
/// a (Last) Segment descriptor to the next.
pub fn build_sgl<L: ListPages>(
    segs: &[Segment],
    page: u64,
    list: &mut L,
) -> Result<sgl::Descriptor, SglError> {
    if page < 4096 || !page.is_power_of_two() {
        return Err(SglError::BadPageSize);
    }
    if segs.is_empty() || segs.iter().any(|s| s.len == 0) {
        return Err(SglError::Empty);
    }
    if let [only] = segs {
        return Ok(sgl::Descriptor::data_block(only.addr, only.len));
    }
    // CAST: page / 16 <= 2^12 for any page size the controller can select (at most 128 MiB).
    let per_page = (page / DESC as u64) as usize;
    // Descriptors for page `lp` onward, given `left` data blocks still to place.
    let pointer_to = |lp: usize, left: usize, list: &L| -> sgl::Descriptor {
        // CAST: at most per_page descriptors, which fits a u16.
        if left <= per_page {
            sgl::Descriptor::last_segment(list.bus_addr(lp), left as u16)
        } else {
            sgl::Descriptor::segment(list.bus_addr(lp), per_page as u16)
        }
    };
    let n = segs.len();
    let pages_needed = if n <= per_page {
        1
    } else {
        (n - 1).div_ceil(per_page - 1)
    };
    if pages_needed > list.pages() {
        return Err(SglError::TooLong);
    }
    let first = pointer_to(0, n, list);
    let mut left = n;
    let mut it = segs.iter();
    let mut lp = 0;
    while left > 0 {
        let last_page = left <= per_page;
        let here = if last_page { left } else { per_page - 1 };
        for idx in 0..here {
            let s = it.next().ok_or(SglError::Empty)?;
            let d = sgl::Descriptor::data_block(s.addr, s.len);
            list.write(lp, idx * DESC, d.as_bytes());
        }
        left -= here;
        if !last_page {
            let d = pointer_to(lp + 1, left, list);
            list.write(lp, (per_page - 1) * DESC, d.as_bytes());
            lp += 1;
        }
    }
    Ok(first)
}

/// Size of an SGL descriptor.
const DESC: usize = 16;

/// The block operations the driver issues as NVM commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoOp {
    /// Read (NVM Cmd Set 1.0 §3.2.4).
    Read,
    /// Write (§3.2.6).
    Write,
    /// Flush the volatile write cache (§3.2.2).
    Flush,
    /// Write Zeroes (§3.2.7), deallocating where the controller can.
    WriteZeroes,
    /// Dataset Management – Deallocate of one range (§3.2.3): discard.
    Discard,
}

/// One block request in the core's terms.
#[derive(Clone, Copy, Debug)]
pub struct IoRequest<'a> {
    /// The operation.
    pub op: IoOp,
    /// Namespace ID.
    pub nsid: u32,
    /// First logical block.
    pub lba: u64,
    /// Number of logical blocks (0 only for Flush).
    pub blocks: u32,
    /// Force Unit Access (Read/Write only).
    pub fua: bool,
    /// The data buffer's DMA segments (Read/Write only).
    pub segs: &'a [Segment],
}

/// Why a request could not be turned into a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// Block count zero (for a data command) or above 65536 (NLB is 16 bits, 0's based).
    BadLength(u32),
    /// The data pointer could not be built.
    Prp(PrpError),
    /// The data pointer could not be built as an SGL.
    Sgl(SglError),
    /// Discard needs one list page for its range.
    NoListPage,
}

/// How the data pointer of read and write commands is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataPointer {
    /// PRPs (every controller).
    Prp,
    /// SGLs, where Identify Controller SGLS says the controller supports them.
    Sgl,
}

/// Builds the NVM command for `req`. Data pointers and the discard range go into `list`,
/// whose pages belong to this request until it completes.
pub fn build_io<L: ListPages>(
    req: &IoRequest<'_>,
    page: u64,
    dptr: DataPointer,
    list: &mut L,
) -> Result<Sqe, IoError> {
    let nlb = |blocks: u32| -> Result<u16, IoError> {
        match blocks {
            // CAST: 1..=65536 minus one fits in a u16.
            1..=65536 => Ok((blocks - 1) as u16),
            _ => Err(IoError::BadLength(blocks)),
        }
    };
    let data = |sqe: Sqe, list: &mut L| -> Result<Sqe, IoError> {
        Ok(match dptr {
            DataPointer::Prp => {
                let p = build_prps(req.segs, page, list).map_err(IoError::Prp)?;
                sqe.with_prp(p.prp1, p.prp2)
            }
            DataPointer::Sgl => {
                sqe.with_sgl(build_sgl(req.segs, page, list).map_err(IoError::Sgl)?)
            }
        })
    };
    match req.op {
        IoOp::Read => {
            data(Sqe::read(req.nsid, req.lba, nlb(req.blocks)?), list).map(|s| s.with_fua(req.fua))
        }
        IoOp::Write => {
            data(Sqe::write(req.nsid, req.lba, nlb(req.blocks)?), list).map(|s| s.with_fua(req.fua))
        }
        IoOp::Flush => Ok(Sqe::flush(req.nsid)),
        IoOp::WriteZeroes => Ok(Sqe::write_zeroes(req.nsid, req.lba, nlb(req.blocks)?, true)),
        IoOp::Discard => {
            if req.blocks == 0 {
                return Err(IoError::BadLength(0));
            }
            if list.pages() == 0 {
                return Err(IoError::NoListPage);
            }
            let range = DsmRange::new(req.lba, req.blocks);
            list.write(0, 0, range.as_bytes());
            // One range (NR is 0's based); the range buffer is 16 bytes at the start of a page.
            Ok(Sqe::dsm_deallocate(req.nsid, 0).with_prp(list.bus_addr(0), 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;
    use zerocopy::FromBytes;

    #[test]
    fn cid_round_trip_and_generations() {
        let mut t = CidTable::new([CidSlot::default(); 16]).unwrap();
        let c1 = t.start(3).unwrap();
        assert_eq!(c1 & 0xfff, 3);
        assert_eq!(t.start(3), None, "tag already in flight");
        assert_eq!(t.complete(c1), Ok(3));
        assert_eq!(t.complete(c1), Err(CidError::NotInFlight(c1)), "duplicate");
        let c2 = t.start(3).unwrap();
        assert_ne!(c1, c2, "generation changes on reuse");
        assert_eq!(t.complete(c1), Err(CidError::StaleGeneration(c1)));
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.complete(c2), Ok(3));
        assert_eq!(t.complete(0x0fff), Err(CidError::OutOfRange(0x0fff)));
        assert_eq!(t.start(16), None);
        // Generations cycle through 4 bits and never break validation.
        for _ in 0..40 {
            let c = t.start(5).unwrap();
            assert_eq!(t.complete(c), Ok(5));
        }
        let c = t.start(7).unwrap();
        assert!(t.cancel(7));
        assert_eq!(t.complete(c), Err(CidError::NotInFlight(c)));
        assert!(CidTable::new(Vec::<CidSlot>::new()).is_none());
        assert!(CidTable::new(vec![CidSlot::default(); 4097]).is_none());
    }

    /// List pages in host memory, at fake bus addresses 0x1_0000_0000 + i * page.
    struct Lists {
        page: u64,
        pages: Vec<Vec<u64>>,
    }

    impl Lists {
        fn new(n: usize, page: u64) -> Self {
            Self {
                page,
                pages: vec![vec![0; (page / 8) as usize]; n],
            }
        }
    }

    impl ListPages for Lists {
        fn pages(&self) -> usize {
            self.pages.len()
        }
        fn bus_addr(&self, page: usize) -> u64 {
            0x1_0000_0000 + page as u64 * self.page
        }
        fn write(&mut self, page: usize, offset: usize, bytes: &[u8]) {
            let words = self.pages[page].as_mut_bytes();
            words[offset..offset + bytes.len()].copy_from_slice(bytes);
        }
    }

    /// Walks PRPs the way a controller does and returns the (addr, len) runs it would transfer.
    fn controller_walk(p: &Prps, total: u64, page: u64, lists: &Lists) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let first_len = (page - p.prp1 % page).min(total);
        out.push((p.prp1, first_len));
        let mut left = total - first_len;
        if left == 0 {
            return out;
        }
        if left <= page {
            out.push((p.prp2, left));
            return out;
        }
        let per = (page / 8) as usize;
        let mut lp = ((p.prp2 - 0x1_0000_0000) / page) as usize;
        let mut idx = ((p.prp2 % page) / 8) as usize;
        while left > 0 {
            let e = lists.pages[lp][idx];
            if idx == per - 1 && left > page {
                lp = ((e - 0x1_0000_0000) / page) as usize;
                idx = 0;
                continue;
            }
            let n = left.min(page);
            assert_eq!(e % page, 0, "list entries are page aligned");
            out.push((e, n));
            left -= n;
            idx += 1;
        }
        out
    }

    /// Flattens runs into byte addresses for comparison.
    fn bytes(runs: &[(u64, u64)]) -> Vec<u64> {
        runs.iter().flat_map(|&(a, n)| a..a + n).collect()
    }

    fn check(segs: &[Segment], page: u64) {
        let mut lists = Lists::new(8, page);
        let p = build_prps(segs, page, &mut lists).unwrap();
        let total: u64 = segs.iter().map(|s| u64::from(s.len)).sum();
        let want: Vec<(u64, u64)> = segs.iter().map(|s| (s.addr, u64::from(s.len))).collect();
        assert_eq!(
            bytes(&controller_walk(&p, total, page, &lists)),
            bytes(&want)
        );
    }

    #[test]
    fn prp_shapes() {
        let pg = 4096;
        // Within one page, with an offset.
        check(
            &[Segment {
                addr: 0x10_0200,
                len: 512,
            }],
            pg,
        );
        // Two pages: PRP2 is the second page.
        check(
            &[Segment {
                addr: 0x10_0e00,
                len: 1024,
            }],
            pg,
        );
        // Exactly one page at an offset spills into a second page.
        check(
            &[Segment {
                addr: 0x10_0004,
                len: 4096,
            }],
            pg,
        );
        // A list.
        check(
            &[Segment {
                addr: 0x10_0000,
                len: 5 * 4096,
            }],
            pg,
        );
        // Several segments, page-aligned joints.
        check(
            &[
                Segment {
                    addr: 0x20_0800,
                    len: 0x800,
                },
                Segment {
                    addr: 0x50_0000,
                    len: 0x3000,
                },
                Segment {
                    addr: 0x90_0000,
                    len: 0x100,
                },
            ],
            pg,
        );
        // 4 MiB + offset: 1024 entries, more than one 4 KiB list page (512 slots) holds, so
        // the list is chained.
        check(
            &[Segment {
                addr: 0x4000_0010,
                len: 4 << 20,
            }],
            pg,
        );
        // A larger host page size.
        check(
            &[Segment {
                addr: 0x4000_0010,
                len: 300 << 10,
            }],
            16384,
        );
    }

    #[test]
    fn prp_exact_chain_boundary() {
        let pg = 4096u64;
        // 1 (PRP1) + 512 entries fits one list page exactly; one more entry needs a chain.
        for extra in [511u64, 512, 513, 1022, 1023, 1024] {
            check(
                &[Segment {
                    addr: 0x8000_0000,
                    len: ((extra + 1) * pg) as u32,
                }],
                pg,
            );
        }
    }

    #[test]
    fn prp_rejects_what_it_cannot_express() {
        let mut l = Lists::new(1, 4096);
        assert_eq!(build_prps(&[], 4096, &mut l), Err(PrpError::Empty));
        assert_eq!(
            build_prps(&[Segment { addr: 2, len: 8 }], 4096, &mut l),
            Err(PrpError::Misaligned)
        );
        let gap = [
            Segment {
                addr: 0x1000,
                len: 0x800,
            },
            Segment {
                addr: 0x3000,
                len: 0x1000,
            },
        ];
        assert_eq!(build_prps(&gap, 4096, &mut l), Err(PrpError::Gap(0)));
        let gap2 = [
            Segment {
                addr: 0x1000,
                len: 0x1000,
            },
            Segment {
                addr: 0x3200,
                len: 0x1000,
            },
        ];
        assert_eq!(build_prps(&gap2, 4096, &mut l), Err(PrpError::Gap(1)));
        assert_eq!(
            build_prps(
                &[Segment {
                    addr: 0,
                    len: 4 << 20
                }],
                4096,
                &mut l
            ),
            Err(PrpError::TooLong)
        );
        assert_eq!(
            build_prps(&[Segment { addr: 0, len: 4096 }], 2048, &mut l),
            Err(PrpError::BadPageSize)
        );
        assert_eq!(
            build_prps(
                &[Segment {
                    addr: u64::MAX - 3,
                    len: 16
                }],
                4096,
                &mut l
            ),
            Err(PrpError::Gap(0))
        );
    }

    /// Walks an SGL the way a controller does (§4.3.2) and returns the data runs.
    fn sgl_walk(first: sgl::Descriptor, lists: &Lists) -> Vec<(u64, u64)> {
        use sgl::DescriptorType as T;
        let mut out = Vec::new();
        let mut cur = first;
        for _ in 0..64 {
            match cur.descriptor_type().unwrap() {
                T::DataBlock => {
                    out.push((cur.address, u64::from(cur.length())));
                    return out;
                }
                T::Segment | T::LastSegment => {
                    let count = cur.descriptor_count().unwrap() as usize;
                    let lp = ((cur.address - 0x1_0000_0000) / lists.page) as usize;
                    let bytes = lists.pages[lp].as_bytes();
                    let mut next = None;
                    for i in 0..count {
                        let d =
                            sgl::Descriptor::read_from_bytes(&bytes[i * 16..i * 16 + 16]).unwrap();
                        match d.descriptor_type().unwrap() {
                            T::DataBlock => out.push((d.address, u64::from(d.length()))),
                            T::Segment | T::LastSegment => {
                                assert_eq!(i, count - 1, "segment pointer only in the last slot");
                                assert!(
                                    cur.descriptor_type().unwrap() == T::Segment,
                                    "no pointer after Last Segment"
                                );
                                next = Some(d);
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                    }
                    match next {
                        Some(d) => cur = d,
                        None => return out,
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        panic!("SGL chain does not end");
    }

    fn check_sgl(segs: &[Segment], page: u64) {
        let mut lists = Lists::new(8, page);
        let d = build_sgl(segs, page, &mut lists).unwrap();
        let want: Vec<(u64, u64)> = segs.iter().map(|s| (s.addr, u64::from(s.len))).collect();
        assert_eq!(sgl_walk(d, &lists), want);
    }

    #[test]
    fn sgl_shapes() {
        let seg = |i: u64| Segment {
            addr: 0x10_0000 + i * 0x3333,
            len: 100 + i as u32,
        };
        for n in [1usize, 2, 255, 256, 257, 511, 600] {
            let segs: Vec<Segment> = (0..n as u64).map(seg).collect();
            check_sgl(&segs, 4096);
        }
        let mut l = Lists::new(1, 4096);
        let many: Vec<Segment> = (0..300).map(seg).collect();
        assert_eq!(build_sgl(&many, 4096, &mut l), Err(SglError::TooLong));
        assert_eq!(build_sgl(&[], 4096, &mut l), Err(SglError::Empty));
    }

    /// Segment lists as the block layer produces them for PRP-capable queues: a dword-aligned
    /// first segment, page-aligned inner joints, any last length.
    fn prp_segments(page: u64) -> impl Strategy<Value = Vec<Segment>> {
        (1usize..12, any::<u64>(), 0u64..page / 4).prop_flat_map(move |(n, seed, first_off)| {
            prop::collection::vec((1u64..6, 1u64..64, 1u32..(page as u32)), n).prop_map(
                move |parts| {
                    let mut segs = Vec::new();
                    let count = parts.len();
                    for (i, (pages, gap, tail)) in parts.into_iter().enumerate() {
                        let base = 0x1000_0000 + (seed % 4096 + i as u64 * 64 + gap) * page;
                        let start = if i == 0 { base + first_off * 4 } else { base };
                        let end = if i + 1 == count {
                            base + (pages - 1) * page + u64::from(tail)
                        } else {
                            base + pages * page
                        };
                        let end = end.max(start + 4);
                        segs.push(Segment {
                            addr: start,
                            len: (end - start) as u32,
                        });
                    }
                    segs
                },
            )
        })
    }

    proptest! {
        #[test]
        fn prp_reproduces_random_segment_lists(segs in prp_segments(4096)) {
            check(&segs, 4096);
        }

        #[test]
        fn prp_reproduces_random_segment_lists_16k(segs in prp_segments(16384)) {
            check(&segs, 16384);
        }

        #[test]
        fn sgl_reproduces_random_segment_lists(
            segs in prop::collection::vec((any::<u32>(), 1u32..1 << 20), 1..700)
        ) {
            let segs: Vec<Segment> = segs.into_iter().enumerate()
                .map(|(i, (a, len))| Segment { addr: u64::from(a) + ((i as u64) << 32), len })
                .collect();
            check_sgl(&segs, 4096);
        }

        /// Arbitrary (mostly unmappable) lists are refused or mapped exactly; never a panic.
        #[test]
        fn prp_never_panics(
            raw in prop::collection::vec((any::<u64>(), any::<u32>()), 0..8),
        ) {
            let segs: Vec<Segment> = raw.into_iter().map(|(addr, len)| Segment { addr, len }).collect();
            let mut lists = Lists::new(4, 4096);
            if let Ok(p) = build_prps(&segs, 4096, &mut lists) {
                let total: u64 = segs.iter().map(|s| u64::from(s.len)).sum();
                let want: Vec<(u64, u64)> = segs.iter().map(|s| (s.addr, u64::from(s.len))).collect();
                if total < 1 << 24 {
                    prop_assert_eq!(bytes(&controller_walk(&p, total, 4096, &lists)), bytes(&want));
                }
            }
        }
    }

    #[test]
    fn io_commands() {
        use crate::orion::spec::opcode::Nvm;
        let mut l = Lists::new(2, 4096);
        let segs = [Segment {
            addr: 0x10_0000,
            len: 8192,
        }];
        let rq = |op, blocks, fua| IoRequest {
            op,
            nsid: 3,
            lba: 0x1234,
            blocks,
            fua,
            segs: &segs,
        };
        let w = build_io(&rq(IoOp::Write, 16, true), 4096, DataPointer::Prp, &mut l).unwrap();
        assert_eq!(w.opcode(), Nvm::Write as u8);
        assert_eq!((w.nsid, w.slba(), w.cdw12 & 0xffff), (3, 0x1234, 15));
        assert_ne!(w.cdw12 & (1 << 30), 0, "FUA");
        assert_eq!((w.dptr.prp1, w.dptr.prp2), (0x10_0000, 0x10_1000));
        let r = build_io(
            &rq(IoOp::Read, 65536, false),
            4096,
            DataPointer::Sgl,
            &mut l,
        )
        .unwrap();
        assert_eq!(r.cdw12 & 0xffff, 0xffff);
        assert_eq!(r.cdw12 & (1 << 30), 0);
        assert_eq!(
            build_io(
                &rq(IoOp::Read, 65537, false),
                4096,
                DataPointer::Prp,
                &mut l
            )
            .unwrap_err(),
            IoError::BadLength(65537)
        );
        assert_eq!(
            build_io(&rq(IoOp::Write, 0, false), 4096, DataPointer::Prp, &mut l).unwrap_err(),
            IoError::BadLength(0)
        );
        let f = build_io(&rq(IoOp::Flush, 0, false), 4096, DataPointer::Prp, &mut l).unwrap();
        assert_eq!(f.opcode(), Nvm::Flush as u8);
        let d = build_io(
            &rq(IoOp::Discard, 100_000, false),
            4096,
            DataPointer::Prp,
            &mut l,
        )
        .unwrap();
        assert_eq!(d.opcode(), Nvm::DatasetManagement as u8);
        assert_eq!(d.dptr.prp1, l.bus_addr(0));
        let range = DsmRange::read_from_bytes(&l.pages[0].as_bytes()[..16]).unwrap();
        assert_eq!((range.slba, range.nlb), (0x1234, 100_000));
        let z = build_io(
            &rq(IoOp::WriteZeroes, 8, false),
            4096,
            DataPointer::Prp,
            &mut l,
        )
        .unwrap();
        assert_eq!(z.opcode(), Nvm::WriteZeroes as u8);
    }
}
