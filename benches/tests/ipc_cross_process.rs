//! Cross-process tests of the IPC transport (`concord_benches::ipc`).
//!
//! This test binary has its own `main` (`harness = false` in `Cargo.toml`) because its
//! workers are *this binary, re-executed* (`std::env::current_exe()`), exactly as the
//! `compare` runner will spawn its workers: `main` first calls `process::run_if_worker`,
//! which in a worker runs the worker's code and exits. Each test is bounded by timeouts
//! (a stuck test fails; a watchdog ends the whole binary after 10 minutes); none asserts a
//! speed.
//!
//! Run with `cargo test -p concord-benches --test ipc_cross_process [-- FILTER]`.

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use concord_benches::ipc::process::{self, Mesh, Node, Transport, Worker, WorkerExit};
use concord_benches::ipc::{Disconnected, RecvTimeoutError, Rx, TryRecvError, TrySendError, Tx};

/// Messages each way in the two-process exchange.
const N: u64 = 200_000;
/// Messages per ordered pair of workers in the all-pairs test.
const K: u64 = 20_000;
/// The most any single wait may take (generous: debug builds on a loaded 2-core host).
const TIMEOUT: Duration = Duration::from_secs(120);
/// Marks coordinator-to-worker and worker-to-coordinator messages differently, so that a
/// message delivered on the wrong channel or torn shows.
const FROM_COORDINATOR: u64 = 0xC0C0_0000_0000_0000;
const FROM_WORKER: u64 = 0x0000_0000_5A5A_5A5A;
/// The environment variable that makes this binary the middle process of
/// `workers_die_with_their_parent`.
const ORPHANING_PARENT: &str = "CONCORD_IPC_TEST_ORPHANING_PARENT";

type TestResult = Result<(), String>;

