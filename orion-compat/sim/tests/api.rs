//! The plain-data helpers of the Orion driver API: request and geometry rules, time
//! arithmetic, deadlines.

use orion_compat::block::{
    BlockOp, BlockRequest, DiscardLimits, DiskGeometry, DiskId, HwQueue, Tag,
};
use orion_compat::conformance::SAMPLE_GEOMETRY;
use orion_compat::dma::{BusAddr, Segment};
use orion_compat::irq::{IrqKind, IrqKinds};
use orion_compat::time::{Clock, Deadline, Duration, Instant, WaitError};
use orion_compat::{Error, ErrorKind};
use orion_sim::VirtualClock;

fn seg(addr: u64, len: u32) -> Segment {
    Segment {
        addr: BusAddr(addr),
        len,
    }
}

fn write<'a>(segments: &'a [Segment], blocks: u32) -> BlockRequest<'a> {
    BlockRequest {
        hwq: HwQueue(0),
        tag: Tag(0),
        disk: DiskId(1),
        op: BlockOp::Write,
        lba: 0,
        blocks,
        fua: false,
        segments,
    }
}

#[test]
fn prp_shaped_requests_pass_the_geometry_check() {
    let g = SAMPLE_GEOMETRY;
    let segs = [
        seg(0x1000_0200, 0xe00),
        seg(0x2000_0000, 0x1000),
        seg(0x3000_0000, 0x200),
    ];
    assert_eq!(write(&segs, 16).check(&g), Ok(()));
    assert_eq!(
        BlockRequest {
            fua: true,
            ..write(&segs, 16)
        }
        .check(&g),
        Ok(())
    );
}

#[test]
fn requests_that_break_the_geometry_are_refused() {
    let g = SAMPLE_GEOMETRY;
    let oor = Err(ErrorKind::OutOfRange);
    let gap_inside = [seg(0x1000_0000, 0x800), seg(0x2000_0000, 0x800)];
    assert_eq!(
        write(&gap_inside, 4).check(&g),
        oor,
        "first segment must end on the boundary"
    );
    let late_start = [seg(0x1000_0000, 0x1000), seg(0x2000_0200, 0x200)];
    assert_eq!(
        write(&late_start, 9).check(&g),
        oor,
        "later segments must start on the boundary"
    );
    assert_eq!(
        write(&[seg(0x1000_0002, 0x200)], 1).check(&g),
        oor,
        "dword alignment"
    );
    assert_eq!(
        write(&[seg(0x1000_0000, 0x2000)], 16).check(&g),
        oor,
        "max segment size"
    );
    assert_eq!(
        write(&[seg(0x1000_0000, 0x200)], 2).check(&g),
        oor,
        "length must match blocks"
    );
    assert_eq!(write(&[], 1).check(&g), oor, "a write needs data");
    assert_eq!(
        write(&[seg(u64::MAX - 0x100, 0x200)], 1).check(&g),
        oor,
        "a segment must not wrap"
    );
    let many: Vec<Segment> = (0..33)
        .map(|i| seg(0x1000_0000 + i * 0x10000, 0x1000))
        .collect();
    assert_eq!(write(&many, 33 * 8).check(&g), oor, "max segments");
    let no_fua = DiskGeometry { fua: false, ..g };
    let one = [seg(0x1000_0000, 0x200)];
    assert_eq!(
        BlockRequest {
            fua: true,
            ..write(&one, 1)
        }
        .check(&no_fua),
        oor
    );
    assert_eq!(
        BlockRequest {
            lba: 2048,
            ..write(&one, 1)
        }
        .check(&g),
        oor,
        "past capacity"
    );
    assert_eq!(
        BlockRequest {
            lba: u64::MAX,
            ..write(&one, 1)
        }
        .check(&g),
        oor,
        "lba overflow"
    );
}

#[test]
fn dataless_operations_have_no_segments() {
    let g = SAMPLE_GEOMETRY;
    let flush = BlockRequest {
        op: BlockOp::Flush,
        ..write(&[], 0)
    };
    assert_eq!(flush.check(&g), Ok(()));
    assert_eq!(
        BlockRequest { blocks: 1, ..flush }.check(&g),
        Err(ErrorKind::OutOfRange)
    );
    assert_eq!(
        BlockRequest { lba: 5, ..flush }.check(&g),
        Err(ErrorKind::OutOfRange)
    );
    let discard = BlockRequest {
        op: BlockOp::Discard,
        lba: 100,
        ..write(&[], 50)
    };
    assert_eq!(discard.check(&g), Ok(()));
    let with_data = [seg(0x1000_0000, 0x200)];
    assert_eq!(
        BlockRequest {
            segments: &with_data,
            ..discard
        }
        .check(&g),
        Err(ErrorKind::OutOfRange)
    );
    assert_eq!(
        BlockRequest {
            blocks: 0,
            ..discard
        }
        .check(&g),
        Err(ErrorKind::OutOfRange)
    );
}

