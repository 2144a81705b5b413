//! The core's admin passthrough service against the simulated controller: bounce buffers
//! built through the platform's `Dma` and described with PRPs at the controller's memory
//! page size, whatever CAP.MPSMIN says.

mod common;

use common::SimPlatform;
use orion_compat::time::Duration;
use orion_nvme::controller::{Controller, CtrlError, Enabled};
use orion_nvme::passthru::bounce::{AdminError, Bounce};
use orion_nvme::spec::log::LogId;
use orion_nvme::spec::sqe::Sqe;
use orion_nvme::spec::status::Sct;
use orion_sim::dma::SimCoherent;
use orion_sim::nvme::{generic, NvmeBuilder, SimNvme};
use orion_sim::Sim;

/// The shared rig's bring-up, unpacked as these tests use it.
fn up(b: NvmeBuilder) -> (Sim, SimNvme, Controller<SimPlatform, Enabled>) {
    let (common::Rig { sim, nvme }, c) = common::up(b);
    (sim, nvme, c)
}

/// The chunk slots a bounce buffer keeps its memory in.
type Slots = Vec<Option<SimCoherent>>;

/// Empty chunk slots for a buffer of `len` bytes (enough at any page size: chunks are never
/// smaller than at 4 KiB pages).
fn slots(len: usize) -> Slots {
    (0..Bounce::<SimCoherent, Slots>::chunks_for(len, 4096))
        .map(|_| None)
        .collect()
}

/// 16 KiB of the SMART log: 512 bytes of page, then zeroes (§5.16: reading past a page's
/// end returns zeroes).
const LEN: usize = 16 * 1024;

fn smart_16k() -> Sqe {
    // CAST: LEN / 4 - 1 dwords fits NUMD.
    Sqe::get_log_page(LogId::SMART, 0xffff_ffff, (LEN / 4 - 1) as u32, 0)
}

/// Fills `b` with a byte the device never writes, so bytes it did not write show.
fn poison(b: &Bounce<SimCoherent, Slots>) {
    b.write(0, &[0xa5; LEN]).unwrap();
}

fn check_smart(b: &Bounce<SimCoherent, Slots>) {
    let mut got = vec![0u8; LEN];
    b.read(0, &mut got).unwrap();
    // Available Spare 100 %, threshold 10 % (the model's SMART page).
    assert_eq!((got[3], got[4]), (100, 10));
    let tail = got[512..].iter().position(|&x| x != 0);
    assert_eq!(
        tail, None,
        "bytes past the SMART page were not written by the device"
    );
}

/// The bug this guards: admin passthrough built its PRPs with a fixed 4 KiB page while the
/// core enables the controller with max(MPSMIN, 4 KiB). With 8 KiB pages the controller
/// took the PRP list page for data.
#[test]
fn admin_passthru_prps_follow_8k_memory_pages() {
    let (sim, _nvme, mut c) = up(NvmeBuilder::new().mps(1, 4));
    assert_eq!(c.page_size(), 8192);
    let b = c.bounce(LEN, slots(LEN)).unwrap();
    poison(&b);
    c.admin_passthru(smart_16k(), &b, Duration::from_secs(1))
        .unwrap();
    check_smart(&b);
    assert!(
        sim.dma.space().faults().is_empty(),
        "{:?}",
        sim.dma.space().faults()
    );

    // The same command described at 4 KiB pages (what the old code did) is wrong on this
    // controller: PRP2 names the 4 KiB-aligned list page as the second data page, whose
    // offset into an 8 KiB page is not zero.
    let wrong = Bounce::new(&sim.dma, 4096, LEN, slots(LEN)).unwrap();
    wrong.write(0, &[0xa5; LEN]).unwrap();
    match c.admin_passthru(smart_16k(), &wrong, Duration::from_secs(1)) {
        Err(AdminError::Ctrl(CtrlError::Status(s))) => {
            assert!(s.is(Sct::Generic, generic::PRP_OFFSET_INVALID.sc), "{s:?}")
        }
        r => panic!("4 KiB PRPs on an 8 KiB-page controller: {r:?}"),
    }
}