/// A test: its name and body.
type Test = (&'static str, fn() -> TestResult);

fn main() {
    process::run_if_worker::<2>(worker_main);
    if env::var_os(ORPHANING_PARENT).is_some() {
        orphaning_parent();
    }

    let tests: &[Test] = &[
        ("ring_exchange_both_ways", || exchange(Transport::Ring { capacity: 64 })),
        ("socket_exchange_both_ways", || exchange(Transport::Socket)),
        ("ring_all_pairs_of_three_workers", || all_pairs(Transport::Ring { capacity: 16 })),
        ("socket_all_pairs_of_three_workers", || all_pairs(Transport::Socket)),
        ("failing_worker_is_reported", failing_worker_is_reported),
        ("workers_die_with_their_parent", workers_die_with_their_parent),
    ];
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in tests {
            println!("{name}: test");
        }
        return;
    }
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned().unwrap_or_default();
    let ignored_only = args.iter().any(|a| a == "--ignored");

    thread::spawn(|| {
        thread::sleep(Duration::from_secs(600));
        eprintln!("ipc_cross_process: watchdog: still running after 10 minutes");
        std::process::exit(2);
    });

    let start = Instant::now();
    let selected: Vec<_> =
        tests.iter().filter(|(name, _)| !ignored_only && name.contains(&filter)).collect();
    println!("\nrunning {} tests", selected.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in &selected {
        let t = Instant::now();
        let result = std::panic::catch_unwind(test).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        });
        match result {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:.2} s)", t.elapsed().as_secs_f64());
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED: {e}");
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {} filtered out; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        tests.len() - selected.len(),
        start.elapsed().as_secs_f64()
    );
    std::io::stdout().flush().unwrap();
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Turns any error into the test's failure message.
fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The workers' code, chosen by the entry name the coordinator spawned them with.
fn worker_main(w: Worker<2>) -> i32 {
    let entry = w.entry().to_owned();
    let index = w.index();
    let result = match entry.as_str() {
        "exchange" => worker_exchange(w),
        "all_pairs" => worker_all_pairs(w),
        "fail_first" => worker_fail_first(w),
        "block" => worker_block(w),
        other => Err(format!("unknown entry {other}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("worker {index} ({entry}): {e}");
            1
        }
    }
}

/// Worker side of `exchange`: sends N numbered messages to the coordinator (from a second
/// thread) while receiving N from it, checks them, then waits for the coordinator's stop.
fn worker_exchange(mut w: Worker<2>) -> Result<i32, String> {
    let ep = w.endpoint();
    let mut tx = ep.take_tx(Node::Coordinator);
    let sender = thread::spawn(move || -> Result<(), Disconnected> {
        for i in 0..N {
            tx.send([i, i ^ FROM_WORKER])?;
        }
        Ok(()) // dropping `tx` tells the coordinator there is no more
    });
    let rx = ep.rx(Node::Coordinator);
    for i in 0..N {
        let msg = rx.recv().map_err(fail("receiving"))?;
        if msg != [i, i ^ FROM_COORDINATOR] {
            return Err(format!("message {i}: got {msg:x?}"));
        }
    }
    sender.join().map_err(|_| "sender panicked".to_string())?.map_err(fail("sending"))?;
    // The coordinator says stop by dropping its ends: nothing more may come.
    match rx.recv() {
        Err(Disconnected) => Ok(0),
        Ok(msg) => Err(format!("extra message {msg:x?}")),
    }
}

/// Coordinator side: N numbered messages each way between the coordinator and one worker,
/// both directions at once, checked for order and completeness on both sides; then the
/// workers' memory is read and the coordinator says stop.
fn exchange(transport: Transport) -> TestResult {
    let mesh = Mesh::<2>::new(1, transport).map_err(fail("mesh"))?;
    let (mut ep, workers) = mesh.spawn("exchange").map_err(fail("spawn"))?;
    let worker = Node::Worker(0);
    let mut tx = ep.take_tx(worker);
    let sender = thread::spawn(move || {
        for i in 0..N {
            tx.send_timeout([i, i ^ FROM_COORDINATOR], TIMEOUT).map_err(fail("sending"))?;
        }
        Ok::<_, String>(tx) // kept open until we say stop
    });
    let rx = ep.rx(worker);
    for i in 0..N {
        let msg = rx.recv_timeout(TIMEOUT).map_err(fail("receiving"))?;
        if msg != [i, i ^ FROM_WORKER] {
            return Err(format!("message {i}: got {msg:x?}"));
        }
    }
    match rx.recv_timeout(TIMEOUT) {
        Err(RecvTimeoutError::Disconnected) => {}
        other => return Err(format!("after {N} messages: {other:x?}, not the end")),
    }
    let tx = sender.join().map_err(|_| "sender panicked".to_string())??;

    let pids = workers.pids();
    let usage = process::total_memory(pids.iter().copied()).map_err(fail("worker memory"))?;
    if usage.rss_bytes == 0 || usage.pss_bytes.map_or(true, |p| p == 0) {
        return Err(format!("worker memory {usage:?}"));
    }
    eprintln!("  {transport:?}: worker {pids:?} memory {usage:?}");

    drop(tx);
    drop(ep); // stop
    workers.wait_timeout(TIMEOUT).map_err(fail("workers"))
}

/// Tags a message from worker `from` to worker `to`.
fn pair_tag(from: usize, to: usize) -> u64 {
    ((from as u64) << 32) | to as u64
}

/// Worker side of `all_pairs`: sends K numbered messages to every other worker and receives
/// K from each, on one thread with `try_send` / `try_recv` (blocking calls could deadlock a
/// cycle of full channels); reports `[received, 0]` to the coordinator and waits for stop.
fn worker_all_pairs(mut w: Worker<2>) -> Result<i32, String> {
    let (me, n) = (w.index(), w.workers());
    let ep = w.endpoint();
    let peers: Vec<usize> = (0..n).filter(|&p| p != me).collect();
    let mut sent = vec![0u64; n];
    let mut received = vec![0u64; n];
    let deadline = Instant::now() + TIMEOUT;
    while peers.iter().any(|&p| sent[p] < K || received[p] < K) {
        let mut progress = false;
        for &p in &peers {
            if sent[p] < K {
                match ep.tx(Node::Worker(p)).try_send([sent[p], pair_tag(me, p)]) {
                    Ok(()) => {
                        sent[p] += 1;
                        progress = true;
                    }
                    Err(TrySendError::Full) => {}
                    Err(e) => return Err(format!("sending to {p}: {e}")),
                }
            }
            if received[p] < K {
                match ep.rx(Node::Worker(p)).try_recv() {
                    Ok(msg) => {
                        if msg != [received[p], pair_tag(p, me)] {
                            return Err(format!("from {p}, message {}: {msg:x?}", received[p]));
                        }
                        received[p] += 1;
                        progress = true;
                    }
                    Err(TryRecvError::Empty) => {}
                    Err(e) => return Err(format!("receiving from {p}: {e}")),
                }
            }
        }
        if !progress {
            if Instant::now() > deadline {
                return Err(format!("stuck: sent {sent:?}, received {received:?}"));
            }
            thread::yield_now();
        }
    }
    let total: u64 = received.iter().sum();
    ep.tx(Node::Coordinator).send([total, me as u64]).map_err(fail("reporting"))?;
    match ep.rx(Node::Coordinator).recv() {
        Err(Disconnected) => Ok(0),
        Ok(msg) => Err(format!("unexpected message {msg:?}")),
    }
}

/// Three workers, every ordered pair of them exchanging K numbered messages over its own
/// channel (checking order and routing), then reporting to the coordinator.
fn all_pairs(transport: Transport) -> TestResult {
    const WORKERS: usize = 3;
    let mesh = Mesh::<2>::new(WORKERS, transport).map_err(fail("mesh"))?;
    let (mut ep, workers) = mesh.spawn("all_pairs").map_err(fail("spawn"))?;
    for i in 0..WORKERS {
        let report = ep.rx(Node::Worker(i)).recv_timeout(TIMEOUT).map_err(fail("report"))?;
        if report != [K * (WORKERS as u64 - 1), i as u64] {
            return Err(format!("worker {i} reported {report:?}"));
        }
    }
    drop(ep);
    workers.wait_timeout(TIMEOUT).map_err(fail("workers"))
}

/// Worker 0 exits with status 3; the others wait for a stop that does not come until the
/// coordinator has seen the failure.
fn worker_fail_first(mut w: Worker<2>) -> Result<i32, String> {
    if w.index() == 0 {
        return Ok(3);
    }
    match w.endpoint().rx(Node::Coordinator).recv() {
        Err(Disconnected) => Ok(0),
        Ok(msg) => Err(format!("unexpected message {msg:?}")),
    }
}

/// A worker's non-zero exit is reported, and the workers that would wait forever for it are
/// killed.
fn failing_worker_is_reported() -> TestResult {
    let mesh = Mesh::<2>::new(2, Transport::Ring { capacity: 8 }).map_err(fail("mesh"))?;
    let (ep, workers) = mesh.spawn("fail_first").map_err(fail("spawn"))?;
    let result = workers.wait_timeout(TIMEOUT);
    drop(ep);
    let failure = match result {
        Ok(()) => return Err("the failing worker was not reported".into()),
        Err(f) => f,
    };
    let failures = failure.failures();
    let first_failed_with_3 = failures
        .iter()
        .any(|(i, how)| *i == 0 && matches!(how, WorkerExit::Failed(s) if s.code() == Some(3)));
    let second_killed =
        failures.iter().any(|(i, how)| *i == 1 && matches!(how, WorkerExit::KilledAfterFailure));
    if !(first_failed_with_3 && second_killed && failures.len() == 2) {
        return Err(format!("wrong report: {failure}"));
    }
    eprintln!("  reported: {failure}");
    Ok(())
}

/// Worker side of `workers_die_with_their_parent`: says it is up, then waits for a message
/// that never comes (for at most [`TIMEOUT`], so that a failing test leaves no process
/// behind for long).
fn worker_block(mut w: Worker<2>) -> Result<i32, String> {
    let ep = w.endpoint();
    ep.tx(Node::Coordinator).send([1, 0]).map_err(fail("ready"))?;
    let got = ep.rx(Node::Coordinator).recv_timeout(TIMEOUT);
    Err(format!("the blocked worker is still alive after its parent died ({got:?})"))
}

/// The middle process of `workers_die_with_their_parent`: spawns a worker, prints its pid
/// once it is up, and exits at once without stopping it (no destructors run).
fn orphaning_parent() -> ! {
    let mesh = Mesh::<2>::new(1, Transport::Ring { capacity: 8 }).expect("mesh");
    let (mut ep, workers) = mesh.spawn("block").expect("spawn");
    ep.rx(Node::Worker(0)).recv_timeout(TIMEOUT).expect("the worker did not start");
    println!("{}", workers.pids()[0]);
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// The state letter of process `pid` (`None` if it is gone).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": the state follows the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// A worker whose coordinator dies (without stopping it) is killed by the kernel.
fn workers_die_with_their_parent() -> TestResult {
    let exe = env::current_exe().map_err(fail("current_exe"))?;
    let mut middle = Command::new(exe)
        .env(ORPHANING_PARENT, "1")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(fail("spawning the middle process"))?;
    let mut line = String::new();
    BufReader::new(middle.stdout.take().expect("piped"))
        .read_line(&mut line)
        .map_err(fail("reading the worker's pid"))?;
    let status = middle.wait().map_err(fail("waiting for the middle process"))?;
    if !status.success() {
        return Err(format!("the middle process failed: {status}"));
    }
    let pid: u32 = line.trim().parse().map_err(fail("worker pid"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match process_state(pid) {
            None | Some('Z' | 'X') => return Ok(()),
            Some(state) if Instant::now() > deadline => {
                // Do not leave it behind (it holds our stdout open).
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                return Err(format!(
                    "worker {pid} still alive (state {state}) after its parent died"
                ));
            }
            Some(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
}
