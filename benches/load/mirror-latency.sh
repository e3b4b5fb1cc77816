#!/usr/bin/env bash
# Request mirroring's effect on the primary's latency (issue 19): edgeplane in front of one nginx
# backend, driven by wrk, with no mirror, with every request mirrored to a slow shadow (answers after
# SHADOW_DELAY_MS), and with every request mirrored to a fast shadow (a second nginx server: the cost
# of making and sending the copies). Rounds are interleaved; the report shows medians.
#
# Environment:
#   DURATION        measured wrk run per cell                (default 10s)
#   ROUNDS          interleaved rounds                       (default 3)
#   CONNECTIONS     wrk connections                          (default 32)
#   SHADOW_DELAY_MS the slow shadow's delay before answering (default 200)
#   MAX_CONCURRENT  the mirror's max_concurrent              (default 64)
#   EDGEPLANE_BIN   edgeplane binary (default target/release/edgeplane; built when missing)
#   PROXY_CPU / LOAD_CPU  cores for edgeplane / wrk, nginx and the shadow (default 0 / 1)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
SHADOW_DELAY_MS=${SHADOW_DELAY_MS:-200}
MAX_CONCURRENT=${MAX_CONCURRENT:-64}
. benches/load/lib.sh
bench_setup mirror-latency
read -r P1 P2 SLOW EP ADMIN <<<"$(free_ports 5)"

bench_nginx "server { listen 127.0.0.1:$P1; location / { default_type text/plain; return 200 \"ok\"; } }
    server { listen 127.0.0.1:$P2; location / { default_type text/plain; return 200 \"shadow\"; } }"

# The slow shadow: asyncio, keep-alive, every answer after the delay.
cat >"$TMP/slow.py" <<'PY'
import asyncio, sys
port, delay = int(sys.argv[1]), int(sys.argv[2]) / 1000
async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            await asyncio.sleep(delay)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nslow")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
taskset -c "$LOAD_CPU" python3 "$TMP/slow.py" "$SLOW" "$SHADOW_DELAY_MS" &
PIDS+=($!)

config() { # variant: off | slow | fast
    local mirror=""
    case $1 in
        slow) mirror="[routes.mirror]
cluster = \"shadow\"
max_concurrent = $MAX_CONCURRENT" ; shadow=$SLOW ;;
        fast) mirror="[routes.mirror]
cluster = \"shadow\"
max_concurrent = $MAX_CONCURRENT" ; shadow=$P2 ;;
        off) shadow=$P2 ;;
    esac
    cat <<TOML
[node]
id = "bench"
workers = 1
admin = "127.0.0.1:$ADMIN"
admin_token_file = "$TMP/token"
[[node.listeners]]
address = "127.0.0.1:$EP"
[[routes]]
name = "all"
cluster = "primary"
$mirror
[clusters.primary]
[clusters.primary.pool]
max_idle_per_endpoint = 512
[[clusters.primary.endpoints]]
address = "127.0.0.1:$P1"
[clusters.shadow]
[clusters.shadow.pool]
max_idle_per_endpoint = 512
[[clusters.shadow.endpoints]]
address = "127.0.0.1:$shadow"
TOML
}
echo "mirror-latency-token" >"$TMP/token"

wait_port "$P1"

declare -A RPS P50 P99 OUTCOMES
for round in $(seq "$ROUNDS"); do
    for v in off slow fast; do
        config "$v" >"$TMP/$v.toml"
        taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/$v.toml" 2>"$TMP/$v.log" &
        ep=$!
        wait_port "$EP"
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s "http://127.0.0.1:$EP/" >/dev/null
        taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$EP/" >"$TMP/$v.$round.wrk"
        curl -s -H "authorization: Bearer mirror-latency-token" "http://127.0.0.1:$ADMIN/metrics" >"$TMP/$v.$round.metrics" || true
        outcomes=$(cat "$TMP/$v.$round.metrics" | { grep '^edgeplane_mirror_requests_total' || true; } | sed -E 's/.*outcome="([a-z_]+)"\} ([0-9]+)/\1=\2/' | tr '\n' ' ')
        kill "$ep"; wait "$ep" 2>/dev/null || true
        RPS[$v]+="$(awk '/Requests\/sec/ {print $2}' "$TMP/$v.$round.wrk") "
        P50[$v]+="$(awk '$1=="50%" {print $2}' "$TMP/$v.$round.wrk") "
        P99[$v]+="$(awk '$1=="99%" {print $2}' "$TMP/$v.$round.wrk") "
        OUTCOMES[$v]="${outcomes:--}"
        echo "round $round $v: $(awk '/Requests\/sec/ {print $2}' "$TMP/$v.$round.wrk") req/s, p99 $(awk '$1=="99%" {print $2}' "$TMP/$v.$round.wrk") $outcomes" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | python3 -c '
import sys, re
def us(t):
    m = re.match(r"([0-9.]+)(us|ms|s)?$", t)
    v, u = float(m.group(1)), m.group(2) or ""
    return v * {"us": 1, "ms": 1e3, "s": 1e6, "": 1}[u]
vals = sorted(us(l.strip()) for l in sys.stdin)
print(vals[len(vals) // 2])'; }
echo "| mirror | req/s | p50 | p99 | copies (last round) |"
echo "|---|---|---|---|---|"
for v in off slow fast; do
    label=$v
    [ "$v" = off ] && label="none"
    [ "$v" = slow ] && label="100 % to a shadow answering after ${SHADOW_DELAY_MS} ms (max_concurrent $MAX_CONCURRENT)"
    [ "$v" = fast ] && label="100 % to a fast shadow (nginx)"
    printf '| %s | %.0f | %.0f µs | %.0f µs | %s |\n' "$label" "$(echo "${RPS[$v]}" | median)" \
        "$(echo "${P50[$v]}" | median)" "$(echo "${P99[$v]}" | median)" "${OUTCOMES[$v]}"
done
