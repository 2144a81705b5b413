//! A PCI function on the host: configuration space, BARs backed by a device model, bus
//! mastering, and interrupt vectors on a [`SimIrqChip`].

use crate::clock::lock;
use crate::context;
use crate::irq::{Allocation, SimIrqChip, SimVectors};
use orion_compat::irq::{IrqKind, VectorRequest};
use orion_compat::pci::{Pci, PciIds, CONFIG_SPACE_LEN};
use orion_compat::{ErrorKind, Mmio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A device model's register window, as a BAR exposes it.
pub type BarModel = Arc<dyn Mmio<Error = ErrorKind> + Send + Sync>;

/// Which interrupt kinds the simulated function offers, and how many vectors of each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqCaps {
    /// MSI-X table size; 0 for no MSI-X.
    pub msix: u16,
    /// The most MSI vectors (1, 2, 4, 8, 16 or 32); 0 for no MSI.
    pub msi: u16,
    /// Whether the INTx pin is wired.
    pub intx: bool,
}

impl IrqCaps {
    /// What QEMU's NVMe controller offers: 65 MSI-X vectors, MSI and INTx.
    pub const QEMU_NVME: Self = Self {
        msix: 65,
        msi: 32,
        intx: true,
    };
}

struct Bar {
    len: u64,
    model: BarModel,
    mapped: Arc<AtomicBool>,
}

struct PciInner {
    ids: PciIds,
    config: Arc<Mutex<Vec<u8>>>,
    bars: [Option<Bar>; 6],
    caps: Mutex<IrqCaps>,
    chip: SimIrqChip,
    present: Arc<AtomicBool>,
    vectors_live: Arc<AtomicBool>,
}

/// A simulated PCI function. Cloning gives another handle to the same function.
///
/// A device model gets what it needs from the function without holding it (which would make
/// a reference cycle through its BAR): [`SimPciBuilder::irq_chip`] to raise interrupts and
/// [`SimPciBuilder::bus_master`] to check bus mastering before it touches memory.
#[derive(Clone)]
pub struct SimPci {
    inner: Arc<PciInner>,
}

impl std::fmt::Debug for SimPci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimPci")
            .field("ids", &self.inner.ids)
            .finish_non_exhaustive()
    }
}

/// Whether a function's bus mastering is on, as its device model sees it.
#[derive(Clone)]
pub struct BusMaster {
    config: Arc<Mutex<Vec<u8>>>,
    present: Arc<AtomicBool>,
}

impl std::fmt::Debug for BusMaster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BusMaster").field(&self.enabled()).finish()
    }
}

impl BusMaster {
    /// Whether the device may reach memory now: bus mastering on and the device present.
    pub fn enabled(&self) -> bool {
        let c = lock(&self.config);
        self.present.load(Ordering::SeqCst)
            && u16::from_le_bytes([c[COMMAND], c[COMMAND + 1]]) & BUS_MASTER != 0
    }
}

/// Builds a [`SimPci`].
pub struct SimPciBuilder {
    ids: PciIds,
    bars: [Option<Bar>; 6],
    caps: IrqCaps,
    config: Arc<Mutex<Vec<u8>>>,
    chip: SimIrqChip,
    present: Arc<AtomicBool>,
}

impl SimPciBuilder {
    /// Backs BAR `index` (0..=5) of `len` bytes with `model`.
    ///
    /// # Panics
    ///
    /// If `index` is above 5.
    pub fn bar(mut self, index: u8, len: u64, model: BarModel) -> Self {
        self.bars[usize::from(index)] = Some(Bar {
            len,
            model,
            mapped: Arc::default(),
        });
        self
    }

    /// Sets the interrupt kinds offered (default: [`IrqCaps::QEMU_NVME`]).
    pub fn irq_caps(mut self, caps: IrqCaps) -> Self {
        self.caps = caps;
        self
    }

    /// The interrupt controller the function will have, for its device model.
    pub fn irq_chip(&self) -> SimIrqChip {
        self.chip.clone()
    }

    /// The function's bus-master state, for its device model.
    pub fn bus_master(&self) -> BusMaster {
        BusMaster {
            config: self.config.clone(),
            present: self.present.clone(),
        }
    }

