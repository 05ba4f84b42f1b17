#!/usr/bin/env bash
# The project-owned local stack: a PostgreSQL + TimescaleDB cluster and a Mosquitto broker,
# each on its own loopback port with state under .state/. Nothing of the machine's own
# PostgreSQL or Mosquitto is touched.
#   scripts/stack.sh up      start both (initialising on first use), migrate, write broker ACLs
#   scripts/stack.sh down    stop both
#   scripts/stack.sh status  say what runs
#   scripts/stack.sh certs   make the local CA and the broker's certificate if missing (up does too)
# Set SHOUWANG_DATABASE_URL / SHOUWANG_MQTT_HOST to use external services instead: `up` then
# starts nothing of its own and only migrates.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="${SHOUWANG_STATE_DIR:-$root/.state}"
pg_major=$(cat "$state/pg_major" 2>/dev/null || echo 15)
pg_bin="/usr/lib/postgresql/$pg_major/bin"
pgdata="$state/pg"
# PostgreSQL runs as the postgres user, which may not be able to reach a checkout under a
# private directory (a mktemp dir, a home). Then the cluster lives in postgres's own directory,
# one per checkout, and .state/pg links to it.
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$state" 2>/dev/null; then
  mkdir -p "$state"
  private="/var/lib/postgresql/shouwang-$(printf '%s' "$root" | sha1sum | cut -c1-12)"
  [ -L "$pgdata" ] || { rm -rf "$pgdata"; ln -s "$private" "$pgdata"; }
  pgdata="$private"
elif [ -L "$pgdata" ] && [ ! -e "$pgdata" ]; then
  rm -f "$pgdata"  # a link left by a checkout that postgres could not reach
fi
pg_port=${SHOUWANG_LOCAL_PG_PORT:-54329}
mq_dir="$state/mosquitto"
mq_port=${SHOUWANG_LOCAL_MQTT_PORT:-18883}
mq_tls_port=${SHOUWANG_LOCAL_MQTT_TLS_PORT:-18884}
tls_dir="$state/tls"
envfile="$state/shouwang.env"
shouwang="$root/.venv/bin/shouwang"
log() { printf '\033[1;34m[stack]\033[0m %s\n' "$*"; }

as_postgres() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }

write_env() {
  # Passwords added by later versions go into an existing file.
  if [ -f "$envfile" ]; then
    for key in SHOUWANG_MQTT_ANALYTICS_PASSWORD SHOUWANG_NOTIFY_MQTT_PASSWORD SHOUWANG_NOTIFY_ACK_SECRET; do
      grep -q "^$key=" "$envfile" || echo "$key=$(secret)" >> "$envfile"
    done
    grep -q "^SHOUWANG_MQTT_CA_FILE=" "$envfile" || echo "SHOUWANG_MQTT_CA_FILE=$tls_dir/ca.crt" >> "$envfile"
    return 0
  fi
  mkdir -p "$state"
  # A cluster left from an earlier checkout at this path has other passwords: start afresh.
  [ -f "$pgdata/PG_VERSION" ] && rm -rf "${pgdata:?}"/*
  umask 077
  local dbpw; dbpw=$(secret)
  cat > "$envfile" <<ENV
# Written once by scripts/stack.sh for the project-owned local stack. Environment variables win.
SHOUWANG_DATABASE_URL=postgresql://shouwang:${dbpw}@127.0.0.1:${pg_port}/shouwang
SHOUWANG_MQTT_HOST=127.0.0.1
SHOUWANG_MQTT_PORT=${mq_port}
SHOUWANG_MQTT_INGEST_PASSWORD=$(secret)
SHOUWANG_MQTT_ADMIN_PASSWORD=$(secret)
SHOUWANG_MQTT_ANALYTICS_PASSWORD=$(secret)
SHOUWANG_NOTIFY_MQTT_PASSWORD=$(secret)
SHOUWANG_NOTIFY_ACK_SECRET=$(secret)
# The broker's TLS listener is 127.0.0.1:${mq_tls_port}, its certificate signed by this CA. The
# platform's own services use the plain loopback listener above; a client over TLS sets
# SHOUWANG_MQTT_TLS=true SHOUWANG_MQTT_PORT=${mq_tls_port}.
SHOUWANG_MQTT_CA_FILE=${tls_dir}/ca.crt
ENV
}

# The local CA and the broker's certificate (localhost, 127.0.0.1), made once; never committed
# (.state/ is ignored).
tls_up() { bash "$root/scripts/certs.sh" "$tls_dir" localhost 127.0.0.1; }

env_value() { sed -n "s/^$1=//p" "$envfile"; }

external() { [ -n "${SHOUWANG_DATABASE_URL:-}" ] || [ -n "${SHOUWANG_MQTT_HOST:-}" ]; }

pg_up() {
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    log "initialising PostgreSQL $pg_major cluster in $pgdata"
    mkdir -p "$pgdata"
    [ "$(id -u)" -eq 0 ] && chown postgres "$pgdata" && chmod 700 "$pgdata"
    local pwfile; pwfile=$(mktemp)
    env_value SHOUWANG_DATABASE_URL | sed -E 's|.*//[^:]+:([^@]+)@.*|\1|' > "$pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres "$pwfile"
    as_postgres "$pg_bin/initdb" -D "$pgdata" -U shouwang --pwfile="$pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    cat >> "$pgdata/postgresql.conf" <<CONF
# shouwang local stack
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$pgdata'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
shared_buffers = 1GB
work_mem = 32MB
maintenance_work_mem = 256MB
wal_buffers = 16MB
max_wal_size = 4GB
synchronous_commit = on
checkpoint_timeout = 15min
timezone = 'UTC'
log_min_duration_statement = 2000
CONF
  fi
  if as_postgres "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    log "PostgreSQL already running on 127.0.0.1:$pg_port"
  else
    as_postgres "$pg_bin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w -t 60 start >/dev/null
    log "PostgreSQL started on 127.0.0.1:$pg_port"
  fi
  PGPASSWORD=$(env_value SHOUWANG_DATABASE_URL | sed -E 's|.*//[^:]+:([^@]+)@.*|\1|') \
    "$pg_bin/psql" -h 127.0.0.1 -p $pg_port -U shouwang -d postgres -qtAc \
    "SELECT 1 FROM pg_database WHERE datname='shouwang'" | grep -q 1 ||
    PGPASSWORD=$(env_value SHOUWANG_DATABASE_URL | sed -E 's|.*//[^:]+:([^@]+)@.*|\1|') \
      "$pg_bin/psql" -h 127.0.0.1 -p $pg_port -U shouwang -d postgres -qc "CREATE DATABASE shouwang" >/dev/null
}

