//! Running a transaction: the attempt loop, blocking and async waiting, nesting.

use std::future::Future;
use std::num::NonZeroU32;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::contention::{self, backoff};
use crate::error::{Abort, AbortRepr, Control, Kind, Stm, StmResult};
use crate::sync::{global, Mutex};
use crate::tx::{with_context, Conflict, Transaction, TxInner};
use crate::wait::Registration;

global! {
    /// Held by the one transaction running in serial (irrevocable) mode (INV-SERIAL).
    static SERIAL: Mutex<()> = Mutex::new(());
}

/// The unwinding payload a nested transaction uses to end the enclosing attempt (a retry or
/// a conflict cannot be returned through `atomically`'s plain `R`).
struct NestedSignal;

/// Whether an unwinding payload is a nested transaction's signal (not a user panic).
pub(crate) fn is_nested_signal(payload: &(dyn std::any::Any + Send)) -> bool {
    payload.is::<NestedSignal>()
}

/// How an attempt loop ended.
enum Step<R, C> {
    /// Committed with this value, or a user abort with this error.
    Done(Result<R, C>),
    /// The body retried; sleep on this registration, then run again.
    Wait(Registration),
    /// An async transaction gives its thread to other tasks after this many consecutive
    /// conflicts, the last of them on this TVar (its id); poll again to go on.
    Yield(u32, usize),
}

/// How the caller of the attempt loop waits.
#[derive(Clone, Copy)]
struct Waiting<'w> {
    /// `None`: park the thread on a retry; `Some`: register this waker and return.
    waker: Option<&'w Waker>,
    /// Return [`Step::Yield`] after every this many consecutive conflicts (async only).
    yield_every: Option<NonZeroU32>,
}

impl Waiting<'_> {
    const PARK: Waiting<'static> = Waiting { waker: None, yield_every: None };
}

/// Runs the hooks the last attempt left (none in the common case).
#[inline]
fn run_hooks(ctx: &TxInner) {
    if ctx.has_hooks() {
        run_hooks_slow(ctx);
    }
}

#[cold]
fn run_hooks_slow(ctx: &TxInner) {
    ctx.run_hooks();
}

