//! Log pages from a device: Error Information, SMART / Health, Firmware Slot, Changed
//! Namespace List, Commands Supported and Effects. Every accessor must be total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orion_nvme::spec::cqe::Cqe;
use orion_nvme::spec::log::{ChangedNsList, Effects, ErrorEntry, FirmwareSlot, Smart};
use zerocopy::FromBytes;

fuzz_target!(|data: &[u8]| {
    let mut page = [0u8; 4096];
    let n = data.len().min(4096);
    page[..n].copy_from_slice(&data[..n]);
    if let Ok((s, _)) = Smart::read_from_prefix(&page) {
        let _ = s.composite_temperature();
        for i in 0..10 {
            let _ = s.temperature_sensor(i);
        }
    }
    if let Ok((e, _)) = ErrorEntry::read_from_prefix(&page) {
        let _ = format!("{e:?}");
    }
    if let Ok((f, _)) = FirmwareSlot::read_from_prefix(&page) {
        for slot in 0..=8 {
            let _ = f.revision(slot);
        }
    }
    if let Ok(c) = ChangedNsList::read_from_bytes(&page) {
        let _ = (c.overflowed(), c.iter().count());
    }
    if let Ok(e) = Effects::read_from_bytes(&page) {
        for op in 0..=255u8 {
            let _ = (e.admin(op), e.io(op));
        }
    }
    if let Ok((cqe, _)) = Cqe::read_from_prefix(data) {
        let st = cqe.status();
        let _ = (cqe.phase(), cqe.result64(), format!("{st}"), st.name(), st.kind());
    }
});
