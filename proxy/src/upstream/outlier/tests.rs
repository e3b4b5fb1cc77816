//! Outlier detection: the sweeper and the request path's decisions.

use super::*;
use crate::tables::Snapshot;

fn snapshot(percent: u8) -> Snapshot {
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         [clusters.c.outlier]\nconsecutive_failures = 3\nbase_ejection = \"1s\"\nmax_ejection = \"3s\"\n\
         max_ejected_percent = {percent}\n\
         [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n"
    );
    Snapshot::build(&edgeplane_config::from_toml(&text).unwrap().routing, None).unwrap()
}

fn fail(s: &Snapshot, i: usize, n: usize) {
    for _ in 0..n {
        s.clusters[0].endpoints[i].upstream.record_failure();
    }
}

#[tokio::test(start_paused = true)]
async fn ejects_with_growing_backoff_and_lets_back_in() {
    let s = snapshot(50);
    let c = &s.clusters[0];
    let up = |i: usize| &c.endpoints[i].upstream;
    fail(&s, 0, 2);
    sweep(&s, Instant::now());
    assert!(!up(0).ejected(), "two failures are not enough");
    fail(&s, 0, 1);
    sweep(&s, Instant::now());
    assert!(up(0).ejected());
    assert!((0..10).all(|_| c.pick().map(|e| e.upstream.address.port()) == Some(2)));
    // First ejection: 1 s.
    tokio::time::advance(Duration::from_millis(999)).await;
    sweep(&s, Instant::now());
    assert!(up(0).ejected());
    tokio::time::advance(Duration::from_millis(1)).await;
    sweep(&s, Instant::now());
    assert!(!up(0).ejected());
    // Failing again at once: the second ejection lasts 2 s.
    fail(&s, 0, 3);
    sweep(&s, Instant::now());
    assert!(up(0).ejected());
    tokio::time::advance(Duration::from_millis(1999)).await;
    sweep(&s, Instant::now());
    assert!(up(0).ejected());
    tokio::time::advance(Duration::from_millis(1)).await;
    sweep(&s, Instant::now());
    assert!(!up(0).ejected());
    // Two quiet base periods decay the count back to zero: the next ejection is 1 s again.
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(1)).await;
        sweep(&s, Instant::now());
    }
    assert_eq!(up(0).outlier.lock().unwrap().ejections, 0);
}

#[tokio::test(start_paused = true)]
async fn a_returning_endpoint_is_half_open_until_its_first_answer() {
    let s = snapshot(50);
    let up = &s.clusters[0].endpoints[0].upstream;
    fail(&s, 0, 3);
    sweep(&s, Instant::now());
    assert!(up.ejected(), "open");
    tokio::time::advance(Duration::from_secs(1)).await;
    sweep(&s, Instant::now());
    assert!(!up.ejected(), "half-open: back in for a trial");
    // The trial fails: open again at once, for the second, longer period.
    let _trial = up.start_request();
    up.record_failure();
    drop(_trial);
    sweep(&s, Instant::now());
    assert!(up.ejected(), "one failure re-opens");
    tokio::time::advance(Duration::from_millis(1999)).await;
    sweep(&s, Instant::now());
    assert!(up.ejected(), "two seconds this time");
    tokio::time::advance(Duration::from_millis(1)).await;
    sweep(&s, Instant::now());
    assert!(!up.ejected());
    // The trial succeeds: closed; a single failure no longer ejects.
    drop(up.start_request());
    up.record_success(Duration::from_millis(1));
    sweep(&s, Instant::now());
    up.record_failure();
    sweep(&s, Instant::now());
    assert!(!up.ejected(), "closed: a streak is needed again");
}

