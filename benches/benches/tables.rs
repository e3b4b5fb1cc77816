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
        (1, 10_000, "ring_hash"),
        (1, 10_000, "maglev"),
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
    // A change elsewhere (a small cluster's endpoint) while a 10,000-endpoint hashing cluster stays
    // the same: its balancer is reused, not rebuilt.
    for policy in ["ring_hash", "maglev"] {
        let with_small = |salt: u16| {
            let text = format!(
                "{}[[routes]]\nname = \"small\"\npath_prefix = \"/small/\"\ncluster = \"small\"\n\
                 [clusters.small]\n[[clusters.small.endpoints]]\naddress = \"10.9.9.9:{}\"\n",
                edgeplane_benches::routing_text(1, 10_000, policy, 0),
                1_000 + salt
            );
            edgeplane_config::document_from_text(&text)
                .map_err(|e| e.to_string())
                .expect("bench document is valid")
        };
        let (a, b) = (with_small(0), with_small(1));
        let tables = Tables::new(Snapshot::build(&a, None).expect("builds"));
        let mut flip = false;
        group.bench_function(
            BenchmarkId::new(policy, "1x10000_unchanged_plus_1_changed"),
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
    for policy in [
        "round_robin",
        "weighted_round_robin",
        "least_connections",
        "least_response_time",
        "power_of_two",
        "random",
        "ring_hash",
        "maglev",
        "adaptive",
    ] {
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

/// A membership rebuild at 10,000 self-registered instances: the composer lays the membership over
/// the document (compose), the proxy builds and swaps the snapshot, and the composer relearns the live
/// endpoints and rewrites their health (refresh). This is what a coalesced join or leave costs.
fn membership_rebuild(c: &mut Criterion) {
    use edgeplane_bus::wire::Heartbeat;
    use edgeplane_controller::composer::Composer;
    use edgeplane_controller::RoutingSink;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let doc = |port: u16| {
        let text = format!(
            "[[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"api\"\n\
             [clusters.api]\nself_registration = true\n\
             [[clusters.api.endpoints]]\naddress = \"127.0.0.1:{port}\"\n"
        );
        edgeplane_config::from_toml(&text).expect("bench config is valid")
    };
    let config = doc(1);
    let (a, b) = (config.routing.clone(), doc(2).routing);
    let node = rt
        .block_on(edgeplane_proxy::NodeHandle::start(&config))
        .expect("node starts");
    let composer = Composer::new(node.sink(), a.clone(), std::time::Duration::from_secs(10));
    for i in 0..10_000u32 {
        let hb = Heartbeat {
            schema: 1,
            instance: format!("i-{i}"),
            boot_id: "b".into(),
            seq: 1,
            address: format!("127.1.{}.{}:8080", i >> 8, i & 0xff),
            weight: 1,
            zone: None,
            health: 100,
            in_flight: 0,
            cpu: 0.0,
            latency_ms: 0.0,
            ttl_ms: 600_000,
            draining: false,
        };
        composer.heartbeat("api", &hb);
    }
    composer.apply(&b).expect("applies");
    assert_eq!(node.tables().load().clusters[0].endpoints.len(), 10_001);
    let mut flip = false;
    c.bench_function("membership_rebuild/10000_instances", |bench| {
        bench.iter(|| {
            flip = !flip;
            black_box(composer.apply(if flip { &a } else { &b }).expect("applies"));
        })
    });
    drop(rt);
}

criterion_group!(benches, rebuild, pick, membership_rebuild);
criterion_main!(benches);
