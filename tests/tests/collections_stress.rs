//! The transactional collections under concurrency, bounded in time: blocking operations
//! wake up, queues deliver every item exactly once and in each producer's order, a `TMap`
//! updated from several threads matches the sequential replay of its committed operations,
//! multi-key map transactions conserve a total seen by consistent iteration, and a `TSem`
//! never admits more holders than it has permits, serving `wait_fair` callers in order.
//!
//! Each test runs a fixed number of operations (fewer in a debug build) or stops at a
//! deadline; threads start on a `Barrier` and randomized ones print their seeds (replay with
//! `CONCORD_SEED`). Anything that could hang is bounded by a generous timeout that fails the
//! test: the bound detects lost wakeups, it does not measure speed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use concord_stm::collections::{TArray, TBQueue, TChan, TMVar, TMap, TQueue, TSem};
use concord_stm::{abort, atomically, atomically_or_err, Stm, Transaction};
use concord_tests::{run_within, scaled, seed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The hang detector.
const HANG: Duration = Duration::from_secs(60);
/// How long a test keeps its threads busy, at most.
const BUSY: Duration = Duration::from_secs(2);

/// Waits (bounded by `HANG`) until `cond` holds, polling: for states another thread reaches
/// by blocking, which no `TVar` can signal to a test.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + HANG;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} did not happen within {HANG:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------
// Blocking and `or_else`

#[test]
fn pop_on_empty_waits_for_a_push() {
    let q = Arc::new(TQueue::new());
    let bq = Arc::new(TBQueue::new(1));
    let mv = Arc::new(TMVar::new_empty());
    let (q2, bq2, mv2) = (q.clone(), bq.clone(), mv.clone());
    let got = run_within(HANG, "pops waiting for pushes", move || {
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let a = atomically(|tx| q2.pop(tx));
                let b = atomically(|tx| bq2.pop(tx));
                let c = atomically(|tx| mv2.take(tx));
                (a, b, c)
            });
            atomically(|tx| q.push(tx, 1));
            atomically(|tx| bq.push(tx, 2));
            atomically(|tx| mv.put(tx, 3));
            waiter.join().expect("waiter")
        })
    });
    assert_eq!(got, (1, 2, 3));
}

#[test]
fn push_on_full_waits_for_a_pop() {
    let q = Arc::new(TBQueue::new(2));
    atomically(|tx| {
        q.push(tx, 1)?;
        q.push(tx, 2)
    });
    let q2 = q.clone();
    let order = run_within(HANG, "a push waiting on a full queue", move || {
        thread::scope(|s| {
            let pusher = s.spawn(|| atomically(|tx| q2.push(tx, 3)));
            // Whether or not the pusher is waiting yet, the queue must not take a third item.
            assert!(atomically(|tx| q2.is_full(tx)));
            let first = atomically(|tx| q2.pop(tx));
            pusher.join().expect("pusher");
            let rest: Vec<i32> = (0..2).map(|_| atomically(|tx| q2.pop(tx))).collect();
            (first, rest)
        })
    });
    assert_eq!(order, (1, vec![2, 3]));
}

/// A consumer takes from whichever of two queues has an item (`or_else`), waiting on both.
#[test]
fn or_else_pops_from_whichever_queue_has_an_item() {
    const N: usize = 200;
    let a = Arc::new(TBQueue::new(4));
    let b = Arc::new(TQueue::new());
    let (a2, b2) = (a.clone(), b.clone());
    let mut got = run_within(HANG, "or_else over two queues", move || {
        thread::scope(|s| {
            let consumer = s.spawn(|| {
                (0..2 * N)
                    .map(|_| atomically(|tx| tx.or_else(|tx| a2.pop(tx), |tx| b2.pop(tx))))
                    .collect::<Vec<usize>>()
            });
            s.spawn(|| (0..N).for_each(|i| atomically(|tx| a2.push(tx, i))));
            s.spawn(|| (N..2 * N).for_each(|i| atomically(|tx| b2.push(tx, i))));
            consumer.join().expect("consumer")
        })
    });
    // Each queue's items come out in order.
    let (from_a, from_b): (Vec<usize>, Vec<usize>) = got.iter().partition(|&&i| i < N);
    assert!(from_a.windows(2).all(|w| w[0] < w[1]) && from_b.windows(2).all(|w| w[0] < w[1]));
    got.sort_unstable();
    assert_eq!(got, (0..2 * N).collect::<Vec<_>>());
    assert!(atomically(|tx| Ok(a.is_empty(tx)? && b.is_empty(tx)?)));
}

