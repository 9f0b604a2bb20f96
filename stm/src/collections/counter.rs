//! `TCounter`: a striped counter whose increments from different threads do not conflict.

use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::{Stm, TVar, Transaction};

/// The next thread ticket. A thread takes one, once, the first time it touches a striped
/// counter; consecutive threads get consecutive tickets, hence different stripes. A mutex
/// rather than an atomic: it is taken once per thread, and only `sync.rs` names atomics.
static NEXT_TICKET: Mutex<usize> = Mutex::new(0);

thread_local! {
    static TICKET: usize = {
        let mut next = NEXT_TICKET.lock().unwrap_or_else(PoisonError::into_inner);
        let ticket = *next;
        *next = next.wrapping_add(1);
        ticket
    };
}

/// The calling thread's ticket (0 while its thread-locals are being destroyed).
pub(super) fn thread_ticket() -> usize {
    TICKET.try_with(|t| *t).unwrap_or(0)
}

/// The default number of stripes: twice the available parallelism, as a power of two in
/// `8..=64`, so that the threads that can run at once rarely share a stripe.
fn default_stripes() -> usize {
    static STRIPES: OnceLock<usize> = OnceLock::new();
    *STRIPES.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        (2 * cpus).next_power_of_two().clamp(8, 64)
    })
}

/// A transactional counter split into stripes, one picked per thread, so that increments
/// from different threads write different `TVar`s and commute without conflicting.
///
/// Reading the total reads every stripe. Use it where writes dominate and the total is read
/// rarely (a statistics counter, the size of a collection); for a counter read as often as
/// it is written, a plain `TVar<i64>` is cheaper.
///
/// # Conflicts
///
/// - [`add`](Self::add) vs `add`: never on different threads while the threads hold
///   different stripes (threads get consecutive stripes in the order they first touch any
///   striped counter, so with up to [`stripes`](Self::stripes) threads, never); always on
///   the same thread's stripe.
/// - [`get`](Self::get) vs `add`: always (it reads every stripe).
/// - [`set`](Self::set) vs anything: always (it writes every stripe).
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TCounter;
///
/// let hits = TCounter::new();
/// std::thread::scope(|s| {
///     for _ in 0..2 {
///         s.spawn(|| (0..100).for_each(|_| atomically(|tx| hits.add(tx, 1))));
///     }
/// });
/// assert_eq!(atomically(|tx| hits.get(tx)), 200);
/// ```
pub struct TCounter {
    stripes: Box<[TVar<i64>]>,
}

impl TCounter {
    /// A counter at zero with the default number of stripes (twice the available
    /// parallelism, rounded to a power of two, between 8 and 64).
    pub fn new() -> Self {
        Self::with_stripes(default_stripes())
    }

    /// A counter at zero with `stripes` stripes.
    ///
    /// # Panics
    ///
    /// Panics if `stripes` is 0.
    pub fn with_stripes(stripes: usize) -> Self {
        assert!(stripes > 0, "a TCounter needs at least one stripe");
        TCounter { stripes: (0..stripes).map(|_| TVar::new(0)).collect() }
    }

    /// The number of stripes.
    pub fn stripes(&self) -> usize {
        self.stripes.len()
    }

    /// The calling thread's stripe.
    fn mine(&self) -> &TVar<i64> {
        &self.stripes[thread_ticket() % self.stripes.len()]
    }

    /// Adds `delta` (which may be negative) to the counter, on the calling thread's stripe.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn add(&self, tx: &mut Transaction<'_>, delta: i64) -> Stm<()> {
        tx.modify(self.mine(), |n| n + delta)
    }

    /// The total: the sum of every stripe.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn get(&self, tx: &Transaction<'_>) -> Stm<i64> {
        self.stripes.iter().try_fold(0, |sum, s| Ok(sum + tx.get(s)?))
    }

    /// Sets the total to `value` (writes every stripe).
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn set(&self, tx: &mut Transaction<'_>, value: i64) -> Stm<()> {
        for (i, s) in self.stripes.iter().enumerate() {
            tx.write(s, if i == 0 { value } else { 0 })?;
        }
        Ok(())
    }
}

impl Default for TCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TCounter").field("stripes", &self.stripes.len()).finish_non_exhaustive()
    }
}
