use super::*;
use edgeplane_bus::wire::{ScaleAction, ScaleEvent};

fn routing(self_registration: bool, statics: &[&str]) -> Routing {
    let eps: String = statics
        .iter()
        .map(|a| format!("[[clusters.api.endpoints]]\naddress = \"{a}\"\n"))
        .collect();
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"api\"\n\
         [clusters.api]\nself_registration = {self_registration}\nremove_after = \"5s\"\n{eps}"
    );
    edgeplane_config::from_toml(&text).unwrap().routing
}

fn hb(instance: &str, boot: &str, seq: u64, address: &str) -> Heartbeat {
    Heartbeat {
        schema: 1,
        instance: instance.into(),
        boot_id: boot.into(),
        seq,
        address: address.into(),
        weight: 1,
        zone: None,
        health: 100,
        in_flight: 3,
        cpu: 0.5,
        latency_ms: 2.0,
        ttl_ms: 1000,
        draining: false,
    }
}

fn beat(m: &mut Membership, h: &Heartbeat, now: Instant) -> HeartbeatOutcome {
    m.heartbeat("api", h, h.address.parse().unwrap(), now)
}

fn addresses(m: &Membership, base: &Routing) -> Vec<String> {
    let mut out: Vec<String> = m.compose(base).clusters[0]
        .endpoints
        .iter()
        .map(|e| format!("{}/{}", e.address, e.weight))
        .collect();
    out.sort();
    out
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn event(id: &str, action: ScaleAction) -> ScaleEvent {
    ScaleEvent {
        schema: 1,
        id: id.into(),
        action,
    }
}

const IDLE: &dyn Fn(&str, SocketAddr) -> u32 = &|_, _| 0;
const BUSY: &dyn Fn(&str, SocketAddr) -> u32 = &|_, _| 1;

#[test]
fn an_unknown_instance_joins_once_then_updates_in_place() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    assert_eq!(
        beat(&mut m, &hb("i-1", "b", 1, "127.0.0.1:9001"), t),
        HeartbeatOutcome::Changed
    );
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/1"]);
    let mut h = hb("i-1", "b", 2, "127.0.0.1:9001");
    h.health = 40;
    match beat(&mut m, &h, t) {
        HeartbeatOutcome::Updated(u) => {
            assert_eq!((u.health, u.draining, u.in_flight), (40, false, 3));
        }
        other => panic!("{other:?}"),
    }
    // A new weight changes the tables.
    h.seq = 3;
    h.weight = 5;
    assert_eq!(beat(&mut m, &h, t), HeartbeatOutcome::Changed);
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/5"]);
}

#[test]
fn without_self_registration_only_listed_addresses_are_tracked() {
    let base = routing(false, &["127.0.0.1:9001"]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    assert_eq!(
        beat(&mut m, &hb("i-2", "b", 1, "127.0.0.1:9002"), t),
        HeartbeatOutcome::NotRegistered
    );
    assert!(matches!(
        beat(&mut m, &hb("i-1", "b", 1, "127.0.0.1:9001"), t),
        HeartbeatOutcome::Updated(_)
    ));
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/1"]);
    assert_eq!(
        m.heartbeat(
            "other",
            &hb("i-1", "b", 2, "127.0.0.1:9001"),
            "127.0.0.1:9001".parse().unwrap(),
            t
        ),
        HeartbeatOutcome::UnknownCluster
    );
}

#[test]
fn stale_sequences_are_dropped_until_a_new_boot() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    beat(&mut m, &hb("i-1", "b1", 5, "127.0.0.1:9001"), t);
    for seq in [5, 4, 1] {
        assert_eq!(
            beat(&mut m, &hb("i-1", "b1", seq, "127.0.0.1:9001"), t),
            HeartbeatOutcome::Stale
        );
    }
    assert!(matches!(
        beat(&mut m, &hb("i-1", "b2", 1, "127.0.0.1:9001"), t),
        HeartbeatOutcome::Updated(_)
    ));
}

