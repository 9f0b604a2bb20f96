//! Stress tests, bounded in time: bank conservation, opacity, no lost wakeups, starvation
//! freedom.
//!
//! Each test runs for a fixed number of operations or until a deadline (about 2 s in a
//! release build; fewer operations in a debug build), whichever comes first. Threads start
//! together on a `Barrier` and print their seeds; set `CONCORD_SEED` to replay one. Anything
//! that could hang (a lost wakeup, a starved transaction) is bounded by a generous timeout
//! that fails the test: the bound detects hangs, it does not measure speed.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use concord_stm::{abort, atomically, atomically_or_err, check, stats, TVar};
use concord_tests::{run_within, scaled, seed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How long a test keeps its threads busy, at most.
const BUSY: Duration = Duration::from_secs(2);
/// The hang detector.
const HANG: Duration = Duration::from_secs(60);

/// Whether a thread should stop: `ops` done, or the deadline passed.
fn done(ops: u64, max_ops: u64, deadline: Instant) -> bool {
    ops >= max_ops || (ops % 64 == 0 && Instant::now() >= deadline)
}

fn sum_all(accounts: &[TVar<u64>]) -> u64 {
    atomically(|tx| accounts.iter().try_fold(0, |s, a| Ok(s + tx.get(a)?)))
}

/// Random transfers among 64 accounts from `threads` threads, with a read-all check of the
/// total every 32 operations (on every attempt) and at the end.
fn bank(threads: u64) {
    const ACCOUNTS: usize = 64;
    const INITIAL: u64 = 1_000;
    let total = INITIAL * ACCOUNTS as u64;
    let seed = seed(&format!("bank on {threads} threads"));
    let max_ops = scaled(300_000, 20_000);
    let accounts: Arc<Vec<TVar<u64>>> =
        Arc::new((0..ACCOUNTS).map(|_| TVar::new(INITIAL)).collect());
    let bad_sums = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(threads as usize));
    let before = stats::snapshot();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (accounts, bad_sums, barrier) =
                (accounts.clone(), bad_sums.clone(), barrier.clone());
            thread::spawn(move || {
                let seed = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                println!("bank thread {t}: seed {seed}");
                let mut rng = SmallRng::seed_from_u64(seed);
                barrier.wait();
                let deadline = Instant::now() + BUSY;
                let mut ops = 0;
                while !done(ops, max_ops, deadline) {
                    ops += 1;
                    if ops % 32 == 0 {
                        let sum = atomically(|tx| {
                            let mut sum = 0;
                            for a in accounts.iter() {
                                sum += tx.get(a)?;
                            }
                            if sum != total {
                                bad_sums.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(sum)
                        });
                        assert_eq!(sum, total);
                        continue;
                    }
                    let from = rng.gen_range(0..ACCOUNTS);
                    let to = rng.gen_range(0..ACCOUNTS);
                    let amount = rng.gen_range(1..=150);
                    let _: Result<(), ()> = atomically_or_err(|tx| {
                        let balance = tx.get(&accounts[from])?;
                        if balance < amount {
                            return abort(());
                        }
                        tx.write(&accounts[from], balance - amount)?;
                        tx.modify(&accounts[to], |b| b + amount)?;
                        Ok(())
                    });
                }
                ops
            })
        })
        .collect();
    let ops: u64 = handles.into_iter().map(|h| h.join().expect("bank thread")).sum();
    println!("bank on {threads} threads: {ops} operations; {}", stats::snapshot().since(&before));
    assert_eq!(bad_sums.load(Ordering::Relaxed), 0, "an attempt saw a wrong total");
    assert_eq!(sum_all(&accounts), total);
}

#[test]
fn bank_conserves_the_total_on_2_threads() {
    bank(2);
}

#[test]
fn bank_conserves_the_total_on_4_threads() {
    bank(4);
}

/// Spins a little without being optimized away: widens the window between two reads.
fn pause(rng: &mut SmallRng) {
    for _ in 0..rng.gen_range(0..64) {
        std::hint::spin_loop();
    }
}

