//! Worker processes and the mesh of channels between them.
//!
//! The coordinator (the process that runs the benchmark) builds a [`Mesh`] for `n` workers:
//! one channel per ordered pair of processes among the workers and the coordinator, that is
//! `n * (n - 1)` channels between workers plus `2 * n` between the coordinator and each
//! worker. [`Mesh::spawn`] then starts the workers by re-executing the current binary
//! (`std::env::current_exe()`) with environment variables that make it a worker; the binary's
//! `main` calls [`run_if_worker`] (or [`worker`]) first thing, which in a worker attaches the
//! worker's ends of the channels, runs the worker's code and exits.
//!
//! ```no_run
//! use concord_benches::ipc::process::{self, Mesh, Node, Transport};
//! use concord_benches::ipc::{Rx, Tx};
//!
//! fn main() -> std::io::Result<()> {
//!     // In a worker, this runs the closure and exits; in the coordinator, it returns.
//!     process::run_if_worker::<2>(|mut worker| {
//!         let me = worker.index() as u64;
//!         let ep = worker.endpoint();
//!         // Serve until the coordinator says stop (drops its ends).
//!         while let Ok([a, b]) = ep.rx(Node::Coordinator).recv() {
//!             ep.tx(Node::Coordinator).send([a + b, me]).unwrap();
//!         }
//!         0
//!     });
//!
//!     let mesh = Mesh::<2>::new(2, Transport::Ring { capacity: 1024 })?;
//!     let (mut ep, workers) = mesh.spawn("adder")?;
//!     ep.tx(Node::Worker(1)).send([40, 2]).unwrap();
//!     assert_eq!(ep.rx(Node::Worker(1)).recv().unwrap(), [42, 1]);
//!     drop(ep); // stop
//!     workers.wait().expect("a worker failed");
//!     Ok(())
//! }
//! ```
//!
//! # Passing the channels
//!
//! - Rings: all rings live in one memfd ([`SharedMemory`]). Its descriptor keeps
//!   `FD_CLOEXEC` in the coordinator; a `pre_exec` hook clears the flag in each forked child
//!   only, so the child inherits it across `exec`, and its number is passed in
//!   `CONCORD_IPC_SHM_FD`. Each process attaches to the rings of its own ends only; attaching
//!   claims an end in the ring's header, so a second sender or receiver is refused.
//! - Sockets: one socket pair per ordered pair of processes. Each child inherits exactly its
//!   own ends (the same `pre_exec` hook), listed in `CONCORD_IPC_SOCKETS`; after spawning,
//!   the coordinator closes its copies of the workers' ends, so that a worker's exit shows
//!   as end-of-file or `EPIPE` to its peers.
//!
//! A worker sets `FD_CLOEXEC` again on what it inherited, so programs it starts inherit
//! nothing.
//!
//! # Shutdown
//!
//! - The coordinator says stop by dropping its [`Endpoint`] (or its senders): the workers
//!   see [`Disconnected`](crate::ipc::Disconnected) on their channel from the coordinator.
//!   How a worker reacts is up to its code; the example above exits.
//! - If the coordinator dies, the kernel kills the workers: [`worker`] sets
//!   `PR_SET_PDEATHSIG` to `SIGKILL`, and exits if the parent is already gone (its parent
//!   pid is not the one the coordinator wrote in `CONCORD_IPC_PARENT`). The signal fires
//!   when the *thread* that spawned the worker exits, so spawn from a thread that outlives
//!   the workers (the main thread, or the one that waits for them).
//! - [`Workers::wait`] waits for every worker and reports any that did not exit with status
//!   0; once one has failed, the others are killed (a shared-nothing mesh cannot finish
//!   without one of its shards). Dropping [`Workers`] kills and reaps what is still running.
//!
//! # Memory
//!
//! [`memory_usage`] reads a process's resident set (`VmRSS`) and proportional set size
//! (`Pss`, from `smaps_rollup`). Sum `pss_bytes` over the coordinator and the workers for
//! the memory of the whole system: RSS counts shared pages (the rings, the C library) once
//! in *every* process that touched them, PSS divides them among those processes.

use std::env;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

#[cfg(feature = "mpi")]
use crate::ipc::mpi;
use crate::ipc::ring::{self, ring_bytes};
use crate::ipc::socket;
use crate::ipc::sync::{Arc, AtomicBool, Ordering};
use crate::ipc::{
    sys, Disconnected, RecvTimeoutError, Rx, SendTimeoutError, SharedMemory, TryRecvError,
    TrySendError, Tx,
};

