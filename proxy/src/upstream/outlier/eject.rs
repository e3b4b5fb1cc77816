//! Taking an endpoint out and letting it back in: the decisions the sweeper and the request path
//! share, under one lock per cluster so that `max_ejected_percent` holds even when several endpoints
//! fail at the same moment.
//!
//! The request path decides at once on the evidence it sees (a refused or timed-out connect, a streak
//! reaching `consecutive_failures`, a half-open endpoint failing again); the sweeper decides on failure
//! rates and ends ejections.

use crate::error::ConnectCause;
use crate::tables::cluster::Cluster;
pub(crate) use crate::upstream::ejections::Why;
use crate::upstream::{OutlierState, Upstream};
use edgeplane_config::model::Outlier;
use tokio::time::Instant;

/// Judges a failure the request path just recorded on `u`, an endpoint of `c` (`connect`: the cause,
/// if connecting failed): takes it out at once when the evidence is enough, within
/// `max_ejected_percent`.
pub(crate) fn judge(c: &Cluster, u: &Upstream, connect: Option<ConnectCause>) {
    let Some(cfg) = c.outlier else { return };
    if u.ejected() {
        return;
    }
    let connect_evidence = connect.is_some_and(ConnectCause::ejects);
    if !connect_evidence && u.consecutive_failures() < cfg.consecutive_failures {
        // Only a half-open endpoint is ejected on a single other failure.
        let st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
        if !st.probation {
            return;
        }
    }
    let book = &c.state.outliers;
    let _decide = book.decide();
    let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
    if u.ejected() {
        return;
    }
    let why = if connect_evidence {
        Why::Connect
    } else if st.probation && u.failures() > st.at_return.0 {
        Why::HalfOpen
    } else if u.consecutive_failures() >= cfg.consecutive_failures {
        Why::Streak
    } else {
        return;
    };
    if out_count(c) >= allowed(c, &cfg) {
        tracing::debug!(cluster = %c.name, endpoint = %u.address, why = why.text(), "not ejected: max_ejected_percent reached");
        return;
    }
    eject(c, u, &mut st, &cfg, Instant::now(), why);
}

/// Endpoints of `c` ejected now.
fn out_count(c: &Cluster) -> usize {
    c.endpoints.iter().filter(|e| e.upstream.ejected()).count()
}

/// Endpoints of `c` that may be ejected at once.
fn allowed(c: &Cluster, cfg: &Outlier) -> usize {
    c.endpoints.len() * usize::from(cfg.max_ejected_percent) / 100
}

/// The sweeper's pass over one cluster: ends ejections that are over, closes half-open endpoints that
/// proved themselves, decays ejection counts, then ejects failing endpoints within the allowed share.
pub(super) fn sweep_cluster(c: &Cluster, cfg: &Outlier, now: Instant) {
    let book = &c.state.outliers;
    let _decide = book.decide();
    for e in &c.endpoints {
        let u = &e.upstream;
        let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
        match st.until {
            Some(until) if now >= until => {
                // With active checks, an endpoint whose last check failed stays out until one
                // passes: no trial request is spent on an endpoint known not to answer.
                if c.health_check.is_some() && last_check_failed(u) {
                    continue;
                }
                readmit_locked(u, &mut st, now);
                tracing::info!(cluster = %c.name, endpoint = %u.address, "outlier ejection over");
            }
            Some(_) => {}
            None => {
                // Half-open: a success, and no failure, since it came back closes it again.
                if st.probation
                    && u.failures() == st.at_return.0
                    && u.requests() > st.at_return.1
                    && u.in_flight() == 0
                {
                    close_trial(u, &mut st);
                }
                let since = *st.since.get_or_insert(now);
                if st.ejections > 0 && now.duration_since(since) >= cfg.base_ejection {
                    st.ejections -= 1;
                    st.since = Some(now);
                }
            }
        }
    }
    let mut ejected = out_count(c);
    let allowed = allowed(c, cfg);
    for e in &c.endpoints {
        let u = &e.upstream;
        if ejected >= allowed {
            break;
        }
        if u.ejected() {
            continue;
        }
        let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
        let why = if st.probation && u.failures() > st.at_return.0 {
            Why::HalfOpen
        } else if u.consecutive_failures() >= cfg.consecutive_failures {
            Why::Streak
        } else if cfg.failure_rate.is_some_and(|r| {
            u.requests() >= cfg.min_requests
                && 1000 - u.success_permille().min(1000) >= u32::from(r) * 10
        }) {
            Why::Rate
        } else {
            continue;
        };
        eject(c, u, &mut st, cfg, now, why);
        ejected += 1;
    }
}

/// Takes `u` out for its next period (`base_ejection × 2^(n-1)`, at most `max_ejection`) and closes
/// its idle pooled connections, which are as dead as it is. Called with the cluster's decision lock
/// held.
fn eject(c: &Cluster, u: &Upstream, st: &mut OutlierState, cfg: &Outlier, now: Instant, why: Why) {
    close_trial(u, st);
    let factor = 1u32 << st.ejections.min(20);
    let length = cfg
        .base_ejection
        .saturating_mul(factor)
        .min(cfg.max_ejection);
    st.ejections += 1;
    st.until = Some(now + length);
    st.for_connect = why == Why::Connect;
    u.set_ejected(true);
    u.pool.clear();
    c.state.outliers.count(why);
    tracing::warn!(cluster = %c.name, endpoint = %u.address, why = why.text(), ejection = ?length, "outlier ejected");
}

/// An active health check of `u` just passed: ends its ejection now, half-open (its first answer
/// decides), if it was taken out for a refused or timed-out connect (it is back up). Ejections for
/// failed answers run their course: the check path answering says little about them.
pub(crate) fn readmit(u: &Upstream, cluster: &str) {
    if !u.ejected() {
        return;
    }
    let _decide = u.cluster.outliers.decide();
    let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
    if st.until.is_some() && st.for_connect {
        readmit_locked(u, &mut st, Instant::now());
        tracing::info!(%cluster, endpoint = %u.address, "outlier ejection ended by a passing health check");
    }
}

/// Whether the endpoint's most recent active check failed.
fn last_check_failed(u: &Upstream) -> bool {
    u.checks.lock().is_ok_and(|c| c.failures > 0)
}

fn readmit_locked(u: &Upstream, st: &mut OutlierState, now: Instant) {
    st.until = None;
    st.since = Some(now);
    st.probation = true;
    st.at_return = (u.failures(), u.requests());
    u.set_trial(true);
    u.set_ejected(false);
}

fn close_trial(u: &Upstream, st: &mut OutlierState) {
    st.probation = false;
    u.set_trial(false);
}

/// A half-open endpoint answered well: closed again, it takes its full share at once (rather than
/// one request at a time until the next sweep). Called by the request path after a success.
pub(crate) fn trial_passed(u: &Upstream) {
    let mut st = u.outlier.lock().unwrap_or_else(|p| p.into_inner());
    if st.probation && u.failures() == st.at_return.0 {
        close_trial(u, &mut st);
    }
}
