//! The Submission Queue Entry, NVMe Base 2.0 §4.2, and the command dwords of the commands the
//! driver issues.
//!
//! An [`Sqe`] is built by one of the command constructors, given a command identifier with
//! [`Sqe::with_cid`] and a data pointer with [`Sqe::with_prp`] or [`Sqe::with_sgl`], and then
//! copied into the submission queue ring as its 64 bytes (`zerocopy::IntoBytes::as_bytes`).
//! Command dwords 10-15 are plain `u32` fields; each command's layout is a `bitfield!` type
//! here (for example [`IdentifyCdw10`]) so a controller model can decode what the host built.

use super::bitfield::bitfield;
use super::features::{Fid, HmbCdw11, Sel};
use super::identify::Cns;
use super::log::LogId;
use super::opcode::{Admin, Nvm};
use super::sgl;
use zerocopy_derive::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The broadcast namespace identifier: all namespaces, NVMe Base 2.0 §3.2.1.2.
pub const NSID_ALL: u32 = 0xffff_ffff;

bitfield! {
    /// Command Dword 0, NVMe Base 2.0 §4.2, Figure "Command Dword 0".
    #[derive(FromBytes, IntoBytes, KnownLayout, Immutable)]
    pub struct Cdw0(u32) {
        /// Opcode (OPC).
        7:0 opc / with_opc: u8;
        /// Fused Operation (FUSE), see [`Fuse`].
        9:8 fuse / with_fuse: u8;
        /// PRP or SGL for Data Transfer (PSDT), see [`Psdt`].
        15:14 psdt / with_psdt: u8;
        /// Command Identifier (CID).
        31:16 cid / with_cid: u16;
    }
}

/// Fused Operation encodings of CDW0.FUSE, NVMe Base 2.0 §4.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fuse {
    /// Normal operation.
    Normal = 0,
    /// First command of a fused operation.
    First = 1,
    /// Second command of a fused operation.
    Second = 2,
}

/// Data pointer kinds of CDW0.PSDT, NVMe Base 2.0 §4.2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Psdt {
    /// PRPs are used for the data transfer.
    Prp = 0,
    /// SGLs are used; MPTR is the address of one contiguous metadata buffer.
    SglMptrContiguous = 1,
    /// SGLs are used; MPTR is the address of an SGL segment holding one descriptor.
    SglMptrSgl = 2,
}

impl Psdt {
    /// Decodes the two-bit field; `None` for the reserved value 11b.
    pub const fn from_bits(v: u8) -> Option<Self> {
        match v {
            0 => Some(Self::Prp),
            1 => Some(Self::SglMptrContiguous),
            2 => Some(Self::SglMptrSgl),
            _ => None,
        }
    }
}

bitfield! {
    /// A 64-bit value carried in two consecutive dwords, low dword first: SLBA in CDW10-11,
    /// the log page offset in CDW12-13, a 64-bit result in CQE DW0-1.
    pub struct Qword(u64) {
        /// The low dword.
        31:0 lo / with_lo: u32;
        /// The high dword.
        63:32 hi / with_hi: u32;
    }
}

impl Qword {
    /// Joins two dwords, low first.
    pub const fn from_dwords(lo: u32, hi: u32) -> Self {
        Self(0).with_lo(lo).with_hi(hi)
    }
}

/// Data Pointer (DPTR), SQE bytes 39:24, NVMe Base 2.0 §4.2: either PRP Entry 1 and 2 or the
/// first SGL descriptor ([`sgl::Descriptor`]), as CDW0.PSDT says.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Dptr {
    /// PRP Entry 1, or the SGL descriptor's address.
    pub prp1: u64,
    /// PRP Entry 2 (an address or a PRP list pointer), or the SGL descriptor's length and
    /// identifier.
    pub prp2: u64,
}

impl Dptr {
    /// DPTR holding an SGL descriptor.
    pub const fn from_sgl(d: sgl::Descriptor) -> Self {
        Self {
            prp1: d.address,
            prp2: d.dw23.0,
        }
    }

    /// DPTR read as an SGL descriptor.
    pub const fn sgl(self) -> sgl::Descriptor {
        sgl::Descriptor {
            address: self.prp1,
            dw23: sgl::Dw23(self.prp2),
        }
    }
}

/// A Submission Queue Entry, NVMe Base 2.0 §4.2, Figure "Common Command Format".
///
/// All multi-byte fields are little-endian on the wire; the driver targets little-endian hosts
/// (checked at compile time in [`super`]), so they are plain integers here.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct Sqe {
    /// Command Dword 0: opcode, fused operation, PSDT, command identifier.
    pub cdw0: Cdw0,
    /// Namespace Identifier (NSID).
    pub nsid: u32,
    /// Command Dword 2 (command specific).
    pub cdw2: u32,
    /// Command Dword 3 (command specific).
    pub cdw3: u32,
    /// Metadata Pointer (MPTR).
    pub mptr: u64,
    /// Data Pointer (DPTR).
    pub dptr: Dptr,
    /// Command Dword 10 (command specific).
    pub cdw10: u32,
    /// Command Dword 11 (command specific).
    pub cdw11: u32,
    /// Command Dword 12 (command specific).
    pub cdw12: u32,
    /// Command Dword 13 (command specific).
    pub cdw13: u32,
    /// Command Dword 14 (command specific).
    pub cdw14: u32,
    /// Command Dword 15 (command specific).
    pub cdw15: u32,
}

