//! The resolver of endpoints named by DNS (`address = "api.internal:8080"`): every name is resolved
//! by the system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS, as the OS is set up) once at
//! start, then again every `dns_refresh` of its cluster, on a task of its own: never on the request
//! path. A name whose set of addresses changed rebuilds the snapshot (the addresses that stay keep
//! their endpoints' live state); a failed resolution keeps the last good set, and is logged (once
//! per failing spell) and counted. A name that never resolved has no endpoint.

use crate::tables::Tables;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How often the resolver looks for names due.
const TICK: Duration = Duration::from_secs(1);
/// How long one resolution may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A name and port to resolve.
type Name = (String, u16);

/// What the resolver remembers between rounds.
#[derive(Debug, Default)]
pub(crate) struct Resolver {
    /// When each name is due again.
    due: HashMap<Name, Instant>,
    /// Names whose last resolution failed.
    failing: HashSet<Name>,
}

impl Resolver {
    /// Every name is due at the next round (a round was cut short).
    pub(crate) fn retry_soon(&mut self) {
        self.due.clear();
    }

    /// Resolves every name that is due, at once; rebuilds the tables if a name's addresses changed.
    pub(crate) async fn round(&mut self, tables: &Tables) {
        let snapshot = tables.load();
        let now = Instant::now();
        let mut refresh: HashMap<Name, Duration> = HashMap::new();
        for c in &snapshot.routing.clusters {
            for d in &c.dns {
                let every = refresh
                    .entry((d.host.clone(), d.port))
                    .or_insert(c.dns_refresh);
                *every = (*every).min(c.dns_refresh);
            }
        }
        self.due.retain(|name, _| refresh.contains_key(name));
        self.failing.retain(|name| refresh.contains_key(name));
        let mut lookups = JoinSet::new();
        for (name, every) in refresh {
            if self.due.get(&name).is_some_and(|&at| at > now) {
                continue;
            }
            self.due.insert(name.clone(), now + every);
            lookups.spawn(async move {
                let addresses = resolve(&name.0, name.1).await;
                (name, addresses)
            });
        }
        let telemetry = snapshot.telemetry.clone();
        drop(snapshot);
        let mut changed = false;
        while let Some(done) = lookups.join_next().await {
            let Ok(((host, port), result)) = done else {
                continue;
            };
            let shown = format!("{host}:{port}");
            let outcome = match result {
                Ok(found) if !found.is_empty() => {
                    if self.failing.remove(&(host.clone(), port)) {
                        tracing::info!(name = %shown, addresses = ?found, "endpoint name resolves again");
                    }
                    if tables.dns().record(&host, port, found) {
                        tracing::info!(name = %shown, addresses = ?tables.dns().addresses(&host, port).unwrap_or_default(), "endpoint name resolved");
                        changed = true;
                    }
                    "ok"
                }
                other => {
                    let why = other.err().unwrap_or_else(|| "no address".into());
                    if self.failing.insert((host.clone(), port)) {
                        match tables.dns().addresses(&host, port) {
                            Some(kept) => {
                                tracing::warn!(name = %shown, error = %why, kept = ?kept, "cannot resolve endpoint name; keeping its last addresses")
                            }
                            None => {
                                tracing::warn!(name = %shown, error = %why, "cannot resolve endpoint name; it has no endpoint until it resolves")
                            }
                        }
                    }
                    "failed"
                }
            };
            if let Some(t) = &telemetry {
                t.counter(
                    "edgeplane_dns_resolutions_total",
                    &[("name", &shown), ("result", outcome)],
                )
                .increment(1);
            }
        }
        if changed {
            if let Err(e) = tables.refresh_dns() {
                tracing::warn!(error = %e, "resolved endpoints could not be applied");
            }
        }
    }
}

/// The addresses `host:port` resolves to, within [`RESOLVE_TIMEOUT`].
async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(found)) => Ok(found.collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {RESOLVE_TIMEOUT:?}")),
    }
}

/// Resolves the names due every second, until the task is dropped (`resolver`: the state of the
/// first round, made at start).
pub(crate) async fn run(tables: Arc<Tables>, mut resolver: Resolver) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        resolver.round(&tables).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::Snapshot;
    use edgeplane_config::model::Routing;

    fn routing(names: &[&str]) -> Routing {
        let eps: String = names
            .iter()
            .map(|a| format!("[[clusters.c.endpoints]]\naddress = \"{a}\"\n"))
            .collect();
        edgeplane_config::from_toml(&format!(
            "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n{eps}"
        ))
        .unwrap()
        .routing
    }

    fn addresses(tables: &Tables) -> Vec<SocketAddr> {
        tables.load().clusters[0]
            .endpoints
            .iter()
            .map(|e| e.upstream.address)
            .collect()
    }

    #[tokio::test]
    async fn names_resolve_and_a_failure_keeps_the_last_addresses() {
        let r = routing(&["localhost:8080", "does-not-exist.invalid:80"]);
        let tables = Tables::new(Snapshot::build(&r, None).unwrap());
        tables.apply(&r).unwrap();
        assert!(
            addresses(&tables).is_empty(),
            "nothing before the first resolution"
        );
        let mut resolver = Resolver::default();
        resolver.round(&tables).await;
        let found = addresses(&tables);
        assert!(
            found.contains(&"127.0.0.1:8080".parse().unwrap()),
            "{found:?}"
        );
        assert_eq!(resolver.failing.len(), 1, "the .invalid name failed");
        assert_eq!(
            tables.load().routing.clusters[0].dns.len(),
            2,
            "the snapshot keeps the routing as written"
        );

        // A name that stops resolving keeps its last addresses.
        let gone = "does-not-exist.invalid";
        let kept: SocketAddr = "10.9.9.9:80".parse().unwrap();
        tables.dns().record(gone, 80, vec![kept]);
        tables.refresh_dns().unwrap();
        resolver.due.clear();
        resolver.round(&tables).await;
        assert!(addresses(&tables).contains(&kept));
    }

    #[test]
    fn an_address_that_stays_keeps_its_live_state() {
        let r = routing(&["api.internal:80"]);
        let tables = Tables::new(Snapshot::build(&r, None).unwrap());
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        tables
            .dns()
            .record("api.internal", 80, vec![a("10.0.0.1:80"), a("10.0.0.2:80")]);
        tables.refresh_dns().unwrap();
        let before = tables.load();
        let first = before.clusters[0].endpoints[0].upstream.clone();
        assert_eq!(first.address, a("10.0.0.1:80"));
        tables
            .dns()
            .record("api.internal", 80, vec![a("10.0.0.1:80"), a("10.0.0.3:80")]);
        tables.refresh_dns().unwrap();
        let after = tables.load();
        assert_eq!(addresses(&tables), [a("10.0.0.1:80"), a("10.0.0.3:80")]);
        assert!(
            Arc::ptr_eq(&first, &after.clusters[0].endpoints[0].upstream),
            "10.0.0.1 is the same endpoint, its counters and health kept"
        );
    }
}