#[tokio::test(start_paused = true)]
async fn a_high_failure_rate_ejects_without_a_streak() {
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         [clusters.c.outlier]\nconsecutive_failures = 100\nfailure_rate = 40\nmin_requests = 20\n\
         [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n";
    let s = Snapshot::build(&edgeplane_config::from_toml(text).unwrap().routing, None).unwrap();
    let up = &s.clusters[0].endpoints[0].upstream;
    // Every other request fails: never two in a row, but half of them.
    for i in 0..40 {
        drop(up.start_request());
        if i % 2 == 0 {
            up.record_failure();
        } else {
            up.record_success(Duration::from_millis(1));
        }
        if i == 10 {
            sweep(&s, Instant::now());
            assert!(!up.ejected(), "too few requests to judge");
        }
    }
    sweep(&s, Instant::now());
    assert!(up.ejected(), "rate {}", 1000 - up.success_permille());
}

#[tokio::test(start_paused = true)]
async fn never_ejects_more_than_the_allowed_share() {
    let s = snapshot(50);
    fail(&s, 0, 3);
    fail(&s, 1, 3);
    sweep(&s, Instant::now());
    let ejected = s.clusters[0]
        .endpoints
        .iter()
        .filter(|e| e.upstream.ejected())
        .count();
    assert_eq!(ejected, 1, "half of two endpoints");
    let none = snapshot(0);
    fail(&none, 0, 3);
    sweep(&none, Instant::now());
    assert!(!none.clusters[0].endpoints[0].upstream.ejected());
}

#[tokio::test(start_paused = true)]
async fn panic_mode_spreads_over_all_when_too_few_are_usable() {
    use edgeplane_controller::LiveEndpoint;
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
        panic_threshold = 50\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:3\"\n";
    let s = Snapshot::build(&edgeplane_config::from_toml(text).unwrap().routing, None).unwrap();
    let c = &s.clusters[0];
    c.endpoints[0].upstream.set_health(0);
    sweep(&s, Instant::now());
    assert!(!c.state.panic(), "2 of 3 usable");
    assert!((0..30).all(|_| c.pick().unwrap().upstream.address.port() != 1));
    c.endpoints[1].upstream.set_health(0);
    sweep(&s, Instant::now());
    assert!(c.state.panic(), "1 of 3 usable");
    let mut ports: Vec<u16> = (0..30)
        .map(|_| c.pick().unwrap().upstream.address.port())
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports, [1, 2, 3], "spread over all");
    c.endpoints[0].upstream.set_health(100);
    sweep(&s, Instant::now());
    assert!(!c.state.panic());
}

#[tokio::test(start_paused = true)]
async fn zone_aware_clusters_stay_local_then_spill_over() {
    use edgeplane_controller::LiveEndpoint;
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
        zone_aware = true\nzone_spill_below = 50\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\nzone = \"z1\"\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\nzone = \"z2\"\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:3\"\nzone = \"z1\"\n";
    let routing = edgeplane_config::from_toml(text).unwrap().routing;
    let s = Snapshot::build_with(&routing, None, None, Some("z1".into())).unwrap();
    let c = &s.clusters[0];
    let ports = || {
        let mut p: Vec<u16> = (0..20)
            .map(|_| c.pick().unwrap().upstream.address.port())
            .collect();
        p.sort();
        p.dedup();
        p
    };
    assert_eq!(ports(), [1, 3], "local zone only");
    c.endpoints[0].upstream.set_health(0);
    sweep(&s, Instant::now());
    assert_eq!(ports(), [3], "1 of 2 local usable: not below 50 %");
    c.endpoints[2].upstream.set_health(0);
    sweep(&s, Instant::now());
    assert_eq!(ports(), [2], "spilled over to z2");
    c.endpoints[0].upstream.set_health(100);
    sweep(&s, Instant::now());
    assert_eq!(ports(), [1], "back to the local zone");
    // A node without a zone, or in a zone without endpoints, uses every zone.
    let s = Snapshot::build_with(&routing, None, None, Some("z9".into())).unwrap();
    assert!(s.clusters[0].local.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_refused_connect_ejects_at_once_within_the_allowed_share() {
    use crate::error::ConnectCause;
    let s = snapshot(50);
    let c = &s.clusters[0];
    let up = |i: usize| &c.endpoints[i].upstream;
    up(0).record_failure();
    judge(c, up(0), Some(ConnectCause::Other));
    assert!(!up(0).ejected(), "a failed TLS handshake needs a streak");
    up(0).record_failure();
    judge(c, up(0), Some(ConnectCause::Refused));
    assert!(up(0).ejected(), "refused: out without waiting for a sweep");
    // The other one is refused too: half of two is one, so it stays (the node may be the problem).
    up(1).record_failure();
    judge(c, up(1), Some(ConnectCause::TimedOut));
    assert!(!up(1).ejected());
    assert_eq!(c.state.outliers.ejections(), [1, 0, 0, 0]);
    // Over after its period, and half-open: one refused connect sends it back out, for longer.
    tokio::time::advance(Duration::from_secs(1)).await;
    sweep(&s, Instant::now());
    assert!(!up(0).ejected());
    up(0).record_failure();
    judge(c, up(0), Some(ConnectCause::Refused));
    assert!(up(0).ejected());
    assert_eq!(up(0).outlier.lock().unwrap().ejections, 2);
}

#[tokio::test(start_paused = true)]
async fn the_request_path_ejects_on_a_streak_and_a_failed_trial() {
    let s = snapshot(50);
    let c = &s.clusters[0];
    let up = &c.endpoints[0].upstream;
    for _ in 0..2 {
        up.record_failure();
        judge(c, up, None);
    }
    assert!(!up.ejected(), "two of three");
    up.record_failure();
    judge(c, up, None);
    assert!(up.ejected(), "the third failure ejects without a sweep");
    assert_eq!(c.state.outliers.ejections(), [0, 1, 0, 0]);
    tokio::time::advance(Duration::from_secs(1)).await;
    sweep(&s, Instant::now());
    assert!(!up.ejected());
    let _trial = up.start_request();
    up.record_failure();
    judge(c, up, None);
    assert!(up.ejected(), "a half-open endpoint's failed trial");
    assert_eq!(c.state.outliers.ejections(), [0, 1, 0, 1]);
}

#[tokio::test]
async fn an_ejection_closes_the_idle_pooled_connections_and_a_passing_check_ends_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let text = format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         [clusters.c.outlier]\nbase_ejection = \"5m\"\n\
         [[clusters.c.endpoints]]\naddress = \"{addr}\"\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n"
    );
    let s = Snapshot::build(&edgeplane_config::from_toml(&text).unwrap().routing, None).unwrap();
    let c = &s.clusters[0];
    let up = &c.endpoints[0].upstream;
    let slot = up.cluster.try_connection(None).unwrap();
    let (sender, peer) = tokio::join!(
        crate::upstream::conn::connect(addr, Duration::from_secs(5), slot, None, false),
        listener.accept()
    );
    up.pool.put(sender.unwrap());
    assert_eq!(up.pool.idle_count(), 1);
    judge(c, up, Some(crate::error::ConnectCause::Refused));
    assert!(up.ejected());
    assert_eq!(up.pool.idle_count(), 0, "closed with the ejection");
    // The peer sees the connection end.
    let mut peer = peer.unwrap().0;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut peer, &mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(n, 0);
    readmit(up, "c");
    assert!(
        !up.ejected(),
        "a passing health check ends a 5-minute ejection"
    );
    assert!(up.outlier.lock().unwrap().probation, "half-open");
}

