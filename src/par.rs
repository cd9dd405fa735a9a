//! Running a kernel's independent pieces on the model's threads.
//!
//! Every output element of fade's kernels is one fixed chain of operations
//! (docs/FORMAT.md, *Arithmetic*), so which thread computes an element never
//! changes its bits: a kernel may cut its rows, batch items or parameter
//! elements into ranges and run them side by side, and the output is the
//! same for any number of threads. Reductions across the cut (a bias
//! gradient's sum over the lanes) stay whole: they are cut along the other
//! axis.
//!
//! The threads are a [`Pool`] that the predictor enters around each step.
//! Outside one (the fingerprint, tests, a one-thread pool) every range runs in
//! order on the calling thread.

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Work (in multiply-adds or element updates) below which a range is not cut
/// further: handing a piece to another thread costs about a microsecond.
const MIN_WORK: usize = 1 << 14;

/// How long an idle worker watches for the next piece of work before it
/// sleeps. A step runs a few hundred kernels with short serial gaps between
/// them; a worker that slept through each gap would be woken hundreds of
/// times a step, at tens of microseconds each.
const SPIN: Duration = Duration::from_micros(200);

thread_local! {
    /// The pool the kernels called from this thread use, while in [`Pool::run`].
    static CURRENT: Cell<*const Pool> = const { Cell::new(std::ptr::null()) };
}

/// The threads one model's kernels share: the thread that runs the model and
/// `threads - 1` workers.
pub struct Pool {
    shared: Option<Arc<Shared>>,
    workers: Vec<JoinHandle<()>>,
}

/// A job: pieces `0..n` of a kernel, claimed one at a time.
struct Slot {
    /// The kernel's pieces, lifetime erased: valid while `live` (the poster
    /// waits for every worker to leave before it returns).
    job: *const (dyn Fn(usize) + Sync),
    n: usize,
    live: bool,
    /// Workers inside the job.
    active: usize,
}

// SAFETY: `job` is only called while the poster keeps it alive (see `Slot`).
unsafe impl Send for Slot {}

struct Shared {
    slot: Mutex<Slot>,
    /// Bumped at every post; workers watch it.
    posted: AtomicU64,
    next: AtomicUsize,
    unfinished: AtomicUsize,
    /// A piece of the current job panicked (on any thread).
    panicked: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claims and runs pieces of the current job until none are left. A
    /// panic is caught and counted as the piece done, so that nobody waits
    /// for it; the poster raises it again once every piece is accounted for.
    fn work(&self, f: &(dyn Fn(usize) + Sync), n: usize) {
        loop {
            let i = self.next.fetch_add(1, Ordering::AcqRel);
            if i >= n {
                return;
            }
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(i))).is_err() {
                self.panicked.store(true, Ordering::Release);
            }
            self.unfinished.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn worker(&self) {
        let mut seen = 0u64;
        loop {
            let since = Instant::now();
            let mut spins = 0u32;
            while self.posted.load(Ordering::Acquire) == seen {
                if self.stop.load(Ordering::Acquire) {
                    return;
                }
                spins += 1;
                if !spins.is_multiple_of(64) {
                    std::hint::spin_loop();
                } else if since.elapsed() > SPIN {
                    thread::park_timeout(Duration::from_millis(10));
                } else {
                    // Lets a coder or reader thread waiting for this core run.
                    thread::yield_now();
                }
            }
            seen = self.posted.load(Ordering::Acquire);
            let (job, n) = {
                let mut s = self.slot();
                if !s.live {
                    continue;
                }
                s.active += 1;
                (s.job, s.n)
            };
            // SAFETY: the job is live and stays so until `active` drops back.
            self.work(unsafe { &*job }, n);
            self.slot().active -= 1;
        }
    }

