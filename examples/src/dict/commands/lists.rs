//! List commands: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN, LINDEX, LMOVE, RPOPLPUSH, and
//! the blocking pops BLPOP, BRPOP, BLMOVE.
//!
//! # Blocking pops
//!
//! A blocking pop is three transactions (see `server.rs` for the connection's side):
//! 1. [`try_or_enqueue`]: pop at once if a key has an element and no client is queued on
//!    it; otherwise queue a ticket on every key (a per-key FIFO of tickets in the store).
//! 2. [`serve`] under `atomically_async` with the timeout: pop from the first key whose
//!    queue has this ticket at its head and whose list is non-empty, and take the ticket
//!    out of every queue; else `retry`. The waiter read the lists and the queues, so it is
//!    woken by the commit of a push (never before it commits), or when the waiter ahead of
//!    it leaves the queue.
//! 3. On timeout or a dropped connection, [`leave`] takes the ticket out of every queue, so
//!    the next waiter becomes the head and is woken.
//!
//! A non-blocking pop (`LPOP`) does not look at the queues: as in Redis, a client that is
//! not blocked may take an element; among blocked clients, the oldest is served first.

use std::sync::Arc;

use concord_stm::{Stm, Transaction};

use super::{count_arg, eq, int_arg, range, typed, Cx, SYNTAX, WRONGTYPE};
use crate::dict::resp::Reply;
use crate::dict::store::{Bytes, List, Value};

fn push(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>], left: bool) -> Stm<Reply> {
    let (mut list, ttl) = match typed!(cx, tx, &args[1], List) {
        None => (List::default(), None),
        Some((l, ttl)) => (l.clone(), ttl),
    };
    for v in &args[2..] {
        let v: Bytes = Arc::from(&v[..]);
        if left {
            list.push_front(v);
        } else {
            list.push_back(v);
        }
    }
    let len = list.len() as i64;
    cx.db().put(tx, &args[1], Value::List(list), ttl)?;
    Ok(Reply::Int(len))
}

pub fn lpush(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    push(cx, tx, args, true)
}

pub fn rpush(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    push(cx, tx, args, false)
}

fn pop(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>], left: bool) -> Stm<Reply> {
    if args.len() > 3 {
        return Ok(super::wrong_arity(if left { "lpop" } else { "rpop" }));
    }
    let count = match args.get(2).map(|a| count_arg(a)) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return Ok(e),
    };
    let Some((list, ttl)) = typed!(cx, tx, &args[1], List) else {
        return Ok(if count.is_some() { Reply::NilArray } else { Reply::Nil });
    };
    if count == Some(0) {
        // Redis answers at once and does not touch the key (a WATCH stays valid).
        return Ok(Reply::Array(Vec::new()));
    }
    let mut list = list.clone();
    let reply = match count {
        None => Reply::Bulk(take(&mut list, left).expect("stored lists are non-empty")),
        Some(n) => {
            let mut out = Vec::new();
            while out.len() < n {
                match take(&mut list, left) {
                    Some(v) => out.push(Reply::Bulk(v)),
                    None => break,
                }
            }
            Reply::Array(out)
        }
    };
    cx.db().put_or_delete(tx, &args[1], Value::List(list), ttl)?;
    Ok(reply)
}

fn take(list: &mut List, left: bool) -> Option<Bytes> {
    if left {
        list.pop_front()
    } else {
        list.pop_back()
    }
}

pub fn lpop(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    pop(cx, tx, args, true)
}

pub fn rpop(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    pop(cx, tx, args, false)
}

pub fn lrange(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let start = int_arg!(&args[2]);
    let stop = int_arg!(&args[3]);
    let Some((list, _)) = typed!(cx, tx, &args[1], List) else { return Ok(Reply::Array(vec![])) };
    Ok(Reply::Array(match range(start, stop, list.len()) {
        None => Vec::new(),
        Some((a, b)) => {
            list.iter().skip(a).take(b - a + 1).map(|v| Reply::Bulk(v.clone())).collect()
        }
    }))
}

pub fn llen(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(typed!(cx, tx, &args[1], List).map_or(0, |(l, _)| l.len() as i64)))
}

