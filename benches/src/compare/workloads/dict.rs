//! `dict`: a key-value map of `u64` to `u64` with K keys, loaded before the run (as YCSB
//! does); each operation reads a key or increments its value, keys drawn uniformly or from
//! a Zipf distribution (s = 0.99, YCSB's default, hot keys scattered over the key space).
//!
//! Check: every key's final value equals the number of increments the workers made to it
//! (each worker counts its own per key), so a lost or doubled update fails the run.
//!
//! Contenders: Concord's `TMap` (threads and executor), one `parking_lot::Mutex<HashMap>`,
//! a sharded map (`dashmap`, a lock per shard), and for `stm` 0.4, which has no map, a
//! fixed table of 4096 buckets each in one `stm::TVar<Vec<(u64, u64)>>`, as a user of that
//! crate would write it.

use std::collections::HashMap;
use std::sync::Arc;

use concord_stm::collections::TMap;
use concord_stm::{atomically, atomically_async};
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use super::{check_eq, rss};
use crate::compare::measure::{self, Measured, Meter};
use crate::compare::spec::Case;

/// The dict workload's parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Spec {
    pub(crate) keys: usize,
    pub(crate) read_percent: u8,
    pub(crate) zipf: bool,
}

/// Keys (and read/write choices) each worker cycles through: drawn once, before the run,
/// so that drawing costs every contender the same (an array load).
pub(crate) const DRAWS: usize = 1 << 16;

/// One worker's precomputed operations: `(key, is_write)`.
pub(crate) struct Draws(pub(crate) Vec<(u64, bool)>);

impl Draws {
    pub(crate) fn new(spec: &Spec, worker: usize) -> Draws {
        let mut rng = SmallRng::seed_from_u64(0xD1C7 + worker as u64);
        let zipf = Zipf::new(spec.keys as u64, 0.99).expect("valid Zipf parameters");
        let ops = (0..DRAWS)
            .map(|_| {
                let key = if spec.zipf {
                    // Rank 1 is the hottest; scatter ranks over the key space.
                    let rank = zipf.sample(&mut rng) as u64 - 1;
                    rank.wrapping_mul(0x9E37_79B9_7F4A_7C15) % spec.keys as u64
                } else {
                    rng.gen_range(0..spec.keys as u64)
                };
                (key, rng.gen_range(0..100) >= spec.read_percent)
            })
            .collect();
        Draws(ops)
    }
}

/// A worker's increments per key, for the check.
pub(crate) struct Counts(pub(crate) Vec<u32>);

impl Counts {
    pub(crate) fn new(keys: usize) -> Counts {
        Counts(vec![0; keys])
    }
}

/// Sums the workers' counts and compares them with the map's final values.
pub(crate) fn check(
    counts: &[Counts],
    value_of: impl Fn(u64) -> Option<u64>,
    keys: usize,
) -> Result<(), String> {
    for k in 0..keys {
        let expected: u64 = counts.iter().map(|c| u64::from(c.0[k])).sum();
        let found = value_of(k as u64);
        if found != Some(expected) {
            return check_eq(&format!("value of key {k}"), Some(expected), found);
        }
    }
    Ok(())
}

/// A map behind some synchronization, as the thread contenders use it.
pub(super) trait Dict: Sync {
    fn load(keys: usize) -> Self;
    fn get(&self, key: u64) -> Option<u64>;
    fn increment(&self, key: u64);
}

impl Dict for TMap<u64, u64> {
    fn load(keys: usize) -> Self {
        // Sized like the other contenders' maps, which are built from an exact-size iterator.
        let map = TMap::with_capacity(keys);
        for chunk in (0..keys as u64).collect::<Vec<_>>().chunks(1024) {
            atomically(|tx| chunk.iter().try_for_each(|&k| map.insert(tx, k, 0).map(drop)));
        }
        map
    }

    fn get(&self, key: u64) -> Option<u64> {
        atomically(|tx| self.get(tx, &key))
    }

    fn increment(&self, key: u64) {
        atomically(|tx| self.update(tx, key, |v| Some(v.map_or(1, |v| v + 1))));
    }
}