    /// Runs pieces `0..n` of `f` on the caller and the workers; returns when
    /// all are done and no worker holds `f` any more.
    fn post(&self, workers: &[JoinHandle<()>], n: usize, f: &(dyn Fn(usize) + Sync)) {
        {
            let mut s = self.slot();
            // SAFETY (of the erased lifetime): `live` is cleared below, under
            // the lock and with no worker active, before `f` goes out of scope.
            s.job = unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync),
                >(f)
            };
            s.n = n;
            s.live = true;
            self.next.store(0, Ordering::Release);
            self.unfinished.store(n, Ordering::Release);
        }
        self.posted.fetch_add(1, Ordering::AcqRel);
        for w in workers {
            w.thread().unpark();
        }
        self.work(f, n);
        let mut spins = 0u32;
        loop {
            if self.unfinished.load(Ordering::Acquire) == 0 {
                let mut s = self.slot();
                if s.active == 0 {
                    s.live = false;
                    drop(s);
                    if self.panicked.swap(false, Ordering::AcqRel) {
                        panic!("a kernel panicked on one of the model's threads");
                    }
                    return;
                }
            }
            spins += 1;
            if spins.is_multiple_of(64) {
                // A worker still on a piece may be waiting for this core
                // (more threads than cores: several fade processes at once).
                thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

impl Pool {
    /// A pool of `threads` threads in all; 0 or 1 runs everything on the caller.
    pub fn new(threads: usize) -> Self {
        if threads <= 1 {
            return Self {
                shared: None,
                workers: Vec::new(),
            };
        }
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                job: &|_| {},
                n: 0,
                live: false,
                active: 0,
            }),
            posted: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            unfinished: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .filter_map(|i| {
                let sh = shared.clone();
                thread::Builder::new()
                    .name(format!("fade-kernel-{i}"))
                    .spawn(move || sh.worker())
                    .ok()
            })
            .collect();
        Self {
            shared: Some(shared),
            workers,
        }
    }

    /// Runs `f` on this thread with the kernels it calls spread over the pool.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.shared.is_none() {
            return f();
        }
        // `CURRENT` points at `self` only while `self` is borrowed here.
        let _restore = Restore(CURRENT.with(|c| c.replace(self)));
        f()
    }
}

/// Puts back the pool that was current before (none, or an outer one).
struct Restore(*const Pool);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if let Some(sh) = &self.shared {
            sh.stop.store(true, Ordering::Release);
            for w in &self.workers {
                w.thread().unpark();
            }
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Calls `f` on consecutive ranges that cover `0..n`, in parallel when the
/// caller runs in a [`Pool`] and the work (`work_per_item` per item) is
/// large enough. Range boundaries are multiples of `align` (except the end),
/// so a kernel can keep its register tiles whole.
pub fn for_ranges(n: usize, work_per_item: usize, align: usize, f: impl Fn(Range<usize>) + Sync) {
    // SAFETY: `CURRENT` is set only by `Pool::run`, which borrows the pool
    // for as long as it is set on this thread.
    let pool = unsafe { CURRENT.with(Cell::get).as_ref() };
    let Some((pool, shared)) = pool.and_then(|p| Some((p, p.shared.as_ref()?))) else {
        return f(0..n);
    };
    let align = align.max(1);
    let threads = 1 + pool.workers.len();
    let work = n.saturating_mul(work_per_item.max(1));
    let pieces = (4 * threads).min(work / MIN_WORK).min(n.div_ceil(align));
    if pieces <= 1 {
        return f(0..n);
    }
    let per = n.div_ceil(pieces).div_ceil(align) * align;
    let pieces = n.div_ceil(per);
    let piece = |i: usize| f(i * per..((i + 1) * per).min(n));
    // A split inside a piece (a batched product's items, each a product)
    // runs on its thread: posting it would replace the job being run.
    let _restore = Restore(CURRENT.with(|c| c.replace(std::ptr::null())));
    shared.post(&pool.workers, pieces, &piece);
}

/// Cuts `out` into runs of whole rows of `width` elements and calls
/// `f(first_row, run)` on each, in parallel as [`for_ranges`] decides
/// (`work_per_row` per row). A last row shorter than `width` ends the last run.
pub fn rows_mut<T: Send>(
    out: &mut [T],
    width: usize,
    work_per_row: usize,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    let width = width.max(1);
    let len = out.len();
    let base = SharedMut(out.as_mut_ptr());
    for_ranges(len.div_ceil(width), work_per_row, 1, |r| {
        let end = (r.end * width).min(len);
        // SAFETY: the ranges are disjoint runs of rows inside `out`.
        let run = unsafe { base.slice(r.start * width, end - r.start * width) };
        f(r.start, run)
    });
}

/// A raw pointer that kernels hand to their ranges, each writing a part no
/// other range touches.
pub struct SharedMut<T>(pub *mut T);

impl<T> Clone for SharedMut<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so that closures capture the wrapper whole).
    pub fn get(self) -> *mut T {
        self.0
    }

    /// Elements `start .. start + len` as a slice.
    ///
    /// # Safety
    /// They lie inside the buffer the pointer came from, and nothing else
    /// touches them while the slice lives (each range of [`for_ranges`] its own).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice<'a>(self, start: usize, len: usize) -> &'a mut [T] {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), len) }
    }
}

