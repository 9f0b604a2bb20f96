#!/usr/bin/env bash
# Installs what the suite needs on a fresh machine; does nothing for what is already there.
set -euo pipefail

# The stable toolchain's lints and formatter.
rustup component add rustfmt clippy
# Miri runs on nightly (present on these machines; add it if missing) with rust-src.
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component add miri rust-src --toolchain nightly

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# The dict-server end-to-end and differential tests drive Debian's redis-cli,
# redis-benchmark and redis-server.
if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-tools redis-server
fi

# The compare runner's mpi contender (feature `mpi`): OpenMPI's library and mpirun, and
# libclang and pkg-config for the build script of rsmpi (the `mpi` crate).
missing=""
for package in libopenmpi-dev openmpi-bin libclang-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$' \
    || missing="$missing $package"
done
if [ -n "$missing" ]; then
  $SUDO apt-get update
  # shellcheck disable=SC2086 # one word per package
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y $missing
fi
