//! Inline values: small plain types kept in the TVar's value word itself, with no box.
//!
//! A TVar's value word normally points at an immutable box (INV-PUBLISHED). For a `u64` that
//! costs, on every write, a box to fill and a retirement through the epoch collector, and on
//! every read a second cache line (the box) besides the lock word's. A mutex-protected
//! counter has neither. So for the types below the word holds the value's bits instead, read
//! and written under the same lock-word protocol as a pointer (INV-VERSION), and copied out,
//! never dereferenced (INV-INLINE).
//!
//! Rust has no specialization, so the types are picked by `TypeId`: the integers, `bool`,
//! `char`, `f32`, `f64` and `()`, when they fit in a pointer. Each is `Copy`, has no drop
//! glue and no padding, so a bitwise copy of it is the value, and every byte of a word made
//! by [`to_word`] is initialized. Other types (newtypes included) are boxed as before.

use std::any::TypeId;
use std::mem::{align_of, size_of};
use std::ptr;

/// Whether `TVar<T>` keeps its value in the word (the test folds to a constant per `T`).
#[inline(always)]
pub(crate) fn is_inline<T: 'static>() -> bool {
    if size_of::<T>() > size_of::<usize>() || align_of::<T>() > align_of::<usize>() {
        return false;
    }
    let t = TypeId::of::<T>();
    /// `t` is one of the listed types.
    macro_rules! one_of {
        ($($ty:ty),*) => { false $(|| t == TypeId::of::<$ty>())* };
    }
    one_of!(u64, i64, usize, isize, u32, i32, u16, i16, u8, i8, bool, char, f64, f32, ())
}

/// The value word holding `value`: its bytes at the start of a zeroed word, as a pointer
/// with no provenance (it is never dereferenced, INV-INLINE).
#[inline(always)]
pub(crate) fn to_word<T: 'static>(value: T) -> *mut () {
    assert!(is_inline::<T>(), "only inline types are kept in the value word");
    let mut bits = 0_usize;
    // SAFETY: `T` fits in a `usize` and is no more aligned (checked by `is_inline` above), so
    // the write stays within `bits`; `T` has no drop glue, so nothing is leaked (INV-INLINE).
    unsafe { ptr::write(ptr::addr_of_mut!(bits).cast::<T>(), value) };
    ptr::null_mut::<u8>().wrapping_add(bits).cast()
}

/// The value held in a word made by `to_word::<T>`.
///
/// # Safety
///
/// `word` was made by `to_word::<T>` for this `T`.
#[inline(always)]
pub(crate) unsafe fn from_word<T: 'static>(word: *mut ()) -> T {
    debug_assert!(is_inline::<T>());
    let bits = word as usize;
    // SAFETY: per the contract, the first `size_of::<T>()` bytes of `bits` are those of a
    // valid `T` written by `to_word`; `T` is `Copy`-like (no drop glue, a bitwise copy is the
    // value: INV-INLINE) and no more aligned than `usize`.
    unsafe { ptr::read(ptr::addr_of!(bits).cast::<T>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: 'static + PartialEq + std::fmt::Debug + Copy>(v: T) {
        assert!(is_inline::<T>());
        // SAFETY: the word was made by `to_word::<T>`.
        assert_eq!(unsafe { from_word::<T>(to_word(v)) }, v);
    }

    #[test]
    fn small_plain_types_round_trip() {
        round_trip(-3_i8);
        round_trip(true);
        round_trip('é');
        round_trip(-0.25_f32);
        round_trip(());
        round_trip(usize::MAX);
        if cfg!(target_pointer_width = "64") {
            round_trip(u64::MAX - 1);
            round_trip(i64::MIN);
            round_trip(1.5_f64);
        } else {
            assert!(!is_inline::<u64>(), "a 64-bit value does not fit a 32-bit word");
        }
    }

    #[test]
    fn other_types_are_boxed() {
        #[derive(Clone, Copy)]
        struct Newtype(#[allow(dead_code)] u64);
        assert!(!is_inline::<Newtype>());
        assert!(!is_inline::<u128>());
        assert!(!is_inline::<Option<u32>>()); // padding: its payload is uninit when `None`
        assert!(!is_inline::<&'static u8>());
        assert!(!is_inline::<String>());
    }
}
