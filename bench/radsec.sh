#!/usr/bin/env bash
# Throughput over RadSec (RFC 6614: one TLS connection, WINDOW requests in flight)
# against UDP, one pinradius serving both, in interleaved rounds; returning logins
# (devices bound). The certificates are made with the README's openssl commands.
#
# Usage: bench/radsec.sh
# Knobs (environment): ROUNDS=5 DURATION=6 TOKENS=1000 WINDOW=256
set -euo pipefail
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6}
TOKENS=${TOKENS:-1000}
WINDOW=${WINDOW:-256}
SECRET=bench-shared-secret-0123456789
PORT=18150
TLS_PORT=18152
cd "$(dirname "$0")/.."
. bench/config.sh
bench_setup radsec

# The README's commands (RadSec section), in $WORK/tls.
mkdir -p "$WORK/tls" && (
  cd "$WORK/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=pinradius NAS CA" -keyout ca.key -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  printf 'subjectAltName=DNS:radius.example.net\nextendedKeyUsage=serverAuth\n' > server.ext
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=radius.example.net" -keyout server.key -out server.csr
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile server.ext -out server.pem
  printf 'subjectAltName=DNS:lobby.example.net\nextendedKeyUsage=clientAuth\n' > lobby.ext
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=lobby.example.net" -keyout lobby.key -out lobby.csr
  openssl x509 -req -in lobby.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 \
    -extfile lobby.ext -out lobby.pem
) >/dev/null 2>&1

bench_config "$WORK/pinradius.toml" "$PORT" "$SECRET" "$(cat <<TOML
[[client]]
name = "lobby"
address = "127.0.0.1"
certificate_name = "lobby.example.net"
business_id = 1
[radsec]
listen = "127.0.0.1:$TLS_PORT"
certificate = "tls/server.pem"
private_key = "tls/server.key"
client_ca = "tls/ca.pem"
TOML
)"
"$BIN" --config "$WORK/pinradius.toml" check-config
"$BIN" --config "$WORK/pinradius.toml" bench seed --tokens "$TOKENS" >/dev/null
RUST_LOG=warn "$BIN" --config "$WORK/pinradius.toml" serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
sleep 1

udp() { "$BIN" bench auth --target "127.0.0.1:$PORT" --secret "$SECRET" --tokens "$TOKENS" --devices "$TOKENS" \
  --window "$WINDOW" --sockets 1 --duration "$1" --json; }
radsec() { "$BIN" bench auth --target "127.0.0.1:$TLS_PORT" --secret unused --tokens "$TOKENS" --devices "$TOKENS" \
  --window "$WINDOW" --duration "$1" --tls-cert "$WORK/tls/lobby.pem" --tls-key "$WORK/tls/lobby.key" \
  --tls-ca "$WORK/tls/ca.pem" --tls-name radius.example.net --json; }
udp 2 >/dev/null; radsec 2 >/dev/null   # bind the devices, warm up

declare -A RESULTS
for ((r = 1; r <= ROUNDS; r++)); do
  for name in udp radsec; do
    out=$($name "$DURATION")
    line=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(str(round(d[k])) for k in ("requests_per_second","accepts","rejects","lost","bad","p50_us","p99_us")))' "$out")
    echo "round $r $name: requests/s accepts rejects lost bad p50_us p99_us = $line"
    RESULTS[$name]+="${line%% *} "
  done
done
python3 - "${RESULTS[udp]}" "${RESULTS[radsec]}" <<'PY'
import statistics, sys
udp, radsec = (statistics.median(float(x) for x in v.split()) for v in sys.argv[1:])
print(f"\nmedian udp (1 socket)          {udp:>10.0f} requests/s")
print(f"median radsec (1 connection)   {radsec:>10.0f} requests/s")
print(f"radsec / udp = {radsec / udp:.2f}")
PY
