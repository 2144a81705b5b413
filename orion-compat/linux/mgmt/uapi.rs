// SPDX-License-Identifier: GPL-2.0

//! The Linux NVMe passthrough uapi (`include/uapi/linux/nvme_ioctl.h`), the wire formats
//! nvme-cli and libnvme speak, and their decoding into the core's neutral passthrough
//! command. Pure data: no kernel calls, so its tests also run on the host
//! (`orion-compat/sim/tests/linux_uapi.rs`).
//!
//! What a decoded command may do is the core's decision (`passthru::check`); this file only
//! says what the caller's bytes mean.

#![forbid(unsafe_code)]

use crate::orion::passthru::{BlockIo, Command, Refusal};
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `struct nvme_passthru_cmd` (`nvme_admin_cmd`): 32-bit result.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub(crate) struct PassthruCmd {
    /// Opcode.
    pub(crate) opcode: u8,
    /// Must be zero.
    pub(crate) flags: u8,
    /// Reserved; must be zero.
    pub(crate) rsvd1: u16,
    /// Namespace ID.
    pub(crate) nsid: u32,
    /// Command Dword 2.
    pub(crate) cdw2: u32,
    /// Command Dword 3.
    pub(crate) cdw3: u32,
    /// User address of the metadata buffer.
    pub(crate) metadata: u64,
    /// User address of the data buffer.
    pub(crate) addr: u64,
    /// Metadata length in bytes.
    pub(crate) metadata_len: u32,
    /// Data length in bytes.
    pub(crate) data_len: u32,
    /// Command Dwords 10-15.
    pub(crate) cdw10: u32,
    /// Command Dword 11.
    pub(crate) cdw11: u32,
    /// Command Dword 12.
    pub(crate) cdw12: u32,
    /// Command Dword 13.
    pub(crate) cdw13: u32,
    /// Command Dword 14.
    pub(crate) cdw14: u32,
    /// Command Dword 15.
    pub(crate) cdw15: u32,
    /// Timeout in milliseconds (0: the driver's default).
    pub(crate) timeout_ms: u32,
    /// Completion Dword 0, written back.
    pub(crate) result: u32,
}

/// `struct nvme_passthru_cmd64`: 64-bit result (Dwords 0 and 1).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub(crate) struct PassthruCmd64 {
    /// Opcode.
    pub(crate) opcode: u8,
    /// Must be zero.
    pub(crate) flags: u8,
    /// Reserved; must be zero.
    pub(crate) rsvd1: u16,
    /// Namespace ID.
    pub(crate) nsid: u32,
    /// Command Dword 2.
    pub(crate) cdw2: u32,
    /// Command Dword 3.
    pub(crate) cdw3: u32,
    /// User address of the metadata buffer.
    pub(crate) metadata: u64,
    /// User address of the data buffer.
    pub(crate) addr: u64,
    /// Metadata length in bytes.
    pub(crate) metadata_len: u32,
    /// Data length in bytes (`vec_cnt`, the iovec count, for the vectored form).
    pub(crate) data_len: u32,
    /// Command Dword 10.
    pub(crate) cdw10: u32,
    /// Command Dword 11.
    pub(crate) cdw11: u32,
    /// Command Dword 12.
    pub(crate) cdw12: u32,
    /// Command Dword 13.
    pub(crate) cdw13: u32,
    /// Command Dword 14.
    pub(crate) cdw14: u32,
    /// Command Dword 15.
    pub(crate) cdw15: u32,
    /// Timeout in milliseconds (0: the driver's default).
    pub(crate) timeout_ms: u32,
    /// Reserved.
    pub(crate) rsvd2: u32,
    /// Completion Dwords 0 and 1, written back.
    pub(crate) result: u64,
}

