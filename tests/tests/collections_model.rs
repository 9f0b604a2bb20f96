//! The transactional collections against `std` models, as quickcheck properties: random
//! operation sequences, grouped into transactions of random sizes, must return what the same
//! operations return on a `HashMap`, `HashSet`, `VecDeque`, `Option` or `Vec`, and leave the
//! same contents. A batch run in an `or_else` branch that then retries must leave no trace.
//!
//! Maps and sets run under three hashers: std's `RandomState`, one that spreads small keys
//! over the root's slots, and one that sends every key to one of a few hashes, so that
//! buckets split level after level down to the deepest one and then grow past the split
//! threshold (full collisions).
//!
//! Operations are plain tuples, so that quickcheck shrinks a failure to a minimal sequence.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};

use concord_stm::collections::{TArray, TBQueue, TChan, TCounter, TMVar, TMap, TQueue, TSem, TSet};
use concord_stm::{atomically, retry, Stm, Transaction};
use quickcheck::{Gen, QuickCheck, TestResult};

/// One generated operation: `(kind, key or index, operand)`.
type Op = (u8, u8, i32);

/// Runs `prop` on `tests` random cases of up to `size` operations.
fn check<A: quickcheck::Testable>(tests: u64, size: usize, prop: A) {
    QuickCheck::new().tests(tests).rng(Gen::new(size)).quickcheck(prop);
}

/// How many operations a transaction groups: 1 to 8.
fn batch_len(b: u8) -> usize {
    1 + usize::from(b % 8)
}

/// A hasher whose hash is the key's bytes modulo `modulus` (0: the bytes themselves).
#[derive(Clone, Copy, Debug)]
struct Toy {
    modulus: u64,
}

struct ToyHasher {
    modulus: u64,
    value: u64,
}

impl Hasher for ToyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.value = (self.value << 8) | u64::from(b);
        }
    }

    fn finish(&self) -> u64 {
        if self.modulus == 0 {
            self.value
        } else {
            self.value % self.modulus
        }
    }
}

impl BuildHasher for Toy {
    type Hasher = ToyHasher;

    fn build_hasher(&self) -> ToyHasher {
        ToyHasher { modulus: self.modulus, value: 0 }
    }
}

/// Keys are `u16` below 400: enough to fill several levels of the trie.
fn key(k: u8, x: i32) -> u16 {
    (u16::from(k) + (x.unsigned_abs() % 2) as u16 * 256) % 400
}

/// What a map operation returned, for comparison with the model.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Unit,
    Bool(bool),
    Value(Option<i32>),
    Len(usize),
    Entries(Vec<(u16, i32)>),
}

fn sorted(mut v: Vec<(u16, i32)>) -> Vec<(u16, i32)> {
    v.sort_unstable();
    v
}

fn map_entries<S: BuildHasher>(
    m: &TMap<u16, i32, S>,
    tx: &Transaction<'_>,
) -> Stm<Vec<(u16, i32)>> {
    Ok(sorted(m.iter(tx).map(|e| e.map(|(&k, &v)| (k, v))).collect::<Stm<_>>()?))
}

fn map_op<S: BuildHasher>(
    m: &TMap<u16, i32, S>,
    tx: &mut Transaction<'_>,
    (kind, k, x): Op,
) -> Stm<Seen> {
    let k = key(k, x);
    Ok(match kind % 20 {
        0..=4 => Seen::Bool(m.insert(tx, k, x)?),
        5..=7 => Seen::Bool(m.remove(tx, &k)?),
        8..=9 => Seen::Value(m.get(tx, &k)?),
        10 => Seen::Value(m.read(tx, &k)?.copied()),
        11 => Seen::Bool(m.contains_key(tx, &k)?),
        12..=14 => {
            m.update(tx, k, |old| match old {
                _ if x % 5 == 0 => None,
                Some(v) => Some(v.wrapping_add(x)),
                None => Some(x),
            })?;
            Seen::Unit
        }
        15 => Seen::Len(m.len(tx)?),
        16 => Seen::Bool(m.is_empty(tx)?),
        17 | 18 => Seen::Entries(map_entries(m, tx)?),
        _ if x % 4 == 0 => {
            m.clear(tx)?;
            Seen::Unit
        }
        _ => Seen::Len(m.len(tx)?),
    })
}

