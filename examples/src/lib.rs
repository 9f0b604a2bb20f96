//! Example programs for Concord; see the binaries in `src/bin/`.
