//! `TMap`: a transactional hash map built as a hash trie of `TVar` slots.
//!
//! The trie's nodes are fixed arrays of `WIDTH` slots, each a `TVar`. A slot holds either
//! a small bucket of entries (empty included) or a child node. A key's path is fixed by its
//! hash: the root (never replaced; `WIDTH` slots, or more when the map is made with a
//! capacity, so that a big map starts shallow) takes the lowest bits, then `BITS` bits per
//! level; an update writes only the slot its bucket lives in (and
//! the calling thread's stripe of the size counter), so updates of keys in different
//! buckets never write a `TVar` the other reads. A bucket that outgrows `SPLIT` entries is
//! replaced by a child node in the same write: the table grows one slot at a time and is
//! never rehashed. Nodes are never merged back, so a slot once split stays split (removals
//! leave empty buckets behind until `clear`), which keeps the upper levels unwritten.
//!
//! Entries live in their bucket, inline in the slot's value box, behind a one-byte tag each
//! (see `bucket`): a lookup follows the root's handle, the slot's TVar core and the start of
//! the box (the tags), then reads the line of the one entry whose tag matches.
//! Buckets are fat (16 entries in place, more spill to a `Vec`, 32 before they split) and
//! a sized root aims for about 16 keys per slot, so the slots' handles and cores, and the
//! starts of the boxes, are few enough to stay in cache (at 100k keys, an earlier layout with
//! 2 keys per slot and `Arc`ed entries missed three or four times and was 2-4x slower, see
//! `benches/README.md`). The price is that a write copies its bucket (cloning the entries it
//! keeps), so keys and values must be `Clone`, and should be cheap to clone.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::iter::FusedIterator;

use self::bucket::{tag, Bucket, Entry, Tagged};
use super::TCounter;
use crate::prefetch;
use crate::{Staged, Stamp, Stm, TVar, Transaction};

/// Hash bits consumed per level.
const BITS: u32 = 5;
/// Slots per node.
const WIDTH: usize = 1 << BITS;
/// The most hash bits the root may take (a million slots).
const MAX_ROOT_BITS: u32 = 20;
/// Keys per root slot that `with_capacity` aims for: few enough that buckets rarely spill
/// past `INLINE` or split, so a lookup of a map filled to its capacity reads one TVar; many
/// enough that the root's handles and cores stay in cache.
const KEYS_PER_ROOT_SLOT: usize = 16;
/// A bucket holding this many entries becomes a node on its next insertion.
const SPLIT: usize = 32;

mod bucket;

/// A trie node: `WIDTH` slots.
type Node<K, V> = [TVar<Slot<K, V>>];

/// What a slot holds. Published values are immutable: every change writes a new `Slot`.
///
/// `repr(u8)`: the discriminant comes first, then the bucket (tags first), so a lookup
/// reads the start of the box and then the entry's line. (By default the discriminant would
/// sit in a niche of the bucket's spill `Vec`, at the box's end: one more line.)
#[repr(u8)]
enum Slot<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    Bucket(Bucket<K, V>),
    Node(Box<Node<K, V>>),
}

fn empty_node<K, V>(width: usize) -> Box<Node<K, V>>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    TVar::new_slice(width, |_| Slot::Bucket(Bucket::new()))
}

/// How a map's hash bits are cut: the root takes the lowest `root_bits`, every level below
/// the next `BITS`.
#[derive(Clone, Copy, Debug)]
struct Shape {
    root_bits: u32,
}

impl Shape {
    /// The slot index of `hash` in a node at `depth` (0: the root).
    #[inline]
    fn index(self, hash: u64, depth: u32) -> usize {
        if depth == 0 {
            (hash as usize) & ((1 << self.root_bits) - 1)
        } else {
            ((hash >> (self.root_bits + BITS * (depth - 1))) as usize) & (WIDTH - 1)
        }
    }

    /// The deepest level a node can have: its index uses the hash's last `BITS` bits (or
    /// fewer). A bucket at this depth grows without splitting (keys whose hashes agree on
    /// every bit used so far).
    fn max_depth(self) -> u32 {
        (64 - self.root_bits) / BITS
    }

    /// The shape for a map expected to hold `capacity` entries: a root of at least `WIDTH`
    /// slots, and about `KEYS_PER_ROOT_SLOT` keys per slot when full.
    fn for_capacity(capacity: usize) -> Shape {
        let slots = (capacity / KEYS_PER_ROOT_SLOT).max(WIDTH).next_power_of_two();
        Shape { root_bits: slots.trailing_zeros().min(MAX_ROOT_BITS) }
    }
}

