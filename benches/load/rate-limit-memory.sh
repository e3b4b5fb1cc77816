#!/usr/bin/env bash
# Memory of a rate limit under a flood of distinct keys (issue 20): edgeplane in front of nginx with
# one route limited by a header key at 1 request per hour (so every key offered stays tracked: its
# bucket would take an hour to refill), wrk sending KEYS requests each with a key of its own, and
# the node's RSS (VmRSS) before the flood, after it, and the limit's tracked keys and evictions from
# the admin API. Run once with max_keys 100,000 (the default) and once with 1,000,000: RSS follows
# the cap, not the number of keys offered.
#
# Environment:
#   KEYS           distinct keys offered          (default 1000000)
#   CONNECTIONS    wrk connections                (default 32)
#   EDGEPLANE_BIN  edgeplane binary (default target/release/edgeplane; built when missing)
#   PROXY_CPU / LOAD_CPU  cores for edgeplane / wrk and nginx (default 0 / 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
KEYS=${KEYS:-1000000}
CONNECTIONS=${CONNECTIONS:-32}
. benches/load/lib.sh
bench_setup rate-limit-memory
read -r BACKEND EP ADMIN <<<"$(free_ports 3)"
bench_nginx "server { listen 127.0.0.1:$BACKEND; location / { default_type text/plain; return 200 \"ok\"; } }"
echo "rate-limit-memory-token" >"$TMP/token"

# Each wrk request carries its own key: a per-thread counter with the thread's number.
cat >"$TMP/keys.lua" <<'LUA'
local threads, n = 0, 0
function setup(thread) thread:set("id", threads); threads = threads + 1 end
function init(args) n = 0 end
function request()
  n = n + 1
  return wrk.format("GET", "/", { ["x-key"] = id .. "-" .. n })
end
LUA

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port "$BACKEND"

echo "| max_keys | keys offered | requests sent | RSS before flood | RSS after | RSS growth | tracked keys | evictions |"
echo "|---|---|---|---|---|---|---|---|"
for cap in 100000 1000000; do
    cat >"$TMP/edge.toml" <<TOML
[node]
id = "bench"
workers = 1
admin = "127.0.0.1:$ADMIN"
admin_token_file = "$TMP/token"
[[node.listeners]]
address = "127.0.0.1:$EP"
[[routes]]
name = "api"
cluster = "b"
[[routes.rate_limits]]
name = "per-key"
rate = 1
per = "1h"
key = ["header:x-key"]
max_keys = $cap
[clusters.b]
[clusters.b.pool]
max_idle_per_endpoint = 512
[[clusters.b.endpoints]]
address = "127.0.0.1:$BACKEND"
TOML
    RUST_LOG=warn taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/edge.toml" >"$TMP/edge.log" 2>&1 &
    pid=$!
    wait_port "$EP"
    # Warm the node (connections, buffers) with one key before the baseline.
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -H "x-key: warm" "http://127.0.0.1:$EP/" >/dev/null
    before=$(rss_kb "$pid")
    sent=0
    # wrk runs by duration: repeat short runs until KEYS requests (each a new key) have gone.
    round=0
    while [ "$sent" -lt "$KEYS" ]; do
        round=$((round + 1))
        sed "s/id .. \"-\" .. n/\"r$round-\" .. id .. \"-\" .. n/" "$TMP/keys.lua" >"$TMP/round.lua"
        out=$(taskset -c "$LOAD_CPU" wrk -t2 -c"$CONNECTIONS" -d5s -s "$TMP/round.lua" "http://127.0.0.1:$EP/")
        n=$(awk '/requests in/ {print $1}' <<<"$out")
        sent=$((sent + n))
    done
    after=$(rss_kb "$pid")
    state=$(curl -s -H "authorization: Bearer rate-limit-memory-token" "http://127.0.0.1:$ADMIN/api/v1/limits")
    tracked=$(python3 -c 'import json,sys; l=json.load(sys.stdin)["limits"][0]; print(l["active_keys"], l["evictions"])' <<<"$state")
    read -r active evictions <<<"$tracked"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf '| %s | %s | %s | %.1f MB | %.1f MB | %.1f MB | %s | %s |\n' "$cap" "$KEYS" "$sent" \
        "$(bc -l <<<"$before/1024")" "$(bc -l <<<"$after/1024")" "$(bc -l <<<"($after-$before)/1024")" "$active" "$evictions"
done