// SAFETY: users write disjoint elements from each range (see `for_ranges`).
unsafe impl<T> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedMut<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn ranges_cover_everything_once_aligned() {
        let pool = Pool::new(3);
        for n in [0usize, 1, 5, 6, 7, 100, 1000, 4099] {
            let seen = Mutex::new(vec![0u8; n]);
            let starts = Mutex::new(Vec::new());
            pool.run(|| {
                for_ranges(n, 1 << 14, 6, |r| {
                    starts.lock().unwrap().push(r.start);
                    for i in r {
                        seen.lock().unwrap()[i] += 1;
                    }
                })
            });
            assert!(
                seen.into_inner().unwrap().iter().all(|&c| c == 1),
                "n = {n}"
            );
            let starts = starts.into_inner().unwrap();
            assert!(starts.iter().all(|s| s % 6 == 0), "{starts:?}");
            if n >= 100 {
                assert!(starts.len() > 1, "n = {n} was not split");
            }
        }
    }

    /// A split inside a piece runs on the piece's thread and still covers
    /// everything once.
    #[test]
    fn nested_splits_run_inside_their_piece() {
        let pool = Pool::new(2);
        let seen = Mutex::new(vec![0u8; 64 * 64]);
        pool.run(|| {
            for_ranges(64, 1 << 20, 1, |outer| {
                for i in outer {
                    for_ranges(64, 1 << 20, 1, |inner| {
                        for j in inner {
                            seen.lock().unwrap()[i * 64 + j] += 1;
                        }
                    })
                }
            })
        });
        assert!(seen.into_inner().unwrap().iter().all(|&c| c == 1));
    }

    /// Outside a pool, or in a one-thread pool, one range covers everything.
    #[test]
    fn without_threads_the_caller_does_it_all() {
        for pool in [None, Some(Pool::new(1))] {
            let calls = Mutex::new(Vec::new());
            let go = || for_ranges(1000, 1 << 14, 1, |r| calls.lock().unwrap().push(r));
            match &pool {
                Some(p) => p.run(go),
                None => go(),
            }
            assert_eq!(calls.into_inner().unwrap(), vec![0..1000]);
        }
    }

    /// A panic in a piece reaches the caller instead of leaving it waiting,
    /// and the pool keeps working afterwards.
    #[test]
    fn a_panicking_piece_panics_the_caller() {
        let pool = Pool::new(2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(|| for_ranges(64, 1 << 14, 1, |r| assert!(r.start == 0)))
        }));
        assert!(r.is_err());
        let sum = AtomicUsize::new(0);
        pool.run(|| {
            for_ranges(64, 1 << 14, 1, |r| {
                sum.fetch_add(r.len(), Ordering::Relaxed);
            })
        });
        assert_eq!(sum.into_inner(), 64);
    }
}
