//! Fleet limits: how a node's share of a limit follows the demand the nodes report to each other.
//!
//! Every `REPORT_EVERY` each node reports, per fleet limit, the request rate of its hot keys
//! ([`super::report`]). For a key, a node's share of the limit is its own demand over the fleet's:
//! `own / (own + Σ peers)`, never more than 1, and its bucket runs at `rate × share` with a burst of
//! `burst × share` (at least one request). A node's own demand counts as at least one request per
//! report interval, so that a node where a key just appeared is not shut out until its next report.
//! A key this node has not seen yet starts with the share its peers' reports leave it, or `1 / N` of
//! the rate when no peer reported it (N: nodes reporting this limit), and keeps that until its own
//! report has had a round to reach the peers: a key arriving at every node at once is not taken
//! whole by each.
//!
//! When the bus is down, peers' last reports are kept as they were (shares freeze and the limit
//! holds, never failing closed); when a peer stops reporting while the bus is up, its demand is
//! forgotten after [`PEER_EXPIRY`] and the others' shares grow.

use super::table::{Demand, KeyTable};
use arc_swap::ArcSwap;
use foldhash::{HashMap, HashMapExt};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a node reports its demand.
pub(crate) const REPORT_EVERY: Duration = Duration::from_millis(200);
/// A peer silent this long (while the bus is up) no longer counts.
pub(crate) const PEER_EXPIRY: Duration = Duration::from_secs(2);
/// Keys reported at most per limit and report: the hottest.
pub(crate) const MAX_REPORTED_KEYS: usize = 512;
/// A key is reported when its demand on this node is at least this share of the limit's rate over
/// the number of nodes: below it, keys unreported on every node together stay under a tenth of the
/// rate.
const REPORT_FLOOR: f64 = 0.1;
/// Weight of the newest interval in a key's own demand (the rest is the previous estimate).
const SMOOTHING: f64 = 0.5;

/// This node's share of one fleet limit, read on the request path.
#[derive(Debug, Default)]
pub(crate) struct Share {
    /// Nodes reporting the limit, this one included (at least 1).
    nodes: AtomicU64,
    /// Keys peers report and this node does not track: the interval a new bucket starts with.
    newcomers: ArcSwap<HashMap<u64, u64>>,
    /// This node's part of the fleet's demand on its hot keys, in millionths (metrics).
    pub(crate) part_ppm: AtomicU64,
}

impl Share {
    /// The interval a key new to this node starts with; `base` is the limit's own.
    pub(crate) fn fresh_interval(&self, key: u64, base: u64) -> u64 {
        if let Some(&i) = self.newcomers.load().get(&key) {
            return i;
        }
        match self.nodes.load(Relaxed) {
            0 | 1 => 0,
            n => base.saturating_mul(n),
        }
    }

    /// Nodes reporting the limit, this one included.
    pub(crate) fn nodes(&self) -> u64 {
        self.nodes.load(Relaxed).max(1)
    }
}

/// One peer's last report of a limit.
#[derive(Debug)]
struct PeerReport {
    at: Instant,
    /// Requests per second by key.
    keys: HashMap<u64, f64>,
}

/// The controller-side book of one fleet limit: own demand, peers' reports, and the shares they
/// make.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    /// Own demand per key: requests per second (smoothed), and reports made since it appeared.
    own: HashMap<u64, (f64, u32)>,
    peers: HashMap<Arc<str>, PeerReport>,
    drained: Vec<Demand>,
}

impl Ledger {
    /// Folds the requests counted since the last call (over `elapsed`) into this node's demand and
    /// returns the keys to report, hottest first: those at or over the report floor for a limit of
    /// `rate_per_sec`.
    pub(crate) fn take_own(
        &mut self,
        table: &KeyTable,
        elapsed: Duration,
        rate_per_sec: f64,
        nodes: u64,
    ) -> Vec<(u64, f64)> {
        let secs = elapsed.as_secs_f64().max(0.001);
        self.drained.clear();
        table.drain_demand(&mut self.drained);
        for (v, rounds) in self.own.values_mut() {
            *v *= 1.0 - SMOOTHING;
            *rounds = rounds.saturating_add(1);
        }
        for d in &self.drained {
            let rate = d.requests as f64 / secs;
            self.own.entry(d.key).or_insert((0.0, 0)).0 += SMOOTHING * rate;
        }
        // A key quiet long enough is forgotten (under 0.1 request per second).
        self.own.retain(|_, (v, _)| *v >= 0.1);
        let floor = REPORT_FLOOR * rate_per_sec / nodes.max(1) as f64;
        let mut hot: Vec<(u64, f64)> = self
            .own
            .iter()
            .filter(|(_, &(v, _))| v >= floor)
            .map(|(&k, &(v, _))| (k, v))
            .collect();
        hot.sort_by(|a, b| b.1.total_cmp(&a.1));
        hot.truncate(MAX_REPORTED_KEYS);
        hot
    }

    /// Records peer `node`'s report of this limit, received at `at`.
    pub(crate) fn peer(&mut self, node: &str, at: Instant, keys: HashMap<u64, f64>) {
        match self.peers.get_mut(node) {
            Some(p) => {
                p.at = at;
                p.keys = keys;
            }
            None => {
                self.peers.insert(node.into(), PeerReport { at, keys });
            }
        }
    }

