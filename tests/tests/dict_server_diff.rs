//! Differential tests of `dict-server` against a real `redis-server` (Debian's 7.0): the
//! same seeded random command sequences go to both, and every reply must match byte for
//! byte. The only normalization: replies whose order Redis does not reproduce from run
//! to run (`KEYS`, and `SMEMBERS` of a set Redis holds as a hash table: both follow a
//! hash with a per-process random seed) are compared as sorted multisets of elements;
//! `SMEMBERS` of a set Redis holds as an intset (numeric order) is compared byte for byte.
//! Scripted scenarios with several clients compare `WATCH` and the blocking pops the same
//! way.
//!
//! Needs `redis-server` on the `PATH` (`apt-get install -y redis-server`); without it the
//! tests fail, saying so.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use concord_examples::dict::client::Client;
use concord_examples::dict::{Background, Config};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A `redis-server` started for one test on a free port, killed on drop.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let found = Command::new("redis-server").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "redis-server is not installed: the differential tests need it \
             (apt-get install -y redis-tools redis-server; .ci/run does this)"
        );
        // The free port is found by binding port 0 and letting it go, so another server
        // (another test's) may take it first: then redis-server exits, and we try again.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().expect("poll redis-server").is_some() {
                    break;
                }
                if let Ok(mut c) = Client::connect(("127.0.0.1", port)) {
                    // Our redis-server answered, not another server that took the port.
                    let info = c.call(&["INFO", "server"]).unwrap_or_default();
                    let pid = format!("process_id:{}\r", child.id());
                    if String::from_utf8_lossy(&info).contains(&pid) {
                        return RedisServer { child, port };
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "redis-server did not start listening on {port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server exited at start ten times (no free port?)");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dict_server() -> Background {
    Background::start(Config { port: 0, threads: 2, ..Config::default() })
        .expect("start dict-server")
}

/// Splits the elements of a flat array reply of bulk strings (for unordered replies).
fn sorted_elements(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = raw.splitn(2, |&b| b == b'\n').nth(1).unwrap_or(&[]);
    while !rest.is_empty() {
        let nl = rest.iter().position(|&b| b == b'\n').unwrap();
        let len: usize = std::str::from_utf8(&rest[1..nl - 1]).unwrap().parse().unwrap();
        out.push(rest[..nl + 1 + len + 2].to_vec());
        rest = &rest[nl + 1 + len + 2..];
    }
    out.sort();
    out
}

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4", "k5"];
const VALUES: &[&str] =
    &["", "0", "1", "-7", "42", "9223372036854775807", "abc", "x y", "3.5", "007", "a\r\nb"];
const SCORES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2.5",
    "0.1",
    "0.2",
    "1e3",
    "-inf",
    "+inf",
    "abc",
    "1.5e-7",
    "100000000000000000000",
];
/// Set and sorted-set members: integers (an all-integer set is an intset in Redis, listed
/// in numeric order) and strings.
const MEMBERS: &[&str] = &["m0", "m1", "m2", "m3", "m4", "0", "1", "-1", "7", "42", "-300", "007"];
/// Members of the set `iset`.
const SET_INTS: &[&str] =
    &["0", "1", "-1", "7", "42", "-300", "100", "5", "12", "9999", "-2", "3", "65536", "-70000"];
const INTS: &[&str] =
    &["0", "1", "-1", "2", "-3", "10", "x", "9223372036854775807", "-9223372036854775808", "1.5"];