/// What the attempt loop does after one attempt.
enum Next<R, C> {
    Return(Step<R, C>),
    Restart(Conflict),
    Resume(Box<dyn std::any::Any + Send>),
    /// A misuse: panic with this message.
    Panic(&'static str),
}

/// Runs attempts of `f` until one commits, aborts with a user error, retries with its
/// reads unchanged (then returns the registration to sleep on), or yields.
///
/// `first` is the outcome of a first attempt already run (optimistic, not serial) by a
/// caller's fast path. `conflicts` is the transaction's age: the conflicts it has already
/// had (before a yield).
#[inline(never)]
fn run_attempts<R, C, F>(
    ctx: &TxInner,
    f: &mut F,
    waiting: Waiting<'_>,
    mut first: Option<Outcome<R, C>>,
    mut conflicts: u32,
) -> Step<R, C>
where
    C: Control,
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    let waker = waiting.waker;
    let serial_after = contention::policy().serial_after;
    let mut rng = None;
    loop {
        let serial = conflicts >= serial_after && first.is_none();
        let serial_guard = serial.then(|| {
            ctx.counters.serial();
            SERIAL.lock()
        });
        let outcome = match first.take() {
            Some(outcome) => outcome,
            None => attempt(ctx, f, serial, conflicts),
        };
        let next = match outcome {
            Ok(Ok(value)) => match ctx.forced_outcome() {
                None => match ctx.commit() {
                    Ok(read_only) => {
                        ctx.counters.commit(read_only);
                        Next::Return(Step::Done(Ok(value)))
                    }
                    Err(c) => {
                        ctx.discard();
                        Next::Restart(c)
                    }
                },
                Some(Err(c)) => {
                    ctx.discard();
                    Next::Restart(c)
                }
                // A nested transaction retried and the body swallowed the unwind.
                Some(Ok(_retry)) => wait(ctx, waker),
            },
            Ok(Err(e)) => after_error(ctx, e, waker),
            Err(payload) => after_unwind(ctx, payload, waker),
        };
        // Hooks, and the destructors and wakers the attempt left, run outside serial mode:
        // any of them may start a transaction of its own, which may need serial mode too.
        drop(serial_guard);
        ctx.finish_serial_attempt();
        run_hooks(ctx);
        match next {
            Next::Return(step) => return step,
            Next::Resume(payload) => panic::resume_unwind(payload),
            Next::Panic(message) => panic!("{message}"),
            Next::Restart(c) => {
                ctx.counters.abort(c.cause, c.tvar, c.site);
                conflicts = conflicts.saturating_add(1);
                if let Some(every) = waiting.yield_every {
                    if conflicts % every == 0 && conflicts < serial_after {
                        // Yielding is this transaction's backoff: other tasks run meanwhile.
                        ctx.counters.yielded();
                        return Step::Yield(conflicts, c.tvar);
                    }
                }
                let rng = rng.get_or_insert_with(|| {
                    // Not the clock: it moves rarely now, and under loom its load adds a fence.
                    contention::Rng::new(
                        (ctx as *const TxInner as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                            ^ ctx.counters.seed(),
                    )
                });
                backoff(conflicts, rng);
            }
        }
    }
}

/// What one run of a body produced: its result, or the payload it unwound with.
type Outcome<R, C> = std::thread::Result<Result<R, C>>;

/// Runs the body once as a new attempt.
#[inline]
fn attempt<R, C, F>(ctx: &TxInner, f: &mut F, serial: bool, conflicts: u32) -> Outcome<R, C>
where
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    ctx.begin(serial, conflicts);
    ctx.set_active(true);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| f(&mut Transaction::new(ctx))));
    ctx.set_active(false);
    outcome
}

/// The first attempt of a transaction, inlined into the caller: most transactions commit
/// here, and their value is returned as is (`Ok`). Anything else (a conflict, a retry, an
/// abort, a panic) goes to `run_attempts`, whose step is returned (`Err`).
#[inline]
fn fast_path<R, C, F>(ctx: &TxInner, f: &mut F, waiting: Waiting<'_>) -> Result<R, Step<R, C>>
where
    C: Control,
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    if contention::policy().serial_after == 0 {
        return Err(run_attempts(ctx, f, waiting, None, 0));
    }
    let outcome = attempt(ctx, f, false, 0);
    if let Ok(Ok(_)) = &outcome {
        if ctx.forced_outcome().is_none() {
            if let Ok(read_only) = ctx.commit() {
                ctx.counters.commit(read_only);
                run_hooks(ctx);
                let Ok(Ok(value)) = outcome else { unreachable!("matched above") };
                return Ok(value);
            }
        }
    }
    Err(run_attempts(ctx, f, waiting, Some(outcome), 0))
}

/// The body returned an error: a retry, a conflict, or a user abort.
#[cold]
fn after_error<R, C: Control>(ctx: &TxInner, e: C, waker: Option<&Waker>) -> Next<R, C> {
    match ctx.forced_outcome() {
        Some(Err(c)) => {
            ctx.discard();
            return Next::Restart(c);
        }
        Some(Ok(_retry)) => return wait(ctx, waker),
        None => {}
    }
    match e.stm_kind() {
        Some(Kind::Retry) => wait(ctx, waker),
        Some(Kind::Conflict) => unreachable!("a conflict always poisons the attempt"),
        None => match ctx.revalidate() {
            Ok(()) => {
                ctx.counters.user_abort();
                ctx.discard();
                Next::Return(Step::Done(Err(e)))
            }
            Err(c) => {
                ctx.discard();
                Next::Restart(c)
            }
        },
    }
}

