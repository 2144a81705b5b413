//! Identify data from a device: Controller, Namespace, Active NS list, NS ID descriptors.
//! Every accessor must be total on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orion_nvme::spec::identify::{Controller, Namespace, NsIdDescriptors, NsIds, NsList};
use zerocopy::FromBytes;

fuzz_target!(|data: &[u8]| {
    let mut page = [0u8; 4096];
    let n = data.len().min(4096);
    page[..n].copy_from_slice(&data[..n]);
    if let Ok(c) = Controller::read_from_bytes(&page) {
        let _ = (c.serial(), c.model(), c.firmware(), c.subnqn(), c.version());
        let _ = c.max_transfer_bytes(4096);
        let _ = c.max_transfer_bytes(1 << 27);
        let _ = (c.power_states().len(), c.apst_supported());
        let _ = (c.hmb_preferred_bytes(), c.hmb_min_bytes());
        let _ = (c.sqes.allows(6), c.cqes.allows(4));
    }
    if let Ok(ns) = Namespace::read_from_bytes(&page) {
        let _ = (ns.is_active(), ns.lba_formats().len(), ns.current_lba_format());
        let _ = (ns.block_size(), ns.metadata_size(), ns.size_bytes(), ns.write_protected());
    }
    if let Ok(list) = NsList::read_from_bytes(&page) {
        let mut last = 0;
        for id in list.iter() {
            last = id;
        }
        let _ = (last, list.continue_after());
    }
    // Descriptor lists come in any length; the iterator must end.
    let mut count = 0usize;
    for d in NsIdDescriptors::new(data) {
        count += 1;
        assert!(count <= data.len() / 4 + 1, "descriptor iterator does not advance");
        let _ = d;
    }
    let _ = NsIds::parse(data);
});
