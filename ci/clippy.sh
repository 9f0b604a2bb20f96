#!/usr/bin/env bash
# Lints: clippy on every target with warnings as errors, plus the rule that only the std/loom
# shim (stm/src/sync.rs) names std::sync::atomic, so that loom can swap every atomic.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="${RUSTFLAGS:-} -D warnings" cargo clippy --workspace --all-targets --locked -- -D warnings
offenders=$(git grep -n "std::sync::atomic" -- 'stm/src/*.rs' 'stm/src/**/*.rs' \
  | grep -v '^stm/src/sync.rs:' | grep -v '^stm/src/tests.rs:' | grep -v '^stm/src/loom_models.rs:' || true)
if [ -n "$offenders" ]; then
  echo "only stm/src/sync.rs may name std::sync::atomic (use crate::sync):" >&2
  echo "$offenders" >&2
  exit 1
fi