/// `"<index>/<workers>"`: present in a worker's environment only.
const ENV_WORKER: &str = "CONCORD_IPC_WORKER";
/// The coordinator's pid.
const ENV_PARENT: &str = "CONCORD_IPC_PARENT";
/// The entry name passed to [`Mesh::spawn`].
const ENV_ENTRY: &str = "CONCORD_IPC_ENTRY";
/// `"ring:<capacity>:<words>"` or `"socket:<words>"`.
const ENV_TRANSPORT: &str = "CONCORD_IPC_TRANSPORT";
/// The memfd's descriptor number (rings).
const ENV_SHM_FD: &str = "CONCORD_IPC_SHM_FD";
/// `"<peer>:<tx fd>:<rx fd>,..."`, peers as node indices (sockets).
const ENV_SOCKETS: &str = "CONCORD_IPC_SOCKETS";

/// Set once this process has taken its inherited descriptors (INV-FD-1).
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// A process of a mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// The process that built the mesh and spawned the workers.
    Coordinator,
    /// Worker `i`, of `0..workers`.
    Worker(usize),
}

impl Node {
    /// `i` for worker `i`, `workers` for the coordinator.
    fn index(self, workers: usize) -> usize {
        match self {
            Node::Worker(i) => {
                assert!(i < workers, "no worker {i} in a mesh of {workers}");
                i
            }
            Node::Coordinator => workers,
        }
    }

    fn from_index(i: usize, workers: usize) -> Node {
        if i == workers {
            Node::Coordinator
        } else {
            Node::Worker(i)
        }
    }
}

/// The number of the channel from `from` to `to` (node indices, `from != to`) among the
/// `(workers + 1) * workers` channels of a mesh.
fn link(from: usize, to: usize, workers: usize) -> usize {
    debug_assert!(from != to && from <= workers && to <= workers);
    from * workers + if to < from { to } else { to - 1 }
}

/// Which transport a [`Mesh`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Shared-memory rings of `capacity` messages each (a power of two).
    Ring {
        /// Messages per ring.
        capacity: usize,
    },
    /// Unix stream socket pairs.
    Socket,
}

/// The sending end of one mesh channel, over either transport.
#[derive(Debug)]
pub enum MeshSender<const W: usize> {
    /// A shared-memory ring.
    Ring(ring::Sender<W>),
    /// A socket.
    Socket(socket::Sender<W>),
    /// MPI point-to-point messages to one rank (feature `mpi`).
    #[cfg(feature = "mpi")]
    Mpi(mpi::Sender<W>),
}

/// The receiving end of one mesh channel, over either transport.
#[derive(Debug)]
pub enum MeshReceiver<const W: usize> {
    /// A shared-memory ring.
    Ring(ring::Receiver<W>),
    /// A socket.
    Socket(socket::Receiver<W>),
    /// MPI point-to-point messages from one rank (feature `mpi`).
    #[cfg(feature = "mpi")]
    Mpi(mpi::Receiver<W>),
}

impl<const W: usize> Tx<W> for MeshSender<W> {
    #[inline]
    fn send(&mut self, msg: [u64; W]) -> Result<(), Disconnected> {
        match self {
            MeshSender::Ring(s) => s.send(msg),
            MeshSender::Socket(s) => s.send(msg),
            #[cfg(feature = "mpi")]
            MeshSender::Mpi(s) => s.send(msg),
        }
    }

    #[inline]
    fn try_send(&mut self, msg: [u64; W]) -> Result<(), TrySendError> {
        match self {
            MeshSender::Ring(s) => s.try_send(msg),
            MeshSender::Socket(s) => s.try_send(msg),
            #[cfg(feature = "mpi")]
            MeshSender::Mpi(s) => s.try_send(msg),
        }
    }

    fn send_timeout(&mut self, msg: [u64; W], timeout: Duration) -> Result<(), SendTimeoutError> {
        match self {
            MeshSender::Ring(s) => s.send_timeout(msg, timeout),
            MeshSender::Socket(s) => s.send_timeout(msg, timeout),
            #[cfg(feature = "mpi")]
            MeshSender::Mpi(s) => s.send_timeout(msg, timeout),
        }
    }