impl From<&PassthruCmd> for PassthruCmd64 {
    fn from(c: &PassthruCmd) -> Self {
        Self {
            opcode: c.opcode,
            flags: c.flags,
            rsvd1: c.rsvd1,
            nsid: c.nsid,
            cdw2: c.cdw2,
            cdw3: c.cdw3,
            metadata: c.metadata,
            addr: c.addr,
            metadata_len: c.metadata_len,
            data_len: c.data_len,
            cdw10: c.cdw10,
            cdw11: c.cdw11,
            cdw12: c.cdw12,
            cdw13: c.cdw13,
            cdw14: c.cdw14,
            cdw15: c.cdw15,
            timeout_ms: c.timeout_ms,
            rsvd2: 0,
            result: 0,
        }
    }
}

/// `struct nvme_user_io` (NVME_IOCTL_SUBMIT_IO): a read or write described in blocks.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub(crate) struct UserIo {
    /// Opcode: only Read (02h) and Write (01h) are accepted (as the reference driver).
    pub(crate) opcode: u8,
    /// Must be zero.
    pub(crate) flags: u8,
    /// CDW12 bits 31:16 (FUA, LR, PRINFO, ...).
    pub(crate) control: u16,
    /// Number of blocks, 0's based.
    pub(crate) nblocks: u16,
    /// Reserved.
    pub(crate) rsvd: u16,
    /// User address of the metadata buffer.
    pub(crate) metadata: u64,
    /// User address of the data buffer.
    pub(crate) addr: u64,
    /// Starting LBA.
    pub(crate) slba: u64,
    /// CDW13 (dataset management).
    pub(crate) dsmgmt: u32,
    /// Expected initial logical block reference tag (CDW14).
    pub(crate) reftag: u32,
    /// Application tag (CDW15 bits 15:0).
    pub(crate) apptag: u16,
    /// Application tag mask (CDW15 bits 31:16).
    pub(crate) appmask: u16,
    /// Padding to the C structure's 8-byte alignment.
    pub(crate) pad: u32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<PassthruCmd>() == 72);
    assert!(offset_of!(PassthruCmd, addr) == 24);
    assert!(offset_of!(PassthruCmd, data_len) == 36);
    assert!(offset_of!(PassthruCmd, timeout_ms) == 64);
    assert!(offset_of!(PassthruCmd, result) == 68);
    assert!(size_of::<PassthruCmd64>() == 80);
    assert!(offset_of!(PassthruCmd64, result) == 72);
    assert!(size_of::<UserIo>() == 48);
    assert!(offset_of!(UserIo, slba) == 24);
    assert!(offset_of!(UserIo, appmask) == 42);
};

/// `struct nvme_uring_cmd`: an io_uring passthrough command (`NVME_URING_CMD_*`), carried in
/// the command area of a 128-byte submission queue entry. It is [`PassthruCmd64`] without the
/// result, which the platform returns in the big completion queue entry instead.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub(crate) struct UringCmd {
    /// Opcode.
    pub(crate) opcode: u8,
    /// Must be zero.
    pub(crate) flags: u8,
    /// Reserved; must be zero.
    pub(crate) rsvd1: u16,
    /// Namespace ID.
    pub(crate) nsid: u32,
    /// Command Dword 2.
    pub(crate) cdw2: u32,
    /// Command Dword 3.
    pub(crate) cdw3: u32,
    /// User address of the metadata buffer.
    pub(crate) metadata: u64,
    /// User address of the data buffer (of the iovec array for the vectored forms).
    pub(crate) addr: u64,
    /// Metadata length in bytes.
    pub(crate) metadata_len: u32,
    /// Data length in bytes (the iovec count for the vectored forms).
    pub(crate) data_len: u32,
    /// Command Dword 10.
    pub(crate) cdw10: u32,
    /// Command Dword 11.
    pub(crate) cdw11: u32,
    /// Command Dword 12.
    pub(crate) cdw12: u32,
    /// Command Dword 13.
    pub(crate) cdw13: u32,
    /// Command Dword 14.
    pub(crate) cdw14: u32,
    /// Command Dword 15.
    pub(crate) cdw15: u32,
    /// Timeout in milliseconds (0: the driver's default).
    pub(crate) timeout_ms: u32,
    /// Reserved; must be zero.
    pub(crate) rsvd2: u32,
}

