//! Hash commands: HSET, HGET, HDEL, HGETALL, HLEN, HEXISTS, HINCRBY. Fields keep their
//! insertion order, as in Redis's small (listpack) hashes ([`Hash`]).

use std::sync::Arc;

use concord_stm::{Stm, Transaction};

use super::{int_arg, typed, wrong_arity, Cx, OVERFLOW};
use crate::dict::resp::{parse_i64, Reply};
use crate::dict::store::{Bytes, Hash, Value};

pub fn hset(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() % 2 == 1 {
        return Ok(wrong_arity("hset"));
    }
    let (mut h, ttl) = match typed!(cx, tx, &args[1], Hash) {
        None => (Hash::default(), None),
        Some((h, ttl)) => (h.clone(), ttl),
    };
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        if h.insert(&pair[0], Arc::from(&pair[1][..])) {
            added += 1;
        }
    }
    cx.db().put(tx, &args[1], Value::Hash(h), ttl)?;
    Ok(Reply::Int(added))
}

pub fn hget(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((h, _)) = typed!(cx, tx, &args[1], Hash) else { return Ok(Reply::Nil) };
    Ok(h.get(&args[2]).map_or(Reply::Nil, |v| Reply::Bulk(v.clone())))
}

pub fn hdel(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((h, ttl)) = typed!(cx, tx, &args[1], Hash) else { return Ok(Reply::Int(0)) };
    let mut h = h.clone();
    let removed = args[2..].iter().filter(|f| h.remove(f)).count() as i64;
    if removed > 0 {
        cx.db().put_or_delete(tx, &args[1], Value::Hash(h), ttl)?;
    }
    Ok(Reply::Int(removed))
}

pub fn hgetall(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((h, _)) = typed!(cx, tx, &args[1], Hash) else { return Ok(Reply::Array(vec![])) };
    Ok(Reply::Array(
        h.iter().flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())]).collect(),
    ))
}

pub fn hlen(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(typed!(cx, tx, &args[1], Hash).map_or(0, |(h, _)| h.len() as i64)))
}

pub fn hexists(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let found = typed!(cx, tx, &args[1], Hash).is_some_and(|(h, _)| h.get(&args[2]).is_some());
    Ok(Reply::Int(found.into()))
}

pub fn hincrby(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let delta = int_arg!(&args[3]);
    let (mut h, ttl) = match typed!(cx, tx, &args[1], Hash) {
        None => (Hash::default(), None),
        Some((h, ttl)) => (h.clone(), ttl),
    };
    let current = match h.get(&args[2]) {
        None => 0,
        Some(v) => match parse_i64(v) {
            Some(n) => n,
            None => return Ok(Reply::err("ERR hash value is not an integer")),
        },
    };
    let Some(new) = current.checked_add(delta) else { return Ok(OVERFLOW) };
    let value: Bytes = Arc::from(new.to_string().as_bytes());
    h.insert(&args[2], value);
    cx.db().put(tx, &args[1], Value::Hash(h), ttl)?;
    Ok(Reply::Int(new))
}