    fn send_batch(&mut self, msgs: &[[u64; W]]) -> Result<(), Disconnected> {
        match self {
            MeshSender::Ring(s) => s.send_batch(msgs),
            MeshSender::Socket(s) => s.send_batch(msgs),
            #[cfg(feature = "mpi")]
            MeshSender::Mpi(s) => s.send_batch(msgs),
        }
    }
}

impl<const W: usize> Rx<W> for MeshReceiver<W> {
    #[inline]
    fn recv(&mut self) -> Result<[u64; W], Disconnected> {
        match self {
            MeshReceiver::Ring(r) => r.recv(),
            MeshReceiver::Socket(r) => r.recv(),
            #[cfg(feature = "mpi")]
            MeshReceiver::Mpi(r) => r.recv(),
        }
    }

    #[inline]
    fn try_recv(&mut self) -> Result<[u64; W], TryRecvError> {
        match self {
            MeshReceiver::Ring(r) => r.try_recv(),
            MeshReceiver::Socket(r) => r.try_recv(),
            #[cfg(feature = "mpi")]
            MeshReceiver::Mpi(r) => r.try_recv(),
        }
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<[u64; W], RecvTimeoutError> {
        match self {
            MeshReceiver::Ring(r) => r.recv_timeout(timeout),
            MeshReceiver::Socket(r) => r.recv_timeout(timeout),
            #[cfg(feature = "mpi")]
            MeshReceiver::Mpi(r) => r.recv_timeout(timeout),
        }
    }

    #[inline]
    fn recv_batch<F: FnMut([u64; W])>(&mut self, max: usize, f: F) -> Result<usize, Disconnected> {
        match self {
            MeshReceiver::Ring(r) => r.recv_batch(max, f),
            MeshReceiver::Socket(r) => r.recv_batch(max, f),
            #[cfg(feature = "mpi")]
            MeshReceiver::Mpi(r) => r.recv_batch(max, f),
        }
    }
}

/// One process's ends of the mesh: a sender to and a receiver from every other process.
#[derive(Debug)]
pub struct Endpoint<const W: usize> {
    me: Node,
    workers: usize,
    /// By node index; `None` for `me` and for ends taken out.
    tx: Vec<Option<MeshSender<W>>>,
    rx: Vec<Option<MeshReceiver<W>>>,
}

impl<const W: usize> Endpoint<W> {
    fn empty(me: Node, workers: usize) -> Endpoint<W> {
        Endpoint {
            me,
            workers,
            tx: (0..=workers).map(|_| None).collect(),
            rx: (0..=workers).map(|_| None).collect(),
        }
    }

    /// The process these ends belong to.
    pub fn me(&self) -> Node {
        self.me
    }

    /// The number of workers in the mesh.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Every other process of the mesh (the workers, then the coordinator).
    pub fn peers(&self) -> impl Iterator<Item = Node> + '_ {
        (0..=self.workers).map(|i| Node::from_index(i, self.workers)).filter(|&n| n != self.me)
    }

    /// The sender to `to`.
    ///
    /// # Panics
    ///
    /// If `to` is this process, not in the mesh, or its sender was taken.
    pub fn tx(&mut self, to: Node) -> &mut MeshSender<W> {
        self.tx[to.index(self.workers)].as_mut().expect("no sender to that node")
    }

    /// The receiver from `from`.
    ///
    /// # Panics
    ///
    /// If `from` is this process, not in the mesh, or its receiver was taken.
    pub fn rx(&mut self, from: Node) -> &mut MeshReceiver<W> {
        self.rx[from.index(self.workers)].as_mut().expect("no receiver from that node")
    }

    /// Takes the sender to `to` out (to move it to another thread); dropping it closes the
    /// channel.
    ///
    /// # Panics
    ///
    /// As [`tx`](Self::tx).
    pub fn take_tx(&mut self, to: Node) -> MeshSender<W> {
        self.tx[to.index(self.workers)].take().expect("no sender to that node")
    }

    /// Takes the receiver from `from` out.
    ///
    /// # Panics
    ///
    /// As [`rx`](Self::rx).
    pub fn take_rx(&mut self, from: Node) -> MeshReceiver<W> {
        self.rx[from.index(self.workers)].take().expect("no receiver from that node")
    }

