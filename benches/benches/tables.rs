#![allow(clippy::expect_used)] // A bench that cannot build its input has nothing to measure.

//! What does it cost to rebuild and swap the routing tables at 10,000 endpoints (target ≤ 2 ms), and
//! what does one balancer pick cost at 3, 100 and 10,000 endpoints?

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edgeplane_benches::routing_text;
use edgeplane_proxy::tables::{Snapshot, Tables};
use std::hint::black_box;

fn routing(
    clusters: usize,
    per_cluster: usize,
    policy: &str,
    salt: u16,
) -> edgeplane_config::Routing {
    edgeplane_config::document_from_text(&routing_text(clusters, per_cluster, policy, salt))
        .map_err(|e| e.to_string())
        .expect("bench document is valid")
}

fn rebuild(c: &mut Criterion) {
    let mut group = c.benchmark_group("rebuild_and_swap");
    for (clusters, per, policy) in [
        (1, 10_000, "round_robin"),
        (1, 10_000, "weighted_round_robin"),
        (100, 100, "weighted_round_robin"),
    ] {
        let a = routing(clusters, per, policy, 0);
        let b = routing(clusters, per, policy, 1);
        let tables = Tables::new(Snapshot::build(&a, None).expect("builds"));
        let mut flip = false;
        group.bench_function(
            BenchmarkId::new(policy, format!("{clusters}x{per}")),
            |bench| {
                bench.iter(|| {
                    flip = !flip;
                    black_box(tables.apply(if flip { &b } else { &a }).expect("applies"));
                })
            },
        );
    }
    group.finish();
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for policy in ["round_robin", "weighted_round_robin", "least_connections"] {
        for n in [3, 100, 10_000] {
            let snap = Snapshot::build(&routing(1, n, policy, 0), None).expect("builds");
            let cluster = &snap.clusters[0];
            group.bench_function(BenchmarkId::new(policy, n), |bench| {
                bench.iter(|| black_box(cluster.pick()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, rebuild, pick);
criterion_main!(benches);
