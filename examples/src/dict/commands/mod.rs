//! The command table and the commands that run inside a transaction.
//!
//! Every data command is a function `fn(&mut Cx, &mut Transaction, &[Vec<u8>]) -> Stm<Reply>`
//! run inside the connection's transaction: one `atomically` per command, or one for a
//! whole `MULTI`/`EXEC` block. A command checks everything that can fail (types, integers,
//! syntax) before it writes, so an error reply leaves no trace even inside `EXEC` (where, as
//! in Redis, the other commands of the block still run). Replies are built anew on every
//! attempt, so a re-run body produces the reply of the attempt that commits.
//!
//! Commands that act on the connection itself (`MULTI`, `EXEC`, `WATCH`, `AUTH`, `QUIT`,
//! the blocking pops outside `MULTI`, ...) are marked [`Kind::Connection`] and handled by
//! `server.rs`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use concord_stm::{Stm, Transaction};

use super::resp::{parse_i64, Reply};
use super::server::Shared;
use super::store::{now_ms, Bytes, Db, Store};

mod hashes;
mod keys;
pub(crate) mod lists;
mod server;
mod sets;
mod strings;
mod zsets;

pub use self::server::REDIS_VERSION;

/// What a command's handler works on: the store, the selected database, the time of the
/// attempt (expiry is decided against one clock reading per attempt) and the server's state.
#[derive(Debug)]
pub struct Cx<'a> {
    /// The keyspace.
    pub store: &'a Store,
    /// The selected database (`SELECT` inside `EXEC` changes it for the commands after it).
    pub db: usize,
    /// Milliseconds since the epoch, read once per attempt.
    pub now: u64,
    /// Counters and configuration (for `INFO`, `CONFIG`).
    pub shared: &'a Shared,
    /// The lists this attempt created, with their databases: the keys whose blocked
    /// clients `lists::serve_ready` serves at the end of the transaction.
    pub ready: Vec<(usize, Bytes)>,
}

impl<'a> Cx<'a> {
    /// The context of one attempt on database `db`, reading the clock now.
    pub fn new(shared: &'a Shared, db: usize) -> Self {
        Cx { store: &shared.store, db, now: now_ms(), shared, ready: Vec::new() }
    }

    /// The selected database.
    pub fn db(&self) -> &Db {
        self.store.db(self.db)
    }

    /// Records that this attempt created a list at `key` in the selected database.
    pub fn ready(&mut self, key: &[u8]) {
        self.ready.push((self.db, Arc::from(key)));
    }
}

/// A command handler.
pub type Handler = fn(&mut Cx<'_>, &mut Transaction<'_>, &[Vec<u8>]) -> Stm<Reply>;

/// How a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// In a transaction, through its handler.
    Data,
    /// By the connection (it changes connection state or may block).
    Connection,
}

/// A command's entry in the table.
#[derive(Debug)]
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis's arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub arity: i32,
    /// How it runs.
    pub kind: Kind,
    /// The handler of a [`Kind::Data`] command (or of a blocking pop run inside `EXEC`,
    /// where it does not block).
    pub handler: Option<Handler>,
    /// Redis's command flags, for `COMMAND`.
    pub flags: &'static [&'static str],
    /// First key, last key, step (for `COMMAND`).
    pub keys: (i32, i32, i32),
}

macro_rules! data {
    ($name:literal, $arity:expr, $f:expr, $flags:expr, $keys:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Data,
            handler: Some($f),
            flags: $flags,
            keys: $keys,
        }
    };
}
macro_rules! conn {
    ($name:literal, $arity:expr, $f:expr, $flags:expr, $keys:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Connection,
            handler: $f,
            flags: $flags,
            keys: $keys,
        }
    };
}