/// Size of a submission queue entry in bytes (CC.IOSQES = 6).
pub const SQE_SIZE: usize = 64;

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<Sqe>() == SQE_SIZE);
    assert!(offset_of!(Sqe, cdw0) == 0);
    assert!(offset_of!(Sqe, nsid) == 4);
    assert!(offset_of!(Sqe, cdw2) == 8);
    assert!(offset_of!(Sqe, cdw3) == 12);
    assert!(offset_of!(Sqe, mptr) == 16);
    assert!(offset_of!(Sqe, dptr) == 24);
    assert!(offset_of!(Sqe, cdw10) == 40);
    assert!(offset_of!(Sqe, cdw11) == 44);
    assert!(offset_of!(Sqe, cdw12) == 48);
    assert!(offset_of!(Sqe, cdw13) == 52);
    assert!(offset_of!(Sqe, cdw14) == 56);
    assert!(offset_of!(Sqe, cdw15) == 60);
    assert!(size_of::<Dptr>() == 16);
    assert!(size_of::<DsmRange>() == 16);
};

// ---------------------------------------------------------------------------------------------
// Admin command dwords.

bitfield! {
    /// Identify CDW10, NVMe Base 2.0 §5.17.
    pub struct IdentifyCdw10(u32) {
        /// Controller or Namespace Structure (CNS), see [`Cns`].
        7:0 cns / with_cns: u8;
        /// Controller Identifier (CNTID), for the controller list CNS values.
        31:16 cntid / with_cntid: u16;
    }
}

bitfield! {
    /// Identify CDW11, NVMe Base 2.0 §5.17.
    pub struct IdentifyCdw11(u32) {
        /// CNS Specific Identifier (NVM Set, Endurance Group or Domain identifier).
        15:0 cnssid / with_cnssid: u16;
        /// Command Set Identifier (CSI), see [`super::identify::CSI_NVM`].
        31:24 csi / with_csi: u8;
    }
}

bitfield! {
    /// CDW14 of Identify, Get/Set Features and Get Log Page: the UUID index,
    /// NVMe Base 2.0 §5.17, §5.15, §5.16.
    pub struct UuidCdw14(u32) {
        /// UUID Index into the UUID List (0: no UUID selected).
        6:0 uuid_index / with_uuid_index: u8;
    }
}

bitfield! {
    /// Get Features CDW10, NVMe Base 2.0 §5.15.
    pub struct GetFeaturesCdw10(u32) {
        /// Feature Identifier (FID), see [`Fid`].
        7:0 fid / with_fid: u8;
        /// Select (SEL), see [`Sel`].
        10:8 sel / with_sel: u8;
    }
}

bitfield! {
    /// Set Features CDW10, NVMe Base 2.0 §5.27.
    pub struct SetFeaturesCdw10(u32) {
        /// Feature Identifier (FID), see [`Fid`].
        7:0 fid / with_fid: u8;
        /// Save (SV): make the value persist across power cycles and resets.
        31:31 sv / with_sv: bool;
    }
}

bitfield! {
    /// Get Log Page CDW10, NVMe Base 2.0 §5.16.
    pub struct GetLogCdw10(u32) {
        /// Log Page Identifier (LID), see [`LogId`].
        7:0 lid / with_lid: u8;
        /// Log Specific Parameter (LSP).
        14:8 lsp / with_lsp: u8;
        /// Retain Asynchronous Event (RAE): do not clear the event that pointed here.
        15:15 rae / with_rae: bool;
        /// Number of Dwords Lower (NUMDL): low half of the 0's based dword count.
        31:16 numdl / with_numdl: u16;
    }
}

bitfield! {
    /// Get Log Page CDW11, NVMe Base 2.0 §5.16.
    pub struct GetLogCdw11(u32) {
        /// Number of Dwords Upper (NUMDU).
        15:0 numdu / with_numdu: u16;
        /// Log Specific Identifier (LSI).
        31:16 lsi / with_lsi: u16;
    }
}

bitfield! {
    /// Get Log Page CDW14, NVMe Base 2.0 §5.16.
    pub struct GetLogCdw14(u32) {
        /// UUID Index.
        6:0 uuid_index / with_uuid_index: u8;
        /// Offset Type (OT): the offset is an index into a list of entries, not bytes.
        23:23 ot / with_ot: bool;
        /// Command Set Identifier (CSI).
        31:24 csi / with_csi: u8;
    }
}

bitfield! {
    /// The 0's based dword count of Get Log Page, split over NUMDL and NUMDU.
    pub struct Numd(u32) {
        /// Lower 16 bits (NUMDL).
        15:0 lower: u16;
        /// Upper 16 bits (NUMDU).
        31:16 upper: u16;
    }
}

bitfield! {
    /// CDW10 of Create/Delete I/O Completion/Submission Queue, NVMe Base 2.0 §5.4 to §5.7.
    pub struct QueueCdw10(u32) {
        /// Queue Identifier (QID).
        15:0 qid / with_qid: u16;
        /// Queue Size (QSIZE), 0's based; reserved for the delete commands.
        31:16 qsize / with_qsize: u16;
    }
}

