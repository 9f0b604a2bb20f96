//! Integration tests of Concord.
//!
//! The tests live in `tests/tests/`, one file (one test binary) per concern:
//!
//! | file            | what it checks                                                            |
//! |-----------------|---------------------------------------------------------------------------|
//! | `laws.rs`       | quickcheck properties: read-your-writes, aborts leave no trace, `or_else`, conservation, nesting |
//! | `semantics.rs`  | one behaviour per test: `retry`, panics, hooks, `or_else` waiting, `Debug`, stats |
//! | `async_wait.rs` | `atomically_async` under small executors: wakeups and cancellation        |
//! | `alloc.rs`      | a counting global allocator: what a transaction allocates                 |
//! | `reclaim.rs`    | drop-counting values: every value is dropped exactly once                 |
//! | `policy.rs`     | the process-wide contention policy (serial mode always, or never)         |
//! | `stress.rs`     | bounded stress: conservation, opacity, lost wakeups, starvation           |
//! | `executor.rs`   | the executor: `retry` suspends tasks, not workers; panics, cancellation, `for_each_tx`, FIFO yields |
//! | `executor_serialize.rs` | the executor's adaptive mode: tasks hot on one TVar take turns, others never wait |
//! | `tokio_runtime.rs` | the STM's futures on tokio's multi-thread runtime                      |
//! | `collections_model.rs` | quickcheck: the collections against `std` models                   |
//! | `collections_stress.rs` | concurrent collections: every item once, replay of a `TMap`, `TSem` permits |
//! | `collections_conflicts.rs` | hand-interleaved transactions on unrelated keys commit with no abort |
//! | `dict_server_e2e.rs` | `dict-server` with `redis-cli`, the `redis` crate, auth, limits, expiry, SIGTERM, collections of 100k elements |
//! | `dict_server_diff.rs` | random command sequences: replies byte for byte against `redis-server` |
//! | `dict_server_concurrency.rs` | MULTI/EXEC transfers conserve the total; BLPOP FIFO, nothing lost |
//! | `dict_server_abuse.rs` | malformed RESP, garbage, half-open and slow clients; bystanders unharmed |
//! | `dict_server_bench.rs` | the issue's `redis-benchmark` command, with and without `-r`: no error |
//!
//! This library holds the few helpers those files share, and the [`bounds`] module, whose
//! doctests pin the `Send`/`Sync`/`'static` bounds of the STM's types with `compile_fail`
//! pairs (a doctest is the only place a `compile_fail` test can live).

use std::panic;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Runs `f` on a new thread and returns its result, or panics naming `what` if `f` has not
/// returned within `limit`.
///
/// This is how a test bounds something that would hang forever if the STM lost a wakeup or
/// starved a transaction. The limit is a hang detector, far above any expected duration: a
/// test never asserts speed. On a timeout the thread is left behind (it cannot be
/// cancelled); the test fails and the process exits at the end of the run.
///
/// # Panics
///
/// Panics if the limit passes, and resumes the panic of `f` if it panicked.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let x = concord_tests::run_within(Duration::from_secs(10), "an addition", || 40 + 2);
/// assert_eq!(x, 42);
/// ```
#[track_caller]
pub fn run_within<T, F>(limit: Duration, what: &str, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(format!("run_within: {what}"))
        .spawn(move || {
            // The receiver may be gone after a timeout; nothing to report then.
            let _ = tx.send(f());
        })
        .expect("spawn a thread");
    match rx.recv_timeout(limit) {
        Ok(value) => {
            handle.join().expect("the thread returned a value, so it did not panic");
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the thread sends before it returns"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!(
                "{what} did not finish within {limit:?}: a lost wakeup, a deadlock or starvation"
            )
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or with formatting), or a
/// placeholder for other payload types.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<a payload that is not a string>".to_owned()
    }
}

/// A seed for a randomized test: `CONCORD_SEED` from the environment if set (to replay a
/// failure), else one taken from the clock. Printed with `name`, so a failing run's output
/// says how to replay it.
pub fn seed(name: &str) -> u64 {
    let seed = match std::env::var("CONCORD_SEED") {
        Ok(s) => s.parse().expect("CONCORD_SEED must be a u64"),
        Err(_) => SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    };
    println!("{name}: seed {seed} (replay with CONCORD_SEED={seed})");
    seed
}

/// Panics with a clear message if the program `tool` is not installed (it must answer
/// `--version`): the `dict-server` tests need Debian's `redis-tools` and `redis-server`,
/// and a missing tool must fail them, not skip them.
pub fn require_tool(tool: &str) {
    let found = std::process::Command::new(tool).arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{tool} is not installed: these tests need Debian's redis-tools and redis-server \
         (apt-get install -y redis-tools redis-server; .ci/run does this)"
    );
}

