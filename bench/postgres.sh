#!/usr/bin/env bash
# The PostgreSQL store against the SQLite one, in interleaved rounds: for each round and
# each load, one pinradius on SQLite, one on PostgreSQL, and two on one PostgreSQL
# database (the load split over both: one `bench` client per server, in parallel, their
# answers summed). Three loads:
#   returning  logins of devices already bound (TOKENS codes, DEVICES devices, warmed up)
#   first-use  a device never seen per request, each login binding it durably before its
#              Access-Accept (FIRST_TOKENS codes; every round starts with no device bound:
#              the servers are restarted on a fresh copy of the seeded database, a file
#              copy for SQLite, CREATE DATABASE ... TEMPLATE for PostgreSQL)
#   acct       durable accounting records (Interim-Updates of DEVICES open sessions, each
#              acknowledged after its group commit)
# Prints each round (answers/s, latency, and the CPU each component took, in cores),
# then the medians and the ratios PG/SQLite and two-PG/one-PG of this run.
#
# PostgreSQL is a throwaway cluster of its own (Debian's postgresql package, installed if
# missing), in a temporary folder owned by an unprivileged user (initdb refuses root; as
# .ci/run does), on a free loopback port, stopped and removed at exit. Its settings are a
# production's where they matter here: fsync = on, synchronous_commit = on,
# full_page_writes = on (PostgreSQL's defaults; .ci/run turns fsync off, this does not),
# so an acknowledged login binding or accounting record is on disk.
#
# The two-server row holds the offered load constant: each of its two clients has half
# the window and half the sockets (at least one) of the single server's one client.
# Returning logins and accounting of the pair use the same codes, devices and sessions
# from both clients (a NAS's users may reach either server; the load tool numbers
# devices from 0 and sends from 127.0.0.1, so both report the same DEVICES sessions);
# first-use splits the FIRST_TOKENS codes in halves, one per client, so a code collects
# devices as fast as with one server.
#
# Noise: this machine has 2 cores, shared by the load clients, the pinradius servers and
# PostgreSQL (and by whatever else runs on it); two servers on one machine share the same
# 2 cores, so the two-PG row shows what a second server costs or gains in coordination
# here, not the capacity of two machines. Single rounds vary by 20-40% on a quiet
# machine, and by 3x while a build or test run shares it (see "other"): compare the
# medians and ratios of one run, not figures across runs. The CPU columns are from
# /proc (server and PostgreSQL processes' utime+stime over the round, the clients'
# rusage), in cores (2.00 = the whole machine); "other" is the rest of the machine's busy
# time (/proc/stat): kernel threads and anything else running, which is noise, and
# "steal" the time the hypervisor gave to other guests.
#
# Usage: bench/postgres.sh        (as root: makes the user pinradius-bench-pg if missing)
# Knobs (environment): ROUNDS=5 DURATION=5 TOKENS=1000 DEVICES=1000 FIRST_TOKENS=10000
# WINDOW=256 SOCKETS=2 PORT_BASE=18150 (14 ports from it) KEEP_WORK=1 (keep the folders)
# PG_SETTINGS="-c name=value ..." (more server settings, e.g. -c log_lock_waits=on)
set -euo pipefail
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
TOKENS=${TOKENS:-1000}
DEVICES=${DEVICES:-1000}
FIRST_TOKENS=${FIRST_TOKENS:-10000}
WINDOW=${WINDOW:-256}
SOCKETS=${SOCKETS:-2}
PORT_BASE=${PORT_BASE:-18150}
HALF_WINDOW=$(((WINDOW + 1) / 2))
HALF_SOCKETS=$(((SOCKETS + 1) / 2))
SECRET=bench-shared-secret-0123456789
cd "$(dirname "$0")/.."
. bench/config.sh

# --- PostgreSQL: a throwaway cluster (the approach of .ci/run).
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
fi
cargo build --release --quiet
BIN=$PWD/target/release/pinradius
WORK=$(mktemp -d /tmp/pinradius-pg-bench.XXXXXX)
PGBIN=$(pg_bin)
pgdir=$(mktemp -d /tmp/pinradius-pg-bench-cluster.XXXXXX)
pguser=$(id -un)
if [ "$(id -u)" = 0 ]; then
  pguser=pinradius-bench-pg
  id "$pguser" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$pguser"
  chown "$pguser" "$pgdir"
