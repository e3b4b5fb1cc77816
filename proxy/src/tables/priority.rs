//! Priority failover, computed by the sweeper: how a cluster's traffic splits over its priority
//! levels, from the share of each level's endpoints that are usable (Envoy's priority load).
//!
//! A level whose usable share is at least `failover_below` percent takes all the traffic that reaches
//! it; below, it takes `share / failover_below` of it and hands the rest to the next level. When every
//! level together falls short, the loads are scaled up to the whole. Recovery is symmetric: as the
//! best level's usable share climbs back, its load returns (failback), within one sweep.

use crate::tables::cluster::{Cluster, Endpoint};

/// The usable share of `endpoints`, in percent of their count.
pub(crate) fn usable_percent(c: &Cluster, endpoints: &[Endpoint]) -> u32 {
    if endpoints.is_empty() {
        return 0;
    }
    let usable = endpoints
        .iter()
        .filter(|e| e.upstream.usable(c.health_threshold))
        .count();
    (usable * 100 / endpoints.len()) as u32
}

/// Each level's share of traffic in thousandths (best level first), and whether all levels together
/// have enough usable endpoints.
pub(crate) fn loads(c: &Cluster) -> (Vec<u16>, bool) {
    let threshold = u32::from(c.failover_below.max(1));
    // Each level's health in thousandths: its usable share scaled by the threshold, at most whole.
    let health: Vec<u32> = c
        .levels()
        .map(|l| (usable_percent(c, l) * 1000 / threshold).min(1000))
        .collect();
    let total: u32 = health.iter().sum();
    let mut loads = Vec::with_capacity(health.len());
    if total == 0 {
        loads.push(1000);
        return (loads, false);
    }
    if total < 1000 {
        // Short everywhere: spread in proportion to health.
        let mut given = 0;
        for (i, &h) in health.iter().enumerate() {
            let share = if i + 1 == health.len() {
                1000 - given
            } else {
                h * 1000 / total
            };
            given += share;
            loads.push(share as u16);
        }
        return (loads, false);
    }
    let mut left = 1000;
    for &h in &health {
        let share = h.min(left);
        left -= share;
        loads.push(share as u16);
    }
    (loads, true)
}

/// Updates the cluster's traffic split; logs changes.
pub(crate) fn apply(c: &Cluster, loads: &[u16]) {
    if c.backups.is_empty() {
        return;
    }
    if c.state.set_levels(loads) {
        tracing::info!(cluster = %c.name, ?loads, "priority levels: traffic split changed (per mille, best level first)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Snapshot;
    use edgeplane_controller::LiveEndpoint;

    fn snapshot(primaries: u16, backups: u16) -> Snapshot {
        let mut text = String::from(
            "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n",
        );
        for p in 0..primaries + backups {
            let priority = u8::from(p >= primaries);
            text += &format!(
                "[[clusters.c.endpoints]]\naddress = \"127.0.0.1:{}\"\npriority = {priority}\n",
                p + 1
            );
        }
        Snapshot::build(&edgeplane_config::from_toml(&text).unwrap().routing, None).unwrap()
    }

    #[test]
    fn traffic_moves_to_backups_as_primaries_fail_and_comes_back() {
        let s = snapshot(10, 2);
        let c = &s.clusters[0];
        assert_eq!(loads(c), (vec![1000, 0], true));
        // 8 of 10 usable: above the 70 % default, the primaries keep everything.
        for e in &c.endpoints[..2] {
            e.upstream.set_health(0);
        }
        assert_eq!(loads(c), (vec![1000, 0], true));
        // 5 of 10: 50 / 70 of the traffic stays, the rest goes to the backups.
        for e in &c.endpoints[2..5] {
            e.upstream.set_health(0);
        }
        assert_eq!(loads(c), (vec![714, 286], true));
        // Every primary down: all to the backups.
        for e in &c.endpoints[..10] {
            e.upstream.set_health(0);
        }
        assert_eq!(loads(c), (vec![0, 1000], true));
        // Half the backups too: short everywhere, so the backups take it all (the primaries are 0).
        c.endpoints[10].upstream.set_health(0);
        assert_eq!(loads(c), (vec![0, 1000], false));
        // Failback: primaries recover.
        for e in &c.endpoints {
            e.upstream.set_health(100);
        }
        assert_eq!(loads(c), (vec![1000, 0], true));
    }

    #[test]
    fn picks_follow_the_split() {
        let s = snapshot(2, 2);
        let c = &s.clusters[0];
        c.endpoints[0].upstream.set_health(0);
        let (l, _) = loads(c);
        assert_eq!(l, vec![714, 286]);
        apply(c, &l);
        let backups = (0..10_000)
            .filter(|_| c.pick().unwrap().priority == 1)
            .count();
        assert!((2_600..=3_100).contains(&backups), "{backups}");
        c.endpoints[0].upstream.set_health(100);
        apply(c, &loads(c).0);
        assert!((0..1000).all(|_| c.pick().unwrap().priority == 0));
    }
}
