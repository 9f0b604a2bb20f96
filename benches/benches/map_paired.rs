//! `TMap` against `RwLock<HashMap>` and `dashmap` in paired rounds. Run with
//! `cargo bench -p concord-benches --bench map_paired` (optionally `-- ROUNDS MS`: 15 rounds
//! of 200 ms per map by default).
//!
//! The same workloads as `collections.rs`'s `map_*` groups (uniformly random keys of a map
//! of 100,000 `u64` entries; 100%, 90% or 50% lookups, the rest overwrites of existing keys;
//! 1 and 2 threads), timed another way. Criterion times each contender for seconds, one after
//! the other, and the hosts these figures come from change speed 2-3x within minutes, so a
//! ratio of two criterion results can be off by as much. Here each round runs the three maps
//! for `MS` milliseconds each, back to back, and the report gives, per workload, the quartiles
//! over the rounds of `TMap`'s time per operation divided by the other map's in the same
//! round: a slow phase of the host slows both sides of a round alike.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use concord_benches::maps::{Map, KEYS};
use concord_benches::XorShift;
use concord_stm::collections::TMap;
use dashmap::DashMap;
use parking_lot::RwLock;

/// Operations per second of all `threads` together on `map`, over `ms` milliseconds, with
/// `reads_per_10` of every 10 operations lookups and the others overwrites.
fn throughput<M: Map>(map: &M, threads: usize, reads_per_10: u64, ms: u64) -> f64 {
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + Duration::from_millis(ms);
    // Each thread watches the clock itself and the main thread waits in `join`, as in the
    // criterion benchmarks: a main thread that sleeps instead halved the one-thread
    // throughput of every map on this host (a VM), one that spins takes a core.
    thread::scope(|s| {
        for t in 0..threads {
            let done = &done;
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
            });
        }
    });
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
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
    let rwlock = RwLock::<HashMap<u64, u64>>::with_keys(KEYS);
    let dashmap = DashMap::<u64, u64>::with_keys(KEYS);
    println!(
        "{rounds} rounds of {ms} ms per map; TMap's time per operation over the other map's \
         in the same round (quartiles); throughputs are medians"
    );
    println!(
        "{:<8} {:>7} {:>11} {:>11} {:>11} {:>20} {:>20}",
        "mix",
        "threads",
        "TMap M/s",
        "RwLock M/s",
        "dashmap M/s",
        "TMap / RwLock",
        "TMap / dashmap"
    );
    for (mix, reads) in [("ro", 10), ("r90w10", 9), ("r50w50", 5)] {
        for threads in [1, 2] {
            let (mut t, mut r, mut d, mut vs_r, mut vs_d) =
                (vec![], vec![], vec![], vec![], vec![]);
            for _ in 0..rounds {
                let a = throughput(&tmap, threads, reads, ms);
                let b = throughput(&rwlock, threads, reads, ms);
                let c = throughput(&dashmap, threads, reads, ms);
                vs_r.push(b / a);
                vs_d.push(c / a);
                t.push(a / 1e6);
                r.push(b / 1e6);
                d.push(c / 1e6);
            }
            let q = |v| quartiles(v).map(|x| format!("{x:.2}")).join(" ");
            let m = |v| quartiles(v)[1];
            println!(
                "{mix:<8} {threads:>7} {:>11.2} {:>11.2} {:>11.2} {:>20} {:>20}",
                m(t),
                m(r),
                m(d),
                q(vs_r),
                q(vs_d)
            );
        }
    }
}