#[test]
fn opacity_no_attempt_sees_a_broken_invariant() {
    // Invariants: `x == y`, and the four `parts` sum to `WHOLE`. Writers keep both in every
    // commit; every attempt of every transaction (writers' and readers', including attempts
    // that later abort) checks them between reads, and counts what it sees instead of
    // panicking. A non-opaque STM lets a zombie attempt see `x != y` and loop forever in the
    // `while` below: the loop is bounded, and counted as a violation.
    const WHOLE: u64 = 1_000;
    const THREADS: u64 = 4;
    let seed = seed("opacity");
    let x = Arc::new(TVar::new(0_u64));
    let y = Arc::new(TVar::new(0_u64));
    let parts: Arc<Vec<TVar<u64>>> = Arc::new((0..4).map(|_| TVar::new(WHOLE / 4)).collect());
    // Counted separately: attempts that saw `x != y`, and attempts that saw a wrong sum.
    let violations = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let attempts = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let max_ops = scaled(200_000, 10_000);
    let before = stats::snapshot();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (x, y, parts) = (x.clone(), y.clone(), parts.clone());
            let (violations, attempts, barrier) =
                (violations.clone(), attempts.clone(), barrier.clone());
            thread::spawn(move || {
                let seed = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                println!("opacity thread {t}: seed {seed}");
                let mut rng = SmallRng::seed_from_u64(seed);
                let violation = |kind: usize| violations[kind].fetch_add(1, Ordering::Relaxed);
                barrier.wait();
                let deadline = Instant::now() + BUSY;
                let mut ops = 0;
                while !done(ops, max_ops, deadline) {
                    ops += 1;
                    let kind = rng.gen_range(0..4);
                    let (i, j) = (rng.gen_range(0..4), rng.gen_range(0..4));
                    let amount = rng.gen_range(0..50);
                    let mut local = SmallRng::seed_from_u64(rng.gen());
                    atomically(|tx| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        // x == y, read with a pause in between.
                        let a = tx.get(&x)?;
                        pause(&mut local);
                        let b = tx.get(&y)?;
                        let mut spins = 0_u32;
                        while std::hint::black_box(a) != std::hint::black_box(b) {
                            spins += 1;
                            if spins > 1_000 {
                                violation(0);
                                break;
                            }
                        }
                        // The parts sum to WHOLE; a zombie would divide by zero here.
                        let mut sum = 0;
                        for p in parts.iter() {
                            sum += tx.get(p)?;
                            pause(&mut local);
                        }
                        if (WHOLE * WHOLE).checked_div(sum.wrapping_sub(WHOLE - 1)).is_none()
                            || sum != WHOLE
                        {
                            violation(1);
                        }
                        match kind {
                            0 => {
                                tx.write(&x, a + 1)?;
                                pause(&mut local);
                                tx.write(&y, b + 1)?;
                            }
                            1 => {
                                let have = tx.get(&parts[i])?;
                                let amount = amount.min(have);
                                tx.write(&parts[i], have - amount)?;
                                tx.modify(&parts[j], |p| p + amount)?;
                            }
                            _ => {} // read-only
                        }
                        Ok(())
                    });
                }
                ops
            })
        })
        .collect();
    let ops: u64 = handles.into_iter().map(|h| h.join().expect("opacity thread")).sum();
    let s = stats::snapshot().since(&before);
    println!("opacity: {ops} transactions, {} attempts; {s}", attempts.load(Ordering::Relaxed));
    let seen = [violations[0].load(Ordering::Relaxed), violations[1].load(Ordering::Relaxed)];
    assert_eq!(seen, [0, 0], "attempts that saw x != y, and a wrong sum of the parts");
    assert_eq!(x.read_atomic(), y.read_atomic());
    assert_eq!(parts.iter().map(TVar::read_atomic).sum::<u64>(), WHOLE);
}

