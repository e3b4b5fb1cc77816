//! Passive outlier detection: an endpoint with `consecutive_failures` failures in a row (connect
//! errors, upstream errors, timeouts, 5xx and 429 answers), or (with `failure_rate`) a recent failure
//! rate at or above that percentage, is ejected for `base_ejection × 2^(n-1)` (its n-th ejection, at
//! most `max_ejection`), never more than `max_ejected_percent` of a cluster at once. Each
//! `base_ejection` spent back in takes one off its ejection count.
//!
//! An endpoint that comes back is half-open: its first request decides. A failure before any success
//! ejects it again at once (for the next, longer period); a success closes it, and from then on a new
//! streak or rate is needed.
//!
//! The decisions run in a sweeper every 100 ms, off the request path, which only counts failures and
//! reads the ejected bit with the rest of the endpoint's flags.

use crate::tables::{Snapshot, Tables};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the sweeper looks.
pub const SWEEP: Duration = Duration::from_millis(100);

/// Sweeps the tables in place until the task is dropped.
pub async fn run(tables: Arc<Tables>) {
    let mut every = tokio::time::interval(SWEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sweep(&tables.load(), Instant::now());
    }
}

/// One pass: restores ejections that ended, ejects failing endpoints, decays ejection counts, and sets
/// each cluster's panic mode.
pub fn sweep(snapshot: &Snapshot, now: Instant) {
    for c in &snapshot.clusters {
        let (loads, enough) = crate::priority::loads(c);
        panic_mode(c, enough);
        crate::priority::apply(c, if c.breaker.panic() { &[1000] } else { &loads });
        zone_spill(c);
    }
    for c in &snapshot.clusters {
        let Some(cfg) = c.outlier else {
            // Detection switched off: nobody stays out.
            for e in c.endpoints.iter().filter(|e| e.upstream.ejected()) {
                e.upstream.set_ejected(false);
            }
            continue;
        };
        let mut ejected = 0usize;
        for e in &c.endpoints {
            let u = &e.upstream;
            let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
            match st.until {
                Some(until) if now >= until => {
                    st.until = None;
                    st.since = Some(now);
                    st.probation = true;
                    st.at_return = (u.failures(), u.requests());
                    u.set_ejected(false);
                    tracing::info!(cluster = %c.name, endpoint = %u.address, "outlier ejection over");
                }
                Some(_) => ejected += 1,
                None => {
                    // Half-open: a success, and no failure, since it came back closes it again.
                    if st.probation
                        && u.failures() == st.at_return.0
                        && u.requests() > st.at_return.1
                        && u.in_flight() == 0
                    {
                        st.probation = false;
                    }
                    let since = *st.since.get_or_insert(now);
                    if st.ejections > 0 && now.duration_since(since) >= cfg.base_ejection {
                        st.ejections -= 1;
                        st.since = Some(now);
                    }
                }
            }
        }
        let allowed = c.endpoints.len() * usize::from(cfg.max_ejected_percent) / 100;
        for e in &c.endpoints {
            let u = &e.upstream;
            if ejected >= allowed {
                break;
            }
            if u.ejected() {
                continue;
            }
            let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
            let streak = u.consecutive_failures() >= cfg.consecutive_failures;
            let half_open_failed = st.probation && u.failures() > st.at_return.0;
            let rate = cfg.failure_rate.is_some_and(|r| {
                u.requests() >= cfg.min_requests
                    && 1000 - u.success_permille().min(1000) >= u32::from(r) * 10
            });
            if !(streak || half_open_failed || rate) {
                continue;
            }
            st.probation = false;
            let factor = 1u32 << st.ejections.min(20);
            let length = cfg
                .base_ejection
                .saturating_mul(factor)
                .min(cfg.max_ejection);
            st.ejections += 1;
            st.until = Some(now + length);
            u.set_ejected(true);
            ejected += 1;
            let why = if half_open_failed {
                "failed again after coming back"
            } else if streak {
                "consecutive failures"
            } else {
                "failure rate"
            };
            tracing::warn!(cluster = %c.name, endpoint = %u.address, why, ejection = ?length, "outlier ejected");
        }
    }
}

/// Zone-aware clusters spill over to every zone while fewer than `zone_spill_below` percent of the
/// local zone's endpoints are usable.
fn zone_spill(c: &crate::tables::Cluster) {
    let Some(local) = &c.local else { return };
    let usable = local
        .endpoints
        .iter()
        .filter(|e| e.upstream.usable(c.health_threshold))
        .count();
    let spill = usable * 100 < local.endpoints.len() * usize::from(local.spill_below);
    if c.breaker.set_spill(spill) {
        let what = if spill {
            "spilling over to every zone"
        } else {
            "back to the local zone"
        };
        tracing::info!(cluster = %c.name, usable, "zone-aware routing: {what}");
    }
}

/// Panic mode: when fewer than `panic_threshold` percent of the best priority's endpoints are usable
/// and the other levels cannot make up for it (`enough` is false), picks ignore health (as Envoy
/// does), so the few healthy ones are not crushed by all the traffic.
fn panic_mode(c: &crate::tables::Cluster, enough: bool) {
    let candidates = &c.endpoints[..c.candidates];
    let on = c.panic_threshold > 0
        && !enough
        && !candidates.is_empty()
        && crate::priority::usable_percent(c, candidates) < u32::from(c.panic_threshold);
    if c.breaker.set_panic(on) {
        if on {
            tracing::warn!(cluster = %c.name, threshold = c.panic_threshold, "panic mode: too few usable endpoints, ignoring health");
        } else {
            tracing::info!(cluster = %c.name, "panic mode over");
        }
    }
}

#[cfg(test)]
mod tests {
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
        assert!(!c.breaker.panic(), "2 of 3 usable");
        assert!((0..30).all(|_| c.pick().unwrap().upstream.address.port() != 1));
        c.endpoints[1].upstream.set_health(0);
        sweep(&s, Instant::now());
        assert!(c.breaker.panic(), "1 of 3 usable");
        let mut ports: Vec<u16> = (0..30)
            .map(|_| c.pick().unwrap().upstream.address.port())
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports, [1, 2, 3], "spread over all");
        c.endpoints[0].upstream.set_health(100);
        sweep(&s, Instant::now());
        assert!(!c.breaker.panic());
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
}
