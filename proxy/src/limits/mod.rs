//! Rate limits: per route and per cluster, keyed by client address, header, cookie or route; local to
//! the node or shared by the fleet over NATS ([`fleet`]).
//!
//! A snapshot holds each route's and cluster's [`Limiter`]s; a limiter's bucket table
//! ([`table::KeyTable`]) is carried to the next snapshot when the limit keeps its name, key and size,
//! so that a reload does not hand every client a fresh burst.

pub(crate) mod fleet;
pub(crate) mod gcra;
pub(crate) mod headers;
pub(crate) mod key;
pub(crate) mod report;
pub(crate) mod set;
mod standalone;

pub use standalone::StandaloneLimit;
pub(crate) mod table;

use crate::error::ProxyError;
use crate::telemetry::Telemetry;
use edgeplane_config::model::{LimitMode, LimitScope, RateLimit};
use gcra::Policy;
use headers::{Granted, Refusal};
use key::KeySource;
use metrics::Counter;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use table::KeyTable;

/// What a limit belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// A route's `rate_limits`.
    Route,
    /// A cluster's `rate_limits`.
    Cluster,
}

impl Owner {
    /// The label value.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Owner::Route => "route",
            Owner::Cluster => "cluster",
        }
    }
}

/// One limit of one route or cluster, with its buckets.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// The limit as configured.
    pub(crate) spec: RateLimit,
    /// Route or cluster.
    pub(crate) owner: Owner,
    /// The route's or cluster's name.
    pub(crate) owner_name: Arc<str>,
    pub(crate) policy: Policy,
    /// The buckets (carried across snapshots).
    pub(crate) table: Arc<KeyTable>,
    /// For fleet limits: this node's share (carried across snapshots).
    pub(crate) fleet: Option<Arc<fleet::Share>>,
    /// `RateLimit-Policy` of this limit.
    policy_header: http::HeaderValue,
    refused: Counter,
    shadowed: Counter,
}

impl Limiter {
    /// The limiter of `spec`, keeping `previous`'s buckets when it is the same limit.
    pub(crate) fn new(
        spec: &RateLimit,
        owner: Owner,
        owner_name: &str,
        previous: Option<&Limiter>,
        telemetry: Option<&Telemetry>,
    ) -> Limiter {
        let carried = previous.filter(|p| {
            p.spec.key == spec.key && p.spec.max_keys == spec.max_keys && p.spec.scope == spec.scope
        });
        let table = carried.map_or_else(
            || Arc::new(KeyTable::new(spec.max_keys)),
            |p| p.table.clone(),
        );
        let fleet = match spec.scope {
            LimitScope::Local => None,
            LimitScope::Fleet => Some(
                carried
                    .and_then(|p| p.fleet.clone())
                    .unwrap_or_else(|| Arc::new(fleet::Share::default())),
            ),
        };
        let counter = |mode: &str| {
            let (route, cluster) = match owner {
                Owner::Route => (owner_name, ""),
                Owner::Cluster => ("", owner_name),
            };
            let labels = [
                ("route", route),
                ("cluster", cluster),
                ("limit", spec.name.as_str()),
                ("mode", mode),
            ];
            telemetry.map_or_else(Counter::noop, |t| {
                t.counter("edgeplane_rate_limited_total", &labels)
            })
        };
        let policy = Policy::new(spec.interval_nanos(), spec.burst);
        Limiter {
            policy_header: headers::policy(&spec.name, spec.burst, policy),
            spec: spec.clone(),
            owner,
            owner_name: owner_name.into(),
            policy,
            table,
            fleet,
            refused: counter(LimitMode::Enforce.name()),
            shadowed: counter(LimitMode::Shadow.name()),
        }
    }

    /// The interval a key new to this node starts with (fleet limits: the fleet's share for it).
    fn fresh_interval(&self, key: u64) -> u64 {
        match &self.fleet {
            None => 0,
            Some(share) => share.fresh_interval(key, self.policy.interval),
        }
    }
}

impl Limiter {
    /// The `route` and `cluster` label values.
    pub(crate) fn labels(&self) -> (&str, &str) {
        match self.owner {
            Owner::Route => (&self.owner_name, ""),
            Owner::Cluster => ("", &self.owner_name),
        }
    }
}

