//! `redis-benchmark` against `dict-server`: once with every test hitting one hot key per
//! command (no `-r`, the worst case for an optimistic STM), once with `-r 1000` (keys drawn
//! from 1000, collections up to 1000 elements). redis-benchmark ends a run (exiting
//! non-zero) on the first error reply; the tests also check that the output has no error
//! line and a result for every test. Needs `redis-benchmark` (`apt-get install -y
//! redis-tools`).

use std::process::Command;
use std::time::Duration;

use concord_examples::dict::{Background, Config};
use concord_tests::{require_tool, run_within, scaled};

fn benchmark(port: u16, extra: &[&str]) {
    require_tool("redis-benchmark");
    let n = scaled(20_000, 5_000).to_string();
    let mut args = vec![
        "-p",
        "",
        "-t",
        "ping,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange,mset",
        "-n",
        &n,
        "-q",
    ];
    let port = port.to_string();
    args[1] = &port;
    args.extend_from_slice(extra);
    let out = Command::new("redis-benchmark").args(&args).output().expect("run redis-benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "redis-benchmark {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let report: Vec<&str> =
        stdout.split(['\r', '\n']).filter(|l| l.contains("requests per second")).collect();
    println!("redis-benchmark {extra:?}:\n{}", report.join("\n"));
    for test in [
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "SADD",
        "HSET",
        "SPOP",
        "ZADD",
        "ZPOPMIN",
        "LRANGE_600",
        "MSET",
    ] {
        assert!(
            report.iter().any(|l| l.trim_start().starts_with(&format!("{test}:"))
                || l.trim_start().starts_with(&format!("{test} ("))),
            "no result for {test}:\n{stdout}"
        );
    }
    let lower = format!("{stdout}{stderr}").to_ascii_lowercase();
    assert!(!lower.contains("error"), "redis-benchmark reported an error:\n{stdout}\n{stderr}");
}

#[test]
fn redis_benchmark_on_hot_keys_runs_every_test_without_an_error() {
    let dict = Background::start(Config { port: 0, threads: 2, ..Config::default() })
        .expect("start dict-server");
    let port = dict.addr().port();
    run_within(Duration::from_secs(300), "redis-benchmark", move || benchmark(port, &[]));
    dict.shutdown().unwrap();
}

#[test]
fn redis_benchmark_with_random_keys_runs_every_test_without_an_error() {
    let dict = Background::start(Config { port: 0, threads: 2, ..Config::default() })
        .expect("start dict-server");
    let port = dict.addr().port();
    run_within(Duration::from_secs(300), "redis-benchmark", move || {
        benchmark(port, &["-r", "1000"])
    });
    dict.shutdown().unwrap();
}