const W: &[&str] = &["write"];
const WF: &[&str] = &["write", "fast"];
const WD: &[&str] = &["write", "denyoom"];
const WDF: &[&str] = &["write", "denyoom", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const F: &[&str] = &["fast"];
const NONE: (i32, i32, i32) = (0, 0, 0);
const K1: (i32, i32, i32) = (1, 1, 1);
const KALL: (i32, i32, i32) = (1, -1, 1);

/// Every command the server knows.
pub static COMMANDS: &[Spec] = &[
    // Connection and server.
    data!("ping", -1, server::ping, F, NONE),
    data!("echo", 2, server::echo, F, NONE),
    conn!("quit", -1, None, &["allow_loading", "fast"], NONE),
    data!("select", 2, server::select, &["loading", "fast"], NONE),
    data!("dbsize", 1, server::dbsize, RF, NONE),
    data!("flushdb", -1, server::flushdb, W, NONE),
    data!("flushall", -1, server::flushall, W, NONE),
    data!("config", -2, server::config, &["admin"], NONE),
    data!("command", -1, server::command, &["loading"], NONE),
    data!("info", -1, server::info, &["loading"], NONE),
    conn!("auth", -2, None, &["noscript", "loading", "fast"], NONE),
    conn!("hello", -1, None, &["noscript", "loading", "fast"], NONE),
    // Keys.
    data!("type", 2, keys::type_, RF, K1),
    data!("scan", -2, keys::scan, R, NONE),
    data!("keys", 2, keys::keys, R, NONE),
    data!("exists", -2, keys::exists, RF, KALL),
    data!("del", -2, keys::del, W, KALL),
    data!("expire", -3, keys::expire, WF, K1),
    data!("pexpire", -3, keys::pexpire, WF, K1),
    data!("ttl", 2, keys::ttl, RF, K1),
    data!("pttl", 2, keys::pttl, RF, K1),
    data!("persist", 2, keys::persist, WF, K1),
    // Strings.
    data!("set", -3, strings::set, WD, K1),
    data!("get", 2, strings::get, RF, K1),
    data!("getset", 3, strings::getset, WDF, K1),
    data!("mget", -2, strings::mget, RF, KALL),
    data!("mset", -3, strings::mset, WD, (1, -1, 2)),
    data!("msetnx", -3, strings::msetnx, WD, (1, -1, 2)),
    data!("incr", 2, strings::incr, WDF, K1),
    data!("incrby", 3, strings::incrby, WDF, K1),
    data!("decr", 2, strings::decr, WDF, K1),
    data!("decrby", 3, strings::decrby, WDF, K1),
    data!("append", 3, strings::append, WD, K1),
    data!("strlen", 2, strings::strlen, RF, K1),
    // Lists.
    data!("lpush", -3, lists::lpush, WDF, K1),
    data!("rpush", -3, lists::rpush, WDF, K1),
    data!("lpop", -2, lists::lpop, WF, K1),
    data!("rpop", -2, lists::rpop, WF, K1),
    data!("lrange", 4, lists::lrange, R, K1),
    data!("llen", 2, lists::llen, RF, K1),
    data!("lindex", 3, lists::lindex, R, K1),
    data!("lmove", 5, lists::lmove, WD, (1, 2, 1)),
    data!("rpoplpush", 3, lists::rpoplpush, WD, (1, 2, 1)),
    conn!("blpop", -3, Some(lists::blpop), &["write", "noscript", "blocking"], (1, -2, 1)),
    conn!("brpop", -3, Some(lists::brpop), &["write", "noscript", "blocking"], (1, -2, 1)),
    conn!(
        "blmove",
        6,
        Some(lists::blmove),
        &["write", "denyoom", "noscript", "blocking"],
        (1, 2, 1)
    ),
    // Hashes.
    data!("hset", -4, hashes::hset, WDF, K1),
    data!("hget", 3, hashes::hget, RF, K1),
    data!("hdel", -3, hashes::hdel, WF, K1),
    data!("hgetall", 2, hashes::hgetall, R, K1),
    data!("hlen", 2, hashes::hlen, RF, K1),
    data!("hexists", 3, hashes::hexists, RF, K1),
    data!("hincrby", 4, hashes::hincrby, WDF, K1),
    // Sets.
    data!("sadd", -3, sets::sadd, WDF, K1),
    data!("srem", -3, sets::srem, WF, K1),
    data!("smembers", 2, sets::smembers, R, K1),
    data!("sismember", 3, sets::sismember, RF, K1),
    data!("scard", 2, sets::scard, RF, K1),
    data!("spop", -2, sets::spop, WF, K1),
    // Sorted sets.
    data!("zadd", -4, zsets::zadd, WDF, K1),
    data!("zscore", 3, zsets::zscore, RF, K1),
    data!("zrange", -4, zsets::zrange, R, K1),
    data!("zcard", 2, zsets::zcard, RF, K1),
    data!("zpopmin", -2, zsets::zpopmin, WF, K1),
    data!("zrem", -3, zsets::zrem, WF, K1),
    // Transactions.
    conn!("multi", 1, None, &["noscript", "loading", "fast"], NONE),
    conn!("exec", 1, None, &["noscript", "loading"], NONE),
    conn!("discard", 1, None, &["noscript", "loading", "fast"], NONE),
    conn!("watch", -2, None, &["noscript", "loading", "fast"], KALL),
    conn!("unwatch", 1, None, &["noscript", "loading", "fast"], NONE),
];

static TABLE: LazyLock<HashMap<&'static str, &'static Spec>> =
    LazyLock::new(|| COMMANDS.iter().map(|s| (s.name, s)).collect());

/// The spec of the command named `name` (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    let lower = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    TABLE.get(lower.as_str()).copied()
}

