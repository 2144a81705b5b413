//! Controller state: register snapshots, bring-up, shutdown and reset.

use crate::orion::command::CidSlot;
use crate::orion::queue::{QueueError, QueuePair, Reaped, ShadowDoorbells, SQE_SIZE};
use crate::orion::spec::cqe::AsyncEvent;
use crate::orion::spec::cqe::CQE_SIZE;
use crate::orion::spec::features::{AsyncEventConfig, Fid, NumberOfQueues};
use crate::orion::spec::identify::{self, Cns};
use crate::orion::spec::log::{Effects, LogId};
use crate::orion::spec::regs::{
    Aqa, Cap, Cc, Csts, Offset, Shutdown, Vs, CC_CSS_ALL_IO_SETS, CC_CSS_NVM, CSS_ADMIN_ONLY,
    CSS_IO_SETS, CSS_NVM, NSSR_RESET,
};
use crate::orion::spec::sqe::{numd_of, Qprio, Sqe};
use crate::orion::spec::status::Status;
use crate::orion_compat::dma::{CoherentMem, Dma};
use crate::orion_compat::time::{Clock, Deadline, Duration, WaitError};
use crate::orion_compat::{Error, ErrorKind, Mmio};
use core::marker::PhantomData;
use core::ops::DerefMut;
use zerocopy::{FromBytes, IntoBytes};

/// Errors from controller register access, state transitions and admin commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// The platform failed an access.
    Platform(ErrorKind),
    /// The controller's registers read as all ones: it is gone.
    Gone,
    /// CSTS.CFS: the controller reported a fatal error.
    Fatal,
    /// A bounded wait ran out (what was being waited for).
    Timeout(Wait),
    /// The controller completed a command with an error status.
    Status(Status),
    /// The controller cannot be driven: it lacks something required (what).
    Unsupported(&'static str),
    /// The controller answered with something that cannot be right (what).
    Invalid(&'static str),
    /// The admin queue has no free entry (too many outstanding admin commands).
    Busy,
}

impl From<QueueError> for CtrlError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Full | QueueError::BadTag(_) => CtrlError::Busy,
            QueueError::BadMemory => CtrlError::Invalid("queue memory"),
            QueueError::Platform(k) => CtrlError::Platform(k),
        }
    }
}

/// What a bounded wait was waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// CSTS.RDY to become 0 after CC.EN was cleared.
    NotReady,
    /// CSTS.RDY to become 1 after CC.EN was set.
    Ready,
    /// CSTS.SHST to report shutdown complete.
    Shutdown,
    /// An admin command's completion.
    Admin,
}

fn plat<E: Error>(e: E) -> CtrlError {
    CtrlError::Platform(e.kind())
}

/// The identity registers of a controller, read once at probe: CAP, VS and CSTS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterSnapshot {
    /// Controller Capabilities.
    pub cap: Cap,
    /// Version.
    pub vs: Vs,
    /// Controller Status at the time of the read.
    pub csts: Csts,
}

impl RegisterSnapshot {
    /// Reads CAP, VS and CSTS.
    ///
    /// Fails with [`CtrlError::Gone`] when CSTS reads as all ones, the signature of a
    /// removed device; the other values are then meaningless.
    pub fn read<M: Mmio>(mmio: &M) -> Result<Self, CtrlError> {
        let plat = |e: M::Error| CtrlError::Platform(e.kind());
        let csts = Csts(mmio.read32(Offset::Csts.at()).map_err(plat)?);
        if csts.is_gone() {
            return Err(CtrlError::Gone);
        }
        let cap = Cap(mmio.read64(Offset::Cap.at()).map_err(plat)?);
        let vs = Vs(mmio.read32(Offset::Vs.at()).map_err(plat)?);
        Ok(Self { cap, vs, csts })
    }
}

/// Prints the decoded registers on one line, in the order and units `nvme show-regs -H` uses.
impl core::fmt::Display for RegisterSnapshot {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let cap = self.cap;
        write!(
            f,
            "NVMe {} cap {:#018x} mqes {} ({} entries) cqr {} dstrd {} ({} B) to {} ({} ms) css {:#04x} [",
            self.vs,
            cap.0,
            cap.mqes(),
            cap.max_queue_entries(),
            u8::from(cap.cqr()),
            cap.dstrd(),
            cap.doorbell_stride(),
            cap.to(),
            cap.timeout_ms(),
            cap.css(),
        )?;
        let mut sep = "";
        for (bit, name) in [
            (CSS_NVM, "nvm"),
            (CSS_IO_SETS, "io-sets"),
            (CSS_ADMIN_ONLY, "admin-only"),
        ] {
            if cap.css() & bit != 0 {
                write!(f, "{sep}{name}")?;
                sep = ",";
            }
        }
        write!(
            f,
            "] mpsmin {} ({} KiB) mpsmax {} ({} KiB) nssrs {} cmbs {} pmrs {} csts {:#x} (rdy {} cfs {} shst {:?})",
            cap.mpsmin(),
            cap.min_page_size() / 1024,
            cap.mpsmax(),
            cap.max_page_size() / 1024,
            u8::from(cap.nssrs()),
            u8::from(cap.cmbs()),
            u8::from(cap.pmrs()),
            self.csts.0,
            u8::from(self.csts.rdy()),
            u8::from(self.csts.cfs()),
            Shutdown::from_bits(self.csts.shst()),
        )
    }
}