#[test]
fn no_lost_wakeups_in_a_ping_pong() {
    // One slot, one producer, one consumer: every item needs the other side to wake up.
    // A single lost wakeup hangs both threads.
    let n = scaled(100_000, 10_000);
    let slot: Arc<TVar<Option<u64>>> = Arc::new(TVar::new(None));
    let barrier = Arc::new(Barrier::new(2));
    let before = stats::snapshot();
    let consumer = {
        let (slot, barrier) = (slot.clone(), barrier.clone());
        thread::spawn(move || {
            barrier.wait();
            let mut out_of_order = 0_u64;
            for expected in 0..n {
                let got = atomically(|tx| match tx.get(&slot)? {
                    Some(v) => {
                        tx.write(&slot, None)?;
                        Ok(v)
                    }
                    None => concord_stm::retry(),
                });
                out_of_order += u64::from(got != expected);
            }
            out_of_order
        })
    };
    let out_of_order = run_within(HANG, "a ping-pong of one-slot handoffs", move || {
        barrier.wait();
        for i in 0..n {
            atomically(|tx| {
                check(tx.get(&slot)?.is_none())?;
                tx.write(&slot, Some(i))
            });
        }
        consumer.join().expect("consumer")
    });
    println!("ping-pong of {n} items: {}", stats::snapshot().since(&before));
    assert_eq!(out_of_order, 0, "every item is received once, in order");
}

#[test]
fn no_lost_wakeups_with_many_producers_and_consumers() {
    // Three producers and three consumers through one slot; consumers also wait on a
    // second TVar (the count of items left) so that wakeups come from two sources.
    const SIDES: u64 = 3;
    let per_producer = scaled(20_000, 2_000);
    let total = per_producer * SIDES;
    let seed = seed("many producers and consumers");
    let slot: Arc<TVar<Option<u64>>> = Arc::new(TVar::new(None));
    let left = Arc::new(TVar::new(total));
    let barrier = Arc::new(Barrier::new(2 * SIDES as usize));
    let received = run_within(HANG, "many producers and consumers", move || {
        let mut handles = Vec::new();
        for p in 0..SIDES {
            let (slot, barrier) = (slot.clone(), barrier.clone());
            handles.push(thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed ^ p);
                barrier.wait();
                for i in 0..per_producer {
                    let item = p * per_producer + i;
                    atomically(|tx| {
                        check(tx.get(&slot)?.is_none())?;
                        tx.write(&slot, Some(item))
                    });
                    if rng.gen_ratio(1, 64) {
                        thread::yield_now();
                    }
                }
                Vec::new()
            }));
        }
        for _ in 0..SIDES {
            let (slot, left, barrier) = (slot.clone(), left.clone(), barrier.clone());
            handles.push(thread::spawn(move || {
                barrier.wait();
                let mut got = Vec::new();
                loop {
                    let item = atomically(|tx| {
                        let n = tx.get(&left)?;
                        if n == 0 {
                            return Ok(None);
                        }
                        match tx.get(&slot)? {
                            Some(v) => {
                                tx.write(&slot, None)?;
                                tx.write(&left, n - 1)?;
                                Ok(Some(v))
                            }
                            None => concord_stm::retry(),
                        }
                    });
                    match item {
                        Some(v) => got.push(v),
                        None => return got,
                    }
                }
            }));
        }
        let mut all: Vec<u64> =
            handles.into_iter().flat_map(|h| h.join().expect("producer or consumer")).collect();
        all.sort_unstable();
        all
    });
    assert_eq!(received, (0..total).collect::<Vec<_>>(), "every item received exactly once");
}

#[test]
fn no_lost_wakeups_with_many_waiters_on_one_tvar() {
    // Four threads each wait for every successive value of one counter (so each commit may
    // wake several waiters, some registering while others are being woken).
    const WAITERS: usize = 4;
    let n = scaled(20_000, 2_000);
    let counter = Arc::new(TVar::new(0_u64));
    let barrier = Arc::new(Barrier::new(WAITERS + 1));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (counter, barrier) = (counter.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut seen = 0;
                while seen < n {
                    seen = atomically(|tx| {
                        let c = tx.get(&counter)?;
                        check(c > seen)?;
                        Ok(c)
                    });
                }
                seen
            })
        })
        .collect();
    let seen = run_within(HANG, "waiters on one counter", move || {
        barrier.wait();
        for _ in 0..n {
            atomically(|tx| tx.modify(&counter, |c| c + 1));
        }
        waiters.into_iter().map(|h| h.join().expect("waiter")).collect::<Vec<_>>()
    });
    assert_eq!(seen, vec![n; WAITERS]);
}

