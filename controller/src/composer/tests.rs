//! The composer with an in-memory sink and paused time: debounce, expiry and drain deadlines.

use super::*;
use edgeplane_bus::wire::ScaleAction;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8};

#[derive(Debug, Default)]
struct FakeLive {
    health: AtomicU8,
    draining: AtomicBool,
    in_flight: AtomicU32,
}

impl LiveEndpoint for FakeLive {
    fn set_health(&self, health: u8) {
        self.health.store(health, Relaxed);
    }
    fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Relaxed);
    }
    fn set_reported(&self, _: u32, _: f32, _: f32) {}
    fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }
}

/// Tables in memory: the endpoints of the last routing applied, with live state kept by address.
#[derive(Default)]
struct FakeSink {
    applied: AtomicU64,
    endpoints: Mutex<Vec<(Arc<str>, SocketAddr)>>,
    live: Mutex<HashMap<SocketAddr, Arc<FakeLive>>>,
}

impl FakeSink {
    fn addresses(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .endpoints
            .lock()
            .unwrap()
            .iter()
            .map(|(_, a)| a.port())
            .collect();
        v.sort();
        v
    }
    fn live(&self, port: u16) -> Arc<FakeLive> {
        self.live.lock().unwrap()[&SocketAddr::from(([127, 0, 0, 1], port))].clone()
    }
}

impl RoutingSink for FakeSink {
    fn apply(&self, routing: &Routing) -> Result<ContentHash, crate::Rejection> {
        self.applied.fetch_add(1, Relaxed);
        let mut eps = Vec::new();
        for c in &routing.clusters {
            for e in &c.endpoints {
                eps.push((Arc::from(c.name.as_str()), e.address));
                self.live
                    .lock()
                    .unwrap()
                    .entry(e.address)
                    .or_insert_with(|| {
                        let l = FakeLive::default();
                        l.health.store(100, Relaxed);
                        Arc::new(l)
                    });
            }
        }
        *self.endpoints.lock().unwrap() = eps;
        Ok(routing.hash)
    }
    fn current_hash(&self) -> ContentHash {
        unimplemented!()
    }
    fn connections(&self) -> u64 {
        0
    }
    fn traffic(&self) -> crate::TrafficCounts {
        crate::TrafficCounts::default()
    }
    fn check(&self, _: &Routing) -> Result<(), crate::Rejection> {
        Ok(())
    }
    fn requests(&self) -> u64 {
        0
    }
    fn endpoints(&self) -> Vec<crate::ClusterEndpoints> {
        let live = self.live.lock().unwrap();
        let mut out: Vec<crate::ClusterEndpoints> = Vec::new();
        for (c, a) in self.endpoints.lock().unwrap().iter() {
            let l: Arc<dyn LiveEndpoint> = live[a].clone();
            match out.iter_mut().find(|(name, _)| name == c) {
                Some((_, eps)) => eps.push((*a, l)),
                None => out.push((c.clone(), vec![(*a, l)])),
            }
        }
        out
    }
}

fn setup(statics: &[u16]) -> (Arc<FakeSink>, Arc<Composer>) {
    let eps: String = statics
        .iter()
        .map(|p| format!("[[clusters.api.endpoints]]\naddress = \"127.0.0.1:{p}\"\n"))
        .collect();
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"api\"\n\
         [clusters.api]\nself_registration = true\nremove_after = \"2s\"\n{eps}"
    );
    let routing = edgeplane_config::from_toml(&text).unwrap().routing;
    let sink = Arc::new(FakeSink::default());
    sink.apply(&routing).unwrap();
    let composer = Composer::new(sink.clone(), routing, Duration::from_secs(1));
    (sink, composer)
}

fn hb(instance: &str, seq: u64, port: u16) -> Heartbeat {
    Heartbeat {
        schema: 1,
        instance: instance.into(),
        boot_id: "b".into(),
        seq,
        address: format!("127.0.0.1:{port}"),
        weight: 1,
        zone: None,
        health: 100,
        in_flight: 0,
        cpu: 0.0,
        latency_ms: 0.0,
        ttl_ms: 500,
        draining: false,
    }
}

