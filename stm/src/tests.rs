//! Unit tests of the unsafe core: value and core lifetimes, the logs, commit, rollback,
//! reclamation and waiting. Small enough to run under Miri (`ci/miri.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{abort, atomically, atomically_or_err, retry, Staged, TVar, Transaction};

/// Counts drops of values that carry it, to prove every value is dropped exactly once.
#[derive(Debug)]
struct Counted {
    value: u64,
    drops: Arc<AtomicUsize>,
}

impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted { value: self.value, drops: self.drops.clone() }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted(value: u64, drops: &Arc<AtomicUsize>) -> Counted {
    Counted { value, drops: drops.clone() }
}

/// Flushes and collects until `done` holds: epoch reclamation is deferred, not lost. Other
/// tests running in parallel may hold the epoch back for a while, so this waits up to a
/// generous bound (a correctness bound, not a timing assertion).
fn collect_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if done() {
            return;
        }
        crate::collect_garbage();
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
    assert!(done(), "values were not reclaimed");
}

#[test]
fn every_value_is_dropped_exactly_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let made = AtomicUsize::new(1);
    {
        let v = TVar::new(counted(0, &drops));
        let w = v.clone();
        for i in 1..=40 {
            atomically(|tx| {
                made.fetch_add(1, Ordering::SeqCst);
                tx.write(&v, counted(i, &drops))
            });
        }
        assert_eq!(w.with_atomic(|c| c.value), 40);
        drop(v);
        assert_eq!(w.with_atomic(|c| c.value), 40, "a clone keeps the TVar alive");
    }
    let made = made.load(Ordering::SeqCst);
    collect_until(|| drops.load(Ordering::SeqCst) == made);
}

#[test]
fn a_slice_of_tvars_holds_and_drops_its_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    {
        let vars = TVar::new_slice(5, |i| counted(i as u64, &drops));
        atomically(|tx| tx.write(&vars[2], counted(20, &drops)));
        let values: Vec<u64> = vars.iter().map(|v| v.with_atomic(|c| c.value)).collect();
        assert_eq!(values, [0, 1, 20, 3, 4]);
        let ints = TVar::new_slice(3, |i| i * 7);
        assert_eq!(atomically(|tx| tx.get(&ints[2])), 14, "inline values too");
    }
    collect_until(|| drops.load(Ordering::SeqCst) == 6);
}

/// Forces a conflict in a transaction's first attempt, then has its body ignore the error and
/// write `c` with `write`: the poisoned attempt must refuse the value and drop it at once, and
/// the second attempt's value is the one committed.
fn a_refused_write_drops_its_value_once(
    write: impl Fn(&mut Transaction<'_>, &TVar<Counted>, Counted) -> crate::Stm<()>,
) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (a, b) = (TVar::new(0_u64), TVar::new(0_u64));
    let c = TVar::new(counted(0, &drops));
    let interfered = std::sync::atomic::AtomicBool::new(false);
    let attempts = AtomicUsize::new(0);
    atomically(|tx| {
        attempts.fetch_add(1, Ordering::SeqCst);
        tx.get(&a)?;
        if !interfered.swap(true, Ordering::SeqCst) {
            // Another thread changes `a` (read) and `b` (not yet): reading `b` must extend
            // the snapshot, which fails, and poisons the attempt.
            std::thread::scope(|s| {
                s.spawn(|| atomically(|tx| tx.write(&a, 1).and_then(|()| tx.write(&b, 1))));
            });
            assert!(tx.get(&b).is_err(), "the read of b conflicts");
            // The body ignores the error and writes: the value is refused and dropped.
            assert!(
                write(tx, &c, counted(1, &drops)).is_err(),
                "a poisoned attempt refuses writes"
            );
            assert_eq!(drops.load(Ordering::SeqCst), 1, "the refused value is dropped at once");
            return tx.get(&b).map(drop);
        }
        write(tx, &c, counted(2, &drops))
    });
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(c.with_atomic(|v| v.value), 2);
    drop(c);
    collect_until(|| drops.load(Ordering::SeqCst) == 3);
}

