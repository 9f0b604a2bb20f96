//! Connection and server commands that run in a transaction: PING, ECHO, SELECT, DBSIZE,
//! FLUSHDB, FLUSHALL, CONFIG GET, COMMAND, INFO.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use concord_stm::{stats, Stm, Transaction};

use super::{c_str, eq, glob_match, wrong_arity, Cx, COMMANDS, SYNTAX};
use crate::dict::resp::{parse_i64, Reply};
use crate::dict::store::DATABASES;

/// The version `INFO` and `HELLO` report: the Redis version whose replies we reproduce.
pub const REDIS_VERSION: &str = "7.0.15";

fn unknown_subcommand(sub: &[u8], container: &str) -> Reply {
    let mut text = b"ERR unknown subcommand '".to_vec();
    text.extend_from_slice(c_str(sub, 128));
    text.extend_from_slice(format!("'. Try {container} HELP.").as_bytes());
    Reply::error_bytes(text)
}

pub fn ping(_: &mut Cx<'_>, _: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(match args.len() {
        1 => Reply::Simple("PONG".into()),
        2 => Reply::bulk(&args[1]),
        _ => wrong_arity("ping"),
    })
}

pub fn echo(_: &mut Cx<'_>, _: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::bulk(&args[1]))
}

pub fn select(cx: &mut Cx<'_>, _: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let Some(i) = parse_i64(&args[1]) else { return Ok(super::NOT_INT) };
    if !(0..DATABASES as i64).contains(&i) {
        return Ok(Reply::err("ERR DB index is out of range"));
    }
    cx.db = i as usize;
    Ok(Reply::OK)
}

pub fn dbsize(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, _: &[Vec<u8>]) -> Stm<Reply> {
    Ok(Reply::Int(cx.db().len(tx)? as i64))
}

fn flush_mode_ok(args: &[Vec<u8>]) -> bool {
    match args.len() {
        1 => true,
        2 => eq(&args[1], "async") || eq(&args[1], "sync"),
        _ => false,
    }
}

pub fn flushdb(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if !flush_mode_ok(args) {
        return Ok(SYNTAX);
    }
    cx.db().clear(tx)?;
    Ok(Reply::OK)
}

pub fn flushall(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if !flush_mode_ok(args) {
        return Ok(SYNTAX);
    }
    for i in 0..DATABASES {
        cx.store.db(i).clear(tx)?;
    }
    Ok(Reply::OK)
}

/// The parameters `CONFIG GET` knows, with their fixed values (the server keeps no data on
/// disk).
fn config_params(cx: &Cx<'_>) -> Vec<(&'static str, String)> {
    vec![
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("databases", DATABASES.to_string()),
        ("maxclients", cx.shared.config.maxclients.to_string()),
        ("proto-max-bulk-len", cx.shared.config.max_bulk_len.to_string()),
        ("port", cx.shared.config.port.to_string()),
        ("bind", cx.shared.config.bind.clone()),
    ]
}

pub fn config(cx: &mut Cx<'_>, _: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if !eq(&args[1], "get") {
        return Ok(unknown_subcommand(&args[1], "CONFIG"));
    }
    if args.len() < 3 {
        return Ok(wrong_arity("config|get"));
    }
    let mut out = Vec::new();
    for (name, value) in config_params(cx) {
        if args[2..].iter().any(|p| glob_match(p, name.as_bytes(), true)) {
            out.push(Reply::bulk(name.as_bytes()));
            out.push(Reply::bulk(value.as_bytes()));
        }
    }
    Ok(Reply::Array(out))
}

fn command_info(spec: &super::Spec) -> Reply {
    let bulk = |s: &str| Reply::bulk(s.as_bytes());
    Reply::Array(vec![
        bulk(spec.name),
        Reply::Int(spec.arity.into()),
        Reply::Array(spec.flags.iter().map(|f| Reply::Simple((*f).into())).collect()),
        Reply::Int(spec.keys.0.into()),
        Reply::Int(spec.keys.1.into()),
        Reply::Int(spec.keys.2.into()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

pub fn command(_: &mut Cx<'_>, _: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    if args.len() == 1 {
        return Ok(Reply::Array(COMMANDS.iter().map(command_info).collect()));
    }
    if eq(&args[1], "count") && args.len() == 2 {
        return Ok(Reply::Int(COMMANDS.len() as i64));
    }
    if eq(&args[1], "info") {
        return Ok(Reply::Array(
            args[2..].iter().map(|n| super::lookup(n).map_or(Reply::Nil, command_info)).collect(),
        ));
    }
    // `COMMAND DOCS` (which redis-cli sends on start) is not implemented: the error makes
    // redis-cli fall back to its built-in help.
    Ok(unknown_subcommand(&args[1], "COMMAND"))
}

pub fn info(cx: &mut Cx<'_>, tx: &mut Transaction<'_>, args: &[Vec<u8>]) -> Stm<Reply> {
    let wanted: Vec<String> =
        args[1..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let all = wanted.is_empty()
        || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let sh = cx.shared;
    let mut out = String::new();
    let mut section = |name: &str, body: String| {
        if want(&name.to_ascii_lowercase()) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let _ = write!(out, "# {name}\r\n{body}");
        }
    };
    let uptime = sh.started.elapsed().as_secs();
    section(
        "Server",
        format!(
            "redis_version:{REDIS_VERSION}\r\nredis_mode:standalone\r\nserver_name:concord-dict-server\r\n\
             process_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n\
             executor:tokio\r\nio_threads:{}\r\n",
            std::process::id(),
            sh.config.port,
            uptime / 86400,
            sh.config.threads,
        ),
    );
    section(
        "Clients",
        format!(
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n",
            sh.connected.load(Ordering::Relaxed),
            sh.config.maxclients,
            sh.blocked.load(Ordering::Relaxed),
        ),
    );
    section(
        "Stats",
        format!(
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\n\
             expired_keys:{}\r\n",
            sh.total_connections.load(Ordering::Relaxed),
            sh.total_commands.load(Ordering::Relaxed),
            sh.rejected.load(Ordering::Relaxed),
            sh.expired_keys.load(Ordering::Relaxed),
        ),
    );
    let s = stats::snapshot();
    section(
        "Stm",
        format!(
            "stm_commits:{}\r\nstm_read_only_commits:{}\r\nstm_aborts:{}\r\nstm_aborts_read:{}\r\n\
             stm_aborts_lock:{}\r\nstm_aborts_validate:{}\r\nstm_retries:{}\r\nstm_wakeups:{}\r\n\
             stm_serial_escalations:{}\r\n",
            s.commits,
            s.read_only_commits,
            s.aborts(),
            s.aborts_read,
            s.aborts_lock,
            s.aborts_validate,
            s.retries,
            s.wakeups,
            s.serial_escalations,
        ),
    );
    if want("keyspace") {
        let mut body = String::new();
        for i in 0..DATABASES {
            let db = cx.store.db(i);
            let keys = db.len(tx)?;
            if keys > 0 {
                let _ =
                    write!(body, "db{i}:keys={keys},expires={},avg_ttl=0\r\n", db.expires_len(tx)?);
            }
        }
        section("Keyspace", body);
    }
    Ok(Reply::bulk(out.as_bytes()))
}
