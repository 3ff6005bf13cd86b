#!/usr/bin/env bash
# Side-by-side throughput: pinradius vs FreeRADIUS 3.2 (`files` module, and `sql` with
# sqlite and a tuned pool) vs a bare UDP echo server, all on loopback, all driven by
# the same load tool (`pinradius bench`) with the same token set, in interleaved
# rounds. Prints each round, then the medians and the ratios of the medians.
#
# Two pinradius rows: returning logins (devices already bound: TOKENS codes, DEVICES
# devices, warmed up), and first-use logins (a device never seen per request, each
# login binding it durably: a second server on FIRST_TOKENS codes, restarted on a
# fresh copy of its seeded database each round, so every round starts with no device
# bound).
#
# Usage: bench/compare-freeradius.sh        (as root: installs freeradius if missing)
# Knobs (environment): ROUNDS=5 DURATION=8 TOKENS=1000 DEVICES=1000 FIRST_TOKENS=10000
# WINDOW=256 SOCKETS=2
# FR_THREADS=16 (FreeRADIUS start_servers and sql pool start/min; max is twice that;
# 8-16 measured best here for both modules, 32 about 15% slower for `files`)
set -euo pipefail
ROUNDS=${ROUNDS:-5}
FR_THREADS=${FR_THREADS:-16}
DURATION=${DURATION:-8}
TOKENS=${TOKENS:-1000}
DEVICES=${DEVICES:-1000}
FIRST_TOKENS=${FIRST_TOKENS:-10000}
WINDOW=${WINDOW:-256}
SOCKETS=${SOCKETS:-2}
SECRET=bench-shared-secret-0123456789
cd "$(dirname "$0")/.."
. bench/config.sh

if ! command -v freeradius >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq freeradius >/dev/null
fi
cargo build --release --quiet
BIN=$PWD/target/release/pinradius
WORK=$(mktemp -d /tmp/pinradius-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"; }
trap cleanup EXIT

P_PORT=18120; F_PORT=18121; S_PORT=18122; E_PORT=18123; N_PORT=18124

# --- pinradius: full policy (SQLite store, device binding, Message-Authenticator required)
bench_config "$WORK/pinradius.toml" "$P_PORT" "$SECRET" "$(printf '[reply]\nidle_timeout = 900\nacct_interim_interval = 300')"
"$BIN" --config "$WORK/pinradius.toml" bench seed --tokens "$TOKENS" >/dev/null

# --- pinradius for first-use logins: the same config on its own port and database.
mkdir -p "$WORK/first"
sed -e "s/127.0.0.1:$P_PORT/127.0.0.1:$N_PORT/" "$WORK/pinradius.toml" > "$WORK/first/pinradius.toml"
"$BIN" --config "$WORK/first/pinradius.toml" bench seed --tokens "$FIRST_TOKENS" >/dev/null
cp "$WORK/first/pinradius.db" "$WORK/first/seeded.db"
FIRST_PID=
restart_first() { # a fresh copy of the seeded database: no device bound yet
  if [ -n "$FIRST_PID" ]; then kill "$FIRST_PID" 2>/dev/null || true; wait "$FIRST_PID" 2>/dev/null || true; fi
  rm -f "$WORK/first/pinradius.db" "$WORK/first/pinradius.db-wal" "$WORK/first/pinradius.db-shm"
  cp "$WORK/first/seeded.db" "$WORK/first/pinradius.db"
  RUST_LOG=warn "$BIN" --config "$WORK/first/pinradius.toml" serve >>"$WORK/first/serve.log" 2>&1 &
  FIRST_PID=$!
  PIDS+=("$FIRST_PID")
  sleep 1
}

# --- FreeRADIUS: a private copy of the packaged config, trimmed to PAP on one port.
make_raddb() { # $1 dir, $2 port, $3 authorize section
  cp -r /etc/freeradius/3.0 "$1"
  rm -f "$1"/sites-enabled/* "$1"/mods-enabled/eap
  sed -i -e 's/^\s*user = .*/#&/' -e 's/^\s*group = .*/#&/' \
         -e "s|^\s*run_dir = .*|run_dir = $1|" -e "s|^\s*logdir = .*|logdir = $1|" \
         -e "s/^\(\s*\)max_servers = .*/\1max_servers = $((FR_THREADS * 2))/" -e "s/^\(\s*\)start_servers = .*/\1start_servers = $FR_THREADS/" \
         -e "s/^\(\s*\)max_spare_servers = .*/\1max_spare_servers = $((FR_THREADS * 2))/" -e 's/^\(\s*\)max_requests_per_server = .*/\1max_requests_per_server = 0/' \
         "$1/radiusd.conf"
  cat > "$1/clients.conf" <<CLIENTS
client bench {
    ipaddr = 127.0.0.1
    secret = $SECRET
}
CLIENTS
  cat > "$1/sites-enabled/bench" <<SITE
server bench {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = $2
    }
    authorize {
        $3
        pap
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
    }
    post-auth {
    }
}
SITE
}