/// One 4 KiB buffer, aligned for the 4 KiB structures it holds (Identify data, log pages).
/// The platform provides it (boxed in the kernel: too big for a kernel stack).
pub type PageBuf = [u64; 512];

/// Size of Identify data and of the admin data buffer.
pub const IDENTIFY_SIZE: usize = 4096;

/// Namespace IDs handled per Identify Active Namespace ID list (of up to 1024).
const NS_WINDOW: usize = 64;

/// Admin queue depth the driver uses.
pub const ADMIN_DEPTH: u32 = 32;

/// The platform services the controller is driven through.
pub trait Platform {
    /// BAR0.
    type Mmio: Mmio;
    /// DMA memory.
    type Dma: Dma;
    /// Time.
    type Clock: Clock;
    /// A 4 KiB scratch buffer in ordinary memory.
    type Scratch: DerefMut<Target = PageBuf>;
}

type Coherent<P> = <<P as Platform>::Dma as Dma>::Coherent;

/// The admin queue pair.
pub type AdminQueue<P> = QueuePair<Coherent<P>, [CidSlot; ADMIN_DEPTH as usize]>;

/// Controller typestate: disabled (CC.EN = 0, CSTS.RDY = 0).
#[derive(Debug)]
pub struct Disabled;
/// Controller typestate: enabled and ready, admin queue live.
#[derive(Debug)]
pub struct Enabled;

/// Driver settings for bring-up (the `[nvme]` table's relevant part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Timeout for admin commands.
    pub admin_timeout: Duration,
    /// Poll interval while waiting for registers or admin completions.
    pub poll_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            admin_timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(1),
        }
    }
}

/// What Identify Controller told us, in the units the driver uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    /// PCI Vendor ID.
    pub vid: u16,
    /// Serial number (ASCII, space padded).
    pub sn: [u8; 20],
    /// Model number (ASCII, space padded).
    pub mn: [u8; 40],
    /// Firmware revision (ASCII, space padded).
    pub fr: [u8; 8],
    /// Controller ID.
    pub cntlid: u16,
    /// Largest transfer in bytes, or `None` when unlimited.
    pub max_transfer: Option<u64>,
    /// Number of Namespaces: the largest valid NSID.
    pub nn: u32,
    /// Optional Admin Command Support.
    pub oacs: identify::Oacs,
    /// Optional NVM Command Support.
    pub oncs: identify::Oncs,
    /// Volatile write cache present.
    pub vwc: bool,
    /// SGLs supported for NVM commands.
    pub sgls: bool,
    /// Asynchronous Event Request Limit, 0's based.
    pub aerl: u8,
    /// Log Page Attributes.
    pub lpa: identify::Lpa,
    /// Optional Asynchronous Events Supported.
    pub oaes: identify::Oaes,
    /// NVM Subsystem NVMe Qualified Name (SUBNQN), NUL padded; empty before NVMe 1.2.1.
    pub subnqn: [u8; 256],
    /// Most logical blocks one Dataset Management range may cover (DMRSL), if limited.
    pub max_dealloc_blocks: Option<u32>,
    /// Most bytes one Write Zeroes may cover (WZSL), if limited.
    pub max_write_zeroes: Option<u64>,
}

/// What Identify Namespace told us about one active namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// Namespace ID.
    pub nsid: u32,
    /// Size in logical blocks (NSZE).
    pub blocks: u64,
    /// Logical block size in bytes.
    pub block_size: u32,
    /// Physical block size in bytes: the preferred write granularity (NPWG) when the
    /// namespace reports it, capped by its atomic write unit; otherwise the logical size.
    pub physical_block_size: u32,
    /// Metadata bytes per block in the format in use (0 for none).
    pub metadata: u16,
    /// Identifiers: NGUID and EUI-64 from Identify Namespace, completed (and overridden) by
    /// the Namespace Identification Descriptor list when the controller has one.
    pub ids: identify::NsIds,
}

/// An NVMe controller on the PCIe transport, in state `S`.
pub struct Controller<P: Platform, S> {
    mmio: P::Mmio,
    dma: P::Dma,
    clock: P::Clock,
    scratch: P::Scratch,
    settings: Settings,
    cap: Cap,
    page_size: u64,
    admin: Option<AdminQueue<P>>,
    admin_buf: Option<Coherent<P>>,
    info: Option<ControllerInfo>,
    /// The admin tag of the outstanding Asynchronous Event Request, if one is.
    aer_tag: Option<u16>,
    /// An Asynchronous Event Request completion reaped but not yet handed out (DW0).
    aer_done: Option<u32>,
    _state: PhantomData<S>,
}

impl<P: Platform, S> Controller<P, S> {
    /// Controller Capabilities as read at construction.
    pub fn cap(&self) -> Cap {
        self.cap
    }

