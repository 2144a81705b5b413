//! Command opcodes: the Admin Command Set (NVMe Base 2.0 §5) and the NVM Command Set
//! (NVM Cmd Set 1.0 §3.2, plus Flush and the reservation commands from NVMe Base 2.0 §7).
//!
//! Also home of `wire_enum!`, the crate-internal macro that declares the small closed code
//! enums of the spec layer (opcodes, CNS values, SGL descriptor types) with `TryFrom<u8>` and
//! a name.

use super::bitfield::bitfield;

/// Declares a `#[repr(u8)]` enum of spec codes with `name()`, `Display` and
/// `TryFrom<u8, Error = UnknownCode>`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $value:literal => $text:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant = $value,
            )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The spec's name for the value.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)*
                }
            }

            /// Decodes a raw value; `None` when the value is not one of the known codes.
            pub const fn from_raw(v: u8) -> Option<Self> {
                match v {
                    $($value => Some(Self::$variant),)*
                    _ => None,
                }
            }

            /// The raw encoding.
            pub const fn raw(self) -> u8 {
                self as u8
            }
        }

        impl TryFrom<u8> for $name {
            type Error = super::opcode::UnknownCode;

            fn try_from(v: u8) -> Result<Self, super::opcode::UnknownCode> {
                Self::from_raw(v).ok_or(super::opcode::UnknownCode(v))
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                v.raw()
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

pub(crate) use wire_enum;

/// A raw code that is not one of the known values of a code enum ([`Admin`], [`Nvm`],
/// [`super::identify::Cns`], ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCode(pub u8);

impl core::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown code {:#04x}", self.0)
    }
}

wire_enum! {
    /// Admin command opcodes, NVMe Base 2.0 §5 (Figure "Opcodes for Admin Commands").
    pub enum Admin {
        /// Delete I/O Submission Queue, §5.7.
        DeleteIoSq = 0x00 => "Delete I/O Submission Queue",
        /// Create I/O Submission Queue, §5.5.
        CreateIoSq = 0x01 => "Create I/O Submission Queue",
        /// Get Log Page, §5.16.
        GetLogPage = 0x02 => "Get Log Page",
        /// Delete I/O Completion Queue, §5.6.
        DeleteIoCq = 0x04 => "Delete I/O Completion Queue",
        /// Create I/O Completion Queue, §5.4.
        CreateIoCq = 0x05 => "Create I/O Completion Queue",
        /// Identify, §5.17.
        Identify = 0x06 => "Identify",
        /// Abort, §5.1.
        Abort = 0x08 => "Abort",
        /// Set Features, §5.27.
        SetFeatures = 0x09 => "Set Features",
        /// Get Features, §5.15.
        GetFeatures = 0x0a => "Get Features",
        /// Asynchronous Event Request, §5.2.
        AsyncEventRequest = 0x0c => "Asynchronous Event Request",
        /// Namespace Management, §5.21.
        NsManagement = 0x0d => "Namespace Management",
        /// Firmware Commit, §5.12.
        FirmwareCommit = 0x10 => "Firmware Commit",
        /// Firmware Image Download, §5.13.
        FirmwareImageDownload = 0x11 => "Firmware Image Download",
        /// Device Self-test, §5.8.
        DeviceSelfTest = 0x14 => "Device Self-test",
        /// Namespace Attachment, §5.20.
        NsAttachment = 0x15 => "Namespace Attachment",
        /// Keep Alive, §5.18.
        KeepAlive = 0x18 => "Keep Alive",
        /// Directive Send, §5.10.
        DirectiveSend = 0x19 => "Directive Send",
        /// Directive Receive, §5.9.
        DirectiveReceive = 0x1a => "Directive Receive",
        /// Virtualization Management.
        VirtualizationManagement = 0x1c => "Virtualization Management",
        /// NVMe-MI Send.
        MiSend = 0x1d => "NVMe-MI Send",
        /// NVMe-MI Receive.
        MiReceive = 0x1e => "NVMe-MI Receive",
        /// Capacity Management, §5.3.
        CapacityManagement = 0x20 => "Capacity Management",
        /// Lockdown.
        Lockdown = 0x24 => "Lockdown",
        /// Doorbell Buffer Config, §5.11.
        DoorbellBufferConfig = 0x7c => "Doorbell Buffer Config",
        /// Fabrics commands (the command type is in CDW10); not used on PCIe.
        Fabrics = 0x7f => "Fabrics Command",
        /// Format NVM, §5.14.
        FormatNvm = 0x80 => "Format NVM",
        /// Security Send.
        SecuritySend = 0x81 => "Security Send",
        /// Security Receive.
        SecurityReceive = 0x82 => "Security Receive",
        /// Sanitize.
        Sanitize = 0x84 => "Sanitize",
        /// Get LBA Status (NVM Command Set specific admin command).
        GetLbaStatus = 0x86 => "Get LBA Status",
    }
}

wire_enum! {
    /// NVM Command Set I/O command opcodes, NVM Cmd Set 1.0 §3 and NVMe Base 2.0 §7.
    pub enum Nvm {
        /// Flush, NVMe Base 2.0 §7.1.
        Flush = 0x00 => "Flush",
        /// Write, NVM Cmd Set 1.0 §3.2.6.
        Write = 0x01 => "Write",
        /// Read, NVM Cmd Set 1.0 §3.2.4.
        Read = 0x02 => "Read",
        /// Write Uncorrectable, NVM Cmd Set 1.0 §3.2.7.
        WriteUncorrectable = 0x04 => "Write Uncorrectable",
        /// Compare, NVM Cmd Set 1.0 §3.2.1.
        Compare = 0x05 => "Compare",
        /// Write Zeroes, NVM Cmd Set 1.0 §3.2.8.
        WriteZeroes = 0x08 => "Write Zeroes",
        /// Dataset Management, NVM Cmd Set 1.0 §3.2.3.
        DatasetManagement = 0x09 => "Dataset Management",
        /// Verify, NVM Cmd Set 1.0 §3.2.5.
        Verify = 0x0c => "Verify",
        /// Reservation Register, NVMe Base 2.0 §7.3.
        ReservationRegister = 0x0d => "Reservation Register",
        /// Reservation Report, NVMe Base 2.0 §7.5.
        ReservationReport = 0x0e => "Reservation Report",
        /// Reservation Acquire, NVMe Base 2.0 §7.2.
        ReservationAcquire = 0x11 => "Reservation Acquire",
        /// Reservation Release, NVMe Base 2.0 §7.4.
        ReservationRelease = 0x15 => "Reservation Release",
        /// Copy, NVM Cmd Set 1.0 §3.2.2.
        Copy = 0x19 => "Copy",
    }
}

/// The first vendor specific admin opcode: C0h-FFh are vendor specific, NVMe Base 2.0 §5
/// (Figure "Opcodes for Admin Commands").
pub const ADMIN_VENDOR_FIRST: u8 = 0xc0;
/// The first vendor specific I/O opcode: 80h-FFh are vendor specific, NVMe Base 2.0 §7
/// (Figure "Opcodes for I/O Commands") and NVM Cmd Set 1.0 §3.
pub const IO_VENDOR_FIRST: u8 = 0x80;

bitfield! {
    /// The structure every opcode follows, NVMe Base 2.0 §5 (Figure "Opcodes for Admin
    /// Commands"): the low two bits give the data transfer direction.
    pub struct OpcodeBits(u8) {
        /// Data transfer direction; see [`DataTransfer`].
        1:0 xfer: u8;
        /// Function (bits 7:2 of the opcode).
        7:2 function: u8;
    }
}

/// The data transfer direction implied by an opcode's low two bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataTransfer {
    /// No data transfer.
    None,
    /// Host to controller (the command writes to the device).
    HostToController,
    /// Controller to host (the command reads from the device).
    ControllerToHost,
    /// Bidirectional.
    Bidirectional,
}

