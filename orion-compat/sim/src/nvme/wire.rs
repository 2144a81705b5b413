//! The model's own reading of the wire formats: controller register offsets and fields (NVMe
//! Base 2.0 §3.1.3), the submission queue entry (§4.2.1) and the completion queue entry
//! (§4.2.2), plus little-endian helpers for the data structures it returns.

/// Controller register offsets (NVMe Base 2.0 §3.1.3, Figure 33).
pub(super) mod reg {
    /// Controller Capabilities (64-bit).
    pub(crate) const CAP: usize = 0x00;
    /// Version.
    pub(crate) const VS: usize = 0x08;
    /// Interrupt Mask Set.
    pub(crate) const INTMS: usize = 0x0c;
    /// Interrupt Mask Clear.
    pub(crate) const INTMC: usize = 0x10;
    /// Controller Configuration.
    pub(crate) const CC: usize = 0x14;
    /// Controller Status.
    pub(crate) const CSTS: usize = 0x1c;
    /// NVM Subsystem Reset.
    pub(crate) const NSSR: usize = 0x20;
    /// Admin Queue Attributes.
    pub(crate) const AQA: usize = 0x24;
    /// Admin Submission Queue Base Address (64-bit).
    pub(crate) const ASQ: usize = 0x28;
    /// Admin Completion Queue Base Address (64-bit).
    pub(crate) const ACQ: usize = 0x30;
    /// The first doorbell (SQ 0 tail).
    pub(crate) const DOORBELLS: usize = 0x1000;
    /// The NSSR value that starts an NVM Subsystem Reset ("NVMe").
    pub(crate) const NSSR_MAGIC: u32 = 0x4e56_4d65;
}

/// Bits `lo..=hi` of `v`.
pub(super) const fn bits32(v: u32, lo: u32, hi: u32) -> u32 {
    (v >> lo) & (u32::MAX >> (31 - (hi - lo)))
}

/// CC fields (NVMe Base 2.0 §3.1.3.5, Figure 41).
pub(super) mod cc {
    use super::bits32;
    pub(crate) const fn en(v: u32) -> bool {
        v & 1 != 0
    }
    pub(crate) const fn css(v: u32) -> u32 {
        bits32(v, 4, 6)
    }
    pub(crate) const fn mps(v: u32) -> u32 {
        bits32(v, 7, 10)
    }
    pub(crate) const fn ams(v: u32) -> u32 {
        bits32(v, 11, 13)
    }
    pub(crate) const fn shn(v: u32) -> u32 {
        bits32(v, 14, 15)
    }
    pub(crate) const fn iosqes(v: u32) -> u32 {
        bits32(v, 16, 19)
    }
    pub(crate) const fn iocqes(v: u32) -> u32 {
        bits32(v, 20, 23)
    }
}

/// CSTS fields (NVMe Base 2.0 §3.1.3.6, Figure 42).
pub(super) mod csts {
    pub(crate) const RDY: u32 = 1 << 0;
    pub(crate) const CFS: u32 = 1 << 1;
    pub(crate) const SHST_SHIFT: u32 = 2;
    pub(crate) const NSSRO: u32 = 1 << 4;
}

/// A submission queue entry, as fetched (NVMe Base 2.0 §4.2.1, Figure 87).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Sqe(pub(super) [u8; 64]);

impl Sqe {
    /// Command dword `i` (0..16); 0 for any other `i`.
    pub(super) fn dw(&self, i: usize) -> u32 {
        let mut b = [0; 4];
        if let Some(s) = self.0.get(i * 4..i * 4 + 4) {
            b.copy_from_slice(s);
        }
        u32::from_le_bytes(b)
    }

    fn qw(&self, i: usize) -> u64 {
        u64::from(self.dw(i)) | (u64::from(self.dw(i + 1)) << 32)
    }

    /// CDW0 OPC.
    pub(super) fn opcode(&self) -> u8 {
        self.0[0]
    }

    /// CDW0 FUSE (bits 9:8).
    pub(super) fn fuse(&self) -> u8 {
        self.0[1] & 0x3
    }

    /// CDW0 PSDT (bits 15:14): 00b PRP, 01b SGL, 10b SGL with an SGL MPTR.
    pub(super) fn psdt(&self) -> u8 {
        self.0[1] >> 6
    }

    /// CDW0 CID (bits 31:16).
    pub(super) fn cid(&self) -> u16 {
        u16::from_le_bytes([self.0[2], self.0[3]])
    }

    /// NSID (CDW1).
    pub(super) fn nsid(&self) -> u32 {
        self.dw(1)
    }

    /// PRP Entry 1 (CDW6..7).
    pub(super) fn prp1(&self) -> u64 {
        self.qw(6)
    }

    /// PRP Entry 2 (CDW8..9).
    pub(super) fn prp2(&self) -> u64 {
        self.qw(8)
    }

    /// SGL Entry 1: the 16 bytes of the data pointer (CDW6..9).
    pub(super) fn sgl1(&self) -> &[u8] {
        &self.0[24..40]
    }

    /// CDW10..15.
    pub(super) fn cdw(&self, n: usize) -> u32 {
        self.dw(n)
    }

    /// CDW10..11 as a 64-bit value (SLBA).
    pub(super) fn cdw10_11(&self) -> u64 {
        self.qw(10)
    }
}

/// Builds little-endian data structures in a byte buffer; writes outside it are dropped.
pub(super) struct Le<'a>(pub(super) &'a mut [u8]);

impl Le<'_> {
    pub(super) fn bytes(&mut self, off: usize, b: &[u8]) {
        if let Some(d) = self.0.get_mut(off..off + b.len()) {
            d.copy_from_slice(b);
        }
    }
    pub(super) fn u8(&mut self, off: usize, v: u8) {
        self.bytes(off, &[v]);
    }
    pub(super) fn u16(&mut self, off: usize, v: u16) {
        self.bytes(off, &v.to_le_bytes());
    }
    pub(super) fn u32(&mut self, off: usize, v: u32) {
        self.bytes(off, &v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, off: usize, v: u64) {
        self.bytes(off, &v.to_le_bytes());
    }
    pub(super) fn u128(&mut self, off: usize, v: u128) {
        self.bytes(off, &v.to_le_bytes());
    }
    /// An ASCII string field of `len` bytes, space padded (and cut if too long).
    pub(super) fn ascii(&mut self, off: usize, len: usize, s: &str) {
        let mut f = vec![b' '; len];
        for (d, c) in f.iter_mut().zip(s.bytes()) {
            *d = c;
        }
        self.bytes(off, &f);
    }
}

/// Reads a little-endian value from `b` at `off` (0 past the end).
pub(super) fn get_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0; 8];
    if let Some(s) = b.get(off..off + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// Reads a little-endian `u32` from `b` at `off` (0 past the end).
pub(super) fn get_u32(b: &[u8], off: usize) -> u32 {
    let mut v = [0; 4];
    if let Some(s) = b.get(off..off + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

/// Reads a little-endian `u16` from `b` at `off` (0 past the end).
pub(super) fn get_u16(b: &[u8], off: usize) -> u16 {
    let mut v = [0; 2];
    if let Some(s) = b.get(off..off + 2) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}
