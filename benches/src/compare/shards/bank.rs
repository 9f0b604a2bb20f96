//! `bank` over shards: account `i` lives in shard `i % W`, whose worker owns its balance and
//! its lock.
//!
//! A transfer takes its locks shard by shard in increasing shard order, one request per shard
//! (both accounts at once when they share a shard), strict two-phase: the deltas are applied
//! when a lock is granted (nobody else can see the account until the release, and a transfer
//! never aborts), the last request is `ONE_SHOT` (granted, applied and released in one step:
//! the transaction then holds every lock it needs, its serialization point), and the earlier
//! locks are released after the last grant. An audit takes a shared lock on every shard in
//! the same order; each grant carries the shard's sum. So every transfer and audit is
//! strictly serializable (strict 2PL), and deadlock-free (ordered requests with FIFO grants,
//! see [`locks`](super::locks)).
//!
//! Messages per transfer: 0 when both accounts are in the worker's own shard; 2 (lock,
//! granted) when both are in one other shard, or the own shard comes first; 3 when the other
//! shard comes first (lock, granted, unlock); 5 between two other shards. An audit: 3 per
//! other shard (lock, granted with its sum, unlock), one fewer when the last shard is
//! another worker's (its lock is one-shot).
//!
//! Check data per shard: its final sum, the audits its client saw with a wrong total, and the
//! lock requests still pending (must be 0).

use crate::compare::workloads::bank::{next_op, Spec, INITIAL};
use crate::XorShift;

use super::locks::{LockTable, Mode, Request};
use super::node::{Process, Service};
use super::protocol::{pack_deltas, unpack_deltas, Kind, Msg, ONE_SHOT};
use super::transport::Outbox;
use super::{Check, WorkerReport};
use crate::compare::measure::Meter;
use crate::ipc::process::Node;

/// One shard of the accounts.
#[derive(Debug)]
pub(crate) struct Shard {
    me: usize,
    workers: usize,
    /// Account `i` (with `i % workers == me`) at `i / workers`.
    balances: Vec<i64>,
    locks: LockTable<[i32; 2]>,
    /// The value granted to this worker's own client by its own shard.
    local: Option<u64>,
    granted: Vec<Request<[i32; 2]>>,
}

impl Shard {
    pub(crate) fn new(spec: &Spec, me: usize, workers: usize) -> Shard {
        let n = (spec.accounts + workers - 1 - me) / workers;
        Shard {
            me,
            workers,
            balances: vec![INITIAL; n],
            locks: LockTable::default(),
            local: None,
            granted: Vec::new(),
        }
    }

    fn sum(&self) -> i64 {
        self.balances.iter().sum()
    }

    /// Submits a lock request (from a peer, or from this worker's client).
    fn submit(&mut self, req: Request<[i32; 2]>, out: &mut Outbox) -> Result<(), String> {
        if let Mode::Exclusive { keys, n } = req.mode {
            if keys[..n].iter().any(|&k| k as usize % self.workers != self.me) {
                return Err(format!("shard {}: an account of another shard: {keys:?}", self.me));
            }
            if keys[..n].iter().any(|&k| k as usize / self.workers >= self.balances.len()) {
                return Err(format!("shard {}: no account {keys:?}", self.me));
            }
        }
        if let Some(g) = self.locks.submit(req) {
            self.grant(g, out);
        }
        Ok(())
    }

    /// Applies a granted request and tells its client.
    fn grant(&mut self, g: Request<[i32; 2]>, out: &mut Outbox) {
        let value = match g.mode {
            Mode::Exclusive { keys, n } => {
                for (k, d) in keys[..n].iter().zip(g.payload) {
                    self.balances[*k as usize / self.workers] += i64::from(d);
                }
                0
            }
            Mode::Shared => self.sum() as u64,
        };
        if g.txn == self.me {
            self.local = Some(value);
        } else {
            out.send(Node::Worker(g.txn), Msg::with(Kind::Granted, value));
        }
    }

    /// Releases `txn`'s lock here and applies what that lets through.
    fn release(&mut self, txn: usize, out: &mut Outbox) -> Result<(), String> {
        let mut granted = std::mem::take(&mut self.granted);
        if !self.locks.release(txn, &mut granted) {
            return Err(format!("shard {}: worker {txn} released a lock it did not hold", self.me));
        }
        for g in granted.drain(..) {
            self.grant(g, out);
        }
        self.granted = granted;
        Ok(())
    }
}

