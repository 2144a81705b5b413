//! Controller registers, NVMe Base 2.0 §3.1.4 (PCIe transport: BAR0).

use super::bitfield::bitfield;

/// Byte offsets of the controller registers in BAR0, NVMe Base 2.0 §3.1.4, Figure 33.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Offset {
    /// Controller Capabilities (64-bit).
    Cap = 0x00,
    /// Version.
    Vs = 0x08,
    /// Interrupt Mask Set.
    Intms = 0x0c,
    /// Interrupt Mask Clear.
    Intmc = 0x10,
    /// Controller Configuration.
    Cc = 0x14,
    /// Controller Status.
    Csts = 0x1c,
    /// NVM Subsystem Reset.
    Nssr = 0x20,
    /// Admin Queue Attributes.
    Aqa = 0x24,
    /// Admin Submission Queue Base Address (64-bit).
    Asq = 0x28,
    /// Admin Completion Queue Base Address (64-bit).
    Acq = 0x30,
    /// Controller Memory Buffer Location.
    Cmbloc = 0x38,
    /// Controller Memory Buffer Size.
    Cmbsz = 0x3c,
}

impl Offset {
    /// The byte offset in BAR0.
    pub const fn at(self) -> usize {
        self as usize
    }
}

/// Offset of the first doorbell register, NVMe Base 2.0 §3.1.4.
pub const DOORBELL_BASE: usize = 0x1000;

/// The value written to NSSR to start an NVM Subsystem Reset ("NVMe" in ASCII),
/// NVMe Base 2.0 §3.1.4.7.
pub const NSSR_RESET: u32 = 0x4e56_4d65;

bitfield! {
    /// Controller Capabilities (CAP), NVMe Base 2.0 §3.1.4.1.
    pub struct Cap(u64) {
        /// Maximum Queue Entries Supported, 0's based (so at least 1, meaning 2 entries).
        15:0 mqes: u16;
        /// Contiguous Queues Required.
        16:16 cqr: bool;
        /// Arbitration Mechanism Supported: bit 0 weighted round robin, bit 1 vendor specific.
        18:17 ams: u8;
        /// Timeout: worst-case time for CSTS.RDY to change after CC.EN changes, in 500 ms units.
        31:24 to: u8;
        /// Doorbell Stride: doorbells are `4 << dstrd` bytes apart.
        35:32 dstrd: u8;
        /// NVM Subsystem Reset Supported.
        36:36 nssrs: bool;
        /// Command Sets Supported (bit 0 NVM, bit 6 I/O command sets, bit 7 admin only).
        44:37 css: u8;
        /// Boot Partition Support.
        45:45 bps: bool;
        /// Controller Power Scope.
        47:46 cps: u8;
        /// Memory Page Size Minimum: `2 ^ (12 + mpsmin)` bytes.
        51:48 mpsmin: u8;
        /// Memory Page Size Maximum: `2 ^ (12 + mpsmax)` bytes.
        55:52 mpsmax: u8;
        /// Persistent Memory Region Supported.
        56:56 pmrs: bool;
        /// Controller Memory Buffer Supported.
        57:57 cmbs: bool;
        /// NVM Subsystem Shutdown Supported.
        58:58 nsss: bool;
        /// Controller Ready Modes Supported (bit 0 with media, bit 1 independent of media).
        60:59 crms: u8;
    }
}

/// CAP.CSS bit: the NVM command set.
pub const CSS_NVM: u8 = 1 << 0;
/// CAP.CSS bit: one or more I/O command sets (select with CC.CSS = 110b).
pub const CSS_IO_SETS: u8 = 1 << 6;
/// CAP.CSS bit: no I/O command set, admin only (select with CC.CSS = 111b).
pub const CSS_ADMIN_ONLY: u8 = 1 << 7;

impl Cap {
    /// Queue entries the controller supports per queue (MQES is 0's based).
    pub const fn max_queue_entries(self) -> u32 {
        self.mqes() as u32 + 1
    }

    /// Worst-case CSTS.RDY transition time in milliseconds.
    pub const fn timeout_ms(self) -> u32 {
        self.to() as u32 * 500
    }

    /// Distance between doorbell registers in bytes.
    pub const fn doorbell_stride(self) -> usize {
        4usize << self.dstrd()
    }

    /// Smallest host memory page size the controller supports, in bytes.
    pub const fn min_page_size(self) -> u64 {
        1u64 << (12 + self.mpsmin())
    }

    /// Largest host memory page size the controller supports, in bytes.
    pub const fn max_page_size(self) -> u64 {
        1u64 << (12 + self.mpsmax())
    }