    /// Forgets peers silent for [`PEER_EXPIRY`] at `now`; not called while the bus is down.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.peers
            .retain(|_, p| now.saturating_duration_since(p.at) < PEER_EXPIRY);
    }

    /// Peers counted.
    #[cfg(test)]
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Computes this node's share of every key it or its peers have demand for, writes it into
    /// `table` and `share`. `interval` is the limit's own, `report_every` the report period.
    pub(crate) fn apply(
        &self,
        table: &KeyTable,
        share: &Share,
        interval: u64,
        report_every: Duration,
    ) {
        let nodes = 1 + self.peers.len() as u64;
        share.nodes.store(nodes, Relaxed);
        let mut peer_demand: HashMap<u64, f64> = HashMap::new();
        for p in self.peers.values() {
            for (&k, &d) in &p.keys {
                *peer_demand.entry(k).or_insert(0.0) += d;
            }
        }
        // At least one request per report interval of own demand.
        let least = 1.0 / report_every.as_secs_f64().max(0.001);
        let scaled = |own: f64, peers: f64| -> u64 {
            if peers <= 0.0 {
                return 0;
            }
            let own = own.max(least);
            let fraction = own / (own + peers);
            // Never more than the whole limit, whatever a report says.
            ((interval as f64 / fraction).min(u64::MAX as f64) as u64).max(interval)
        };
        let (mut mine, mut all) = (0.0, 0.0);
        for (&k, &(own, rounds)) in &self.own {
            let peers = peer_demand.get(&k).copied().unwrap_or(0.0);
            // A new key no peer reports yet keeps the share it started with for one more round.
            if peers > 0.0 || rounds >= 1 {
                table.set_interval(k, scaled(own, peers));
            }
            mine += own;
            all += own + peers;
        }
        let mut newcomers = HashMap::with_capacity(peer_demand.len());
        for (&k, &peers) in &peer_demand {
            if !self.own.contains_key(&k) {
                newcomers.insert(k, scaled(0.0, peers));
                all += peers;
                // A key peers report and this node tracks with no demand of its own in a while
                // takes the same share.
                table.set_interval(k, scaled(0.0, peers));
            }
        }
        share.newcomers.store(Arc::new(newcomers));
        let part = if all > 0.0 { mine / all } else { 1.0 };
        share.part_ppm.store((part * 1e6) as u64, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::gcra::Policy;

    const MS: u64 = 1_000_000;

    fn peers(pairs: &[(u64, f64)]) -> HashMap<u64, f64> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn shares_follow_demand_and_never_exceed_the_limit() {
        // 1,000 per second: interval 1 ms.
        let table = KeyTable::new(64);
        let share = Share::default();
        let policy = Policy::new(MS, 100);
        let mut ledger = Ledger::default();
        // This node sees 700 requests of key 9 in 200 ms... twice, so the smoothed demand settles.
        for _ in 0..700 {
            table.check(9, 0, policy, || 0);
        }
        ledger.take_own(&table, Duration::from_millis(200), 1000.0, 1);
        for _ in 0..700 {
            table.check(9, 0, policy, || 0);
        }
        let hot = ledger.take_own(&table, Duration::from_millis(200), 1000.0, 1);
        assert_eq!(hot.len(), 1);
        assert!((hot[0].1 - 2625.0).abs() < 1.0, "{hot:?}");
        let now = Instant::now();
        ledger.peer("b", now, peers(&[(9, 375.0)]));
        ledger.peer("c", now, peers(&[(9, 375.0), (10, 50.0)]));
        ledger.peer("d", now, peers(&[(9, 375.0)]));
        ledger.apply(&table, &share, MS, REPORT_EVERY);
        assert_eq!(share.nodes(), 4);
        // 2625 / (2625 + 1125) = 0.7 of the limit: an interval of 1 / 0.7 ms.
        let (_, interval) = table.peek(9, 10 * 1_000 * MS, policy).unwrap();
        assert_eq!(interval, 1_428_571);
        // Key 10 is new here: it starts with what c's demand leaves (5 of 55 per second).
        assert_eq!(share.fresh_interval(10, MS), 11 * MS);
        // An unknown key starts at a quarter of the limit.
        assert_eq!(share.fresh_interval(11, MS), 4 * MS);
        // Reports of no demand cannot push a share over the whole limit.
        ledger.peer("b", now, peers(&[(9, 0.0)]));
        ledger.peer("c", now, peers(&[]));
        ledger.peer("d", now, peers(&[]));
        ledger.apply(&table, &share, MS, REPORT_EVERY);
        assert_eq!(table.peek(9, 10_000 * MS, policy).unwrap().1, 0);
    }

    #[test]
    fn silent_peers_expire_unless_the_bus_is_down() {
        let mut ledger = Ledger::default();
        let t0 = Instant::now();
        ledger.peer("b", t0, peers(&[(1, 10.0)]));
        ledger.expire(t0 + Duration::from_secs(1));
        assert_eq!(ledger.peer_count(), 1);
        ledger.expire(t0 + PEER_EXPIRY);
        assert_eq!(ledger.peer_count(), 0);
    }

    #[test]
    fn cold_keys_stay_off_the_bus() {
        let table = KeyTable::new(64);
        let policy = Policy::new(MS, 100);
        let mut ledger = Ledger::default();
        // Limit 1,000/s on 4 nodes: the floor is 25 per second (5 requests in 200 ms).
        for _ in 0..4 {
            table.check(1, 0, policy, || 0);
        }
        for _ in 0..40 {
            table.check(2, 0, policy, || 0);
        }
        let hot = ledger.take_own(&table, Duration::from_millis(200), 1000.0, 4);
        assert_eq!(hot.iter().map(|h| h.0).collect::<Vec<_>>(), vec![2]);
    }
}
