// SPDX-License-Identifier: GPL-2.0

//! A blk-mq tag set whose callbacks are safe trait methods ([`Ops`]), the requests those
//! callbacks get, their data mapping, and the gendisks made on the tag set.
//!
//! Who may end a request is a type: blk-mq hands `queue_rq` a [`Request`], which becomes an
//! [`Owned`] when started. An `Owned` is the one right to end (or complete, or requeue) the
//! request; it is neither `Copy` nor `Clone`, and each way of handing the request back to
//! blk-mq consumes it. blk-mq hands it back to [`Ops::complete`] after
//! [`Owned::complete`]. The timeout handler gets a [`TimedOut`], which can only look: to end
//! an expired request, the driver uses the `Owned` it kept.

use super::blk::Queue;
use super::bound::BoundPci;
use super::sysfs::GroupList;
use core::ffi::{c_int, c_uint, c_void};
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use kernel::sync::atomic::{Atomic, Relaxed};
use kernel::{
    bindings, device,
    prelude::*,
    str::CStr,
    sync::{Arc, ArcBorrow},
    types::Opaque,
    ModuleMetadata,
};

/// A `blk_status_t`.
pub(crate) type Status = bindings::blk_status_t;

/// `BLK_STS_OK`.
const STS_OK: Status = 0;

/// What the timeout handler decided.
pub(crate) enum TimeoutReturn {
    /// The request was ended (or will be): `BLK_EH_DONE`.
    Done,
    /// Give it another period: `BLK_EH_RESET_TIMER`.
    ResetTimer,
}

/// The callbacks of a tag set and its disks. `Self` is the tag set's driver data, given to
/// [`TagSet::alloc`]; every callback gets it.
pub(crate) trait Ops: Sized + Send + Sync + 'static {
    /// The per-request data (the tag set's `cmd_size`). blk-mq zeroes it when it allocates
    /// the requests: all zeroes must be a valid value (see [`TagSet::alloc`]).
    type Pdu: Send;
    /// What each disk holds a reference on (its `private_data`), dropped by `free_disk`.
    type DiskOwner: Send + Sync + 'static;
    /// The module the disks' operations belong to (it stays while a disk is open).
    type Module: ModuleMetadata;

    /// `queue_rq`: `rq` is handed to the driver. `Err` hands it back to blk-mq with the
    /// status (which ends it, or requeues it for a resource shortage).
    fn queue_rq<'a>(
        &self,
        hw: HwCtx<'a>,
        rq: Request<'a, Self::Pdu>,
        last: bool,
    ) -> Result<(), Refused<'a, Self::Pdu>>;

    /// `commit_rqs`: the last requests queued were not marked `last`.
    fn commit_rqs(&self, hw: HwCtx<'_>);

    /// `complete`: a request completed with [`Owned::complete`] is back, to be ended.
    fn complete(&self, rq: Owned<Self::Pdu>);

    /// `poll`: the completions found.
    fn poll(&self, hw: HwCtx<'_>) -> c_int;

    /// `timeout`: `rq` expired.
    fn timeout(&self, rq: TimedOut<'_, Self::Pdu>) -> TimeoutReturn;

    /// `map_queues`: maps the CPUs to the hardware contexts.
    fn map_queues(&self, maps: &mut QueueMaps<'_>);

    /// A disk's `ioctl`: `owner` is the disk's reference, `q` its queue, `partition` if
    /// opened through a partition, `writable` if opened for writing. The value to return
    /// (negative: an errno).
    fn ioctl(
        owner: ArcBorrow<'_, Self::DiskOwner>,
        q: Queue<'_>,
        partition: bool,
        writable: bool,
        cmd: u32,
        arg: usize,
    ) -> c_int;
}

/// A hardware context, for the duration of a callback.
///
/// # Invariants
///
/// `hctx` is a live hardware context for `'a`.
#[derive(Clone, Copy)]
pub(crate) struct HwCtx<'a> {
    hctx: *mut bindings::blk_mq_hw_ctx,
    _live: PhantomData<&'a ()>,
}

impl HwCtx<'_> {
    /// Its index among the tag set's hardware queues.
    #[inline]
    pub(crate) fn queue_num(self) -> u32 {
        // SAFETY: live (type invariant); the index never changes.
        unsafe { (*self.hctx).queue_num }
    }
}

/// A marker: a request of `P`s, held for `'a`.
type Live<'a, P> = PhantomData<(&'a (), fn() -> P)>;

/// A request `queue_rq` got, not yet started.
///
/// # Invariants
///
/// `rq` is a request of a tag set made by [`TagSet::alloc`] for an [`Ops`] whose `Pdu` is
/// `P`, handed to `queue_rq` and live for `'a`, and nobody else may end it.
pub(crate) struct Request<'a, P> {
    rq: NonNull<bindings::request>,
    _live: Live<'a, P>,
}

impl<'a, P> Request<'a, P> {
    /// The request's tag.
    #[inline]
    pub(crate) fn tag(&self) -> i32 {
        // SAFETY: held by the driver (type invariant); blk-mq does not change the fields read
        // here while the driver holds the request.
        unsafe { (*self.rq.as_ptr()).tag }
    }

    /// `cmd_flags`: the operation and its flags.
    #[inline]
    pub(crate) fn cmd_flags(&self) -> u32 {
        // SAFETY: held by the driver (type invariant); blk-mq does not change the fields read
        // here while the driver holds the request.
        unsafe { (*self.rq.as_ptr()).cmd_flags }
    }

    /// The first sector.
    #[inline]
    pub(crate) fn sector(&self) -> u64 {
        // SAFETY: as above.
        unsafe { (*self.rq.as_ptr()).__sector }
    }

