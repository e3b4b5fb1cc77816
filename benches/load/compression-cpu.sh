#!/usr/bin/env bash
# The CPU cost of response compression (issue 19): edgeplane (one worker, core 0) in front of nginx
# serving a 256 KiB HTML page, driven by wrk (core 1) with each Accept-Encoding in turn. Reports the
# node's CPU time (user + system, from /proc) per MiB of page served, the bytes on the wire per page,
# and requests per second. `identity` is the same route without compression asked for.
#
# Environment: DURATION (default 10s), CONNECTIONS (default 8), EDGEPLANE_BIN (default
# target/release/edgeplane, built when missing), PROXY_CPU / LOAD_CPU (default 0 / 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
. benches/load/lib.sh
bench_setup compression-cpu
read -r P1 EP <<<"$(free_ports 2)"

# A page of varied text (a generated article: words drawn from a vocabulary, in tags), so that it
# compresses like real HTML rather than like a repeated line.
mkdir -p "$TMP/www" "$TMP/nginx"
python3 - "$TMP/www/page.html" <<'PY'
import random, sys
random.seed(7)
words = ("proxy request response header cluster endpoint route balance latency upstream "
         "connection stream server client table snapshot config reload health metric trace "
         "the a of to in and is for on with as by at from this that be are it or an").split()
out = ["<!doctype html><html><head><title>edge</title></head><body>"]
size = 0
while size < 256 * 1024:
    para = " ".join(random.choice(words) for _ in range(random.randint(20, 80)))
    line = f'<p class="c{random.randint(1, 9)}">{para}.</p>\n'
    out.append(line)
    size += len(line)
out.append("</body></html>\n")
open(sys.argv[1], "w").write("".join(out))
PY
PAGE_BYTES=$(stat -c %s "$TMP/www/page.html")
bench_nginx "sendfile on;
    types { text/html html; }
    server { listen 127.0.0.1:$P1; root $TMP/www; }"
cat >"$TMP/edge.toml" <<TOML
[node]
id = "bench"
workers = 1
[[node.listeners]]
address = "127.0.0.1:$EP"
[[routes]]
cluster = "web"
[routes.compression]
[clusters.web]
[clusters.web.pool]
max_idle_per_endpoint = 64
[[clusters.web.endpoints]]
address = "127.0.0.1:$P1"
TOML
taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/edge.toml" 2>"$TMP/edge.log" &
EPID=$!
PIDS+=($EPID)
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$EP/page.html" && break; sleep 0.05; done
TICKS=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$EPID/stat"; }

echo "| Accept-Encoding | req/s | MiB of page/s | CPU ms per MiB of page | bytes per page on the wire |"
echo "|---|---:|---:|---:|---:|"
for enc in identity gzip br zstd; do
    wire=$(curl -s -H "accept-encoding: $enc" "http://127.0.0.1:$EP/page.html" | wc -c)
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -H "accept-encoding: $enc" "http://127.0.0.1:$EP/page.html" >/dev/null
    before=$(cpu)
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "accept-encoding: $enc" "http://127.0.0.1:$EP/page.html" >"$TMP/$enc.wrk"
    after=$(cpu)
    python3 - "$enc" "$TMP/$enc.wrk" "$before" "$after" "$TICKS" "$PAGE_BYTES" "$wire" <<'PY'
import re, sys
enc, path, before, after, ticks, page, wire = sys.argv[1:]
text = open(path).read()
requests = int(re.search(r"(\d+) requests in", text).group(1))
seconds = float(re.search(r"requests in ([0-9.]+)s", text).group(1))
cpu_s = (float(after) - float(before)) / float(ticks)
mib = requests * int(page) / 2**20
print(f"| {enc} | {requests / seconds:,.0f} | {mib / seconds:,.1f} | {cpu_s * 1000 / mib:.2f} | {int(wire):,} |")
PY
done
echo
echo "page: $PAGE_BYTES bytes of generated HTML; $DURATION per row, $CONNECTIONS connections"
