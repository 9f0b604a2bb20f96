//! `TVar`: a transactional variable.
//!
//! Memory layout: a `TVar<T>` is one pointer to a heap-allocated [`Core`]: the versioned lock
//! word, a reference count, and an atomic pointer to the current value, itself a separate
//! immutable box. Writers never mutate a published value; a commit installs a new box and
//! retires the old one through the epoch collector (INV-PUBLISHED, INV-RECLAIM).

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::inline::{self, is_inline};
use crate::lock_word::{self, is_locked, same_state, WAITERS};
use crate::sync::{fence, spin_hint, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::{reclaim, recycle};

/// The type-independent part of a TVar's core: what the read set, the commit and the wait
/// table need, so their logs can hold `*const Header` without knowing `T`.
///
/// Fields and who touches them:
/// - `lock`: readers load it; committers CAS the lock bit in and swap a new version in;
///   waiters `fetch_or` the waiter bit (see `lock_word`).
/// - `refs`: the handles (`TVar` clones) alive; the last drop retires the core.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) lock: AtomicU64,
    refs: AtomicUsize,
}

/// A TVar's heap cell: the header first (`repr(C)`), so a `*const Core<T>` is a valid
/// `*const Header` (INV-HEADER).
#[repr(C)]
pub(crate) struct Core<T: 'static> {
    pub(crate) header: Header,
    /// The value word: a pointer from `recycle::boxed::<T>`, never null, never mutated
    /// through; or, for an inline `T`, the value's bits, never dereferenced (INV-INLINE).
    pub(crate) value: AtomicPtr<T>,
}

impl<T: 'static> Drop for Core<T> {
    fn drop(&mut self) {
        if is_inline::<T>() {
            return; // the word is the value's bits: no box (INV-INLINE)
        }
        let ptr = self.value.load(Ordering::Relaxed);
        // SAFETY: `&mut self` means the core is retired and unreachable (INV-RECLAIM), so the
        // current value box, made by `recycle::boxed`, is owned by the core alone
        // (INV-PUBLISHED).
        unsafe { recycle::drop_boxed(ptr) };
    }
}

/// What a read outside transactions is called in the panic that refuses one inside a
/// transaction: `with_atomic` serves `TVar::read_atomic` and the collections' lookups alike.
const OUTSIDE_READ: &str = "a read outside transactions (`TVar::read_atomic` or `with_atomic`, \
     or a collection's `*_atomic` lookup such as `TMap::get_atomic`)";

/// Which commit wrote the value a read outside transactions found in a TVar: from
/// [`TVar::with_atomic_stamped`], for [`TVar::unchanged_since`]. Two stamps of one TVar are
/// equal when they come from reads of the same value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp(u64);

impl Stamp {
    /// The stamp of a read made under the unlocked lock word `word`: its version (the waiter
    /// bit, which a waiter sets without changing the TVar, is dropped).
    fn of(word: u64) -> Stamp {
        debug_assert!(!is_locked(word), "a stable read is made under an unlocked word");
        Stamp(word & !WAITERS)
    }
}

/// A transactional variable holding a `T`.
///
/// Read and write it inside [`atomically`](crate::atomically) with
/// [`Transaction::read`](crate::Transaction::read) and
/// [`Transaction::write`](crate::Transaction::write); read it outside a transaction with
/// [`TVar::read_atomic`].
///
/// A `TVar` is a handle: `clone` gives another handle to the same variable (like an `Arc`),
/// and `==` compares identity.
///
/// # Size
///
/// `size_of::<TVar<T>>()` is one pointer (8 bytes on 64-bit targets). On the heap, each TVar
/// owns a 24-byte core (lock word, reference count, value word).
///
/// Small plain types are kept **inline**, in the value word itself: the integer types,
/// `bool`, `char`, `f32`, `f64` and `()` (when they fit in a pointer). A `TVar<u64>` then
/// takes 32 heap bytes with glibc's allocator (one chunk), a write to it allocates nothing,
/// and a read loads no second cache line. [`Transaction::get`](crate::Transaction::get)
/// copies such a value out; [`Transaction::read`](crate::Transaction::read) lends a copy
/// kept for the rest of the attempt.
///
/// Any other `T` (newtypes and small structs included: Rust cannot tell, without
/// specialization, which are plain) lives in a separate immutable box the word points at:
/// a `TVar<T>` takes the core plus a box for the current value, and each write allocates a
/// new box (recycled per thread, see the crate docs); the old one is freed by the epoch
/// collector.
///
/// # Examples
///
/// ```
/// use concord_stm::{atomically, TVar};
///
/// let balance = TVar::new(100_u64);
/// atomically(|tx| tx.modify(&balance, |b| b + 10));
/// assert_eq!(balance.read_atomic(), 110);
/// ```
pub struct TVar<T: Send + Sync + 'static> {
    core: NonNull<Core<T>>,
    _owns: PhantomData<Core<T>>,
}

