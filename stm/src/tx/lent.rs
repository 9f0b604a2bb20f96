//! Copies of inline values that `Transaction::read` lends out.
//!
//! `read` lends `&T`, but an inline value (see `inline.rs`) lives in its TVar's value word,
//! which a commit may overwrite while the reference is alive. So `read` copies the word into
//! a slot here and lends that. Slots live in fixed chunks that never move and are reused
//! only from the next attempt on, when no reference lent by the previous one is alive
//! (INV-LENT). The chunks are kept across attempts: in steady state a read allocates nothing.

use std::ptr::NonNull;

/// Slots per chunk.
const CHUNK: usize = 64;

/// The lending slots of one thread's transactions.
#[derive(Debug, Default)]
pub(crate) struct Lent {
    /// Each from `Box::<[usize; CHUNK]>::into_raw`, owned here, freed on drop. Slots are
    /// written through these raw pointers only: no `&mut` to a chunk is ever made, so a
    /// write to one slot leaves references to the others valid.
    chunks: Vec<NonNull<usize>>,
    /// Slots handed out in the current attempt.
    used: usize,
}

impl Lent {
    /// Stores `word` in a fresh slot and returns it, or returns the last slot if it holds
    /// the same bits (a loop re-reading one TVar then uses one slot). The slot keeps its
    /// contents until `reset`.
    #[inline]
    pub(crate) fn keep(&mut self, word: *mut ()) -> NonNull<usize> {
        if let Some(last) = self.last() {
            // SAFETY: a slot handed out in this attempt, within its chunk; reading it while
            // shared references to it exist is fine (INV-LENT).
            if unsafe { last.as_ptr().read() } == word as usize {
                return last;
            }
        }
        let (chunk, slot) = (self.used / CHUNK, self.used % CHUNK);
        if chunk == self.chunks.len() {
            self.grow();
        }
        // SAFETY: `slot < CHUNK`, within the chunk's allocation (INV-LENT).
        let ptr = unsafe { self.chunks[chunk].as_ptr().add(slot) };
        // SAFETY: the slot is owned here, and no reference to it is alive: it was handed out
        // in an earlier attempt, if ever, and `reset` ran since (INV-LENT).
        unsafe { ptr.write(word as usize) };
        self.used += 1;
        // SAFETY: derived from a non-null chunk pointer.
        unsafe { NonNull::new_unchecked(ptr) }
    }

    /// The slot handed out last in this attempt.
    #[inline]
    fn last(&self) -> Option<NonNull<usize>> {
        let last = self.used.checked_sub(1)?;
        // SAFETY: `last < used`, so its chunk exists and `last % CHUNK < CHUNK` is within it
        // (INV-LENT).
        let ptr = unsafe { self.chunks[last / CHUNK].as_ptr().add(last % CHUNK) };
        // SAFETY: derived from a non-null chunk pointer.
        Some(unsafe { NonNull::new_unchecked(ptr) })
    }

    #[cold]
    fn grow(&mut self) {
        let chunk = Box::into_raw(Box::new([0_usize; CHUNK]));
        // SAFETY: `Box::into_raw` never returns null.
        self.chunks.push(unsafe { NonNull::new_unchecked(chunk.cast::<usize>()) });
    }

    /// Makes every slot reusable. Called when an attempt begins: no reference lent by an
    /// earlier attempt is alive (INV-LENT).
    #[inline]
    pub(crate) fn reset(&mut self) {
        self.used = 0;
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        for chunk in self.chunks.drain(..) {
            // SAFETY: each chunk came from `Box::<[usize; CHUNK]>::into_raw` in `grow` and is
            // freed once, here; the thread's transactions are over, so no slot is lent
            // (INV-LENT).
            drop(unsafe { Box::from_raw(chunk.as_ptr().cast::<[usize; CHUNK]>()) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_put_while_later_ones_are_written() {
        let mut lent = Lent::default();
        let first = lent.keep(crate::inline::to_word(7_u64));
        // SAFETY: the slot holds a word made by `to_word::<u64>` and `lent` is not reset.
        let r: &u64 = unsafe { &*first.as_ptr().cast::<u64>() };
        let words: Vec<NonNull<usize>> =
            (0..200_u64).map(|i| lent.keep(crate::inline::to_word(i))).collect();
        assert_eq!(*r, 7);
        // SAFETY: as above.
        assert_eq!(unsafe { *words[150].as_ptr().cast::<u64>() }, 150);
        lent.reset();
        let again = lent.keep(crate::inline::to_word(9_u64));
        assert_eq!(again, first, "slots are reused after a reset");
        let same = lent.keep(crate::inline::to_word(9_u64));
        assert_eq!(same, again, "a repeat of the last word shares its slot");
        let other = lent.keep(crate::inline::to_word(10_u64));
        assert_ne!(other, again);
    }
}
