//! Per-cluster live state that survives rebuilds, shared by every snapshot in which the cluster keeps
//! its name: the circuit breaker's counters (requests, connections, pending requests, retries), panic
//! mode, zone spill-over, the traffic split between priority levels and outlier detection's counts.
//!
//! Beyond a limit, requests get 503 at once instead of piling onto struggling upstreams.

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Priority levels a cluster may have (0 to 7).
pub(crate) const LEVELS: usize = 8;

/// One cluster's live state.
#[derive(Debug, Default)]
pub struct ClusterState {
    in_flight: AtomicU32,
    rejected: AtomicU64,
    /// Open upstream connections, busy and idle.
    connections: AtomicU32,
    /// Upstream connections opened, ever.
    opened: AtomicU64,
    /// Requests waiting for a connection slot.
    pending: AtomicU32,
    /// Retries in flight.
    retries: AtomicU32,
    /// Wakes requests waiting for a connection slot when one frees up or goes idle.
    slot_freed: tokio::sync::Notify,
    /// Panic mode: too few endpoints are usable, so picks ignore health (set by the sweeper).
    panic: AtomicBool,
    /// Zone-aware clusters: the local zone has too few usable endpoints (set by the sweeper).
    spill: AtomicBool,
    /// Whether traffic is split over several priority levels (else all goes to the best one).
    split: AtomicBool,
    /// Cumulative share of traffic per priority level, in thousandths (set by the sweeper).
    cuts: [AtomicU16; LEVELS],
    /// Outlier detection's decisions and counts.
    pub(crate) outliers: crate::upstream::ejections::ClusterBook,
}

impl ClusterState {
    /// Admits a request if fewer than `max` are in flight; the guard lets it out when dropped.
    pub(crate) fn try_enter(self: &Arc<Self>, max: u32) -> Option<Admission> {
        let before = self.in_flight.fetch_add(1, Relaxed);
        if before >= max {
            self.in_flight.fetch_sub(1, Relaxed);
            self.rejected.fetch_add(1, Relaxed);
            return None;
        }
        Some(Admission(self.clone()))
    }

    /// Requests admitted and not finished (counted only when `max_requests` is set).
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }

    /// Requests and retries turned away by a limit, ever.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }

    /// Whether the cluster is in panic mode.
    pub(crate) fn panic(&self) -> bool {
        self.panic.load(Relaxed)
    }

    /// Enters or leaves panic mode; returns whether that changed.
    pub(crate) fn set_panic(&self, on: bool) -> bool {
        self.panic.swap(on, Relaxed) != on
    }

    /// Whether zone-aware picks may stay in the local zone.
    pub(crate) fn local_ok(&self) -> bool {
        !self.spill.load(Relaxed)
    }

    /// Spills over to every zone (`true`) or back to the local one; returns whether that changed.
    pub(crate) fn set_spill(&self, on: bool) -> bool {
        self.spill.swap(on, Relaxed) != on
    }

    /// The priority level (index among the cluster's levels, best first) a pick goes to, for a
    /// uniform random `draw`: 0 unless the best level is short of usable endpoints.
    #[inline]
    pub(crate) fn level(&self, draw: u64) -> usize {
        if !self.split.load(Relaxed) {
            return 0;
        }
        let r = (draw % 1000) as u16;
        self.cuts
            .iter()
            .position(|c| r < c.load(Relaxed))
            .unwrap_or(0)
    }

    /// Sets the traffic share of each level, in thousandths summing to 1000 (best level first);
    /// returns whether that changed.
    pub fn set_levels(&self, shares: &[u16]) -> bool {
        let mut changed = false;
        let mut total = 0u16;
        for (i, cut) in self.cuts.iter().enumerate() {
            total = total.saturating_add(shares.get(i).copied().unwrap_or(0));
            changed |= cut.swap(total.min(1000), Relaxed) != total.min(1000);
        }
        let split = shares.first().is_some_and(|&s| s < 1000);
        self.split.store(split, Relaxed);
        changed
    }

    /// Each level's current share of traffic in thousandths, best first.
    pub fn level_shares(&self) -> [u16; LEVELS] {
        let mut out = [0; LEVELS];
        let mut before = 0;
        for (o, c) in out.iter_mut().zip(&self.cuts) {
            let cut = if self.split.load(Relaxed) {
                c.load(Relaxed)
            } else {
                1000
            };
            *o = cut.saturating_sub(before);
            before = cut;
        }
        out
    }

    /// Open upstream connections of the cluster on this node.
    pub fn connections(&self) -> u32 {
        self.connections.load(Relaxed)
    }

    /// Takes a connection slot if fewer than `max` (if any) are open.
    pub(crate) fn try_connection(self: &Arc<Self>, max: Option<u32>) -> Option<ConnSlot> {
        let before = self.connections.fetch_add(1, Relaxed);
        if max.is_some_and(|m| before >= m) {
            self.connections.fetch_sub(1, Relaxed);
            return None;
        }
        self.opened.fetch_add(1, Relaxed);
        Some(ConnSlot(self.clone(), true))
    }

    /// Upstream connections the cluster opened on this node, ever.
    pub fn opened(&self) -> u64 {
        self.opened.load(Relaxed)
    }

    /// Waits until a connection slot may have freed up (a connection closed or went idle). Admits at
    /// most `max_pending` waiters; `None` when the queue is full.
    pub(crate) async fn wait_for_slot(&self, max_pending: u32) -> Option<()> {
        let before = self.pending.fetch_add(1, Relaxed);
        let _leave = Leave(&self.pending);
        if before >= max_pending {
            self.rejected.fetch_add(1, Relaxed);
            return None;
        }
        self.slot_freed.notified().await;
        Some(())
    }

    /// Requests waiting for a connection slot.
    pub fn pending(&self) -> u32 {
        self.pending.load(Relaxed)
    }

    /// Wakes one request waiting for a connection slot, if any.
    pub(crate) fn slot_freed(&self) {
        if self.pending.load(Relaxed) > 0 {
            self.slot_freed.notify_one();
        }
    }

    /// Takes a retry slot if the limits allow: fewer than `max` retries in flight (if set), and the
    /// budget (`allowed`) not spent.
    pub(crate) fn try_retry(self: &Arc<Self>, max: Option<u32>, allowed: u32) -> Option<RetrySlot> {
        let before = self.retries.fetch_add(1, Relaxed);
        if before >= allowed || max.is_some_and(|m| before >= m) {
            self.retries.fetch_sub(1, Relaxed);
            self.rejected.fetch_add(1, Relaxed);
            return None;
        }
        Some(RetrySlot(self.clone()))
    }

    /// Retries in flight.
    pub(crate) fn retries(&self) -> u32 {
        self.retries.load(Relaxed)
    }
}

