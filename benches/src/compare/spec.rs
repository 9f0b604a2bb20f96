//! What to run: workloads, contenders, guarantees, and the profiles that combine them.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A workload and its parameters. Every contender runs the same one, from the same seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "snake_case")]
pub enum Workload {
    /// `accounts` balances; transfers of 1 between two distinct random accounts, and, one
    /// operation in `audit_one_in` (0: never), a read-only sum of every account. The total
    /// must be conserved.
    Bank {
        /// Number of accounts (contention falls as it grows).
        accounts: usize,
        /// One operation in this many is a read-all audit (0: none).
        audit_one_in: u32,
    },
    /// A map of `keys` integer keys (loaded first); each operation reads a key or increments
    /// its value, keys uniform or Zipf-distributed. Every key's final value must equal the
    /// increments made to it.
    Dict {
        /// Number of keys.
        keys: usize,
        /// Percentage of operations that only read.
        read_percent: u8,
        /// Zipf-distributed keys (s = 0.99) instead of uniform.
        zipf: bool,
    },
    /// One hot counter that every worker increments: the worst case for optimistic
    /// concurrency. The final value must equal the number of increments.
    Counter,
    /// Half the workers push numbered items into a bounded FIFO queue, half pop them (one
    /// worker alternates). Every item must arrive once, in order per producer.
    Queue {
        /// The queue's capacity.
        capacity: usize,
    },
}

impl Workload {
    /// The workload's name, as in the records.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Bank { .. } => "bank",
            Workload::Dict { .. } => "dict",
            Workload::Counter => "counter",
            Workload::Queue { .. } => "queue",
        }
    }

    /// The parameters, as a short stable string (`accounts=1024 audit=1/100`).
    pub fn params(&self) -> String {
        match *self {
            Workload::Bank { accounts, audit_one_in: 0 } => format!("accounts={accounts}"),
            Workload::Bank { accounts, audit_one_in } => {
                format!("accounts={accounts} audit=1/{audit_one_in}")
            }
            Workload::Dict { keys, read_percent, zipf } => format!(
                "keys={keys} reads={read_percent}% {}",
                if zipf { "zipf" } else { "uniform" }
            ),
            Workload::Counter => "counters=1".to_owned(),
            Workload::Queue { capacity } => format!("capacity={capacity}"),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name(), self.params())
    }
}

/// Who runs the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contender {
    /// Concord's STM, one task per worker on a `concord-executor` pool of that many threads.
    ConcordExecutor,
    /// Concord's STM on plain threads.
    ConcordThreads,
    /// One `parking_lot::Mutex` over the whole state.
    GlobalMutex,
    /// Fine-grained locking: a `parking_lot::Mutex` per account, locked in index order.
    FineLocks,
    /// The peer STM, crate `stm` 0.4.
    RustStm,
    /// Shared-nothing worker processes, each owning a shard, over shared-memory rings.
    ProcessesRing,
    /// The same worker processes over Unix sockets.
    ProcessesSocket,
    /// The same workers as MPI ranks started by `mpirun`, over MPI point-to-point messages
    /// (feature `mpi`; on one machine or several).
    Mpi,
}

impl Contender {
    /// Every contender, in table order.
    pub const ALL: [Contender; 8] = [
        Contender::ConcordExecutor,
        Contender::ConcordThreads,
        Contender::GlobalMutex,
        Contender::FineLocks,
        Contender::RustStm,
        Contender::ProcessesRing,
        Contender::ProcessesSocket,
        Contender::Mpi,
    ];

    /// The contenders the runner runs when none are named: all but [`Mpi`](Self::Mpi),
    /// which needs the feature `mpi` and `mpirun`.
    pub const DEFAULT: [Contender; 7] = [
        Contender::ConcordExecutor,
        Contender::ConcordThreads,
        Contender::GlobalMutex,
        Contender::FineLocks,
        Contender::RustStm,
        Contender::ProcessesRing,
        Contender::ProcessesSocket,
    ];