    /// The host memory page size in use (CC.MPS).
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Masks every pin-based / MSI interrupt at the controller (INTMS, NVMe Base 2.0
    /// §3.1.4.4). The admin queue is polled, but its completions still raise them; on a line
    /// shared with another device's handler, a level interrupt nobody acknowledges storms
    /// until the platform disables the line. Only meaningful while MSI-X is off.
    pub fn mask_interrupts(&self) -> Result<(), CtrlError> {
        self.mmio
            .write32(Offset::Intms.at(), u32::MAX)
            .map_err(plat)
    }

    /// Unmasks them again (INTMC), once the platform's handlers are in place.
    pub fn unmask_interrupts(&self) -> Result<(), CtrlError> {
        self.mmio
            .write32(Offset::Intmc.at(), u32::MAX)
            .map_err(plat)
    }

    /// CSTS as it reads now, raw (for the log; all ones when the device is gone).
    pub fn raw_status(&self) -> u32 {
        self.mmio.read32(Offset::Csts.at()).unwrap_or(u32::MAX)
    }

    /// NVM Subsystem Reset (NSSR, NVMe Base 2.0 §3.7.1), where CAP.NSSRS says the
    /// controller supports it ([`CtrlError::Unsupported`] otherwise). It resets this
    /// controller too: a controller reset must follow.
    pub fn subsystem_reset(&self) -> Result<(), CtrlError> {
        if !self.cap.nssrs() {
            return Err(CtrlError::Unsupported("NVM subsystem reset (CAP.NSSRS)"));
        }
        self.mmio
            .write32(Offset::Nssr.at(), NSSR_RESET)
            .map_err(plat)
    }

    /// The platform's register window.
    pub fn mmio(&self) -> &P::Mmio {
        &self.mmio
    }

    /// The platform's DMA service.
    pub fn dma(&self) -> &P::Dma {
        &self.dma
    }

    /// The platform's clock.
    pub fn clock(&self) -> &P::Clock {
        &self.clock
    }

    fn csts(&self) -> Result<Csts, CtrlError> {
        let csts = Csts(self.mmio.read32(Offset::Csts.at()).map_err(plat)?);
        if csts.is_gone() {
            return Err(CtrlError::Gone);
        }
        Ok(csts)
    }

    /// Checks that the controller is still alive: present and without CSTS.CFS.
    pub fn check_alive(&self) -> Result<Csts, CtrlError> {
        let csts = self.csts()?;
        if csts.cfs() {
            return Err(CtrlError::Fatal);
        }
        Ok(csts)
    }

    /// Waits, bounded by CAP.TO, until `done(csts)` holds. CFS ends the wait at once, except
    /// while waiting for RDY = 0 (a controller with CFS set is expected to be reset).
    fn wait_csts(&self, what: Wait, done: impl Fn(Csts) -> bool) -> Result<(), CtrlError> {
        // A controller reporting TO = 0 would make every wait fail at once; give it 500 ms.
        let to = Duration::from_millis(u64::from(self.cap.timeout_ms().max(500)));
        let deadline = Deadline::after(&self.clock, to);
        deadline
            .poll(&self.clock, self.settings.poll_interval, || {
                let csts = self.csts()?;
                if done(csts) {
                    return Ok(Some(()));
                }
                if csts.cfs() && what != Wait::NotReady {
                    return Err(CtrlError::Fatal);
                }
                Ok(None)
            })
            .map_err(|e| match e {
                WaitError::TimedOut => CtrlError::Timeout(what),
                WaitError::Failed(e) => e,
            })
    }

    /// Zeroed, page-aligned memory for a submission and a completion ring of `depth` entries.
    fn alloc_rings(&self, depth: u32) -> Result<(Coherent<P>, Coherent<P>), CtrlError> {
        let align = self.page_size as usize;
        let sq = self.dma.alloc_coherent(depth as usize * SQE_SIZE, align);
        let cq = self.dma.alloc_coherent(depth as usize * CQE_SIZE, align);
        Ok((sq.map_err(plat)?, cq.map_err(plat)?))
    }

    fn into_state<T>(self) -> Controller<P, T> {
        let _state = PhantomData::<T>;
        Controller {
            mmio: self.mmio,
            dma: self.dma,
            clock: self.clock,
            scratch: self.scratch,
            settings: self.settings,
            cap: self.cap,
            page_size: self.page_size,
            admin: self.admin,
            admin_buf: self.admin_buf,
            info: self.info,
            aer_tag: self.aer_tag,
            aer_done: self.aer_done,
            _state,
        }
    }

    /// CC.EN cleared if set, then CSTS.RDY = 0 awaited (within CAP.TO).
    fn clear_enable(&self) -> Result<(), CtrlError> {
        let cc = Cc(self.mmio.read32(Offset::Cc.at()).map_err(plat)?);
        if cc.en() {
            self.mmio
                .write32(Offset::Cc.at(), cc.with_en(false).0)
                .map_err(plat)?;
        }
        self.wait_csts(Wait::NotReady, |c| !c.rdy())
    }

    /// Clears CC.EN and waits for CSTS.RDY = 0 (NVMe Base 2.0 §3.5.1 step 1, and controller
    /// reset, §3.7.2). Queue state is dropped: every outstanding command is lost.
    #[expect(
        clippy::result_large_err,
        reason = "a failed transition hands the controller back to the caller"
    )]
    fn disable_inner(mut self) -> Result<Controller<P, Disabled>, (CtrlError, Self)> {
        match self.clear_enable() {
            Ok(()) => {
                // Every queue is gone with the admin queue, the event request too.
                self.admin = None;
                self.aer_tag = None;
                self.aer_done = None;
                Ok(self.into_state())
            }
            Err(e) => Err((e, self)),
        }
    }
}

