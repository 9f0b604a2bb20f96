//! Set commands: SADD, SREM, SMEMBERS, SISMEMBER, SCARD, SPOP.
//!
//! A set remembers whether Redis 7.0 would encode it as an intset ([`Set`]), so that
//! `SMEMBERS` lists such a set in Redis's order (numeric); other sets are listed in an
//! order of their own, as Redis's hash-table sets are (in a per-process random one).

use std::sync::Arc;

use concord_stm::{Stm, Transaction};
use rand::Rng;

use super::{count_arg, typed, Cx, SYNTAX};
use crate::dict::resp::{parse_i64, Reply};
use crate::dict::store::{Bytes, Set, Value, INTSET_MAX};

/// Whether Redis stores `m` in an intset (`isSdsRepresentableAsLongLong`).
fn is_int(m: &[u8]) -> bool {
    parse_i64(m).is_some()
}

pub fn sadd(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (mut s, ttl) = match typed!(cx, tx, &args[1], Set) {
        // Redis picks the encoding of a new set by its first member.
        None => (Set { members: Default::default(), intset: is_int(&args[2]) }, None),
        Some((s, ttl)) => (s.clone(), ttl),
    };
    let mut added = 0;
    for m in &args[2..] {
        if !s.members.contains(&m[..]) {
            s.members.insert(Arc::from(&m[..]));
            s.intset &= is_int(m) && s.members.len() <= INTSET_MAX;
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
    let removed = args[2..].iter().filter(|m| s.members.remove(&m[..]).is_some()).count();
    if removed > 0 {
        cx.db().put_or_delete(tx, &args[1], Value::Set(s), ttl)?;
    }
    Ok(Reply::Int(removed as i64))
}

pub fn smembers(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((s, _)) = typed!(cx, tx, &args[1], Set) else { return Ok(Reply::Array(vec![])) };
    let mut members: Vec<&Bytes> = s.members.iter().collect();
    if s.intset {
        members.sort_unstable_by_key(|m| parse_i64(m).expect("intset members are integers"));
    }
    Ok(Reply::Array(members.into_iter().map(|m| Reply::Bulk(m.clone())).collect()))
}

pub fn sismember(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let found =
        typed!(cx, tx, &args[1], Set).is_some_and(|(s, _)| s.members.contains(&args[2][..]));
    Ok(Reply::Int(found.into()))
}

pub fn scard(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(typed!(cx, tx, &args[1], Set).map_or(0, |(s, _)| s.members.len() as i64)))
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
    let mut members: Vec<Bytes> = s.members.iter().cloned().collect();
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
    // The set keeps its encoding, as in Redis 7.0 (a hash table whose remaining members
    // are all integers stays one).
    let mut s = s.clone();
    for m in &popped {
        s.members.remove(m);
    }
    cx.db().put_or_delete(tx, &args[1], Value::Set(s), ttl)?;
    Ok(match count {
        None => Reply::Bulk(popped.pop().expect("one member")),
        Some(_) => Reply::Array(popped.into_iter().map(Reply::Bulk).collect()),
    })
}