    /// The function.
    pub fn build(self) -> SimPci {
        SimPci {
            inner: Arc::new(PciInner {
                ids: self.ids,
                config: self.config,
                bars: self.bars,
                caps: Mutex::new(self.caps),
                chip: self.chip,
                present: self.present,
                vectors_live: Arc::default(),
            }),
        }
    }
}

/// The Command register's offset and its Bus Master Enable bit.
const COMMAND: usize = 0x04;
const BUS_MASTER: u16 = 1 << 2;

impl SimPci {
    /// Starts building a function with identity `ids`, its configuration header filled from
    /// them.
    pub fn builder(ids: PciIds) -> SimPciBuilder {
        let mut config = vec![0u8; CONFIG_SPACE_LEN];
        let mut put =
            |off: usize, bytes: &[u8]| config[off..off + bytes.len()].copy_from_slice(bytes);
        put(0x00, &ids.vendor.to_le_bytes());
        put(0x02, &ids.device.to_le_bytes());
        put(0x08, &[ids.revision]);
        put(0x09, &ids.class.to_le_bytes()[..3]);
        put(0x2c, &ids.subsystem_vendor.to_le_bytes());
        put(0x2e, &ids.subsystem_device.to_le_bytes());
        SimPciBuilder {
            ids,
            bars: Default::default(),
            caps: IrqCaps::QEMU_NVME,
            config: Arc::new(Mutex::new(config)),
            chip: SimIrqChip::new(),
            present: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The interrupt controller a device model raises vectors on.
    pub fn irq_chip(&self) -> &SimIrqChip {
        &self.inner.chip
    }

    /// Whether bus mastering is on.
    pub fn bus_master(&self) -> bool {
        BusMaster {
            config: self.inner.config.clone(),
            present: self.inner.present.clone(),
        }
        .enabled()
    }

    /// Changes the interrupt kinds offered to later allocations.
    pub fn set_irq_caps(&self, caps: IrqCaps) {
        *lock(&self.inner.caps) = caps;
    }

    /// Surprise removal: from now on BARs and configuration space read all ones, writes are
    /// dropped, and [`Pci::is_present`] is false.
    pub fn surprise_remove(&self) {
        self.inner.present.store(false, Ordering::SeqCst);
    }

    fn config_range(&self, offset: usize, n: usize) -> Result<std::ops::Range<usize>, ErrorKind> {
        let end = offset.checked_add(n).ok_or(ErrorKind::OutOfRange)?;
        if end > CONFIG_SPACE_LEN || offset % n != 0 {
            return Err(ErrorKind::OutOfRange);
        }
        Ok(offset..end)
    }

    fn config_read<const N: usize>(&self, offset: usize) -> Result<[u8; N], ErrorKind> {
        let r = self.config_range(offset, N)?;
        if !self.is_present() {
            return Ok([0xff; N]);
        }
        let mut out = [0; N];
        out.copy_from_slice(&lock(&self.inner.config)[r]);
        Ok(out)
    }

    fn config_write<const N: usize>(&self, offset: usize, v: [u8; N]) -> Result<(), ErrorKind> {
        let r = self.config_range(offset, N)?;
        if !self.is_present() {
            return Ok(());
        }
        let mut c = lock(&self.inner.config);
        for (off, b) in r.zip(v) {
            // The identity header is read-only; Command and everything past the header is
            // writable.
            if (COMMAND..COMMAND + 2).contains(&off) || off >= 0x40 {
                c[off] = b;
            }
        }
        Ok(())
    }

    fn grant(&self, req: &VectorRequest) -> Result<(IrqKind, u16), ErrorKind> {
        let caps = *lock(&self.inner.caps);
        let mut offered = false;
        if req.kinds.contains(IrqKind::MsiX) && caps.msix > 0 {
            offered = true;
            if caps.msix >= req.min {
                return Ok((IrqKind::MsiX, req.max.min(caps.msix)));
            }
        }
        if req.kinds.contains(IrqKind::Msi) && caps.msi > 0 {
            offered = true;
            let cap = req.max.min(caps.msi).min(32);
            let n = if cap == 0 {
                0
            } else {
                1 << (15 - cap.leading_zeros())
            };
            if n >= req.min {
                return Ok((IrqKind::Msi, n));
            }
        }
        if req.kinds.contains(IrqKind::Intx) && caps.intx {
            offered = true;
            if req.min == 1 {
                return Ok((IrqKind::Intx, 1));
            }
        }
        Err(if offered {
            ErrorKind::NoMemory
        } else {
            ErrorKind::Unsupported
        })
    }
}

/// A mapped BAR: the model's window, bounds-checked, reading all ones once the device is
/// removed.
pub struct SimBar {
    len: u64,
    model: BarModel,
    present: Arc<AtomicBool>,
    mapped: Arc<AtomicBool>,
}

impl std::fmt::Debug for SimBar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBar")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for SimBar {
    fn drop(&mut self) {
        self.mapped.store(false, Ordering::SeqCst);
    }
}

impl SimBar {
    fn check(&self, offset: usize, n: usize) -> Result<bool, ErrorKind> {
        let end = offset.checked_add(n).ok_or(ErrorKind::OutOfRange)?;
        if end as u64 > self.len || offset % n != 0 {
            return Err(ErrorKind::OutOfRange);
        }
        Ok(self.present.load(Ordering::SeqCst))
    }
}

impl Mmio for SimBar {
    type Error = ErrorKind;