/// The body unwound: a user panic (discard and resume it) or a nested transaction's signal.
#[cold]
fn after_unwind<R, C>(
    ctx: &TxInner,
    payload: Box<dyn std::any::Any + Send>,
    waker: Option<&Waker>,
) -> Next<R, C> {
    if payload.is::<NestedSignal>() {
        match ctx.forced_outcome() {
            Some(Err(c)) => {
                ctx.discard();
                Next::Restart(c)
            }
            _ => wait(ctx, waker),
        }
    } else {
        ctx.counters.panic();
        ctx.discard();
        Next::Resume(payload)
    }
}

/// The body retried: wait for a change, or restart if the snapshot was already stale.
fn wait<R, C>(ctx: &TxInner, waker: Option<&Waker>) -> Next<R, C> {
    if ctx.read_nothing() {
        ctx.discard();
        // Panics in `run_attempts`, once serial mode is released and the hooks have run.
        return Next::Panic(
            "retry() called by a transaction that has read no TVar: nothing could ever wake it. \
             Read the TVars whose change should wake the transaction before calling retry()",
        );
    }
    let next = match wait_or_conflict(ctx, waker) {
        Ok(reg) => Next::Return(Step::Wait(reg)),
        Err(c) => Next::Restart(c),
    };
    ctx.discard();
    next
}

/// The body retried: register a waiter and revalidate (still pinned, INV-WAKE). Returns the
/// registration to sleep on (already notified if a read changed meanwhile), or the
/// conflict if the attempt's snapshot was stale.
fn wait_or_conflict(ctx: &TxInner, waker: Option<&Waker>) -> Result<Registration, Conflict> {
    ctx.revalidate()?;
    ctx.release_serial_locks();
    ctx.counters.retry();
    Ok(ctx.register_wait(waker).unwrap_or_else(Registration::already_woken))
}

/// Runs `f` as one atomic transaction and returns its result.
///
/// Every `TVar` read inside `f` sees one consistent snapshot, even on attempts that later
/// abort (opacity), and every write becomes visible to other threads at once, at commit, or
/// not at all. `f` may run several times: keep it free of side effects other than `TVar`
/// writes, or register them with [`Transaction::after_commit`].
///
/// If `f` calls [`retry`](crate::retry), the current thread sleeps until a `TVar` that `f`
/// read is changed by another commit, then runs `f` again.
///
/// Called inside another transaction's body, `atomically` joins that transaction (closed
/// nesting): its reads and writes become the enclosing transaction's, and a retry or
/// conflict ends the enclosing attempt.
///
/// # Panics
///
/// If `f` panics, the attempt is discarded (nothing is published) and the panic resumes.
/// Panics if `f` retries having read no TVar.
///
/// # Examples
///
/// ```
/// use concord_stm::{atomically, TVar};
///
/// let from = TVar::new(100);
/// let to = TVar::new(0);
/// atomically(|tx| {
///     let amount = 30;
///     tx.modify(&from, |b| b - amount)?;
///     tx.modify(&to, |b| b + amount)
/// });
/// assert_eq!((from.read_atomic(), to.read_atomic()), (70, 30));
/// ```
pub fn atomically<R>(mut f: impl FnMut(&mut Transaction<'_>) -> Stm<R>) -> R {
    match run_blocking(&mut f) {
        Ok(r) => r,
        Err(e) => match e {},
    }
}

/// Like [`atomically`], but the body may end the transaction with a user error through
/// [`abort`](crate::abort): then nothing it wrote is committed and the error is returned.
///
/// # Examples
///
/// ```
/// use concord_stm::{abort, atomically_or_err, TVar};
///
/// #[derive(Debug, PartialEq)]
/// struct Insufficient { missing: u64 }
///
/// let balance = TVar::new(10_u64);
/// let r = atomically_or_err(|tx| {
///     let b = tx.get(&balance)?;
///     if b < 25 {
///         return abort(Insufficient { missing: 25 - b });
///     }
///     tx.write(&balance, b - 25)?;
///     Ok(b - 25)
/// });
/// assert_eq!(r, Err(Insufficient { missing: 15 }));
/// assert_eq!(balance.read_atomic(), 10);
/// ```
pub fn atomically_or_err<R, E>(
    mut f: impl FnMut(&mut Transaction<'_>) -> StmResult<R, E>,
) -> Result<R, E> {
    run_blocking(&mut f).map_err(|a| match a.0 {
        AbortRepr::User(e) => e,
        AbortRepr::Stm(_) => unreachable!("STM signals never leave the attempt loop"),
    })
}

/// Internal: either `StmError` (then the `Err` is uninhabited) or `Abort<E>`.
pub(crate) trait IntoUser: Control {
    type User;
    fn into_user(self) -> Self::User;
}

impl IntoUser for crate::StmError {
    type User = std::convert::Infallible;
    fn into_user(self) -> Self::User {
        unreachable!("STM signals never leave the attempt loop")
    }
}

impl<E> IntoUser for Abort<E> {
    type User = Abort<E>;
    fn into_user(self) -> Self::User {
        self
    }
}

fn run_blocking<R, C, F>(f: &mut F) -> Result<R, C::User>
where
    C: IntoUser,
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    with_context(|ctx| {
        if ctx.is_busy_outside_body() {
            return run_on_own_context(f);
        }
        run_blocking_in(ctx, f)
    })
}

/// A transaction started by a destructor or waker while this thread's context is
/// mid-attempt: it runs on a context of its own (INV-LOGS).
#[cold]
#[inline(never)]
fn run_on_own_context<R, C, F>(f: &mut F) -> Result<R, C::User>
where
    C: IntoUser,
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    crate::tx::with_temporary_context(|ctx| run_blocking_in(ctx, f))
}

