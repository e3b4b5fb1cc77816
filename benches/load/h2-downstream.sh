#!/usr/bin/env bash
# HTTP/2 clients: edgeplane against nginx (`http2`) in front of the same nginx backend, driven by
# h2load (nghttp2-client) over cleartext with prior knowledge (h2c) and over TLS (ALPN h2), with 1 and
# 100 concurrent streams on each of 64 connections. Per cell: requests per second, CPU µs per request
# (the proxy's utime + stime over the measured run) and p50/p99 from h2load's per-request log.
#
#   benches/load/h2-downstream.sh            DURATION=10 CLIENTS=64 STREAMS="1 100" MODES="h2c tls"
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/load/lib.sh
bench_setup h2-downstream
for tool in h2load openssl; do
    command -v "$tool" >/dev/null || { echo "h2-downstream: $tool is missing (apt-get install nghttp2-client openssl)" >&2; exit 1; }
done
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-64}
STREAMS=${STREAMS:-"1 100"}
MODES=${MODES:-"h2c tls"}
HZ=$(getconf CLK_TCK)
read -r B EP_C EP_T NX_C NX_T <<<"$(free_ports 5)"
bench_nginx "server { listen 127.0.0.1:$B backlog=4096; keepalive_timeout 300s; location / { return 200 ok; } }"
mkdir -p "$TMP/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>/dev/null
cat >"$TMP/e.toml" <<CONF
[node]
id = "h2"
workers = 1
[[node.listeners]]
name = "h2c"
address = "127.0.0.1:$EP_C"
[[node.listeners]]
name = "tls"
address = "127.0.0.1:$EP_T"
[node.listeners.tls]
[[certificates]]
cert = "$TMP/tls/cert.pem"
key = "$TMP/tls/key.pem"
[[routes]]
cluster = "b"
[[clusters.b.endpoints]]
address = "127.0.0.1:$B"
CONF
RUST_LOG=warn taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/e.toml" &
EP_PID=$!
PIDS+=("$EP_PID")
bench_nginx_proxy "http2_max_concurrent_streams 128;
    upstream b { server 127.0.0.1:$B; keepalive 512; }
    server {
        listen 127.0.0.1:$NX_C http2;
        listen 127.0.0.1:$NX_T ssl http2;
        ssl_certificate $TMP/tls/cert.pem;
        ssl_certificate_key $TMP/tls/key.pem;
        location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"
NX_PID=$NGINX_PROXY_PID
wait_port "$B"
wait_port "$EP_C"
for _ in $(seq 100); do curl -skf -o /dev/null --http2-prior-knowledge "http://127.0.0.1:$NX_C/" && break; sleep 0.1; done

cpu_ticks() { # pid -> utime + stime of it and its children
    local total=0 p f
    for p in "$1" $(pgrep -P "$1" || true); do
        read -r -a f <<<"$(sed 's/^.*) //' "/proc/$p/stat")"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

echo "| proxy | mode | streams per connection | req/s | CPU µs/req | p50 | p99 | failed |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
for mode in $MODES; do
    for m in $STREAMS; do
        for proxy in edgeplane nginx; do
            case $proxy/$mode in
                edgeplane/h2c) url="http://127.0.0.1:$EP_C/" pid=$EP_PID ;;
                edgeplane/tls) url="https://127.0.0.1:$EP_T/" pid=$EP_PID ;;
                nginx/h2c) url="http://127.0.0.1:$NX_C/" pid=$NX_PID ;;
                nginx/tls) url="https://127.0.0.1:$NX_T/" pid=$NX_PID ;;
            esac
            taskset -c "$LOAD_CPU" h2load -c"$CLIENTS" -m"$m" -t1 -D 2 "$url" >/dev/null 2>&1 || true
            # h2load counts requests after its 1 s warm-up (connections and TLS handshakes are made
            # in it): the proxy's CPU is read from then on.
            taskset -c "$LOAD_CPU" h2load -c"$CLIENTS" -m"$m" -t1 -D "$DURATION" --warm-up-time=1 --log-file="$TMP/log" "$url" >"$TMP/out" 2>&1 &
            H=$!
            sleep 1
            t0=$(cpu_ticks "$pid")
            wait "$H"
            t1=$(cpu_ticks "$pid")
            done_=$(awk '/^requests:/ { print $8 }' "$TMP/out")
            failed=$(awk '/^requests:/ { print $10 }' "$TMP/out")
            rps=$(awk '/^finished in/ { gsub(/,/, "", $4); printf "%.0f", $4 }' "$TMP/out")
            # Per-request log: start (µs since the epoch), status, duration (µs); the warm-up's requests
            # (the first second) left out.
            read -r p50 p99 <<<"$(awk 'NR == FNR { if (min == "" || $1 < min) min = $1; next } $1 >= min + 1e6 { print $3 }' "$TMP/log" "$TMP/log" | sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.2f %.2f\n", v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }')"
            cpu=$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v n="${done_:-0}" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "n/a" }')
            echo "| $proxy | $mode | $m | $rps | $cpu | ${p50:-n/a} ms | ${p99:-n/a} ms | ${failed:-?} |"
        done
    done
done
