//! A persistent worker pool for the kernels: one thread per core, started once, woken by a spin
//! on an epoch counter (a decode step hands out a few hundred small jobs per token, so the
//! microseconds a condvar wake costs would add up), falling back to sleeping on a condvar when
//! no work has come for a while so an idle server burns no CPU.
//!
//! `run(f)` calls `f(i)` once for every thread index `i` in `0..threads()` — index 0 on the
//! calling thread — and returns when all have finished. Work is split by the caller (usually
//! through `for_each_chunk`), so results never depend on which thread computed what.

use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::ops::Range;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Spins before a worker goes to sleep: long enough to bridge the gap between the matmuls of
/// one decode step (tens of microseconds), short enough not to matter when idle.
const SPINS_BEFORE_SLEEP: u32 = 1 << 16;

type Job = dyn Fn(usize) + Sync;

struct Shared {
    /// The current job, valid while `remaining > 0` for the epoch that published it.
    job: UnsafeCell<Option<&'static Job>>,
    epoch: AtomicU64,
    remaining: AtomicUsize,
    panicked: AtomicBool,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread holding `Pool::running`, before it publishes a new
// epoch (SeqCst), and read by workers only after they observe that epoch and before they
// decrement `remaining`; the writer waits for `remaining == 0` before writing again.
unsafe impl Sync for Shared {}

pub struct Pool {
    shared: Arc<Shared>,
    /// Held by the thread whose job is running; a second caller runs its job serially instead.
    running: Mutex<()>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool of `threads` threads in all: the caller and `threads - 1` workers.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            job: UnsafeCell::new(None),
            epoch: AtomicU64::new(0),
            remaining: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|index| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("ward-kernel-{index}"))
                    .spawn(move || worker(&shared, index))
                    .expect("could not start a kernel thread")
            })
            .collect();
        Pool {
            shared,
            running: Mutex::new(()),
            workers,
        }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Call `f(i)` for every `i` in `0..threads()`, in parallel, and wait for all of them. If the
    /// pool is already running a job (another caller, or `f` itself calling `run`), the calls
    /// are made one after another on this thread instead.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        let n = self.threads();
        let _guard = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                (0..n).for_each(f);
                return;
            }
        };
        if n == 1 {
            f(0);
            return;
        }
        let s = &*self.shared;
        // SAFETY: we hold `running` and the previous job has finished (`remaining` was 0 when
        // its `run` returned); the lifetime is erased only until this function returns, and it
        // returns only after every worker has finished with `f` (below, even if `f` panics).
        unsafe {
            *s.job.get() = Some(std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(f));
        }
        s.remaining.store(n - 1, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        if s.sleepers.load(Ordering::SeqCst) > 0 {
            drop(s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner()));
            s.wake.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
        let measuring = MEASURING.load(Ordering::Relaxed);
        let waiting_since = measuring.then(Instant::now);
        while s.remaining.load(Ordering::Acquire) > 0 {
            std::hint::spin_loop();
        }
        if let Some(since) = waiting_since {
            JOBS.fetch_add(1, Ordering::Relaxed);
            WAITING_NS.fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        let worker_panicked = s.panicked.swap(false, Ordering::SeqCst);
        if let Err(payload) = mine {
            resume_unwind(payload);
        }
        if worker_panicked {
            panic!("a kernel thread panicked");
        }
    }

    /// Cut `0..len` into ranges of `chunk_len` (the last may be shorter) and call `f(range)` for
    /// each, spread over the pool's threads; threads take the next range as they finish one, so
    /// a core slowed by a neighbour does not hold up the rest.
    pub fn for_each_range(&self, len: usize, chunk_len: usize, f: impl Fn(Range<usize>) + Sync) {
        let chunk_len = chunk_len.max(1);
        let n_chunks = len.div_ceil(chunk_len);
        if n_chunks <= 1 {
            // Nothing to do, or not worth waking anyone (a decode step's small vectors).
            if len > 0 {
                f(0..len);
            }
            return;
        }
        let next = AtomicUsize::new(0);
        self.run(&|_| loop {
            let c = next.fetch_add(1, Ordering::Relaxed);
            if c >= n_chunks {
                break;
            }
            f(c * chunk_len..((c + 1) * chunk_len).min(len));
        });
    }

    /// Cut `data` into chunks of `chunk_len` elements (the last may be shorter) and call
    /// `f(offset, chunk)` for each, spread over the pool's threads as `for_each_range` does.
    pub fn for_each_chunk<T: Send>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        f: impl Fn(usize, &mut [T]) + Sync,
    ) {
        let out = Disjoint::new(data);
        self.for_each_range(out.len, chunk_len, |range| {
            // SAFETY: each range is handed to exactly one thread.
            f(range.start, unsafe { out.slice(range) })
        });
    }
}

