//! A `TMap` bucket: the entries of the keys that share a trie slot, kept in the slot's value
//! box itself, with a one-byte tag per entry in front of them.
//!
//! A lookup scans the tags (at the start of the box, with the length: one cache line, or two
//! when the 16-byte-aligned box starts in a line's last 16 bytes) and compares keys only
//! where the tag matches, so it reads those and the line of the entry it finds, whatever its
//! position (scanning 24-byte `(hash, entry)` pairs, as the bucket did before, read two to
//! four lines of a box that does not stay in cache in a big map).

use arrayvec::ArrayVec;

/// Entries a bucket holds in place; more spill to a `Vec`.
pub(super) const INLINE: usize = 16;

#[derive(Clone)]
pub(super) struct Entry<K, V> {
    pub(super) key: K,
    pub(super) value: V,
}

/// A key's tag: its hash folded to a byte. Every bit counts, so that the tags still tell
/// keys apart when some bits are alike for all keys: those the trie indexed the bucket by,
/// which the keys of one bucket share (they only add a constant to the tag), or the top bits
/// of a weak hasher's hashes (an identity hash of small integers; the top byte alone would
/// tag them all 0, and a lookup would compare every key).
#[inline]
pub(super) fn tag(hash: u64) -> u8 {
    let h = hash ^ (hash >> 32);
    let h = h ^ (h >> 16);
    (h ^ (h >> 8)) as u8
}

/// Bit 7 of each byte of `word` that is zero is set (and of some bytes just above a zero
/// byte, a false positive): the classic test for a zero byte, eight at a time.
#[inline]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(0x0101_0101_0101_0101) & !word & 0x8080_8080_8080_8080
}

/// Entries `0..INLINE` live in `inline`, their tags in `tags`; entries past them in `spill`,
/// each with its tag. `spill` is empty unless `inline` is full, so a lookup in a bucket that
/// did not spill never reads `spill` (at the end of the box, a cache line away).
///
/// `repr(C)`: the tags, then the inline length, then the entries, in that order.
#[repr(C)]
pub(super) struct Bucket<K, V> {
    tags: [u8; INLINE],
    inline: ArrayVec<Entry<K, V>, INLINE>,
    spill: Vec<Tagged<K, V>>,
}

/// A spilled entry with its tag.
pub(super) type Tagged<K, V> = (u8, Entry<K, V>);

/// A bucket's entries in place and its spilled ones.
pub(super) type Parts<'a, K, V> = (&'a [Entry<K, V>], &'a [Tagged<K, V>]);

impl<K, V> Bucket<K, V> {
    pub(super) fn new() -> Self {
        Bucket { tags: [0; INLINE], inline: ArrayVec::new(), spill: Vec::new() }
    }

    pub(super) fn len(&self) -> usize {
        self.inline.len() + self.spill.len()
    }

    /// Entry `i`, for `i < len()`.
    #[inline]
    pub(super) fn get(&self, i: usize) -> &Entry<K, V> {
        match i.checked_sub(INLINE) {
            None => &self.inline[i],
            Some(j) => &self.spill[j].1,
        }
    }

    /// The position of the entry whose key has `tag` and satisfies `is_key`.
    #[inline]
    pub(super) fn find(&self, tag: u8, mut is_key: impl FnMut(&K) -> bool) -> Option<usize> {
        let n = self.inline.len();
        // The tags equal to `tag`, eight at a time: a set bit 7 of byte `i` marks tag `i`
        // (or, rarely, a false match, which the key comparison weeds out).
        let splat = u64::from(tag) * 0x0101_0101_0101_0101;
        for (half, word) in self.tags.chunks_exact(8).enumerate() {
            let word = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
            let mut matches = zero_bytes(word ^ splat);
            while matches != 0 {
                let i = half * 8 + matches.trailing_zeros() as usize / 8;
                if i >= n {
                    return None;
                }
                if is_key(&self.inline[i].key) {
                    return Some(i);
                }
                matches &= matches - 1;
            }
        }
        if n < INLINE {
            return None;
        }
        let spilled = self.spill.iter().position(|(t, e)| *t == tag && is_key(&e.key));
        spilled.map(|j| INLINE + j)
    }

    /// The entries in place and the spilled ones (each with its tag).
    pub(super) fn parts(&self) -> Parts<'_, K, V> {
        (&self.inline, &self.spill)
    }

    /// Adds an entry at the end.
    pub(super) fn push(&mut self, tag: u8, entry: Entry<K, V>) {
        let n = self.inline.len();
        if n < INLINE {
            self.tags[n] = tag;
            self.inline.push(entry);
        } else {
            self.spill.push((tag, entry));
        }
    }

    /// The entries, moved out.
    pub(super) fn into_entries(self) -> impl Iterator<Item = Entry<K, V>> {
        self.inline.into_iter().chain(self.spill.into_iter().map(|(_, e)| e))
    }
}

/// The copies a write publishes, each filled in an empty bucket where it lies (the box the
/// write publishes): the other entries are cloned.
impl<K: Clone, V: Clone> Bucket<K, V> {
    /// Makes `self`, an empty bucket, a copy of `src` whose entry `i` is `entry` (with the
    /// same key, so the same tag). Filled where it lies, not built and moved: the caller's
    /// bucket is the one a write boxes, and a bucket is some 300 bytes.
    #[inline(always)]
    pub(super) fn set_replaced(&mut self, src: &Self, i: usize, entry: Entry<K, V>) {
        debug_assert!(self.len() == 0);
        self.tags = src.tags;
        let mut entry = Some(entry);
        // `extend` sets the length once, not at every entry: 41 fewer instructions per
        // overwrite of a 12-entry bucket.
        match src.inline.get(i + 1..) {
            Some(after) => {
                self.inline.extend(src.inline[..i].iter().cloned());
                self.inline.push(entry.take().expect("taken once"));
                self.inline.extend(after.iter().cloned());
            }
            None => self.inline.extend(src.inline.iter().cloned()),
        }
        if !src.spill.is_empty() {
            let spill = src.spill.iter().enumerate();
            self.spill = spill
                .map(|(j, (t, e))| match entry.take_if(|_| INLINE + j == i) {
                    Some(new) => (*t, new),
                    None => (*t, e.clone()),
                })
                .collect();
        }
        debug_assert!(entry.is_none(), "entry {i} is in the bucket, and replaced");
    }

