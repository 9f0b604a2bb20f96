//! A worker's event loop: control messages from the coordinator, requests from peers to this
//! worker's shard, the reply to this worker's own request, and the wait policy.
//!
//! A worker is a server (of its shard) and a client (running the workload's operations) in
//! one thread. Its client has at most one request in flight; while it waits for the reply,
//! or for its own shard's lock, it keeps serving every incoming channel, otherwise two
//! workers waiting on each other's shards would deadlock. Waiting spins, then yields, then
//! sleeps, like the locks and the rings: poll every channel in a busy loop for [`SPIN`],
//! then poll and yield [`YIELDS`] times, then sleep on the channel the awaited message will
//! come from (the request's destination, or [`Service::wake_source`]) in the ring's futex or
//! the socket's `read`, at most [`SLEEP_SLICE`] at a time, so that requests arriving on the
//! other channels are served within that much.
//!
//! The spin is shorter and the yields more than the ring's own default (20 us, 4 yields):
//! a round trip with an idle peer takes well under 10 us, and when workers outnumber free
//! cores (two workers and anything else on two cores), the peer that must answer is often
//! runnable on the waiter's own core, so yielding gets the answer sooner than spinning, and
//! sooner than a futex sleep and wake (30-60 us on these hosts). Measured on the loaded
//! 2-core host, bank with 1024 accounts on 2 workers over rings: 45 k/s with 20 us and 4
//! yields, 120-170 k/s with 2-10 us and 16-64 yields (noisy; 3-4 M/s on a quieter host).

use std::hint::spin_loop;
use std::thread::yield_now;
use std::time::{Duration, Instant};

use crate::ipc::process::Node;

use super::protocol::{Kind, Msg};
use super::transport::{Links, Outbox};

/// How long an idle worker polls before yielding.
pub(crate) const SPIN: Duration = Duration::from_micros(10);
/// How many times it yields before sleeping.
pub(crate) const YIELDS: u32 = 16;
/// The longest sleep on one channel before polling all of them again.
pub(crate) const SLEEP_SLICE: Duration = Duration::from_micros(200);

/// A workload's shard: how a worker serves requests from its peers.
pub(crate) trait Service {
    /// Handles a request (or a release) from worker `from`, queueing replies in `out`.
    ///
    /// # Errors
    ///
    /// If the message makes no sense here (a protocol violation).
    fn on_message(&mut self, from: usize, msg: Msg, out: &mut Outbox) -> Result<(), String>;

    /// The worker whose message would end this worker's current local wait (say, the
    /// holder of the lock its own client waits for), if known.
    fn wake_source(&self) -> Option<usize> {
        None
    }
}

/// What the coordinator has said so far.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub(crate) started: bool,
    pub(crate) stop: bool,
    pub(crate) report: bool,
}

/// One worker process: its links, its shard, and its client's state.
#[derive(Debug)]
pub(crate) struct Process<S> {
    pub(crate) links: Links,
    pub(crate) state: S,
    pub(crate) control: Control,
    /// This worker's index.
    pub(crate) me: usize,
    /// The reply to the request in flight, once it came.
    reply: Option<Msg>,
    /// Where the request in flight went.
    awaiting: Option<Node>,
    /// Local operations since the last poll.
    unpolled: u32,
    /// Round-robin position for sleeping when nothing else tells where to.
    next_sleep: usize,
}

impl<S: Service> Process<S> {
    pub(crate) fn new(links: Links, state: S, me: usize) -> Process<S> {
        Process {
            links,
            state,
            control: Control::default(),
            me,
            reply: None,
            awaiting: None,
            unpolled: 0,
            next_sleep: 0,
        }
    }

    /// Queues `msg` for `to` (sent at the next flush, at the latest when this worker waits).
    pub(crate) fn send(&mut self, to: Node, msg: Msg) {
        self.links.out.send(to, msg);
    }