mq_running() { [ -f "$mq_dir/mosquitto.pid" ] && kill -0 "$(cat "$mq_dir/mosquitto.pid")" 2>/dev/null; }

mq_stop() {
  local pid; pid=$(cat "$mq_dir/mosquitto.pid")
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
}

mq_up() {
  mkdir -p "$mq_dir/data"
  "$shouwang" broker broker-config --port "$mq_port" --dir "$mq_dir" \
    --tls-dir "$tls_dir" --tls-port "$mq_tls_port" > "$mq_dir/mosquitto.conf.new"
  if mq_running && ! cmp -s "$mq_dir/mosquitto.conf.new" "$mq_dir/mosquitto.conf"; then
    log "Mosquitto's configuration changed: restarting it (listeners change only on a restart)"
    mq_stop
  fi
  mv "$mq_dir/mosquitto.conf.new" "$mq_dir/mosquitto.conf"
  if mq_running; then
    kill -HUP "$(cat "$mq_dir/mosquitto.pid")"
    log "Mosquitto already running on 127.0.0.1:$mq_port, TLS 127.0.0.1:$mq_tls_port (credentials reloaded)"
  else
    rm -f "$mq_dir/mosquitto.pid"
    ulimit -n 65536 2>/dev/null || true
    mosquitto -c "$mq_dir/mosquitto.conf" -d 2>>"$mq_dir/mosquitto.log"
    for _ in $(seq 50); do
      (exec 3<>/dev/tcp/127.0.0.1/$mq_tls_port) 2>/dev/null && break; sleep 0.1
    done
    for port in "$mq_port" "$mq_tls_port"; do
      (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || { tail "$mq_dir/mosquitto.log"; exit 1; }
    done
    log "Mosquitto started on 127.0.0.1:$mq_port, TLS 127.0.0.1:$mq_tls_port (CA $tls_dir/ca.crt)"
  fi
}

case "${1:-}" in
  up)
    if external; then
      log "external services configured; migrating only"
      "$shouwang" migrate
      exit 0
    fi
    write_env
    tls_up
    pg_up
    "$shouwang" migrate
    "$shouwang" broker sync --no-reload
    mq_up
    ;;
  certs)
    tls_up
    ;;
  down)
    if [ -f "$mq_dir/mosquitto.pid" ] && kill -0 "$(cat "$mq_dir/mosquitto.pid")" 2>/dev/null; then
      kill "$(cat "$mq_dir/mosquitto.pid")"; log "Mosquitto stopped"
    fi
    if [ -f "$pgdata/PG_VERSION" ] && as_postgres "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
      as_postgres "$pg_bin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null; log "PostgreSQL stopped"
    fi
    ;;
  status)
    as_postgres "$pg_bin/pg_ctl" -D "$pgdata" status >/dev/null 2>&1 && log "PostgreSQL: running (127.0.0.1:$pg_port)" || log "PostgreSQL: stopped"
    { [ -f "$mq_dir/mosquitto.pid" ] && kill -0 "$(cat "$mq_dir/mosquitto.pid")" 2>/dev/null && log "Mosquitto: running (127.0.0.1:$mq_port, TLS 127.0.0.1:$mq_tls_port)"; } || log "Mosquitto: stopped"
    ;;
  *) echo "usage: $0 up|down|status|certs" >&2; exit 2 ;;
esac
