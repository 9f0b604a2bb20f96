#!/usr/bin/env bash
# Miri over the unsafe core: the STM's unit tests and its serial-mode integration test.
# crossbeam-epoch trips Stacked Borrows inside its own list and leaks its global collector
# at exit by design, hence Tree Borrows and -Zmiri-ignore-leaks; our own leaks are checked by
# drop counters in the ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-tree-borrows -Zmiri-ignore-leaks -Zmiri-permissive-provenance}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/miri"
cargo +nightly miri setup
cargo +nightly miri test -p concord-stm --locked --lib --test serial_mode
