#!/usr/bin/env bash
# Installs what the suite needs on a fresh machine; does nothing for what is already there.
set -euo pipefail

# The stable toolchain's lints and formatter.
rustup component add rustfmt clippy
# Miri runs on nightly (present on these machines; add it if missing) with rust-src.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component add miri rust-src --toolchain nightly

# The dict-server end-to-end and differential tests drive Debian's redis-cli,
# redis-benchmark and redis-server.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-tools redis-server
fi
