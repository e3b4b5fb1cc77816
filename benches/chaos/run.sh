#!/usr/bin/env bash
# The reliability scenarios as one command: builds the release binary, finds a nats-server, then runs
# the chaos driver (benches/src/bin/chaos), which prints a table of requests, failed requests and
# convergence per scenario. Arguments: scenarios (outage, outage-long, convergence); see
# benches/chaos/README.md. Bounded in time: every wait in the driver has a deadline.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/ensure-nats-server.sh
# One invocation, so that both binaries share one feature set and the proxy is built once.
cargo build --release --locked -p edgeplane-proxy --bin edgeplane -p edgeplane-benches --bin chaos
echo "== machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD)$(git diff --quiet || echo ', dirty')"
exec target/release/chaos "$@"
