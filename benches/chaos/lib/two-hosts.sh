# Sourced by partition.sh and lossy.sh (from the repository's root, as root): two hosts as network
# namespaces joined by a veth pair, 10.77.0.1 "bus" (nats-server, the backends' heartbeat publishers,
# the publisher of pushes) and 10.77.0.2 "edge" (edgeplane nodes, two nginx backends on its loopback,
# wrk). Defines in_bus, in_edge, now_ms, start_nats, start_backends, start_node, start_heartbeats,
# metric and wait_for_endpoints; removes both namespaces, their processes and the folder on exit.
. scripts/lib/ensure-nats-server.sh
BIN=${EDGEPLANE_BIN:-target/release/edgeplane}
[ -x "$BIN" ] || cargo build --release --locked -p edgeplane-proxy --bin edgeplane
BIN=$(realpath "$BIN")
NATS_BIN=${NATS_SERVER_BIN:-$(command -v nats-server)}
TMP=$(mktemp -d)
BUS=ep-bus-$$
EDGE=ep-edge-$$
cleanup() {
    ip netns pids "$BUS" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns pids "$EDGE" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$BUS" 2>/dev/null || true
    ip netns del "$EDGE" 2>/dev/null || true
    if [ "${KEEP_TMP:-}" = 1 ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
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

# start_nats ADDRESS: nats-server with JetStream on the bus host, listening on ADDRESS:4222.
start_nats() {
    in_bus "$NATS_BIN" -a "$1" -p 4222 -js -sd "$TMP/js" ${NATS_TRACE:-} >"$TMP/nats.log" 2>&1 &
    for _ in $(seq 100); do in_bus bash -c "exec 3<>/dev/tcp/$1/4222" 2>/dev/null && return 0; sleep 0.1; done
    echo "nats-server did not start" >&2; cat "$TMP/nats.log" >&2; return 1
}

# start_backends: two nginx backends on the edge host's loopback (9001 answers "a", 9002 "b").
start_backends() {
    cat >"$TMP/nginx.conf" <<CONF
worker_processes 1; pid $TMP/nginx.pid; error_log $TMP/nginx.err;
events { worker_connections 4096; }
http { access_log off;
  server { listen 127.0.0.1:9001; location / { return 200 "a\n"; } }
  server { listen 127.0.0.1:9002; location / { return 200 "b\n"; } } }
CONF
    in_edge nginx -c "$TMP/nginx.conf"
}

# start_node N NATS_URL: node edge-N on the edge host, listener 127.0.0.1:(8079+N), admin
# 127.0.0.1:(9900+N), one route to the self-registered cluster "api".
start_node() {
    cat >"$TMP/edge-$1.toml" <<CONF
[node]
id = "edge-$1"
workers = 1
admin = "127.0.0.1:$((9900 + $1))"
state_dir = "$TMP/state-$1"
[node.nats]
urls = ["$2"]
[[node.listeners]]
address = "127.0.0.1:$((8079 + $1))"
[[routes]]
cluster = "api"
[clusters.api]
self_registration = true
remove_after = "10s"
CONF
    RUST_LOG=info in_edge "$BIN" run --config "$TMP/edge-$1.toml" 2>"$TMP/edge-$1.log" &
}

# start_heartbeats NATS_URL: the backends announce themselves from the bus host (as the nodes reach
# them: the edge host's loopback), once a second.
start_heartbeats() {
    for i in a:9001 b:9002; do
        RUST_LOG=warn in_bus "$BIN" heartbeat --cluster api --instance "i-${i%%:*}" --addr "127.0.0.1:${i##*:}" \
            --interval 1s --server "$1" >/dev/null 2>>"$TMP/heartbeat.log" &
    done
}

# metric N NAME: the value of NAME (with labels, as exposed) on node N's /metrics.
metric() { in_edge curl -fs "http://127.0.0.1:$((9900 + $1))/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# wait_for_endpoints N: until node N lists both instances (20 s at most).
wait_for_endpoints() {
    for _ in $(seq 200); do [ "$(metric "$1" 'edgeplane_cluster_endpoints{cluster="api"}')" = 2 ] && return 0; sleep 0.1; done
    echo "node edge-$1 never saw both instances" >&2; cat "$TMP/edge-$1.log" >&2; return 1
}