/// A random command over a small keyspace, mixing every supported family (the blocking
/// pops with timeouts short enough to pass), wrong types, bad numbers and wrong arities.
fn random_command(rng: &mut SmallRng) -> Vec<String> {
    let pick = |rng: &mut SmallRng, xs: &[&str]| xs[rng.gen_range(0..xs.len())].to_owned();
    let k = pick(rng, KEYS);
    let v = pick(rng, VALUES);
    let i = pick(rng, INTS);
    let s = pick(rng, SCORES);
    let f = format!("f{}", rng.gen_range(0..4));
    let m = pick(rng, MEMBERS);
    let cmd: Vec<String> = match rng.gen_range(0..72) {
        0 => vec!["SET".into(), k, v],
        1 => vec!["SET".into(), k, v, "NX".into()],
        2 => vec!["SET".into(), k, v, "XX".into(), "GET".into()],
        3 => vec![
            "SET".into(),
            k,
            v,
            "EX".into(),
            pick(rng, &["x", "0", "-1", "1000", "100", "1.5"]),
        ],
        4 => vec!["SET".into(), k, v, "KEEPTTL".into()],
        5 => vec!["GET".into(), k],
        6 => vec!["GETSET".into(), k, v],
        7 => vec!["MGET".into(), k, pick(rng, KEYS), pick(rng, KEYS)],
        8 => vec!["MSET".into(), k, v, pick(rng, KEYS), pick(rng, VALUES)],
        9 => vec!["MSETNX".into(), k, v, pick(rng, KEYS), pick(rng, VALUES)],
        10 => vec!["INCR".into(), k],
        11 => vec!["INCRBY".into(), k, i],
        12 => vec!["DECR".into(), k],
        13 => vec!["DECRBY".into(), k, i],
        14 => vec!["APPEND".into(), k, v],
        15 => vec!["STRLEN".into(), k],
        16 => vec!["LPUSH".into(), k, v, pick(rng, VALUES)],
        17 => vec!["RPUSH".into(), k, v],
        18 => vec!["LPOP".into(), k],
        19 => vec!["RPOP".into(), k, i],
        20 => vec!["LRANGE".into(), k, i, pick(rng, INTS)],
        21 => vec!["LLEN".into(), k],
        22 => vec!["LINDEX".into(), k, i],
        23 => vec![
            "LMOVE".into(),
            k,
            pick(rng, KEYS),
            pick(rng, &["LEFT", "RIGHT", "UP"]),
            pick(rng, &["LEFT", "RIGHT"]),
        ],
        24 => vec!["HSET".into(), k, f, v],
        25 => vec!["HSET".into(), k, f, v, format!("f{}", rng.gen_range(0..4)), pick(rng, VALUES)],
        26 => vec!["HGET".into(), k, f],
        27 => vec!["HDEL".into(), k, f, format!("f{}", rng.gen_range(0..4))],
        28 => vec!["HGETALL".into(), k],
        29 => vec!["HLEN".into(), k],
        30 => vec!["HEXISTS".into(), k, f],
        31 => vec!["HINCRBY".into(), k, f, i],
        32 => vec!["SADD".into(), k, m, pick(rng, MEMBERS)],
        33 => vec!["SREM".into(), k, m],
        34 => vec!["SMEMBERS".into(), k],
        35 => vec!["SISMEMBER".into(), k, m],
        36 => vec!["SCARD".into(), k],
        37 => vec!["ZADD".into(), k, s, m],
        38 => {
            let mut c = vec!["ZADD".into(), k];
            for opt in ["NX", "XX", "GT", "LT", "CH", "INCR"] {
                if rng.gen_bool(0.25) {
                    c.push(opt.into());
                }
            }
            c.push(s);
            c.push(m);
            c
        }
        39 => vec!["ZSCORE".into(), k, m],
        40 => vec!["ZRANGE".into(), k, i, pick(rng, INTS), "WITHSCORES".into()],
        41 => vec![
            "ZRANGE".into(),
            k,
            pick(rng, &["-inf", "(0", "1", "0.1"]),
            pick(rng, &["+inf", "(2.5", "2"]),
            "BYSCORE".into(),
        ],
        42 => vec!["ZRANGE".into(), k, "0".into(), "-1".into(), "REV".into(), "WITHSCORES".into()],
        43 => vec!["ZCARD".into(), k],
        44 => vec!["ZPOPMIN".into(), k],
        45 => vec!["ZPOPMIN".into(), k, i],
        46 => vec!["ZREM".into(), k, m, pick(rng, MEMBERS)],
        47 => vec!["TYPE".into(), k],
        48 => vec!["EXISTS".into(), k, pick(rng, KEYS)],
        49 => vec!["DEL".into(), k],
        50 => vec![
            "EXPIRE".into(),
            k,
            // Distinct long expiries: equal ones would make GT/LT depend on the millisecond.
            match rng.gen_range(0..4) {
                0 => "-1".into(),
                1 => "x".into(),
                _ => rng.gen_range(2000..1_000_000).to_string(),
            },
            pick(rng, &["NX", "XX", "GT", "LT"]),
        ],
        51 => vec!["TTL".into(), k],
        52 => vec!["PERSIST".into(), k],
        53 => vec!["KEYS".into(), pick(rng, &["*", "k[0-2]", "k?", "z*"])],
        54 => vec!["DBSIZE".into()],
        55 => vec!["ECHO".into(), v],
        56 => vec!["PING".into()],
        57 => vec![pick(rng, &["GET", "SET", "LPUSH", "HSET", "ZADD", "EXPIRE", "NOSUCHCMD"])],
        58 => vec!["SELECT".into(), pick(rng, &["0", "1", "16", "x"])],
        // BYLEX on a key whose members all have score 0 (the case Redis specifies).
        60 => vec!["ZADD".into(), "lex".into(), "0".into(), m],
        61 => {
            let bound =
                |rng: &mut SmallRng| pick(rng, &["-", "+", "[m1", "(m2", "[m4", "(m0", "m1"]);
            let mut c = vec!["ZRANGE".into(), "lex".into(), bound(rng), bound(rng), "BYLEX".into()];
            if rng.gen_bool(0.3) {
                c.push("REV".into());
            }
            if rng.gen_bool(0.3) {
                c.extend([
                    "LIMIT".into(),
                    pick(rng, &["0", "1", "-1"]),
                    pick(rng, &["1", "2", "-1"]),
                ]);
            }
            c
        }
        62 => vec!["RPOPLPUSH".into(), k, pick(rng, KEYS)],
        // Blocking pops: sent only where they do not block (see `would_block`).
        63 => vec!["BLPOP".into(), k, pick(rng, KEYS), "0.01".into()],
        64 => vec!["BRPOP".into(), k, "0.01".into()],
        65 => vec![
            "BLMOVE".into(),
            k,
            pick(rng, KEYS),
            pick(rng, &["LEFT", "RIGHT"]),
            pick(rng, &["LEFT", "RIGHT"]),
            "0.01".into(),
        ],
        66 => vec![
            "PEXPIRE".into(),
            k,
            match rng.gen_range(0..3) {
                0 => "0".into(),
                _ => rng.gen_range(2_000_000..1_000_000_000).to_string(),
            },
        ],
        67 if rng.gen_bool(0.1) => vec!["FLUSHDB".into()],
        // A set that is mostly an intset (listed in numeric order by Redis), until a
        // string member makes it a hash table for good.
        68 => {
            let mut c = vec!["SADD".into(), "iset".into()];
            for _ in 0..3 {
                c.push(if rng.gen_bool(0.97) { pick(rng, SET_INTS) } else { "x".into() });
            }
            c
        }
        69 => vec!["SMEMBERS".into(), "iset".into()],
        70 => vec!["SREM".into(), "iset".into(), pick(rng, SET_INTS), pick(rng, SET_INTS)],
        71 if rng.gen_bool(0.2) => vec!["DEL".into(), "iset".into()],
        _ => vec!["LPOP".into(), k, i],
    };
    cmd
}