impl<P: Platform> Controller<P, Disabled> {
    /// Takes over a controller: reads CAP, chooses the memory page size, and disables the
    /// controller (it may have been left enabled by firmware or a previous driver).
    pub fn new(
        mmio: P::Mmio,
        dma: P::Dma,
        clock: P::Clock,
        scratch: P::Scratch,
        settings: Settings,
    ) -> Result<Self, CtrlError> {
        let csts = Csts(mmio.read32(Offset::Csts.at()).map_err(plat)?);
        if csts.is_gone() {
            return Err(CtrlError::Gone);
        }
        let cap = Cap(mmio.read64(Offset::Cap.at()).map_err(plat)?);
        if cap.css() & CSS_NVM == 0 && cap.css() & CSS_IO_SETS == 0 {
            return Err(CtrlError::Unsupported("the NVM command set"));
        }
        // 4 KiB host pages unless the controller's minimum is larger (§3.1.4.1 MPSMIN).
        let page_size = cap.min_page_size().max(4096);
        if page_size > cap.max_page_size() {
            return Err(CtrlError::Invalid("CAP.MPSMAX below MPSMIN"));
        }
        let ctrl: Controller<P, Disabled> = Controller {
            mmio,
            dma,
            clock,
            scratch,
            settings,
            cap,
            page_size,
            admin: None,
            admin_buf: None,
            info: None,
            aer_tag: None,
            aer_done: None,
            _state: PhantomData,
        };
        match ctrl.disable_inner() {
            Ok(c) => Ok(c),
            Err((e, _)) => Err(e),
        }
    }

    /// Brings the controller up, NVMe Base 2.0 §3.5.1 steps 2-5: admin queue registers,
    /// CC, CC.EN = 1, bounded wait for CSTS.RDY = 1. On failure the controller is handed back
    /// disabled (best effort) with the error.
    #[expect(
        clippy::result_large_err,
        reason = "a failed transition hands the controller back to the caller"
    )]
    pub fn enable(mut self) -> Result<Controller<P, Enabled>, (CtrlError, Self)> {
        if let Err(e) = self.setup_admin() {
            return Err((e, self));
        }
        let res = (|| {
            // Step 1 again: a disable that timed out (a controller slower than CAP.TO, or one
            // whose register writes were lost) hands back a controller that may still be
            // enabled or not yet idle; setting CC.EN before CSTS.RDY reads 0 breaks the
            // handshake (§3.5.1), and a stale RDY = 1 would pass for ready below.
            self.clear_enable()?;
            let admin = self
                .admin
                .as_ref()
                .ok_or(CtrlError::Invalid("admin queue"))?;
            // Step 2: admin queue attributes and base addresses (0's based sizes).
            let qs = (ADMIN_DEPTH - 1) as u16;
            let aqa = Aqa(0).with_asqs(qs).with_acqs(qs);
            self.mmio.write32(Offset::Aqa.at(), aqa.0).map_err(plat)?;
            self.mmio
                .write64(Offset::Asq.at(), admin.sq_bus_addr())
                .map_err(plat)?;
            self.mmio
                .write64(Offset::Acq.at(), admin.cq_bus_addr())
                .map_err(plat)?;
            // Step 3-4: command set, page size, arbitration, entry sizes; then enable.
            let css = if self.cap.css() & CSS_IO_SETS != 0 {
                CC_CSS_ALL_IO_SETS
            } else {
                CC_CSS_NVM
            };
            let mps = (self.page_size.trailing_zeros() - 12) as u8;
            let cc = Cc(0)
                .with_css(css)
                .with_mps(mps)
                .with_ams(0)
                .with_shn(Shutdown::None.bits())
                .with_iosqes(SQE_SIZE.trailing_zeros() as u8)
                .with_iocqes(CQE_SIZE.trailing_zeros() as u8);
            self.mmio.write32(Offset::Cc.at(), cc.0).map_err(plat)?;
            self.mmio
                .write32(Offset::Cc.at(), cc.with_en(true).0)
                .map_err(plat)?;
            // Step 5: wait for ready.
            self.wait_csts(Wait::Ready, |c| c.rdy())
        })();
        match res {
            Ok(()) => Ok(self.into_state()),
            Err(e) => {
                // Leave it disabled; if even that fails the caller sees the first error.
                let me: Controller<P, Enabled> = self.into_state();
                match me.disable_inner() {
                    Ok(d) => Err((e, d)),
                    Err((_, me)) => Err((e, me.into_state())),
                }
            }
        }
    }

    fn setup_admin(&mut self) -> Result<(), CtrlError> {
        let (sq, cq) = self.alloc_rings(ADMIN_DEPTH)?;
        let buf = self
            .dma
            .alloc_coherent(IDENTIFY_SIZE, self.page_size as usize)
            .map_err(plat)?;
        let q = QueuePair::new(
            0,
            ADMIN_DEPTH,
            self.cap,
            sq,
            cq,
            [CidSlot::default(); ADMIN_DEPTH as usize],
        )?;
        self.admin = Some(q);
        self.admin_buf = Some(buf);
        Ok(())
    }
}

