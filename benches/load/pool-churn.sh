#!/usr/bin/env bash
# Upstream connection churn of edgeplane's idle pool under a steady load: wrk with CONNS client
# connections for SECONDS against edgeplane (one worker, two endpoints on one nginx backend), printing
# edgeplane_upstream_connections_opened_total and the open upstream connections every 5 s.
#
#   benches/load/pool-churn.sh [CONNS] [SECONDS] [POOL_LINES]
#   benches/load/pool-churn.sh 256 20 $'[clusters.b.pool]\nmax_idle_per_endpoint = 64'   # a fixed cap
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/load/lib.sh
bench_setup pool-churn
CONNS=${1:-256}
SECONDS_=${2:-20}
read -r B1 B2 P A <<<"$(free_ports 4)"
bench_nginx "server { listen 127.0.0.1:$B1; listen 127.0.0.1:$B2; keepalive_timeout 300s; location / { return 200 ok; } }"
cat >"$TMP/e.toml" <<CONF
[node]
id = "pool"
workers = 1
admin = "127.0.0.1:$A"
[[node.listeners]]
address = "127.0.0.1:$P"
[[routes]]
cluster = "b"
[clusters.b]
balancing = "round_robin"
${3:-}
[[clusters.b.endpoints]]
address = "127.0.0.1:$B1"
[[clusters.b.endpoints]]
address = "127.0.0.1:$B2"
CONF
RUST_LOG=warn taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/e.toml" &
PIDS+=($!)
wait_port "$B1"
wait_port "$P"
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${SECONDS_}s" "http://127.0.0.1:$P/" >"$TMP/wrk.txt" &
W=$!
for i in $(seq $((SECONDS_ / 5))); do
    sleep 5
    curl -s "http://127.0.0.1:$A/metrics" |
        awk -v t=$((i * 5)) '/^edgeplane_(upstream_connections_opened_total|cluster_upstream_connections)\{/ { printf "t=%ss %s %s\n", t, $1, $2 }'
done
wait "$W"
grep -E "Requests/sec|requests in" "$TMP/wrk.txt"
