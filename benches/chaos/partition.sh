#!/usr/bin/env bash
# Two hosts, partitioned: nats-server and the backends' heartbeat publishers on host "bus", an
# edgeplane node with its two nginx backends and the client (wrk) on host "edge"; each host is a
# network namespace, joined by a veth pair (10.77.0.1 bus, 10.77.0.2 edge). Under load, the link is
# cut for PARTITION seconds (the bus side's veth set down: the edge host keeps its route and its
# packets vanish, as in a real partition), then restored. Prints wrk's report (socket errors and
# non-2xx answers are failed requests), what the node's membership did, and how long after the heal
# the node was connected again and a push was applied. Needs root, wrk, nginx, curl, nats-server
# (as scripts/test finds it) and the release binary (built if missing).
#   PARTITION (60), CONNS (32), EDGEPLANE_BIN (target/release/edgeplane), KEEP_TMP=1 keeps the folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
. scripts/lib/ensure-nats-server.sh
BIN=${EDGEPLANE_BIN:-target/release/edgeplane}
[ -x "$BIN" ] || cargo build --release --locked -p edgeplane-proxy --bin edgeplane
BIN=$(realpath "$BIN")
PARTITION=${PARTITION:-60}
CONNS=${CONNS:-32}
NATS_BIN=${NATS_SERVER_BIN:-$(command -v nats-server)}
TMP=$(mktemp -d)
BUS=ep-bus-$$
EDGE=ep-edge-$$
cleanup() {
    ip netns pids "$BUS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns pids "$EDGE" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$BUS" 2>/dev/null || true
    ip netns del "$EDGE" 2>/dev/null || true
    [ "${KEEP_TMP:-}" = 1 ] && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
in_bus() { ip netns exec "$BUS" "$@"; }
in_edge() { ip netns exec "$EDGE" "$@"; }
now_ms() { date +%s%3N; }

ip netns add "$BUS"
ip netns add "$EDGE"
ip link add vbus netns "$BUS" type veth peer name vedge netns "$EDGE"
ip -n "$BUS" addr add 10.77.0.1/24 dev vbus
ip -n "$EDGE" addr add 10.77.0.2/24 dev vedge
for ns in "$BUS" "$EDGE"; do ip -n "$ns" link set lo up; done
ip -n "$BUS" link set vbus up
ip -n "$EDGE" link set vedge up

# Host bus: nats-server with JetStream.
in_bus "$NATS_BIN" -a 10.77.0.1 -p 4222 -js -sd "$TMP/js" >"$TMP/nats.log" 2>&1 &
# Host edge: two nginx backends and the node.
cat >"$TMP/nginx.conf" <<CONF
worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 4096; }
http { access_log off;
  server { listen 127.0.0.1:9001; location / { return 200 "a\n"; } }
  server { listen 127.0.0.1:9002; location / { return 200 "b\n"; } } }
CONF
in_edge nginx -c "$TMP/nginx.conf"
cat >"$TMP/edge.toml" <<CONF
[node]
id = "edge-1"
workers = 1
admin = "127.0.0.1:9901"
state_dir = "$TMP/state"
[node.nats]
urls = ["nats://10.77.0.1:4222"]
[[node.listeners]]
address = "127.0.0.1:8080"
[[routes]]
cluster = "api"
[clusters.api]
self_registration = true
remove_after = "10s"
CONF
for _ in $(seq 100); do in_edge bash -c 'exec 3<>/dev/tcp/10.77.0.1/4222' 2>/dev/null && break; sleep 0.1; done
RUST_LOG=info in_edge "$BIN" run --config "$TMP/edge.toml" 2>"$TMP/edge.log" &
# Host bus: the backends announce themselves (as the node reaches them: its loopback).
for i in a:9001 b:9002; do
    RUST_LOG=warn in_bus "$BIN" heartbeat --cluster api --instance "i-${i%%:*}" --addr "127.0.0.1:${i##*:}" \
        --interval 1s --server nats://10.77.0.1:4222 2>>"$TMP/heartbeat.log" &
done
metric() { in_edge curl -fs http://127.0.0.1:9901/metrics | awk -v m="$1" '$1 == m {print $2}'; }
for _ in $(seq 200); do [ "$(metric 'edgeplane_cluster_endpoints{cluster="api"}')" = 2 ] && break; sleep 0.1; done
[ "$(metric 'edgeplane_cluster_endpoints{cluster="api"}')" = 2 ] || { echo "the node never saw both instances" >&2; cat "$TMP/edge.log" >&2; exit 1; }

DURATION=$((PARTITION + 25))
in_edge wrk -t1 -c"$CONNS" -d"${DURATION}s" http://127.0.0.1:8080/ >"$TMP/wrk.txt" &
WRK=$!
sleep 5
echo "partition: the bus side's link down for ${PARTITION}s"
ip -n "$BUS" link set vbus down
sleep "$PARTITION"
echo "endpoints at the end of the partition: $(metric 'edgeplane_cluster_endpoints{cluster="api"}'); expired so far: $(metric edgeplane_heartbeats_expired_total); bus connected: $(metric edgeplane_bus_connected)"
ip -n "$BUS" link set vbus up
healed=$(now_ms)
# Reconnected: the node's gauge; then a push from the bus host, applied by the node.
for _ in $(seq 600); do [ "$(metric edgeplane_bus_connected)" = 1 ] && break; sleep 0.05; done
connected=$(now_ms)
printf '[[routes]]\ncluster = "api"\n[clusters.api]\nself_registration = true\nremove_after = "11s"\n' >"$TMP/push.toml"
in_bus "$BIN" push "$TMP/push.toml" --server nats://10.77.0.1:4222 --timeout 30 >"$TMP/push.txt" 2>&1 || true
pushed=$(now_ms)
echo "after the heal: node connected again in $((connected - healed)) ms; push applied by every node $((pushed - connected)) ms after that ($(grep -c applied "$TMP/push.txt") applied)"
wait "$WRK"
cat "$TMP/wrk.txt"
echo "endpoints now: $(metric 'edgeplane_cluster_endpoints{cluster="api"}'); heartbeats expired in all: $(metric edgeplane_heartbeats_expired_total)"
