//! What a transaction allocates, measured by a counting global allocator (so this file is a
//! test binary of its own).
//!
//! The design's promise: the logs are reused per thread, so in steady state a transaction
//! allocates only the boxes of the new values it writes. A read-only transaction allocates
//! nothing; a write of one `TVar` allocates at most one box (exactly one for a value too big
//! for the STM's per-thread recycling of small boxes).
//!
//! # Bookkeeping that is not per transaction
//!
//! Each commit retires the values it replaced to crossbeam-epoch, which keeps deferred
//! destructors in a per-thread bag of 64 and, when the bag is full, pushes it to a global
//! queue: one allocation of a queue node (about 2 KiB) per 64 deferrals. Any pin (every
//! 128th) may also collect expired bags, and popping a node defers the node's own
//! destruction, so even a read-only transaction can, rarely, be the one that pushes a full
//! bag. Collection also runs other threads' destructors on this thread, which may grow this
//! thread's free lists of recycled boxes once in a while. None of this happens per
//! transaction, and its cost is bounded by the garbage there is to collect.
//!
//! So the allocator counts per thread (other tests of this binary run on other threads),
//! and the tests measure many transactions: a read-only transaction must allocate nothing
//! in at least 99% of runs, and a writing one must average at most 1.1 allocations per
//! written `TVar`. For a value type the STM does not recycle (2000 bytes), the allocator
//! also counts the allocations of exactly that size: one per write, no more, no fewer, and
//! all allocations average between 1.0 and 1.1 per write.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use concord_stm::{abort, atomically, atomically_or_err, retry, TVar};

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static WATCHED: Cell<u64> = const { Cell::new(0) };
}

/// Allocations of exactly this size are also counted in `WATCHED`.
const BIG: usize = 2000;

/// A value type of `BIG` bytes: no other allocation of the STM or of the collector has
/// this size, so counting it counts value boxes.
type Big = [u8; BIG];

fn count(size: usize) {
    // `try_with`: the thread-local may be gone while the thread exits. A `const`-initialized
    // `Cell<u64>` needs no lazy initialization and no destructor, so touching it cannot
    // allocate (which would recurse into this allocator).
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    if size == BIG {
        let _ = WATCHED.try_with(|c| c.set(c.get() + 1));
    }
}
/// The system allocator, counting every allocation (and reallocation) per thread.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees hold; the counting touches only a const thread-local `Cell`, which
// neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` was allocated by `System` through this allocator
        // with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by the calling thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Allocs {
    /// All allocations (and reallocations).
    all: u64,
    /// Of those, the ones of `BIG` bytes.
    big: u64,
    /// Transactions (runs of the measured closure) that allocated at all.
    runs_that_allocated: u64,
}

fn now() -> (u64, u64) {
    (ALLOCS.with(Cell::get), WATCHED.with(Cell::get))
}

/// Runs `f` `WARMUP` times, then `n` times, and returns what the last `n` runs allocated.
fn measure(n: u64, mut f: impl FnMut()) -> Allocs {
    for _ in 0..WARMUP {
        f();
    }
    let mut a = Allocs::default();
    for _ in 0..n {
        let (all, big) = now();
        f();
        let (all2, big2) = now();
        a.all += all2 - all;
        a.big += big2 - big;
        a.runs_that_allocated += u64::from(all2 != all);
    }
    a
}

const WARMUP: u64 = 200;
const N: u64 = 10_000;

/// Asserts that `n` read-only runs allocated nothing but rare collector bookkeeping.
#[track_caller]
fn assert_read_only(a: Allocs, n: u64, what: &str) {
    println!("{what}: {a:?} over {n} transactions");
    assert!(
        a.runs_that_allocated * 100 <= n && a.all * 100 <= n,
        "{what}: a read-only transaction allocated ({a:?} over {n} transactions)"
    );
}