/// Copies every limiter's state into its gauges (scrape time).
pub(crate) fn collect(t: &Telemetry, limits: &set::LimitSet) {
    let now = now();
    for l in limits.all() {
        let (route, cluster) = l.labels();
        let labels = [
            ("route", route),
            ("cluster", cluster),
            ("limit", l.spec.name.as_str()),
        ];
        t.gauge("edgeplane_rate_limit_keys", &labels)
            .set(l.table.active_keys(now) as f64);
        t.counter("edgeplane_rate_limit_evictions_total", &labels)
            .absolute(l.table.evictions());
        if let Some(share) = &l.fleet {
            t.gauge("edgeplane_rate_limit_fleet_share", &labels)
                .set(share.part_ppm.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6);
            t.gauge("edgeplane_rate_limit_fleet_nodes", &labels)
                .set(share.nodes() as f64);
        }
    }
}

/// The clock of every bucket: nanoseconds since the process's first rate-limit reading, so that
/// tables carried across snapshots keep their meaning.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// [`EPOCH`]'s time now.
pub(crate) fn now() -> u64 {
    at(Instant::now())
}

/// [`EPOCH`]'s time of `instant` (0 for an instant before the epoch).
#[inline]
pub(crate) fn at(instant: Instant) -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(instant.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

/// Checks a request that arrived at `received` against `limiters` in order. A request over an
/// enforced limit is refused ([`ProxyError::RateLimited`]); one over a shadow limit is counted and
/// goes on. `granted` keeps the fields the admitted response carries, when a limit asks for them.
#[inline(never)]
pub(crate) fn check(
    limiters: &[Limiter],
    source: &KeySource<'_>,
    received: Instant,
    granted: &mut Option<Box<Granted>>,
) -> Result<(), ProxyError> {
    let now = at(received);
    for l in limiters {
        let Some(key) = key::request_key(&l.spec.key, source) else {
            continue;
        };
        let decision = l.table.check(key, now, l.policy, || l.fresh_interval(key));
        if !decision.allowed {
            if l.spec.mode == LimitMode::Shadow {
                l.shadowed.increment(1);
                continue;
            }
            l.refused.increment(1);
            let refusal = Refusal::new(&l.spec.name, l.policy_header.clone(), decision);
            return Err(ProxyError::RateLimited(Box::new(refusal)));
        }
        if l.spec.response_headers {
            headers::grant(granted, &l.spec.name, &l.policy_header, decision);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeplane_config::model::LimitKey;
    use std::time::Duration;

    fn spec(rate: u64, burst: u64, mode: LimitMode) -> RateLimit {
        RateLimit {
            name: "l".into(),
            rate,
            per: Duration::from_secs(60),
            burst,
            key: vec![LimitKey::ClientIp],
            scope: LimitScope::Local,
            mode,
            max_keys: 100,
            response_headers: true,
        }
    }

    #[test]
    fn enforced_limits_refuse_and_shadow_limits_count() {
        let headers = http::HeaderMap::new();
        let source = KeySource {
            headers: &headers,
            peer: b"192.0.2.1",
            trusted: &[],
        };
        let shadow = Limiter::new(
            &spec(1, 1, LimitMode::Shadow),
            Owner::Route,
            "r",
            None,
            None,
        );
        let enforce = Limiter::new(
            &spec(1, 2, LimitMode::Enforce),
            Owner::Route,
            "r",
            None,
            None,
        );
        let limiters = [shadow, enforce];
        let mut granted = None;
        check(&limiters, &source, Instant::now(), &mut granted).unwrap();
        assert_eq!(granted.unwrap().remaining, 0, "the tighter limit's headers");
        // Over the shadow limit: let through.
        assert!(check(&limiters, &source, Instant::now(), &mut None).is_ok());
        match check(&limiters, &source, Instant::now(), &mut None) {
            Err(ProxyError::RateLimited(r)) => assert!(r.retry_after_secs >= 1),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_reloaded_limit_keeps_its_buckets_unless_its_key_changes() {
        let a = Limiter::new(
            &spec(10, 10, LimitMode::Enforce),
            Owner::Route,
            "r",
            None,
            None,
        );
        let same = Limiter::new(
            &spec(20, 5, LimitMode::Enforce),
            Owner::Route,
            "r",
            Some(&a),
            None,
        );
        assert!(Arc::ptr_eq(&a.table, &same.table));
        let mut other_key = spec(10, 10, LimitMode::Enforce);
        other_key.key = vec![LimitKey::Route];
        let fresh = Limiter::new(&other_key, Owner::Route, "r", Some(&a), None);
        assert!(!Arc::ptr_eq(&a.table, &fresh.table));
    }
}
