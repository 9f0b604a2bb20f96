//! The Concord executor: a work-stealing pool where a transaction that calls `retry`
//! suspends its task, never a worker thread.
//!
//! The pool is rayon-core's (its deques, stealing and sleep protocol); tasks are
//! `async-task`'s, whose schedule function queues `runnable.run()` as a rayon job. What this
//! crate adds is the glue to `concord-stm`: a transaction spawned here is an
//! [`atomically_async`](concord_stm::atomically_async) future, so a `retry` returns `Pending`
//! and parks the task's waker in the STM's wait table; the commit that changes what the
//! transaction read wakes it, and rayon's local push re-queues it on the committing worker.
//!
//! - [`Executor::spawn_tx`]: one transaction as a task. [`Executor::spawn`]: any future
//!   (which may await several transactions).
//! - [`Executor::for_each_tx`]: a parallel-for of transactions. Items run as plain rayon
//!   work; only those that `retry` become tasks.
//! - [`Executor::block_on`] for threads outside the pool; [`Executor::install`] for plain
//!   rayon CPU work.
//! - [`Executor::stats`]: task counts, the workers' STM statistics and latency histograms.
//!
//! Futures of `concord_stm::atomically_async` run on any executor (tokio's too); what this
//! one adds is work stealing for transactions, statistics, and `for_each_tx`.
//!
//! # Scheduling order
//!
//! Each worker runs the tasks it queued itself (spawned, woken or yielding there) in FIFO
//! order; an idle worker steals from the others; tasks spawned or woken from outside the
//! pool are injected and taken when a worker has nothing local (rayon's priorities: finish
//! what was started before taking on new work). So a future that busy-waits by yielding,
//! on a one-thread pool, for something an injected task would do can wait forever: wait
//! with `retry` on a TVar instead, which suspends the task until the change.
//!
//! # Panics
//!
//! A panic in a task is caught and resumes where its [`JoinHandle`] is awaited; it never
//! takes down a worker or the process.
//!
//! # Contention
//!
//! By default a conflicting transaction backs off in place, as on a plain thread.
//! [`Builder::yield_after_conflicts`] makes it give its worker to other tasks instead.
//! [`Builder::serialize_hot_tvars`] goes further: tasks that keep conflicting on the same
//! TVar take turns on an async lock for it, while the others run in parallel. Both are off
//! by default; measure before switching either on (the `contention` group of the
//! `executor` benchmark compares them on one hot TVar).

mod executor;
mod serialize;
mod stats;
mod task;
mod worker;

pub use crate::executor::{BuildError, Builder, Executor};
pub use crate::stats::{ExecutorStats, Latency};
pub use crate::task::JoinHandle;
pub use concord_stm;