/// Asserts that `n` transactions writing `per_tx` TVars each average at most 1.1
/// allocations per write.
#[track_caller]
fn assert_writes(a: Allocs, n: u64, per_tx: u64, what: &str) {
    let average = a.all as f64 / (n * per_tx) as f64;
    println!("{what}: {average:.4} allocations per write ({a:?} over {n} transactions)");
    assert!(average <= 1.1, "{what}: {average} allocations per write ({a:?})");
}

/// Asserts that `n` transactions boxed exactly `boxes` `Big` values each, and allocated
/// little else.
#[track_caller]
fn assert_big_boxes(a: Allocs, n: u64, boxes: u64, what: &str) {
    assert_eq!(a.big, n * boxes, "{what}: {boxes} value boxes per transaction ({a:?})");
    let average = a.all as f64 / (n * boxes) as f64;
    println!("{what}: {average:.4} allocations per box ({a:?} over {n} transactions)");
    assert!((1.0..=1.1).contains(&average), "{what}: {average} allocations per box ({a:?})");
}

#[test]
fn read_only_transactions_do_not_allocate() {
    let one = TVar::new(7_u64);
    let a = measure(N, || {
        let x = atomically(|tx| tx.get(&one));
        assert_eq!(x, 7);
    });
    assert_read_only(a, N, "1 TVar");

    let many: Vec<TVar<u64>> = (0..16).map(TVar::new).collect();
    let a = measure(N, || {
        let sum = atomically(|tx| many.iter().try_fold(0, |s, v| Ok(s + tx.get(v)?)));
        assert_eq!(sum, 120);
    });
    assert_read_only(a, N, "16 TVars");
}

#[test]
fn reading_a_large_value_borrows_it() {
    // `tx.read` lends the value: no clone, no allocation, whatever its size.
    let text = TVar::new("x".repeat(10_000));
    let a = measure(N, || {
        let len = atomically(|tx| Ok(tx.read(&text)?.len()));
        assert_eq!(len, 10_000);
    });
    assert_read_only(a, N, "a 10 kB String");
}

#[test]
fn a_write_allocates_at_most_one_box() {
    let v = TVar::new(0_u64);
    let a = measure(N, || atomically(|tx| tx.modify(&v, |x| x + 1)));
    assert_writes(a, N, 1, "u64");
    assert_eq!(v.read_atomic(), WARMUP + N);

    let big = TVar::new([0_u8; BIG]);
    let a = measure(N, || atomically(|tx| tx.modify(&big, |x| [x[0].wrapping_add(1); BIG])));
    assert_big_boxes(a, N, 1, "Big");
}

#[test]
fn inline_values_allocate_nothing_to_write_or_lend() {
    // Integers, `bool`, `char` and floats live in the TVar's value word: no box per write,
    // and `read` lends a copy from slots the thread reuses.
    let n = TVar::new(0_u64);
    let flag = TVar::new(false);
    let a = measure(N, || {
        atomically(|tx| {
            let x = *tx.read(&n)?;
            tx.write(&n, x + 1)?;
            tx.modify(&flag, |f| !f)
        });
    });
    println!("inline writes: {a:?} over {N} transactions");
    assert!(
        a.runs_that_allocated * 100 <= N && a.all * 100 <= N,
        "writing inline values allocated ({a:?} over {N} transactions)"
    );
    assert_eq!(n.read_atomic(), WARMUP + N);

    let many: Vec<TVar<i32>> = (0..200).map(TVar::new).collect();
    let a = measure(N / 10, || {
        let sum = atomically(|tx| many.iter().try_fold(0, |s, v| Ok(s + *tx.read(v)?)));
        assert_eq!(sum, (0..200).sum::<i32>());
    });
    assert_read_only(a, N / 10, "200 lent inline reads");
}

