#!/usr/bin/env bash
# Binary upgrades as an outside client sees them: wrk (keep-alive, 64 connections) through a release
# edgeplane node in front of one nginx backend, while the node is upgraded three times in a row
# (`edgeplane run --upgrade`, 5 s apart). Prints wrk's report: socket errors (connect, read, write,
# timeout) and non-2xx answers are the failed requests. Needs wrk and nginx.
#   MODE=restart: the same three times by a plain restart instead (SIGTERM, then a new `run`), the
#   baseline an upgrade replaces.
#   EDGEPLANE_BIN (default target/release/edgeplane), CONNS (64), KEEP_TMP=1 keeps the folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${EDGEPLANE_BIN:-target/release/edgeplane}
CONNS=${CONNS:-64}
MODE=${MODE:-upgrade}
TMP=$(mktemp -d)
cleanup() {
    pkill -P $$ 2>/dev/null || true
    [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    [ "${KEEP_TMP:-}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND=$(free_port); PORT=$(free_port)
cat > "$TMP/nginx.conf" <<CONF
worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok\n"; } } }
CONF
nginx -c "$TMP/nginx.conf"
cat > "$TMP/edge.toml" <<CONF
[node]
id = "upgrade-wrk"
workers = 1
state_dir = "$TMP/state"
upgrade_socket = "$TMP/upgrade.sock"
[[node.listeners]]
address = "127.0.0.1:$PORT"
[[routes]]
cluster = "app"
[clusters.app]
[[clusters.app.endpoints]]
address = "127.0.0.1:$BACKEND"
CONF
RUST_LOG=warn "$BIN" run --config "$TMP/edge.toml" 2> "$TMP/gen1.log" &
NODE=$!
for _ in $(seq 100); do [ -S "$TMP/upgrade.sock" ] && break; sleep 0.1; done
INODE=$(stat -c %i "$TMP/upgrade.sock")
wrk -t1 -c"$CONNS" -d22s "http://127.0.0.1:$PORT/" > "$TMP/wrk.txt" &
WRK=$!
for gen in 2 3 4; do
    sleep 5
    if [ "$MODE" = restart ]; then
        kill -TERM "$NODE"; wait "$NODE" || true
        RUST_LOG=warn "$BIN" run --config "$TMP/edge.toml" 2> "$TMP/gen$gen.log" &
        NODE=$!
        for _ in $(seq 300); do [ -S "$TMP/upgrade.sock" ] && break; sleep 0.02; done
    else
        RUST_LOG=warn "$BIN" run --upgrade --config "$TMP/edge.toml" 2> "$TMP/gen$gen.log" &
        # The new process renames its own socket over the path once the old one drains.
        for _ in $(seq 300); do [ "$(stat -c %i "$TMP/upgrade.sock")" != "$INODE" ] && break; sleep 0.02; done
        INODE=$(stat -c %i "$TMP/upgrade.sock")
    fi
    echo "generation $gen serving ($MODE)"
done
wait "$WRK"
cat "$TMP/wrk.txt"
echo "edgeplane processes left: $(pgrep -fc "$TMP/edge.toml" || true) (1 expected)"
