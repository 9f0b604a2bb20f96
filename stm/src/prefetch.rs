//! A cache prefetch hint: start loading memory that is about to be read, so that its misses
//! overlap the work before that read instead of following it.

/// Asks the CPU to load every cache line that holds a byte of `start..end`.
#[inline(always)]
pub(crate) fn lines(start: *const u8, end: *const u8) {
    // Miri models no cache: nothing to hint there.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut line = start.wrapping_sub(start as usize % 64);
        while line < end {
            // SAFETY: a prefetch only hints the cache, reads nothing observable and never
            // faults, whatever the address; the addresses are computed without dereferencing
            // (INV-PREFETCH).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.cast()) };
            line = line.wrapping_add(64);
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = (start, end);
}
