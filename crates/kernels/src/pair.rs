//! The second core for work too short for rayon: the caller and one helper thread share a
//! job's chunks, and the caller never waits for a helper that has not started.
//!
//! Why not rayon: `rayon::join` from a thread outside the pool queues the job, wakes a sleeping
//! worker and blocks the caller until it is done, tens of microseconds per call on this VM kind
//! (the MLP's products take 10-100). Here the helper spins for 100 µs after its last job, so
//! the next one starts within a cache miss, then parks until the next offer wakes it (whether a
//! session's runs are worth the second core at all is [`Choice`]'s to find out: a rule that
//! woke it only for the second of two offers within a millisecond left the MLP's batch-1000
//! forward products, 2.4 ms apart, on one core); the caller takes chunks from the same
//! counter as the helper, so a helper that is asleep, descheduled or busy with another caller's
//! job costs nothing but an atomic operation: the caller does every chunk itself.
//!
//! The helper is used only when rayon's pool (the one the caller is in, else the global one)
//! has two threads or more, so a pool of one thread means one core here too. With two threads
//! and the caller outside the pool, the convolutions' chunks go to the helper as well
//! ([`share_out`]), so a step's ops never hand the second core between rayon and the helper.
//! (`micropool`, a crate built for the same latency, was not tried: pre-1.0 and a second pool
//! beside rayon's.)

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the helper waits for the next job before parking: longer than the gaps between an
/// MLP step's products (the small ops between them, the next batch), short enough that a core
/// is not held for long once a run ends.
const SPIN: Duration = Duration::from_micros(100);

/// A job on its caller's stack: `f(0..chunks)`, the caller claiming chunks from the front and
/// the helper from the back (`claimed`: the counts taken from each end, low and high halves),
/// so a chunk tends to run on the same core from call to call and find its data in that core's
/// cache (a transposed 156x100x512 product in 8 column chunks on a Zen 4, caller outside
/// rayon's pool as a session's is: 88 -> 83-87 µs; the MLP's t784x50x300 124 -> 112).
struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
    chunks: usize,
    claimed: AtomicU64,
    /// Set by the helper after its last access to the job.
    helper_done: AtomicBool,
    helper_panicked: AtomicBool,
}

impl Job<'_> {
    /// Runs chunks until none is left, from the back for the helper. Each claim adds one to
    /// its end's count; it holds a chunk while the counts before it sum to less than `chunks`,
    /// so the two ends meet without a gap or an overlap.
    fn work(&self, from_back: bool) {
        let one = if from_back { 1 << 32 } else { 1 };
        loop {
            let before = self.claimed.fetch_add(one, Relaxed);
            let (front, back) = ((before & 0xffff_ffff) as usize, (before >> 32) as usize);
            if front + back >= self.chunks {
                return;
            }
            (self.f)(if from_back { self.chunks - 1 - back } else { front });
        }
    }
}

/// The job on offer (null when none): the caller stores it, the helper takes it by swapping
/// it back to null, the caller withdraws it the same way if the helper never came.
static OFFER: AtomicPtr<Job<'static>> = AtomicPtr::new(std::ptr::null_mut());
/// Whether the helper is parked (or about to), so the caller must unpark it.
static PARKED: AtomicBool = AtomicBool::new(false);
static HELPER: OnceLock<Thread> = OnceLock::new();

fn helper() -> &'static Thread {
    HELPER.get_or_init(|| {
        std::thread::Builder::new()
            .name("tensorgraph-pair".into())
            .spawn(helper_loop)
            .expect("spawning the helper thread")
            .thread()
            .clone()
    })
}

fn helper_loop() {
    loop {
        let since = Instant::now();
        let mut polls = 0u32;
        let job = loop {
            let p = OFFER.load(Acquire);
            if !p.is_null() && OFFER.compare_exchange(p, std::ptr::null_mut(), AcqRel, Relaxed).is_ok() {
                break p;
            }
            std::hint::spin_loop();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(256) {
                // Costs a syscall when alone on the CPU; hands the CPU back when the scheduler
                // has put the caller beside us.
                std::thread::yield_now();
            }
            if polls.is_multiple_of(64)
                && (!WANTED.load(Relaxed) || polls.is_multiple_of(1024) && since.elapsed() > SPIN)
            {
                // Announce the park before the last look at the offer; the caller stores its
                // offer before looking at PARKED (both SeqCst), so one of them sees the other.
                PARKED.store(true, SeqCst);
                if OFFER.load(SeqCst).is_null() {
                    std::thread::park();
                }
                PARKED.store(false, SeqCst);
                break std::ptr::null_mut();
            }
        };
        if job.is_null() {
            continue;
        }
        // SAFETY: the job stays alive until `helper_done` is set: its caller, having failed to
        // withdraw it, waits for that flag (even while unwinding, see `Withdraw`).
        let job = unsafe { &*job };
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.work(true))).is_err() {
            job.helper_panicked.store(true, Relaxed);
        }
        job.helper_done.store(true, Release);
    }
}

