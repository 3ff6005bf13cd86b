#!/usr/bin/env bash
# Guessing benchmark (issue 12): an attacker behind one NAS guesses 5-digit PINs
# against a store holding VALID valid PINs (random, of 100,000), as fast as the server
# answers, with WINDOW requests in flight:
#   rotating   a new MAC address per guess
#   none       no Calling-Station-Id
#   one        a single MAC address
# each on a fresh server with the default [lockout] budgets, then the same attack on
# a server whose budgets are out of reach (what the server gave before them), and a
# run with the NAS budget refilling 120 times faster and pauses of a second
# (client_window_seconds = 60), to show that an attacker pushing against the budget
# gets its refill rate (here 30 a minute after the first 30) and no more: the rate
# the README's arithmetic rests on.
#
# Prints, per run: checked guesses per minute, accepts, unchecked refusals, and the
# time to the first valid PIN.
#
# Usage: bench/guessing.sh        Knobs: DURATION=60 VALID=200 WINDOW=128 SEED=1
set -euo pipefail
DURATION=${DURATION:-60}
VALID=${VALID:-200}
WINDOW=${WINDOW:-128}
SEED=${SEED:-1}
SECRET=bench-shared-secret-0123456789
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/pinradius
WORK=$(mktemp -d /tmp/pinradius-guess.XXXXXX)
SERVER=
cleanup() { [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# VALID distinct random 5-digit PINs, as a token import file.
python3 - "$VALID" "$SEED" > "$WORK/pins.csv" <<'PY'
import random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
random.seed(seed * 7919)
print("business_id,access_code,minutes_included")
for pin in random.sample(range(100000), n):
    print(f"1,{pin:05d},60")
PY

run() { # $1 label, $2 --macs, $3 extra [lockout] lines
  local dir="$WORK/$1-$2"
  mkdir -p "$dir"
  cat > "$dir/p.toml" <<TOML
[server]
auth_listen = "127.0.0.1:18140"
acct_listen = "127.0.0.1:0"
database = "p.db"
[[client]]
name = "hotspot"
address = "127.0.0.1"
secret = "$SECRET"
business_id = 1
[lockout]
$3
TOML
  "$BIN" --config "$dir/p.toml" db init >/dev/null
  "$BIN" --config "$dir/p.toml" token import "$WORK/pins.csv" >/dev/null 2>&1
  RUST_LOG=warn "$BIN" --config "$dir/p.toml" serve 2>"$dir/log" &
  SERVER=$!
  for _ in $(seq 100); do grep -q "listening\|error" "$dir/log" 2>/dev/null && break; sleep 0.05; done
  sleep 0.3
  printf '%-10s %-9s ' "$1" "$2"
  "$BIN" bench guess --target 127.0.0.1:18140 --secret "$SECRET" --macs "$2" \
    --window "$WINDOW" --duration "$DURATION" --seed "$SEED"
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=
}

echo "$VALID valid PINs of 100,000; $WINDOW in flight; $DURATION s per run"
for macs in rotating none one; do run defaults "$macs" ""; done
run scaled rotating "client_window_seconds = 60
client_pause_seconds = 1
client_max_pause_seconds = 1"
OFF="max_failures = 1000000
window_seconds = 86400
client_max_failures = 1000000
client_window_seconds = 86400
server_max_failures = 1000000
server_window_seconds = 86400"
for macs in rotating none; do run no-budget "$macs" "$OFF"; done
