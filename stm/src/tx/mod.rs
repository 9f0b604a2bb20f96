//! The transaction: its per-thread logs and the operations a body performs.
//!
//! Each thread owns one [`TxInner`] (reused by every transaction it runs, so logs keep their
//! capacity and a transaction in steady state allocates only the new values it writes). A
//! body sees it through a [`Transaction`] handle; a nested `atomically` makes a second
//! handle to the same logs (closed nesting), which is why all log access goes through one
//! `UnsafeCell` and never stays borrowed across a call into user code (INV-LOGS).

mod commit;
mod lent;
mod read_set;
mod write_set;

use std::cell::{Cell, UnsafeCell};
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe, Location};

use crossbeam_utils::CachePadded;

use self::lent::Lent;
use self::read_set::{ReadEntry, ReadSet};
use self::write_set::{Disposal, Superseded, WriteEntry, WriteSet, NOT_READ};
use crate::clock::CLOCK;
use crate::contention::lock_patience;
use crate::error::{Control, Kind, Stm, StmError};
use crate::inline::{self, is_inline};
use crate::lock_word::{self, is_locked, same_state, LOCKED};
use crate::reclaim::{self, Guard, LocalHandle};
use crate::stats::{Cause, Counters};
use crate::sync::{spin_hint, thread_local_state, AtomicPtr, Ordering};
use crate::tvar::{Core, Header, TVar};
use std::sync::Arc;

/// Why an attempt must restart, and where: for statistics and conflict attribution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conflict {
    pub(crate) cause: Cause,
    pub(crate) tvar: usize,
    pub(crate) site: &'static Location<'static>,
}

/// A side effect registered by a body, run once the attempt ends.
pub(crate) enum Hook {
    /// Runs if the transaction commits.
    Commit(Box<dyn FnOnce()>),
    /// Runs if the attempt is abandoned.
    Abort(Box<dyn FnOnce()>),
    /// Runs whatever happens (the abort hook of a rolled-back `or_else` branch).
    Always(Box<dyn FnOnce()>),
    /// Never runs (the commit hook of a rolled-back branch), dropped with the others.
    Dropped(Box<dyn FnOnce()>),
}

/// A point to roll back to (an `or_else` branch or a nested transaction that aborts).
#[derive(Clone, Copy, Debug)]
struct Mark {
    writes: usize,
    superseded: usize,
    hooks: usize,
}

/// The mutable state of the thread's current attempt. Touched only by the owning thread,
/// through `TxInner::state`, never across a call into user code (INV-LOGS).
pub(crate) struct TxState {
    /// The pin that keeps every value and core read in this attempt alive (INV-PIN).
    guard: Option<Guard>,
    /// The snapshot's read version.
    rv: u64,
    /// A read of a version below `bound` needs no check: `rv + 1` while the snapshot is
    /// backed by the clock; 0 after a first read found a version above `rv` and took the
    /// snapshot to it without advancing the clock, so that every later read extends first
    /// (INV-OPACITY).
    bound: u64,
    reads: ReadSet,
    writes: WriteSet,
    /// How many read entries a write entry's `read_version` covers: each was the last read
    /// when its TVar was first written, and commit checks that version when it locks the
    /// TVar. When every read is covered, commit needs no separate validation pass.
    covered: usize,
    superseded: Vec<Superseded>,
    /// Copies of inline values lent by `read` in this attempt (INV-LENT).
    lent: Lent,
    /// Open `or_else` branches and nested transactions.
    depth: u32,
    /// Set by the first conflict; the attempt restarts whatever the body returns.
    poisoned: Option<Conflict>,
    /// Set when a nested transaction retried by unwinding (in case user code caught it).
    nested_retry: bool,
    /// Serial (irrevocable) mode: every TVar read is locked as it is read.
    serial: bool,
    /// `poisoned.is_some() || nested_retry || serial`: one test keeps reads on the fast path.
    unusual: bool,
    /// In serial mode, the TVars whose lock this attempt holds.
    held: HashSet<*const Header>,
    /// Consecutive conflicts of this transaction so far (its age).
    conflicts: u32,
    hooks: Vec<Hook>,
    /// Whether the last attempt committed (selects its hooks).
    committed: bool,
    /// Values replaced by this thread's commits, waiting to be handed to the collector.
    garbage: reclaim::Garbage,
    /// Pending values to drop once no borrow of the state is held (their destructors are
    /// user code, which may start a transaction: INV-LOGS).
    doomed: Vec<(*mut (), Disposal)>,
    /// TVars whose waiters a commit must wake once its borrow of the state ends.
    to_wake: Vec<*const Header>,
}

/// The per-thread transaction context.
pub(crate) struct TxInner {
    state: UnsafeCell<TxState>,
    handle: LocalHandle,
    pub(crate) counters: Arc<CachePadded<Counters>>,
    /// Whether a transaction is running on this thread (nested `atomically` joins it).
    active: Cell<bool>,
    /// Whether an attempt is in progress on this context, body or not (from `begin` to the
    /// end of `after_attempt`). A transaction started then by user code outside the body
    /// (a destructor, a waker) runs on a temporary context instead (INV-LOGS).
    busy: Cell<bool>,
    /// A serial attempt has ended and its `after_attempt` (user destructors, wakers) waits
    /// for the caller to release the serial lock first: a destructor's own transaction may
    /// need that lock (INV-SERIAL). See `finish_serial_attempt`.
    after_serial: Cell<bool>,
}

thread_local_state! {
    static CONTEXT: TxInner = TxInner::new();
}

/// An attempt began while the previous one was still pinned: a bug in this crate.
#[cold]
#[inline(never)]
fn unreachable_pinned(stale: Guard) -> ! {
    drop(stale);
    unreachable!("an attempt began before the previous one ended")
}

std::thread_local! {
    /// The temporary context this thread is running a transaction on, if any (see
    /// `with_temporary_context`). A const-initialized `Cell` has no destructor, so it stays
    /// usable while the thread's other thread-locals are destroyed.
    static TEMPORARY: Cell<*const TxInner> = const { Cell::new(std::ptr::null()) };
}

