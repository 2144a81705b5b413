// SPDX-License-Identifier: GPL-2.0

//! orion_nvme: the orion-nvme driver core as a Rust-for-Linux PCI driver.
//!
//! This crate is the Linux implementation of the Orion driver API and the only place in the
//! project where `unsafe` is allowed. The portable core (`src/`) and the API traits
//! (`orion-compat/src/`) are compiled into this crate as modules, unchanged.

use kernel::{device::Core, pci, prelude::*};

#[path = "../src/lib.rs"]
pub mod orion_compat;

#[path = "../../src/lib.rs"]
pub mod orion;

use orion::{controller, spec};

mod error;
mod mmio;

/// Prints a core type (which implements `core::fmt::Display`) through the kernel's formatting
/// macros, which use their own `Display` trait.
struct Show<'a, T>(&'a T);

impl<T: core::fmt::Display> kernel::fmt::Display for Show<'_, T> {
    fn fmt(&self, f: &mut kernel::fmt::Formatter<'_>) -> kernel::fmt::Result {
        core::fmt::Display::fmt(self.0, f)
    }
}

use mmio::BarMmio;

/// Per-device state, alive from probe until the device is unbound.
///
/// Fields drop in declaration order: the BAR is unmapped and released before the device is
/// disabled.
struct OrionNvme<'bound> {
    pdev: &'bound pci::Device,
    bar: pci::Bar<'bound>,
    _enabled: mmio::EnabledDevice<'bound>,
}

struct OrionNvmeDriver;

kernel::pci_device_table!(
    PCI_TABLE,
    <OrionNvmeDriver as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_class(kernel::bindings::PCI_CLASS_STORAGE_EXPRESS, 0xff_ffff),
        ()
    )]
);

impl pci::Driver for OrionNvmeDriver {
    type IdInfo = ();
    type Data<'bound> = OrionNvme<'bound>;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pdev.enable_device_mem()?;
        let enabled = mmio::EnabledDevice::new(pdev);
        let bar = pdev.iomap_region(0, c"orion_nvme")?;
        let regs = controller::RegisterSnapshot::read(&BarMmio::new(&bar)).map_err(|e| {
            dev_err!(pdev, "cannot read controller registers: {:?}\n", e);
            ENODEV
        })?;
        dev_info!(
            pdev,
            "orion_nvme: bound {:04x}:{:04x}: {}\n",
            pdev.vendor_id().as_raw(),
            pdev.device_id(),
            Show(&regs)
        );
        Ok(OrionNvme {
            pdev,
            bar,
            _enabled: enabled,
        })
    }

    fn unbind<'bound>(pdev: &'bound pci::Device<Core<'_>>, this: Pin<&Self::Data<'bound>>) {
        let csts =
            spec::regs::Csts(BarMmio::new(&this.bar).read32_or_gone(spec::regs::Offset::Csts.at()));
        dev_info!(pdev, "orion_nvme: unbinding (csts {:#x})\n", csts.0);
    }
}

impl Drop for OrionNvme<'_> {
    fn drop(&mut self) {
        dev_dbg!(self.pdev, "orion_nvme: device state released\n");
    }
}

kernel::module_pci_driver! {
    type: OrionNvmeDriver,
    name: "orion_nvme",
    authors: ["orion-nvme developers"],
    description: "orion-nvme: NVMe host driver (portable Rust core)",
    license: "GPL v2",
}