    /// The data length, in bytes.
    #[inline]
    pub(crate) fn data_len(&self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.rq.as_ptr()).__data_len }
    }

    /// Its queue.
    #[inline]
    pub(crate) fn queue(&self) -> Queue<'_> {
        // SAFETY: held by the driver (type invariant); a held request keeps its queue entered, so
        // the queue is live.
        unsafe { Queue::new((*self.rq.as_ptr()).q) }
    }

    /// Starts the request (`blk_mq_start_request`): from now on the driver owns it.
    #[inline]
    pub(crate) fn start(self) -> Owned<P> {
        // SAFETY: handed to `queue_rq` and not started (type invariant).
        unsafe { bindings::blk_mq_start_request(self.rq.as_ptr()) };
        // INVARIANT: started, ours; `self` is consumed, so this is the one handle.
        Owned {
            rq: self.rq,
            _pdu: PhantomData,
        }
    }
}

/// A request `queue_rq` hands back to blk-mq with a status.
pub(crate) struct Refused<'a, P> {
    rq: NonNull<bindings::request>,
    status: Status,
    _live: Live<'a, P>,
}

impl<'a, P> Refused<'a, P> {
    /// `rq` was not started.
    #[inline]
    pub(crate) fn unstarted(rq: Request<'a, P>, status: Status) -> Self {
        Self {
            rq: rq.rq,
            status,
            _live: PhantomData,
        }
    }

    /// `rq` was started, and is handed back.
    #[inline]
    pub(crate) fn started(rq: Owned<P>, status: Status) -> Self {
        Self {
            rq: rq.rq,
            status,
            _live: PhantomData,
        }
    }
}

/// A started request the driver owns: the one right to end it. Handing it back (ending,
/// completing, requeueing it) while the device may still reach its data is for the caller to
/// avoid: the command must be off the device (reaped or cancelled) and the data unmapped.
///
/// # Invariants
///
/// `rq` is a started request of a tag set made by [`TagSet::alloc`] for an [`Ops`] whose
/// `Pdu` is `P`; blk-mq neither ends nor frees it until this value hands it back (dropping it
/// without doing so leaves the request outstanding).
pub(crate) struct Owned<P> {
    rq: NonNull<bindings::request>,
    _pdu: PhantomData<fn() -> P>,
}

// SAFETY: a started request may be completed or ended from any CPU; its data is a `P`, which
// is `Send`.
unsafe impl<P: Send> Send for Owned<P> {}

impl<P> Owned<P> {
    /// `cmd_flags`: the operation and its flags.
    #[inline]
    pub(crate) fn cmd_flags(&self) -> u32 {
        // SAFETY: held by the driver (type invariant); blk-mq does not change the fields read
        // here while the driver holds the request.
        unsafe { (*self.rq.as_ptr()).cmd_flags }
    }

    /// Whether it has bios.
    #[inline]
    pub(crate) fn has_bio(&self) -> bool {
        // SAFETY: held by the driver (type invariant); blk-mq does not change the fields read
        // here while the driver holds the request.
        !unsafe { (*self.rq.as_ptr()).bio }.is_null()
    }

    /// The index of its hardware context.
    #[inline]
    pub(crate) fn queue_num(&self) -> u32 {
        // SAFETY: held by the driver (type invariant), so it has a live context, which blk-mq
        // does not change meanwhile.
        unsafe { (*(*self.rq.as_ptr()).mq_hctx).queue_num }
    }

    /// The request's driver data.
    #[inline]
    pub(crate) fn pdu(&mut self) -> &mut P {
        // SAFETY: the tag set reserves a `P` after every request, zeroed (valid, by
        // `TagSet::alloc`'s contract) at allocation; the request is ours (type invariant).
        unsafe { &mut *bindings::blk_mq_rq_to_pdu(self.rq.as_ptr()).cast::<P>() }
    }

    /// The driver data, and the request's data for mapping it ([`SgTable::map`]).
    #[inline]
    pub(crate) fn pdu_and_data(&mut self) -> (&mut P, RqData<'_>) {
        let rq = self.rq;
        // INVARIANT: `rq` is started and ours; the request and its data are disjoint.
        (
            self.pdu(),
            RqData {
                rq,
                _own: PhantomData,
            },
        )
    }

    /// Marks the request prepared (`RQF_DONTPREP`, which survives requeues): whether it
    /// was not yet, i.e. this is its first dispatch.
    #[inline]
    pub(crate) fn first_dispatch(&mut self) -> bool {
        const RQF_DONTPREP: bindings::req_flags_t = 1 << bindings::rqf_flags___RQF_DONTPREP;
        // SAFETY: ours (type invariant); blk-mq does not touch `rq_flags` while we own it.
        let f = unsafe { &mut (*self.rq.as_ptr()).rq_flags };
        if *f & RQF_DONTPREP == 0 {
            *f |= RQF_DONTPREP;
            true
        } else {
            false
        }
    }

    /// Moves the request's bios to `list` (`blk_steal_bios`).
    #[inline]
    pub(crate) fn steal_bios(&mut self, list: &mut BioList) {
        // SAFETY: ours (type invariant); the bios become the list's.
        unsafe { bindings::blk_steal_bios(&mut list.0, self.rq.as_ptr()) };
    }

    /// Completes the request (`blk_mq_complete_request`): [`Ops::complete`] gets it back.
    #[inline]
    pub(crate) fn complete(self) {
        // SAFETY: ours, handed back once (`self` is consumed).
        unsafe { bindings::blk_mq_complete_request(self.rq.as_ptr()) };
    }

    /// Ends the request with `status` (`blk_mq_end_request`).
    #[inline]
    pub(crate) fn end(self, status: Status) {
        // SAFETY: ours, ended once (`self` is consumed).
        unsafe { bindings::blk_mq_end_request(self.rq.as_ptr(), status) };
    }

    /// Requeues the request (`blk_mq_requeue_request`); kicks the requeue list if `kick`.
    #[inline]
    pub(crate) fn requeue(self, kick: bool) {
        // SAFETY: ours (type invariant), handed back once (`self` is consumed).
        unsafe { bindings::blk_mq_requeue_request(self.rq.as_ptr(), kick) };
    }
}