fi
as_pguser() { if [ "$(id -u)" = 0 ]; then su -s /bin/sh "$pguser" -c "$*"; else sh -c "$*"; fi; }
PIDS=()
PG_STARTED=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PG_STARTED" ]; then as_pguser "'$PGBIN/pg_ctl' -D '$pgdir/data' -m fast stop" >/dev/null 2>&1 || true; fi
  if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK" "$pgdir"; else echo "kept $WORK and $pgdir"; fi
}
trap cleanup EXIT
pgport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pguser "'$PGBIN/initdb' -D '$pgdir/data' -U postgres --auth=trust -E UTF8 --locale=C" >/dev/null
as_pguser "'$PGBIN/pg_ctl' -D '$pgdir/data' -l '$pgdir/log' -w -o \"-p $pgport -k '$pgdir' -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=200 ${PG_SETTINGS:-}\" start" >/dev/null \
  || { echo "PostgreSQL did not start:"; cat "$pgdir/log"; exit 1; }
PG_STARTED=1
PGUID=$(id -u "$pguser")
psql() { PGOPTIONS='-c client_min_messages=warning' "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pgport" -U postgres -d postgres "$@"; }
pg_url() { echo "postgres://postgres@127.0.0.1:$pgport/$1"; }
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$pgport:" \
  "$(psql -At -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync','synchronous_commit','full_page_writes','wal_sync_method','shared_buffers','max_connections')")"

# --- Configs: one per server. pinradius_config FILE AUTH_PORT ACCT_PORT DATABASE
pinradius_config() {
  bench_config "$1" "$2" "$SECRET" "$(printf '[reply]\nidle_timeout = 900\nacct_interim_interval = 300')"
  sed -i -e "s|^acct_listen = .*|acct_listen = \"127.0.0.1:$3\"|" -e "s|^database = .*|database = \"$4\"|" "$1"
}
port() { echo $((PORT_BASE + $1)); }
# Returning logins and accounting: long-lived servers, warmed up once.
mkdir -p "$WORK/sqlite" "$WORK/pg" "$WORK/pg2a" "$WORK/pg2b"
pinradius_config "$WORK/sqlite/pinradius.toml" "$(port 0)" "$(port 1)" pinradius.db
pinradius_config "$WORK/pg/pinradius.toml" "$(port 2)" "$(port 3)" "$(pg_url ret_one)"
pinradius_config "$WORK/pg2a/pinradius.toml" "$(port 4)" "$(port 5)" "$(pg_url ret_two)"
pinradius_config "$WORK/pg2b/pinradius.toml" "$(port 6)" "$(port 7)" "$(pg_url ret_two)"
# First-use logins: restarted on a fresh database every round.
mkdir -p "$WORK/first-sqlite" "$WORK/first-pg" "$WORK/first-pg2a" "$WORK/first-pg2b" "$WORK/first-seed"
pinradius_config "$WORK/first-sqlite/pinradius.toml" "$(port 8)" "$(port 9)" pinradius.db
pinradius_config "$WORK/first-seed/pinradius.toml" "$(port 10)" "$(port 11)" "$(pg_url first_seeded)"

psql -c "CREATE DATABASE ret_one" -c "CREATE DATABASE ret_two" -c "CREATE DATABASE first_seeded"
export RUST_LOG=warn # the admin commands' and servers' log: warnings and errors only
for dir in sqlite pg pg2a first-seed; do
  "$BIN" --config "$WORK/$dir/pinradius.toml" db init >/dev/null
done
"$BIN" --config "$WORK/sqlite/pinradius.toml" bench seed --tokens "$TOKENS" >/dev/null
"$BIN" --config "$WORK/pg/pinradius.toml" bench seed --tokens "$TOKENS" >/dev/null
"$BIN" --config "$WORK/pg2a/pinradius.toml" bench seed --tokens "$TOKENS" >/dev/null
"$BIN" --config "$WORK/first-seed/pinradius.toml" bench seed --tokens "$FIRST_TOKENS" --prefix first- >/dev/null
"$BIN" --config "$WORK/first-sqlite/pinradius.toml" db init >/dev/null
"$BIN" --config "$WORK/first-sqlite/pinradius.toml" bench seed --tokens "$FIRST_TOKENS" --prefix first- >/dev/null
cp "$WORK/first-sqlite/pinradius.db" "$WORK/first-sqlite/seeded.db"
# The pair's first-use clients: half the codes each.
python3 - "$FIRST_TOKENS" "$WORK/first-codes-a.txt" "$WORK/first-codes-b.txt" <<'PY'
import sys
n = int(sys.argv[1]); codes = [f"first-{i:07d}" for i in range(n)]
open(sys.argv[2], "w").write("\n".join(codes[: n // 2]) + "\n")
open(sys.argv[3], "w").write("\n".join(codes[n // 2 :]) + "\n")
PY

# start_server DIR: `serve` with DIR's config, its pid in SERVER_PID, once it answers.
start_server() {
  "$BIN" --config "$1/pinradius.toml" serve >>"$1/serve.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 100); do
    if "$BIN" --config "$1/pinradius.toml" probe --timeout-ms 100 >/dev/null 2>&1; then return; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
  done
  echo "pinradius ($1) did not start:"; cat "$1/serve.log"; exit 1
}
stop_server() { # PID: stopped, and no longer among those to stop at exit
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

declare -A PID
start_server "$WORK/sqlite"; PID[sqlite]=$SERVER_PID
start_server "$WORK/pg"; PID[pg]=$SERVER_PID
start_server "$WORK/pg2a"; PID[pg2a]=$SERVER_PID
start_server "$WORK/pg2b"; PID[pg2b]=$SERVER_PID

# The first-use servers of a round: SQLite on a fresh copy of its seeded file, and
# PostgreSQL on fresh copies of the seeded database (one for the single server, one
# shared by the pair).
FIRST_PIDS=()
fresh_first() { # $1 round
  for p in "${FIRST_PIDS[@]}"; do stop_server "$p"; done
  FIRST_PIDS=()
  rm -f "$WORK/first-sqlite/pinradius.db" "$WORK/first-sqlite/pinradius.db-wal" "$WORK/first-sqlite/pinradius.db-shm"
  cp "$WORK/first-sqlite/seeded.db" "$WORK/first-sqlite/pinradius.db"
  psql -c "DROP DATABASE IF EXISTS first_one" -c "DROP DATABASE IF EXISTS first_two" \
       -c "CREATE DATABASE first_one TEMPLATE first_seeded" -c "CREATE DATABASE first_two TEMPLATE first_seeded"
  pinradius_config "$WORK/first-pg/pinradius.toml" "$(port 10)" "$(port 11)" "$(pg_url first_one)"
  pinradius_config "$WORK/first-pg2a/pinradius.toml" "$(port 12)" 0 "$(pg_url first_two)"
  pinradius_config "$WORK/first-pg2b/pinradius.toml" "$(port 13)" 0 "$(pg_url first_two)"
  for dir in first-sqlite first-pg first-pg2a first-pg2b; do
    start_server "$WORK/$dir"; PID[$dir]=$SERVER_PID; FIRST_PIDS+=("$SERVER_PID")
  done
}

# measure ROUND LOAD SETUP SERVER_PIDS -- CLIENT_COMMAND [--- CLIENT_COMMAND]: runs the
# clients in parallel, sums their answers, prints the round's line and appends it to
# results.jsonl.
cat > "$WORK/measure.py" <<'PY'
import json, os, resource, shlex, subprocess, sys, time
results, rnd, load, setup, server_pids, pguid = sys.argv[1:7]
server_pids = [int(p) for p in server_pids.split(",")]
pguid = int(pguid)
rest = sys.argv[8:]  # after "--"
clients, cur = [], []
for a in rest:
    if a == "---":
        clients.append(cur); cur = []
    else:
        cur.append(a)
clients.append(cur)

def ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None

def pg_ticks():
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if os.stat(f"/proc/{d}").st_uid != pguid:
                    continue
            except OSError:
                continue
            t = ticks(d)
            if t is not None:
                out[d] = t
    return out

def machine(): # busy (not idle, iowait or stolen), stolen (by the hypervisor), total
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    total = sum(v[:8])  # guest time is counted in user already
    return total - v[3] - v[4] - v[7], v[7], total

hz = os.sysconf("SC_CLK_TCK")
ncpu = os.cpu_count()
s0 = {p: ticks(p) or 0 for p in server_pids}
pg0 = pg_ticks()
m0 = machine()
c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
t0 = time.monotonic()
procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in clients]
outs = [p.communicate() for p in procs]
wall = time.monotonic() - t0
c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
m1 = machine()
pg1 = pg_ticks()
s1 = {p: ticks(p) or 0 for p in server_pids}
for p, (out, err) in zip(procs, outs):
    if p.returncode != 0:
        sys.exit(f"round {rnd} {load} {setup}: the load client failed ({p.returncode}): {err.strip()}")
reports = [json.loads(out) for out, _ in outs]
server_cores = sum(s1[p] - s0[p] for p in server_pids) / hz / wall
pg_cores = sum(t - pg0.get(p, 0) for p, t in pg1.items()) / hz / wall
client_cores = (c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime) / wall
busy = (m1[0] - m0[0]) / max(1, m1[2] - m0[2]) * ncpu
stolen = (m1[1] - m0[1]) / max(1, m1[2] - m0[2]) * ncpu
row = {
    "round": int(rnd), "load": load, "setup": setup,
    "per_second": sum(r["requests_per_second"] for r in reports),
    "accepts": sum(r["accepts"] for r in reports), "rejects": sum(r["rejects"] for r in reports),
    "lost": sum(r["lost"] for r in reports), "bad": sum(r["bad"] for r in reports),
    # Of two clients, the worse one's percentiles.
    "p50_us": max(r["p50_us"] for r in reports), "p99_us": max(r["p99_us"] for r in reports),
    "p999_us": max(r["p999_us"] for r in reports),
    "per_client": [round(r["requests_per_second"]) for r in reports],
    "server_cores": server_cores, "pg_cores": pg_cores, "client_cores": client_cores, "machine_cores": busy,
    # The rest of the machine's busy time: the kernel's own threads and whatever else
    # runs on the machine (another build or test run is noise worth seeing).
    "other_cores": max(0.0, busy - server_cores - pg_cores - client_cores),
    "steal_cores": stolen,
}
with open(results, "a") as f:
    f.write(json.dumps(row) + "\n")
split = "" if len(reports) == 1 else " (" + " + ".join(f"{x:,}" for x in row["per_client"]) + ")"
print(f"round {rnd} {load:9} {setup:6} {row['per_second']:>9,.0f}/s{split:22} accepts {row['accepts']:>8} rejects {row['rejects']:>5} "
      f"lost {row['lost']:>4} bad {row['bad']:>2}  p50 {row['p50_us']:>6} p99 {row['p99_us']:>6} us  "
      f"cores: pinradius {server_cores:.2f} postgres {pg_cores:.2f} client {client_cores:.2f} other {row['other_cores']:.2f} steal {stolen:.2f}", flush=True)
PY
measure() { python3 "$WORK/measure.py" "$WORK/results.jsonl" "$1" "$2" "$3" "$4" "$PGUID" "${@:5}"; }

auth_client() { # PORT WINDOW SOCKETS SECONDS extra...
  local port=$1 window=$2 sockets=$3 seconds=$4; shift 4
  echo "$BIN" bench auth --target "127.0.0.1:$port" --secret "$SECRET" --window "$window" --sockets "$sockets" \
    --duration "$seconds" --json "$@"
}
returning() { auth_client "$@" --tokens "$TOKENS" --devices "$DEVICES"; }
first_use() { auth_client "$@" --new-devices; }
acct_client() { # PORT WINDOW SOCKETS SECONDS
  echo "$BIN" bench acct --target "127.0.0.1:$1" --secret "$SECRET" --window "$2" --sockets "$3" \
    --duration "$4" --json --tokens "$TOKENS" --devices "$DEVICES"
}

# Warm up: every returning device bound, every accounting session open, caches and pools
# filled (on both servers of the pair).
for p in 0 2 4 6; do $(returning "$(port "$p")" "$WINDOW" "$SOCKETS" 2) >/dev/null; done
for p in 1 3 5 7; do $(acct_client "$(port "$p")" "$WINDOW" "$SOCKETS" 2) >/dev/null; done

for ((r = 1; r <= ROUNDS; r++)); do
  for setup in sqlite pg pg2; do
    case $setup in
      sqlite) measure "$r" returning sqlite "${PID[sqlite]}" -- $(returning "$(port 0)" "$WINDOW" "$SOCKETS" "$DURATION") ;;
      pg) measure "$r" returning pg "${PID[pg]}" -- $(returning "$(port 2)" "$WINDOW" "$SOCKETS" "$DURATION") ;;
      pg2) measure "$r" returning pg2 "${PID[pg2a]},${PID[pg2b]}" -- \
             $(returning "$(port 4)" "$HALF_WINDOW" "$HALF_SOCKETS" "$DURATION") --- \
             $(returning "$(port 6)" "$HALF_WINDOW" "$HALF_SOCKETS" "$DURATION") ;;
    esac
  done
  fresh_first "$r"
  for setup in sqlite pg pg2; do
    case $setup in
      sqlite) measure "$r" first-use sqlite "${PID[first-sqlite]}" -- \
                $(first_use "$(port 8)" "$WINDOW" "$SOCKETS" "$DURATION" --tokens "$FIRST_TOKENS" --prefix first-) ;;
      pg) measure "$r" first-use pg "${PID[first-pg]}" -- \
            $(first_use "$(port 10)" "$WINDOW" "$SOCKETS" "$DURATION" --tokens "$FIRST_TOKENS" --prefix first-) ;;
      pg2) measure "$r" first-use pg2 "${PID[first-pg2a]},${PID[first-pg2b]}" -- \
             $(first_use "$(port 12)" "$HALF_WINDOW" "$HALF_SOCKETS" "$DURATION" --codes "$WORK/first-codes-a.txt") --- \
             $(first_use "$(port 13)" "$HALF_WINDOW" "$HALF_SOCKETS" "$DURATION" --codes "$WORK/first-codes-b.txt") ;;
    esac
  done
  for setup in sqlite pg pg2; do
    case $setup in
      sqlite) measure "$r" acct sqlite "${PID[sqlite]}" -- $(acct_client "$(port 1)" "$WINDOW" "$SOCKETS" "$DURATION") ;;
      pg) measure "$r" acct pg "${PID[pg]}" -- $(acct_client "$(port 3)" "$WINDOW" "$SOCKETS" "$DURATION") ;;
      pg2) measure "$r" acct pg2 "${PID[pg2a]},${PID[pg2b]}" -- \
             $(acct_client "$(port 5)" "$HALF_WINDOW" "$HALF_SOCKETS" "$DURATION") --- \
             $(acct_client "$(port 7)" "$HALF_WINDOW" "$HALF_SOCKETS" "$DURATION") ;;
    esac
  done
