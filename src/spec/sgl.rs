//! Scatter Gather List descriptors, NVMe Base 2.0 §4.3.2.
//!
//! Every descriptor is 16 bytes: bytes 7:0 hold an address (reserved for the Bit Bucket),
//! bytes 11:8 a length in bytes, bytes 14:12 are reserved and byte 15 is the SGL Identifier
//! (type in bits 7:4, sub type in bits 3:0). This module covers the descriptor forms a PCIe
//! host uses; the Keyed SGL Data Block (fabrics only) lays out bytes 15:8 differently and is
//! only recognised by type.

use super::bitfield::bitfield;
use super::opcode::wire_enum;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

wire_enum! {
    /// SGL Descriptor Type, NVMe Base 2.0 §4.3.2, Figure "SGL Descriptor Type".
    pub enum DescriptorType {
        /// SGL Data Block: a contiguous data buffer.
        DataBlock = 0x0 => "SGL Data Block",
        /// SGL Bit Bucket: the controller discards this many bytes of read data.
        BitBucket = 0x1 => "SGL Bit Bucket",
        /// SGL Segment: points at the next segment, which is not the last.
        Segment = 0x2 => "SGL Segment",
        /// SGL Last Segment: points at the last segment.
        LastSegment = 0x3 => "SGL Last Segment",
        /// Keyed SGL Data Block (NVMe over Fabrics).
        KeyedDataBlock = 0x4 => "Keyed SGL Data Block",
        /// Transport SGL Data Block (NVMe over Fabrics).
        TransportDataBlock = 0x5 => "Transport SGL Data Block",
        /// Vendor specific.
        VendorSpecific = 0xf => "Vendor Specific",
    }
}

/// SGL Descriptor Sub Type: the Address field is an address, NVMe Base 2.0 §4.3.2.
pub const SUBTYPE_ADDRESS: u8 = 0x0;
/// SGL Descriptor Sub Type: the Address field is an offset (SGLS bit 20).
pub const SUBTYPE_OFFSET: u8 = 0x1;

/// Size of one descriptor in bytes.
pub const DESCRIPTOR_SIZE: usize = 16;

bitfield! {
    /// Bytes 15:8 of an SGL descriptor as one little-endian quadword: the Length field and the
    /// SGL Identifier, NVMe Base 2.0 §4.3.2, Figure "Generic SGL Descriptor Format".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Dw23(u64) {
        /// Length in bytes (bytes 11:8).
        31:0 length / with_length: u32;
        /// SGL Descriptor Sub Type (byte 15, bits 3:0).
        59:56 subtype / with_subtype: u8;
        /// SGL Descriptor Type (byte 15, bits 7:4), see [`DescriptorType`].
        63:60 dtype / with_dtype: u8;
    }
}

/// One SGL descriptor, NVMe Base 2.0 §4.3.2.
///
/// The first descriptor of a command sits in the SQE's DPTR (see
/// [`super::sqe::Sqe::with_sgl`]); further ones live in segments in host memory, which are
/// arrays of this type.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Descriptor {
    /// Address (bytes 7:0); reserved for a Bit Bucket.
    pub address: u64,
    /// Length and SGL Identifier (bytes 15:8).
    pub dw23: Dw23,
}

const _: () = {
    assert!(core::mem::size_of::<Descriptor>() == DESCRIPTOR_SIZE);
    assert!(core::mem::offset_of!(Descriptor, dw23) == 8);
};

impl Descriptor {
    const fn new(dtype: DescriptorType, address: u64, length: u32) -> Self {
        Self {
            address,
            dw23: Dw23(0)
                .with_length(length)
                .with_subtype(SUBTYPE_ADDRESS)
                .with_dtype(dtype as u8),
        }
    }

    /// A Data Block descriptor for `length` bytes at bus address `address`.
    pub const fn data_block(address: u64, length: u32) -> Self {
        Self::new(DescriptorType::DataBlock, address, length)
    }

    /// A Bit Bucket descriptor: the controller discards `length` bytes of read data.
    pub const fn bit_bucket(length: u32) -> Self {
        Self::new(DescriptorType::BitBucket, 0, length)
    }

    /// A Segment descriptor pointing at `count` descriptors at `address`, followed by further
    /// segments.
    pub const fn segment(address: u64, count: u16) -> Self {
        Self::new(DescriptorType::Segment, address, Self::bytes_of(count))
    }

    /// A Last Segment descriptor pointing at the final `count` descriptors at `address`.
    pub const fn last_segment(address: u64, count: u16) -> Self {
        Self::new(DescriptorType::LastSegment, address, Self::bytes_of(count))
    }

    const fn bytes_of(count: u16) -> u32 {
        // CAST: widening; at most 65535 * 16, which fits in u32.
        count as u32 * DESCRIPTOR_SIZE as u32
    }

    /// The descriptor type, or the raw value when it is not one the spec defines.
    pub const fn descriptor_type(&self) -> Result<DescriptorType, u8> {
        match DescriptorType::from_raw(self.dw23.dtype()) {
            Some(t) => Ok(t),
            None => Err(self.dw23.dtype()),
        }
    }

    /// The Length field, in bytes.
    pub const fn length(&self) -> u32 {
        self.dw23.length()
    }

    /// For a Segment or Last Segment: the number of whole descriptors it points at, or `None`
    /// when the length is not a multiple of 16 (an invalid segment).
    pub const fn descriptor_count(&self) -> Option<u32> {
        let len = self.length();
        // CAST: DESCRIPTOR_SIZE is 16.
        let size = DESCRIPTOR_SIZE as u32;
        if len % size == 0 {
            Some(len / size)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{FromBytes, IntoBytes};

    #[test]
    fn data_block_bytes() {
        let d = Descriptor::data_block(0x1122_3344_5566_7788, 0x1000);
        assert_eq!(
            d.as_bytes(),
            &[
                0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, // address
                0x00, 0x10, 0x00, 0x00, // length
                0x00, 0x00, 0x00, // reserved
                0x00, // type 0, sub type 0
            ]
        );
        assert_eq!(d.descriptor_type(), Ok(DescriptorType::DataBlock));
    }

    #[test]
    fn segment_and_bit_bucket_bytes() {
        let d = Descriptor::last_segment(0x8000, 3);
        assert_eq!(d.as_bytes()[8..], [48, 0, 0, 0, 0, 0, 0, 0x30]);
        assert_eq!(d.descriptor_count(), Some(3));
        let d = Descriptor::segment(0x9000, 256);
        assert_eq!(d.as_bytes()[15], 0x20);
        assert_eq!(d.length(), 4096);
        let d = Descriptor::bit_bucket(512);
        assert_eq!(d.as_bytes()[..8], [0; 8]);
        assert_eq!(d.as_bytes()[15], 0x10);
        assert_eq!(d.descriptor_type(), Ok(DescriptorType::BitBucket));
    }

    #[test]
    fn parses_device_bytes_and_garbage() {
        let mut raw = [0u8; 16];
        raw[8] = 0x21; // length 33: not a whole number of descriptors
        raw[15] = 0x31; // last segment, sub type 1 (offset)
        let d = Descriptor::read_from_bytes(&raw).unwrap();
        assert_eq!(d.descriptor_type(), Ok(DescriptorType::LastSegment));
        assert_eq!(d.dw23.subtype(), SUBTYPE_OFFSET);
        assert_eq!(d.descriptor_count(), None);
        raw[15] = 0x90;
        let d = Descriptor::read_from_bytes(&raw).unwrap();
        assert_eq!(d.descriptor_type(), Err(9));
        assert!(Descriptor::read_from_bytes(&raw[..15]).is_err());
    }
}