/// Asks the CPU to start loading the cache lines of `slot` past its first one, which the
/// caller is about to read: the tags there say which entry to compare, and without this the
/// entry's line would be requested only then, one memory latency later. Loading them side by
/// side instead took a one-thread lookup in a 100k-key map from 95-184 ns to 69-88 ns, in six
/// alternated runs on the development host (a write, which copies the whole bucket, gains
/// too; see `benches/README.md`). The extra lines are wasted on a slot that holds a node;
/// nodes are few.
#[inline(always)]
fn prefetch_rest<T>(slot: &T) {
    // The 64th byte is in the second line, whatever the alignment.
    let second_line = (slot as *const T).cast::<u8>().wrapping_add(64);
    prefetch::lines(second_line, std::mem::size_of::<T>().saturating_sub(64));
}

/// A new slot, already in the box its write publishes, holding the bucket that `fill` makes
/// of an empty one: a bucket is some 300 bytes, so it is filled where it will stay, not built
/// and then moved (see `Staged`).
#[inline(always)]
fn staged_bucket<K, V>(fill: impl FnOnce(&mut Bucket<K, V>)) -> Staged<Slot<K, V>>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let mut slot = Staged::new_with(|| Slot::Bucket(Bucket::new()));
    let Slot::Bucket(bucket) = &mut *slot else { unreachable!("made a bucket above") };
    fill(bucket);
    slot
}

/// The position of `key`, whose hash is `hash`, in `bucket`.
fn find<K: Borrow<Q>, V, Q: Eq + ?Sized>(
    bucket: &Bucket<K, V>,
    hash: u64,
    key: &Q,
) -> Option<usize> {
    bucket.find(tag(hash), |k| k.borrow() == key)
}

/// A slot that a lookup outside transactions walked through (it held a node), with the stamp
/// of that read, and the slots above it: a list on the walk's stack.
struct Above<'a, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    var: &'a TVar<Slot<K, V>>,
    stamp: Stamp,
    up: Option<&'a Above<'a, K, V>>,
}

impl<K, V> Above<'_, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Whether every slot of the list still holds what the walk read there.
    fn unchanged(mut slot: Option<&Self>) -> bool {
        while let Some(s) = slot {
            if !s.var.unchanged_since(s.stamp) {
                return false;
            }
            slot = s.up;
        }
        true
    }
}

/// The slot a key's bucket lives in, as read by this transaction.
struct Found<'a, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    var: &'a TVar<Slot<K, V>>,
    bucket: &'a Bucket<K, V>,
    depth: u32,
}

impl<K, V> Found<'_, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A handle of the slot to write, if it is below the root; `None` for a root slot, which
    /// the writer borrows from the map instead (`TMap::root_slot`). A slot below the root is
    /// borrowed from the transaction's read of the node above it, a borrow that must end
    /// before the write; a root slot is not, so most writes, which end at the root in a map
    /// sized for its keys, skip the clone and its drop: two atomic read-modify-writes of the
    /// slot's reference count: 0.93x the time of an overwrite at the root (one thread, a map
    /// of 100k keys made with that capacity, eight alternated runs).
    fn var_below_root(&self) -> Option<TVar<Slot<K, V>>> {
        (self.depth > 0).then(|| self.var.clone())
    }
}

