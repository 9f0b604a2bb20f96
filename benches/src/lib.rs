//! Shared workload code for Concord's competitor benchmarks (see `benches/README.md`).
//!
//! Every contender implements one trait, [`Bank`]: an array of `i64` balances with the
//! operations the workloads W1-W7 need (read one, increment one, transfer, consistent sum).
//! The workloads themselves live in [`workload`], generic over the contender, and draw their
//! indices from the seeded [`XorShift`] generator, so every contender runs exactly the same
//! sequence of operations. [`workload::run_threads`] is the multi-threaded driver the
//! criterion benchmarks (`benches/bank_1t.rs`, `benches/bank_2t.rs`) and the conservation
//! tests (`tests/conservation.rs`) share; [`latency::sample`] times operations one by one for
//! the tail-latency table (`benches/latency.rs`).
//!
//! The contenders, one module each:
//!
//! - [`contenders::concord`]: Concord's STM, one `TVar<i64>` per account.
//! - [`contenders::global_mutex`]: one `parking_lot::Mutex<Vec<i64>>` over the whole state.
//! - [`contenders::mutex_per_account`]: a `parking_lot::Mutex<i64>` per account, locked in
//!   index order (two-phase: all locks held until the operation ends).
//! - [`contenders::rust_stm`]: the peer STM crate `stm` 0.4, one `stm::TVar<i64>` per account.

pub mod bank;
// The runner spawns processes (`ipc::process`), which the loom build of `ipc` leaves out.
#[cfg(not(loom))]
pub mod compare;
pub mod contenders;
pub mod ipc;
pub mod latency;
pub mod maps;
pub mod probe;
pub mod rng;
pub mod sched;
pub mod workload;

pub use crate::bank::Bank;
pub use crate::rng::XorShift;
