// SPDX-License-Identifier: GPL-2.0

#![forbid(unsafe_code)]

//! The Linux backend's error type and its mapping to the shared `ErrorKind`.

use crate::orion_compat::ErrorKind;
use kernel::error::{code, Error};

/// A kernel error code, as reported by the Linux implementation of the Orion driver API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinuxError(pub(crate) Error);

impl crate::orion_compat::Error for LinuxError {
    fn kind(&self) -> ErrorKind {
        let e = self.0;
        if e == code::EINVAL || e == code::ERANGE {
            ErrorKind::OutOfRange
        } else if e == code::ENOMEM {
            ErrorKind::NoMemory
        } else if e == code::ENODEV || e == code::ENXIO {
            ErrorKind::Gone
        } else if e == code::ETIMEDOUT {
            ErrorKind::Timeout
        } else if e == code::EOPNOTSUPP {
            ErrorKind::Unsupported
        } else if e == code::EBUSY {
            ErrorKind::Busy
        } else {
            ErrorKind::Other
        }
    }
}

impl From<Error> for LinuxError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}
