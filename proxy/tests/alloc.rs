//! Picks allocate nothing: dhat's counting global allocator watches every policy's pick, keyed
//! picks, affinity lookups and picks across priority levels.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgeplane_proxy::tables::Snapshot;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn snapshot(policy: &str, extra: &str) -> Snapshot {
    let eps: String = (1..=100u16)
        .map(|p| {
            format!(
                "[[clusters.c.endpoints]]\naddress = \"127.0.0.1:{p}\"\nweight = {}\npriority = {}\n",
                1 + p % 3,
                u8::from(p > 90)
            )
        })
        .collect();
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n\
         [clusters.c]\nbalancing = \"{policy}\"\nslow_start = \"1m\"\n{extra}\n{eps}"
    );
    Snapshot::build(&edgeplane_config::from_toml(&text).unwrap().routing, None).unwrap()
}

#[test]
fn picks_do_not_allocate() {
    let affinity = "[clusters.c.affinity]\ncookie = \"ep\"\n";
    let mut snapshots = Vec::new();
    for policy in edgeplane_config::model::Balancing::ALL {
        snapshots.push((policy, snapshot(policy.as_str(), affinity)));
    }
    // Split traffic over both priority levels and put one endpoint into its slow-start ramp, so that
    // those paths are measured too.
    for (_, s) in &snapshots {
        let c = &s.clusters[0];
        c.state.set_levels(&[600, 400]);
        c.endpoints[5].upstream.start_warming();
    }
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::COOKIE, "ep=0123456789abcdef".parse().unwrap());
    let mut sink = 0usize;
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    for (_, s) in &snapshots {
        let c = &s.clusters[0];
        for i in 0..10_000u64 {
            sink += c.pick().map_or(0, |e| e.weight as usize);
            sink += c
                .pick_for(Some(i.wrapping_mul(0x9e37_79b9)))
                .map_or(0, |e| e.weight as usize);
            let token = c.affinity.as_ref().and_then(|a| a.requested(&headers));
            sink += c.pick_affine(token, None).map_or(0, |e| e.weight as usize);
        }
    }
    let allocated = dhat::HeapStats::get().total_blocks - before.total_blocks;
    assert!(sink > 0);
    let policies: Vec<_> = snapshots.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        allocated, 0,
        "30,000 picks of each of {policies:?} allocated"
    );
}
