//! The neutral passthrough command: what a platform's front end (an ioctl, an io_uring
//! command, a message) decodes its caller's request into before the driver core decides
//! whether it may be sent.
//!
//! The front end owns its wire format and the caller's memory: it decodes the request into a
//! [`Command`], keeps the data's address to itself, asks the core to check and run the
//! command, moves the data, and reports the [`Completion`] back in its own format.

/// A passthrough command as a caller asked for it.
///
/// # Contract (what the front end promises)
///
/// - The command dwords are the caller's, unchanged: the core builds the submission entry
///   from them (the data pointer and command identifier are always the driver's).
/// - `data_len` is the length of the caller's data buffer in bytes (for a vectored buffer,
///   the sum of its pieces), 0 for none.
/// - `bad_flags` is set when the caller's format has flags and any is set (none is defined):
///   the core refuses such a command first, before permission.
/// - `reserved_set` is set when a field the caller's format reserves is nonzero: the core
///   refuses such a command as malformed, after permission.
/// - `metadata` is set when the caller gave a separate metadata buffer of nonzero length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Command {
    /// Opcode.
    pub opcode: u8,
    /// Namespace identifier.
    pub nsid: u32,
    /// Command Dword 2.
    pub cdw2: u32,
    /// Command Dword 3.
    pub cdw3: u32,
    /// Command Dword 10.
    pub cdw10: u32,
    /// Command Dword 11.
    pub cdw11: u32,
    /// Command Dword 12.
    pub cdw12: u32,
    /// Command Dword 13.
    pub cdw13: u32,
    /// Command Dword 14.
    pub cdw14: u32,
    /// Command Dword 15.
    pub cdw15: u32,
    /// Data length in bytes.
    pub data_len: u32,
    /// Timeout in milliseconds, 0 for the driver's default.
    pub timeout_ms: u32,
    /// A flag of the caller's format is set.
    pub bad_flags: bool,
    /// A reserved field of the caller's format is nonzero.
    pub reserved_set: bool,
    /// The caller gave a metadata buffer.
    pub metadata: bool,
}

/// How a passthrough command that reached the device ended.
///
/// `status` is the completion's Status Field without the phase tag (0: success); `result`
/// is Completion Dwords 0 (low half) and 1 (high half). The front end returns both to the
/// caller as its format says; a command that did not reach the device (refused, timed out,
/// the device gone) has no completion but an error of the front end's own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// Status (0: success).
    pub status: u16,
    /// Completion Dwords 0 and 1.
    pub result: u64,
}
