//! Single-thread workloads W1-W3: the cost of one operation with no contention, for each
//! contender (see `benches/README.md`). Run with
//! `cargo bench -p concord-benches --bench bank_1t`.
//!
//! After each benchmark, a line on stderr gives the share of time the benchmark thread
//! waited for a CPU taken by other load.

use std::hint::black_box;
use std::time::Duration;

use concord_benches::contenders::{Concord, GlobalMutex, MutexPerAccount, RustStm};
use concord_benches::probe::Probe;
use concord_benches::workload::{self, Spec, W1, W2, W3};
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

/// Benchmarks `op` on a fresh bank of contender `B`, on the calling thread.
fn single<B, R, F>(g: &mut BenchmarkGroup<'_, WallTime>, spec: Spec, op: F)
where
    B: Bank,
    F: Fn(&B, &mut XorShift) -> R,
{
    let bank = spec.bank::<B>();
    let mut rng = XorShift::for_thread(0);
    let probe = Probe::<B>::start(false);
    let mut ran = false;
    g.bench_function(B::NAME, |b| {
        ran = true;
        b.iter(|| black_box(op(&bank, &mut rng)))
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

fn w1(c: &mut Criterion) {
    run(c, W1, |g| each_contender!(single(g, W1, read_first)));
}

fn w2(c: &mut Criterion) {
    run(c, W2, |g| each_contender!(single(g, W2, increment_first)));
}

fn w3(c: &mut Criterion) {
    run(c, W3, |g| each_contender!(single(g, W3, transfer)));
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
        targets = super::w1, super::w2, super::w3
    }
}
criterion_main!(harness::benches);
