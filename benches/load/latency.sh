#!/usr/bin/env bash
# Latency at a fixed request rate (coordinated omission corrected): edgeplane (shipped defaults, one
# worker), nginx and HAProxy in front of the same two-port nginx backend, driven by oha at half of
# nginx's peak rate (measured first with wrk), 64 connections. Prints p50/p99/p99.9 per proxy.
#
#   benches/load/latency.sh      DURATION=10s CONNS=64 RATE=<fixed rate instead of nginx's peak / 2>
#
# oha comes from crates.io: `cargo install --locked --root target/tools/oha oha` (done here when
# missing; a few minutes on two cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/load/lib.sh
bench_setup latency
OHA=${OHA:-target/tools/oha/bin/oha}
[ -x "$OHA" ] || cargo install --locked --root target/tools/oha oha
command -v haproxy >/dev/null || { echo "latency: haproxy is missing (apt-get install haproxy)" >&2; exit 1; }
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
read -r B1 B2 EP NX HA <<<"$(free_ports 5)"
bench_nginx "server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; keepalive_timeout 300s; location / { return 200 ok; } }"
cat >"$TMP/e.toml" <<CONF
[node]
id = "latency"
workers = 1
[[node.listeners]]
address = "127.0.0.1:$EP"
[[routes]]
cluster = "b"
[clusters.b]
balancing = "round_robin"
[[clusters.b.endpoints]]
address = "127.0.0.1:$B1"
[[clusters.b.endpoints]]
address = "127.0.0.1:$B2"
CONF
cat >"$TMP/h.cfg" <<CONF
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    maxconn 4096
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:$HA
    default_backend be
backend be
    balance roundrobin
    server b1 127.0.0.1:$B1
    server b2 127.0.0.1:$B2
CONF
RUST_LOG=warn taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/e.toml" &
PIDS+=($!)
bench_nginx_proxy "upstream b { server 127.0.0.1:$B1; server 127.0.0.1:$B2; keepalive 512; }
    server {
        listen 127.0.0.1:$NX backlog=4096;
        location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"
taskset -c "$PROXY_CPU" haproxy -f "$TMP/h.cfg" &
PIDS+=($!)
wait_port "$B1"
for p in $EP $NX $HA; do wait_port "$p"; done
if [ -z "${RATE:-}" ]; then
    peak=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d5s "http://127.0.0.1:$NX/" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')
    RATE=$((peak / 2))
    echo "nginx's peak at $CONNS connections: $peak req/s; fixed rate: $RATE req/s"
fi
echo
echo "| proxy | rate asked | rate achieved | p50 | p99 | p99.9 | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for name in edgeplane nginx haproxy; do
    case $name in edgeplane) port=$EP ;; nginx) port=$NX ;; haproxy) port=$HA ;; esac
    url="http://127.0.0.1:$port/"
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d2s "$url" >/dev/null
    taskset -c "$LOAD_CPU" "$OHA" -z "$DURATION" -q "$RATE" -c "$CONNS" --latency-correction --no-tui \
        --output-format json "$url" >"$TMP/$name.json"
    python3 - "$TMP/$name.json" "$name" "$RATE" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s, p = d["summary"], d["latencyPercentiles"]
ms = lambda v: f"{v * 1000:.2f} ms" if v is not None else "n/a"
errors = sum(d.get("errorDistribution", {}).values())
kinds = "; ".join(f"{k}: {v}" for k, v in d.get("errorDistribution", {}).items())
shown = f"{errors} ({kinds})" if errors else "0"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {s['requestsPerSec']:.0f} | {ms(p.get('p50'))} | {ms(p.get('p99'))} | {ms(p.get('p99.9'))} | {shown} |")
PY
done