fn map_model(m: &mut HashMap<u16, i32>, (kind, k, x): Op) -> Seen {
    let k = key(k, x);
    match kind % 20 {
        0..=4 => Seen::Bool(m.insert(k, x).is_none()),
        5..=7 => Seen::Bool(m.remove(&k).is_some()),
        8..=10 => Seen::Value(m.get(&k).copied()),
        11 => Seen::Bool(m.contains_key(&k)),
        12..=14 => {
            match m.get(&k) {
                _ if x % 5 == 0 => drop(m.remove(&k)),
                Some(&v) => drop(m.insert(k, v.wrapping_add(x))),
                None => drop(m.insert(k, x)),
            }
            Seen::Unit
        }
        15 => Seen::Len(m.len()),
        16 => Seen::Bool(m.is_empty()),
        17 | 18 => Seen::Entries(sorted(m.iter().map(|(&k, &v)| (k, v)).collect())),
        _ if x % 4 == 0 => {
            m.clear();
            Seen::Unit
        }
        _ => Seen::Len(m.len()),
    }
}

/// Runs `ops` in batches against a fresh map and the model; every result and the final
/// contents must agree. Every third batch is first run in an `or_else` branch that retries,
/// which must change nothing.
fn map_matches_model<S: BuildHasher>(hasher: S, ops: &[Op], batch: u8) -> TestResult {
    map_matches_model_on(TMap::with_hasher(hasher), ops, batch)
}

/// `map_matches_model` on a given (empty) map.
fn map_matches_model_on<S: BuildHasher>(
    map: TMap<u16, i32, S>,
    ops: &[Op],
    batch: u8,
) -> TestResult {
    let mut model = HashMap::new();
    for (i, chunk) in ops.chunks(batch_len(batch)).enumerate() {
        if i % 3 == 2 {
            let before = atomically(|tx| map_entries(&map, tx));
            let undone = atomically(|tx| {
                tx.or_else(
                    |tx| {
                        for &op in chunk {
                            map_op(&map, tx, op)?;
                        }
                        retry()
                    },
                    |tx| map_entries(&map, tx),
                )
            });
            if undone != before {
                return TestResult::error(format!("a rolled-back batch left {undone:?}"));
            }
        }
        let seen =
            atomically(|tx| chunk.iter().map(|&op| map_op(&map, tx, op)).collect::<Stm<Vec<_>>>());
        let expected: Vec<Seen> = chunk.iter().map(|&op| map_model(&mut model, op)).collect();
        if seen != expected {
            return TestResult::error(format!("batch {chunk:?}: got {seen:?}, model {expected:?}"));
        }
        // Outside transactions, lookups see what the batch committed.
        for &(_, k, x) in chunk {
            let k = key(k, x);
            let (got, want) = (map.get_atomic(&k), model.get(&k).copied());
            if got != want || map.with_atomic(&k, |v| v.is_some()) != want.is_some() {
                return TestResult::error(format!("get_atomic({k}): {got:?}, model {want:?}"));
            }
        }
    }
    let entries = atomically(|tx| map_entries(&map, tx));
    let len = atomically(|tx| map.len(tx));
    let want = sorted(model.into_iter().collect());
    TestResult::from_bool(entries == want && len == want.len())
}

#[test]
fn tmap_matches_hashmap_random_state() {
    fn prop(ops: Vec<Op>, batch: u8) -> TestResult {
        map_matches_model(std::collections::hash_map::RandomState::new(), &ops, batch)
    }
    check(150, 400, prop as fn(Vec<Op>, u8) -> TestResult);
}

#[test]
fn tmap_matches_hashmap_spread_hasher() {
    fn prop(ops: Vec<Op>, batch: u8) -> TestResult {
        map_matches_model(Toy { modulus: 0 }, &ops, batch)
    }
    check(150, 400, prop as fn(Vec<Op>, u8) -> TestResult);
}

#[test]
fn tmap_matches_hashmap_colliding_hasher() {
    fn prop(ops: Vec<Op>, batch: u8, modulus: u8) -> TestResult {
        map_matches_model(Toy { modulus: 1 + u64::from(modulus % 4) }, &ops, batch)
    }
    check(100, 400, prop as fn(Vec<Op>, u8, u8) -> TestResult);
}

#[test]
fn tmap_with_capacity_matches_hashmap() {
    // Roots of 32 to 8192 slots, with spread and colliding hashes (the deepest level of a
    // trie under a wide root is shallower).
    fn prop(ops: Vec<Op>, batch: u8, capacity: u16, modulus: u8) -> TestResult {
        let hasher = Toy { modulus: u64::from(modulus % 3) };
        map_matches_model_on(
            TMap::with_capacity_and_hasher(usize::from(capacity) / 4, hasher),
            &ops,
            batch,
        )
    }
    check(100, 400, prop as fn(Vec<Op>, u8, u16, u8) -> TestResult);
}

