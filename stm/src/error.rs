//! The control flow of a transaction body: `retry`, conflicts and typed user aborts.

use std::fmt;

/// Why an attempt stops early. Private: user code can propagate it with `?` but not build,
/// inspect or forge one (except through [`retry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum Kind {
    /// The body asked to wait for a change ([`retry`]).
    Retry,
    /// The attempt saw a conflict and must restart.
    Conflict,
}

/// The opaque signal that a transaction attempt cannot go on: the body called [`retry`], or
/// a read found a conflict. Propagate it with `?`; the runtime decides what happens next
/// (wait, restart, or take the other branch of [`or_else`](crate::Transaction::or_else)).
///
/// It has no public constructor and cannot be inspected, and swallowing one changes nothing:
/// a conflict marks the transaction itself, so the attempt restarts whatever the body
/// returns, and a swallowed `retry()` is the same as not having called it.
#[must_use = "an StmError means the attempt cannot go on: propagate it with `?`"]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StmError {
    pub(crate) kind: Kind,
}

impl StmError {
    pub(crate) const RETRY: StmError = StmError { kind: Kind::Retry };
    pub(crate) const CONFLICT: StmError = StmError { kind: Kind::Conflict };
}

impl fmt::Debug for StmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Retry => "StmError(retry)",
            Kind::Conflict => "StmError(conflict)",
        })
    }
}

impl fmt::Display for StmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            Kind::Retry => "the transaction called retry and waits for a change",
            Kind::Conflict => "the transaction attempt conflicted and will restart",
        })
    }
}

impl std::error::Error for StmError {}

/// The result of a transaction body or of an operation inside one.
pub type Stm<T> = Result<T, StmError>;

/// The error of a body run by [`atomically_or_err`](crate::atomically_or_err): either a user
/// abort carrying an `E`, or the STM's own control flow. Build the first with [`abort`];
/// `?` converts an [`StmError`] into the second.
#[must_use = "an Abort ends the attempt: propagate it with `?` or return it"]
pub struct Abort<E>(pub(crate) AbortRepr<E>);

pub(crate) enum AbortRepr<E> {
    User(E),
    Stm(StmError),
}

impl<E> From<StmError> for Abort<E> {
    fn from(e: StmError) -> Self {
        Abort(AbortRepr::Stm(e))
    }
}

impl<E: fmt::Debug> fmt::Debug for Abort<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            AbortRepr::User(e) => f.debug_tuple("Abort").field(e).finish(),
            AbortRepr::Stm(e) => fmt::Debug::fmt(e, f),
        }
    }
}

/// The result of a body that may [`abort`] with a user error `E`.
pub type StmResult<T, E> = Result<T, Abort<E>>;

/// Waits for a change: abandons this attempt and runs the transaction again once a TVar it
/// read has been changed by another commit (GHC's `retry`).
///
/// Inside [`or_else`](crate::Transaction::or_else), it abandons only the current branch.
///
/// # Panics
///
/// The transaction panics if it retries having read no TVar: nothing could ever wake it.
///
/// # Examples
///
/// ```
/// use concord_stm::{atomically, retry, TVar};
///
/// let stock = TVar::new(1_u32);
/// // Takes one item, waiting while there is none.
/// let take = || atomically(|tx| {
///     let n = tx.get(&stock)?;
///     if n == 0 {
///         return retry();
///     }
///     tx.write(&stock, n - 1)
/// });
/// take();
/// assert_eq!(stock.read_atomic(), 0);
/// ```
pub fn retry<T>() -> Stm<T> {
    Err(StmError::RETRY)
}

/// Retries unless `cond` holds (GHC's `check`).
///
/// ```
/// use concord_stm::{atomically, check, TVar};
///
/// let ready = TVar::new(true);
/// atomically(|tx| check(tx.get(&ready)?));
/// ```
pub fn check(cond: bool) -> Stm<()> {
    if cond {
        Ok(())
    } else {
        retry()
    }
}

/// Ends the transaction with the user error `e`; nothing it wrote is committed. Use inside
/// [`atomically_or_err`](crate::atomically_or_err).
///
/// Before the error is returned, the transaction's reads are validated: if the snapshot it
/// decided on is already out of date, the transaction runs again instead, so an abort is
/// always based on current state.
pub fn abort<T, E>(e: E) -> StmResult<T, E> {
    Err(Abort(AbortRepr::User(e)))
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::StmError {}
    impl<E> Sealed for super::Abort<E> {}
}

/// The error types a transaction body can return: [`StmError`] and [`Abort<E>`]. Sealed.
pub trait Control: From<StmError> + sealed::Sealed {
    /// `None` for a user abort; the STM's own signal otherwise.
    #[doc(hidden)]
    fn stm_kind(&self) -> Option<Kind>;
}

impl Control for StmError {
    fn stm_kind(&self) -> Option<Kind> {
        Some(self.kind)
    }
}

impl<E> Control for Abort<E> {
    fn stm_kind(&self) -> Option<Kind> {
        match &self.0 {
            AbortRepr::User(_) => None,
            AbortRepr::Stm(e) => Some(e.kind),
        }
    }
}