/// Runs `f` with the calling thread's current transaction context: the temporary one a
/// transaction is running on, if any, else the thread's own, or a new temporary one while
/// thread-locals are being destroyed. So a nested `atomically` joins the transaction it is
/// nested in wherever that one runs.
pub(crate) fn with_context<R>(f: impl FnOnce(&TxInner) -> R) -> R {
    let mut f = Some(f);
    match CONTEXT.try_with(|ctx| {
        let f = f.take().expect("called once");
        // A temporary context runs only while the thread's own is mid-attempt outside its
        // body (or gone): one test keeps the common path as it was.
        if ctx.is_busy_outside_body() {
            if let Some(temporary) = current_temporary() {
                return f(temporary);
            }
        }
        f(ctx)
    }) {
        Ok(r) => r,
        Err(_) => {
            let f = f.take().expect("not called when TLS is gone");
            match current_temporary() {
                Some(temporary) => f(temporary),
                None => with_temporary_context(f),
            }
        }
    }
}

/// The temporary context this thread is running a transaction on, if any.
#[cold]
fn current_temporary<'a>() -> Option<&'a TxInner> {
    let temporary = TEMPORARY.with(Cell::get);
    // SAFETY: set by `with_temporary_context` to a context it owns, further up this thread's
    // stack, and reset before that context is dropped; the reference is used only by the
    // caller's frame, deeper in the stack (INV-LOGS).
    (!temporary.is_null()).then(|| unsafe { &*temporary })
}

/// Runs `f` on a new context, the thread's current one until `f` returns or unwinds: for a
/// transaction started while the thread's context is mid-attempt (by a destructor or a
/// waker, INV-LOGS) or gone (thread exit).
pub(crate) fn with_temporary_context<R>(f: impl FnOnce(&TxInner) -> R) -> R {
    /// Puts the previous current context back, on return and on unwind.
    struct Restore(*const TxInner);
    impl Drop for Restore {
        fn drop(&mut self) {
            TEMPORARY.with(|t| t.set(self.0));
        }
    }
    let ctx = TxInner::new();
    let _restore = Restore(TEMPORARY.with(|t| t.replace(&ctx)));
    f(&ctx)
}

/// Whether this thread's transaction context has been destroyed (thread exit).
#[cfg(all(test, not(loom)))]
pub(crate) fn context_is_gone() -> bool {
    CONTEXT.try_with(|_| ()).is_err()
}

/// Whether the calling thread is inside a transaction body.
#[cfg(not(loom))]
pub(crate) fn in_transaction() -> bool {
    match CONTEXT.try_with(|ctx| (ctx.is_busy_outside_body(), ctx.active.get())) {
        Ok((false, active)) => active,
        _ => current_temporary().is_some_and(|t| t.active.get()),
    }
}

/// Under loom, models run transactions on explicit contexts (see `loom_models`), never on
/// the thread-local one.
#[cfg(loom)]
pub(crate) fn in_transaction() -> bool {
    false
}

/// Pins the calling thread for a read outside any transaction (`TVar::with_atomic`), and
/// panics with a clear message (naming `what`) inside a transaction body: one look-up of the
/// thread-local context for both, the pin through the context's registered handle.
#[cfg(not(loom))]
#[track_caller]
#[inline]
pub(crate) fn pin_outside_transaction(what: &str) -> Guard {
    // `None`: the context is mid-attempt outside its body or gone; the general path below
    // finds the temporary context, if any.
    let common = CONTEXT.try_with(|ctx| {
        if ctx.is_busy_outside_body() {
            return None;
        }
        Some((!ctx.active.get()).then(|| ctx.handle.pin()))
    });
    match common {
        Ok(Some(Some(guard))) => guard,
        _ => {
            assert_not_in_transaction(what);
            reclaim::pin()
        }
    }
}

/// Under loom, models never run a transaction on the thread-local context.
#[cfg(loom)]
pub(crate) fn pin_outside_transaction(_what: &str) -> Guard {
    reclaim::pin()
}

/// Panics with a clear message if called inside a transaction body.
#[track_caller]
pub(crate) fn assert_not_in_transaction(what: &str) {
    if in_transaction() {
        panic!(
            "{what} called inside a transaction: read through the transaction instead \
             (`tx.read(&v)` / `tx.get(&v)`; for a map, `map.get(tx, &key)`), so the read \
             joins its snapshot"
        );
    }
}

pub(crate) fn with_thread_counters(f: impl FnOnce(&Counters)) {
    with_context(|ctx| f(&ctx.counters));
}

impl TxInner {
    pub(crate) fn new() -> Self {
        let counters = crate::stats::register_thread();
        TxInner {
            state: UnsafeCell::new(TxState {
                guard: None,
                rv: 0,
                bound: 1,
                reads: ReadSet::default(),
                writes: WriteSet::default(),
                covered: 0,
                superseded: Vec::new(),
                lent: Lent::default(),
                depth: 0,
                poisoned: None,
                nested_retry: false,
                serial: false,
                unusual: false,
                held: HashSet::new(),
                conflicts: 0,
                hooks: Vec::new(),
                committed: false,
                garbage: reclaim::Garbage::default(),
                doomed: Vec::new(),
                to_wake: Vec::new(),
            }),
            handle: reclaim::register(),
            counters,
            active: Cell::new(false),
            busy: Cell::new(false),
            after_serial: Cell::new(false),
        }
    }

    /// The attempt state.
    ///
    /// # Safety
    ///
    /// The caller runs on the owning thread (`TxInner` is `!Sync`, reached only through the
    /// thread-local) and does not keep the reference across a call into user code or across
    /// another call to `state` (INV-LOGS).
    #[allow(clippy::mut_from_ref)]
    #[inline]
    unsafe fn state(&self) -> &mut TxState {
        // SAFETY: exclusive per the caller's contract (INV-LOGS).
        unsafe { &mut *self.state.get() }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.get()
    }

