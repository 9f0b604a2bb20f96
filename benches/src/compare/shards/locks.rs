//! The lock table of one shard: strict two-phase locking with FIFO grants.
//!
//! A shard's owner keeps one table for all its accounts. A request names its transaction
//! (the client worker: each client has one transaction in flight), a [`Mode`], and whether it
//! is `one_shot` (acquire, apply, release at once: the last lock a transaction takes). Modes:
//!
//! - [`Mode::Exclusive`]: one or two accounts of the shard, written by a transfer;
//! - [`Mode::Shared`]: the whole shard, read by an audit.
//!
//! Two requests conflict unless both are shared, or both exclusive on disjoint accounts. A
//! request is granted when it conflicts with no holder *and no earlier waiter* (FIFO among
//! conflicting requests: an audit queued behind transfers is not starved by later
//! transfers, nor they by later audits). One table serves remote clients (over messages) and
//! the owner's own client (a local call) alike.
//!
//! # Why the protocol built on it cannot deadlock
//!
//! Every transaction requests its locks one shard at a time in increasing shard order, one
//! request per shard (both accounts of a shard in one request), and holds what it got until
//! its last request is granted. A transaction waiting at shard `k` waits either for a holder
//! there, which holds only locks at shards up to `k` and, if it waits, waits at a shard
//! above `k`; or for an earlier waiter at `k`. So along any chain of waits the pair (shard,
//! arrival order at that shard) strictly increases in the order "higher shard, or same shard
//! and earlier arrival": no chain can close into a cycle. The simulation in the tests checks
//! this (and that the same table with unordered requests does deadlock).

use std::collections::VecDeque;

/// What a request locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The whole shard, for reading.
    Shared,
    /// The first `n` (1 or 2) of `keys`, for writing.
    Exclusive {
        /// The accounts.
        keys: [u64; 2],
        /// How many of `keys` count.
        n: usize,
    },
}

impl Mode {
    /// One exclusive account.
    pub(crate) fn one(key: u64) -> Mode {
        Mode::Exclusive { keys: [key, key], n: 1 }
    }

    /// The accounts of an exclusive request.
    fn keys(&self) -> &[u64] {
        match self {
            Mode::Shared => &[],
            Mode::Exclusive { keys, n } => &keys[..*n],
        }
    }

    /// Whether two requests cannot be granted together.
    pub(crate) fn conflicts(&self, other: &Mode) -> bool {
        match (self, other) {
            (Mode::Shared, Mode::Shared) => false,
            (Mode::Shared, _) | (_, Mode::Shared) => true,
            _ => self.keys().iter().any(|k| other.keys().contains(k)),
        }
    }
}

/// A lock request, with what to do when it is granted (`payload`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Request<P> {
    /// The transaction: its client's worker index.
    pub(crate) txn: usize,
    pub(crate) mode: Mode,
    /// Release as soon as granted (and applied).
    pub(crate) one_shot: bool,
    pub(crate) payload: P,
}

/// The locks of one shard (see the module doc).
#[derive(Debug)]
pub(crate) struct LockTable<P> {
    /// Granted and not released: transaction and mode.
    held: Vec<(usize, Mode)>,
    /// Not granted yet, in arrival order.
    waiting: VecDeque<Request<P>>,
}

impl<P> Default for LockTable<P> {
    fn default() -> Self {
        LockTable { held: Vec::new(), waiting: VecDeque::new() }
    }
}

impl<P> LockTable<P> {
    /// Grants `req` at once if it conflicts with no holder and no waiter (returning it), or
    /// queues it (returning `None`; [`release`](Self::release) grants it later).
    pub(crate) fn submit(&mut self, req: Request<P>) -> Option<Request<P>> {
        let blocked = self.held.iter().any(|(_, m)| m.conflicts(&req.mode))
            || self.waiting.iter().any(|w| w.mode.conflicts(&req.mode));
        if blocked {
            self.waiting.push_back(req);
            None
        } else {
            if !req.one_shot {
                self.held.push((req.txn, req.mode));
            }
            Some(req)
        }
    }

