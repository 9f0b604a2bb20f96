//! Tasks: futures the pool polls, suspended while pending, re-queued when woken.
//!
//! A task is an `async-task` allocation whose schedule function pushes `runnable.run()` onto
//! the pool as a rayon job. A task that returns `Pending` (a transaction that called `retry`
//! on an `atomically_async` future) simply is not queued anywhere: its waker sits in the
//! STM's wait table, and the worker goes on with other jobs. The commit that wakes it calls
//! the schedule function on the committing thread; on a worker of this executor that is a
//! push onto that worker's own queue (the task resumes where the data it waits on is hot),
//! elsewhere an injection into the pool.
//!
//! Tasks are queued with rayon's `spawn_fifo`, not `spawn`: a worker runs the tasks it
//! queued in FIFO order, so a task that yields (or is woken again and again) goes behind the
//! others instead of running again at once, as it would from the top of a LIFO deque.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use async_task::Runnable;

use crate::executor::Shared;
use crate::worker::{self, bump, Worker};

/// A handle to a spawned task: a future that resolves to the task's output.
///
/// Dropping the handle cancels the task (its future is dropped, and a task suspended in
/// `retry` leaves the wait table the next time a commit wakes it); call
/// [`detach`](Self::detach) to let it run to completion unobserved. If the task panicked,
/// awaiting the handle resumes the panic.
#[must_use = "dropping a JoinHandle cancels the task: call `.detach()` to let it run"]
pub struct JoinHandle<T> {
    task: async_task::Task<T>,
}

impl<T> JoinHandle<T> {
    /// Lets the task run to completion without a handle; its output is dropped.
    pub fn detach(self) {
        self.task.detach();
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Cancels the task and waits until its future is dropped. Returns its output if it had
    /// completed before the cancellation.
    pub async fn cancel(self) -> Option<T> {
        self.task.cancel().await
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.task).poll(cx)
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.task.is_finished()).finish()
    }
}

/// Spawns `future` as a task of the executor `shared` and queues its first run.
/// `spawned_at` is set for transactions, whose spawn-to-commit latency is recorded.
pub(crate) fn spawn<F>(
    shared: &std::sync::Arc<Shared>,
    future: F,
    spawned_at: Option<Instant>,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let id = shared.id;
    let (runnable, task) = async_task::Builder::new().propagate_panic(true).spawn(
        move |()| Tracked { future, spawned_at, suspended: false },
        move |r| schedule(id, r),
    );
    let by = worker::with_current(id, |w| {
        w.map(|w| {
            bump(&w.counters.spawned);
            w.index
        })
    });
    match by {
        Some(_) => rayon_core::spawn_fifo(move || run(id, runnable, by, None)),
        None => {
            shared.count_external_spawn();
            shared.pool.spawn_fifo(move || run(id, runnable, None, None));
        }
    }
    JoinHandle { task }
}

/// The schedule function: a suspended task was woken.
fn schedule(id: u64, runnable: Runnable) {
    let woken_at = Instant::now();
    let by = worker::with_current(id, |w| w.map(|w| w.index));
    match by {
        // A worker of this executor woke it: rayon's local push onto that worker's deque.
        Some(_) => rayon_core::spawn_fifo(move || run(id, runnable, by, Some(woken_at))),
        None => match crate::executor::find(id) {
            Some(shared) => shared.pool.spawn_fifo(move || run(id, runnable, None, Some(woken_at))),
            // The executor is gone: dropping the runnable cancels the task.
            None => drop(runnable),
        },
    }
}

/// A pool job: runs the task once, recording who runs it and how long the wake took.
fn run(id: u64, runnable: Runnable, scheduled_by: Option<usize>, woken_at: Option<Instant>) {
    worker::with_current(id, |w| {
        if let Some(w) = w {
            if let Some(t) = woken_at {
                Worker::record(&w.wake_to_resume, t.elapsed());
            }
            if scheduled_by.is_some_and(|i| i != w.index) {
                bump(&w.counters.stolen);
            }
        }
    });
    runnable.run();
}

pin_project_lite::pin_project! {
    /// A task's future, wrapped to count its polls, suspensions and wakeups on the worker
    /// that polls it, and to record its spawn-to-completion latency.
    ///
    /// Only this executor's pool jobs poll it, so the worker found is always one of ours.
    struct Tracked<F> {
        #[pin]
        future: F,
        spawned_at: Option<Instant>,
        suspended: bool,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = panic::catch_unwind(AssertUnwindSafe(|| this.future.poll(cx)));
        let resumed = *this.suspended;
        worker::with_any(|w| {
            let Some(w) = w else { return };
            let c = &w.counters;
            bump(&c.polls);
            if resumed {
                bump(&c.wakeups);
            }
            match &polled {
                Ok(Poll::Ready(_)) => {
                    bump(&c.completed);
                    if let Some(t) = this.spawned_at {
                        Worker::record(&w.spawn_to_commit, t.elapsed());
                    }
                }
                Ok(Poll::Pending) => bump(&c.suspensions),
                Err(_) => bump(&c.panics),
            }
        });
        match polled {
            Ok(poll) => {
                *this.suspended = poll.is_pending();
                poll
            }
            // async-task catches it again and hands it to the JoinHandle.
            Err(payload) => panic::resume_unwind(payload),
        }
    }
}
