//! Which nodes a wave puts on the candidate. Order is by [`position`] (a hash of the node id), so the
//! same nodes come first in every rollout; a wave's choice is written as a [`Selector`] that each
//! node evaluates itself, so a node that joins during the rollout serves what its place says.

use super::plan::WaveSpec;
use edgeplane_bus::rollout::{format_position, parse_position, position, Selector};

/// A node of the fleet as the driver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetNode {
    /// Node id.
    pub id: String,
    /// Its zone.
    pub zone: Option<String>,
}

impl FleetNode {
    /// Whether `selector` picks it.
    pub fn selected(&self, selector: &Selector) -> bool {
        selector.selects(&self.id, self.zone.as_deref())
    }
}

/// Extends `selector` so that `wave` is on the candidate, given the fleet online now; returns the
/// nodes of `fleet` it adds (sorted).
pub fn extend(selector: &mut Selector, wave: &WaveSpec, fleet: &[FleetNode]) -> Vec<String> {
    let before: Vec<bool> = fleet.iter().map(|n| n.selected(selector)).collect();
    match wave {
        WaveSpec::Zone(z) => {
            if !selector.zones.contains(z) {
                selector.zones.push(z.clone());
            }
        }
        WaveSpec::Nodes(ids) => {
            for id in ids {
                if !selector.nodes.contains(id) {
                    selector.nodes.push(id.clone());
                }
            }
        }
        WaveSpec::Percent(p) if *p >= 100.0 => {
            selector.position_max = Some(format_position(u64::MAX));
        }
        WaveSpec::Percent(p) => {
            // Rounded up: 10% of 6 nodes is 1 node, never 0.
            let total = ((fleet.len() as f64) * p / 100.0).ceil() as usize;
            take_first(selector, total.max(1), fleet, &before);
        }
        WaveSpec::Count(n) => take_first(selector, *n, fleet, &before),
    }
    let mut added: Vec<String> = fleet
        .iter()
        .zip(&before)
        .filter(|(n, was)| !**was && n.selected(selector))
        .map(|(n, _)| n.id.clone())
        .collect();
    added.sort();
    added
}

/// Raises the selector's position bound until `total` nodes of `fleet` are selected.
fn take_first(selector: &mut Selector, total: usize, fleet: &[FleetNode], before: &[bool]) {
    let selected = before.iter().filter(|s| **s).count();
    let mut rest: Vec<u64> = fleet
        .iter()
        .zip(before)
        .filter(|(_, was)| !**was)
        .map(|(n, _)| position(&n.id))
        .collect();
    rest.sort_unstable();
    let need = total.saturating_sub(selected);
    if need == 0 || rest.is_empty() {
        return;
    }
    let last = rest[need.min(rest.len()) - 1];
    let current = selector
        .position_max
        .as_deref()
        .and_then(parse_position)
        .unwrap_or(0);
    if selector.position_max.is_none() || last > current {
        selector.position_max = Some(format_position(last));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(n: usize) -> Vec<FleetNode> {
        (1..=n)
            .map(|i| FleetNode {
                id: format!("edge-{i}"),
                zone: Some(if i % 2 == 0 { "a" } else { "b" }.into()),
            })
            .collect()
    }

    fn by_position(fleet: &[FleetNode]) -> Vec<String> {
        let mut ids: Vec<&FleetNode> = fleet.iter().collect();
        ids.sort_by_key(|n| position(&n.id));
        ids.iter().map(|n| n.id.clone()).collect()
    }

    #[test]
    fn counts_and_shares_take_the_first_by_position_cumulatively() {
        let f = fleet(6);
        let order = by_position(&f);
        let mut s = Selector::default();
        assert_eq!(extend(&mut s, &WaveSpec::Count(1), &f), [order[0].clone()]);
        // 10% of 6 rounds up to 1: already there.
        assert!(extend(&mut s, &WaveSpec::Percent(10.0), &f).is_empty());
        let mut next = extend(&mut s, &WaveSpec::Percent(50.0), &f);
        let mut want = vec![order[1].clone(), order[2].clone()];
        next.sort();
        want.sort();
        assert_eq!(next, want);
        assert_eq!(extend(&mut s, &WaveSpec::Percent(100.0), &f).len(), 3);
        assert!(s.selects("a-node-that-joins-later", None));
    }

    #[test]
    fn the_same_plan_picks_the_same_nodes() {
        let f = fleet(20);
        let mut a = Selector::default();
        let mut b = Selector::default();
        let mut reversed = f.clone();
        reversed.reverse();
        assert_eq!(
            extend(&mut a, &WaveSpec::Count(3), &f),
            extend(&mut b, &WaveSpec::Count(3), &reversed)
        );
    }

    #[test]
    fn explicit_nodes_and_zones_count_toward_later_shares() {
        let f = fleet(6);
        let mut s = Selector::default();
        assert_eq!(
            extend(
                &mut s,
                &WaveSpec::Nodes(vec!["edge-5".into(), "ghost".into()]),
                &f
            ),
            ["edge-5"]
        );
        let zone_a = extend(&mut s, &WaveSpec::Zone("a".into()), &f);
        assert_eq!(zone_a, ["edge-2", "edge-4", "edge-6"]);
        // 4 of 6 are on the candidate: 50% adds nobody.
        assert!(extend(&mut s, &WaveSpec::Percent(50.0), &f).is_empty());
        assert_eq!(extend(&mut s, &WaveSpec::Count(5), &f).len(), 1);
    }
}