/// The data of an owned request, for mapping it.
///
/// # Invariants
///
/// `rq` is a started request owned by the driver for `'a`, of a tag set made by
/// [`TagSet::alloc`].
pub(crate) struct RqData<'a> {
    rq: NonNull<bindings::request>,
    _own: PhantomData<&'a mut ()>,
}

/// A request that expired, held by blk-mq's timeout handler for the call.
///
/// # Invariants
///
/// `rq` is a request of a tag set made by [`TagSet::alloc`] for an [`Ops`] whose `Pdu` is
/// `P`, on which blk-mq holds a reference for `'a`.
pub(crate) struct TimedOut<'a, P> {
    rq: NonNull<bindings::request>,
    _live: Live<'a, P>,
}

impl<P> TimedOut<'_, P> {
    /// The request's tag.
    #[inline]
    pub(crate) fn tag(&self) -> i32 {
        // SAFETY: held by the driver (type invariant); blk-mq does not change the fields read
        // here while the driver holds the request.
        unsafe { (*self.rq.as_ptr()).tag }
    }

    /// The index of its hardware context.
    #[inline]
    pub(crate) fn queue_num(&self) -> u32 {
        // SAFETY: held by the driver (type invariant), so it has a live context, which blk-mq
        // does not change meanwhile.
        unsafe { (*(*self.rq.as_ptr()).mq_hctx).queue_num }
    }

    /// Whether `o` is the handle of this request.
    #[inline]
    pub(crate) fn is(&self, o: &Owned<P>) -> bool {
        self.rq == o.rq
    }

    /// The request's driver data.
    ///
    /// Whoever holds the request's [`Owned`] may be writing other fields of it meanwhile (a
    /// completion being reaped on another CPU): use only fields nobody else writes while the
    /// request is in flight.
    #[inline]
    pub(crate) fn pdu(&mut self) -> &mut P {
        // SAFETY: the tag set reserves a valid `P` after every request; blk-mq holds the
        // request for the call (type invariant). The fields the caller uses are its own for
        // the call (see above).
        unsafe { &mut *bindings::blk_mq_rq_to_pdu(self.rq.as_ptr()).cast::<P>() }
    }

    /// The request's driver data, to read (the same caveat as [`Self::pdu`]).
    #[inline]
    pub(crate) fn pdu_ref(&self) -> &P {
        // SAFETY: as in `pdu`.
        unsafe { &*bindings::blk_mq_rq_to_pdu(self.rq.as_ptr()).cast::<P>() }
    }
}

/// A scatterlist in a request's driver data, with the DMA mapping of the request's data.
/// It exists only in requests' driver data (it has no constructor; blk-mq zeroes it, which
/// is the unmapped state).
///
/// # Invariants
///
/// When `nents > 0`, `sg[..nents]` is mapped with `dma_map_sg_attrs` on `dev` in direction
/// `dir`, and `dev` is bound (it is the device of the tag set whose request data holds this,
/// bound until the tag set is freed: [`TagSet::alloc`]'s contract).
#[repr(C)]
pub(crate) struct SgTable<const N: usize> {
    nents: c_int,
    dir: bindings::dma_data_direction,
    dev: *mut bindings::device,
    sg: [bindings::scatterlist; N],
}

// SAFETY: the table may be mapped and unmapped from any CPU; `dev` is only passed to the DMA
// API.
unsafe impl<const N: usize> Send for SgTable<N> {}

/// Why a request's data could not be mapped.
pub(crate) enum MapError {
    /// More segments than the table has entries, or none mapped from the bios.
    Segments,
    /// The DMA mapping failed (a resource shortage).
    Dma,
}

impl<const N: usize> SgTable<N> {
    /// Maps `rq`'s data for DMA, to the device if `to_device`: the number of DMA segments
    /// ([`Self::dma_segments`]). A mapping left from before is undone first.
    #[inline]
    pub(crate) fn map(&mut self, rq: &RqData<'_>, to_device: bool) -> Result<usize, MapError> {
        self.unmap();
        self.dir = if to_device {
            bindings::dma_data_direction::DMA_TO_DEVICE
        } else {
            bindings::dma_data_direction::DMA_FROM_DEVICE
        };
        let r = rq.rq.as_ptr();
        // Only as many entries as the request has segments are initialised (most requests
        // have one): the table is reused, so its end marker must be where mapping stops.
        // SAFETY: the request is ours (invariant of `RqData`).
        let nseg = unsafe { (*r).nr_phys_segments };
        if usize::from(nseg.max(1)) > N {
            return Err(MapError::Segments);
        }
        let mut last_sg = ptr::null_mut();
        // SAFETY: `sg` has at least `nseg.max(1)` entries (checked above); the request's bios
        // are stable while we own it, and map into at most `nr_phys_segments` entries.
        let n = unsafe {
            bindings::sg_init_table(self.sg.as_mut_ptr(), c_uint::from(nseg.max(1)));
            bindings::__blk_rq_map_sg(r, self.sg.as_mut_ptr(), &mut last_sg)
        };
        if n <= 0 {
            return Err(MapError::Segments);
        }
        // SAFETY: the request is of a tag set made by `TagSet::alloc` (invariant of
        // `RqData`), so its queue's `tag_set` is the `set` field of a live `SetBox`, whose
        // `dev` is bound until the tag set is freed.
        let dev = unsafe { (*(*(*r).q).tag_set.cast::<SetBox>()).dev };
        // SAFETY: `sg[..n]` describes the request's pages; `dev` is bound (above).
        let mapped =
            unsafe { bindings::dma_map_sg_attrs(dev, self.sg.as_mut_ptr(), n, self.dir, 0) };
        if mapped == 0 {
            return Err(MapError::Dma);
        }
        // INVARIANT: `sg[..n]` is mapped on `dev` in `dir`.
        self.dev = dev;
        self.nents = n;
        // CAST: at most `n`, a positive c_int.
        Ok(mapped as usize)
    }

