//! Hash commands: HSET, HGET, HDEL, HGETALL, HLEN, HEXISTS, HINCRBY. Fields keep their
//! insertion order, as in Redis's small (listpack) hashes.

use std::sync::Arc;

use concord_stm::{Stm, Transaction};

use super::{int_arg, typed, wrong_arity, Cx, OVERFLOW};
use crate::dict::resp::{parse_i64, Reply};
use crate::dict::store::{Bytes, Value};

fn find(h: &[(Bytes, Bytes)], field: &[u8]) -> Option<usize> {
    h.iter().position(|(f, _)| &f[..] == field)
}

pub fn hset(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() % 2 == 1 {
        return Ok(wrong_arity("hset"));
    }
    let (mut h, ttl) = match typed!(cx, tx, &args[1], Hash) {
        None => (Vec::new(), None),
        Some((h, ttl)) => (h.clone(), ttl),
    };
    let mut added = 0;
    for pair in args[2..].chunks(2) {
        let value: Bytes = Arc::from(&pair[1][..]);
        match find(&h, &pair[0]) {
            Some(i) => h[i].1 = value,
            None => {
                h.push((Arc::from(&pair[0][..]), value));
                added += 1;
            }
        }
    }
    cx.db().put(tx, &args[1], Value::Hash(h), ttl)?;
    Ok(Reply::Int(added))
}

pub fn hget(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((h, _)) = typed!(cx, tx, &args[1], Hash) else { return Ok(Reply::Nil) };
    Ok(find(h, &args[2]).map_or(Reply::Nil, |i| Reply::Bulk(h[i].1.clone())))
}

pub fn hdel(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((h, ttl)) = typed!(cx, tx, &args[1], Hash) else { return Ok(Reply::Int(0)) };
    let mut h = h.clone();
    let mut removed = 0;
    for f in &args[2..] {
        if let Some(i) = find(&h, f) {
            h.remove(i);
            removed += 1;
        }
    }
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
    let found = typed!(cx, tx, &args[1], Hash).is_some_and(|(h, _)| find(h, &args[2]).is_some());
    Ok(Reply::Int(found.into()))
}

pub fn hincrby(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let delta = int_arg!(&args[3]);
    let (mut h, ttl) = match typed!(cx, tx, &args[1], Hash) {
        None => (Vec::new(), None),
        Some((h, ttl)) => (h.clone(), ttl),
    };
    let pos = find(&h, &args[2]);
    let current = match pos {
        None => 0,
        Some(i) => match parse_i64(&h[i].1) {
            Some(n) => n,
            None => return Ok(Reply::err("ERR hash value is not an integer")),
        },
    };
    let Some(new) = current.checked_add(delta) else { return Ok(OVERFLOW) };
    let value: Bytes = Arc::from(new.to_string().as_bytes());
    match pos {
        Some(i) => h[i].1 = value,
        None => h.push((Arc::from(&args[2][..]), value)),
    }
    cx.db().put(tx, &args[1], Value::Hash(h), ttl)?;
    Ok(Reply::Int(new))
}
