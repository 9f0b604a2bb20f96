//! The maps of the collections benchmarks (`benches/collections.rs`, `benches/map_paired.rs`):
//! one trait with the two operations the workloads use, for `concord_stm::collections::TMap`
//! (one `atomically` per operation, or lookups outside transactions: [`TMapGetAtomic`]),
//! `parking_lot::RwLock<std::collections::HashMap>` and `dashmap::DashMap`, all with `u64`
//! keys and values and their default hashers.

use std::collections::HashMap;

use std::hint::black_box;

use concord_stm::atomically;
use concord_stm::collections::TMap;
use dashmap::DashMap;
use parking_lot::RwLock;

use crate::XorShift;

/// Entries in the benchmarked maps.
pub const KEYS: u64 = 100_000;

/// A map under test.
pub trait Map: Sync {
    /// The contender's name in reports.
    const NAME: &'static str;
    /// A map holding `k -> k` for every `k` below `n`.
    fn with_keys(n: u64) -> Self;
    /// The value of `key`, in one operation (for `TMap`: one transaction).
    fn get(&self, key: u64) -> Option<u64>;
    /// Sets `key` to `value`, in one operation.
    fn set(&self, key: u64, value: u64);

    /// One operation of the workloads on a uniformly random key below `KEYS`: a lookup with
    /// probability `reads_per_10` in 10, else an overwrite with a random value.
    #[inline]
    fn random_op(&self, rng: &mut XorShift, reads_per_10: u64) {
        let x = rng.next_u64();
        let key = rng.index(KEYS as usize) as u64;
        if x % 10 < reads_per_10 {
            black_box(self.get(key));
        } else {
            self.set(key, x);
        }
    }
}

impl Map for TMap<u64, u64> {
    const NAME: &'static str = "concord_tmap";
    fn with_keys(n: u64) -> Self {
        // Sized for its keys, as the `HashMap` and `DashMap` built from them are.
        let map = TMap::with_capacity(n as usize);
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            atomically(|tx| chunk.iter().try_for_each(|&k| map.insert(tx, k, k).map(drop)));
        }
        map
    }
    fn get(&self, key: u64) -> Option<u64> {
        atomically(|tx| Ok(self.read(tx, &key)?.copied()))
    }
    fn set(&self, key: u64, value: u64) {
        atomically(|tx| self.insert(tx, key, value).map(drop));
    }
}

/// `TMap` as a program whose lookups are each a transaction by themselves would use it:
/// lookups through [`TMap::get_atomic`] (no transaction: no snapshot, no read log), writes
/// as the `TMap` contender makes them, one `atomically` each.
#[derive(Debug)]
pub struct TMapGetAtomic(pub TMap<u64, u64>);

impl Map for TMapGetAtomic {
    const NAME: &'static str = "concord_tmap_get_atomic";
    fn with_keys(n: u64) -> Self {
        TMapGetAtomic(TMap::with_keys(n))
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.0.get_atomic(&key)
    }
    fn set(&self, key: u64, value: u64) {
        self.0.set(key, value);
    }
}

impl Map for RwLock<HashMap<u64, u64>> {
    const NAME: &'static str = "rwlock_hashmap";
    fn with_keys(n: u64) -> Self {
        RwLock::new((0..n).map(|k| (k, k)).collect())
    }
    fn get(&self, key: u64) -> Option<u64> {
        self.read().get(&key).copied()
    }
    fn set(&self, key: u64, value: u64) {
        self.write().insert(key, value);
    }
}

impl Map for DashMap<u64, u64> {
    const NAME: &'static str = "dashmap";
    fn with_keys(n: u64) -> Self {
        (0..n).map(|k| (k, k)).collect()
    }
    fn get(&self, key: u64) -> Option<u64> {
        DashMap::get(self, &key).map(|v| *v)
    }
    fn set(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
}
