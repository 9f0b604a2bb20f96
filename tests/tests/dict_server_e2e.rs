//! End-to-end tests of `dict-server` with real clients: the `redis` crate, `redis-cli`,
//! and the built binary under SIGTERM (`redis-benchmark` runs in `dict_server_bench*.rs`).
//!
//! Needs `redis-cli` (`apt-get install -y redis-tools`); without it the tests that use it
//! fail, saying so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use concord_examples::dict::client::Client;
use concord_examples::dict::{Background, Config};
use concord_tests::{require_tool, run_within, scaled};
use redis::Commands;

fn server(config: Config) -> Background {
    Background::start(Config { port: 0, threads: 2, ..config }).expect("start dict-server")
}

fn default_server() -> Background {
    server(Config::default())
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    require_tool("redis-cli");
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "redis-cli {args:?} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redis_crate_commands_pipelines_and_transactions() {
    let dict = default_server();
    let client = redis::Client::open(format!("redis://{}/", dict.addr())).unwrap();
    let mut con = client.get_connection().unwrap();
    let _: () = con.set("greeting", "hello").unwrap();
    assert_eq!(con.get::<_, String>("greeting").unwrap(), "hello");
    assert_eq!(con.incr::<_, _, i64>("n", 5).unwrap(), 5);
    let _: () = con.rpush("l", &["a", "b", "c"]).unwrap();
    assert_eq!(con.lrange::<_, Vec<String>>("l", 0, -1).unwrap(), ["a", "b", "c"]);
    let added: i64 =
        redis::cmd("HSET").arg("h").arg("f1").arg("1").arg("f2").arg("2").query(&mut con).unwrap();
    assert_eq!(added, 2);
    assert_eq!(
        con.hgetall::<_, Vec<(String, String)>>("h").unwrap(),
        [("f1".into(), "1".into()), ("f2".into(), "2".into())]
    );
    let _: () = con.zadd_multiple("z", &[(2.5, "b"), (1.0, "a")]).unwrap();
    assert_eq!(
        con.zrange_withscores::<_, Vec<(String, f64)>>("z", 0, -1).unwrap(),
        [("a".into(), 1.0), ("b".into(), 2.5)]
    );
    let err = con.incr::<_, _, i64>("greeting", 1).unwrap_err();
    assert_eq!(err.detail(), Some("value is not an integer or out of range"), "{err:?}");
    let err = con.lpush::<_, _, i64>("greeting", "x").unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"));

    // A pipeline: many requests in one write, replies in order.
    let (a, b, c): (i64, i64, Option<String>) =
        redis::pipe().incr("p", 1).incr("p", 2).get("nothing").query(&mut con).unwrap();
    assert_eq!((a, b, c), (1, 3, None));
    // MULTI/EXEC through an atomic pipeline.
    let (x, y): (i64, i64) =
        redis::pipe().atomic().incr("t", 10).decr("t", 3).query(&mut con).unwrap();
    assert_eq!((x, y), (10, 7));
    dict.shutdown().unwrap();
}