#[test]
fn a_write_after_a_conflict_drops_its_value_once() {
    a_refused_write_drops_its_value_once(|tx, var, value| tx.write(var, value));
}

#[test]
fn a_staged_value_is_published_in_its_box_or_dropped_once() {
    let drops = Arc::new(AtomicUsize::new(0));
    let v = TVar::new(counted(0, &drops));
    // Written: the box is published as is; the replaced value is collected.
    let mut staged = Staged::new(counted(1, &drops));
    staged.value += 1;
    let staged_box: *const Counted = &*staged;
    atomically(|_tx| {
        let unwritten = Staged::new(counted(5, &drops));
        drop(unwritten); // the value dropped, the box recycled
        Ok(())
    });
    assert_eq!(drops.load(Ordering::SeqCst), 1, "an unwritten staged value is dropped");
    let mut staged = Some(staged);
    atomically(|tx| match staged.take() {
        Some(s) => tx.write_staged(&v, s),
        None => unreachable!("one attempt"),
    });
    assert_eq!(v.with_atomic(|c| (c.value, std::ptr::from_ref(c))), (2, staged_box));
    // Moved back out, the value is not dropped with its box.
    let out = Staged::new(counted(7, &drops)).into_inner();
    assert_eq!((out.value, drops.load(Ordering::SeqCst)), (7, 1));
    drop(out);
    // A value too big to recycle, and an inline one, go the other ways.
    let big = TVar::new([0_u8; 4096]);
    atomically(|tx| tx.write_staged(&big, Staged::new([9_u8; 4096])));
    assert_eq!(big.read_atomic()[4095], 9);
    let small = TVar::new(1_u64);
    atomically(|tx| tx.write_staged(&small, Staged::new(3)));
    assert_eq!(small.read_atomic(), 3);
    drop(v);
    collect_until(|| drops.load(Ordering::SeqCst) == 4);
}

#[test]
fn a_staged_value_whose_maker_panics_gives_its_box_back() {
    let made = std::panic::catch_unwind(|| Staged::<[u64; 40]>::new_with(|| panic!("no value")));
    assert!(made.is_err());
    // The pool still hands out sound boxes (Miri checks the block was not lost or doubled).
    let v = TVar::new([0_u64; 40]);
    atomically(|tx| tx.write_staged(&v, Staged::new_with(|| [1; 40])));
    assert_eq!(v.read_atomic()[39], 1);
}

#[test]
fn a_staged_write_after_a_conflict_drops_its_value_once() {
    a_refused_write_drops_its_value_once(|tx, var, value| tx.write_staged(var, Staged::new(value)));
}

#[test]
fn read_your_writes_and_overwrites() {
    let v = TVar::new(String::from("a"));
    let out = atomically(|tx| {
        tx.write(&v, String::from("b"))?;
        let first = tx.get(&v)?;
        tx.write(&v, String::from("c"))?; // overwrite at depth 0 frees "b" at once
        tx.modify(&v, |s| format!("{s}d"))?;
        Ok((first, tx.get(&v)?))
    });
    assert_eq!(out, (String::from("b"), String::from("cd")));
    assert_eq!(v.read_atomic(), "cd");
}

#[test]
fn large_write_sets_use_the_index() {
    let vars: Vec<TVar<usize>> = (0..40).map(TVar::new).collect();
    atomically(|tx| {
        for (i, v) in vars.iter().enumerate() {
            tx.write(v, i * 10)?;
        }
        // Rewrite and read back through the hash index (more than 16 entries).
        for (i, v) in vars.iter().enumerate().rev() {
            tx.modify(v, |x| x + 1)?;
            assert_eq!(*tx.read(v)?, i * 10 + 1);
        }
        Ok(())
    });
    for (i, v) in vars.iter().enumerate() {
        assert_eq!(v.read_atomic(), i * 10 + 1);
    }
}

