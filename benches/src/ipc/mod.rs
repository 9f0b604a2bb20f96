//! Message passing between processes, for the shared-nothing contender of the `compare`
//! runner (`/work/shared/DESIGN.md` section 4; Linux only).
//!
//! The contender runs worker *processes* that each own a shard of the state and talk only
//! through messages. This module is its transport:
//!
//! - [`ring`]: a single-producer single-consumer ring of fixed-size messages (`[u64; W]`) in
//!   shared memory (a sealed memfd mapped by both processes). Publishing is a few stores and
//!   a fence; a blocked end spins, then sleeps on a futex, and the other end issues the wake
//!   system call only when someone sleeps.
//! - [`socket`]: the same interface over a Unix stream socket pair, one `write` and one
//!   `read` per message (the "transparent" contender: what an ordinary program would use).
//! - [`process`]: spawning the workers by re-executing the current binary, a [`Mesh`] of one
//!   channel per ordered pair of processes (workers and the coordinator), passing the
//!   memfd or the sockets to the children, shutdown, and resident memory per process.
//!
//! - `mpi` (feature `mpi`): the same interface over MPI point-to-point messages, between
//!   processes started by `mpirun`, on one machine or several.
//!
//! Every transport implements [`Tx`] and [`Rx`], so protocol code can be written once.
//! `benches/DESIGN.md` numbers the invariants the `unsafe` code and the atomics rely on.
//!
//! # Example
//!
//! A ring between two threads (between processes, see [`process`]):
//!
//! ```
//! use concord_benches::ipc::{ring, Rx, Tx};
//!
//! let (mut tx, mut rx) = ring::channel::<2>(64)?;
//! let echo = std::thread::spawn(move || {
//!     let msg = rx.recv().unwrap();
//!     msg[0] + msg[1]
//! });
//! tx.send([40, 2]).unwrap();
//! assert_eq!(echo.join().unwrap(), 42);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`Mesh`]: process::Mesh

use std::fmt;
use std::time::Duration;

mod futex;
#[cfg(all(feature = "mpi", not(loom)))]
pub mod mpi;
#[cfg(not(loom))]
pub mod process;
pub mod ring;
#[cfg(not(loom))]
mod shm;
#[cfg(not(loom))]
pub mod socket;
mod sync;
#[cfg(not(loom))]
mod sys;

#[cfg(not(loom))]
pub use self::shm::SharedMemory;

/// The sending end of a channel of `[u64; W]` messages.
pub trait Tx<const W: usize>: Send + fmt::Debug {
    /// Sends `msg`, blocking while the channel is full.
    ///
    /// # Errors
    ///
    /// If the receiving end is gone; `msg` was not delivered.
    fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected>;

    /// Sends `msg` if that does not block.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] if it would block, [`TrySendError::Disconnected`] if the
    /// receiving end is gone.
    fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError>;

    /// Sends `msg`, blocking at most about `timeout` while the channel is full.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if it stayed full, [`SendTimeoutError::Disconnected`] if
    /// the receiving end is gone.
    fn send_timeout(&mut self, msg: [u64; W], timeout: Duration) -> Result<(), SendTimeoutError>;

    /// Sends all of `msgs`, in order, in as few operations as the transport allows.
    ///
    /// # Errors
    ///
    /// If the receiving end is gone; a prefix of `msgs` may have been delivered.
    fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected>;
}

/// The receiving end of a channel of `[u64; W]` messages.
pub trait Rx<const W: usize>: Send + fmt::Debug {
    /// Receives the next message, blocking while there is none.
    ///
    /// # Errors
    ///
    /// If there is none and the sending end is gone.
    fn recv(&mut self) -> Result<[u64; W], Disconnected>;

    /// Receives the next message if one is there.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if none is, [`TryRecvError::Disconnected`] if none is and the
    /// sending end is gone.
    fn try_recv(&mut self) -> Result<[u64; W], TryRecvError>;

    /// Receives the next message, blocking at most about `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if none came, [`RecvTimeoutError::Disconnected`] if none
    /// is there and the sending end is gone.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError>;

    /// Waits for the next message, then passes it and up to `max - 1` more that are already
    /// there to `f`, in order, in as few operations as the transport allows. Returns how many
    /// it passed (0 only if `max` is 0).
    ///
    /// # Errors
    ///
    /// If there is no message and the sending end is gone.
    ///
    /// The default takes one message with `recv`, then more with `try_recv`; transports that
    /// can take several in one step override it.
    fn recv_batch<F: FnMut([u64; W])>(
        &mut self,
        max: usize,
        mut f: F,
    ) -> Result<usize, Disconnected> {
        if max == 0 {
            return Ok(0);
        }
        f(self.recv()?);
        let mut n = 1;
        while n < max {
            let Ok(msg) = self.try_recv() else { break };
            f(msg);
            n += 1;
        }
        Ok(n)
    }
}

/// The other end of the channel is gone (dropped, or its process exited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disconnected;

/// Why [`Tx::try_send`] did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The channel is full.
    Full,
    /// The receiving end is gone.
    Disconnected,
}

/// Why [`Rx::try_recv`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TryRecvError {
    /// No message is there yet.
    Empty,
    /// No message is there and the sending end is gone.
    Disconnected,
}

/// Why [`Tx::send_timeout`] did not send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendTimeoutError {
    /// The channel stayed full until the timeout.
    Timeout,
    /// The receiving end is gone.
    Disconnected,
}

/// Why [`Rx::recv_timeout`] returned no message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// No message came before the timeout.
    Timeout,
    /// No message is there and the sending end is gone.
    Disconnected,
}

impl fmt::Display for Disconnected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the other end of the channel is gone")
    }
}

impl fmt::Display for TrySendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full => f.write_str("the channel is full"),
            TrySendError::Disconnected => Disconnected.fmt(f),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("the channel is empty"),
            TryRecvError::Disconnected => Disconnected.fmt(f),
        }
    }
}

impl fmt::Display for SendTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendTimeoutError::Timeout => f.write_str("the channel stayed full until the timeout"),
            SendTimeoutError::Disconnected => Disconnected.fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("no message came before the timeout"),
            RecvTimeoutError::Disconnected => Disconnected.fmt(f),
        }
    }
}

impl std::error::Error for Disconnected {}
impl std::error::Error for TrySendError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for SendTimeoutError {}
impl std::error::Error for RecvTimeoutError {}
