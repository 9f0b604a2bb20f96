//! The IPC transport's own costs: messages per second one way and the round-trip time, for
//! 16-byte messages (`[u64; 2]`), over a shared-memory ring between two threads and between
//! two processes, and over a Unix socket pair between two processes. Run with
//! `cargo bench -p concord-benches --bench ipc [-- FILTER]`.
//!
//! The second process is this benchmark binary re-executed as a worker
//! (`ipc::process::run_if_worker`), as in the `compare` runner; the second thread runs the same
//! code. It echoes every message whose second word is [`ECHO`] and swallows the others.
//!
//! - `ipc_oneway_16B/<peer>`: `iters` messages one way, one `send` and one `recv` each, the
//!   last one echoed back; the time runs from the first send to the echo's arrival, so
//!   criterion's `elem/s` is messages per second with the receiver keeping up (a ring holds
//!   1024 messages; a socket buffer about 200 KiB).
//! - `ipc_oneway_16B/<peer>_batch64`: the same with batches: `send_batch` of 64 messages, and
//!   a receiver that takes up to 64 ready messages per `recv_batch`.
//! - `ipc_roundtrip_16B/<peer>`: one message there and its echo back, `iters` times in a row.
//!
//! Both ends use the default wait policy (spin 20 us, yield 4 times, then sleep), so a busy
//! pair never sleeps. On the 2-core reference host the two ends get a core each only if
//! nothing else runs: check the load first.
//!
//! # Figures
//!
//! Reference host (2 vCPUs, AMD EPYC, shared), rustc 1.95.0, bench profile (thin LTO), parent
//! commit 49fca51 plus this module, 2026-11-22; ranges over three runs with a load average of
//! 1.1-2.4 from other builds, criterion medians:
//!
//! | peer | one way, msgs/s | one way, batches of 64 | round trip |
//! |---|---|---|---|
//! | ring, 2 threads | 41-60 M | 240-273 M | 0.17-0.37 us |
//! | ring, 2 processes | 18-35 M | 270-311 M | 0.15-0.18 us |
//! | Unix socket, 2 processes | 0.68-0.99 M | 36-51 M | 12 us (busy host) to 64-83 us (idle host) |
//!
//! A socket round trip puts each process to sleep in `read`, so it costs two wake-ups, which
//! on these VMs take tens of microseconds when the other core idles (ANCHORS.md: 30-60 us);
//! the ring's waiters spin first and never sleep here. Unbatched, each ring message costs
//! both ends one `mfence` (the wake handshake, INV-RING-3 in `benches/DESIGN.md`); batches
//! pay it once per batch.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use concord_benches::ipc::process::{
    self, Endpoint, Mesh, MeshReceiver, MeshSender, Node, Transport, Worker, Workers,
};
use concord_benches::ipc::{ring, Rx, Tx};
use criterion::{BenchmarkId, Criterion, Throughput};

/// Second word of a message the other side must echo.
const ECHO: u64 = 1;
/// Ring capacity, in messages.
const CAPACITY: usize = 1024;
/// Messages per batch in the `_batch64` benchmarks.
const BATCH: usize = 64;

/// The echo loop, on a thread or in a worker process: until the channel closes, echoes the
/// messages marked [`ECHO`], receiving one at a time or in batches of up to [`BATCH`].
fn echo<T: Tx<2>, R: Rx<2>>(tx: &mut T, rx: &mut R, batched: bool) {
    let mut failed = false;
    let mut on_msg = |msg: [u64; 2]| {
        if msg[1] == ECHO {
            failed |= tx.send(msg).is_err();
        }
    };
    if batched {
        while rx.recv_batch(BATCH, &mut on_msg).is_ok() {}
    } else {
        while let Ok(msg) = rx.recv() {
            on_msg(msg);
        }
    }
    assert!(!failed, "the echo could not be sent back");
}

/// The worker process: entries `echo` and `echo_batch`.
fn echo_worker(mut w: Worker<2>) -> i32 {
    let batched = w.entry() == "echo_batch";
    let ep = w.endpoint();
    let mut tx = ep.take_tx(Node::Coordinator);
    let mut rx = ep.take_rx(Node::Coordinator);
    echo(&mut tx, &mut rx, batched);
    0
}

