#!/usr/bin/env bash
# Side-by-side load benchmark: edgeplane vs nginx vs HAProxy as reverse
# proxies in front of the same two nginx backends. See benches/load/README.md.
#
# Layout (2-core machine): core 0 = the proxy under test (one worker each),
# core 1 = wrk (one thread) + the backend nginx (one worker).
#
# Environment:
#   PROXIES         proxies to run, in this order          (default "edgeplane edgeplane-pgo nginx haproxy")
#                   edgeplane is the plain `cargo build --release`; edgeplane-pgo the profile-guided
#                   build releases are made with (benches/load/pgo-build.sh, run first if missing)
#   DURATION        measured wrk run per cell              (default 10s)
#   WARMUP          unmeasured wrk run before each cell    (default 2s; 0 disables)
#   ROUNDS          times the whole interleaved sequence is repeated; the
#                   report shows medians over the rounds    (default 3)
#   OUT             also write the report to this file     (default: stdout only)
#   EDGEPLANE_METRICS  on: edgeplane has an admin listener and records metrics; off: neither
#                                                          (default on)
#   EDGEPLANE_BIN   edgeplane binary, relative to the repo root or absolute
#                                                          (default target/release/edgeplane)
#   EDGEPLANE_PGO_BIN  the profile-guided build, for edgeplane-pgo (default target/pgo/edgeplane,
#                   built with benches/load/pgo-build.sh when missing)
#   PROXY_CPU       core for the proxy under test          (default 0)
#   LOAD_CPU        core for wrk and the backends          (default 1)
#   CONNS           client connections per cell, e.g. "64 256 1024 10000" (default "64 256")
#   SIZES           response sizes, "2b" and/or "16k"      (default "2b 16k")
#   NGINX_UPSTREAM_KEEPALIVE  nginx "keepalive N" idle-connection cache (default 512)
#   READY_TIMEOUT   seconds to wait for each server        (default 20)
#   KEEP_TMP=1      keep the temp dir (configs, logs, raw wrk output)
#   TLS=1           the proxies terminate TLS (same EC P-256 certificate, TLS 1.2 and 1.3, ALPN
#                   http/1.1, no session resumption) and the scenarios become: keep-alive requests
#                   over TLS, and one new connection (full handshake) per request
set -euo pipefail

ORIG_PWD=$PWD
cd "$(dirname "$0")/../.."
REPO_ROOT=$PWD
LOAD_DIR=$REPO_ROOT/benches/load
# The source being measured: commit, and whether the tree differs from it.
CHECKOUT="$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo 'no commit')$(git -C "$REPO_ROOT" diff --quiet HEAD 2>/dev/null || echo ', dirty')"

PROXIES=${PROXIES:-"edgeplane edgeplane-pgo nginx haproxy"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-}
EDGEPLANE_BIN=${EDGEPLANE_BIN:-target/release/edgeplane}
EDGEPLANE_PGO_BIN=${EDGEPLANE_PGO_BIN:-target/pgo/edgeplane}
EDGEPLANE_METRICS=${EDGEPLANE_METRICS:-on}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
NGINX_UPSTREAM_KEEPALIVE=${NGINX_UPSTREAM_KEEPALIVE:-512}
READY_TIMEOUT=${READY_TIMEOUT:-20}
KEEP_TMP=${KEEP_TMP:-0}
TLS=${TLS:-0}

CONNS=${CONNS:-"64 256"}
SIZES=${SIZES:-"2b 16k"}

# Scenarios: "label path connections [close]" (close: a new connection per request); the label is
# two words.
SCENARIOS=()
for size in $SIZES; do
    case $size in
        2b) size_label="2 B" ;;
        16k) size_label="16 KiB" ;;
        *) printf '[load] error: SIZES takes 2b and 16k, got %s\n' "$size" >&2; exit 1 ;;
    esac
    for c in $CONNS; do
        [[ $c =~ ^[1-9][0-9]*$ ]] || { printf '[load] error: CONNS takes connection counts, got %s\n' "$c" >&2; exit 1; }
        SCENARIOS+=("$size_label/${c}c $size $c")
    done
done
SCHEME=http
if [ "$TLS" = 1 ]; then
    SCHEME=https
    SCENARIOS=(
        "TLS keep-alive/64c 2b 64"
        "TLS 16KiB/64c      16k 64"
        "TLS new-conn/64c   2b 64 close"
    )
fi

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] error: %s\n' "$*" >&2; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"

read -r -a PROXY_LIST <<<"$PROXIES"
[ "${#PROXY_LIST[@]}" -gt 0 ] || die "PROXIES is empty"
for p in "${PROXY_LIST[@]}"; do
    case $p in
        edgeplane | edgeplane-pgo | nginx | haproxy) ;;
        *) die "unknown proxy '$p' in PROXIES (known: edgeplane edgeplane-pgo nginx haproxy)" ;;
    esac
