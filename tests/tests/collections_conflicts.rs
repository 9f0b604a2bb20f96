//! Conflict freedom of the transactional collections, checked with the STM's statistics.
//!
//! Each test interleaves two transactions by hand: thread A runs the first part of its
//! body and then, on its first attempt only, waits inside the body while thread B commits
//! a whole transaction; then A finishes and commits. If B wrote anything A had read (or
//! writes), A's commit fails validation and A runs again: its `stats::thread_snapshot`
//! delta shows an abort. Operations that should not conflict must show none on either
//! thread; a control case on the same data must show one, which proves the harness sees
//! conflicts when there are some.
//!
//! The tests of this binary take one lock each, so that they run one at a time: striped
//! counters give threads stripes in the order they first use one, and the two threads of a
//! test must get consecutive (hence different) stripes.

use std::hash::{BuildHasher, Hasher};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use concord_stm::collections::{TBQueue, TChan, TCounter, TMap, TQueue};
use concord_stm::stats::{self, Stats};
use concord_stm::{atomically, Stm, TVar, Transaction};

/// A bound on every wait for the other thread: a hang detector, not a speed limit.
const HANG: Duration = Duration::from_secs(30);

/// Serializes the tests of this binary (see the module doc).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// What the two threads' counters did during the interleaving.
#[derive(Debug)]
struct Deltas {
    a: Stats,
    b: Stats,
}

/// Runs A = `a_first` then `a_then` in one transaction, with B = `b` committed in between,
/// on A's first attempt (see the module doc).
fn interleave(
    a_first: impl Fn(&mut Transaction<'_>) -> Stm<()> + Send + Sync,
    a_then: impl Fn(&mut Transaction<'_>) -> Stm<()> + Send + Sync,
    b: impl Fn(&mut Transaction<'_>) -> Stm<()> + Send + Sync,
) -> Deltas {
    let (a_paused, b_wait) = mpsc::channel::<()>();
    let (b_done, a_wait) = mpsc::channel::<()>();
    let (a_first, a_then, b) = (&a_first, &a_then, &b);
    thread::scope(|s| {
        let a = s.spawn(move || {
            let before = stats::thread_snapshot();
            let mut first_attempt = true;
            atomically(|tx| {
                a_first(tx)?;
                if std::mem::take(&mut first_attempt) {
                    a_paused.send(()).expect("B is waiting");
                    a_wait.recv_timeout(HANG).expect("B commits within the bound");
                }
                a_then(tx)
            });
            stats::thread_snapshot().since(&before)
        });
        let b = s.spawn(move || {
            b_wait.recv_timeout(HANG).expect("A pauses within the bound");
            let before = stats::thread_snapshot();
            atomically(|tx| b(tx));
            let delta = stats::thread_snapshot().since(&before);
            b_done.send(()).expect("A is waiting");
            delta
        });
        Deltas { a: a.join().expect("thread A"), b: b.join().expect("thread B") }
    })
}

fn assert_no_conflict(d: &Deltas) {
    assert_eq!((d.a.aborts(), d.b.aborts()), (0, 0), "{d:?}");
    assert_eq!((d.a.commits, d.b.commits), (1, 1), "{d:?}");
}

fn assert_a_conflicted(d: &Deltas) {
    assert!(d.a.aborts() >= 1, "the control case should conflict: {d:?}");
}

/// Hashes a `u64` key to itself, so that a test knows which slot each key lands in (the
/// root slot of key `k` is `k % 32`, then `k / 32 % 32` one level down, and so on).
#[derive(Clone, Copy, Debug, Default)]
struct Identity;

#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys");
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for Identity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// A map of 2000 keys, two levels deep: each root slot gets 62 or 63 of them, more than a
/// bucket holds (32), so every root slot is split into a node.
fn populated_map() -> TMap<u64, u64, Identity> {
    let map = TMap::with_hasher(Identity);
    atomically(|tx| (100..2100).try_for_each(|k| map.insert(tx, k, k).map(drop)));
    map
}

#[test]
fn tmap_updates_of_keys_in_different_buckets_do_not_conflict() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let map = populated_map();
    // Different root slots (1 and 2).
    let d = interleave(
        |tx| map.get(tx, &1).map(drop),
        |tx| map.insert(tx, 1, 10).map(drop),
        |tx| map.insert(tx, 2, 20).map(drop),
    );
    assert_no_conflict(&d);
    // The same root slot (1), split into a node by the keys above; different buckets in it.
    let d = interleave(
        |tx| map.update(tx, 161, |v| v.map(|v| v + 1)),
        |tx| map.remove(tx, &129).map(drop),
        |tx| map.insert(tx, 33, 33).map(drop),
    );
    assert_no_conflict(&d);
    atomically(|tx| {
        assert_eq!(map.get(tx, &1)?, Some(10));
        assert_eq!(map.get(tx, &2)?, Some(20));
        assert_eq!(map.get(tx, &33)?, Some(33));
        assert_eq!(map.get(tx, &129)?, None);
        assert_eq!(map.get(tx, &161)?, Some(162));
        assert_eq!(map.len(tx)?, 2002);
        Ok(())
    });
}

#[test]
fn tmap_bucket_split_does_not_conflict_with_other_buckets() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let map: TMap<u64, u64, Identity> = TMap::with_hasher(Identity);
    // 32 keys in root slot 2: a full bucket. B's insertion splits it into a node.
    atomically(|tx| (1..=32).try_for_each(|i| map.insert(tx, 2 + 32 * i, i).map(drop)));
    let d = interleave(
        |tx| map.insert(tx, 1, 1).map(drop),
        |tx| map.insert(tx, 3, 3).map(drop),
        |tx| map.insert(tx, 2 + 32 * 33, 33).map(drop),
    );
    assert_no_conflict(&d);
    let n = atomically(|tx| map.len(tx));
    assert_eq!(n, 35);
}

#[test]
fn tmap_control_same_bucket_conflicts() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let map = populated_map();
    let d = interleave(
        |tx| map.get(tx, &500).map(drop),
        |tx| map.insert(tx, 500, 0).map(drop),
        |tx| map.insert(tx, 500, 1).map(drop),
    );
    assert_a_conflicted(&d);
    // `len` reads every stripe, so it conflicts with an insertion on any thread. (A must
    // write too: a read-only transaction commits at its snapshot time, without validation.)
    let d = interleave(
        |tx| map.len(tx).map(drop),
        |tx| map.insert(tx, 3, 3).map(drop),
        |tx| map.insert(tx, 2, 2).map(drop),
    );
    assert_a_conflicted(&d);
}