/// The physical block size of a namespace with logical block size `bs`: NPWG when NSFEAT
/// says the optimal-performance fields are valid, but no larger than the namespace's atomic
/// write unit (NAWUPF, when NSFEAT says it is valid; one block otherwise), so that a write of
/// one physical block is never torn. Always a power of two, at least `bs`, at most 64 KiB.
fn physical_block_size(ns: &identify::Namespace, bs: u32) -> u32 {
    let units = |v: u16| bs.saturating_mul(u32::from(v) + 1);
    let preferred = if ns.nsfeat.optperf() {
        units(ns.npwg)
    } else {
        bs
    };
    let atomic = if ns.nsfeat.nsabp() && ns.nabo == 0 {
        units(ns.nawupf)
    } else {
        bs
    };
    let p = preferred.min(atomic).min(65536).max(bs);
    // Round down to a power of two (a device may report any count of blocks).
    1 << (31 - p.leading_zeros())
}

impl<P: Platform> Controller<P, Enabled> {
    /// Identify Controller data, once [`Controller::identify`] has run.
    pub fn info(&self) -> Option<&ControllerInfo> {
        self.info.as_ref()
    }

    /// Runs one admin command to completion, polling, bounded by the admin timeout. With
    /// `data`, the command's data pointer is the 4 KiB admin buffer (for Identify, logs,
    /// features with data); after success its contents are copied into the scratch page.
    ///
    /// Returns the completion's result (DW0/DW1). A command that times out is cancelled: a
    /// late completion is refused as bogus rather than matched to a later command.
    pub fn admin_command(&mut self, sqe: Sqe, data: bool) -> Result<u64, CtrlError> {
        let buf_addr = match (&self.admin_buf, data) {
            (Some(b), true) => {
                b.zero(0, IDENTIFY_SIZE).map_err(plat)?;
                Some(b.bus_addr().as_u64())
            }
            _ => None,
        };
        let sqe = match buf_addr {
            // One page, page aligned: PRP1 alone describes it.
            Some(a) => sqe.with_prp(a, 0),
            None => sqe,
        };
        let result = self.admin_raw(sqe, self.settings.admin_timeout);
        if result.is_ok() && data {
            if let Some(b) = &self.admin_buf {
                b.read_bytes(0, self.scratch.as_mut_bytes()).map_err(plat)?;
            }
        }
        result
    }

    /// Runs a caller-built admin command (data pointer already set, in memory the caller keeps
    /// until this returns or, on a timeout, until the controller is disabled) to completion,
    /// polling, for at most `timeout`. Returns the completion's result (DW0/DW1).
    ///
    /// A command that times out is cancelled: a late completion is refused as bogus rather
    /// than matched to a later command.
    pub fn admin_raw(&mut self, sqe: Sqe, timeout: Duration) -> Result<u64, CtrlError> {
        let tag = self.admin_submit(&sqe)?;
        let deadline = Deadline::after(&self.clock, timeout);
        let mut outcome: Option<Result<u64, CtrlError>> = None;
        let aer_tag = self.aer_tag;
        let mut aer: Option<Option<u32>> = None;
        let res = deadline.poll(&self.clock, self.settings.poll_interval, || {
            let admin = self
                .admin
                .as_mut()
                .ok_or(CtrlError::Invalid("admin queue"))?;
            admin.reap(&self.mmio, None, ADMIN_DEPTH as usize, |r| {
                if let Reaped::Done {
                    tag: t,
                    status,
                    result,
                } = r
                {
                    if t == tag {
                        outcome = Some(if status.is_success() {
                            Ok(result)
                        } else {
                            Err(CtrlError::Status(status))
                        });
                    } else if Some(t) == aer_tag {
                        // The event request completed meanwhile: keep its event.
                        // CAST: an event is completion DW0.
                        aer = Some(status.is_success().then_some(result as u32));
                    }
                }
            })?;
            if let Some(o) = outcome {
                return Ok(Some(o));
            }
            // A dead controller never completes anything; do not wait out the timeout.
            let csts = Csts(self.mmio.read32(Offset::Csts.at()).map_err(plat)?);
            if csts.is_gone() {
                return Err(CtrlError::Gone);
            }
            if csts.cfs() {
                return Err(CtrlError::Fatal);
            }
            Ok(None)
        });
        self.record_aer(aer);
        let result = match res {
            Ok(r) => r,
            Err(WaitError::TimedOut) => Err(CtrlError::Timeout(Wait::Admin)),
            Err(WaitError::Failed(e)) => Err(e),
        };
        if result.is_err() {
            if let Some(admin) = self.admin.as_mut() {
                admin.cancel(tag);
            }
        }
        result
    }

    /// Enables the asynchronous events the driver handles (Asynchronous Event Configuration:
    /// every SMART / Health critical warning, and Namespace Attribute Notices when OAES has
    /// them) and keeps one Asynchronous Event Request outstanding. A controller that refuses
    /// the configuration still gets the request (the critical warnings are on by default on
    /// many).
    pub fn start_async_events(&mut self) -> Result<(), CtrlError> {
        let nan = self.info.as_ref().is_some_and(|i| i.oaes.nan());
        let config = AsyncEventConfig::ALL_CRITICAL_WARNINGS.with_nan(nan);
        let _ = self.admin_command(
            Sqe::set_features(Fid::ASYNC_EVENT_CONFIG, config.0, false),
            false,
        );
        self.arm_async_event()
    }

    /// Submits an Asynchronous Event Request unless one is outstanding (it completes only
    /// when an event happens; [`Controller::poll_async_event`] picks it up).
    pub fn arm_async_event(&mut self) -> Result<(), CtrlError> {
        if self.aer_tag.is_some() {
            return Ok(());
        }
        self.aer_tag = Some(self.admin_submit(&Sqe::async_event_request())?);
        Ok(())
    }