    /// `me`'s ends of a mesh over MPI: `comm` holds the coordinator (rank 0) and the
    /// `workers` workers (ranks 1 to `workers`), started by `mpirun` rather than spawned
    /// ([`ipc::mpi`](crate::ipc::mpi)).
    ///
    /// # Panics
    ///
    /// If `comm` does not have `workers + 1` ranks, or `me` is not this process's rank in it,
    /// or this thread did not initialize MPI.
    #[cfg(feature = "mpi")]
    pub fn over_mpi(comm: &std::sync::Arc<mpi::Comm>, me: Node, workers: usize) -> Endpoint<W> {
        assert_eq!(comm.size(), workers + 1, "a mesh of {workers} workers needs as many ranks + 1");
        assert_eq!(comm.rank(), mpi::rank_of(me), "{me:?} is not this rank");
        let mut ep = Endpoint::empty(me, workers);
        for p in (0..=workers).filter(|&p| p != me.index(workers)) {
            let rank = mpi::rank_of(Node::from_index(p, workers));
            ep.tx[p] = Some(MeshSender::Mpi(mpi::Sender::new(comm.clone(), rank)));
            ep.rx[p] = Some(MeshReceiver::Mpi(mpi::Receiver::new(comm.clone(), rank)));
        }
        ep
    }

    /// Attaches to `me`'s ends of every ring of a ring mesh.
    fn attach_rings(
        shm: &Arc<SharedMemory>,
        me: Node,
        workers: usize,
        capacity: usize,
    ) -> io::Result<Endpoint<W>> {
        let mut ep = Endpoint::empty(me, workers);
        let stride = ring_bytes::<W>(capacity);
        let m = me.index(workers);
        for p in (0..=workers).filter(|&p| p != m) {
            let tx = ring::Sender::attach(shm.clone(), link(m, p, workers) * stride)?;
            let rx = ring::Receiver::attach(shm.clone(), link(p, m, workers) * stride)?;
            ep.tx[p] = Some(MeshSender::Ring(tx));
            ep.rx[p] = Some(MeshReceiver::Ring(rx));
        }
        Ok(ep)
    }
}

impl<const W: usize> Drop for Endpoint<W> {
    /// Closes every sender before any receiver: an MPI receiver that is dropped waits for
    /// its sender's close (`ipc::mpi`, feature `mpi`), so every process must have sent
    /// all its closes before it waits for any.
    fn drop(&mut self) {
        self.tx.clear();
    }
}

/// The channels of a mesh, before the workers are spawned.
#[derive(Debug)]
enum Links {
    Ring {
        shm: Arc<SharedMemory>,
        capacity: usize,
    },
    /// By link number: the socket to write and the socket to read.
    Socket(Vec<(UnixStream, UnixStream)>),
}

/// The channels among a coordinator and `workers` worker processes, ready to spawn them.
#[derive(Debug)]
pub struct Mesh<const W: usize> {
    workers: usize,
    links: Links,
}