    /// The first `count` DMA segments of the mapping (address, length), `count` at most what
    /// [`Self::map`] returned.
    #[inline]
    pub(crate) fn dma_segments(&self, count: usize) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.sg.iter().take(count).map(|e| {
            let e = ptr::from_ref(e).cast_mut();
            // SAFETY: `e` is an entry of the table, filled in by `dma_map_sg` for the first
            // `count` (caller's word; otherwise the values are meaningless, not unsafe: the
            // helpers only read the entry).
            unsafe { (bindings::sg_dma_address(e), bindings::sg_dma_len(e)) }
        })
    }

    /// Unmaps the data, if mapped.
    #[inline]
    pub(crate) fn unmap(&mut self) {
        if self.nents > 0 {
            // SAFETY: `sg[..nents]` is mapped on `dev`, bound, in `dir` (type invariant).
            unsafe {
                bindings::dma_unmap_sg_attrs(
                    self.dev,
                    self.sg.as_mut_ptr(),
                    self.nents,
                    self.dir,
                    0,
                )
            };
            self.nents = 0;
        }
    }

    /// Forgets any mapping without unmapping it (for a table known to be unmapped).
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.nents = 0;
    }
}

/// Bios taken off requests ([`Owned::steal_bios`]), to be submitted again.
#[derive(Default)]
pub(crate) struct BioList(bindings::bio_list);

// SAFETY: the bios are owned by the list (taken off ended requests) until submitted again;
// any thread may do that.
unsafe impl Send for BioList {}

impl BioList {
    /// Submits every bio again (`submit_bio_noacct`), in order: how many.
    pub(crate) fn submit_all(self) -> u32 {
        let mut bio = self.0.head;
        let mut n = 0;
        while !bio.is_null() {
            // SAFETY: the bios on the list are ours and chained through `bi_next`; each is
            // unlinked before it is handed back to the block layer.
            unsafe {
                let next = (*bio).bi_next;
                (*bio).bi_next = ptr::null_mut();
                bindings::submit_bio_noacct(bio);
                bio = next;
            }
            n += 1;
        }
        n
    }
}

/// The kinds of hardware-context maps.
#[derive(Clone, Copy)]
pub(crate) enum MapType {
    Default,
    Read,
    Poll,
}

/// The tag set's CPU-to-context maps, in `map_queues`.
///
/// # Invariants
///
/// `set` is a tag set in its `map_queues` callback for `'a`.
pub(crate) struct QueueMaps<'a> {
    set: *mut bindings::blk_mq_tag_set,
    _live: PhantomData<&'a mut ()>,
}

impl QueueMaps<'_> {
    /// How many maps the tag set has.
    pub(crate) fn nr_maps(&self) -> u32 {
        // SAFETY: live (type invariant).
        unsafe { (*self.set).nr_maps }
    }

    /// The map of kind `t`.
    pub(crate) fn map(&mut self, t: MapType) -> QueueMap<'_> {
        let i = match t {
            MapType::Default => bindings::hctx_type_HCTX_TYPE_DEFAULT,
            MapType::Read => bindings::hctx_type_HCTX_TYPE_READ,
            MapType::Poll => bindings::hctx_type_HCTX_TYPE_POLL,
        };
        // SAFETY: live (type invariant); `i` < HCTX_MAX_TYPES, the array's length.
        let map = unsafe { &raw mut (*self.set).map[i as usize] };
        QueueMap {
            map,
            _live: PhantomData,
        }
    }
}

/// One CPU-to-context map.
///
/// # Invariants
///
/// `map` is a map of a tag set in its `map_queues` callback for `'a`.
pub(crate) struct QueueMap<'a> {
    map: *mut bindings::blk_mq_queue_map,
    _live: PhantomData<&'a mut ()>,
}

impl QueueMap<'_> {
    /// Sets how many contexts it spreads over.
    pub(crate) fn set_nr_queues(&mut self, n: u32) {
        // SAFETY: live (type invariant), ours to fill in.
        unsafe { (*self.map).nr_queues = n };
    }

    /// Sets its first context.
    pub(crate) fn set_queue_offset(&mut self, n: u32) {
        // SAFETY: as above.
        unsafe { (*self.map).queue_offset = n };
    }

    /// Spreads the CPUs evenly (`blk_mq_map_queues`).
    pub(crate) fn map_queues(&mut self) {
        // SAFETY: live (type invariant).
        unsafe { bindings::blk_mq_map_queues(self.map) };
    }

    /// Follows the CPU affinity of `dev`'s interrupt vectors from `offset` on
    /// (`blk_mq_map_hw_queues`).
    pub(crate) fn map_hw_queues(&mut self, dev: &device::Device, offset: u32) {
        // `Device` is transparent over the C device.
        let d = ptr::from_ref(dev).cast::<bindings::device>().cast_mut();
        // SAFETY: live (type invariant); `d` is alive while borrowed (an unbound device has no
        // vectors' affinity, and the function then spreads evenly).
        unsafe { bindings::blk_mq_map_hw_queues(self.map, d, offset) };
    }
}

/// A tag set and the device its requests' data is mapped for. `set` first: a request's
/// `q->tag_set` is the address of the box.
#[repr(C)]
struct SetBox {
    set: Opaque<bindings::blk_mq_tag_set>,
    dev: *mut bindings::device,
    /// Disks made on the tag set and not yet removed.
    disks: Atomic<u32>,
}

/// How many maps a tag set with poll queues has (default, read, poll).
pub(crate) const ALL_MAPS: u32 = bindings::hctx_type_HCTX_MAX_TYPES;

