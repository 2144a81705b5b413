//! The Linux front end's uapi decoding (`orion-compat/linux/mgmt/uapi.rs`), which is pure
//! data and so runs here too: the module is compiled into this test crate as it is into the
//! kernel module, with `crate::orion` naming the core.

use orion_nvme as orion;

#[path = "../../linux/mgmt/uapi.rs"]
#[allow(dead_code, unreachable_pub)]
mod uapi;