impl<const W: usize> Mesh<W> {
    /// Creates the channels of a mesh of `workers` workers and a coordinator: `(workers + 1)
    /// * workers` rings in one shared region, or as many socket pairs.
    ///
    /// # Errors
    ///
    /// If `workers` is zero, a ring capacity is not a power of two, or the rings or sockets
    /// cannot be created.
    pub fn new(workers: usize, transport: Transport) -> io::Result<Mesh<W>> {
        assert!(W > 0, "messages must have at least one word");
        if workers == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "a mesh needs a worker"));
        }
        let links = (workers + 1) * workers;
        let links = match transport {
            Transport::Ring { capacity } => {
                if !capacity.is_power_of_two() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "ring capacity must be a power of two",
                    ));
                }
                let stride = ring_bytes::<W>(capacity);
                let shm = SharedMemory::create("concord-mesh", links * stride)?;
                for k in 0..links {
                    ring::init::<W>(&shm, k * stride, capacity)?;
                }
                Links::Ring { shm: Arc::new(shm), capacity }
            }
            Transport::Socket => {
                let pairs = (0..links).map(|_| {
                    let (tx, rx) = UnixStream::pair()?;
                    tx.shutdown(std::net::Shutdown::Read)?;
                    rx.shutdown(std::net::Shutdown::Write)?;
                    Ok((tx, rx))
                });
                Links::Socket(pairs.collect::<io::Result<_>>()?)
            }
        };
        Ok(Mesh { workers, links })
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Spawns the workers by re-executing this binary (`std::env::current_exe()`) with no
    /// arguments; in each, [`worker`] returns a [`Worker`] whose [`entry`](Worker::entry) is
    /// `entry`. Returns the coordinator's ends and the workers.
    ///
    /// # Errors
    ///
    /// If the binary cannot be found or a process cannot be spawned (the workers already
    /// spawned are then killed), or the coordinator's ends cannot be attached.
    pub fn spawn(self, entry: &str) -> io::Result<(Endpoint<W>, Workers)> {
        let program = env::current_exe()?;
        self.spawn_with(entry, &program, std::iter::empty::<&str>())
    }

    /// Like [`spawn`](Self::spawn), with another program and arguments (for example a test
    /// binary re-executed with `--exact <test>`). The program must call [`worker`] with the
    /// same `W`.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    pub fn spawn_with<I, S>(
        self,
        entry: &str,
        program: &Path,
        args: I,
    ) -> io::Result<(Endpoint<W>, Workers)>
    where
        I: IntoIterator<Item = S> + Clone,
        S: AsRef<OsStr>,
    {
        let n = self.workers;
        let parent = std::process::id().to_string();
        let mut workers = Workers { children: Vec::with_capacity(n) };
        for i in 0..n {
            let mut cmd = Command::new(program);
            cmd.args(args.clone())
                .env(ENV_WORKER, format!("{i}/{n}"))
                .env(ENV_PARENT, &parent)
                .env(ENV_ENTRY, entry);
            let inherit: Vec<RawFd> = match &self.links {
                Links::Ring { shm, capacity } => {
                    let fd = shm.fd().as_raw_fd();
                    cmd.env(ENV_TRANSPORT, format!("ring:{capacity}:{W}"))
                        .env(ENV_SHM_FD, fd.to_string());
                    vec![fd]
                }
                Links::Socket(pairs) => {
                    let mut fds = Vec::new();
                    let mut list = Vec::new();
                    for p in (0..=n).filter(|&p| p != i) {
                        let tx = pairs[link(i, p, n)].0.as_raw_fd();
                        let rx = pairs[link(p, i, n)].1.as_raw_fd();
                        list.push(format!("{p}:{tx}:{rx}"));
                        fds.extend([tx, rx]);
                    }
                    cmd.env(ENV_TRANSPORT, format!("socket:{W}")).env(ENV_SOCKETS, list.join(","));
                    fds
                }
            };
            // SAFETY: INV-SPAWN-1: the hook runs in the forked child before `exec`, calls only
            // `fcntl` (async-signal-safe), allocates nothing (`inherit` is built before the
            // fork), and names descriptors of `self.links`, open until `spawn` below returns.
            unsafe {
                cmd.pre_exec(move || {
                    for &fd in &inherit {
                        sys::clear_cloexec_after_fork(fd)?;
                    }
                    Ok(())
                });
            }
            workers.children.push(Some(cmd.spawn()?));
        }
        // The coordinator's ends; the workers' ends are closed here when `self` drops.
        let me = Node::Coordinator;
        let ep = match self.links {
            Links::Ring { ref shm, capacity } => Endpoint::attach_rings(shm, me, n, capacity)?,
            Links::Socket(pairs) => {
                let mut ep = Endpoint::empty(me, n);
                let mut pairs: Vec<_> = pairs.into_iter().map(Some).collect();
                for p in 0..n {
                    let (tx, _) = pairs[link(n, p, n)].take().expect("each link once");
                    let (_, rx) = pairs[link(p, n, n)].take().expect("each link once");
                    ep.tx[p] = Some(MeshSender::Socket(socket::Sender::from_stream(tx)));
                    ep.rx[p] = Some(MeshReceiver::Socket(socket::Receiver::from_stream(rx)));
                }
                ep
            }
        };
        Ok((ep, workers))
    }
}

/// A worker process's view of itself: its index, the entry name it was spawned with, and its
/// ends of the mesh.
#[derive(Debug)]
pub struct Worker<const W: usize> {
    index: usize,
    entry: String,
    endpoint: Endpoint<W>,
}

impl<const W: usize> Worker<W> {
    /// This worker's index, in `0..workers`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The number of workers in the mesh.
    pub fn workers(&self) -> usize {
        self.endpoint.workers
    }

    /// The `entry` the coordinator passed to [`Mesh::spawn`]: which worker code to run.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// This worker's ends of the mesh.
    pub fn endpoint(&mut self) -> &mut Endpoint<W> {
        &mut self.endpoint
    }

    /// This worker's ends of the mesh, by value.
    pub fn into_endpoint(self) -> Endpoint<W> {
        self.endpoint
    }
}

