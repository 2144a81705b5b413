//! DMA: memory the device reads and writes.
//!
//! Two kinds, as on every platform:
//! - **Coherent** memory ([`Dma::alloc_coherent`]) is shared with the device for its whole
//!   life: queues, PRP lists, Identify buffers. The CPU and the device see each other's writes
//!   without explicit syncs, but not in any particular order: see [`Fence`].
//! - **Streaming** mappings ([`Dma::map`]) lend a caller's buffer to the device for one
//!   transfer and give it back on [`Dma::unmap`].
//!
//! The core never holds a Rust reference (`&[u8]`, `&mut [u8]`) into memory the device may
//! write: that would be undefined behaviour in Rust's model. Every CPU access to coherent
//! memory goes through [`CoherentMem`]'s methods, which the platform implements with volatile
//! accesses.

use crate::orion_compat::Error;

/// An address as the device sees it (an IOVA behind an IOMMU, a physical address without).
///
/// It is not a CPU address and cannot be dereferenced; it is what goes into a PRP entry, an
/// SGL descriptor or an ASQ/ACQ register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusAddr(pub u64);

impl BusAddr {
    /// The address as a plain number, for a wire format.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The address `offset` bytes further on, or `None` past the end of the address space.
    pub const fn checked_add(self, offset: u64) -> Option<Self> {
        match self.0.checked_add(offset) {
            Some(a) => Some(Self(a)),
            None => None,
        }
    }

    /// Whether the address is a multiple of `align`, which must be a power of two (any other
    /// `align` gives `false`).
    pub const fn is_aligned(self, align: u64) -> bool {
        align.is_power_of_two() && self.0 & (align - 1) == 0
    }
}

/// The largest alignment [`Dma::alloc_coherent`] must honour: 64 KiB, the largest NVMe
/// memory page size a driver would pick. (Linux gives coherent memory the alignment of its
/// size rounded up to a power-of-two number of pages, so an implementation rounds `len` up to
/// `align`.)
pub const MAX_COHERENT_ALIGN: usize = 64 * 1024;

/// One physically contiguous piece of a buffer, as the device addresses it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Where the piece starts.
    pub addr: BusAddr,
    /// Its length in bytes; never zero in a list the platform hands out.
    pub len: u32,
}

/// Which way data moves in a streaming mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The device reads the buffer (a write command).
    ToDevice,
    /// The device writes the buffer (a read command).
    FromDevice,
    /// The device may do both.
    Bidirectional,
}

impl Direction {
    /// Whether the device may read the buffer.
    pub const fn device_reads(self) -> bool {
        matches!(self, Direction::ToDevice | Direction::Bidirectional)
    }

    /// Whether the device may write the buffer.
    pub const fn device_writes(self) -> bool {
        matches!(self, Direction::FromDevice | Direction::Bidirectional)
    }
}

/// An ordering point between CPU accesses to coherent memory, as seen by the device.
///
/// MMIO accesses are already ordered against coherent memory by the [`Mmio`] contract
/// (a doorbell write is seen after the queue entry it announces); fences are for ordering
/// coherent-memory accesses among themselves.
///
/// [`Mmio`]: crate::orion_compat::Mmio
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// Earlier reads complete before later reads (`dma_rmb`): read a completion's phase tag,
    /// fence, then read the rest of the completion.
    Read,
    /// Earlier writes are visible to the device before later writes (`dma_wmb`).
    Write,
    /// Earlier reads and writes complete before later ones (`dma_mb`): write a shadow
    /// doorbell, fence, then read its EventIdx.
    Full,
}

/// A block of coherent DMA memory: a bus address for the device and a CPU view through
/// methods.
///
/// # Contract
///
/// - [`CoherentMem::bus_addr`] and [`CoherentMem::len`] never change for the life of the
///   value. The whole range `bus_addr .. bus_addr + len` is contiguous for the device.
/// - Offsets are in bytes from the start. An access that does not fit inside the block, or
///   a 32/64-bit access at an offset that is not a multiple of its size, returns an error of
///   kind [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) and touches
///   nothing.
/// - Multi-byte values are stored little-endian (the byte order of NVMe and PCI), whatever
///   the CPU's.
/// - A 32-bit or 64-bit access is a single access of that width: the device never sees half
///   of it (64-bit: on platforms with 64-bit accesses; the sim and x86-64 have them). Byte
///   copies ([`CoherentMem::read_bytes`], [`CoherentMem::write_bytes`]) have no such promise.
/// - Accesses are not reordered by the compiler against each other, but the CPU and the
///   device may see them in another order: use [`CoherentMem::fence`].
/// - All methods may be called from any context, including interrupt handlers; they never
///   sleep.
/// - Dropping the value frees the memory. The caller must first make sure the device no
///   longer uses it (the queue was deleted or the controller disabled); the platform cannot
///   check that. Dropping may sleep on some platforms, so drop from a context that may sleep.
pub trait CoherentMem {
    /// The backend's error type.
    type Error: Error;