#[test]
fn or_else_rolls_back_the_first_branch_and_keeps_references_valid() {
    let drops = Arc::new(AtomicUsize::new(0));
    let a = TVar::new(counted(1, &drops));
    let b = TVar::new(counted(2, &drops));
    let got = atomically(|tx| {
        tx.write(&a, counted(10, &drops))?;
        let before = tx.read(&a)?.value;
        let r = tx.or_else(
            |tx| {
                tx.write(&a, counted(20, &drops))?; // supersedes 10 inside the branch
                tx.write(&b, counted(30, &drops))?;
                retry()
            },
            |tx| Ok(tx.read(&a)?.value + tx.read(&b)?.value),
        )?;
        Ok((before, r))
    });
    assert_eq!(got, (10, 12), "the second branch sees the state before the first");
    assert_eq!(a.with_atomic(|c| c.value), 10);
    assert_eq!(b.with_atomic(|c| c.value), 2);
}

#[test]
fn nested_transactions_join_and_roll_back_alone() {
    let v = TVar::new(1_u64);
    let w = TVar::new(1_u64);
    let r = atomically(|tx| {
        tx.write(&v, 2)?;
        let outer_ref = tx.read(&v)?;
        // A nested transaction that aborts undoes only its own writes.
        let nested: Result<(), &str> = atomically_or_err(|tx| {
            tx.write(&v, 3)?;
            tx.write(&w, 3)?;
            abort("no")
        });
        assert_eq!(nested, Err("no"));
        // A nested transaction that commits joins the outer one.
        atomically(|tx| tx.modify(&w, |x| x + 10));
        Ok((*outer_ref, tx.get(&v)?, tx.get(&w)?))
    });
    assert_eq!(r, (2, 2, 11));
    assert_eq!((v.read_atomic(), w.read_atomic()), (2, 11));
}

#[test]
fn a_panic_discards_the_attempt() {
    let v = TVar::new(vec![1, 2, 3]);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        atomically(|tx| {
            tx.write(&v, vec![9])?;
            let _seen = tx.read(&v)?;
            panic!("boom");
            #[allow(unreachable_code)]
            Ok(())
        })
    }));
    assert!(r.is_err());
    assert_eq!(v.read_atomic(), vec![1, 2, 3]);
    // The thread's context is usable again.
    atomically(|tx| tx.write(&v, vec![4]));
    assert_eq!(v.read_atomic(), vec![4]);
}

#[test]
fn retry_wakes_on_commit_across_threads() {
    let slot = Arc::new(TVar::new(None::<Box<u64>>));
    let items = if cfg!(miri) { 3 } else { 200 };
    let consumer = {
        let slot = slot.clone();
        std::thread::spawn(move || {
            let mut sum = 0;
            for _ in 0..items {
                sum += atomically(|tx| match tx.read(&slot)? {
                    Some(b) => {
                        let x = **b;
                        tx.write(&slot, None)?;
                        Ok(x)
                    }
                    None => retry(),
                });
            }
            sum
        })
    };
    for i in 1..=items {
        atomically(|tx| match tx.read(&slot)? {
            Some(_) => retry(),
            None => tx.write(&slot, Some(Box::new(i))),
        });
    }
    assert_eq!(consumer.join().unwrap(), items * (items + 1) / 2);
}

#[test]
fn a_dropped_tvar_in_a_read_set_is_not_freed_early() {
    // The only handle is dropped inside the body, after the read: the core must survive until
    // the attempt ends (INV-RECLAIM).
    let drops = Arc::new(AtomicUsize::new(0));
    let holder = std::sync::Mutex::new(Some(TVar::new(counted(5, &drops))));
    let seen = atomically(|tx| {
        let v = holder.lock().unwrap().clone();
        let Some(v) = v else { return Ok(0) };
        let x = tx.read(&v)?.value;
        drop(v);
        holder.lock().unwrap().take();
        Ok(x)
    });
    assert_eq!(seen, 5);
    collect_until(|| drops.load(Ordering::SeqCst) >= 1);
}

