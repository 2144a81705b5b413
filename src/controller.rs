//! Controller state: register snapshots, bring-up, shutdown and reset.

use crate::orion::spec::regs::{
    Cap, Csts, Offset, Shutdown, Vs, CSS_ADMIN_ONLY, CSS_IO_SETS, CSS_NVM,
};
use crate::orion_compat::{Error, ErrorKind, Mmio};

/// Errors from controller register access and state transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// The platform failed the access.
    Platform(ErrorKind),
    /// The controller's registers read as all ones: it is gone.
    Gone,
}

/// The identity registers of a controller, read once at probe: CAP, VS and CSTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterSnapshot {
    /// Controller Capabilities.
    pub cap: Cap,
    /// Version.
    pub vs: Vs,
    /// Controller Status at the time of the read.
    pub csts: Csts,
}

impl RegisterSnapshot {
    /// Reads CAP, VS and CSTS.
    ///
    /// Fails with [`CtrlError::Gone`] when CSTS reads as all ones, the signature of a
    /// removed device; the other values are then meaningless.
    pub fn read<M: Mmio>(mmio: &M) -> Result<Self, CtrlError> {
        let plat = |e: M::Error| CtrlError::Platform(e.kind());
        let csts = Csts(mmio.read32(Offset::Csts.at()).map_err(plat)?);
        if csts.is_gone() {
            return Err(CtrlError::Gone);
        }
        let cap = Cap(mmio.read64(Offset::Cap.at()).map_err(plat)?);
        let vs = Vs(mmio.read32(Offset::Vs.at()).map_err(plat)?);
        Ok(Self { cap, vs, csts })
    }
}

/// Prints the decoded registers on one line, in the order and units `nvme show-regs -H` uses.
impl core::fmt::Display for RegisterSnapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let cap = self.cap;
        write!(
            f,
            "NVMe {} cap {:#018x} mqes {} ({} entries) cqr {} dstrd {} ({} B) to {} ({} ms) css {:#04x} [",
            self.vs,
            cap.0,
            cap.mqes(),
            cap.max_queue_entries(),
            u8::from(cap.cqr()),
            cap.dstrd(),
            cap.doorbell_stride(),
            cap.to(),
            cap.timeout_ms(),
            cap.css(),
        )?;
        let mut sep = "";
        for (bit, name) in [
            (CSS_NVM, "nvm"),
            (CSS_IO_SETS, "io-sets"),
            (CSS_ADMIN_ONLY, "admin-only"),
        ] {
            if cap.css() & bit != 0 {
                write!(f, "{sep}{name}")?;
                sep = ",";
            }
        }
        write!(
            f,
            "] mpsmin {} ({} KiB) mpsmax {} ({} KiB) nssrs {} cmbs {} pmrs {} csts {:#x} (rdy {} cfs {} shst {:?})",
            cap.mpsmin(),
            cap.min_page_size() / 1024,
            cap.mpsmax(),
            cap.max_page_size() / 1024,
            u8::from(cap.nssrs()),
            u8::from(cap.cmbs()),
            u8::from(cap.pmrs()),
            self.csts.0,
            u8::from(self.csts.rdy()),
            u8::from(self.csts.cfs()),
            Shutdown::from_bits(self.csts.shst()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orion_compat::Mmio;
    use orion_sim::regfile::RegFile;
    use std::format;

    #[test]
    fn snapshot_reads_and_formats() {
        let regs = RegFile::new(0x2000);
        regs.write64(Offset::Cap.at(), 0x0040_0020_0f01_07ff)
            .unwrap();
        regs.write32(Offset::Vs.at(), 0x0001_0400).unwrap();
        regs.write32(Offset::Csts.at(), 1).unwrap();
        let snap = RegisterSnapshot::read(&regs).unwrap();
        assert_eq!(snap.cap.mqes(), 0x7ff);
        assert_eq!(snap.vs.mnr(), 4);
        let text = format!("{snap}");
        assert!(
            text.starts_with("NVMe 1.4.0 cap 0x004000200f0107ff"),
            "{text}"
        );
        assert!(text.contains("mqes 2047 (2048 entries)"), "{text}");
        assert!(text.contains("to 15 (7500 ms)"), "{text}");
        assert!(text.contains("dstrd 0 (4 B)"), "{text}");
        assert!(
            text.contains("mpsmin 0 (4 KiB) mpsmax 4 (64 KiB)"),
            "{text}"
        );
        assert!(text.contains("rdy 1 cfs 0"), "{text}");
    }

    #[test]
    fn snapshot_of_removed_device_is_gone() {
        let regs = RegFile::gone(0x2000);
        assert_eq!(RegisterSnapshot::read(&regs), Err(CtrlError::Gone));
    }

    #[test]
    fn snapshot_out_of_range_is_platform_error() {
        let regs = RegFile::new(0x10);
        assert_eq!(
            RegisterSnapshot::read(&regs),
            Err(CtrlError::Platform(ErrorKind::OutOfRange))
        );
    }
}