// SAFETY: a `TVar<T>` gives shared access to `T` values from any thread (`T: Sync`), and a
// value may be dropped by whichever thread runs the epoch collector (`T: Send`); both are
// required by the struct's bounds. The core's own fields are atomics (INV-PUBLISHED).
unsafe impl<T: Send + Sync + 'static> Send for TVar<T> {}
// SAFETY: as for `Send`: all access to the core goes through atomics, and values are only
// ever shared immutably (INV-PUBLISHED).
unsafe impl<T: Send + Sync + 'static> Sync for TVar<T> {}

impl<T: Send + Sync + 'static> TVar<T> {
    /// Creates a TVar holding `value`, at version 0.
    pub fn new(value: T) -> Self {
        let value = value_word(value).0.cast::<T>();
        let core = Box::new(Core {
            header: Header {
                lock: AtomicU64::new(lock_word::at_version(0)),
                refs: AtomicUsize::new(1),
            },
            value: AtomicPtr::new(value),
        });
        Self { core: NonNull::from(Box::leak(core)), _owns: PhantomData }
    }

    /// `n` TVars holding `value(0)` to `value(n - 1)`, for a table of them.
    ///
    /// Unlike `(0..n).map(|i| TVar::new(value(i)))`, it allocates the cores one after
    /// another before any value, so that with a bump-like allocator (glibc's, on a fresh
    /// heap) they sit side by side, two to a cache line, instead of each between two value
    /// boxes. For tables read at random (a hash map's root): the cores then stay in cache,
    /// and a read misses on the value box only.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::{atomically, TVar};
    ///
    /// let table = TVar::new_slice(4, |i| vec![i; i]);
    /// assert_eq!(atomically(|tx| Ok(tx.read(&table[3])?.len())), 3);
    /// ```
    pub fn new_slice(n: usize, mut value: impl FnMut(usize) -> T) -> Box<[TVar<T>]> {
        // Null value words until the second pass; a panic in `value` leaks the rest of the
        // cores (`ManuallyDrop`) rather than drop a core whose word is not a value's.
        let cores: Vec<ManuallyDrop<Box<Core<T>>>> = (0..n)
            .map(|_| {
                ManuallyDrop::new(Box::new(Core {
                    header: Header {
                        lock: AtomicU64::new(lock_word::at_version(0)),
                        refs: AtomicUsize::new(1),
                    },
                    value: AtomicPtr::new(std::ptr::null_mut()),
                }))
            })
            .collect();
        let vars = cores.into_iter().enumerate().map(|(i, core)| {
            // Relaxed: the core is not shared yet; handing the `TVar` to other threads
            // publishes it (as in `new`).
            core.value.store(value_word(value(i)).0.cast::<T>(), Ordering::Relaxed);
            Self {
                core: NonNull::from(Box::leak(ManuallyDrop::into_inner(core))),
                _owns: PhantomData,
            }
        });
        vars.collect()
    }

    /// The core. Valid while `self` lives: `self` holds a reference count.
    #[inline]
    pub(crate) fn core(&self) -> &Core<T> {
        // SAFETY: `self` holds one of the core's references, so the core is not retired
        // while `self` lives (INV-REFS).
        unsafe { self.core.as_ref() }
    }

    /// The type-erased header, for the logs (INV-HEADER).
    #[inline]
    pub(crate) fn header(&self) -> *const Header {
        self.core.as_ptr().cast::<Header>()
    }

    /// Reads a consistent value outside any transaction (GHC's `readTVarIO`) and clones it.
    ///
    /// Cheaper than `atomically(|tx| tx.get(&v))`: it takes no snapshot and logs nothing. It
    /// waits (spinning, then yielding) while a commit to this TVar is in progress.
    ///
    /// # Panics
    ///
    /// Panics if called inside a transaction on this thread: read through the transaction
    /// (`tx.get(&v)`) so that the read is part of its snapshot.
    #[track_caller]
    pub fn read_atomic(&self) -> T
    where
        T: Clone,
    {
        self.with_atomic(T::clone)
    }

    /// Like [`read_atomic`](Self::read_atomic), but lends the value to `f` instead of
    /// cloning it.
    ///
    /// # Panics
    ///
    /// Panics if called inside a transaction on this thread (see `read_atomic`).
    #[track_caller]
    #[inline]
    pub fn with_atomic<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        self.with_atomic_stamped(|value, _| f(value))
    }

    /// Like [`with_atomic`](Self::with_atomic), and lends `f` the [`Stamp`] of the value too:
    /// with [`unchanged_since`](Self::unchanged_since), a read of several TVars outside
    /// transactions can check that the ones it read first still held their values when it
    /// read the last (as a seqlock reader does). That works because a commit locks every
    /// TVar it writes before it publishes any new value: a reader that saw one of its values
    /// finds the others locked or changed.
    ///
    /// # Panics
    ///
    /// Panics if called inside a transaction on this thread (see `read_atomic`).
    ///
    /// # Examples
    ///
    /// Follow a pointer from one TVar to another and return a pair that was current at one
    /// instant, or `None` if the first changed meanwhile (then read again):
    ///
    /// ```
    /// use concord_stm::{atomically, TVar};
    ///
    /// let second = TVar::new(String::from("b"));
    /// let first = TVar::new((String::from("a"), second.clone()));
    /// let read_pair = || {
    ///     first.with_atomic_stamped(|(a, next), stamp| {
    ///         let b = next.read_atomic();
    ///         first.unchanged_since(stamp).then(|| (a.clone(), b))
    ///     })
    /// };
    /// assert_eq!(read_pair(), Some(("a".to_owned(), "b".to_owned())));
    ///
    /// // A commit since the stamp was taken makes `unchanged_since` false.
    /// let stamp = first.with_atomic_stamped(|_, stamp| stamp);
    /// atomically(|tx| tx.write(&first, (String::from("c"), second.clone())));
    /// assert!(!first.unchanged_since(stamp));
    /// ```
    #[track_caller]
    #[inline]
    pub fn with_atomic_stamped<R>(&self, f: impl FnOnce(&T, Stamp) -> R) -> R {
        if is_inline::<T>() {
            crate::tx::assert_not_in_transaction(OUTSIDE_READ);
            // A copy of the word: nothing to dereference, so no pin.
            let (word, lock) = stable_value(self.core());
            // SAFETY: this TVar's words are made by `to_word::<T>` (INV-INLINE).
            return f(&unsafe { inline::from_word::<T>(word.cast()) }, Stamp::of(lock));
        }
        let guard = crate::tx::pin_outside_transaction(OUTSIDE_READ);
        let (ptr, lock) = stable_value(self.core());
        // SAFETY: `guard` pins this thread and was taken before `stable_value` loaded `ptr`;
        // the value is freed no earlier than every such pin ends (INV-RECLAIM) and is never
        // mutated after publication (INV-PUBLISHED).
        let value = unsafe { &*ptr };
        let out = f(value, Stamp::of(lock));
        drop(guard);
        out
    }

    /// Whether this TVar still holds the value that the read which gave `stamp` found, and
    /// is not locked (INV-STAMP). Use it after reading other TVars: if it holds, the value
    /// `stamp` came with was current until after those reads.
    ///
    /// `false` may only mean that the TVar is locked: by a commit that is writing it (or that
    /// will give up), or by a serial transaction that read it. Read again then.
    ///
    /// `stamp` must come from a read of this TVar; from another one, the answer means
    /// nothing.
    #[must_use]
    #[inline]
    pub fn unchanged_since(&self, stamp: Stamp) -> bool {
        // Acquire: loaded after, and ordered after, the reads made since `stamp` (their loads
        // are Acquire too). A committer locks this TVar before it publishes any of its
        // values, so a reader that saw one of them finds the lock or the new version here;
        // pairs with the Release stores that unlock in `commit::publish`.
        same_state(stamp.0, self.core().header.lock.load(Ordering::Acquire))
    }

    /// Whether `self` and `other` are handles to the same TVar.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.core == other.core
    }

    /// A stable identity for the TVar while it lives (its core's address): the same number
    /// appears in [`stats::Conflict::tvar`](crate::stats::Conflict).
    pub fn id(&self) -> usize {
        self.core.as_ptr() as usize
    }

    /// The version of the commit that wrote the current value (0 for a fresh TVar).
    pub fn version(&self) -> u64 {
        // Relaxed: an informational read; nothing is inferred from it about other memory.
        lock_word::version(self.core().header.lock.load(Ordering::Relaxed))
    }
}

