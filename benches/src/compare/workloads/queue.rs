//! `queue`: producers and consumers through a bounded FIFO queue of `capacity` items.
//! Half the workers produce, half consume (one worker alternates a push and a pop); an
//! operation is one push or one pop, and a push to a full queue or a pop from an empty one
//! waits (that wait is part of its latency).
//!
//! Check: every item arrives exactly once, and each consumer sees each producer's items in
//! the order they were pushed (FIFO). At the stop, producers finish; the last one pushes a
//! stop marker per consumer, behind every item.
//!
//! Contenders: Concord's `TBQueue` (threads, and tasks that suspend on a full or empty
//! queue), a `parking_lot::Mutex<VecDeque>` with two condition variables, crossbeam's
//! bounded channel (the hand-tuned structure), and for `stm` 0.4, which has no queue, one
//! `stm::TVar<VecDeque>` with `retry`, as a user of that crate would write it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use concord_stm::atomically_async;
use concord_stm::collections::TBQueue;
use parking_lot::{Condvar, Mutex};

use super::check_eq;
use crate::compare::measure::{self, Measured, Meter, Stop};
use crate::compare::spec::Case;

/// Marks the end of the stream for one consumer.
pub(crate) const STOP: u64 = u64::MAX;

/// An item: its producer and its sequence number.
pub(crate) fn item(producer: usize, seq: u64) -> u64 {
    (producer as u64) << 40 | seq
}

/// A bounded FIFO queue of `u64` behind some synchronization, as the thread contenders use it.
pub(super) trait Queue: Sync {
    fn with_capacity(capacity: usize) -> Self;
    fn push(&self, item: u64);
    fn pop(&self) -> u64;
}

impl Queue for TBQueue<u64> {
    fn with_capacity(capacity: usize) -> Self {
        TBQueue::new(capacity)
    }

    fn push(&self, item: u64) {
        concord_stm::atomically(|tx| TBQueue::push(self, tx, item));
    }

    fn pop(&self) -> u64 {
        concord_stm::atomically(|tx| TBQueue::pop(self, tx))
    }
}

/// A `VecDeque` behind one mutex, with condition variables for full and empty.
pub(super) struct LockedQueue {
    items: Mutex<VecDeque<u64>>,
    capacity: usize,
    not_empty: Condvar,
    not_full: Condvar,
}

impl Queue for LockedQueue {
    fn with_capacity(capacity: usize) -> Self {
        LockedQueue {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
        }
    }

    fn push(&self, item: u64) {
        let mut items = self.items.lock();
        while items.len() == self.capacity {
            self.not_full.wait(&mut items);
        }
        items.push_back(item);
        self.not_empty.notify_one();
    }

    fn pop(&self) -> u64 {
        let mut items = self.items.lock();
        loop {
            if let Some(item) = items.pop_front() {
                self.not_full.notify_one();
                return item;
            }
            self.not_empty.wait(&mut items);
        }
    }
}

/// crossbeam's bounded channel: both ends in one value.
pub(super) struct Channel(crossbeam_channel::Sender<u64>, crossbeam_channel::Receiver<u64>);

impl Queue for Channel {
    fn with_capacity(capacity: usize) -> Self {
        let (s, r) = crossbeam_channel::bounded(capacity);
        Channel(s, r)
    }

    fn push(&self, item: u64) {
        self.0.send(item).expect("the receiver lives as long as the sender");
    }

    fn pop(&self) -> u64 {
        self.1.recv().expect("the sender lives as long as the receiver")
    }
}

/// `stm` 0.4: one `TVar<VecDeque>`, waiting with `retry`.
pub(super) struct RustStmQueue {
    items: stm::TVar<VecDeque<u64>>,
    capacity: usize,
}

impl Queue for RustStmQueue {
    fn with_capacity(capacity: usize) -> Self {
        RustStmQueue { items: stm::TVar::new(VecDeque::with_capacity(capacity)), capacity }
    }

    fn push(&self, item: u64) {
        stm::atomically(|tx| {
            let mut items = self.items.read(tx)?;
            if items.len() == self.capacity {
                return stm::retry();
            }
            items.push_back(item);
            self.items.write(tx, items)
        });
    }

    fn pop(&self) -> u64 {
        stm::atomically(|tx| {
            let mut items = self.items.read(tx)?;
            let Some(item) = items.pop_front() else { return stm::retry() };
            self.items.write(tx, items)?;
            Ok(item)
        })
    }
}

/// What a worker did: the items it pushed, or the items it popped.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// Items pushed, by producer (only this worker's entry is non-zero).
    pub(crate) pushed: Vec<u64>,
    /// Per producer, one bit per sequence number popped.
    pub(crate) popped: Vec<Vec<u64>>,
    /// Set when this consumer saw a producer's items out of order.
    pub(crate) out_of_order: Option<String>,
}

impl Tally {
    pub(crate) fn new(producers: usize) -> Tally {
        Tally {
            pushed: vec![0; producers],
            popped: vec![Vec::new(); producers],
            out_of_order: None,
        }
    }

    /// Records a popped item; `last` is this consumer's last sequence number per producer.
    pub(crate) fn popped(&mut self, item: u64, last: &mut [Option<u64>]) {
        let (p, seq) = ((item >> 40) as usize, item & ((1 << 40) - 1));
        if last[p].is_some_and(|l| l >= seq) && self.out_of_order.is_none() {
            self.out_of_order = Some(format!("producer {p}: item {seq} after item {:?}", last[p]));
        }
        last[p] = Some(seq);
        let bits = &mut self.popped[p];
        let word = (seq / 64) as usize;
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        bits[word] |= 1 << (seq % 64);
    }
}

