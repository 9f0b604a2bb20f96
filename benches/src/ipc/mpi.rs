//! The mesh's channels over MPI point-to-point messages (feature `mpi`; rsmpi on the
//! system's MPI, OpenMPI on Debian), for the `mpi` contender of the `compare` runner.
//!
//! The processes are not spawned by [`Mesh`](super::process::Mesh) but started by `mpirun`,
//! possibly on several machines; a mesh is a communicator of `workers + 1` ranks, rank 0
//! the coordinator and rank `i + 1` worker `i` ([`rank_of`]). A [`Sender`] and a
//! [`Receiver`] implement [`Tx`] and [`Rx`] over one ordered pair of ranks, so the code
//! written for the rings and the sockets runs unchanged on them:
//!
//! - a batch of at most [`MAX_BATCH`] messages travels as one MPI message of `u64`s
//!   (tag [`TAG_DATA`]); longer batches are split, so that every MPI message stays under
//!   OpenMPI's eager limits (4 KiB over shared memory, 64 KiB over TCP) and a send completes
//!   without waiting for the receiver, as a send into a ring with room does;
//! - polling is a matched probe (`MPI_Improbe`) from that one rank, then `MPI_Mrecv`; MPI
//!   keeps the messages of one pair of ranks on one communicator in order, so the words come
//!   out as they went in;
//! - MPI has no way to see a peer go away, so a sender says it with an empty message of tag
//!   [`TAG_CLOSE`] when it is dropped, after which its receiver reports
//!   [`Disconnected`]. A receiver that is dropped before its sender's close waits for it
//!   (discarding data), for at most [`CLOSE_TIMEOUT`]: no message is left behind in the
//!   communicator when it is freed (after a failure, [`abandon`] skips the wait).
//!   [`Endpoint`](super::process::Endpoint) drops its senders before its receivers, so
//!   every process sends all its closes before it waits for any.
//! - MPI's blocking calls spin the CPU; nothing here makes one except the sends of eager
//!   messages. A receiver waits by polling: [`recv_timeout`](Rx::recv_timeout) probes, then
//!   sleeps [`POLL_SLEEP`], until the timeout. It has no wake-up on arrival (a ring has its
//!   futex, a socket its `read`): callers spin and yield first (the shard workers' wait
//!   policy, `compare::shards::node`).
//!
//! # Threads
//!
//! MPI is initialized with `MPI_THREAD_FUNNELED`: only the thread that called
//! [`initialize`] may call MPI. The ends are `Send` (the [`Tx`]/[`Rx`] traits ask for it)
//! and check on every call that they are on that thread, panicking otherwise
//! (INV-MPI-1 in `benches/DESIGN.md`).

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::mpi::datatype::Equivalence;
use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, Rank, SimpleCommunicator};
use ::mpi::traits::{Destination, Source};
use ::mpi::{Tag, Threading};

use super::process::Node;
use super::{Disconnected, RecvTimeoutError, Rx, SendTimeoutError, TryRecvError, TrySendError, Tx};

/// The tag of a batch of messages.
pub const TAG_DATA: Tag = 1;
/// The tag of the empty message that closes a channel.
pub const TAG_CLOSE: Tag = 2;
/// At most this many messages per MPI message.
pub const MAX_BATCH: usize = 64;
/// How long a waiting receiver sleeps between two probes (plus the kernel's timer slack,
/// 50 us by default). Sleeping 10 us, or yielding instead, made no difference that showed
/// through the noise of the loaded 2-core host (bank and queue, two workers: 20-40 k/s or
/// about 200 k/s from run to run, whatever the setting).
pub const POLL_SLEEP: Duration = Duration::from_micros(50);
/// How long a dropped receiver waits for its sender's close.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(60);

thread_local! {
    /// Whether this thread initialized MPI (the only one allowed to call it, INV-MPI-1).
    static MPI_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Set by [`abandon`]: dropped receivers stop waiting for their senders' closes.
    static ABANDONED: Cell<bool> = const { Cell::new(false) };
}

/// Gives up on a clean end after a failure: from now on, receivers dropped on this thread
/// do not wait for their senders' closes (a failed run's peers may never send them), so
/// that the process can report its failure and end the job at once.
pub fn abandon() {
    ABANDONED.with(|a| a.set(true));
}

/// Whether this thread may call MPI.
fn on_mpi_thread() -> bool {
    MPI_THREAD.with(Cell::get)
}

