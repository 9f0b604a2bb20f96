//! One worker's ends of the mesh, over either transport: polling every incoming channel,
//! batched sending, and sleeping on one channel.
//!
//! Every transport of [`Endpoint`] (the shared-memory rings and Unix sockets of
//! [`Mesh`](crate::ipc::process::Mesh), and MPI messages with feature `mpi`) sits behind the
//! same type; this is the only place that knows which one it is, for two settings:
//!
//! - Rings are set to sleep at once in `recv_timeout` ([`WaitPolicy::SLEEP_AT_ONCE`]): the
//!   worker's event loop does the spinning itself, over *all* its incoming rings, and uses a
//!   ring's futex only for the sleep phase.
//! - How often a worker that runs local operations polls its channels: after every operation
//!   on rings (a poll is a load per ring, of a line that stays cached until the peer
//!   writes), every [`SOCKET_POLL_EVERY`] operations on sockets (a poll is a `recv` system
//!   call per socket), every `MPI_POLL_EVERY` operations over MPI.

use std::time::Duration;

use crate::ipc::process::{Endpoint, MeshReceiver, Node};
use crate::ipc::ring::WaitPolicy;
use crate::ipc::{RecvTimeoutError, Rx, TryRecvError, Tx};

use super::protocol::{Msg, Words, WORDS};

/// At most this many messages are taken from one channel per turn, so that one busy peer
/// cannot starve the others.
const DRAIN_PER_TURN: usize = 64;

/// Local operations between two polls, on sockets.
pub(crate) const SOCKET_POLL_EVERY: u32 = 16;

/// Local operations between two polls, over MPI, as on sockets: a poll is an `MPI_Improbe`
/// per peer, which runs MPI's progress engine over every transport it has, roughly 100 ns
/// when nothing came (the one-worker counter, which only polls, made 6-10 M/s polling after
/// every operation, on a loaded 2-core host where the ring's poll allows 20-40 M/s).
#[cfg(feature = "mpi")]
pub(crate) const MPI_POLL_EVERY: u32 = 16;

/// The index of `node` among the mesh's processes (workers first, then the coordinator).
pub(crate) fn index(node: Node, workers: usize) -> usize {
    match node {
        Node::Worker(i) => i,
        Node::Coordinator => workers,
    }
}

/// Messages to send, by destination, flushed in one batch each.
#[derive(Debug)]
pub(crate) struct Outbox {
    workers: usize,
    queued: Vec<Vec<Words>>,
}

impl Outbox {
    /// An empty outbox for a mesh of `workers` workers.
    pub(crate) fn new(workers: usize) -> Outbox {
        Outbox { workers, queued: vec![Vec::new(); workers + 1] }
    }

    /// Takes everything queued, as (destination index, message), for tests.
    #[cfg(test)]
    pub(crate) fn take_all(&mut self) -> Vec<(usize, Msg)> {
        let mut all = Vec::new();
        for (i, q) in self.queued.iter_mut().enumerate() {
            all.extend(q.drain(..).map(|w| (i, Msg::decode(w).expect("decodes"))));
        }
        all
    }

    /// Queues `msg` for `to`; it leaves at the next flush (before the worker waits).
    pub(crate) fn send(&mut self, to: Node, msg: Msg) {
        self.queued[index(to, self.workers)].push(msg.encode());
    }
}

/// A worker's ends of the mesh, and its outbox.
#[derive(Debug)]
pub(crate) struct Links {
    ep: Endpoint<WORDS>,
    /// Every other process: whom to poll.
    peers: Vec<Node>,
    pub(crate) out: Outbox,
    /// Local operations between two polls.
    pub(crate) poll_every: u32,
}

impl Links {
    /// Wraps a worker's endpoint.
    pub(crate) fn new(mut ep: Endpoint<WORDS>) -> Links {
        let workers = ep.workers();
        let peers: Vec<Node> = ep.peers().collect();
        let mut poll_every = SOCKET_POLL_EVERY;
        for &p in &peers {
            match ep.rx(p) {
                MeshReceiver::Ring(r) => {
                    r.set_wait_policy(WaitPolicy::SLEEP_AT_ONCE);
                    poll_every = 1;
                }
                MeshReceiver::Socket(_) => {}
                #[cfg(feature = "mpi")]
                MeshReceiver::Mpi(_) => poll_every = MPI_POLL_EVERY,
            }
        }
        Links { ep, peers, out: Outbox::new(workers), poll_every }
    }

    /// The number of workers in the mesh.
    pub(crate) fn workers(&self) -> usize {
        self.out.workers
    }

    /// The other processes.
    pub(crate) fn peers(&self) -> &[Node] {
        &self.peers
    }

    /// Takes what has arrived on every incoming channel (up to [`DRAIN_PER_TURN`] each) and
    /// hands it to `handle`, which may queue replies in the outbox. Returns how many messages
    /// it handled.
    ///
    /// # Errors
    ///
    /// If a peer is gone (it failed, or the coordinator ended the run), a message does not
    /// decode, or `handle` fails.
    pub(crate) fn poll(
        &mut self,
        mut handle: impl FnMut(Node, Msg, &mut Outbox) -> Result<(), String>,
    ) -> Result<usize, String> {
        let Links { ep, peers, out, .. } = self;
        let mut n = 0;
        for &p in peers.iter() {
            let rx = ep.rx(p);
            for _ in 0..DRAIN_PER_TURN {
                match rx.try_recv() {
                    Ok(words) => {
                        n += 1;
                        let msg = Msg::decode(words).map_err(|e| format!("from {p:?}: {e}"))?;
                        handle(p, msg, out)?;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Err(format!("{p:?} is gone")),
                }
            }
        }
        Ok(n)
    }

    /// Sends everything queued, one batch per destination.
    ///
    /// # Errors
    ///
    /// If a destination is gone.
    pub(crate) fn flush(&mut self) -> Result<(), String> {
        for (i, queued) in self.out.queued.iter_mut().enumerate() {
            if queued.is_empty() {
                continue;
            }
            let to = if i == self.out.workers { Node::Coordinator } else { Node::Worker(i) };
            self.ep.tx(to).send_batch(queued).map_err(|_| format!("{to:?} is gone"))?;
            queued.clear();
        }
        Ok(())
    }

    /// Sleeps until a message comes from `from` (returned) or `timeout` passes (`None`).
    ///
    /// # Errors
    ///
    /// If `from` is gone, or its message does not decode.
    pub(crate) fn sleep_on(
        &mut self,
        from: Node,
        timeout: Duration,
    ) -> Result<Option<Msg>, String> {
        match self.ep.rx(from).recv_timeout(timeout) {
            Ok(words) => Msg::decode(words).map(Some).map_err(|e| format!("from {from:?}: {e}")),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(format!("{from:?} is gone")),
        }
    }

    /// Blocks until the coordinator closes its channels (the end of the run), ignoring
    /// anything else it sends.
    pub(crate) fn wait_for_hangup(&mut self) {
        while self.ep.rx(Node::Coordinator).recv().is_ok() {}
    }
}