#[test]
fn writes_allocate_at_most_one_box_each() {
    // 16 writes stay in the linear-scan write set, 40 switch it to its hash index: either
    // way the logs are reused and only the value boxes are new.
    for width in [2_u64, 16, 40] {
        let vars: Vec<TVar<u64>> = (0..width).map(TVar::new).collect();
        let n = N / width;
        let a = measure(n, || {
            atomically(|tx| vars.iter().try_for_each(|v| tx.modify(v, |x| x + 1)));
        });
        assert_writes(a, n, width, &format!("{width} u64"));

        let vars: Vec<TVar<Big>> = (0..width).map(|_| TVar::new([0; BIG])).collect();
        let a = measure(n, || {
            atomically(|tx| vars.iter().try_for_each(|v| tx.write(v, [1; BIG])));
        });
        assert_big_boxes(a, n, width, &format!("{width} Big"));
    }
}

#[test]
fn a_transfer_allocates_two_boxes() {
    let from = TVar::new(u64::MAX);
    let to = TVar::new(0_u64);
    let a = measure(N, || {
        atomically(|tx| {
            let x = tx.get(&from)?;
            tx.write(&from, x - 1)?;
            tx.modify(&to, |y| y + 1)
        });
    });
    assert_writes(a, N, 2, "transfer");
}

#[test]
fn rewriting_a_tvar_in_one_transaction_boxes_each_write() {
    // Each `write` boxes its value; a superseded pending box is freed at once.
    let v = TVar::new([0_u8; BIG]);
    let a = measure(N, || {
        atomically(|tx| {
            tx.write(&v, [1; BIG])?;
            tx.write(&v, [2; BIG])?;
            tx.modify(&v, |x| [x[0] + 1; BIG])
        });
    });
    assert_big_boxes(a, N, 3, "three writes of one TVar");
    assert_eq!(v.read_atomic()[0], 3);
}

#[test]
fn or_else_and_nesting_allocate_only_value_boxes() {
    let v = TVar::new([0_u8; BIG]);
    let w = TVar::new([0_u8; BIG]);
    // The rolled-back branch boxed one value, the second branch another.
    let a = measure(N, || {
        atomically(|tx| {
            tx.or_else(
                |tx| {
                    tx.write(&v, [1; BIG])?;
                    retry()
                },
                |tx| tx.write(&w, [2; BIG]),
            )
        });
    });
    assert_big_boxes(a, N, 2, "or_else");

    // A nested transaction shares the outer one's logs.
    let a = measure(N, || {
        atomically(|tx| {
            tx.write(&v, [1; BIG])?;
            atomically(|tx| tx.write(&w, [3; BIG]));
            Ok(())
        });
    });
    assert_big_boxes(a, N, 2, "nested");
}

#[test]
fn a_user_abort_allocates_only_its_pending_box() {
    let v = TVar::new([0_u8; BIG]);
    let a = measure(N, || {
        let r: Result<(), u32> = atomically_or_err(|tx| {
            tx.write(&v, [1; BIG])?;
            abort(5)
        });
        assert_eq!(r, Err(5));
    });
    assert_big_boxes(a, N, 1, "user abort");
    assert_eq!(v.read_atomic()[0], 0);
}

#[test]
fn a_capture_free_hook_does_not_allocate() {
    // A closure that captures nothing is a zero-sized type: boxing it allocates nothing, so
    // with reused logs, registering it should cost no allocation at all.
    fn noop() {}
    let v = TVar::new(0_u64);
    let a = measure(N, || {
        atomically(|tx| {
            tx.after_commit(noop);
            tx.get(&v)
        });
    });
    assert_read_only(a, N, "a read-only transaction with a hook");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the measurement itself: a test that asserts zero must be able to fail.
    let before = now();
    for _ in 0..10 {
        drop(std::hint::black_box(Box::new(1_u8)));
    }
    drop(std::hint::black_box(Box::new([0_u8; BIG])));
    let after = now();
    assert_eq!((after.0 - before.0, after.1 - before.1), (11, 1));
}
