//! Namespaces: sparse in-memory block storage.

use std::collections::BTreeMap;

/// The NGUID and UUID of the `generation`th namespace Namespace Management created, as
/// `nsid`. Generation 0 is never used, so they differ from those of the namespaces the
/// controller starts with ([`NamespaceSpec::new`](super::NamespaceSpec::new)), and a
/// namespace created under a deleted one's NSID gets new ones: an NGUID is globally unique and
/// assigned when the namespace is created (NVM Command Set 1.0 §4.1.5.1, Figure 97). The UUID
/// keeps the low 24 bits of the generation.
pub(super) fn created_ids(nsid: u32, generation: u32) -> ([u8; 16], [u8; 16]) {
    let (n, g) = (nsid.to_be_bytes(), generation.to_be_bytes());
    let nguid = [
        0x4f, 0x52, 0x49, 0x4f, 0x4e, 0x53, 0x49, 0x4d, g[0], g[1], g[2], g[3], n[0], n[1], n[2],
        n[3],
    ];
    let uuid = [
        0x6f, 0x72, 0x69, 0x6f, 0x6e, 0x2d, 0x4e, 0x53, 0x80, g[1], g[2], g[3], n[0], n[1], n[2],
        n[3],
    ];
    (nguid, uuid)
}

/// One allocated namespace.
#[derive(Debug)]
pub(super) struct Namespace {
    /// Index into the controller's LBA formats (FLBAS).
    pub(super) flbas: u8,
    /// Size in blocks (NSZE = NCAP).
    pub(super) nsze: u64,
    /// Logical block size in bytes.
    pub(super) block_size: u32,
    /// Whether it is attached to this controller (active).
    pub(super) attached: bool,
    pub(super) eui64: Option<[u8; 8]>,
    pub(super) nguid: Option<[u8; 16]>,
    pub(super) uuid: Option<[u8; 16]>,
    /// Written blocks; a block that is not here reads as zeroes.
    blocks: BTreeMap<u64, Box<[u8]>>,
}

impl Namespace {
    pub(super) fn new(flbas: u8, block_size: u32, nsze: u64, attached: bool) -> Self {
        Self {
            flbas,
            nsze,
            block_size,
            attached,
            eui64: None,
            nguid: None,
            uuid: None,
            blocks: BTreeMap::new(),
        }
    }

    /// The namespace's size in bytes, saturating.
    pub(super) fn bytes(&self) -> u64 {
        self.nsze.saturating_mul(u64::from(self.block_size))
    }

    /// Whether blocks `slba..slba + nlb` all exist.
    pub(super) fn in_range(&self, slba: u64, nlb: u64) -> bool {
        slba.checked_add(nlb).is_some_and(|end| end <= self.nsze)
    }

    /// How many blocks hold written data (NUSE).
    pub(super) fn used(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Block `lba`'s data, or `None` if it reads as zeroes.
    pub(super) fn block(&self, lba: u64) -> Option<&[u8]> {
        self.blocks.get(&lba).map(|b| &b[..])
    }

    /// Stores `data` (one block) at `lba`.
    pub(super) fn store(&mut self, lba: u64, data: Box<[u8]>) {
        self.blocks.insert(lba, data);
    }

    /// Makes `slba..slba + nlb` read as zeroes (deallocate or write zeroes).
    pub(super) fn deallocate(&mut self, slba: u64, nlb: u64) {
        let end = slba.saturating_add(nlb);
        let keys: Vec<u64> = self.blocks.range(slba..end).map(|(k, _)| *k).collect();
        for k in keys {
            self.blocks.remove(&k);
        }
    }

    /// Erases everything and switches to a new format (Format NVM), keeping the size in
    /// bytes.
    pub(super) fn format(&mut self, flbas: u8, block_size: u32) {
        let bytes = self.bytes();
        self.blocks.clear();
        self.flbas = flbas;
        self.block_size = block_size;
        self.nsze = bytes / u64::from(block_size.max(1));
    }
}