/// A blk-mq tag set for `T`'s callbacks, allocated with [`TagSet::alloc`]. Dropping it frees
/// it (`blk_mq_free_tag_set`) if no disk made on it is left; otherwise its memory is leaked.
///
/// # Invariants
///
/// `b` is a box this value owns. While `live`, `b.set` was allocated by
/// `blk_mq_alloc_tag_set` with `T`'s callbacks, driver data pointing at a `T` and `b.dev`
/// bound, both until the tag set is freed, and requests carrying a `T::Pdu`; `b.disks` counts
/// the [`GenDisk`]s made on it.
pub(crate) struct TagSet<T: Ops> {
    b: NonNull<SetBox>,
    live: bool,
    _t: PhantomData<fn(&T)>,
}

// SAFETY: the tag set may be used from any thread; the `T` it points at is `Sync`.
unsafe impl<T: Ops> Send for TagSet<T> {}
// SAFETY: shared access goes through the C functions, which lock what they change.
unsafe impl<T: Ops> Sync for TagSet<T> {}

/// The shape of a tag set.
pub(crate) struct TagSetParams {
    pub(crate) nr_hw_queues: u32,
    /// 1, or [`ALL_MAPS`] with poll queues.
    pub(crate) nr_maps: u32,
    pub(crate) queue_depth: u32,
}

impl<T: Ops> TagSet<T> {
    /// A tag set not yet allocated.
    pub(crate) fn new() -> Result<Self> {
        let b = KBox::new(
            SetBox {
                set: Opaque::new(bindings::blk_mq_tag_set::default()),
                dev: ptr::null_mut(),
                disks: Atomic::new(0),
            },
            GFP_KERNEL,
        )?;
        // INVARIANT: owned, not live.
        Ok(Self {
            b: NonNull::from(KBox::leak(b)),
            live: false,
            _t: PhantomData,
        })
    }

    fn set(&self) -> *mut bindings::blk_mq_tag_set {
        // SAFETY: the box is ours (type invariant).
        unsafe { self.b.as_ref() }.set.get()
    }

    /// Allocates the tag set (`blk_mq_alloc_tag_set`): `data` is what the callbacks get,
    /// `dev` the device requests' data is mapped for.
    ///
    /// # Safety
    ///
    /// - `data` stays valid, at its address, until the tag set is freed (dropped);
    /// - `dev` stays bound to its driver until then;
    /// - all zeroes is a valid `T::Pdu`.
    pub(crate) unsafe fn alloc(
        &mut self,
        data: *const T,
        dev: &BoundPci,
        p: &TagSetParams,
    ) -> Result {
        if self.live {
            return Err(EBUSY);
        }
        // SAFETY: the box is ours and the tag set not allocated, so nothing else uses it.
        let b = unsafe { self.b.as_mut() };
        let pdev = dev.as_raw();
        // SAFETY: `dev` holds a reference on the PCI device, so `pdev` is alive; bound until
        // the tag set is freed by the caller's contract.
        b.dev = unsafe { &raw mut (*pdev).dev };
        let s = b.set.get();
        // A promoted constant: in static memory (the type says so), as blk-mq keeps it.
        let ops: &'static bindings::blk_mq_ops = &Vtable::<T>::OPS;
        // SAFETY: as above.
        let r = unsafe {
            (*s).ops = ops;
            (*s).nr_hw_queues = p.nr_hw_queues;
            (*s).nr_maps = p.nr_maps;
            (*s).queue_depth = p.queue_depth;
            (*s).cmd_size = core::mem::size_of::<T::Pdu>() as c_uint;
            (*s).numa_node = bindings::NUMA_NO_NODE;
            (*s).driver_data = data.cast_mut().cast::<c_void>();
            // The set stays at this address (boxed) until freed in `drop`.
            bindings::blk_mq_alloc_tag_set(s)
        };
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        // INVARIANT: allocated as stated; `data`, `dev` and the `Pdu` by the caller's contract.
        self.live = true;
        Ok(())
    }

    /// Whether the tag set is allocated.
    pub(crate) fn is_live(&self) -> bool {
        self.live
    }

    /// Its number of hardware queues (0 if not allocated).
    pub(crate) fn nr_hw_queues(&self) -> u32 {
        // SAFETY: the box is ours (type invariant); `nr_hw_queues` is written only by
        // `blk_mq_update_nr_hw_queues`, and read without a lock as blk-mq's own readers do.
        unsafe { (*self.set()).nr_hw_queues }
    }

    /// Stops dispatch on every queue of the tag set (`blk_mq_quiesce_tagset`).
    pub(crate) fn quiesce(&self) {
        if self.live {
            // SAFETY: allocated (type invariant).
            unsafe { bindings::blk_mq_quiesce_tagset(self.set()) };
        }
    }

    /// Resumes dispatch (`blk_mq_unquiesce_tagset`).
    pub(crate) fn unquiesce(&self) {
        if self.live {
            // SAFETY: allocated (type invariant).
            unsafe { bindings::blk_mq_unquiesce_tagset(self.set()) };
        }
    }

    /// Changes the number of hardware queues (`blk_mq_update_nr_hw_queues`); freezes the
    /// queues meanwhile, so it may sleep.
    pub(crate) fn update_nr_hw_queues(&self, n: u32) {
        if self.live {
            // CAST: a count of hardware queues fits a c_int.
            // SAFETY: allocated (type invariant); process context (it may sleep, as this
            // function says).
            unsafe { bindings::blk_mq_update_nr_hw_queues(self.set(), n as c_int) };
        }
    }

    /// Frees the tag set now (`blk_mq_free_tag_set`), if allocated and no disk made on it is
    /// left (otherwise it stays). Dropping does the same.
    pub(crate) fn free(&mut self) {
        if !self.live {
            return;
        }
        // SAFETY: the box is ours (type invariant).
        if unsafe { self.b.as_ref() }.disks.load(Relaxed) != 0 {
            pr_err!("blk-mq tag set freed with disks left; leaking it\n");
            return;
        }
        // SAFETY: allocated, and no queue uses it any more (each disk's queue left it when
        // the disk was deleted; a queue reference without a disk starts no request).
        unsafe { bindings::blk_mq_free_tag_set(self.set()) };
        self.live = false;
    }
}