#[test]
fn expiry_marks_down_at_once_and_removes_after_the_grace_period() {
    let base = routing(true, &["127.0.0.1:9001"]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    beat(&mut m, &hb("static", "b", 1, "127.0.0.1:9001"), t);
    beat(&mut m, &hb("joined", "b", 1, "127.0.0.1:9002"), t);
    assert_eq!(m.tick(t + ms(999), IDLE), TickOutcome::default());
    // A heartbeat of the cluster after their deadline proves that the bus delivers: their silence
    // is their own.
    beat(
        &mut m,
        &hb("keeper", "b", 1, "127.0.0.1:9003"),
        t + ms(1001),
    );
    let out = m.tick(t + ms(1001), IDLE);
    assert!(!out.changed);
    let mut down: Vec<_> = out
        .updates
        .iter()
        .map(|(c, u)| (c.as_str(), u.address.port(), u.health))
        .collect();
    down.sort();
    assert_eq!(down, [("api", 9001, 0), ("api", 9002, 0)]);
    // Down, not yet removed.
    assert!(!m.tick(t + ms(6000), IDLE).changed);
    assert_eq!(addresses(&m, &base).len(), 3);
    // remove_after = 5s: the self-registered one goes; the listed one stays, down.
    assert!(m.tick(t + ms(6001), IDLE).changed);
    assert_eq!(
        addresses(&m, &base),
        ["127.0.0.1:9001/1", "127.0.0.1:9003/1"]
    );
    let mut live: Vec<_> = m
        .live_states()
        .map(|(_, u)| (u.address.port(), u.health))
        .collect();
    live.sort();
    assert_eq!(
        live,
        [(9001, 0), (9003, 100)],
        "the keeper is held, not down"
    );
    // A heartbeat brings it back up in place.
    match beat(
        &mut m,
        &hb("static", "b", 2, "127.0.0.1:9001"),
        t + ms(7000),
    ) {
        HeartbeatOutcome::Updated(u) => assert_eq!(u.health, 100),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_silent_cluster_is_held_and_a_frozen_link_suspends_expiry_and_removal() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    assert!(!m.link(true, t, ms(3000)), "starts up");
    beat(&mut m, &hb("a", "b", 1, "127.0.0.1:9001"), t);
    beat(&mut m, &hb("b", "b", 1, "127.0.0.1:9002"), t);
    let out = m.tick(t + ms(60_000), IDLE);
    assert!(out.updates.is_empty() && !out.changed, "{out:?}");
    assert_eq!(out.held, [("api".to_string(), 2)]);
    assert_eq!(m.held(), 2);

    // b goes down for good (a keeps beating), then the link drops before b's removal is due.
    beat(&mut m, &hb("a", "b", 2, "127.0.0.1:9001"), t + ms(60_001));
    assert_eq!(m.tick(t + ms(60_001), IDLE).updates.len(), 1);
    assert!(m.link(false, t + ms(60_002), ms(3000)));
    assert!(!m.link(false, t + ms(60_003), ms(3000)), "no change");
    assert_eq!(m.frozen(t + ms(60_003)), Some(Frozen::Disconnected));
    let out = m.tick(t + ms(600_000), IDLE);
    assert!(!out.changed, "nothing removed while frozen");
    assert!(out.updates.is_empty(), "nothing expires while frozen");
    assert_eq!(addresses(&m, &base).len(), 2);
    // Back up at 600 s: grace until 603 s.
    assert!(m.link(true, t + ms(600_000), ms(3000)));
    assert!(matches!(
        m.frozen(t + ms(602_999)),
        Some(Frozen::Grace { .. })
    ));
    assert!(!m.tick(t + ms(602_999), IDLE).changed);
    assert_eq!(m.frozen(t + ms(603_000)), None);
    assert!(m.tick(t + ms(603_000), IDLE).changed, "b's removal resumes");
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/1"]);
}

#[test]
fn a_draining_heartbeat_never_makes_an_instance_join() {
    let base = routing(true, &["127.0.0.1:9001"]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    let mut h = hb("gone", "b", 7, "127.0.0.1:9002");
    h.draining = true;
    for seq in 7..12 {
        h.seq = seq;
        assert_eq!(beat(&mut m, &h, t), HeartbeatOutcome::Leaving);
    }
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/1"]);
    // At a listed address a draining heartbeat still drains the listed endpoint.
    let mut h = hb("listed", "b", 1, "127.0.0.1:9001");
    h.draining = true;
    match beat(&mut m, &h, t) {
        HeartbeatOutcome::Updated(u) => assert!(u.draining),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gaps_in_a_boots_sequence_count_as_missed_heartbeats() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    for seq in [1, 2, 5, 6, 10] {
        beat(&mut m, &hb("i", "b1", seq, "127.0.0.1:9001"), t);
    }
    assert_eq!(m.missed(), 5, "3, 4, 7, 8 and 9");
    beat(&mut m, &hb("i", "b1", 8, "127.0.0.1:9001"), t);
    beat(&mut m, &hb("i", "b2", 1, "127.0.0.1:9001"), t);
    assert_eq!(m.missed(), 5, "late and new-boot heartbeats are not gaps");
}

#[test]
fn a_draining_instance_leaves_once_idle_or_at_its_ttl() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    beat(&mut m, &hb("i-1", "b", 1, "127.0.0.1:9001"), t);
    let mut h = hb("i-1", "b", 2, "127.0.0.1:9001");
    h.draining = true;
    match beat(&mut m, &h, t) {
        HeartbeatOutcome::Updated(u) => assert!(u.draining),
        other => panic!("{other:?}"),
    }
    assert!(
        !m.tick(t + ms(500), BUSY).changed,
        "requests still in flight"
    );
    assert!(m.tick(t + ms(500), IDLE).changed, "idle: removed");
    assert!(addresses(&m, &base).is_empty());

    beat(&mut m, &hb("i-2", "b", 1, "127.0.0.1:9002"), t);
    let mut h = hb("i-2", "b", 2, "127.0.0.1:9002");
    h.draining = true;
    beat(&mut m, &h, t);
    assert!(!m.tick(t + ms(999), BUSY).changed);
    assert!(m.tick(t + ms(1000), BUSY).changed, "deadline: removed");
}

#[test]
fn scaling_events_overlay_the_document_and_are_idempotent() {
    let base = routing(false, &["127.0.0.1:9001"]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    let add = event(
        "e1",
        ScaleAction::Add {
            address: "127.0.0.1:9002".into(),
            weight: 3,
            zone: None,
        },
    );
    assert_eq!(
        m.scale("api", &add, Duration::ZERO, t),
        ScaleOutcome::Applied
    );
    assert_eq!(
        m.scale("api", &add, Duration::ZERO, t),
        ScaleOutcome::Duplicate
    );
    assert_eq!(
        addresses(&m, &base),
        ["127.0.0.1:9001/1", "127.0.0.1:9002/3"]
    );
    let weight = event(
        "e2",
        ScaleAction::Weight {
            address: "127.0.0.1:9001".into(),
            weight: 7,
        },
    );
    m.scale("api", &weight, Duration::ZERO, t);
    let remove = event(
        "e3",
        ScaleAction::Remove {
            address: "127.0.0.1:9002".into(),
        },
    );
    m.scale("api", &remove, Duration::ZERO, t);
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/7"]);
    // The overlay survives a new document.
    m.set_base(&routing(false, &["127.0.0.1:9001", "127.0.0.1:9002"]));
    assert_eq!(
        addresses(&m, &routing(false, &["127.0.0.1:9001", "127.0.0.1:9002"])),
        ["127.0.0.1:9001/7"]
    );
    // A removed address ignores heartbeats.
    assert_eq!(
        beat(&mut m, &hb("i", "b", 1, "127.0.0.1:9002"), t),
        HeartbeatOutcome::Excluded
    );
}

#[test]
fn a_drain_ends_when_idle_or_at_its_deadline_counted_from_publication() {
    let base = routing(false, &["127.0.0.1:9001", "127.0.0.1:9002"]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    let drain = |id: &str, port: u16| {
        event(
            id,
            ScaleAction::Drain {
                address: format!("127.0.0.1:{port}"),
                deadline_ms: 1000,
            },
        )
    };
    m.scale("api", &drain("d1", 9001), ms(400), t);
    let live: Vec<_> = m
        .live_states()
        .map(|(_, u)| (u.address.port(), u.draining))
        .collect();
    assert_eq!(live, [(9001, true)]);
    assert_eq!(addresses(&m, &base).len(), 2, "present while draining");
    assert!(!m.tick(t + ms(599), BUSY).changed);
    assert!(
        m.tick(t + ms(600), BUSY).changed,
        "1000 ms after publication"
    );
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9002/1"]);
    // Replayed by a node that starts after the deadline: removed at once.
    m.scale("api", &drain("d2", 9002), ms(5000), t);
    assert!(addresses(&m, &base).is_empty());
    // Added back.
    let add = event(
        "a",
        ScaleAction::Add {
            address: "127.0.0.1:9002".into(),
            weight: 1,
            zone: None,
        },
    );
    m.scale("api", &add, Duration::ZERO, t);
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9002/1"]);
}

#[test]
fn a_cluster_that_leaves_the_routing_forgets_its_instances() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    beat(&mut m, &hb("i-1", "b", 1, "127.0.0.1:9001"), t);
    assert_eq!(m.instances(), 1);
    let other = edgeplane_config::from_toml(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"web\"\n[clusters.web]\n",
    )
    .unwrap()
    .routing;
    m.set_base(&other);
    assert_eq!(m.instances(), 0);
    assert_eq!(
        beat(&mut m, &hb("i-1", "b", 2, "127.0.0.1:9001"), t),
        HeartbeatOutcome::UnknownCluster
    );
    // Self-registration switched off drops the registered ones.
    m.set_base(&base);
    beat(&mut m, &hb("i-1", "b", 3, "127.0.0.1:9001"), t);
    m.set_base(&routing(false, &[]));
    assert_eq!(m.instances(), 0);
}

#[test]
fn an_instance_restarting_under_a_new_id_takes_over_its_address() {
    let base = routing(true, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    beat(&mut m, &hb("old", "b", 1, "127.0.0.1:9001"), t);
    beat(&mut m, &hb("new", "c", 1, "127.0.0.1:9001"), t);
    assert_eq!(m.instances(), 1);
    assert_eq!(addresses(&m, &base), ["127.0.0.1:9001/1"]);
}

#[test]
fn a_drained_endpoint_that_was_added_by_scaling_serves_in_flight_until_done() {
    let base = routing(false, &[]);
    let mut m = Membership::default();
    m.set_base(&base);
    let t = Instant::now();
    let add = event(
        "add",
        ScaleAction::Add {
            address: "127.0.0.1:9002".into(),
            weight: 2,
            zone: None,
        },
    );
    m.scale("api", &add, Duration::ZERO, t);
    let drain = event(
        "drain",
        ScaleAction::Drain {
            address: "127.0.0.1:9002".into(),
            deadline_ms: 1000,
        },
    );
    m.scale("api", &drain, Duration::ZERO, t);
    assert_eq!(
        addresses(&m, &base),
        ["127.0.0.1:9002/2"],
        "kept while draining"
    );
    assert!(!m.tick(t + ms(10), BUSY).changed);
    assert!(m.tick(t + ms(20), IDLE).changed);
    assert!(addresses(&m, &base).is_empty());
}