impl DataTransfer {
    /// The direction of `opcode`'s data transfer.
    pub const fn of(opcode: u8) -> Self {
        match OpcodeBits(opcode).xfer() {
            0 => Self::None,
            1 => Self::HostToController,
            2 => Self::ControllerToHost,
            _ => Self::Bidirectional,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_round_trips_and_rejects_unknown() {
        for &op in Admin::ALL {
            assert_eq!(Admin::try_from(u8::from(op)), Ok(op));
        }
        assert_eq!(Admin::try_from(0x06), Ok(Admin::Identify));
        assert_eq!(Admin::try_from(0x7c), Ok(Admin::DoorbellBufferConfig));
        assert_eq!(Admin::try_from(0x03), Err(UnknownCode(0x03)));
        assert_eq!(Admin::try_from(0xff), Err(UnknownCode(0xff)));
        assert_eq!(Admin::FormatNvm.raw(), 0x80);
    }

    #[test]
    fn vendor_ranges() {
        assert_eq!((ADMIN_VENDOR_FIRST, IO_VENDOR_FIRST), (0xc0, 0x80));
        // No standard opcode the driver knows lies in a vendor range.
        assert!(Admin::ALL.iter().all(|op| op.raw() < ADMIN_VENDOR_FIRST));
        assert!(Nvm::ALL.iter().all(|op| op.raw() < IO_VENDOR_FIRST));
    }

    #[test]
    fn nvm_round_trips_and_rejects_unknown() {
        for &op in Nvm::ALL {
            assert_eq!(Nvm::try_from(op.raw()), Ok(op));
        }
        assert_eq!(Nvm::try_from(0x02), Ok(Nvm::Read));
        assert_eq!(Nvm::try_from(0x09), Ok(Nvm::DatasetManagement));
        assert!(Nvm::try_from(0x03).is_err());
        // Every value either decodes or is rejected; none panics.
        let known = (0..=u8::MAX)
            .filter(|&v| Nvm::from_raw(v).is_some())
            .count();
        assert_eq!(known, Nvm::ALL.len());
    }

    #[test]
    fn opcode_direction_bits() {
        assert_eq!(DataTransfer::of(Nvm::Flush.raw()), DataTransfer::None);
        assert_eq!(
            DataTransfer::of(Nvm::Write.raw()),
            DataTransfer::HostToController
        );
        assert_eq!(
            DataTransfer::of(Nvm::Read.raw()),
            DataTransfer::ControllerToHost
        );
        assert_eq!(
            DataTransfer::of(Admin::Identify.raw()),
            DataTransfer::ControllerToHost
        );
        assert_eq!(
            DataTransfer::of(Admin::SetFeatures.raw()),
            DataTransfer::HostToController
        );
        assert_eq!(OpcodeBits(Admin::FormatNvm.raw()).function(), 0x20);
    }

    #[test]
    fn names_display() {
        assert_eq!(std::format!("{}", Admin::Identify), "Identify");
        assert_eq!(Nvm::WriteZeroes.name(), "Write Zeroes");
        assert_eq!(std::format!("{}", UnknownCode(3)), "unknown code 0x03");
    }
}
