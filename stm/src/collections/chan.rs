//! `TChan`: an unbounded broadcast channel, with one read cursor per subscriber.

use std::fmt;

use super::log::{Chunk, Cursor};
use crate::{retry, Stm, Transaction};

/// An unbounded broadcast channel (GHC's `TChan` made with `newBroadcastTChan`): every
/// [`Subscriber`] receives every item written after it subscribed, in order.
///
/// The channel is a log of `TVar` slots (see the `log` module) with one write cursor and a
/// read cursor per subscriber. Items are never cleared by readers (others may still need
/// them); an item is dropped once every subscriber has read past its chunk of 32 slots and
/// the writer has moved on. A channel with no subscriber keeps at most one chunk. A slow
/// subscriber makes the channel hold everything it has not read yet: drop subscribers that
/// stop reading.
///
/// # Conflicts
///
/// - [`write`](Self::write) vs `write`: always (the write cursor).
/// - [`write`](Self::write) vs [`Subscriber::read`]: only when that subscriber has read
///   everything (it reads the slot the writer fills, which is also what wakes it).
/// - Reads of different subscribers never conflict with each other; reads of the same
///   subscriber always do (its cursor).
/// - [`subscribe`](Self::subscribe) reads the write cursor: it conflicts with `write`.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TChan;
///
/// let news = TChan::new();
/// let (alice, bob) = atomically(|tx| Ok((news.subscribe(tx)?, news.subscribe(tx)?)));
/// atomically(|tx| news.write(tx, "rain"));
/// assert_eq!(atomically(|tx| alice.read(tx)), "rain");
/// assert_eq!(atomically(|tx| bob.read(tx)), "rain");
/// assert_eq!(atomically(|tx| bob.try_read(tx)), None);
/// ```
pub struct TChan<T: Send + Sync + 'static> {
    write: Cursor<T>,
}

impl<T: Send + Sync + 'static> TChan<T> {
    /// A channel with no subscriber.
    pub fn new() -> Self {
        TChan { write: Cursor::new(0, Chunk::new()) }
    }

    /// Appends `item` for every current subscriber.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn write(&self, tx: &mut Transaction<'_>, item: T) -> Stm<()> {
        let (seq, slot) = self.write.slot(tx)?;
        let slot = slot.clone();
        tx.write(&slot, Some(item))?;
        self.write.advance(tx, seq)
    }

    /// A new subscriber, which will read every item written after this transaction (GHC's
    /// `dupTChan`).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn subscribe(&self, tx: &Transaction<'_>) -> Stm<Subscriber<T>> {
        Ok(Subscriber { read: self.write.fork(tx)? })
    }
}

impl<T: Send + Sync + 'static> Default for TChan<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TChan<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TChan").finish_non_exhaustive()
    }
}

/// The read end of one subscription to a [`TChan`]: see [`TChan::subscribe`].
///
/// # Conflicts
///
/// As in [`TChan`]: a subscriber's operations conflict with each other, and with
/// [`TChan::write`] only when it has read everything.
pub struct Subscriber<T: Send + Sync + 'static> {
    read: Cursor<T>,
}

impl<T: Send + Sync + 'static> Subscriber<T> {
    /// Takes the next item, waiting (with [`retry`]) while there is none.
    ///
    /// # Errors
    ///
    /// A retry while there is no item, or a conflict: propagate it with `?`.
    pub fn read(&self, tx: &mut Transaction<'_>) -> Stm<T>
    where
        T: Clone,
    {
        match self.try_read(tx)? {
            Some(item) => Ok(item),
            None => retry(),
        }
    }

    /// Takes the next item, or returns `None` if there is none.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_read(&self, tx: &mut Transaction<'_>) -> Stm<Option<T>>
    where
        T: Clone,
    {
        let Some((seq, item)) = self.next(tx)? else {
            return Ok(None);
        };
        let item = item.clone();
        self.read.advance(tx, seq)?;
        Ok(Some(item))
    }

    /// Lends the next item without taking it, or `None` if there is none.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn peek<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<Option<&'a T>> {
        Ok(self.next(tx)?.map(|(_, item)| item))
    }

    /// Whether there is no item to read.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_empty(&self, tx: &Transaction<'_>) -> Stm<bool> {
        Ok(self.next(tx)?.is_none())
    }

    /// A new subscriber with the same unread items as this one (GHC's `cloneTChan`).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn clone_cursor(&self, tx: &Transaction<'_>) -> Stm<Subscriber<T>> {
        Ok(Subscriber { read: self.read.fork(tx)? })
    }

    fn next<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<Option<(u64, &'a T)>> {
        let (seq, slot) = self.read.slot(tx)?;
        Ok(tx.read(slot)?.as_ref().map(|item| (seq, item)))
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber").finish_non_exhaustive()
    }
}