    /// Whether an attempt is in progress outside its body (see `busy`).
    pub(crate) fn is_busy_outside_body(&self) -> bool {
        self.busy.get() && !self.active.get()
    }

    pub(crate) fn set_active(&self, active: bool) {
        self.active.set(active);
    }

    /// Starts an attempt: pins, takes a snapshot, and clears the logs.
    #[inline(always)]
    pub(crate) fn begin(&self, serial: bool, conflicts: u32) {
        self.busy.set(true);
        // Pin before borrowing the state: pinning may run the collector, which may drop a
        // value whose destructor starts a transaction (INV-LOGS).
        let guard = self.handle.pin();
        // SAFETY: the owning thread, between attempts; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        debug_assert!(st.reads.is_empty() && st.writes.is_empty());
        if let Some(stale) = st.guard.replace(guard) {
            unreachable_pinned(stale);
        }
        st.rv = CLOCK.now();
        st.bound = st.rv + 1;
        st.covered = 0;
        // No reference lent by an earlier attempt is alive (INV-LENT).
        st.lent.reset();
        if st.unusual {
            // Only set on unusual attempts; `depth` is back at 0 after every attempt.
            st.poisoned = None;
            st.nested_retry = false;
        }
        st.serial = serial;
        st.unusual = serial;
        st.conflicts = conflicts;
    }

    /// Ends an attempt that does not commit: releases serial-mode locks, drops pending
    /// values, clears the logs and unpins. Its hooks wait in `take_hooks`.
    pub(crate) fn discard(&self) {
        // SAFETY: the owning thread, after the body returned; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        st.release_held();
        st.clear_logs();
        let guard = st.guard.take();
        st.committed = false;
        drop(guard);
        self.end_attempt();
    }

    /// Runs `after_attempt`, or, for a serial attempt, leaves it to `finish_serial_attempt`.
    fn end_attempt(&self) {
        // SAFETY: the owning thread, between attempts; the borrow ends at once (INV-LOGS).
        if unsafe { self.state() }.serial {
            self.after_serial.set(true);
        } else {
            self.after_attempt();
        }
    }

    /// Runs the `after_attempt` that a serial attempt deferred. Called with the serial lock
    /// released: user code run here may start a transaction that escalates to serial mode
    /// itself (INV-SERIAL).
    #[inline]
    pub(crate) fn finish_serial_attempt(&self) {
        if self.after_serial.replace(false) {
            self.after_attempt();
        }
    }

    /// Runs, with no borrow of the state held, what an ended attempt left: destructors of
    /// pending values, wakeups, and frees of replaced values whose grace period is over.
    /// Each may run user code, even a new transaction on this thread (INV-LOGS).
    #[inline]
    pub(crate) fn after_attempt(&self) {
        // SAFETY: the owning thread, between attempts; the borrow ends at once (INV-LOGS).
        let st = unsafe { self.state() };
        let pending = !st.doomed.is_empty() || !st.to_wake.is_empty();
        if pending || st.garbage.has_safe() || st.garbage.needs_flush() {
            self.after_attempt_slow();
        }
        self.busy.set(false);
    }

    #[cold]
    fn after_attempt_slow(&self) {
        let (mut doomed, mut to_wake) = {
            // SAFETY: as above; the borrow ends with this block (INV-LOGS).
            let st = unsafe { self.state() };
            (std::mem::take(&mut st.doomed), std::mem::take(&mut st.to_wake))
        };
        for &header in &to_wake {
            crate::wait::wake_all(header);
        }
        for (ptr, disposal) in doomed.drain(..) {
            // SAFETY: the attempt that owned the value has ended, so no reference into it is
            // alive (INV-PENDING); it was moved here exactly once.
            unsafe { disposal.dispose(ptr) };
        }
        to_wake.clear();
        // SAFETY: as above; the borrow ends with this statement (INV-LOGS).
        if unsafe { self.state() }.garbage.take_flush() {
            // Drive the collector once per bag of sealed batches, and again while many wait
            // (`Garbage::needs_flush`); each flush advances the epoch at most once, and a
            // thread pinned elsewhere may hold it back, hence the bound. The collector may run
            // destructors that start transactions: no borrow is held, and `busy` sends them
            // to a context of their own (INV-LOGS).
            for _ in 0..16 {
                let guard = self.handle.pin();
                guard.flush();
                drop(guard);
                // SAFETY: as above; the borrow ends with this statement (INV-LOGS).
                if unsafe { self.state() }.garbage.backlog() <= reclaim::BACKLOG {
                    break;
                }
            }
        }
        let ready = {
            // SAFETY: as above (INV-LOGS).
            unsafe { self.state() }.garbage.take_safe()
        };
        let ready = reclaim::free_batches(ready);
        // SAFETY: as above; put the buffers back to keep their capacity (INV-LOGS).
        let st = unsafe { self.state() };
        st.garbage.give_back(ready);
        if st.doomed.is_empty() {
            st.doomed = doomed;
        }
        if st.to_wake.is_empty() {
            st.to_wake = to_wake;
        }
    }

