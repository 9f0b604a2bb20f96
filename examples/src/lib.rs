//! Example programs for Concord; see the binaries in `src/bin/`.
//!
//! The library holds the parts of the examples that tests drive directly: [`dict`], the
//! Redis-protocol key-value server behind the `dict-server` binary.

pub mod dict;