fn env_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("worker environment: {what}"))
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> io::Result<T> {
    s.parse().map_err(|_| env_error(what))
}

/// Takes ownership of descriptor `fd`, inherited from the coordinator, and sets
/// `FD_CLOEXEC` on it again.
fn claim_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(env_error("negative descriptor"));
    }
    // SAFETY: INV-FD-1: `fd` comes from the environment that our parent (checked: its pid is
    // `CONCORD_IPC_PARENT`) set in `Mesh::spawn_with`, together with clearing FD_CLOEXEC on
    // exactly that descriptor in this process, so it is open here; `worker` claims the
    // inherited descriptors once per process (the CLAIMED flag), so nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    sys::set_cloexec(owned.as_fd(), true)?;
    Ok(owned)
}

/// If this process was spawned as a worker by [`Mesh::spawn`], attaches its ends of the mesh
/// and returns it; otherwise returns `None`. Call it first thing in `main`.
///
/// It also arranges for the kernel to kill this process (`SIGKILL`) when the coordinator
/// dies.
///
/// # Errors
///
/// If the worker's environment is malformed, `W` differs from the coordinator's, the
/// coordinator is already gone (or is not this process's parent), or this function already
/// returned the worker once in this process.
pub fn worker<const W: usize>() -> io::Result<Option<Worker<W>>> {
    let Some(role) = env::var_os(ENV_WORKER) else {
        return Ok(None);
    };
    let var = |name: &str| env::var(name).map_err(|_| env_error(name));
    let role = role.into_string().map_err(|_| env_error(ENV_WORKER))?;
    let (index, workers) = role.split_once('/').ok_or_else(|| env_error(ENV_WORKER))?;
    let (index, workers): (usize, usize) = (parse(index, ENV_WORKER)?, parse(workers, ENV_WORKER)?);
    if index >= workers {
        return Err(env_error(ENV_WORKER));
    }
    let parent: u32 = parse(&var(ENV_PARENT)?, ENV_PARENT)?;
    // First the death signal, then the check: if the parent died before the signal was
    // armed, the parent pid has changed already.
    sys::set_parent_death_signal(libc::SIGKILL)?;
    if std::os::unix::process::parent_id() != parent {
        return Err(io::Error::other("the coordinator is gone (or is not this process's parent)"));
    }
    // Relaxed: a once-flag read by no one else; the swap alone decides who claims.
    if CLAIMED.swap(true, Ordering::Relaxed) {
        return Err(io::Error::other("this process already took its worker ends"));
    }
    let entry = var(ENV_ENTRY)?;
    let transport = var(ENV_TRANSPORT)?;
    let me = Node::Worker(index);
    let endpoint = match transport.split(':').collect::<Vec<_>>()[..] {
        ["ring", capacity, words] => {
            if parse::<usize>(words, ENV_TRANSPORT)? != W {
                return Err(env_error("message size differs from the coordinator's"));
            }
            let capacity = parse(capacity, ENV_TRANSPORT)?;
            let fd = claim_fd(parse(&var(ENV_SHM_FD)?, ENV_SHM_FD)?)?;
            let shm = Arc::new(SharedMemory::from_fd(fd)?);
            Endpoint::attach_rings(&shm, me, workers, capacity)?
        }
        ["socket", words] => {
            if parse::<usize>(words, ENV_TRANSPORT)? != W {
                return Err(env_error("message size differs from the coordinator's"));
            }
            let mut ep = Endpoint::empty(me, workers);
            let list = var(ENV_SOCKETS)?;
            for item in list.split(',') {
                let [p, tx, rx] = item.split(':').collect::<Vec<_>>()[..] else {
                    return Err(env_error(ENV_SOCKETS));
                };
                let p: usize = parse(p, ENV_SOCKETS)?;
                if p > workers || p == index || ep.tx[p].is_some() {
                    return Err(env_error(ENV_SOCKETS));
                }
                let tx = UnixStream::from(claim_fd(parse(tx, ENV_SOCKETS)?)?);
                let rx = UnixStream::from(claim_fd(parse(rx, ENV_SOCKETS)?)?);
                ep.tx[p] = Some(MeshSender::Socket(socket::Sender::from_stream(tx)));
                ep.rx[p] = Some(MeshReceiver::Socket(socket::Receiver::from_stream(rx)));
            }
            if ep.peers().any(|p| ep.tx[p.index(workers)].is_none()) {
                return Err(env_error("a peer's sockets are missing"));
            }
            ep
        }
        _ => return Err(env_error(ENV_TRANSPORT)),
    };
    Ok(Some(Worker { index, entry, endpoint }))
}