fn unordered(cmd: &str) -> bool {
    cmd.eq_ignore_ascii_case("smembers") || cmd.eq_ignore_ascii_case("keys")
}

/// Whether the blocking pop `cmd` would block on the server behind `redis`, a client not
/// in `MULTI`: whether none of its keys exists (an existing key holds a non-empty list,
/// served at once, or another type, a `WRONGTYPE` error). A pop that blocks would time
/// out with the same reply from both servers, but Redis 7.0 notices timeouts only every
/// 100 ms or so: the time lost would make `TTL`s round differently.
fn would_block(redis: &mut Client, cmd: &[String]) -> bool {
    let keys = match cmd[0].as_str() {
        "BLPOP" | "BRPOP" => &cmd[1..cmd.len() - 1],
        "BLMOVE" => &cmd[1..2],
        _ => return false,
    };
    let mut exists = vec!["EXISTS".to_owned()];
    exists.extend(keys.iter().cloned());
    redis.call(&exists).unwrap() == b":0\r\n"
}

/// Whether Redis holds `key` (in the client's database) as an intset.
fn redis_intset(redis: &mut Client, key: &str) -> bool {
    redis.call(&["OBJECT", "ENCODING", key]).unwrap() == b"$6\r\nintset\r\n"
}

/// Runs `count` random commands against both servers and compares every reply. With
/// `multi`, the main client also opens `MULTI`/`EXEC`/`DISCARD` blocks and `WATCH`es keys,
/// and a second client's random commands (about one in five) come in between, touching
/// the watched keys.
fn compare(seed: u64, count: usize, multi: bool) {
    let redis = RedisServer::start();
    let dict = dict_server();
    let mut a = Client::connect(("127.0.0.1", redis.port)).unwrap();
    let mut b = Client::connect(dict.addr()).unwrap();
    let mut a2 = Client::connect(("127.0.0.1", redis.port)).unwrap();
    let mut b2 = Client::connect(dict.addr()).unwrap();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut history: Vec<String> = Vec::new();
    let mut in_multi = false;
    // SMEMBERS replies compared in order (Redis's intsets).
    let mut ordered_sets = 0;
    for n in 0..count {
        let other = multi && rng.gen_bool(0.2);
        let cmd = if other {
            let mut cmd = random_command(&mut rng);
            while would_block(&mut a2, &cmd) {
                cmd = random_command(&mut rng);
            }
            cmd
        } else if multi && rng.gen_bool(0.1) {
            vec![["MULTI", "EXEC", "DISCARD", "EXEC"][rng.gen_range(0..4)].to_owned()]
        } else if multi && rng.gen_bool(0.05) {
            // WATCH (an error inside MULTI), then commands of either client may touch
            // the key: Redis's EXEC then answers a null array.
            match rng.gen_range(0..3) {
                0 => vec!["UNWATCH".to_owned()],
                _ => vec!["WATCH".to_owned(), KEYS[rng.gen_range(0..KEYS.len())].to_owned()],
            }
        } else {
            // Inside MULTI, unordered replies would be nested in EXEC's: leave them out.
            let mut cmd = random_command(&mut rng);
            while (in_multi && unordered(&cmd[0])) || (!in_multi && would_block(&mut a, &cmd)) {
                cmd = random_command(&mut rng);
            }
            cmd
        };
        if !other {
            match cmd[0].as_str() {
                "MULTI" => in_multi = true,
                "EXEC" | "DISCARD" => in_multi = false,
                _ => {}
            }
        }
        history.push(format!("{}{cmd:?}", if other { "(other client) " } else { "" }));
        let (ca, cb) = if other { (&mut a2, &mut b2) } else { (&mut a, &mut b) };
        let ra = ca.call(&cmd).unwrap();
        let rb = cb.call(&cmd).unwrap();
        let same = if unordered(&cmd[0]) && ra.first() == Some(&b'*') {
            let exact = cmd[0] == "SMEMBERS" && redis_intset(ca, &cmd[1]);
            if exact {
                ordered_sets += 1;
                ra == rb
            } else {
                ra.first() == rb.first() && sorted_elements(&ra) == sorted_elements(&rb)
            }
        } else {
            ra == rb
        };
        assert!(
            same,
            "seed {seed}, command {n}: {cmd:?}\nredis:       {:?}\ndict-server: {:?}\nlast commands:\n{}",
            String::from_utf8_lossy(&ra),
            String::from_utf8_lossy(&rb),
            history[history.len().saturating_sub(15)..].join("\n")
        );
    }
    println!("seed {seed}: {count} commands, {ordered_sets} SMEMBERS of intsets compared in order");
    dict.shutdown().unwrap();
}

