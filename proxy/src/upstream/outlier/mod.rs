//! Passive outlier detection: an endpoint with `consecutive_failures` failures in a row (connect
//! errors, upstream errors, timeouts, 5xx and 429 answers), or (with `failure_rate`) a recent failure
//! rate at or above that percentage, is ejected for `base_ejection × 2^(n-1)` (its n-th ejection, at
//! most `max_ejection`), never more than `max_ejected_percent` of a cluster at once. Each
//! `base_ejection` spent back in takes one off its ejection count.
//!
//! An endpoint that comes back is half-open: it takes one trial request at a time, and the first
//! answer decides. A failure before any success ejects it again at once (for the next, longer
//! period); a success closes it, and from then on a new streak or rate is needed.
//!
//! The request path takes an endpoint out at once on the evidence it sees: a connect refused, reset or
//! timed out (the endpoint is not listening, whatever the streak), a streak reaching
//! `consecutive_failures`, a half-open endpoint failing. Connect failures caused by this node's own
//! resources (out of file descriptors or ports) are never charged to an endpoint. A sweeper every
//! 100 ms judges failure rates, ends ejections and sets each cluster's panic mode; picks read the
//! ejected bit with the rest of the endpoint's flags.

mod eject;

pub(crate) use eject::{judge, readmit, trial_passed, Why};

use crate::tables::{Snapshot, Tables};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often the sweeper looks.
pub(crate) const SWEEP: Duration = Duration::from_millis(100);

/// Sweeps the tables in place until the task is dropped.
pub(crate) async fn run(tables: Arc<Tables>) {
    let mut every = tokio::time::interval(SWEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        sweep(&tables.load(), Instant::now());
    }
}

/// One pass: restores ejections that ended, ejects failing endpoints, decays ejection counts, and sets
/// each cluster's panic mode.
pub(crate) fn sweep(snapshot: &Snapshot, now: Instant) {
    for c in &snapshot.clusters {
        let (loads, enough) = crate::tables::priority::loads(c);
        panic_mode(c, enough);
        crate::tables::priority::apply(c, if c.state.panic() { &[1000] } else { &loads });
        zone_spill(c);
    }
    for c in &snapshot.clusters {
        match &c.outlier {
            Some(cfg) => eject::sweep_cluster(c, cfg, now),
            // Detection switched off: nobody stays out.
            None => {
                for e in c.endpoints.iter().filter(|e| e.upstream.ejected()) {
                    e.upstream.set_ejected(false);
                }
            }
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
    if c.state.set_spill(spill) {
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
        && crate::tables::priority::usable_percent(c, candidates) < u32::from(c.panic_threshold);
    if c.state.set_panic(on) {
        if on {
            tracing::warn!(cluster = %c.name, threshold = c.panic_threshold, "panic mode: too few usable endpoints, ignoring health");
        } else {
            tracing::info!(cluster = %c.name, "panic mode over");
        }
    }
}

#[cfg(test)]
mod tests;
