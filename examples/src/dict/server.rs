//! The network side: the listener, one tokio task per connection, the per-connection state
//! (selected database, `MULTI` queue, watched keys, authentication), blocking pops, and
//! shutdown.
//!
//! A connection reads what the client sent, parses every complete request in the buffer,
//! runs each (one `atomically` per command, inline on the tokio task: a command never
//! `retry`s there, so it never parks the worker), appends each reply to one output buffer
//! and writes it once. A blocking pop that must wait first writes the replies before it,
//! then awaits an `atomically_async` future under `tokio::time::timeout`, while still
//! reading the socket so that a client that hangs up is noticed (its waiter is dropped,
//! which takes its ticket out of the queues).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_stm::{atomically, atomically_async, retry, TVar};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::commands::lists::{self, Blocking};
use super::commands::{self, arity_ok, c_str, eq, lookup, unknown_command, wrong_arity, Cx, Kind};
use super::expiry;
use super::resp::{self, Args, Limits, Parsed, Reply};
use super::store::{now_ms, Blocked, Store, WatchToken};

/// The server's configuration (the command-line flags of `dict-server`).
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (loopback unless told otherwise).
    pub bind: String,
    /// The TCP port (0 picks a free one).
    pub port: u16,
    /// Tokio worker threads.
    pub threads: usize,
    /// The password clients must give with `AUTH`, if any.
    pub requirepass: Option<String>,
    /// The most clients connected at once.
    pub maxclients: usize,
    /// The longest bulk argument a request may declare (Redis's `proto-max-bulk-len`).
    pub max_bulk_len: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1".into(),
            port: 6380,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            requirepass: None,
            maxclients: 10_000,
            max_bulk_len: resp::DEFAULT_MAX_BULK,
        }
    }
}

/// What every connection shares: the configuration, the store and the counters `INFO`
/// reports.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The keyspace.
    pub store: Store,
    /// When the server started.
    pub started: Instant,
    /// Clients connected now.
    pub connected: AtomicUsize,
    /// Clients blocked in a pop now.
    pub blocked: AtomicUsize,
    /// Connections accepted since the start.
    pub total_connections: AtomicU64,
    /// Commands run since the start.
    pub total_commands: AtomicU64,
    /// Connections refused by `--maxclients`.
    pub rejected: AtomicU64,
    /// Keys removed by the expiry sweep.
    pub expired_keys: AtomicU64,
}

/// A bound server, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listener.
    ///
    /// # Errors
    ///
    /// If the address cannot be bound.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let listener = TcpListener::bind((config.bind.as_str(), config.port)).await?;
        let shared = Arc::new(Shared {
            config,
            store: Store::new(),
            started: Instant::now(),
            connected: AtomicUsize::new(0),
            blocked: AtomicUsize::new(0),
            total_connections: AtomicU64::new(0),
            total_commands: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            expired_keys: AtomicU64::new(0),
        });
        Ok(Server { listener, shared })
    }

    /// The address the server listens on.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (store and counters).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Serves clients until `shutdown` completes, then stops accepting, tells every
    /// connection to close after the reply it is writing, and returns once they have (or
    /// after two seconds).
    ///
    /// # Errors
    ///
    /// If accepting fails for a reason other than a transient one.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let sweeper = tokio::spawn(expiry::sweep_forever(self.shared.clone(), stop_rx.clone()));
        tokio::pin!(shutdown);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(s) => s,
                        // Out of file descriptors and the like: keep serving the others.
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                    let shared = self.shared.clone();
                    let id = shared.total_connections.fetch_add(1, Ordering::Relaxed) + 1;
                    // Relaxed counters: statistics and a limit, not synchronization.
                    if shared.connected.fetch_add(1, Ordering::Relaxed) >= shared.config.maxclients {
                        shared.connected.fetch_sub(1, Ordering::Relaxed);
                        shared.rejected.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(async move {
                            let mut stream = stream;
                            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
                        });
                        continue;
                    }
                    let stop = stop_rx.clone();
                    tasks.spawn(async move {
                        let _ = stream.set_nodelay(true);
                        let _ = Connection::new(&shared, id).serve(stream, stop).await;
                        shared.connected.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        let _ = sweeper.await;
        Ok(())
    }
}