done
selected() {
    local p
    for p in "${PROXY_LIST[@]}"; do [ "$p" = "$1" ] && return 0; done
    return 1
}
case $OUT in '' | /*) ;; *) OUT=$ORIG_PWD/$OUT ;; esac

# --------------------------------------------------------------------------
# 1. Tools.

find_bin() { # name -> path on stdout, or nothing
    command -v "$1" 2>/dev/null && return 0
    local d
    for d in /usr/sbin /sbin /usr/local/sbin; do
        if [ -x "$d/$1" ]; then echo "$d/$1"; return 0; fi
    done
    return 0
}

# True while some process holds one of apt's/dpkg's lock files. Reads
# /proc/locks (apt uses fcntl locks), so it never takes a lock itself.
apt_locked() {
    local f dev ino key
    for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
        [ -e "$f" ] || continue
        read -r dev ino < <(stat -c "%d %i" "$f") || continue
        # /proc/locks names files as MAJOR:MINOR:INODE (hex, hex, decimal).
        key=$(printf '%02x:%02x:%d' $(((dev >> 8) & 0xfff)) $(((dev & 0xff) | ((dev >> 12) & 0xfff00))) "$ino")
        if awk -v key="$key" '{ for (i = 1; i <= NF; i++) if ($i == key) found = 1 } END { exit !found }' /proc/locks; then
            return 0
        fi
    done
    return 1
}

wait_for_apt() {
    local deadline=$((SECONDS + 1800)) said=0
    while apt_locked; do
        [ "$SECONDS" -lt "$deadline" ] || die "apt/dpkg lock still held after 30 min"
        if [ "$said" -eq 0 ]; then log "waiting for a concurrent apt/dpkg to release its lock..."; said=1; fi
        sleep 2
    done
}

missing_tools() { # prints the apt packages still needed
    local pkgs=()
    [ -n "$(find_bin wrk)" ] || pkgs+=(wrk)
    [ -n "$(find_bin nginx)" ] || pkgs+=(nginx-light)
    if selected haproxy && [ -z "$(find_bin haproxy)" ]; then pkgs+=(haproxy); fi
    [ -n "$(find_bin curl)" ] || pkgs+=(curl)
    [ -n "$(find_bin python3)" ] || pkgs+=(python3)
    [ -n "$(find_bin taskset)" ] || pkgs+=(util-linux)
    [ -n "$(find_bin pgrep)" ] || pkgs+=(procps)
    if [ "$TLS" = 1 ] && [ -z "$(find_bin openssl)" ]; then pkgs+=(openssl); fi
    echo "${pkgs[*]-}"
}

ensure_tools() {
    local need
    need=$(missing_tools)
    [ -n "$need" ] || return 0
    # Maybe a concurrent apt is installing them right now.
    wait_for_apt
    need=$(missing_tools)
    [ -n "$need" ] || return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages: $need (run as root, or install them)"
    log "installing: $need"
    local try pkgs
    read -r -a pkgs <<<"$need"
    for try in 1 2 3 4 5; do
        wait_for_apt
        if DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${pkgs[@]}" >&2; then
            break
        fi
        log "apt-get failed (attempt $try), retrying"
        sleep 3
    done
    need=$(missing_tools)
    [ -z "$need" ] || die "still missing after apt-get: $need"
}

ensure_tools
WRK=$(find_bin wrk)
NGINX=$(find_bin nginx)
HAPROXY=$(find_bin haproxy)
CURL=$(find_bin curl)
PYTHON=$(find_bin python3)

if selected edgeplane; then
    case $EDGEPLANE_BIN in /*) ;; *) EDGEPLANE_BIN=$REPO_ROOT/$EDGEPLANE_BIN ;; esac
    if [ ! -x "$EDGEPLANE_BIN" ]; then
        log "$EDGEPLANE_BIN not found; building it (cargo build --release)"
        cargo build --release -p edgeplane-proxy --bin edgeplane >&2
    fi
    [ -x "$EDGEPLANE_BIN" ] || die "edgeplane binary not found at $EDGEPLANE_BIN (set EDGEPLANE_BIN)"
fi
if selected edgeplane-pgo; then
    case $EDGEPLANE_PGO_BIN in /*) ;; *) EDGEPLANE_PGO_BIN=$REPO_ROOT/$EDGEPLANE_PGO_BIN ;; esac
    if [ ! -x "$EDGEPLANE_PGO_BIN" ] && [ "$EDGEPLANE_PGO_BIN" = "$REPO_ROOT/target/pgo/edgeplane" ]; then
        log "$EDGEPLANE_PGO_BIN not found; building it (benches/load/pgo-build.sh, two release builds)"
        "$LOAD_DIR/pgo-build.sh" >&2
    fi
    [ -x "$EDGEPLANE_PGO_BIN" ] || die "no profile-guided build at $EDGEPLANE_PGO_BIN (benches/load/pgo-build.sh makes one; or set EDGEPLANE_PGO_BIN)"
    # pgo-build.sh writes the source it built from beside the binary; nothing rebuilds it later.
    PGO_SOURCE=$(cat "$EDGEPLANE_PGO_BIN.source" 2>/dev/null || echo "unknown source")
    [ "$PGO_SOURCE" = "$CHECKOUT" ] ||
        log "warning: $EDGEPLANE_PGO_BIN was built from $PGO_SOURCE, the checkout is $CHECKOUT (rerun benches/load/pgo-build.sh)"
fi

NCPU=$(nproc)
for c in "$PROXY_CPU" "$LOAD_CPU"; do
    [ "$c" -lt "$NCPU" ] || die "core $c does not exist (nproc=$NCPU)"
done
[ "$PROXY_CPU" != "$LOAD_CPU" ] || log "warning: PROXY_CPU == LOAD_CPU; numbers will be meaningless"
HZ=$(getconf CLK_TCK)
# File descriptors for up to 10,000 client plus as many upstream connections per proxy, and wrk's.
# (root may raise the hard limit)
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
max_conns=0
for c in $CONNS; do [ "$c" -le "$max_conns" ] || max_conns=$c; done
[ "$(ulimit -n)" -ge $((max_conns + 1024)) ] || die "ulimit -n is $(ulimit -n): too low for $max_conns connections (raise the hard limit)"
[ "$(ulimit -n)" -ge $((2 * max_conns + 1024)) ] || log "warning: ulimit -n is $(ulimit -n): a proxy holding $max_conns client connections has room for $(( $(ulimit -n) - max_conns - 1024 )) upstream ones"


# --------------------------------------------------------------------------
# 2. Temp dir and cleanup.

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeplane-load.XXXXXX")
STARTED=() # PIDs of everything we start in the background
WRK_PID=

descendants() { # pid -> its descendants, one per line
    local c
    for c in $(pgrep -P "$1" 2>/dev/null || true); do
        echo "$c"
        descendants "$c"
    done
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local all=() pid deadline
    [ -n "$WRK_PID" ] && all+=("$WRK_PID")
    for pid in ${STARTED[@]+"${STARTED[@]}"}; do
        all+=("$pid")
        while read -r c; do [ -n "$c" ] && all+=("$c"); done < <(descendants "$pid")
    done
    if [ "${#all[@]}" -gt 0 ]; then
        kill -TERM "${all[@]}" 2>/dev/null
        deadline=$((SECONDS + 5))
        while [ "$SECONDS" -lt "$deadline" ]; do
            local alive=0
            for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            [ "$alive" -eq 1 ] || break
            sleep 0.1
        done
        kill -KILL "${all[@]}" 2>/dev/null
        wait 2>/dev/null
    fi
    if [ "$KEEP_TMP" = 1 ]; then
        log "kept $TMP"
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --------------------------------------------------------------------------
# 3. Ports, templates.

free_ports() { # n -> n distinct free loopback ports (kernel-chosen)
    "$PYTHON" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r BACKEND1_PORT BACKEND2_PORT STATUS_PORT EDGEPLANE_PORT NGINX_PORT HAPROXY_PORT ADMIN_PORT PGO_PORT PGO_ADMIN_PORT <<<"$(free_ports 9)"
declare -A PORT=([edgeplane]=$EDGEPLANE_PORT [edgeplane-pgo]=$PGO_PORT [nginx]=$NGINX_PORT [haproxy]=$HAPROXY_PORT)
declare -A PID=()

render() { # template output KEY=VALUE...
    local tmpl=$1 out=$2 s kv
    shift 2
    s=$(<"$tmpl")
    for kv in "$@"; do
        s=${s//"@${kv%%=*}@"/"${kv#*=}"}
    done
    if grep -Eo '@[A-Z0-9_]+@' <<<"$s" >&2; then die "unreplaced placeholder(s) in $tmpl"; fi
    printf '%s\n' "$s" >"$out"
}

USER_DIRECTIVE=""
[ "$(id -u)" -ne 0 ] || USER_DIRECTIVE="user root;" # workers must read files in $TMP
STATUS_SERVER=""
if "$NGINX" -V 2>&1 | grep -q http_stub_status_module; then
    STATUS_SERVER="    server { listen 127.0.0.1:$STATUS_PORT; location / { stub_status; } }"
fi

mkdir -p "$TMP/www" "$TMP/backend" "$TMP/nginx"
chmod 755 "$TMP"
printf 'ok' >"$TMP/www/2b"
head -c 16384 /dev/zero | tr '\0' 'x' >"$TMP/www/16k"

COMMON=(BACKEND1_PORT="$BACKEND1_PORT" BACKEND2_PORT="$BACKEND2_PORT" USER_DIRECTIVE="$USER_DIRECTIVE")
render "$LOAD_DIR/nginx-backend.conf.tmpl" "$TMP/backend/nginx.conf" "${COMMON[@]}" \
    DIR="$TMP/backend" WWW="$TMP/www" STATUS_SERVER="$STATUS_SERVER"
# TLS: one EC P-256 certificate for every proxy; equivalent settings (TLS 1.2 and 1.3, the libraries'
# default AEAD suites, X25519, ALPN http/1.1 as wrk speaks it, no session tickets or cache).
NGINX_LISTEN="" NGINX_TLS="" HAPROXY_BIND="" EDGEPLANE_TLS=""
if [ "$TLS" = 1 ]; then
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
        -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" 2>"$TMP/tls/openssl.log" || { tail -n 30 "$TMP/tls/openssl.log" >&2; die "openssl failed"; }
    cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/combined.pem"
    chmod 644 "$TMP/tls/"*.pem
    NGINX_LISTEN=" ssl"
    NGINX_TLS="ssl_certificate $TMP/tls/cert.pem; ssl_certificate_key $TMP/tls/key.pem; ssl_protocols TLSv1.2 TLSv1.3; ssl_ecdh_curve X25519:prime256v1; ssl_session_tickets off; ssl_session_cache off;"
    HAPROXY_BIND=" ssl crt $TMP/tls/combined.pem ssl-min-ver TLSv1.2 no-tls-tickets alpn http/1.1 curves X25519:P-256"
    EDGEPLANE_TLS=$(printf '[node.listeners.tls]\nalpn = ["http/1.1"]\n\n[[certificates]]\ncert = "%s"\nkey = "%s"' "$TMP/tls/cert.pem" "$TMP/tls/key.pem")
fi
render "$LOAD_DIR/nginx-proxy.conf.tmpl" "$TMP/nginx/nginx.conf" "${COMMON[@]}" \
    DIR="$TMP/nginx" PORT="$NGINX_PORT" NGINX_UPSTREAM_KEEPALIVE="$NGINX_UPSTREAM_KEEPALIVE" \
    NGINX_LISTEN="$NGINX_LISTEN" NGINX_TLS="$NGINX_TLS"
# HAProxy refuses to start when maxconn needs more file descriptors than the limit (two per
# connection): as many as the limit allows, at most 30,000.
HAPROXY_MAXCONN=$(( ($(ulimit -n) - 200) / 2 ))
[ "$HAPROXY_MAXCONN" -le 30000 ] || HAPROXY_MAXCONN=30000
[ "$HAPROXY_MAXCONN" -ge "$max_conns" ] || log "warning: HAProxy's maxconn is $HAPROXY_MAXCONN (file descriptor limit $(ulimit -n)): its $max_conns-connection cells leave some clients unserved"
render "$LOAD_DIR/haproxy.cfg.tmpl" "$TMP/haproxy.cfg" "${COMMON[@]}" PORT="$HAPROXY_PORT" HAPROXY_BIND="$HAPROXY_BIND" HAPROXY_MAXCONN="$HAPROXY_MAXCONN"
for v in edgeplane edgeplane-pgo; do
    admin_port=$ADMIN_PORT
    [ "$v" = edgeplane ] || admin_port=$PGO_ADMIN_PORT
    ADMIN_LINE=""
    [ "$EDGEPLANE_METRICS" = off ] || ADMIN_LINE="admin = \"127.0.0.1:$admin_port\""
    render "$LOAD_DIR/edgeplane.toml.tmpl" "$TMP/$v.toml" "${COMMON[@]}" PORT="${PORT[$v]}" \
        ADMIN_LINE="$ADMIN_LINE" EDGEPLANE_TLS="$EDGEPLANE_TLS"
done

# --------------------------------------------------------------------------
# 4./5. Start servers and wait until they answer.

show_log() { if [ -f "$1" ]; then tail -n 30 "$1" >&2; fi; }

wait_http() { # name pid url logfile
    local name=$1 pid=$2 url=$3 logf=$4 deadline=$((SECONDS + READY_TIMEOUT))
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$logf"
            die "$name exited during startup (log above)"
        fi
        "$CURL" -kfsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            show_log "$logf"
            die "$name not ready at $url after ${READY_TIMEOUT}s"
        fi
        sleep 0.05
    done
}

start_nginx() { # name dir cpu
    local name=$1 dir=$2 cpu=$3
    local args=(-p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf")
    "$NGINX" -t -q "${args[@]}" >"$dir/check.log" 2>&1 || {
        show_log "$dir/check.log"
        show_log "$dir/error.log"
        die "$name config invalid"
    }
    taskset -c "$cpu" "$NGINX" "${args[@]}" -g 'daemon off;' >"$dir/stdout.log" 2>&1 &
    STARTED+=("$!")
    PID[$name]=$!
}

log "temp dir $TMP; backends on :$BACKEND1_PORT :$BACKEND2_PORT (core $LOAD_CPU)"
start_nginx backend "$TMP/backend" "$LOAD_CPU"
wait_http "backend 1" "${PID[backend]}" "http://127.0.0.1:$BACKEND1_PORT/2b" "$TMP/backend/error.log"
wait_http "backend 2" "${PID[backend]}" "http://127.0.0.1:$BACKEND2_PORT/2b" "$TMP/backend/error.log"

start_proxy() { # name
    case $1 in
        nginx)
            start_nginx nginx "$TMP/nginx" "$PROXY_CPU"
            LOGF[nginx]=$TMP/nginx/error.log
            ;;
        haproxy)
            "$HAPROXY" -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy.check.log" 2>&1 || { show_log "$TMP/haproxy.check.log"; die "haproxy config invalid"; }
            taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$TMP/haproxy.cfg" >"$TMP/haproxy.log" 2>&1 &
            STARTED+=("$!")
            PID[haproxy]=$!
            LOGF[haproxy]=$TMP/haproxy.log
            ;;
        edgeplane | edgeplane-pgo)
            local bin=$EDGEPLANE_BIN
            [ "$1" = edgeplane ] || bin=$EDGEPLANE_PGO_BIN
            RUST_LOG=warn taskset -c "$PROXY_CPU" "$bin" run --config "$TMP/$1.toml" >"$TMP/$1.log" 2>&1 &
            STARTED+=("$!")
            PID[$1]=$!
            LOGF[$1]=$TMP/$1.log
            ;;
    esac
}

# Sanity checks through a proxy: bodies are intact, both backends are used.
check_proxy() { # name
    local name=$1 base="$SCHEME://127.0.0.1:${PORT[$1]}" n seen b
    n=$("$CURL" -kfsS --max-time 5 "$base/16k" | wc -c) || die "$name: GET /16k failed"
    [ "$n" -eq 16384 ] || die "$name: /16k returned $n bytes, want 16384"
    b=$("$CURL" -kfsS --max-time 5 "$base/2b") || die "$name: GET /2b failed"
    [ "$b" = ok ] || die "$name: /2b returned '$b', want 'ok'"
    seen=""
    for _ in 1 2 3 4 5 6; do
        b=$("$CURL" -kfsS --max-time 5 -o /dev/null -D - "$base/2b" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-backend" { print $2 }') || true
        case " $seen " in *" $b "*) ;; *) seen="$seen $b" ;; esac
    done
    case "$seen" in
        *1*2* | *2*1*) ;;
        *) log "warning: $name sent 6 requests to backend(s)$seen only; round robin not working?" ;;
    esac
}

declare -A LOGF=()
for p in "${PROXY_LIST[@]}"; do
    start_proxy "$p"
    wait_http "$p" "${PID[$p]}" "$SCHEME://127.0.0.1:${PORT[$p]}/2b" "${LOGF[$p]}"
    check_proxy "$p"
    log "$p ready on :${PORT[$p]} (pid ${PID[$p]}, core $PROXY_CPU)"
done

# --------------------------------------------------------------------------
# 6. Measure.

proc_pids() { # name -> PIDs whose CPU time counts for it (nginx: master + workers)
    echo "${PID[$1]}"
    if [ "$1" = nginx ]; then descendants "${PID[$1]}"; fi
}

user_ticks() { # pids... -> sum of utime (field 14 of /proc/PID/stat)
    local pid s f total=0
    for pid in "$@"; do
        s=$(<"/proc/$pid/stat") || die "process $pid vanished"
        s=${s##*) }
        read -r -a f <<<"$s"
        total=$((total + f[11]))
    done
    echo "$total"
}

cpu_ticks() { # pids... -> sum of utime+stime (fields 14, 15 of /proc/PID/stat)
    local pid s f total=0
    for pid in "$@"; do
        s=$(<"/proc/$pid/stat") || die "process $pid vanished"
        s=${s##*) } # drop "pid (comm) "; field 3 (state) is now f[0]
        read -r -a f <<<"$s"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

core_ticks() { # core -> "busy total" jiffies of that core, from /proc/stat
    awk -v c="cpu$1" '$1 == c { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

busy_pct() { # "busy0 total0" "busy1 total1" -> percentage
    local b0 t0 b1 t1
    read -r b0 t0 <<<"$1"
    read -r b1 t1 <<<"$2"
    awk -v b="$((b1 - b0))" -v t="$((t1 - t0))" 'BEGIN { if (t > 0) printf "%.0f%%", 100 * b / t; else print "n/a" }'
}

backend_accepts() { # -> connections accepted so far by the backend nginx, or empty
    [ -n "$STATUS_SERVER" ] || return 0
    "$CURL" -fsS --max-time 2 "http://127.0.0.1:$STATUS_PORT/" 2>/dev/null | awk 'NR == 3 { print $1 }' || true
}

run_wrk() { # duration conns url outfile [close] -> wrk's exit status
    local rc=0 extra=()
    [ "${5:-}" != close ] || extra=(-H "Connection: close")
    taskset -c "$LOAD_CPU" "$WRK" -t1 -c"$2" -d"$1" --latency ${extra[@]+"${extra[@]}"} "$3" >"$4" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    return "$rc"
}

# wrk latency lines ("50%  612.00us", "99%  3.45ms", "1.02s") -> microseconds.
lat_us() { # percentile-label wrk-output -> µs, or nothing
    awk -v k="$1" '$1 == k {
        v = $2
        if (!match(v, /^[0-9.]+/)) exit
        n = substr(v, 1, RLENGTH) + 0; u = substr(v, RLENGTH + 1)
        if (u == "us") m = 1; else if (u == "ms") m = 1e3; else if (u == "s") m = 1e6
        else if (u == "m") m = 6e7; else if (u == "h") m = 3.6e9; else exit
        printf "%.2f\n", n * m; exit
    }' "$2"
}

fmt_lat() { # µs -> wrk-style "612.00us" / "3.45ms" / "1.02s"
    awk -v u="$1" 'BEGIN {
        if (u == "") print "n/a"
        else if (u < 1000) printf "%.2fus\n", u
        else if (u < 1e6) printf "%.2fms\n", u / 1e3
        else printf "%.2fs\n", u / 1e6
    }'
}

stats() { # values... -> "median min max" (non-numbers such as n/a are skipped), or nothing
    awk 'BEGIN {
        n = 0
        for (i = 1; i < ARGC; i++) if (ARGV[i] ~ /^[0-9]+(\.[0-9]*)?$/) x[++n] = ARGV[i] + 0
        if (n == 0) exit
        for (i = 2; i <= n; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
        # Even count: the mean of the two middle values.
        med = (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
        printf "%.6f %.6f %.6f\n", med, x[1], x[n]
    }' "$@"
}

# Per cell (proxy,scenario) and round r: RPS/P50/P99 (µs)/CPU (µs per request,
# or n/a), error counts, FAIL (wrk's exit status if it failed), RAW table row.
declare -A RPS=() P50=() P99=() CPU=() NON2XX=() SOCK=() FAIL=() RAW=() UPK=()
NS=${#SCENARIOS[@]}
NP=${#PROXY_LIST[@]}
for ((r = 0; r < ROUNDS; r++)); do
    log "round $((r + 1))/$ROUNDS"
    for ((si = 0; si < NS; si++)); do
        read -r label1 label2 path conns mode <<<"${SCENARIOS[si]}"
        label="$label1 $label2"
        for ((k = 0; k < NP; k++)); do
            # Interleave, and rotate who goes first (per scenario and per
            # round), so drift hits everyone alike and no proxy is always first.
            p=${PROXY_LIST[(si + r + k) % NP]}
            url="$SCHEME://127.0.0.1:${PORT[$p]}/$path"
            out="$TMP/wrk-$p-$path-$conns-r$((r + 1)).txt"
            log "$p: $label ($url) [round $((r + 1))/$ROUNDS]"
            case $WARMUP in
                0 | 0s | "") ;;
                *) run_wrk "$WARMUP" "$conns" "$url" "$out.warmup" "$mode" || log "warning: warmup wrk exited non-zero" ;;
            esac
            read -r -a pids <<<"$(proc_pids "$p" | tr '\n' ' ')"
            acc0=$(backend_accepts)
            c0=$(core_ticks "$PROXY_CPU") l0=$(core_ticks "$LOAD_CPU")
            t0=$(cpu_ticks "${pids[@]}") u0=$(user_ticks "${pids[@]}")
            wrc=0
            run_wrk "$DURATION" "$conns" "$url" "$out" "$mode" || wrc=$?
            t1=$(cpu_ticks "${pids[@]}") u1=$(user_ticks "${pids[@]}")
            c1=$(core_ticks "$PROXY_CPU") l1=$(core_ticks "$LOAD_CPU")
            acc1=$(backend_accepts)
            kill -0 "${PID[$p]}" 2>/dev/null || { show_log "${LOGF[$p]}"; die "$p died during the run"; }
            cell="$p,$si,$r"
            if [ "$wrc" -ne 0 ]; then
                show_log "$out"
                log "  -> wrk failed (exit $wrc)"
                FAIL[$cell]=$wrc
                RAW[$cell]="| $p | $label | $((r + 1)) | wrk failed (exit $wrc) | | | | | | | |"
                continue
            fi
            reqs=$(awk '/ requests in / { print $1; exit }' "$out")
            wall=$(awk '/ requests in / { sub(/,$/, "", $4); print $4; exit }' "$out")
            rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
            p50=$(awk '$1 == "50%" { print $2 }' "$out")
            p99=$(awk '$1 == "99%" { print $2 }' "$out")
            # Socket errors as "connect read write timeout".
            sock=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + 0, $6 + 0, $8 + 0, $10 + 0 }' "$out")
            non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
            sock=${sock:-0 0 0 0} non2xx=${non2xx:-0}
            dt=$((t1 - t0))
            read -r cpu_us cpu_s cpu_pct <<<"$(awk -v dt="$dt" -v hz="$HZ" -v n="${reqs:-0}" -v wall="$wall" 'BEGIN {
                s = dt / hz; w = wall + 0
                if (wall ~ /ms$/) w /= 1000; else if (wall ~ /m$/) w *= 60
                printf "%s %.2f %s\n", (n > 0 ? sprintf("%.1f", s * 1e6 / n) : "n/a"), s, (w > 0 ? sprintf("%.0f%%", 100 * s / w) : "n/a")
            }')"
            # (minus 1: the second stub_status request is itself a new connection)
            if [ -n "$acc0" ] && [ -n "$acc1" ]; then upconns=$((acc1 - acc0 - 1)); else upconns=n/a; fi
            UPK[$cell]=$(awk -v u="$upconns" -v n="${reqs:-0}" 'BEGIN { if (u ~ /^-?[0-9]+$/ && n > 0) printf "%.2f\n", (u < 0 ? 0 : u) * 1000 / n; else print "n/a" }')
            RPS[$cell]=$rps
            P50[$cell]=$(lat_us 50% "$out")
            P99[$cell]=$(lat_us 99% "$out")
            CPU[$cell]=$cpu_us
            NON2XX[$cell]=$non2xx
            SOCK[$cell]=$sock
            user_us=$(awk -v u=$((u1 - u0)) -v hz="$HZ" -v n="${reqs:-0}" 'BEGIN { if (n > 0) printf "%.1f", u / hz * 1e6 / n; else print "n/a" }')
            RAW[$cell]="| $p | $label | $((r + 1)) | $reqs | $wall | $cpu_s | $cpu_pct | $user_us | $(busy_pct "$c0" "$c1") | $(busy_pct "$l0" "$l1") | $upconns |"
            if [ "$sock" = "0 0 0 0" ] && [ "$non2xx" -eq 0 ]; then errs=0; else errs="non-2xx $non2xx, socket c/r/w/t ${sock// //}"; fi
            log "  -> $rps req/s, p50 $p50, p99 $p99, $cpu_us µs CPU/req, errors: $errs"
        done
    done
done

# --------------------------------------------------------------------------
# 7. Report.

# Medians over the rounds whose wrk run succeeded.
declare -A ROW=() MED_CPU=()
for ((si = 0; si < NS; si++)); do
    read -r label1 label2 _ _ <<<"${SCENARIOS[si]}"
    label="$label1 $label2"
    for p in "${PROXY_LIST[@]}"; do
        rps_v=() p50_v=() p99_v=() cpu_v=() upk_v=()
        nfail=0 lastfail=0 non2xx=0 sc=0 sr=0 sw=0 st=0
        for ((r = 0; r < ROUNDS; r++)); do
            cell="$p,$si,$r"
            if [ -n "${FAIL[$cell]-}" ]; then
                nfail=$((nfail + 1)) lastfail=${FAIL[$cell]}
                continue
            fi
            rps_v+=("${RPS[$cell]}") p50_v+=("${P50[$cell]}") p99_v+=("${P99[$cell]}") cpu_v+=("${CPU[$cell]}") upk_v+=("${UPK[$cell]}")
            read -r e_c e_r e_w e_t <<<"${SOCK[$cell]}"
            non2xx=$((non2xx + ${NON2XX[$cell]})) sc=$((sc + e_c)) sr=$((sr + e_r)) sw=$((sw + e_w)) st=$((st + e_t))
        done
        if [ "$nfail" -eq "$ROUNDS" ]; then
            ROW[$p,$si]="| $p | $label | n/a | n/a | n/a | n/a | n/a |@VS@ n/a | wrk failed in all $ROUNDS rounds (last exit $lastfail) |"
            continue
        fi
        read -r rps _ _ <<<"$(stats ${rps_v[@]+"${rps_v[@]}"})"
        read -r p50 _ _ <<<"$(stats ${p50_v[@]+"${p50_v[@]}"})"
        read -r p99 _ _ <<<"$(stats ${p99_v[@]+"${p99_v[@]}"})"
        read -r cpu cmin cmax <<<"$(stats ${cpu_v[@]+"${cpu_v[@]}"})"
        read -r upk _ _ <<<"$(stats ${upk_v[@]+"${upk_v[@]}"})"
        upk=$([ -n "$upk" ] && printf '%.2f' "$upk" || echo n/a)
        MED_CPU[$p,$si]=${cpu:-}
        rps=$([ -n "$rps" ] && printf '%.0f' "$rps" || echo n/a)
        if [ -n "$cpu" ]; then
            cpu_s=$(printf '%.1f' "$cpu") range=$(printf '%.1f–%.1f' "$cmin" "$cmax")
        else
            cpu_s=n/a range=n/a
        fi
        sockerr=$((sc + sr + sw + st))
        if [ "$sockerr" -eq 0 ] && [ "$non2xx" -eq 0 ]; then
            errs=0
        else
            errs="non-2xx $non2xx, socket $sockerr (c$sc/r$sr/w$sw/t$st)"
        fi
        [ "$nfail" -eq 0 ] || errs="$errs; wrk failed in $nfail of $ROUNDS rounds (exit $lastfail)"
        # @VS@ is filled in below, once nginx's median is known.
        ROW[$p,$si]="| $p | $label | $rps | $(fmt_lat "$p50") | $(fmt_lat "$p99") | $cpu_s | $range |@VS@ $upk | $errs |"
    done
done

VS_NGINX=0
if selected nginx; then VS_NGINX=1; fi
for ((si = 0; si < NS; si++)); do
    for p in "${PROXY_LIST[@]}"; do
        vs=""
        if [ "$VS_NGINX" -eq 1 ]; then
            vs=" $(awk -v a="${MED_CPU[$p,$si]-}" -v b="${MED_CPU[nginx,$si]-}" 'BEGIN {
                if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.0f%%\n", 100 * a / b
            }') |"
        fi
        ROW[$p,$si]=${ROW[$p,$si]/"@VS@"/"$vs"}
    done
done

ver_nginx=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
ver_haproxy=$( ([ -n "$HAPROXY" ] && "$HAPROXY" -v 2>/dev/null | head -n 1) || echo "n/a")
ver_wrk=$("$WRK" -v 2>&1 | head -n 1 | sed 's/ Copyright.*//' || true)
ver_edgeplane=n/a
if selected edgeplane || selected edgeplane-pgo; then
    ver_bin=$EDGEPLANE_BIN
    selected edgeplane || ver_bin=$EDGEPLANE_PGO_BIN
    ver_edgeplane=$(timeout 5 "$ver_bin" --version 2>/dev/null | head -n 1 || true)
    ver_edgeplane="${ver_edgeplane:-unknown} ($CHECKOUT)"
    if selected edgeplane-pgo; then ver_edgeplane="$ver_edgeplane; edgeplane-pgo: $EDGEPLANE_PGO_BIN, built from $PGO_SOURCE"; fi