impl From<&UringCmd> for PassthruCmd64 {
    fn from(c: &UringCmd) -> Self {
        Self {
            opcode: c.opcode,
            flags: c.flags,
            rsvd1: c.rsvd1,
            nsid: c.nsid,
            cdw2: c.cdw2,
            cdw3: c.cdw3,
            metadata: c.metadata,
            addr: c.addr,
            metadata_len: c.metadata_len,
            data_len: c.data_len,
            cdw10: c.cdw10,
            cdw11: c.cdw11,
            cdw12: c.cdw12,
            cdw13: c.cdw13,
            cdw14: c.cdw14,
            cdw15: c.cdw15,
            timeout_ms: c.timeout_ms,
            rsvd2: c.rsvd2,
            result: 0,
        }
    }
}

/// `struct iovec` of a 64-bit ABI: one piece of a vectored data buffer
/// (`NVME_IOCTL_IO64_CMD_VEC`, `NVME_URING_CMD_*_VEC`).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub(crate) struct IoVec {
    /// User address of the piece.
    pub(crate) base: u64,
    /// Its length in bytes.
    pub(crate) len: u64,
}

/// The most pieces a vectored buffer may have (`UIO_MAXIOV`, the limit of the reference
/// driver's importer).
pub(crate) const MAX_IOVECS: u32 = 1024;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<UringCmd>() == 72);
    assert!(offset_of!(UringCmd, addr) == 24);
    assert!(offset_of!(UringCmd, data_len) == 36);
    assert!(offset_of!(UringCmd, cdw10) == 40);
    assert!(offset_of!(UringCmd, timeout_ms) == 64);
    assert!(offset_of!(UringCmd, rsvd2) == 68);
    assert!(size_of::<IoVec>() == 16);
    assert!(offset_of!(IoVec, len) == 8);
};

/// ioctl numbers of `nvme_ioctl.h` (type 'N', the generic _IO/_IOW/_IOWR encoding).
pub(crate) mod ioctl {
    use super::{PassthruCmd, PassthruCmd64, UringCmd, UserIo};
    use core::mem::size_of;

    const fn nr(dir: u32, n: u32, size: usize) -> u32 {
        // CAST: every structure here is far below the 14-bit size field's limit.
        (dir << 30) | ((size as u32) << 16) | ((b'N' as u32) << 8) | n
    }
    const NONE: u32 = 0;
    const WRITE: u32 = 1;
    const RW: u32 = 3;

    /// Returns the node's namespace ID.
    pub(crate) const ID: u32 = nr(NONE, 0x40, 0);
    /// Admin command, 32-bit result.
    pub(crate) const ADMIN_CMD: u32 = nr(RW, 0x41, size_of::<PassthruCmd>());
    /// Read or write in blocks.
    pub(crate) const SUBMIT_IO: u32 = nr(WRITE, 0x42, size_of::<UserIo>());
    /// I/O command, 32-bit result.
    pub(crate) const IO_CMD: u32 = nr(RW, 0x43, size_of::<PassthruCmd>());
    /// Controller reset.
    pub(crate) const RESET: u32 = nr(NONE, 0x44, 0);
    /// NVM subsystem reset.
    pub(crate) const SUBSYS_RESET: u32 = nr(NONE, 0x45, 0);
    /// Namespace rescan.
    pub(crate) const RESCAN: u32 = nr(NONE, 0x46, 0);
    /// Admin command, 64-bit result.
    pub(crate) const ADMIN64_CMD: u32 = nr(RW, 0x47, size_of::<PassthruCmd64>());
    /// I/O command, 64-bit result.
    pub(crate) const IO64_CMD: u32 = nr(RW, 0x48, size_of::<PassthruCmd64>());
    /// I/O command with an iovec data buffer, 64-bit result.
    pub(crate) const IO64_CMD_VEC: u32 = nr(RW, 0x49, size_of::<PassthruCmd64>());
    /// io_uring command (`cmd_op`): I/O command on a namespace's generic node.
    pub(crate) const URING_CMD_IO: u32 = nr(RW, 0x80, size_of::<UringCmd>());
    /// io_uring command: I/O command with an iovec data buffer.
    pub(crate) const URING_CMD_IO_VEC: u32 = nr(RW, 0x81, size_of::<UringCmd>());
    /// io_uring command: admin command on the controller node.
    pub(crate) const URING_CMD_ADMIN: u32 = nr(RW, 0x82, size_of::<UringCmd>());
    /// io_uring command: admin command with an iovec data buffer.
    pub(crate) const URING_CMD_ADMIN_VEC: u32 = nr(RW, 0x83, size_of::<UringCmd>());
}