/// A server running on its own tokio runtime in a background thread (for tests and
/// embedding). Dropping it without [`shutdown`](Self::shutdown) leaves the server running
/// until the process exits.
///
/// # Examples
///
/// ```
/// use concord_examples::dict::client::Client;
/// use concord_examples::dict::{Background, Config};
///
/// // Port 0: any free port.
/// let server = Background::start(Config { port: 0, threads: 1, ..Config::default() }).unwrap();
/// let mut c = Client::connect(server.addr()).unwrap();
/// assert_eq!(c.call(&["RPUSH", "jobs", "a", "b"]).unwrap(), b":2\r\n");
/// assert_eq!(c.call(&["BLPOP", "jobs", "1"]).unwrap(), b"*2\r\n$4\r\njobs\r\n$1\r\na\r\n");
/// server.shutdown().unwrap();
/// ```
#[derive(Debug)]
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Background {
    /// Binds and starts a server with `config` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// If the runtime cannot start or the address cannot be bound.
    pub fn start(config: Config) -> io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .enable_all()
            .build()?;
        let server = runtime.block_on(Server::bind(config))?;
        let addr = server.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("dict-server".into()).spawn(move || {
            let result = runtime.block_on(server.run(async {
                let _ = stopped.await;
            }));
            runtime.shutdown_timeout(Duration::from_secs(2));
            result
        })?;
        Ok(Background { addr, stop: Some(stop), thread: Some(thread) })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for it.
    ///
    /// # Errors
    ///
    /// What [`Server::run`] returned.
    pub fn shutdown(mut self) -> io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the server thread panicked")),
            None => Ok(()),
        }
    }
}

/// A key watched by `WATCH`: its database, and what `EXEC` compares. Each is registered
/// in the store until [`Connection::unwatch_all`] (or `EXEC`) ends it.
struct Watched {
    db: usize,
    key: Vec<u8>,
    token: WatchToken,
}

/// What the connection does after a request.
enum Action {
    /// Send this reply and go on.
    Reply(Reply),
    /// Send this reply and close (`QUIT`).
    Close(Reply),
    /// Wait for this blocking pop.
    Block(Blocking),
}

/// One client's state.
struct Connection<'s> {
    shared: &'s Shared,
    /// The client's id (`HELLO` reports it), counted from 1 in order of connection.
    id: u64,
    db: usize,
    authenticated: bool,
    /// The queued commands of an open `MULTI`, and whether one failed to queue.
    multi: Option<(Vec<Args>, bool)>,
    watched: Vec<Watched>,
}

impl<'s> Connection<'s> {
    fn new(shared: &'s Shared, id: u64) -> Self {
        Connection {
            shared,
            id,
            db: 0,
            authenticated: shared.config.requirepass.is_none(),
            multi: None,
            watched: Vec::new(),
        }
    }

    fn limits(&self) -> Limits {
        Limits { max_bulk_len: self.shared.config.max_bulk_len, authenticated: self.authenticated }
    }