    fn read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        if self.check(offset, 4)? {
            self.model.read32(offset)
        } else {
            Ok(u32::MAX)
        }
    }

    fn write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        if self.check(offset, 4)? {
            self.model.write32(offset, value)
        } else {
            Ok(())
        }
    }

    fn read64(&self, offset: usize) -> Result<u64, ErrorKind> {
        if self.check(offset, 8)? {
            self.model.read64(offset)
        } else {
            Ok(u64::MAX)
        }
    }

    fn write64(&self, offset: usize, value: u64) -> Result<(), ErrorKind> {
        if self.check(offset, 8)? {
            self.model.write64(offset, value)
        } else {
            Ok(())
        }
    }
}

impl Pci for SimPci {
    type Error = ErrorKind;
    type Bar = SimBar;
    type Vectors = SimVectors;

    fn ids(&self) -> PciIds {
        self.inner.ids
    }

    fn bar_len(&self, index: u8) -> u64 {
        self.inner
            .bars
            .get(usize::from(index))
            .and_then(Option::as_ref)
            .map_or(0, |b| b.len)
    }

    fn map_bar(&self, index: u8) -> Result<SimBar, ErrorKind> {
        context::might_sleep("Pci::map_bar");
        let bar = self
            .inner
            .bars
            .get(usize::from(index))
            .and_then(Option::as_ref)
            .ok_or(ErrorKind::OutOfRange)?;
        if bar.mapped.swap(true, Ordering::SeqCst) {
            return Err(ErrorKind::Busy);
        }
        Ok(SimBar {
            len: bar.len,
            model: bar.model.clone(),
            present: self.inner.present.clone(),
            mapped: bar.mapped.clone(),
        })
    }

    fn config_read8(&self, offset: usize) -> Result<u8, ErrorKind> {
        self.config_read::<1>(offset).map(|[b]| b)
    }

    fn config_read16(&self, offset: usize) -> Result<u16, ErrorKind> {
        self.config_read(offset).map(u16::from_le_bytes)
    }

    fn config_read32(&self, offset: usize) -> Result<u32, ErrorKind> {
        self.config_read(offset).map(u32::from_le_bytes)
    }

    fn config_write8(&self, offset: usize, value: u8) -> Result<(), ErrorKind> {
        self.config_write(offset, [value])
    }

    fn config_write16(&self, offset: usize, value: u16) -> Result<(), ErrorKind> {
        self.config_write(offset, value.to_le_bytes())
    }

    fn config_write32(&self, offset: usize, value: u32) -> Result<(), ErrorKind> {
        self.config_write(offset, value.to_le_bytes())
    }

    fn set_bus_master(&self, enable: bool) -> Result<(), ErrorKind> {
        context::might_sleep("Pci::set_bus_master");
        let cmd = self.config_read16(COMMAND)?;
        let cmd = if enable {
            cmd | BUS_MASTER
        } else {
            cmd & !BUS_MASTER
        };
        self.config_write16(COMMAND, cmd)
    }

