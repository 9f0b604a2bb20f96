#![doc = include_str!("../../README.md")]
//!
//! # The crate
//!
//! A transaction is a closure run by [`atomically`]. Inside it, a [`Transaction`] reads and
//! writes [`TVar`]s; when the closure returns, every write is published at once, or, if
//! another thread changed something the closure read, the closure runs again on fresh
//! state. Nothing it did in the abandoned attempt is seen by anyone.
//!
//! # Semantics
//!
//! - **Opacity.** Every attempt, even one that later aborts, sees a consistent snapshot:
//!   each read is validated as it happens against a global version clock (TL2), and when a
//!   TVar is newer than the snapshot, the snapshot is extended if nothing read so far has
//!   changed (LSA). A body never observes a state that could not exist, so it cannot loop or
//!   panic on torn invariants.
//! - **Serializability.** Committed transactions appear to run one at a time, each at the
//!   moment it holds the locks of all it writes and has validated all it read; read-only
//!   transactions at their snapshot time.
//! - **Invisible reads.** Reads leave no trace in shared memory (no reader counts or lists):
//!   a read-only transaction touches no cache line another thread writes, except those of
//!   the TVars it reads and, when it reads two or more and meets one written since the
//!   global clock last moved, the clock, which it moves forward once (commits do not write
//!   the clock; in all, the clock is written at most once per writing commit, as with a
//!   commit-advanced clock, and never by transactions that read a single TVar).
//!
//! # Blocking with `retry`
//!
//! [`retry`] abandons the attempt and sleeps until a TVar the attempt read changes
//! ([`check`] is `retry` unless a condition holds). [`Transaction::or_else`] tries a second
//! branch when the first retries, and waits on the reads of both. [`atomically`] parks the
//! thread; [`atomically_async`] returns a future that works on any executor.
//!
//! # Side effects and re-execution
//!
//! The body may run several times. Keep it free of side effects other than TVar writes, or
//! register them with [`Transaction::after_commit`] (or [`Transaction::after_abort`]). A panic
//! discards the attempt and resumes. A user error ends the transaction with nothing
//! committed through [`abort`] and [`atomically_or_err`].
//!
//! # Progress
//!
//! Conflicts back off with randomized exponential delays; a transaction's conflict count
//! survives restarts and lengthens its patience with locked TVars (age priority); after
//! [`contention::Policy::serial_after`] conflicts, a transaction runs in an irrevocable serial
//! mode that locks what it touches as it goes and always commits. A long read-only
//! transaction therefore finishes under any storm of short writers.
//!
//! # Trade-offs
//!
//! Every write boxes its new value (published as is, never mutated), and every value read is
//! borrowed, not copied, except for small plain types (integers, `bool`, `char`, floats),
//! which a TVar keeps inline in its value word: writing one allocates nothing, and reading it
//! copies it (see [`TVar`]'s size notes). A big value can be built, or changed, in the box
//! its write will publish ([`Staged`], [`Transaction::write_staged`]) instead of being moved
//! there. Boxes of up to 1 KiB are recycled per thread: a
//! thread keeps up to 16384 free blocks per small size class (16, 32, 48 and 64 bytes) and
//! 1 MiB of blocks per larger one (64-byte steps up to 1 KiB), and the values its commits
//! replace are freed by that thread after a grace period, so in steady state a write costs no
//! call to the allocator. A transaction pins the epoch collector for its duration, so a very
//! long transaction delays the reclamation of old values everywhere. A thread that stops
//! writing keeps the values it replaced in its last grace period (under heavy load, thousands)
//! until it writes again, waits in `retry`, exits, or calls [`collect_garbage`].
//! A tiny critical section on one hot variable is cheaper behind a mutex: see
//! `benches/README.md` for measured ratios.
//!
//! # When not to use
//!
//! For a single counter, use an atomic; for data owned by one thread at a time, use a
//! channel. Transactions pay off for composite updates over many variables, read-mostly
//! data, and blocking conditions that span several variables.

#![warn(missing_docs)]

mod atomically;
mod clock;
pub mod collections;
pub mod contention;
mod error;
mod inline;
mod lock_word;
mod prefetch;
mod reclaim;
mod recycle;
mod staged;
pub mod stats;
mod sync;
mod tvar;
mod tx;
mod wait;

#[cfg(all(test, loom))]
mod loom_models;
#[cfg(all(test, not(loom)))]
mod tests;

pub use crate::atomically::{
    atomically, atomically_async, atomically_or_err, collect_garbage, Atomically,
};
pub use crate::error::{abort, check, retry, Abort, Control, Stm, StmError, StmResult};
pub use crate::staged::Staged;
pub use crate::tvar::{Stamp, TVar};
pub use crate::tx::Transaction;
