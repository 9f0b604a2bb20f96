//! `TSet`: a transactional hash set, a [`TMap`] with `()` values.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::FusedIterator;

use super::map::{self, TMap};
use crate::{Stm, Transaction};

/// A transactional hash set: updates of unrelated keys do not conflict.
///
/// A [`TMap<K, ()>`](TMap) underneath, with the same structure and the same conflicts. As
/// there, a write copies its bucket, so [`insert`](Self::insert) and
/// [`remove`](Self::remove) need `K: Clone` (keep keys cheap to clone).
///
/// # Conflicts
///
/// As for [`TMap`]: [`insert`](Self::insert), [`remove`](Self::remove) and
/// [`contains`](Self::contains) conflict only with operations on keys in the same bucket
/// (and insertions and removals with each other on the same thread's stripe of the length
/// counter); [`len`](Self::len) conflicts with every insertion and removal, [`iter`](Self::iter)
/// with every write, [`clear`](Self::clear) with everything.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TSet;
///
/// let seen = TSet::new();
/// assert!(atomically(|tx| seen.insert(tx, 7)));
/// assert!(!atomically(|tx| seen.insert(tx, 7)));
/// assert!(atomically(|tx| seen.contains(tx, &7)));
/// ```
pub struct TSet<K, S = RandomState>
where
    K: Send + Sync + 'static,
{
    map: TMap<K, (), S>,
}

impl<K> TSet<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    /// An empty set.
    pub fn new() -> Self {
        TSet { map: TMap::new() }
    }

    /// An empty set sized for about `capacity` keys (see
    /// [`TMap::with_capacity`](crate::collections::TMap::with_capacity)).
    pub fn with_capacity(capacity: usize) -> Self {
        TSet { map: TMap::with_capacity(capacity) }
    }
}

impl<K> Default for TSet<K>
where
    K: Hash + Eq + Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, S> TSet<K, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    S: BuildHasher,
{
    /// An empty set that hashes keys with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        TSet { map: TMap::with_hasher(hasher) }
    }

    /// An empty set sized for about `capacity` keys that hashes keys with `hasher`.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        TSet { map: TMap::with_capacity_and_hasher(capacity, hasher) }
    }

    /// Adds `key`; returns whether it was absent.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn insert(&self, tx: &mut Transaction<'_>, key: K) -> Stm<bool>
    where
        K: Clone,
    {
        self.map.insert(tx, key, ())
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn remove<Q>(&self, tx: &mut Transaction<'_>, key: &Q) -> Stm<bool>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(tx, key)
    }

    /// Whether the set holds `key`.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn contains<Q>(&self, tx: &Transaction<'_>, key: &Q) -> Stm<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(tx, key)
    }

    /// Whether the set holds `key` at one instant, checked outside any transaction: see
    /// [`TMap::with_atomic`].
    ///
    /// # Panics
    ///
    /// Panics if called inside a transaction on this thread: use [`contains`](Self::contains)
    /// there.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::atomically;
    /// use concord_stm::collections::TSet;
    ///
    /// let seen = TSet::new();
    /// atomically(|tx| seen.insert(tx, "a").map(drop));
    /// assert!(seen.contains_atomic("a"));
    /// assert!(!seen.contains_atomic("b"));
    /// ```
    #[track_caller]
    pub fn contains_atomic<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.with_atomic(key, |v| v.is_some())
    }

    /// The number of keys.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn len(&self, tx: &Transaction<'_>) -> Stm<usize> {
        self.map.len(tx)
    }

    /// Whether the set is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_empty(&self, tx: &Transaction<'_>) -> Stm<bool> {
        self.map.is_empty(tx)
    }

    /// Removes every key.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn clear(&self, tx: &mut Transaction<'_>) -> Stm<()> {
        self.map.clear(tx)
    }
}

impl<K, S> TSet<K, S>
where
    K: Send + Sync + 'static,
{
    /// An iterator over the keys, in no particular order, as of this transaction's snapshot;
    /// see [`TMap::iter`].
    pub fn iter<'a>(&'a self, tx: &'a Transaction<'_>) -> Iter<'a, K> {
        Iter { inner: self.map.iter(tx) }
    }
}

impl<K, S> fmt::Debug for TSet<K, S>
where
    K: Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TSet").finish_non_exhaustive()
    }
}

/// The keys of a [`TSet`], read inside one transaction: see [`TSet::iter`].
#[derive(Debug)]
pub struct Iter<'a, K>
where
    K: Send + Sync + 'static,
{
    inner: map::Iter<'a, K, ()>,
}

impl<'a, K> Iterator for Iter<'a, K>
where
    K: Send + Sync + 'static,
{
    type Item = Stm<&'a K>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.inner.next()?.map(|(k, ())| k))
    }
}

impl<K> FusedIterator for Iter<'_, K> where K: Send + Sync + 'static {}