/// The value word that publishes `value` in a `TVar<T>`, with how to give it back: the bits
/// of an inline `T` (INV-INLINE), else a box from the recycling pool (INV-PUBLISHED).
#[inline(always)]
pub(crate) fn value_word<T: 'static>(value: T) -> (*mut (), recycle::Disposal) {
    if is_inline::<T>() {
        (inline::to_word(value), recycle::Disposal::Inline)
    } else {
        (recycle::boxed(value).cast::<()>(), recycle::Disposal::of::<T>())
    }
}

/// Loads a value pointer that is current at one instant, with the lock word it was loaded
/// under: the word was unlocked and unchanged around the pointer load (INV-VERSION). Spins,
/// then yields, while locked.
pub(crate) fn stable_value<T: 'static>(core: &Core<T>) -> (*mut T, u64) {
    let mut spins = 0_u32;
    loop {
        // Acquire pairs with the Release store that unlocks in `commit::publish` (and the
        // Release `fetch_and` of a committer or serial transaction that gives up).
        let before = core.header.lock.load(Ordering::Acquire);
        if !is_locked(before) {
            // Acquire pairs with the Release store of the pointer in `commit::publish`, and
            // keeps the re-load below after this load.
            let ptr = core.value.load(Ordering::Acquire);
            let after = core.header.lock.load(Ordering::Acquire);
            if same_state(before, after) {
                return (ptr, before);
            }
        }
        spins += 1;
        if spins < 64 {
            spin_hint();
        } else {
            crate::sync::yield_now();
        }
    }
}