#[test]
fn exited_threads_still_count_and_leave_the_live_list() {
    let v = Arc::new(TVar::new(0_u64));
    let before = crate::stats::snapshot();
    let live_before = crate::stats::live_threads();
    for _ in 0..4 {
        let v = v.clone();
        std::thread::spawn(move || atomically(|tx| tx.modify(&v, |x| x + 1))).join().unwrap();
    }
    let after = crate::stats::snapshot().since(&before);
    assert!(after.commits >= 4, "commits of exited threads are kept: {after}");
    // Other tests run threads concurrently, so only check that ours did not pile up.
    assert!(crate::stats::live_threads() < live_before + 4);
}

#[test]
fn a_rolled_back_value_outlives_references_lent_by_an_outer_handle() {
    // Found by an audit: the outer handle, shared into a nested transaction, lends a
    // reference into a value the nested transaction wrote; the nested abort must not free
    // it before the attempt ends (INV-PENDING).
    let v = TVar::new(String::from("start"));
    let seen = atomically(|tx| {
        let outer: &crate::Transaction<'_> = &*tx;
        let mut lent: Option<&String> = None;
        let r: Result<(), ()> = atomically_or_err(|tx2| {
            tx2.write(&v, String::from("pending"))?;
            lent = Some(outer.read(&v)?);
            abort(())
        });
        assert_eq!(r, Err(()));
        Ok(lent.expect("read in the nested transaction").clone())
    });
    assert_eq!(seen, "pending");
    assert_eq!(v.read_atomic(), "start");
}

/// A value whose destructor runs a transaction of its own (as a handle that releases a
/// slot on drop would).
struct Releases {
    slots: Arc<TVar<u64>>,
}

impl Drop for Releases {
    fn drop(&mut self) {
        atomically(|tx| tx.modify(&self.slots, |n| n + 1));
    }
}

#[test]
fn destructors_may_run_transactions() {
    // Values are dropped when a commit replaces them (after a grace period), when an
    // attempt is rolled back or discarded, and when a write overwrites a pending value:
    // each may start a transaction on this thread (INV-LOGS).
    let slots = Arc::new(TVar::new(0_u64));
    let made = AtomicUsize::new(1);
    let v = TVar::new(Releases { slots: slots.clone() });
    let rounds = if cfg!(miri) { 20 } else { 500 };
    for i in 0..rounds {
        atomically(|tx| {
            made.fetch_add(2, Ordering::SeqCst);
            tx.write(&v, Releases { slots: slots.clone() })?;
            tx.write(&v, Releases { slots: slots.clone() })?; // overwrites a pending value
            if i % 3 == 0 {
                let r: Result<(), ()> = atomically_or_err(|tx| {
                    made.fetch_add(1, Ordering::SeqCst);
                    tx.write(&v, Releases { slots: slots.clone() })?;
                    abort(())
                });
                assert!(r.is_err());
            }
            Ok(())
        });
    }
    drop(v);
    let made = made.load(Ordering::SeqCst) as u64;
    collect_until(|| slots.read_atomic() == made);
}

#[test]
fn inline_values_lend_copies_that_stay_valid_for_the_attempt() {
    // `read` of an inline TVar lends a copy (INV-LENT): it must survive later reads (which
    // fill more slots, past a chunk), a nested transaction's rolled-back write, and a commit
    // by another thread, and show the value of the snapshot it was read in.
    let x = Arc::new(TVar::new(1_u64));
    let many: Vec<TVar<i32>> = (0..100).map(TVar::new).collect();
    let flag = TVar::new(false);
    let (first, sum, nested_saw) = atomically(|tx| {
        let first: &u64 = tx.read(&x)?;
        let mut sum = 0;
        for v in &many {
            sum += *tx.read(v)?;
        }
        let outer: &crate::Transaction<'_> = &*tx;
        let mut nested_saw = None;
        let r: Result<(), ()> = atomically_or_err(|tx2| {
            tx2.write(&flag, true)?;
            nested_saw = Some(*outer.read(&flag)?);
            abort(())
        });
        assert_eq!(r, Err(()));
        let x2 = Arc::clone(&x);
        std::thread::spawn(move || atomically(|tx| tx.write(&x2, 99)))
            .join()
            .expect("writer thread");
        Ok((*first, sum, nested_saw))
    });
    // The other thread committed 99 while the copy was lent: the copy still shows the
    // snapshot's value, and the read-only attempt commits at its snapshot.
    assert_eq!(first, 1);
    assert_eq!(x.read_atomic(), 99);
    assert_eq!(sum, (0..100).sum::<i32>());
    assert_eq!(nested_saw, Some(true), "read-your-writes through the lent copy");
    assert!(!flag.read_atomic(), "the nested write was rolled back");
}