/// `atomically` on an explicit context (the thread-local one, or a loom model's).
#[inline]
pub(crate) fn run_blocking_in<R, C, F>(ctx: &TxInner, f: &mut F) -> Result<R, C::User>
where
    C: IntoUser,
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    {
        if ctx.is_active() {
            return run_nested(ctx, f);
        }
        let mut step = match fast_path(ctx, f, Waiting::PARK) {
            Ok(value) => return Ok(value),
            Err(step) => step,
        };
        let mut woken = false;
        loop {
            match step {
                Step::Done(r) => return r.map_err(C::into_user),
                Step::Wait(reg) => {
                    if woken {
                        ctx.counters.spurious_wakeup();
                    }
                    if !reg.is_notified() {
                        ctx.flush_before_sleep();
                        reg.park();
                    }
                    ctx.counters.wakeup();
                    woken = true;
                }
                Step::Yield(..) => unreachable!("blocking transactions never yield"),
            }
            step = run_attempts(ctx, f, Waiting::PARK, None, 0);
        }
    }
}

/// A nested `atomically`: runs `f` inside the enclosing attempt (closed nesting).
fn run_nested<R, C, F>(ctx: &TxInner, f: &mut F) -> Result<R, C::User>
where
    C: IntoUser,
    F: FnMut(&mut Transaction<'_>) -> Result<R, C>,
{
    let mut tx = Transaction::new(ctx);
    let scope = tx.begin_nested();
    match f(&mut tx) {
        Ok(r) => {
            tx.end_nested(scope, true);
            Ok(r)
        }
        Err(e) => match e.stm_kind() {
            None => match ctx.revalidate() {
                // A user abort of the nested transaction: undo its writes, return its error.
                Ok(()) => {
                    tx.end_nested(scope, false);
                    Err(e.into_user())
                }
                Err(c) => {
                    let _ = tx.poison(c);
                    panic::resume_unwind(Box::new(NestedSignal))
                }
            },
            Some(kind) => {
                if kind == Kind::Retry {
                    ctx.note_nested_retry();
                }
                panic::resume_unwind(Box::new(NestedSignal))
            }
        },
    }
}

/// Runs `f` as one atomic transaction without blocking a thread: a future that completes
/// with the result of `f`. When `f` retries, the future returns `Pending` and its waker is
/// woken by the commit that changes a TVar `f` read. Works on any executor.
///
/// The body itself is synchronous (it may run several times); only the waiting is async.
/// Dropping the future while it waits unregisters it.
///
/// # Examples
///
/// ```
/// use concord_stm::{atomically_async, TVar};
///
/// let v = TVar::new(41);
/// let fut = atomically_async(|tx| { tx.modify(&v, |x| x + 1)?; tx.get(&v) });
/// // Any executor will do; this one is a minimal `block_on`.
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let waker = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// assert_eq!(block_on(fut), 42);
/// ```
pub fn atomically_async<R, F>(f: F) -> Atomically<F>
where
    F: FnMut(&mut Transaction<'_>) -> Stm<R>,
{
    Atomically { f, registration: None, conflicts: 0, yield_every: None, yielded_on: None }
}

/// The future returned by [`atomically_async`].
#[must_use = "futures do nothing unless polled"]
pub struct Atomically<F> {
    f: F,
    registration: Option<Registration>,
    /// Conflicts so far, kept across yields (the transaction's age, for contention).
    conflicts: u32,
    yield_every: Option<NonZeroU32>,
    /// The TVar of the conflict that made the last poll yield; `None` unless it yielded
    /// (kept in step with `conflicts`, which is nonzero exactly then).
    yielded_on: Option<usize>,
}

impl<F> Atomically<F> {
    /// After every `n` consecutive conflicts, wake the task and return `Pending` instead of
    /// backing off in place, so that an executor runs other tasks on this thread meanwhile.
    /// The transaction keeps its age (its conflict count, hence its lock patience and its
    /// escalation to serial mode) across yields.
    ///
    /// Without it, a conflicting transaction backs off by spinning, then yielding the
    /// thread, then sleeping for microseconds, which on an executor holds up the worker.
    ///
    /// # Panics
    ///
    /// Panics if `n` is 0.
    pub fn yield_after_conflicts(mut self, n: u32) -> Self {
        self.set_yield_after_conflicts(Some(n));
        self
    }

    /// Sets or (with `None`) clears [`yield_after_conflicts`](Self::yield_after_conflicts)
    /// on a future that may already have been polled: the next poll follows the new
    /// setting, with the age the transaction has. Without yielding it backs off in place.
    ///
    /// # Panics
    ///
    /// Panics if `n` is `Some(0)`.
    pub fn set_yield_after_conflicts(&mut self, n: Option<u32>) {
        self.yield_every = n.map(|n| {
            NonZeroU32::new(n).expect("yield_after_conflicts(0): pass at least 1 conflict")
        });
    }

    /// If the last poll returned `Pending` to yield after conflicts (see
    /// [`yield_after_conflicts`](Self::yield_after_conflicts)), the TVar that the conflict
    /// which made it yield was on, as its [`TVar::id`](crate::TVar::id) (the number in
    /// [`stats::Conflict::tvar`](crate::stats::Conflict)); otherwise `None`: the future was
    /// not polled yet, it committed, or it is waiting in [`retry`](crate::retry).
    ///
    /// An executor can use it to tell a yield from a wait, and to serialize the tasks that
    /// keep conflicting on one TVar (as `concord-executor`'s `serialize_hot_tvars` does).
    /// The attribution is the one the statistics make: the TVar whose read, lock or
    /// validation failed in the losing attempt.
    ///
    /// # Examples
    ///
    /// ```
    /// use concord_stm::{atomically_async, TVar};
    ///
    /// let v = TVar::new(0);
    /// let fut = atomically_async(|tx| tx.modify(&v, |x| x + 1)).yield_after_conflicts(1);
    /// assert_eq!(fut.last_conflict_tvar(), None);
    /// ```
    pub fn last_conflict_tvar(&self) -> Option<usize> {
        self.yielded_on
    }
}

impl<F> std::fmt::Debug for Atomically<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Atomically")
            .field("waiting", &self.registration.is_some())
            .field("conflicts", &self.conflicts)
            .field("yielded_on", &self.yielded_on)
            .finish()
    }
}