/// A transactional hash map: updates of unrelated keys do not conflict.
///
/// All operations run inside a transaction ([`atomically`](crate::atomically)) and compose
/// with any other transactional operation: move an entry between two maps, or insert only
/// if a queue is not full, atomically. A lookup that is a whole transaction by itself can
/// skip the transaction: [`get_atomic`](Self::get_atomic) and
/// [`with_atomic`](Self::with_atomic) (like [`TVar::read_atomic`]) are cheaper.
///
/// The map is a hash trie whose nodes are arrays of 32 `TVar` slots; a slot holds a bucket
/// of about 32 entries at most or a child node, and a full bucket splits into a node by rewriting
/// only its own slot, so the map grows without ever rehashing (see the
/// [module docs](crate::collections::map)). Its length is kept in a [`TCounter`], striped
/// per thread. Values are read in place ([`read`](Self::read) lends `&V`);
/// [`get`](Self::get) clones.
///
/// # Cost of a write
///
/// Entries are stored in their bucket, not boxed one by one (a lookup then misses the cache
/// about once). So a write ([`insert`](Self::insert), [`remove`](Self::remove),
/// [`update`](Self::update)) publishes a new copy of its bucket, cloning the other entries
/// in it (8 to 16 in a map filled to its capacity, about 32 at most): these methods need
/// `K: Clone` and `V: Clone`, and keys and values should be cheap to clone (integers,
/// `Arc`, `bytes::Bytes`, a `TVar` to update in place). Wrap big or non-`Clone` values in
/// an `Arc`.
///
/// # Conflicts
///
/// Two keys *share a bucket* when their hashes agree on the bits the trie uses at the
/// bucket's depth (about 32 keys at most share one, except for full hash collisions).
///
/// - Reads ([`read`](Self::read), [`get`](Self::get), [`contains_key`](Self::contains_key))
///   never conflict with each other, nor with writes of keys in other buckets.
/// - Writes ([`insert`](Self::insert), [`remove`](Self::remove), [`update`](Self::update))
///   conflict with reads and writes of keys in the same bucket only. Writes that change the
///   length also write the calling thread's stripe of the length counter: two threads
///   conflict there only if they hold the same stripe (see [`TCounter`]).
/// - [`len`](Self::len) and [`is_empty`](Self::is_empty) read every stripe: they conflict
///   with every insertion of a new key and every removal.
/// - [`iter`](Self::iter) reads every slot it passes: it conflicts with every write.
/// - [`clear`](Self::clear) writes the root and every stripe: it conflicts with everything.
/// - [`get_atomic`](Self::get_atomic) and [`with_atomic`](Self::with_atomic) run outside
///   transactions and make none abort. They wait while a commit that writes a slot on their
///   key's path publishes (or a serial transaction that read it runs), and walk again if a
///   slot above their key's bucket changed while they read it (only `clear` writes those) or
///   was locked by a serial transaction that read it.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TMap;
///
/// let stock: TMap<&str, u32> = TMap::new();
/// atomically(|tx| {
///     stock.insert(tx, "apple", 3)?;
///     stock.insert(tx, "pear", 1)
/// });
/// // Sell one pear, atomically with checking that there is one.
/// let sold = atomically(|tx| {
///     let n = stock.get(tx, "pear")?.unwrap_or(0);
///     if n == 0 {
///         return Ok(false);
///     }
///     stock.update(tx, "pear", |n| n.map(|n| n - 1).filter(|&n| n > 0))?;
///     Ok(true)
/// });
/// assert!(sold);
/// assert_eq!(atomically(|tx| stock.contains_key(tx, "pear")), false);
/// assert_eq!(atomically(|tx| stock.len(tx)), 1);
/// ```
pub struct TMap<K, V, S = RandomState>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    root: Box<Node<K, V>>,
    shape: Shape,
    len: TCounter,
    hasher: S,
}

impl<K, V> TMap<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// An empty map.
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }

    /// An empty map sized for about `capacity` entries: its root has a slot per 8 to 16 of
    /// them (a power of two, at least 32, at most 2^20), so that a lookup in a map filled
    /// that far reads one `TVar` (its root slot) instead of a path down the trie. A map
    /// still grows past its capacity (and works below it). The root's empty buckets are
    /// allocated at once: about 360 bytes per slot for `u64` keys and values (a 320-byte
    /// bucket box with room for 16 entries, the TVar core and its handle), 22 to 45 bytes per
    /// entry of capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::atomically;
    /// use concord_stm::collections::TMap;
    ///
    /// let m: TMap<u64, u64> = TMap::with_capacity(100_000);
    /// atomically(|tx| (0..1000).try_for_each(|k| m.insert(tx, k, k).map(drop)));
    /// assert_eq!(atomically(|tx| m.get(tx, &999)), Some(999));
    /// ```
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher(capacity, RandomState::new())
    }
}

