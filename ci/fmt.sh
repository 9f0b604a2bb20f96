#!/usr/bin/env bash
# Formatting: rustfmt over the whole workspace, no changes allowed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
