//! edgeplane's benchmarks.
//!
//! The side-by-side load harness lives in `benches/load/` (a script: `benches/load/run.sh`) because it
//! drives external programs (wrk, nginx, HAProxy) rather than Rust code. Criterion micro benches of
//! balancer picks and table rebuilds join this crate with the balancing issue.