#[test]
fn tcounter_increments_on_two_threads_do_not_conflict() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let counter = TCounter::new();
    let d = interleave(|tx| counter.add(tx, 1), |tx| counter.add(tx, 1), |tx| counter.add(tx, 5));
    assert_no_conflict(&d);
    assert_eq!(atomically(|tx| counter.get(tx)), 7);
}

#[test]
fn tcounter_control_a_plain_tvar_conflicts() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let v = TVar::new(0_i64);
    let d = interleave(|tx| tx.modify(&v, |x| x + 1), |_| Ok(()), |tx| tx.modify(&v, |x| x + 1));
    assert_a_conflicted(&d);
    assert_eq!(v.read_atomic(), 2);
}

#[test]
fn tbqueue_push_and_pop_do_not_conflict_when_neither_empty_nor_full() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let q = TBQueue::new(4);
    atomically(|tx| (0..2).try_for_each(|i| q.push(tx, i)));
    // A pops, B pushes.
    let d = interleave(|tx| q.pop(tx).map(drop), |_| Ok(()), |tx| q.push(tx, 2));
    assert_no_conflict(&d);
    // A pushes, B pops.
    let d = interleave(|tx| q.push(tx, 3), |_| Ok(()), |tx| q.pop(tx).map(drop));
    assert_no_conflict(&d);
    let rest: Vec<i32> =
        atomically(|tx| std::iter::from_fn(|| q.try_pop(tx).transpose()).collect());
    assert_eq!(rest, [2, 3]);
}

#[test]
fn tbqueue_control_two_pops_conflict() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let q = TBQueue::new(4);
    atomically(|tx| (0..3).try_for_each(|i| q.push(tx, i)));
    let d = interleave(|tx| q.pop(tx).map(drop), |_| Ok(()), |tx| q.pop(tx).map(drop));
    assert_a_conflicted(&d);
}

#[test]
fn tqueue_push_and_pop_do_not_conflict_when_not_empty() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let q = TQueue::new();
    // 31 items: A's pop and B's push straddle a chunk boundary.
    atomically(|tx| (0..31).try_for_each(|i| q.push(tx, i)));
    let d = interleave(|tx| q.pop(tx).map(drop), |_| Ok(()), |tx| q.push(tx, 31));
    assert_no_conflict(&d);
    let d = interleave(|tx| q.push(tx, 32), |_| Ok(()), |tx| q.pop(tx).map(drop));
    assert_no_conflict(&d);
    assert_eq!(atomically(|tx| q.len(tx)), 31);
}

#[test]
fn tchan_subscribers_read_without_conflicting() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let chan = TChan::new();
    let (x, y) = atomically(|tx| Ok((chan.subscribe(tx)?, chan.subscribe(tx)?)));
    atomically(|tx| (0..3).try_for_each(|i| chan.write(tx, i)));
    let d = interleave(|tx| x.read(tx).map(drop), |_| Ok(()), |tx| y.read(tx).map(drop));
    assert_no_conflict(&d);
    // A reader and the writer, with items left to read.
    let d = interleave(|tx| x.read(tx).map(drop), |_| Ok(()), |tx| chan.write(tx, 3));
    assert_no_conflict(&d);
    assert_eq!(atomically(|tx| x.read(tx)), 2);
}