/// Thousands of keys, beyond what the properties reach: splits several levels deep (or, at a
/// capacity of 4096, buckets of about 20 keys, most past the 16 kept in place), an overwrite
/// of every key, then removal of every other key and of the rest.
#[test]
fn tmap_grows_and_shrinks() {
    for capacity in [0, 64, 4_096, 5_000, 100_000] {
        grow_and_shrink(TMap::with_capacity(capacity));
    }
}

/// A lookup outside transactions, called inside one, panics and says what to call instead.
#[test]
fn tmap_lookups_outside_a_transaction_panic_inside_one() {
    let map: TMap<u32, u32> = TMap::new();
    atomically(|tx| map.insert(tx, 1, 10).map(drop));
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        atomically(|tx| {
            map.insert(tx, 1, 11)?;
            Ok(map.get_atomic(&1))
        })
    }))
    .unwrap_err();
    let msg = concord_tests::panic_message(&*payload);
    assert!(msg.contains("`TMap::get_atomic`) called inside a transaction"), "{msg}");
    assert!(msg.contains("map.get(tx, &key)"), "the message names the fix: {msg}");
    assert_eq!(map.get_atomic(&1), Some(10), "the panicking attempt's write is discarded");
}

/// An update that leaves an absent key absent, and a removal of an absent key, write nothing:
/// their transactions commit read-only.
#[test]
fn tmap_writes_nothing_for_an_absent_key_that_stays_absent() {
    let map: TMap<u32, u32> = TMap::new();
    atomically(|tx| map.insert(tx, 1, 1).map(drop));
    let before = concord_stm::stats::thread_snapshot();
    atomically(|tx| map.update(tx, 2, |v| v.copied()));
    assert!(!atomically(|tx| map.remove(tx, &3)));
    let delta = concord_stm::stats::thread_snapshot().since(&before);
    assert_eq!((delta.commits, delta.read_only_commits), (2, 2));
    assert_eq!(atomically(|tx| map.len(tx)), 1);
}

/// A key whose `clone` panics when `PANIC_AT` reaches zero (counted down by every clone),
/// and that counts its live instances.
#[derive(PartialEq, Eq, Hash, Debug)]
struct Fragile(u32);

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);
static PANIC_AT: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(-1);

impl Fragile {
    fn new(k: u32) -> Self {
        LIVE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Fragile(k)
    }
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if PANIC_AT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            panic!("clone {} refused", self.0);
        }
        Fragile::new(self.0)
    }
}

impl Drop for Fragile {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A transaction body that writes.
type Write<'a> = dyn Fn(&mut Transaction<'_>) -> Stm<()> + 'a;

/// A write whose copy of the bucket panics partway (a key's `clone`) publishes nothing and
/// drops every clone it made once, whatever the write (overwrite, insertion, removal, a
/// split) and wherever the panic.
#[test]
fn tmap_write_that_panics_mid_copy_changes_nothing() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::Ordering::SeqCst;
    // One hash for every key: all 40 share one bucket at the deepest level, or split first.
    let map: TMap<Fragile, u32, Toy> = TMap::with_hasher(Toy { modulus: 1 });
    for k in 0..40 {
        atomically(|tx| map.insert(tx, Fragile::new(k), k).map(drop));
    }
    let contents = |map: &TMap<Fragile, u32, Toy>| {
        let mut v: Vec<(u32, u32)> =
            atomically(|tx| map.iter(tx).map(|e| e.map(|(k, &v)| (k.0, v))).collect::<Stm<_>>());
        v.sort_unstable();
        v
    };
    let want = contents(&map);
    for panic_at in [0, 1, 7, 15, 16, 17, 30, 38] {
        let writes: [&Write<'_>; 3] = [
            &|tx| map.insert(tx, Fragile::new(5), 99).map(drop),
            &|tx| map.insert(tx, Fragile::new(100), 1).map(drop),
            &|tx| map.remove(tx, &Fragile::new(20)).map(drop),
        ];
        for write in writes {
            PANIC_AT.store(panic_at, SeqCst);
            let outcome = catch_unwind(AssertUnwindSafe(|| atomically(|tx| write(tx))));
            PANIC_AT.store(-1, SeqCst);
            assert!(outcome.is_err(), "clone number {panic_at} panics");
            assert_eq!(contents(&map), want, "nothing published");
        }
    }
    drop(map);
    // Every clone made, and every key, dropped once (after the collector's grace period).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while LIVE.load(SeqCst) != 0 && std::time::Instant::now() < deadline {
        concord_stm::collect_garbage();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(LIVE.load(SeqCst), 0);
}

