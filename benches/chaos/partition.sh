#!/usr/bin/env bash
# Two hosts, partitioned: nats-server and the backends' heartbeat publishers on host "bus", an
# edgeplane node with its two nginx backends and the client (wrk) on host "edge" (network namespaces
# joined by a veth pair: benches/chaos/lib/two-hosts.sh). Under load, the link is cut for PARTITION
# seconds (the bus side's veth set down: the edge host keeps its route and its packets vanish, as in
# a real partition), then restored. Prints wrk's report (socket errors and non-2xx answers are failed
# requests), what the node's membership did, and how long after the heal the node was connected
# again and a push was applied. Needs root, wrk, nginx, curl, nats-server (as scripts/test finds it)
# and the release binary (built if missing).
#   PARTITION (60), CONNS (32), EDGEPLANE_BIN (target/release/edgeplane), KEEP_TMP=1 keeps the folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
PARTITION=${PARTITION:-60}
CONNS=${CONNS:-32}
. benches/chaos/lib/two-hosts.sh

start_nats 10.77.0.1
start_backends
start_node 1 nats://10.77.0.1:4222
start_heartbeats nats://10.77.0.1:4222
wait_for_endpoints 1

DURATION=$((PARTITION + 25))
in_edge wrk -t1 -c"$CONNS" -d"${DURATION}s" http://127.0.0.1:8080/ >"$TMP/wrk.txt" &
WRK=$!
sleep 5
echo "partition: the bus side's link down for ${PARTITION}s"
ip -n "$BUS" link set vbus down
sleep "$PARTITION"
echo "endpoints at the end of the partition: $(metric 1 'edgeplane_cluster_endpoints{cluster="api"}'); expired so far: $(metric 1 edgeplane_heartbeats_expired_total); bus connected: $(metric 1 edgeplane_bus_connected)"
ip -n "$BUS" link set vbus up
healed=$(now_ms)
# Reconnected: the node's gauge; then a push from the bus host, applied by the node.
for _ in $(seq 600); do [ "$(metric 1 edgeplane_bus_connected)" = 1 ] && break; sleep 0.05; done
connected=$(now_ms)
printf '[[routes]]\ncluster = "api"\n[clusters.api]\nself_registration = true\nremove_after = "11s"\n' >"$TMP/push.toml"
in_bus "$BIN" push "$TMP/push.toml" --server nats://10.77.0.1:4222 --timeout 30 >"$TMP/push.txt" 2>&1 || true
pushed=$(now_ms)
echo "after the heal: node connected again in $((connected - healed)) ms; push applied by every node $((pushed - connected)) ms after that ($(grep -c applied "$TMP/push.txt") applied)"
wait "$WRK"
cat "$TMP/wrk.txt"
echo "endpoints now: $(metric 1 'edgeplane_cluster_endpoints{cluster="api"}'); heartbeats expired in all: $(metric 1 edgeplane_heartbeats_expired_total)"
