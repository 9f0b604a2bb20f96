//! Two-thread workloads W4-W7: throughput under rare and frequent conflicts, for each
//! contender (see `benches/README.md`). Run with
//! `cargo bench -p concord-benches --bench bank_2t`.
//!
//! Each sample spawns the threads, lines them up on a barrier and times them from there
//! (`workload::run_threads`), so criterion's time per iteration is the time per operation
//! of both threads together and its throughput is the system's. After each benchmark, a line
//! on stderr gives the share of time its threads waited for a CPU (other load on the host)
//! and, for an STM that keeps statistics, the abort rate (warm-up included).

use std::time::Duration;

use concord_benches::contenders::{Concord, GlobalMutex, MutexPerAccount, RustStm};
use concord_benches::probe::Probe;
use concord_benches::workload::{self, Spec, W4, W5, W6, W7};
use concord_benches::{Bank, XorShift};
use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, Criterion, Throughput};

/// Runs `$f::<B>(group, spec, workload::$op::<B>)` for every contender `B`.
macro_rules! each_contender {
    ($f:ident($g:expr, $spec:expr, $op:ident)) => {{
        $f::<Concord, _, _>($g, $spec, workload::$op::<Concord>);
        $f::<GlobalMutex, _, _>($g, $spec, workload::$op::<GlobalMutex>);
        $f::<MutexPerAccount, _, _>($g, $spec, workload::$op::<MutexPerAccount>);
        $f::<RustStm, _, _>($g, $spec, workload::$op::<RustStm>);
    }};
}

/// Benchmarks `op` on a fresh bank of contender `B`, on `spec.threads` threads.
fn threaded<B, R, F>(g: &mut BenchmarkGroup<'_, WallTime>, spec: Spec, op: F)
where
    B: Bank,
    F: Fn(&B, &mut XorShift) -> R + Sync,
{
    let bank = spec.bank::<B>();
    let mut rngs = spec.rngs();
    let probe = Probe::<B>::start(true);
    let mut ran = false;
    g.bench_function(B::NAME, |b| {
        ran = true;
        b.iter_custom(|iters| workload::run_threads(&bank, &mut rngs, iters, &op))
    });
    if ran {
        probe.finish(&format!("{}/{}", spec.group, B::NAME));
    }
}

fn run(c: &mut Criterion, spec: Spec, each: impl FnOnce(&mut BenchmarkGroup<'_, WallTime>)) {
    let mut g = c.benchmark_group(spec.group);
    g.throughput(Throughput::Elements(1));
    each(&mut g);
    g.finish();
}

fn w4(c: &mut Criterion) {
    run(c, W4, |g| each_contender!(threaded(g, W4, transfer)));
}

fn w5(c: &mut Criterion) {
    run(c, W5, |g| each_contender!(threaded(g, W5, transfer)));
}

fn w6(c: &mut Criterion) {
    run(c, W6, |g| each_contender!(threaded(g, W6, increment_first)));
}

fn w7(c: &mut Criterion) {
    run(c, W7, |g| each_contender!(threaded(g, W7, sum_or_transfer)));
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(20)
}

/// The criterion harness, in a private module so that the `pub fn` that
/// `criterion_group!` generates needs no doc comment.
mod harness {
    criterion::criterion_group! {
        name = benches;
        config = super::config();
        targets = super::w4, super::w5, super::w6, super::w7
    }
}
criterion_main!(harness::benches);