fn grow_and_shrink(map: TMap<u32, u32>) {
    const N: u32 = 5_000;
    let mut model = HashMap::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(7) {
        atomically(|tx| chunk.iter().try_for_each(|&k| map.insert(tx, k, k * 2).map(drop)));
        model.extend(chunk.iter().map(|&k| (k, k * 2)));
    }
    assert_eq!(atomically(|tx| map.len(tx)), N as usize);
    for k in 0..N {
        assert!(!atomically(|tx| map.insert(tx, k, k * 2 + 1)), "key {k} is in the map");
        model.insert(k, k * 2 + 1);
    }
    assert_eq!(atomically(|tx| map.len(tx)), N as usize);
    for k in (0..N).step_by(2) {
        assert!(atomically(|tx| map.remove(tx, &k)));
        model.remove(&k);
    }
    let mut entries: Vec<(u32, u32)> =
        atomically(|tx| map.iter(tx).map(|e| e.map(|(&k, &v)| (k, v))).collect::<Stm<_>>());
    entries.sort_unstable();
    let mut want: Vec<(u32, u32)> = model.into_iter().collect();
    want.sort_unstable();
    assert_eq!(entries, want);
    for k in 0..N {
        let want = (k % 2 == 1).then_some(k * 2 + 1);
        assert_eq!(atomically(|tx| map.get(tx, &k)), want);
        assert_eq!(map.get_atomic(&k), want);
    }
    atomically(|tx| map.clear(tx));
    assert_eq!(atomically(|tx| map.len(tx)), 0);
    assert_eq!(atomically(|tx| Ok(map.iter(tx).collect::<Stm<Vec<_>>>()?.len())), 0);
}

#[test]
fn tset_matches_hashset() {
    fn prop(ops: Vec<Op>, batch: u8, colliding: bool) -> TestResult {
        let set = TSet::with_hasher(Toy { modulus: if colliding { 3 } else { 0 } });
        let mut model = HashSet::new();
        for chunk in ops.chunks(batch_len(batch)) {
            let seen = atomically(|tx| {
                let mut seen = Vec::new();
                for &(kind, k, x) in chunk {
                    let k = key(k, x);
                    seen.push(match kind % 6 {
                        0 | 1 => set.insert(tx, k)?,
                        2 => set.remove(tx, &k)?,
                        3 => set.contains(tx, &k)?,
                        4 => set.len(tx)? == set.iter(tx).collect::<Stm<Vec<_>>>()?.len(),
                        _ => set.is_empty(tx)?,
                    });
                }
                Ok(seen)
            });
            let expected: Vec<bool> = chunk
                .iter()
                .map(|&(kind, k, x)| {
                    let k = key(k, x);
                    match kind % 6 {
                        0 | 1 => model.insert(k),
                        2 => model.remove(&k),
                        3 => model.contains(&k),
                        4 => true,
                        _ => model.is_empty(),
                    }
                })
                .collect();
            if seen != expected {
                return TestResult::error(format!("{chunk:?}: got {seen:?}, model {expected:?}"));
            }
            for &(_, k, x) in chunk {
                let k = key(k, x);
                if set.contains_atomic(&k) != model.contains(&k) {
                    return TestResult::error(format!("contains_atomic({k}) disagrees"));
                }
            }
        }
        let mut keys: Vec<u16> =
            atomically(|tx| set.iter(tx).map(|k| k.copied()).collect::<Stm<_>>());
        keys.sort_unstable();
        let mut want: Vec<u16> = model.into_iter().collect();
        want.sort_unstable();
        TestResult::from_bool(keys == want)
    }
    check(150, 300, prop as fn(Vec<Op>, u8, bool) -> TestResult);
}

/// Queue operations: `(kind, operand)`; the result of each, as an `Option<i32>`-ish value.
fn queue_model(q: &mut VecDeque<i32>, cap: usize, kind: u8, x: i32) -> Option<i64> {
    match kind % 6 {
        0..=2 if q.len() < cap => {
            q.push_back(x);
            Some(0)
        }
        0..=2 => None,
        3 => q.pop_front().map(i64::from),
        4 => q.front().map(|&v| i64::from(v)),
        _ => Some(q.len() as i64),
    }
}

