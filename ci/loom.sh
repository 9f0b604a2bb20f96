#!/usr/bin/env bash
# Loom models of the STM protocols (commit vs read, retry vs commit, reclamation vs reader),
# run on the real code with loom's atomics and crossbeam-epoch's loom build.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg loom --cfg crossbeam_loom"
# Each model sets its own preemption bound (2, or 1 for the steered one); LOOM_MAX_PREEMPTIONS
# overrides them all.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
cargo test -p concord-stm --lib --release --locked -- --test-threads=2 loom_models
