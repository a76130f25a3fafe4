#!/usr/bin/env bash
# Runs every test suite: unit, end-to-end (Rust) and compatibility (pusher-js + pusher SDK).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the suites start themselves, as Debian/Ubuntu packages: a check (true when present) and
# the package that provides it. Missing ones are installed: with apt-get as root, through sudo
# when it works without a password prompt, else the script stops with the one command to run.
declare -a MISSING=()
want() { eval "$1" >/dev/null 2>&1 || MISSING+=("$2"); }
want 'command -v node' nodejs                 # the compatibility suite (Node.js 20 or newer)
want 'command -v npm' npm
want 'command -v redis-server' redis-server   # cluster tests: their own redis-server, Sentinel, Cluster
want 'command -v openssl' openssl             # certificates of the compatibility suite's TLS Redis
want 'command -v haproxy || [ -x /usr/sbin/haproxy ]' haproxy   # load-balancer and fault tests
want '[ -x /usr/bin/chromium ]' chromium      # the console test drives it headless
want 'ls /usr/lib/postgresql/*/bin/postgres' postgresql          # SQL app store tests
want '[ -x /usr/sbin/mariadbd ]' mariadb-server
want 'command -v python3' python3             # the Python SDK's tests (a venv of their own)
want 'python3 -c "import venv, ensurepip"' python3-venv

provision() {
    [ ${#MISSING[@]} -eq 0 ] && return 0
    local run=()
    if [ "$(id -u)" = 0 ]; then
        run=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        run=(sudo)
    else
        echo "error: missing ${MISSING[*]}. Install them with:" >&2
        echo "  sudo apt-get install -y ${MISSING[*]}" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing ${MISSING[*]} and no apt-get to install them; install the equivalents" >&2
        exit 1
    fi
    echo "== installing what the tests need: ${MISSING[*]}"
    "${run[@]}" apt-get update -q
    DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -q "${MISSING[@]}"
    # The packages start system services (redis on 6379, haproxy, postgres, mariadb); the tests
    # start their own on free ports and never use these: stopped to save memory.
    if command -v systemctl >/dev/null 2>&1; then
        for service in redis-server haproxy postgresql mariadb; do
            "${run[@]}" systemctl stop "$service" >/dev/null 2>&1 || true
        done
    fi
}

command -v cargo >/dev/null 2>&1 || { echo "error: cargo is missing. Install Rust from https://rustup.rs" >&2; exit 1; }
provision
# `tests/run.sh --setup`: install what is missing, run nothing (CI does this first).
[ "${1:-}" = "--setup" ] && exit 0

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

echo "== the HTTP API and the admin API fuzzed by schemathesis against their OpenAPI documents"
cd ../..
tests/api/run.sh