impl Service for Shard {
    fn on_message(&mut self, from: usize, msg: Msg, out: &mut Outbox) -> Result<(), String> {
        let one_shot = msg.flags & ONE_SHOT != 0;
        match msg.kind {
            Kind::LockX => {
                let n = usize::from(msg.flags >> 1);
                if !(1..=2).contains(&n) {
                    return Err(format!("a lock of {n} accounts"));
                }
                let mode = Mode::Exclusive { keys: [msg.a, msg.b], n };
                let payload = unpack_deltas(msg.c);
                self.submit(Request { txn: from, mode, one_shot, payload }, out)
            }
            Kind::LockS => self
                .submit(Request { txn: from, mode: Mode::Shared, one_shot, payload: [0; 2] }, out),
            Kind::Unlock => self.release(from, out),
            _ => Err(format!("bank shard: unexpected {msg:?}")),
        }
    }

    fn wake_source(&self) -> Option<usize> {
        self.locks.a_holder_other_than(self.me)
    }
}

/// Takes one lock (of this transaction's plan) at `shard`, waiting for the grant while
/// serving; returns the grant's value.
fn lock(p: &mut Process<Shard>, shard: usize, req: Request<[i32; 2]>) -> Result<u64, String> {
    if shard == p.me {
        p.state.submit(req, &mut p.links.out)?;
        p.wait_until(|p| p.state.local.take())
    } else {
        let (kind, keys, n) = match req.mode {
            Mode::Shared => (Kind::LockS, [0, 0], 0),
            Mode::Exclusive { keys, n } => (Kind::LockX, keys, n),
        };
        let flags = (n as u8) << 1 | if req.one_shot { ONE_SHOT } else { 0 };
        let msg = Msg { kind, flags, a: keys[0], b: keys[1], c: pack_deltas(req.payload) };
        let reply = p.call(shard, msg)?;
        if reply.kind != Kind::Granted {
            return Err(format!("a lock answered with {reply:?}"));
        }
        Ok(reply.a)
    }
}

/// Releases this transaction's lock at `shard`.
fn unlock(p: &mut Process<Shard>, shard: usize) -> Result<(), String> {
    if shard == p.me {
        let me = p.me;
        p.state.release(me, &mut p.links.out)
    } else {
        p.send(Node::Worker(shard), Msg::new(Kind::Unlock));
        Ok(())
    }
}

/// A transfer of 1 from `from` to `to`.
fn transfer(p: &mut Process<Shard>, from: usize, to: usize) -> Result<(), String> {
    let w = p.state.workers;
    let txn = p.me;
    let (sf, st) = (from % w, to % w);
    let x = |key: usize, delta: i32, one_shot: bool| Request {
        txn,
        mode: Mode::one(key as u64),
        one_shot,
        payload: [delta, 0],
    };
    if sf == st {
        let mode = Mode::Exclusive { keys: [from as u64, to as u64], n: 2 };
        lock(p, sf, Request { txn, mode, one_shot: true, payload: [-1, 1] })?;
        return Ok(());
    }
    let ((s1, r1), (s2, r2)) = if sf < st {
        ((sf, x(from, -1, false)), (st, x(to, 1, true)))
    } else {
        ((st, x(to, 1, false)), (sf, x(from, -1, true)))
    };
    lock(p, s1, r1)?;
    lock(p, s2, r2)?;
    unlock(p, s1)
}

/// An audit: the sum of every shard under shared locks taken in shard order.
fn audit(p: &mut Process<Shard>) -> Result<i64, String> {
    let w = p.state.workers;
    let txn = p.me;
    let mut total = 0_i64;
    for k in 0..w {
        let req = Request { txn, mode: Mode::Shared, one_shot: k + 1 == w, payload: [0; 2] };
        total += lock(p, k, req)? as i64;
    }
    for k in 0..w - 1 {
        unlock(p, k)?;
    }
    Ok(total)
}

/// The client loop: the thread contenders' operations (same generator, same seeds).
pub(crate) fn run(
    p: &mut Process<Shard>,
    spec: &Spec,
    meter: &mut Meter,
) -> Result<Vec<Check>, String> {
    let expected = INITIAL * spec.accounts as i64;
    let mut rng = XorShift::for_thread(p.me);
    let mut bad_audits = 0_u64;
    while !p.control.stop {
        let t = meter.begin();
        match next_op(spec, &mut rng) {
            Some((from, to)) => transfer(p, from, to)?,
            None => {
                if audit(p)? != expected {
                    bad_audits += 1;
                }
            }
        }
        meter.end(t);
        p.tick()?;
    }
    Ok(vec![Check { tag: 0, a: bad_audits, b: 0, c: 0 }])
}

