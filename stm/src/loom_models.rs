//! Loom models of the STM's protocols, on the real commit, read, wait and reclamation code.
//!
//! Run with
//! `RUSTFLAGS="--cfg loom --cfg crossbeam_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p concord-stm --lib --release loom_models`.
//!
//! Under `--cfg loom` every atomic, mutex, lazy static and park/unpark the STM uses is
//! loom's (`sync.rs`), and crossbeam-epoch is its loom build. Each model thread runs
//! transactions on its own explicit context (`TxInner`) and drops it before it ends: loom
//! cannot run destructors of thread-locals that touch loom objects.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;

use crate::atomically::run_blocking_in;
use crate::error::{retry, Stm, StmError};
use crate::tx::{Transaction, TxInner};
use crate::TVar;

/// Runs a transaction on an explicit context.
fn atomically_in<R>(ctx: &TxInner, mut f: impl FnMut(&mut Transaction<'_>) -> Stm<R>) -> R {
    match run_blocking_in::<R, StmError, _>(ctx, &mut f) {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

/// Spawns a model thread with room for the STM's frames and its own context.
fn spawn(f: impl FnOnce(&TxInner) + Send + 'static) -> loom::thread::JoinHandle<()> {
    loom::thread::Builder::new()
        .stack_size(1 << 22)
        .spawn(move || {
            let ctx = TxInner::new();
            f(&ctx);
            drop(ctx);
        })
        .expect("spawn a loom thread")
}

/// Like [`spawn`], for a thread that returns a value.
fn spawn_with_result<R: Send + 'static>(
    f: impl FnOnce(&TxInner) -> R + Send + 'static,
) -> loom::thread::JoinHandle<R> {
    loom::thread::Builder::new()
        .stack_size(1 << 22)
        .spawn(move || {
            let ctx = TxInner::new();
            let r = f(&ctx);
            drop(ctx);
            r
        })
        .expect("spawn a loom thread")
}

/// Checks `f` under every interleaving with at most `preemptions` preemptions (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(f);
}

/// A value a TVar keeps in a box (a newtype is never inline, INV-INLINE), for models of the
/// boxed path; plain integers exercise the inline one.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Boxed(u32);

impl From<u32> for Boxed {
    fn from(v: u32) -> Self {
        Boxed(v)
    }
}

/// Commit vs a concurrent reader: no attempt of the reader, not even one that later aborts,
/// sees half of the writer's commit (INV-OPACITY, INV-VERSION, INV-CLOCK).
fn commit_vs_read<V>()
where
    V: From<u32> + Copy + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    model(2, || {
        let x = Arc::new(TVar::new(V::from(0)));
        let y = Arc::new(TVar::new(V::from(0)));
        let torn = Arc::new(AtomicUsize::new(0));
        let writer = {
            let (x, y) = (x.clone(), y.clone());
            spawn(move |ctx| {
                atomically_in(ctx, |tx| {
                    tx.write(&x, V::from(1))?;
                    tx.write(&y, V::from(1))
                })
            })
        };
        let reader = {
            let (x, y, torn) = (x.clone(), y.clone(), torn.clone());
            spawn(move |ctx| {
                let (a, b) = atomically_in(ctx, |tx| {
                    let a = *tx.read(&x)?;
                    let b = *tx.read(&y)?;
                    if a != b {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((a, b))
                });
                assert_eq!(a, b);
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
        assert_eq!(torn.load(Ordering::Relaxed), 0, "an attempt saw a torn state");
    });
}

#[test]
fn loom_models_commit_vs_read_is_opaque() {
    commit_vs_read::<u32>();
}

#[test]
fn loom_models_commit_vs_read_of_boxed_values_is_opaque() {
    commit_vs_read::<Boxed>();
}

/// Snapshot extension vs a commit: a reader whose snapshot predates the writer's first
/// commit reads `y` after it (a newer version: the snapshot is extended) while the second
/// commit may land at any point of the extension. The extension must not keep a value older
/// than the snapshot it claims (a bug the stress tests found). The two threads are steered
/// with flags so that the race needs a single preemption, which keeps the model small.
#[test]
fn loom_models_snapshot_extension_vs_commit_is_opaque() {
    model(1, || {
        let x = Arc::new(TVar::new(0_u32));
        let y = Arc::new(TVar::new(0_u32));
        let reader_began = Arc::new(AtomicBool::new(false));
        let first_done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (x, y, began, done) =
                (x.clone(), y.clone(), reader_began.clone(), first_done.clone());
            spawn(move |ctx| {
                while !began.load(Ordering::Acquire) {
                    loom::thread::yield_now();
                }
                for k in 1..=2 {
                    atomically_in(ctx, |tx| {
                        tx.write(&x, k)?;
                        tx.write(&y, k)
                    });
                    done.store(true, Ordering::Release);
                }
            })
        };
        let reader = {
            let (x, y, began, done) =
                (x.clone(), y.clone(), reader_began.clone(), first_done.clone());
            spawn(move |ctx| {
                let (a, b) = atomically_in(ctx, |tx| {
                    began.store(true, Ordering::Release);
                    while !done.load(Ordering::Acquire) {
                        loom::thread::yield_now();
                    }
                    let b = *tx.read(&y)?;
                    let a = *tx.read(&x)?;
                    Ok((a, b))
                });
                assert_eq!(a, b, "an attempt mixed two commits");
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
    });
}

/// The lazy clock: commits do not advance the clock, so two of them may share a write
/// version, and a reader moves the clock up when it finds a newer version. Here the reader's
/// snapshot predates both commits of the writer: `z`'s lands first (at version 1, the clock
/// left at 0), then the reader reads `z` (its first read: the snapshot moves to version 1,
/// the clock stays) and `x` (which extends: the clock moves to 1 and `z` is validated), while
/// the commit of `x` and `y` (also at version 1: nobody may have advanced the clock when it
/// read it) may be anywhere in its own. The reader must see that commit locked or whole,
/// never half (INV-CLOCK): its snapshot covers a write version that the clock was advanced
/// to for another commit.
#[test]
fn loom_models_lazy_clock_shared_write_version_is_opaque() {
    model(1, || {
        let x = Arc::new(TVar::new(0_u32));
        let y = Arc::new(TVar::new(0_u32));
        let z = Arc::new(TVar::new(0_u32));
        let reader_began = Arc::new(AtomicBool::new(false));
        let z_done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (x, y, z, began, done) =
                (x.clone(), y.clone(), z.clone(), reader_began.clone(), z_done.clone());
            spawn(move |ctx| {
                while !began.load(Ordering::Acquire) {
                    loom::thread::yield_now();
                }
                atomically_in(ctx, |tx| tx.write(&z, 1));
                done.store(true, Ordering::Release);
                atomically_in(ctx, |tx| {
                    tx.write(&x, 1)?;
                    tx.write(&y, 1)
                });
            })
        };
        let reader = {
            let (x, y, z, began, done) =
                (x.clone(), y.clone(), z.clone(), reader_began.clone(), z_done.clone());
            spawn(move |ctx| {
                let (a, b) = atomically_in(ctx, |tx| {
                    began.store(true, Ordering::Release);
                    while !done.load(Ordering::Acquire) {
                        loom::thread::yield_now();
                    }
                    let _ = *tx.read(&z)?;
                    let a = *tx.read(&x)?;
                    let b = *tx.read(&y)?;
                    Ok((a, b))
                });
                assert_eq!(a, b, "an attempt saw half of a commit");
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
    });
}

/// The lazy clock's write-version floor: `x` has been written twice (version 2) while the
/// clock stayed at 0, so a transaction that reads `y` and writes `x` commits at version 3
/// (its floor), above the version 1 that a concurrent blind write of `y` gets from the
/// clock. When the first one's committed attempt read the old `y`, it is serialized before
/// the blind write, and a reader that sees the new `y` must then see the new `x`
/// (INV-CLOCK (b)): write versions are not in serialization order, and opacity must not
/// depend on them being so. (If that attempt read the new `y`, it follows the blind write,
/// and a reader may see the new `y` with the old `x`.) This model passes with the floor
/// removed too (the commit's validation orders the two); the floor's own necessity is the
/// next model's.
#[test]
fn loom_models_lazy_clock_floor_version_keeps_dependencies() {
    model(1, || {
        let x = Arc::new(TVar::new(0_u32));
        let y = Arc::new(TVar::new(0_u32));
        let setup = TxInner::new();
        atomically_in(&setup, |tx| tx.write(&x, 1));
        atomically_in(&setup, |tx| tx.write(&x, 2));
        drop(setup);
        let read_y_write_x = {
            let (x, y) = (x.clone(), y.clone());
            spawn_with_result(move |ctx| {
                atomically_in(ctx, |tx| {
                    let seen = *tx.read(&y)?;
                    tx.write(&x, 3)?;
                    Ok(seen)
                })
            })
        };
        let write_y = {
            let y = y.clone();
            spawn(move |ctx| atomically_in(ctx, |tx| tx.write(&y, 1)))
        };
        let reader = TxInner::new();
        let (new_y, x_seen) = atomically_in(&reader, |tx| {
            let new_y = *tx.read(&y)? == 1;
            let x_seen = *tx.read(&x)?;
            Ok((new_y, x_seen))
        });
        drop(reader);
        let y_before_x = read_y_write_x.join().unwrap();
        write_y.join().unwrap();
        if y_before_x == 0 && new_y {
            assert_eq!(x_seen, 3, "an attempt saw a commit without one that precedes it");
        }
    });
}

/// The write-version floor keeps a TVar's versions strictly increasing while nobody advances
/// the clock: without it, the second of two blind writes of `x` would publish version 1
/// again (ABA), so an increment that read the first write's value could check that version
/// at its commit, find it unchanged, and overwrite the second write (a lost update; INV-CLOCK
/// (a)). With the floor removed from `Clock::write_version`, loom finds that execution.
#[test]
fn loom_models_lazy_clock_floor_keeps_versions_unique() {
    model(2, || {
        let x = Arc::new(TVar::new(0_u32));
        let writer = {
            let x = x.clone();
            spawn(move |ctx| {
                atomically_in(ctx, |tx| tx.write(&x, 1));
                atomically_in(ctx, |tx| tx.write(&x, 5));
            })
        };
        let increment = {
            let x = x.clone();
            spawn(move |ctx| atomically_in(ctx, |tx| tx.modify(&x, |v| v + 1)))
        };
        writer.join().unwrap();
        increment.join().unwrap();
        let last = x.read_atomic();
        // Serial orders: increment first or between the writes (5), or last (6).
        assert!(last == 5 || last == 6, "a lost update: x = {last}");
    });
}

/// Retry registration vs commit: a transaction that retries while `flag` is false is always
/// woken by the commit that sets it (INV-WAKE); loom reports a deadlock if it sleeps forever.
#[test]
fn loom_models_retry_vs_commit_loses_no_wakeup() {
    model(2, || {
        let flag = Arc::new(TVar::new(false));
        let waiter = {
            let flag = flag.clone();
            spawn(move |ctx| {
                atomically_in(ctx, |tx| if *tx.read(&flag)? { Ok(()) } else { retry() })
            })
        };
        let setter = {
            let flag = flag.clone();
            spawn(move |ctx| atomically_in(ctx, |tx| tx.write(&flag, true)))
        };
        setter.join().unwrap();
        waiter.join().unwrap();
    });
}

/// The async form's suspend/wake handshake, as an executor sees it: a poll that returns
/// `Pending` (the task suspends) is always followed by a wake of the poll's waker once a
/// commit changes what the transaction read, so a suspended task is never forgotten
/// (INV-WAKE). The wake is what an executor's schedule function turns into a re-queue.
#[test]
fn loom_models_async_suspend_vs_commit_loses_no_wakeup() {
    struct Flag(AtomicBool);
    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    model(2, || {
        let flag = Arc::new(TVar::new(false));
        let setter = {
            let flag = flag.clone();
            spawn(move |ctx| atomically_in(ctx, |tx| tx.write(&flag, true)))
        };
        let ctx = TxInner::new();
        let woken = std::sync::Arc::new(Flag(AtomicBool::new(false)));
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut task =
            crate::atomically_async(|tx| if *tx.read(&flag)? { Ok(()) } else { retry() });
        let first = task.poll_in(&ctx, &mut cx);
        setter.join().unwrap();
        if first.is_pending() {
            assert!(woken.0.load(Ordering::SeqCst), "the commit woke the suspended task");
            assert!(task.poll_in(&ctx, &mut cx).is_ready(), "woken, it commits");
        }
        drop(task);
        drop(ctx);
    });
}

/// A value whose drop marks it dead: a reader that can still see it must never see it dead.
struct Canary {
    dead: Arc<AtomicBool>,
    value: u32,
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.dead.store(true, Ordering::Release);
    }
}

/// Reclamation vs a reader: a value replaced by a commit, and the core of a TVar whose last
/// handle is dropped, are not freed while a transaction that read them still runs
/// (INV-RECLAIM, INV-PIN).
#[test]
fn loom_models_reclamation_waits_for_readers() {
    model(2, || {
        let v = Arc::new(TVar::new(Canary { dead: Arc::new(AtomicBool::new(false)), value: 1 }));
        let writer = {
            let v = v.clone();
            spawn(move |ctx| {
                let dead = Arc::new(AtomicBool::new(false));
                atomically_in(ctx, |tx| tx.write(&v, Canary { dead: dead.clone(), value: 2 }));
                drop(v); // maybe the last handle: the core is retired too
            })
        };
        let reader = {
            let v = v.clone();
            spawn(move |ctx| {
                atomically_in(ctx, |tx| {
                    let c = tx.read(&v)?;
                    loom::thread::yield_now();
                    assert!(!c.dead.load(Ordering::Acquire), "a value was freed under a reader");
                    assert!(c.value == 1 || c.value == 2);
                    Ok(())
                });
            })
        };
        drop(v);
        writer.join().unwrap();
        reader.join().unwrap();
    });
}
