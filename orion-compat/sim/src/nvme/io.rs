//! NVM Command Set I/O commands (NVM Command Set 1.0 §3.3).

use super::ctrl::{Ctrl, Outcome};
use super::dptr::{DmaError, Xfer};
use super::status::{generic, media, Status};
use super::wire::{get_u32, get_u64, Sqe};

/// NVM command set opcodes (NVM Command Set 1.0 §3.3, Figure 18).
pub mod op {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Compare.
    pub const COMPARE: u8 = 0x05;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
    /// Dataset Management.
    pub const DSM: u8 = 0x09;
    /// Verify.
    pub const VERIFY: u8 = 0x0c;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rw {
    Read,
    Write,
    Compare,
    Verify,
}

impl Ctrl {
    /// Executes an I/O command.
    pub(super) fn io(&mut self, sqe: &Sqe) -> Outcome {
        let oncs = self.cfg.oncs;
        let supported = self.io_enabled
            && match sqe.opcode() {
                op::FLUSH | op::WRITE | op::READ => true,
                op::COMPARE => oncs & (1 << 0) != 0,
                op::WRITE_ZEROES => oncs & (1 << 3) != 0,
                op::DSM => oncs & (1 << 2) != 0,
                op::VERIFY => oncs & (1 << 7) != 0,
                _ => false,
            };
        if !supported {
            return generic::INVALID_OPCODE.into();
        }
        let psdt_ok = match sqe.psdt() {
            0 => true,
            1 => self.cfg.sgls,
            _ => false,
        };
        if sqe.fuse() != 0 || !psdt_ok {
            return generic::INVALID_FIELD.into();
        }
        let r = match sqe.opcode() {
            op::FLUSH => self.flush(sqe),
            op::WRITE => self.rw(sqe, Rw::Write),
            op::READ => self.rw(sqe, Rw::Read),
            op::COMPARE => self.rw(sqe, Rw::Compare),
            op::VERIFY => self.rw(sqe, Rw::Verify),
            op::WRITE_ZEROES => self.write_zeroes(sqe),
            _ => self.dsm(sqe),
        };
        match r {
            Ok(()) => Outcome::ok(0),
            Err(s) => s.into(),
        }
    }

    /// Flush: an active namespace, or FFFFFFFFh when VWC says it is supported.
    fn flush(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let nsid = sqe.nsid();
        if nsid == u32::MAX && self.flush_broadcast() {
            return Ok(());
        }
        self.active_ns(nsid)
            .map(|_| ())
            .ok_or(generic::INVALID_NAMESPACE)
    }

    /// Read, Write, Compare and Verify. Checks, in order: namespace, MDTS, LBA range, data
    /// pointer. FUA and the other CDW12/13 hints are accepted and ignored.
    fn rw(&mut self, sqe: &Sqe, kind: Rw) -> Result<(), Status> {
        let nsid = sqe.nsid();
        let ns = self.active_ns(nsid).ok_or(generic::INVALID_NAMESPACE)?;
        let bs = ns.block_size;
        let slba = sqe.cdw10_11();
        let nlb = u64::from(sqe.cdw(12) & 0xffff) + 1;
        let len = nlb * u64::from(bs);
        let in_range = ns.in_range(slba, nlb);
        if kind != Rw::Verify {
            self.check_transfer(len)?;
        }
        if !in_range {
            return Err(generic::LBA_OUT_OF_RANGE);
        }
        if kind == Rw::Verify {
            return Ok(());
        }
        let segs = self.data_segments(sqe, len, false)?;
        let bus = &self.bus;
        let Some(ns) = self.namespaces.get_mut(&nsid) else {
            return Err(generic::INVALID_NAMESPACE);
        };
        let mut x = Xfer::new(bus, segs);
        let xfer_err = |DmaError| generic::DATA_TRANSFER_ERROR;
        // CAST: block sizes are at most 64 KiB.
        let mut buf = vec![0u8; bs as usize];
        let zero = vec![0u8; bs as usize];
        for lba in slba..slba + nlb {
            match kind {
                Rw::Read => x.put(ns.block(lba).unwrap_or(&zero)).map_err(xfer_err)?,
                Rw::Write => {
                    x.get(&mut buf).map_err(xfer_err)?;
                    ns.store(lba, buf.clone().into_boxed_slice());
                }
                Rw::Compare | Rw::Verify => {
                    x.get(&mut buf).map_err(xfer_err)?;
                    if buf[..] != *ns.block(lba).unwrap_or(&zero) {
                        return Err(media::COMPARE_FAILURE);
                    }
                }
            }
        }
        let s = &mut self.smart;
        match kind {
            Rw::Read => {
                s.host_reads += 1;
                s.bytes_read = s.bytes_read.saturating_add(len);
            }
            Rw::Write => {
                s.host_writes += 1;
                s.bytes_written = s.bytes_written.saturating_add(len);
            }
            _ => {}
        }
        Ok(())
    }

    /// Write Zeroes: the range reads as zeroes afterwards (deallocated or not, DLFEAT says
    /// both read as zeroes). No data transfer, so MDTS does not apply.
    fn write_zeroes(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let nsid = sqe.nsid();
        let slba = sqe.cdw10_11();
        let nlb = u64::from(sqe.cdw(12) & 0xffff) + 1;
        let ns = self
            .namespaces
            .get_mut(&nsid)
            .filter(|n| n.attached)
            .ok_or(generic::INVALID_NAMESPACE)?;
        if !ns.in_range(slba, nlb) {
            return Err(generic::LBA_OUT_OF_RANGE);
        }
        ns.deallocate(slba, nlb);
        Ok(())
    }

    /// Dataset Management (NVM Command Set 1.0 §3.3.2): NR + 1 ranges of 16 bytes; with AD,
    /// each range is deallocated. Every range is checked before any is applied.
    fn dsm(&mut self, sqe: &Sqe) -> Result<(), Status> {
        let nsid = sqe.nsid();
        if self.active_ns(nsid).is_none() {
            return Err(generic::INVALID_NAMESPACE);
        }
        let nr = (sqe.cdw(10) & 0xff) as usize + 1;
        let ad = sqe.cdw(11) & (1 << 2) != 0;
        let d = self.receive(sqe, nr * 16, false)?;
        let ranges: Vec<(u64, u64)> = (0..nr)
            .map(|i| (get_u64(&d, 16 * i + 8), u64::from(get_u32(&d, 16 * i + 4))))
            .collect();
        let ns = self
            .namespaces
            .get_mut(&nsid)
            .ok_or(generic::INVALID_NAMESPACE)?;
        if ranges
            .iter()
            .any(|&(slba, nlb)| nlb > 0 && !ns.in_range(slba, nlb))
        {
            return Err(generic::LBA_OUT_OF_RANGE);
        }
        if ad {
            for (slba, nlb) in ranges {
                ns.deallocate(slba, nlb);
            }
        }
        Ok(())
    }
}
