//! Per-cluster live state that survives rebuilds: panic mode, and the circuit breaker: at most `max_requests` in flight to the cluster on this node;
//! beyond, requests get 503 at once instead of queueing onto struggling upstreams. The count lives in
//! a [`Breaker`] shared by every snapshot in which the cluster keeps its name.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// One cluster's admission state.
#[derive(Debug, Default)]
pub struct Breaker {
    in_flight: AtomicU32,
    rejected: AtomicU64,
    /// Panic mode: too few endpoints are usable, so picks ignore health (set by the sweeper).
    panic: AtomicBool,
    /// Zone-aware clusters: the local zone has too few usable endpoints (set by the sweeper).
    spill: AtomicBool,
}

impl Breaker {
    /// Admits a request if fewer than `max` are in flight; the guard lets it out when dropped.
    pub fn try_enter(self: &Arc<Self>, max: u32) -> Option<Admission> {
        let before = self.in_flight.fetch_add(1, Relaxed);
        if before >= max {
            self.in_flight.fetch_sub(1, Relaxed);
            self.rejected.fetch_add(1, Relaxed);
            return None;
        }
        Some(Admission(self.clone()))
    }

    /// Requests admitted and not finished.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    /// Whether the cluster is in panic mode.
    pub fn panic(&self) -> bool {
        self.panic.load(Relaxed)
    }

    /// Enters or leaves panic mode; returns whether that changed.
    pub fn set_panic(&self, on: bool) -> bool {
        self.panic.swap(on, Relaxed) != on
    }

    /// Whether zone-aware picks may stay in the local zone.
    pub fn local_ok(&self) -> bool {
        !self.spill.load(Relaxed)
    }

    /// Spills over to every zone (`true`) or back to the local one; returns whether that changed.
    pub fn set_spill(&self, on: bool) -> bool {
        self.spill.swap(on, Relaxed) != on
    }

    /// Requests turned away, ever.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }
}

/// An admitted request; dropping it frees its place.
#[derive(Debug)]
pub struct Admission(Arc<Breaker>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let b = Arc::new(Breaker::default());
        let first = b.try_enter(2).unwrap();
        let _second = b.try_enter(2).unwrap();
        assert!(b.try_enter(2).is_none());
        assert_eq!((b.in_flight(), b.rejected()), (2, 1));
        drop(first);
        assert!(b.try_enter(2).is_some());
    }
}