    /// Handles one incoming message.
    fn dispatch(
        state: &mut S,
        control: &mut Control,
        reply: &mut Option<Msg>,
        from: Node,
        msg: Msg,
        out: &mut Outbox,
    ) -> Result<(), String> {
        match from {
            Node::Coordinator => match msg.kind {
                Kind::Start => control.started = true,
                Kind::Stop => control.stop = true,
                Kind::Report => control.report = true,
                _ => return Err(format!("unexpected from the coordinator: {msg:?}")),
            },
            Node::Worker(w) if msg.kind.is_reply() => {
                if reply.replace(msg).is_some() {
                    return Err(format!("a second reply (from worker {w}): {msg:?}"));
                }
            }
            Node::Worker(w) => state.on_message(w, msg, out)?,
        }
        Ok(())
    }

    /// One turn of the event loop: handles everything that has arrived, then sends the
    /// replies. Returns how many messages it handled.
    ///
    /// # Errors
    ///
    /// On a protocol violation or a vanished peer.
    pub(crate) fn turn(&mut self) -> Result<usize, String> {
        self.unpolled = 0;
        let Process { links, state, control, reply, .. } = self;
        let n =
            links.poll(|from, msg, out| Self::dispatch(state, control, reply, from, msg, out))?;
        self.links.flush()?;
        Ok(n)
    }

    /// Called after each local operation: polls the channels every
    /// [`poll_every`](Links::poll_every) operations, so that peers are served (and the
    /// coordinator's stop is seen) while this worker's operations need no messages.
    ///
    /// # Errors
    ///
    /// As [`turn`](Self::turn).
    #[inline]
    pub(crate) fn tick(&mut self) -> Result<(), String> {
        self.unpolled += 1;
        if self.unpolled >= self.links.poll_every {
            self.turn()?;
        }
        Ok(())
    }

    /// Runs the event loop until `ready` returns something: spins polling every channel,
    /// yields, then sleeps on the most likely channel a slice at a time.
    ///
    /// # Errors
    ///
    /// As [`turn`](Self::turn).
    pub(crate) fn wait_until<T>(
        &mut self,
        mut ready: impl FnMut(&mut Self) -> Option<T>,
    ) -> Result<T, String> {
        self.links.flush()?;
        let mut idle_since: Option<Instant> = None;
        let mut spins = 0_u32;
        let mut yields = 0;
        loop {
            if let Some(v) = ready(self) {
                return Ok(v);
            }
            if self.turn()? > 0 {
                (idle_since, spins, yields) = (None, 0, 0);
                continue;
            }
            spins += 1;
            if spins % 64 != 0 || idle_since.get_or_insert_with(Instant::now).elapsed() < SPIN {
                spin_loop();
            } else if yields < YIELDS {
                yields += 1;
                yield_now();
            } else {
                let from = self.sleep_source();
                if let Some(msg) = self.links.sleep_on(from, SLEEP_SLICE)? {
                    let Process { links, state, control, reply, .. } = self;
                    Self::dispatch(state, control, reply, from, msg, &mut links.out)?;
                    self.links.flush()?;
                    (idle_since, spins, yields) = (None, 0, 0);
                }
            }
        }
    }

    /// Where to sleep: the channel of the awaited reply, or of the peer the shard names,
    /// or each channel in turn.
    fn sleep_source(&mut self) -> Node {
        if let Some(node) = self.awaiting {
            return node;
        }
        if let Some(w) = self.state.wake_source() {
            return Node::Worker(w);
        }
        let peers = self.links.peers();
        self.next_sleep = (self.next_sleep + 1) % peers.len();
        peers[self.next_sleep]
    }

    /// Sends `msg` to worker `to` and waits for the reply, serving meanwhile.
    ///
    /// # Errors
    ///
    /// As [`turn`](Self::turn).
    pub(crate) fn call(&mut self, to: usize, msg: Msg) -> Result<Msg, String> {
        debug_assert!(to != self.me && self.awaiting.is_none());
        self.send(Node::Worker(to), msg);
        self.awaiting = Some(Node::Worker(to));
        let reply = self.wait_until(|p| p.reply.take());
        self.awaiting = None;
        reply
    }
}
