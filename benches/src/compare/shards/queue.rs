//! `queue` over shards: worker 0 owns the bounded FIFO queue. Roles as for the threads:
//! workers below `producers` push numbered items, the others pop (one worker alone does
//! both, alternating). A push is a `Push` request answered (`Done`) once the item is in the
//! queue, a pop a `Pop` request answered (`Item`) once there is an item for it: the owner
//! parks requests it cannot serve yet, in arrival order, and serves them as room or items
//! appear. The owner's own pushes go through the same parking. Linearizable (one owner).
//!
//! Stopping: producers stop at the coordinator's `Stop` and tell the owner
//! (`ProducerDone`); when all have, the owner queues one stop marker per consumer behind
//! every item; consumers run until they pop one.
//!
//! Check: the thread contenders' ([`Tally`]): every item popped once, in order per producer.

use std::collections::VecDeque;

use crate::compare::measure::Meter;
use crate::compare::workloads::queue::{check, item, Roles, Tally, STOP};

use super::node::{Process, Service};
use super::protocol::{Kind, Msg};
use super::transport::Outbox;
use super::{Check, WorkerReport};
use crate::ipc::process::Node;

/// Check tags.
const PUSHED: u8 = 0;
const POPPED: u8 = 1;
const OUT_OF_ORDER: u8 = 2;

/// Who to answer: a worker, or nobody (the owner's own stop markers).
type Client = Option<usize>;

/// The queue at its owner (worker 0); other workers hold nothing.
#[derive(Debug)]
pub(crate) struct Shard {
    me: usize,
    roles: Roles,
    capacity: usize,
    items: VecDeque<u64>,
    /// Pushes waiting for room, in arrival order.
    pushes: VecDeque<(Client, u64)>,
    /// Pops waiting for an item, in arrival order.
    pops: VecDeque<usize>,
    producers_done: usize,
    /// The answer to this worker's own push or pop.
    local: Option<u64>,
}

impl Shard {
    pub(crate) fn new(capacity: usize, me: usize, workers: usize) -> Shard {
        Shard {
            me,
            roles: Roles::of(workers),
            capacity,
            items: VecDeque::with_capacity(capacity),
            pushes: VecDeque::new(),
            pops: VecDeque::new(),
            producers_done: 0,
            local: None,
        }
    }

    fn answer(&mut self, client: Client, msg: Msg, out: &mut Outbox) {
        match client {
            Some(c) if c == self.me => self.local = Some(msg.a),
            Some(c) => out.send(Node::Worker(c), msg),
            None => {}
        }
    }

