//! List commands: LPUSH, RPUSH, LPOP, RPOP, LRANGE, LLEN, LINDEX, LMOVE, RPOPLPUSH, and
//! the blocking pops BLPOP, BRPOP, BLMOVE.
//!
//! # Blocking pops
//!
//! As in Redis, a push serves the clients blocked on its key before any other command
//! can see the element: a blocked client is never robbed by a later `LPOP`.
//! 1. [`try_or_enqueue`] (the blocking client's transaction): pop at once if a key holds a
//!    non-empty list; otherwise queue a [`Blocked`] record on every key (a per-key FIFO in
//!    the store).
//! 2. A command that creates a list records the key in [`Cx::ready`]; at the end of its
//!    transaction (of the whole block, for `EXEC`), [`serve_ready`] hands the list's
//!    elements to the clients queued on it, oldest first: it pops for each client (from
//!    the end it asked for; `BLMOVE` also pushes to its destination, which may serve
//!    clients blocked there in turn), writes the client's reply into its `TVar` and takes
//!    the client out of every queue. That is Redis's `handleClientsBlockedOnKeys`, run
//!    after each command; here it is part of the command's transaction.
//! 3. The blocked client waits (with `atomically_async`, under its timeout) for its reply
//!    `TVar`, so it is woken by the commit that served it and by nothing else. On timeout
//!    one transaction takes its reply if it was served meanwhile, or else takes it out of
//!    every queue ([`leave`]); a client that hangs up just leaves.
//!
//! So no non-empty list ever has clients queued on it (every transaction that creates one
//! serves them), and a blocked client needs to watch nothing but its own reply.

use std::sync::Arc;

use concord_stm::{Stm, Transaction};

use super::{count_arg, eq, int_arg, range, typed, Cx, SYNTAX, WRONGTYPE};
use crate::dict::resp::Reply;
use crate::dict::store::{Blocked, Bytes, List, Value};

fn push(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>], left: bool) -> Stm<Reply> {
    let (mut list, ttl) = match typed!(cx, tx, &args[1], List) {
        None => {
            cx.ready(&args[1]);
            (List::default(), None)
        }
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
            // `skip` splits off the head in O(log n) instead of walking it.
            list.skip(a).iter().take(b - a + 1).map(|v| Reply::Bulk(v.clone())).collect()
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
            None => {
                cx.ready(dst);
                Some((List::default(), None))
            }
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

/// Serves `req` now if it can, from the first of its keys that holds a non-empty list.
/// `Ok(None)`: every key is empty. A key holding another type is a `WRONGTYPE` error (at
/// the call, as Redis does; a blocked client skips such keys).
pub fn serve(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, req: &Blocking) -> Stm<Option<Reply>> {
    for key in &req.keys {
        let ready = match cx.db().get(tx, key, cx.now)? {
            None => false,
            Some(e) => match &e.value {
                Value::List(l) => !l.is_empty(),
                _ => return Ok(Some(WRONGTYPE)),
            },
        };
        if ready {
            return pop_for(cx, tx, req, key).map(Some);
        }
    }
    Ok(None)
}

/// Pops from `key` (a non-empty list) what `req` asks for and returns its reply.
fn pop_for(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, req: &Blocking, key: &[u8]) -> Stm<Reply> {
    Ok(match &req.dest {
        Some((dst, to_left)) => match move_one(cx, tx, key, dst, req.left, *to_left)? {
            Err(e) => e,
            Ok(v) => Reply::Bulk(v.expect("the source list is non-empty")),
        },
        None => {
            let Some((list, ttl)) = typed!(cx, tx, key, List) else {
                unreachable!("the caller saw a list")
            };
            let mut list = list.clone();
            let v = take(&mut list, req.left).expect("non-empty");
            cx.db().put_or_delete(tx, key, Value::List(list), ttl)?;
            Reply::Array(vec![Reply::bulk(key), Reply::Bulk(v)])
        }
    })
}

/// The first step of a blocking pop: serve it now, or queue `waiter` on every key.
pub fn try_or_enqueue(
    cx: &mut Cx<'_>,
    tx: &mut Transaction<'_>,
    waiter: &Arc<Blocked>,
) -> Stm<Option<Reply>> {
    if let Some(reply) = serve(cx, tx, &waiter.req)? {
        return Ok(Some(reply));
    }
    for key in &waiter.req.keys {
        cx.db().enqueue_waiter(tx, key, waiter)?;
    }
    Ok(None)
}

/// Serves the clients blocked on the keys in `cx.ready` (lists created by this
/// transaction), in the order the keys were created, each key's clients oldest first,
/// for as long as the key holds a non-empty list. A `BLMOVE` client whose destination
/// holds another type gets `WRONGTYPE` and leaves, as in Redis. Call it last in every
/// transaction that runs commands.
///
/// # Errors
///
/// A conflict, to propagate.
pub fn serve_ready(cx: &mut Cx<'_>, tx: &mut Transaction<'_>) -> Stm<()> {
    let home = cx.db;
    let mut i = 0;
    while i < cx.ready.len() {
        let (db, key) = cx.ready[i].clone();
        i += 1;
        cx.db = db;
        loop {
            let Some(waiter) = cx.db().waiters(tx, &key)?.and_then(|q| q.front().cloned()) else {
                break;
            };
            match cx.db().get(tx, &key, cx.now)? {
                Some(e) if matches!(&e.value, Value::List(l) if !l.is_empty()) => {}
                _ => break,
            }
            let reply = pop_for(cx, tx, &waiter.req, &key)?;
            tx.write(&waiter.reply, Some(reply))?;
            leave(cx, tx, &waiter.req, waiter.ticket)?;
        }
    }
    cx.db = home;
    cx.ready.clear();
    Ok(())
}

/// Takes `ticket` out of the queue of every key of `req`.
///
/// # Errors
///
/// A conflict, to propagate.
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
    Ok(serve(cx, tx, &req)?.unwrap_or_else(|| empty_reply(&req)))
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