    /// The contender's name, as in the records and on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Contender::ConcordExecutor => "concord_executor",
            Contender::ConcordThreads => "concord_threads",
            Contender::GlobalMutex => "global_mutex",
            Contender::FineLocks => "fine_locks",
            Contender::RustStm => "rust_stm",
            Contender::ProcessesRing => "processes_ring",
            Contender::ProcessesSocket => "processes_socket",
            Contender::Mpi => "mpi",
        }
    }

    /// Parses a name as printed by [`name`](Self::name).
    pub fn parse(name: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The consistency guarantee of this contender's operations.
    pub fn guarantee(&self) -> Guarantee {
        match self {
            // Opacity, and commit order follows real time (a transaction that starts after
            // another commits sees its writes).
            Contender::ConcordExecutor | Contender::ConcordThreads => {
                Guarantee::StrictlySerializable
            }
            Contender::GlobalMutex => Guarantee::Linearizable,
            // Two-phase locking with every lock held until the operation ends.
            Contender::FineLocks => Guarantee::StrictlySerializable,
            Contender::RustStm => Guarantee::StrictlySerializable,
            // Bank: strict two-phase locking over messages, locks taken in shard order (see
            // `shards::bank`); dict, counter, queue: one owner applies every operation on a
            // key, the counter or the queue, in arrival order (linearizable). The same
            // protocol over MPI.
            Contender::ProcessesRing | Contender::ProcessesSocket | Contender::Mpi => {
                Guarantee::StrictlySerializable
            }
        }
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a contender promises about concurrent operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Every operation takes effect at one instant between its call and its return.
    Linearizable,
    /// Transactions appear to run one at a time, in an order consistent with real time.
    StrictlySerializable,
    /// Transactions appear to run one at a time (batched into epochs; no real-time order
    /// within an epoch).
    SerializableByEpoch,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Guarantee::Linearizable => "linearizable",
            Guarantee::StrictlySerializable => "strictly serializable",
            Guarantee::SerializableByEpoch => "serializable by epoch",
        })
    }
}

/// One run: a workload on a contender with a number of workers, for a time.
///
/// The runner hands each case to a fresh child process (as JSON), so that no case inherits
/// another's heap, threads or STM state, and resident memory is the case's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// What to run.
    pub workload: Workload,
    /// Who runs it.
    pub contender: Contender,
    /// Threads, tasks (on as many executor threads) or processes.
    pub workers: usize,
    /// How long to measure.
    #[serde(with = "seconds")]
    pub duration: Duration,
}

/// A `Duration` as a number of seconds in JSON.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// A named set of cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Seconds: every contender and workload once, tiny, for CI.
    Smoke,
    /// Under 3 minutes on 2 cores: the README's first command.
    Quick,
    /// The figures of `benches/RESULTS.md`: longer runs, more sizes and worker counts.
    Full,
}

impl Profile {
    /// The workloads of this profile.
    pub fn workloads(&self) -> Vec<Workload> {
        use Workload::*;
        match self {
            Profile::Smoke => vec![
                Bank { accounts: 64, audit_one_in: 50 },
                Dict { keys: 1000, read_percent: 90, zipf: true },
                Counter,
                Queue { capacity: 16 },
            ],
            Profile::Quick => vec![
                Bank { accounts: 4, audit_one_in: 0 },
                Bank { accounts: 1024, audit_one_in: 0 },
                Bank { accounts: 1024, audit_one_in: 100 },
                Bank { accounts: 1 << 20, audit_one_in: 0 },
                Dict { keys: 100_000, read_percent: 90, zipf: false },
                Dict { keys: 100_000, read_percent: 90, zipf: true },
                Counter,
                Queue { capacity: 200 },
            ],
            Profile::Full => vec![
                Bank { accounts: 4, audit_one_in: 0 },
                Bank { accounts: 64, audit_one_in: 0 },
                Bank { accounts: 1024, audit_one_in: 0 },
                Bank { accounts: 1024, audit_one_in: 100 },
                Bank { accounts: 1024, audit_one_in: 10 },
                Bank { accounts: 1 << 16, audit_one_in: 0 },
                Bank { accounts: 1 << 20, audit_one_in: 0 },
                Dict { keys: 100_000, read_percent: 100, zipf: false },
                Dict { keys: 100_000, read_percent: 90, zipf: false },
                Dict { keys: 100_000, read_percent: 50, zipf: false },
                Dict { keys: 100_000, read_percent: 90, zipf: true },
                Dict { keys: 1 << 20, read_percent: 90, zipf: true },
                Counter,
                Queue { capacity: 200 },
                Queue { capacity: 4 },
            ],
        }
    }

    /// Worker counts to sweep, given the machine's cores.
    pub fn workers(&self, cores: usize) -> Vec<usize> {
        let mut w = match self {
            Profile::Smoke => vec![1, 2],
            Profile::Quick => vec![1, 2],
            Profile::Full => vec![1, 2, 4, 8],
        };
        if *self != Profile::Full {
            w.retain(|&n| n <= cores.max(2));
        }
        w
    }

    /// How long each case is measured.
    pub fn duration(&self) -> Duration {
        match self {
            Profile::Smoke => Duration::from_millis(100),
            Profile::Quick => Duration::from_millis(700),
            Profile::Full => Duration::from_secs(3),
        }
    }

    /// Every case of the profile, restricted to `contenders`.
    pub fn cases(&self, contenders: &[Contender], cores: usize) -> Vec<Case> {
        let mut cases = Vec::new();
        for workload in self.workloads() {
            for &workers in &self.workers(cores) {
                for &contender in contenders {
                    cases.push(Case { workload, contender, workers, duration: self.duration() });
                }
            }
        }
        cases
    }
}