impl<K, V> Default for TMap<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V, S> TMap<K, V, S>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// An empty map that hashes keys with `hasher`.
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher(0, hasher)
    }

    /// An empty map sized for about `capacity` entries (see
    /// [`with_capacity`](TMap::with_capacity)) that hashes keys with `hasher`.
    pub fn with_capacity_and_hasher(capacity: usize, hasher: S) -> Self {
        let shape = Shape::for_capacity(capacity);
        TMap { root: empty_node(1 << shape.root_bits), shape, len: TCounter::new(), hasher }
    }

    /// The root slot on `hash`'s path.
    #[inline(always)]
    fn root_slot(&self, hash: u64) -> &TVar<Slot<K, V>> {
        &self.root[self.shape.index(hash, 0)]
    }

    /// Walks from the root to the slot that holds `hash`'s bucket.
    #[inline(always)]
    fn locate<'a>(&'a self, tx: &'a Transaction<'_>, hash: u64) -> Stm<Found<'a, K, V>> {
        let mut depth = 0;
        let mut var = self.root_slot(hash);
        loop {
            let slot = tx.read(var)?;
            prefetch_rest(slot);
            match slot {
                Slot::Bucket(bucket) => return Ok(Found { var, bucket, depth }),
                Slot::Node(children) => {
                    depth += 1;
                    var = &children[self.shape.index(hash, depth)];
                }
            }
        }
    }

    /// Lends the value of `key`, or `None` if absent.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    #[inline]
    pub fn read<'a, Q>(&'a self, tx: &'a Transaction<'_>, key: &Q) -> Stm<Option<&'a V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let found = self.locate(tx, hash)?;
        Ok(find(found.bucket, hash, key).map(|i| &found.bucket.get(i).value))
    }

    /// Lends `f` the value of `key` (`None` if absent) as of one instant, outside any
    /// transaction: the map's counterpart of [`TVar::with_atomic`].
    ///
    /// For a lookup that is a whole transaction by itself, this is cheaper than
    /// `atomically(|tx| map.read(tx, key) ...)`: it takes no snapshot and logs nothing, and
    /// reads each slot on the key's path as [`TVar::with_atomic_stamped`] does, then checks
    /// that the slots above the key's bucket did not change meanwhile (else it walks again).
    /// The result is linearizable: it is the key's value at some instant between the call and
    /// its return. It waits (spinning, then yielding) while a slot on the path is locked: by
    /// a commit that writes it, for as long as the commit publishes, or by a serial
    /// transaction that read it, for the rest of that transaction.
    ///
    /// # Panics
    ///
    /// Panics if called inside a transaction on this thread: use [`read`](Self::read) there,
    /// so that the lookup joins the transaction's snapshot.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::atomically;
    /// use concord_stm::collections::TMap;
    ///
    /// let m: TMap<String, Vec<u8>> = TMap::new();
    /// atomically(|tx| m.insert(tx, "k".to_owned(), vec![1, 2, 3]).map(drop));
    /// assert_eq!(m.with_atomic("k", |v| v.map(Vec::len)), Some(3));
    /// assert_eq!(m.with_atomic("absent", |v| v.is_some()), false);
    /// ```
    #[track_caller]
    #[inline]
    pub fn with_atomic<Q, R>(&self, key: &Q, f: impl FnOnce(Option<&V>) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let root = self.root_slot(hash);
        let (mut f, mut walks) = (f, 0_u32);
        loop {
            match self.walk_atomic(root, 0, None, hash, key, f) {
                Ok(out) => return out,
                Err(unused) => f = unused,
            }
            // A slot above the bucket changed or was locked: another thread is committing.
            // Let it finish (`TVar::with_atomic` waits the same way for a locked slot).
            walks = walks.saturating_add(1);
            if walks < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// A clone of the value of `key` (`None` if absent) as of one instant, outside any
    /// transaction: see [`with_atomic`](Self::with_atomic).
    ///
    /// # Panics
    ///
    /// Panics if called inside a transaction on this thread: use [`get`](Self::get) there.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::atomically;
    /// use concord_stm::collections::TMap;
    ///
    /// let m: TMap<u64, u64> = TMap::with_capacity(1000);
    /// atomically(|tx| m.insert(tx, 7, 49).map(drop));
    /// assert_eq!(m.get_atomic(&7), Some(49));
    /// assert_eq!(m.get_atomic(&8), None);
    /// ```
    #[track_caller]
    #[inline]
    pub fn get_atomic<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.with_atomic(key, |v| v.cloned())
    }

    /// `with_atomic` from the slot `var`, at `depth`, down, below the slots `above` (none for
    /// a root slot): `f`'s result if every slot above still held, when the walk read the
    /// bucket, what the walk read there; else `f` back, uncalled, to walk again.
    ///
    /// Why that makes the lookup linearizable: each slot is read at one instant
    /// (`TVar::with_atomic_stamped`), the root slot first, the bucket last, and the slots above
    /// the bucket are found unchanged after the bucket's read, so at the instant of that read
    /// the whole path was current: the bucket was the key's. A commit that wrote both the
    /// bucket and a slot above it (`clear` in the transaction that wrote the bucket) locked
    /// both before publishing either, so a walk that saw its bucket sees the slot above
    /// locked or changed, and walks again (INV-STAMP). Each `TVar::with_atomic_stamped` pins
    /// until it returns, so the nodes above stay allocated (INV-PIN, INV-RECLAIM). Most
    /// lookups in a map sized for its keys end at the root slot, with nothing to check.
    #[track_caller]
    fn walk_atomic<Q, R, F>(
        &self,
        var: &TVar<Slot<K, V>>,
        depth: u32,
        above: Option<&Above<'_, K, V>>,
        hash: u64,
        key: &Q,
        f: F,
    ) -> Result<R, F>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        F: FnOnce(Option<&V>) -> R,
    {
        var.with_atomic_stamped(|slot, stamp| {
            prefetch_rest(slot);
            match slot {
                Slot::Bucket(_) if !Above::unchanged(above) => Err(f),
                Slot::Bucket(bucket) => {
                    Ok(f(find(bucket, hash, key).map(|i| &bucket.get(i).value)))
                }
                Slot::Node(children) => {
                    let child = &children[self.shape.index(hash, depth + 1)];
                    let here = Above { var, stamp, up: above };
                    self.walk_atomic(child, depth + 1, Some(&here), hash, key, f)
                }
            }
        })
    }

    /// A clone of the value of `key`, or `None` if absent.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn get<Q>(&self, tx: &Transaction<'_>, key: &Q) -> Stm<Option<V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        Ok(self.read(tx, key)?.cloned())
    }

    /// Whether the map holds `key`.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn contains_key<Q>(&self, tx: &Transaction<'_>, key: &Q) -> Stm<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        Ok(self.read(tx, key)?.is_some())
    }

    /// The number of entries.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn len(&self, tx: &Transaction<'_>) -> Stm<usize> {
        let n = self.len.get(tx)?;
        Ok(usize::try_from(n).expect("the stripes of a map's length sum to its entry count"))
    }

    /// Whether the map is empty.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn is_empty(&self, tx: &Transaction<'_>) -> Stm<bool> {
        Ok(self.len(tx)? == 0)
    }

    /// Removes every entry.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn clear(&self, tx: &mut Transaction<'_>) -> Stm<()> {
        for var in self.root.iter() {
            tx.write(var, Slot::Bucket(Bucket::new()))?;
        }
        self.len.set(tx, 0)
    }
}

