//! Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SCARD, SPOP.

use std::collections::HashSet;
use std::sync::Arc;

use concord_stm::{Stm, Transaction};
use rand::Rng;

use super::{count_arg, typed, Cx, SYNTAX};
use crate::dict::resp::Reply;
use crate::dict::store::{Bytes, Value};

pub fn sadd(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (mut s, ttl) = match typed!(cx, tx, &args[1], Set) {
        None => (HashSet::new(), None),
        Some((s, ttl)) => (s.clone(), ttl),
    };
    let mut added = 0;
    for m in &args[2..] {
        if !s.contains(&m[..]) {
            s.insert(Arc::from(&m[..]));
            added += 1;
        }
    }
    if added > 0 {
        cx.db().put(tx, &args[1], Value::Set(s), ttl)?;
    }
    Ok(Reply::Int(added))
}

pub fn srem(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((s, ttl)) = typed!(cx, tx, &args[1], Set) else { return Ok(Reply::Int(0)) };
    let mut s = s.clone();
    let removed = args[2..].iter().filter(|m| s.remove(&m[..])).count();
    if removed > 0 {
        cx.db().put_or_delete(tx, &args[1], Value::Set(s), ttl)?;
    }
    Ok(Reply::Int(removed as i64))
}

pub fn smembers(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((s, _)) = typed!(cx, tx, &args[1], Set) else { return Ok(Reply::Array(vec![])) };
    Ok(Reply::Array(s.iter().map(|m| Reply::Bulk(m.clone())).collect()))
}

pub fn sismember(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let found = typed!(cx, tx, &args[1], Set).is_some_and(|(s, _)| s.contains(&args[2][..]));
    Ok(Reply::Int(found.into()))
}

pub fn scard(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(typed!(cx, tx, &args[1], Set).map_or(0, |(s, _)| s.len() as i64)))
}

/// `SPOP key [count]`: random members (a re-run attempt may pick others; only the
/// committed attempt's choice is seen).
pub fn spop(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() > 3 {
        return Ok(SYNTAX);
    }
    let count = match args.get(2).map(|a| count_arg(a)) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return Ok(e),
    };
    let Some((s, ttl)) = typed!(cx, tx, &args[1], Set) else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
    };
    let mut members: Vec<Bytes> = s.iter().cloned().collect();
    let n = count.unwrap_or(1).min(members.len());
    if n == 0 {
        return Ok(Reply::Array(vec![]));
    }
    let mut rng = rand::thread_rng();
    let mut popped = Vec::with_capacity(n);
    for _ in 0..n {
        let i = rng.gen_range(0..members.len());
        popped.push(members.swap_remove(i));
    }
    let mut s = s.clone();
    for m in &popped {
        s.remove(m);
    }
    cx.db().put_or_delete(tx, &args[1], Value::Set(s), ttl)?;
    Ok(match count {
        None => Reply::Bulk(popped.pop().expect("one member")),
        Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
    })
}