impl PassthruCmd64 {
    /// The neutral command (the data's and metadata's addresses stay with the caller's
    /// structure).
    pub(crate) fn command(&self) -> Command {
        Command {
            opcode: self.opcode,
            nsid: self.nsid,
            cdw2: self.cdw2,
            cdw3: self.cdw3,
            cdw10: self.cdw10,
            cdw11: self.cdw11,
            cdw12: self.cdw12,
            cdw13: self.cdw13,
            cdw14: self.cdw14,
            cdw15: self.cdw15,
            data_len: self.data_len,
            timeout_ms: self.timeout_ms,
            bad_flags: self.flags != 0,
            reserved_set: self.rsvd1 != 0 || self.rsvd2 != 0,
            metadata: self.metadata_len != 0 && self.metadata != 0,
        }
    }
}

impl UserIo {
    /// The read or write it asks for; `flags` must be zero.
    pub(crate) fn block_io(&self) -> Result<BlockIo, Refusal> {
        if self.flags != 0 {
            return Err(Refusal::Invalid("flags"));
        }
        Ok(BlockIo {
            opcode: self.opcode,
            nblocks: self.nblocks,
            control: self.control,
            slba: self.slba,
            dsmgmt: self.dsmgmt,
            reftag: self.reftag,
            apptag: self.apptag,
            appmask: self.appmask,
        })
    }
}

