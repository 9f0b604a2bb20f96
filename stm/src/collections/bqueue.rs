//! `TBQueue`: a bounded transactional FIFO queue, a ring of `TVar` slots.

use std::fmt;

use crate::{retry, Stm, TVar, Transaction};

/// A bounded FIFO queue: [`push`](Self::push) waits while it is full, [`pop`](Self::pop)
/// while it is empty, both with [`retry`], so they compose with
/// [`or_else`](crate::Transaction::or_else).
///
/// The items sit in a ring of `capacity` `TVar<Option<T>>` slots with a read index owned by
/// consumers and a write index owned by producers (GHC's current `TBQueue`). There is no
/// shared count: a producer finds the queue full when the slot at its index still holds an
/// item, a consumer finds it empty when the slot at its index holds none. So when the queue
/// is neither empty nor full, producers and consumers touch disjoint `TVar`s. A popped item
/// is cloned out of its slot (published values are shared and immutable); for items that
/// are costly to clone, queue an `Arc`.
///
/// # Conflicts
///
/// - [`push`](Self::push) vs `push`, and [`pop`](Self::pop) vs `pop`: always (the write and
///   the read index). The `try_` variants are the same.
/// - `push` vs `pop`: only when the queue is empty or full (both touch the one slot the
///   indices share; this is also what wakes the waiting side).
/// - [`is_empty`](Self::is_empty), [`peek`](Self::peek) are consumer-side reads and
///   [`is_full`](Self::is_full) a producer-side read; [`len`](Self::len) reads both indices
///   and conflicts with every `push` and `pop`.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TBQueue;
///
/// let q = TBQueue::new(2);
/// atomically(|tx| {
///     q.push(tx, 1)?;
///     q.push(tx, 2)
/// });
/// assert_eq!(atomically(|tx| q.try_push(tx, 3)), Err(3));
/// assert_eq!(atomically(|tx| q.pop(tx)), 1);
/// assert_eq!(atomically(|tx| q.len(tx)), 1);
/// ```
pub struct TBQueue<T: Send + Sync + 'static> {
    slots: Box<[TVar<Option<T>>]>,
    /// The next slot to pop (consumers only).
    read: TVar<usize>,
    /// The next slot to fill (producers only).
    write: TVar<usize>,
}

impl<T: Send + Sync + 'static> TBQueue<T> {
    /// An empty queue that holds at most `capacity` items.
    ///
    /// # Panics
    ///
    /// Panics if `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "a TBQueue needs a capacity of at least 1");
        TBQueue {
            slots: (0..capacity).map(|_| TVar::new(None)).collect(),
            read: TVar::new(0),
            write: TVar::new(0),
        }
    }

    /// The most items the queue holds.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn after(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Appends `item` at the back, waiting (with [`retry`]) while the queue is full.
    ///
    /// # Errors
    ///
    /// A retry while the queue is full, or a conflict: propagate it with `?`.
    pub fn push(&self, tx: &mut Transaction<'_>, item: T) -> Stm<()> {
        match self.try_push(tx, item)? {
            Ok(()) => Ok(()),
            Err(_full) => retry(),
        }
    }

    /// Appends `item` at the back, or hands it back in `Err` if the queue is full.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_push(&self, tx: &mut Transaction<'_>, item: T) -> Stm<Result<(), T>> {
        let w = tx.get(&self.write)?;
        let slot = &self.slots[w];
        if tx.read(slot)?.is_some() {
            return Ok(Err(item));
        }
        tx.write(slot, Some(item))?;
        tx.write(&self.write, self.after(w))?;
        Ok(Ok(()))
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
        let r = tx.get(&self.read)?;
        let slot = &self.slots[r];
        let Some(item) = tx.read(slot)?.clone() else {
            return Ok(None);
        };
        tx.write(slot, None)?;
        tx.write(&self.read, self.after(r))?;
        Ok(Some(item))
    }

    /// Lends the front item, or `None` if the queue is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn peek<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<Option<&'a T>> {
        let r = tx.get(&self.read)?;
        Ok(tx.read(&self.slots[r])?.as_ref())
    }

    /// Whether the queue is empty (a consumer-side read).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_empty(&self, tx: &Transaction<'_>) -> Stm<bool> {
        Ok(self.peek(tx)?.is_none())
    }

    /// Whether the queue is full (a producer-side read).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_full(&self, tx: &Transaction<'_>) -> Stm<bool> {
        let w = tx.get(&self.write)?;
        Ok(tx.read(&self.slots[w])?.is_some())
    }

    /// The number of items.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn len(&self, tx: &Transaction<'_>) -> Stm<usize> {
        let (r, w) = (tx.get(&self.read)?, tx.get(&self.write)?);
        Ok(match w.cmp(&r) {
            std::cmp::Ordering::Greater => w - r,
            std::cmp::Ordering::Less => w + self.slots.len() - r,
            // Equal indices: empty or full, told apart by the shared slot.
            std::cmp::Ordering::Equal if tx.read(&self.slots[r])?.is_some() => self.slots.len(),
            std::cmp::Ordering::Equal => 0,
        })
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TBQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TBQueue").field("capacity", &self.slots.len()).finish_non_exhaustive()
    }
}
