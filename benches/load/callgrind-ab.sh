#!/usr/bin/env bash
# Instructions per proxied request under callgrind (deterministic, unlike CPU time on shared VMs),
# for edgeplane with metrics on (admin listener set) and off. Needs valgrind, nginx (backend), wrk,
# curl. Usage: benches/load/callgrind-ab.sh [RUNS]   (default 2; builds target/release/edgeplane)
# CG_KEEP=DIR keeps each run's callgrind output there (callgrind_annotate DIR/callgrind.off.0.out).
# CG_CONNS=N sets wrk's connections (default 32); CG_ONLY=off|on measures one variant;
# CG_ARGS adds valgrind options (e.g. "--cache-sim=yes" for simulated cache misses per function).
# CG_CLIENT=h2 drives it with h2load (HTTP/2 with prior knowledge, one stream per connection)
# instead of wrk (HTTP/1.1).
# CG_ROUTE_EXTRA adds TOML lines to the route, e.g. a rate limit that never refuses:
#   CG_ROUTE_EXTRA='[[routes.rate_limits]]\nrate = 1000000000\n'
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-2}
BIN=${EDGEPLANE_BIN:-target/release/edgeplane}
[ -x "$BIN" ] || cargo build --release -p edgeplane-proxy --bin edgeplane
BIN=$(realpath "$BIN")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeplane-cg.XXXXXX")
read -r BACKEND PROXY ADMIN <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')"
cat >"$TMP/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok"; } } }
CONF
for v in on off; do
    admin=""; [ "$v" = on ] && admin="admin = \"127.0.0.1:$ADMIN\""
    printf '[node]\nid = "cg"\nworkers = 1\n%s\n[[node.listeners]]\naddress = "127.0.0.1:%s"\n[[routes]]\ncluster = "b"\n%b[clusters.b]\n[clusters.b.pool]\nmax_idle_per_endpoint = 512\n[[clusters.b.endpoints]]\naddress = "127.0.0.1:%s"\n' \
        "$admin" "$PROXY" "${CG_ROUTE_EXTRA:-}" "$BACKEND" >"$TMP/edge-$v.toml"
done
nginx -c "$TMP/nginx.conf" &
NGINX=$!
trap 'kill $NGINX 2>/dev/null; rm -rf "$TMP"' EXIT
load() { # SECONDS: the client's run
    if [ "${CG_CLIENT:-}" = h2 ]; then
        h2load -c"${CG_CONNS:-32}" -m1 -D"$1" "http://127.0.0.1:$PROXY/"
    else
        wrk -t1 -c"${CG_CONNS:-32}" -d"$1"s "http://127.0.0.1:$PROXY/"
    fi
}
measure() { # on|off
    local v=$1 pid out reqs ir
    # shellcheck disable=SC2086
    RUST_LOG=warn valgrind --tool=callgrind ${CG_ARGS:-} --callgrind-out-file="$TMP/cg.$v.out" "$BIN" run --config "$TMP/edge-$v.toml" >"$TMP/edge.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 300); do curl -fs -o /dev/null "http://127.0.0.1:$PROXY/" && break; sleep 0.2; done
    load 3 >/dev/null
    callgrind_control -z "$pid" >/dev/null
    out=$(load 10)
    callgrind_control -d "$pid" >/dev/null
    if [ "${CG_CLIENT:-}" = h2 ]; then
        reqs=$(awk '/^requests:/ {print $8}' <<<"$out")
    else
        reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
    ir=$(awk '/^summary:/ {print $2; exit}' "$TMP/cg.$v.out.1")
    echo "metrics $v: $reqs requests, $((ir / reqs)) instructions per request"
    if [ -n "${CG_KEEP:-}" ]; then
        mkdir -p "$CG_KEEP"
        cp "$TMP/cg.$v.out.1" "$CG_KEEP/callgrind.$v.$r.out"
    fi
    rm -f "$TMP"/cg.*
}
for ((r = 0; r < RUNS; r++)); do
    for v in ${CG_ONLY:-off on}; do measure "$v"; done
done
