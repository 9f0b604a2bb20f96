//! `Staged`: a value built in the box that a write publishes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::recycle;

/// A value already in the box that [`Transaction::write_staged`](crate::Transaction::write_staged)
/// publishes as is, so that a big value can be built, or changed, where it will stay.
///
/// [`Transaction::write`](crate::Transaction::write) moves its value into a new box: a value
/// of a few hundred bytes built on the stack is copied there, and often once more on the way
/// in. A `Staged` value is boxed when it is made ([`Staged::new`]); change it in place through
/// `DerefMut` (fill a collection with capacity in it, say), then write it: nothing moves.
///
/// Its box comes from the same per-thread recycling pool as `write`'s; dropping an unwritten
/// `Staged` drops the value and gives the box back. (For the small types a `TVar` keeps
/// inline, `write_staged` copies the value out and frees the box: no gain, no harm.)
///
/// # Examples
///
/// ```
/// use concord_stm::{atomically, Staged, TVar};
///
/// let table = TVar::new([0_u64; 64]);
/// atomically(|tx| {
///     // A copy of the table in its new box, changed there.
///     let mut next = Staged::new(*tx.read(&table)?);
///     next[7] += 1;
///     tx.write_staged(&table, next)
/// });
/// assert_eq!(table.read_atomic()[7], 1);
/// ```
pub struct Staged<T: Send + Sync + 'static> {
    /// A box from `recycle::boxed_with::<T>` holding a live `T`, owned by this handle alone
    /// (INV-STAGED).
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: a `Staged<T>` owns its `T` like a `Box<T>` (INV-STAGED), and the recycling pool's
// blocks may be freed on any thread (INV-RECYCLE).
unsafe impl<T: Send + Sync + 'static> Send for Staged<T> {}
// SAFETY: as for `Send`: shared access to a `Staged<T>` is shared access to its `T`.
unsafe impl<T: Send + Sync + 'static> Sync for Staged<T> {}

impl<T: Send + Sync + 'static> Staged<T> {
    /// `value`, moved into the box a write will publish.
    #[inline(always)]
    pub fn new(value: T) -> Self {
        let ptr = recycle::boxed(value);
        // `boxed` never returns null (it handles allocation failure).
        let ptr = NonNull::new(ptr).unwrap_or_else(|| unreachable!("boxes are never null"));
        Staged { ptr, _owns: PhantomData }
    }

    /// The value `make` returns, in the box a write will publish. Unlike [`new`](Self::new),
    /// whose argument is built before the box exists and then copied in, `make` runs once
    /// the box is there, so the optimizer may build a big value in it directly (not a
    /// guarantee: it did for `TMap`'s empty bucket, see `benches/README.md`).
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::{atomically, Staged, TVar};
    ///
    /// let grid = TVar::new([[0_u8; 32]; 32]);
    /// atomically(|tx| {
    ///     let mut next = Staged::new_with(|| [[0_u8; 32]; 32]);
    ///     next[3][4] = tx.read(&grid)?[3][4] + 1;
    ///     tx.write_staged(&grid, next)
    /// });
    /// assert_eq!(grid.read_atomic()[3][4], 1);
    /// ```
    #[inline(always)]
    pub fn new_with(make: impl FnOnce() -> T) -> Self {
        let ptr = recycle::boxed_with(make);
        // `boxed_with` never returns null (it handles allocation failure).
        let ptr = NonNull::new(ptr).unwrap_or_else(|| unreachable!("boxes are never null"));
        Staged { ptr, _owns: PhantomData }
    }

    /// The value, moved out of its box.
    pub fn into_inner(self) -> T {
        let ptr = self.into_raw();
        // SAFETY: `ptr` came from `recycle::boxed_with::<T>` and holds a live `T` that nobody
        // else uses: `into_raw` ended this handle's ownership without dropping it (INV-STAGED).
        unsafe { recycle::take_boxed(ptr) }
    }

    /// The box, given up by this handle: the caller owns its value.
    #[inline(always)]
    pub(crate) fn into_raw(self) -> *mut T {
        let ptr = self.ptr.as_ptr();
        std::mem::forget(self);
        ptr
    }
}

impl<T: Send + Sync + 'static> Deref for Staged<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the box holds a live `T` owned by this handle (INV-STAGED); `&self` keeps it.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: Send + Sync + 'static> DerefMut for Staged<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the access exclusive (INV-STAGED).
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: Send + Sync + 'static> Drop for Staged<T> {
    fn drop(&mut self) {
        // SAFETY: the box came from `recycle::boxed_with::<T>`, holds a live `T` and is owned
        // by this handle alone, which is going away (INV-STAGED).
        unsafe { recycle::drop_boxed(self.ptr.as_ptr()) };
    }
}

impl<T: Send + Sync + fmt::Debug + 'static> fmt::Debug for Staged<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Staged").field(&**self).finish()
    }
}
