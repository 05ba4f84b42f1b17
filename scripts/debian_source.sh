#!/usr/bin/env bash
# Usage: scripts/debian_source.sh PACKAGE SUITE DIR
# Fetches Debian's source package PACKAGE from SUITE into DIR/build (the .dsc and the files it
# names), from the Debian archive this machine installs from (scripts/debian_archive.sh;
# SHOUWANG_DEBIAN_ARCHIVE overrides it), with apt's lists and cache of its own under DIR: the
# machine's apt configuration is not touched. A .dsc already in DIR/build is used as it is
# (fetched on another machine, for one without access to an archive). On failure it says what
# to do, and exits 1.
set -euo pipefail

package=$1 suite=$2 dir=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/build"
if ls "$dir/build/${package}"_*.dsc >/dev/null 2>&1; then
  exit 0
fi

if ! archive=$(bash "$here/debian_archive.sh" 2>/dev/null); then
  archive=http://deb.debian.org/debian
  echo "[setup] no Debian archive among this machine's apt sources; trying $archive" \
    "(SHOUWANG_DEBIAN_ARCHIVE sets another)" >&2
fi
echo "[setup] fetching Debian's source package $package ($suite) from $archive" >&2

echo "deb-src $archive $suite main" > "$dir/sources.list"
opts=(-o "Dir::Etc::sourcelist=$dir/sources.list" -o Dir::Etc::sourceparts=/dev/null
      -o "Dir::State::lists=$dir/lists" -o "Dir::Cache=$dir/cache"
      -o Acquire::Retries=1 -o Acquire::http::Timeout=20 -o Acquire::https::Timeout=20)
[ "$(id -u)" -eq 0 ] && opts+=(-o APT::Sandbox::User=root)
log="$dir/fetch.log"

failed() {
  cat >&2 <<EOF
Could not fetch Debian's source package $package ($suite) from $archive.
What apt said (all of it in $log):
$(grep -E '^(E|W|Err):' "$log" | tail -n 5 | sed 's/^/  /')
Do one of these, then run scripts/setup.sh again:
  - point it at a Debian mirror this machine reaches that carries $suite's sources (deb-src):
      SHOUWANG_DEBIAN_ARCHIVE=https://<your mirror>/debian bash scripts/setup.sh
    (by default it takes the archive of this machine's own apt sources: $archive);
  - on a machine that reaches one, run 'apt-get source --download-only $package' (with a
    deb-src line for $suite) and copy the ${package}_*.dsc and the files beside it into
    $dir/build/;
  - install TimescaleDB for this PostgreSQL yourself (its timescaledb*.so in the server's
    library directory, pg_config --pkglibdir); setup then leaves it as it is.
EOF
  exit 1
}

apt-get "${opts[@]}" update >"$log" 2>&1 || failed
(cd "$dir/build" && apt-get "${opts[@]}" source --download-only "$package") >>"$log" 2>&1 || failed
ls "$dir/build/${package}"_*.dsc >/dev/null 2>&1 || failed
