#!/usr/bin/env bash
# README command 2: set up and run the checks and the whole test suite against a real
# PostgreSQL + TimescaleDB and a real Mosquitto. Arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
# Leave the services as they were found: stop them afterwards only if this run started them.
if ! bash scripts/stack.sh status 2>&1 | grep -q "PostgreSQL: running"; then
  trap 'bash scripts/stack.sh down' EXIT
fi
bash scripts/stack.sh up
export PATH="$root/.venv/bin:$PATH"
# Screenshots and PDFs of the browser tests are kept here (docs/pages.md), each run's replacing the
# last's.
export SHOUWANG_TEST_ARTEFACTS="${SHOUWANG_TEST_ARTEFACTS:-$root/.state/test-artefacts}"
rm -rf "$SHOUWANG_TEST_ARTEFACTS" && mkdir -p "$SHOUWANG_TEST_ARTEFACTS"
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
# Three workers, each with its own database and brokers (tests/conftest.py): much of the suite
# waits on services, outages and the wall clock (the drills), so a third worker keeps the two
# cores busy meanwhile (1,465 tests in 18 min where two workers took 19 for 1,328).
# SHOUWANG_TEST_WORKERS=0 runs in one process.
echo "== pytest"; pytest -n "${SHOUWANG_TEST_WORKERS:-3}" --durations=30 "$@"