    async fn serve(
        mut self,
        mut stream: TcpStream,
        mut stop: watch::Receiver<bool>,
    ) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut need = 1;
        loop {
            if buf.len() >= need {
                let mut pos = 0;
                let mut close = false;
                loop {
                    match resp::parse(&buf[pos..], &self.limits()) {
                        Ok(Parsed::Request(args, used)) => {
                            pos += used;
                            if args.is_empty() {
                                continue;
                            }
                            match self.handle(args) {
                                Action::Reply(r) => r.encode(&mut out),
                                Action::Close(r) => {
                                    r.encode(&mut out);
                                    close = true;
                                    break;
                                }
                                Action::Block(req) => {
                                    stream.write_all(&out).await?;
                                    out.clear();
                                    match self.block(&req, &mut stream, &mut buf, &mut stop).await?
                                    {
                                        Some(r) => r.encode(&mut out),
                                        None => return Ok(()),
                                    }
                                }
                            }
                        }
                        Ok(Parsed::Incomplete(n)) => {
                            need = n;
                            break;
                        }
                        Err(e) => {
                            Reply::error(format!("ERR {e}")).encode(&mut out);
                            close = true;
                            break;
                        }
                    }
                }
                buf.drain(..pos);
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                if close {
                    return Ok(());
                }
            }
            tokio::select! {
                read = stream.read_buf(&mut buf) => {
                    if read? == 0 {
                        return Ok(());
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Runs one request (not a blocking wait: that is [`block`](Self::block)).
    fn handle(&mut self, args: Args) -> Action {
        self.shared.total_commands.fetch_add(1, Ordering::Relaxed);
        let Some(spec) = lookup(&args[0]) else { return self.reject(unknown_command(&args)) };
        if !arity_ok(spec.arity, args.len()) {
            return self.reject(wrong_arity(spec.name));
        }
        let name = spec.name;
        if !self.authenticated && !matches!(name, "auth" | "hello" | "quit") {
            return self.reject(Reply::err("NOAUTH Authentication required."));
        }
        if let Some((queue, _)) = &mut self.multi {
            if !matches!(name, "exec" | "discard" | "multi" | "watch" | "quit") {
                queue.push(args);
                return Action::Reply(Reply::Simple("QUEUED".into()));
            }
        }
        match name {
            "quit" => Action::Close(Reply::OK),
            "multi" => Action::Reply(if self.multi.is_some() {
                Reply::err("ERR MULTI calls can not be nested")
            } else {
                self.multi = Some((Vec::new(), false));
                Reply::OK
            }),
            "discard" => Action::Reply(match self.multi.take() {
                None => Reply::err("ERR DISCARD without MULTI"),
                Some(_) => {
                    self.unwatch_all();
                    Reply::OK
                }
            }),
            "exec" => Action::Reply(self.exec()),
            "watch" => Action::Reply(self.watch(&args)),
            "unwatch" => {
                self.unwatch_all();
                Action::Reply(Reply::OK)
            }
            "auth" => Action::Reply(self.auth(&args)),
            "hello" => Action::Reply(self.hello(&args)),
            "blpop" | "brpop" | "blmove" => match lists::parse_blocking(name, &args) {
                Ok(req) => Action::Block(req),
                Err(e) => Action::Reply(e),
            },
            _ => {
                debug_assert_eq!(spec.kind, Kind::Data);
                let handler = spec.handler.expect("data commands have a handler");
                let (shared, db) = (self.shared, self.db);
                let (reply, db) = atomically(|tx| {
                    let mut cx = Cx::new(shared, db);
                    let reply = handler(&mut cx, tx, &args)?;
                    lists::serve_ready(&mut cx, tx)?;
                    Ok((reply, cx.db))
                });
                self.db = db;
                Action::Reply(reply)
            }
        }
    }

    /// An error before the command runs; inside `MULTI` it also dooms the `EXEC`.
    fn reject(&mut self, reply: Reply) -> Action {
        if let Some((_, dirty)) = &mut self.multi {
            *dirty = true;
        }
        Action::Reply(reply)
    }

    fn watch(&mut self, args: &[Vec<u8>]) -> Reply {
        if self.multi.is_some() {
            return Reply::err("ERR WATCH inside MULTI is not allowed");
        }
        let (store, db) = (&self.shared.store, self.db);
        // As in Redis, watching a key again keeps the first watch.
        let mut new: Vec<&Vec<u8>> = Vec::new();
        for key in &args[1..] {
            if !new.contains(&key) && !self.watched.iter().any(|w| w.db == db && &w.key == key) {
                new.push(key);
            }
        }
        let tokens = atomically(|tx| {
            let now = now_ms();
            new.iter().map(|k| store.db(db).watch(tx, k, now)).collect::<Result<Vec<_>, _>>()
        });
        for (key, token) in new.into_iter().zip(tokens) {
            self.watched.push(Watched { db, key: key.clone(), token });
        }
        Reply::OK
    }

    /// Ends every watch of this client (`UNWATCH`, `DISCARD`, `EXEC` refused, hang-up).
    fn unwatch_all(&mut self) {
        if self.watched.is_empty() {
            return;
        }
        let watched = std::mem::take(&mut self.watched);
        let store = &self.shared.store;
        atomically(|tx| {
            for w in &watched {
                store.db(w.db).unwatch(tx, &w.key)?;
            }
            Ok(())
        });
    }

    fn exec(&mut self) -> Reply {
        let Some((queue, dirty)) = self.multi.take() else {
            return Reply::err("ERR EXEC without MULTI");
        };
        if dirty {
            self.unwatch_all();
            return Reply::err("EXECABORT Transaction discarded because of previous errors.");
        }
        let watched = std::mem::take(&mut self.watched);
        let shared = self.shared;
        let start_db = self.db;
        let mut authenticated = self.authenticated;
        let outcome = atomically(|tx| {
            let mut cx = Cx::new(shared, start_db);
            let mut changed = false;
            for w in &watched {
                let db = shared.store.db(w.db);
                changed = changed || db.watch_changed(tx, &w.key, w.token, cx.now)?;
                // The watches end with this EXEC, whatever its outcome.
                db.unwatch(tx, &w.key)?;
            }
            if changed {
                return Ok(None);
            }
            let mut replies = Vec::with_capacity(queue.len());
            let mut auth = None;
            for args in &queue {
                let spec = lookup(&args[0]).expect("queued commands exist");
                let reply = match (spec.handler, spec.name) {
                    (Some(handler), _) => handler(&mut cx, tx, args)?,
                    (None, "unwatch") => Reply::OK,
                    (None, "auth") => {
                        let (reply, ok) = auth_reply(shared, args);
                        auth = auth.or(ok.then_some(true));
                        reply
                    }
                    (None, "hello") => {
                        Reply::err("ERR HELLO is not supported inside MULTI by dict-server")
                    }
                    (None, other) => unreachable!("{other} is never queued"),
                };
                replies.push(reply);
            }
            lists::serve_ready(&mut cx, tx)?;
            Ok(Some((replies, cx.db, auth)))
        });
        match outcome {
            None => Reply::NilArray,
            Some((replies, db, auth)) => {
                self.db = db;
                if auth == Some(true) {
                    authenticated = true;
                }
                self.authenticated = authenticated;
                Reply::Array(replies)
            }
        }
    }

    fn auth(&mut self, args: &[Vec<u8>]) -> Reply {
        let (reply, ok) = auth_reply(self.shared, args);
        if ok {
            self.authenticated = true;
        }
        reply
    }

    fn hello(&mut self, args: &[Vec<u8>]) -> Reply {
        if args.len() >= 2 {
            match resp::parse_i64(&args[1]) {
                None => {
                    return Reply::err("ERR Protocol version is not an integer or out of range")
                }
                // RESP3 is not implemented.
                Some(v) if v != 2 => return Reply::err("NOPROTO unsupported protocol version"),
                Some(_) => {}
            }
        }
        let mut j = 2;
        while j < args.len() {
            let more = args.len() - j - 1;
            if eq(&args[j], "auth") && more >= 2 {
                let (reply, ok) = auth_reply(
                    self.shared,
                    &[b"auth".to_vec(), args[j + 1].clone(), args[j + 2].clone()],
                );
                if !ok {
                    return reply;
                }
                self.authenticated = true;
                j += 3;
            } else if eq(&args[j], "setname") && more >= 1 {
                j += 2;
            } else {
                let mut text = b"ERR Syntax error in HELLO option '".to_vec();
                text.extend_from_slice(c_str(&args[j], 128));
                text.push(b'\'');
                return Reply::error_bytes(text);
            }
        }
        if !self.authenticated {
            return Reply::err(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO \
                 <proto> AUTH <user> <pass> option can be used to authenticate the client and select the \
                 RESP protocol version at the same time",
            );
        }
        let bulk = |s: &str| Reply::bulk(s.as_bytes());
        Reply::Array(vec![
            bulk("server"),
            bulk("redis"),
            bulk("version"),
            bulk(commands::REDIS_VERSION),
            bulk("proto"),
            Reply::Int(2),
            bulk("id"),
            Reply::Int(self.id as i64),
            bulk("mode"),
            bulk("standalone"),
            bulk("role"),
            bulk("master"),
            bulk("modules"),
            Reply::Array(vec![]),
        ])
    }

    /// A blocking pop: serve it at once if it can, else queue a ticket and wait (reading the
    /// socket meanwhile, to notice a hang-up). `Ok(None)`: the client is gone or the
    /// server is stopping.
    async fn block(
        &mut self,
        req: &Blocking,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
        stop: &mut watch::Receiver<bool>,
    ) -> io::Result<Option<Reply>> {
        let (shared, db) = (self.shared, self.db);
        let blocked = Arc::new(Blocked {
            ticket: shared.store.ticket(),
            req: req.clone(),
            reply: TVar::new(None),
        });
        let first = atomically(|tx| {
            let mut cx = Cx::new(shared, db);
            let reply = lists::try_or_enqueue(&mut cx, tx, &blocked)?;
            lists::serve_ready(&mut cx, tx)?;
            Ok(reply)
        });
        if let Some(reply) = first {
            return Ok(Some(reply));
        }
        let _waiter = Waiter { shared, db, blocked: &blocked };
        shared.blocked.fetch_add(1, Ordering::Relaxed);
        let _blocked = Decrement(&shared.blocked);
        // Woken only by the commit that serves this client (see `lists::serve_ready`).
        let wait = atomically_async(|tx| match tx.read(&blocked.reply)? {
            Some(reply) => Ok(reply.clone()),
            None => retry(),
        });
        let timed = async {
            if req.timeout > 0.0 {
                let limit = Duration::from_secs_f64(req.timeout.min(1e9));
                match tokio::time::timeout(limit, wait).await {
                    Ok(reply) => reply,
                    // Served between the timer firing and now, or not at all: one
                    // transaction decides, so an element handed over is never lost.
                    Err(_) => atomically(|tx| {
                        if let Some(reply) = tx.read(&blocked.reply)? {
                            return Ok(reply.clone());
                        }
                        let mut cx = Cx::new(shared, db);
                        lists::leave(&mut cx, tx, &blocked.req, blocked.ticket)?;
                        Ok(lists::empty_reply_timeout(req))
                    }),
                }
            } else {
                wait.await
            }
        };
        tokio::pin!(timed);
        loop {
            tokio::select! {
                biased;
                served = &mut timed => return Ok(Some(served)),
                read = stream.read_buf(buf) => {
                    // Requests that arrive while blocked wait in the buffer, as in Redis.
                    if read? == 0 {
                        return Ok(None);
                    }
                }
                _ = stop.changed() => return Ok(None),
            }
        }
    }
}

/// `AUTH [user] password`: the reply and whether it authenticated.
fn auth_reply(shared: &Shared, args: &[Vec<u8>]) -> (Reply, bool) {
    if args.len() > 3 {
        return (commands::SYNTAX, false);
    }
    let (user, pass) =
        if args.len() == 3 { (&args[1][..], &args[2]) } else { (&b"default"[..], &args[1]) };
    match &shared.config.requirepass {
        None if args.len() == 2 => (
            Reply::err(
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            false,
        ),
        None if user == b"default" => (Reply::OK, true),
        Some(p) if user == b"default" && p.as_bytes() == &pass[..] => (Reply::OK, true),
        _ => (Reply::err("WRONGPASS invalid username-password pair or user is disabled."), false),
    }
}

/// A queued blocking pop: dropping it (the client gone, or the server stopping) takes it
/// out of every queue. Once served or timed out it is in no queue and this does nothing.
struct Waiter<'a> {
    shared: &'a Shared,
    db: usize,
    blocked: &'a Blocked,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let (shared, db) = (self.shared, self.db);
        atomically(|tx| {
            let mut cx = Cx::new(shared, db);
            lists::leave(&mut cx, tx, &self.blocked.req, self.blocked.ticket)
        });
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        self.unwatch_all();
    }
}

/// Decrements a counter when dropped.
struct Decrement<'a>(&'a AtomicUsize);

impl Drop for Decrement<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
