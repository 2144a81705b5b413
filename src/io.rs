//! The I/O path shared by every platform: one I/O queue's submission and completion with its
//! per-tag PRP list pages, the block limits a namespace gets, and how NVMe status codes end
//! block requests.
//!
//! The platform's block layer owns tags and data mappings; it hands the core a request with
//! its DMA segments (an [`IoRequest`]) under a tag, and gets back, from [`IoQueue::reap`],
//! the tag and a [`BlockStatus`] for each completion the device posted.

use crate::orion::command::{
    build_io, build_prps, DataPointer, IoError, IoRequest, ListPages, Segment,
};
use crate::orion::controller::{ControllerInfo, NamespaceInfo};
use crate::orion::queue::{BogusCompletion, QueueError, QueuePair, Reaped, ShadowDoorbells};
use crate::orion::spec::sqe::Sqe;
use crate::orion::spec::status::{cmd, generic, media, path, Sct, Status};
use crate::orion_compat::block::{BlockStatus, DiscardLimits, DiskGeometry};
use crate::orion_compat::{CoherentMem, Mmio};

use crate::orion::command::CidSlot;

/// The largest transfer the driver issues even when MDTS allows more (or is unlimited).
pub const MAX_TRANSFER_CAP: u32 = 2 * 1024 * 1024;
/// The most data segments one request may have (the block layer merges pages into segments).
pub const MAX_SEGMENTS: u16 = 128;

/// The block status the platform ends a request with, for an NVMe completion status.
///
/// Success is [`BlockStatus::Ok`]; the mapping of errors follows what the established
/// reference driver reports, so that file systems and tools see the same errors under either.
pub fn block_status(s: Status) -> BlockStatus {
    if s.is_success() {
        return BlockStatus::Ok;
    }
    match s.kind() {
        Sct::Generic => match s.sc() {
            generic::INVALID_OPCODE | generic::INVALID_FIELD | generic::INVALID_NS => {
                BlockStatus::NotSupported
            }
            generic::LBA_OUT_OF_RANGE | generic::CAPACITY_EXCEEDED => BlockStatus::NoSpace,
            generic::NS_WRITE_PROTECTED => BlockStatus::Medium,
            generic::RESERVATION_CONFLICT => BlockStatus::ReservationConflict,
            generic::TRANSIENT_TRANSPORT => BlockStatus::Transport,
            _ => BlockStatus::IoError,
        },
        Sct::CommandSpecific => match s.sc() {
            cmd::CONFLICTING_ATTRIBUTES | cmd::INVALID_PROTECTION_INFO => BlockStatus::Target,
            cmd::WRITE_TO_READ_ONLY_RANGE => BlockStatus::Medium,
            _ => BlockStatus::IoError,
        },
        Sct::MediaDataIntegrity => match s.sc() {
            media::WRITE_FAULT | media::UNRECOVERED_READ_ERROR | media::ACCESS_DENIED => {
                BlockStatus::Medium
            }
            media::GUARD_CHECK | media::APPTAG_CHECK | media::REFTAG_CHECK => {
                BlockStatus::Protection
            }
            _ => BlockStatus::IoError,
        },
        Sct::Path => match s.sc() {
            path::HOST_PATHING_ERROR => BlockStatus::Transport,
            _ => BlockStatus::IoError,
        },
        Sct::Reserved(_) | Sct::Vendor => BlockStatus::IoError,
    }
}

/// The largest transfer to issue: MDTS, capped at [`MAX_TRANSFER_CAP`], whole pages.
pub fn max_transfer(info: &ControllerInfo, page: u64) -> u32 {
    let cap = u64::from(MAX_TRANSFER_CAP);
    let mdts = info.max_transfer.map_or(cap, |m| m.min(cap));
    // At least one page: MDTS is in units of the minimum page size, so never below it.
    let page = page.max(4096);
    let bytes = mdts
        .checked_div(page)
        .unwrap_or(1)
        .max(1)
        .saturating_mul(page);
    // CAST: bytes <= MAX_TRANSFER_CAP, a u32.
    bytes as u32
}