    /// Commits the attempt and returns whether it was read-only. The logs are cleared and
    /// the thread unpinned on success; on error the caller calls `discard`.
    #[inline(always)]
    pub(crate) fn commit(&self) -> Result<bool, Conflict> {
        // SAFETY: the owning thread, after the body returned; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        if !st.unusual && st.writes.is_empty() && st.superseded.is_empty() && st.doomed.is_empty() {
            // The common read-only attempt: every read was validated against one snapshot as
            // it was made (INV-OPACITY), so there is nothing to lock, publish or check, and
            // it replaced and dropped nothing.
            st.reads.clear();
            st.depth = 0;
            st.committed = true;
            let guard = st.guard.take();
            drop(guard);
            self.busy.set(false);
            return Ok(true);
        }
        self.commit_general()
    }

    /// `commit` for attempts that wrote, or are serial, poisoned, or left values to drop.
    #[inline(never)]
    fn commit_general(&self) -> Result<bool, Conflict> {
        // SAFETY: the owning thread, after the body returned; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        if st.unusual {
            if let Some(c) = st.poisoned {
                return Err(c);
            }
        }
        let read_only = st.writes.is_empty();
        if read_only && !st.serial {
            // Every read was validated against one snapshot as it was made (INV-OPACITY):
            // nothing to lock, publish or check.
            st.reads.clear();
        } else {
            st.commit()?;
            // `commit` emptied the write set and released serial locks.
            st.reads.clear();
        }
        st.depth = 0;
        if !st.superseded.is_empty() {
            st.superseded_clear();
        }
        let guard = st.guard.take();
        st.committed = true;
        drop(guard);
        self.end_attempt();
        Ok(read_only)
    }

    /// Whether the last attempt registered any hook.
    #[inline]
    pub(crate) fn has_hooks(&self) -> bool {
        // SAFETY: the owning thread, between attempts; no user code runs (INV-LOGS).
        !unsafe { self.state() }.hooks.is_empty()
    }

    /// Runs the hooks the last attempt left (commit or abort ones, by how it ended) and
    /// drops the others. The list is taken out while they run (a hook may start a
    /// transaction of its own) and put back afterwards, keeping its capacity.
    pub(crate) fn run_hooks(&self) {
        let mut hooks = {
            // SAFETY: the owning thread, between attempts; the borrow ends before any hook
            // runs (INV-LOGS).
            let st = unsafe { self.state() };
            std::mem::take(&mut st.hooks)
        };
        // SAFETY: as above.
        let committed = unsafe { self.state() }.committed;
        for h in hooks.drain(..) {
            match h {
                Hook::Commit(f) if committed => f(),
                Hook::Abort(f) if !committed => f(),
                Hook::Always(f) => f(),
                Hook::Commit(_) | Hook::Abort(_) | Hook::Dropped(_) => {}
            }
        }
        // SAFETY: as above; no hook is running any more.
        let st = unsafe { self.state() };
        if st.hooks.is_empty() {
            st.hooks = hooks;
        }
    }

    /// Hands this thread's retired values to the collector and lets it free what it can.
    pub(crate) fn collect_garbage(&self) {
        self.busy.set(true);
        let guard = self.handle.pin();
        {
            // SAFETY: the owning thread, outside any attempt (checked by the caller); the
            // borrow ends with this block, before the collector runs (INV-LOGS).
            let st = unsafe { self.state() };
            st.garbage.seal_pending(&guard);
            // This flush is the one `needs_flush` would ask for.
            st.garbage.take_flush();
        }
        guard.flush();
        drop(guard);
        self.after_attempt();
    }

    /// The conflict that poisoned this attempt, or a retry signalled by a nested transaction.
    #[inline]
    pub(crate) fn forced_outcome(&self) -> Option<Result<Kind, Conflict>> {
        // SAFETY: the owning thread, after the body returned (INV-LOGS).
        let st = unsafe { self.state() };
        if !st.unusual {
            return None;
        }
        match (st.poisoned, st.nested_retry) {
            (Some(c), _) => Some(Err(c)),
            (None, true) => Some(Ok(Kind::Retry)),
            _ => None,
        }
    }

    /// Checks that the snapshot is still current (before honouring a user abort or going
    /// to sleep on `retry`).
    pub(crate) fn revalidate(&self) -> Result<(), Conflict> {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        if let Some(c) = st.poisoned {
            return Err(c);
        }
        if st.serial {
            return Ok(()); // every read is locked by us: nothing can have changed
        }
        st.validate(Cause::Validate)
    }

    /// Whether the attempt read nothing (a `retry` now could never be woken).
    pub(crate) fn read_nothing(&self) -> bool {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        unsafe { self.state() }.reads.is_empty()
    }

    /// In serial mode, releases the locks held for reads (before waiting on a `retry`).
    pub(crate) fn release_serial_locks(&self) {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        unsafe { self.state() }.release_held();
    }

    /// Registers a waiter under every TVar read, then revalidates. Returns the registration
    /// if the reads are unchanged (sleep on it), `None` if something changed already.
    pub(crate) fn register_wait(
        &self,
        waker: Option<&std::task::Waker>,
    ) -> Option<crate::wait::Registration> {
        // Copy the reads out: registering clones the waker (user code, INV-LOGS).
        let reads: Vec<ReadEntry> = {
            // SAFETY: the owning thread; the borrow ends with this block (INV-LOGS).
            let st = unsafe { self.state() };
            let guard = st.guard.as_ref().expect("waits are registered while pinned");
            st.garbage.seal_pending(guard);
            st.reads.iter().copied().collect()
        };
        let reg = crate::wait::Registration::register(reads.iter().map(|e| e.header), waker);
        // Revalidate after registering (INV-WAKE). Any change, or a commit in progress on a
        // TVar we read, means we should run again rather than sleep. The attempt is still
        // pinned (`busy` keeps re-entrant transactions off this context), so the cores live.
        let stale = reads.iter().any(|e| {
            let w = e.word();
            lock_word::version(w) != e.version || is_locked(w)
        });
        (!stale).then_some(reg)
    }

    /// Before this thread sleeps: pushes its deferred frees to the global queue and lets
    /// the collector run, so that its retired values are not held for as long as it waits.
    pub(crate) fn flush_before_sleep(&self) {
        self.busy.set(true);
        // SAFETY: the owning thread, between attempts; the borrow ends with this statement
        // (INV-LOGS). The flush below is the one `needs_flush` would ask for.
        unsafe { self.state() }.garbage.take_flush();
        let guard = self.handle.pin();
        guard.flush();
        drop(guard);
        self.after_attempt();
    }

    fn mark(&self) -> Mark {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        st.depth += 1;
        Mark { writes: st.writes.len(), superseded: st.superseded.len(), hooks: st.hooks.len() }
    }

    /// Closes the scope opened by `mark`, keeping its effects.
    fn keep(&self) {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        unsafe { self.state() }.depth -= 1;
    }

    /// Closes the scope opened by `mark`, undoing its writes (its reads stay: they are part
    /// of what the transaction observed, and of its wait set).
    fn rollback(&self, mark: Mark) {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        st.depth -= 1;
        // Values written in the scope are not freed now: a shared handle of an enclosing
        // scope may still lend references into them. They wait in `doomed` until the
        // attempt ends (INV-PENDING).
        while st.superseded.len() > mark.superseded {
            let old = st.superseded.pop().expect("len checked");
            if old.index < mark.writes {
                st.writes.restore(old, &mut st.doomed);
            } else {
                st.doomed.push((old.value, old.disposal));
            }
        }
        st.covered -= st.writes.truncate(mark.writes, &mut st.doomed);
        let branch_hooks: Vec<Hook> = st.hooks.drain(mark.hooks..).collect();
        for h in branch_hooks {
            st.hooks.push(match h {
                // Kept (never run) so that the closure is dropped with no borrow held.
                Hook::Commit(f) => Hook::Dropped(f),
                Hook::Abort(f) | Hook::Always(f) => Hook::Always(f),
                Hook::Dropped(f) => Hook::Dropped(f),
            });
        }
    }

    /// Marks the attempt as poisoned by a conflict.
    fn poison(&self, c: Conflict) -> StmError {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        st.poisoned.get_or_insert(c);
        st.unusual = true;
        StmError::CONFLICT
    }

    /// Consumes a nested transaction's retry signal (caught by `or_else`); false if the
    /// attempt is poisoned or no nested retry is pending.
    pub(crate) fn take_nested_retry(&self) -> bool {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        if st.poisoned.is_some() || !st.nested_retry {
            return false;
        }
        st.nested_retry = false;
        st.unusual = st.serial;
        true
    }

    /// Records that a nested transaction retried by unwinding.
    pub(crate) fn note_nested_retry(&self) {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        st.nested_retry = true;
        st.unusual = true;
    }

    /// The number of TVars read and written so far (for diagnostics and tests).
    fn sizes(&self) -> (usize, usize) {
        // SAFETY: the owning thread; no user code runs (INV-LOGS).
        let st = unsafe { self.state() };
        (st.reads.len(), st.writes.len())
    }
}