/// In a worker process, runs `f` on the [`Worker`] and exits with the status it returns; in
/// any other process, returns at once. If the worker's setup fails, prints why and exits with
/// status 101.
pub fn run_if_worker<const W: usize>(f: impl FnOnce(Worker<W>) -> i32) {
    match worker::<W>() {
        Ok(None) => {}
        Ok(Some(w)) => std::process::exit(f(w)),
        Err(e) => {
            eprintln!("concord ipc worker (pid {}): {e}", std::process::id());
            std::process::exit(101);
        }
    }
}

/// How a worker ended, when it did not end well.
#[derive(Debug)]
pub enum WorkerExit {
    /// It exited with this (non-zero, or signal) status.
    Failed(ExitStatus),
    /// It was still running at the deadline, and was killed.
    TimedOut,
    /// It was killed because another worker had failed.
    KilledAfterFailure,
    /// Waiting for it failed.
    WaitError(io::Error),
}

/// The workers that did not exit with status 0, from [`Workers::wait`].
#[derive(Debug)]
pub struct WorkerFailure {
    failures: Vec<(usize, WorkerExit)>,
}

impl WorkerFailure {
    /// Each failed worker's index and how it ended.
    pub fn failures(&self) -> &[(usize, WorkerExit)] {
        &self.failures
    }
}

impl fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, (i, how)) in self.failures.iter().enumerate() {
            if k > 0 {
                f.write_str("; ")?;
            }
            match how {
                WorkerExit::Failed(status) => write!(f, "worker {i} ended with {status}")?,
                WorkerExit::TimedOut => write!(f, "worker {i} timed out and was killed")?,
                WorkerExit::KilledAfterFailure => {
                    write!(f, "worker {i} was killed after another worker failed")?
                }
                WorkerExit::WaitError(e) => write!(f, "waiting for worker {i} failed: {e}")?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for WorkerFailure {}

/// The spawned worker processes. Dropping it kills and reaps those still running.
#[derive(Debug)]
pub struct Workers {
    /// By worker index; `None` once reaped.
    children: Vec<Option<Child>>,
}

impl Workers {
    /// The workers' process ids, by index.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// Waits for every worker to exit. If one fails, kills the others.
    ///
    /// # Errors
    ///
    /// Lists the workers that did not exit with status 0.
    pub fn wait(self) -> Result<(), WorkerFailure> {
        self.wait_until(None)
    }

    /// Like [`wait`](Self::wait), but kills the workers still running after `timeout`.
    ///
    /// # Errors
    ///
    /// Lists the workers that did not exit with status 0, or timed out.
    pub fn wait_timeout(self, timeout: Duration) -> Result<(), WorkerFailure> {
        // No deadline if it is beyond what `Instant` can represent.
        self.wait_until(Instant::now().checked_add(timeout))
    }

    fn wait_until(mut self, deadline: Option<Instant>) -> Result<(), WorkerFailure> {
        let mut failures = Vec::new();
        let mut poll = Duration::from_micros(100);
        while self.children.iter().any(Option::is_some) {
            for (i, slot) in self.children.iter_mut().enumerate() {
                let Some(child) = slot else { continue };
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        *slot = None;
                        if !status.success() {
                            failures.push((i, WorkerExit::Failed(status)));
                        }
                    }
                    Err(e) => {
                        kill(child);
                        *slot = None;
                        failures.push((i, WorkerExit::WaitError(e)));
                    }
                }
            }
            let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
            if !failures.is_empty() || timed_out {
                for (i, slot) in self.children.iter_mut().enumerate() {
                    if let Some(mut child) = slot.take() {
                        kill(&mut child);
                        let how = if timed_out {
                            WorkerExit::TimedOut
                        } else {
                            WorkerExit::KilledAfterFailure
                        };
                        failures.push((i, how));
                    }
                }
                break;
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(10));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(WorkerFailure { failures })
        }
    }
}

/// Kills and reaps `child` (it may have exited already).
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            kill(child);
        }
    }
}

/// Resident memory of one process.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Resident set size (`VmRSS`): every page of the process in RAM, shared ones included.
    pub rss_bytes: u64,
    /// Proportional set size (`Pss`): private pages, plus each shared page divided by the
    /// number of processes mapping it. `None` if `smaps_rollup` is not readable.
    pub pss_bytes: Option<u64>,
}