/// PRP list pages one command may need: a transfer of `max_transfer` bytes at any dword
/// offset touches `max_transfer / page + 1` pages; all but the first go into list pages of
/// `page / 8` entries, of which every page but the last spends one on the chain pointer.
/// Discard needs one page for its range. At least 1.
pub fn list_pages_per_tag(max_transfer: u32, page: u64) -> usize {
    let page = page.max(4096);
    let entries = u64::from(max_transfer) / page + 1;
    let per = (page / 8).max(2);
    let pages = if entries <= per {
        1
    } else {
        (entries - 1).div_ceil(per - 1)
    };
    // CAST: at most MAX_TRANSFER_CAP / 4096 + 1 pages.
    pages.max(1) as usize
}

/// The disk geometry and limits for namespace `ns` of a controller described by `info`,
/// used with host memory page size `page`.
pub fn disk_geometry(info: &ControllerInfo, ns: &NamespaceInfo, page: u64) -> DiskGeometry {
    // A namespace reports at least 512 (checked at discovery); never divide by less.
    let bs = ns.block_size.max(512);
    let page = page.max(4096);
    let max_transfer = max_transfer(info, page).max(bs);
    // CAST: page is at most 64 KiB in practice; saturate anyway.
    let pages = max_transfer / u32::try_from(page).unwrap_or(u32::MAX);
    let blocks_per_transfer = max_transfer / bs;
    DiskGeometry {
        logical_block_size: bs,
        physical_block_size: ns.physical_block_size.max(bs),
        capacity: ns.blocks,
        max_transfer,
        // CAST: min with a u16.
        max_segments: (pages + 1).min(u32::from(MAX_SEGMENTS)) as u16,
        max_segment_size: u32::MAX,
        // CAST: page is at most 64 KiB.
        virt_boundary_mask: (page - 1) as u32,
        // PRP entries and SGL addresses need dword alignment only.
        dma_alignment_mask: 3,
        discard: info.oncs.dsm().then_some(DiscardLimits {
            // One range per command: DMRSL bounds it. The request length is 32-bit bytes in
            // the platform's block layer.
            max_blocks: (u32::MAX / bs)
                .min(info.max_dealloc_blocks.unwrap_or(u32::MAX))
                .max(1),
            granularity: 1,
        }),
        max_write_zeroes_blocks: if info.oncs.write_zeroes() {
            // WZSL when the controller states it, else the transfer limit (as the reference
            // driver does); never more than NLB's 65536.
            let wz = info
                .max_write_zeroes
                .map_or(u64::from(blocks_per_transfer), |b| b / u64::from(bs));
            // CAST: min with 65536.
            wz.clamp(1, 65536) as u32
        } else {
            0
        },
        write_cache: info.vwc,
        fua: info.vwc,
    }
}

/// One command's PRP list pages inside a queue's list memory.
pub struct TagLists<'a, C> {
    chunks: &'a [C],
    first: usize,
    count: usize,
    per_chunk: usize,
    page: usize,
}

impl<C: CoherentMem> TagLists<'_, C> {
    fn locate(&self, page: usize) -> Option<(&C, usize)> {
        if page >= self.count {
            return None;
        }
        let n = self.first + page;
        let per = self.per_chunk.max(1);
        let chunk = self.chunks.get(n / per)?;
        Some((chunk, (n % per) * self.page))
    }
}

impl<C: CoherentMem> ListPages for TagLists<'_, C> {
    fn pages(&self) -> usize {
        self.count
    }

    fn bus_addr(&self, page: usize) -> u64 {
        self.locate(page)
            .map_or(0, |(c, off)| c.bus_addr().as_u64() + off as u64)
    }

    fn write(&mut self, page: usize, offset: usize, bytes: &[u8]) {
        if let Some((c, off)) = self.locate(page) {
            // The offset is inside the page (ListPages contract); a platform failure here
            // leaves a list the device rejects, which completes the command with an error.
            let _ = c.write_bytes(off + offset, bytes);
        }
    }
}

