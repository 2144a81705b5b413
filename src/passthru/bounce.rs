//! Bounce buffers for passthrough data, and running an admin passthrough command through one.
//!
//! The device never sees the caller's memory: a command's data lives in coherent memory the
//! core allocates through the platform's [`Dma`], built from chunks of [`CHUNK`] bytes, or of
//! one memory page if the controller's is larger (large contiguous blocks are hard to come by
//! in a running kernel). Each chunk is aligned to the controller's memory page size and is a
//! whole number of pages, so PRPs can describe the chunks back to back; the PRP list,
//! when one is needed, is one more memory page. The platform copies the caller's bytes in and
//! out with [`Bounce::write`] and [`Bounce::read`].
//!
//! A command whose wait ended in a timeout may still be written by the device later: the
//! caller keeps (quarantines) its bounce buffer until the controller has been shut down.

use crate::orion::command::{build_prps, ListPages, PrpError, Segment};
use crate::orion::controller::{Controller, CtrlError, Enabled, Platform};
use crate::orion::io::MAX_TRANSFER_CAP;
use crate::orion::passthru::changes_namespaces;
use crate::orion::spec::log::Effects;
use crate::orion::spec::sqe::Sqe;
use crate::orion_compat::dma::{CoherentMem, Dma};
use crate::orion_compat::time::Duration;
use crate::orion_compat::{Error as _, ErrorKind};
use core::ops::DerefMut;

/// The size of the coherent chunks a bounce buffer is built from (or the memory page size,
/// when that is larger).
pub const CHUNK: usize = 64 * 1024;

/// The most chunks one buffer needs: the largest transfer the core issues.
// CAST: MAX_TRANSFER_CAP is 2 MiB.
const MAX_CHUNKS: usize = MAX_TRANSFER_CAP as usize / CHUNK;

/// Why a bounce buffer could not be built or described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BounceError {
    /// Longer than the largest transfer the core issues.
    TooLong,
    /// The platform could not allocate the memory.
    Platform(ErrorKind),
    /// The buffer cannot be described with PRPs at this page size (a bug, never the caller's).
    Prp(PrpError),
    /// An offset or length outside the buffer.
    OutOfRange,
}

/// A command's data in coherent memory, with a PRP list page when it needs one.
///
/// The chunks live in `S`, storage the platform provides (a vector of [`Bounce::chunks_for`]
/// empty slots), so the buffer stays small wherever it is moved, a kernel stack included.
///
/// # Invariants
///
/// `chunk` is max([`CHUNK`], `page`); the first `len.div_ceil(chunk)` slots of `chunks` are
/// `Some` and the rest `None`; each chunk is at least `chunk` bytes (the last at least the
/// remainder) and aligned to `page`; `list` is `Some` when `len > 2 * page`.
pub struct Bounce<C: CoherentMem, S> {
    chunks: S,
    chunk: usize,
    list: Option<C>,
    len: usize,
    page: u64,
}

impl<C: CoherentMem, S: DerefMut<Target = [Option<C>]>> Bounce<C, S> {
    /// How many chunk slots a buffer of `len` bytes needs at memory page size `page`.
    pub fn chunks_for(len: usize, page: u64) -> usize {
        len.div_ceil(chunk_size(page))
    }

    /// A zeroed buffer of `len` bytes (0: none) for a controller whose memory page size is
    /// `page` (a power of two of at least 4 KiB), its chunks kept in `slots`: at least
    /// [`Bounce::chunks_for`]`(len, page)` slots, all `None` ([`BounceError::OutOfRange`]
    /// else).
    pub fn new<D: Dma<Coherent = C>>(
        dma: &D,
        page: u64,
        len: usize,
        mut slots: S,
    ) -> Result<Self, BounceError> {
        if len > MAX_CHUNKS * CHUNK {
            return Err(BounceError::TooLong);
        }
        if slots.len() < Self::chunks_for(len, page) || slots.iter().any(Option::is_some) {
            return Err(BounceError::OutOfRange);
        }
        let align = usize::try_from(page).map_err(|_| BounceError::Prp(PrpError::BadPageSize))?;
        if align < 4096 || !align.is_power_of_two() {
            return Err(BounceError::Prp(PrpError::BadPageSize));
        }
        let chunk = chunk_size(page);
        let mut left = len;
        for slot in slots.iter_mut() {
            if left == 0 {
                break;
            }
            let k = left.min(chunk);
            let c = dma
                .alloc_coherent(k.next_multiple_of(align), align)
                .map_err(|e| BounceError::Platform(e.kind()))?;
            c.zero(0, k).map_err(|e| BounceError::Platform(e.kind()))?;
            *slot = Some(c);
            left -= k;
        }
        let list = if len > 2 * align {
            Some(
                dma.alloc_coherent(align, align)
                    .map_err(|e| BounceError::Platform(e.kind()))?,
            )
        } else {
            None
        };
        // INVARIANT: the leading chunks of `chunk` bytes cover len, each page aligned; the list
        // exists when the data spans more than two pages.
        Ok(Self {
            chunks: slots,
            chunk,
            list,
            len,
            page,
        })
    }