/// Transfers of one page, two pages and a PRP list, at 4, 8, 64 and 128 KiB memory pages, and
/// across bounce chunks: every byte the device wrote arrives.
#[test]
fn admin_passthru_sizes_and_page_sizes() {
    // 128 KiB pages (MPSMIN 5) are larger than a bounce chunk: chunks are then one page.
    for mps in [0u8, 1, 4, 5] {
        let (sim, _nvme, mut c) = up(NvmeBuilder::new().mps(mps, mps.max(4)));
        assert_eq!(c.page_size(), 4096 << mps);
        for len in [512usize, 8192, 12 * 1024, LEN, 192 * 1024] {
            let b = c.bounce(len, slots(len)).unwrap();
            b.write(0, &vec![0xa5; len]).unwrap();
            // CAST: small.
            let sqe = Sqe::get_log_page(LogId::SMART, 0xffff_ffff, (len / 4 - 1) as u32, 0);
            c.admin_passthru(sqe, &b, Duration::from_secs(1))
                .unwrap_or_else(|e| panic!("mps {mps} len {len}: {e:?}"));
            let mut got = vec![0u8; len];
            b.read(0, &mut got).unwrap();
            assert_eq!((got[3], got[4]), (100, 10), "mps {mps} len {len}");
            assert!(got[512..].iter().all(|&x| x == 0), "mps {mps} len {len}");
        }
        assert!(sim.dma.space().faults().is_empty());
    }
}

/// A buffer is bounded and its accessors refuse what lies outside it.
#[test]
fn bounce_bounds() {
    let (sim, _nvme, c) = up(NvmeBuilder::new());
    assert!(c.bounce(4 << 20, slots(4 << 20)).is_err());
    let b = c.bounce(100, slots(100)).unwrap();
    assert!(b.write(90, &[0; 11]).is_err());
    assert!(b.read(101, &mut [0; 0]).is_err());
    let mut one = [0u8; 100];
    b.read(0, &mut one).unwrap();
    assert!(one.iter().all(|&x| x == 0), "a new buffer is zeroed");
    assert!(
        Bounce::new(&sim.dma, 6144, 10, slots(10)).is_err(),
        "page size must be a power of two"
    );
    assert!(
        c.bounce(200 * 1024, slots(64 * 1024)).is_err(),
        "too few chunk slots"
    );
    let empty = c.bounce(0, slots(0)).unwrap();
    assert!(empty.is_empty());
}

/// After an admin passthrough command: a lost completion times out, and the core asks for a
/// reset (the buffer must then be kept); a successful Format NVM asks for a rescan; a
/// failed one, or an Identify, for nothing. The caller's timeout is clamped.
#[test]
fn admin_followup_after_timeout_format_and_identify() {
    use orion_nvme::passthru::bounce::{
        admin_followup, admin_timeout, AdminFollowup, ADMIN_TIMEOUT_MS, MIN_TIMEOUT_MS,
    };
    use orion_nvme::spec::identify::Cns;
    use orion_nvme::spec::opcode::Admin;
    use orion_sim::nvme::CmdMatch;

    let (_sim, nvme, mut c) = up(NvmeBuilder::new());
    let identify = Sqe::identify(Cns::Controller, 0);
    let b = c.bounce(4096, slots(4096)).unwrap();
    nvme.faults()
        .drop_completions(CmdMatch::admin(Admin::Identify.raw()), 1);
    let r = c.admin_passthru(identify, &b, admin_timeout(50));
    assert!(
        matches!(r, Err(AdminError::Ctrl(CtrlError::Timeout(_)))),
        "{r:?}"
    );
    assert_eq!(
        admin_followup(&r, Admin::Identify.raw(), None),
        AdminFollowup::Reset
    );
    let r = c.admin_passthru(identify, &b, admin_timeout(0));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        admin_followup(&r, Admin::Identify.raw(), None),
        AdminFollowup::None
    );
    // Format NVM of namespace 1 to its current format (LBA format 0).
    let format = Sqe::new(Admin::FormatNvm.raw()).with_nsid(1);
    let none = c.bounce(0, slots(0)).unwrap();
    let r = c.admin_passthru(format, &none, admin_timeout(0));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        admin_followup(&r, Admin::FormatNvm.raw(), None),
        AdminFollowup::Rescan
    );
    let bad = Sqe::new(Admin::FormatNvm.raw()).with_nsid(77);
    let r = c.admin_passthru(bad, &none, admin_timeout(0));
    assert!(
        matches!(r, Err(AdminError::Ctrl(CtrlError::Status(_)))),
        "{r:?}"
    );
    assert_eq!(
        admin_followup(&r, Admin::FormatNvm.raw(), None),
        AdminFollowup::None
    );
    assert_eq!(
        admin_timeout(0),
        Duration::from_millis(u64::from(ADMIN_TIMEOUT_MS))
    );
    assert_eq!(
        admin_timeout(1),
        Duration::from_millis(u64::from(MIN_TIMEOUT_MS))
    );
    assert_eq!(admin_timeout(1234), Duration::from_millis(1234));
}
