#!/usr/bin/env bash
# Unit, integration, doc and bounded stress tests of the whole workspace, debug then release.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
export RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings"
cargo test --workspace --locked
cargo test --workspace --locked --release