/// Advances paused time by `ms`, ticking as the driver would.
async fn run_for(composer: &Composer, ms: u64) {
    let end = Instant::now() + Duration::from_millis(ms);
    loop {
        let next = composer.tick().min(end);
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep_until(next).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_joins_is_one_rebuild_and_known_heartbeats_none() {
    let (sink, composer) = setup(&[]);
    let before = sink.applied.load(Relaxed);
    for i in 0..50u16 {
        composer.heartbeat("api", &hb(&format!("i-{i}"), 1, 9000 + i));
    }
    run_for(&composer, 5).await;
    assert_eq!(
        sink.applied.load(Relaxed),
        before,
        "still within the quiet period"
    );
    run_for(&composer, 30).await;
    assert_eq!(sink.applied.load(Relaxed), before + 1);
    assert_eq!(sink.addresses().len(), 50);
    assert_eq!(composer.stats.rebuilds.load(Relaxed), 1);

    for seq in 2..20 {
        let mut h = hb("i-7", seq, 9007);
        h.health = 30;
        composer.heartbeat("api", &h);
    }
    run_for(&composer, 100).await;
    assert_eq!(
        sink.applied.load(Relaxed),
        before + 1,
        "no rebuild for known instances"
    );
    assert_eq!(sink.live(9007).health.load(Relaxed), 30, "written in place");
    assert_eq!(composer.stats.heartbeats_in_place.load(Relaxed), 18);
}

/// Like [`run_for`], with instance `id` at `port` heartbeating every 100 ms from sequence `seq` on:
/// the proof that the bus delivers the cluster's heartbeats. Returns the next sequence.
async fn run_beating(composer: &Composer, ms: u64, id: &str, port: u16, mut seq: u64) -> u64 {
    for _ in 0..ms / 100 {
        composer.heartbeat("api", &hb(id, seq, port));
        seq += 1;
        run_for(composer, 100).await;
    }
    seq
}

#[tokio::test(start_paused = true)]
async fn silence_marks_down_within_a_tick_then_removes() {
    let (sink, composer) = setup(&[9001]);
    composer.heartbeat("api", &hb("listed", 1, 9001));
    composer.heartbeat("api", &hb("joined", 1, 9002));
    let seq = run_beating(&composer, 100, "keeper", 9003, 1).await;
    assert_eq!(sink.addresses(), [9001, 9002, 9003]);
    assert_eq!(sink.live(9002).health.load(Relaxed), 100);
    // ttl 500 ms: down between 500 and 600 ms after the last heartbeat, while the keeper's heartbeats
    // prove that the bus delivers the cluster's subject.
    let seq = run_beating(&composer, 300, "keeper", 9003, seq).await;
    assert_eq!(sink.live(9002).health.load(Relaxed), 100);
    let seq = run_beating(&composer, 300, "keeper", 9003, seq).await;
    assert_eq!(sink.live(9002).health.load(Relaxed), 0);
    assert_eq!(sink.live(9001).health.load(Relaxed), 0);
    assert_eq!(composer.held(), 0);
    // remove_after 2 s: the self-registered one goes, the listed one stays down.
    run_beating(&composer, 2100, "keeper", 9003, seq).await;
    assert_eq!(sink.addresses(), [9001, 9003]);
    assert_eq!(sink.live(9001).health.load(Relaxed), 0);
    assert_eq!(composer.stats.silent_clusters.load(Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_cluster_whose_heartbeats_all_stop_at_once_is_held_until_heartbeats_flow_again() {
    let (sink, composer) = setup(&[]);
    composer.heartbeat("api", &hb("a", 1, 9001));
    composer.heartbeat("api", &hb("b", 1, 9002));
    run_for(&composer, 100).await;
    assert_eq!(sink.addresses(), [9001, 9002]);
    // Both silent for 10 s (20 ttls, 5 remove_afters): held up, never removed.
    run_for(&composer, 10_000).await;
    assert_eq!(sink.addresses(), [9001, 9002]);
    assert_eq!(sink.live(9001).health.load(Relaxed), 100);
    assert_eq!(sink.live(9002).health.load(Relaxed), 100);
    assert_eq!(composer.held(), 2);
    assert_eq!(composer.stats.expired.load(Relaxed), 0);
    assert_eq!(
        composer.stats.silent_clusters.load(Relaxed),
        1,
        "counted once"
    );
    // a comes back: the bus delivers again, so b's silence is b's own. It goes down at once.
    composer.heartbeat("api", &hb("a", 2, 9001));
    run_for(&composer, 100).await;
    assert_eq!(sink.live(9002).health.load(Relaxed), 0);
    assert_eq!(sink.live(9001).health.load(Relaxed), 100);
    assert_eq!(composer.held(), 0);
}

#[tokio::test(start_paused = true)]
async fn nothing_expires_while_the_link_is_down_nor_within_the_grace_after() {
    let (sink, composer) = setup(&[]);
    composer.link(true);
    composer.heartbeat("api", &hb("a", 1, 9001));
    composer.heartbeat("api", &hb("b", 1, 9002));
    let seq = run_beating(&composer, 200, "keeper", 9003, 1).await;
    composer.link(false);
    assert_eq!(composer.frozen(), Some(Frozen::Disconnected));
    // Even with heartbeats of the cluster arriving (another path), nothing expires while frozen.
    let seq = run_beating(&composer, 5000, "keeper", 9003, seq).await;
    assert_eq!(sink.addresses(), [9001, 9002, 9003]);
    assert_eq!(sink.live(9001).health.load(Relaxed), 100);
    assert_eq!(composer.held(), 2);
    composer.link(true);
    assert!(matches!(composer.frozen(), Some(Frozen::Grace { .. })));
    // Grace 1 s: a resumes within it and stays; b does not and goes down right after it.
    composer.heartbeat("api", &hb("a", 2, 9001));
    let seq = run_beating(&composer, 900, "keeper", 9003, seq).await;
    assert_eq!(
        sink.live(9002).health.load(Relaxed),
        100,
        "still in the grace period"
    );
    composer.heartbeat("api", &hb("a", 3, 9001));
    run_beating(&composer, 200, "keeper", 9003, seq).await;
    assert_eq!(composer.frozen(), None);
    assert_eq!(sink.live(9002).health.load(Relaxed), 0);
    assert_eq!(sink.live(9001).health.load(Relaxed), 100);
}

#[tokio::test(start_paused = true)]
async fn the_first_connection_has_no_grace_period_even_when_noticed_late() {
    let (sink, composer) = setup(&[]);
    composer.link(false);
    composer.heartbeat("api", &hb("a", 1, 9001));
    composer.heartbeat("api", &hb("b", 1, 9002));
    composer.link(true);
    assert_eq!(composer.frozen(), None);
    run_beating(&composer, 1000, "a", 9001, 2).await;
    assert_eq!(sink.live(9002).health.load(Relaxed), 0, "b expired");
}

#[tokio::test(start_paused = true)]
async fn a_scaled_drain_waits_for_in_flight_requests_until_its_deadline() {
    let (sink, composer) = setup(&[9001, 9002]);
    sink.live(9001).in_flight.store(2, Relaxed);
    let drain = ScaleEvent {
        schema: 1,
        id: "d".into(),
        action: ScaleAction::Drain {
            address: "127.0.0.1:9001".into(),
            deadline_ms: 1000,
        },
    };
    composer.scale("api", &drain, Duration::ZERO);
    run_for(&composer, 50).await;
    assert!(sink.live(9001).draining.load(Relaxed), "no new requests");
    assert_eq!(sink.addresses(), [9001, 9002]);
    run_for(&composer, 500).await;
    assert_eq!(sink.addresses(), [9001, 9002], "in flight: kept");
    run_for(&composer, 600).await;
    assert_eq!(sink.addresses(), [9002], "deadline: removed");
    composer.scale("api", &drain, Duration::ZERO);
    assert_eq!(composer.stats.scale_duplicates.load(Relaxed), 1);
}