impl<T: Ops> Drop for TagSet<T> {
    fn drop(&mut self) {
        self.free();
        if !self.live {
            // SAFETY: the box came from `KBox::leak` (type invariant); nothing uses it.
            drop(unsafe { KBox::from_raw(self.b.as_ptr()) });
        }
    }
}

/// A gendisk on a [`TagSet<T>`], added. Dropping it removes it (`del_gendisk`, which waits
/// for its requests) and drops the reference (`put_disk`).
///
/// # Invariants
///
/// `disk` is a gendisk made by `__blk_mq_alloc_disk` on a tag set made by [`TagSet::alloc`]
/// for `T`, added with `device_add_disk`, with `T`'s disk operations and a reference on a
/// `T::DiskOwner` (from `Arc::into_raw`) as `private_data`; this value owns one reference
/// and its removal, and is counted in the tag set's `disks`.
pub(crate) struct GenDisk<T: Ops> {
    disk: NonNull<bindings::gendisk>,
    /// Whether its queue is frozen by [`GenDisk::start_freeze`].
    frozen: Atomic<bool>,
    _t: PhantomData<fn() -> T>,
}

// SAFETY: a gendisk may be managed from any thread.
unsafe impl<T: Ops> Send for GenDisk<T> {}
// SAFETY: shared access only reads it or goes through C functions that lock.
unsafe impl<T: Ops> Sync for GenDisk<T> {}

/// What a disk is made with.
pub(crate) struct DiskParams<'a, T: Ops> {
    /// Its queue's limits.
    pub(crate) lim: bindings::queue_limits,
    /// Its queue's `queuedata` (an integer, never dereferenced).
    pub(crate) queuedata: usize,
    pub(crate) name: &'a CStr,
    /// In 512-byte sectors.
    pub(crate) capacity: u64,
    /// The reference `free_disk` drops.
    pub(crate) owner: Arc<T::DiskOwner>,
    pub(crate) parent: &'a device::Device,
    pub(crate) groups: &'static GroupList,
}

impl<T: Ops> GenDisk<T> {
    /// Makes a disk on `set` and adds it (`__blk_mq_alloc_disk`, `set_capacity`,
    /// `device_add_disk`). The name is cut to 31 bytes.
    pub(crate) fn add(set: &TagSet<T>, mut p: DiskParams<'_, T>) -> Result<Self> {
        if !set.live {
            return Err(EINVAL);
        }
        let key = kernel::static_lock_class!();
        // SAFETY: the tag set is allocated (type invariant of `TagSet`); `lim` is a valid,
        // initialised limits struct; `queuedata` is an integer, never dereferenced.
        let disk = unsafe {
            bindings::__blk_mq_alloc_disk(
                set.set(),
                &mut p.lim,
                ptr::without_provenance_mut(p.queuedata),
                key.as_ptr(),
            )
        };
        let disk = kernel::error::from_err_ptr(disk)?;
        // A promoted constant: in static memory (the type says so).
        let fops: &'static Fops = &Vtable::<T>::FOPS;
        let parent = ptr::from_ref(p.parent)
            .cast::<bindings::device>()
            .cast_mut();
        // SAFETY: `disk` is a freshly allocated gendisk we own; the name stays NUL terminated
        // (the last byte stays 0); the operations are in static memory (a promoted constant),
        // as the disk may outlive `set`'s owner; `parent` is alive while borrowed and the
        // groups are static.
        let r = unsafe {
            for (d, s) in (*disk).disk_name.iter_mut().take(31).zip(p.name.to_bytes()) {
                *d = *s;
            }
            (*disk).fops = &fops.0;
            // One reference on the owner per disk, dropped by `free_disk`.
            (*disk).private_data = Arc::into_raw(p.owner).cast_mut().cast();
            bindings::set_capacity(disk, p.capacity);
            bindings::device_add_disk(parent, disk, p.groups.as_ptr())
        };
        if r != 0 {
            // SAFETY: the disk was never added, so `free_disk` will not run: release the
            // owner's reference here, then drop our reference on the disk.
            unsafe {
                drop(Arc::from_raw((*disk).private_data.cast::<T::DiskOwner>()));
                (*disk).private_data = ptr::null_mut();
                bindings::put_disk(disk);
            }
            return Err(Error::from_errno(r));
        }
        // SAFETY: the box is the tag set's (type invariant of `TagSet`).
        unsafe { set.b.as_ref() }.disks.fetch_add(1, Relaxed);
        // INVARIANT: made, added and counted as stated.
        Ok(Self {
            // SAFETY: `from_err_ptr` let only a valid pointer through.
            disk: unsafe { NonNull::new_unchecked(disk) },
            frozen: Atomic::new(false),
            _t: PhantomData,
        })
    }

