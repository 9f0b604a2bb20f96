//! `TMap` against `RwLock<HashMap>` and `dashmap` in paired rounds. Run with
//! `cargo bench -p concord-benches --bench map_paired` (optionally `-- ROUNDS MS`: 15 rounds
//! of 200 ms per map by default).
//!
//! The same workloads as `collections.rs`'s `map_*` groups (uniformly random keys of a map
//! of 100,000 `u64` entries; 100%, 90% or 50% lookups, the rest overwrites of existing keys;
//! 1 and 2 threads), timed another way. Criterion times each contender for seconds, one after
//! the other, and the hosts these figures come from change speed 2-3x within minutes, so a
//! ratio of two criterion results can be off by as much. Here each round runs the four maps
//! (`TMap` with one `atomically` per operation, `TMap` with its lookups through
//! `TMap::get_atomic`, and the two others) for `MS` milliseconds each, back to back, and the
//! report gives, per workload, the quartiles over the rounds of each `TMap`'s time per
//! operation divided by the other map's in the same round: a slow phase of the host slows
//! both sides of a round alike. Not always alike, though: the host moves a written cache
//! line between its two CPUs in 23-35 ns in some phases and 200-240 ns in others, which
//! slows every map whose threads share written lines, each by its own amount (the locked
//! map's readers share its lock word; `TMap`'s readers share the buckets that the other
//! thread's writes just copied). Each row ends with that handoff time, measured before every
//! round (median over the rounds), and with the share of the time the maps' threads waited
//! for a CPU that other load held (over the row, and the worst map's round): under such load
//! the two threads of a lock-free map share one CPU while the locked map's stop bouncing its
//! lock word, and the row says more about the load than about the maps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use concord_benches::maps::{Map, TMapGetAtomic, KEYS};
use concord_benches::sched::{cache_line_handoff_ns, CpuTime};
use concord_benches::XorShift;
use concord_stm::collections::TMap;
use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

/// Operations per second of all `threads` together on `map`, over `ms` milliseconds, with
/// `reads_per_10` of every 10 operations lookups and the others overwrites; and the threads'
/// time on and waiting for a CPU.
fn throughput<M: Map>(map: &M, threads: usize, reads_per_10: u64, ms: u64) -> (f64, CpuTime) {
    let cpu = Mutex::new(CpuTime::default());
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + Duration::from_millis(ms);
    // Each thread watches the clock itself and the main thread waits in `join`, as in the
    // criterion benchmarks: a main thread that sleeps instead halved the one-thread
    // throughput of every map on this host (a VM), one that spins takes a core.
    thread::scope(|s| {
        for t in 0..threads {
            let (done, cpu) = (&done, &cpu);
            s.spawn(move || {
                let mut rng = XorShift::for_thread(t);
                let mut n = 0;
                while Instant::now() < deadline {
                    for _ in 0..64 {
                        map.random_op(&mut rng, reads_per_10);
                    }
                    n += 64;
                }
                done.fetch_add(n, Ordering::Relaxed);
                // A thread of this round's own: its totals, waiting to start included, are
                // the round's.
                cpu.lock().add(CpuTime::this_thread());
            });
        }
    });
    let ops_per_s = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    (ops_per_s, cpu.into_inner())
}

/// The first, second and third quartiles of `v`.
fn quartiles(mut v: Vec<f64>) -> [f64; 3] {
    v.sort_by(f64::total_cmp);
    [v[v.len() / 4], v[v.len() / 2], v[(3 * v.len()) / 4]]
}

fn main() {
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rounds = numbers.first().copied().unwrap_or(15).max(1) as usize;
    let ms = numbers.get(1).copied().unwrap_or(200);
    let tmap = TMap::<u64, u64>::with_keys(KEYS);
    let get_atomic = TMapGetAtomic::with_keys(KEYS);
    let rwlock = RwLock::<HashMap<u64, u64>>::with_keys(KEYS);
    let dashmap = DashMap::<u64, u64>::with_keys(KEYS);
    println!(
        "{rounds} rounds of {ms} ms per map; throughputs are medians over the rounds; ratios are \
         a TMap's time per operation over the other map's in the same round (quartiles).\n\
         TMap: one `atomically` per operation; get_atomic: lookups through `TMap::get_atomic`.\n\
         line ns: the median time for one thread to see another's store before each round \
         (`sched::cache_line_handoff_ns`): 23-35 ns or 200-240 ns on the development host.\n\
         wait%: the share of the maps' threads' runnable time spent waiting for a CPU taken \
         by other load, over the row (on the development host, 0-4% with nothing else \
         running, 39-46% beside one busy loop); worst: the largest share in one map's round \
         (11-22% on 2 threads with nothing else running)."
    );
    println!(
        "{:<8} {:>3} {:>9} {:>9} {:>9} {:>9} | {:>16} {:>16} {:>16} {:>16} | {:>7} {:>5} {:>5}",
        "mix",
        "thr",
        "TMap M/s",
        "get_at",
        "RwLock",
        "dashmap",
        "TMap / RwLock",
        "TMap / dashmap",
        "get_at / RwLock",
        "get_at / dashmap",
        "line ns",
        "wait%",
        "worst"
    );
    for (mix, reads) in [("ro", 10), ("r90w10", 9), ("r50w50", 5)] {
        for threads in [1, 2] {
            // Throughputs of TMap, get_atomic, RwLock and dashmap, round by round.
            let mut rows: Vec<[f64; 4]> = Vec::with_capacity(rounds);
            let mut handoffs = Vec::with_capacity(rounds);
            // The threads' CPU time over the row, and the largest share of waiting for a CPU
            // in one map's round.
            let (mut cpu, mut worst) = (CpuTime::default(), 0.0_f64);
            for _ in 0..rounds {
                handoffs.push(cache_line_handoff_ns(3));
                let runs = [
                    throughput(&tmap, threads, reads, ms),
                    throughput(&get_atomic, threads, reads, ms),
                    throughput(&rwlock, threads, reads, ms),
                    throughput(&dashmap, threads, reads, ms),
                ];
                for (_, spent) in runs {
                    cpu.add(spent);
                    worst = worst.max(100.0 * spent.wait_fraction());
                }
                rows.push(runs.map(|(ops_per_s, _)| ops_per_s));
            }
            let median = |i: usize| quartiles(rows.iter().map(|r| r[i] / 1e6).collect())[1];
            // Time of `ours` over time of `other`: the other's throughput over ours.
            let ratio = |ours: usize, other: usize| {
                let q = quartiles(rows.iter().map(|r| r[other] / r[ours]).collect());
                q.map(|x| format!("{x:.2}")).join(" ")
            };
            let waited = 100.0 * cpu.wait_fraction();
            // NaN where the probe could not pin its threads.
            handoffs.retain(|h| !h.is_nan());
            let handoff = if handoffs.is_empty() { f64::NAN } else { quartiles(handoffs)[1] };
            println!(
                "{mix:<8} {threads:>3} {:>9.2} {:>9.2} {:>9.2} {:>9.2} | {:>16} {:>16} {:>16} {:>16} | {handoff:>7.0} {waited:>5.1} {worst:>5.1}",
                median(0),
                median(1),
                median(2),
                median(3),
                ratio(0, 2),
                ratio(0, 3),
                ratio(1, 2),
                ratio(1, 3)
            );
        }
    }
}