    /// Makes `self`, an empty bucket, a copy of `src` without entry `i`: the entries after it
    /// move up one place (the first spilled one, if any, into the last place in line).
    pub(super) fn set_without(&mut self, src: &Self, i: usize) {
        debug_assert!(self.len() == 0);
        let n = src.inline.len();
        let tags = src.tags[..n].iter().copied().chain(src.spill.iter().map(|(t, _)| *t));
        let entries = src.inline.iter().chain(src.spill.iter().map(|(_, e)| e));
        let mut kept = tags.zip(entries).enumerate().filter(|&(j, _)| j != i);
        for (j, (t, e)) in kept.by_ref().take(INLINE) {
            self.tags[j - usize::from(j > i)] = t;
            self.inline.push(e.clone());
        }
        self.spill = kept.map(|(_, (t, e))| (t, e.clone())).collect();
    }

    /// Makes `self`, an empty bucket, a copy of `src` with `entry`, tagged `tag`, added at
    /// the end.
    pub(super) fn set_added(&mut self, src: &Self, tag: u8, entry: Entry<K, V>) {
        debug_assert!(self.len() == 0);
        self.tags = src.tags;
        self.inline.extend(src.inline.iter().cloned());
        if !src.spill.is_empty() {
            self.spill = src.spill.clone();
        }
        self.push(tag, entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket's entries in order, with their tags.
    fn contents(b: &Bucket<u32, u32>) -> Vec<(u8, u32, u32)> {
        let (inline, spill) = b.parts();
        let tags = b.tags[..inline.len()].iter().chain(spill.iter().map(|(t, _)| t));
        let entries = inline.iter().chain(spill.iter().map(|(_, e)| e));
        let all = tags.zip(entries).map(|(&t, e)| (t, e.key, e.value));
        let all: Vec<_> = all.collect();
        assert!(all
            .iter()
            .enumerate()
            .all(|(i, &(_, k, v))| (b.get(i).key, b.get(i).value) == (k, v)));
        all
    }

    fn entry(k: u32) -> Entry<u32, u32> {
        Entry { key: k, value: k * 10 }
    }

    /// Every size from empty to spilled, with tags that trip the zero-byte test's false
    /// positives (a 1 above a 0) and its high bit (0x80, 0xff): every key is found, at its
    /// place, and an absent key is not.
    #[test]
    fn find_at_every_size() {
        let tags = [0u8, 1, 0, 1, 0x80, 0xff, 0x7f, 0x81, 2];
        for n in 0..=20u32 {
            let mut b = Bucket::new();
            for k in 0..n {
                b.push(tags[k as usize % tags.len()], Entry { key: k, value: k });
            }
            for k in 0..n {
                let t = tags[k as usize % tags.len()];
                assert_eq!(b.find(t, |&key| key == k), Some(k as usize), "n {n}, key {k}");
            }
            for t in tags {
                assert_eq!(b.find(t, |&key| key == 99), None, "n {n}, absent key");
            }
        }
    }

    /// Random adds, replacements and removals, spilling past `INLINE` and back, against a
    /// `Vec` that does the same; every key is then found (and its tag, 3 values for many
    /// keys, makes most tag matches false).
    #[test]
    fn matches_a_vec_across_the_spill() {
        quickcheck::QuickCheck::new().tests(if cfg!(miri) { 3 } else { 300 }).quickcheck(
            (|ops: Vec<(u8, u8)>| {
                let (mut b, mut model) = (Bucket::new(), Vec::new());
                for (op, k) in ops {
                    let k = u32::from(k % 48);
                    let t = (k % 3) as u8;
                    let pos = model.iter().position(|&(_, key, _)| key == k);
                    assert_eq!(b.find(t, |&key| key == k), pos);
                    match (op % 3, pos) {
                        (0, None) => {
                            let mut copy = Bucket::new();
                            copy.set_added(&b, t, entry(k));
                            b = copy;
                            model.push((t, k, k * 10));
                        }
                        (1, Some(i)) => {
                            let mut copy = Bucket::new();
                            copy.set_replaced(&b, i, Entry { key: k, value: u32::from(op) });
                            b = copy;
                            model[i].2 = u32::from(op);
                        }
                        (2, Some(i)) => {
                            let mut copy = Bucket::new();
                            copy.set_without(&b, i);
                            b = copy;
                            model.remove(i);
                        }
                        _ => {}
                    }
                    assert_eq!(contents(&b), model);
                    assert!(b.spill.is_empty() || b.inline.is_full(), "spilled with room in place");
                }
                for (i, &(t, k, _)) in model.iter().enumerate() {
                    assert_eq!(b.find(t, |&key| key == k), Some(i));
                }
                let moved: Vec<u32> = b.into_entries().map(|e| e.key).collect();
                assert_eq!(moved, model.iter().map(|e| e.1).collect::<Vec<_>>());
            }) as fn(Vec<(u8, u8)>),
        );
    }
}
