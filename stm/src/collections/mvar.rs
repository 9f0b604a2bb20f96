//! `TMVar`: a transactional slot that is either empty or full.

use std::fmt;

use crate::{retry, Stm, TVar, Transaction};

/// A slot that holds one value or none (GHC's `TMVar`): [`take`](Self::take) waits while it
/// is empty, [`put`](Self::put) while it is full, both with [`retry`]. A one-place channel,
/// a lock that carries a value, or a result to hand over once.
///
/// # Conflicts
///
/// Every operation reads the one `TVar` underneath and those that change it write it, so
/// any write ([`put`](Self::put), [`take`](Self::take), [`swap`](Self::swap) and their
/// `try_` variants) conflicts with every other operation.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TMVar;
///
/// let result = TMVar::new_empty();
/// std::thread::scope(|s| {
///     s.spawn(|| atomically(|tx| result.put(tx, 6 * 7)));
///     // Waits until the other thread has put the value.
///     assert_eq!(atomically(|tx| result.take(tx)), 42);
/// });
/// assert!(atomically(|tx| result.is_empty(tx)));
/// ```
pub struct TMVar<T: Send + Sync + 'static> {
    slot: TVar<Option<T>>,
}

impl<T: Send + Sync + 'static> TMVar<T> {
    /// A full slot holding `value`.
    pub fn new(value: T) -> Self {
        TMVar { slot: TVar::new(Some(value)) }
    }

    /// An empty slot.
    pub fn new_empty() -> Self {
        TMVar { slot: TVar::new(None) }
    }

    /// Takes the value out, leaving the slot empty; waits (with [`retry`]) while it is
    /// empty. The value is cloned out (published values are shared and immutable).
    ///
    /// # Errors
    ///
    /// A retry while the slot is empty, or a conflict: propagate it with `?`.
    pub fn take(&self, tx: &mut Transaction<'_>) -> Stm<T>
    where
        T: Clone,
    {
        match self.try_take(tx)? {
            Some(value) => Ok(value),
            None => retry(),
        }
    }

    /// Takes the value out, or returns `None` if the slot is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_take(&self, tx: &mut Transaction<'_>) -> Stm<Option<T>>
    where
        T: Clone,
    {
        let value = tx.get(&self.slot)?;
        if value.is_some() {
            tx.write(&self.slot, None)?;
        }
        Ok(value)
    }

    /// Puts `value` in; waits (with [`retry`]) while the slot is full.
    ///
    /// # Errors
    ///
    /// A retry while the slot is full, or a conflict: propagate it with `?`.
    pub fn put(&self, tx: &mut Transaction<'_>, value: T) -> Stm<()> {
        match self.try_put(tx, value)? {
            Ok(()) => Ok(()),
            Err(_full) => retry(),
        }
    }

    /// Puts `value` in, or hands it back in `Err` if the slot is full.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_put(&self, tx: &mut Transaction<'_>, value: T) -> Stm<Result<(), T>> {
        if tx.read(&self.slot)?.is_some() {
            return Ok(Err(value));
        }
        tx.write(&self.slot, Some(value))?;
        Ok(Ok(()))
    }

    /// Lends the value without taking it; waits (with [`retry`]) while the slot is empty.
    ///
    /// # Errors
    ///
    /// A retry while the slot is empty, or a conflict: propagate it with `?`.
    pub fn read<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<&'a T> {
        match self.try_read(tx)? {
            Some(value) => Ok(value),
            None => retry(),
        }
    }

    /// Lends the value without taking it, or returns `None` if the slot is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_read<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<Option<&'a T>> {
        Ok(tx.read(&self.slot)?.as_ref())
    }

    /// Replaces the value and returns the old one; waits (with [`retry`]) while the slot is
    /// empty.
    ///
    /// # Errors
    ///
    /// A retry while the slot is empty, or a conflict: propagate it with `?`.
    pub fn swap(&self, tx: &mut Transaction<'_>, value: T) -> Stm<T>
    where
        T: Clone,
    {
        let old = self.take(tx)?;
        tx.write(&self.slot, Some(value))?;
        Ok(old)
    }

    /// Whether the slot is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_empty(&self, tx: &Transaction<'_>) -> Stm<bool> {
        Ok(tx.read(&self.slot)?.is_none())
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TMVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TMVar").finish_non_exhaustive()
    }
}
