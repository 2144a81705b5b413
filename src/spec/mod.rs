//! NVMe wire formats: registers, commands, completions, data structures.
//!
//! Sections cited are from NVM Express Base Specification 2.0 ("NVMe Base 2.0") and the NVM
//! Command Set Specification 1.0 ("NVM Cmd Set 1.0").

mod bitfield;
pub mod cqe;
pub mod features;
pub mod identify;
pub mod log;
pub mod opcode;
pub mod regs;
pub mod sgl;
pub mod sqe;
pub mod status;

// Wire structs use plain integer fields, which match the little-endian wire format only on a
// little-endian host (x86-64, arm64).
const _: () = assert!(cfg!(target_endian = "little"));
