//! The std/loom shim of the IPC transport: every atomic, fence, spin hint and `Arc` the ring
//! uses comes from here, so that `RUSTFLAGS="--cfg loom"` swaps them for loom's models at
//! once. No other module of `ipc` names `std::sync::atomic`.
//!
//! The futex (the one other thing the model must replace) has its own module, `futex`.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::{hint::spin_loop, thread::yield_now};

#[cfg(loom)]
pub(crate) use loom::{hint::spin_loop, thread::yield_now};

#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