/// Panics unless this thread may call MPI (INV-MPI-1).
#[inline]
#[track_caller]
fn assert_on_mpi_thread() {
    assert!(on_mpi_thread(), "MPI called from a thread other than the one that initialized it");
}

/// OpenMPI's setting that makes every MPI call that finds nothing to do yield the CPU.
const YIELD_WHEN_IDLE: &str = "OMPI_MCA_mpi_yield_when_idle";

/// Initializes MPI (`MPI_THREAD_FUNNELED`) and makes this thread the one that calls it.
/// Dropping the universe finalizes MPI; drop every [`Comm`] first. Call it before the
/// process starts other threads (it sets an environment variable).
///
/// Unless the environment sets it, OpenMPI's `mpi_yield_when_idle` is turned off: `mpirun`
/// turns it on when it starts more ranks than there are cores, and then every probe that
/// finds nothing calls `sched_yield`, so that a worker running local operations (which
/// polls its peers every few of them) waits for the scheduler each time: 7x slower on the
/// one-worker counter with 3 ranks on 2 cores. The workers' own wait policy yields when
/// there is nothing to do (`compare::shards::node`).
///
/// # Errors
///
/// If MPI was initialized already, or gives less than `MPI_THREAD_FUNNELED`.
pub fn initialize() -> Result<Universe, String> {
    if std::env::var_os(YIELD_WHEN_IDLE).is_none() {
        std::env::set_var(YIELD_WHEN_IDLE, "0");
    }
    let (universe, threading) = ::mpi::initialize_with_threading(Threading::Funneled)
        .ok_or("MPI was initialized already")?;
    if threading < Threading::Funneled {
        return Err(format!("MPI gives {threading:?} threading, less than Funneled"));
    }
    MPI_THREAD.with(|t| t.set(true));
    Ok(universe)
}

/// The rank of `node` in a mesh communicator: 0 for the coordinator, `i + 1` for worker `i`.
pub fn rank_of(node: Node) -> Rank {
    match node {
        Node::Coordinator => 0,
        Node::Worker(i) => Rank::try_from(i + 1).expect("fewer workers than i32::MAX"),
    }
}

/// A mesh's communicator, shared by the ends of one process.
pub struct Comm {
    /// Freed (`MPI_Comm_free`) on drop, on the MPI thread only (INV-MPI-1); `None` only in
    /// `drop`.
    comm: Option<SimpleCommunicator>,
}

impl Comm {
    /// Wraps a communicator of this process; call on the MPI thread.
    ///
    /// # Panics
    ///
    /// Off the thread that initialized MPI.
    pub fn new(comm: SimpleCommunicator) -> Arc<Comm> {
        assert_on_mpi_thread();
        Arc::new(Comm { comm: Some(comm) })
    }

    /// The communicator, after checking that this thread may use it.
    #[inline]
    #[track_caller]
    fn get(&self) -> &SimpleCommunicator {
        assert_on_mpi_thread();
        self.comm.as_ref().expect("a communicator until dropped")
    }

    /// The number of ranks.
    pub fn size(&self) -> usize {
        usize::try_from(self.get().size()).expect("a size is not negative")
    }

    /// This process's rank.
    pub fn rank(&self) -> Rank {
        self.get().rank()
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Comm").finish_non_exhaustive()
    }
}

impl Drop for Comm {
    fn drop(&mut self) {
        let comm = self.comm.take();
        if !on_mpi_thread() {
            // Freeing it here would call MPI off its thread: the handle leaks instead.
            std::mem::forget(comm);
        }
    }
}

// SAFETY: INV-MPI-1: every use of the communicator goes through `Comm::get`, which panics
// off the thread that initialized MPI, and `drop` frees it only on that thread (it leaks it
// elsewhere); so however a `Comm` moves or is shared between threads, MPI is only ever called
// from that one thread, as `MPI_THREAD_FUNNELED` requires. The handle itself is an opaque
// pointer that this crate never dereferences.
unsafe impl Send for Comm {}
// SAFETY: as for `Send` (INV-MPI-1): shared access from another thread panics before any
// MPI call.
unsafe impl Sync for Comm {}

/// The sending end of one channel: messages to one rank.
pub struct Sender<const W: usize> {
    comm: Arc<Comm>,
    to: Rank,
}

impl<const W: usize> Sender<W> {
    /// The sender to `to` in `comm`.
    pub fn new(comm: Arc<Comm>, to: Rank) -> Sender<W> {
        Sender { comm, to }
    }