pub fn lindex(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((list, _)) = typed!(cx, tx, &args[1], List) else { return Ok(Reply::Nil) };
    let index = int_arg!(&args[2]);
    let i = if index < 0 { list.len() as i64 + index } else { index };
    Ok(if i < 0 { None } else { list.get(i as usize) }
        .map_or(Reply::Nil, |v| Reply::Bulk(v.clone())))
}

fn side(arg: &[u8]) -> Option<bool> {
    if eq(arg, "left") {
        Some(true)
    } else if eq(arg, "right") {
        Some(false)
    } else {
        None
    }
}

/// Moves one element from `src` (its `from_left` end) to `dst` (its `to_left` end):
/// `Ok(None)` if `src` is empty or absent.
fn move_one(
    cx: &mut Cx<'_>,
    tx: &mut Transaction<'_>,
    src: &[u8],
    dst: &[u8],
    from_left: bool,
    to_left: bool,
) -> Stm<Result<Option<Bytes>, Reply>> {
    let Some((list, src_ttl)) = (match cx.db().get(tx, src, cx.now)? {
        None => None,
        Some(e) => match &e.value {
            Value::List(l) => Some((l.clone(), e.expires_at)),
            _ => return Ok(Err(WRONGTYPE)),
        },
    }) else {
        return Ok(Ok(None));
    };
    let mut list = list;
    let dest = if src == dst {
        None
    } else {
        match cx.db().get(tx, dst, cx.now)? {
            None => Some((List::default(), None)),
            Some(e) => match &e.value {
                Value::List(l) => Some((l.clone(), e.expires_at)),
                _ => return Ok(Err(WRONGTYPE)),
            },
        }
    };
    let v = take(&mut list, from_left).expect("stored lists are non-empty");
    match dest {
        None => {
            if to_left {
                list.push_front(v.clone());
            } else {
                list.push_back(v.clone());
            }
            cx.db().put(tx, src, Value::List(list), src_ttl)?;
        }
        Some((mut d, dst_ttl)) => {
            if to_left {
                d.push_front(v.clone());
            } else {
                d.push_back(v.clone());
            }
            cx.db().put_or_delete(tx, src, Value::List(list), src_ttl)?;
            cx.db().put(tx, dst, Value::List(d), dst_ttl)?;
        }
    }
    Ok(Ok(Some(v)))
}

pub fn lmove(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (Some(from), Some(to)) = (side(&args[3]), side(&args[4])) else { return Ok(SYNTAX) };
    Ok(match move_one(cx, tx, &args[1], &args[2], from, to)? {
        Err(e) => e,
        Ok(v) => v.map_or(Reply::Nil, Reply::Bulk),
    })
}

pub fn rpoplpush(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(match move_one(cx, tx, &args[1], &args[2], false, true)? {
        Err(e) => e,
        Ok(v) => v.map_or(Reply::Nil, Reply::Bulk),
    })
}

/// A parsed blocking pop.
#[derive(Clone, Debug)]
pub struct Blocking {
    /// The keys to pop from, in order (BLMOVE: the source only).
    pub keys: Vec<Vec<u8>>,
    /// Pop from the head.
    pub left: bool,
    /// BLMOVE: the destination and which end to push to.
    pub dest: Option<(Vec<u8>, bool)>,
    /// Seconds to wait; 0 waits forever.
    pub timeout: f64,
}

/// Parses BLPOP, BRPOP or BLMOVE (by the lowercase `name`).
pub fn parse_blocking(name: &str, args: &[Vec<u8>]) -> Result<Blocking, Reply> {
    let timeout_arg = &args[args.len() - 1];
    let timeout = std::str::from_utf8(timeout_arg)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|t| !t.is_nan())
        .ok_or(Reply::err("ERR timeout is not a float or out of range"))?;
    // Redis converts the seconds to integer milliseconds: an infinite timeout overflows
    // to a negative one there, so it answers "negative" for `inf` too.
    if timeout < 0.0 || timeout.is_infinite() {
        return Err(Reply::err("ERR timeout is negative"));
    }
    if name == "blmove" {
        let (Some(from), Some(to)) = (side(&args[3]), side(&args[4])) else { return Err(SYNTAX) };
        return Ok(Blocking {
            keys: vec![args[1].clone()],
            left: from,
            dest: Some((args[2].clone(), to)),
            timeout,
        });
    }
    Ok(Blocking {
        keys: args[1..args.len() - 1].to_vec(),
        left: name == "blpop",
        dest: None,
        timeout,
    })
}