bitfield! {
    /// Create I/O Completion Queue CDW11, NVMe Base 2.0 §5.4.
    pub struct CreateCqCdw11(u32) {
        /// Physically Contiguous (PC).
        0:0 pc / with_pc: bool;
        /// Interrupts Enabled (IEN).
        1:1 ien / with_ien: bool;
        /// Interrupt Vector (IV): the MSI-X vector for this queue.
        31:16 iv / with_iv: u16;
    }
}

bitfield! {
    /// Create I/O Submission Queue CDW11, NVMe Base 2.0 §5.5.
    pub struct CreateSqCdw11(u32) {
        /// Physically Contiguous (PC).
        0:0 pc / with_pc: bool;
        /// Queue Priority (QPRIO) for weighted round robin, see [`Qprio`].
        2:1 qprio / with_qprio: u8;
        /// Completion Queue Identifier (CQID).
        31:16 cqid / with_cqid: u16;
    }
}

bitfield! {
    /// Create I/O Submission Queue CDW12, NVMe Base 2.0 §5.5.
    pub struct CreateSqCdw12(u32) {
        /// NVM Set Identifier (NVMSETID).
        15:0 nvmsetid / with_nvmsetid: u16;
    }
}

/// Queue priority of a submission queue (CDW11.QPRIO), NVMe Base 2.0 §5.5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Qprio {
    /// Urgent.
    Urgent = 0,
    /// High.
    High = 1,
    /// Medium (the value to use when arbitration is round robin).
    Medium = 2,
    /// Low.
    Low = 3,
}

bitfield! {
    /// Abort CDW10, NVMe Base 2.0 §5.1.
    pub struct AbortCdw10(u32) {
        /// Submission Queue Identifier (SQID) of the command to abort.
        15:0 sqid / with_sqid: u16;
        /// Command Identifier (CID) of the command to abort.
        31:16 cid / with_cid: u16;
    }
}

bitfield! {
    /// CDW10 of Namespace Attachment (§5.20) and Namespace Management (§5.21),
    /// NVMe Base 2.0.
    pub struct NsSelCdw10(u32) {
        /// Select (SEL), see [`NsAttachSel`] and [`NsMgmtSel`].
        3:0 sel / with_sel: u8;
    }
}

bitfield! {
    /// Namespace Management CDW11, NVMe Base 2.0 §5.21.
    pub struct NsMgmtCdw11(u32) {
        /// Command Set Identifier (CSI) of the namespace to create.
        31:24 csi / with_csi: u8;
    }
}

/// Namespace Attachment select values, NVMe Base 2.0 §5.20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsAttachSel {
    /// Controller Attach.
    Attach = 0,
    /// Controller Detach.
    Detach = 1,
}

/// Namespace Management select values, NVMe Base 2.0 §5.21.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NsMgmtSel {
    /// Create.
    Create = 0,
    /// Delete.
    Delete = 1,
}

bitfield! {
    /// Format NVM CDW10, NVMe Base 2.0 §5.14.
    pub struct FormatCdw10(u32) {
        /// LBA Format, low four bits of the index (LBAFL).
        3:0 lbafl / with_lbafl: u8;
        /// Metadata Settings (MSET): metadata as part of an extended data LBA.
        4:4 mset / with_mset: bool;
        /// Protection Information (PI) type, 0 for none.
        7:5 pi / with_pi: u8;
        /// Protection Information Location (PIL): PI in the first bytes of metadata.
        8:8 pil / with_pil: bool;
        /// Secure Erase Settings (SES): 0 none, 1 user data erase, 2 cryptographic erase.
        11:9 ses / with_ses: u8;
        /// LBA Format, upper two bits of the index (LBAFU), for more than 16 formats.
        13:12 lbafu / with_lbafu: u8;
    }
}

impl FormatCdw10 {
    /// A value selecting LBA format `index` (0..=63) with no metadata, PI or secure erase.
    pub const fn lba_format(index: u8) -> Self {
        Self(0).with_lbafl(index % 16).with_lbafu(index / 16)
    }

    /// The LBA format index (0..=63) this value selects.
    pub const fn index(self) -> u8 {
        self.lbafu() * 16 + self.lbafl()
    }
}

// ---------------------------------------------------------------------------------------------
// NVM command dwords.

bitfield! {
    /// CDW12 of Read, Write, Write Zeroes, Compare and Verify, NVM Cmd Set 1.0 §3.2.4,
    /// §3.2.6 and §3.2.8.
    pub struct RwCdw12(u32) {
        /// Number of Logical Blocks (NLB), 0's based.
        15:0 nlb / with_nlb: u16;
        /// Directive Type (DTYPE), Write only.
        23:20 dtype / with_dtype: u8;
        /// Storage Tag Check (STC).
        24:24 stc / with_stc: bool;
        /// Deallocate (DEAC), Write Zeroes only.
        25:25 deac / with_deac: bool;
        /// Protection Information Field (PRINFO).
        29:26 prinfo / with_prinfo: u8;
        /// Force Unit Access (FUA).
        30:30 fua / with_fua: bool;
        /// Limited Retry (LR).
        31:31 lr / with_lr: bool;
        /// Bits 31:16 as one half-word: the command's flags (DTYPE, STC, DEAC, PRINFO, FUA,
        /// LR and the reserved bits 19:16) together, as `nvme_user_io.control` carries them.
        31:16 control / with_control: u16;
    }
}

