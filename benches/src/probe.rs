//! What a benchmark prints beside criterion's figures: the STM's abort rate over the run and
//! how much of the run its threads spent waiting for a CPU taken by other load.

use std::marker::PhantomData;

use concord_stm::stats::Stats;

use crate::bank::Bank;
use crate::sched::CpuTime;

/// Readings taken before a benchmark of contender `B`, compared with those after it by
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct Probe<B> {
    stm: Option<Stats>,
    cpu: CpuTime,
    threaded: bool,
    _bank: PhantomData<fn() -> B>,
}

impl<B: Bank> Probe<B> {
    /// Takes the readings. `threaded`: the benchmark runs on
    /// [`run_threads`](crate::workload::run_threads) workers (their CPU time is recorded
    /// there) rather than on the calling thread.
    pub fn start(threaded: bool) -> Self {
        Probe { stm: B::stm_stats(), cpu: Self::cpu(threaded), threaded, _bank: PhantomData }
    }

    fn cpu(threaded: bool) -> CpuTime {
        if threaded {
            CpuTime::recorded()
        } else {
            CpuTime::this_thread()
        }
    }

    /// Prints, on one line to stderr, the share of runnable time the benchmark's threads
    /// waited for a CPU and, for an STM with statistics, its aborts per commit. Both cover
    /// the whole benchmark, warm-up included (single-thread figures also include criterion's
    /// own analysis on the same thread).
    pub fn finish(self, id: &str) {
        let cpu = Self::cpu(self.threaded).since(&self.cpu);
        let mut line =
            format!("{id}: waited for a CPU {:.1}% of the time", 100.0 * cpu.wait_fraction());
        if let (Some(before), Some(after)) = (self.stm, B::stm_stats()) {
            let d = after.since(&before);
            line += &format!(
                "; {:.4} aborts per commit ({} aborts: read {}, lock {}, validate {}; \
                 {} commits; {} serial escalations)",
                d.aborts_per_commit(),
                d.aborts(),
                d.aborts_read,
                d.aborts_lock,
                d.aborts_validate,
                d.commits,
                d.serial_escalations,
            );
        }
        eprintln!("{line}");
    }
}