// ---------------------------------------------------------------------------------------
// Queues: every item exactly once, in each producer's order

/// The queue operations the delivery test needs.
trait Queue: Send + Sync {
    fn push(&self, tx: &mut Transaction<'_>, item: (usize, usize)) -> Stm<()>;
    fn pop(&self, tx: &mut Transaction<'_>) -> Stm<(usize, usize)>;
}

impl Queue for TQueue<(usize, usize)> {
    fn push(&self, tx: &mut Transaction<'_>, item: (usize, usize)) -> Stm<()> {
        TQueue::push(self, tx, item)
    }
    fn pop(&self, tx: &mut Transaction<'_>) -> Stm<(usize, usize)> {
        TQueue::pop(self, tx)
    }
}

impl Queue for TBQueue<(usize, usize)> {
    fn push(&self, tx: &mut Transaction<'_>, item: (usize, usize)) -> Stm<()> {
        TBQueue::push(self, tx, item)
    }
    fn pop(&self, tx: &mut Transaction<'_>) -> Stm<(usize, usize)> {
        TBQueue::pop(self, tx)
    }
}

/// `producers` threads push `(producer, 0..per_producer)`; `consumers` threads pop an equal
/// share each. Every item must come out exactly once, and each consumer must see each
/// producer's items in increasing order.
fn deliver_exactly_once<Q: Queue + 'static>(q: Q, producers: usize, consumers: usize) {
    let per_producer = scaled(50_000, 10_000) as usize;
    assert_eq!(producers * per_producer % consumers, 0);
    let share = producers * per_producer / consumers;
    let q = Arc::new(q);
    let received = run_within(HANG, "queue delivery", move || {
        let barrier = Barrier::new(producers + consumers);
        thread::scope(|s| {
            for p in 0..producers {
                let (q, barrier) = (&q, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..per_producer {
                        atomically(|tx| q.push(tx, (p, i)));
                    }
                });
            }
            let handles: Vec<_> = (0..consumers)
                .map(|_| {
                    let (q, barrier) = (&q, &barrier);
                    s.spawn(move || {
                        barrier.wait();
                        (0..share).map(|_| atomically(|tx| q.pop(tx))).collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("consumer")).collect::<Vec<_>>()
        })
    });
    let mut seen = vec![vec![false; per_producer]; producers];
    for items in &received {
        let mut last = vec![None; producers];
        for &(p, i) in items {
            assert!(last[p].map_or(true, |l| l < i), "producer {p}: {i} after {:?}", last[p]);
            last[p] = Some(i);
            assert!(!seen[p][i], "item {p}/{i} delivered twice");
            seen[p][i] = true;
        }
    }
    assert!(seen.iter().flatten().all(|&s| s), "an item was lost");
}

#[test]
fn tqueue_delivers_every_item_once_in_order() {
    deliver_exactly_once(TQueue::new(), 2, 2);
}

#[test]
fn tbqueue_delivers_every_item_once_in_order() {
    // A small capacity: producers often find it full, consumers often empty.
    deliver_exactly_once(TBQueue::new(8), 2, 2);
}

#[test]
fn tbqueue_single_consumer_sees_each_producer_in_order() {
    deliver_exactly_once(TBQueue::new(3), 3, 1);
}

/// Every subscriber of a `TChan` receives every item, each producer's in order.
#[test]
fn tchan_broadcasts_every_item_to_every_subscriber() {
    const PRODUCERS: usize = 2;
    let per_producer = scaled(20_000, 5_000) as usize;
    let chan = Arc::new(TChan::new());
    let subs: Vec<_> = (0..2).map(|_| atomically(|tx| chan.subscribe(tx))).collect();
    let received = run_within(HANG, "broadcast", move || {
        thread::scope(|s| {
            for p in 0..PRODUCERS {
                let chan = &chan;
                s.spawn(move || {
                    (0..per_producer).for_each(|i| atomically(|tx| chan.write(tx, (p, i))))
                });
            }
            let handles: Vec<_> = subs
                .iter()
                .map(|sub| {
                    s.spawn(move || {
                        (0..PRODUCERS * per_producer)
                            .map(|_| atomically(|tx| sub.read(tx)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("subscriber")).collect::<Vec<_>>()
        })
    });
    for items in received {
        for p in 0..PRODUCERS {
            let mine: Vec<usize> = items.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
            assert_eq!(mine, (0..per_producer).collect::<Vec<_>>(), "producer {p}");
        }
    }
}

/// A `TMVar` as a one-place channel between two threads: every value once, in order.
#[test]
fn tmvar_hands_over_every_value_in_order() {
    let n = scaled(20_000, 5_000) as usize;
    let v = Arc::new(TMVar::new_empty());
    let got = run_within(HANG, "TMVar hand-over", move || {
        thread::scope(|s| {
            s.spawn(|| (0..n).for_each(|i| atomically(|tx| v.put(tx, i))));
            (0..n).map(|_| atomically(|tx| v.take(tx))).collect::<Vec<_>>()
        })
    });
    assert_eq!(got, (0..n).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------
// TMap: concurrent updates against a sequential replay

#[derive(Clone, Copy, Debug)]
enum MapOp {
    Insert(i64),
    Remove,
    /// Adds to the value (inserts if absent); removes if the operand is a multiple of 7.
    Update(i64),
    Get,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Bool(bool),
    Value(Option<i64>),
}

/// One committed operation: its key, the key's version when it ran, what it did and what
/// it returned.
#[derive(Clone, Copy, Debug)]
struct Record {
    key: usize,
    version: u64,
    op: MapOp,
    outcome: Outcome,
}

/// Applies `op` to the model entry of one key; returns what the map should have returned.
fn replay(entry: &mut Option<i64>, op: MapOp) -> Outcome {
    match op {
        MapOp::Insert(v) => Outcome::Bool(entry.replace(v).is_none()),
        MapOp::Remove => Outcome::Bool(entry.take().is_some()),
        MapOp::Update(d) => {
            let old = *entry;
            *entry = if d % 7 == 0 { None } else { Some(old.map_or(d, |o| o + d)) };
            Outcome::Value(old)
        }
        MapOp::Get => Outcome::Value(*entry),
    }
}

/// Threads run random single-key operations; each transaction also bumps the key's version
/// in a `TArray`, so the committed operations on a key are totally ordered by version.
/// Replaying each key's operations in that order on a plain `Option` must reproduce every
/// returned value and the final contents. (Operations on different keys commute, so this is
/// the sequential replay of the whole history.) Meanwhile a reader checks that `len` always
/// equals the number of entries iterated in the same transaction.
#[test]
fn tmap_matches_sequential_replay() {
    const THREADS: u64 = 3;
    // Enough keys that buckets split while the threads run.
    const KEYS: usize = 600;
    let seed = seed("tmap replay");
    let max_ops = scaled(100_000, 20_000);
    let map = Arc::new(TMap::<usize, i64>::new());
    let versions = Arc::new(TArray::from_fn(KEYS, |_| 0_u64));
    let writers_done = Arc::new(AtomicBool::new(false));
    let (map2, versions2, done2) = (map.clone(), versions.clone(), writers_done.clone());
    let (records, checks) = run_within(HANG, "tmap replay", move || {
        let barrier = Barrier::new(THREADS as usize + 1);
        thread::scope(|s| {
            let reader = s.spawn(|| {
                barrier.wait();
                let mut checks = 0_u64;
                while !done2.load(Ordering::Acquire) || checks == 0 {
                    let (len, counted) = atomically(|tx| {
                        let counted = map2.iter(tx).collect::<Stm<Vec<_>>>()?.len();
                        Ok((map2.len(tx)?, counted))
                    });
                    assert_eq!(len, counted, "len disagrees with the entries in one snapshot");
                    checks += 1;
                }
                checks
            });
            let writers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (map, versions, barrier) = (&map2, &versions2, &barrier);
                    s.spawn(move || {
                        let seed = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                        println!("tmap replay thread {t}: seed {seed}");
                        let mut rng = SmallRng::seed_from_u64(seed);
                        barrier.wait();
                        let deadline = Instant::now() + BUSY;
                        let mut records = Vec::new();
                        while records.len() < max_ops as usize && Instant::now() < deadline {
                            let key = rng.gen_range(0..KEYS);
                            let x = rng.gen_range(-1000..1000);
                            let op = match rng.gen_range(0..4) {
                                0 => MapOp::Insert(x),
                                1 => MapOp::Remove,
                                2 => MapOp::Update(x),
                                _ => MapOp::Get,
                            };
                            records.push(atomically(|tx| {
                                let version = versions.get(tx, key)?;
                                versions.write(tx, key, version + 1)?;
                                let outcome = match op {
                                    MapOp::Insert(v) => Outcome::Bool(map.insert(tx, key, v)?),
                                    MapOp::Remove => Outcome::Bool(map.remove(tx, &key)?),
                                    MapOp::Update(d) => {
                                        let mut old = None;
                                        map.update(tx, key, |v| {
                                            old = v.copied();
                                            if d % 7 == 0 {
                                                None
                                            } else {
                                                Some(v.map_or(d, |o| o + d))
                                            }
                                        })?;
                                        Outcome::Value(old)
                                    }
                                    MapOp::Get => Outcome::Value(map.get(tx, &key)?),
                                };
                                Ok(Record { key, version, op, outcome })
                            }));
                        }
                        records
                    })
                })
                .collect();
            let records: Vec<Record> =
                writers.into_iter().flat_map(|h| h.join().expect("writer")).collect();
            done2.store(true, Ordering::Release);
            (records, reader.join().expect("reader"))
        })
    });
    println!("{} operations replayed, {checks} len checks", records.len());

    let mut by_key: Vec<Vec<Record>> = vec![Vec::new(); KEYS];
    for r in records {
        by_key[r.key].push(r);
    }
    let mut model: HashMap<usize, i64> = HashMap::new();
    for (key, mut ops) in by_key.into_iter().enumerate() {
        ops.sort_by_key(|r| r.version);
        let mut entry = None;
        for (i, r) in ops.iter().enumerate() {
            assert_eq!(r.version, i as u64, "key {key}: versions must be 0, 1, 2, ...");
            assert_eq!(replay(&mut entry, r.op), r.outcome, "key {key}: {r:?}");
        }
        assert_eq!(atomically(|tx| versions.get(tx, key)), ops.len() as u64);
        if let Some(v) = entry {
            model.insert(key, v);
        }
    }
    let mut entries: Vec<(usize, i64)> =
        atomically(|tx| map.iter(tx).map(|e| e.map(|(&k, &v)| (k, v))).collect::<Stm<_>>());
    entries.sort_unstable();
    let mut want: Vec<(usize, i64)> = model.into_iter().collect();
    want.sort_unstable();
    assert_eq!(entries, want);
    assert_eq!(atomically(|tx| map.len(tx)), want.len());
}

/// Transfers between random keys, and moves of a whole entry to another key (a removal and
/// an insertion), from several threads; a reader sums the map by iterating it. Every sum,
/// and the entry count, must stay what they were.
#[test]
fn tmap_transfers_conserve_the_total() {
    const THREADS: u64 = 3;
    const KEYS: u32 = 64;
    const INITIAL: i64 = 100;
    let seed = seed("tmap transfers");
    let max_ops = scaled(100_000, 20_000);
    let map = Arc::new(TMap::<u32, i64>::new());
    atomically(|tx| (0..KEYS).try_for_each(|k| map.insert(tx, k, INITIAL).map(drop)));
    let writers_left = Arc::new(AtomicUsize::new(THREADS as usize));
    let map2 = map.clone();
    run_within(HANG, "tmap transfers", move || {
        let barrier = Barrier::new(THREADS as usize + 1);
        thread::scope(|s| {
            let (map, barrier, left) = (&map2, &barrier, &writers_left);
            s.spawn(move || {
                barrier.wait();
                let mut checks = 0;
                while left.load(Ordering::Acquire) > 0 || checks == 0 {
                    let (sum, n) = atomically(|tx| {
                        map.iter(tx).try_fold((0, 0), |(sum, n), e| Ok((sum + e?.1, n + 1)))
                    });
                    assert_eq!((sum, n), (INITIAL * i64::from(KEYS), KEYS), "torn snapshot");
                    checks += 1;
                }
            });
            for t in 0..THREADS {
                s.spawn(move || {
                    let seed = seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    println!("tmap transfers thread {t}: seed {seed}");
                    let mut rng = SmallRng::seed_from_u64(seed);
                    barrier.wait();
                    let deadline = Instant::now() + BUSY;
                    let mut ops = 0;
                    while ops < max_ops && Instant::now() < deadline {
                        ops += 1;
                        let a = rng.gen_range(0..KEYS);
                        let amount = rng.gen_range(1..50);
                        if rng.gen_range(0..4) == 0 {
                            // Move entry `a` to a key outside 0..KEYS and back, in one
                            // transaction: a removal and two insertions.
                            let spare = KEYS + t as u32;
                            atomically(|tx| {
                                let v = map.get(tx, &a)?.expect("every key is present");
                                assert!(map.remove(tx, &a)?);
                                assert!(map.insert(tx, spare, v)?);
                                assert!(map.remove(tx, &spare)?);
                                map.insert(tx, a, v).map(drop)
                            });
                        } else {
                            let b = (a + rng.gen_range(1..KEYS)) % KEYS;
                            atomically(|tx| {
                                map.update(tx, a, |v| v.map(|v| v - amount))?;
                                map.update(tx, b, |v| v.map(|v| v + amount))
                            });
                        }
                    }
                    left.fetch_sub(1, Ordering::Release);
                });
            }
        });
    });
    let total = atomically(|tx| map.iter(tx).try_fold(0, |sum, e| Ok(sum + e?.1)));
    assert_eq!(total, INITIAL * i64::from(KEYS));
}

/// One thread inserts keys 0, 1, 2, ... into a map that starts small, one transaction each
/// (so its buckets split into nodes as it grows), and another overwrites keys already in;
/// a reader looking keys up outside transactions (`get_atomic`) must see a prefix: once
/// key `k` is there, every smaller key is, with its value.
#[test]
fn tmap_get_atomic_sees_a_prefix_of_ordered_insertions() {
    let keys = scaled(30_000, 5_000) as u32;
    let map = Arc::new(TMap::<u32, u32>::new());
    let inserted = Arc::new(AtomicUsize::new(0));
    let (map2, inserted2) = (map.clone(), inserted.clone());
    let seed = seed("tmap get_atomic prefix");
    run_within(HANG, "tmap get_atomic prefix", move || {
        let (map, inserted) = (&*map2, &*inserted2);
        let barrier = Barrier::new(3);
        thread::scope(|s| {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for k in 0..keys {
                    assert!(atomically(|tx| map.insert(tx, k, k)), "key {k} inserted twice");
                    inserted.store(k as usize + 1, Ordering::Release);
                }
            });
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed);
                barrier.wait();
                while inserted.load(Ordering::Acquire) < keys as usize {
                    let n = inserted.load(Ordering::Acquire);
                    if n > 0 {
                        let k = rng.gen_range(0..n) as u32;
                        assert!(!atomically(|tx| map.insert(tx, k, k)), "key {k} was absent");
                    }
                }
            });
            let mut rng = SmallRng::seed_from_u64(seed ^ 1);
            barrier.wait();
            let mut seen = 0; // keys 0..seen were all found
            let mut lookups = 0_u64;
            while seen < keys {
                // Find the newest key, then look up an older one at random.
                while seen < keys && map.get_atomic(&seen) == Some(seen) {
                    seen += 1;
                }
                if seen > 0 {
                    let k = rng.gen_range(0..seen);
                    assert_eq!(map.get_atomic(&k), Some(k), "key {k} lost (keys 0..{seen} seen)");
                    lookups += 1;
                }
            }
            println!("tmap get_atomic prefix: {lookups} lookups of older keys");
        });
    });
}

/// One thread replaces a map's whole contents in each transaction (every key set to
/// `u64::MAX`, then `clear`, then every key again with the round's number; the buckets split
/// into nodes and `clear` cuts them off), another rewrites single keys with the value they
/// hold. A reader looking keys up outside transactions must always find them, with a round
/// number that never goes down from one lookup to the next, and never `u64::MAX`: a lookup
/// that went down a node being cut off, or saw a write to it after the cut, would break
/// that.
#[test]
fn tmap_get_atomic_is_linearizable_across_clears() {
    const KEYS: u32 = 2_048; // 64 per root slot of a `TMap::new()`: every one splits
    let rounds = scaled(300, 40);
    let map = Arc::new(TMap::<u32, u64>::new());
    atomically(|tx| (0..KEYS).try_for_each(|k| map.insert(tx, k, 0).map(drop)));
    let done = Arc::new(AtomicBool::new(false));
    let (map2, done2) = (map.clone(), done.clone());
    let seed = seed("tmap get_atomic clears");
    run_within(HANG, "tmap get_atomic clears", move || {
        let (map, done) = (&*map2, &*done2);
        let barrier = Barrier::new(3);
        thread::scope(|s| {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for round in 1..=rounds {
                    atomically(|tx| {
                        (0..KEYS).try_for_each(|k| map.insert(tx, k, u64::MAX).map(drop))?;
                        map.clear(tx)?;
                        (0..KEYS).try_for_each(|k| map.insert(tx, k, round).map(drop))
                    });
                }
                done.store(true, Ordering::Release);
            });
            s.spawn(move || {
                let mut rng = SmallRng::seed_from_u64(seed);
                barrier.wait();
                while !done.load(Ordering::Acquire) {
                    let k = rng.gen_range(0..KEYS);
                    atomically(|tx| map.update(tx, k, |v| v.copied()));
                }
            });
            let mut rng = SmallRng::seed_from_u64(seed ^ 1);
            barrier.wait();
            let (mut last, mut lookups) = (0, 0_u64);
            while !done.load(Ordering::Acquire) {
                let k = rng.gen_range(0..KEYS);
                let round = map.get_atomic(&k).unwrap_or_else(|| panic!("key {k} missing"));
                assert_ne!(round, u64::MAX, "key {k}: a value no commit left");
                assert!(round >= last, "key {k} at round {round} after a lookup saw {last}");
                last = round;
                lookups += 1;
            }
            println!("tmap get_atomic clears: {lookups} lookups, last round seen {last}");
        });
    });
    assert_eq!(map.get_atomic(&0), Some(rounds));
}

/// A key written into a node and cut off with it in one transaction is never seen by a
/// lookup outside transactions (see `outside_lookups_see_no_phantom`; `policy.rs` runs it
/// in serial mode).
#[test]
fn tmap_get_atomic_sees_no_phantom_of_a_cut_off_node() {
    let rounds = scaled(20_000, 2_000);
    let lookups = run_within(HANG, "tmap get_atomic phantom", move || {
        concord_tests::outside_lookups_see_no_phantom(rounds)
    });
    println!("tmap get_atomic phantom: {lookups} lookups");
}

// ---------------------------------------------------------------------------------------
// TSem

/// Threads take and return permits of a 2-permit semaphore, half through `wait`, half
/// through `wait_fair`; an atomic counts the holders, which must never exceed 2.
#[test]
fn tsem_never_admits_more_than_its_permits() {
    const PERMITS: usize = 2;
    const THREADS: usize = 4;
    let rounds = scaled(5_000, 2_000);
    let sem = Arc::new(TSem::new(PERMITS));
    let holders = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (sem2, holders2, most2) = (sem.clone(), holders.clone(), most.clone());
    run_within(HANG, "semaphore", move || {
        let barrier = Barrier::new(THREADS);
        thread::scope(|s| {
            for t in 0..THREADS {
                let (sem, holders, most, barrier) = (&sem2, &holders2, &most2, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for _ in 0..rounds {
                        if t % 2 == 0 {
                            atomically(|tx| sem.wait(tx));
                        } else {
                            sem.wait_fair();
                        }
                        let now = holders.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        assert!(now <= PERMITS, "{now} holders of {PERMITS} permits");
                        thread::yield_now();
                        holders.fetch_sub(1, Ordering::SeqCst);
                        atomically(|tx| sem.signal(tx));
                    }
                });
            }
        });
    });
    assert!(most.load(Ordering::SeqCst) <= PERMITS);
    assert_eq!(atomically(|tx| Ok((sem.available(tx)?, sem.queued(tx)?))), (PERMITS, 0));
}

