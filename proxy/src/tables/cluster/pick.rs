//! The pick: which endpoint of a cluster a request goes to, applying health, priority failover,
//! panic mode, zone awareness, slow start, consistent-hash keys and affinity; and the pick for a
//! retry, avoiding the endpoints tried.

use super::Cluster;
use crate::tables::balancer::hashing::mix;
use crate::tables::balancer::Balancer;
use crate::tables::endpoint::Endpoint;
use std::net::SocketAddr;

impl Cluster {
    /// Picks a usable endpoint for a request (see [`crate::upstream::Upstream::usable`]). See [`Cluster::pick_for`].
    pub fn pick(&self) -> Option<&Endpoint> {
        self.pick_for(None)
    }

    /// Picks a usable endpoint for a request with consistent-hashing key `key`: in the local zone
    /// first (zone-aware clusters), else in the priority level the traffic split sends this pick to
    /// (the best level unless it is short of usable endpoints): the balancer's choice, or its next
    /// choices (as many as there are candidates) while the choice is unusable. When the key's
    /// endpoint is unusable, the next tries rehash the key, so every node moves that key to the same
    /// endpoint. If that level has no usable endpoint, the least loaded usable endpoint of the best
    /// level that has one. `None` when no endpoint is usable.
    pub fn pick_for(&self, key: Option<u64>) -> Option<&Endpoint> {
        if let Some(local) = &self.local {
            if self.state.local_ok() {
                if let Some(e) = self.try_pick(&local.endpoints, local.balancer.as_ref(), key) {
                    return Some(e);
                }
            }
        }
        let level = match self.backups.is_empty() {
            true => 0,
            false => self.state.level(self.rng.next_u64()),
        };
        let picked = match level.checked_sub(1).and_then(|i| self.backups.get(i)) {
            Some(l) => self.try_pick(&self.endpoints[l.start..l.end], l.balancer.as_ref(), key),
            None => self.try_pick(
                &self.endpoints[..self.candidates],
                self.balancer.as_ref(),
                key,
            ),
        };
        picked.or_else(|| self.fallback())
    }

    /// The endpoint the affinity token names, if it is still in the cluster and usable; else a pick.
    pub fn pick_affine(&self, token: Option<u64>, key: Option<u64>) -> Option<&Endpoint> {
        if let (Some(a), Some(token)) = (&self.affinity, token) {
            if let Some(e) = a.endpoint(token).and_then(|i| self.endpoints.get(i)) {
                if e.upstream.usable(self.health_threshold) {
                    return Some(e);
                }
            }
        }
        self.pick_for(key)
    }

    /// A pick for a retry: like [`Cluster::pick_for`], but avoiding the endpoints already tried
    /// while another is usable.
    pub(crate) fn pick_avoiding(
        &self,
        key: Option<u64>,
        tried: &[SocketAddr],
    ) -> Option<&Endpoint> {
        let fresh = |e: &&Endpoint| !tried.contains(&e.upstream.address);
        for attempt in 0..4u64 {
            let k = key.map(|k| mix(k.wrapping_add(attempt + 1)));
            if let Some(e) = self.pick_for(k).filter(fresh) {
                return Some(e);
            }
        }
        self.endpoints
            .iter()
            .filter(fresh)
            .find(|e| e.upstream.usable(self.health_threshold))
            .or_else(|| self.pick_for(key))
    }

    /// The balancer's choices among `candidates` (as many tries as there are candidates) until one
    /// is usable. A warming endpoint (slow start) takes a choice with its ramp's probability, else
    /// the choice passes to its neighbour.
    fn try_pick<'a>(
        &self,
        candidates: &'a [Endpoint],
        balancer: &dyn Balancer,
        key: Option<u64>,
    ) -> Option<&'a Endpoint> {
        let usable = |e: &Endpoint| e.upstream.usable(self.health_threshold) || self.state.panic();
        for attempt in 0..candidates.len() as u64 {
            let i = match key {
                Some(k) if attempt == 0 => balancer.pick_keyed(candidates, k),
                Some(k) => balancer.pick_keyed(candidates, mix(k.wrapping_add(attempt))),
                None => balancer.pick(candidates),
            }?;
            let e = candidates.get(i)?;
            // In panic mode too few endpoints are usable: spread over all rather than crush the few.
            if !usable(e) {
                continue;
            }
            if let Some(window) = self.slow_start.filter(|_| e.upstream.warming()) {
                if !e.upstream.warm_enough(window, self.rng.next_u64()) {
                    let next = &candidates[(i + 1) % candidates.len()];
                    if usable(next) && !next.upstream.warming() {
                        return Some(next);
                    }
                    continue;
                }
            }
            return Some(e);
        }
        None
    }

    /// The least loaded usable endpoint of the best priority level that has one.
    #[cold]
    fn fallback(&self) -> Option<&Endpoint> {
        let mut best: Option<&Endpoint> = None;
        for e in &self.endpoints {
            if best.is_some_and(|b| b.priority < e.priority) {
                break;
            }
            if e.upstream.usable(self.health_threshold) && best.is_none_or(|b| less_loaded(e, b)) {
                best = Some(e);
            }
        }
        best
    }
}

/// Whether `a` has fewer requests in flight than `b` relative to their weights (without division).
fn less_loaded(a: &Endpoint, b: &Endpoint) -> bool {
    u64::from(a.upstream.in_flight()) * u64::from(b.weight.max(1))
        < u64::from(b.upstream.in_flight()) * u64::from(a.weight.max(1))
}