/// Whether a repeated piece of work (a session's plan: a training step) runs faster with the
/// helper than without, measured as it runs: a few runs each way, then the faster way, but a
/// few runs the slower way again every 16th block (64th when it is more than a quarter
/// slower), so a machine that got busier or quieter is followed. Runs go in blocks of 4 the
/// same way and a block's first run is not counted: it pays for the switch (the other core's
/// cache lines of the variables the helper updated move back), which the steady state does
/// not. A block counts by its fastest run: one run stretched by the scheduler or a page fault
/// says nothing about the way it went (on a Zen 4, one such MLP step in the helper's mean
/// turned the choice to "alone", 1.5x slower, for the next 256 steps). A way counts by the faster
/// of its last two blocks, for the same reason one level up: a whole block slowed by a busy
/// moment of the machine (on an Intel Xeon, a CNN block with the helper at 12.5 ms against 7 ms)
/// would otherwise set a mean that kept the faster way out for hundreds of steps, the slower way
/// being sampled one block in 64. Whether a second core
/// pays depends on the machine and the sizes: on one Intel Xeon here the MLP's batch-1 step
/// took 0.12 ms alone and 0.22 ms with the helper, while on Zen 4 it made the batch-50 step a
/// third faster. Whole runs are measured, not each job, since a helper spinning between jobs
/// slows the steps between them too.
#[derive(Debug)]
pub struct Choice {
    runs: AtomicU64,
    /// The current block's fastest counted run in nanoseconds, [`SHARED`] set when it went with
    /// the helper; `u64::MAX` before its first.
    fastest: AtomicU64,
    /// The last two blocks' fastest runs without and with the helper (0: none yet).
    alone: [AtomicU64; 2],
    shared: [AtomicU64; 2],
}

impl Default for Choice {
    fn default() -> Self {
        Choice {
            runs: AtomicU64::new(0),
            fastest: AtomicU64::new(u64::MAX),
            alone: [AtomicU64::new(0), AtomicU64::new(0)],
            shared: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
}

/// Runs in a row that go the same way.
const BLOCK: u64 = 4;
/// Blocks measured before choosing: the first (which spawns the helper) not counted, then
/// alone, shared, alone.
const TRIAL_BLOCKS: u64 = 4;
/// One block in this many goes the way measured slower, while the two ways' means are within a
/// quarter of each other.
const EXPLORE: u64 = 16;
/// One block in this many when they are further apart: such a block costs more (the LSTM
/// tutorial's step runs 1.6x longer alone on a Zen 4, so one block in 16 added 4% to its
/// epoch), and a change of machine load large enough to reverse the order is rarer.
const FAR_EXPLORE: u64 = 64;
/// A way's time: the faster of its last two blocks (0 before its first).
fn estimate(way: &[AtomicU64; 2]) -> u64 {
    match (way[0].load(Relaxed), way[1].load(Relaxed)) {
        (last, 0) => last,
        (last, before) => last.min(before),
    }
}

/// The bit of [`Choice::fastest`] that says the block went with the helper.
const SHARED: u64 = 1 << 63;

impl Choice {
    /// Whether the next run should offer jobs to the helper, and whether its time counts (then
    /// pass it to [`Choice::note`]).
    pub fn helper(&self) -> (bool, bool) {
        let run = self.runs.fetch_add(1, Relaxed);
        let block = run / BLOCK;
        if run.is_multiple_of(BLOCK) {
            self.close_block();
        }
        let counted = block > 0 && !run.is_multiple_of(BLOCK);
        if block < TRIAL_BLOCKS {
            return (block.is_multiple_of(2), counted);
        }
        let (shared, alone) = (estimate(&self.shared), estimate(&self.alone));
        let (fast, slow) = (shared.min(alone), shared.max(alone));
        let every = if slow > fast + fast / 4 { FAR_EXPLORE } else { EXPLORE };
        ((shared < alone) != block.is_multiple_of(every), counted)
    }

    /// Notes a counted run's time (see [`Choice::helper`]); the block's fastest run goes into
    /// the means when the next block starts.
    pub fn note(&self, helper: bool, took: Duration) {
        let ns = took.as_nanos().min((SHARED - 1) as u128) as u64;
        self.fastest.fetch_min(if helper { ns | SHARED } else { ns }, Relaxed);
    }

    /// Notes the last block's fastest run as the newest of the way it went.
    fn close_block(&self) {
        let fastest = self.fastest.swap(u64::MAX, Relaxed);
        if fastest == u64::MAX {
            return;
        }
        let way = if fastest & SHARED != 0 { &self.shared } else { &self.alone };
        way[1].store(way[0].load(Relaxed), Relaxed);
        way[0].store(fastest & !SHARED, Relaxed);
    }

    /// Runs `f` with the helper if [`Choice::helper`] says so, and notes how long it took.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        let (helper, counted) = self.helper();
        let start = Instant::now();
        let r = with_helper(helper, f);
        if counted {
            self.note(helper, start.elapsed());
        }
        r
    }
}

thread_local! {
    /// Whether [`for_each`] on this thread may offer jobs to the helper (see [`with_helper`]).
    static ALLOWED: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Whether the helper should spin for the next job: cleared while work runs without it, so it
/// parks at once instead of spinning beside it (a spinning helper slowed the MLP's step by half
/// on one Intel Xeon here, so runs measured without it must not have it spinning).
static WANTED: AtomicBool = AtomicBool::new(true);

/// Runs `f` with [`for_each`] on this thread offering jobs to the helper or not.
pub fn with_helper<R>(allowed: bool, f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ALLOWED.with(|a| a.set(self.0));
        }
    }
    WANTED.store(allowed, Relaxed);
    let _restore = Restore(ALLOWED.with(|a| a.replace(allowed)));
    f()
}

