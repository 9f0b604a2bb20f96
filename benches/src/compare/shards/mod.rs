//! The process-based message-passing contenders: shared-nothing worker *processes*, each
//! owning a shard of the workload's state, talking only through messages
//! (`/work/shared/DESIGN.md` section 4).
//!
//! - `processes_ring`: over the shared-memory rings of [`ipc::ring`](crate::ipc::ring) (one
//!   per ordered pair of processes, coordinator included);
//! - `processes_socket`: the same code over Unix stream sockets
//!   ([`ipc::socket`](crate::ipc::socket)), what a program that does not share memory uses;
//! - `mpi` (feature `mpi`): the same code again, in MPI ranks started by `mpirun` rather
//!   than re-executed processes, over MPI point-to-point messages (`ipc::mpi`), on one
//!   machine or several; its launch and its differences are in the module `mpi`.
//!
//! # Processes
//!
//! The case's own process (a child of the `compare` runner) is the coordinator. It builds a
//! [`Mesh`] and spawns `W` workers by re-executing the current binary, whose `main` calls
//! [`run_if_worker`] first thing; the case travels in the mesh's entry string. Then:
//!
//! 1. each worker sets up its shard and says `Ready`;
//! 2. the coordinator reads every process's CPU time, says `Start`, sleeps for the case's
//!    duration, says `Stop`;
//! 3. each worker finishes the operation in flight (queue consumers: until they pop their
//!    stop marker), says `Stopped` with its count, and keeps serving its shard;
//! 4. once all have stopped (nothing is in flight anywhere), the coordinator reads every
//!    process's CPU time and resident memory (the workers are alive, their state too), and
//!    says `Report`; each worker drains its channels, then sends its latency histogram
//!    (bucket by bucket), its check data and `ReportEnd`;
//! 5. the coordinator hangs up, the workers exit, and the workload's check runs on the
//!    reports.
//!
//! CPU time and resident memory are summed over the coordinator and the workers; CPU is the
//! difference between steps 2 and 4 (set-up excluded, as for the threads). With one worker
//! the system is still two processes.
//!
//! # Modules
//!
//! - [`protocol`]: the messages (four words each);
//! - [`transport`]: a worker's ends of the mesh over either transport: poll, batch, sleep;
//! - [`node`]: the worker's event loop and wait policy;
//! - [`locks`]: the lock table behind the bank's cross-shard transactions;
//! - [`bank`], [`counter`], [`dict`], [`queue`]: each workload's shard, client loop, and
//!   check, with the protocol and its guarantee in the module doc;
//! - `mpi` (feature `mpi`): the ranks of an `mpirun` job as coordinator and workers.
//!
//! [`Mesh`]: crate::ipc::process::Mesh

pub(crate) mod bank;
pub(crate) mod counter;
pub(crate) mod dict;
pub(crate) mod locks;
#[cfg(feature = "mpi")]
pub mod mpi;
pub(crate) mod node;
pub(crate) mod protocol;
pub(crate) mod queue;
pub(crate) mod transport;

use std::time::{Duration, Instant};

use crate::compare::measure::{self, Measured, Meter};
use crate::compare::spec::{Case, Contender, Workload};
use crate::compare::workloads;
use crate::ipc::process::{self, Endpoint, Mesh, Node, Transport, Worker, Workers};
use crate::ipc::{RecvTimeoutError, Rx, Tx};

use self::node::{Process, Service};
use self::protocol::{Kind, Msg, WORDS};
use self::transport::Links;

pub(crate) use super::workloads::check_eq;

/// The entry name's prefix; the case follows as JSON.
const ENTRY: &str = "compare-shards:";

/// Messages per ring. Each client has one request in flight and releases without waiting,
/// so a ring between two workers holds at most a few messages; the reports to the
/// coordinator are longer and simply wait for room.
const RING_CAPACITY: usize = 256;