// The future never pins its fields in place: `f` is only called through `&mut`.
impl<F> Unpin for Atomically<F> {}

impl<R, F> Future for Atomically<F>
where
    F: FnMut(&mut Transaction<'_>) -> Stm<R>,
{
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        with_context(|ctx| {
            if ctx.is_busy_outside_body() {
                panic!(
                    "atomically_async polled by a destructor or waker while a transaction of \
                     this thread is committing: poll it from elsewhere"
                );
            }
            this.poll_in(ctx, cx)
        })
    }
}

impl<F> Atomically<F> {
    /// One poll on an explicit context (the thread-local one, or a loom model's).
    pub(crate) fn poll_in<R>(&mut self, ctx: &TxInner, cx: &mut Context<'_>) -> Poll<R>
    where
        F: FnMut(&mut Transaction<'_>) -> Stm<R>,
    {
        let woken = match self.registration.take() {
            Some(reg) if !reg.is_notified() && reg.wakes(cx.waker()) => {
                self.registration = Some(reg);
                return Poll::Pending;
            }
            // Woken, or polled with a new waker: run the transaction again.
            Some(reg) => reg.is_notified(),
            None => false,
        };
        if woken {
            ctx.counters.wakeup();
        }
        assert!(
            !ctx.is_active(),
            "atomically_async polled inside a transaction body: call `atomically` to join the \
             enclosing transaction instead"
        );
        let waiting = Waiting { waker: Some(cx.waker()), yield_every: self.yield_every };
        let mut woken = woken;
        let mut step = match self.conflicts {
            // A first poll, or the first after a wakeup: the common case commits inline.
            0 => match fast_path(ctx, &mut self.f, waiting) {
                Ok(value) => return Poll::Ready(value),
                Err(step) => step,
            },
            conflicts => {
                self.conflicts = 0;
                self.yielded_on = None;
                run_attempts(ctx, &mut self.f, waiting, None, conflicts)
            }
        };
        loop {
            if woken && matches!(step, Step::Wait(_)) {
                ctx.counters.spurious_wakeup();
            }
            match step {
                Step::Done(Ok(r)) => return Poll::Ready(r),
                Step::Done(Err(_)) => unreachable!("STM signals never leave the attempt loop"),
                Step::Wait(reg) if reg.is_notified() => {
                    ctx.counters.wakeup();
                    woken = true;
                }
                Step::Wait(reg) => {
                    self.registration = Some(reg);
                    return Poll::Pending;
                }
                Step::Yield(conflicts, tvar) => {
                    self.conflicts = conflicts;
                    self.yielded_on = Some(tvar);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            step = run_attempts(ctx, &mut self.f, waiting, None, 0);
        }
    }
}

/// Hands the values this thread's commits replaced to the epoch collector now and lets it
/// free what no thread can still read.
///
/// Replaced values are freed by the thread that replaced them, once a grace period is over,
/// so a thread that stops writing may keep its last grace period's worth alive until it
/// writes again, waits in `retry`, or exits.
/// Call this at a quiescent point (say, before a worker goes idle) to release them sooner.
///
/// # Panics
///
/// Panics if called inside a transaction body.
pub fn collect_garbage() {
    crate::tx::assert_not_in_transaction("collect_garbage");
    with_context(|ctx| {
        if !ctx.is_busy_outside_body() {
            ctx.collect_garbage();
        }
    });
    let guard = crate::reclaim::pin();
    guard.flush();
}