make_raddb "$WORK/raddb-files" "$F_PORT" "files"
: > "$WORK/raddb-files/mods-config/files/authorize"
for ((i = 0; i < TOKENS; i++)); do
  code=$(printf 'bench-%07d' "$i")
  printf '%s Cleartext-Password := "%s"\n\tSession-Timeout = 31536000\n\n' "$code" "$code" >> "$WORK/raddb-files/mods-config/files/authorize"
done

make_raddb "$WORK/raddb-sql" "$S_PORT" "sql"
ln -sf ../mods-available/sql "$WORK/raddb-sql/mods-enabled/sql"
sed -i -e 's/^\(\s*\)driver = .*/\1driver = "rlm_sql_sqlite"/' -e 's/^\(\s*\)dialect = .*/\1dialect = "sqlite"/' \
       -e "s|^\(\s*\)filename = .*|\1filename = \"$WORK/fr.db\"|" -e 's/^\(\s*\)read_clients = .*/\1read_clients = no/' \
       -e "s/^\(\s*\)start = .*/\1start = $FR_THREADS/" -e "s/^\(\s*\)min = .*/\1min = $FR_THREADS/" -e "s/^\(\s*\)max = .*/\1max = $((FR_THREADS * 2))/" \
       "$WORK/raddb-sql/mods-available/sql"
python3 - "$WORK/fr.db" "$TOKENS" /etc/freeradius/3.0/mods-config/sql/main/sqlite/schema.sql <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript(open(sys.argv[3]).read())
rows = [(f"bench-{i:07d}", "Cleartext-Password", ":=", f"bench-{i:07d}") for i in range(int(sys.argv[2]))]
db.executemany("INSERT INTO radcheck (username, attribute, op, value) VALUES (?,?,?,?)", rows)
db.executemany("INSERT INTO radreply (username, attribute, op, value) VALUES (?,?,?,?)",
               [(u, "Session-Timeout", ":=", "31536000") for u, *_ in rows])
db.commit()
PY

start() { "$@" >"$WORK/$(basename "$1").$RANDOM.log" 2>&1 & PIDS+=($!); }
start "$BIN" --config "$WORK/pinradius.toml" serve
start freeradius -f -d "$WORK/raddb-files" -l stdout
start freeradius -f -d "$WORK/raddb-sql" -l stdout
start "$BIN" bench echo --listen "127.0.0.1:$E_PORT" --threads 2
sleep 3

load() { # $1 port, $2 seconds, extra args...
  local port=$1 seconds=$2; shift 2
  "$BIN" bench auth --target "127.0.0.1:$port" --secret "$SECRET" --tokens "$TOKENS" --devices "$DEVICES" \
    --window "$WINDOW" --sockets "$SOCKETS" --duration "$seconds" --json "$@"
}
# Warm up every server (device bindings, caches, thread pools) before measuring.
for port in $P_PORT $F_PORT $S_PORT; do load "$port" 2 >/dev/null; done

declare -A RESULTS
for ((r = 1; r <= ROUNDS; r++)); do
  for name in pinradius first-use fr-files fr-sql echo; do
    case $name in
      pinradius) out=$(load $P_PORT "$DURATION") ;;
      first-use) restart_first
                 out=$("$BIN" bench auth --target "127.0.0.1:$N_PORT" --secret "$SECRET" --tokens "$FIRST_TOKENS" \
                   --new-devices --window "$WINDOW" --sockets "$SOCKETS" --duration "$DURATION" --json) ;;
      fr-files) out=$(load $F_PORT "$DURATION") ;;
      fr-sql) out=$(load $S_PORT "$DURATION") ;;
      echo) out=$(load $E_PORT "$DURATION" --no-verify) ;;
    esac
    rps=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(str(round(d[k])) for k in ("requests_per_second","accepts","rejects","lost","bad","p50_us","p99_us")))' "$out")
    echo "round $r $name: requests/s accepts rejects lost bad p50_us p99_us = $rps"
    RESULTS[$name]+="${rps%% *} "
  done
done

python3 - "${RESULTS[pinradius]}" "${RESULTS[first-use]}" "${RESULTS[fr-files]}" "${RESULTS[fr-sql]}" "${RESULTS[echo]}" <<'PY'
import statistics, sys
names = ["pinradius", "pinradius-first-use", "freeradius-files", "freeradius-sql", "udp-echo"]
med = {n: statistics.median(float(x) for x in v.split()) for n, v in zip(names, sys.argv[1:])}
print()
for n in names:
    print(f"median {n:20} {med[n]:>10.0f} requests/s")
for n in ["pinradius", "pinradius-first-use"]:
    print(f"{n} / freeradius-files = {med[n] / med['freeradius-files']:.2f}x")
    print(f"{n} / freeradius-sql   = {med[n] / med['freeradius-sql']:.2f}x")
print(f"pinradius / udp-echo = {med['pinradius'] / med['udp-echo']:.2f}")
PY