    /// Offset of the submission queue `qid` tail doorbell, NVMe Base 2.0 §3.1.4.23.
    pub const fn sq_tail_doorbell(self, qid: u16) -> usize {
        DOORBELL_BASE + (2 * qid as usize) * self.doorbell_stride()
    }

    /// Offset of the completion queue `qid` head doorbell, NVMe Base 2.0 §3.1.4.24.
    pub const fn cq_head_doorbell(self, qid: u16) -> usize {
        DOORBELL_BASE + (2 * qid as usize + 1) * self.doorbell_stride()
    }
}

bitfield! {
    /// Version (VS), NVMe Base 2.0 §3.1.4.2.
    pub struct Vs(u32) {
        /// Major version.
        31:16 mjr: u16;
        /// Minor version.
        15:8 mnr: u8;
        /// Tertiary version.
        7:0 ter: u8;
    }
}

impl core::fmt::Display for Vs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}.{}", self.mjr(), self.mnr(), self.ter())
    }
}

/// CC.SHN and CSTS.SHST encodings, NVMe Base 2.0 §3.1.4.5 and §3.1.4.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No notification / normal operation.
    None,
    /// Normal shutdown notification / shutdown processing occurring.
    Normal,
    /// Abrupt shutdown notification / shutdown processing complete.
    Abrupt,
    /// Reserved encoding (11b).
    Reserved,
}

impl Shutdown {
    /// Decodes the two-bit field.
    pub const fn from_bits(v: u8) -> Self {
        match v & 3 {
            0 => Self::None,
            1 => Self::Normal,
            2 => Self::Abrupt,
            _ => Self::Reserved,
        }
    }

    /// The two-bit encoding.
    pub const fn bits(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Normal => 1,
            Self::Abrupt => 2,
            Self::Reserved => 3,
        }
    }
}

bitfield! {
    /// Controller Configuration (CC), NVMe Base 2.0 §3.1.4.5.
    pub struct Cc(u32) {
        /// Enable.
        0:0 en / with_en: bool;
        /// I/O Command Set Selected (000b NVM, 110b all supported sets, 111b admin only).
        6:4 css / with_css: u8;
        /// Memory Page Size: `2 ^ (12 + mps)` bytes.
        10:7 mps / with_mps: u8;
        /// Arbitration Mechanism Selected.
        13:11 ams / with_ams: u8;
        /// Shutdown Notification (see [`Shutdown`]).
        15:14 shn / with_shn: u8;
        /// I/O Submission Queue Entry Size, log2 bytes.
        19:16 iosqes / with_iosqes: u8;
        /// I/O Completion Queue Entry Size, log2 bytes.
        23:20 iocqes / with_iocqes: u8;
        /// Controller Ready Independent of Media Enable.
        24:24 crime / with_crime: bool;
    }
}

/// CC.CSS value 000b: the NVM Command Set, NVMe Base 2.0 §3.1.4.5 (for a controller whose
/// CAP.CSS has [`CSS_NVM`]).
pub const CC_CSS_NVM: u8 = 0b000;
/// CC.CSS value 110b: all supported I/O Command Sets, NVMe Base 2.0 §3.1.4.5 (for a
/// controller whose CAP.CSS has [`CSS_IO_SETS`]).
pub const CC_CSS_ALL_IO_SETS: u8 = 0b110;
/// CC.CSS value 111b: Admin Command Set only, no I/O command set, NVMe Base 2.0 §3.1.4.5
/// (for a controller whose CAP.CSS has [`CSS_ADMIN_ONLY`]).
pub const CC_CSS_ADMIN_ONLY: u8 = 0b111;

bitfield! {
    /// Controller Status (CSTS), NVMe Base 2.0 §3.1.4.6.
    pub struct Csts(u32) {
        /// Ready.
        0:0 rdy: bool;
        /// Controller Fatal Status.
        1:1 cfs: bool;
        /// Shutdown Status (see [`Shutdown`]).
        3:2 shst: u8;
        /// NVM Subsystem Reset Occurred.
        4:4 nssro: bool;
        /// Processing Paused.
        5:5 pp: bool;
        /// Shutdown Type.
        6:6 st: bool;
    }
}

impl Csts {
    /// True when the register reads as all ones: the device is gone (surprise removal) or
    /// has failed so badly that its BAR no longer decodes.
    pub const fn is_gone(self) -> bool {
        self.0 == u32::MAX
    }
}

bitfield! {
    /// Admin Queue Attributes (AQA), NVMe Base 2.0 §3.1.4.8.
    pub struct Aqa(u32) {
        /// Admin Submission Queue Size, 0's based.
        11:0 asqs / with_asqs: u16;
        /// Admin Completion Queue Size, 0's based.
        27:16 acqs / with_acqs: u16;
    }
}

