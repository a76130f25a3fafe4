#!/usr/bin/env bash
# The README's first command, exactly as written: `cargo run --release` at the workspace root
# builds and starts the server with the development app on its default ports (6001, 9601). This
# checks that it says so, that /ready answers and a WebSocket handshake with the development key
# is accepted, then stops it with SIGTERM (its own process group: cargo and the server) and
# expects a clean exit. CI runs it on every clean clone.
set -euo pipefail
cd "$(dirname "$0")/.."

for port in 6001 9601; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "error: port $port is in use; the README's command listens there. Stop what uses it." >&2
        exit 1
    fi
done
log=$(mktemp)
setsid cargo run --release >"$log" 2>&1 &
pid=$!
stop() {
    kill -TERM -- "-$pid" 2>/dev/null || true
}
trap 'stop; rm -f "$log"' EXIT
say() { echo "  $*"; }
# A first release build takes minutes.
deadline=$((SECONDS + 1200))
until grep -q "metrics and health on" "$log" && curl -fsS -o /dev/null http://127.0.0.1:9601/ready 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "error: cargo run --release exited before the server was ready:" >&2
        cat "$log" >&2
        exit 1
    fi
    if [ $SECONDS -gt $deadline ]; then
        echo "error: the server was not ready within 20 minutes:" >&2
        tail -50 "$log" >&2
        exit 1
    fi
    sleep 1
done
grep -q "serving the development app id=app-id key=app-key secret=app-secret" "$log" || {
    echo "error: the server did not announce the development app:" >&2
    cat "$log" >&2
    exit 1
}
say "ok   cargo run --release: listening, development app announced, /ready 200"
# The development key is served: a WebSocket handshake gets 101 Switching Protocols.
status=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
    -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' \
    'http://127.0.0.1:6001/app/app-key?protocol=7&client=js&version=8.4.0' || true)
[ "$status" = 101 ] || { echo "error: WebSocket handshake on /app/app-key answered $status" >&2; exit 1; }
say "ok   WebSocket handshake with the development key: 101"
stop
for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    echo "error: the server did not stop within 15 s of SIGTERM" >&2
    exit 1
fi
set +e
wait "$pid"
code=$?
set -e
grep -q "stopped" "$log" || { echo "error: no clean shutdown in the log:" >&2; tail -20 "$log" >&2; exit 1; }
say "ok   stopped cleanly on SIGTERM (cargo exit status $code)"