    /// Its queue.
    #[inline]
    pub(crate) fn queue(&self) -> Queue<'_> {
        // SAFETY: the disk is live (type invariant), so its queue is.
        unsafe { Queue::new((*self.disk.as_ptr()).queue) }
    }

    /// A reference on its queue; `None` if it is dying.
    pub(crate) fn queue_ref(&self) -> Option<super::blk::QueueRef<T::Pdu>> {
        // SAFETY: the queue is live (above); the tag set's requests carry a `T::Pdu`
        // (invariant of `TagSet`).
        unsafe { super::blk::QueueRef::get((*self.disk.as_ptr()).queue) }
    }

    /// Its capacity, in 512-byte sectors.
    pub(crate) fn nr_sectors(&self) -> u64 {
        // SAFETY: the disk is live (type invariant), so its whole-disk device is; read as the
        // block layer's own readers do (`get_capacity`).
        unsafe { (*(*self.disk.as_ptr()).part0).bd_nr_sectors }
    }

    /// Changes its capacity and tells user space (`set_capacity_and_notify`).
    pub(crate) fn set_capacity_and_notify(&self, sectors: u64) {
        // SAFETY: the disk is live (type invariant).
        unsafe { bindings::set_capacity_and_notify(self.disk.as_ptr(), sectors) };
    }

    /// Marks it dead (`blk_mark_disk_dead`): its I/O fails at once from now on.
    pub(crate) fn mark_dead(&self) {
        // SAFETY: the disk is live (type invariant).
        unsafe { bindings::blk_mark_disk_dead(self.disk.as_ptr()) };
    }

    /// Starts freezing its queue (`blk_freeze_queue_start_non_owner`: lockdep does not see
    /// it as held); undone by [`Self::unfreeze`]. Does nothing if already started.
    pub(crate) fn start_freeze(&self) {
        if !self.frozen.xchg(true, Relaxed) {
            // SAFETY: the queue is live while the disk is; unfrozen once, by `unfreeze`.
            unsafe { bindings::blk_freeze_queue_start_non_owner((*self.disk.as_ptr()).queue) };
        }
    }

    /// Waits up to `timeout` jiffies for the freeze started by [`Self::start_freeze`]: the
    /// jiffies left (positive), or 0 when it timed out. May sleep.
    pub(crate) fn freeze_wait_timeout(&self, timeout: kernel::ffi::c_ulong) -> c_int {
        // SAFETY: the queue is live while the disk is; process context (this may sleep).
        unsafe { bindings::blk_mq_freeze_queue_wait_timeout((*self.disk.as_ptr()).queue, timeout) }
    }

    /// Undoes [`Self::start_freeze`] (`blk_mq_unfreeze_queue_non_owner`), if started.
    pub(crate) fn unfreeze(&self) {
        if self.frozen.xchg(false, Relaxed) {
            // SAFETY: frozen by `start_freeze`, undone once.
            unsafe { bindings::blk_mq_unfreeze_queue_non_owner((*self.disk.as_ptr()).queue) };
        }
    }
}

impl<T: Ops> Drop for GenDisk<T> {
    fn drop(&mut self) {
        self.unfreeze();
        let d = self.disk.as_ptr();
        // SAFETY: the disk is live (type invariant); its queue's `tag_set` is the `set` field
        // of the tag set's `SetBox`, which stays while it counts this disk.
        let b = unsafe { (*(*d).queue).tag_set.cast::<SetBox>() };
        // SAFETY: added, and removed once (this value owns the removal and a reference).
        unsafe {
            bindings::del_gendisk(d);
            bindings::put_disk(d);
        }
        // SAFETY: as above; the disk no longer uses the tag set once deleted.
        unsafe { (*b).disks.fetch_sub(1, Relaxed) };
    }
}

/// `T`'s C tables.
struct Vtable<T>(PhantomData<T>);

/// A `block_device_operations` table (its module pointer makes it `!Sync` as bindgen sees
/// it).
struct Fops(bindings::block_device_operations);

// SAFETY: the table is never written; the module it names lives as long as the table.
unsafe impl Sync for Fops {}

impl<T: Ops> Vtable<T> {
    /// The blk-mq callbacks, in static memory (a promoted constant). Fields that only some
    /// configurations have (`show_rq` exists only with `CONFIG_BLK_DEBUG_FS`) are never
    /// named: they start zeroed.
    #[allow(clippy::needless_update)]
    const OPS: bindings::blk_mq_ops = bindings::blk_mq_ops {
        queue_rq: Some(queue_rq::<T>),
        commit_rqs: Some(commit_rqs::<T>),
        queue_rqs: None,
        get_budget: None,
        put_budget: None,
        set_rq_budget_token: None,
        get_rq_budget_token: None,
        timeout: Some(timeout::<T>),
        poll: Some(poll::<T>),
        complete: Some(complete::<T>),
        init_hctx: Some(init_hctx),
        exit_hctx: None,
        init_request: None,
        exit_request: None,
        cleanup_rq: None,
        busy: None,
        map_queues: Some(map_queues::<T>),
        ..pin_init::zeroed()
    };

    /// The disks' operations. In static memory (a promoted constant): a disk held open (a
    /// file descriptor kept across unbind) outlives the tag set's owner, and its last close
    /// still calls through them (`release`) and `free_disk`.
    const FOPS: Fops = Fops(bindings::block_device_operations {
        submit_bio: None,
        poll_bio: None,
        open: None,
        release: None,
        ioctl: Some(blk_ioctl::<T>),
        compat_ioctl: None,
        check_events: None,
        unlock_native_capacity: None,
        getgeo: None,
        set_read_only: None,
        free_disk: Some(free_disk::<T>),
        swap_slot_free_notify: None,
        report_zones: None,
        devnode: None,
        get_unique_id: None,
        // The module cannot be unloaded while a disk is open.
        owner: <T::Module as ModuleMetadata>::THIS_MODULE.as_ptr(),
        pr_ops: ptr::null(),
        alternative_gpt_sector: None,
    });
}

/// The `T` of a hardware context.
///
/// # Safety
///
/// `hctx` is a live hardware context of a tag set made by [`TagSet::alloc`] for `T`.
#[inline]
unsafe fn data_of<'a, T: Ops>(hctx: *mut bindings::blk_mq_hw_ctx) -> &'a T {
    // SAFETY: `init_hctx` stored the tag set's driver data, a `T` that outlives the tag set
    // (`TagSet::alloc`'s contract).
    unsafe { &*(*hctx).driver_data.cast::<T>() }
}

/// blk-mq `init_hctx`: every hardware context points at the tag set's driver data.
///
/// # Safety
///
/// Called by blk-mq for a hardware context of a tag set made by [`TagSet::alloc`].
unsafe extern "C" fn init_hctx(
    hctx: *mut bindings::blk_mq_hw_ctx,
    data: *mut c_void,
    _idx: c_uint,
) -> c_int {
    // SAFETY: blk-mq passes a live context and the tag set's `driver_data`.
    unsafe { (*hctx).driver_data = data };
    0
}

