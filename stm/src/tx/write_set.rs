//! The write set (redo log): the new value of every TVar an attempt wrote, published only
//! at commit. Reads look here first, so a transaction sees its own writes.
//!
//! Lookups scan linearly behind a 64-bit bloom filter while the set is small, and switch to
//! a hash index beyond `LINEAR_MAX` entries.

use std::collections::HashMap;
use std::panic::Location;

use crate::tvar::Header;

const LINEAR_MAX: usize = 16;

pub(crate) use crate::recycle::Disposal;

/// One pending write.
#[derive(Debug)]
pub(crate) struct WriteEntry {
    /// The TVar written; alive while the attempt is pinned (INV-RECLAIM, INV-REFS).
    pub(crate) header: *const Header,
    /// The new value: a `Box<T>` for the TVar's `T`, owned by this entry (INV-PENDING), or
    /// for an inline `T` the value's word (INV-INLINE).
    pub(crate) value: *mut (),
    pub(crate) disposal: Disposal,
    /// Where it was (last) written, for conflict attribution.
    pub(crate) site: &'static Location<'static>,
    /// Whether commit holds this TVar's lock now.
    pub(crate) locked: bool,
    /// Whether the word had `WAITERS` set when commit locked it.
    pub(crate) waiters: bool,
    /// The version at which the attempt read this TVar just before writing it first (the
    /// read-modify-write pattern), or [`NOT_READ`]. Commit checks it when it locks the TVar,
    /// which validates that read (see `TxState::covered`).
    pub(crate) read_version: u64,
}

/// `WriteEntry::read_version` of a TVar not read just before its first write.
pub(crate) const NOT_READ: u64 = u64::MAX;

/// A value replaced in the write set while a branch or nested transaction was open: kept
/// until the attempt ends, so that a rollback can restore it and references into it stay
/// valid (INV-PENDING).
#[derive(Debug)]
pub(crate) struct Superseded {
    pub(crate) index: usize,
    pub(crate) value: *mut (),
    pub(crate) disposal: Disposal,
}

/// The write set of one attempt.
#[derive(Debug, Default)]
pub(crate) struct WriteSet {
    entries: Vec<WriteEntry>,
    bloom: u64,
    index: HashMap<usize, usize>,
}

#[inline]
fn bloom_bit(header: *const Header) -> u64 {
    let a = header as usize;
    1 << (((a >> 5) ^ (a >> 11)) % 64)
}

impl WriteSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `header` may have an entry (false: it certainly has none).
    #[inline(always)]
    pub(crate) fn may_contain(&self, header: *const Header) -> bool {
        // An empty set (every read-only transaction) skips hashing the address.
        self.bloom != 0 && self.bloom & bloom_bit(header) != 0
    }

    /// The position of `header`'s entry.
    #[inline]
    pub(crate) fn find(&self, header: *const Header) -> Option<usize> {
        if self.bloom & bloom_bit(header) == 0 {
            return None;
        }
        if self.entries.len() <= LINEAR_MAX {
            self.entries.iter().position(|e| e.header == header)
        } else {
            self.index.get(&(header as usize)).copied()
        }
    }

    pub(crate) fn get(&self, index: usize) -> &WriteEntry {
        &self.entries[index]
    }

    /// Records a write. If the TVar was written before, replaces the pending value and
    /// returns the old one, which the caller now owns.
    #[inline]
    pub(crate) fn insert(&mut self, entry: WriteEntry) -> Option<Superseded> {
        if self.entries.len() < LINEAR_MAX && !self.may_contain(entry.header) {
            self.bloom |= bloom_bit(entry.header);
            self.entries.push(entry);
            return None;
        }
        self.insert_slow(entry)
    }

    #[cold]
    fn insert_slow(&mut self, entry: WriteEntry) -> Option<Superseded> {
        if let Some(i) = self.find(entry.header) {
            let e = &mut self.entries[i];
            let old = std::mem::replace(&mut e.value, entry.value);
            e.site = entry.site;
            return Some(Superseded { index: i, value: old, disposal: entry.disposal });
        }
        self.bloom |= bloom_bit(entry.header);
        let i = self.entries.len();
        if i == LINEAR_MAX {
            self.index.extend(self.entries.iter().enumerate().map(|(i, e)| (e.header as usize, i)));
        }
        if i >= LINEAR_MAX {
            self.index.insert(entry.header as usize, i);
        }
        self.entries.push(entry);
        None
    }

    /// Puts a superseded value back (rollback of a branch) and hands over the value that
    /// replaced it, to be dropped when the attempt ends (INV-PENDING).
    pub(crate) fn restore(&mut self, old: Superseded, doomed: &mut Vec<(*mut (), Disposal)>) {
        let e = &mut self.entries[old.index];
        let newer = std::mem::replace(&mut e.value, old.value);
        doomed.push((newer, e.disposal));
    }

    /// Removes every entry from `len` on and moves their pending values to `doomed`, to be
    /// dropped once no borrow of the logs is held (INV-PENDING, INV-LOGS). Returns how many
    /// of the removed entries had a `read_version`.
    pub(crate) fn truncate(&mut self, len: usize, doomed: &mut Vec<(*mut (), Disposal)>) -> usize {
        if len >= self.entries.len() {
            return 0;
        }
        let mut covering = 0;
        for e in self.entries.drain(len..) {
            if !e.value.is_null() {
                doomed.push((e.value, e.disposal));
            }
            if e.read_version != NOT_READ {
                covering += 1;
            }
        }
        self.bloom = self.entries.iter().fold(0, |b, e| b | bloom_bit(e.header));
        self.index.clear();
        if self.entries.len() > LINEAR_MAX {
            self.index.extend(self.entries.iter().enumerate().map(|(i, e)| (e.header as usize, i)));
        }
        covering
    }

    pub(crate) fn clear(&mut self, doomed: &mut Vec<(*mut (), Disposal)>) {
        self.truncate(0, doomed);
    }

    /// Empties the set after a commit published every value (nothing to drop).
    #[inline]
    pub(crate) fn clear_published(&mut self) {
        debug_assert!(self.entries.iter().all(|e| e.value.is_null()));
        self.entries.clear();
        self.bloom = 0;
        if !self.index.is_empty() {
            self.index.clear();
        }
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, WriteEntry> {
        self.entries.iter_mut()
    }
}
