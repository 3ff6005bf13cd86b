# Sourced by the benchmark scripts: the pinradius config they all start from.
# bench_config FILE AUTH_PORT SECRET [EXTRA]: one client 127.0.0.1 (business 1,
# Message-Authenticator required), database pinradius.db beside FILE, EXTRA appended.
bench_config() {
  cat > "$1" <<TOML
[server]
auth_listen = "127.0.0.1:$2"
acct_listen = "127.0.0.1:0"
database = "pinradius.db"
[[client]]
name = "bench"
address = "127.0.0.1"
secret = "$3"
business_id = 1
require_message_authenticator = true
${4:-}
TOML
}

# bench_setup NAME: builds the release binary (BIN), makes a work folder (WORK) and
# arranges for the server the script starts (its pid in SERVER) to be stopped and
# the folder removed at exit. Run from the repository's root.
bench_setup() {
  cargo build --release --quiet
  BIN=$PWD/target/release/pinradius
  WORK=$(mktemp -d "/tmp/pinradius-$1.XXXXXX")
  SERVER=
  trap 'if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null; fi; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}