/// A mutable slice that the pool's threads write at disjoint places (each output row of a
/// matmul by the thread that computed it), without handing each thread a sub-slice.
pub struct Disjoint<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: only hands out access to disjoint parts of a `&mut [T: Send]` (see `slice`).
unsafe impl<T: Send> Sync for Disjoint<'_, T> {}

impl<'a, T> Disjoint<'a, T> {
    pub fn new(data: &'a mut [T]) -> Self {
        Disjoint {
            ptr: data.as_mut_ptr(),
            len: data.len(),
            _borrow: PhantomData,
        }
    }

    /// The elements in `range`. Panics if it is out of bounds.
    ///
    /// # Safety
    /// No two live results may overlap (the caller gives each thread its own ranges).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: Range<usize>) -> &mut [T] {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range out of bounds"
        );
        // SAFETY: in bounds of the borrowed slice; exclusive by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.stop.store(true, Ordering::SeqCst);
        s.epoch.fetch_add(1, Ordering::SeqCst);
        drop(s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner()));
        s.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(s: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        seen = wait_for_epoch(s, seen);
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: the epoch we observed was published after `job` was written, and the writer
        // waits for our decrement of `remaining` before changing it.
        let job = unsafe { (*s.job.get()).expect("a job is published with its epoch") };
        if catch_unwind(AssertUnwindSafe(|| job(index))).is_err() {
            s.panicked.store(true, Ordering::SeqCst);
        }
        s.remaining.fetch_sub(1, Ordering::Release);
    }
}

/// Spin, then sleep, until the epoch moves past `seen`; returns the new epoch.
fn wait_for_epoch(s: &Shared, seen: u64) -> u64 {
    for _ in 0..SPINS_BEFORE_SLEEP {
        let e = s.epoch.load(Ordering::Acquire);
        if e != seen {
            return e;
        }
        std::hint::spin_loop();
    }
    let mut guard = s.sleep_lock.lock().unwrap_or_else(|p| p.into_inner());
    s.sleepers.fetch_add(1, Ordering::SeqCst);
    let epoch = loop {
        let e = s.epoch.load(Ordering::SeqCst);
        if e != seen {
            break e;
        }
        guard = s.wake.wait(guard).unwrap_or_else(|p| p.into_inner());
    };
    s.sleepers.fetch_sub(1, Ordering::SeqCst);
    epoch
}

static GLOBAL: OnceLock<Pool> = OnceLock::new();

static MEASURING: AtomicBool = AtomicBool::new(false);
static JOBS: AtomicU64 = AtomicU64::new(0);
static WAITING_NS: AtomicU64 = AtomicU64::new(0);

/// What the pools' jobs cost in synchronisation since `measure(true)`: how many jobs were handed
/// to the workers, and how long the handing thread then waited for the last of them (its own
/// share done; the wake-up, the workers' tail and the barrier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncStats {
    pub jobs: u64,
    pub waiting: Duration,
}

/// Start (from zero) or stop counting `SyncStats`; off by default, so a server pays nothing.
pub fn measure(on: bool) {
    JOBS.store(0, Ordering::Relaxed);
    WAITING_NS.store(0, Ordering::Relaxed);
    MEASURING.store(on, Ordering::Relaxed);
}