bitfield! {
    /// CDW15 of Read, Write, Write Zeroes, Compare and Verify, NVM Cmd Set 1.0 §3.2.4,
    /// §3.2.6 and §3.2.8.
    pub struct RwCdw15(u32) {
        /// Expected Logical Block Application Tag (ELBAT).
        15:0 elbat / with_elbat: u16;
        /// Expected Logical Block Application Tag Mask (ELBATM).
        31:16 elbatm / with_elbatm: u16;
    }
}

bitfield! {
    /// CDW13 of Read and Write, NVM Cmd Set 1.0 §3.2.4 and §3.2.6.
    pub struct RwCdw13(u32) {
        /// Dataset Management hints (DSM).
        7:0 dsm / with_dsm: u8;
        /// Directive Specific (DSPEC), Write only.
        31:16 dspec / with_dspec: u16;
    }
}

bitfield! {
    /// Dataset Management CDW10, NVM Cmd Set 1.0 §3.2.3.
    pub struct DsmCdw10(u32) {
        /// Number of Ranges (NR), 0's based.
        7:0 nr / with_nr: u8;
    }
}

bitfield! {
    /// Dataset Management CDW11, NVM Cmd Set 1.0 §3.2.3.
    pub struct DsmCdw11(u32) {
        /// Integral Dataset for Read (IDR).
        0:0 idr / with_idr: bool;
        /// Integral Dataset for Write (IDW).
        1:1 idw / with_idw: bool;
        /// Attribute – Deallocate (AD).
        2:2 ad / with_ad: bool;
    }
}

/// One Dataset Management range, NVM Cmd Set 1.0 §3.2.3, Figure "Dataset Management – Range
/// Definition". The data buffer of the command is an array of up to 256 of these.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
pub struct DsmRange {
    /// Context Attributes.
    pub cattr: u32,
    /// Length in logical blocks (1's based).
    pub nlb: u32,
    /// Starting LBA.
    pub slba: u64,
}

/// The most ranges one Dataset Management command carries.
pub const DSM_MAX_RANGES: usize = 256;

impl DsmRange {
    /// A range of `nlb` blocks from `slba`, with no context attributes.
    pub const fn new(slba: u64, nlb: u32) -> Self {
        Self {
            cattr: 0,
            nlb,
            slba,
        }
    }
}

/// The 0's based dword count (NUMD) that transfers `len` bytes, or `None` when `len` is zero,
/// not a multiple of four, or larger than the 16 GiB Get Log Page can express.
pub const fn numd_of(len: usize) -> Option<u32> {
    if len == 0 || len % 4 != 0 {
        return None;
    }
    let dwords = len / 4 - 1;
    if dwords > u32::MAX as usize {
        return None;
    }
    // CAST: checked above that the value fits.
    Some(dwords as u32)
}

// ---------------------------------------------------------------------------------------------
// Builders.

impl Sqe {
    /// An all-zero entry with opcode `opc`.
    pub const fn new(opc: u8) -> Self {
        Self {
            cdw0: Cdw0(0).with_opc(opc),
            nsid: 0,
            cdw2: 0,
            cdw3: 0,
            mptr: 0,
            dptr: Dptr { prp1: 0, prp2: 0 },
            cdw10: 0,
            cdw11: 0,
            cdw12: 0,
            cdw13: 0,
            cdw14: 0,
            cdw15: 0,
        }
    }

    /// An all-zero admin command.
    pub const fn admin(op: Admin) -> Self {
        Self::new(op.raw())
    }

    /// An all-zero NVM command for namespace `nsid`.
    pub const fn nvm(op: Nvm, nsid: u32) -> Self {
        Self::new(op.raw()).with_nsid(nsid)
    }

    /// The opcode.
    pub const fn opcode(&self) -> u8 {
        self.cdw0.opc()
    }

    /// The command identifier.
    pub const fn cid(&self) -> u16 {
        self.cdw0.cid()
    }

    /// The data pointer kind, or `None` for the reserved encoding.
    pub const fn psdt(&self) -> Option<Psdt> {
        Psdt::from_bits(self.cdw0.psdt())
    }

    /// Returns a copy with command identifier `cid`.
    #[must_use]
    pub const fn with_cid(mut self, cid: u16) -> Self {
        self.cdw0 = self.cdw0.with_cid(cid);
        self
    }

    /// Returns a copy addressed to namespace `nsid`.
    #[must_use]
    pub const fn with_nsid(mut self, nsid: u32) -> Self {
        self.nsid = nsid;
        self
    }

    /// Returns a copy with fused operation `fuse`.
    #[must_use]
    pub const fn with_fuse(mut self, fuse: Fuse) -> Self {
        self.cdw0 = self.cdw0.with_fuse(fuse as u8);
        self
    }