    /// Queues `sqe` on a free admin tag and rings the doorbell; returns the tag.
    fn admin_submit(&mut self, sqe: &Sqe) -> Result<u16, CtrlError> {
        let admin = self
            .admin
            .as_mut()
            .ok_or(CtrlError::Invalid("admin queue"))?;
        let tag = (0..ADMIN_DEPTH as u16)
            .find(|&t| admin.tag_is_free(t))
            .ok_or(CtrlError::Busy)?;
        admin.submit(tag, sqe)?;
        admin.ring(&self.mmio, None::<&ShadowDoorbells<Coherent<P>>>)?;
        Ok(tag)
    }

    /// Records the outcome of the event request, if a reap saw it complete: `Some(None)` for
    /// an error completion (no event), `Some(Some(dw0))` for an event. Either way the request
    /// is no longer outstanding.
    fn record_aer(&mut self, aer: Option<Option<u32>>) {
        if let Some(ev) = aer {
            self.aer_tag = None;
            self.aer_done = self.aer_done.or(ev);
        }
    }

    /// Reaps the admin queue without waiting and returns an asynchronous event that has
    /// completed, if any. The request is then no longer outstanding: handle the event (read
    /// its log page, which clears it) and call [`Controller::arm_async_event`] again. A
    /// request that completed with an error is dropped without an event (and not re-armed
    /// by this call).
    pub fn poll_async_event(&mut self) -> Result<Option<AsyncEvent>, CtrlError> {
        let aer_tag = self.aer_tag;
        let mut aer: Option<Option<u32>> = None;
        let admin = self
            .admin
            .as_mut()
            .ok_or(CtrlError::Invalid("admin queue"))?;
        admin.reap(&self.mmio, None, ADMIN_DEPTH as usize, |r| {
            if let Reaped::Done {
                tag,
                status,
                result,
                ..
            } = r
            {
                if Some(tag) == aer_tag {
                    // CAST: an event is completion DW0.
                    aer = Some(status.is_success().then_some(result as u32));
                }
            }
        })?;
        self.record_aer(aer);
        Ok(self.aer_done.take().map(AsyncEvent))
    }

    /// Reads `len` bytes (a multiple of 4, at most 4 KiB) of log page `lid` for `nsid` with
    /// Retain Asynchronous Event clear, which clears the event that pointed at it.
    pub fn read_log_clearing(
        &mut self,
        lid: LogId,
        nsid: u32,
        len: usize,
    ) -> Result<&[u8], CtrlError> {
        let numd = numd_of(len.min(IDENTIFY_SIZE)).ok_or(CtrlError::Invalid("log length"))?;
        self.admin_command(Sqe::get_log_page(lid, nsid, numd, 0).with_rae(false), true)?;
        self.scratch
            .as_bytes()
            .get(..len.min(IDENTIFY_SIZE))
            .ok_or(CtrlError::Invalid("log length"))
    }

    /// Reads the Commands Supported and Effects log (LID 05h) into `out`, when Identify
    /// Controller's LPA says the controller has one; `Ok(false)` (and `out` untouched)
    /// otherwise. The caller provides the 4 KiB, so no copy of it lands on the stack.
    pub fn command_effects(&mut self, out: &mut Effects) -> Result<bool, CtrlError> {
        if !self.info.as_ref().is_some_and(|i| i.lpa.cmd_effects()) {
            return Ok(false);
        }
        let numd = numd_of(IDENTIFY_SIZE).ok_or(CtrlError::Invalid("log length"))?;
        self.admin_command(Sqe::get_log_page(LogId::COMMAND_EFFECTS, 0, numd, 0), true)?;
        let src = self
            .scratch
            .as_bytes()
            .get(..core::mem::size_of::<Effects>())
            .ok_or(CtrlError::Invalid("effects log size"))?;
        out.as_mut_bytes().copy_from_slice(src);
        Ok(true)
    }

    /// Identify Controller (CNS 01h); checks the entry sizes the driver uses are supported.
    pub fn identify(&mut self) -> Result<&ControllerInfo, CtrlError> {
        self.admin_command(Sqe::identify(Cns::Controller, 0), true)?;
        let id = identify::Controller::ref_from_bytes(self.scratch.as_bytes())
            .map_err(|_| CtrlError::Invalid("identify buffer"))?;
        // CAST: log2 of the entry sizes, 6 and 4.
        let (sqes, cqes) = (
            SQE_SIZE.trailing_zeros() as u8,
            CQE_SIZE.trailing_zeros() as u8,
        );
        if !id.sqes.allows(sqes) || !id.cqes.allows(cqes) {
            return Err(CtrlError::Unsupported("64-byte SQEs and 16-byte CQEs"));
        }
        let mut info = ControllerInfo {
            vid: id.vid,
            sn: id.sn,
            mn: id.mn,
            fr: id.fr,
            cntlid: id.cntlid,
            max_transfer: id.max_transfer_bytes(self.cap.min_page_size()),
            nn: id.nn,
            oacs: id.oacs,
            oncs: id.oncs,
            vwc: id.vwc.present(),
            sgls: id.sgls.support() != 0,
            aerl: id.aerl,
            lpa: id.lpa,
            oaes: id.oaes,
            subnqn: id.subnqn,
            max_dealloc_blocks: None,
            max_write_zeroes: None,
        };
        // The NVM Command Set's own Identify Controller (CNS 06h, CSI 00h, NVM Cmd Set 1.0
        // §4.1.5.2) limits Write Zeroes (WZSL) and Dataset Management ranges (DMRSL). Older
        // controllers refuse the CNS: then there are no such limits.
        if self
            .admin_command(
                Sqe::identify_with(Cns::CsController, 0, 0, identify::CSI_NVM),
                true,
            )
            .is_ok()
        {
            if let Ok(nvm) = identify::NvmController::ref_from_bytes(self.scratch.as_bytes()) {
                info.max_write_zeroes = nvm.max_write_zeroes_bytes(self.cap.min_page_size());
                info.max_dealloc_blocks = nvm.max_dealloc_blocks();
            }
        }
        Ok(self.info.insert(info))
    }

