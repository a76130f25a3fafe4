#!/usr/bin/env bash
# Fuzzes a live node's HTTP API and admin API with schemathesis against the OpenAPI documents the
# node serves (/openapi/http-api.json, /openapi/admin-api.json on its admin listener): a bounded
# number of generated requests per operation (HERALD_API_EXAMPLES, default 25; HERALD_API_SEED
# replays another seed, default 1), HTTP API requests
# signed by hooks.py. Every check of schemathesis applies: no 5xx, statuses, content types and
# bodies as documented (errors are JSON {"error": …}). The node runs from $HERALD_BIN (default
# target/debug/herald) on free ports and is stopped by pid, pass or fail. tests/run.sh calls this.
set -euo pipefail
cd "$(dirname "$0")"
HERALD=${HERALD_BIN:-../../target/debug/herald}
[ -x "$HERALD" ] || { echo "error: $HERALD is missing: cargo build -p herald-server --bin herald" >&2; exit 1; }

# The venv (tests/api/.venv), reinstalled when requirements.txt changes.
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -x .venv/bin/schemathesis ] || [ "$(cat .venv/.requirements.sha256 2>/dev/null)" != "$want" ]; then
    python3 -m venv .venv || { echo "error: python3 -m venv failed; install it: apt-get install -y python3-venv" >&2; exit 1; }
    .venv/bin/pip install --disable-pip-version-check -q -r requirements.txt
    echo "$want" > .venv/.requirements.sha256
fi

TMP=$(mktemp -d)
PID=""
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
export API_FUZZ_APP_ID=4444 API_FUZZ_APP_KEY=api-key API_FUZZ_APP_SECRET=api-secret
TOKEN=api-fuzz-admin-token
cat > "$TMP/herald.toml" <<TOML
app_store = "memory"
admin_token = "$TOKEN"
[[apps]]
id = "$API_FUZZ_APP_ID"
key = "$API_FUZZ_APP_KEY"
secret = "$API_FUZZ_APP_SECRET"
client_events = true
TOML
HERALD_LOG=warn,herald=info "$HERALD" --config "$TMP/herald.toml" --bind 127.0.0.1:0 --metrics-bind 127.0.0.1:0 >"$TMP/herald.log" 2>&1 &
PID=$!
port="" admin=""
for _ in $(seq 100); do
    port=$(grep -ao 'WebSocket ws://127\.0\.0\.1:[0-9]*' "$TMP/herald.log" | grep -o '[0-9]*$' | head -1 || true)
    admin=$(grep -ao 'metrics and health on http://127\.0\.0\.1:[0-9]*' "$TMP/herald.log" | grep -o '[0-9]*$' | head -1 || true)
    [ -n "$port" ] && [ -n "$admin" ] && break
    sleep 0.1
done
[ -n "$port" ] && [ -n "$admin" ] || { echo "error: herald did not start:" >&2; cat "$TMP/herald.log" >&2; exit 1; }

EXAMPLES=${HERALD_API_EXAMPLES:-25}
run() {
    local doc=$1 base=$2
    shift 2
    echo "== schemathesis: $doc against http://127.0.0.1:$base ($EXAMPLES examples per operation)"
    SCHEMATHESIS_HOOKS=hooks .venv/bin/schemathesis run "http://127.0.0.1:$admin/openapi/$doc" \
        --url "http://127.0.0.1:$base" --checks all --max-examples "$EXAMPLES" \
        --seed "${HERALD_API_SEED:-1}" --no-color "$@"
}
status=0
# hooks.py signs every HTTP API request, also those schemathesis meant to send with missing or
# broken authentication, so its two checks of that (ignored_auth, negative_data_rejection) would
# blame the hook; signatures are tested in crates/herald-server/tests/it/authz.rs.
run http-api.json "$port" --exclude-checks ignored_auth,negative_data_rejection || status=1
run admin-api.json "$admin" -H "Authorization: Bearer $TOKEN" || status=1
if ! kill -0 "$PID" 2>/dev/null; then
    echo "error: herald died under the fuzzing:" >&2
    cat "$TMP/herald.log" >&2
    exit 1
fi
exit $status
