//! Sorted-set commands: ZADD, ZSCORE, ZRANGE (by rank or by score), ZCARD, ZPOPMIN, ZREM.

use std::sync::Arc;

use concord_stm::{Stm, Transaction};

use super::{eq, format_double, int_arg, parse_f64, range, typed, Cx, NOT_FLOAT, SYNTAX};
use crate::dict::resp::{parse_i64, Reply};
use crate::dict::store::{Bytes, Score, Value, ZSet};

fn score_reply(v: f64) -> Reply {
    Reply::bulk(format_double(v).as_bytes())
}

pub fn zadd(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (mut nx, mut xx, mut ch, mut incr, mut gt, mut lt) =
        (false, false, false, false, false, false);
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq(a, "nx") {
            nx = true;
        } else if eq(a, "xx") {
            xx = true;
        } else if eq(a, "ch") {
            ch = true;
        } else if eq(a, "incr") {
            incr = true;
        } else if eq(a, "gt") {
            gt = true;
        } else if eq(a, "lt") {
            lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || rest.len() % 2 == 1 {
        return Ok(SYNTAX);
    }
    if nx && xx {
        return Ok(Reply::err("ERR XX and NX options at the same time are not compatible"));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Ok(Reply::err("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if incr && rest.len() > 2 {
        return Ok(Reply::err("ERR INCR option supports a single increment-element pair"));
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks(2) {
        let Some(score) = parse_f64(&p[0]) else { return Ok(NOT_FLOAT) };
        pairs.push((score, &p[1]));
    }
    let (mut z, ttl, existed) = match typed!(cx, tx, &args[1], ZSet) {
        None if xx => return Ok(if incr { Reply::Nil } else { Reply::Int(0) }),
        None => (ZSet::default(), None, false),
        Some((z, ttl)) => (z.clone(), ttl, true),
    };
    let (mut added, mut updated, mut processed) = (0, 0, 0);
    let mut last = 0.0;
    for (score, member) in pairs {
        match z.scores.get(&member[..]).copied() {
            Some(cur) => {
                if nx {
                    continue;
                }
                let new = if incr { cur + score } else { score };
                if new.is_nan() {
                    return Ok(Reply::err("ERR resulting score is not a number (NaN)"));
                }
                if (lt && new >= cur) || (gt && new <= cur) {
                    continue;
                }
                processed += 1;
                last = new;
                if new != cur {
                    z.insert(Arc::from(&member[..]), new);
                    updated += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                z.insert(Arc::from(&member[..]), score);
                added += 1;
                processed += 1;
                last = score;
            }
        }
    }
    if added + updated > 0 || !existed {
        cx.db().put_or_delete(tx, &args[1], Value::ZSet(z), ttl)?;
    }
    Ok(if incr {
        if processed > 0 {
            score_reply(last)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int(if ch { added + updated } else { added })
    })
}

pub fn zscore(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((z, _)) = typed!(cx, tx, &args[1], ZSet) else { return Ok(Reply::Nil) };
    Ok(z.scores.get(&args[2][..]).map_or(Reply::Nil, |&s| score_reply(s)))
}

pub fn zcard(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(typed!(cx, tx, &args[1], ZSet).map_or(0, |(z, _)| z.len() as i64)))
}

pub fn zrem(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some((z, ttl)) = typed!(cx, tx, &args[1], ZSet) else { return Ok(Reply::Int(0)) };
    let mut z = z.clone();
    let removed = args[2..].iter().filter(|m| z.remove(m)).count();
    if removed > 0 {
        cx.db().put_or_delete(tx, &args[1], Value::ZSet(z), ttl)?;
    }
    Ok(Reply::Int(removed as i64))
}

pub fn zpopmin(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() > 3 {
        return Ok(SYNTAX);
    }
    let count = match args.get(2) {
        None => 1,
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => n as usize,
            _ => return Ok(Reply::err("ERR value is out of range, must be positive")),
        },
    };
    let Some((z, ttl)) = typed!(cx, tx, &args[1], ZSet) else { return Ok(Reply::Array(vec![])) };
    if count == 0 {
        return Ok(Reply::Array(vec![]));
    }
    let mut z = z.clone();
    let mut out = Vec::new();
    while out.len() < 2 * count {
        let Some((Score(s), m)) = z.order.get_min().cloned() else { break };
        z.remove(&m);
        out.push(Reply::Bulk(m));
        out.push(score_reply(s));
    }
    cx.db().put_or_delete(tx, &args[1], Value::ZSet(z), ttl)?;
    Ok(Reply::Array(out))
}

/// A score bound of `BYSCORE`: the value and whether it is exclusive (`(`).
fn score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    match arg.strip_prefix(b"(") {
        Some(rest) => parse_f64(rest).map(|v| (v, true)),
        None => parse_f64(arg).map(|v| (v, false)),
    }
}

/// A bound of `BYLEX`: `-`, `+`, `[member` (inclusive) or `(member` (exclusive).
enum Lex {
    Min,
    Max,
    At(Vec<u8>, bool),
}

impl Lex {
    /// Whether `m` is at or above this bound used as a minimum.
    fn below_or_at(&self, m: &[u8]) -> bool {
        match self {
            Lex::Min => true,
            Lex::Max => false,
            Lex::At(b, exclusive) => {
                if *exclusive {
                    m > &b[..]
                } else {
                    m >= &b[..]
                }
            }
        }
    }

    /// Whether `m` is at or below this bound used as a maximum.
    fn above_or_at(&self, m: &[u8]) -> bool {
        match self {
            Lex::Min => false,
            Lex::Max => true,
            Lex::At(b, exclusive) => {
                if *exclusive {
                    m < &b[..]
                } else {
                    m <= &b[..]
                }
            }
        }
    }
}

fn lex_bound(arg: &[u8]) -> Option<Lex> {
    match arg {
        b"-" => Some(Lex::Min),
        b"+" => Some(Lex::Max),
        [b'[', rest @ ..] => Some(Lex::At(rest.to_vec(), false)),
        [b'(', rest @ ..] => Some(Lex::At(rest.to_vec(), true)),
        _ => None,
    }
}

/// `ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]`.
/// `BYLEX` walks the members in order and keeps those in the range, which is Redis's
/// answer when all scores are equal (the only case Redis specifies).
pub fn zrange(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let (mut withscores, mut rev, mut byscore, mut bylex) = (false, false, false, false);
    let mut limit: Option<(i64, i64)> = None;
    let mut j = 4;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if eq(a, "withscores") {
            withscores = true;
        } else if eq(a, "limit") && left >= 2 {
            let off = int_arg!(&args[j + 1]);
            let cnt = int_arg!(&args[j + 2]);
            limit = Some((off, cnt));
            j += 2;
        } else if !rev && eq(a, "rev") {
            rev = true;
        } else if !byscore && !bylex && eq(a, "bylex") {
            bylex = true;
        } else if !byscore && !bylex && eq(a, "byscore") {
            byscore = true;
        } else {
            return Ok(SYNTAX);
        }
        j += 1;
    }
    if limit.is_some() && !byscore && !bylex {
        return Ok(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && bylex {
        return Ok(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let emit = |items: Vec<(f64, Bytes)>| {
        let mut out = Vec::new();
        for (s, m) in items {
            out.push(Reply::Bulk(m));
            if withscores {
                out.push(score_reply(s));
            }
        }
        Reply::Array(out)
    };
    if bylex {
        let (lo_arg, hi_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
        let (Some(lo), Some(hi)) = (lex_bound(lo_arg), lex_bound(hi_arg)) else {
            return Ok(Reply::err("ERR min or max not valid string range item"));
        };
        let Some((z, _)) = typed!(cx, tx, &args[1], ZSet) else { return Ok(Reply::Array(vec![])) };
        let all: Box<dyn Iterator<Item = &(Score, Bytes)>> =
            if rev { Box::new(z.order.iter().rev()) } else { Box::new(z.order.iter()) };
        let (offset, count) = limit.unwrap_or((0, -1));
        if offset < 0 {
            return Ok(Reply::Array(vec![]));
        }
        let items = all
            .filter(|(_, m)| lo.below_or_at(m) && hi.above_or_at(m))
            .skip(offset as usize)
            .take(if count < 0 { usize::MAX } else { count as usize })
            .map(|(Score(s), m)| (*s, m.clone()))
            .collect();
        return Ok(emit(items));
    }
    if byscore {
        let (lo_arg, hi_arg) = if rev { (&args[3], &args[2]) } else { (&args[2], &args[3]) };
        let (Some((lo, lo_ex)), Some((hi, hi_ex))) = (score_bound(lo_arg), score_bound(hi_arg))
        else {
            return Ok(Reply::err("ERR min or max is not a float"));
        };
        let Some((z, _)) = typed!(cx, tx, &args[1], ZSet) else { return Ok(Reply::Array(vec![])) };
        let inside = |s: f64| {
            (if lo_ex { s > lo } else { s >= lo }) && (if hi_ex { s < hi } else { s <= hi })
        };
        let all: Box<dyn Iterator<Item = &(Score, Bytes)>> =
            if rev { Box::new(z.order.iter().rev()) } else { Box::new(z.order.iter()) };
        let (offset, count) = limit.unwrap_or((0, -1));
        if offset < 0 {
            return Ok(Reply::Array(vec![]));
        }
        let items = all
            .filter(|(Score(s), _)| inside(*s))
            .skip(offset as usize)
            .take(if count < 0 { usize::MAX } else { count as usize })
            .map(|(Score(s), m)| (*s, m.clone()))
            .collect();
        return Ok(emit(items));
    }
    let start = int_arg!(&args[2]);
    let stop = int_arg!(&args[3]);
    let Some((z, _)) = typed!(cx, tx, &args[1], ZSet) else { return Ok(Reply::Array(vec![])) };
    let Some((a, b)) = range(start, stop, z.len()) else { return Ok(Reply::Array(vec![])) };
    let all: Box<dyn Iterator<Item = &(Score, Bytes)>> =
        if rev { Box::new(z.order.iter().rev()) } else { Box::new(z.order.iter()) };
    Ok(emit(all.skip(a).take(b - a + 1).map(|(Score(s), m)| (*s, m.clone())).collect()))
}
