//! Keyspace commands: TYPE, SCAN, KEYS, EXISTS, DEL, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST.

use std::hash::{DefaultHasher, Hash, Hasher};

use concord_stm::{Stm, Transaction};

use super::{eq, glob_match, int_arg, Cx, SYNTAX};
use crate::dict::resp::Reply;
use crate::dict::store::Bytes;

pub fn type_(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let name = cx.db().get(tx, &args[1], cx.now)?.map_or("none", |e| e.value.type_name());
    Ok(Reply::Simple(name.into()))
}

pub fn keys(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let all = cx.db().keys(tx, cx.now)?;
    Ok(Reply::Array(
        all.into_iter().filter(|k| glob_match(&args[1], k, false)).map(Reply::Bulk).collect(),
    ))
}

/// A key's place in `SCAN` order: a hash that is the same for every call (`DefaultHasher`
/// with its fixed keys), so a cursor stays meaningful while keys come and go.
fn scan_position(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish() >> 1
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`. The cursor is a position in the
/// order of a fixed hash of the keys: every key present for the whole scan is returned
/// (once, unless two calls straddle equal hashes, which are returned together), as Redis
/// guarantees. Each call reads the whole key set (O(n)), unlike Redis's O(count).
pub fn scan(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Ok(cursor) = std::str::from_utf8(&args[1]).unwrap_or("x").parse::<u64>() else {
        return Ok(Reply::err("ERR invalid cursor"));
    };
    let (mut pattern, mut count, mut kind) = (None, 10_usize, None);
    let mut i = 2;
    while i < args.len() {
        let more = i + 1 < args.len();
        if eq(&args[i], "match") && more {
            pattern = Some(&args[i + 1]);
        } else if eq(&args[i], "count") && more {
            let n = int_arg!(&args[i + 1]);
            if n < 1 {
                return Ok(SYNTAX);
            }
            count = n as usize;
        } else if eq(&args[i], "type") && more {
            kind = Some(String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase());
        } else {
            return Ok(SYNTAX);
        }
        i += 2;
    }
    let mut keys: Vec<(u64, Bytes)> = cx
        .db()
        .keys(tx, cx.now)?
        .into_iter()
        .map(|k| (scan_position(&k), k))
        .filter(|(h, _)| *h >= cursor)
        .collect();
    keys.sort_unstable();
    let mut batch = Vec::new();
    let mut next = 0;
    for (idx, (h, k)) in keys.iter().enumerate() {
        if batch.len() >= count && keys[idx - 1].0 != *h {
            next = *h;
            break;
        }
        batch.push(k.clone());
    }
    let mut out = Vec::new();
    for k in batch {
        if pattern.is_some_and(|p| !glob_match(p, &k, false)) {
            continue;
        }
        if let Some(t) = &kind {
            match cx.db().get(tx, &k, cx.now)? {
                Some(e) if e.value.type_name() == t => {}
                _ => continue,
            }
        }
        out.push(Reply::Bulk(k));
    }
    Ok(Reply::Array(vec![Reply::bulk(next.to_string().as_bytes()), Reply::Array(out)]))
}

pub fn exists(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let mut n = 0;
    for k in &args[1..] {
        if cx.db().get(tx, k, cx.now)?.is_some() {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

pub fn del(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let mut n = 0;
    for k in &args[1..] {
        if cx.db().delete(tx, k, cx.now)? {
            n += 1;
        }
    }
    Ok(Reply::Int(n))
}

pub fn expire(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    expire_generic(cx, tx, args, 1000, "expire")
}

pub fn pexpire(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    expire_generic(cx, tx, args, 1, "pexpire")
}

fn expire_generic(
    cx: &mut Cx<'_>,
    tx: &mut Transaction<'_>,
    args: &[Vec<u8>],
    unit: i64,
    name: &str,
) -> Stm<Reply> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq(a, "nx") {
            nx = true;
        } else if eq(a, "xx") {
            xx = true;
        } else if eq(a, "gt") {
            gt = true;
        } else if eq(a, "lt") {
            lt = true;
        } else {
            return Ok(Reply::error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Ok(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Ok(Reply::err("ERR GT and LT options at the same time are not compatible"));
    }
    let when = int_arg!(&args[2]);
    let invalid = || Reply::error(format!("ERR invalid expire time in '{name}' command"));
    let Some(when) = when.checked_mul(unit).and_then(|w| w.checked_add(cx.now as i64)) else {
        return Ok(invalid());
    };
    let key = &args[1];
    let Some(entry) = cx.db().get(tx, key, cx.now)? else { return Ok(Reply::Int(0)) };
    let current = entry.expires_at.map(|d| d as i64);
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.map_or(true, |c| when <= c))
        || (lt && current.is_some_and(|c| when >= c));
    if refused {
        return Ok(Reply::Int(0));
    }
    let value = entry.value.clone();
    if when <= cx.now as i64 {
        cx.db().unlink(tx, key)?;
    } else {
        cx.db().put(tx, key, value, Some(when as u64))?;
    }
    Ok(Reply::Int(1))
}

fn ttl_generic(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, key: &[u8], ms: bool) -> Stm<Reply> {
    Ok(Reply::Int(match cx.db().get(tx, key, cx.now)? {
        None => -2,
        Some(e) => match e.expires_at {
            None => -1,
            Some(d) => {
                let left = d.saturating_sub(cx.now) as i64;
                if ms {
                    left
                } else {
                    (left + 500) / 1000
                }
            }
        },
    }))
}

pub fn ttl(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    ttl_generic(cx, tx, &args[1], false)
}

pub fn pttl(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    ttl_generic(cx, tx, &args[1], true)
}

pub fn persist(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let value = match cx.db().get(tx, &args[1], cx.now)? {
        Some(e) if e.expires_at.is_some() => e.value.clone(),
        _ => return Ok(Reply::Int(0)),
    };
    cx.db().put(tx, &args[1], value, None)?;
    Ok(Reply::Int(1))
}