/// How long the coordinator waits for any one step of a worker before declaring the run
/// stuck (a deadlock would show here).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// One record of a worker's check data (the meaning of `tag` and the arguments belongs to
/// the workload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Check {
    pub(crate) tag: u8,
    pub(crate) a: u64,
    pub(crate) b: u64,
    pub(crate) c: u64,
}

/// What a worker reported after the run.
#[derive(Debug)]
pub(crate) struct WorkerReport {
    /// Its operations and latency histogram.
    pub(crate) meter: Meter,
    /// Its check data.
    pub(crate) checks: Vec<Check>,
}

/// The transport of a process contender.
fn transport_of(contender: Contender) -> Option<Transport> {
    match contender {
        Contender::ProcessesRing => Some(Transport::Ring { capacity: RING_CAPACITY }),
        Contender::ProcessesSocket => Some(Transport::Socket),
        _ => None,
    }
}

/// In a worker process of this module, runs the worker and exits; otherwise returns at once.
/// The `compare` binary calls it first thing in `main`.
pub fn run_if_worker() {
    process::run_if_worker::<WORDS>(|w| {
        let index = w.index();
        match worker_main(w) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("shard worker {index} (pid {}): {e}", std::process::id());
                1
            }
        }
    });
}

fn worker_main(w: Worker<WORDS>) -> Result<(), String> {
    let json =
        w.entry().strip_prefix(ENTRY).ok_or_else(|| format!("unknown entry {:?}", w.entry()))?;
    let case: Case = serde_json::from_str(json).map_err(|e| format!("bad case ({e}): {json}"))?;
    let (me, workers) = (w.index(), w.workers());
    run_worker(&case, me, workers, w.into_endpoint())
}

/// Worker `me` of `workers`: sets up its shard of `case`, then serves it and runs the
/// workload's client over `ep` until the coordinator hangs up. The same code for every
/// transport: re-executed processes over rings or sockets, MPI ranks.
fn run_worker(case: &Case, me: usize, workers: usize, ep: Endpoint<WORDS>) -> Result<(), String> {
    let links = Links::new(ep);
    match case.workload {
        Workload::Bank { accounts, audit_one_in } => {
            let spec = workloads::bank::Spec { accounts, audit_one_in };
            let p = Process::new(links, bank::Shard::new(&spec, me, workers), me);
            serve(p, |p, m| bank::run(p, &spec, m), bank::final_checks)
        }
        Workload::Dict { keys, read_percent, zipf } => {
            let spec = workloads::dict::Spec { keys, read_percent, zipf };
            let p = Process::new(links, dict::Shard::load(&spec, me, workers), me);
            serve(p, |p, m| dict::run(p, &spec, m), dict::final_checks)
        }
        Workload::Counter => {
            let p = Process::new(links, counter::Shard::default(), me);
            serve(p, counter::run, counter::final_checks)
        }
        Workload::Queue { capacity } => {
            let p = Process::new(links, queue::Shard::new(capacity, me, workers), me);
            serve(p, queue::run, queue::final_checks)
        }
    }
}

/// A worker's life (steps 1 to 5 of the module doc): `run` is the client loop, returning
/// the client's check data; `finally` the shard's, once everything has stopped.
fn serve<S: Service>(
    mut p: Process<S>,
    run: impl FnOnce(&mut Process<S>, &mut Meter) -> Result<Vec<Check>, String>,
    finally: impl FnOnce(&Process<S>) -> Vec<Check>,
) -> Result<(), String> {
    let result = live(&mut p, run, finally);
    #[cfg(feature = "mpi")]
    if result.is_err() {
        // The peers of a failed run may never close their ends: do not wait for them when
        // `p` drops (MPI receivers only; the process reports and ends the job).
        crate::ipc::mpi::abandon();
    }
    result
}