impl Drop for TxInner {
    fn drop(&mut self) {
        crate::stats::retire_thread(&self.counters);
    }
}

impl TxState {
    fn clear_logs(&mut self) {
        self.reads.clear();
        if !self.writes.is_empty() {
            self.writes.clear(&mut self.doomed);
        }
        if !self.superseded.is_empty() {
            self.superseded_clear();
        }
        if !self.held.is_empty() {
            self.held.clear();
        }
        self.depth = 0;
    }

    /// Moves the superseded values to `doomed` (dropped once no borrow is held).
    fn superseded_clear(&mut self) {
        let doomed = &mut self.doomed;
        doomed.extend(self.superseded.drain(..).map(|s| (s.value, s.disposal)));
    }

    /// Serial mode: unlocks every TVar locked for reading and not published.
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        for &header in &self.held {
            // SAFETY: we hold this TVar's lock, taken in this pinned attempt, so its core is
            // alive (INV-RECLAIM).
            let lock = unsafe { &(*header).lock };
            // Release pairs with the Acquire loads of readers: our (absent) changes are
            // visible; the version and a waiter bit set meanwhile are kept.
            lock.fetch_and(!LOCKED, Ordering::Release);
        }
        self.held.clear();
    }

    /// Validates the whole read set against current lock words.
    fn validate(&self, cause: Cause) -> Result<(), Conflict> {
        match self.reads.first_stale(|h| self.lock_is_ours(h)) {
            None => Ok(()),
            Some(e) => Err(Conflict { cause, tvar: e.header as usize, site: e.site }),
        }
    }

    /// During commit, whether a locked TVar's lock is ours.
    fn lock_is_ours(&self, header: *const Header) -> bool {
        self.writes.find(header).is_some_and(|i| self.writes.get(i).locked)
    }

    /// Moves the snapshot forward to cover `version`, a version newer than it that a read
    /// found, or the version of an unbacked first read (LSA): advances the clock to it if
    /// needed, then succeeds if nothing read so far has changed.
    #[cold]
    fn extend(&mut self, version: u64) -> Result<(), Conflict> {
        // Take the time first, then validate: every read is then current at `now`.
        let now = CLOCK.advance_to(version);
        match self.reads.first_stale(|_| false) {
            None => {
                self.rv = now;
                self.bound = now + 1;
                Ok(())
            }
            Some(e) => Err(Conflict { cause: Cause::Read, tvar: e.header as usize, site: e.site }),
        }
    }
}

/// A running transaction attempt, handed to the body of [`atomically`](crate::atomically).
///
/// Reads ([`read`](Self::read), [`get`](Self::get)) see one consistent snapshot of every
/// TVar, plus this transaction's own writes; writes ([`write`](Self::write),
/// [`modify`](Self::modify), [`replace`](Self::replace)) are published at commit, all at
/// once, or not at all.
///
/// A `Transaction` cannot leave the thread or the body: it is neither `Send` nor `Sync`, and
/// references it lends out live only as long as the borrow of the handle.
pub struct Transaction<'a> {
    inner: &'a TxInner,
    _not_send: PhantomData<*mut ()>,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (reads, writes) = self.inner.sizes();
        f.debug_struct("Transaction").field("reads", &reads).field("writes", &writes).finish()
    }
}