#[test]
fn random_commands_match_redis_byte_for_byte() {
    let seed = concord_tests::seed("dict_server_diff::commands");
    compare(seed, concord_tests::scaled(6000, 3000) as usize, false);
}

#[test]
fn random_multi_exec_blocks_match_redis_byte_for_byte() {
    let seed = concord_tests::seed("dict_server_diff::multi_exec");
    compare(seed, concord_tests::scaled(6000, 3000) as usize, true);
}

/// One step of a scripted scenario with several clients.
enum Step {
    /// Client `.0` sends a command and reads its reply.
    Call(usize, &'static [&'static str]),
    /// Like `Call`, but the reply is left out of the comparison (it is random).
    Quiet(usize, &'static [&'static str]),
    /// Client `.0` sends a blocking command; the next step runs once the server counts it
    /// among its blocked clients.
    Block(usize, &'static [&'static str]),
    /// Client `.0` sends these commands in one write, then reads every reply.
    Pipeline(usize, &'static [&'static [&'static str]]),
    /// Client `.0` reads one reply (of an earlier `Block`).
    Read(usize),
    /// Wait this many milliseconds (to let keys expire).
    Sleep(u64),
}

use Step::{Block, Call, Pipeline, Quiet, Read, Sleep};

/// Waits until the server at `control`'s end counts `n` blocked clients.
fn wait_blocked(control: &mut Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = String::from_utf8(control.call(&["INFO", "clients"]).unwrap()).unwrap();
        if info.contains(&format!("blocked_clients:{n}\r")) {
            return;
        }
        assert!(Instant::now() < deadline, "never reached {n} blocked clients:\n{info}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `steps` against the server at `addr` (flushed first) and returns the transcript.
fn run_scenario(addr: SocketAddr, steps: &[Step]) -> Vec<String> {
    let mut control = Client::connect(addr).unwrap();
    // The clients of the previous scenario are gone, or their server has noticed.
    wait_blocked(&mut control, 0);
    control.call(&["FLUSHALL"]).unwrap();
    let clients = steps
        .iter()
        .map(|s| match s {
            Call(c, _) | Quiet(c, _) | Block(c, _) | Pipeline(c, _) | Read(c) => c + 1,
            Sleep(_) => 0,
        })
        .max()
        .unwrap_or(0);
    let mut c: Vec<Client> = (0..clients).map(|_| Client::connect(addr).unwrap()).collect();
    let mut blocked = 0;
    let mut out = Vec::new();
    let show = |r: &[u8]| String::from_utf8_lossy(r).into_owned();
    for step in steps {
        match step {
            Call(i, cmd) => {
                let r = c[*i].call(cmd).unwrap();
                out.push(format!("{i}> {cmd:?} -> {}", show(&r)));
            }
            Quiet(i, cmd) => {
                c[*i].call(cmd).unwrap();
                out.push(format!("{i}> {cmd:?}"));
            }
            Block(i, cmd) => {
                c[*i].send(cmd).unwrap();
                blocked += 1;
                wait_blocked(&mut control, blocked);
                out.push(format!("{i}> {cmd:?} (blocked)"));
            }
            Pipeline(i, cmds) => {
                let mut bytes = Vec::new();
                for cmd in *cmds {
                    bytes.extend(concord_examples::dict::client::encode_request(cmd));
                }
                c[*i].send_raw(&bytes).unwrap();
                for cmd in *cmds {
                    let r = c[*i].read_reply().unwrap();
                    out.push(format!("{i}> {cmd:?} (pipelined) -> {}", show(&r)));
                }
            }
            Read(i) => {
                let r = c[*i].read_reply().unwrap_or_else(|e| {
                    panic!("client {i} got no reply ({e}), after:\n{}", out.join("\n"))
                });
                blocked -= 1;
                out.push(format!("{i}  <- {}", show(&r)));
            }
            Sleep(ms) => std::thread::sleep(Duration::from_millis(*ms)),
        }
    }
    out
}

/// Runs each scenario against both servers and compares the transcripts.
fn compare_scenarios(scenarios: &[(&str, &[Step])]) {
    let redis = RedisServer::start();
    let dict = dict_server();
    let redis_addr: SocketAddr = ([127, 0, 0, 1], redis.port).into();
    for (name, steps) in scenarios {
        let want = run_scenario(redis_addr, steps);
        let got = run_scenario(dict.addr(), steps);
        assert_eq!(got, want, "scenario {name:?}: dict-server (left) differs from Redis (right)");
    }
    dict.shutdown().unwrap();
}

/// `WATCH` with another client's writes, deletions, expiry and `FLUSHDB` in between: every
/// case where Redis's `EXEC` fails (or not), including a key that did not exist at `WATCH`
/// and was created and deleted (or created and expired) before `EXEC`.
#[test]
fn watch_with_other_clients_matches_redis() {
    const RUN: &[&str] = &["MULTI"];
    const PING: &[&str] = &["PING"];
    const EXEC: &[&str] = &["EXEC"];
    compare_scenarios(&[
        (
            "absent, created and deleted by another client",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "1"]),
                Call(1, &["DEL", "k"]),
                Call(0, RUN),
                Call(0, &["GET", "k"]),
                Call(0, EXEC),
            ],
        ),
        (
            "absent, created and deleted by the same client",
            &[
                Call(0, &["WATCH", "k"]),
                Call(0, &["SET", "k", "1"]),
                Call(0, &["DEL", "k"]),
                Call(0, RUN),
                Call(0, &["GET", "k"]),
                Call(0, EXEC),
            ],
        ),
        (
            "absent, a list created and popped empty",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["RPUSH", "k", "x"]),
                Call(1, &["LPOP", "k"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "absent, created with a deadline that passes",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "1", "PX", "100"]),
                Sleep(300),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "absent, created with a deadline in the past",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "1", "PXAT", "1"]),
                Call(0, RUN),
                Call(0, &["EXISTS", "k"]),
                Call(0, EXEC),
            ],
        ),
        (
            "absent, writes that change nothing",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["DEL", "k"]),
                Call(1, &["LPOP", "k"]),
                Call(1, &["SREM", "k", "x"]),
                Call(1, &["EXPIRE", "k", "10"]),
                Call(1, &["SET", "k", "1", "XX"]),
                Call(1, &["SET", "j", "1"]),
                Call(1, &["MSETNX", "k", "1", "j", "2"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "absent, FLUSHDB and FLUSHALL",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["FLUSHDB"]),
                Call(1, &["FLUSHALL"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, set to the same value",
            &[
                Call(1, &["SET", "k", "1"]),
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "1"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, deleted and set again",
            &[
                Call(1, &["SET", "k", "1"]),
                Call(0, &["WATCH", "k"]),
                Call(1, &["DEL", "k"]),
                Call(1, &["SET", "k", "1"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, expires before EXEC",
            &[
                Call(1, &["SET", "k", "1", "PX", "100"]),
                Call(0, &["WATCH", "k"]),
                Sleep(300),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, FLUSHDB",
            &[
                Call(1, &["SET", "k", "1"]),
                Call(0, &["WATCH", "k"]),
                Call(1, &["FLUSHDB"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, reads and refused writes",
            &[
                Call(1, &["SET", "k", "1", "EX", "100"]),
                Call(0, &["WATCH", "k"]),
                Call(1, &["GET", "k"]),
                Call(1, &["LPUSH", "k", "1"]),
                Call(1, &["EXPIRE", "k", "100", "NX"]),
                Call(1, &["EXPIRE", "k", "50", "GT"]),
                Call(1, &["SET", "k", "2", "NX"]),
                Call(1, &["SET", "k", "2", "EX", "0"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, PERSIST",
            &[
                Call(1, &["SET", "k", "1", "EX", "100"]),
                Call(0, &["WATCH", "k"]),
                Call(1, &["PERSIST", "k"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "live, writes that leave the value as it was",
            &[
                Call(1, &["SADD", "s", "a"]),
                Call(1, &["ZADD", "z", "1", "m"]),
                Call(1, &["HSET", "h", "f", "v"]),
                Call(1, &["RPUSH", "l", "a"]),
                Call(0, &["WATCH", "s", "z", "l"]),
                Call(1, &["SADD", "s", "a"]),
                Call(1, &["ZADD", "z", "1", "m"]),
                Call(1, &["LPOP", "l", "0"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
                Call(0, &["WATCH", "h"]),
                Call(1, &["HSET", "h", "f", "v"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "expired at WATCH, then set",
            &[
                Call(1, &["SET", "k", "1", "PX", "50"]),
                Sleep(200),
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "2"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "expired at WATCH, then deleted or flushed",
            &[
                Call(1, &["SET", "k", "1", "PX", "50"]),
                Call(1, &["SET", "j", "1", "PX", "50"]),
                Sleep(200),
                Call(0, &["WATCH", "k", "j"]),
                Call(1, &["DEL", "k"]),
                Call(1, &["FLUSHDB"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "databases",
            &[
                Call(1, &["SET", "k", "1"]),
                Call(0, &["WATCH", "k"]),
                Call(1, &["SELECT", "1"]),
                Call(1, &["SET", "k", "2"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
                Call(0, &["SELECT", "1"]),
                Call(0, &["WATCH", "k"]),
                Call(0, &["SELECT", "0"]),
                Call(1, &["SET", "k", "3"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "watching again, UNWATCH, and EXEC ending the watches",
            &[
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "1"]),
                Call(0, &["WATCH", "k"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
                Call(0, &["WATCH", "k"]),
                Call(1, &["SET", "k", "2"]),
                Call(0, &["UNWATCH"]),
                Call(0, &["WATCH", "k"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
                Call(1, &["SET", "k", "3"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
                Call(0, &["WATCH", "k"]),
                Call(0, RUN),
                Call(0, &["NOSUCHCOMMAND"]),
                Call(0, EXEC),
                Call(1, &["SET", "k", "4"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
        (
            "a watched key created by a served blocked client",
            &[
                Call(0, &["WATCH", "dst"]),
                Block(1, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]),
                Call(2, &["RPUSH", "src", "x"]),
                Read(1),
                Call(2, &["DEL", "dst"]),
                Call(0, RUN),
                Call(0, PING),
                Call(0, EXEC),
            ],
        ),
    ]);
}

/// The orders Redis fixes for small collections: an intset's members in numeric order
/// (an intset stays one when `SPOP` leaves a few members), a small hash's fields in
/// insertion order.
#[test]
fn small_collection_orders_match_redis() {
    // The largest intset: 512 members (added in descending order).
    let sadd_512: Vec<&'static str> = ["SADD", "big"]
        .into_iter()
        .chain((0..512).rev().map(|i| &*Box::leak(format!("{}", i * 7 - 1000).into_boxed_str())))
        .collect();
    let sadd_512: &'static [&'static str] = Box::leak(sadd_512.into_boxed_slice());
    compare_scenarios(&[
        ("512 integers: still an intset", &[Call(0, sadd_512), Call(0, &["SMEMBERS", "big"])]),
        (
            "an intset",
            &[
                Call(0, &["SADD", "s", "5", "-3", "10", "2", "9223372036854775807"]),
                Call(0, &["SADD", "s", "-9223372036854775808", "0", "65536", "-70000"]),
                Call(0, &["SREM", "s", "10"]),
                Call(0, &["SMEMBERS", "s"]),
            ],
        ),
        (
            "an intset after SPOP",
            &[
                Call(0, &["SADD", "s", "10", "20", "30", "40", "50"]),
                Quiet(0, &["SPOP", "s", "4"]),
                Call(0, &["SADD", "s", "300", "-5", "7", "100", "2"]),
                Quiet(0, &["SREM", "s", "10", "20", "30", "40", "50"]),
                Call(0, &["SMEMBERS", "s"]),
                Quiet(0, &["SPOP", "s"]),
                Call(0, &["SCARD", "s"]),
            ],
        ),
        (
            "a small hash",
            &[
                Call(0, &["HSET", "h", "b", "1", "a", "2", "c", "3"]),
                Call(0, &["HDEL", "h", "a"]),
                Call(0, &["HSET", "h", "a", "4", "b", "5"]),
                Call(0, &["HINCRBY", "h", "z", "1"]),
                Call(0, &["HGETALL", "h"]),
            ],
        ),
    ]);
}

/// Blocking pops against pushes from other clients: a push serves the blocked clients
/// before any later command runs (a `LPOP` right after the push finds nothing), in the
/// order they blocked, from the end each asked for; `MULTI` blocks are served after their
/// `EXEC`; `BLMOVE` chains into clients blocked on its destination.
#[test]
fn blocking_pops_with_other_clients_match_redis() {
    compare_scenarios(&[
        (
            "a LPOP right after the push does not take the blocked client's element",
            &[
                Block(0, &["BLPOP", "k", "0"]),
                Pipeline(1, &[&["RPUSH", "k", "x"], &["LPOP", "k"], &["LLEN", "k"]]),
                Read(0),
                Block(0, &["BRPOP", "k", "0"]),
                Call(1, &["RPUSH", "k", "y"]),
                Call(2, &["RPOP", "k"]),
                Read(0),
                Block(0, &["BLMOVE", "k", "d", "LEFT", "LEFT", "0"]),
                Pipeline(1, &[&["LPUSH", "k", "z"], &["LRANGE", "k", "0", "-1"]]),
                Read(0),
                Call(1, &["LRANGE", "d", "0", "-1"]),
            ],
        ),
        (
            "one push, two blocked clients, both ends",
            &[
                Block(0, &["BLPOP", "k", "0"]),
                Block(1, &["BRPOP", "k", "0"]),
                Pipeline(2, &[&["RPUSH", "k", "x", "y", "z"], &["LRANGE", "k", "0", "-1"]]),
                Read(0),
                Read(1),
            ],
        ),
        (
            "a MULTI block is served after EXEC",
            &[
                Block(0, &["BLPOP", "k", "0"]),
                Call(1, &["MULTI"]),
                Call(1, &["RPUSH", "k", "a"]),
                Call(1, &["LPOP", "k"]),
                Call(1, &["RPUSH", "k", "b"]),
                Call(1, &["DEL", "k"]),
                Call(1, &["EXEC"]),
                Call(1, &["MULTI"]),
                Call(1, &["RPUSH", "k", "c"]),
                Call(1, &["RPUSH", "k", "d"]),
                Call(1, &["EXEC"]),
                Read(0),
                Call(1, &["LRANGE", "k", "0", "-1"]),
            ],
        ),
        (
            "keys served in the order they were created",
            &[
                Block(0, &["BLPOP", "k1", "k2", "0"]),
                Call(1, &["MULTI"]),
                Call(1, &["RPUSH", "k2", "b"]),
                Call(1, &["RPUSH", "k1", "a"]),
                Call(1, &["EXEC"]),
                Read(0),
                Call(1, &["LRANGE", "k1", "0", "-1"]),
                Call(1, &["LRANGE", "k2", "0", "-1"]),
            ],
        ),
        (
            "LMOVE and BLMOVE into a key with a blocked client",
            &[
                Block(0, &["BLPOP", "k", "0"]),
                Call(1, &["RPUSH", "s", "1", "2"]),
                Call(1, &["LMOVE", "s", "k", "LEFT", "LEFT"]),
                Read(0),
                Block(0, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]),
                Block(1, &["BLPOP", "dst", "0"]),
                Pipeline(2, &[&["RPUSH", "src", "x"], &["EXISTS", "src", "dst"]]),
                Read(0),
                Read(1),
            ],
        ),
        (
            "BLMOVE rotating one list, then a BLPOP behind it",
            &[
                Block(0, &["BLMOVE", "k", "k", "LEFT", "RIGHT", "0"]),
                Block(1, &["BLPOP", "k", "0"]),
                Pipeline(2, &[&["RPUSH", "k", "x"], &["LRANGE", "k", "0", "-1"]]),
                Read(0),
                Read(1),
            ],
        ),
        (
            "a blocked BLMOVE whose destination holds a string",
            &[
                Block(0, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"]),
                Block(1, &["BLPOP", "src", "0"]),
                Call(2, &["SET", "dst", "str"]),
                Pipeline(2, &[&["RPUSH", "src", "x"], &["LRANGE", "src", "0", "-1"]]),
                Read(0),
                Read(1),
            ],
        ),
        (
            "a key that holds a string while a client is blocked on it",
            &[
                Block(0, &["BLPOP", "k", "0"]),
                Call(1, &["SET", "k", "s"]),
                Call(1, &["DEL", "k"]),
                Call(1, &["RPUSH", "k", "x"]),
                Read(0),
            ],
        ),
        (
            "a blocked client in another database",
            &[
                Call(0, &["SELECT", "3"]),
                Block(0, &["BLPOP", "k", "0"]),
                Call(1, &["RPUSH", "k", "db0"]),
                Call(1, &["MULTI"]),
                Call(1, &["SELECT", "3"]),
                Call(1, &["RPUSH", "k", "db3"]),
                Call(1, &["SELECT", "0"]),
                Call(1, &["EXEC"]),
                Read(0),
                Call(1, &["LRANGE", "k", "0", "-1"]),
            ],
        ),
    ]);
}

/// Malformed input gets the same bytes (error text, then the connection closed) from both.
#[test]
fn protocol_errors_match_redis_byte_for_byte() {
    let redis = RedisServer::start();
    let dict = dict_server();
    let cases: Vec<Vec<u8>> = vec![
        b"*1\r\n$abc\r\n".to_vec(),
        b"*x\r\n".to_vec(),
        b"*99999999\r\n".to_vec(),
        b"*9999999999\r\n".to_vec(),
        b"*1\r\n$-3\r\n".to_vec(),
        b"*1\r\n$600000000\r\n".to_vec(),
        b"*2\r\n$3\r\nGET\r\n:1\r\n".to_vec(),
        b"SET a \"b\r\n".to_vec(),
        b"PING\r\n*1\r\n$x\r\n".to_vec(),
        b"\x00\x01\x02 garbage\r\nPING\r\n".to_vec(),
        b"  \r\n\r\nPING\r\n".to_vec(),
        b"*0\r\n*-1\r\nPING\r\n".to_vec(),
        vec![b'x'; 70 * 1024],
        [b"*1\r\n$".as_slice(), &[b'9'; 70 * 1024]].concat(),
        b"GET 'a'b\r\n".to_vec(),
        b"\x01\x02\xff\xfe junk \x80\r\nPING\r\n".to_vec(),
        [b"x ".as_slice(), &[b'\xc3'; 300], b"\r\n"].concat(),
        b"*3\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$4\r\n\xffAB\r\r\n".to_vec(),
        b"*2\r\n$6\r\nCONFIG\r\n$3\r\n\xfe\n\x01\r\n".to_vec(),
        b"set k \"\\x41\\n\" \r\nget k\r\nQUIT\r\n".to_vec(),
    ];
    for case in cases {
        let mut a = Client::connect(("127.0.0.1", redis.port)).unwrap();
        let mut b = Client::connect(dict.addr()).unwrap();
        a.send_raw(&case).unwrap();
        b.send_raw(&case).unwrap();
        a.shutdown_write().unwrap();
        b.shutdown_write().unwrap();
        let ra = a.read_to_end().unwrap();
        let rb = b.read_to_end().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ra),
            String::from_utf8_lossy(&rb),
            "input {:?}",
            String::from_utf8_lossy(&case[..case.len().min(60)])
        );
    }
    dict.shutdown().unwrap();
}