struct Leave<'a>(&'a AtomicU32);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// An admitted request; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Admission(Arc<ClusterState>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// An open upstream connection's place in its cluster's count; dropped with the connection, which
/// wakes a request waiting for a place (unless the place was given back quietly).
#[derive(Debug)]
pub(crate) struct ConnSlot(Arc<ClusterState>, bool);

impl ConnSlot {
    /// Wakes a request of the cluster waiting for a connection slot (this connection went idle).
    pub(crate) fn notify(&self) {
        self.0.slot_freed();
    }

    /// Gives the place back without waking a waiting request: its connect failed for lack of this
    /// node's own resources, which freed nothing a waiter could use (waking one would only have it
    /// fail the same way and wake the next).
    pub(crate) fn give_back_quietly(mut self) {
        self.1 = false;
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Relaxed);
        if self.1 {
            self.0.slot_freed();
        }
    }
}

/// A retry in flight; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct RetrySlot(Arc<ClusterState>);

impl Drop for RetrySlot {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let b = Arc::new(ClusterState::default());
        let first = b.try_enter(2).unwrap();
        let _second = b.try_enter(2).unwrap();
        assert!(b.try_enter(2).is_none());
        assert_eq!((b.in_flight(), b.rejected()), (2, 1));
        drop(first);
        assert!(b.try_enter(2).is_some());
    }

    #[test]
    fn connection_and_retry_slots_are_counted_and_freed() {
        let b = Arc::new(ClusterState::default());
        let c1 = b.try_connection(Some(2)).unwrap();
        let _c2 = b.try_connection(Some(2)).unwrap();
        assert!(b.try_connection(Some(2)).is_none());
        assert!(b.try_connection(None).is_some(), "no limit: always");
        drop(c1);
        assert_eq!(b.connections(), 1);
        let r = b.try_retry(Some(1), 10).unwrap();
        assert!(b.try_retry(Some(1), 10).is_none(), "max_retries");
        drop(r);
        assert!(b.try_retry(None, 0).is_none(), "budget spent");
        assert_eq!(b.retries(), 0);
    }

    #[test]
    fn levels_split_by_cumulative_shares() {
        let b = ClusterState::default();
        assert_eq!(b.level(999), 0, "unsplit: the best level");
        assert!(b.set_levels(&[700, 300]));
        assert_eq!(
            (b.level(0), b.level(699), b.level(700), b.level(999)),
            (0, 0, 1, 1)
        );
        assert_eq!(&b.level_shares()[..3], &[700, 300, 0]);
        assert!(b.set_levels(&[1000]));
        assert_eq!(b.level(999), 0);
        assert!(!b.set_levels(&[1000]), "unchanged");
    }
}