    /// Set Features – Number of Queues: asks for `want` I/O queue pairs and returns how many
    /// the controller granted (at least 1, at most `want`).
    pub fn set_queue_count(&mut self, want: u16) -> Result<u16, CtrlError> {
        let want = want.max(1);
        let req = NumberOfQueues::request(want, want);
        let dw0 = self.admin_command(
            Sqe::set_features(Fid::NUMBER_OF_QUEUES, req.0, false),
            false,
        )?;
        // CAST: DW0 is the low half of the 64-bit result.
        let got = NumberOfQueues(dw0 as u32);
        let granted = got.sq_count().min(got.cq_count()).min(u32::from(want));
        // CAST: granted <= want, a u16.
        Ok(granted as u16)
    }

    /// Creates I/O queue pair `qid` with `depth` entries posting interrupts on `vector`
    /// (or polled when `vector` is `None`): Create I/O CQ, then Create I/O SQ (§3.5.1 step 9).
    pub fn create_io_queue<S: AsRef<[CidSlot]> + AsMut<[CidSlot]>>(
        &mut self,
        qid: u16,
        depth: u32,
        vector: Option<u16>,
        slots: S,
    ) -> Result<QueuePair<Coherent<P>, S>, CtrlError> {
        if qid == 0 || depth < 2 || depth > self.cap.max_queue_entries() {
            return Err(CtrlError::Invalid("I/O queue id or depth"));
        }
        let (sq, cq) = self.alloc_rings(depth)?;
        let q = QueuePair::new(qid, depth, self.cap, sq, cq, slots)?;
        // CAST: depth <= 65536, so depth - 1 fits the 0's based 16-bit size.
        let qsize = (depth - 1) as u16;
        self.admin_command(
            Sqe::create_io_cq(
                qid,
                qsize,
                q.cq_bus_addr(),
                vector.unwrap_or(0),
                vector.is_some(),
            ),
            false,
        )?;
        if let Err(e) = self.admin_command(
            Sqe::create_io_sq(qid, qsize, q.sq_bus_addr(), qid, Qprio::Medium),
            false,
        ) {
            let _ = self.admin_command(Sqe::delete_io_cq(qid), false);
            return Err(e);
        }
        Ok(q)
    }

    /// Deletes an I/O queue pair (SQ first, then CQ) and hands back its memory.
    pub fn delete_io_queue<S: AsRef<[CidSlot]> + AsMut<[CidSlot]>>(
        &mut self,
        q: QueuePair<Coherent<P>, S>,
    ) -> Result<S, CtrlError> {
        let qid = q.qid();
        self.admin_command(Sqe::delete_io_sq(qid), false)?;
        self.admin_command(Sqe::delete_io_cq(qid), false)?;
        let (_, _, slots) = q.into_parts();
        Ok(slots)
    }