    /// Returns a copy whose data pointer is PRP Entry 1 and 2 (PSDT = PRP).
    #[must_use]
    pub const fn with_prp(mut self, prp1: u64, prp2: u64) -> Self {
        self.cdw0 = self.cdw0.with_psdt(Psdt::Prp as u8);
        self.dptr = Dptr { prp1, prp2 };
        self
    }

    /// Returns a copy whose data pointer is the SGL descriptor `d` (PSDT = SGL, metadata, if
    /// any, in one contiguous buffer at MPTR).
    #[must_use]
    pub const fn with_sgl(mut self, d: sgl::Descriptor) -> Self {
        self.cdw0 = self.cdw0.with_psdt(Psdt::SglMptrContiguous as u8);
        self.dptr = Dptr::from_sgl(d);
        self
    }

    /// Returns a copy with metadata pointer `mptr`.
    #[must_use]
    pub const fn with_mptr(mut self, mptr: u64) -> Self {
        self.mptr = mptr;
        self
    }

    /// Returns a copy with CDW12.FUA set to `fua` (Read, Write, Write Zeroes, Compare).
    #[must_use]
    pub const fn with_fua(mut self, fua: bool) -> Self {
        self.cdw12 = RwCdw12(self.cdw12).with_fua(fua).0;
        self
    }

    /// Returns a copy with CDW12.LR set to `lr` (Read, Write, Write Zeroes, Compare).
    #[must_use]
    pub const fn with_lr(mut self, lr: bool) -> Self {
        self.cdw12 = RwCdw12(self.cdw12).with_lr(lr).0;
        self
    }

    /// The Starting LBA of an NVM command (CDW10-11).
    pub const fn slba(&self) -> u64 {
        Qword::from_dwords(self.cdw10, self.cdw11).0
    }

    const fn with_slba(mut self, slba: u64) -> Self {
        self.cdw10 = Qword(slba).lo();
        self.cdw11 = Qword(slba).hi();
        self
    }

    // --- Admin commands ----------------------------------------------------------------------

    /// Identify, NVMe Base 2.0 §5.17: the data structure `cns` for namespace `nsid` (0 when the
    /// structure is not per namespace). Returns 4096 bytes.
    pub const fn identify(cns: Cns, nsid: u32) -> Self {
        let mut s = Self::admin(Admin::Identify).with_nsid(nsid);
        s.cdw10 = IdentifyCdw10(0).with_cns(cns as u8).0;
        s
    }

    /// Identify with the controller identifier and command set identifier, for CNS values
    /// that take them (controller lists, I/O command set specific structures).
    pub const fn identify_with(cns: Cns, nsid: u32, cntid: u16, csi: u8) -> Self {
        let mut s = Self::identify(cns, nsid);
        s.cdw10 = IdentifyCdw10(s.cdw10).with_cntid(cntid).0;
        s.cdw11 = IdentifyCdw11(0).with_csi(csi).0;
        s
    }

    /// Get Features, NVMe Base 2.0 §5.15. The value comes back in CQE DW0 (and, for some
    /// features, in a data buffer).
    pub const fn get_features(fid: Fid, sel: Sel) -> Self {
        let mut s = Self::admin(Admin::GetFeatures);
        s.cdw10 = GetFeaturesCdw10(0).with_fid(fid.0).with_sel(sel as u8).0;
        s
    }

    /// Set Features, NVMe Base 2.0 §5.27, with the feature's value in CDW11; `save` asks the
    /// controller to keep it across power cycles. Features with more dwords set CDW12-15 on
    /// the result.
    pub const fn set_features(fid: Fid, cdw11: u32, save: bool) -> Self {
        let mut s = Self::admin(Admin::SetFeatures);
        s.cdw10 = SetFeaturesCdw10(0).with_fid(fid.0).with_sv(save).0;
        s.cdw11 = cdw11;
        s
    }

    /// Set Features – Host Memory Buffer, NVMe Base 2.0 §5.27: enable (or disable) a buffer of
    /// `hsize` memory pages described by `entries` [`super::features::HmbDescriptor`]s at bus address `list`
    /// (16-byte aligned).
    pub const fn set_host_memory_buffer(
        cdw11: HmbCdw11,
        hsize: u32,
        list: u64,
        entries: u32,
    ) -> Self {
        let mut s = Self::set_features(Fid::HOST_MEMORY_BUFFER, cdw11.0, false);
        s.cdw12 = hsize;
        s.cdw13 = Qword(list).lo();
        s.cdw14 = Qword(list).hi();
        s.cdw15 = entries;
        s
    }

    /// Get Log Page, NVMe Base 2.0 §5.16: `numd + 1` dwords of log `lid` starting at byte
    /// `offset` (which must be a multiple of four). See [`numd_of`].
    pub const fn get_log_page(lid: LogId, nsid: u32, numd: u32, offset: u64) -> Self {
        let mut s = Self::admin(Admin::GetLogPage).with_nsid(nsid);
        s.cdw10 = GetLogCdw10(0)
            .with_lid(lid.0)
            .with_numdl(Numd(numd).lower())
            .0;
        s.cdw11 = GetLogCdw11(0).with_numdu(Numd(numd).upper()).0;
        s.cdw12 = Qword(offset).lo();
        s.cdw13 = Qword(offset).hi();
        s
    }