/// The body of [`serve`].
fn live<S: Service>(
    p: &mut Process<S>,
    run: impl FnOnce(&mut Process<S>, &mut Meter) -> Result<Vec<Check>, String>,
    finally: impl FnOnce(&Process<S>) -> Vec<Check>,
) -> Result<(), String> {
    p.send(Node::Coordinator, Msg::new(Kind::Ready));
    p.wait_until(|p| p.control.started.then_some(()))?;
    let cpu = measure::cpu_time();
    let mut meter = Meter::new();
    let mut checks = run(p, &mut meter)?;
    // CPU time and resident memory travel with the count, for coordinators that cannot read
    // them from `/proc` (MPI ranks may be on other machines).
    let cpu = measure::cpu_time().saturating_sub(cpu);
    let cpu_us = u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX);
    p.send(
        Node::Coordinator,
        Msg { b: cpu_us, c: measure::rss_bytes(), ..Msg::with(Kind::Stopped, meter.ops) },
    );
    p.wait_until(|p| p.control.report.then_some(()))?;
    // Everything sent to this shard before the peers stopped is in its channels now (they
    // sent it before `Stopped`, which the coordinator received before sending `Report`).
    while p.turn()? > 0 {}
    checks.extend(finally(p));
    for (value, count) in meter.buckets() {
        p.send(Node::Coordinator, Msg { b: count, ..Msg::with(Kind::Bucket, value) });
    }
    for c in checks {
        p.send(Node::Coordinator, Msg { kind: Kind::Check, flags: c.tag, a: c.a, b: c.b, c: c.c });
    }
    p.send(Node::Coordinator, Msg::new(Kind::ReportEnd));
    p.links.flush()?;
    p.links.wait_for_hangup();
    Ok(())
}

/// Runs `case` (a process contender) and checks it. Returns the measurement and the
/// resident memory summed over all processes.
///
/// # Errors
///
/// If the processes cannot be started, a worker fails or gets stuck, or the check fails.
pub(crate) fn run(case: &Case) -> Result<(Measured, u64), String> {
    if case.contender == Contender::Mpi {
        return Err("the mpi contender runs only in rank 0 of an mpirun job of the compare \
                    runner (built with --features mpi)"
            .to_owned());
    }
    let transport = transport_of(case.contender)
        .ok_or_else(|| format!("{} is not a process contender", case.contender))?;
    let mesh = Mesh::<WORDS>::new(case.workers, transport)
        .map_err(|e| format!("cannot build the mesh: {e}"))?;
    let entry = format!("{ENTRY}{}", serde_json::to_string(case).expect("a case serializes"));
    let (ep, workers) = mesh.spawn(&entry).map_err(|e| format!("cannot spawn the workers: {e}"))?;
    let pids: Vec<String> = workers.pids().iter().map(u32::to_string).collect();
    let mut c = Coordinator { ep, workers: Some(workers) };
    let result = c.drive(case, Some(&pids));
    match result {
        Ok((measured, rss, reports)) => {
            c.finish()?;
            verify(case, &reports, &measured)?;
            Ok((measured, rss))
        }
        Err(e) => Err(c.fail(e)),
    }
}

/// The coordinator's side of a run.
struct Coordinator {
    ep: Endpoint<WORDS>,
    /// The worker processes it spawned (`None` for MPI ranks, which `mpirun` started).
    workers: Option<Workers>,
}

impl Coordinator {
    fn send_all(&mut self, kind: Kind) -> Result<(), String> {
        for i in 0..self.ep.workers() {
            self.ep
                .tx(Node::Worker(i))
                .send(Msg::new(kind).encode())
                .map_err(|_| format!("worker {i} is gone"))?;
        }
        Ok(())
    }