    fn alloc_irq_vectors(&self, req: &VectorRequest) -> Result<SimVectors, ErrorKind> {
        context::might_sleep("Pci::alloc_irq_vectors");
        if req.min == 0 || req.min > req.max || req.kinds.is_empty() || req.pre_vectors > req.max {
            return Err(ErrorKind::OutOfRange);
        }
        let (kind, count) = self.grant(req)?;
        if self.inner.vectors_live.swap(true, Ordering::SeqCst) {
            return Err(ErrorKind::Busy);
        }
        let live = self.inner.vectors_live.clone();
        let alloc = Allocation::new(self.inner.chip.clone(), move || {
            live.store(false, Ordering::SeqCst)
        });
        Ok(SimVectors::new(alloc, count, kind))
    }

    fn is_present(&self) -> bool {
        self.inner.present.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::regfile::RegFile;
    use orion_compat::irq::{IrqKinds, IrqVectors};

    fn nvme() -> SimPci {
        SimPci::builder(PciIds {
            vendor: 0x1b36,
            device: 0x0010,
            class: 0x01_08_02,
            revision: 2,
            subsystem_vendor: 0x1af4,
            subsystem_device: 0x1100,
        })
        .bar(0, 0x4000, Arc::new(RegFile::new(0x4000)))
        .build()
    }

    fn req(min: u16, max: u16, kinds: IrqKinds) -> VectorRequest {
        VectorRequest {
            min,
            max,
            kinds,
            pre_vectors: 1,
        }
    }

    #[test]
    fn vectors_fall_back_from_msix_to_msi_to_intx() {
        let pci = nvme();
        let v = pci.alloc_irq_vectors(&req(1, 8, IrqKinds::ALL)).unwrap();
        assert_eq!((v.kind(), v.count()), (IrqKind::MsiX, 8));
        drop(v);
        pci.set_irq_caps(IrqCaps {
            msix: 0,
            msi: 16,
            intx: true,
        });
        let v = pci.alloc_irq_vectors(&req(2, 12, IrqKinds::ALL)).unwrap();
        assert_eq!(
            (v.kind(), v.count()),
            (IrqKind::Msi, 8),
            "MSI rounds down to a power of two"
        );
        drop(v);
        let v = pci
            .alloc_irq_vectors(&req(1, 12, IrqKinds::INTX.with(IrqKind::MsiX)))
            .unwrap();
        assert_eq!((v.kind(), v.count()), (IrqKind::Intx, 1));
        drop(v);
        assert_eq!(
            pci.alloc_irq_vectors(&req(17, 20, IrqKinds::ALL))
                .unwrap_err(),
            ErrorKind::NoMemory
        );
        assert_eq!(
            pci.alloc_irq_vectors(&req(1, 2, IrqKinds::MSIX))
                .unwrap_err(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn removed_device_reads_all_ones() {
        let pci = nvme();
        let bar = pci.map_bar(0).unwrap();
        assert_eq!(pci.map_bar(0).unwrap_err(), ErrorKind::Busy);
        bar.write32(0x1c, 1).unwrap();
        assert_eq!(bar.read32(0x1c), Ok(1));
        assert_eq!(bar.read32(0x4000), Err(ErrorKind::OutOfRange));
        pci.surprise_remove();
        assert!(!pci.is_present());
        assert_eq!(bar.read32(0x1c), Ok(u32::MAX));
        assert_eq!(bar.read64(0), Ok(u64::MAX));
        assert_eq!(pci.config_read16(0), Ok(0xffff));
        drop(bar);
        assert!(pci.map_bar(0).is_ok(), "dropping the window frees the BAR");
    }

    #[test]
    fn identity_is_read_only_and_command_is_not() {
        let pci = nvme();
        pci.config_write16(0, 0xdead).unwrap();
        assert_eq!(pci.config_read16(0), Ok(0x1b36));
        assert!(!pci.bus_master());
        pci.set_bus_master(true).unwrap();
        assert!(pci.bus_master());
        assert_eq!(pci.config_read32(8), Ok(0x0108_0202));
    }
}
