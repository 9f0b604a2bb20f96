//! `atomically_async`: the executor-agnostic future form of a transaction, under small
//! executors (a hand-written `block_on` with a thread-parking waker, and `futures`'
//! `block_on` and `LocalPool`).
//!
//! A future whose body retries returns `Pending` and is woken by the commit that changes
//! what it read; dropping a pending future unregisters it, releasing its waker.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use concord_stm::{atomically, atomically_async, check, retry, stats, TVar};
use concord_tests::run_within;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

/// The bound on anything that waits for a wakeup: a hang detector, not a speed limit.
const WAKE_LIMIT: Duration = Duration::from_secs(10);

/// A waker that unparks a thread and counts its wakes.
struct ThreadWaker {
    thread: Thread,
    wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// The smallest executor: polls `f` on this thread, parking between polls. Returns the
/// output and how many times the waker was woken.
fn block_on<F: Future>(f: F) -> (F::Output, usize) {
    let state = Arc::new(ThreadWaker { thread: thread::current(), wakes: AtomicUsize::new(0) });
    let waker = Waker::from(state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return (out, state.wakes.load(Ordering::SeqCst));
        }
        // Spurious unparks only cause an extra poll, which must return Pending again.
        thread::park();
    }
}

/// A waker that only counts.
#[derive(Default)]
struct CountingWaker {
    wakes: AtomicUsize,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let state = Arc::new(CountingWaker::default());
    let waker = Waker::from(state.clone());
    (state, waker)
}

/// Takes the value out of a one-slot mailbox, waiting (retry) while it is empty; sends on
/// `retried` each time an attempt waits.
fn take_with_signal(
    slot: TVar<Option<u64>>,
    retried: mpsc::Sender<()>,
) -> impl Future<Output = u64> {
    atomically_async(move |tx| match tx.get(&slot)? {
        Some(x) => {
            tx.write(&slot, None)?;
            Ok(x)
        }
        None => {
            let r = retried.clone();
            tx.after_abort(move || {
                let _ = r.send(());
            });
            retry()
        }
    })
}

#[test]
fn future_is_woken_by_a_commit_from_another_thread() {
    let slot: TVar<Option<u64>> = TVar::new(None);
    let (retried_tx, retried_rx) = mpsc::channel();
    let consumer = {
        let slot = slot.clone();
        thread::spawn(move || {
            let before = stats::thread_snapshot();
            let (x, wakes) = block_on(take_with_signal(slot, retried_tx));
            (x, wakes, stats::thread_snapshot().since(&before))
        })
    };
    retried_rx.recv_timeout(WAKE_LIMIT).expect("the future waited");
    atomically(|tx| tx.write(&slot, Some(42)));
    let (x, wakes, s) = run_within(WAKE_LIMIT, "the woken future", move || {
        consumer.join().expect("consumer thread")
    });
    assert_eq!(x, 42);
    assert!(wakes >= 1, "the commit woke the future's waker");
    assert_eq!(slot.read_atomic(), None);
    assert_eq!((s.commits, s.retries), (1, 1), "{s}");
}

