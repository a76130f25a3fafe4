#!/usr/bin/env bash
# Runs every test suite: unit, end-to-end (Rust) and compatibility (pusher-js + pusher SDK).
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: $1 is missing. $2" >&2; exit 1; }
}
need cargo "Install Rust from https://rustup.rs"
need node "Install Node.js 20 or newer (Debian: apt-get install nodejs npm)"
need npm "Install npm (Debian: apt-get install npm)"
need redis-server "The cluster tests start their own redis-server (Debian: apt-get install redis-server)"
need openssl "The TLS Redis of the compatibility tests gets its certificates from openssl (Debian: apt-get install openssl)"
[ -x /usr/bin/chromium ] || {
    echo "error: /usr/bin/chromium is missing. The console test drives it headless (Debian: apt-get install chromium)" >&2
    exit 1
}
# The SQL app store tests start their own Postgres and MariaDB.
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || {
    echo "error: Postgres is missing. The SQL app store tests start their own (Debian: apt-get install postgresql)" >&2
    exit 1
}
[ -x /usr/sbin/mariadbd ] || {
    echo "error: MariaDB is missing. The SQL app store tests start their own (Debian: apt-get install mariadb-server)" >&2
    exit 1
}
# haproxy lives in /usr/sbin on Debian, which is not on every user's PATH
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || {
    echo "error: haproxy is missing. The load-balancer tests start their own haproxy (Debian: apt-get install haproxy)" >&2
    exit 1
}

# The previous release's binary for the mixed-version cluster tests (built once, then cached).
HERALD_PREVIOUS_BIN="$(tests/previous-release.sh)"
export HERALD_PREVIOUS_BIN

echo "== unit and end-to-end tests (cargo test --workspace)"
cargo test --workspace --locked

echo "== building the herald binary for the compatibility suite"
cargo build --locked -p herald-server --bin herald
export HERALD_BIN="$PWD/target/debug/herald"

echo "== compatibility tests (pusher-js and the pusher server SDK)"
cd tests/compat
if ! npm ls --silent >/dev/null 2>&1; then
    npm ci --no-audit --no-fund
fi
# The Python SDK's venv (first time: pip install), before any test timeout runs.
node python/venv.mjs
npm test

echo "== compatibility tests in cluster mode (3 herald nodes on a private TLS redis-server with a password)"
npm run test:cluster

echo "== compatibility tests on a Redis Cluster (2 herald nodes, 3 masters + 3 replicas, sharded pub/sub)"
npm run test:redis-cluster

echo "== compatibility tests behind a load balancer (haproxy in front of 3 nodes; drain under traffic)"
npm run test:lb

echo "== faults behind the load balancer: a rolling restart, then a seeded random fault sequence"
npm run test:faults

echo "== the debug console in headless Chromium (playwright-core)"
npm run test:console