#[test]
fn tqueue_matches_vecdeque() {
    fn prop(ops: Vec<(u8, i32)>, batch: u8) -> TestResult {
        let q = TQueue::new();
        let mut model = VecDeque::new();
        for chunk in ops.chunks(batch_len(batch)) {
            let seen = atomically(|tx| {
                let mut seen = Vec::new();
                for &(kind, x) in chunk {
                    seen.push(match kind % 6 {
                        0..=2 => q.push(tx, x).map(|()| Some(0))?,
                        3 => q.try_pop(tx)?.map(i64::from),
                        4 => q.peek(tx)?.map(|&v| i64::from(v)),
                        _ => Some(q.len(tx)? as i64),
                    });
                }
                Ok(seen)
            });
            let expected: Vec<_> =
                chunk.iter().map(|&(k, x)| queue_model(&mut model, usize::MAX, k, x)).collect();
            if seen != expected {
                return TestResult::error(format!("{chunk:?}: got {seen:?}, model {expected:?}"));
            }
            if atomically(|tx| q.is_empty(tx)) != model.is_empty() {
                return TestResult::error("is_empty disagrees");
            }
        }
        let rest: Vec<i32> =
            atomically(|tx| std::iter::from_fn(|| q.try_pop(tx).transpose()).collect());
        TestResult::from_bool(rest.iter().eq(&model))
    }
    check(200, 300, prop as fn(Vec<(u8, i32)>, u8) -> TestResult);
}

#[test]
fn tbqueue_matches_bounded_vecdeque() {
    fn prop(ops: Vec<(u8, i32)>, batch: u8, cap: u8) -> TestResult {
        let cap = 1 + usize::from(cap % 8);
        let q = TBQueue::new(cap);
        let mut model = VecDeque::new();
        for chunk in ops.chunks(batch_len(batch)) {
            let seen = atomically(|tx| {
                let mut seen = Vec::new();
                for &(kind, x) in chunk {
                    seen.push(match kind % 6 {
                        0..=2 => q.try_push(tx, x)?.ok().map(|()| 0),
                        3 => q.try_pop(tx)?.map(i64::from),
                        4 => q.peek(tx)?.map(|&v| i64::from(v)),
                        _ => Some(q.len(tx)? as i64),
                    });
                }
                Ok(seen)
            });
            let expected: Vec<_> =
                chunk.iter().map(|&(k, x)| queue_model(&mut model, cap, k, x)).collect();
            if seen != expected {
                return TestResult::error(format!("{chunk:?}: got {seen:?}, model {expected:?}"));
            }
            let (empty, full) = atomically(|tx| Ok((q.is_empty(tx)?, q.is_full(tx)?)));
            if empty != model.is_empty() || full != (model.len() == cap) {
                return TestResult::error("is_empty or is_full disagrees");
            }
        }
        TestResult::passed()
    }
    check(200, 200, prop as fn(Vec<(u8, i32)>, u8, u8) -> TestResult);
}

/// `TChan` against one `VecDeque` per subscriber: `(kind, subscriber, item)`.
#[test]
fn tchan_matches_a_deque_per_subscriber() {
    fn prop(ops: Vec<(u8, u8, i32)>) -> TestResult {
        let chan = TChan::new();
        let mut subs = Vec::new();
        let mut model: Vec<VecDeque<i32>> = Vec::new();
        for &(kind, s, x) in &ops {
            let s = usize::from(s);
            match kind % 7 {
                0..=2 => {
                    atomically(|tx| chan.write(tx, x));
                    model.iter_mut().for_each(|q| q.push_back(x));
                }
                3 => {
                    subs.push(atomically(|tx| chan.subscribe(tx)));
                    model.push(VecDeque::new());
                }
                _ if subs.is_empty() => {}
                4 => {
                    let i = s % subs.len();
                    subs.push(atomically(|tx| subs[i].clone_cursor(tx)));
                    model.push(model[i].clone());
                }
                5 if x % 8 == 0 => {
                    let i = s % subs.len();
                    drop(subs.swap_remove(i));
                    model.swap_remove(i);
                }
                _ => {
                    let i = s % subs.len();
                    let (peeked, got) =
                        atomically(|tx| Ok((subs[i].peek(tx)?.copied(), subs[i].try_read(tx)?)));
                    let want = model[i].pop_front();
                    if peeked != want || got != want {
                        return TestResult::error(format!(
                            "subscriber {i}: {got:?}, want {want:?}"
                        ));
                    }
                }
            }
        }
        for (sub, q) in subs.iter().zip(&model) {
            let rest: Vec<i32> =
                atomically(|tx| std::iter::from_fn(|| sub.try_read(tx).transpose()).collect());
            if !rest.iter().eq(q) || !atomically(|tx| sub.is_empty(tx)) {
                return TestResult::failed();
            }
        }
        TestResult::passed()
    }
    check(200, 300, prop as fn(Vec<(u8, u8, i32)>) -> TestResult);
}

