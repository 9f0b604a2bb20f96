//! `dict` over shards: key `k` lives in shard [`owner`]`(k)` (a multiplicative hash), whose
//! worker keeps it in a `HashMap`. A read or an increment of a key of the worker's own shard
//! is local; otherwise it is a `Get` or `Increment` request to the owner, answered with the
//! value. Linearizable per key (one owner applies every operation on it).
//!
//! Check: like the thread contenders', every key's final value must equal the increments
//! the workers made to it (each worker counts its own per key and reports the non-zero
//! counts; each owner reports its non-zero values and how many keys it holds).

use std::collections::HashMap;

use crate::compare::measure::Meter;
use crate::compare::workloads::dict::{check, Counts, Draws, Spec, DRAWS};

use super::node::{Process, Service};
use super::protocol::{Kind, Msg, PRESENT};
use super::transport::Outbox;
use super::{Check, WorkerReport};
use crate::ipc::process::Node;

/// Check tags.
const COUNT: u8 = 0;
const VALUE: u8 = 1;
const LEN: u8 = 2;

/// The shard that owns `key` among `workers`.
pub(crate) fn owner(key: u64, workers: usize) -> usize {
    ((key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % workers as u64) as usize
}

/// One shard of the map.
#[derive(Debug)]
pub(crate) struct Shard {
    map: HashMap<u64, u64>,
}

impl Shard {
    /// The shard with its keys loaded (value 0), as the thread contenders load theirs.
    pub(crate) fn load(spec: &Spec, me: usize, workers: usize) -> Shard {
        Shard {
            map: (0..spec.keys as u64)
                .filter(|&k| owner(k, workers) == me)
                .map(|k| (k, 0))
                .collect(),
        }
    }

    fn increment(&mut self, key: u64) -> u64 {
        let v = self.map.entry(key).or_insert(0);
        *v += 1;
        *v
    }
}

impl Service for Shard {
    fn on_message(&mut self, from: usize, msg: Msg, out: &mut Outbox) -> Result<(), String> {
        let reply = match msg.kind {
            Kind::Get => match self.map.get(&msg.a) {
                Some(&v) => Msg { flags: PRESENT, ..Msg::with(Kind::Value, v) },
                None => Msg::new(Kind::Value),
            },
            Kind::Increment => Msg::with(Kind::Done, self.increment(msg.a)),
            _ => return Err(format!("dict shard: unexpected {msg:?}")),
        };
        out.send(Node::Worker(from), reply);
        Ok(())
    }
}

/// The client loop: the thread contenders' draws for this worker index.
pub(crate) fn run(
    p: &mut Process<Shard>,
    spec: &Spec,
    meter: &mut Meter,
) -> Result<Vec<Check>, String> {
    let draws = Draws::new(spec, p.me);
    let mut counts = Counts::new(spec.keys);
    let workers = p.links.workers();
    let mut i = 0;
    while !p.control.stop {
        let (key, write) = draws.0[i % DRAWS];
        i += 1;
        let t = meter.begin();
        let shard = owner(key, workers);
        if shard == p.me {
            if write {
                std::hint::black_box(p.state.increment(key));
            } else {
                std::hint::black_box(p.state.map.get(&key));
            }
        } else {
            let kind = if write { Kind::Increment } else { Kind::Get };
            let reply = p.call(shard, Msg::with(kind, key))?;
            let expected = if write { Kind::Done } else { Kind::Value };
            if reply.kind != expected {
                return Err(format!("{kind:?} answered with {reply:?}"));
            }
            std::hint::black_box(reply.a);
        }
        if write {
            counts.0[key as usize] += 1;
        }
        meter.end(t);
        p.tick()?;
    }
    Ok(counts
        .0
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != 0)
        .map(|(k, &n)| Check { tag: COUNT, a: k as u64, b: u64::from(n), c: 0 })
        .collect())
}

/// The shard's final values (non-zero ones) and size.
pub(crate) fn final_checks(p: &Process<Shard>) -> Vec<Check> {
    let mut checks: Vec<Check> = p
        .state
        .map
        .iter()
        .filter(|&(_, &v)| v != 0)
        .map(|(&k, &v)| Check { tag: VALUE, a: k, b: v, c: 0 })
        .collect();
    checks.push(Check { tag: LEN, a: p.state.map.len() as u64, b: 0, c: 0 });
    checks
}