impl<K, V, S> TMap<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher,
{
    /// Sets `key` to `value`. Returns `true` if the key was absent (like
    /// [`HashSet::insert`](std::collections::HashSet::insert)); a present key's value is
    /// replaced (and dropped once no transaction can still read it).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn insert(&self, tx: &mut Transaction<'_>, key: K, value: V) -> Stm<bool> {
        let mut added = false;
        self.update(tx, key, |old| {
            added = old.is_none();
            Some(value)
        })?;
        Ok(added)
    }

    /// Removes `key`. Returns whether it was present.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn remove<Q>(&self, tx: &mut Transaction<'_>, key: &Q) -> Stm<bool>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let found = self.locate(tx, hash)?;
        let Some(i) = find(found.bucket, hash, key) else {
            return Ok(false);
        };
        let slot = staged_bucket(|b| b.set_without(found.bucket, i));
        let below = found.var_below_root();
        tx.write_staged(below.as_ref().unwrap_or_else(|| self.root_slot(hash)), slot)?;
        self.len.add(tx, -1)?;
        Ok(true)
    }

    /// Reads and changes the entry of `key` in one walk: `f` gets the current value (`None`
    /// if absent) and returns the new one (`None` to remove the entry). Nothing is written
    /// if the key is absent and stays absent.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::atomically;
    /// use concord_stm::collections::TMap;
    ///
    /// let words: TMap<String, u32> = TMap::new();
    /// for w in ["a", "b", "a"] {
    ///     atomically(|tx| words.update(tx, w.to_owned(), |n| Some(n.map_or(1, |n| n + 1))));
    /// }
    /// assert_eq!(atomically(|tx| words.get(tx, "a")), Some(2));
    /// ```
    pub fn update(
        &self,
        tx: &mut Transaction<'_>,
        key: K,
        f: impl FnOnce(Option<&V>) -> Option<V>,
    ) -> Stm<()> {
        let hash = self.hasher.hash_one(&key);
        let found = self.locate(tx, hash)?;
        let pos = find(found.bucket, hash, &key);
        let new = f(pos.map(|i| &found.bucket.get(i).value));
        let (mut slot, delta) = match (pos, new) {
            (None, None) => return Ok(()),
            (Some(i), None) => (staged_bucket(|b| b.set_without(found.bucket, i)), -1),
            (Some(i), Some(value)) => {
                (staged_bucket(|b| b.set_replaced(found.bucket, i, Entry { key, value })), 0)
            }
            (None, Some(value)) => {
                let entry = Entry { key, value };
                (staged_bucket(|b| b.set_added(found.bucket, tag(hash), entry)), 1)
            }
        };
        if delta > 0 {
            self.split_if_full(&mut slot, found.depth);
        }
        let below = found.var_below_root();
        tx.write_staged(below.as_ref().unwrap_or_else(|| self.root_slot(hash)), slot)?;
        if delta != 0 {
            self.len.add(tx, delta)?;
        }
        Ok(())
    }
}