/// The value pointer of the TVar whose header is `header`, whatever its `T`.
///
/// # Safety
///
/// `header` is the header of a live `Core<T>` for some sized `T`.
pub(crate) unsafe fn value_slot<'a>(header: *const Header) -> &'a AtomicPtr<()> {
    // SAFETY: `Core<T>` is `repr(C)` with the header first and an `AtomicPtr<T>` next, so the
    // field's offset does not depend on `T`, and `AtomicPtr<T>` has the layout of
    // `AtomicPtr<()>` for every sized `T` (INV-HEADER). The core is alive per the contract.
    unsafe { &(*header.cast::<Core<()>>()).value }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(inner: &'a TxInner) -> Self {
        Self { inner, _not_send: PhantomData }
    }

    /// Reads `var`, lending its value for as long as this handle is borrowed.
    ///
    /// The value is the one in this transaction's snapshot, or the transaction's own
    /// pending write. No clone is made; a small plain value (an integer, `bool`, `char` or
    /// float, kept inline in the TVar) is copied into a slot that lives until the attempt
    /// ends, 8 bytes per call unless the value repeats the last one lent: prefer
    /// [`get`](Self::get) for those. Every read is also logged (the read set, 24 bytes) until
    /// the attempt ends.
    ///
    /// # Errors
    ///
    /// Returns an [`StmError`] if the read found a conflict (the attempt will restart);
    /// propagate it with `?`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::{atomically, TVar};
    ///
    /// let name = TVar::new(String::from("concord"));
    /// let len = atomically(|tx| Ok(tx.read(&name)?.len()));
    /// assert_eq!(len, 7);
    /// ```
    #[track_caller]
    #[inline(always)]
    pub fn read<T: Send + Sync + 'static>(&self, var: &TVar<T>) -> Stm<&T> {
        let word = self.read_word(var, Location::caller())?;
        if is_inline::<T>() {
            // SAFETY: the owning thread; the borrow ends at once and no user code runs
            // meanwhile (INV-LOGS).
            let slot = unsafe { self.inner.state() }.lent.keep(word.cast());
            // SAFETY: the slot holds `var`'s word, made by `to_word::<T>` (INV-INLINE), and
            // keeps it until the next attempt begins, after every borrow of `self` has ended
            // (INV-LENT); `T` is no more aligned than the slot's `usize`.
            return Ok(unsafe { &*slot.as_ptr().cast::<T>() });
        }
        // SAFETY: `word` points at a published value loaded while pinned, which stays
        // allocated and unmutated while `self` is borrowed (INV-PIN, INV-RECLAIM,
        // INV-PUBLISHED), or at this attempt's pending box, which lives at least as long
        // (INV-PENDING).
        Ok(unsafe { &*word })
    }

    /// The value word of `var` in this transaction's view: its pending write, or the
    /// published word of the snapshot. For a boxed `T`, a pointer to the value; for an
    /// inline `T`, the value's bits (INV-INLINE).
    #[inline(always)]
    fn read_word<T: Send + Sync + 'static>(
        &self,
        var: &TVar<T>,
        site: &'static Location<'static>,
    ) -> Stm<*mut T> {
        let header = var.header();
        // SAFETY: the owning thread; the borrow ends before this function returns and no user
        // code runs meanwhile (INV-LOGS).
        let st = unsafe { self.inner.state() };
        if !st.unusual && !st.writes.may_contain(header) {
            return match st.read_shared(var.core(), header, site) {
                Ok(word) => Ok(word),
                Err(c) => Err(self.inner.poison(c)),
            };
        }
        self.read_slow(var, site)
    }

    /// Reads that are not a plain optimistic read: the attempt is poisoned or serial, or it
    /// may have written `var`.
    #[cold]
    fn read_slow<T: Send + Sync + 'static>(
        &self,
        var: &TVar<T>,
        site: &'static Location<'static>,
    ) -> Stm<*mut T> {
        let header = var.header();
        // SAFETY: the owning thread; the borrow ends before this function returns and no user
        // code runs meanwhile (INV-LOGS).
        let st = unsafe { self.inner.state() };
        if st.poisoned.is_some() {
            return Err(StmError::CONFLICT);
        }
        if let Some(i) = st.writes.find(header) {
            // The entry for `var` holds a `T` box or `T`'s inline word (INV-HEADER).
            return Ok(st.writes.get(i).value.cast::<T>());
        }
        let core = var.core();
        if st.serial {
            return Ok(st.read_serial(core, header, site));
        }
        match st.read_shared(core, header, site) {
            Ok(word) => Ok(word),
            Err(c) => Err(self.inner.poison(c)),
        }
    }

    /// Reads `var` and returns a clone of its value.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    #[track_caller]
    #[inline(always)]
    pub fn get<T: Clone + Send + Sync + 'static>(&self, var: &TVar<T>) -> Stm<T> {
        if is_inline::<T>() {
            return self.read_inline(var, Location::caller());
        }
        self.read(var).cloned()
    }

    /// The value of `var`, an inline TVar, copied out of its word in this transaction's view.
    #[inline(always)]
    fn read_inline<T: Send + Sync + 'static>(
        &self,
        var: &TVar<T>,
        site: &'static Location<'static>,
    ) -> Stm<T> {
        debug_assert!(is_inline::<T>());
        let word = self.read_word(var, site)?;
        // SAFETY: `var`'s words are made by `to_word::<T>` (INV-INLINE); a bitwise copy of an
        // inline type is the value.
        Ok(unsafe { inline::from_word(word.cast()) })
    }

    /// Writes `value` to `var`, visible to this transaction at once and to others when it
    /// commits.
    ///
    /// Allocates one box for the new value (it is published as is at commit), except for
    /// the small plain types a TVar holds inline (integers, `bool`, `char`, floats: see
    /// [`TVar`]'s size notes), which allocate nothing.
    ///
    /// # Errors
    ///
    /// Returns an [`StmError`] if the attempt has already conflicted.
    #[track_caller]
    #[inline(always)]
    pub fn write<T: Send + Sync + 'static>(&mut self, var: &TVar<T>, value: T) -> Stm<()> {
        let site = Location::caller();
        // Boxed first: the value then moves once, into its box.
        let (value, disposal) = crate::tvar::value_word(value);
        // SAFETY: `value_word` made the word for this `T` just now; it is ours alone.
        unsafe { self.write_word(var, value, disposal, site) }
    }

    /// Writes to `var` the value `staged` holds, publishing its box as is at commit: the
    /// value does not move (see [`Staged`](crate::Staged)).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    #[track_caller]
    #[inline(always)]
    pub fn write_staged<T: Send + Sync + 'static>(
        &mut self,
        var: &TVar<T>,
        staged: crate::Staged<T>,
    ) -> Stm<()> {
        if is_inline::<T>() {
            // The TVar holds such a `T` in its word (INV-INLINE), not in a box.
            return self.write(var, staged.into_inner());
        }
        let site = Location::caller();
        let value = staged.into_raw().cast::<()>();
        // SAFETY: the box came from `recycle::boxed_with::<T>` with a live `T`, and `into_raw`
        // gave us the staged value's sole ownership (INV-STAGED); `Disposal::of::<T>` is how
        // such a box is given back (INV-RECYCLE).
        unsafe { self.write_word(var, value, crate::recycle::Disposal::of::<T>(), site) }
    }

    /// Logs `value` (a boxed `T` or an inline `T`'s word) as `var`'s pending value.
    ///
    /// # Safety
    ///
    /// `value` and `disposal` were made for this `T` (`value_word::<T>`, or a box from
    /// `recycle::boxed_with::<T>` with `Disposal::of::<T>`), and nobody else owns `value`.
    #[inline(always)]
    unsafe fn write_word<T: Send + Sync + 'static>(
        &mut self,
        var: &TVar<T>,
        value: *mut (),
        disposal: crate::recycle::Disposal,
        site: &'static Location<'static>,
    ) -> Stm<()> {
        // SAFETY: the owning thread; no user code runs while borrowed (INV-LOGS).
        if unsafe { self.inner.state() }.poisoned.is_some() {
            // SAFETY: per the contract the box is for this `T`, never logged or published,
            // and ours alone (INV-PENDING); no borrow of the logs is held while its
            // destructor (user code) runs (INV-LOGS).
            unsafe { disposal.dispose(value) };
            return Err(StmError::CONFLICT);
        }
        // SAFETY: as above.
        let st = unsafe { self.inner.state() };
        let header = var.header();
        let read_version = st.reads.last_of(header).unwrap_or(NOT_READ);
        let entry = WriteEntry {
            header,
            value,
            disposal,
            site,
            locked: false,
            waiters: false,
            read_version,
        };
        let superseded = st.writes.insert(entry);
        if superseded.is_none() && read_version != NOT_READ {
            // A new entry covers the read just before it (an existing one keeps its own).
            st.covered += 1;
        }
        if let Some(old) = superseded {
            if st.depth == 0 {
                // `&mut self` proves no reference lent by this handle is alive, and at depth 0
                // there is no other handle (INV-PENDING): drop it now, with no borrow held
                // (its destructor is user code, INV-LOGS): `st` is not used past this point.
                // SAFETY: the write set gave us `old`, owned and unreferenced (above).
                unsafe { old.disposal.dispose(old.value) };
            } else {
                st.superseded.push(old);
            }
        }
        Ok(())
    }

    /// Replaces the value of `var` with `f` of its current value.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    #[track_caller]
    #[inline(always)]
    pub fn modify<T: Send + Sync + 'static>(
        &mut self,
        var: &TVar<T>,
        f: impl FnOnce(&T) -> T,
    ) -> Stm<()> {
        if is_inline::<T>() {
            let old = self.read_inline(var, Location::caller())?;
            return self.write(var, f(&old));
        }
        let new = f(self.read(var)?);
        self.write(var, new)
    }

    /// Writes `value` to `var` and returns the value it replaces.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read).
    #[track_caller]
    pub fn replace<T: Clone + Send + Sync + 'static>(&mut self, var: &TVar<T>, value: T) -> Stm<T> {
        let old = self.get(var)?;
        self.write(var, value)?;
        Ok(old)
    }

    /// Runs `first`; if it calls [`retry`](crate::retry), undoes its writes and runs
    /// `second` instead (GHC's `orElse`).
    ///
    /// The TVars `first` read stay in the transaction's read set, so if `second` retries
    /// too, the transaction waits for a change to a TVar read by either branch.
    ///
    /// # Errors
    ///
    /// A conflict in either branch, a user abort, or a retry of `second`.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::{atomically, retry, TVar};
    ///
    /// let a: TVar<Option<u32>> = TVar::new(None);
    /// let b = TVar::new(Some(7));
    /// // Take from whichever slot holds a value.
    /// let take = |tx: &mut concord_stm::Transaction<'_>, v: &TVar<Option<u32>>| match tx.get(v)? {
    ///     Some(x) => { tx.write(v, None)?; Ok(x) }
    ///     None => retry(),
    /// };
    /// let x = atomically(|tx| tx.or_else(|tx| take(tx, &a), |tx| take(tx, &b)));
    /// assert_eq!(x, 7);
    /// ```
    pub fn or_else<T, C: Control>(
        &mut self,
        first: impl FnOnce(&mut Transaction<'_>) -> Result<T, C>,
        second: impl FnOnce(&mut Transaction<'_>) -> Result<T, C>,
    ) -> Result<T, C> {
        let mark = self.inner.mark();
        // A nested `atomically` in `first` that retries unwinds (it cannot return through its
        // plain `R`): that, too, is `first` retrying.
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| first(self)));
        let first_retried = match &outcome {
            Ok(Err(e)) => e.stm_kind() == Some(Kind::Retry) && !self.is_poisoned(),
            Ok(Ok(_)) => false,
            Err(payload) => {
                crate::atomically::is_nested_signal(&**payload) && self.inner.take_nested_retry()
            }
        };
        if first_retried {
            self.inner.rollback(mark);
            return second(self);
        }
        self.inner.keep();
        match outcome {
            Ok(result) => result,
            Err(payload) => panic::resume_unwind(payload),
        }
    }

    /// Runs `f` once, after this transaction commits (never if it does not). Use it for side
    /// effects that must not repeat when the body is re-run: I/O, sending a message.
    pub fn after_commit(&mut self, f: impl FnOnce() + 'static) {
        // SAFETY: the owning thread; no user code runs while borrowed (INV-LOGS).
        unsafe { self.inner.state() }.hooks.push(Hook::Commit(Box::new(f)));
    }

    /// Runs `f` once if this attempt is abandoned (a conflict, a retry, a user abort, a
    /// panic, or the rollback of the `or_else` branch that registered it).
    pub fn after_abort(&mut self, f: impl FnOnce() + 'static) {
        // SAFETY: the owning thread; no user code runs while borrowed (INV-LOGS).
        unsafe { self.inner.state() }.hooks.push(Hook::Abort(Box::new(f)));
    }

    /// Whether a conflict has already doomed this attempt.
    fn is_poisoned(&self) -> bool {
        // SAFETY: the owning thread; no user code runs while borrowed (INV-LOGS).
        unsafe { self.inner.state() }.poisoned.is_some()
    }

    pub(crate) fn begin_nested(&self) -> NestedScope {
        NestedScope { mark: self.inner.mark() }
    }

    pub(crate) fn end_nested(&self, scope: NestedScope, keep: bool) {
        if keep {
            self.inner.keep();
        } else {
            self.inner.rollback(scope.mark);
        }
    }

    pub(crate) fn poison(&self, c: Conflict) -> StmError {
        self.inner.poison(c)
    }
}