impl<T: Send + Sync + 'static> Clone for TVar<T> {
    fn clone(&self) -> Self {
        // Relaxed: taking a new reference needs no ordering; `self` already keeps the core
        // alive (as in `Arc::clone`).
        let old = self.core().header.refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // A count this high means handles were leaked in a loop; wrapping it would free a
            // core still in use. Abort, as `Arc` does.
            std::process::abort();
        }
        Self { core: self.core, _owns: PhantomData }
    }
}

impl<T: Send + Sync + 'static> Drop for TVar<T> {
    fn drop(&mut self) {
        // Release pairs with the Acquire fence below in whichever drop is last (as in
        // `Arc::drop`): every use through other handles happens before the retirement.
        if self.core().header.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let guard = reclaim::pin();
        // SAFETY: this was the last handle, so no new reference to the core can be made;
        // transactions that logged it earlier pinned before we did and keep it alive until
        // they unpin (INV-RECLAIM, INV-REFS). The core came from `Box::into_raw` in `new`.
        unsafe { reclaim::retire_box(&guard, self.core.as_ptr()) };
    }
}

impl<T: Send + Sync + 'static> PartialEq for TVar<T> {
    fn eq(&self, other: &Self) -> bool {
        self.ptr_eq(other)
    }
}

impl<T: Send + Sync + 'static> Eq for TVar<T> {}

impl<T: Send + Sync + 'static> std::hash::Hash for TVar<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<T: Send + Sync + 'static + Default> Default for TVar<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Send + Sync + 'static + fmt::Debug> fmt::Debug for TVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TVar");
        d.field("id", &format_args!("{:#x}", self.id())).field("version", &self.version());
        if crate::tx::in_transaction() {
            d.field("value", &format_args!("<inside a transaction: use tx.read>"));
        } else {
            self.with_atomic(|v| {
                d.field("value", v);
            });
        }
        d.finish()
    }
}
