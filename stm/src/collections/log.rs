//! The segmented log under [`TQueue`](super::TQueue) and [`TChan`](super::TChan): a list of
//! chunks of [`CHUNK`] `TVar` slots, read and written through cursors.
//!
//! A writer fills the slot at its cursor and moves on; a reader takes the slot at its own
//! cursor (retrying while it is empty) and moves on. While a reader is behind the writer the
//! two touch different slots and different cursors, so they do not conflict.
//!
//! Why chunks linked by `Arc` rather than a list of `TVar` cells (GHC's `TChan`): a `TVar`
//! is freed one grace period after its last handle goes, so in a chain of cells each linked
//! from the previous one's value, cell `n + 1` could only be freed a grace period after cell
//! `n`. Readers consume cells faster than grace periods pass, so the backlog of dead cells
//! would grow without bound. A chunk's link to the next one is a plain `Arc` set once
//! (idempotently, so it is harmless if an attempt that set it aborts), and dropping the
//! chunks behind the last cursor frees them at once; only their slots wait a grace period,
//! each independently.

use std::sync::{Arc, OnceLock};

use crate::{Stm, TVar, Transaction};

/// Slots per chunk.
pub(super) const CHUNK: usize = 32;

pub(super) struct Chunk<T: Send + Sync + 'static> {
    slots: [TVar<Option<T>>; CHUNK],
    /// The following chunk, made by whichever cursor first needs it.
    next: OnceLock<Arc<Chunk<T>>>,
}

impl<T: Send + Sync + 'static> Chunk<T> {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Chunk { slots: std::array::from_fn(|_| TVar::new(None)), next: OnceLock::new() })
    }

    fn next(&self) -> Arc<Self> {
        self.next.get_or_init(Chunk::new).clone()
    }
}

impl<T: Send + Sync + 'static> Drop for Chunk<T> {
    fn drop(&mut self) {
        // Unlink the chain iteratively: a recursive drop of a long backlog would overflow
        // the stack.
        let mut next = self.next.take();
        while let Some(chunk) = next {
            next = Arc::into_inner(chunk).and_then(|mut c| c.next.take());
        }
    }
}

/// A position in the log: a sequence number and the chunk that holds it. The chunk changes
/// once per [`CHUNK`] moves, so moving costs one write, plus one more at chunk boundaries.
pub(super) struct Cursor<T: Send + Sync + 'static> {
    seq: TVar<u64>,
    chunk: TVar<Arc<Chunk<T>>>,
}

impl<T: Send + Sync + 'static> Cursor<T> {
    pub(super) fn new(seq: u64, chunk: Arc<Chunk<T>>) -> Self {
        Cursor { seq: TVar::new(seq), chunk: TVar::new(chunk) }
    }

    /// The cursor's sequence number.
    pub(super) fn seq(&self, tx: &Transaction<'_>) -> Stm<u64> {
        tx.get(&self.seq)
    }

    /// The cursor's sequence number and the slot at it.
    pub(super) fn slot<'a>(&'a self, tx: &'a Transaction<'_>) -> Stm<(u64, &'a TVar<Option<T>>)> {
        let seq = tx.get(&self.seq)?;
        let chunk = tx.read(&self.chunk)?;
        Ok((seq, &chunk.slots[(seq % CHUNK as u64) as usize]))
    }

    /// Moves the cursor from `seq` (its position, as returned by `slot`) to the next slot.
    pub(super) fn advance(&self, tx: &mut Transaction<'_>, seq: u64) -> Stm<()> {
        tx.write(&self.seq, seq + 1)?;
        if (seq + 1) % CHUNK as u64 == 0 {
            let next = tx.read(&self.chunk)?.next();
            tx.write(&self.chunk, next)?;
        }
        Ok(())
    }

    /// A new cursor at the same position.
    pub(super) fn fork(&self, tx: &Transaction<'_>) -> Stm<Self> {
        Ok(Cursor::new(tx.get(&self.seq)?, tx.get(&self.chunk)?))
    }
}