bitfield! {
    /// Controller Memory Buffer Location (CMBLOC), NVMe Base 2.0 §3.1.4.11.
    pub struct Cmbloc(u32) {
        /// Base Indicator Register: the BAR holding the CMB.
        2:0 bir: u8;
        /// Offset within the BAR, in CMBSZ.SZU units.
        31:12 ofst: u32;
    }
}

bitfield! {
    /// Controller Memory Buffer Size (CMBSZ), NVMe Base 2.0 §3.1.4.12.
    pub struct Cmbsz(u32) {
        /// Submission Queue Support.
        0:0 sqs: bool;
        /// Completion Queue Support.
        1:1 cqs: bool;
        /// PRP/SGL List Support.
        2:2 lists: bool;
        /// Read Data Support.
        3:3 rds: bool;
        /// Write Data Support.
        4:4 wds: bool;
        /// Size Units: `4 KiB * 16 ^ szu`.
        11:8 szu: u8;
        /// Size, in SZU units.
        31:12 sz: u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CAP as QEMU 7.2's `-device nvme` reports it (logged by orion_nvme in the test VM).
    const QEMU_CAP: u64 = 0x0040_1820_0f01_07ff;

    #[test]
    fn cap_decodes_qemu_value() {
        let cap = Cap(QEMU_CAP);
        assert_eq!(cap.mqes(), 0x7ff);
        assert_eq!(cap.max_queue_entries(), 2048);
        assert!(cap.cqr());
        assert_eq!(cap.to(), 0x0f);
        assert_eq!(cap.timeout_ms(), 7500);
        assert_eq!(cap.dstrd(), 0);
        assert_eq!(cap.css(), CSS_NVM | CSS_IO_SETS | CSS_ADMIN_ONLY);
        assert_eq!(cap.mpsmin(), 0);
        assert_eq!(cap.mpsmax(), 4);
        assert!(!cap.cmbs() && !cap.pmrs());
        assert_eq!(cap.min_page_size(), 4096);
        assert_eq!(cap.max_page_size(), 65536);
    }

    #[test]
    fn doorbells_follow_stride() {
        let cap = Cap(0).with_raw_dstrd(2);
        assert_eq!(cap.doorbell_stride(), 16);
        assert_eq!(cap.sq_tail_doorbell(0), 0x1000);
        assert_eq!(cap.cq_head_doorbell(0), 0x1010);
        assert_eq!(cap.sq_tail_doorbell(3), 0x1060);
        assert_eq!(cap.cq_head_doorbell(3), 0x1070);
    }

    impl Cap {
        fn with_raw_dstrd(self, v: u8) -> Self {
            Self((self.0 & !(0xf << 32)) | (u64::from(v) << 32))
        }
    }

    #[test]
    fn cc_fields_round_trip() {
        let cc = Cc(0)
            .with_en(true)
            .with_css(0)
            .with_mps(0)
            .with_shn(Shutdown::Normal.bits())
            .with_iosqes(6)
            .with_iocqes(4);
        assert_eq!(cc.0, 0x0046_4001);
        assert!(cc.en());
        assert_eq!(Shutdown::from_bits(cc.shn()), Shutdown::Normal);
        assert_eq!(cc.with_en(false).0, 0x0046_4000);
        // Out-of-range values are masked to the field, never spill into neighbours.
        assert_eq!(Cc(0).with_css(0xff).0, 0x70);
    }

    #[test]
    fn cc_css_values() {
        assert_eq!(Cc(0).with_css(CC_CSS_NVM).0, 0x00);
        assert_eq!(Cc(0).with_css(CC_CSS_ALL_IO_SETS).0, 0x60);
        assert_eq!(Cc(0).with_css(CC_CSS_ADMIN_ONLY).0, 0x70);
        assert_eq!(Cc(0x60).css(), CC_CSS_ALL_IO_SETS);
        assert_eq!(Cc(0x70).css(), CC_CSS_ADMIN_ONLY);
    }

    #[test]
    fn csts_and_vs() {
        let csts = Csts(0b1001);
        assert!(csts.rdy() && !csts.cfs());
        assert_eq!(Shutdown::from_bits(csts.shst()), Shutdown::Abrupt);
        assert!(Csts(u32::MAX).is_gone());
        let vs = Vs(0x0001_0400);
        assert_eq!((vs.mjr(), vs.mnr(), vs.ter()), (1, 4, 0));
        let aqa = Aqa(0).with_asqs(31).with_acqs(31);
        assert_eq!(aqa.0, 0x001f_001f);
    }
}