#[test]
fn inline_and_boxed_values_mix_in_one_transaction() {
    let drops = Arc::new(AtomicUsize::new(0));
    let n = TVar::new(0_u8);
    let c = TVar::new('a');
    let f = TVar::new(0.5_f64);
    let boxed = TVar::new(counted(1, &drops));
    atomically(|tx| {
        tx.modify(&n, |n| n.wrapping_add(255))?;
        tx.write(&c, 'é')?;
        tx.write(&c, 'z')?; // overwrite at depth 0
        tx.or_else(
            |tx| {
                tx.write(&f, 2.0)?; // rolled back
                tx.write(&c, '!')?; // supersedes 'z' inside the branch, rolled back
                retry()
            },
            |tx| tx.modify(&f, |f| f * 3.0),
        )?;
        let v = tx.read(&boxed)?.value + u64::from(*tx.read(&n)?);
        tx.write(&boxed, counted(v, &drops))?;
        assert_eq!(tx.get(&c)?, 'z');
        Ok(())
    });
    assert_eq!(n.read_atomic(), 255);
    assert_eq!(c.read_atomic(), 'z');
    assert_eq!(f.read_atomic(), 1.5);
    assert_eq!(boxed.with_atomic(|c| c.value), 256);
    assert_eq!(c.with_atomic(|c| c.len_utf8()), 1);
}

#[test]
#[cfg(target_pointer_width = "64")] // a `u64` is boxed where a word is 32 bits
fn small_plain_values_live_in_the_value_word() {
    // INV-INLINE: the word holds the bits, before and after a commit; a newtype is boxed.
    let word = |v: &TVar<u64>| v.core().value.load(Ordering::Relaxed) as usize;
    let v = TVar::new(7_u64);
    assert_eq!(word(&v), 7);
    atomically(|tx| tx.write(&v, 42));
    assert_eq!(word(&v), 42);
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Meters(u64);
    let m = TVar::new(Meters(42));
    atomically(|tx| tx.write(&m, Meters(43)));
    assert_ne!(m.core().value.load(Ordering::Relaxed) as usize, 43, "a newtype is boxed");
    assert_eq!(m.read_atomic(), Meters(43));
}

/// A value whose destructor runs a transaction holding a nested one, then aborts it: the
/// nested write must be undone with it (closed nesting), wherever the destructor runs.
struct NestsOnDrop {
    x: Arc<TVar<u64>>,
    /// Drops that saw the nested write undone, and drops that saw it committed.
    undone: Arc<AtomicUsize>,
    leaked: Arc<AtomicUsize>,
}

