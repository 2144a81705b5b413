//! The queue and vector plan: how many I/O queues to ask for, how the queues granted split
//! into interrupt-driven and polled ones, which interrupt vector each uses, and their depth.
//!
//! Vector 0 belongs to the admin queue (polled by the core, but its completion queue is
//! created on it). With more than one vector, interrupt queue `i` (I/O queue `i + 1`) gets
//! vector `i + 1` and the platform spreads those over the CPUs; with a single vector (one
//! MSI-X entry, plain MSI, INTx) one interrupt queue shares vector 0 with the admin queue.
//! Polled queues have no vector.

use crate::orion::config::Config;
use crate::orion::spec::regs::Cap;

/// The I/O queues to ask for in Set Features (Number of Queues): one interrupt queue per
/// CPU, at most `queue_count`, plus the poll queues; at least one.
pub fn queues_wanted(cpus: u32, cfg: &Config) -> u16 {
    let irq = cpus.min(cfg.queue_count).max(1);
    let total = irq.saturating_add(cfg.poll_queues);
    u16::try_from(total).unwrap_or(u16::MAX)
}

/// The split of the queues granted, before vectors are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Interrupt queues wanted.
    pub interrupt: u32,
    /// Poll queues.
    pub poll: u32,
}

impl Ask {
    /// Poll queues come out of the `granted` count but leave at least one interrupt queue.
    pub fn of(granted: u16, poll_queues: u32) -> Self {
        let granted = u32::from(granted.max(1));
        let poll = poll_queues.min(granted - 1);
        Self {
            interrupt: granted - poll,
            poll,
        }
    }

    /// The most vectors worth allocating: the admin queue's plus one per interrupt queue.
    pub fn max_vectors(&self) -> u16 {
        u16::try_from(self.interrupt.saturating_add(1)).unwrap_or(u16::MAX)
    }
}

/// The plan, once the platform allocated `vectors` vectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Interrupt-driven queues: I/O queues `1 ..= interrupt`.
    pub interrupt: u32,
    /// Polled queues: the next `poll` I/O queues.
    pub poll: u32,
    /// Vectors beyond the admin one serve one interrupt queue each (spread over CPUs).
    pub spread: bool,
}

impl Plan {
    /// With `vectors` allocated (at least 1): one interrupt queue per vector beyond the
    /// admin queue's, or a single queue sharing vector 0.
    pub fn new(ask: Ask, vectors: u16) -> Self {
        let spread = vectors > 1;
        let interrupt = if spread {
            ask.interrupt.min(u32::from(vectors) - 1).max(1)
        } else {
            1
        };
        Self {
            interrupt,
            poll: ask.poll,
            spread,
        }
    }

    /// All the I/O queues to create.
    pub fn total(&self) -> u16 {
        u16::try_from(self.interrupt.saturating_add(self.poll)).unwrap_or(u16::MAX)
    }

    /// The vector of queue index `i` (I/O queue `i + 1`), `None` for a polled queue.
    pub fn vector_of(&self, i: u16) -> Option<u16> {
        if u32::from(i) >= self.interrupt {
            None
        } else if self.spread {
            Some(i.saturating_add(1))
        } else {
            Some(0)
        }
    }
}

/// The ring depth of the I/O queues: `wanted` entries, at most CAP.MQES + 1, at least 2
/// (one entry always stays empty, so a depth-2 ring carries one command).
pub fn queue_depth(wanted: u32, cap: Cap) -> u32 {
    wanted.min(cap.max_queue_entries()).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(queue_count: u32, poll_queues: u32) -> Config {
        Config {
            queue_count,
            poll_queues,
            ..Config::default()
        }
    }

    #[test]
    fn one_interrupt_queue_per_cpu_plus_the_poll_queues() {
        assert_eq!(queues_wanted(2, &cfg(64, 0)), 2);
        assert_eq!(queues_wanted(8, &cfg(4, 2)), 6);
        assert_eq!(queues_wanted(0, &cfg(4, 0)), 1, "never zero");
        assert_eq!(queues_wanted(u32::MAX, &cfg(u32::MAX, u32::MAX)), u16::MAX);
    }

    #[test]
    fn poll_queues_leave_an_interrupt_queue() {
        assert_eq!(
            Ask::of(4, 2),
            Ask {
                interrupt: 2,
                poll: 2
            }
        );
        assert_eq!(
            Ask::of(2, 5),
            Ask {
                interrupt: 1,
                poll: 1
            }
        );
        assert_eq!(
            Ask::of(0, 1),
            Ask {
                interrupt: 1,
                poll: 0
            },
            "granted 0 reads as 1"
        );
        assert_eq!(Ask::of(3, 0).max_vectors(), 4);
    }

    #[test]
    fn vectors_decide_the_interrupt_queues() {
        // Plenty of vectors: one per queue, vector i + 1.
        let p = Plan::new(Ask::of(4, 1), 4);
        assert_eq!((p.interrupt, p.poll, p.spread, p.total()), (3, 1, true, 4));
        assert_eq!(
            (0..4).map(|i| p.vector_of(i)).collect::<Vec<_>>(),
            [Some(1), Some(2), Some(3), None]
        );
        // Fewer vectors than wanted: fewer interrupt queues.
        let p = Plan::new(Ask::of(8, 0), 3);
        assert_eq!((p.interrupt, p.total()), (2, 2));
        // One vector (INTx, MSI): one queue shares the admin queue's vector 0.
        let p = Plan::new(Ask::of(8, 2), 1);
        assert_eq!((p.interrupt, p.poll, p.spread), (1, 2, false));
        assert_eq!(
            (0..3).map(|i| p.vector_of(i)).collect::<Vec<_>>(),
            [Some(0), None, None]
        );
    }

    #[test]
    fn depth_follows_mqes() {
        // MQES 0x3ff: 1024 entries.
        let cap = Cap(0x3ff);
        assert_eq!(queue_depth(4096, cap), 1024);
        assert_eq!(queue_depth(64, cap), 64);
        assert_eq!(queue_depth(0, cap), 2);
        assert_eq!(queue_depth(64, Cap(1)), 2, "MQES 1: two entries");
    }
}
