//! A plain register file: memory that answers MMIO accesses, with no device behind it.
//!
//! Useful for decoding tests, and as the storage under the controller model.

use orion_compat::{ErrorKind, Mmio};
use std::sync::Mutex;

/// A register window of `len` bytes, initially zero.
#[derive(Debug)]
pub struct RegFile {
    bytes: Mutex<Vec<u8>>,
}

impl RegFile {
    /// A window of `len` zero bytes.
    pub fn new(len: usize) -> Self {
        Self {
            bytes: Mutex::new(vec![0; len]),
        }
    }

    /// A window whose every byte reads 0xff, as a removed PCIe device does.
    pub fn gone(len: usize) -> Self {
        Self {
            bytes: Mutex::new(vec![0xff; len]),
        }
    }

    fn access<const N: usize>(&self, offset: usize) -> Result<std::ops::Range<usize>, ErrorKind> {
        let len = self.bytes.lock().map_err(|_| ErrorKind::Other)?.len();
        if offset % N != 0 || offset.checked_add(N).is_none_or(|end| end > len) {
            return Err(ErrorKind::OutOfRange);
        }
        Ok(offset..offset + N)
    }

    fn read<const N: usize>(&self, offset: usize) -> Result<[u8; N], ErrorKind> {
        let r = self.access::<N>(offset)?;
        let bytes = self.bytes.lock().map_err(|_| ErrorKind::Other)?;
        let mut out = [0; N];
        out.copy_from_slice(&bytes[r]);
        Ok(out)
    }

    fn write<const N: usize>(&self, offset: usize, v: [u8; N]) -> Result<(), ErrorKind> {
        let r = self.access::<N>(offset)?;
        self.bytes.lock().map_err(|_| ErrorKind::Other)?[r].copy_from_slice(&v);
        Ok(())
    }
}

impl Mmio for RegFile {
    type Error = ErrorKind;

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
}
