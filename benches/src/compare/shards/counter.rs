//! `counter` over shards: worker 0 owns the counter and increments it locally; every other
//! worker sends `Increment` and waits for `Done`. Linearizable (one owner applies every
//! increment, in the order it receives them).
//!
//! Check: the owner's final value equals the increments made by all workers.

use crate::compare::measure::Measured;
use crate::compare::measure::Meter;

use super::node::{Process, Service};
use super::protocol::{Kind, Msg};
use super::transport::Outbox;
use super::{Check, WorkerReport};
use crate::ipc::process::Node;

/// The counter, at its owner (worker 0); other workers hold nothing.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    value: u64,
}

impl Service for Shard {
    fn on_message(&mut self, from: usize, msg: Msg, out: &mut Outbox) -> Result<(), String> {
        match msg.kind {
            Kind::Increment => {
                self.value += 1;
                out.send(Node::Worker(from), Msg::with(Kind::Done, self.value));
                Ok(())
            }
            _ => Err(format!("counter: unexpected {msg:?}")),
        }
    }
}

/// The client loop.
pub(crate) fn run(p: &mut Process<Shard>, meter: &mut Meter) -> Result<Vec<Check>, String> {
    while !p.control.stop {
        let t = meter.begin();
        if p.me == 0 {
            p.state.value += 1;
        } else {
            let reply = p.call(0, Msg::with(Kind::Increment, 0))?;
            if reply.kind != Kind::Done {
                return Err(format!("an increment answered with {reply:?}"));
            }
        }
        meter.end(t);
        p.tick()?;
    }
    Ok(Vec::new())
}

/// The owner's final value.
pub(crate) fn final_checks(p: &Process<Shard>) -> Vec<Check> {
    if p.me == 0 {
        vec![Check { tag: 0, a: p.state.value, b: 0, c: 0 }]
    } else {
        Vec::new()
    }
}

/// The coordinator's check: the owner's value is the number of increments.
pub(crate) fn verify(reports: &[WorkerReport], measured: &Measured) -> Result<(), String> {
    let values: Vec<u64> =
        reports.iter().flat_map(|r| &r.checks).filter(|c| c.tag == 0).map(|c| c.a).collect();
    let [value] = values[..] else {
        return Err(format!("expected the owner's value only, got {values:?}"));
    };
    super::check_eq("counter after the run", measured.ops, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_compares_the_owners_value_with_the_operations() {
        let meter = |ops| {
            let mut m = Meter::new();
            m.ops = ops;
            m
        };
        let ms =
            Measured::from_meters(vec![meter(5), meter(7)], Default::default(), Default::default());
        let rep = |value: Option<u64>| WorkerReport {
            meter: Meter::new(),
            checks: value.map(|a| Check { tag: 0, a, b: 0, c: 0 }).into_iter().collect(),
        };
        assert_eq!(verify(&[rep(Some(12)), rep(None)], &ms), Ok(()));
        assert!(verify(&[rep(Some(11)), rep(None)], &ms).is_err(), "a lost increment");
        assert!(verify(&[rep(Some(12)), rep(Some(0))], &ms).is_err(), "two owners");
        assert!(verify(&[rep(None), rep(None)], &ms).is_err(), "no owner");
    }

    #[test]
    fn the_owner_acknowledges_with_the_new_value() {
        let mut s = Shard::default();
        let mut out = Outbox::new(3);
        s.on_message(2, Msg::with(Kind::Increment, 0), &mut out).unwrap();
        s.on_message(1, Msg::with(Kind::Increment, 0), &mut out).unwrap();
        assert_eq!(s.value, 2);
        assert!(s.on_message(1, Msg::new(Kind::Pop), &mut out).is_err());
    }
}