impl std::ops::Add for MemoryUsage {
    type Output = MemoryUsage;

    /// Sums both figures; the PSS of the sum is known only if both are.
    fn add(self, other: MemoryUsage) -> MemoryUsage {
        MemoryUsage {
            rss_bytes: self.rss_bytes + other.rss_bytes,
            pss_bytes: self.pss_bytes.zip(other.pss_bytes).map(|(a, b)| a + b),
        }
    }
}

/// Reads the `name:` line, in kB, of a `/proc` file's text.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name) && l[name.len()..].starts_with(':'))?;
    let mut fields = line[name.len() + 1..].split_whitespace();
    let kib = fields.next()?.parse::<u64>().ok()?;
    (fields.next() == Some("kB")).then_some(kib * 1024)
}

/// The resident memory of process `pid`: `VmRSS` from `/proc/<pid>/status` and `Pss` from
/// `/proc/<pid>/smaps_rollup` (Linux 4.14 or later, readable for our own children).
///
/// # Errors
///
/// If the process does not exist (or is a zombie, which has no `VmRSS`) or its status is
/// unreadable.
pub fn memory_usage(pid: u32) -> io::Result<MemoryUsage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_bytes = kib_field(&status, "VmRSS")
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no VmRSS (exited?)"))?;
    let pss_bytes = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| kib_field(&s, "Pss"));
    Ok(MemoryUsage { rss_bytes, pss_bytes })
}

/// The sum of [`memory_usage`] over `pids` (for example this process and
/// [`Workers::pids`]).
///
/// # Errors
///
/// As [`memory_usage`], for the first pid that fails.
pub fn total_memory(pids: impl IntoIterator<Item = u32>) -> io::Result<MemoryUsage> {
    pids.into_iter().try_fold(MemoryUsage { rss_bytes: 0, pss_bytes: Some(0) }, |sum, pid| {
        Ok(sum + memory_usage(pid)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_number_every_ordered_pair_once() {
        for workers in 1..6 {
            let mut seen = vec![false; (workers + 1) * workers];
            for from in 0..=workers {
                for to in (0..=workers).filter(|&t| t != from) {
                    let k = link(from, to, workers);
                    assert!(!seen[k], "link {from}->{to} collides");
                    seen[k] = true;
                }
            }
            assert!(seen.iter().all(|&s| s));
        }
    }

    #[test]
    fn memory_of_this_process() {
        let me = memory_usage(std::process::id()).unwrap();
        assert!(me.rss_bytes > 1 << 20, "{me:?}");
        if let Some(pss) = me.pss_bytes {
            assert!(pss > 0 && pss <= me.rss_bytes + (1 << 20), "{me:?}");
        }
        // Other tests of this binary allocate and free concurrently, so the resident set may
        // change between two reads (glibc trims and unmaps): retry until one round saw the
        // same figure before, twice inside, and after `total_memory`.
        let pid = std::process::id();
        let summed_a_stable_rss = (0..1000).any(|_| {
            let before = memory_usage(pid).unwrap().rss_bytes;
            let twice = total_memory([pid, pid]).unwrap().rss_bytes;
            let after = memory_usage(pid).unwrap().rss_bytes;
            before == after && twice == 2 * before
        });
        assert!(summed_a_stable_rss);
        assert!(memory_usage(u32::MAX).is_err());
    }

    #[test]
    fn kib_fields() {
        let text = "Name:\tx\nVmRSSx: 1 kB\nVmRSS:\t  2048 kB\n";
        assert_eq!(kib_field(text, "VmRSS"), Some(2048 * 1024));
        assert_eq!(kib_field(text, "Pss"), None);
    }

    #[test]
    fn not_a_worker_without_the_environment() {
        if env::var_os(ENV_WORKER).is_none() {
            assert!(worker::<2>().unwrap().is_none());
        }
    }

    #[test]
    fn a_mesh_needs_workers_and_a_valid_capacity() {
        assert!(Mesh::<2>::new(0, Transport::Socket).is_err());
        assert!(Mesh::<2>::new(2, Transport::Ring { capacity: 3 }).is_err());
        let mesh = Mesh::<2>::new(3, Transport::Ring { capacity: 8 }).unwrap();
        assert_eq!(mesh.workers(), 3);
    }
}