impl<K, V, S> TMap<K, V, S>
where
    K: Hash + Send + Sync + 'static,
    V: Send + Sync + 'static,
    S: BuildHasher,
{
    /// Makes `slot`, at `depth`, a node one level down if it holds a bucket that an insertion
    /// took past `SPLIT` entries (unless no level is left): the bucket's entries move to the
    /// node's, their hashes computed again (buckets keep only a byte of each).
    fn split_if_full(&self, slot: &mut Slot<K, V>, depth: u32) {
        let Slot::Bucket(bucket) = slot else { return };
        if bucket.len() <= SPLIT || depth == self.shape.max_depth() {
            return;
        }
        let bucket = std::mem::replace(bucket, Bucket::new());
        let mut children: [Bucket<K, V>; WIDTH] = std::array::from_fn(|_| Bucket::new());
        for entry in bucket.into_entries() {
            let hash = self.hasher.hash_one(&entry.key);
            children[self.shape.index(hash, depth + 1)].push(tag(hash), entry);
        }
        *slot = Slot::Node(TVar::new_slice(WIDTH, |i| {
            Slot::Bucket(std::mem::replace(&mut children[i], Bucket::new()))
        }));
    }
}

impl<K, V, S> TMap<K, V, S>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// An iterator over the entries, in no particular order, as of this transaction's
    /// snapshot (with its own writes). Each item is a `Result`: a read that finds a
    /// conflict yields the error (propagate it with `?`) and ends the iteration.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::{atomically, Stm};
    /// use concord_stm::collections::TMap;
    ///
    /// let m = TMap::new();
    /// atomically(|tx| (0..10).try_for_each(|i| m.insert(tx, i, i * i).map(drop)));
    /// let sum = atomically(|tx| m.iter(tx).map(|e| e.map(|(_, v)| v)).sum::<Stm<i32>>());
    /// assert_eq!(sum, 285);
    /// ```
    pub fn iter<'a>(&'a self, tx: &'a Transaction<'_>) -> Iter<'a, K, V> {
        Iter { tx, stack: vec![(&self.root[..], 0)], inline: &[], spill: &[] }
    }
}

impl<K, V, S> fmt::Debug for TMap<K, V, S>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The contents are transactional: read them with `iter` inside a transaction.
        f.debug_struct("TMap").finish_non_exhaustive()
    }
}

/// The entries of a [`TMap`], read inside one transaction: see [`TMap::iter`].
pub struct Iter<'a, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    tx: &'a Transaction<'a>,
    /// The nodes being walked, with the next slot to visit in each.
    stack: Vec<(&'a Node<K, V>, usize)>,
    /// What is left of the current bucket: entries in place, then spilled ones.
    inline: &'a [Entry<K, V>],
    spill: &'a [Tagged<K, V>],
}

impl<'a, K, V> Iterator for Iter<'a, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    type Item = Stm<(&'a K, &'a V)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((entry, rest)) = self.inline.split_first() {
                self.inline = rest;
                return Some(Ok((&entry.key, &entry.value)));
            }
            if let Some(((_, entry), rest)) = self.spill.split_first() {
                self.spill = rest;
                return Some(Ok((&entry.key, &entry.value)));
            }
            let (node, next) = self.stack.last_mut()?;
            let Some(var) = node.get(*next) else {
                self.stack.pop();
                continue;
            };
            *next += 1;
            match self.tx.read(var) {
                Ok(Slot::Bucket(bucket)) => (self.inline, self.spill) = bucket.parts(),
                Ok(Slot::Node(children)) => self.stack.push((children, 0)),
                Err(e) => {
                    self.stack.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<K, V> FusedIterator for Iter<'_, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
}

impl<K, V> fmt::Debug for Iter<'_, K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").field("depth", &self.stack.len()).finish_non_exhaustive()
    }
}