    fn send_words(&self, words: &[u64]) {
        self.comm.get().process_at_rank(self.to).send_with_tag(words, TAG_DATA);
    }
}

impl<const W: usize> fmt::Debug for Sender<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpi::Sender").field("to", &self.to).finish()
    }
}

impl<const W: usize> Tx<W> for Sender<W> {
    /// Sends `msg`. MPI cannot tell that the receiver is gone (its process's failure ends
    /// the whole job), so this never fails.
    fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected> {
        self.send_words(&msg);
        Ok(())
    }

    fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError> {
        self.send_words(&msg);
        Ok(())
    }

    fn send_timeout(&mut self, msg: [u64; W], _timeout: Duration) -> Result<(), SendTimeoutError> {
        self.send_words(&msg);
        Ok(())
    }

    fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected> {
        for chunk in msgs.chunks(MAX_BATCH) {
            self.send_words(chunk.as_flattened());
        }
        Ok(())
    }
}

impl<const W: usize> Drop for Sender<W> {
    fn drop(&mut self) {
        if on_mpi_thread() {
            let none: [u64; 0] = [];
            self.comm.get().process_at_rank(self.to).send_with_tag(&none[..], TAG_CLOSE);
        }
    }
}

/// The receiving end of one channel: messages from one rank.
pub struct Receiver<const W: usize> {
    comm: Arc<Comm>,
    from: Rank,
    /// Messages received in a batch and not yet handed out.
    pending: VecDeque<[u64; W]>,
    /// The receive buffer.
    buf: Vec<u64>,
    /// The sender's close came.
    closed: bool,
}

impl<const W: usize> Receiver<W> {
    /// The receiver from `from` in `comm`.
    pub fn new(comm: Arc<Comm>, from: Rank) -> Receiver<W> {
        Receiver { comm, from, pending: VecDeque::new(), buf: Vec::new(), closed: false }
    }

    /// Receives one MPI message from the sender if one is there: a batch (queued in
    /// `pending`) or the close. Returns whether one was.
    fn poll(&mut self) -> bool {
        if self.closed {
            return false;
        }
        let Some((message, status)) =
            self.comm.get().process_at_rank(self.from).immediate_matched_probe()
        else {
            return false;
        };
        let count = usize::try_from(status.count(u64::equivalent_datatype())).unwrap_or(0);
        self.buf.resize(count, 0);
        message.matched_receive_into(&mut self.buf[..]);
        if status.tag() == TAG_CLOSE {
            self.closed = true;
        } else {
            // A peer that sends a partial message fails the run, as a ring's would.
            assert!(count % W == 0, "an MPI message of {count} words, not messages of {W}");
            for m in self.buf.chunks_exact(W) {
                self.pending.push_back(m.try_into().expect("chunks of W words"));
            }
        }
        true
    }
}

impl<const W: usize> fmt::Debug for Receiver<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("mpi::Receiver")
            .field("from", &self.from)
            .field("pending", &self.pending.len())
            .field("closed", &self.closed)
            .finish()
    }
}

impl<const W: usize> Rx<W> for Receiver<W> {
    fn recv(&mut self) -> Result<[u64; W], Disconnected> {
        loop {
            match self.recv_timeout(Duration::from_secs(3600)) {
                Ok(msg) => return Ok(msg),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Err(Disconnected),
            }
        }
    }

    #[inline]
    fn try_recv(&mut self) -> Result<[u64; W], TryRecvError> {
        loop {
            if let Some(msg) = self.pending.pop_front() {
                return Ok(msg);
            }
            if !self.poll() {
                return Err(if self.closed {
                    TryRecvError::Disconnected
                } else {
                    TryRecvError::Empty
                });
            }
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError> {
        let start = Instant::now();
        loop {
            match self.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(RecvTimeoutError::Timeout);
            }
            std::thread::sleep(left.min(POLL_SLEEP));
        }
    }
}

impl<const W: usize> Drop for Receiver<W> {
    fn drop(&mut self) {
        if !on_mpi_thread() || ABANDONED.with(Cell::get) || std::thread::panicking() {
            return;
        }
        // Wait for the sender's close, so that nothing is left in the communicator.
        let start = Instant::now();
        while !self.closed && start.elapsed() < CLOSE_TIMEOUT {
            if !self.poll() {
                std::thread::sleep(POLL_SLEEP);
            }
        }
    }
}