    fn recv(&mut self, i: usize) -> Result<Msg, String> {
        match self.ep.rx(Node::Worker(i)).recv_timeout(STEP_TIMEOUT) {
            Ok(words) => Msg::decode(words).map_err(|e| format!("worker {i}: {e}")),
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("worker {i} is stuck (nothing for {STEP_TIMEOUT:?})"))
            }
            Err(RecvTimeoutError::Disconnected) => Err(format!("worker {i} is gone")),
        }
    }

    fn expect(&mut self, i: usize, kind: Kind) -> Result<Msg, String> {
        let msg = self.recv(i)?;
        if msg.kind == kind {
            Ok(msg)
        } else {
            Err(format!("worker {i}: expected {kind:?}, got {msg:?}"))
        }
    }

    /// Steps 1 to 4 of the module doc. CPU time and resident memory of the workers come from
    /// `/proc/<pid>` for the `pids` given, or else from the workers' `Stopped` messages.
    fn drive(
        &mut self,
        case: &Case,
        pids: Option<&[String]>,
    ) -> Result<(Measured, u64, Vec<WorkerReport>), String> {
        let n = case.workers;
        for i in 0..n {
            self.expect(i, Kind::Ready)?;
        }
        let reported = pids.is_none();
        let pids = pids.unwrap_or_default();
        let cpu =
            || measure::cpu_time() + pids.iter().map(|p| measure::cpu_time_of(p)).sum::<Duration>();
        let cpu_before = cpu();
        let start = Instant::now();
        self.send_all(Kind::Start)?;
        std::thread::sleep(case.duration);
        self.send_all(Kind::Stop)?;
        let mut ops = Vec::with_capacity(n);
        let (mut reported_cpu, mut reported_rss) = (Duration::ZERO, 0);
        for i in 0..n {
            let stopped = self.expect(i, Kind::Stopped)?;
            ops.push(stopped.a);
            reported_cpu += Duration::from_micros(stopped.b);
            reported_rss += stopped.c;
        }
        let elapsed = start.elapsed();
        let mut cpu_used = cpu().saturating_sub(cpu_before);
        let mut rss =
            measure::rss_bytes() + pids.iter().map(|p| measure::rss_bytes_of(p)).sum::<u64>();
        if reported {
            cpu_used += reported_cpu;
            rss += reported_rss;
        }
        self.send_all(Kind::Report)?;
        let mut reports = Vec::with_capacity(n);
        for (i, &ops) in ops.iter().enumerate() {
            let mut meter = Meter::new();
            meter.ops = ops;
            let mut checks = Vec::new();
            loop {
                let msg = self.recv(i)?;
                match msg.kind {
                    Kind::Bucket => meter.record_bucket(msg.a, msg.b),
                    Kind::Check => {
                        checks.push(Check { tag: msg.flags, a: msg.a, b: msg.b, c: msg.c })
                    }
                    Kind::ReportEnd => break,
                    _ => return Err(format!("worker {i}: unexpected {msg:?} in its report")),
                }
            }
            reports.push(WorkerReport { meter, checks });
        }
        let meters = reports.iter_mut().map(|r| std::mem::take(&mut r.meter)).collect();
        let measured = Measured::from_meters(meters, elapsed, cpu_used);
        Ok((measured, rss, reports))
    }

    /// Step 5: hangs up and waits for the workers to exit (MPI ranks: to close their ends).
    fn finish(self) -> Result<(), String> {
        let Some(workers) = self.workers else { return Ok(()) };
        drop(self.ep);
        workers
            .wait_timeout(STEP_TIMEOUT)
            .map_err(|e| format!("the workers did not exit cleanly: {e}"))
    }

    /// After a failure: kills the workers and adds how they ended to the message. (MPI
    /// ranks are left as they are: the caller aborts the MPI job.)
    fn fail(self, e: String) -> String {
        let Some(workers) = self.workers else {
            std::mem::forget(self.ep);
            return e;
        };
        drop(self.ep);
        match workers.wait_timeout(Duration::from_secs(2)) {
            Ok(()) => e,
            Err(how) => format!("{e} ({how})"),
        }
    }
}

/// The workload's check on the reports.
fn verify(case: &Case, reports: &[WorkerReport], measured: &Measured) -> Result<(), String> {
    match case.workload {
        Workload::Bank { accounts, audit_one_in } => {
            bank::verify(&workloads::bank::Spec { accounts, audit_one_in }, reports)
        }
        Workload::Dict { keys, read_percent, zipf } => {
            dict::verify(&workloads::dict::Spec { keys, read_percent, zipf }, reports)
        }
        Workload::Counter => counter::verify(reports, measured),
        Workload::Queue { .. } => queue::verify(reports),
    }
}