    /// Returns a copy of a Get Log Page command with Retain Asynchronous Event set to `rae`.
    #[must_use]
    pub const fn with_rae(mut self, rae: bool) -> Self {
        self.cdw10 = GetLogCdw10(self.cdw10).with_rae(rae).0;
        self
    }

    /// Create I/O Completion Queue, NVMe Base 2.0 §5.4: queue `qid` of `qsize + 1` entries in
    /// the physically contiguous memory at `base`, signalling MSI-X vector `iv` when `ien`.
    pub const fn create_io_cq(qid: u16, qsize: u16, base: u64, iv: u16, ien: bool) -> Self {
        let mut s = Self::admin(Admin::CreateIoCq).with_prp(base, 0);
        s.cdw10 = QueueCdw10(0).with_qid(qid).with_qsize(qsize).0;
        s.cdw11 = CreateCqCdw11(0).with_pc(true).with_ien(ien).with_iv(iv).0;
        s
    }

    /// Create I/O Submission Queue, NVMe Base 2.0 §5.5: queue `qid` of `qsize + 1` entries in
    /// the physically contiguous memory at `base`, completing to queue `cqid`.
    pub const fn create_io_sq(qid: u16, qsize: u16, base: u64, cqid: u16, qprio: Qprio) -> Self {
        let mut s = Self::admin(Admin::CreateIoSq).with_prp(base, 0);
        s.cdw10 = QueueCdw10(0).with_qid(qid).with_qsize(qsize).0;
        s.cdw11 = CreateSqCdw11(0)
            .with_pc(true)
            .with_qprio(qprio as u8)
            .with_cqid(cqid)
            .0;
        s
    }

    /// Delete I/O Completion Queue, NVMe Base 2.0 §5.6.
    pub const fn delete_io_cq(qid: u16) -> Self {
        let mut s = Self::admin(Admin::DeleteIoCq);
        s.cdw10 = QueueCdw10(0).with_qid(qid).0;
        s
    }

    /// Delete I/O Submission Queue, NVMe Base 2.0 §5.7.
    pub const fn delete_io_sq(qid: u16) -> Self {
        let mut s = Self::admin(Admin::DeleteIoSq);
        s.cdw10 = QueueCdw10(0).with_qid(qid).0;
        s
    }

    /// Abort, NVMe Base 2.0 §5.1: abort command `cid` on submission queue `sqid`.
    pub const fn abort(sqid: u16, cid: u16) -> Self {
        let mut s = Self::admin(Admin::Abort);
        s.cdw10 = AbortCdw10(0).with_sqid(sqid).with_cid(cid).0;
        s
    }

    /// Asynchronous Event Request, NVMe Base 2.0 §5.2. Completes when an event occurs; the
    /// event is in CQE DW0 ([`super::cqe::AsyncEvent`]).
    pub const fn async_event_request() -> Self {
        Self::admin(Admin::AsyncEventRequest)
    }

    /// Doorbell Buffer Config, NVMe Base 2.0 §5.11: the shadow doorbell buffer and the
    /// EventIdx buffer, one memory page each.
    pub const fn doorbell_buffer_config(shadow: u64, eventidx: u64) -> Self {
        Self::admin(Admin::DoorbellBufferConfig).with_prp(shadow, eventidx)
    }

    /// Keep Alive, NVMe Base 2.0 §5.18.
    pub const fn keep_alive() -> Self {
        Self::admin(Admin::KeepAlive)
    }

    /// Namespace Attachment, NVMe Base 2.0 §5.20: attach or detach namespace `nsid` to or from
    /// the controllers in the data buffer ([`super::identify::CtrlList`]).
    pub const fn ns_attachment(nsid: u32, sel: NsAttachSel) -> Self {
        let mut s = Self::admin(Admin::NsAttachment).with_nsid(nsid);
        s.cdw10 = NsSelCdw10(0).with_sel(sel as u8).0;
        s
    }

    /// Namespace Management create, NVMe Base 2.0 §5.21: a namespace of command set `csi`
    /// described by the data buffer. The new NSID comes back in CQE DW0.
    pub const fn ns_create(csi: u8) -> Self {
        let mut s = Self::admin(Admin::NsManagement);
        s.cdw10 = NsSelCdw10(0).with_sel(NsMgmtSel::Create as u8).0;
        s.cdw11 = NsMgmtCdw11(0).with_csi(csi).0;
        s
    }

    /// Namespace Management delete, NVMe Base 2.0 §5.21: delete namespace `nsid`
    /// ([`NSID_ALL`] for all).
    pub const fn ns_delete(nsid: u32) -> Self {
        let mut s = Self::admin(Admin::NsManagement).with_nsid(nsid);
        s.cdw10 = NsSelCdw10(0).with_sel(NsMgmtSel::Delete as u8).0;
        s
    }

    /// Format NVM, NVMe Base 2.0 §5.14.
    pub const fn format_nvm(nsid: u32, f: FormatCdw10) -> Self {
        let mut s = Self::admin(Admin::FormatNvm).with_nsid(nsid);
        s.cdw10 = f.0;
        s
    }

    // --- NVM commands ------------------------------------------------------------------------