/// Redis's reply to an unknown command (quoting up to 128 bytes of it and of its
/// arguments, raw, as Redis does).
pub fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let mut rest = Vec::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push(b'\'');
        rest.extend_from_slice(c_str(a, room));
        rest.extend_from_slice(b"' ");
    }
    let mut text = b"ERR unknown command '".to_vec();
    text.extend_from_slice(c_str(&args[0], 128));
    text.extend_from_slice(b"', with args beginning with: ");
    text.extend_from_slice(&rest);
    Reply::error_bytes(text)
}

/// `%.Ns` of C: the bytes up to the first NUL, at most `max` of them.
pub fn c_str(b: &[u8], max: usize) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len()).min(max);
    &b[..end]
}

/// Redis's reply to a wrong number of arguments.
pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!("ERR wrong number of arguments for '{name}' command"))
}

/// Whether `n` arguments fit `arity`.
pub fn arity_ok(arity: i32, n: usize) -> bool {
    if arity >= 0 {
        n == arity as usize
    } else {
        n >= arity.unsigned_abs() as usize
    }
}

/// `-WRONGTYPE ...`.
pub const WRONGTYPE: Reply =
    Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value");
/// `-ERR value is not an integer or out of range`.
pub const NOT_INT: Reply = Reply::err("ERR value is not an integer or out of range");
/// `-ERR syntax error`.
pub const SYNTAX: Reply = Reply::err("ERR syntax error");
/// `-ERR value is not a valid float`.
pub const NOT_FLOAT: Reply = Reply::err("ERR value is not a valid float");
/// `-ERR increment or decrement would overflow`.
pub const OVERFLOW: Reply = Reply::err("ERR increment or decrement would overflow");

/// Parses an integer argument, or returns `NOT_INT` from the handler.
macro_rules! int_arg {
    ($arg:expr) => {
        match $crate::dict::resp::parse_i64($arg) {
            Some(n) => n,
            None => return Ok($crate::dict::commands::NOT_INT),
        }
    };
}
pub(crate) use int_arg;

/// Looks `key` up and returns its value if it is of `variant`, `None` if absent, or
/// returns `WRONGTYPE` from the handler.
macro_rules! typed {
    ($cx:expr, $tx:expr, $key:expr, $variant:ident) => {
        match $cx.db().get($tx, $key, $cx.now)? {
            None => None,
            Some(e) => match &e.value {
                $crate::dict::store::Value::$variant(v) => Some((v, e.expires_at)),
                _ => return Ok($crate::dict::commands::WRONGTYPE),
            },
        }
    };
}
pub(crate) use typed;