/// Sends `iters` messages (in groups of [`BATCH`] if `batched`), the last marked [`ECHO`],
/// and waits for its echo.
fn one_way<T: Tx<2>, R: Rx<2>>(tx: &mut T, rx: &mut R, iters: u64, batched: bool) -> Duration {
    let start = Instant::now();
    if batched {
        let mut buf = Vec::with_capacity(BATCH);
        let mut i = 0;
        while i + 1 < iters {
            buf.clear();
            buf.extend((i..(i + BATCH as u64).min(iters - 1)).map(|k| [k, 0]));
            tx.send_batch(&buf).unwrap();
            i += buf.len() as u64;
        }
    } else {
        for i in 0..iters.saturating_sub(1) {
            tx.send([i, 0]).unwrap();
        }
    }
    tx.send([iters, ECHO]).unwrap();
    assert_eq!(rx.recv().unwrap(), [iters, ECHO]);
    start.elapsed()
}

fn round_trips<T: Tx<2>, R: Rx<2>>(tx: &mut T, rx: &mut R, iters: u64) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        tx.send([i, ECHO]).unwrap();
        black_box(rx.recv().unwrap());
    }
    start.elapsed()
}

/// The two ends a benchmark drives, and what to stop afterwards.
struct Peer {
    tx: MeshSender<2>,
    rx: MeshReceiver<2>,
    stop: Stop,
}

enum Stop {
    Thread(thread::JoinHandle<()>),
    Process(Endpoint<2>, Workers),
}

/// Which peer a benchmark runs against.
#[derive(Clone, Copy)]
enum Kind {
    RingThread,
    RingProcess,
    SocketProcess,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::RingThread => "ring_2threads",
            Kind::RingProcess => "ring_2processes",
            Kind::SocketProcess => "socket_2processes",
        }
    }

    /// Starts the echo peer.
    fn start(self, batched: bool) -> Peer {
        let transport = match self {
            Kind::RingThread => return Peer::thread(batched),
            Kind::RingProcess => Transport::Ring { capacity: CAPACITY },
            Kind::SocketProcess => Transport::Socket,
        };
        let mesh = Mesh::<2>::new(1, transport).unwrap();
        let entry = if batched { "echo_batch" } else { "echo" };
        let (mut ep, workers) = mesh.spawn(entry).unwrap();
        let tx = ep.take_tx(Node::Worker(0));
        let rx = ep.take_rx(Node::Worker(0));
        Peer { tx, rx, stop: Stop::Process(ep, workers) }
    }
}

impl Peer {
    /// An echo thread in this process, over two rings.
    fn thread(batched: bool) -> Peer {
        let (tx, mut peer_rx) = ring::channel::<2>(CAPACITY).unwrap();
        let (mut peer_tx, rx) = ring::channel::<2>(CAPACITY).unwrap();
        let handle = thread::spawn(move || echo(&mut peer_tx, &mut peer_rx, batched));
        Peer { tx: MeshSender::Ring(tx), rx: MeshReceiver::Ring(rx), stop: Stop::Thread(handle) }
    }

    fn stop(self) {
        drop(self.tx);
        match self.stop {
            Stop::Thread(handle) => handle.join().unwrap(),
            Stop::Process(ep, workers) => {
                drop(ep);
                workers.wait().unwrap();
            }
        }
    }
}

fn main() {
    process::run_if_worker::<2>(echo_worker);
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    for kind in [Kind::RingThread, Kind::RingProcess, Kind::SocketProcess] {
        for batched in [false, true] {
            let name = kind.name();
            let mut peer = kind.start(batched);
            let mut g = c.benchmark_group("ipc_oneway_16B");
            g.throughput(Throughput::Elements(1));
            let id = if batched { format!("{name}_batch{BATCH}") } else { name.to_string() };
            g.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_custom(|iters| one_way(&mut peer.tx, &mut peer.rx, iters.max(2), batched))
            });
            g.finish();
            if !batched {
                let mut g = c.benchmark_group("ipc_roundtrip_16B");
                g.bench_function(BenchmarkId::from_parameter(name), |b| {
                    b.iter_custom(|iters| round_trips(&mut peer.tx, &mut peer.rx, iters))
                });
                g.finish();
            }
            peer.stop();
        }
    }
    c.final_summary();
}
