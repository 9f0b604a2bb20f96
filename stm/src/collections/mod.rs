//! Transactional collections built on [`TVar`](crate::TVar), composable inside
//! [`atomically`](crate::atomically).
//!
//! Each collection spreads its state over many `TVar`s so that operations that need not
//! conflict do not: a [`TMap`] update writes only its key's bucket, a [`TBQueue`] producer
//! and consumer touch different slots and indices, [`TCounter`] increments from different
//! threads write different stripes. Each type's `# Conflicts` section says which operations
//! conflict with which.
//!
//! Every operation takes the transaction and returns [`Stm`](crate::Stm), so it composes
//! with others: an item can move from a queue into a map in one transaction. Blocking
//! operations ([`TQueue::pop`] on an empty queue, [`TBQueue::push`] on a full one,
//! [`TMVar::take`] on an empty slot, [`TSem::wait`] without a permit) are
//! [`retry`](crate::retry): the transaction sleeps until what it read changes, and
//! [`Transaction::or_else`](crate::Transaction::or_else) can try something else instead.
//! Each has a non-blocking `try_` twin that returns an `Option` (or hands the item back).
//! The exceptions are lookups that are a whole transaction by themselves:
//! [`TMap::get_atomic`], [`TMap::with_atomic`] and [`TSet::contains_atomic`] read one key
//! outside any transaction, as [`TVar::read_atomic`](crate::TVar::read_atomic) reads one
//! `TVar`, for less than an `atomically` costs.
//!
//! Published values are immutable and shared, so taking an item out of a queue or a
//! [`TMVar`] clones it (those operations need `T: Clone`), and so does a [`TMap`] write,
//! which copies its bucket (its keys and values need `Clone`); put an `Arc` in when clones
//! are costly. Reads lend references where they can ([`TMap::read`], [`TQueue::peek`]).
//!
//! | type | what it is |
//! |------|------------|
//! | [`TMap`], [`TSet`] | hash map and set: a hash trie of `TVar` slots that grows locally |
//! | [`TQueue`] | unbounded FIFO queue |
//! | [`TBQueue`] | bounded FIFO queue: a ring of slots with separate read and write indices |
//! | [`TChan`], [`Subscriber`] | unbounded broadcast channel: every subscriber gets every item |
//! | [`TMVar`] | a slot that is empty or full |
//! | [`TSem`] | counting semaphore, optionally first-come-first-served |
//! | [`TArray`] | fixed-size array of `TVar`s |
//! | [`TCounter`] | counter striped per thread: increments do not conflict |
//!
//! # Examples
//!
//! Move a job from a queue to a map of jobs in progress, atomically:
//!
//! ```
//! use concord_stm::atomically;
//! use concord_stm::collections::{TMap, TQueue};
//!
//! let todo = TQueue::new();
//! let running = TMap::new();
//! atomically(|tx| todo.push(tx, (1_u32, "compile")));
//! atomically(|tx| {
//!     let (id, job) = todo.pop(tx)?;
//!     running.insert(tx, id, job)
//! });
//! assert_eq!(atomically(|tx| running.get(tx, &1)), Some("compile"));
//! ```

mod array;
mod bqueue;
mod chan;
mod counter;
mod log;
pub mod map;
mod mvar;
mod queue;
mod sem;
pub mod set;

pub use self::array::TArray;
pub use self::bqueue::TBQueue;
pub use self::chan::{Subscriber, TChan};
pub use self::counter::TCounter;
pub use self::map::TMap;
pub use self::mvar::TMVar;
pub use self::queue::TQueue;
pub use self::sem::TSem;
pub use self::set::TSet;