/// Runs `f(i)` for every `i < chunks`, on the calling thread and on the helper thread when it
/// comes in time (unless [`with_helper`] says not to), and returns when all have run. Chunks
/// may run in any order and on either thread, so `f` must not depend on either (the results
/// are the same bits either way).
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let sum = AtomicUsize::new(0);
/// tensorgraph_kernels::pair::for_each(10, &|i| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 45);
/// ```
pub fn for_each(chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    run(chunks >= 2 && offers(), chunks, f)
}

/// Whether [`for_each`] on this thread offers its jobs to the helper: rayon's pool has two
/// threads or more and [`with_helper`] has not said otherwise.
pub fn offers() -> bool {
    rayon::current_num_threads() >= 2 && ALLOWED.with(|a| a.get())
}

/// Whether the helper is this caller's second core: rayon's pool has two threads, the caller is
/// outside it (a session's thread) and the helper is on offer ([`offers`]). Then a parallel
/// kernel runs on the caller and the helper rather than on rayon's pool, so that one step's ops
/// all hand work to the same spinning thread: after conv2's forward on rayon's pool, the CNN's
/// first dense product found the helper parked at most offers (48 us on average to start, on
/// an Intel Xeon) and ran at 274 us against 118 us in a loop of products.
pub fn second_core() -> bool {
    rayon::current_num_threads() == 2 && rayon::current_thread_index().is_none() && offers()
}

