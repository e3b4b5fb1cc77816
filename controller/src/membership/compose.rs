//! The routing the proxy serves: the base document with the membership laid over it.

use super::scale::Presence;
use super::Membership;
use edgeplane_config::model::Endpoint;
use edgeplane_config::Routing;
use foldhash::HashMap;
use std::net::SocketAddr;

impl Membership {
    /// `base` with every cluster's self-registered instances added and its scaling overlay applied.
    /// Keeps `base`'s content hash: it still identifies the pushed document. Added endpoints are
    /// ordered by address, so every node builds the same order.
    pub fn compose(&self, base: &Routing) -> Routing {
        let mut out = base.clone();
        for c in &mut out.clusters {
            let Some(m) = self.clusters.get(&c.name) else {
                continue;
            };
            if m.instances.is_empty() && m.scaled.is_empty() {
                continue;
            }
            // Where each address is: `Ok(i)` in the base list, `Err(j)` among the added ones.
            let mut index: HashMap<SocketAddr, Result<usize, usize>> = c
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| (e.address, Ok(i)))
                .collect();
            let mut added: Vec<Endpoint> = Vec::new();
            let mut push =
                |e: Endpoint, eps: &mut Vec<Endpoint>, added: &mut Vec<Endpoint>| match index
                    .get(&e.address)
                {
                    Some(&Ok(i)) => {
                        let priority = eps[i].priority;
                        eps[i] = Endpoint { priority, ..e };
                    }
                    Some(&Err(j)) => added[j] = e,
                    None => {
                        index.insert(e.address, Err(added.len()));
                        added.push(e);
                    }
                };
            for i in m.instances.values().filter(|i| i.registered) {
                let e = Endpoint {
                    address: i.address,
                    weight: i.weight,
                    zone: i.zone.clone(),
                    priority: 0,
                };
                push(e, &mut c.endpoints, &mut added);
            }
            for (address, s) in &m.scaled {
                if s.presence == Presence::Added {
                    let e = Endpoint {
                        address: *address,
                        weight: s.weight.unwrap_or(1),
                        zone: s.zone.clone(),
                        priority: 0,
                    };
                    push(e, &mut c.endpoints, &mut added);
                }
            }
            // Sorts (key, index) pairs, then moves each endpoint once: cheaper than swapping endpoints.
            added.sort_by_cached_key(|e| addr_key(e.address));
            c.endpoints.extend(added);
            c.endpoints.retain(|e| {
                !m.scaled
                    .get(&e.address)
                    .is_some_and(|s| s.presence == Presence::Removed)
            });
            for e in &mut c.endpoints {
                if let Some(w) = m.scaled.get(&e.address).and_then(|s| s.weight) {
                    e.weight = w;
                }
            }
        }
        out
    }
}

/// An address as numbers that order like [`SocketAddr`] does (V4 before V6, then IP, then port).
fn addr_key(a: SocketAddr) -> (u8, u128, u16) {
    match a {
        SocketAddr::V4(v4) => (4, u128::from(u32::from(*v4.ip())), v4.port()),
        SocketAddr::V6(v6) => (6, u128::from(*v6.ip()), v6.port()),
    }
}