    /// Lists active namespaces (Identify CNS 02h, following continuation) and identifies each
    /// (CNS 00h), calling `f` for every namespace with a usable format. Namespaces whose
    /// format the driver cannot use are reported through `skipped`.
    pub fn for_each_namespace(
        &mut self,
        mut f: impl FnMut(NamespaceInfo),
        mut skipped: impl FnMut(u32, &'static str),
    ) -> Result<(), CtrlError> {
        let mut after = 0u32;
        loop {
            self.admin_command(Sqe::identify(Cns::ActiveNsList, after), true)?;
            // Copy out the start of the list (identifying each namespace reuses the scratch
            // page); a window keeps the stack small in kernels. A full window is followed by
            // asking again for the IDs after its last one.
            let mut ids = [0u32; NS_WINDOW];
            let n = core::mem::size_of_val(&ids);
            let src = self
                .scratch
                .as_bytes()
                .get(..n)
                .ok_or(CtrlError::Invalid("identify buffer"))?;
            ids.as_mut_bytes().copy_from_slice(src);
            let mut last = after;
            for &nsid in ids.iter().take_while(|&&id| id != 0) {
                // The list is increasing; anything else is a confused controller, and
                // following it could loop forever.
                if nsid <= last {
                    return Err(CtrlError::Invalid("active namespace list not increasing"));
                }
                last = nsid;
                self.admin_command(Sqe::identify(Cns::Namespace, nsid), true)?;
                let ns = identify::Namespace::ref_from_bytes(self.scratch.as_bytes())
                    .map_err(|_| CtrlError::Invalid("identify buffer"))?;
                if !ns.is_active() {
                    continue;
                }
                let nonzero = |v: &[u8]| v.iter().any(|&b| b != 0);
                let mut ids = identify::NsIds {
                    nguid: Some(ns.nguid).filter(|v| nonzero(v)),
                    eui64: Some(ns.eui64).filter(|v| nonzero(v)),
                    ..Default::default()
                };
                let found = match (ns.block_size(), ns.metadata_size()) {
                    (Some(bs), Some(ms)) if (512..=65536).contains(&bs) => Some(NamespaceInfo {
                        nsid,
                        blocks: ns.nsze,
                        block_size: bs,
                        physical_block_size: physical_block_size(ns, bs),
                        metadata: ms,
                        ids,
                    }),
                    _ => None,
                };
                let Some(mut found) = found else {
                    skipped(nsid, "unsupported LBA format");
                    continue;
                };
                // The descriptor list (NVMe 1.3) adds the UUID and CSI. A controller that
                // refuses it, or returns a malformed list, keeps the Identify values.
                if self
                    .admin_command(Sqe::identify(Cns::NsIdDescriptors, nsid), true)
                    .is_ok()
                {
                    if let Ok(d) = identify::NsIds::parse(self.scratch.as_bytes()) {
                        ids.uuid = d.uuid;
                        ids.csi = d.csi;
                        ids.nguid = d.nguid.or(ids.nguid);
                        ids.eui64 = d.eui64.or(ids.eui64);
                    }
                }
                found.ids = ids;
                f(found);
            }
            match ids.last() {
                Some(&id) if id != 0 && id < u32::MAX => after = id,
                _ => return Ok(()),
            }
        }
    }

    /// Doorbell Buffer Config (NVMe Base 2.0 §5.8), when Identify Controller OACS offers it:
    /// allocates the shadow doorbell and EventIdx buffers for `queues` I/O queues plus the
    /// admin queue and hands them to the controller. `Ok(None)` when not supported.
    /// Needs [`Controller::identify`] first.
    pub fn setup_shadow_doorbells(
        &mut self,
        queues: u16,
    ) -> Result<Option<ShadowDoorbells<Coherent<P>>>, CtrlError> {
        if !self.info.as_ref().is_some_and(|i| i.oacs.dbbuf()) {
            return Ok(None);
        }
        let page = self.page_size as usize;
        let len = (usize::from(queues) + 1) * 2 * self.cap.doorbell_stride();
        let len = len.div_ceil(page) * page;
        let shadow = self.dma.alloc_coherent(len, page).map_err(plat)?;
        let event_idx = self.dma.alloc_coherent(len, page).map_err(plat)?;
        let sqe =
            Sqe::doorbell_buffer_config(shadow.bus_addr().as_u64(), event_idx.bus_addr().as_u64());
        self.admin_command(sqe, false)?;
        Ok(Some(ShadowDoorbells { shadow, event_idx }))
    }

    /// Hands existing shadow doorbell buffers to the controller again after a reset
    /// (Doorbell Buffer Config, §5.8): both are zeroed first, since every queue starts with
    /// its head and tail at 0. They must have been made by
    /// [`Controller::setup_shadow_doorbells`] for at least as many queues as will exist.
    pub fn restore_shadow_doorbells(
        &mut self,
        sh: &ShadowDoorbells<Coherent<P>>,
    ) -> Result<(), CtrlError> {
        sh.shadow.zero(0, sh.shadow.len()).map_err(plat)?;
        sh.event_idx.zero(0, sh.event_idx.len()).map_err(plat)?;
        let sqe = Sqe::doorbell_buffer_config(
            sh.shadow.bus_addr().as_u64(),
            sh.event_idx.bus_addr().as_u64(),
        );
        self.admin_command(sqe, false).map(|_| ())
    }

    /// Orderly shutdown, NVMe Base 2.0 §3.6.1: CC.SHN = normal, bounded wait for
    /// CSTS.SHST = complete, then disable. Outstanding I/O must have been drained.
    #[expect(
        clippy::result_large_err,
        reason = "a failed transition hands the controller back to the caller"
    )]
    pub fn shutdown(self) -> Result<Controller<P, Disabled>, (CtrlError, Controller<P, Disabled>)> {
        let res = (|| {
            let cc = Cc(self.mmio.read32(Offset::Cc.at()).map_err(plat)?);
            self.mmio
                .write32(Offset::Cc.at(), cc.with_shn(Shutdown::Normal.bits()).0)
                .map_err(plat)?;
            self.wait_csts(Wait::Shutdown, |c| {
                Shutdown::from_bits(c.shst()) == Shutdown::Abrupt
            })
        })();
        // SHST 10b is "shutdown processing complete" (named Abrupt in the shared encoding).
        match (res, self.disable_inner()) {
            (Ok(()), Ok(d)) => Ok(d),
            (Err(e), Ok(d)) => Err((e, d)),
            (Ok(()), Err((e, me))) | (Err(e), Err((_, me))) => Err((e, me.into_state())),
        }
    }

    /// Controller reset (§3.7.2): disable, dropping all queues. Bring it up again with
    /// [`Controller::enable`].
    #[expect(
        clippy::result_large_err,
        reason = "a failed transition hands the controller back to the caller"
    )]
    pub fn reset(self) -> Result<Controller<P, Disabled>, (CtrlError, Controller<P, Disabled>)> {
        self.disable_inner().map_err(|(e, me)| (e, me.into_state()))
    }
}