/// Runs `f` once on each item: on the caller and the helper ([`for_each`]) where the helper is
/// the [`second_core`], else on rayon's pool. The items may run in any order and on either
/// thread.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// let sum = AtomicUsize::new(0);
/// tensorgraph_kernels::pair::share_out((1..=4).collect(), |i: usize| {
///     sum.fetch_add(i, Ordering::Relaxed);
/// });
/// assert_eq!(sum.into_inner(), 10);
/// ```
pub fn share_out<I: Send>(items: Vec<I>, f: impl Fn(I) + Sync + Send) {
    if second_core() {
        // (Each cell is taken once, by whichever thread claims its index.)
        let cells: Vec<std::sync::Mutex<Option<I>>> =
            items.into_iter().map(|i| std::sync::Mutex::new(Some(i))).collect();
        for_each(cells.len(), &|i| {
            let item = cells[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            item.into_iter().for_each(&f);
        });
    } else {
        use rayon::prelude::*;
        items.into_par_iter().for_each(f);
    }
}

/// Runs the job on this thread, and on the helper when `share`.
fn run(share: bool, chunks: usize, f: &(dyn Fn(usize) + Sync)) {
    if chunks > u32::MAX as usize {
        // Past the claim counters' halves: every chunk on this thread.
        return (0..chunks).for_each(f);
    }
    let job = Job {
        f,
        chunks,
        claimed: AtomicU64::new(0),
        helper_done: AtomicBool::new(false),
        helper_panicked: AtomicBool::new(false),
    };
    if !share {
        return job.work(false);
    }
    WANTED.store(true, Relaxed); // wanted again (a caller outside `with_helper(false, ..)`)
    let helper = helper();
    // Only the lifetime is erased: the job outlives every access through the offer (`Withdraw`).
    let ptr = (&job as *const Job<'_>).cast_mut().cast::<Job<'static>>();
    if OFFER.compare_exchange(std::ptr::null_mut(), ptr, SeqCst, Relaxed).is_err() {
        return job.work(false); // another caller's job is on offer: the helper is spoken for
    }
    if PARKED.load(SeqCst) {
        helper.unpark();
    }
    let guard = Withdraw(&job, ptr);
    job.work(false);
    drop(guard);
    if job.helper_panicked.load(Relaxed) {
        panic!("a chunk panicked on the helper thread");
    }
}

/// A buffer's first element, shared by the chunks of a parallel job that each write their
/// own disjoint part of it (a product's blocks of C, a variable update's ranges).
#[derive(Clone, Copy)]
pub struct Disjoint<T>(*mut T);

// SAFETY: the chunks write disjoint parts (the contract of `at` and `slice`).
unsafe impl<T> Send for Disjoint<T> {}
unsafe impl<T> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    /// The buffer starting at `first`.
    pub fn new(first: *mut T) -> Disjoint<T> {
        Disjoint(first)
    }

    /// The element `offset` past the start (a method, so closures capture the whole value).
    ///
    /// # Safety
    /// `offset` is inside the buffer.
    pub unsafe fn at(self, offset: usize) -> *mut T {
        // SAFETY: the caller's contract.
        unsafe { self.0.add(offset) }
    }

    /// Elements `lo..hi` as a slice.
    ///
    /// # Safety
    /// `lo..hi` is inside the buffer and no other live reference covers it.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice<'a>(self, lo: usize, hi: usize) -> &'a mut [T] {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.0.add(lo), hi - lo) }
    }
}

