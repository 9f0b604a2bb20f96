#!/usr/bin/env bash
# The whole test suite, cheapest first: format, lints, unit/integration/doc/stress tests in
# debug and release, loom models, Miri. Each step is also a script of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
for step in fmt clippy unit loom miri; do
  echo "==> ci/$step.sh"
  start=$(date +%s)
  "./ci/$step.sh"
  echo "<== ci/$step.sh ok ($(( $(date +%s) - start )) s)"
done
echo "all checks passed"