/// `wait_fair` callers are served in ticket order, and a plain `wait` does not overtake
/// them even when a permit is free.
#[test]
fn tsem_wait_fair_serves_in_arrival_order() {
    let sem = Arc::new(TSem::new(0));
    let order = Arc::new(Mutex::new(Vec::new()));
    let (sem2, order2) = (sem.clone(), order.clone());
    run_within(HANG, "fair semaphore", move || {
        thread::scope(|s| {
            for name in ["first", "second"] {
                let (sem, order) = (&sem2, &order2);
                let before = atomically(|tx| sem.queued(tx));
                s.spawn(move || {
                    sem.wait_fair();
                    order.lock().unwrap().push(name);
                });
                // Take the next ticket only once this one is queued.
                eventually("the waiter queues", || atomically(|tx| sem.queued(tx)) == before + 1);
            }
            // A free permit does not let a plain `wait` jump the queue.
            // (The transaction aborts, so the permit is not really returned yet.)
            let took: Result<(), bool> = atomically_or_err(|tx| {
                sem2.signal(tx)?;
                let took = sem2.try_wait(tx)?;
                abort(took)
            });
            assert_eq!(took, Err(false));
            atomically(|tx| sem2.signal(tx));
            eventually("the first waiter is served", || order2.lock().unwrap().len() == 1);
            atomically(|tx| sem2.signal(tx));
        });
    });
    assert_eq!(*order.lock().unwrap(), ["first", "second"]);
}

