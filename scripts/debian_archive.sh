#!/usr/bin/env bash
# Prints the Debian archive this machine installs from (e.g. http://deb.debian.org/debian, or a
# local mirror's https://mirror.example.cn/debian), for scripts/setup.sh to fetch Debian source
# packages from the same place. SHOUWANG_DEBIAN_ARCHIVE, when set, wins.
#
# Reads apt's own sources: <etc>/sources.list and <etc>/sources.list.d/*.list (one-line
# "deb [options] URI SUITE COMPONENT..."), <etc>/sources.list.d/*.sources (deb822 paragraphs:
# Types, URIs, Suites, Components, Enabled). The first enabled deb or deb-src entry over
# http(s) whose suite is a Debian release (bookworm, trixie, ..., with -updates or -backports,
# not -security) and whose components include main is the archive. <etc> is /etc/apt, or the
# first argument. Exits 1, saying so on stderr, when no entry is a Debian archive.
set -euo pipefail

if [ -n "${SHOUWANG_DEBIAN_ARCHIVE:-}" ]; then
  printf '%s\n' "${SHOUWANG_DEBIAN_ARCHIVE%/}"
  exit 0
fi

etc=${1:-/etc/apt}
files=()
[ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
  [ -f "$f" ] && files+=("$f")
done

found=""
if [ ${#files[@]} -gt 0 ]; then
  found=$(awk '
    function debian_suite(s) {
      return s ~ /^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)(-updates|-backports)?$/
    }
    function has_main(comps,    n, i, c) {
      n = split(comps, c, /[ \t]+/)
      for (i = 1; i <= n; i++) if (c[i] == "main") return 1
      return 0
    }
    function consider(types, uris, suites, comps, enabled,    nt, t, nu, u, ns, s, i, j, k, ok) {
      if (tolower(enabled) == "no" || !has_main(comps)) return
      ok = 0
      nt = split(types, t, /[ \t]+/)
      for (i = 1; i <= nt; i++) if (t[i] == "deb" || t[i] == "deb-src") ok = 1
      if (!ok) return
      nu = split(uris, u, /[ \t]+/)
      ns = split(suites, s, /[ \t]+/)
      for (i = 1; i <= nu; i++) {
        if (u[i] !~ /^https?:\/\//) continue
        for (j = 1; j <= ns; j++) if (debian_suite(s[j])) { sub(/\/+$/, "", u[i]); print u[i]; done = 1; exit }
      }
    }
    function flush() {
      if (p_types != "") consider(p_types, p_uris, p_suites, p_comps, p_enabled)
      p_types = p_uris = p_suites = p_comps = p_enabled = ""; last = ""
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
    {
      line = $0
      sub(/#.*/, "", line)
      if (deb822) {
        if (line ~ /^[ \t]*$/) { if ($0 !~ /^[ \t]*#/) flush(); next }
        if (line ~ /^[ \t]/) {  # a continuation of the last field
          gsub(/^[ \t]+|[ \t]+$/, "", line)
          if (last == "types") p_types = p_types " " line
          else if (last == "uris") p_uris = p_uris " " line
          else if (last == "suites") p_suites = p_suites " " line
          else if (last == "components") p_comps = p_comps " " line
          next
        }
        key = tolower(line); sub(/:.*/, "", key)
        value = line; sub(/^[^:]*:[ \t]*/, "", value); gsub(/[ \t]+$/, "", value)
        last = key
        if (key == "types") p_types = value
        else if (key == "uris") p_uris = value
        else if (key == "suites") p_suites = value
        else if (key == "components") p_comps = value
        else if (key == "enabled") p_enabled = value
        next
      }
      gsub(/\[[^]]*\]/, "", line)  # [arch=amd64 signed-by=...]
      n = split(line, w, /[ \t]+/)
      if (w[1] == "") { for (i = 1; i < n; i++) w[i] = w[i + 1]; n-- }
      if (n < 4) next
      comps = w[4]
      for (i = 5; i <= n; i++) comps = comps " " w[i]
      consider(w[1], w[2], w[3], comps, "yes")
    }
    END { if (!done) flush() }
  ' "${files[@]}")
fi

if [ -z "$found" ]; then
  echo "no Debian archive among the apt sources in $etc (sources.list, sources.list.d/*.list," \
    "*.sources); set SHOUWANG_DEBIAN_ARCHIVE to a Debian mirror's URL, e.g." \
    "https://mirror.example.cn/debian" >&2
  exit 1
fi
printf '%s\n' "$found"
