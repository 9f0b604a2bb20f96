//! The `mpi` contender (feature `mpi`): the same shard workers as `processes_ring` and
//! `processes_socket`, as MPI ranks started by `mpirun`, talking through MPI point-to-point
//! messages ([`ipc::mpi`](crate::ipc::mpi)), on one machine or several.
//!
//! # Ranks
//!
//! `mpirun -np N compare --contenders mpi ...` starts `N` copies of the runner. Rank 0 is
//! the runner: it makes the cases, runs the other contenders' cases in child processes as
//! usual, and coordinates the `mpi` cases itself (in its own process: a child could not
//! join the MPI job). Ranks 1 to `N - 1` call [`Cluster::serve`], which waits for cases:
//!
//! 1. for each `mpi` case of `W` workers, rank 0 sends the case (JSON) to every other rank;
//! 2. ranks 0 to `W` make a communicator of their own (`MPI_Comm_create_group`, so that
//!    the ranks left out go on waiting), in which rank `i + 1` is worker `i`;
//! 3. the run is the parent module's, steps 1 to 5, with two differences: the workers'
//!    CPU time and resident memory come in their `Stopped` messages (they may be on other
//!    machines), and step 5 is each process closing its ends (the ranks stay);
//! 4. after the last case rank 0 sends an empty case, and every rank finalizes MPI.
//!
//! A case of `W` workers needs `W + 1` ranks; the runner skips (and names) the cases that
//! need more than it has. Waiting ranks poll for the next case every millisecond rather
//! than block in MPI, whose blocking calls spin a core.
//!
//! What differs from the re-executed processes, in the records: the ranks live through
//! every case, so their resident memory includes MPI's libraries (about 16 MiB a rank
//! against 5 MiB for a worker process) and whatever earlier cases left in their heaps; and
//! a waiting worker that has spun and yielded sleeps in slices of
//! [`POLL_SLEEP`](crate::ipc::mpi::POLL_SLEEP) between probes, where a ring or a socket
//! would wake it as soon as a message came.
//!
//! A failure anywhere (a correctness check, a worker's protocol error, a stuck run) ends the
//! whole job with `MPI_Abort`, after printing what happened.

use std::time::Duration;

use ::mpi::datatype::Equivalence;
use ::mpi::environment::Universe;
use ::mpi::topology::{Communicator, Group, Rank, SimpleCommunicator};
use ::mpi::traits::{Destination, Source};
use ::mpi::Tag;

use super::{run_worker, verify, Coordinator};
use crate::compare::spec::Case;
use crate::compare::workloads::Outcome;
use crate::ipc::mpi::{self as transport, Comm};
use crate::ipc::process::{Endpoint, Node};

/// The tag of the messages that hand out cases, on `MPI_COMM_WORLD`.
const TAG_CASE: Tag = 100;
/// The tag of `MPI_Comm_create_group`'s own messages.
const TAG_GROUP: Tag = 101;
/// How long a waiting rank sleeps between two looks for the next case.
const IDLE_POLL: Duration = Duration::from_millis(1);

/// The variables that hold this process's rank in the environment of the processes that
/// `mpirun` starts (OpenMPI, MPICH's Hydra, PMIx launchers).
const LAUNCHER_ENV: [&str; 3] = ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"];

/// This process's rank in the MPI job, if `mpirun` (or another MPI launcher) started it,
/// read from the environment without initializing MPI.
pub fn launcher_rank() -> Option<usize> {
    LAUNCHER_ENV.iter().find_map(|var| std::env::var(var).ok()?.parse().ok())
}

/// This process's part in an MPI job of the `compare` runner.
pub struct Cluster {
    /// `MPI_COMM_WORLD`. Declared before `universe`, so dropped first.
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Finalizes MPI when dropped.
    _universe: Universe,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("rank", &self.rank).field("size", &self.size).finish()
    }
}

impl Cluster {
    /// Initializes MPI (on this thread, the only one that may use it) and joins the job.
    ///
    /// # Errors
    ///
    /// If MPI cannot be initialized.
    pub fn join() -> Result<Cluster, String> {
        let universe = transport::initialize()?;
        let world = universe.world();
        let rank = usize::try_from(world.rank()).expect("a rank is not negative");
        let size = usize::try_from(world.size()).expect("a size is not negative");
        Ok(Cluster { world, rank, size, _universe: universe })
    }

    /// This process's rank: 0 runs the runner, the others serve.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The most workers a case can have: every rank but rank 0.
    pub fn max_workers(&self) -> usize {
        self.size - 1
    }