/// Why a request was not submitted. Nothing was queued; the tag stays free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The request cannot be expressed as an NVMe command (a platform or caller bug).
    Build(IoError),
    /// The queue refused it.
    Queue(QueueError),
}

impl SubmitError {
    /// The status to end the request with: a full queue is a resource shortage worth
    /// retrying, anything else is an error.
    pub fn block_status(self) -> BlockStatus {
        match self {
            SubmitError::Queue(QueueError::Full) => BlockStatus::DeviceResource,
            _ => BlockStatus::IoError,
        }
    }
}

/// An I/O queue pair with list memory for every tag.
///
/// `S` is the CID slot storage, `V` the list memory: chunks of coherent memory, each a whole
/// number of pages.
pub struct IoQueue<C, S, V> {
    qp: QueuePair<C, S>,
    lists: V,
    per_chunk: usize,
    per_tag: usize,
    page: u64,
    dptr: DataPointer,
}

impl<C, S, V> IoQueue<C, S, V>
where
    C: CoherentMem,
    S: AsRef<[CidSlot]> + AsMut<[CidSlot]>,
    V: AsRef<[C]>,
{
    /// Wraps a created queue pair. `lists` must hold `per_tag` pages for every tag of the
    /// queue (tags are `0 .. depth - 1`), in chunks of equal size; if it does not, both are
    /// handed back.
    #[allow(
        clippy::result_large_err,
        reason = "a refusal hands the queue pair back; its size differs per platform"
    )]
    pub fn new(
        qp: QueuePair<C, S>,
        lists: V,
        per_tag: usize,
        page: u64,
    ) -> Result<Self, (QueuePair<C, S>, V)> {
        let Ok(pg) = usize::try_from(page) else {
            return Err((qp, lists));
        };
        let chunks = lists.as_ref();
        let per_chunk = chunks.first().map_or(0, |c| c.len() / pg.max(1));
        let tags = qp.depth() as usize - 1;
        if pg == 0
            || per_chunk == 0
            || per_tag == 0
            || chunks.iter().any(|c| c.len() / pg != per_chunk)
            || chunks.len() * per_chunk < tags * per_tag
        {
            return Err((qp, lists));
        }
        Ok(Self {
            qp,
            lists,
            per_chunk,
            per_tag,
            page,
            dptr: DataPointer::Prp,
        })
    }

    /// The queue pair (for its ID, depth and bus addresses).
    pub fn pair(&self) -> &QueuePair<C, S> {
        &self.qp
    }

    /// The most requests in flight at once: one less than the ring depth.
    pub fn tags(&self) -> u32 {
        self.qp.depth() - 1
    }

    /// Builds and queues `req` under `tag`. The device does not see it until
    /// [`IoQueue::ring`].
    pub fn submit(&mut self, tag: u16, req: &IoRequest<'_>) -> Result<(), SubmitError> {
        let mut lists = self.tag_lists(tag)?;
        let sqe = build_io(req, self.page, self.dptr, &mut lists).map_err(SubmitError::Build)?;
        self.qp.submit(tag, &sqe).map_err(SubmitError::Queue)
    }

    /// Queues a caller-built command (passthrough) under `tag`, its data in `segs` described
    /// with PRPs in the tag's list pages. The command's CID is set by the queue.
    pub fn submit_raw(&mut self, tag: u16, sqe: Sqe, segs: &[Segment]) -> Result<(), SubmitError> {
        let mut lists = self.tag_lists(tag)?;
        let sqe = if segs.is_empty() {
            sqe.with_prp(0, 0)
        } else {
            let p = build_prps(segs, self.page, &mut lists)
                .map_err(|e| SubmitError::Build(IoError::Prp(e)))?;
            sqe.with_prp(p.prp1, p.prp2)
        };
        self.qp.submit(tag, &sqe).map_err(SubmitError::Queue)
    }

    /// The list pages of `tag`, or BadTag for a tag beyond the queue's.
    fn tag_lists(&self, tag: u16) -> Result<TagLists<'_, C>, SubmitError> {
        if u32::from(tag) >= self.tags() {
            return Err(SubmitError::Queue(QueueError::BadTag(tag)));
        }
        Ok(TagLists {
            chunks: self.lists.as_ref(),
            first: usize::from(tag) * self.per_tag,
            count: self.per_tag,
            per_chunk: self.per_chunk,
            // CAST: checked in `new`.
            page: self.page as usize,
        })
    }

    /// Rings the SQ doorbell for everything queued since the last ring.
    pub fn ring<M: Mmio>(
        &mut self,
        mmio: &M,
        shadow: Option<&ShadowDoorbells<C>>,
    ) -> Result<(), QueueError> {
        self.qp.ring(mmio, shadow)
    }

    /// Reaps up to `budget` completions: `done(tag, block status, status, result)` for each
    /// genuine one (the result is completion Dwords 0 and 1), `bogus` for entries the device
    /// should not have posted. Returns the entries consumed.
    pub fn reap<M: Mmio>(
        &mut self,
        mmio: &M,
        shadow: Option<&ShadowDoorbells<C>>,
        budget: usize,
        mut done: impl FnMut(u16, BlockStatus, Status, u64),
        mut bogus: impl FnMut(BogusCompletion),
    ) -> Result<usize, QueueError> {
        self.qp.reap(mmio, shadow, budget, |r| match r {
            Reaped::Done {
                tag,
                status,
                result,
            } => done(tag, block_status(status), status, result),
            Reaped::Bogus(b) => bogus(b),
        })
    }

    /// Whether `tag` has a command outstanding.
    pub fn in_flight(&self, tag: u16) -> bool {
        !self.qp.tag_is_free(tag)
    }

    /// Forgets `tag`'s command: a later completion for it is refused as bogus.
    pub fn cancel(&mut self, tag: u16) -> bool {
        self.qp.cancel(tag)
    }

    /// The CID of `tag`'s outstanding command (what an Abort names), if one is.
    pub fn cid_of(&self, tag: u16) -> Option<u16> {
        self.qp.cid_of(tag)
    }

    /// The list pages each tag owns (what [`IoQueue::new`] was given).
    pub fn per_tag(&self) -> usize {
        self.per_tag
    }

    /// Gives back the queue pair and the list memory.
    pub fn into_parts(self) -> (QueuePair<C, S>, V) {
        (self.qp, self.lists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion::spec::identify::{Oacs, Oncs};

    fn info(mdts: Option<u64>, oncs: u16, vwc: bool) -> ControllerInfo {
        ControllerInfo {
            vid: 0,
            sn: [b' '; 20],
            mn: [b' '; 40],
            fr: [b' '; 8],
            cntlid: 0,
            max_transfer: mdts,
            nn: 1,
            oacs: Oacs(0),
            oncs: Oncs(oncs),
            vwc,
            sgls: false,
            aerl: 0,
            lpa: crate::orion::spec::identify::Lpa(0),
            oaes: crate::orion::spec::identify::Oaes(0),
            subnqn: [0; 256],
            max_dealloc_blocks: None,
            max_write_zeroes: None,
        }
    }

    fn ns(bs: u32, phys: u32) -> NamespaceInfo {
        NamespaceInfo {
            nsid: 1,
            blocks: 1 << 20,
            block_size: bs,
            physical_block_size: phys,
            metadata: 0,
            ids: Default::default(),
        }
    }

    #[test]
    fn status_mapping_matches_the_reference_driver() {
        assert_eq!(block_status(Status::SUCCESS), BlockStatus::Ok);
        let g = |sc| block_status(Status::new(Sct::Generic, sc));
        assert_eq!(g(generic::INVALID_OPCODE), BlockStatus::NotSupported);
        assert_eq!(g(generic::LBA_OUT_OF_RANGE), BlockStatus::NoSpace);
        assert_eq!(g(generic::INTERNAL), BlockStatus::IoError);
        assert_eq!(
            g(generic::RESERVATION_CONFLICT),
            BlockStatus::ReservationConflict
        );
        let m = |sc| block_status(Status::new(Sct::MediaDataIntegrity, sc));
        assert_eq!(m(media::UNRECOVERED_READ_ERROR), BlockStatus::Medium);
        assert_eq!(m(media::GUARD_CHECK), BlockStatus::Protection);
        assert_eq!(
            block_status(Status::new(Sct::Vendor, 0x80)),
            BlockStatus::IoError
        );
        // DNR or More set do not turn an error into success or change its class.
        assert_eq!(
            block_status(Status::new(Sct::Generic, generic::INTERNAL).with_dnr(true)),
            BlockStatus::IoError
        );
    }

    #[test]
    fn geometry_from_identify() {
        let g = disk_geometry(&info(Some(512 * 1024), 0b1100, true), &ns(512, 512), 4096);
        assert_eq!(g.check(), Ok(()));
        assert_eq!(g.max_transfer, 512 * 1024);
        assert_eq!(g.max_segments, 128);
        assert_eq!(g.virt_boundary_mask, 4095);
        assert!(g.discard.is_some() && g.write_cache && g.fua);
        assert_eq!(g.max_write_zeroes_blocks, 1024);

        // MDTS 1 with 4 KiB pages and a 4 KiB LBA: 8 KiB transfers, 3 segments at most.
        let g = disk_geometry(&info(Some(8192), 0, false), &ns(4096, 4096), 4096);
        assert_eq!(g.check(), Ok(()));
        assert_eq!((g.max_transfer, g.max_segments), (8192, 3));
        assert!(g.discard.is_none() && !g.write_cache && !g.fua);
        assert_eq!(g.max_write_zeroes_blocks, 0);

        // DMRSL and WZSL bound discard and write zeroes.
        let mut i = info(Some(512 * 1024), 0b1100, true);
        i.max_dealloc_blocks = Some(524_287);
        i.max_write_zeroes = Some(64 * 1024);
        let g = disk_geometry(&i, &ns(512, 512), 4096);
        assert_eq!(g.discard.map(|d| d.max_blocks), Some(524_287));
        assert_eq!(g.max_write_zeroes_blocks, 128);

        // No MDTS: capped. A physical block size below the logical one is raised.
        let g = disk_geometry(&info(None, 0, false), &ns(4096, 0), 4096);
        assert_eq!(g.check(), Ok(()));
        assert_eq!(g.max_transfer, MAX_TRANSFER_CAP);
        assert_eq!(g.physical_block_size, 4096);
        // A 64 KiB LBA with a smaller MDTS still moves one block per command.
        let g = disk_geometry(&info(Some(8192), 0, false), &ns(65536, 65536), 4096);
        assert_eq!(g.check(), Ok(()));
        assert_eq!(g.max_transfer, 65536);
    }

    #[test]
    fn list_pages_cover_the_largest_transfer() {
        assert_eq!(list_pages_per_tag(8192, 4096), 1);
        assert_eq!(list_pages_per_tag(512 * 1024, 4096), 1);
        // 2 MiB at 4 KiB: 513 entries, 511 per chained page: 2 pages.
        assert_eq!(list_pages_per_tag(MAX_TRANSFER_CAP, 4096), 2);
        assert_eq!(list_pages_per_tag(MAX_TRANSFER_CAP, 65536), 1);
    }
}
