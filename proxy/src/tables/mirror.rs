//! A route's request mirroring state, carried across snapshots while the route keeps the same
//! mirror: the sampling draw, the count of mirrored requests in flight (bounded by
//! `max_concurrent`) and the outcome counters.

use crate::tables::balancer::rng::Rng;
use crate::telemetry::Telemetry;
use edgeplane_config::model::Mirror;
use metrics::Counter;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// How a request's mirroring went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MirrorOutcome {
    /// The shadow answered (any status).
    Answered,
    /// No answer: no endpoint, connect error, timeout, reset.
    Failed,
    /// Not mirrored: `max_concurrent` copies were in flight.
    Busy,
    /// Not mirrored: the body was larger than `max_body`, or of unknown length.
    TooLarge,
}

const OUTCOMES: [&str; 4] = ["answered", "failed", "busy", "too_large"];

/// One route's mirroring in one snapshot.
#[derive(Debug)]
pub(crate) struct MirrorState {
    /// The route's mirror settings.
    pub(crate) policy: Mirror,
    /// The shadow cluster's name.
    pub(crate) cluster: Arc<str>,
    /// What outlives the snapshot.
    carried: Arc<Carried>,
}

/// What a route's mirroring keeps across snapshots.
#[derive(Debug)]
struct Carried {
    in_flight: AtomicUsize,
    rng: Rng,
    outcomes: [Counter; 4],
}

/// A mirrored request's place among the route's `max_concurrent`; freed when dropped.
#[derive(Debug)]
pub(crate) struct MirrorSlot(Arc<Carried>);

impl Drop for MirrorSlot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl MirrorSlot {
    /// Counts how the mirrored request went.
    pub(crate) fn count(&self, outcome: MirrorOutcome) {
        self.0.outcomes[outcome as usize].increment(1);
    }
}

impl MirrorState {
    /// The state of `route`'s mirror to `cluster`, counting into `telemetry`.
    pub(crate) fn new(
        policy: Mirror,
        route: &str,
        cluster: &str,
        telemetry: Option<&Telemetry>,
    ) -> MirrorState {
        let counter = |outcome: &str| {
            telemetry.map_or_else(Counter::noop, |t| {
                t.counter(
                    "edgeplane_mirror_requests_total",
                    &[("route", route), ("cluster", cluster), ("outcome", outcome)],
                )
            })
        };
        MirrorState {
            policy,
            cluster: cluster.into(),
            carried: Arc::new(Carried {
                in_flight: AtomicUsize::new(0),
                rng: Rng::from_entropy(),
                outcomes: OUTCOMES.map(counter),
            }),
        }
    }

    /// The state of the same route and shadow cluster under new settings, keeping the copies in
    /// flight and the counters of `previous`.
    pub(crate) fn carried(previous: &MirrorState, policy: Mirror) -> MirrorState {
        MirrorState {
            policy,
            cluster: previous.cluster.clone(),
            carried: previous.carried.clone(),
        }
    }

    /// Whether this request is among the sampled share.
    pub(crate) fn sampled(&self) -> bool {
        match self.policy.per_million {
            0 => false,
            1_000_000.. => true,
            share => self.carried.rng.next_u64() % 1_000_000 < u64::from(share),
        }
    }

    /// A place for one more mirrored request, unless `max_concurrent` are in flight (counted busy).
    pub(crate) fn try_slot(&self) -> Option<MirrorSlot> {
        let max = self.policy.max_concurrent;
        let taken =
            self.carried
                .in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                });
        match taken {
            Ok(_) => Some(MirrorSlot(self.carried.clone())),
            Err(_) => {
                self.count(MirrorOutcome::Busy);
                None
            }
        }
    }

    /// Counts how a request's mirroring went.
    pub(crate) fn count(&self, outcome: MirrorOutcome) {
        self.carried.outcomes[outcome as usize].increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(per_million: u32, max_concurrent: usize) -> MirrorState {
        let policy = Mirror {
            cluster: 0,
            per_million,
            max_body: 0,
            max_concurrent,
        };
        MirrorState::new(policy, "r", "shadow", None)
    }

    #[test]
    fn slots_are_bounded_and_freed() {
        let s = state(1_000_000, 2);
        let (a, b) = (s.try_slot().unwrap(), s.try_slot().unwrap());
        assert!(
            s.try_slot().is_none(),
            "a third copy over max_concurrent = 2"
        );
        drop(a);
        assert!(s.try_slot().is_some());
        drop(b);
    }

    #[test]
    fn a_carried_state_keeps_the_copies_in_flight() {
        let s = state(1_000_000, 1);
        let slot = s.try_slot().unwrap();
        let next = MirrorState::carried(&s, s.policy);
        assert!(
            next.try_slot().is_none(),
            "the copy in flight still counts after a reload"
        );
        drop(slot);
        assert!(next.try_slot().is_some());
    }

    #[test]
    fn sampling_follows_the_share() {
        assert!((0..1000).all(|_| state(1_000_000, 1).sampled()));
        let none = state(0, 1);
        assert!((0..1000).all(|_| !none.sampled()));
        let tenth = state(100_000, 1);
        let hits = (0..20_000).filter(|_| tenth.sampled()).count();
        assert!((1_600..2_400).contains(&hits), "{hits} of 20,000 at 10 %");
    }
}
