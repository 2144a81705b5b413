//! Fault-injection rules, asynchronous events and counters: the plain data behind
//! [`Faults`](super::Faults) and [`SimNvme::counters`](super::SimNvme::counters).

use super::status::Status;
use orion_compat::time::Duration;
use std::collections::BTreeMap;

/// Which submission queue a [`CmdMatch`] accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMatch {
    /// Any queue.
    Any,
    /// The admin submission queue (SQID 0).
    Admin,
    /// Any I/O submission queue.
    Io,
    /// One submission queue.
    Sq(u16),
}

/// Selects the commands a one-shot fault applies to: by submission queue and opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdMatch {
    /// The queue.
    pub queue: QueueMatch,
    /// The opcode, or any.
    pub opcode: Option<u8>,
}

impl CmdMatch {
    /// Every command.
    pub const ANY: Self = Self {
        queue: QueueMatch::Any,
        opcode: None,
    };

    /// Admin commands with `opcode`.
    pub const fn admin(opcode: u8) -> Self {
        Self {
            queue: QueueMatch::Admin,
            opcode: Some(opcode),
        }
    }

    /// I/O commands (any I/O queue) with `opcode`.
    pub const fn io(opcode: u8) -> Self {
        Self {
            queue: QueueMatch::Io,
            opcode: Some(opcode),
        }
    }

    /// Any command on submission queue `sqid`.
    pub const fn sq(sqid: u16) -> Self {
        Self {
            queue: QueueMatch::Sq(sqid),
            opcode: None,
        }
    }

    /// Whether a command with `opcode` fetched from `sqid` matches.
    pub fn matches(&self, sqid: u16, opcode: u8) -> bool {
        let q = match self.queue {
            QueueMatch::Any => true,
            QueueMatch::Admin => sqid == 0,
            QueueMatch::Io => sqid != 0,
            QueueMatch::Sq(s) => s == sqid,
        };
        q && self.opcode.is_none_or(|o| o == opcode)
    }
}

/// An asynchronous event (NVMe Base 2.0 §5.2, Figure 146): what an Asynchronous Event
/// Request completes with in dword 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncEvent {
    /// Asynchronous Event Type (3 bits): 0 error, 1 SMART/health, 2 notice, 6 I/O command
    /// set specific, 7 vendor specific.
    pub event_type: u8,
    /// Asynchronous Event Information.
    pub info: u8,
    /// The log page the host reads (with RAE clear) to clear the event.
    pub log_page: u8,
}

impl AsyncEvent {
    /// Notice: Namespace Attribute Changed (read the Changed Namespace List, 04h).
    pub const NAMESPACE_CHANGED: Self = Self {
        event_type: 2,
        info: 0x00,
        log_page: 0x04,
    };
    /// Error: Invalid Doorbell Register (Error Information log, 01h).
    pub const INVALID_DOORBELL_REGISTER: Self = Self {
        event_type: 0,
        info: 0x00,
        log_page: 0x01,
    };
    /// Error: Invalid Doorbell Write Value (Error Information log, 01h).
    pub const INVALID_DOORBELL_VALUE: Self = Self {
        event_type: 0,
        info: 0x01,
        log_page: 0x01,
    };

    /// The value an Asynchronous Event Request completes with in dword 0.
    pub const fn dw0(self) -> u32 {
        (self.event_type as u32 & 0x7) | ((self.info as u32) << 8) | ((self.log_page as u32) << 16)
    }
}

/// A command the model holds back (see [`Faults::hold_next`](super::Faults::hold_next)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldCommand {
    /// Its submission queue.
    pub sqid: u16,
    /// Its command identifier.
    pub cid: u16,
    /// Its opcode.
    pub opcode: u8,
}

/// What the model counted since it was built (never reset, not even by a controller reset).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// MMIO writes to each submission queue tail doorbell, by queue ID (including writes that
    /// were ignored or invalid).
    pub sq_doorbell_writes: BTreeMap<u16, u64>,
    /// MMIO writes to each completion queue head doorbell, by queue ID.
    pub cq_doorbell_writes: BTreeMap<u16, u64>,
    /// Admin commands fetched, by opcode.
    pub admin_commands: BTreeMap<u8, u64>,
    /// I/O commands fetched, by opcode.
    pub io_commands: BTreeMap<u8, u64>,
    /// Interrupts raised, by vector (lost ones included).
    pub interrupts: BTreeMap<u16, u64>,
    /// Interrupts lost on purpose ([`Faults::lose_next_interrupts`](super::Faults::lose_next_interrupts)).
    pub lost_interrupts: u64,
    /// Completion queue entries posted.
    pub completions: u64,
    /// Completions swallowed by [`Faults::drop_completions`](super::Faults::drop_completions).
    pub dropped_completions: u64,
    /// Doorbell writes (MMIO or shadow) that named no queue or carried an invalid value.
    pub invalid_doorbell_writes: u64,
}

impl Counters {
    /// Admin commands fetched with `opcode`.
    pub fn admin(&self, opcode: u8) -> u64 {
        self.admin_commands.get(&opcode).copied().unwrap_or(0)
    }

    /// I/O commands fetched with `opcode`.
    pub fn io(&self, opcode: u8) -> u64 {
        self.io_commands.get(&opcode).copied().unwrap_or(0)
    }

    /// MMIO tail doorbell writes to submission queue `qid`.
    pub fn sq_doorbells(&self, qid: u16) -> u64 {
        self.sq_doorbell_writes.get(&qid).copied().unwrap_or(0)
    }

    /// MMIO head doorbell writes to completion queue `qid`.
    pub fn cq_doorbells(&self, qid: u16) -> u64 {
        self.cq_doorbell_writes.get(&qid).copied().unwrap_or(0)
    }

    /// Interrupts raised on `vector`.
    pub fn interrupts_on(&self, vector: u16) -> u64 {
        self.interrupts.get(&vector).copied().unwrap_or(0)
    }
}

/// The pending one-shot faults of one controller.
#[derive(Debug, Default)]
pub(super) struct FaultState {
    pub(super) never_ready: bool,
    pub(super) ready_delay: Option<Duration>,
    pub(super) drop: Vec<(CmdMatch, u32)>,
    pub(super) duplicate: Vec<CmdMatch>,
    pub(super) replace_cid: Vec<(CmdMatch, u16)>,
    pub(super) force_status: Vec<(CmdMatch, Status)>,
    pub(super) hold: Vec<CmdMatch>,
    pub(super) lose_irqs: u32,
    /// A lower limit on the I/O queues Number of Queues grants, until changed.
    pub(super) queue_limit: Option<u16>,
}

/// Takes the first rule in `rules` matching the command.
pub(super) fn take_rule<T>(
    rules: &mut Vec<T>,
    key: impl Fn(&T) -> &CmdMatch,
    sqid: u16,
    opcode: u8,
) -> Option<T> {
    let i = rules.iter().position(|r| key(r).matches(sqid, opcode))?;
    Some(rules.remove(i))
}
