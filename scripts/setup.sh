#!/usr/bin/env bash
# Installs what shouwang needs on a fresh Debian machine, and nothing twice:
#   Debian packages (mosquitto, PostgreSQL + server headers, cmake),
#   TimescaleDB (Apache edition) built from Debian's source package when absent (fetched from
#   the Debian archive of the machine's apt sources, or SHOUWANG_DEBIAN_ARCHIVE: a mirror's URL),
#   a virtualenv at .venv with the project and its development tools,
#   the local CA and the broker's TLS certificate under .state/tls/ (scripts/certs.sh).
# Safe to run again: every step checks before it acts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.state"
mkdir -p "$state"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

debian_major=$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo 12)
apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ $apt_updated -eq 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing Debian packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# PostgreSQL major version: 15 where its server headers can be had (Debian 12), else the
# archive's own (Debian 13 ships postgresql-17 with a TimescaleDB binary package).
pg_major=${SHOUWANG_PG_MAJOR:-}
if [ -z "$pg_major" ]; then
  if [ "$debian_major" -ge 13 ] && ! apt-cache show postgresql-server-dev-15 >/dev/null 2>&1; then
    pg_major=17
  else
    pg_major=15
  fi
fi
echo "$pg_major" > "$state/pg_major"

apt_install mosquitto mosquitto-clients "postgresql-$pg_major" "postgresql-client-$pg_major" \
  ca-certificates openssl python3-venv chromium chromium-driver fonts-wqy-microhei prometheus pgbackrest
pg_bin="/usr/lib/postgresql/$pg_major/bin"
pkglib=$("$pg_bin/pg_config" --pkglibdir 2>/dev/null || echo "/usr/lib/postgresql/$pg_major/lib")

# TimescaleDB
if ! ls "$pkglib"/timescaledb*.so >/dev/null 2>&1; then
  if apt-cache show "postgresql-$pg_major-timescaledb" >/dev/null 2>&1; then
    apt_install "postgresql-$pg_major-timescaledb"
  else
    apt_install "postgresql-server-dev-$pg_major" cmake build-essential dpkg-dev
    log "building TimescaleDB (Apache edition) from Debian's source package"
    aptdir="$state/apt-src"
    # From the Debian archive of this machine's apt sources (a local mirror, say), or
    # SHOUWANG_DEBIAN_ARCHIVE; says what to do when it cannot be fetched.
    bash "$root/scripts/debian_source.sh" timescaledb trixie "$aptdir"
    dsc=$(ls "$aptdir"/build/timescaledb_*.dsc | head -n1)
    rm -rf "$aptdir/build/src" && dpkg-source -x --no-check "$dsc" "$aptdir/build/src" >/dev/null
    (cd "$aptdir/build/src" &&
      ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
        -DUSE_TELEMETRY=OFF -DPG_CONFIG="$pg_bin/pg_config" >"$aptdir/build.log" 2>&1 &&
      make -C build -j"$(nproc)" >>"$aptdir/build.log" 2>&1 &&
      as_root make -C build install >>"$aptdir/build.log" 2>&1) ||
      { tail -n 40 "$aptdir/build.log"; echo "TimescaleDB build failed; log: $aptdir/build.log" >&2; exit 1; }
    log "TimescaleDB installed into $pkglib"
  fi
fi

# Python virtualenv with the project
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  python3 -m venv "$venv"
fi
stamp="$venv/.shouwang-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  log "installing the project and its dependencies into the virtualenv"
  { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -e "$root[dev]"; } \
    > "$state/pip.log" 2>&1 || { grep -v "is ignored: it is neither" "$state/pip.log" | tail -n 30; exit 1; }
  touch "$stamp"
fi
tls_dir="${SHOUWANG_STATE_DIR:-$state}/tls"  # where scripts/stack.sh looks for them
bash "$root/scripts/certs.sh" "$tls_dir" localhost 127.0.0.1
log "ready: PostgreSQL $pg_major with TimescaleDB, mosquitto, $venv, the local CA in $tls_dir"
