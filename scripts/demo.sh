#!/usr/bin/env bash
# README command 1: set up and run the platform's main job on this machine.
# Installs what is missing, starts the local PostgreSQL + TimescaleDB and Mosquitto, migrates,
# seeds the demo county (about 2,000 devices), then streams the simulator into ingest until
# Ctrl-C, which stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/stack.sh up
trap 'bash scripts/stack.sh down' EXIT
.venv/bin/shouwang seed
.venv/bin/shouwang up "$@"
