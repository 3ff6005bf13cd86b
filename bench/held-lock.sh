#!/usr/bin/env bash
# Login latency while another process holds the database's write lock (as an admin's
# long `token import` or the sqlite3 shell would): returning logins (bound devices,
# paced at RATE/s) and first-use logins (a new device each, paced at FIRST_RATE/s)
# together, first with no lock, then while python3's sqlite3 holds BEGIN IMMEDIATE for
# the whole run. Returning logins must not notice; first-use logins wait for the lock
# up to `login_write_wait_ms` (1500) and are then refused as briefly unavailable.
#
# Usage: bench/held-lock.sh
# Knobs (environment): RUNS=3 DURATION=10 RATE=10000 FIRST_RATE=100 TOKENS=1000
set -euo pipefail
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
RATE=${RATE:-10000}
FIRST_RATE=${FIRST_RATE:-100}
TOKENS=${TOKENS:-1000}
SECRET=bench-shared-secret-0123456789
PORT=18140
cd "$(dirname "$0")/.."
. bench/config.sh
bench_setup lock

bench_config "$WORK/pinradius.toml" "$PORT" "$SECRET"
"$BIN" --config "$WORK/pinradius.toml" bench seed --tokens "$TOKENS" >/dev/null
RUST_LOG=warn "$BIN" --config "$WORK/pinradius.toml" serve >"$WORK/serve.log" 2>&1 &
SERVER=$!
sleep 1

returning() { "$BIN" bench auth --target "127.0.0.1:$PORT" --secret "$SECRET" --tokens "$TOKENS" \
  --devices "$TOKENS" --rate "$RATE" --duration "$DURATION" --json; }
first_use() { "$BIN" bench auth --target "127.0.0.1:$PORT" --secret "$SECRET" --tokens "$TOKENS" \
  --new-devices --rate "$FIRST_RATE" --duration "$DURATION" --timeout-ms 5000 --json; }
hold_lock() { # seconds
  python3 - "$WORK/pinradius.db" "$1" <<'PY' &
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
PY
}
show() { # label, json
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.loads(sys.argv[2])
print(f"{sys.argv[1]:44} {d['requests_per_second']:>8.0f}/s accepts {d['accepts']:>7} rejects {d['rejects']:>6} "
      f"lost {d['lost']:>4}  p50 {d['p50_us']:>7} us  p99 {d['p99_us']:>7} us  p99.9 {d['p999_us']:>7} us")
PY
}

# Bind every device of the returning load first (one pass over the pairs it uses).
"$BIN" bench auth --target "127.0.0.1:$PORT" --secret "$SECRET" --tokens "$TOKENS" --devices "$TOKENS" \
  --duration 2 >/dev/null

for ((r = 1; r <= RUNS; r++)); do
  for lock in no yes; do
    LOCK=
    if [ "$lock" = yes ]; then hold_lock $((DURATION + 2)); LOCK=$!; sleep 0.3; fi
    first_use >"$WORK/first.json" &
    FIRST=$!
    ret=$(returning)
    wait "$FIRST"
    if [ -n "$LOCK" ]; then wait "$LOCK"; fi
    show "run $r, lock held: $lock, returning logins" "$ret"
    show "run $r, lock held: $lock, first-use logins" "$(cat "$WORK/first.json")"
  done
done