    /// The buffer's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no data (a command without a data transfer).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk holding byte `offset`, and the offset within it.
    fn at(&self, offset: usize) -> Option<(&C, usize)> {
        // Checked: no division-by-zero panic path (the chunk size is never zero).
        let c = self.chunks.get(offset.checked_div(self.chunk)?)?.as_ref()?;
        Some((c, offset.checked_rem(self.chunk)?))
    }

    /// Copies `data` into the buffer at `offset`.
    pub fn write(&self, mut offset: usize, mut data: &[u8]) -> Result<(), BounceError> {
        if offset.checked_add(data.len()).is_none_or(|e| e > self.len) {
            return Err(BounceError::OutOfRange);
        }
        while !data.is_empty() {
            let (c, o) = self.at(offset).ok_or(BounceError::OutOfRange)?;
            let k = data.len().min(self.chunk - o);
            let (head, rest) = data.split_at(k);
            c.write_bytes(o, head)
                .map_err(|e| BounceError::Platform(e.kind()))?;
            data = rest;
            offset += k;
        }
        Ok(())
    }

    /// Copies the buffer's bytes at `offset` into `buf`.
    pub fn read(&self, mut offset: usize, mut buf: &mut [u8]) -> Result<(), BounceError> {
        if offset.checked_add(buf.len()).is_none_or(|e| e > self.len) {
            return Err(BounceError::OutOfRange);
        }
        while !buf.is_empty() {
            let (c, o) = self.at(offset).ok_or(BounceError::OutOfRange)?;
            let k = buf.len().min(self.chunk - o);
            let (head, rest) = core::mem::take(&mut buf).split_at_mut(k);
            c.read_bytes(o, head)
                .map_err(|e| BounceError::Platform(e.kind()))?;
            buf = rest;
            offset += k;
        }
        Ok(())
    }

    /// The buffer as DMA segments: full chunks, then the remainder (none when empty), for a
    /// command whose data pointer the platform's I/O path builds.
    pub fn segments(&self) -> Segments {
        let mut out = Segments {
            segs: [Segment { addr: 0, len: 0 }; MAX_CHUNKS],
            n: 0,
        };
        let mut left = self.len;
        for (c, s) in self.chunks.iter().flatten().zip(out.segs.iter_mut()) {
            let k = left.min(self.chunk);
            *s = Segment {
                addr: c.bus_addr().as_u64(),
                // CAST: at most one chunk, at most the 2 MiB transfer cap.
                len: k as u32,
            };
            left -= k;
            out.n += 1;
        }
        out
    }

    /// `sqe` with its data pointer describing this buffer (PRPs at the buffer's page size),
    /// or unchanged when there is no data.
    pub fn describe(&self, sqe: Sqe) -> Result<Sqe, BounceError> {
        if self.len == 0 {
            return Ok(sqe);
        }
        let segs = self.segments();
        let prps = build_prps(
            segs.as_slice(),
            self.page,
            &mut ListPage(self.list.as_ref()),
        )
        .map_err(BounceError::Prp)?;
        Ok(sqe.with_prp(prps.prp1, prps.prp2))
    }
}

/// The chunk size at memory page size `page`: [`CHUNK`], or one page if that is larger.
fn chunk_size(page: u64) -> usize {
    usize::try_from(page).map_or(CHUNK, |p| p.max(CHUNK))
}

/// A bounce buffer's DMA segments, in order.
pub struct Segments {
    segs: [Segment; MAX_CHUNKS],
    n: usize,
}

impl Segments {
    /// The segments as a slice.
    pub fn as_slice(&self) -> &[Segment] {
        self.segs.get(..self.n).unwrap_or(&[])
    }
}

