#!/usr/bin/env bash
# Profile-guided build of edgeplane (LLVM PGO): builds an instrumented binary, drives it through a
# local nginx backend with wrk (GET 2 B and 16 KiB at 64 and 256 connections, streamed POST uploads
# of 64 KiB), merges the profile and builds target/pgo/edgeplane with it. Same source, same release
# profile (fat LTO): only the code layout and inlining follow the measured hot paths.
#
# Needs nginx, wrk, curl, python3 and llvm-profdata of the LLVM major version rustc uses (Debian's
# llvm-N package; installed with apt-get when missing and running as root).
# Usage: benches/load/pgo-build.sh
#        then EDGEPLANE_BIN=target/pgo/edgeplane benches/load/run.sh
# TRAIN=10s sets each training run's length.
set -euo pipefail
cd "$(dirname "$0")/../.."
TRAIN=${TRAIN:-10s}
# Taken before the builds: what the binary is made of.
SOURCE="$(git rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git diff --quiet HEAD 2>/dev/null || echo ', dirty')"

major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=$(command -v "llvm-profdata-$major" || true)
if [ -z "$profdata" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y -qq "llvm-$major" >/dev/null
    profdata=$(command -v "llvm-profdata-$major" || true)
fi
if [ -z "$profdata" ]; then
    echo "pgo-build: llvm-profdata-$major not found (rustc uses LLVM $major)" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeplane-pgo.XXXXXX")
NGINX=""
EDGE=""
cleanup() {
    [ -n "$EDGE" ] && kill "$EDGE" 2>/dev/null
    [ -n "$NGINX" ] && kill "$NGINX" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "[pgo] instrumented build (target/pgo-gen)"
RUSTFLAGS="-Cprofile-generate=$TMP/build-profiles" \
    cargo build --release --locked -p edgeplane-proxy --bin edgeplane --target-dir target/pgo-gen

read -r BACKEND PROXY ADMIN <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')"
head -c 16384 /dev/zero | tr '\0' 'x' >"$TMP/16k"
cat >"$TMP/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 4096; }
http { access_log off; client_max_body_size 1m; client_body_buffer_size 128k;
  server { listen 127.0.0.1:$BACKEND;
    location = /2b { return 200 "ok"; }
    location = /16k { alias $TMP/16k; }
    location = /upload { return 200 "ok"; } } }
CONF
cat >"$TMP/edge.toml" <<CONF
[node]
id = "pgo"
workers = 1
admin = "127.0.0.1:$ADMIN"
[[node.listeners]]
address = "127.0.0.1:$PROXY"
[[routes]]
cluster = "b"
[clusters.b]
[clusters.b.pool]
max_idle_per_endpoint = 512
[[clusters.b.endpoints]]
address = "127.0.0.1:$BACKEND"
CONF
cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 65536)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

nginx -c "$TMP/nginx.conf" &
NGINX=$!
LLVM_PROFILE_FILE="$TMP/run-%p.profraw" RUST_LOG=warn \
    target/pgo-gen/release/edgeplane run --config "$TMP/edge.toml" >"$TMP/edge.log" 2>&1 &
EDGE=$!
for _ in $(seq 1 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$PROXY/2b" && break
    sleep 0.2
done
base="http://127.0.0.1:$PROXY"
for conns in 64 256; do
    for path in 2b 16k; do
        echo "[pgo] training: GET /$path, $conns connections, $TRAIN"
        wrk -t1 -c"$conns" -d"$TRAIN" "$base/$path" | grep -E "Requests/sec|Non-2xx|errors" || true
    done
done
echo "[pgo] training: POST 64 KiB, 16 connections, $TRAIN"
wrk -t1 -c16 -d"$TRAIN" -s "$TMP/post.lua" "$base/upload" | grep -E "Requests/sec|Non-2xx|errors" || true
curl -fs -o /dev/null "http://127.0.0.1:$ADMIN/metrics"
# A graceful stop: the profile is written when the process exits.
kill -TERM "$EDGE"
wait "$EDGE" || true
EDGE=""
"$profdata" merge -o "$TMP/edgeplane.profdata" "$TMP"/run-*.profraw

echo "[pgo] optimised build (target/pgo-use)"
RUSTFLAGS="-Cprofile-use=$TMP/edgeplane.profdata" \
    cargo build --release --locked -p edgeplane-proxy --bin edgeplane --target-dir target/pgo-use
mkdir -p target/pgo
cp target/pgo-use/release/edgeplane target/pgo/edgeplane
# The source it was built from, for run.sh to report (and to warn when it is not the checkout's).
echo "$SOURCE" >target/pgo/edgeplane.source
echo "[pgo] built target/pgo/edgeplane from $SOURCE"
