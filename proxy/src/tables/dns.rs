//! Endpoints named by DNS: the addresses each `name:port` resolved to last, and the routing with
//! them as endpoints. The resolver ([`crate::upstream::resolver`]) fills the cache off the request
//! path; a snapshot is built from the routing as written, expanded with the cache. A resolved address
//! is an endpoint like a listed one (its live state is kept by address across rebuilds, so it
//! survives re-resolution while the name keeps resolving to it); a name not resolved yet has no
//! endpoint.

use edgeplane_config::model::{Endpoint, Routing};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

/// The last good resolution of every name.
#[derive(Debug, Default)]
pub(crate) struct DnsCache {
    resolved: Mutex<HashMap<(String, u16), Vec<SocketAddr>>>,
}

impl DnsCache {
    /// Records what `host:port` resolved to (sorted, without repeats); whether it changed.
    pub(crate) fn record(&self, host: &str, port: u16, mut addresses: Vec<SocketAddr>) -> bool {
        addresses.sort();
        addresses.dedup();
        let Ok(mut map) = self.resolved.lock() else {
            return false;
        };
        let key = (host.to_string(), port);
        if map.get(&key) == Some(&addresses) {
            return false;
        }
        map.insert(key, addresses);
        true
    }

    /// The addresses `host:port` resolved to last, if it ever did.
    pub(crate) fn addresses(&self, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        let map = self.resolved.lock().ok()?;
        map.get(&(host.to_string(), port)).cloned()
    }

    /// `routing` with each cluster's names replaced by the endpoints they resolved to (a listed
    /// address is not repeated); the routing itself when no cluster names any.
    pub(crate) fn expand<'r>(&self, routing: &'r Routing) -> Cow<'r, Routing> {
        if routing.clusters.iter().all(|c| c.dns.is_empty()) {
            return Cow::Borrowed(routing);
        }
        let Ok(map) = self.resolved.lock() else {
            return Cow::Borrowed(routing);
        };
        let mut expanded = routing.clone();
        for c in &mut expanded.clusters {
            for d in &c.dns {
                let Some(addresses) = map.get(&(d.host.clone(), d.port)) else {
                    continue;
                };
                for &address in addresses {
                    if c.endpoints.iter().any(|e| e.address == address) {
                        continue;
                    }
                    c.endpoints.push(Endpoint {
                        address,
                        weight: d.weight,
                        zone: d.zone.clone(),
                        priority: d.priority,
                    });
                }
            }
        }
        Cow::Owned(expanded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing() -> Routing {
        edgeplane_config::from_toml(
            "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
             [[clusters.c.endpoints]]\naddress = \"10.0.0.1:80\"\n\
             [[clusters.c.endpoints]]\naddress = \"api.internal:80\"\nweight = 5\n",
        )
        .unwrap()
        .routing
    }

    #[test]
    fn names_become_their_addresses_once_resolved() {
        let cache = DnsCache::default();
        let r = routing();
        assert!(matches!(cache.expand(&r), Cow::Owned(x) if x.clusters[0].endpoints.len() == 1));
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(cache.record(
            "api.internal",
            80,
            vec![a("10.0.0.3:80"), a("10.0.0.1:80"), a("10.0.0.3:80")]
        ));
        assert!(
            !cache.record("api.internal", 80, vec![a("10.0.0.1:80"), a("10.0.0.3:80")]),
            "same set"
        );
        let expanded = cache.expand(&r);
        let eps: Vec<_> = expanded.clusters[0]
            .endpoints
            .iter()
            .map(|e| (e.address, e.weight))
            .collect();
        assert_eq!(
            eps,
            [(a("10.0.0.1:80"), 1), (a("10.0.0.3:80"), 5)],
            "the listed one is not repeated"
        );
        assert!(cache.record("api.internal", 80, vec![a("10.0.0.4:80")]));
        assert_eq!(cache.expand(&r).clusters[0].endpoints.len(), 2);
    }
}