fi
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)

{
    echo "### Load benchmark: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- host: nproc=$NCPU, CPU: ${cpu_model:-unknown}, kernel $(uname -r)"
    echo "- nginx: $ver_nginx; haproxy: $ver_haproxy; wrk: $ver_wrk; edgeplane: $ver_edgeplane"
    echo "- proxy under test pinned to core $PROXY_CPU with one worker; wrk -t1 and the backend nginx (1 worker, 2 ports) pinned to core $LOAD_CPU"
    echo "- each cell: ${WARMUP} warmup, then wrk for ${DURATION}; proxies interleaved per scenario, first proxy rotating per scenario and per round; proxies: ${PROXY_LIST[*]}"
    echo "- $ROUNDS round(s); the table shows medians over the rounds, the min–max of CPU µs/req (range) and the errors summed over all rounds"
    echo
    if [ "$VS_NGINX" -eq 1 ]; then
        echo "| proxy | scenario | req/s (median) | p50 (median) | p99 (median) | CPU µs/req (median) | range | vs nginx | upstream connects per 1k requests (median) | errors (total) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    else
        echo "| proxy | scenario | req/s (median) | p50 (median) | p99 (median) | CPU µs/req (median) | range | upstream connects per 1k requests (median) | errors (total) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---|"
    fi
    for ((si = 0; si < NS; si++)); do
        for p in "${PROXY_LIST[@]}"; do echo "${ROW[$p,$si]}"; done
    done
    echo
    echo "<details><summary>raw counts</summary>"
    echo
    echo "| proxy | scenario | round | requests | wall | proxy CPU s | proxy CPU % | of it user space, µs/req | core $PROXY_CPU busy | core $LOAD_CPU busy | backend conns opened |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for ((si = 0; si < NS; si++)); do
        for p in "${PROXY_LIST[@]}"; do
            for ((r = 0; r < ROUNDS; r++)); do echo "${RAW[$p,$si,$r]}"; done
        done
    done
    echo
    echo "</details>"
} >"$TMP/report.md"

cat "$TMP/report.md"
if [ -n "$OUT" ]; then
    cp "$TMP/report.md" "$OUT"
    log "report written to $OUT"
fi
