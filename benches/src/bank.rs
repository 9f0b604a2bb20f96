//! The interface every contender implements.

use std::fmt;

/// The most indices [`Bank::sum`] accepts in one call.
pub const MAX_SUM: usize = 16;

/// An array of `i64` account balances behind some synchronization scheme.
///
/// Every operation is atomic (linearizable) with respect to every other one: that is what
/// the benchmarks compare the cost of. Indices must be below [`accounts`](Self::accounts).
pub trait Bank: Send + Sync + fmt::Debug {
    /// The contender's name, as used in benchmark IDs (`w4_w_disjoint_2t/<NAME>`).
    const NAME: &'static str;

    /// A bank of `accounts` accounts, each holding `initial`.
    fn new(accounts: usize, initial: i64) -> Self
    where
        Self: Sized;

    /// The number of accounts.
    fn accounts(&self) -> usize;

    /// Reads the balance of account `i` (a read-only transaction on one variable).
    fn read(&self, i: usize) -> i64;

    /// Adds one to account `i`.
    fn increment(&self, i: usize);

    /// Moves `amount` from account `from` to account `to`, atomically. `from == to` is
    /// allowed and changes nothing.
    fn transfer(&self, from: usize, to: usize, amount: i64);

    /// The sum of the balances at `indices`, read from one consistent state. An index may
    /// repeat (it is then counted as often as it appears).
    ///
    /// # Panics
    ///
    /// If `indices` holds more than [`MAX_SUM`] entries.
    fn sum(&self, indices: &[usize]) -> i64;

    /// The sum of every balance, read from one consistent state (for tests; not fast).
    fn total(&self) -> i64;

    /// For an STM that keeps statistics (Concord), a snapshot of them; `None` otherwise.
    fn stm_stats() -> Option<concord_stm::stats::Stats> {
        None
    }
}