/// The PRP list page of a bounce buffer: none for a transfer of at most two pages, else one.
struct ListPage<'a, C>(Option<&'a C>);

impl<C: CoherentMem> ListPages for ListPage<'_, C> {
    fn pages(&self) -> usize {
        usize::from(self.0.is_some())
    }
    fn bus_addr(&self, _page: usize) -> u64 {
        self.0.map_or(0, |l| l.bus_addr().as_u64())
    }
    fn write(&mut self, _page: usize, offset: usize, bytes: &[u8]) {
        if let Some(l) = self.0 {
            // Inside the page by build_prps' contract, which is the list's whole length.
            let _ = l.write_bytes(offset, bytes);
        }
    }
}

/// Why an admin passthrough command did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// The bounce buffer could not be built or described.
    Bounce(BounceError),
    /// The controller failed the command or its wait; [`CtrlError::Status`] carries the
    /// device's status, which the caller reports as such.
    Ctrl(CtrlError),
}

/// The coherent memory type of platform `P`.
type CoherentOf<P> = <<P as Platform>::Dma as Dma>::Coherent;

impl<P: Platform> Controller<P, Enabled> {
    /// A bounce buffer of `len` bytes for a passthrough command on this controller (chunks
    /// aligned to, and PRPs at, the memory page size the controller was enabled with), its
    /// chunks kept in `slots` (see [`Bounce::new`]).
    pub fn bounce<S>(&self, len: usize, slots: S) -> Result<Bounce<CoherentOf<P>, S>, BounceError>
    where
        S: DerefMut<Target = [Option<CoherentOf<P>>]>,
    {
        Bounce::new(self.dma(), self.page_size(), len, slots)
    }

    /// Runs a checked admin passthrough command `sqe` with its data in `data` (already filled
    /// for a transfer to the device), polling for at most `timeout`. Returns the completion's
    /// result.
    ///
    /// On [`CtrlError::Timeout`] the device may still write `data`: the caller must keep it
    /// until the controller is disabled.
    pub fn admin_passthru<S>(
        &mut self,
        sqe: Sqe,
        data: &Bounce<CoherentOf<P>, S>,
        timeout: Duration,
    ) -> Result<u64, AdminError>
    where
        S: DerefMut<Target = [Option<CoherentOf<P>>]>,
    {
        let sqe = data.describe(sqe).map_err(AdminError::Bounce)?;
        self.admin_raw(sqe, timeout).map_err(AdminError::Ctrl)
    }
}

/// The longest timeout a passthrough caller may ask for: one hour.
pub const MAX_TIMEOUT_MS: u32 = 3_600_000;
/// The admin timeout when the caller gives none (the reference driver's admin timeout).
pub const ADMIN_TIMEOUT_MS: u32 = 60_000;
/// The shortest admin timeout honoured: the reference driver's timeouts are whole ticks, so
/// a 1 ms timeout is never shorter than a tick there either.
pub const MIN_TIMEOUT_MS: u32 = 10;

/// How long an admin passthrough command with the caller's `timeout_ms` (0: the default) is
/// waited for.
pub fn admin_timeout(timeout_ms: u32) -> Duration {
    Duration::from_millis(u64::from(if timeout_ms == 0 {
        ADMIN_TIMEOUT_MS
    } else {
        timeout_ms.max(MIN_TIMEOUT_MS)
    }))
}

/// What the driver does once an admin passthrough command has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminFollowup {
    /// Nothing.
    None,
    /// Rescan the namespaces: the command succeeded and may have changed them (a format,
    /// namespace management or attachment, or what the effects log says changes
    /// namespaces). The command's own answer stands whatever the rescan finds.
    Rescan,
    /// Reset the controller: the command timed out, so the controller is not well (the
    /// reference driver's rule; a reset that fails leaves it dead).
    Reset,
}

/// The follow-up to an admin passthrough command with `opcode` that ended with `r`.
pub fn admin_followup(
    r: &Result<u64, AdminError>,
    opcode: u8,
    effects: Option<&Effects>,
) -> AdminFollowup {
    match r {
        Ok(_) if changes_namespaces(opcode, effects) => AdminFollowup::Rescan,
        Err(AdminError::Ctrl(CtrlError::Timeout(_))) => AdminFollowup::Reset,
        _ => AdminFollowup::None,
    }
}