    /// The name of this machine, as MPI knows it.
    pub fn host(&self) -> String {
        ::mpi::environment::processor_name().unwrap_or_else(|_| "?".to_owned())
    }

    /// Ends the whole MPI job, every rank, with `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// The communicator of ranks `0..=workers`; every one of them calls it.
    fn mesh(&self, workers: usize) -> std::sync::Arc<Comm> {
        let ranks: Vec<Rank> =
            (0..=workers).map(|r| Rank::try_from(r).expect("ranks fit an i32")).collect();
        let group = self.world.group().include(&ranks);
        let comm = self
            .world
            .split_by_subgroup_with_tag(&group, TAG_GROUP)
            .expect("this rank is in the group");
        Comm::new(comm)
    }

    /// Rank 0: runs `case` (of the `mpi` contender) on ranks `1..=case.workers`, checks it,
    /// and returns what it measured.
    ///
    /// # Errors
    ///
    /// If the case needs more ranks than there are, a worker fails or gets stuck, or the
    /// check fails. The other ranks may then be anywhere in the run: end the job with
    /// [`abort`](Self::abort).
    pub fn run(&self, case: &Case) -> Result<Outcome, String> {
        assert_eq!(self.rank, 0, "rank 0 coordinates");
        let workers = case.workers;
        if workers == 0 || workers > self.max_workers() {
            return Err(format!(
                "{workers} workers need {} MPI ranks (mpirun -np {}), this job has {}",
                workers + 1,
                workers + 1,
                self.size
            ));
        }
        let json = serde_json::to_string(case).expect("a case serializes");
        for r in 1..self.size {
            self.send_case(r, json.as_bytes());
        }
        let comm = self.mesh(workers);
        let ep = Endpoint::over_mpi(&comm, Node::Coordinator, workers);
        let mut c = Coordinator { ep, workers: None };
        match c.drive(case, None) {
            Ok((measured, rss_bytes, reports)) => {
                // Closes this process's ends; waits for the workers' closes.
                c.finish()?;
                drop(comm);
                verify(case, &reports, &measured)?;
                Ok(Outcome { measured, aborts_per_commit: None, rss_bytes })
            }
            Err(e) => {
                std::mem::forget(comm);
                Err(c.fail(e))
            }
        }
    }

    /// Rank 0: tells the other ranks that there are no more cases. Dropping the cluster then
    /// finalizes MPI.
    pub fn finish(&self) {
        if self.rank == 0 {
            for r in 1..self.size {
                self.send_case(r, &[]);
            }
        }
    }

    fn send_case(&self, rank: usize, json: &[u8]) {
        let rank = Rank::try_from(rank).expect("ranks fit an i32");
        self.world.process_at_rank(rank).send_with_tag(json, TAG_CASE);
    }

    /// The next case from rank 0, or `None` at the end.
    fn next_case(&self) -> Result<Option<Case>, String> {
        let from = self.world.process_at_rank(0);
        let (message, status) = loop {
            if let Some(probed) = from.immediate_matched_probe_with_tag(TAG_CASE) {
                break probed;
            }
            std::thread::sleep(IDLE_POLL);
        };
        let len = usize::try_from(status.count(u8::equivalent_datatype())).unwrap_or(0);
        let mut json = vec![0_u8; len];
        message.matched_receive_into(&mut json[..]);
        if json.is_empty() {
            return Ok(None);
        }
        let json = String::from_utf8_lossy(&json);
        serde_json::from_str(&json).map(Some).map_err(|e| format!("bad case ({e}): {json}"))
    }

    /// Ranks 1 and up: serves every case handed out by rank 0 that needs this rank, until
    /// rank 0 says there are no more.
    ///
    /// # Errors
    ///
    /// Never returns one: a failing worker prints why and aborts the job (its peers would
    /// wait for it otherwise). The `Result` is for a bad case message.
    pub fn serve(&self) -> Result<(), String> {
        assert!(self.rank > 0, "rank 0 coordinates");
        let me = self.rank - 1;
        while let Some(case) = self.next_case()? {
            if me >= case.workers {
                continue;
            }
            let comm = self.mesh(case.workers);
            let ep = Endpoint::over_mpi(&comm, Node::Worker(me), case.workers);
            if let Err(e) = run_worker(&case, me, case.workers, ep) {
                eprintln!(
                    "mpi worker {me} (rank {}, pid {}, host {}): {e}",
                    self.rank,
                    std::process::id(),
                    self.host()
                );
                self.abort(1);
            }
        }
        Ok(())
    }
}
