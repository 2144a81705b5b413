// SPDX-License-Identifier: GPL-2.0

//! Byte-offset access to a coherent DMA buffer that the device reads and writes at any time.
//!
//! `kernel::dma::Coherent<[u8]>` allocates and frees the buffer, but its safe `Io` accessors
//! take typed locations, not byte offsets into a byte slice; this wrapper gives checked,
//! volatile, little-endian-agnostic accesses at byte offsets: aligned 32- and 64-bit words,
//! and byte ranges (copied in aligned 8-byte words where possible).

use kernel::{
    device::{Bound, Device},
    dma::{Coherent, DmaAddress},
    error::code,
    prelude::*,
};

/// A coherent DMA buffer of bytes.
///
/// # Invariants
///
/// `mem` is a live coherent allocation of `mem.len()` bytes; its CPU address is valid for
/// reads and writes of that many bytes for as long as `mem` lives, and no Rust reference to
/// its contents is ever made (the device may write it at any time).
pub(crate) struct CoherentBytes {
    mem: Coherent<[u8]>,
}

impl CoherentBytes {
    /// A zeroed buffer of `len` bytes for `dev` (`dma_alloc_coherent`).
    pub(crate) fn zeroed(dev: &Device<Bound>, len: usize) -> Result<Self> {
        let mem = Coherent::<u8>::zeroed_slice(dev, len, GFP_KERNEL)?;
        // INVARIANT: a live allocation of `len` bytes, never referenced.
        Ok(Self { mem })
    }

    /// The bus address of the first byte.
    pub(crate) fn dma_address(&self) -> DmaAddress {
        self.mem.dma_address()
    }

    /// The size in bytes.
    pub(crate) fn len(&self) -> usize {
        self.mem.len()
    }

    /// The CPU address of byte `offset`, if `len` bytes from there lie inside the buffer.
    fn at(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.mem.len() => {
                Ok(self.mem.as_mut_ptr().cast::<u8>().wrapping_add(offset))
            }
            _ => Err(code::EINVAL),
        }
    }

    /// As [`Self::at`], and `offset` a multiple of `len`.
    fn aligned(&self, offset: usize, len: usize) -> Result<*mut u8> {
        if offset % len != 0 {
            return Err(code::EINVAL);
        }
        self.at(offset, len)
    }

    /// Reads the aligned 32-bit word at `offset`, in CPU byte order.
    pub(crate) fn read32(&self, offset: usize) -> Result<u32> {
        let p = self.aligned(offset, 4)?;
        // SAFETY: `p` is 4-byte aligned (the allocation is page aligned and `offset` a multiple
        // of 4) and the 4 bytes lie inside the live allocation (checked by `aligned`, type
        // invariant). Volatile: the device may write it at any time.
        Ok(unsafe { core::ptr::read_volatile(p.cast::<u32>()) })
    }

    /// Writes the aligned 32-bit word at `offset`, in CPU byte order.
    pub(crate) fn write32(&self, offset: usize, value: u32) -> Result {
        let p = self.aligned(offset, 4)?;
        // SAFETY: as in `read32`; the memory is shared with the device, never referenced.
        unsafe { core::ptr::write_volatile(p.cast::<u32>(), value) };
        Ok(())
    }

    /// Reads the aligned 64-bit word at `offset`, in CPU byte order.
    pub(crate) fn read64(&self, offset: usize) -> Result<u64> {
        let p = self.aligned(offset, 8)?;
        // SAFETY: as in `read32`, for 8 aligned bytes.
        Ok(unsafe { core::ptr::read_volatile(p.cast::<u64>()) })
    }

    /// Writes the aligned 64-bit word at `offset`, in CPU byte order.
    pub(crate) fn write64(&self, offset: usize, value: u64) -> Result {
        let p = self.aligned(offset, 8)?;
        // SAFETY: as in `read64`.
        unsafe { core::ptr::write_volatile(p.cast::<u64>(), value) };
        Ok(())
    }

    /// Copies `buf.len()` bytes from `offset` into `buf`.
    pub(crate) fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result {
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

    /// Copies `data` into the buffer at `offset`.
    pub(crate) fn write_bytes(&self, offset: usize, data: &[u8]) -> Result {
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

    /// Zeroes `len` bytes from `offset`, a byte at a time.
    pub(crate) fn zero(&self, offset: usize, len: usize) -> Result {
        let p = self.at(offset, len)?;
        for i in 0..len {
            // SAFETY: as in `read_bytes`.
            unsafe { core::ptr::write_volatile(p.add(i), 0) };
        }
        Ok(())
    }
}