/// The counts since `measure(true)`.
pub fn sync_stats() -> SyncStats {
    SyncStats {
        jobs: JOBS.load(Ordering::Relaxed),
        waiting: Duration::from_nanos(WAITING_NS.load(Ordering::Relaxed)),
    }
}

/// Size the shared pool used by the kernels. Takes effect only before the first kernel call;
/// returns false if the pool was already started (with the size it has).
pub fn configure(threads: usize) -> bool {
    let mut fresh = false;
    GLOBAL.get_or_init(|| {
        fresh = true;
        Pool::new(threads)
    });
    fresh
}

/// The shared pool: sized by `configure`, else by the cores the process may use.
pub fn global() -> &'static Pool {
    GLOBAL.get_or_init(|| Pool::new(default_threads()))
}

/// One thread per physical core this process may use: the CPUs std reports (affinity and cgroup
/// limits applied), fewer where hyper-threads share a core — two threads on one core's integer
/// units only get in each other's way.
pub fn default_threads() -> usize {
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    physical_cores()
        .map_or(allowed, |cores| cores.min(allowed))
        .max(1)
}

/// Distinct (package, core) pairs in /proc/cpuinfo, where the system has one.
fn physical_cores() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut cores = std::collections::HashSet::new();
    let mut package = None;
    for line in info.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "physical id" => package = Some(value.trim().to_string()),
            "core id" => {
                cores.insert((package.clone(), value.trim().to_string()));
            }
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_runs_once_per_job() {
        let pool = Pool::new(3);
        for _ in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn the_wait_for_a_slow_worker_is_counted() {
        let pool = Pool::new(2);
        measure(true);
        pool.run(&|i| {
            if i == 1 {
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let stats = sync_stats();
        measure(false);
        // Other tests' pools may add jobs while this one measures, never take them away.
        assert!(stats.jobs >= 1, "{stats:?}");
        assert!(stats.waiting >= Duration::from_millis(15), "{stats:?}");
    }

    #[test]
    fn chunks_cover_the_data_once() {
        let pool = Pool::new(4);
        let mut data = vec![0u32; 1003];
        pool.for_each_chunk(&mut data, 10, |offset, chunk| {
            for (i, v) in chunk.iter_mut().enumerate() {
                *v += (offset + i) as u32 + 1;
            }
        });
        assert!(data.iter().enumerate().all(|(i, &v)| v == i as u32 + 1));
        // Ranges: every index once, a single range inline, an empty one never called.
        let hits: Vec<AtomicUsize> = (0..1003).map(|_| AtomicUsize::new(0)).collect();
        pool.for_each_range(1003, 7, |r| {
            r.for_each(|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            })
        });
        pool.for_each_range(1003, 5000, |r| {
            r.for_each(|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            })
        });
        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 2));
        pool.for_each_range(0, 4, |_| panic!("called for nothing"));
    }

    #[test]
    fn workers_wake_after_sleeping() {
        let pool = Pool::new(2);
        let count = AtomicUsize::new(0);
        pool.run(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        pool.run(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_panic_reaches_the_caller_and_the_pool_still_works() {
        let pool = Pool::new(2);
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        let count = AtomicUsize::new(0);
        pool.run(&|_| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn nested_and_concurrent_calls_run_serially() {
        let pool = Arc::new(Pool::new(2));
        let count = AtomicUsize::new(0);
        pool.run(&|_| {
            pool.run(&|_| {
                count.fetch_add(1, Ordering::Relaxed);
            })
        });
        assert_eq!(count.load(Ordering::Relaxed), 4);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let mut data = vec![0u8; 500];
                    for _ in 0..200 {
                        pool.for_each_chunk(&mut data, 7, |_, c| {
                            c.iter_mut().for_each(|v| *v += 1)
                        });
                    }
                    assert!(data.iter().all(|&v| v == 200));
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
