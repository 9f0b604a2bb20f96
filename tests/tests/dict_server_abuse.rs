//! Protocol abuse: malformed RESP, absurd declared lengths, binary garbage, slow and
//! half-open clients. Each gets Redis's protocol error (and a closed connection where
//! Redis closes it); other clients keep being served, with their data intact.

use std::time::Duration;

use concord_examples::dict::client::Client;
use concord_examples::dict::{Background, Config};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn server(max_bulk_len: usize) -> Background {
    Background::start(Config { port: 0, threads: 2, max_bulk_len, ..Config::default() })
        .expect("start dict-server")
}

/// Sends `input`, closes the writing half, and returns everything the server sent back
/// before closing.
fn exchange(dict: &Background, input: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(dict.addr()).unwrap();
    c.send_raw(input).unwrap();
    c.shutdown_write().unwrap();
    c.read_to_end().unwrap()
}

/// A well-behaved client whose data must survive.
/// `count` is how many checks this client made so far (its counter's expected value).
fn check_bystander(c: &mut Client, count: &mut usize) {
    *count += 1;
    assert_eq!(c.call(&["GET", "precious"]).unwrap(), b"$4\r\ndata\r\n");
    assert_eq!(c.call(&["INCR", "bystander"]).unwrap(), format!(":{count}\r\n").into_bytes());
}

#[test]
fn malformed_requests_get_protocol_errors_and_others_are_unaffected() {
    let dict = server(1024);
    let mut good = Client::connect(dict.addr()).unwrap();
    assert_eq!(good.call(&["SET", "precious", "data"]).unwrap(), b"+OK\r\n");
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"*1\r\n$abc\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n".to_vec()),
        (b"*1\r\n$1025\r\n".to_vec(), b"-ERR Protocol error: invalid bulk length\r\n".to_vec()),
        (
            b"*1\r\n$99999999999999999999\r\n".to_vec(),
            b"-ERR Protocol error: invalid bulk length\r\n".to_vec(),
        ),
        (
            b"*2147483648\r\n".to_vec(),
            b"-ERR Protocol error: invalid multibulk length\r\n".to_vec(),
        ),
        (b"*two\r\n".to_vec(), b"-ERR Protocol error: invalid multibulk length\r\n".to_vec()),
        (b"*1\r\n+PING\r\n".to_vec(), b"-ERR Protocol error: expected '$', got '+'\r\n".to_vec()),
        (
            b"ECHO \"unterminated\r\n".to_vec(),
            b"-ERR Protocol error: unbalanced quotes in request\r\n".to_vec(),
        ),
        // Valid requests before the error are answered first.
        (
            b"PING\r\n*1\r\n$x\r\n".to_vec(),
            b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n".to_vec(),
        ),
        // A bulk of exactly the limit is accepted.
        (
            [b"*2\r\n$4\r\nECHO\r\n$1024\r\n".as_slice(), &[b'z'; 1024], b"\r\n"].concat(),
            [b"$1024\r\n".as_slice(), &[b'z'; 1024], b"\r\n"].concat(),
        ),
    ];
    let mut checks = 0;
    for (input, expected) in &cases {
        let got = exchange(&dict, input);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "input {:?}",
            String::from_utf8_lossy(&input[..input.len().min(40)])
        );
        check_bystander(&mut good, &mut checks);
    }
    dict.shutdown().unwrap();
}

#[test]
fn binary_garbage_is_answered_or_refused_never_crashes() {
    let dict = server(64 * 1024);
    let mut good = Client::connect(dict.addr()).unwrap();
    assert_eq!(good.call(&["SET", "precious", "data"]).unwrap(), b"+OK\r\n");
    let seed = concord_tests::seed("dict_server_abuse::garbage");
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut checks = 0;
    for _ in 0..40 {
        let len = rng.gen_range(1..3000);
        let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let got = exchange(&dict, &garbage);
        // Whatever arrived is well-formed RESP: errors (unknown command, protocol error)
        // or replies to whatever commands the bytes happened to spell.
        assert!(
            got.is_empty()
                || got[0] == b'-'
                || got[0] == b'+'
                || got[0] == b'$'
                || got[0] == b':'
                || got[0] == b'*',
            "{got:?}"
        );
        check_bystander(&mut good, &mut checks);
    }
    // An inline line that never ends is cut off at 64 KiB.
    let got = exchange(&dict, &vec![b'g'; 70 * 1024]);
    assert_eq!(got, b"-ERR Protocol error: too big inline request\r\n");
    // Garbage that spells an unknown command gets Redis's text, and the connection stays.
    let mut c = Client::connect(dict.addr()).unwrap();
    c.send_raw(b"\x01\x02\xff junk\r\n").unwrap();
    let reply = c.read_reply().unwrap();
    assert!(
        reply.starts_with(b"-ERR unknown command '\x01\x02"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(c.call(&["PING"]).unwrap(), b"+PONG\r\n");
    check_bystander(&mut good, &mut checks);
    dict.shutdown().unwrap();
}

#[test]
fn slow_and_half_open_clients_do_not_hold_up_others() {
    let dict = server(1024 * 1024);
    let mut good = Client::connect(dict.addr()).unwrap();
    assert_eq!(good.call(&["SET", "precious", "data"]).unwrap(), b"+OK\r\n");
    // A half-open client: a partial request, then silence (it never sends the rest).
    let mut stalled = Client::connect(dict.addr()).unwrap();
    stalled.send_raw(b"*3\r\n$3\r\nSET\r\n$8\r\nprecious\r\n$100\r\nabc").unwrap();
    // A slow client: one byte at a time.
    let mut slow = Client::connect(dict.addr()).unwrap();
    let request = concord_examples::dict::client::encode_request(&["ECHO", "slowly"]);
    let mut checks = 0;
    for (i, b) in request.iter().enumerate() {
        slow.send_raw(&[*b]).unwrap();
        if i % 5 == 0 {
            check_bystander(&mut good, &mut checks);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(slow.read_reply().unwrap(), b"$6\r\nslowly\r\n");
    // The stalled client's partial SET was never applied; when it half-closes, the server
    // drops the partial request and closes without a reply.
    assert_eq!(good.call(&["GET", "precious"]).unwrap(), b"$4\r\ndata\r\n");
    stalled.shutdown_write().unwrap();
    assert_eq!(stalled.read_to_end().unwrap(), b"");
    // A client that half-closes after complete requests still gets every reply.
    let got = exchange(&dict, b"PING\r\n*2\r\n$3\r\nGET\r\n$8\r\nprecious\r\n");
    assert_eq!(got, b"+PONG\r\n$4\r\ndata\r\n");
    // A client that sends a huge pipeline and reads nothing for a while does not stall
    // the others.
    let mut flood = Client::connect(dict.addr()).unwrap();
    let mut batch = Vec::new();
    for _ in 0..5_000 {
        batch.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$8\r\nprecious\r\n");
    }
    flood.send_raw(&batch).unwrap();
    check_bystander(&mut good, &mut checks);
    for _ in 0..5_000 {
        assert_eq!(flood.read_reply().unwrap(), b"$4\r\ndata\r\n");
    }
    dict.shutdown().unwrap();
}