done

# What the servers logged at warn and above (a PostgreSQL error shows here).
for dir in sqlite pg pg2a pg2b first-sqlite first-pg first-pg2a first-pg2b; do
  n=$(grep -c . "$WORK/$dir/serve.log" 2>/dev/null || true)
  if [ "${n:-0}" -gt 0 ]; then echo "$dir/serve.log: $n line(s) at warn or above, the last ones:"; tail -5 "$WORK/$dir/serve.log"; fi
done

# What PostgreSQL logged as errors, by message. Expected: "canceling statement due to
# lock timeout" (a writer's wait for the write lock is cut in short slices while another
# holds it, and tried again: pinradius counts it busy, not failed) and the "there is no
# transaction in progress" warning after it; anything else is worth a look.
sed -n 's/^.*\(ERROR\|WARNING\|FATAL\|PANIC\): *//p' "$pgdir/log" | sort | uniq -c | sort -rn | head -10 \
  | sed 's/^/PostgreSQL log: /'

python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = {"sqlite": "one server, SQLite", "pg": "one server, PostgreSQL", "pg2": "two servers, one PostgreSQL"}
units = {"returning": "logins/s", "first-use": "logins/s", "acct": "records/s"}
med = {}
print()
print(f"{'load':10} {'setup':28} {'median':>9}  {'rounds':44} {'p50/p99 us':>13}  cores: pinradius postgres client other steal")
for load in ("returning", "first-use", "acct"):
    for setup in ("sqlite", "pg", "pg2"):
        rs = [r for r in rows if r["load"] == load and r["setup"] == setup]
        if not rs:
            continue
        m = med[load, setup] = statistics.median(r["per_second"] for r in rs)
        md = lambda k: statistics.median(r[k] for r in rs)
        rounds = " ".join(f"{r['per_second']:.0f}" for r in rs)
        print(f"{load:10} {names[setup]:28} {m:>9,.0f}  {rounds:44} {md('p50_us'):>6.0f}/{md('p99_us'):<6.0f}  "
              f"{md('server_cores'):>15.2f} {md('pg_cores'):>8.2f} {md('client_cores'):>6.2f} {md('other_cores'):>5.2f} {md('steal_cores'):>5.2f}   {units[load]}")
print()
for load in ("returning", "first-use", "acct"):
    if (load, "sqlite") in med and (load, "pg") in med and (load, "pg2") in med:
        print(f"{load:10} PG/SQLite = {med[load, 'pg'] / med[load, 'sqlite']:.2f}x   "
              f"two-PG/one-PG = {med[load, 'pg2'] / med[load, 'pg']:.2f}x   "
              f"two-PG/SQLite = {med[load, 'pg2'] / med[load, 'sqlite']:.2f}x")
print("(medians of each column over the rounds; p50/p99 of two clients: the worse client's)")
PY