/// Withdraws the offer or waits for the helper to finish with the job (also when `f` panics on
/// the caller's thread: the job must not die under the helper).
struct Withdraw<'a, 'j>(&'a Job<'j>, *mut Job<'static>);

impl Drop for Withdraw<'_, '_> {
    fn drop(&mut self) {
        if OFFER.compare_exchange(self.1, std::ptr::null_mut(), AcqRel, Relaxed).is_ok() {
            return; // the helper never took it
        }
        let mut polls = 0u32;
        while !self.0.helper_done.load(Acquire) {
            polls = polls.wrapping_add(1);
            if polls < 256 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now(); // the helper was descheduled mid-chunk
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Runs `f` where rayon's pool has `threads` threads, whatever the machine's core count.
    fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(f)
    }

    #[test]
    fn every_chunk_runs_once_with_concurrent_callers() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.broadcast(|ctx| {
            for round in 0..2000 {
                let chunks = (round + ctx.index()) % 9;
                let hits: Vec<AtomicUsize> = (0..chunks).map(|_| AtomicUsize::new(0)).collect();
                for_each(chunks, &|i| {
                    hits[i].fetch_add(1, Relaxed);
                });
                assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "round {round}");
            }
        });
    }

    #[test]
    fn the_helper_takes_chunks_when_the_caller_is_slow_and_never_with_one_thread_or_when_told_not_to() {
        // The caller's first chunk sleeps long enough for the helper to take the others,
        // unless another test's job holds the offer: then try again (up to 100 times: on a
        // loaded 2-core machine 20 tries once all met a busy helper). The helper has parked
        // (nothing offered for longer than SPIN); the slow job's offer wakes it.
        let on_helper = |threads, allowed| {
            with_threads(threads, || {
                with_helper(allowed, || {
                    let caller = std::thread::current().id();
                    let on_helper = AtomicUsize::new(0);
                    for_each(2, &|_| {}); // the helper exists ...
                    std::thread::sleep(Duration::from_millis(2)); // ... and has parked
                    for_each(8, &|i| {
                        if std::thread::current().id() != caller {
                            on_helper.fetch_add(1, Relaxed);
                        } else if i == 0 {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    });
                    on_helper.into_inner()
                })
            })
        };
        assert!((0..100).any(|_| on_helper(2, true) > 0));
        assert_eq!(on_helper(1, true), 0);
        assert_eq!(on_helper(2, false), 0);
    }

    /// Runs `blocks` blocks through `choice`, each run taking `time(helper)` microseconds;
    /// returns how many went with the helper.
    fn feed(choice: &Choice, blocks: u64, time: impl Fn(bool) -> u64) -> u64 {
        let mut shared = 0;
        for _ in 0..blocks * BLOCK {
            let (helper, counted) = choice.helper();
            shared += helper as u64;
            if counted {
                choice.note(helper, Duration::from_micros(time(helper)));
            }
        }
        shared / BLOCK
    }

    #[test]
    fn a_choice_takes_the_faster_way_and_tries_the_other_now_and_then() {
        let choice = Choice::default();
        let mut ways = vec![];
        for _ in 0..TRIAL_BLOCKS * BLOCK {
            let (helper, counted) = choice.helper();
            ways.push((helper, counted));
            if counted {
                choice.note(helper, Duration::from_micros(if helper { 200 } else { 100 }));
            }
        }
        let block = |helper, counted| [(helper, false), (helper, counted), (helper, counted), (helper, counted)];
        let expected: Vec<_> = [block(true, false), block(false, true), block(true, true), block(false, true)].concat();
        assert_eq!(ways, expected, "a warm-up block, then each way in turn, a block's first run not counted");
        let alone_twice_as_fast = |helper| if helper { 200 } else { 100 };
        assert_eq!(feed(&choice, 4 * FAR_EXPLORE, alone_twice_as_fast), 4, "one block in FAR_EXPLORE with the helper");
        // The helper became worth it: found at the next exploring block, then kept.
        feed(&choice, 2 * FAR_EXPLORE, |helper| if helper { 50 } else { 100 });
        assert_eq!(feed(&choice, FAR_EXPLORE, |helper| if helper { 50 } else { 100 }), FAR_EXPLORE - 1);
        // The two ways close: one block in EXPLORE alone.
        feed(&choice, EXPLORE, |helper| if helper { 90 } else { 100 });
        assert_eq!(feed(&choice, 4 * EXPLORE, |helper| if helper { 90 } else { 100 }), 4 * EXPLORE - 4);
    }

    #[test]
    fn a_choice_is_not_turned_by_one_slow_run() {
        let choice = Choice::default();
        let helper_faster = |helper| if helper { 100 } else { 150 };
        feed(&choice, FAR_EXPLORE + 1, helper_faster); // past an exploring block
                                                       // One run with the helper stretched 30x (a page fault, the scheduler).
        let spike = std::cell::Cell::new(Some(3000));
        assert_eq!(feed(&choice, 1, |helper| if helper { spike.take().unwrap_or(100) } else { 150 }), 1);
        assert_eq!(spike.get(), None, "the slow run was noted");
        assert_eq!(feed(&choice, FAR_EXPLORE, helper_faster), FAR_EXPLORE - 1);
    }

    #[test]
    fn a_choice_is_not_turned_by_one_slow_block() {
        let choice = Choice::default();
        let helper_faster = |helper| if helper { 100 } else { 150 };
        feed(&choice, FAR_EXPLORE + 1, helper_faster);
        // A whole block with the helper slowed 30x (the machine busy for a moment): the one
        // before it still counts, so the helper stays.
        let slow = std::cell::Cell::new(BLOCK - 1);
        let busy = |helper| match (helper, slow.get()) {
            (true, left @ 1..) => {
                slow.set(left - 1);
                3000
            }
            _ => helper_faster(helper),
        };
        assert_eq!(feed(&choice, 1, busy), 1);
        assert_eq!(slow.get(), 0, "the slow block was noted");
        assert_eq!(feed(&choice, FAR_EXPLORE, helper_faster), FAR_EXPLORE - 1);
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller_after_the_helper_is_done() {
        with_threads(2, || {
            let r = std::panic::catch_unwind(|| {
                for_each(4, &|i| {
                    std::thread::sleep(Duration::from_millis(5));
                    assert!(i != 3, "chunk 3");
                })
            });
            assert!(r.is_err());
            // The helper is free again.
            let n = AtomicUsize::new(0);
            for_each(4, &|_| {
                n.fetch_add(1, Relaxed);
            });
            assert_eq!(n.into_inner(), 4);
        });
    }
}