#[test]
fn starvation_freedom_for_a_long_reader() {
    // A transaction reading all 1024 accounts must commit while two threads hammer short
    // transfers (the serial escalation guarantees it), and see a conserved total each time.
    const ACCOUNTS: usize = 1024;
    let readers = scaled(20, 5);
    let seed = seed("starvation");
    let accounts: Arc<Vec<TVar<u64>>> = Arc::new((0..ACCOUNTS).map(|_| TVar::new(10)).collect());
    let total = 10 * ACCOUNTS as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(3));
    let hammers: Vec<_> = (0..2_u64)
        .map(|t| {
            let (accounts, stop, progress, barrier) =
                (accounts.clone(), stop.clone(), progress.clone(), barrier.clone());
            thread::spawn(move || {
                let seed = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                println!("starvation hammer {t}: seed {seed}");
                let mut rng = SmallRng::seed_from_u64(seed);
                barrier.wait();
                while !stop.load(Ordering::Relaxed) {
                    let (a, b) = (rng.gen_range(0..ACCOUNTS), rng.gen_range(0..ACCOUNTS));
                    atomically(|tx| {
                        let x = tx.get(&accounts[a])?;
                        if x > 0 {
                            tx.write(&accounts[a], x - 1)?;
                            tx.modify(&accounts[b], |y| y + 1)?;
                        }
                        Ok(())
                    });
                    progress.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let before = stats::snapshot();
    let (sums, reader_stats, during) = {
        let (accounts, stop, progress, barrier) =
            (accounts.clone(), stop.clone(), progress.clone(), barrier.clone());
        run_within(HANG, "a long reader under a storm of writers", move || {
            barrier.wait();
            // Start once the storm is under way.
            while progress.load(Ordering::Relaxed) < 1_000 {
                thread::yield_now();
            }
            let before = stats::thread_snapshot();
            let start = progress.load(Ordering::Relaxed);
            // At least `readers` long transactions, and until the writers have committed a
            // good number of transfers meanwhile (on 2 cores they may be descheduled).
            let mut sums = Vec::new();
            while sums.len() < readers as usize
                || (progress.load(Ordering::Relaxed) - start < 2_000 && sums.len() < 100_000)
            {
                sums.push(sum_all(&accounts));
            }
            let during = progress.load(Ordering::Relaxed) - start;
            stop.store(true, Ordering::Relaxed);
            (sums, stats::thread_snapshot().since(&before), during)
        })
    };
    for h in hammers {
        h.join().expect("hammer");
    }
    println!(
        "starvation: {} long readers committed during {during} transfers; \
         reader: {reader_stats}; all: {}",
        sums.len(),
        stats::snapshot().since(&before)
    );
    assert!(sums.iter().all(|&s| s == total), "a long reader saw a wrong total");
    assert_eq!(reader_stats.commits, sums.len() as u64);
    assert_eq!(sum_all(&accounts), total);
}

/// A value that can tell whether its memory was reused while someone held it: every word
/// repeats the same number.
#[derive(Clone, Debug)]
struct Checked<const N: usize> {
    words: [u64; N],
}

impl<const N: usize> Checked<N> {
    fn new(x: u64) -> Self {
        Checked { words: [x; N] }
    }

    fn intact(&self) -> bool {
        self.words.iter().all(|&w| w == self.words[0])
    }
}

/// Writers replace values as fast as they can while readers hold references to them
/// across a pause; a reader that sees a value change under it has read freed (or
/// recycled) memory.
fn no_use_after_free<const N: usize>() {
    const THREADS: u64 = 4;
    let seed = seed(&format!("use-after-free, {} bytes", N * 8));
    let vars: Arc<Vec<TVar<Checked<N>>>> =
        Arc::new((0..4).map(|i| TVar::new(Checked::new(i))).collect());
    let torn = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let max_ops = scaled(200_000, 10_000);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (vars, torn, barrier) = (vars.clone(), torn.clone(), barrier.clone());
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed ^ t);
                barrier.wait();
                let deadline = Instant::now() + BUSY;
                let mut ops = 0;
                while !done(ops, max_ops, deadline) {
                    ops += 1;
                    let i = rng.gen_range(0..vars.len());
                    if t % 2 == 0 {
                        let x = rng.gen();
                        atomically(|tx| tx.write(&vars[i], Checked::new(x)));
                    } else {
                        let mut local = SmallRng::seed_from_u64(rng.gen());
                        atomically(|tx| {
                            let v = tx.read(&vars[i])?;
                            let first = v.words[0];
                            pause(&mut local);
                            pause(&mut local);
                            if !v.intact() || v.words[0] != first {
                                torn.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(())
                        });
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("use-after-free thread");
    }
    assert_eq!(torn.load(Ordering::Relaxed), 0, "a reader saw its value change under it");
    assert!(vars.iter().all(|v| v.read_atomic().intact()));
}

#[test]
fn no_use_after_free_of_small_values() {
    no_use_after_free::<2>();
}

#[test]
fn no_use_after_free_of_64_byte_values() {
    no_use_after_free::<8>();
}

#[test]
fn no_use_after_free_of_256_byte_values() {
    // A large recycling class (64-byte steps up to 1 KiB).
    no_use_after_free::<32>();
}

#[test]
fn no_use_after_free_of_values_too_big_to_recycle() {
    // 1600 bytes: boxed and freed by the global allocator.
    no_use_after_free::<200>();
}

#[test]
fn an_extended_snapshot_revalidates_the_read_that_extended_it() {
    // The narrowest form of the opacity test: readers take a snapshot (reading `pacer`),
    // wait until writers have moved `x` and `y` past it, then read `x` (which extends the
    // snapshot) and `y`. A commit that lands between the read of `x` and the extension must
    // make the read of `x` stale; if the extension forgets to revalidate it, the reader
    // sees `x` from before that commit and `y` from after it.
    let x = Arc::new(TVar::new(0_u64));
    let y = Arc::new(TVar::new(0_u64));
    let pacer = Arc::new(TVar::new(0_u64));
    let torn = Arc::new(AtomicU64::new(0));
    let attempts = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(4));
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (x, y, stop, barrier) = (x.clone(), y.clone(), stop.clone(), barrier.clone());
        handles.push(thread::spawn(move || {
            barrier.wait();
            while !stop.load(Ordering::Relaxed) {
                atomically(|tx| {
                    tx.modify(&x, |v| v + 1)?;
                    tx.modify(&y, |v| v + 1)
                });
            }
        }));
    }
    for _ in 0..2 {
        let (x, y, pacer) = (x.clone(), y.clone(), pacer.clone());
        let (torn, attempts, stop, barrier) =
            (torn.clone(), attempts.clone(), stop.clone(), barrier.clone());
        handles.push(thread::spawn(move || {
            barrier.wait();
            while !stop.load(Ordering::Relaxed) {
                atomically(|tx| {
                    attempts.fetch_add(1, Ordering::Relaxed);
                    tx.get(&pacer)?;
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                    let a = tx.get(&x)?;
                    let b = tx.get(&y)?;
                    if a != b {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                });
            }
        }));
    }
    let start = Instant::now();
    while start.elapsed() < BUSY && torn.load(Ordering::Relaxed) == 0 {
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("extension thread");
    }
    let (torn, attempts) = (torn.load(Ordering::Relaxed), attempts.load(Ordering::Relaxed));
    println!("extension window: {torn} torn reads in {attempts} attempts");
    assert_eq!(torn, 0, "{torn} attempts saw x != y ({attempts} attempts)");
}

#[test]
fn no_increment_is_lost() {
    // Each increment first reads `pacer` (taking its snapshot), pauses so that other
    // increments commit, then reads and writes `counter`: the read of `counter` extends the
    // snapshot. Every committed increment must show in the final count.
    const THREADS: usize = 4;
    let max_ops = scaled(200_000, 10_000);
    let counter = Arc::new(TVar::new(0_u64));
    let pacer = Arc::new(TVar::new(0_u64));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (counter, pacer, barrier) = (counter.clone(), pacer.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let deadline = Instant::now() + BUSY;
                let mut ops = 0;
                while !done(ops, max_ops, deadline) {
                    ops += 1;
                    atomically(|tx| {
                        tx.get(&pacer)?;
                        for _ in 0..100 {
                            std::hint::spin_loop();
                        }
                        tx.modify(&counter, |c| c + 1)
                    });
                }
                ops
            })
        })
        .collect();
    let ops: u64 = handles.into_iter().map(|h| h.join().expect("incrementer")).sum();
    assert_eq!(counter.read_atomic(), ops, "increments were lost");
}
