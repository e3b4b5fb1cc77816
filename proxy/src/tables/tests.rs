use super::*;

#[test]
fn a_certificate_reload_never_undoes_an_applied_routing() {
    let tables = Arc::new(Tables::new(
        Snapshot::build(&routing(&["127.0.0.1:1"], "round_robin"), None).unwrap(),
    ));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reloader = {
        let (tables, done) = (tables.clone(), done.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tables.reload_certificates().unwrap();
                n += 1;
            }
            n
        })
    };
    for port in 2..300u16 {
        let applied = tables
            .apply(&routing(&[&format!("127.0.0.1:{port}")], "round_robin"))
            .unwrap();
        // A reload that loaded the snapshot before this apply and stored after it would show
        // the previous routing here.
        for _ in 0..100 {
            assert_eq!(tables.load().hash, applied.hash, "routing {port} undone");
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reloader.join().unwrap() > 0);
}

fn routing(endpoints: &[&str], policy: &str) -> Routing {
    let eps: String = endpoints
        .iter()
        .map(|a| format!("[[clusters.c.endpoints]]\naddress = \"{a}\"\n"))
        .collect();
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n\
         [clusters.c]\nbalancing = \"{policy}\"\n{eps}"
    );
    edgeplane_config::from_toml(&text).unwrap().routing
}

#[test]
fn endpoint_state_survives_rebuilds_when_identity_is_kept() {
    let tables = Tables::new(
        Snapshot::build(
            &routing(&["127.0.0.1:1", "127.0.0.1:2"], "round_robin"),
            None,
        )
        .unwrap(),
    );
    let first = tables.load();
    let kept = first.clusters[0].endpoints[0].upstream.clone();
    let _in_flight = kept.start_request();
    kept.record_success(std::time::Duration::from_millis(5));

    // A new version: other policy, one endpoint removed, one added.
    let next = tables
        .apply(&routing(
            &["127.0.0.1:1", "127.0.0.1:3"],
            "least_connections",
        ))
        .unwrap();
    assert_eq!(next.generation, 2);
    let ep = &next.clusters[0].endpoints[0];
    assert!(
        Arc::ptr_eq(&ep.upstream, &kept),
        "same identity, same live state"
    );
    assert_eq!(ep.upstream.in_flight(), 1);
    assert!(ep.upstream.ewma_latency().is_some());
    let added = &next.clusters[0].endpoints[1];
    assert_eq!(added.upstream.address, "127.0.0.1:3".parse().unwrap());
    assert_eq!(added.upstream.in_flight(), 0);
    // The old snapshot is untouched for requests that still hold it.
    assert_eq!(
        first.clusters[0].endpoints[1].upstream.address,
        "127.0.0.1:2".parse().unwrap()
    );
}

#[test]
fn balancers_are_reused_while_their_endpoints_stay_the_same() {
    let tables = Tables::new(
        Snapshot::build(&routing(&["127.0.0.1:1", "127.0.0.1:2"], "maglev"), None).unwrap(),
    );
    let first = tables.load();
    let same = tables
        .apply(&routing(&["127.0.0.1:1", "127.0.0.1:2"], "maglev"))
        .unwrap();
    assert!(Arc::ptr_eq(
        &first.clusters[0].balancer,
        &same.clusters[0].balancer
    ));
    let other_policy = tables
        .apply(&routing(&["127.0.0.1:1", "127.0.0.1:2"], "ring_hash"))
        .unwrap();
    assert!(!Arc::ptr_eq(
        &same.clusters[0].balancer,
        &other_policy.clusters[0].balancer
    ));
    let changed = tables
        .apply(&routing(&["127.0.0.1:1", "127.0.0.1:3"], "ring_hash"))
        .unwrap();
    assert!(!Arc::ptr_eq(
        &other_policy.clusters[0].balancer,
        &changed.clusters[0].balancer
    ));
}

#[test]
fn only_the_best_priority_is_a_candidate() {
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\npriority = 1\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n";
    let routing = edgeplane_config::from_toml(text).unwrap().routing;
    let snap = Snapshot::build(&routing, None).unwrap();
    let c = &snap.clusters[0];
    assert_eq!(c.candidates, 1);
    for _ in 0..4 {
        assert_eq!(c.pick().unwrap().upstream.address.port(), 2);
    }
}

#[test]
fn picks_skip_unusable_endpoints_then_fail_over_to_backups() {
    use edgeplane_controller::LiveEndpoint;
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
        balancing = \"weighted_round_robin\"\nhealth_threshold = 50\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\nweight = 100\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:3\"\npriority = 1\n";
    let routing = edgeplane_config::from_toml(text).unwrap().routing;
    let snap = Snapshot::build(&routing, None).unwrap();
    let c = &snap.clusters[0];
    let port = || c.pick().map(|e| e.upstream.address.port());
    let up = |i: usize| &c.endpoints[i].upstream;
    // The heavy endpoint below the threshold: every pick goes to the other primary.
    up(0).set_health(49);
    assert!((0..50).all(|_| port() == Some(2)));
    // The other one draining too: the backup serves.
    up(1).set_draining(true);
    assert!((0..5).all(|_| port() == Some(3)));
    // The backup down as well: nothing is usable.
    up(2).set_health(0);
    assert_eq!(port(), None);
    up(0).set_health(50);
    assert_eq!(port(), Some(1), "at the threshold is usable");
}

#[test]
fn a_hashed_key_moves_the_same_way_on_every_node_when_its_endpoint_is_out() {
    use edgeplane_controller::LiveEndpoint;
    let eps: String = (1..=5)
        .map(|p| format!("[[clusters.c.endpoints]]\naddress = \"127.0.0.1:{p}\"\n"))
        .collect();
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         balancing = \"maglev\"\n{eps}"
    );
    let routing = edgeplane_config::from_toml(&text).unwrap().routing;
    let (a, b) = (
        Snapshot::build(&routing, None).unwrap(),
        Snapshot::build(&routing, None).unwrap(),
    );
    let port = |s: &Snapshot, key| {
        s.clusters[0]
            .pick_for(Some(key))
            .map(|e| e.upstream.address.port())
    };
    let key = crate::tables::balancer::hashing::stable_hash(b"user-7");
    let owner = port(&a, key).unwrap();
    assert_eq!(port(&b, key), Some(owner));
    for s in [&a, &b] {
        let e = s.clusters[0]
            .endpoints
            .iter()
            .find(|e| e.upstream.address.port() == owner)
            .unwrap();
        e.upstream.set_health(0);
    }
    let moved = port(&a, key).unwrap();
    assert_ne!(moved, owner);
    assert_eq!(
        port(&b, key),
        Some(moved),
        "both nodes move the key to the same endpoint"
    );
}