/// Checks that every pushed item was popped exactly once, and in order per consumer.
pub(crate) fn check(tallies: &[Tally], producers: usize) -> Result<(), String> {
    if let Some(e) = tallies.iter().find_map(|t| t.out_of_order.clone()) {
        return Err(format!("FIFO order broken: {e}"));
    }
    for p in 0..producers {
        let pushed: u64 = tallies.iter().map(|t| t.pushed[p]).sum();
        let mut seen = vec![0_u64; pushed.div_ceil(64) as usize];
        let mut popped = 0_u64;
        for t in tallies {
            for (w, &bits) in t.popped[p].iter().enumerate() {
                if bits == 0 {
                    continue;
                }
                if w >= seen.len() {
                    return Err(format!("producer {p}: an item beyond the {pushed} pushed"));
                }
                if seen[w] & bits != 0 {
                    return Err(format!("producer {p}: an item popped twice (word {w})"));
                }
                seen[w] |= bits;
                popped += u64::from(bits.count_ones());
            }
        }
        check_eq(&format!("items of producer {p} popped"), pushed, popped)?;
    }
    Ok(())
}

/// The roles: worker `w < producers` produces; with one worker, it does both.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Roles {
    pub(crate) producers: usize,
    pub(crate) consumers: usize,
}

impl Roles {
    pub(crate) fn of(workers: usize) -> Roles {
        if workers == 1 {
            Roles { producers: 1, consumers: 1 }
        } else {
            Roles { producers: workers / 2, consumers: workers - workers / 2 }
        }
    }
}

pub(super) fn on_threads<Q: Queue>(
    capacity: usize,
    case: &Case,
) -> Result<(Measured, u64), String> {
    let queue = Q::with_capacity(capacity);
    let roles = Roles::of(case.workers);
    let live_producers = AtomicUsize::new(roles.producers);
    let (measured, tallies) = measure::on_threads(case.workers, case.duration, |w, stop, meter| {
        let mut tally = Tally::new(roles.producers);
        let mut last = vec![None; roles.producers];
        if case.workers == 1 {
            let mut seq = 0;
            while !stop.is_set() {
                let t = meter.begin();
                queue.push(item(0, seq));
                meter.end(t);
                seq += 1;
                let t = meter.begin();
                let got = queue.pop();
                meter.end(t);
                tally.popped(got, &mut last);
            }
            tally.pushed[0] = seq;
        } else if w < roles.producers {
            tally.pushed[w] = produce(w, stop, meter, |i| queue.push(i));
            // The last producer out tells every consumer to stop, behind every item.
            if live_producers.fetch_sub(1, Ordering::AcqRel) == 1 {
                (0..roles.consumers).for_each(|_| queue.push(STOP));
            }
        } else {
            loop {
                let t = meter.begin();
                let got = queue.pop();
                if got == STOP {
                    break;
                }
                meter.end(t);
                tally.popped(got, &mut last);
            }
        }
        tally
    });
    let rss = super::rss();
    check(&tallies, roles.producers)?;
    Ok((measured, rss))
}

/// A producer's loop: pushes numbered items until `stop`; returns how many.
fn produce(w: usize, stop: &Stop, meter: &mut Meter, push: impl Fn(u64)) -> u64 {
    let mut seq = 0;
    while !stop.is_set() {
        let t = meter.begin();
        push(item(w, seq));
        meter.end(t);
        seq += 1;
    }
    seq
}

pub(super) fn on_executor(capacity: usize, case: &Case) -> Result<(Measured, u64), String> {
    let ex = super::bank::executor(case)?;
    let queue = Arc::new(TBQueue::<u64>::new(capacity));
    let roles = Roles::of(case.workers);
    let live_producers = Arc::new(AtomicUsize::new(roles.producers));
    let workers = case.workers;
    let (measured, tallies) = measure::on_executor(&ex, workers, case.duration, |w, stop| {
        let (queue, live) = (queue.clone(), live_producers.clone());
        async move {
            let mut meter = Meter::new();
            let mut tally = Tally::new(roles.producers);
            let mut last = vec![None; roles.producers];
            let push = |i: u64| {
                let queue = &queue;
                async move { atomically_async(|tx| queue.push(tx, i)).await }
            };
            let pop = || atomically_async(|tx| queue.pop(tx));
            if workers == 1 {
                let mut seq = 0;
                while !stop.is_set() {
                    let t = meter.begin();
                    push(item(0, seq)).await;
                    meter.end(t);
                    seq += 1;
                    let t = meter.begin();
                    let got = pop().await;
                    meter.end(t);
                    tally.popped(got, &mut last);
                }
                tally.pushed[0] = seq;
            } else if w < roles.producers {
                let mut seq = 0;
                while !stop.is_set() {
                    let t = meter.begin();
                    push(item(w, seq)).await;
                    meter.end(t);
                    seq += 1;
                }
                tally.pushed[w] = seq;
                if live.fetch_sub(1, Ordering::AcqRel) == 1 {
                    for _ in 0..roles.consumers {
                        push(STOP).await;
                    }
                }
            } else {
                loop {
                    let t = meter.begin();
                    let got = pop().await;
                    if got == STOP {
                        break;
                    }
                    meter.end(t);
                    tally.popped(got, &mut last);
                }
            }
            (meter, tally)
        }
    });
    let rss = super::rss();
    check(&tallies, roles.producers)?;
    Ok((measured, rss))
}