    /// Read, NVM Cmd Set 1.0 §3.2.4: `nlb + 1` blocks from `slba`.
    pub const fn read(nsid: u32, slba: u64, nlb: u16) -> Self {
        let mut s = Self::nvm(Nvm::Read, nsid).with_slba(slba);
        s.cdw12 = RwCdw12(0).with_nlb(nlb).0;
        s
    }

    /// Write, NVM Cmd Set 1.0 §3.2.6: `nlb + 1` blocks from `slba`.
    pub const fn write(nsid: u32, slba: u64, nlb: u16) -> Self {
        let mut s = Self::nvm(Nvm::Write, nsid).with_slba(slba);
        s.cdw12 = RwCdw12(0).with_nlb(nlb).0;
        s
    }

    /// Flush, NVMe Base 2.0 §7.1.
    pub const fn flush(nsid: u32) -> Self {
        Self::nvm(Nvm::Flush, nsid)
    }

    /// Write Zeroes, NVM Cmd Set 1.0 §3.2.8: `nlb + 1` blocks from `slba`, deallocating them
    /// when `deac` and the namespace supports it.
    pub const fn write_zeroes(nsid: u32, slba: u64, nlb: u16, deac: bool) -> Self {
        let mut s = Self::nvm(Nvm::WriteZeroes, nsid).with_slba(slba);
        s.cdw12 = RwCdw12(0).with_nlb(nlb).with_deac(deac).0;
        s
    }

    /// Dataset Management with Attribute – Deallocate, NVM Cmd Set 1.0 §3.2.3: deallocate the
    /// `nr + 1` [`DsmRange`]s in the data buffer.
    pub const fn dsm_deallocate(nsid: u32, nr: u8) -> Self {
        let mut s = Self::nvm(Nvm::DatasetManagement, nsid);
        s.cdw10 = DsmCdw10(0).with_nr(nr).0;
        s.cdw11 = DsmCdw11(0).with_ad(true).0;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::{FromBytes, IntoBytes};

    fn dword(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap())
    }

    #[test]
    fn read_command_bytes() {
        let sqe = Sqe::read(1, 0x0000_0012_3456_789a, 7)
            .with_cid(0x2a)
            .with_prp(0x1_0000_1000, 0x2000)
            .with_fua(true);
        let b = sqe.as_bytes();
        assert_eq!(b.len(), 64);
        assert_eq!(b[0], 0x02);
        assert_eq!(b[1], 0x00); // FUSE 0, PSDT 0
        assert_eq!(&b[2..4], &[0x2a, 0x00]);
        assert_eq!(dword(b, 1), 1);
        assert_eq!(&b[24..32], &0x1_0000_1000u64.to_le_bytes());
        assert_eq!(&b[32..40], &0x2000u64.to_le_bytes());
        assert_eq!(dword(b, 10), 0x3456_789a);
        assert_eq!(dword(b, 11), 0x12);
        assert_eq!(dword(b, 12), 0x4000_0007);
        assert_eq!(sqe.slba(), 0x12_3456_789a);
        let back = Sqe::read_from_bytes(b).unwrap();
        assert_eq!(back, sqe);
        assert_eq!(back.psdt(), Some(Psdt::Prp));
    }

    #[test]
    fn write_with_lr_and_fused_bits() {
        let sqe = Sqe::write(2, 8, 0)
            .with_lr(true)
            .with_fuse(Fuse::Second)
            .with_cid(0xffff);
        assert_eq!(sqe.cdw0.0, 0xffff_0201);
        assert_eq!(sqe.cdw12, 0x8000_0000);
        assert_eq!(sqe.with_lr(false).with_fua(false).cdw12, 0);
    }

    #[test]
    fn rw_control_and_application_tag_dwords() {
        // NLB 7 with FUA and PRINFO 0101b in the control half-word.
        let c = RwCdw12(0).with_nlb(7).with_control(0x5400);
        assert_eq!(c.0, 0x5400_0007);
        assert!(c.fua() && !c.lr());
        assert_eq!(c.prinfo(), 0b0101);
        assert_eq!(c.control(), 0x5400);
        assert_eq!(c.nlb(), 7);
        // Reserved bits of the half-word pass through; NLB is untouched.
        assert_eq!(RwCdw12(0xffff).with_control(0xffff).0, u32::MAX);
        assert_eq!(RwCdw12(u32::MAX).with_control(0).0, 0xffff);
        let t = RwCdw15(0).with_elbat(0x1234).with_elbatm(0xff00);
        assert_eq!(t.0, 0xff00_1234);
        assert_eq!((t.elbat(), t.elbatm()), (0x1234, 0xff00));
    }

    #[test]
    fn sgl_in_dptr() {
        let d = sgl::Descriptor::data_block(0xdead_b000, 0x3000);
        let sqe = Sqe::read(1, 0, 5).with_sgl(d);
        let b = sqe.as_bytes();
        assert_eq!(Cdw0(dword(b, 0)).psdt(), 1, "PSDT = 01b");
        assert_eq!(&b[24..40], d.as_bytes());
        assert_eq!(sqe.dptr.sgl(), d);
        assert_eq!(sqe.psdt(), Some(Psdt::SglMptrContiguous));
    }