/// Whether `a` equals `b` ignoring ASCII case.
pub fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Redis's `string2d`-style float argument: `inf`, `-inf`, decimals and exponents; no NaN,
/// no spaces.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(s).ok()?;
    if s.is_empty()
        || s.starts_with(|c: char| c.is_whitespace())
        || s.ends_with(|c: char| c.is_whitespace())
    {
        return None;
    }
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => s.parse().ok()?,
    };
    (!v.is_nan()).then_some(v)
}

/// C's `%.17g`, as Redis 7.0 formats doubles in replies.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{v:.16e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("an integer exponent");
    if !(-4..17).contains(&exp) {
        let mantissa = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (16 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_owned()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Redis's glob matching (`stringmatchlen`): `*`, `?`, `[...]` with ranges and `^`, `\`
/// escapes.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let (mut p, mut i) = (0, 0);
    let lower = |c: u8| if nocase { c.to_ascii_lowercase() } else { c };
    while p < pattern.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                return (i..=s.len()).any(|j| glob_match(&pattern[p + 1..], &s[j..], nocase));
            }
            b'?' => {
                if i >= s.len() {
                    return false;
                }
                i += 1;
            }
            b'[' => {
                if i >= s.len() {
                    return false;
                }
                p += 1;
                let not = pattern.get(p) == Some(&b'^');
                if not {
                    p += 1;
                }
                let mut matched = false;
                loop {
                    if p >= pattern.len() {
                        p -= 1;
                        break;
                    }
                    match pattern[p] {
                        b'\\' if p + 1 < pattern.len() => {
                            p += 1;
                            if lower(pattern[p]) == lower(s[i]) {
                                matched = true;
                            }
                        }
                        b']' => break,
                        c if p + 2 < pattern.len() && pattern[p + 1] == b'-' => {
                            let (mut lo, mut hi) = (lower(c), lower(pattern[p + 2]));
                            if lo > hi {
                                std::mem::swap(&mut lo, &mut hi);
                            }
                            p += 2;
                            let x = lower(s[i]);
                            if x >= lo && x <= hi {
                                matched = true;
                            }
                        }
                        c => {
                            if lower(c) == lower(s[i]) {
                                matched = true;
                            }
                        }
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                i += 1;
            }
            b'\\' if p + 1 < pattern.len() => {
                p += 1;
                if i >= s.len() || lower(pattern[p]) != lower(s[i]) {
                    return false;
                }
                i += 1;
            }
            c => {
                if i >= s.len() || lower(c) != lower(s[i]) {
                    return false;
                }
                i += 1;
            }
        }
        p += 1;
    }
    i == s.len()
}

/// Resolves Redis's `start`/`stop` (negative from the end) against `len`: the inclusive
/// range, or `None` if it is empty.
pub fn range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

/// Parses an integer argument as a positive count, with Redis's error for a negative one.
pub fn count_arg(arg: &[u8]) -> Result<usize, Reply> {
    match parse_i64(arg) {
        Some(n) if n >= 0 => Ok(n as usize),
        _ => Err(Reply::err("ERR value is out of range, must be positive")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_format_like_printf_17g() {
        for (v, s) in [
            (1.5, "1.5"),
            (3.0, "3"),
            (0.1, "0.10000000000000001"),
            (-2.25, "-2.25"),
            (1e20, "1e+20"),
            (1e-5, "1.0000000000000001e-05"),
            (123456789.0, "123456789"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(format_double(v), s);
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-c]llo", b"hbllo", false));
        assert!(glob_match(b"a\\*b", b"a*b", false));
        assert!(!glob_match(b"a*b", b"acbd", false));
        assert!(glob_match(b"key:*:x", b"key:12:x", false));
    }

    #[test]
    fn ranges() {
        assert_eq!(range(0, -1, 3), Some((0, 2)));
        assert_eq!(range(-100, 100, 3), Some((0, 2)));
        assert_eq!(range(2, 1, 3), None);
        assert_eq!(range(5, 10, 3), None);
        assert_eq!(range(0, -1, 0), None);
    }
}
