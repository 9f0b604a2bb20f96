//! `TQueue`: an unbounded transactional FIFO queue.

use std::fmt;

use super::log::{Chunk, Cursor};
use crate::{retry, Stm, TVar, Transaction};

/// An unbounded FIFO queue: [`push`](Self::push) never blocks, [`pop`](Self::pop) waits
/// (with [`retry`]) while the queue is empty, so it composes with
/// [`or_else`](crate::Transaction::or_else).
///
/// Items live in a log of `TVar` slots with separate read and write cursors (see the
/// `log` module), so producers and consumers touch different `TVar`s unless the queue is
/// empty. A popped item is cloned out of its slot (published values are shared and
/// immutable) and the slot is cleared; for items that are costly to clone, queue an `Arc`.
///
/// # Conflicts
///
/// - [`push`](Self::push) vs `push`: always (both move the write cursor).
/// - [`pop`](Self::pop) / [`try_pop`](Self::try_pop) vs each other: always (the read
///   cursor).
/// - `push` vs `pop`: only when the queue is empty (the consumer reads the slot the
///   producer fills; this is also what wakes a waiting `pop`).
/// - [`peek`](Self::peek), [`is_empty`](Self::is_empty): consumer-side reads; they conflict
///   with `pop`, and with `push` only on an empty queue.
/// - [`len`](Self::len) reads both cursors: it conflicts with every `push` and `pop`.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TQueue;
///
/// let jobs = TQueue::new();
/// let urgent = TQueue::new();
/// atomically(|tx| {
///     jobs.push(tx, "sweep")?;
///     urgent.push(tx, "fire")
/// });
/// // Take from `urgent` first, else from `jobs`; wait if both are empty.
/// let next = || atomically(|tx| tx.or_else(|tx| urgent.pop(tx), |tx| jobs.pop(tx)));
/// assert_eq!(next(), "fire");
/// assert_eq!(next(), "sweep");
/// assert_eq!(atomically(|tx| urgent.try_pop(tx)), None);
/// ```
pub struct TQueue<T: Send + Sync + 'static> {
    read: Cursor<T>,
    write: Cursor<T>,
}

impl<T: Send + Sync + 'static> TQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        let chunk = Chunk::new();
        TQueue { read: Cursor::new(0, chunk.clone()), write: Cursor::new(0, chunk) }
    }

    /// Appends `item` at the back.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn push(&self, tx: &mut Transaction<'_>, item: T) -> Stm<()> {
        let (seq, slot) = self.write.slot(tx)?;
        let slot = slot.clone();
        tx.write(&slot, Some(item))?;
        self.write.advance(tx, seq)
    }

    /// Removes and returns the front item, waiting (with [`retry`]) while the queue is
    /// empty.
    ///
    /// # Errors
    ///
    /// A retry while the queue is empty, or a conflict: propagate it with `?`.
    pub fn pop(&self, tx: &mut Transaction<'_>) -> Stm<T>
    where
        T: Clone,
    {
        match self.try_pop(tx)? {
            Some(item) => Ok(item),
            None => retry(),
        }
    }

    /// Removes and returns the front item, or `None` if the queue is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_pop(&self, tx: &mut Transaction<'_>) -> Stm<Option<T>>
    where
        T: Clone,
    {
        let (seq, slot, item): (u64, TVar<Option<T>>, T) = {
            let (seq, slot) = self.read.slot(tx)?;
            match tx.read(slot)? {
                None => return Ok(None),
                Some(item) => (seq, slot.clone(), item.clone()),
            }
        };
        // Clear the slot so the item is dropped now, not when its chunk is.
        tx.write(&slot, None)?;
        self.read.advance(tx, seq)?;
        Ok(Some(item))
    }

    /// Lends the front item, or `None` if the queue is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn peek<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<Option<&'a T>> {
        let (_, slot) = self.read.slot(tx)?;
        Ok(tx.read(slot)?.as_ref())
    }

    /// Whether the queue is empty (a consumer-side read: see `# Conflicts`).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_empty(&self, tx: &Transaction<'_>) -> Stm<bool> {
        Ok(self.peek(tx)?.is_none())
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn len(&self, tx: &Transaction<'_>) -> Stm<usize> {
        let n = self.write.seq(tx)? - self.read.seq(tx)?;
        Ok(usize::try_from(n).expect("a queue's length fits in memory"))
    }
}

impl<T: Send + Sync + 'static> Default for TQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TQueue").finish_non_exhaustive()
    }
}