/// A nested transaction's rollback point.
#[derive(Debug)]
pub(crate) struct NestedScope {
    mark: Mark,
}

impl TxState {
    /// The optimistic read: validated as it happens (INV-VERSION), extending the snapshot
    /// when the TVar is newer (INV-OPACITY).
    #[inline(always)]
    fn read_shared<T: 'static>(
        &mut self,
        core: &Core<T>,
        header: *const Header,
        site: &'static Location<'static>,
    ) -> Result<*mut T, Conflict> {
        let mut spins = 0_u32;
        loop {
            // Acquire part: pairs with the Release store that unlocks in `commit::publish` (and
            // the Release `fetch_and` of a committer or serial transaction that gives up).
            // SeqCst: ordered after our snapshot's SeqCst clock load, so a commit whose write
            // version the snapshot covers is seen locked or published (INV-CLOCK). On x86 a
            // SeqCst load is a plain load.
            let before = core.header.lock.load(Ordering::SeqCst);
            if is_locked(before) {
                // A commit is publishing this TVar: wait a little (longer for an older
                // transaction) before giving up.
                spins += 1;
                if spins > lock_patience(self.conflicts) {
                    return Err(Conflict { cause: Cause::Read, tvar: header as usize, site });
                }
                spin_hint();
                continue;
            }
            // Acquire pairs with the Release store of the word in `commit::publish`: a boxed
            // value is initialized, and a word stored after `before` was read makes `after`
            // see that commit's lock (INV-VERSION, for inline words too).
            let ptr = core.value.load(Ordering::Acquire);
            // SeqCst: as for `before`; ordered after the pointer load by that load's Acquire.
            let after = core.header.lock.load(Ordering::SeqCst);
            if !same_state(before, after) {
                continue;
            }
            let version = lock_word::version(before);
            if version >= self.bound {
                if self.reads.is_empty() {
                    // The first read, of a TVar written since the snapshot's time: one value
                    // alone is consistent, so the snapshot becomes this read, at its version,
                    // and the clock is left alone; a second read extends it first
                    // (INV-OPACITY). A transaction that reads one TVar (a hot counter's
                    // increment) so never writes the clock.
                    self.rv = version;
                    self.bound = 0;
                } else if !self.admit_newer(header, version, &core.header, before)? {
                    continue;
                }
            }
            // A poisoned or serial attempt never gets here (`unusual`).
            self.reads.push(ReadEntry { header, version, site });
            return Ok(ptr);
        }
    }

    /// A read after the first found `version` at or above `bound`: extends the snapshot so
    /// that the read fits in it, or fails. Returns `false` if the TVar changed meanwhile and
    /// must be read again.
    #[cold]
    #[inline(never)]
    fn admit_newer(
        &mut self,
        header: *const Header,
        version: u64,
        tvar: &Header,
        before: u64,
    ) -> Result<bool, Conflict> {
        if self.bound == 0 && self.reads.last_of(header) == Some(version) {
            // The first read's TVar again, unchanged (`get` then `modify`): the snapshot is
            // still that one value. With `bound` at 0 every entry is of this TVar at this
            // version, since any other read extends.
            return Ok(true);
        }
        self.extend(version.max(self.rv))?;
        // The extension made the snapshot current as of a clock value read *after* this
        // TVar: if a commit changed it in between, the value we hold is older than the
        // snapshot now claims. Read it again (INV-OPACITY).
        // SeqCst: as for the reader's loads of the word in `read_shared`.
        Ok(same_state(before, tvar.lock.load(Ordering::SeqCst)))
    }

    /// The serial-mode read: lock the TVar (waiting for a committer to finish) and keep it
    /// locked until the attempt ends, so nothing can invalidate it (INV-SERIAL).
    fn read_serial<T: 'static>(
        &mut self,
        core: &Core<T>,
        header: *const Header,
        site: &'static Location<'static>,
    ) -> *mut T {
        if !self.held.contains(&header) {
            let word = lock_serial(&core.header);
            self.held.insert(header);
            self.reads.push(ReadEntry { header, version: lock_word::version(word), site });
        }
        // Acquire pairs with the Release store of the pointer in `commit::publish`.
        core.value.load(Ordering::Acquire)
    }
}

/// Serial mode: takes `header`'s lock, waiting as long as needed. Committers hold locks for a
/// bounded time and never wait on us unboundedly, so this ends (INV-SERIAL). Returns the word
/// before locking.
pub(crate) fn lock_serial(header: &Header) -> u64 {
    commit::try_lock(header, None).expect("without patience, locking never gives up")
}
