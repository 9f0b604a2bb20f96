#!/usr/bin/env bash
# Loom models: the STM protocols (commit vs read, retry vs commit, async suspend vs commit,
# reclamation vs reader), run on the real code with loom's atomics and crossbeam-epoch's loom
# build; and the shared-memory ring of the message-passing contender (publish/consume, the
# futex sleep handshake on both sides, disconnect).
set -euo pipefail
cd "$(dirname "$0")/.."
base="${CARGO_TARGET_DIR:-target}"
# Each model sets its own preemption bound (2, or 1 for the steered one); LOOM_MAX_PREEMPTIONS
# overrides them all.
RUSTFLAGS="--cfg loom --cfg crossbeam_loom" CARGO_TARGET_DIR="$base/loom" \
    cargo test -p concord-stm --lib --release --locked -- --test-threads=2 loom_models
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR="$base/loom-ipc" \
    cargo test -p concord-benches --lib --release --locked -- --test-threads=2 ipc::