// The ioctl numbers as `nvme_ioctl.h` defines them (type 'N').
const _: () = {
    assert!(ioctl::ID == 0x4e40);
    assert!(ioctl::ADMIN_CMD == 0xc048_4e41);
    assert!(ioctl::SUBMIT_IO == 0x4030_4e42);
    assert!(ioctl::IO_CMD == 0xc048_4e43);
    assert!(ioctl::RESET == 0x4e44);
    assert!(ioctl::SUBSYS_RESET == 0x4e45);
    assert!(ioctl::RESCAN == 0x4e46);
    assert!(ioctl::ADMIN64_CMD == 0xc050_4e47);
    assert!(ioctl::IO64_CMD == 0xc050_4e48);
    assert!(ioctl::IO64_CMD_VEC == 0xc050_4e49);
    // _IOWR('N', 0x80..0x83, struct nvme_uring_cmd), 72 bytes.
    assert!(ioctl::URING_CMD_IO == 0xc048_4e80);
    assert!(ioctl::URING_CMD_IO_VEC == 0xc048_4e81);
    assert!(ioctl::URING_CMD_ADMIN == 0xc048_4e82);
    assert!(ioctl::URING_CMD_ADMIN_VEC == 0xc048_4e83);
};

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromBytes as _;

    #[test]
    fn uring_cmd_reads_as_the_uapi_lays_it_out() {
        // The bytes of a `struct nvme_uring_cmd` as a C caller fills it: Read, NSID 1, a
        // buffer at 0x1000 of 4096 bytes, CDW10 7, CDW12 7, timeout 500 ms, reserved 9.
        let mut raw = [0u8; 72];
        raw[0] = 0x02;
        raw[4..8].copy_from_slice(&1u32.to_le_bytes());
        raw[24..32].copy_from_slice(&0x1000u64.to_le_bytes());
        raw[36..40].copy_from_slice(&4096u32.to_le_bytes());
        raw[40..44].copy_from_slice(&7u32.to_le_bytes());
        raw[48..52].copy_from_slice(&7u32.to_le_bytes());
        raw[64..68].copy_from_slice(&500u32.to_le_bytes());
        raw[68..72].copy_from_slice(&9u32.to_le_bytes());
        let u = UringCmd::read_from_bytes(&raw[..]).unwrap();
        assert_eq!(
            (u.opcode, u.nsid, u.addr, u.data_len, u.cdw10, u.cdw12),
            (2, 1, 0x1000, 4096, 7, 7)
        );
        let c = PassthruCmd64::from(&u);
        assert_eq!((c.addr, c.data_len, c.timeout_ms), (0x1000, 4096, 500));
        assert_eq!(c.result, 0);
        // The reserved word is carried over, so the core refuses it as for the ioctls.
        let n = c.command();
        assert!(n.reserved_set && !n.bad_flags && !n.metadata);
        assert_eq!(
            (n.opcode, n.nsid, n.data_len, n.cdw10, n.cdw12),
            (2, 1, 4096, 7, 7)
        );
        let ok = PassthruCmd64 { rsvd2: 0, ..c }.command();
        assert!(!ok.reserved_set);
    }

    #[test]
    fn passthru_fields_decode() {
        let c = PassthruCmd {
            opcode: 0x06,
            flags: 1,
            rsvd1: 0,
            nsid: 3,
            cdw2: 2,
            cdw3: 3,
            metadata: 0x1000,
            addr: 0x2000,
            metadata_len: 8,
            data_len: 4096,
            cdw10: 10,
            cdw11: 11,
            cdw12: 12,
            cdw13: 13,
            cdw14: 14,
            cdw15: 15,
            timeout_ms: 77,
            result: 0,
        };
        let n = PassthruCmd64::from(&c).command();
        assert!(n.bad_flags && n.metadata && !n.reserved_set);
        assert_eq!(
            (n.nsid, n.cdw2, n.cdw3, n.cdw10, n.cdw11, n.cdw12, n.cdw13, n.cdw14, n.cdw15),
            (3, 2, 3, 10, 11, 12, 13, 14, 15)
        );
        assert_eq!((n.data_len, n.timeout_ms), (4096, 77));
        // Metadata counts only with both an address and a length.
        let n = PassthruCmd64::from(&PassthruCmd {
            metadata_len: 0,
            ..c
        })
        .command();
        assert!(!n.metadata);
        let n = PassthruCmd64::from(&PassthruCmd { rsvd1: 1, ..c }).command();
        assert!(n.reserved_set);
    }

    #[test]
    fn user_io_flags_are_refused() {
        let io = UserIo {
            opcode: 0x02,
            nblocks: 7,
            slba: 9,
            apptag: 1,
            appmask: 2,
            ..Default::default()
        };
        let b = io.block_io().unwrap();
        assert_eq!(
            (b.opcode, b.nblocks, b.slba, b.apptag, b.appmask),
            (2, 7, 9, 1, 2)
        );
        assert_eq!(
            UserIo { flags: 1, ..io }.block_io().map(|_| ()),
            Err(Refusal::Invalid("flags"))
        );
    }

    #[test]
    fn iovec_reads_as_a_64_bit_struct_iovec() {
        let mut raw = [0u8; 32];
        raw[..8].copy_from_slice(&0x7fff_0000_1000u64.to_le_bytes());
        raw[8..16].copy_from_slice(&512u64.to_le_bytes());
        raw[16..24].copy_from_slice(&0x2000u64.to_le_bytes());
        raw[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let v = <[IoVec]>::ref_from_bytes(&raw[..]).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            IoVec {
                base: 0x7fff_0000_1000,
                len: 512
            }
        );
        assert_eq!(v[1].len, u64::MAX);
    }
}