impl Drop for NestsOnDrop {
    fn drop(&mut self) {
        let before = self.x.read_atomic();
        let r: Result<(), ()> = atomically_or_err(|_| {
            atomically(|tx2| tx2.modify(&self.x, |n| n + 1));
            abort(())
        });
        // No panics here: this may run in a thread-local destructor, where one aborts.
        let undone = r.is_err() && self.x.read_atomic() == before;
        let counter = if undone { &self.undone } else { &self.leaked };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_destructor_run_after_an_attempt_nests_its_transactions() {
    // The rolled-back value is dropped after the attempt (INV-PENDING), while the thread's
    // context is still busy: its transaction runs on a temporary context, and the nested
    // `atomically` in it must join that transaction, not commit on a context of its own.
    let x = Arc::new(TVar::new(0_u64));
    let (undone, leaked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let v = TVar::new(None::<NestsOnDrop>);
    atomically(|_| {
        let r: Result<(), ()> = atomically_or_err(|tx| {
            let value =
                NestsOnDrop { x: x.clone(), undone: undone.clone(), leaked: leaked.clone() };
            tx.write(&v, Some(value))?;
            abort(())
        });
        assert!(r.is_err());
        Ok(())
    });
    assert_eq!(leaked.load(Ordering::SeqCst), 0, "a nested transaction committed on its own");
    assert!(undone.load(Ordering::SeqCst) >= 1);
    assert_eq!(x.read_atomic(), 0);
}

#[test]
fn a_destructor_run_after_an_attempt_may_read_outside_transactions() {
    // The rolled-back value is dropped after the attempt, while the thread's context is busy
    // but outside the body: not inside a transaction, so `with_atomic` reads (and pins) there.
    struct ReadsOnDrop(Arc<TVar<String>>, Arc<std::sync::Mutex<Option<String>>>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            *self.1.lock().unwrap() = Some(self.0.with_atomic(|s| s.clone()));
        }
    }
    let name = Arc::new(TVar::new(String::from("kept")));
    let seen = Arc::new(std::sync::Mutex::new(None));
    let v = TVar::new(None::<ReadsOnDrop>);
    let r: Result<(), ()> = atomically_or_err(|tx| {
        tx.write(&name, String::from("rolled back"))?;
        tx.write(&v, Some(ReadsOnDrop(name.clone(), seen.clone())))?;
        abort(())
    });
    assert!(r.is_err());
    assert_eq!(seen.lock().unwrap().as_deref(), Some("kept"));
}

#[test]
fn a_destructor_run_at_thread_exit_nests_its_transactions() {
    // Thread-local destructors run in reverse order of registration: touching `PROBE` before
    // the thread's first transaction makes it drop after the transaction context, when
    // `atomically` falls back to a temporary context.
    struct Probe(Option<(NestsOnDrop, Arc<AtomicUsize>)>);
    impl Drop for Probe {
        fn drop(&mut self) {
            if let Some((value, context_gone)) = self.0.take() {
                if crate::tx::context_is_gone() {
                    context_gone.fetch_add(1, Ordering::SeqCst);
                }
                drop(value);
            }
        }
    }
    std::thread_local! {
        static PROBE: std::cell::RefCell<Probe> = const { std::cell::RefCell::new(Probe(None)) };
    }
    let x = Arc::new(TVar::new(0_u64));
    let (undone, leaked) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let context_gone = Arc::new(AtomicUsize::new(0));
    let value = NestsOnDrop { x: x.clone(), undone: undone.clone(), leaked: leaked.clone() };
    let gone = context_gone.clone();
    std::thread::spawn(move || {
        PROBE.with(|p| p.borrow_mut().0 = Some((value, gone)));
        atomically(|tx| tx.get(&*x)); // registers the context's destructor after the probe's
    })
    .join()
    .expect("thread");
    assert_eq!(context_gone.load(Ordering::SeqCst), 1, "the probe outlived the context");
    assert_eq!(leaked.load(Ordering::SeqCst), 0, "a nested transaction committed on its own");
    assert_eq!(undone.load(Ordering::SeqCst), 1);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a property of the protocol, not of unsafe code; other tests move the clock"
)]
fn transactions_that_read_one_tvar_leave_the_clock_alone() {
    // An attempt's first read takes the snapshot to a newer version without advancing the
    // clock (INV-OPACITY), so a hot counter's increments, which read one TVar (twice, with
    // `get` then `modify`), never write it: its version runs ahead of the clock through the
    // write-version floor. Other tests may advance the clock meanwhile, but not by this many.
    let n: u64 = 100_000;
    let v = TVar::new(0_u64);
    let before = crate::clock::CLOCK.now();
    for _ in 0..n {
        atomically(|tx| {
            if tx.get(&v)? < u64::MAX {
                tx.modify(&v, |x| x + 1)?;
            }
            Ok(())
        });
    }
    assert_eq!(v.read_atomic(), n);
    assert!(v.version() >= n);
    let advanced = crate::clock::CLOCK.now() - before;
    assert!(advanced < n / 2, "the clock moved by {advanced} over {n} single-TVar increments");
}

/// Hashes a `u32` key `k` to `k << 5`: every key falls in root slot 0 of a `TMap::new()`
/// (32 root slots) and the keys spread one level down, so 33 keys split that slot.
#[derive(Clone, Copy, Default)]
struct OneRootSlot(u64);

impl std::hash::Hasher for OneRootSlot {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u32 keys are hashed")
    }
    fn write_u32(&mut self, k: u32) {
        self.0 = u64::from(k) << 5;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Lookups outside transactions (`TMap::with_atomic`) read values, through nodes, while
/// another thread rewrites every entry, splits the slot holding them and cuts the node off
/// with `clear`: every value lent must be alive and whole (Miri checks the memory), and
/// each lookup finds its key (writes and clears come with refills in one transaction), never
/// with a value written into a node that the same transaction then cut off.
#[test]
fn map_lookups_outside_transactions_read_live_values_across_splits_and_clears() {
    use crate::collections::TMap;
    const KEYS: u32 = 40;
    let rounds = if cfg!(miri) { 4 } else { 200 };
    let map = TMap::with_hasher(std::hash::BuildHasherDefault::<OneRootSlot>::default());
    let fill = |tx: &mut Transaction<'_>, round: &str| {
        (0..KEYS).try_for_each(|k| map.insert(tx, k, format!("{round}:{k}")).map(drop))
    };
    atomically(|tx| fill(tx, "0"));
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 1..=rounds {
                atomically(|tx| {
                    if round % 2 == 0 {
                        fill(tx, "cut")?;
                        map.clear(tx)?;
                    }
                    fill(tx, &round.to_string())
                });
            }
        });
        for i in 0..rounds * KEYS {
            let k = i % KEYS;
            let suffix = format!(":{k}");
            map.with_atomic(&k, |v| {
                let v = v.unwrap_or_else(|| panic!("key {k} missing"));
                assert!(v.ends_with(&suffix) && !v.starts_with("cut"), "key {k} holds {v}");
            });
        }
    });
    assert_eq!(map.get_atomic(&7), Some(format!("{rounds}:7")));
}

