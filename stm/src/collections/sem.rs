//! `TSem`: a transactional counting semaphore, with an optional first-come-first-served
//! queue of waiters.

use std::fmt;

use crate::{atomically, check, Stm, TVar, Transaction};

/// A counting semaphore (GHC's `TSem`): [`wait`](Self::wait) takes a permit, waiting (with
/// [`retry`](crate::retry)) while there is none, and [`signal`](Self::signal) returns one.
///
/// `wait` inside a transaction is not fair: when a permit is returned, every waiting
/// transaction runs again and the first to commit wins. [`wait_fair`](Self::wait_fair)
/// serves its callers in arrival order instead: it takes a ticket in a transaction of its
/// own, then waits until its ticket is served and a permit is free. A plain `wait` never
/// overtakes a ticket holder: it also waits while any ticket is pending.
///
/// # Conflicts
///
/// `wait` and `signal` read and write the permit count: any two of them conflict. `wait`
/// also reads the ticket counters, so it conflicts with the first transaction of a
/// `wait_fair`; two `wait_fair` callers conflict on the ticket counter.
///
/// # Examples
///
/// ```
/// use concord_stm::atomically;
/// use concord_stm::collections::TSem;
///
/// let slots = TSem::new(1);
/// atomically(|tx| slots.wait(tx));
/// assert!(!atomically(|tx| slots.try_wait(tx)));
/// atomically(|tx| slots.signal(tx));
/// slots.wait_fair();
/// assert_eq!(atomically(|tx| slots.available(tx)), 0);
/// ```
pub struct TSem {
    permits: TVar<usize>,
    /// The next ticket `wait_fair` hands out.
    next_ticket: TVar<u64>,
    /// The ticket whose turn it is; `serving == next_ticket` when nobody queues.
    serving: TVar<u64>,
}

impl TSem {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Self {
        TSem { permits: TVar::new(permits), next_ticket: TVar::new(0), serving: TVar::new(0) }
    }

    /// Takes a permit, waiting (with [`retry`](crate::retry)) while there is none or a
    /// [`wait_fair`](Self::wait_fair) caller is queued.
    ///
    /// # Errors
    ///
    /// A retry while no permit is free, or a conflict: propagate it with `?`.
    pub fn wait(&self, tx: &mut Transaction<'_>) -> Stm<()> {
        check(self.try_wait(tx)?)
    }

    /// Takes a permit if one is free and nobody is queued in
    /// [`wait_fair`](Self::wait_fair); returns whether it did.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn try_wait(&self, tx: &mut Transaction<'_>) -> Stm<bool> {
        let queued = tx.get(&self.serving)? != tx.get(&self.next_ticket)?;
        let permits = tx.get(&self.permits)?;
        if queued || permits == 0 {
            return Ok(false);
        }
        tx.write(&self.permits, permits - 1)?;
        Ok(true)
    }

    /// Returns a permit.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn signal(&self, tx: &mut Transaction<'_>) -> Stm<()> {
        self.signal_n(tx, 1)
    }

    /// Returns `n` permits.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn signal_n(&self, tx: &mut Transaction<'_>, n: usize) -> Stm<()> {
        tx.modify(&self.permits, |p| p + n)
    }

    /// The number of free permits.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn available(&self, tx: &Transaction<'_>) -> Stm<usize> {
        tx.get(&self.permits)
    }

    /// The number of [`wait_fair`](Self::wait_fair) callers that hold a ticket and wait for
    /// their turn.
    ///
    /// # Errors
    ///
    /// A conflict, to propagate with `?`.
    pub fn queued(&self, tx: &Transaction<'_>) -> Stm<u64> {
        Ok(tx.get(&self.next_ticket)? - tx.get(&self.serving)?)
    }

    /// Takes a permit, blocking the calling thread; callers are served in the order their
    /// tickets were taken, and plain [`wait`](Self::wait)s queue behind them.
    ///
    /// It runs two transactions (take a ticket, then wait for its turn), so it is not an
    /// operation inside a transaction. Called inside one, both join it and the ticket is
    /// never published: it then waits like `wait`, behind the queue.
    pub fn wait_fair(&self) {
        let ticket = atomically(|tx| {
            let t = tx.get(&self.next_ticket)?;
            tx.write(&self.next_ticket, t + 1)?;
            Ok(t)
        });
        atomically(|tx| {
            check(*tx.read(&self.serving)? == ticket)?;
            let permits = tx.get(&self.permits)?;
            check(permits > 0)?;
            tx.write(&self.permits, permits - 1)?;
            tx.write(&self.serving, ticket + 1)
        });
    }
}

impl fmt::Debug for TSem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TSem").finish_non_exhaustive()
    }
}
