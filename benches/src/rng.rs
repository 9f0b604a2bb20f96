//! A tiny seeded generator, so every contender sees the same index sequence.

/// Marsaglia's xorshift64* generator: a few cycles per number, no shared state, and
/// deterministic from its seed.
///
/// # Examples
///
/// ```
/// use concord_benches::XorShift;
///
/// let mut a = XorShift::for_thread(0);
/// let mut b = XorShift::for_thread(0);
/// assert_eq!(a.index(1024), b.index(1024));
/// let (from, to) = a.pair(1024);
/// assert_ne!(from, to);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        // One splitmix64 round spreads the seed and keeps the state non-zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        XorShift { state: if z == 0 { 0x2545_F491_4F6C_DD1D } else { z } }
    }

    /// The fixed generator of worker thread `t`: the same stream for every contender.
    pub fn for_thread(t: usize) -> Self {
        Self::new(0xC0C0_A000 + t as u64)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform index below `n` (multiply-shift on the high 32 bits; `n` below 2^32).
    #[inline]
    pub fn index(&mut self, n: usize) -> usize {
        debug_assert!(n > 0 && (n as u64) <= u64::from(u32::MAX));
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// Two distinct uniform indices below `n` (`n >= 2`).
    #[inline]
    pub fn pair(&mut self, n: usize) -> (usize, usize) {
        debug_assert!(n >= 2);
        let from = self.index(n);
        let to = (from + 1 + self.index(n - 1)) % n;
        (from, to)
    }
}

#[cfg(test)]
mod tests {
    use super::XorShift;

    #[test]
    fn indices_in_range_and_spread() {
        let mut r = XorShift::new(0);
        let mut seen = [0_u32; 16];
        for _ in 0..16_000 {
            seen[r.index(16)] += 1;
        }
        // Each bucket expects 1000; a generator this simple is still well within 20%.
        assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
    }

    #[test]
    fn pairs_are_distinct_and_cover_both_orders() {
        let mut r = XorShift::for_thread(1);
        let (mut up, mut down) = (0, 0);
        for _ in 0..10_000 {
            let (a, b) = r.pair(4);
            assert!(a < 4 && b < 4 && a != b);
            if a < b {
                up += 1;
            } else {
                down += 1;
            }
        }
        assert!(up > 4000 && down > 4000, "{up} {down}");
    }

    #[test]
    fn threads_get_different_streams() {
        let a: Vec<u64> = {
            let mut r = XorShift::for_thread(0);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = XorShift::for_thread(1);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_ne!(a, b);
    }
}
