#!/usr/bin/env bash
# The project's test command (README, CI): lint, then the test suite on two workers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "ruff: $(ruff --version)"
ruff check scripts tests benchmarks
if command -v shellcheck >/dev/null 2>&1; then
  shellcheck -x scripts/*.sh scripts/lib/*.sh examples/*.sh tests/run.sh .ci/run
  echo "shellcheck: clean"
else
  echo "shellcheck: not installed, bash lint skipped (apt-get install shellcheck)"
fi
exec python3 -m pytest -q -n 2 "$@"