    /// The bus address of the first byte.
    fn bus_addr(&self) -> BusAddr;

    /// The length in bytes; at least what was asked for.
    fn len(&self) -> usize;

    /// Whether the block is empty (never, for a block from [`Dma::alloc_coherent`]).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the little-endian `u32` at `offset`.
    fn read32(&self, offset: usize) -> Result<u32, Self::Error>;

    /// Writes `value` little-endian at `offset`.
    fn write32(&self, offset: usize, value: u32) -> Result<(), Self::Error>;

    /// Reads the little-endian `u64` at `offset`.
    fn read64(&self, offset: usize) -> Result<u64, Self::Error>;

    /// Writes `value` little-endian at `offset`.
    fn write64(&self, offset: usize, value: u64) -> Result<(), Self::Error>;

    /// Copies `buf.len()` bytes starting at `offset` into `buf`.
    ///
    /// On error `buf` may be partly written.
    fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Copies `data` into the block starting at `offset`.
    ///
    /// On error nothing was written.
    fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), Self::Error>;

    /// Sets `len` bytes starting at `offset` to zero.
    ///
    /// On error nothing was written.
    fn zero(&self, offset: usize, len: usize) -> Result<(), Self::Error>;

    /// Orders this CPU's accesses to coherent memory as `kind` says.
    fn fence(&self, kind: Fence);
}

/// A caller's buffer lent to the device by [`Dma::map`].
///
/// # Contract
///
/// - While the mapping lives, the device may access the buffer through
///   [`DmaMapping::segments`] in the mapping's direction, and the CPU must not touch the
///   buffer (it cannot: the mapping owns it).
/// - Dropping a mapping without [`Dma::unmap`] unmaps it and drops the buffer, with the same
///   precondition as `unmap`.
pub trait DmaMapping {
    /// The buffer's pieces, in order. Their lengths add up to the buffer's length, and none
    /// is empty.
    fn segments(&self) -> &[Segment];

    /// The direction the buffer was mapped for.
    fn direction(&self) -> Direction;
}

/// A device's view of memory: coherent allocation and streaming mappings.
///
/// # Contract
///
/// - [`Dma::alloc_coherent`] may sleep: call it at setup, not on the I/O path and not from
///   interrupt context.
/// - [`Dma::map`] and [`Dma::unmap`] never sleep and may be called from any context.
/// - Bus addresses fit the platform's DMA mask for the device (set up when the device was
///   bound, before any of this is used).
pub trait Dma {
    /// The backend's error type.
    type Error: Error;

    /// A block of coherent memory.
    type Coherent: CoherentMem;

    /// A buffer the platform can lend to the device (host: `Vec<u8>`; Linux: a kernel
    /// vector). The core reads and writes it only while it is not mapped.
    type Buf: AsRef<[u8]> + AsMut<[u8]>;

    /// A mapped buffer.
    type Mapping: DmaMapping;

    /// Allocates at least `len` bytes of zeroed coherent memory whose bus address is a
    /// multiple of `align`.
    ///
    /// `Ok` promises the alignment, the length and that every byte reads as zero.
    /// Every power-of-two `align` up to [`MAX_COHERENT_ALIGN`] works; larger ones may fail
    /// with [`ErrorKind::NoMemory`](crate::orion_compat::ErrorKind::NoMemory). `len` of zero
    /// or an `align` that is not a power of two is an
    /// [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) error. No memory
    /// is left allocated on any error.
    fn alloc_coherent(&self, len: usize, align: usize) -> Result<Self::Coherent, Self::Error>;

    /// Lends `buf` to the device for a transfer in direction `dir`.
    ///
    /// `Ok` promises that the device may now access the buffer through the mapping's
    /// segments, which cover the whole buffer, and that it sees every CPU write made to `buf`
    /// before this call. On error nothing is mapped and the buffer is handed back untouched;
    /// an empty buffer is an
    /// [`ErrorKind::OutOfRange`](crate::orion_compat::ErrorKind::OutOfRange) error.
    fn map(
        &self,
        buf: Self::Buf,
        dir: Direction,
    ) -> Result<Self::Mapping, (Self::Error, Self::Buf)>;

    /// Ends a mapping and hands the buffer back.
    ///
    /// The caller promises the device is done with the buffer: the command that used it has
    /// completed, or the controller has been disabled. A command that timed out may still be
    /// transferring, so its buffer must stay mapped (or be leaked) until the controller is
    /// reset. After `unmap` the CPU sees everything the device wrote to the buffer. Cannot
    /// fail.
    fn unmap(&self, mapping: Self::Mapping) -> Self::Buf;
}
