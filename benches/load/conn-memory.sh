#!/usr/bin/env bash
# Memory per client connection: RSS of edgeplane, nginx and HAProxy holding N idle keep-alive client
# connections (each after one answered request), and N connections each with one request in flight
# to an upstream that never answers. Run from anywhere: benches/load/conn-memory.sh
#
#   N=10000 INFLIGHT_N=8000 PROXIES="edgeplane nginx haproxy" MODES="idle inflight"
#
# MODES may add idle-tls: the idle case with the proxies terminating TLS (one EC P-256 certificate,
# TLS 1.2 and 1.3, ALPN http/1.1, no session cache or tickets; TLS_N connections, default N).
#
# Per proxy and mode: RSS before (after one warm-up request) and with the connections held, and the
# difference divided by the connections. nginx counts master and worker. INFLIGHT_N defaults to 8,000
# because a proxy holds two descriptors per connection in flight and this machine's hard limit is
# 20,000 (nginx, which keeps a reserve, starts reusing connections near 9,000).
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/load/lib.sh
bench_setup conn-memory
ulimit -n "$(ulimit -Hn)"
N=${N:-10000}
INFLIGHT_N=${INFLIGHT_N:-8000}
PROXIES=${PROXIES:-"edgeplane nginx haproxy"}
MODES=${MODES:-"idle inflight"}
HOLD=benches/load/conn_hold.py

rss_kb() { # pid -> VmRSS in KiB of the process and its children
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")))
    done
    echo "$total"
}

established() { # port -> established TCP connections to that loopback port
    ss -Htn state established "( dport = :$1 )" | wc -l
}

# Waits (60 s at most) until `established PORT` reaches N.
wait_established() {
    for _ in $(seq 600); do
        [ "$(established "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    echo "only $(established "$1") of $2 connections to :$1" >&2
    return 1
}

# One certificate for every proxy's TLS listener (mode idle-tls).
tls_files() {
    [ -f "$TMP/tls/cert.pem" ] && return 0
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench \
        -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>"$TMP/tls/openssl.log"
    cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/combined.pem"
}

start_proxy() { # name listen-port backend-port [tls] -> pid in PROXY_PID
    local name=$1 port=$2 backend=$3 tls=${4:-}
    local e_tls="" n_ssl="" n_tls="" h_ssl=""
    if [ -n "$tls" ]; then
        tls_files
        e_tls=$(printf '[node.listeners.tls]\nalpn = ["http/1.1"]\n[[certificates]]\ncert = "%s"\nkey = "%s"' "$TMP/tls/cert.pem" "$TMP/tls/key.pem")
        n_ssl=" ssl"
        n_tls="ssl_certificate $TMP/tls/cert.pem; ssl_certificate_key $TMP/tls/key.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets off; ssl_session_cache off;"
        h_ssl=" ssl crt $TMP/tls/combined.pem ssl-min-ver TLSv1.2 no-tls-tickets alpn http/1.1"
    fi
    case $name in
        edgeplane)
            cat >"$TMP/e.toml" <<CONF
[node]
id = "mem"
workers = 1
[[node.listeners]]
address = "127.0.0.1:$port"
$e_tls
[[routes]]
cluster = "b"
[clusters.b.timeouts]
response_header = "300s"
[[clusters.b.endpoints]]
address = "127.0.0.1:$backend"
CONF
            RUST_LOG=warn taskset -c "$PROXY_CPU" "$EDGEPLANE_BIN" run --config "$TMP/e.toml" &
            ;;
        nginx)
            NGINX_PROXY_CONNECTIONS=19000 bench_nginx_proxy "upstream b { server 127.0.0.1:$backend; keepalive 512; }
    server {
        listen 127.0.0.1:$port$n_ssl backlog=4096;
        $n_tls
        location / {
            proxy_pass http://b;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_read_timeout 300s;
        }
    }"
            PROXY_PID=$NGINX_PROXY_PID
            return
            ;;
        haproxy)
            cat >"$TMP/h.cfg" <<CONF
global
    nbthread 1
    maxconn $(( ($(ulimit -n) - 200) / 2 ))
defaults
    mode http
    maxconn $(( ($(ulimit -n) - 200) / 2 ))
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:$port$h_ssl
    default_backend be
backend be
    server b1 127.0.0.1:$backend
CONF
            taskset -c "$PROXY_CPU" haproxy -f "$TMP/h.cfg" &
            ;;
    esac
    PROXY_PID=$!
    PIDS+=("$PROXY_PID")
}

echo "| proxy | mode | connections | RSS before | RSS held | per connection |"
echo "|---|---|---:|---:|---:|---:|"
for mode in $MODES; do
    case $mode in
        idle) n=$N ;;
        idle-tls) n=${TLS_N:-$N} ;;
        *) n=$INFLIGHT_N ;;
    esac
    for name in $PROXIES; do
        read -r B P <<<"$(free_ports 2)"
        if [ "$mode" != inflight ]; then
            bench_nginx "server { listen 127.0.0.1:$B backlog=4096; keepalive_timeout 300s; location / { return 200 ok; } }"
        else
            taskset -c "$LOAD_CPU" python3 "$HOLD" backend "$B" >/dev/null &
            PIDS+=($!)
        fi
        BACKEND_PID=${PIDS[-1]}
        wait_port_tcp() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
        wait_port_tcp "$B"
        tls=""; [ "$mode" = idle-tls ] && tls=tls
        start_proxy "$name" "$P" "$B" $tls
        wait_port_tcp "$P"
        case $mode in
            idle) curl -fsS -o /dev/null "http://127.0.0.1:$P/2b" ;;
            idle-tls) curl -fsSk -o /dev/null "https://127.0.0.1:$P/2b" ;;
        esac
        before=$(rss_kb "$PROXY_PID")
        exec {hold_in}> >(taskset -c "$LOAD_CPU" python3 "$HOLD" clients "$P" "$n" "$mode" >"$TMP/hold.out")
        HOLDER=$!
        wait_established "$P" "$n"
        if [ "$mode" = inflight ]; then wait_established "$B" "$n"; fi
        # Settled: the RSS no longer moves (two readings a second apart within 0.5 %).
        held=$(rss_kb "$PROXY_PID")
        for _ in $(seq 30); do
            sleep 1
            now=$(rss_kb "$PROXY_PID")
            if [ $(( (now - held) * 200 )) -le "$held" ] && [ $(( (held - now) * 200 )) -le "$held" ]; then break; fi
            held=$now
        done
        printf '| %s | %s | %d | %.1f MiB | %.1f MiB | %.2f KiB |\n' "$name" "$mode" "$n" \
            "$(awk -v k="$before" 'BEGIN { print k / 1024 }')" "$(awk -v k="$held" 'BEGIN { print k / 1024 }')" \
            "$(awk -v a="$before" -v b="$held" -v n="$n" 'BEGIN { print (b - a) / n }')"
        exec {hold_in}>&-
        kill "$HOLDER" "$PROXY_PID" "$BACKEND_PID" 2>/dev/null || true
        wait "$PROXY_PID" "$BACKEND_PID" 2>/dev/null || true
    done
done