/// `redis::transaction` is the WATCH/MULTI/EXEC retry loop: increments from several
/// threads through it are all counted, none lost to a race.
#[test]
fn watch_retry_loops_from_many_clients_lose_no_update() {
    let dict = default_server();
    let url = format!("redis://{}/", dict.addr());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
                for _ in 0..scaled(300, 100) {
                    let _: () = redis::transaction(&mut con, &["counter"], |con, pipe| {
                        let n: i64 = con.get::<_, Option<i64>>("counter")?.unwrap_or(0);
                        pipe.set("counter", n + 1).ignore().query(con)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    assert_eq!(con.get::<_, i64>("counter").unwrap(), 4 * scaled(300, 100) as i64);
    dict.shutdown().unwrap();
}

#[test]
fn redis_cli_session() {
    let dict = default_server();
    let port = dict.addr().port();
    assert_eq!(redis_cli(port, &["PING"]), "PONG\n");
    assert_eq!(redis_cli(port, &["SET", "k", "v"]), "OK\n");
    assert_eq!(redis_cli(port, &["GET", "k"]), "v\n");
    assert_eq!(redis_cli(port, &["RPUSH", "l", "a", "b"]), "2\n");
    assert_eq!(redis_cli(port, &["LRANGE", "l", "0", "-1"]), "a\nb\n");
    assert_eq!(redis_cli(port, &["DBSIZE"]), "2\n");
    assert!(redis_cli(port, &["NOSUCH"])
        .starts_with("ERR unknown command 'NOSUCH', with args beginning with:"));
    assert!(redis_cli(port, &["INFO"]).contains("redis_version:7.0.15"));
    let info = redis_cli(port, &["INFO", "stm"]);
    assert!(
        info.contains("stm_commits:")
            && info.contains("stm_aborts:")
            && info.contains("stm_retries:"),
        "{info}"
    );
    // A script through stdin, the way an interactive session sends commands.
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"MULTI\nINCR c\nINCR c\nEXEC\nTYPE l\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "OK\nQUEUED\nQUEUED\n1\n2\nlist\n");
    // --bigkeys walks the keyspace with SCAN, TYPE and the length commands.
    let big = redis_cli(port, &["--bigkeys"]);
    assert!(big.contains("list found '\"l\"' has 2 items"), "{big}");
    // --pipe sends raw RESP and ends with ECHO.
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--pipe"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = Vec::new();
    for i in 0..1000 {
        input.extend(concord_examples::dict::client::encode_request(&[
            "SET",
            &format!("pipe:{i}"),
            "x",
        ]));
    }
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("errors: 0, replies: 1000"), "{text}");
    dict.shutdown().unwrap();
}

#[test]
fn requirepass_and_maxclients_are_enforced_with_redis_texts() {
    let dict =
        server(Config { requirepass: Some("s3cret".into()), maxclients: 2, ..Config::default() });
    let mut c = Client::connect(dict.addr()).unwrap();
    assert_eq!(c.call(&["GET", "k"]).unwrap(), b"-NOAUTH Authentication required.\r\n");
    assert_eq!(
        c.call(&["AUTH", "wrong"]).unwrap(),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.call(&["AUTH", "s3cret"]).unwrap(), b"+OK\r\n");
    assert_eq!(c.call(&["SET", "k", "v"]).unwrap(), b"+OK\r\n");
    let mut second = Client::connect(dict.addr()).unwrap();
    assert_eq!(second.call(&["PING"]).unwrap(), b"-NOAUTH Authentication required.\r\n");
    // The third connection is refused with Redis's text, and closed.
    let mut third = Client::connect(dict.addr()).unwrap();
    assert_eq!(third.read_to_end().unwrap(), b"-ERR max number of clients reached\r\n");
    drop(second);
    // Once a slot is free again, a new client gets in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = Client::connect(dict.addr()).unwrap();
        match again.call(&["AUTH", "s3cret"]) {
            Ok(r) if r == b"+OK\r\n" => break,
            other => assert!(Instant::now() < deadline, "no slot freed: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.call(&["GET", "k"]).unwrap(), b"$1\r\nv\r\n");
    dict.shutdown().unwrap();
}

#[test]
fn keys_expire_on_access_and_by_the_active_sweep() {
    let dict = default_server();
    let mut c = Client::connect(dict.addr()).unwrap();
    for i in 0..50 {
        assert_eq!(c.call(&["SET", &format!("t{i}"), "v", "PX", "100"]).unwrap(), b"+OK\r\n");
    }
    assert_eq!(c.call(&["SET", "lazy", "v", "PX", "100"]).unwrap(), b"+OK\r\n");
    assert_eq!(c.call(&["SET", "stays", "v"]).unwrap(), b"+OK\r\n");
    assert_eq!(c.call(&["PEXPIRE", "stays", "100000"]).unwrap(), b":1\r\n");
    assert_eq!(c.call(&["PERSIST", "stays"]).unwrap(), b":1\r\n");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(c.call(&["GET", "lazy"]).unwrap(), b"$-1\r\n");
    assert_eq!(c.call(&["TTL", "lazy"]).unwrap(), b":-2\r\n");
    // The sweep removes the keys nobody touches: DBSIZE (which, as in Redis, counts keys
    // not yet swept) drops to the one key without a deadline.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.call(&["DBSIZE"]).unwrap() != b":1\r\n" {
        assert!(Instant::now() < deadline, "the sweep did not remove the expired keys");
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = String::from_utf8(c.call(&["INFO", "stats"]).unwrap()).unwrap();
    assert!(!info.contains("expired_keys:0\r"), "{info}");
    dict.shutdown().unwrap();
}

/// Collections of 100,000 elements, built one element per command in pipelines of 1,000
/// (each command a copy-on-write update of the whole value, so this is slow only if an
/// update costs O(n)): sizes, point reads, ranges, deletions in the middle, and the
/// insertion order of a hash's fields, against models.
#[test]
fn big_collections_stay_correct() {
    const N: usize = 100_000;
    const BATCH: usize = 1_000;
    let dict = default_server();
    let client = redis::Client::open(format!("redis://{}/", dict.addr())).unwrap();
    let mut con = client.get_connection().unwrap();
    // Elements in a scrambled order (7919 is prime, so i * 7919 % N is a permutation).
    let scrambled = |i: usize| i * 7919 % N;
    let fill = |con: &mut redis::Connection, cmd: &dyn Fn(usize) -> redis::Cmd| {
        for start in (0..N).step_by(BATCH) {
            let mut pipe = redis::pipe();
            for i in start..start + BATCH {
                pipe.add_command(cmd(i)).ignore();
            }
            let () = pipe.query(con).unwrap();
        }
    };
    fill(&mut con, &|i| redis::cmd("HSET").arg("h").arg(scrambled(i)).arg(i).clone());
    fill(&mut con, &|i| redis::cmd("SADD").arg("s").arg(scrambled(i)).clone());
    fill(&mut con, &|i| redis::cmd("ZADD").arg("z").arg(scrambled(i)).arg(format!("m{i}")).clone());
    // Even elements at the tail, odd ones at the head: the list reads odd numbers
    // downwards, then even numbers upwards.
    fill(&mut con, &|i| {
        redis::cmd(if i % 2 == 0 { "RPUSH" } else { "LPUSH" }).arg("l").arg(i).clone()
    });

    assert_eq!(con.hlen::<_, usize>("h").unwrap(), N);
    assert_eq!(con.scard::<_, usize>("s").unwrap(), N);
    assert_eq!(con.zcard::<_, usize>("z").unwrap(), N);
    assert_eq!(con.llen::<_, usize>("l").unwrap(), N);

    // Hash: overwrite some fields (they keep their place), delete others, then HGETALL
    // lists what is left in insertion order.
    for i in (0..N).step_by(10) {
        let _: () = con.hset("h", scrambled(i), "new").unwrap();
    }
    let gone: Vec<usize> = (0..N).step_by(7).map(scrambled).collect();
    assert_eq!(con.hdel::<_, _, usize>("h", &gone).unwrap(), gone.len());
    assert_eq!(con.hget::<_, _, Option<String>>("h", scrambled(7)).unwrap(), None);
    assert_eq!(con.hget::<_, _, String>("h", scrambled(8)).unwrap(), "8");
    assert_eq!(con.hget::<_, _, String>("h", scrambled(20)).unwrap(), "new");
    let want: Vec<(String, String)> = (0..N)
        .filter(|i| i % 7 != 0)
        .map(|i| (scrambled(i).to_string(), if i % 10 == 0 { "new".into() } else { i.to_string() }))
        .collect();
    assert_eq!(con.hgetall::<_, Vec<(String, String)>>("h").unwrap(), want);

    // Set.
    assert!(con.sismember::<_, _, bool>("s", 12_345).unwrap());
    assert!(!con.sismember::<_, _, bool>("s", N).unwrap());
    assert_eq!(con.srem::<_, _, usize>("s", &[1, 2, 3, N]).unwrap(), 3);
    assert_eq!(con.scard::<_, usize>("s").unwrap(), N - 3);
    let mut members: Vec<usize> = con.smembers("s").unwrap();
    members.sort_unstable();
    assert_eq!(members, [0].into_iter().chain(4..N).collect::<Vec<_>>());

    // Sorted set: member m{i} has score i * 7919 % N, so the rank-r member is the i with
    // i * 7919 % N == r.
    let rank: HashMap<usize, usize> = (0..N).map(|i| (scrambled(i), i)).collect();
    let by_rank = |r: usize| (format!("m{}", rank[&r]), r as f64);
    assert_eq!(
        con.zrange_withscores::<_, Vec<(String, f64)>>("z", 0, 2).unwrap(),
        (0..3).map(by_rank).collect::<Vec<_>>()
    );
    assert_eq!(
        con.zrange_withscores::<_, Vec<(String, f64)>>("z", 50_000, 50_004).unwrap(),
        (50_000..50_005).map(by_rank).collect::<Vec<_>>()
    );
    assert_eq!(
        con.zrange_withscores::<_, Vec<(String, f64)>>("z", -2, -1).unwrap(),
        (N - 2..N).map(by_rank).collect::<Vec<_>>()
    );
    let between: Vec<String> = redis::cmd("ZRANGE")
        .arg("z")
        .arg(70_000)
        .arg("(70003")
        .arg("BYSCORE")
        .query(&mut con)
        .unwrap();
    assert_eq!(between, (70_000..70_003).map(|r| by_rank(r).0).collect::<Vec<_>>());
    assert_eq!(con.zscore::<_, _, f64>("z", "m3").unwrap(), scrambled(3) as f64);
    assert_eq!(con.zrem::<_, _, usize>("z", by_rank(0).0).unwrap(), 1);
    let popped: Vec<(String, f64)> = con.zpopmin("z", 2).unwrap();
    assert_eq!(popped, (1..3).map(by_rank).collect::<Vec<_>>());
    assert_eq!(con.zcard::<_, usize>("z").unwrap(), N - 3);

    // List: odd numbers downwards from the head, then even numbers upwards.
    let at = |index: usize| if index < N / 2 { N - 1 - 2 * index } else { 2 * (index - N / 2) };
    for index in [0, 1, N / 2 - 1, N / 2, N / 2 + 1, 77_777, N - 1] {
        assert_eq!(
            con.lindex::<_, usize>("l", index as isize).unwrap(),
            at(index),
            "LINDEX {index}"
        );
    }
    assert_eq!(
        con.lrange::<_, Vec<usize>>("l", 49_990, 50_009).unwrap(),
        (49_990..50_010).map(at).collect::<Vec<_>>()
    );
    assert_eq!(
        con.lrange::<_, Vec<usize>>("l", -3, -1).unwrap(),
        (N - 3..N).map(at).collect::<Vec<_>>()
    );
    assert_eq!(con.lpop::<_, Option<usize>>("l", None).unwrap(), Some(at(0)));
    assert_eq!(con.rpop::<_, Option<usize>>("l", None).unwrap(), Some(at(N - 1)));
    assert_eq!(con.llen::<_, usize>("l").unwrap(), N - 2);
    dict.shutdown().unwrap();
}

/// The binary as users start it: it answers, and exits cleanly on SIGTERM.
#[test]
fn the_binary_serves_and_shuts_down_on_sigterm() {
    let bin = dict_server_binary();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(&bin)
        .args(["--port", &port.to_string(), "--threads", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start dict-server");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("listening on 127.0.0.1:"), "{line}");
    let mut c = Client::connect(("127.0.0.1", port)).unwrap();
    assert_eq!(c.call(&["SET", "k", "v"]).unwrap(), b"+OK\r\n");
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = run_within(Duration::from_secs(20), "dict-server exits on SIGTERM", move || {
        child.wait().unwrap()
    });
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(rest.contains("dict-server stopped"), "{rest}");
    // The open connection was closed by the shutdown.
    assert!(c.read_to_end().unwrap().is_empty());
}

/// The `dict-server` binary of this build profile, (re)built so that it is never stale
/// (a no-op when `cargo test` has just built it).
fn dict_server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test>
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "-q", "-p", "concord-examples", "--bin", "dict-server", "--target-dir"]);
    cmd.arg(target_dir);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    assert!(cmd.status().unwrap().success(), "cargo build of dict-server failed");
    let bin = profile_dir.join("dict-server");
    assert!(bin.exists(), "no dict-server binary at {}", bin.display());
    bin
}