#[tokio::test(start_paused = true)]
async fn a_half_open_endpoint_takes_one_trial_at_a_time_until_a_success() {
    let s = snapshot(50);
    let c = &s.clusters[0];
    let up = &c.endpoints[0].upstream;
    fail(&s, 0, 3);
    sweep(&s, Instant::now());
    tokio::time::advance(Duration::from_secs(1)).await;
    sweep(&s, Instant::now());
    assert!(!up.ejected() && up.on_trial());
    assert!(up.usable(0), "free for a trial");
    let trial = up.start_request();
    assert!(!up.usable(0), "one trial in flight: no second pick");
    assert!((0..10).all(|_| c.pick().unwrap().upstream.address.port() == 2));
    up.record_success(Duration::from_millis(1));
    trial_passed(up);
    drop(trial);
    assert!(!up.on_trial() && up.usable(0), "closed by its success");
    let _a = up.start_request();
    assert!(up.usable(0), "any number in flight once closed");
}

#[tokio::test(start_paused = true)]
async fn with_health_checks_an_ejection_ends_only_after_a_passing_check() {
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         [clusters.c.outlier]\nconsecutive_failures = 3\nbase_ejection = \"1s\"\n\
         [clusters.c.health_check]\n\
         [[clusters.c.endpoints]]\naddress = \"127.0.0.1:1\"\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:2\"\n";
    let s = Snapshot::build(&edgeplane_config::from_toml(text).unwrap().routing, None).unwrap();
    let c = &s.clusters[0];
    let up = &c.endpoints[0].upstream;
    fail(&s, 0, 3);
    judge(c, up, None);
    assert!(up.ejected());
    up.checks.lock().unwrap().failures = 1;
    tokio::time::advance(Duration::from_secs(2)).await;
    sweep(&s, Instant::now());
    assert!(up.ejected(), "its last check failed: no trial request");
    readmit(up, "c");
    assert!(
        up.ejected(),
        "a streak of failed answers is not ended by a check"
    );
    up.checks.lock().unwrap().failures = 0;
    sweep(&s, Instant::now());
    assert!(
        !up.ejected() && up.on_trial(),
        "checks pass: back, half-open"
    );
}