    #[test]
    fn identify_and_features() {
        let s = Sqe::identify(Cns::Controller, 0);
        assert_eq!((s.opcode(), s.cdw10, s.nsid), (0x06, 0x01, 0));
        let s = Sqe::identify_with(Cns::CsController, 0, 0x12, 2);
        assert_eq!((s.cdw10, s.cdw11), (0x0012_0006, 0x0200_0000));
        let s = Sqe::get_features(Fid::NUMBER_OF_QUEUES, Sel::Supported);
        assert_eq!((s.opcode(), s.cdw10), (0x0a, 0x0307));
        let s = Sqe::set_features(Fid::VOLATILE_WRITE_CACHE, 1, true);
        assert_eq!((s.opcode(), s.cdw10, s.cdw11), (0x09, 0x8000_0006, 1));
        let s = Sqe::set_host_memory_buffer(HmbCdw11(0).with_ehm(true), 1024, 0x1_2345_6780, 4);
        assert_eq!((s.cdw10, s.cdw11, s.cdw12), (0x0d, 1, 1024));
        assert_eq!((s.cdw13, s.cdw14, s.cdw15), (0x2345_6780, 1, 4));
    }

    #[test]
    fn get_log_page_dwords() {
        let numd = numd_of(512).unwrap();
        assert_eq!(numd, 127);
        let s = Sqe::get_log_page(LogId::SMART, NSID_ALL, numd, 0).with_rae(true);
        assert_eq!(s.cdw10, 0x007f_8002);
        assert_eq!(s.cdw11, 0);
        // A count and offset that need the upper halves.
        let s = Sqe::get_log_page(LogId::ERROR, 0, 0x0001_ffff, 0x1_0000_0200);
        assert_eq!(s.cdw10, 0xffff_0001);
        assert_eq!(s.cdw11, 0x0000_0001);
        assert_eq!((s.cdw12, s.cdw13), (0x200, 1));
        assert_eq!(numd_of(0), None);
        assert_eq!(numd_of(6), None);
        assert_eq!(numd_of(4), Some(0));
    }

    #[test]
    fn queue_commands() {
        let s = Sqe::create_io_cq(3, 1023, 0xabc000, 2, true);
        assert_eq!(s.opcode(), 0x05);
        assert_eq!(s.cdw10, 0x03ff_0003);
        assert_eq!(s.cdw11, 0x0002_0003);
        assert_eq!(s.dptr.prp1, 0xabc000);
        let s = Sqe::create_io_sq(3, 1023, 0xdef000, 3, Qprio::Medium);
        assert_eq!(s.opcode(), 0x01);
        assert_eq!(s.cdw11, 0x0003_0005);
        assert_eq!(Sqe::delete_io_sq(4).cdw10, 4);
        assert_eq!(Sqe::delete_io_cq(4).opcode(), 0x04);
        let s = Sqe::abort(1, 0x55);
        assert_eq!(s.cdw10, 0x0055_0001);
    }

    #[test]
    fn misc_admin_commands() {
        let s = Sqe::doorbell_buffer_config(0x1000, 0x2000);
        assert_eq!(s.opcode(), 0x7c);
        assert_eq!((s.dptr.prp1, s.dptr.prp2), (0x1000, 0x2000));
        assert_eq!(Sqe::async_event_request().opcode(), 0x0c);
        assert_eq!(Sqe::keep_alive().opcode(), 0x18);
        let s = Sqe::ns_attachment(5, NsAttachSel::Detach);
        assert_eq!((s.opcode(), s.nsid, s.cdw10), (0x15, 5, 1));
        let s = Sqe::ns_create(0);
        assert_eq!((s.opcode(), s.cdw10, s.cdw11), (0x0d, 0, 0));
        let s = Sqe::ns_delete(NSID_ALL);
        assert_eq!((s.nsid, s.cdw10), (NSID_ALL, 1));
        let f = FormatCdw10::lba_format(37).with_ses(1).with_mset(true);
        assert_eq!(f.0, 0x2215);
        assert_eq!(f.index(), 37);
        let s = Sqe::format_nvm(1, f);
        assert_eq!((s.opcode(), s.cdw10), (0x80, 0x2215));
    }

    #[test]
    fn nvm_data_commands() {
        let s = Sqe::flush(NSID_ALL);
        assert_eq!((s.opcode(), s.nsid), (0, NSID_ALL));
        let s = Sqe::write_zeroes(1, 100, 15, true).with_fua(true);
        assert_eq!(s.opcode(), 0x08);
        assert_eq!(s.cdw12, 0x4200_000f);
        let s = Sqe::dsm_deallocate(1, 2);
        assert_eq!((s.opcode(), s.cdw10, s.cdw11), (0x09, 2, 4));
        let r = DsmRange::new(0x1_0000_0000, 8);
        assert_eq!(
            r.as_bytes(),
            &[0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn garbage_decodes_without_panic() {
        let raw = [0xffu8; 64];
        let s = Sqe::read_from_bytes(&raw[..]).unwrap();
        assert_eq!(s.psdt(), None);
        assert_eq!(s.cid(), 0xffff);
        assert_eq!(RwCdw12(s.cdw12).nlb(), 0xffff);
        assert!(Sqe::read_from_bytes(&raw[..63]).is_err());
    }
}