#[test]
fn geometry_rules() {
    let g = SAMPLE_GEOMETRY;
    assert_eq!(g.check(), Ok(()));
    let bad = [
        DiskGeometry {
            logical_block_size: 256,
            ..g
        },
        DiskGeometry {
            logical_block_size: 520,
            ..g
        },
        DiskGeometry {
            physical_block_size: 256,
            ..g
        },
        DiskGeometry {
            max_transfer: 256,
            ..g
        },
        DiskGeometry {
            max_segments: 0,
            ..g
        },
        DiskGeometry {
            virt_boundary_mask: 4000,
            ..g
        },
        DiskGeometry {
            dma_alignment_mask: 2,
            ..g
        },
        DiskGeometry {
            discard: Some(DiscardLimits {
                max_blocks: 0,
                granularity: 1,
            }),
            ..g
        },
    ];
    for b in bad {
        assert_eq!(b.check(), Err(ErrorKind::OutOfRange), "{b:?}");
    }
    assert_eq!(
        DiskGeometry {
            virt_boundary_mask: 0,
            dma_alignment_mask: 0,
            ..g
        }
        .check(),
        Ok(())
    );
}

#[test]
fn durations_saturate_and_round_as_asked() {
    assert_eq!(Duration::from_secs(u64::MAX), Duration::MAX);
    assert_eq!(
        Duration::MAX.saturating_add(Duration::from_nanos(1)),
        Duration::MAX
    );
    assert_eq!(
        Duration::from_nanos(1).saturating_sub(Duration::from_secs(1)),
        Duration::ZERO
    );
    assert_eq!(Duration::from_nanos(1_500).as_micros(), 1);
    assert_eq!(Duration::from_nanos(1_500).as_micros_ceil(), 2);
    assert_eq!(Duration::from_micros(1_001).as_millis_ceil(), 2);
    assert_eq!(
        Instant::from_nanos(u64::MAX - 1).saturating_add(Duration::from_secs(1)),
        Instant::from_nanos(u64::MAX)
    );
    assert_eq!(
        Instant::from_nanos(5).saturating_duration_since(Instant::from_nanos(9)),
        Duration::ZERO
    );
}

#[test]
fn a_condition_met_at_the_deadline_is_not_a_timeout() {
    let clock = VirtualClock::new();
    let d = Deadline::after(&clock, Duration::from_millis(10));
    let c = clock.clone();
    // True only once the deadline has passed: poll must check once more after expiry.
    let r = d.poll(&clock, Duration::from_millis(3), || {
        Ok::<_, ErrorKind>((c.now() >= d.instant()).then_some(()))
    });
    assert_eq!(r, Ok(()));
    assert_eq!(
        clock.now(),
        Instant::from_nanos(10_000_000),
        "the last sleep was cut to the time left"
    );
}

#[test]
fn a_timed_out_wait_is_bounded_and_classified() {
    let clock = VirtualClock::new();
    let mut calls = 0;
    let r = Deadline::after(&clock, Duration::from_millis(10)).poll(
        &clock,
        Duration::from_millis(4),
        || {
            calls += 1;
            Ok::<Option<()>, ErrorKind>(None)
        },
    );
    assert_eq!(r, Err(WaitError::TimedOut));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(calls, 4, "at 0, 4, 8 and 10 ms");
    assert_eq!(clock.now(), Instant::from_nanos(10_000_000));
    assert_eq!(WaitError::Failed(ErrorKind::Gone).kind(), ErrorKind::Gone);
}

#[test]
fn irq_kind_sets_and_bus_addresses() {
    let k = IrqKinds::NONE.with(IrqKind::Msi).with(IrqKind::Intx);
    assert!(k.contains(IrqKind::Msi) && k.contains(IrqKind::Intx) && !k.contains(IrqKind::MsiX));
    assert!(k.without(IrqKind::Msi).without(IrqKind::Intx).is_empty());
    assert_eq!(
        IrqKinds::ALL.without(IrqKind::MsiX).without(IrqKind::Msi),
        IrqKinds::INTX
    );
    assert!(BusAddr(0x2000).is_aligned(0x1000));
    assert!(!BusAddr(0x2000).is_aligned(0x3000), "not a power of two");
    assert!(!BusAddr(0x2000).is_aligned(0));
    assert_eq!(BusAddr(u64::MAX).checked_add(1), None);
}
