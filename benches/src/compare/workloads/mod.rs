//! The workloads, each runnable on every contender, each with its correctness check.

pub(crate) mod bank;
pub(crate) mod dict;
pub(crate) mod queue;

use concord_stm::stats;

use super::measure::{self, Measured};
use super::shards;
use super::spec::{Case, Contender, Workload};
use crate::contenders::{Concord, GlobalMutex, MutexPerAccount, RustStm};

/// What one case produced.
#[derive(Debug)]
pub struct Outcome {
    /// Throughput, latency, CPU.
    pub measured: Measured,
    /// Conflict aborts per commit, for the contenders that count them (Concord).
    pub aborts_per_commit: Option<f64>,
    /// Resident memory of every process of the contender, at the end of the run (with its
    /// state still alive).
    pub rss_bytes: u64,
}

/// Runs `case` on fresh state and checks its result.
///
/// # Errors
///
/// When the workload's correctness condition does not hold (money created or lost, an
/// increment lost): the message says what was expected and what was found.
pub fn run(case: &Case) -> Result<Outcome, String> {
    let before = stats::snapshot();
    let (measured, rss_bytes) = match case.workload {
        Workload::Bank { accounts, audit_one_in } => {
            let spec = bank::Spec { accounts, audit_one_in };
            match case.contender {
                Contender::ConcordExecutor => bank::on_executor(&spec, case)?,
                Contender::ConcordThreads => bank::on_threads::<Concord>(&spec, case)?,
                Contender::GlobalMutex => bank::on_threads::<GlobalMutex>(&spec, case)?,
                Contender::FineLocks => bank::on_threads::<MutexPerAccount>(&spec, case)?,
                Contender::RustStm => bank::on_threads::<RustStm>(&spec, case)?,
                Contender::ProcessesRing | Contender::ProcessesSocket | Contender::Mpi => {
                    shards::run(case)?
                }
            }
        }
        Workload::Dict { keys, read_percent, zipf } => {
            let spec = dict::Spec { keys, read_percent, zipf };
            match case.contender {
                Contender::ConcordExecutor => dict::on_executor(&spec, case)?,
                Contender::ConcordThreads => {
                    dict::on_threads::<concord_stm::collections::TMap<u64, u64>>(&spec, case)?
                }
                Contender::GlobalMutex => dict::on_threads::<
                    parking_lot::Mutex<std::collections::HashMap<u64, u64>>,
                >(&spec, case)?,
                Contender::FineLocks => {
                    dict::on_threads::<dashmap::DashMap<u64, u64>>(&spec, case)?
                }
                Contender::RustStm => dict::on_threads::<dict::RustStmDict>(&spec, case)?,
                Contender::ProcessesRing | Contender::ProcessesSocket | Contender::Mpi => {
                    shards::run(case)?
                }
            }
        }
        Workload::Counter => match case.contender {
            Contender::ConcordExecutor => bank::counter_on_executor(case)?,
            Contender::ConcordThreads => bank::counter_on_threads::<Concord>(case)?,
            Contender::GlobalMutex => bank::counter_on_threads::<GlobalMutex>(case)?,
            Contender::FineLocks => bank::counter_on_threads::<MutexPerAccount>(case)?,
            Contender::RustStm => bank::counter_on_threads::<RustStm>(case)?,
            Contender::ProcessesRing | Contender::ProcessesSocket | Contender::Mpi => {
                shards::run(case)?
            }
        },
        Workload::Queue { capacity } => match case.contender {
            Contender::ConcordExecutor => queue::on_executor(capacity, case)?,
            Contender::ConcordThreads => {
                queue::on_threads::<concord_stm::collections::TBQueue<u64>>(capacity, case)?
            }
            Contender::GlobalMutex => queue::on_threads::<queue::LockedQueue>(capacity, case)?,
            Contender::FineLocks => queue::on_threads::<queue::Channel>(capacity, case)?,
            Contender::RustStm => queue::on_threads::<queue::RustStmQueue>(capacity, case)?,
            Contender::ProcessesRing | Contender::ProcessesSocket | Contender::Mpi => {
                shards::run(case)?
            }
        },
    };
    let aborts_per_commit = match case.contender {
        Contender::ConcordExecutor | Contender::ConcordThreads => {
            Some(stats::snapshot().since(&before).aborts_per_commit())
        }
        _ => None,
    };
    Ok(Outcome { measured, aborts_per_commit, rss_bytes })
}

/// The resident memory now (the state under test is still alive when this is called).
fn rss() -> u64 {
    measure::rss_bytes()
}

/// Fails with a message unless `found == expected`.
pub(crate) fn check_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    expected: T,
    found: T,
) -> Result<(), String> {
    if expected == found {
        Ok(())
    } else {
        Err(format!("{what}: expected {expected:?}, found {found:?}"))
    }
}