/// Serves `req` now if it can: from the first key holding a non-empty list whose queue of
/// blocked clients is empty (`ticket` is `None`) or headed by `ticket`. `Ok(None)`: nothing
/// to take. A key holding another type is a `WRONGTYPE` error when `check_types` (at the
/// call, as Redis does), and skipped otherwise (while blocked).
pub fn serve(
    cx: &mut Cx<'_>,
    tx: &mut Transaction<'_>,
    req: &Blocking,
    ticket: Option<u64>,
    check_types: bool,
) -> Stm<Option<Reply>> {
    for key in &req.keys {
        let ready = match cx.db().get(tx, key, cx.now)? {
            None => false,
            Some(e) => match &e.value {
                Value::List(l) => !l.is_empty(),
                _ if check_types => return Ok(Some(WRONGTYPE)),
                _ => false,
            },
        };
        if !ready {
            continue;
        }
        let head = cx.db().waiters(tx, key)?.and_then(|q| q.front().copied());
        if head.is_some() && head != ticket {
            continue;
        }
        let reply = match &req.dest {
            Some((dst, to_left)) => match move_one(cx, tx, key, dst, req.left, *to_left)? {
                Err(e) if check_types => e,
                Err(_) => continue,
                Ok(v) => Reply::Bulk(v.expect("the source list is non-empty")),
            },
            None => {
                let (mut list, ttl) = match cx.db().get(tx, key, cx.now)? {
                    Some(e) => match &e.value {
                        Value::List(l) => (l.clone(), e.expires_at),
                        _ => unreachable!("checked above"),
                    },
                    None => unreachable!("checked above"),
                };
                let v = take(&mut list, req.left).expect("non-empty");
                cx.db().put_or_delete(tx, key, Value::List(list), ttl)?;
                Reply::Array(vec![Reply::bulk(key), Reply::Bulk(v)])
            }
        };
        if let Some(t) = ticket {
            leave(cx, tx, req, t)?;
        }
        return Ok(Some(reply));
    }
    Ok(None)
}

/// The first step of a blocking pop: serve it now, or queue `ticket` on every key.
pub fn try_or_enqueue(
    cx: &mut Cx<'_>,
    tx: &mut Transaction<'_>,
    req: &Blocking,
    ticket: u64,
) -> Stm<Option<Reply>> {
    if let Some(reply) = serve(cx, tx, req, None, true)? {
        return Ok(Some(reply));
    }
    for key in &req.keys {
        cx.db().enqueue_waiter(tx, key, ticket)?;
    }
    Ok(None)
}

/// Takes `ticket` out of the queue of every key of `req`.
pub fn leave(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, req: &Blocking, ticket: u64) -> Stm<()> {
    for key in &req.keys {
        cx.db().dequeue_waiter(tx, key, ticket)?;
    }
    Ok(())
}

/// The reply of a blocking pop that cannot block (inside `EXEC`) and finds nothing.
pub fn empty_reply(req: &Blocking) -> Reply {
    if req.dest.is_some() {
        Reply::Nil
    } else {
        Reply::NilArray
    }
}

/// BLPOP/BRPOP/BLMOVE inside `EXEC`: as Redis does there, they never block.
fn nonblocking(
    name: &str,
    cx: &mut Cx<'_>,
    tx: &mut Transaction<'_>,
    args: &[Vec<u8>],
) -> Stm<Reply> {
    let req = match parse_blocking(name, args) {
        Ok(r) => r,
        Err(e) => return Ok(e),
    };
    Ok(serve(cx, tx, &req, None, true)?.unwrap_or_else(|| empty_reply(&req)))
}

pub fn blpop(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    nonblocking("blpop", cx, tx, args)
}

pub fn brpop(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    nonblocking("brpop", cx, tx, args)
}

pub fn blmove(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    nonblocking("blmove", cx, tx, args)
}

/// The reply of a blocking pop whose timeout passed: a null array, for BLMOVE too, as
/// Redis answers every list-blocking command that times out.
pub fn empty_reply_timeout(_req: &Blocking) -> Reply {
    Reply::NilArray
}
