//! String commands: SET, GET, GETSET, MGET, MSET, MSETNX, INCR, INCRBY, DECR, DECRBY,
//! APPEND, STRLEN.

use std::sync::Arc;

use concord_stm::{Stm, Transaction};

use super::{eq, int_arg, typed, wrong_arity, Cx, OVERFLOW, SYNTAX};
use crate::dict::resp::{parse_i64, Reply};
use crate::dict::store::Value;

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
pub fn set(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    // (unit in ms, absolute, argument)
    let mut expire: Option<(i64, bool, &[u8])> = None;
    let mut j = 3;
    while j < args.len() {
        let opt = &args[j];
        let next = args.get(j + 1);
        if eq(opt, "nx") && !xx {
            nx = true;
        } else if eq(opt, "xx") && !nx {
            xx = true;
        } else if eq(opt, "get") {
            get = true;
        } else if eq(opt, "keepttl") && expire.is_none() {
            keepttl = true;
        } else if let (Some(next), false, Some(spec)) = (next, keepttl, expire_option(opt)) {
            if expire.is_some_and(|(u, a, _)| (u, a) != spec) {
                return Ok(SYNTAX);
            }
            expire = Some((spec.0, spec.1, next));
            j += 1;
        } else {
            return Ok(SYNTAX);
        }
        j += 1;
    }
    let deadline = match expire {
        None => None,
        Some((unit, absolute, arg)) => {
            let n = int_arg!(arg);
            let invalid = Reply::err("ERR invalid expire time in 'set' command");
            if n <= 0 || (unit == 1000 && n > i64::MAX / 1000) {
                return Ok(invalid);
            }
            let ms = n * unit;
            let at = if absolute { Some(ms) } else { ms.checked_add(cx.now as i64) };
            match at {
                Some(at) if at > 0 => Some(at as u64),
                _ => return Ok(invalid),
            }
        }
    };
    let key = &args[1];
    let (found, old, old_ttl) = match cx.db().get(tx, key, cx.now)? {
        None => (false, None, None),
        Some(e) => match &e.value {
            Value::Str(s) => (true, Some(s.clone()), e.expires_at),
            _ if get => return Ok(super::WRONGTYPE),
            _ => (true, None, e.expires_at),
        },
    };
    let get_reply = || old.clone().map_or(Reply::Nil, Reply::Bulk);
    if (nx && found) || (xx && !found) {
        return Ok(if get { get_reply() } else { Reply::Nil });
    }
    let ttl = if keepttl { old_ttl } else { deadline };
    cx.db().put(tx, key, Value::Str(Arc::from(&args[2][..])), ttl)?;
    Ok(if get { get_reply() } else { Reply::OK })
}

/// The unit (ms) and absoluteness of an expiry option of `SET`.
fn expire_option(opt: &[u8]) -> Option<(i64, bool)> {
    if eq(opt, "ex") {
        Some((1000, false))
    } else if eq(opt, "px") {
        Some((1, false))
    } else if eq(opt, "exat") {
        Some((1000, true))
    } else if eq(opt, "pxat") {
        Some((1, true))
    } else {
        None
    }
}

pub fn get(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(typed!(cx, tx, &args[1], Str).map_or(Reply::Nil, |(s, _)| Reply::Bulk(s.clone())))
}

pub fn getset(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let old = typed!(cx, tx, &args[1], Str).map_or(Reply::Nil, |(s, _)| Reply::Bulk(s.clone()));
    cx.db().put(tx, &args[1], Value::Str(Arc::from(&args[2][..])), None)?;
    Ok(old)
}

pub fn mget(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let mut out = Vec::with_capacity(args.len() - 1);
    for k in &args[1..] {
        out.push(match cx.db().get(tx, k, cx.now)? {
            Some(e) => match &e.value {
                Value::Str(s) => Reply::Bulk(s.clone()),
                _ => Reply::Nil,
            },
            None => Reply::Nil,
        });
    }
    Ok(Reply::Array(out))
}

pub fn mset(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() % 2 == 0 {
        return Ok(wrong_arity("mset"));
    }
    for pair in args[1..].chunks(2) {
        cx.db().put(tx, &pair[0], Value::Str(Arc::from(&pair[1][..])), None)?;
    }
    Ok(Reply::OK)
}

pub fn msetnx(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() % 2 == 0 {
        return Ok(wrong_arity("msetnx"));
    }
    for pair in args[1..].chunks(2) {
        if cx.db().get(tx, &pair[0], cx.now)?.is_some() {
            return Ok(Reply::Int(0));
        }
    }
    for pair in args[1..].chunks(2) {
        cx.db().put(tx, &pair[0], Value::Str(Arc::from(&pair[1][..])), None)?;
    }
    Ok(Reply::Int(1))
}

fn incr_by(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, key: &[u8], delta: i64) -> Stm<Reply> {
    let (current, ttl) = match typed!(cx, tx, key, Str) {
        None => (0, None),
        Some((s, ttl)) => match parse_i64(s) {
            Some(n) => (n, ttl),
            None => return Ok(super::NOT_INT),
        },
    };
    let Some(new) = current.checked_add(delta) else { return Ok(OVERFLOW) };
    cx.db().put(tx, key, Value::Str(Arc::from(new.to_string().as_bytes())), ttl)?;
    Ok(Reply::Int(new))
}

pub fn incr(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    incr_by(cx, tx, &args[1], 1)
}

pub fn decr(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    incr_by(cx, tx, &args[1], -1)
}

pub fn incrby(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let delta = int_arg!(&args[2]);
    incr_by(cx, tx, &args[1], delta)
}

pub fn decrby(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let delta = int_arg!(&args[2]);
    if delta == i64::MIN {
        return Ok(Reply::err("ERR decrement would overflow"));
    }
    incr_by(cx, tx, &args[1], -delta)
}

pub fn append(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (mut s, ttl) = match typed!(cx, tx, &args[1], Str) {
        None => (Vec::new(), None),
        Some((s, ttl)) => (s.to_vec(), ttl),
    };
    s.extend_from_slice(&args[2]);
    let len = s.len() as i64;
    cx.db().put(tx, &args[1], Value::Str(Arc::from(s)), ttl)?;
    Ok(Reply::Int(len))
}

pub fn strlen(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(typed!(cx, tx, &args[1], Str).map_or(0, |(s, _)| s.len() as i64)))
}
