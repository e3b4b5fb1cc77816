#!/usr/bin/env bash
# Latency and loss between the nodes and NATS: host "bus" (nats-server, the backends' heartbeat
# publishers, the publisher of pushes) and host "edge" (NODES edgeplane nodes, two nginx backends,
# one wrk per node) are network namespaces joined by a veth pair (benches/chaos/lib/two-hosts.sh).
# Every packet crossing the veth, both ways, is dropped with probability LOSS % (nftables `numgen
# random` on each side's ingress: real loss, TCP retransmits). The nodes reach NATS through a delay
# line on the bus host that forwards each chunk DELAY_MS later in each direction
# (benches/chaos/delay_line.py; this machine's kernel has no sch_netem, so `tc netem delay` is not
# available). Under load, PUSHES revisions are pushed from the bus host, one every 3 s; each push's
# convergence is measured twice: from the push command's start (its 500 ms discovery of the nodes
# included) until every node's edgeplane_config_revision shows it (read on the edge host's loopback,
# not through the delay), and as the push command reports it, from the write to each node's answer
# (the answer's trip back through the delay included).
# Prints each push's convergence, wrk's reports (socket errors and non-2xx answers are failed
# requests) and the nodes' bus and membership counters. Needs root, wrk, nginx, curl, nft (Debian's
# nftables, installed if missing), python3, nats-server and the release binary (built if missing).
#   NODES (3), DELAY_MS (100), LOSS (5), PUSHES (10), CONNS (16 per node), EDGEPLANE_BIN, KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${NODES:-3}
DELAY_MS=${DELAY_MS:-100}
LOSS=${LOSS:-5}
PUSHES=${PUSHES:-10}
CONNS=${CONNS:-16}
command -v nft >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null; }
. benches/chaos/lib/two-hosts.sh

start_nats 127.0.0.1
in_bus python3 benches/chaos/delay_line.py 10.77.0.1:4222 127.0.0.1:4222 "$DELAY_MS" >"$TMP/delay.log" 2>&1 &
for _ in $(seq 100); do in_bus bash -c 'exec 3<>/dev/tcp/10.77.0.1/4222' 2>/dev/null && break; sleep 0.1; done
for side in "$BUS:vbus" "$EDGE:vedge"; do
    ns=${side%%:*} dev=${side##*:}
    ip netns exec "$ns" nft -f - <<RULES
table netdev loss {
    chain ingress { type filter hook ingress device $dev priority 0; numgen random mod 100 < $LOSS counter drop; }
}
RULES
done
start_backends
for n in $(seq "$NODES"); do start_node "$n" nats://10.77.0.1:4222; done
start_heartbeats nats://127.0.0.1:4222
for n in $(seq "$NODES"); do wait_for_endpoints "$n"; done
echo "== $NODES nodes up behind ${DELAY_MS} ms each way and ${LOSS} % loss each way"

DURATION=$((PUSHES * 4 + 15))
WRKS=()
for n in $(seq "$NODES"); do
    in_edge wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$((8079 + n))/" >"$TMP/wrk-$n.txt" &
    WRKS+=($!)
done
sleep 5
revision() { metric "$1" edgeplane_config_revision; }
converged=()
slowest=()
for p in $(seq "$PUSHES"); do
    before=$(revision 1)
    printf '[[routes]]\ncluster = "api"\n[clusters.api]\nself_registration = true\nremove_after = "%ss"\n' $((10 + p)) >"$TMP/push.toml"
    start=$(now_ms)
    in_bus "$BIN" push "$TMP/push.toml" --server nats://127.0.0.1:4222 --timeout 30 >"$TMP/push-$p.txt" 2>&1 &
    PUSH=$!
    took=""
    while [ $(($(now_ms) - start)) -lt 30000 ]; do
        all=1
        for n in $(seq "$NODES"); do
            [ "$(revision "$n")" -gt "$before" ] 2>/dev/null || { all=0; break; }
        done
        if [ "$all" = 1 ]; then took=$(($(now_ms) - start)); break; fi
        sleep 0.01
    done
    wait "$PUSH" || true
    # The push command's own figure: each node's answer, counted from the write (answers' trip back
    # through the delay included); its slowest.
    answered=$(grep '^  applied' "$TMP/push-$p.txt" | grep -o '([0-9]* ms)' | tr -dc '0-9\n' | sort -n | tail -1)
    echo "push $p: every node showed it ${took:-(not within 30 s)} ms after the command started; $(grep -c '^  applied' "$TMP/push-$p.txt") of $NODES answered applied, the slowest ${answered:-?} ms after the write"
    converged+=("${took:-30000}")
    slowest+=("${answered:-30000}")
    sleep 3
done
wait "${WRKS[@]}"
summary() {
    local sorted
    sorted=$(printf '%s\n' "$@" | sort -n)
    echo "min $(echo "$sorted" | head -1) ms, median $(echo "$sorted" | sed -n "$((($# + 1) / 2))p") ms, max $(echo "$sorted" | tail -1) ms"
}
echo "over $PUSHES pushes: command start -> shown by every node: $(summary "${converged[@]}"); write -> slowest node's answer received: $(summary "${slowest[@]}")"
for n in $(seq "$NODES"); do
    requests=$(awk '/requests in/ {print $1}' "$TMP/wrk-$n.txt")
    failed=$(awk '/Socket errors/ {gsub(",", ""); s += $4 + $6 + $8 + $10} /Non-2xx/ {s += $NF} END {print s + 0}' "$TMP/wrk-$n.txt")
    echo "== node edge-$n: $requests requests, $failed failed (wrk's socket errors and non-2xx answers)"
    count=$(metric "$n" edgeplane_config_push_apply_seconds_count) sum=$(metric "$n" edgeplane_config_push_apply_seconds_sum)
    echo "   write -> applied on this node (edgeplane_config_push_apply_seconds): mean $(awk -v s="$sum" -v c="$count" 'BEGIN {printf "%.0f", c ? 1000 * s / c : -1}') ms over $count pushes"
    echo "   revision $(revision "$n"), endpoints $(metric "$n" 'edgeplane_cluster_endpoints{cluster="api"}'), heartbeats expired $(metric "$n" edgeplane_heartbeats_expired_total), missed $(metric "$n" edgeplane_heartbeats_missed_total), bus connects $(metric "$n" edgeplane_bus_connects_total), disconnects $(metric "$n" edgeplane_bus_disconnects_total)"
done
echo "== packets dropped on the veth (bus side, edge side): $(in_bus nft list table netdev loss | grep -o 'packets [0-9]*' | tr '\n' ' ')/ $(in_edge nft list table netdev loss | grep -o 'packets [0-9]*' | tr '\n' ' ')"