    /// Releases what `txn` holds here, and appends the requests this lets through to
    /// `granted`, in the order they must be applied. Returns whether `txn` held anything.
    pub(crate) fn release(&mut self, txn: usize, granted: &mut Vec<Request<P>>) -> bool {
        let before = self.held.len();
        self.held.retain(|&(t, _)| t != txn);
        if self.held.len() == before {
            return false;
        }
        let mut still = VecDeque::with_capacity(self.waiting.len());
        while let Some(req) = self.waiting.pop_front() {
            let blocked = self.held.iter().any(|(_, m)| m.conflicts(&req.mode))
                || still.iter().any(|w: &Request<P>| w.mode.conflicts(&req.mode));
            if blocked {
                still.push_back(req);
            } else {
                if !req.one_shot {
                    self.held.push((req.txn, req.mode));
                }
                granted.push(req);
            }
        }
        self.waiting = still;
        true
    }

    /// A transaction that holds a lock here, other than `except`: who to wait for.
    pub(crate) fn a_holder_other_than(&self, except: usize) -> Option<usize> {
        self.held.iter().map(|&(t, _)| t).find(|&t| t != except)
    }

    /// Requests held or waiting (0 when every transaction has finished).
    pub(crate) fn pending(&self) -> usize {
        self.held.len() + self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::XorShift;

    fn x(txn: usize, keys: &[u64], one_shot: bool) -> Request<()> {
        let mode = if keys.len() == 1 {
            Mode::one(keys[0])
        } else {
            Mode::Exclusive { keys: [keys[0], keys[1]], n: 2 }
        };
        Request { txn, mode, one_shot, payload: () }
    }

    fn s(txn: usize, one_shot: bool) -> Request<()> {
        Request { txn, mode: Mode::Shared, one_shot, payload: () }
    }

    fn txns(granted: &[Request<()>]) -> Vec<usize> {
        granted.iter().map(|r| r.txn).collect()
    }

    #[test]
    fn conflicts() {
        assert!(!Mode::Shared.conflicts(&Mode::Shared));
        assert!(Mode::Shared.conflicts(&Mode::one(3)));
        assert!(Mode::one(3).conflicts(&Mode::Shared));
        assert!(Mode::one(3).conflicts(&Mode::Exclusive { keys: [5, 3], n: 2 }));
        assert!(!Mode::one(3).conflicts(&Mode::Exclusive { keys: [5, 3], n: 1 }));
        assert!(!Mode::one(3).conflicts(&Mode::one(4)));
    }

    #[test]
    fn disjoint_requests_are_granted_together_and_conflicting_ones_wait() {
        let mut t = LockTable::default();
        assert!(t.submit(x(1, &[10], false)).is_some());
        assert!(t.submit(x(2, &[11, 12], false)).is_some());
        assert!(t.submit(x(3, &[12], false)).is_none(), "12 is held by 2");
        let mut g = Vec::new();
        assert!(!t.release(9, &mut g), "9 holds nothing");
        assert!(t.release(1, &mut g) && g.is_empty(), "3 still waits for 2");
        assert!(t.release(2, &mut g));
        assert_eq!(txns(&g), [3]);
        assert_eq!(t.pending(), 1);
        g.clear();
        assert!(t.release(3, &mut g) && g.is_empty());
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn grants_are_fifo_among_conflicting_requests() {
        let mut t = LockTable::default();
        assert!(t.submit(x(1, &[7], false)).is_some());
        // An audit queues behind the holder; a later transfer on another account of the
        // shard must queue behind the audit (not overtake it), a later audit may not
        // overtake the transfer either.
        assert!(t.submit(s(2, false)).is_none());
        assert!(t.submit(x(3, &[8], false)).is_none());
        assert!(t.submit(s(4, false)).is_none());
        let mut g = Vec::new();
        t.release(1, &mut g);
        assert_eq!(txns(&g), [2], "the audit first; 3 conflicts with it");
        g.clear();
        t.release(2, &mut g);
        assert_eq!(txns(&g), [3], "then the transfer; 4 conflicts with it");
        g.clear();
        t.release(3, &mut g);
        assert_eq!(txns(&g), [4]);
    }

    #[test]
    fn shared_requests_share_and_one_shots_hold_nothing() {
        let mut t = LockTable::default();
        assert!(t.submit(s(1, false)).is_some());
        assert!(t.submit(s(2, true)).is_some(), "shared with shared");
        assert_eq!(t.pending(), 1, "the one-shot holds nothing");
        assert!(t.submit(x(3, &[1], true)).is_none());
        assert!(t.submit(x(4, &[1], true)).is_none());
        let mut g = Vec::new();
        t.release(1, &mut g);
        // Both one-shots on account 1 go through in arrival order: each is applied and
        // released before the next.
        assert_eq!(txns(&g), [3, 4]);
        assert_eq!(t.pending(), 0);
        assert_eq!(t.a_holder_other_than(0), None);
    }

    /// A transaction of the simulation: lock requests per shard, in the order it makes them.
    struct Client {
        plan: Vec<(usize, Request<()>)>,
        /// Requests granted so far (the next one is in flight or about to be made).
        granted: usize,
        /// The request at `granted` was submitted and waits.
        waiting: bool,
        done: u64,
    }

    /// Runs `clients` random transactions over `shards` tables, picking a random runnable
    /// client at each step, until each has finished `rounds`; `false` if every client is
    /// stuck waiting (a deadlock).
    fn simulate(seed: u64, shards: usize, clients: usize, rounds: u64, ordered: bool) -> bool {
        let mut rng = XorShift::new(seed);
        let mut tables: Vec<LockTable<()>> = (0..shards).map(|_| LockTable::default()).collect();
        let plan = |rng: &mut XorShift, txn: usize| -> Vec<(usize, Request<()>)> {
            if rng.index(8) == 0 {
                // An audit: every shard, shared.
                let mut p: Vec<_> = (0..shards).map(|k| (k, s(txn, false))).collect();
                if !ordered {
                    p.reverse();
                }
                p
            } else {
                // A transfer between two accounts (4 per shard), account a lives in a % shards.
                let (a, b) = rng.pair(4 * shards);
                let (a, b) = (a as u64, b as u64);
                let (sa, sb) = (a as usize % shards, b as usize % shards);
                let mut p = if sa == sb {
                    vec![(sa, x(txn, &[a, b], false))]
                } else {
                    vec![(sa, x(txn, &[a], false)), (sb, x(txn, &[b], false))]
                };
                if ordered {
                    p.sort_by_key(|&(k, _)| k);
                }
                p
            }
        };
        let mut cs: Vec<Client> = (0..clients)
            .map(|c| Client { plan: plan(&mut rng, c), granted: 0, waiting: false, done: 0 })
            .collect();
        let mut grants = Vec::new();
        while cs.iter().any(|c| c.done < rounds) {
            let runnable: Vec<usize> =
                (0..clients).filter(|&c| !cs[c].waiting && cs[c].done < rounds).collect();
            if runnable.is_empty() {
                return false;
            }
            let c = runnable[rng.index(runnable.len())];
            let cl = &mut cs[c];
            if cl.granted < cl.plan.len() {
                let (k, req) = cl.plan[cl.granted].clone();
                if tables[k].submit(req).is_some() {
                    cl.granted += 1;
                } else {
                    cl.waiting = true;
                }
            } else {
                // Every lock held: apply, then release them all.
                let shards_used: Vec<usize> = cl.plan.iter().map(|&(k, _)| k).collect();
                cl.done += 1;
                cl.granted = 0;
                cl.plan = plan(&mut rng, c);
                for k in shards_used {
                    grants.clear();
                    tables[k].release(c, &mut grants);
                    for g in &grants {
                        let w = &mut cs[g.txn];
                        assert!(w.waiting, "only a waiting request is granted");
                        w.waiting = false;
                        w.granted += 1;
                    }
                }
            }
        }
        assert!(tables.iter().all(|t| t.pending() == 0), "everything released");
        true
    }

    #[test]
    fn ordered_locking_never_deadlocks() {
        for seed in 0..200 {
            for (shards, clients) in [(2, 2), (2, 3), (3, 3), (3, 5)] {
                assert!(simulate(seed, shards, clients, 200, true), "seed {seed}");
            }
        }
    }

    /// The simulation can fail: the same table with each transaction locking in its own
    /// order (audits backwards, transfers from debit to credit) deadlocks.
    #[test]
    fn unordered_locking_deadlocks_in_the_simulation() {
        let deadlocked = (0..200).filter(|&seed| !simulate(seed, 3, 3, 200, false)).count();
        assert!(deadlocked > 0);
    }
}