/// Picks `release` in an optimized build and `debug` in a debug build: stress tests run
/// fewer iterations where the code is ten times slower.
pub const fn scaled(release: u64, debug: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

pub mod bounds {
    //! The bounds of the STM's types, pinned by `compile_fail` doctests, each paired with a
    //! twin that compiles, so that a bound cannot silently loosen (or tighten).
    //!
    //! # A `Transaction` stays on its thread
    //!
    //! A `Transaction` is neither `Send` nor `Sync`: it is a handle to the logs of the
    //! calling thread's attempt.
    //!
    //! ```compile_fail,E0277
    //! fn assert_send<T: Send>() {}
    //! assert_send::<concord_stm::Transaction<'static>>();
    //! ```
    //!
    //! ```compile_fail,E0277
    //! fn assert_sync<T: Sync>() {}
    //! assert_sync::<concord_stm::Transaction<'static>>();
    //! ```
    //!
    //! So a body cannot hand it to another thread:
    //!
    //! ```compile_fail,E0277
    //! use concord_stm::{atomically, TVar};
    //!
    //! let v = TVar::new(1_u64);
    //! atomically(|tx| {
    //!     std::thread::scope(|s| {
    //!         s.spawn(|| tx.get(&v)).join().unwrap()
    //!     })
    //! });
    //! ```
    //!
    //! The twin: another thread may run a transaction of its own on the same `TVar`.
    //!
    //! ```
    //! use concord_stm::{atomically, TVar};
    //!
    //! let v = TVar::new(1_u64);
    //! let x = atomically(|tx| {
    //!     let mine = tx.get(&v)?;
    //!     let theirs = std::thread::scope(|s| {
    //!         s.spawn(|| atomically(|tx| tx.get(&v))).join().unwrap()
    //!     });
    //!     Ok(mine + theirs)
    //! });
    //! assert_eq!(x, 2);
    //! ```
    //!
    //! # A reference from `read` lives only as long as the attempt
    //!
    //! ```compile_fail
    //! use concord_stm::{atomically, TVar};
    //!
    //! let v = TVar::new(String::from("x"));
    //! let s: &String = atomically(|tx| tx.read(&v));
    //! ```
    //!
    //! The twin clones the value out:
    //!
    //! ```
    //! use concord_stm::{atomically, TVar};
    //!
    //! let v = TVar::new(String::from("x"));
    //! let s: String = atomically(|tx| tx.get(&v));
    //! assert_eq!(s, "x");
    //! ```
    //!
    //! # A `TVar` holds only `Send + Sync + 'static` values
    //!
    //! A value is shared by every thread that reads the `TVar` (`T: Sync`) and dropped by
    //! whichever thread reclaims it (`T: Send`); it may outlive any stack frame (`'static`).
    //!
    //! `Rc` is neither `Send` nor `Sync`:
    //!
    //! ```compile_fail,E0277
    //! let v = concord_stm::TVar::new(std::rc::Rc::new(1_u8));
    //! ```
    //!
    //! ```
    //! let v = concord_stm::TVar::new(std::sync::Arc::new(1_u8));
    //! ```
    //!
    //! `Cell` is `Send` but not `Sync`:
    //!
    //! ```compile_fail,E0277
    //! let v = concord_stm::TVar::new(std::cell::Cell::new(1_u8));
    //! ```
    //!
    //! ```
    //! let v = concord_stm::TVar::new(std::sync::atomic::AtomicU8::new(1));
    //! ```
    //!
    //! A borrowed value that does not live for `'static`:
    //!
    //! ```compile_fail,E0597
    //! let s = String::from("borrowed");
    //! let v = concord_stm::TVar::new(s.as_str());
    //! # drop(v);
    //! ```
    //!
    //! A struct cannot hold a `TVar` of a non-`'static` borrow:
    //!
    //! ```compile_fail,E0477
    //! struct Holder<'a> {
    //!     v: concord_stm::TVar<&'a str>,
    //! }
    //! ```
    //!
    //! A function may name `TVar<&'a str>` (its signature implies `'a: 'static`), but no
    //! caller can pass it a borrow shorter than `'static`:
    //!
    //! ```compile_fail,E0597
    //! fn make<'a>(s: &'a str) -> concord_stm::TVar<&'a str> {
    //!     concord_stm::TVar::new(s)
    //! }
    //! let s = String::from("borrowed");
    //! let v = make(&s);
    //! # drop(v);
    //! ```
    //!
    //! ```
    //! fn make(s: &'static str) -> concord_stm::TVar<&'static str> {
    //!     concord_stm::TVar::new(s)
    //! }
    //! assert_eq!(make("static").read_atomic(), "static");
    //! ```
    //!
    //! # A `TVar` of a `Send + Sync` value is `Send + Sync`
    //!
    //! ```
    //! fn assert_send_sync<T: Send + Sync>() {}
    //! assert_send_sync::<concord_stm::TVar<u64>>();
    //! assert_send_sync::<concord_stm::TVar<String>>();
    //! assert_send_sync::<concord_stm::TVar<std::sync::Arc<Vec<u8>>>>();
    //! ```
    //!
    //! Its twin: a `TVar<T>` with `T` not `Sync` cannot even be named in a bound.
    //!
    //! ```compile_fail,E0277
    //! fn assert_send_sync<T: Send + Sync>() {}
    //! assert_send_sync::<concord_stm::TVar<std::cell::Cell<u64>>>();
    //! ```
    //!
    //! # A blocked `retry` cannot be swallowed by mistake
    //!
    //! The body's error is `#[must_use]` and opaque: it has no public variant to match on.
    //!
    //! ```compile_fail,E0599
    //! use concord_stm::{retry, StmError};
    //!
    //! let e: StmError = retry::<()>().unwrap_err();
    //! let _ = StmError::Retry;
    //! ```
    //!
    //! ```
    //! use concord_stm::{retry, StmError};
    //!
    //! let e: StmError = retry::<()>().unwrap_err();
    //! assert_eq!(format!("{e:?}"), "StmError(retry)");
    //! ```
}

/// Hashes a `u32` key `k` to `k << 5 | 31`: every key falls in the last slot of a
/// `TMap::new()`'s root (32 slots), among the last that `clear` locks, and spreads one level
/// down.
#[derive(Clone, Copy, Debug, Default)]
pub struct LastRootSlot(u64);

impl std::hash::Hasher for LastRootSlot {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u32 keys are hashed")
    }
    fn write_u32(&mut self, k: u32) {
        self.0 = (u64::from(k) << 5) | 31;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A transaction writes a key into a node and then cuts the node off (`clear`), refilling
/// the map without that key, `rounds` times; the key is absent before and after each commit,
/// so a lookup outside transactions (`TMap::get_atomic`, `TSet::contains_atomic`) must never
/// find it. One that read the root slot before the commit locked it, then the key's bucket
/// after the commit published it, found it (a phantom), until lookups learned to check the
/// slots above their bucket. Returns the lookups made.
pub fn outside_lookups_see_no_phantom(rounds: u64) -> u64 {
    use concord_stm::atomically;
    use concord_stm::collections::{TMap, TSet};
    use std::hash::BuildHasherDefault;
    use std::sync::atomic::{AtomicBool, Ordering};
    const PROBE: u32 = 1_000;
    const KEYS: u32 = 40; // more than a bucket holds: the slot is a node
    let map = TMap::with_hasher(BuildHasherDefault::<LastRootSlot>::default());
    let set = TSet::with_hasher(BuildHasherDefault::<LastRootSlot>::default());
    let fill = |tx: &mut concord_stm::Transaction<'_>, round: u64| {
        (0..KEYS).try_for_each(|k| {
            map.insert(tx, k, round)?;
            set.insert(tx, k).map(drop)
        })
    };
    atomically(|tx| fill(tx, 0));
    let done = AtomicBool::new(false);
    let start = std::sync::Barrier::new(2);
    thread::scope(|s| {
        s.spawn(|| {
            /// Ends the reader's loop however the writer ends, a panic included.
            struct Done<'a>(&'a AtomicBool);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    self.0.store(true, Ordering::Release);
                }
            }
            let _done = Done(&done);
            start.wait();
            for round in 1..=rounds {
                atomically(|tx| {
                    map.insert(tx, PROBE, round)?;
                    set.insert(tx, PROBE)?;
                    map.clear(tx)?;
                    set.clear(tx)?;
                    fill(tx, round)
                });
            }
        });
        start.wait();
        let mut lookups = 0;
        while !done.load(Ordering::Acquire) {
            assert_eq!(map.get_atomic(&PROBE), None, "a phantom entry, after {lookups} lookups");
            assert!(!set.contains_atomic(&PROBE), "a phantom member, after {lookups} lookups");
            assert!(map.get_atomic(&(lookups as u32 % KEYS)).is_some(), "a key went missing");
            lookups += 1;
        }
        lookups
    })
}
