//! The Concord executor: a work-stealing pool on rayon-core where a transaction that calls
//! `retry` suspends its task, never a worker thread.
//!
//! **Not built yet** (issue 3): this crate is a placeholder in the workspace so that the
//! layout of `DESIGN.md` section 1 exists; it exports nothing. Until it lands, run
//! transactions on plain threads with [`concord_stm::atomically`], or on any async runtime
//! with [`concord_stm::atomically_async`].

pub use concord_stm;
