#!/usr/bin/env bash
# README command 1: set up and run the platform's main job on this machine.
# Installs what is missing, starts the local PostgreSQL + TimescaleDB and Mosquitto, migrates,
# seeds the demo county (about 2,000 devices) and the demo firm's duty roster with duty-page
# logins (printed, with the duty page's address), then streams the simulator into ingest,
# injecting a fault every SHOUWANG_DEMO_FAULT_EVERY_S (default 180 s; the first a minute in),
# until Ctrl-C, which stops everything it started.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
bash scripts/stack.sh up
trap 'bash scripts/stack.sh down' EXIT
.venv/bin/shouwang seed
.venv/bin/shouwang demo roster
.venv/bin/shouwang up "$@"
