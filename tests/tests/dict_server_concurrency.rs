//! Concurrency through `dict-server`: `MULTI`/`EXEC` transfers from many clients conserve
//! the total and every `EXEC` sees a consistent snapshot; blocked `BLPOP`s are served in
//! arrival order, by the push itself (no later `LPOP` takes their element), and none is
//! lost to timeouts or clients that hang up.

use std::time::{Duration, Instant};

use concord_examples::dict::client::Client;
use concord_examples::dict::{Background, Config};
use concord_tests::{run_within, scaled, seed};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn server() -> Background {
    Background::start(Config { port: 0, threads: 2, ..Config::default() })
        .expect("start dict-server")
}

fn int(reply: &[u8]) -> i64 {
    let s = std::str::from_utf8(reply).unwrap();
    s.trim_start_matches([':', '$'])
        .lines()
        .last()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{s:?}"))
}

/// The values of an array of bulk strings.
fn bulks(reply: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(reply);
    let lines: Vec<&str> = s.split("\r\n").collect();
    assert!(lines[0].starts_with('*'), "not an array: {s:?}");
    lines[1..]
        .chunks(2)
        .filter(|c| c.len() == 2 && c[0].starts_with('$'))
        .map(|c| c[1].to_owned())
        .collect()
}

const ACCOUNTS: usize = 8;
const START: i64 = 1000;

#[test]
fn multi_exec_transfers_conserve_the_total_and_exec_reads_are_consistent() {
    let dict = server();
    let addr = dict.addr();
    let mut setup = Client::connect(addr).unwrap();
    for a in 0..ACCOUNTS {
        setup.call(&["SET", &format!("acct:{a}"), &START.to_string()]).unwrap();
    }
    let total = START * ACCOUNTS as i64;
    let base = seed("dict_server_concurrency::transfers");
    let transfers = scaled(1500, 400);
    let workers: Vec<_> = (0..6)
        .map(|w| {
            std::thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(base + w);
                let mut c = Client::connect(addr).unwrap();
                for _ in 0..transfers {
                    let (from, to) = (rng.gen_range(0..ACCOUNTS), rng.gen_range(0..ACCOUNTS));
                    let amount = rng.gen_range(1..50).to_string();
                    // Pipelined: MULTI, two queued commands and EXEC in one write.
                    c.send(&["MULTI"]).unwrap();
                    c.send(&["DECRBY", &format!("acct:{from}"), &amount]).unwrap();
                    c.send(&["INCRBY", &format!("acct:{to}"), &amount]).unwrap();
                    c.send(&["EXEC"]).unwrap();
                    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
                    assert_eq!(c.read_reply().unwrap(), b"+QUEUED\r\n");
                    assert_eq!(c.read_reply().unwrap(), b"+QUEUED\r\n");
                    let exec = c.read_reply().unwrap();
                    assert!(exec.starts_with(b"*2\r\n:"), "{}", String::from_utf8_lossy(&exec));
                }
            })
        })
        .collect();
    // Readers: every EXEC of MGET (and every plain MGET: one command, one transaction)
    // sees a state where the total holds.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                let keys: Vec<String> = (0..ACCOUNTS).map(|a| format!("acct:{a}")).collect();
                let mut mget = vec!["MGET".to_owned()];
                mget.extend(keys.iter().cloned());
                let mut checks = 0;
                for i in 0..transfers {
                    let reply = if (i + r) % 2 == 0 {
                        c.send(&["MULTI"]).unwrap();
                        c.send(&mget).unwrap();
                        c.send(&["EXEC"]).unwrap();
                        c.read_reply().unwrap();
                        c.read_reply().unwrap();
                        let exec = c.read_reply().unwrap();
                        exec[4..].to_vec()
                    } else {
                        c.call(&mget).unwrap()
                    };
                    let sum: i64 = bulks(&reply).iter().map(|v| v.parse::<i64>().unwrap()).sum();
                    assert_eq!(
                        sum,
                        total,
                        "an inconsistent snapshot: {}",
                        String::from_utf8_lossy(&reply)
                    );
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    run_within(Duration::from_secs(120), "transfers", move || {
        for w in workers {
            w.join().unwrap();
        }
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
    });
    let mut sum = 0;
    for a in 0..ACCOUNTS {
        sum += int(&setup.call(&["GET", &format!("acct:{a}")]).unwrap());
    }
    assert_eq!(sum, total);
    let info = String::from_utf8(setup.call(&["INFO", "stm"]).unwrap()).unwrap();
    println!("{info}");
    dict.shutdown().unwrap();
}

