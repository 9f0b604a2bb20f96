//! Tail latency of the two-thread workloads W4-W7: each operation timed on its own, both
//! threads together, for each contender (see `benches/README.md`). Not a criterion
//! benchmark: it prints one table. Run with
//! `cargo bench -p concord-benches --bench latency [-- FILTER]`; `FILTER` keeps the rows
//! whose `group/contender` name contains it; `--test` runs a few operations only.
//!
//! Each row: 2 threads x 200,000 timed operations after 20,000 untimed ones, `Instant` around
//! each (its own cost, about 20 ns on the reference machine, is in every figure). The last
//! column is the share of the threads' time spent waiting for a CPU taken by other load.

use concord_benches::contenders::{Concord, GlobalMutex, MutexPerAccount, RustStm};
use concord_benches::latency::{self, Percentiles};
use concord_benches::sched::CpuTime;
use concord_benches::workload::{self, Spec, W4, W5, W6, W7};
use concord_benches::{Bank, XorShift};

/// How many operations each thread runs, untimed then timed.
#[derive(Clone, Copy, Debug)]
struct Size {
    warmup: usize,
    timed: usize,
}

/// Runs `$f::<B>(size, filter, spec, workload::$op::<B>)` for every contender `B`.
macro_rules! each_contender {
    ($f:ident($size:expr, $filter:expr, $spec:expr, $op:ident)) => {{
        $f::<Concord, _, _>($size, $filter, $spec, workload::$op::<Concord>);
        $f::<GlobalMutex, _, _>($size, $filter, $spec, workload::$op::<GlobalMutex>);
        $f::<MutexPerAccount, _, _>($size, $filter, $spec, workload::$op::<MutexPerAccount>);
        $f::<RustStm, _, _>($size, $filter, $spec, workload::$op::<RustStm>);
    }};
}

fn row<B, R, F>(size: Size, filter: &str, spec: Spec, op: F)
where
    B: Bank,
    F: Fn(&B, &mut XorShift) -> R + Sync,
{
    let id = format!("{}/{}", spec.group, B::NAME);
    if !id.contains(filter) {
        return;
    }
    let bank = spec.bank::<B>();
    let mut rngs = spec.rngs();
    let cpu = CpuTime::recorded();
    let mut samples = latency::sample(&bank, &mut rngs, size.warmup, size.timed, op);
    let waited = CpuTime::recorded().since(&cpu).wait_fraction();
    let p = Percentiles::of(&mut samples);
    println!(
        "{id:<36} {:>9} {:>9} {:>9} {:>11} {:>9} {:>7.1}%",
        p.count,
        p.p50,
        p.p99,
        p.p999,
        p.max,
        100.0 * waited
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test_mode = args.iter().any(|a| a == "--test");
    let filter = args.iter().find(|a| !a.starts_with('-')).map_or("", String::as_str);
    let size = if test_mode {
        Size { warmup: 10, timed: 100 }
    } else {
        Size { warmup: 20_000, timed: 200_000 }
    };
    println!(
        "{:<36} {:>9} {:>9} {:>9} {:>11} {:>9} {:>8}",
        "latency (ns per operation)", "ops", "p50", "p99", "p99.9", "max", "CPU wait"
    );
    each_contender!(row(size, filter, W4, transfer));
    each_contender!(row(size, filter, W5, transfer));
    each_contender!(row(size, filter, W6, increment_first));
    each_contender!(row(size, filter, W7, sum_or_transfer));
}