#[test]
fn tmvar_matches_option() {
    fn prop(ops: Vec<(u8, i32)>) -> TestResult {
        let v = TMVar::new_empty();
        let mut model: Option<i32> = None;
        for &(kind, x) in &ops {
            let (got, want) = match kind % 5 {
                0 => (
                    atomically(|tx| v.try_put(tx, x)).err(),
                    if model.is_some() { Some(x) } else { model.replace(x) },
                ),
                1 => (atomically(|tx| v.try_take(tx)), model.take()),
                2 => (atomically(|tx| Ok(v.try_read(tx)?.copied())), model),
                3 if model.is_some() => (atomically(|tx| v.swap(tx, x)).into(), model.replace(x)),
                3 => (None, None),
                _ => (atomically(|tx| v.is_empty(tx)).then_some(0), model.is_none().then_some(0)),
            };
            if got != want {
                return TestResult::error(format!("op {kind}: got {got:?}, want {want:?}"));
            }
        }
        TestResult::passed()
    }
    check(200, 100, prop as fn(Vec<(u8, i32)>) -> TestResult);
}

#[test]
fn tarray_matches_vec() {
    fn prop(init: Vec<i32>, ops: Vec<(u8, u8, i32)>) -> TestResult {
        if init.is_empty() {
            return TestResult::discard();
        }
        let a: TArray<i32> = init.iter().copied().collect();
        let mut model = init;
        for &(kind, i, x) in &ops {
            let i = usize::from(i) % model.len();
            let (got, want) = match kind % 4 {
                0 => {
                    atomically(|tx| a.write(tx, i, x));
                    model[i] = x;
                    (atomically(|tx| a.get(tx, i)), model[i])
                }
                1 => (atomically(|tx| a.replace(tx, i, x)), std::mem::replace(&mut model[i], x)),
                2 => {
                    atomically(|tx| a.modify(tx, i, |v| v.wrapping_mul(x)));
                    model[i] = model[i].wrapping_mul(x);
                    (atomically(|tx| a.get(tx, i)), model[i])
                }
                _ => (atomically(|tx| Ok(*a.read(tx, i)?)), model[i]),
            };
            if got != want {
                return TestResult::failed();
            }
        }
        let all: Vec<i32> = atomically(|tx| (0..a.len()).map(|i| a.get(tx, i)).collect());
        TestResult::from_bool(all == model && a.len() == model.len())
    }
    check(200, 100, prop as fn(Vec<i32>, Vec<(u8, u8, i32)>) -> TestResult);
}

#[test]
fn tcounter_and_tsem_match_integers() {
    fn prop(ops: Vec<(u8, i16)>, permits: u8) -> TestResult {
        let c = TCounter::new();
        let s = TSem::new(usize::from(permits % 4));
        let (mut total, mut free) = (0_i64, usize::from(permits % 4));
        for &(kind, x) in &ops {
            match kind % 5 {
                0 | 1 => {
                    atomically(|tx| c.add(tx, i64::from(x)));
                    total += i64::from(x);
                }
                2 => {
                    atomically(|tx| c.set(tx, i64::from(x)));
                    total = i64::from(x);
                }
                3 => {
                    let took = atomically(|tx| s.try_wait(tx));
                    if took != (free > 0) {
                        return TestResult::error("try_wait disagrees");
                    }
                    free -= usize::from(took);
                }
                _ => {
                    atomically(|tx| s.signal(tx));
                    free += 1;
                }
            }
            let (got_total, got_free) = atomically(|tx| Ok((c.get(tx)?, s.available(tx)?)));
            if got_total != total || got_free != free {
                return TestResult::failed();
            }
        }
        TestResult::passed()
    }
    check(200, 100, prop as fn(Vec<(u8, i16)>, u8) -> TestResult);
}
