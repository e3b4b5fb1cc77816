# Shared set-up of the small load scripts (mirror-latency.sh, compression-cpu.sh,
# rate-limit-memory.sh); sourced from the repo root. bench_setup NAME: checks the tools, builds the
# release binary if missing, makes $TMP and a trap that kills every pid in PIDS and removes $TMP (kept
# with KEEP_TMP=1). free_ports N: N free loopback ports on one line. bench_nginx 'HTTP LINES': starts
# one nginx worker on LOAD_CPU with those lines (server blocks, directives) in its http block;
# bench_nginx_proxy the same on PROXY_CPU, as a proxy under test.
# wait_port PORT: waits for an HTTP server on a loopback port.

bench_setup() {
    local name=$1 tool
    EDGEPLANE_BIN=${EDGEPLANE_BIN:-target/release/edgeplane}
    PROXY_CPU=${PROXY_CPU:-0}
    LOAD_CPU=${LOAD_CPU:-1}
    for tool in wrk nginx python3 curl taskset; do
        command -v "$tool" >/dev/null || { echo "$name: $tool is missing (apt-get install wrk nginx curl)" >&2; exit 1; }
    done
    [ -x "$EDGEPLANE_BIN" ] || cargo build --release -q -p edgeplane-proxy --bin edgeplane
    TMP=$(mktemp -d)
    PIDS=()
    trap bench_cleanup EXIT INT TERM
}

bench_cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$TMP"
}

free_ports() {
    python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

# nginx_conf DIR CONNECTIONS 'HTTP LINES': an nginx configuration in DIR/nginx.conf, one worker,
# no access log, keep-alive for 300 s and a million requests, temp paths in DIR.
nginx_conf() {
    local user=""
    [ "$(id -u)" -ne 0 ] || user="user root;"
    mkdir -p "$1"
    cat >"$1/nginx.conf" <<CONF
$user
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $2; }
http {
    access_log off;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    $3
}
CONF
}

bench_nginx() {
    nginx_conf "$TMP/nginx" 16384 "$1"
    taskset -c "$LOAD_CPU" nginx -c "$TMP/nginx/nginx.conf" -g 'daemon off;' &
    PIDS+=($!)
}

# bench_nginx_proxy 'HTTP LINES': nginx as a proxy under test, one worker on PROXY_CPU (pid in
# NGINX_PROXY_PID; worker_connections NGINX_PROXY_CONNECTIONS, default 16384).
bench_nginx_proxy() {
    nginx_conf "$TMP/px" "${NGINX_PROXY_CONNECTIONS:-16384}" "$1"
    taskset -c "$PROXY_CPU" nginx -c "$TMP/px/nginx.conf" -g 'daemon off;' &
    NGINX_PROXY_PID=$!
    PIDS+=("$NGINX_PROXY_PID")
}

# wait_port PORT: until an HTTP server answers on the loopback port (10 s at most).
wait_port() {
    for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done
    echo "port $1 not ready" >&2
    exit 1
}
