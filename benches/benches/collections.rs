//! Transactional collections against their lock-based and lock-free counterparts. Run with
//! `cargo bench -p concord-benches --bench collections`.
//!
//! - `map_{ro,r90w10,r50w50}_{1,2}t`: lookups and overwrites of uniformly random keys of a
//!   map of 100,000 `u64 -> u64` entries (100%, 90% or 50% lookups; a write sets an existing
//!   key, so the size stays put), on 1 or 2 threads, for `concord::collections::TMap`
//!   (one `atomically` per operation; `concord_tmap_get_atomic`: lookups through
//!   `TMap::get_atomic`, outside transactions), `parking_lot::RwLock<std::collections::HashMap>`
//!   and `dashmap::DashMap`.
//! - `bqueue_spsc_2t`: one producer thread sends `u64`s through a queue of capacity 200 to
//!   one consumer thread: `TBQueue` (`atomically` per push and per pop, blocking with
//!   `retry`) against `std::sync::mpsc::sync_channel(200)` and `crossbeam_channel::bounded(200)`.
//!
//! Each sample spawns the threads, lines them up on a barrier and times them from there, so
//! criterion's time per iteration is the time per operation of all threads together (for
//! the queue: per item moved). After each benchmark, a line on stderr gives the share of
//! time its threads waited for a CPU taken by other load and, for Concord, the aborts per
//! commit (warm-up included).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use concord_benches::maps::{Map, TMapGetAtomic, KEYS};
use concord_benches::sched::{self, CpuTime};
use concord_benches::XorShift;
use concord_stm::collections::{TBQueue, TMap};
use concord_stm::{atomically, stats};
use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, Criterion, Throughput};
use dashmap::DashMap;
use parking_lot::RwLock;

/// The capacity of the benchmarked queues.
const CAPACITY: usize = 200;

/// Runs one thread per `(state, n)` in `work`, each calling `op(&mut state)` `n` times,
/// and returns the time from the barrier they start on to the end of the last one. Each
/// thread's time on and waiting for a CPU is added to `sched::record`.
fn run_threads<S: Send>(work: Vec<(S, u64)>, op: impl Fn(&mut S) + Sync) -> Duration {
    let barrier = Barrier::new(work.len());
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = work
            .into_iter()
            .map(|(mut state, n)| {
                let (barrier, op) = (&barrier, &op);
                s.spawn(move || {
                    barrier.wait();
                    let cpu = CpuTime::this_thread();
                    let start = Instant::now();
                    for _ in 0..n {
                        op(&mut state);
                    }
                    let end = Instant::now();
                    sched::record(CpuTime::this_thread().since(&cpu));
                    (start, end)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("benchmark thread panicked")).collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("a thread");
    let end = spans.iter().map(|s| s.1).max().expect("a thread");
    end - start
}

/// Benchmarks `name` with `run(iters)`, then prints the CPU-wait share and, for Concord,
/// the aborts per commit.
fn bench(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    stm: bool,
    mut run: impl FnMut(u64) -> Duration,
) {
    let (cpu, before) = (CpuTime::recorded(), stats::snapshot());
    let mut ran = false;
    g.bench_function(name, |b| {
        ran = true;
        b.iter_custom(&mut run)
    });
    if !ran {
        return;
    }
    let cpu = CpuTime::recorded().since(&cpu);
    let mut line =
        format!("{name}: waited for a CPU {:.1}% of the time", 100.0 * cpu.wait_fraction());
    if stm {
        let d = stats::snapshot().since(&before);
        line +=
            &format!("; {:.4} aborts per commit ({} commits)", d.aborts_per_commit(), d.commits);
    }
    eprintln!("{line}");
}

/// One map workload: `reads_per_10` of every 10 operations are lookups, the others writes.
fn map_workload<M: Map>(g: &mut BenchmarkGroup<'_, WallTime>, threads: usize, reads_per_10: u64) {
    let map = M::with_keys(KEYS);
    let mut rngs: Vec<XorShift> = (0..threads).map(XorShift::for_thread).collect();
    bench(g, M::NAME, M::NAME.starts_with("concord"), |iters| {
        // Split `iters` evenly; the first threads take the remainder.
        let t = threads as u64;
        let work =
            rngs.iter_mut().zip(0..).map(|(rng, i)| (rng, iters / t + u64::from(i < iters % t)));
        run_threads(work.collect(), |rng| map.random_op(rng, reads_per_10))
    });
}

fn maps(c: &mut Criterion) {
    for (mix, reads) in [("ro", 10), ("r90w10", 9), ("r50w50", 5)] {
        for threads in [1, 2] {
            let mut g = c.benchmark_group(format!("map_{mix}_{threads}t"));
            g.throughput(Throughput::Elements(1));
            map_workload::<TMap<u64, u64>>(&mut g, threads, reads);
            map_workload::<TMapGetAtomic>(&mut g, threads, reads);
            map_workload::<RwLock<HashMap<u64, u64>>>(&mut g, threads, reads);
            map_workload::<DashMap<u64, u64>>(&mut g, threads, reads);
            g.finish();
        }
    }
}

/// One side of a producer/consumer pair: the producer's end with the next item to send,
/// or the consumer's end.
enum Side<P, C> {
    Push(P, u64),
    Pop(C),
}

/// Moves `iters` items from a producer thread, which owns `tx`, to a consumer thread, which
/// owns `rx`.
fn spsc<P: Send, C: Send>(
    iters: u64,
    (tx, rx): (P, C),
    push: impl Fn(&P, u64) + Sync,
    pop: impl Fn(&C) -> u64 + Sync,
) -> Duration {
    let work = vec![(Side::Push(tx, 0), iters), (Side::Pop(rx), iters)];
    run_threads(work, |side| match side {
        Side::Push(tx, next) => {
            push(tx, *next);
            *next += 1;
        }
        Side::Pop(rx) => {
            black_box(pop(rx));
        }
    })
}

fn queues(c: &mut Criterion) {
    let mut g = c.benchmark_group("bqueue_spsc_2t");
    g.throughput(Throughput::Elements(1));
    let q = TBQueue::new(CAPACITY);
    bench(&mut g, "concord_tbqueue", true, |iters| {
        spsc(iters, (&q, &q), |q, i| atomically(|tx| q.push(tx, i)), |q| atomically(|tx| q.pop(tx)))
    });
    bench(&mut g, "std_sync_channel", false, |iters| {
        spsc(
            iters,
            mpsc::sync_channel(CAPACITY),
            |tx, i| tx.send(i).expect("receiver alive"),
            |rx| rx.recv().expect("sender alive"),
        )
    });
    bench(&mut g, "crossbeam_bounded", false, |iters| {
        spsc(
            iters,
            crossbeam_channel::bounded(CAPACITY),
            |tx, i| tx.send(i).expect("receiver alive"),
            |rx| rx.recv().expect("sender alive"),
        )
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

/// The criterion harness, in a private module so that the `pub fn` that
/// `criterion_group!` generates needs no doc comment.
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = super::config();
        targets = super::maps, super::queues
    }
}
criterion_main!(harness::benches);