/// The shard's final state, after every client stopped.
pub(crate) fn final_checks(p: &Process<Shard>) -> Vec<Check> {
    vec![Check { tag: 1, a: p.state.sum() as u64, b: p.state.locks.pending() as u64, c: 0 }]
}

/// The coordinator's check: money conserved, no audit saw a wrong total, no lock left.
pub(crate) fn verify(spec: &Spec, reports: &[WorkerReport]) -> Result<(), String> {
    let expected = INITIAL * spec.accounts as i64;
    let mut total = 0_i64;
    let mut bad = 0;
    for (i, r) in reports.iter().enumerate() {
        let mut shard_seen = false;
        for c in &r.checks {
            match c.tag {
                0 => bad += c.a,
                1 => {
                    shard_seen = true;
                    total += c.a as i64;
                    if c.b != 0 {
                        return Err(format!("shard {i}: {} lock requests left pending", c.b));
                    }
                }
                t => return Err(format!("worker {i}: unknown bank check {t}")),
            }
        }
        if !shard_seen {
            return Err(format!("worker {i} did not report its shard"));
        }
    }
    super::check_eq("audits that saw a wrong total", 0, bad)?;
    super::check_eq("total after the run", expected, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> WorkerReport {
        WorkerReport { meter: Meter::new(), checks }
    }

    fn shard(sum: i64, pending: u64) -> Check {
        Check { tag: 1, a: sum as u64, b: pending, c: 0 }
    }

    #[test]
    fn verify_accepts_conserved_money_and_rejects_anything_else() {
        let spec = Spec { accounts: 10, audit_one_in: 5 };
        let audits = Check { tag: 0, a: 0, b: 0, c: 0 };
        let good = [report(vec![audits, shard(6_000, 0)]), report(vec![audits, shard(4_000, 0)])];
        assert_eq!(verify(&spec, &good), Ok(()));
        // Money moved between shards is fine; money created is not.
        let moved = [report(vec![audits, shard(6_010, 0)]), report(vec![shard(3_990, 0)])];
        assert_eq!(verify(&spec, &moved), Ok(()));
        let created = [report(vec![shard(6_001, 0)]), report(vec![shard(4_000, 0)])];
        assert!(verify(&spec, &created).unwrap_err().contains("total"));
        let bad_audit = Check { tag: 0, a: 1, b: 0, c: 0 };
        let seen = [report(vec![bad_audit, shard(6_000, 0)]), report(vec![shard(4_000, 0)])];
        assert!(verify(&spec, &seen).unwrap_err().contains("audits"));
        let locked = [report(vec![shard(6_000, 1)]), report(vec![shard(4_000, 0)])];
        assert!(verify(&spec, &locked).unwrap_err().contains("pending"));
        let missing = [report(vec![shard(10_000, 0)]), report(vec![audits])];
        assert!(verify(&spec, &missing).is_err());
    }

    #[test]
    fn shards_partition_the_accounts() {
        for accounts in [4, 5, 64, 1000] {
            for workers in 1..=4 {
                let spec = Spec { accounts, audit_one_in: 0 };
                let n: usize =
                    (0..workers).map(|me| Shard::new(&spec, me, workers).balances.len()).sum();
                assert_eq!(n, accounts);
                for me in 0..workers {
                    let s = Shard::new(&spec, me, workers);
                    assert_eq!(s.balances.len(), (me..accounts).step_by(workers).count());
                }
            }
        }
    }

    #[test]
    fn a_shard_refuses_foreign_or_missing_accounts_and_unheld_releases() {
        let spec = Spec { accounts: 8, audit_one_in: 0 };
        let mut s = Shard::new(&spec, 1, 2);
        let mut out = Outbox::new(2);
        let msg = |a, flags| Msg { kind: Kind::LockX, flags, a, b: a, c: pack_deltas([1, 0]) };
        assert!(s.on_message(0, msg(2, 2 | ONE_SHOT), &mut out).is_err(), "account 2 is shard 0's");
        assert!(s.on_message(0, msg(9, 2 | ONE_SHOT), &mut out).is_err(), "no account 9");
        assert!(s.on_message(0, msg(3, 6), &mut out).is_err(), "3 accounts");
        assert!(s.on_message(0, Msg::new(Kind::Unlock), &mut out).is_err());
        s.on_message(0, msg(3, 2 | ONE_SHOT), &mut out).unwrap();
        assert_eq!(s.sum(), 4 * INITIAL + 1);
        assert_eq!(s.locks.pending(), 0);
    }
}
