#!/usr/bin/env bash
# A private CA and the broker's TLS certificate, made with openssl, nothing twice:
#   scripts/certs.sh DIR [NAME ...]
# writes DIR/ca.key, DIR/ca.crt (the CA: give ca.crt to every client), DIR/server.key and
# DIR/server.crt (the broker's, valid for each NAME: host names and IP addresses the clients
# connect to; default: localhost 127.0.0.1). An existing CA is kept; the server certificate is
# made anew when it is missing, not signed by this CA, or does not name every NAME.
# The local stack keeps its own in .state/tls/ (scripts/stack.sh certs); for docker compose see
# docs/operations.md (TLS). Keys are written with mode 0600; never commit them.
set -euo pipefail

dir=${1:?usage: scripts/certs.sh DIR [NAME ...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
log() { printf '\033[1;34m[certs]\033[0m %s\n' "$*"; }
command -v openssl >/dev/null || { echo "openssl is missing; run scripts/setup.sh" >&2; exit 1; }

san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then san+="${san:+,}IP:$n"; else san+="${san:+,}DNS:$n"; fi
done

mkdir -p "$dir"
cd "$dir"
umask 077
if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
  log "creating a CA in $dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -subj "/CN=shouwang CA $(hostname) $(date +%Y%m%d%H%M%S)" -keyout ca.key -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
  rm -f server.crt
fi

names_ok() {
  local text; text=$(openssl x509 -in server.crt -noout -ext subjectAltName 2>/dev/null) || return 1
  local n
  for n in "${names[@]}"; do
    if [[ "$n" =~ ^[0-9.]+$ || "$n" == *:* ]]; then
      grep -qiF "IP Address:$n" <<<"$text" || return 1
    else
      grep -qF "DNS:$n" <<<"$text" || return 1
    fi
  done
}

if [ ! -s server.key ] || [ ! -s server.crt ] ||
  ! openssl verify -CAfile ca.crt server.crt >/dev/null 2>&1 || ! names_ok; then
  log "creating the broker's certificate for ${names[*]} in $dir"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
    -subj "/CN=${names[0]}" -keyout server.key -out server.csr 2>/dev/null
  printf '%s\n' "subjectAltName=$san" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > server.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days 825 -extfile server.ext -out server.crt 2>/dev/null
  rm -f server.csr server.ext
fi
chmod 644 ca.crt server.crt