#[test]
fn a_stamp_tells_whether_a_tvar_was_written_since() {
    use crate::Stamp;
    fn stamp_of<T: Send + Sync + 'static>(v: &TVar<T>) -> Stamp {
        v.with_atomic_stamped(|_, stamp| stamp)
    }
    let boxed = TVar::new(String::from("a"));
    let inline = TVar::new(7_u64);
    let (b, i) = (stamp_of(&boxed), stamp_of(&inline));
    assert!(boxed.unchanged_since(b) && inline.unchanged_since(i));
    // A transaction that wrote both and aborted (before its commit: nothing was locked)
    // changed nothing.
    let r: Result<(), ()> = atomically_or_err(|tx| {
        tx.write(&boxed, String::from("b"))?;
        tx.write(&inline, 8)?;
        abort(())
    });
    assert!(r.is_err());
    assert!(boxed.unchanged_since(b) && inline.unchanged_since(i));
    // A commit of the same values is a change: another commit wrote them.
    atomically(|tx| {
        tx.write(&boxed, String::from("a"))?;
        tx.write(&inline, 7)
    });
    assert!(!boxed.unchanged_since(b) && !inline.unchanged_since(i));
    // A lock held (by a committer, or a serial transaction that read the TVar) is not
    // "unchanged"; given up without a publish, it is again. A waiter changes nothing.
    let b = stamp_of(&boxed);
    let lock = &boxed.core().header.lock;
    lock.fetch_or(crate::lock_word::LOCKED, Ordering::SeqCst);
    assert!(!boxed.unchanged_since(b));
    lock.fetch_and(!crate::lock_word::LOCKED, Ordering::SeqCst);
    assert!(boxed.unchanged_since(b));
    lock.fetch_or(crate::lock_word::WAITERS, Ordering::SeqCst);
    assert!(boxed.unchanged_since(b));
    assert_eq!(stamp_of(&boxed), b, "two reads of one value give equal stamps");
    lock.fetch_and(!crate::lock_word::WAITERS, Ordering::SeqCst);
}