    /// Serves parked pushes while there is room and parked pops while there are items.
    fn settle(&mut self, out: &mut Outbox) {
        loop {
            let mut moved = false;
            while self.items.len() < self.capacity {
                let Some((client, it)) = self.pushes.pop_front() else { break };
                self.items.push_back(it);
                self.answer(client, Msg::new(Kind::Done), out);
                moved = true;
            }
            while !self.items.is_empty() {
                let Some(c) = self.pops.pop_front() else { break };
                let it = self.items.pop_front().expect("not empty");
                self.answer(Some(c), Msg::with(Kind::Item, it), out);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn push(&mut self, client: Client, it: u64, out: &mut Outbox) {
        self.pushes.push_back((client, it));
        self.settle(out);
    }

    fn pop(&mut self, client: usize, out: &mut Outbox) {
        self.pops.push_back(client);
        self.settle(out);
    }

    fn producer_done(&mut self, out: &mut Outbox) -> Result<(), String> {
        self.producers_done += 1;
        if self.producers_done > self.roles.producers {
            return Err("more producers done than there are".to_owned());
        }
        if self.producers_done == self.roles.producers {
            for _ in 0..self.roles.consumers {
                self.push(None, STOP, out);
            }
        }
        Ok(())
    }
}

impl Service for Shard {
    fn on_message(&mut self, from: usize, msg: Msg, out: &mut Outbox) -> Result<(), String> {
        if self.me != 0 {
            return Err(format!("queue: worker {} owns no queue: {msg:?}", self.me));
        }
        match msg.kind {
            Kind::Push => self.push(Some(from), msg.a, out),
            Kind::Pop => self.pop(from, out),
            Kind::ProducerDone => self.producer_done(out)?,
            _ => return Err(format!("queue: unexpected {msg:?}")),
        }
        Ok(())
    }
}

fn push(p: &mut Process<Shard>, it: u64) -> Result<(), String> {
    if p.me == 0 {
        let me = p.me;
        p.state.push(Some(me), it, &mut p.links.out);
        p.wait_until(|p| p.state.local.take()).map(drop)
    } else {
        let reply = p.call(0, Msg::with(Kind::Push, it))?;
        (reply.kind == Kind::Done)
            .then_some(())
            .ok_or_else(|| format!("a push answered with {reply:?}"))
    }
}

fn pop(p: &mut Process<Shard>) -> Result<u64, String> {
    if p.me == 0 {
        p.state.pop(0, &mut p.links.out);
        p.wait_until(|p| p.state.local.take())
    } else {
        let reply = p.call(0, Msg::new(Kind::Pop))?;
        match reply.kind {
            Kind::Item => Ok(reply.a),
            _ => Err(format!("a pop answered with {reply:?}")),
        }
    }
}

/// The client loop of this worker's role.
pub(crate) fn run(p: &mut Process<Shard>, meter: &mut Meter) -> Result<Vec<Check>, String> {
    let workers = p.links.workers();
    let roles = Roles::of(workers);
    let w = p.me;
    let mut tally = Tally::new(roles.producers);
    let mut last = vec![None; roles.producers];
    let mut out_of_order = None;
    let mut popped = |tally: &mut Tally, last: &mut [Option<u64>], got: u64| {
        let (pr, seq) = ((got >> 40) as usize, got & ((1 << 40) - 1));
        if pr >= last.len() {
            return Err(format!("an item of no producer: {got:#x}"));
        }
        if out_of_order.is_none() && last[pr].is_some_and(|l| l >= seq) {
            out_of_order = Some((pr, seq, last[pr].unwrap_or(0)));
        }
        tally.popped(got, last);
        Ok(())
    };
    if workers == 1 {
        let mut seq = 0;
        while !p.control.stop {
            let t = meter.begin();
            push(p, item(0, seq))?;
            meter.end(t);
            seq += 1;
            let t = meter.begin();
            let got = pop(p)?;
            meter.end(t);
            popped(&mut tally, &mut last, got)?;
            p.tick()?;
        }
        tally.pushed[0] = seq;
    } else if w < roles.producers {
        let mut seq = 0;
        while !p.control.stop {
            let t = meter.begin();
            push(p, item(w, seq))?;
            meter.end(t);
            seq += 1;
            p.tick()?;
        }
        tally.pushed[w] = seq;
        if w == 0 {
            p.state.producer_done(&mut p.links.out)?;
        } else {
            p.send(Node::Worker(0), Msg::new(Kind::ProducerDone));
        }
    } else {
        loop {
            let t = meter.begin();
            let got = pop(p)?;
            if got == STOP {
                break;
            }
            meter.end(t);
            popped(&mut tally, &mut last, got)?;
        }
    }
    let mut checks: Vec<Check> = tally
        .pushed
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != 0)
        .map(|(pr, &n)| Check { tag: PUSHED, a: pr as u64, b: n, c: 0 })
        .collect();
    for (pr, words) in tally.popped.iter().enumerate() {
        for (i, &bits) in words.iter().enumerate().filter(|&(_, &b)| b != 0) {
            checks.push(Check { tag: POPPED, a: pr as u64, b: i as u64, c: bits });
        }
    }
    if let Some((pr, seq, l)) = out_of_order {
        checks.push(Check { tag: OUT_OF_ORDER, a: pr as u64, b: seq, c: l });
    }
    Ok(checks)
}

/// The owner's final state: nothing may be left parked, and only nothing or stop markers
/// in the queue.
pub(crate) fn final_checks(p: &Process<Shard>) -> Vec<Check> {
    let s = &p.state;
    let left = s.pushes.len() + s.pops.len() + s.items.len();
    if p.me == 0 && left != 0 {
        vec![Check { tag: u8::MAX, a: left as u64, b: 0, c: 0 }]
    } else {
        Vec::new()
    }
}

/// The coordinator's check: the thread contenders' check on the rebuilt tallies.
pub(crate) fn verify(reports: &[WorkerReport]) -> Result<(), String> {
    let roles = Roles::of(reports.len());
    let mut tallies = Vec::with_capacity(reports.len());
    for (i, r) in reports.iter().enumerate() {
        let mut t = Tally::new(roles.producers);
        for c in &r.checks {
            let pr = usize::try_from(c.a).ok().filter(|&pr| pr < roles.producers);
            match (c.tag, pr) {
                (PUSHED, Some(pr)) => t.pushed[pr] = c.b,
                (POPPED, Some(pr)) => {
                    let words = &mut t.popped[pr];
                    let w = usize::try_from(c.b).map_err(|_| "a word beyond usize".to_owned())?;
                    if words.len() <= w {
                        words.resize(w + 1, 0);
                    }
                    words[w] |= c.c;
                }
                (OUT_OF_ORDER, Some(pr)) => {
                    t.out_of_order =
                        Some(format!("producer {pr}: item {} after item {}", c.b, c.c));
                }
                (u8::MAX, _) => {
                    return Err(format!("the queue's owner has {} requests or items left", c.a))
                }
                _ => return Err(format!("worker {i}: bad queue check {c:?}")),
            }
        }
        tallies.push(t);
    }
    check(&tallies, roles.producers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(out: &mut Outbox) -> Vec<(usize, Msg)> {
        out.take_all()
    }

    #[test]
    fn parked_pushes_and_pops_are_served_in_arrival_order() {
        let mut s = Shard::new(1, 0, 3);
        let mut out = Outbox::new(3);
        s.on_message(1, Msg::new(Kind::Pop), &mut out).unwrap();
        s.on_message(2, Msg::new(Kind::Pop), &mut out).unwrap();
        assert!(drain(&mut out).is_empty(), "nothing to pop yet");
        s.push(Some(0), 10, &mut out);
        s.push(Some(0), 11, &mut out);
        assert_eq!(s.local.take(), Some(0), "both pushes answered");
        let sent = drain(&mut out);
        assert_eq!(sent, [(1, Msg::with(Kind::Item, 10)), (2, Msg::with(Kind::Item, 11))]);
        // Full: the next two pushes park, and go in as pops make room.
        s.push(Some(0), 12, &mut out);
        s.on_message(1, Msg::with(Kind::Push, 13), &mut out).unwrap();
        assert_eq!(s.local.take(), Some(0));
        assert!(drain(&mut out).is_empty(), "13 waits for room");
        s.on_message(2, Msg::new(Kind::Pop), &mut out).unwrap();
        let sent = drain(&mut out);
        assert_eq!(sent, [(1, Msg::new(Kind::Done)), (2, Msg::with(Kind::Item, 12))]);
        assert_eq!(s.items, [13]);
    }

    #[test]
    fn stop_markers_follow_the_last_producer() {
        let mut s = Shard::new(4, 0, 4);
        let mut out = Outbox::new(4);
        s.push(Some(0), 5, &mut out);
        s.producer_done(&mut out).unwrap();
        assert_eq!(s.items.len(), 1, "one producer of two is done");
        s.on_message(1, Msg::new(Kind::ProducerDone), &mut out).unwrap();
        assert_eq!(Vec::from(s.items.clone()), [5, STOP, STOP]);
        assert!(s.on_message(1, Msg::new(Kind::ProducerDone), &mut out).is_err());
    }

    #[test]
    fn verify_rebuilds_the_tallies() {
        let rep = |checks| WorkerReport { meter: Meter::new(), checks };
        let c = |tag, a, b, c| Check { tag, a, b, c };
        let good = [rep(vec![c(PUSHED, 0, 3, 0)]), rep(vec![c(POPPED, 0, 0, 0b111)])];
        assert_eq!(verify(&good), Ok(()));
        let lost = [rep(vec![c(PUSHED, 0, 3, 0)]), rep(vec![c(POPPED, 0, 0, 0b101)])];
        assert!(verify(&lost).is_err());
        let unordered = [
            rep(vec![c(PUSHED, 0, 3, 0)]),
            rep(vec![c(POPPED, 0, 0, 0b111), c(OUT_OF_ORDER, 0, 1, 2)]),
        ];
        assert!(verify(&unordered).unwrap_err().contains("FIFO"));
        let left =
            [rep(vec![c(PUSHED, 0, 3, 0), c(u8::MAX, 1, 0, 0)]), rep(vec![c(POPPED, 0, 0, 0b111)])];
        assert!(verify(&left).is_err());
        let stranger = [rep(vec![c(PUSHED, 5, 3, 0)]), rep(vec![])];
        assert!(verify(&stranger).is_err());
    }
}
