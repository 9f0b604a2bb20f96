#!/usr/bin/env bash
# The whole test suite, cheapest first: format, lints, unit/integration/doc/stress tests in
# debug and release, loom models, Miri; then the compare runner's mpi contender under
# mpirun. Each step but the last is also a script of its own. First, ci/setup.sh installs
# what is missing on a fresh machine (toolchain components, Miri, Debian's redis tools and
# OpenMPI), so this one command runs the suite anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup.sh
for step in fmt clippy unit loom miri; do
  echo "==> ci/$step.sh"
  start=$(date +%s)
  "./ci/$step.sh"
  echo "<== ci/$step.sh ok ($(( $(date +%s) - start )) s)"
done

# The mpi contender (feature `mpi`, off in the steps above): its lints, then the smoke
# profile under mpirun with 2 ranks (rank 0 coordinates, rank 1 is the one worker), as the
# issue asks, and with 3 ranks for the 2-worker cases, where workers message each other.
# Each case checks its result; a failed check aborts the MPI job and fails this step.
echo "==> mpi: the compare runner's mpi contender under mpirun"
start=$(date +%s)
export RUSTFLAGS="${RUSTFLAGS:-} -D warnings"
cargo clippy -p concord-benches --features mpi --all-targets --locked -- -D warnings
cargo build --release -p concord-benches --features mpi --bin compare --locked
compare="${CARGO_TARGET_DIR:-target}/release/compare"
out="${CARGO_TARGET_DIR:-target}/compare-mpi-smoke"
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# --bind-to none: OpenMPI binds each rank to one core when there are no more ranks than
# cores; --oversubscribe: 3 ranks on a 2-core machine.
mpirun -np 2 --bind-to none "$compare" --smoke --contenders mpi --out "$out"
mpirun -np 3 --bind-to none --oversubscribe "$compare" --smoke --contenders mpi --workers 2 \
  --out "$out"
echo "<== mpi ok ($(( $(date +%s) - start )) s)"
echo "all checks passed"
