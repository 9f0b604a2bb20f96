#!/usr/bin/env bash
# The whole test suite, cheapest first: format, lints, unit/integration/doc/stress tests in
# debug and release, loom models, Miri. Each step is also a script of its own. First,
# ci/setup.sh installs what is missing on a fresh machine (toolchain components, Miri,
# Debian's redis tools), so this one command runs the suite anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup.sh
for step in fmt clippy unit loom miri; do
  echo "==> ci/$step.sh"
  start=$(date +%s)
  "./ci/$step.sh"
  echo "<== ci/$step.sh ok ($(( $(date +%s) - start )) s)"
done
echo "all checks passed"