#[test]
fn async_wakeups_are_counted() {
    // Polled by hand on this thread, so the order is fixed: wait, get woken, run again.
    let slot: TVar<Option<u64>> = TVar::new(None);
    let (state, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let before = stats::thread_snapshot();
    let mut fut = Box::pin(atomically_async(|tx| {
        let x = tx.get(&slot)?;
        check(x.is_some())?;
        Ok(x)
    }));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    atomically(|tx| tx.write(&slot, Some(1)));
    assert_eq!(state.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(Some(1)));
    let s = stats::thread_snapshot().since(&before);
    assert_eq!(s.retries, 1, "{s}");
    assert_eq!(s.wakeups, 1, "a blocking `atomically` counts this wakeup: {s}");
}

#[test]
fn futures_block_on_works_too() {
    let slot: TVar<Option<u64>> = TVar::new(None);
    let (retried_tx, retried_rx) = mpsc::channel();
    let consumer = {
        let slot = slot.clone();
        thread::spawn(move || futures::executor::block_on(take_with_signal(slot, retried_tx)))
    };
    retried_rx.recv_timeout(WAKE_LIMIT).expect("the future waited");
    atomically(|tx| tx.write(&slot, Some(7)));
    let x = run_within(WAKE_LIMIT, "the woken future", move || consumer.join().expect("consumer"));
    assert_eq!(x, 7);
}

#[test]
fn retry_suspends_the_future_not_the_thread() {
    // A consumer and a producer on one thread: the consumer waits first, and only because
    // it suspends (instead of parking the thread) can the producer run and wake it.
    const N: u64 = 200;
    let got = run_within(WAKE_LIMIT, "a ping-pong on one thread", || {
        let slot: TVar<Option<u64>> = TVar::new(None);
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut pool = LocalPool::new();
        let spawner = pool.spawner();
        {
            let (slot, received) = (slot.clone(), received.clone());
            spawner
                .spawn_local(async move {
                    for _ in 0..N {
                        let x = atomically_async(|tx| match tx.get(&slot)? {
                            Some(x) => {
                                tx.write(&slot, None)?;
                                Ok(x)
                            }
                            None => retry(),
                        })
                        .await;
                        received.lock().expect("not poisoned").push(x);
                    }
                })
                .expect("spawn consumer");
        }
        spawner
            .spawn_local(async move {
                for i in 0..N {
                    atomically_async(|tx| {
                        check(tx.get(&slot)?.is_none())?;
                        tx.write(&slot, Some(i))
                    })
                    .await;
                }
            })
            .expect("spawn producer");
        pool.run();
        let got = received.lock().expect("not poisoned").clone();
        got
    });
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

#[test]
fn dropping_a_pending_future_unregisters_it() {
    let v = TVar::new(0_u32);
    let (state, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(atomically_async(|tx| check(tx.get(&v)? > 0)));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(format!("{fut:?}"), "Atomically { waiting: true, conflicts: 0, yielded_on: None }");
    assert!(Arc::strong_count(&state) > 2, "the registration holds a clone of the waker");

    drop(fut);
    drop(waker);
    assert_eq!(Arc::strong_count(&state), 1, "dropping the future released its waker");
    atomically(|tx| tx.write(&v, 1));
    assert_eq!(state.wakes.load(Ordering::SeqCst), 0, "a dropped future is not woken");
}

#[test]
fn dropping_many_pending_futures_leaks_no_waker() {
    // Many futures waiting on overlapping TVars, dropped in a scrambled order.
    let vars: Vec<TVar<u32>> = (0..8).map(TVar::new).collect();
    let (state, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut futs: Vec<_> = (0..32)
        .map(|i| {
            let (a, b) = (vars[i % 8].clone(), vars[(i * 3 + 1) % 8].clone());
            Box::pin(atomically_async(move |tx| {
                let x = tx.get(&a)? + tx.get(&b)?;
                check(x > 1_000)
            }))
        })
        .collect();
    for f in &mut futs {
        assert!(f.as_mut().poll(&mut cx).is_pending());
    }
    let mut order: Vec<usize> = (0..futs.len()).collect();
    order.sort_by_key(|&i| (i * 7) % 32);
    let mut futs: Vec<Option<_>> = futs.into_iter().map(Some).collect();
    for i in order {
        futs[i] = None;
    }
    drop(waker);
    assert_eq!(Arc::strong_count(&state), 1);
    atomically(|tx| vars.iter().try_for_each(|v| tx.write(v, 2_000)));
    assert_eq!(state.wakes.load(Ordering::SeqCst), 0);
}

#[test]
fn a_new_waker_replaces_the_old_registration() {
    let v = TVar::new(0_u32);
    let (old_state, old_waker) = counting_waker();
    let (new_state, new_waker) = counting_waker();
    let mut fut = Box::pin(atomically_async(|tx| {
        let x = tx.get(&v)?;
        check(x > 0)?;
        Ok(x)
    }));
    assert!(fut.as_mut().poll(&mut Context::from_waker(&old_waker)).is_pending());
    assert!(fut.as_mut().poll(&mut Context::from_waker(&new_waker)).is_pending());
    drop(old_waker);
    assert_eq!(Arc::strong_count(&old_state), 1, "the old waker was released");

    atomically(|tx| tx.write(&v, 5));
    assert_eq!(old_state.wakes.load(Ordering::SeqCst), 0);
    assert_eq!(new_state.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(fut.as_mut().poll(&mut Context::from_waker(&new_waker)), Poll::Ready(5));
}

#[test]
fn a_spurious_poll_stays_pending() {
    let v = TVar::new(0_u32);
    let (state, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(atomically_async(|tx| {
        let x = tx.get(&v)?;
        check(x > 0)?;
        Ok(x)
    }));
    for _ in 0..3 {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    atomically(|tx| tx.write(&v, 3));
    assert_eq!(state.wakes.load(Ordering::SeqCst), 1);
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(3));
}

#[test]
fn a_future_that_need_not_wait_is_ready_at_once() {
    let v = TVar::new(1_u32);
    let (state, waker) = counting_waker();
    let mut fut = atomically_async(|tx| {
        tx.modify(&v, |x| x + 1)?;
        tx.get(&v)
    });
    assert_eq!(format!("{fut:?}"), "Atomically { waiting: false, conflicts: 0, yielded_on: None }");
    assert_eq!(Pin::new(&mut fut).poll(&mut Context::from_waker(&waker)), Poll::Ready(2));
    drop(waker);
    assert_eq!(Arc::strong_count(&state), 1);
    assert_eq!(v.read_atomic(), 2);
}

#[test]
fn many_async_consumers_receive_every_item_once() {
    // Four consumer futures on one thread's pool, one producer thread (blocking
    // `atomically`): each item is received exactly once.
    const N: u64 = 2_000;
    const CONSUMERS: usize = 4;
    let slot: TVar<Option<u64>> = TVar::new(None);
    let producer = {
        let slot = slot.clone();
        thread::spawn(move || {
            for i in 0..N {
                atomically(|tx| {
                    check(tx.get(&slot)?.is_none())?;
                    tx.write(&slot, Some(i))
                });
            }
        })
    };
    let mut got = run_within(Duration::from_secs(60), "async consumers", move || {
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let remaining = TVar::new(N);
        let mut pool = LocalPool::new();
        for _ in 0..CONSUMERS {
            let (slot, received, remaining) = (slot.clone(), received.clone(), remaining.clone());
            pool.spawner()
                .spawn_local(async move {
                    loop {
                        let item = atomically_async(|tx| {
                            let left = tx.get(&remaining)?;
                            if left == 0 {
                                return Ok(None);
                            }
                            match tx.get(&slot)? {
                                Some(x) => {
                                    tx.write(&slot, None)?;
                                    tx.write(&remaining, left - 1)?;
                                    Ok(Some(x))
                                }
                                None => retry(),
                            }
                        })
                        .await;
                        match item {
                            Some(x) => received.lock().expect("not poisoned").push(x),
                            None => break,
                        }
                    }
                })
                .expect("spawn consumer");
        }
        pool.run();
        let got = received.lock().expect("not poisoned").clone();
        got
    });
    producer.join().expect("producer");
    got.sort_unstable();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}

#[test]
fn polling_inside_a_transaction_panics_clearly() {
    let v = TVar::new(1_u32);
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        atomically(|tx| {
            let (_state, waker) = counting_waker();
            let mut fut = atomically_async(|tx| tx.get(&v));
            let _ = Pin::new(&mut fut).poll(&mut Context::from_waker(&waker));
            tx.get(&v)
        })
    }))
    .unwrap_err();
    let msg = concord_tests::panic_message(&*payload);
    assert!(msg.contains("polled inside a transaction"), "{msg}");
}

#[test]
fn a_wakeup_whose_condition_still_fails_is_counted_spurious() {
    let v = TVar::new(0_u32);
    let (_state, waker) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut fut = Box::pin(atomically_async(|tx| check(tx.get(&v)? >= 2)));
    let before = concord_stm::stats::thread_snapshot();
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    atomically(|tx| tx.write(&v, 1));
    assert!(fut.as_mut().poll(&mut cx).is_pending(), "1 is not enough");
    atomically(|tx| tx.write(&v, 2));
    assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(()));
    let s = concord_stm::stats::thread_snapshot().since(&before);
    assert_eq!((s.retries, s.wakeups, s.spurious_wakeups), (2, 2, 1), "{s}");
}
