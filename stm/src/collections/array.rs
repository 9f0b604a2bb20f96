//! `TArray`: a fixed-size array of transactional elements.

use std::fmt;

use crate::{Stm, TVar, Transaction};

/// A fixed-size array whose elements are separate `TVar`s (GHC's `TArray`).
///
/// # Conflicts
///
/// Per element: operations on different indices never conflict; a write of an element
/// conflicts with every read and write of that element.
///
/// # Panics
///
/// Every method that takes an index panics if it is out of bounds.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TArray;
///
/// let seats = TArray::from_fn(4, |_| None::<&str>);
/// atomically(|tx| seats.write(tx, 2, Some("ada")));
/// assert_eq!(atomically(|tx| seats.get(tx, 2)), Some("ada"));
/// assert_eq!(seats.len(), 4);
/// ```
pub struct TArray<T: Send + Sync + 'static> {
    elements: Box<[TVar<T>]>,
}

impl<T: Send + Sync + 'static> TArray<T> {
    /// An array of `len` elements, element `i` being `f(i)`.
    pub fn from_fn(len: usize, f: impl FnMut(usize) -> T) -> Self {
        TArray { elements: (0..len).map(f).map(TVar::new).collect() }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// Whether the array has no element.
    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    /// Lends element `i`.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn read<'a>(&'a self, tx: &'a Transaction<'_>, i: usize) -> Stm<&'a T> {
        tx.read(&self.elements[i])
    }

    /// A clone of element `i`.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn get(&self, tx: &Transaction<'_>, i: usize) -> Stm<T>
    where
        T: Clone,
    {
        tx.get(&self.elements[i])
    }

    /// Sets element `i` to `value`.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn write(&self, tx: &mut Transaction<'_>, i: usize, value: T) -> Stm<()> {
        tx.write(&self.elements[i], value)
    }

    /// Replaces element `i` with `f` of its value.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn modify(&self, tx: &mut Transaction<'_>, i: usize, f: impl FnOnce(&T) -> T) -> Stm<()> {
        tx.modify(&self.elements[i], f)
    }

    /// Sets element `i` to `value` and returns the value it replaces.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn replace(&self, tx: &mut Transaction<'_>, i: usize, value: T) -> Stm<T>
    where
        T: Clone,
    {
        tx.replace(&self.elements[i], value)
    }
}

impl<T: Send + Sync + 'static> FromIterator<T> for TArray<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        TArray { elements: iter.into_iter().map(TVar::new).collect() }
    }
}

impl<T: Send + Sync + 'static> fmt::Debug for TArray<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TArray").field("len", &self.elements.len()).finish_non_exhaustive()
    }
}
