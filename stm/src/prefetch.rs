//! A cache prefetch hint: start loading memory that is about to be read, so that its misses
//! overlap the work before that read instead of following it.

/// Asks the CPU to load every cache line that holds a byte of the `len` bytes at `start`.
/// With `len` a constant, the hints unroll to a handful of instructions.
#[inline(always)]
pub(crate) fn lines(start: *const u8, len: usize) {
    // Miri models no cache: nothing to hint there.
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let hint = |p: *const u8| {
            // SAFETY: a prefetch only hints the cache, reads nothing observable and never
            // faults, whatever the address; the addresses are computed without dereferencing
            // (INV-PREFETCH).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        };
        // A byte 64 apart is in the next line, whatever the alignment; the last byte's line
        // may be one more.
        let mut offset = 0;
        while offset < len {
            hint(start.wrapping_add(offset));
            offset += 64;
        }
        if len > 0 {
            hint(start.wrapping_add(len - 1));
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = (start, len);
}