/// The coordinator's check: every key's value is the sum of the workers' increments of it.
pub(crate) fn verify(spec: &Spec, reports: &[WorkerReport]) -> Result<(), String> {
    let mut counts: Vec<Counts> = Vec::with_capacity(reports.len());
    let mut values: HashMap<u64, u64> = HashMap::new();
    let mut len = 0;
    for (i, r) in reports.iter().enumerate() {
        let mut mine = Counts::new(spec.keys);
        for c in &r.checks {
            match c.tag {
                COUNT => {
                    let slot = mine.0.get_mut(c.a as usize).ok_or_else(|| {
                        format!("worker {i} counted key {} of {}", c.a, spec.keys)
                    })?;
                    *slot = u32::try_from(c.b).map_err(|_| "a count beyond u32".to_owned())?;
                }
                VALUE => {
                    if owner(c.a, reports.len()) != i || values.insert(c.a, c.b).is_some() {
                        return Err(format!("key {} reported by worker {i}, not its owner", c.a));
                    }
                }
                LEN => len += c.a,
                t => return Err(format!("worker {i}: unknown dict check {t}")),
            }
        }
        counts.push(mine);
    }
    // Every key was loaded and none added (an increment of a missing key would add it), so
    // the shards hold exactly the keys 0..keys; those not reported are still 0.
    super::check_eq("keys held by the shards", spec.keys as u64, len)?;
    check(&counts, |k| Some(values.get(&k).copied().unwrap_or(0)), spec.keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(checks: Vec<Check>) -> WorkerReport {
        WorkerReport { meter: Meter::new(), checks }
    }

    fn c(tag: u8, a: u64, b: u64) -> Check {
        Check { tag, a, b, c: 0 }
    }

    #[test]
    fn keys_spread_over_every_shard() {
        for workers in 1..=4 {
            let mut per = vec![0; workers];
            (0..10_000).for_each(|k| per[owner(k, workers)] += 1);
            assert!(per.iter().all(|&n| n > 10_000 / workers / 2), "{per:?}");
        }
    }

    #[test]
    fn verify_matches_counts_with_values() {
        let spec = Spec { keys: 8, read_percent: 50, zipf: false };
        let (k0, k1) = (
            (0..8).find(|&k| owner(k, 2) == 0).unwrap(),
            (0..8).find(|&k| owner(k, 2) == 1).unwrap(),
        );
        let held = |w| (0..8).filter(|&k| owner(k, 2) == w).count() as u64;
        let good = [
            rep(vec![c(COUNT, k1, 2), c(COUNT, k0, 1), c(VALUE, k0, 3), c(LEN, held(0), 0)]),
            rep(vec![c(COUNT, k0, 2), c(VALUE, k1, 2), c(LEN, held(1), 0)]),
        ];
        assert_eq!(verify(&spec, &good), Ok(()));
        let lost = [
            rep(vec![c(COUNT, k1, 2), c(COUNT, k0, 1), c(VALUE, k0, 2), c(LEN, held(0), 0)]),
            rep(vec![c(COUNT, k0, 2), c(VALUE, k1, 2), c(LEN, held(1), 0)]),
        ];
        assert!(verify(&spec, &lost).unwrap_err().contains(&format!("key {k0}")));
        let missing = [
            rep(vec![c(COUNT, k1, 2), c(VALUE, k1, 2), c(LEN, held(0) - 1, 0)]),
            rep(vec![c(LEN, held(1), 0)]),
        ];
        assert!(verify(&spec, &missing).is_err());
        let wrong_owner =
            [rep(vec![c(VALUE, k1, 0), c(LEN, held(0), 0)]), rep(vec![c(LEN, held(1), 0)])];
        assert!(verify(&spec, &wrong_owner).unwrap_err().contains("not its owner"));
    }

    #[test]
    fn requests_are_answered_with_the_value() {
        let spec = Spec { keys: 8, read_percent: 50, zipf: false };
        let mut s = Shard::load(&spec, 0, 1);
        let mut out = Outbox::new(2);
        s.on_message(1, Msg::with(Kind::Increment, 5), &mut out).unwrap();
        s.on_message(1, Msg::with(Kind::Get, 5), &mut out).unwrap();
        s.on_message(1, Msg::with(Kind::Get, 99), &mut out).unwrap();
        assert_eq!(s.map[&5], 1);
        assert!(s.on_message(1, Msg::new(Kind::Unlock), &mut out).is_err());
    }
}