impl Dict for Mutex<HashMap<u64, u64>> {
    fn load(keys: usize) -> Self {
        Mutex::new((0..keys as u64).map(|k| (k, 0)).collect())
    }

    fn get(&self, key: u64) -> Option<u64> {
        self.lock().get(&key).copied()
    }

    fn increment(&self, key: u64) {
        *self.lock().entry(key).or_insert(0) += 1;
    }
}

impl Dict for dashmap::DashMap<u64, u64> {
    fn load(keys: usize) -> Self {
        (0..keys as u64).map(|k| (k, 0)).collect()
    }

    fn get(&self, key: u64) -> Option<u64> {
        dashmap::DashMap::get(self, &key).map(|v| *v)
    }

    fn increment(&self, key: u64) {
        *self.entry(key).or_insert(0) += 1;
    }
}

/// `stm` 0.4 has no map: a fixed table of buckets, each one `TVar`.
pub(super) struct RustStmDict {
    buckets: Vec<stm::TVar<Vec<(u64, u64)>>>,
}

impl RustStmDict {
    const BUCKETS: u64 = 4096;

    fn bucket(&self, key: u64) -> &stm::TVar<Vec<(u64, u64)>> {
        &self.buckets[(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize]
    }
}

impl Dict for RustStmDict {
    fn load(keys: usize) -> Self {
        let mut buckets = vec![Vec::new(); Self::BUCKETS as usize];
        for k in 0..keys as u64 {
            buckets[(k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize].push((k, 0));
        }
        RustStmDict { buckets: buckets.into_iter().map(stm::TVar::new).collect() }
    }

    fn get(&self, key: u64) -> Option<u64> {
        let b = self.bucket(key);
        stm::atomically(|tx| Ok(b.read(tx)?.iter().find(|e| e.0 == key).map(|e| e.1)))
    }

    fn increment(&self, key: u64) {
        let b = self.bucket(key);
        stm::atomically(|tx| {
            b.modify(tx, |mut entries| {
                match entries.iter_mut().find(|e| e.0 == key) {
                    Some(e) => e.1 += 1,
                    None => entries.push((key, 1)),
                }
                entries
            })
        });
    }
}

pub(super) fn on_threads<D: Dict>(spec: &Spec, case: &Case) -> Result<(Measured, u64), String> {
    let map = D::load(spec.keys);
    let draws: Vec<Draws> = (0..case.workers).map(|w| Draws::new(spec, w)).collect();
    let (measured, counts) = measure::on_threads(case.workers, case.duration, |w, stop, meter| {
        let mut counts = Counts::new(spec.keys);
        let mut i = 0;
        while !stop.is_set() {
            let (key, write) = draws[w].0[i % DRAWS];
            i += 1;
            let t = meter.begin();
            if write {
                map.increment(key);
                counts.0[key as usize] += 1;
            } else {
                std::hint::black_box(map.get(key));
            }
            meter.end(t);
        }
        counts
    });
    let rss = rss();
    check(&counts, |k| map.get(k), spec.keys)?;
    Ok((measured, rss))
}

pub(super) fn on_executor(spec: &Spec, case: &Case) -> Result<(Measured, u64), String> {
    let ex = super::bank::executor(case)?;
    let map: Arc<TMap<u64, u64>> = Arc::new(Dict::load(spec.keys));
    let spec_copy = *spec;
    let (measured, counts) = measure::on_executor(&ex, case.workers, case.duration, |w, stop| {
        let map = map.clone();
        let draws = Draws::new(&spec_copy, w);
        async move {
            let mut counts = Counts::new(spec_copy.keys);
            let mut meter = Meter::new();
            let mut i = 0;
            while !stop.is_set() {
                let (key, write) = draws.0[i % DRAWS];
                i += 1;
                let t = meter.begin();
                if write {
                    atomically_async(|tx| map.update(tx, key, |v| Some(v.map_or(1, |v| v + 1))))
                        .await;
                    counts.0[key as usize] += 1;
                } else {
                    std::hint::black_box(atomically_async(|tx| map.get(tx, &key)).await);
                }
                meter.end(t);
            }
            (meter, counts)
        }
    });
    let rss = rss();
    check(&counts, |k| Dict::get(&*map, k), spec.keys)?;
    Ok((measured, rss))
}