/// blk-mq `queue_rq`.
///
/// # Safety
///
/// Called by blk-mq with a context of a tag set made by [`TagSet::alloc`] for `T` and a
/// request it hands the driver.
unsafe extern "C" fn queue_rq<T: Ops>(
    hctx: *mut bindings::blk_mq_hw_ctx,
    bd: *const bindings::blk_mq_queue_data,
) -> bindings::blk_status_t {
    // SAFETY: a live context of our tag set and a request handed to us (caller's contract),
    // live for the call; nobody else ends it.
    let (t, hw, rq, last) = unsafe {
        let rq = (*bd).rq;
        (
            data_of::<T>(hctx),
            HwCtx {
                hctx,
                _live: PhantomData,
            },
            NonNull::new_unchecked(rq),
            (*bd).last,
        )
    };
    let r = Request {
        rq,
        _live: PhantomData,
    };
    match t.queue_rq(hw, r, last) {
        Ok(()) => STS_OK,
        Err(e) if e.rq == rq => e.status,
        Err(_) => {
            // Another request's handle: this one stays the driver's (it is leaked rather
            // than ended while a handle to it may live).
            pr_err!("blk-mq: queue_rq refused with another request's handle\n");
            STS_OK
        }
    }
}

/// blk-mq `commit_rqs`.
///
/// # Safety
///
/// Called by blk-mq with a context of a tag set made by [`TagSet::alloc`] for `T`.
unsafe extern "C" fn commit_rqs<T: Ops>(hctx: *mut bindings::blk_mq_hw_ctx) {
    // SAFETY: caller's contract.
    let t = unsafe { data_of::<T>(hctx) };
    t.commit_rqs(HwCtx {
        hctx,
        _live: PhantomData,
    });
}

/// blk-mq `complete`.
///
/// # Safety
///
/// Called by blk-mq for a request of a tag set made by [`TagSet::alloc`] for `T`, completed
/// with `blk_mq_complete_request`.
unsafe extern "C" fn complete<T: Ops>(rq: *mut bindings::request) {
    // SAFETY: the request was completed by `Owned::complete`, which gave up its handle; it is
    // the driver's again, to end. Its context is live.
    let (t, rq) = unsafe { (data_of::<T>((*rq).mq_hctx), NonNull::new_unchecked(rq)) };
    t.complete(Owned {
        rq,
        _pdu: PhantomData,
    });
}

/// blk-mq `poll`.
///
/// # Safety
///
/// Called by blk-mq with a context of a tag set made by [`TagSet::alloc`] for `T`.
unsafe extern "C" fn poll<T: Ops>(
    hctx: *mut bindings::blk_mq_hw_ctx,
    _iob: *mut bindings::io_comp_batch,
) -> c_int {
    // SAFETY: caller's contract.
    let t = unsafe { data_of::<T>(hctx) };
    t.poll(HwCtx {
        hctx,
        _live: PhantomData,
    })
}

/// blk-mq `timeout`.
///
/// # Safety
///
/// Called by blk-mq for a request of a tag set made by [`TagSet::alloc`] for `T`, holding a
/// reference on it.
unsafe extern "C" fn timeout<T: Ops>(rq: *mut bindings::request) -> bindings::blk_eh_timer_return {
    // SAFETY: caller's contract; the request's context is live.
    let (t, rq) = unsafe { (data_of::<T>((*rq).mq_hctx), NonNull::new_unchecked(rq)) };
    match t.timeout(TimedOut {
        rq,
        _live: PhantomData,
    }) {
        TimeoutReturn::Done => bindings::blk_eh_timer_return_BLK_EH_DONE,
        TimeoutReturn::ResetTimer => bindings::blk_eh_timer_return_BLK_EH_RESET_TIMER,
    }
}

/// blk-mq `map_queues`.
///
/// # Safety
///
/// Called by blk-mq for a tag set made by [`TagSet::alloc`] for `T`.
unsafe extern "C" fn map_queues<T: Ops>(set: *mut bindings::blk_mq_tag_set) {
    // SAFETY: the tag set's driver data is a live `T` (`TagSet::alloc`'s contract).
    let t = unsafe { &*(*set).driver_data.cast::<T>() };
    t.map_queues(&mut QueueMaps {
        set,
        _live: PhantomData,
    });
}

/// The disks' `ioctl`.
///
/// # Safety
///
/// Called by the block layer for an open block device of a [`GenDisk<T>`].
unsafe extern "C" fn blk_ioctl<T: Ops>(
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: kernel::ffi::c_ulong,
) -> c_int {
    /// `BLK_OPEN_WRITE` of `<linux/blkdev.h>`.
    const BLK_OPEN_WRITE: bindings::blk_mode_t = 1 << 1;
    // SAFETY: the device is open, so its disk, the disk's queue and `private_data` (a
    // reference on the owner from `Arc::into_raw`, dropped only by `free_disk`) are alive.
    let (owner, q, partition) = unsafe {
        let disk = (*bdev).bd_disk;
        (
            ArcBorrow::from_raw((*disk).private_data.cast::<T::DiskOwner>()),
            Queue::new((*disk).queue),
            (*disk).part0 != bdev,
        )
    };
    T::ioctl(owner, q, partition, mode & BLK_OPEN_WRITE != 0, cmd, arg)
}

/// The disks' `free_disk`: drops the disk's reference on its owner.
///
/// # Safety
///
/// Called once by the block layer when a [`GenDisk<T>`]'s disk is freed.
unsafe extern "C" fn free_disk<T: Ops>(disk: *mut bindings::gendisk) {
    // SAFETY: `GenDisk::add` stored a reference from `Arc::into_raw` here (or null, when
    // adding failed and it was released there); this is its only release.
    unsafe {
        let p = (*disk).private_data.cast::<T::DiskOwner>();
        if !p.is_null() {
            drop(Arc::from_raw(p));
        }
    }
}