/// Waits until the server reports `n` blocked clients.
fn wait_blocked(c: &mut Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = String::from_utf8(c.call(&["INFO", "clients"]).unwrap()).unwrap();
        if info.contains(&format!("blocked_clients:{n}\r")) {
            return;
        }
        assert!(Instant::now() < deadline, "never reached {n} blocked clients:\n{info}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn blpop_waiters_are_served_in_arrival_order_and_none_is_lost() {
    let dict = server();
    let addr = dict.addr();
    let mut control = Client::connect(addr).unwrap();
    let waiters = scaled(24, 12) as usize;
    // Each waiter blocks in turn (the next one starts once the previous is queued).
    let mut clients = Vec::new();
    for i in 0..waiters {
        let mut c = Client::connect(addr).unwrap();
        c.send(&["BLPOP", "other", "queue", "0"]).unwrap();
        wait_blocked(&mut control, i + 1);
        clients.push(c);
    }
    // Two of them hang up, and one more arrives with a short timeout that passes.
    let gone: Vec<usize> = vec![3, 7];
    for &g in gone.iter().rev() {
        drop(clients.remove(g));
    }
    wait_blocked(&mut control, waiters - gone.len());
    let mut late = Client::connect(addr).unwrap();
    assert_eq!(late.call(&["BLPOP", "queue", "0.05"]).unwrap(), b"*-1\r\n");
    wait_blocked(&mut control, waiters - gone.len());
    // One push per waiter, in several transactions; each item goes to the oldest waiter.
    let items: Vec<String> = (0..clients.len()).map(|i| format!("item{i}")).collect();
    for chunk in items.chunks(3) {
        let mut push = vec!["RPUSH", "queue"];
        push.extend(chunk.iter().map(String::as_str));
        control.call(&push).unwrap();
    }
    run_within(Duration::from_secs(60), "served waiters", move || {
        for (i, c) in clients.iter_mut().enumerate() {
            let reply = c.read_reply().unwrap();
            assert_eq!(
                bulks(&reply),
                ["queue".to_owned(), format!("item{i}")],
                "waiter {i} got the wrong item"
            );
        }
    });
    assert_eq!(control.call(&["LLEN", "queue"]).unwrap(), b":0\r\n");
    wait_blocked(&mut control, 0);
    dict.shutdown().unwrap();
}

/// As in Redis, a push hands its element to the blocked client before any later command
/// runs: neither a `LPOP` pipelined right behind the push (on the same connection, so it
/// runs before the blocked client's task could wake) nor one from a third client right
/// after the push's reply takes it. Timed-out waits racing with pushes lose nothing either.
#[test]
fn a_push_serves_the_blocked_client_before_any_later_pop() {
    let dict = server();
    let addr = dict.addr();
    let mut control = Client::connect(addr).unwrap();
    let mut pusher = Client::connect(addr).unwrap();
    let mut thief = Client::connect(addr).unwrap();
    let rounds = scaled(200, 50);
    run_within(Duration::from_secs(120), "pushes to blocked clients", move || {
        let mut waiter = Client::connect(addr).unwrap();
        for i in 0..rounds {
            let item = format!("item{i}");
            waiter.send(&["BLPOP", "q", "0"]).unwrap();
            wait_blocked(&mut control, 1);
            if i % 2 == 0 {
                pusher.send(&["RPUSH", "q", &item]).unwrap();
                pusher.send(&["LPOP", "q"]).unwrap();
                assert_eq!(pusher.read_reply().unwrap(), b":1\r\n");
                assert_eq!(
                    pusher.read_reply().unwrap(),
                    b"$-1\r\n",
                    "round {i}: a pipelined LPOP took the element pushed for the blocked client"
                );
            } else {
                assert_eq!(pusher.call(&["RPUSH", "q", &item]).unwrap(), b":1\r\n");
                assert_eq!(
                    thief.call(&["LPOP", "q"]).unwrap(),
                    b"$-1\r\n",
                    "round {i}: another client's LPOP took the element pushed for the blocked client"
                );
            }
            assert_eq!(bulks(&waiter.read_reply().unwrap()), ["q".to_owned(), item]);
        }
        wait_blocked(&mut control, 0);
        // Short timeouts racing with pushes: every item is either received or still in
        // the list, exactly once.
        let mut received = Vec::new();
        for i in 0..rounds {
            waiter.send(&["BLPOP", "r", "0.001"]).unwrap();
            pusher.call(&["RPUSH", "r", &format!("late{i}")]).unwrap();
            let reply = waiter.read_reply().unwrap();
            if reply != b"*-1\r\n" {
                received.push(bulks(&reply)[1].clone());
            }
        }
        received.extend(bulks(&control.call(&["LRANGE", "r", "0", "-1"]).unwrap()));
        received.sort();
        let mut want: Vec<String> = (0..rounds).map(|i| format!("late{i}")).collect();
        want.sort();
        assert_eq!(received, want, "an item was lost or duplicated");
    });
    dict.shutdown().unwrap();
}

/// Producers and consumers through BLPOP and BLMOVE at once: every item arrives exactly
/// once.
#[test]
fn blocking_pops_under_load_deliver_every_item_once() {
    let dict = server();
    let addr = dict.addr();
    let per_producer = scaled(300, 100) as usize;
    let (producers, consumers) = (3, 4);
    let total = producers * per_producer;
    let consumer_threads: Vec<_> = (0..consumers)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                let mut got = Vec::new();
                loop {
                    let item = if k % 2 == 0 {
                        let reply = c.call(&["BLPOP", "work", "2"]).unwrap();
                        if reply == b"*-1\r\n" {
                            return got;
                        }
                        bulks(&reply)[1].clone()
                    } else {
                        let reply = c
                            .call(&["BLMOVE", "work", &format!("done{k}"), "LEFT", "RIGHT", "2"])
                            .unwrap();
                        if reply == b"*-1\r\n" {
                            return got;
                        }
                        String::from_utf8_lossy(&reply).split("\r\n").nth(1).unwrap().to_owned()
                    };
                    got.push(item);
                }
            })
        })
        .collect();
    let producer_threads: Vec<_> = (0..producers)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr).unwrap();
                for i in 0..per_producer {
                    c.call(&["RPUSH", "work", &format!("{p}:{i}")]).unwrap();
                }
            })
        })
        .collect();
    let mut all = run_within(Duration::from_secs(120), "producers and consumers", move || {
        for p in producer_threads {
            p.join().unwrap();
        }
        consumer_threads.into_iter().flat_map(|c| c.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(all.len(), total, "items lost or duplicated");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), total, "an item was delivered twice");
    dict.shutdown().unwrap();
}
