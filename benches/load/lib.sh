# Shared set-up of the small load scripts (mirror-latency.sh, compression-cpu.sh); sourced from the
# repo root. bench_setup NAME: checks the tools, builds the release binary if missing, makes $TMP and
# a trap that kills every pid in PIDS and removes $TMP (kept with KEEP_TMP=1). free_ports N: N free
# loopback ports on one line.

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