// ---------------------------------------------------------------------------------------
// Every item is dropped once

/// Live `Tracked` values (made by `collections_drop_every_item_once` only).
static TRACKED_LIVE: AtomicUsize = AtomicUsize::new(0);

/// A value that counts itself alive; a clone is a new value.
#[derive(Debug)]
struct Tracked(u64);

impl Tracked {
    fn new(n: u64) -> Self {
        TRACKED_LIVE.fetch_add(1, Ordering::SeqCst);
        Tracked(n)
    }
}

impl Clone for Tracked {
    fn clone(&self) -> Self {
        Tracked::new(self.0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        // A double drop would drive the count below zero and panic here.
        let before = TRACKED_LIVE.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a Tracked value was dropped twice");
    }
}

/// Items popped, read, overwritten, removed, or left inside collections that are then
/// dropped: once the epoch collector has run, none is alive.
#[test]
fn collections_drop_every_item_once() {
    run_within(HANG, "filling and draining collections", || {
        let q = TQueue::new();
        atomically(|tx| (0..200).try_for_each(|i| q.push(tx, Tracked::new(i))));
        for i in 0..100 {
            assert_eq!(atomically(|tx| q.pop(tx)).0, i);
        }
        // Capacity for the third of the items left in it.
        let bq = TBQueue::new(64);
        for i in 0..100 {
            atomically(|tx| bq.push(tx, Tracked::new(i)));
            if i % 3 != 0 {
                drop(atomically(|tx| bq.pop(tx)));
            }
        }
        let chan = TChan::new();
        let (all, some) = atomically(|tx| Ok((chan.subscribe(tx)?, chan.subscribe(tx)?)));
        atomically(|tx| (0..200).try_for_each(|i| chan.write(tx, Tracked::new(i))));
        for _ in 0..200 {
            drop(atomically(|tx| all.read(tx)));
        }
        drop(atomically(|tx| some.read(tx)));
        let map = TMap::new();
        atomically(|tx| (0..500).try_for_each(|i| map.insert(tx, i, Tracked::new(i)).map(drop)));
        for i in 0..250 {
            atomically(|tx| map.remove(tx, &i).map(drop));
            atomically(|tx| map.insert(tx, i + 250, Tracked::new(i)).map(drop));
        }
        let mv = TMVar::new(Tracked::new(0));
        drop(atomically(|tx| mv.swap(tx, Tracked::new(1))));
    });
    let dummy = Arc::new(TArray::from_fn(1, |_| 0_u8));
    let deadline = Instant::now() + HANG;
    while TRACKED_LIVE.load(Ordering::SeqCst) > 0 {
        let left = TRACKED_LIVE.load(Ordering::SeqCst);
        assert!(Instant::now() < deadline, "{left} items were never dropped: a leak");
        // Drive the collector from a fresh thread: its transactions pin (and may collect),
        // and its exit hands its local garbage over.
        let dummy = dummy.clone();
        thread::spawn(move || {
            for _ in 0..2_000 {
                atomically(|tx| dummy.get(tx, 0));
            }
        })
        .join()
        .expect("collector thread");
    }
}
