// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the kernel's C bindings, for what the kernel crate does not wrap (or
//! wraps in a shape the driver cannot use). This is the only part of `orion_nvme` with
//! `unsafe` code (with `uring_helper.c`); everything above it is `#![forbid(unsafe_code)]`.
//!
//! Each wrapper owns or borrows the C object it stands for and states what makes its methods
//! safe: a `// SAFETY:` proof on every `unsafe` block, `# Invariants` on the types.
//!
//! - [`bound`]: a PCI device usable after the callbacks return, for as long as it is bound.
//! - [`pci`]: configuration space, bus mastering, saved state and the enable guard of a bound
//!   PCI function, and its interrupt vectors (with affinity) and handlers.
//! - [`pci_driver`]: a PCI driver registration with `shutdown` and the error handlers.
//! - [`dma`]: byte-offset volatile access to a coherent DMA buffer.
//! - [`sysfs`]: static device attribute groups whose callbacks are safe functions.
//! - [`misc`]: a misc device with ioctl and io_uring command file operations.
//! - [`uring`]: the io_uring command an issue hook gets, and its completion.
//! - [`blk`]: request queue references and driver-private requests started without waiting.
//! - [`mq`]: a blk-mq tag set with safe callbacks, its requests and data mapping, gendisks.
//! - [`work`]: cancelling work items whose queued runs hold an `Arc`; the default workqueue.
//! - [`sched`]: sleeping, and the current task's capabilities.

pub(crate) mod blk;
pub(crate) mod bound;
pub(crate) mod dma;
pub(crate) mod misc;
pub(crate) mod mq;
pub(crate) mod pci;
pub(crate) mod pci_driver;
pub(crate) mod sched;
pub(crate) mod sysfs;
pub(crate) mod uring;
pub(crate) mod work;
