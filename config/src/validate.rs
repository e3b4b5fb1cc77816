//! The second stage: checks a [`RawConfig`] as a whole and builds the validated model, or returns every
//! error found with its path.

use crate::duration;
use crate::model::*;
use crate::raw::*;
use crate::{ConfigError, ContentHash, FieldError};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Validates a pushed routing document (routes and clusters only).
pub fn validate_document(raw: RawDocument) -> Result<Routing, ConfigError> {
    let mut v = Validator::default();
    let routing = v.routing(&raw.routes, &raw.clusters, &raw.certificates);
    if v.errors.is_empty() {
        Ok(routing)
    } else {
        Err(ConfigError::Invalid(v.errors))
    }
}

/// Validates a raw config; on failure, the error lists every problem found.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let mut v = Validator::default();
    let node = v.node(&raw.node);
    let routing = v.routing(&raw.routes, &raw.clusters, &raw.certificates);
    if routing.certificates.is_empty() {
        for (i, l) in node.listeners.iter().enumerate() {
            if l.tls.is_some() {
                v.error(
                    format!("node.listeners[{i}].tls"),
                    "a TLS listener needs at least one [[certificates]] entry",
                );
            }
        }
    }
    if v.errors.is_empty() {
        Ok(Config { node, routing })
    } else {
        Err(ConfigError::Invalid(v.errors))
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn node(&mut self, raw: &RawNode) -> Node {
        let id = raw.id.clone().unwrap_or_else(|| "edge-1".to_string());
        self.name("node.id", &id);
        if let Some(zone) = &raw.zone {
            self.name("node.zone", zone);
        }
        let workers = self.int("node.workers", raw.workers, 0, 0, 1024);
        let admin = raw
            .admin
            .as_deref()
            .and_then(|a| self.address("node.admin", a));
        if raw.listeners.is_empty() {
            self.error("node.listeners", "at least one listener is required");
        }
        let mut listeners = Vec::new();
        let mut seen = HashSet::new();
        for (i, l) in raw.listeners.iter().enumerate() {
            let path = format!("node.listeners[{i}]");
            let name = l.name.clone().unwrap_or_else(|| format!("listener{i}"));
            if let Some(address) = self.address(&format!("{path}.address"), &l.address) {
                if !seen.insert(address) {
                    self.error(
                        format!("{path}.address"),
                        format!("duplicate listener address {address}"),
                    );
                } else if let Some(other) = listeners
                    .iter()
                    .find(|o: &&Listener| binds_clash(o.address, address))
                {
                    self.error(
                        format!("{path}.address"),
                        format!(
                            "{address} and listener {} ({}) cannot both bind",
                            other.name, other.address
                        ),
                    );
                }
                if admin.is_some_and(|a| binds_clash(a, address)) {
                    self.error(
                        format!("{path}.address"),
                        format!("{address} is also the admin listener's (node.admin)"),
                    );
                }
                let tls = l
                    .tls
                    .as_ref()
                    .map(|t| self.listener_tls(&format!("{path}.tls"), t));
                listeners.push(Listener { name, address, tls });
            }
        }
        let limits = Limits {
            max_connections: self.int(
                "node.limits.max_connections",
                raw.limits.max_connections,
                10_000,
                1,
                1_000_000,
            ),
            max_header_bytes: self.int(
                "node.limits.max_header_bytes",
                raw.limits.max_header_bytes,
                16_384,
                8_192,
                1 << 20,
            ),
            max_headers: self.int(
                "node.limits.max_headers",
                raw.limits.max_headers,
                100,
                1,
                1_000,
            ),
        };
        let t = &raw.timeouts;
        let timeouts = NodeTimeouts {
            header_read: self.duration(
                "node.timeouts.header_read",
                t.header_read.as_deref(),
                10_000,
            ),
            idle: self.duration("node.timeouts.idle", t.idle.as_deref(), 60_000),
            shutdown_grace: self.duration(
                "node.timeouts.shutdown_grace",
                t.shutdown_grace.as_deref(),
                30_000,
            ),
        };
        let nats = raw.nats.as_ref().map(|n| self.nats(n));
        let upgrade_socket = raw.upgrade_socket.as_deref().map(|p| {
            // A Unix socket path is at most 107 bytes (sun_path).
            if p.is_empty() || p.len() > 107 {
                self.error(
                    "node.upgrade_socket",
                    "must be a path of 1 to 107 bytes (a Unix socket path)",
                );
            }
            std::path::PathBuf::from(p)
        });
        Node {
            id,
            zone: raw.zone.clone(),
            workers,
            admin,
            admin_token_file: raw.admin_token_file.as_ref().map(Into::into),
            access_log: raw.access_log.unwrap_or(false),
            listeners,
            limits,
            timeouts,
            state_dir: raw
                .state_dir
                .as_deref()
                .unwrap_or("/var/lib/edgeplane")
                .into(),
            upgrade_socket,
            nats,
        }
    }

    fn nats(&mut self, raw: &RawNats) -> Nats {
        let path = "node.nats";
        if raw.urls.is_empty() {
            self.error(
                format!("{path}.urls"),
                "at least one server URL is required",
            );
        }
        for (i, url) in raw.urls.iter().enumerate() {
            let rest = url
                .split_once("://")
                .map_or(url.as_str(), |(scheme, rest)| {
                    if !matches!(scheme, "nats" | "tls") {
                        self.error(
                            format!("{path}.urls[{i}]"),
                            format!("unsupported scheme {scheme:?} (nats or tls)"),
                        );
                    }
                    rest
                });
            let hostport = rest.rsplit('@').next().unwrap_or(rest);
            let ok = hostport
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                self.error(
                    format!("{path}.urls[{i}]"),
                    format!("invalid server URL {url:?} (expected nats://host:port)"),
                );
            }
        }
        let prefix = raw.prefix.clone().unwrap_or_else(|| "edge.v1".into());
        if !prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        }) {
            self.error(
                format!("{path}.prefix"),
                format!("invalid subject prefix {prefix:?}: dot-separated names"),
            );
        }
        let bucket = raw.bucket.clone().unwrap_or_else(|| "edge_config".into());
        self.name(&format!("{path}.bucket"), &bucket);
        let scale_stream = raw
            .scale_stream
            .clone()
            .unwrap_or_else(|| "edge_scale".into());
        self.name(&format!("{path}.scale_stream"), &scale_stream);
        let methods = [
            raw.user.is_some() || raw.password.is_some(),
            raw.token.is_some(),
            raw.nkey_seed.is_some(),
            raw.creds_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            self.error(
                path,
                "choose one authentication method: user/password, token, nkey_seed or creds_file",
            );
        }
        let auth = match (
            &raw.user,
            &raw.password,
            &raw.token,
            &raw.nkey_seed,
            &raw.creds_file,
        ) {
            (Some(u), Some(p), ..) => NatsAuth::UserPassword(u.clone(), p.clone()),
            (Some(_), None, ..) | (None, Some(_), ..) => {
                self.error(path, "user and password go together");
                NatsAuth::None
            }
            (_, _, Some(t), ..) => NatsAuth::Token(t.clone()),
            (_, _, _, Some(seed), _) => NatsAuth::NkeySeed(seed.clone()),
            (_, _, _, _, Some(file)) => NatsAuth::CredsFile(file.into()),
            _ => NatsAuth::None,
        };
        let tls_client = match (&raw.tls_cert, &raw.tls_key) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            (None, None) => None,
            _ => {
                self.error(path, "tls_cert and tls_key go together");
                None
            }
        };
        Nats {
            urls: raw.urls.clone(),
            prefix,
            bucket,
            scale_stream,
            auth,
            tls_ca: raw.tls_ca.as_ref().map(Into::into),
            tls_client,
            tls_required: raw.tls_required.unwrap_or(false),
            membership_grace: self.duration(
                &format!("{path}.membership_grace"),
                raw.membership_grace.as_deref(),
                10_000,
            ),
            replicas: self.int(&format!("{path}.replicas"), raw.replicas, 1, 1, 5),
        }
    }

    fn routing(
        &mut self,
        routes: &[RawRoute],
        clusters: &BTreeMap<String, RawCluster>,
        certificates: &[RawCertificate],
    ) -> Routing {
        let hash = content_hash(routes, clusters, certificates);
        let certificates = certificates
            .iter()
            .enumerate()
            .map(|(i, c)| self.certificate(&format!("certificates[{i}]"), c))
            .collect();
        let clusters: Vec<Cluster> = clusters
            .iter()
            .map(|(name, c)| self.cluster(name, c))
            .collect();
        let mut names = HashSet::new();
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let route = self.route(i, r, &clusters);
                if !names.insert(route.name.clone()) {
                    self.error(
                        format!("routes[{i}].name"),
                        format!("duplicate route name {:?}", route.name),
                    );
                }
                route
            })
            .collect();
        Routing {
            routes,
            clusters,
            certificates,
            hash,
        }
    }

    fn route(&mut self, i: usize, raw: &RawRoute, clusters: &[Cluster]) -> Route {
        let path = format!("routes[{i}]");
        let name = raw.name.clone().unwrap_or_else(|| format!("route{i}"));
        self.name(&format!("{path}.name"), &name);
        let mut hosts = Vec::new();
        for (j, h) in raw.hosts.iter().enumerate() {
            let host = h.trim().to_ascii_lowercase();
            if host == "*" {
                // `*` means any host, the same as no host condition at all.
                hosts.clear();
                hosts.push(None);
                continue;
            }
            match host_match(&host) {
                Ok(m) => hosts.push(Some(m)),
                Err(e) => self.error(format!("{path}.hosts[{j}]"), e),
            }
        }
        let hosts = if hosts.contains(&None) {
            Vec::new()
        } else {
            hosts.into_iter().flatten().collect()
        };
        let path_prefix = raw.path_prefix.clone().unwrap_or_else(|| "/".to_string());
        if !path_prefix.starts_with('/') {
            self.error(
                format!("{path}.path_prefix"),
                format!("must start with '/': {path_prefix:?}"),
            );
        } else if path_prefix
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
        {
            self.error(
                format!("{path}.path_prefix"),
                format!("must not hold spaces, controls, '?' or '#': {path_prefix:?}"),
            );
        }
        let mut methods = Vec::new();
        for (j, m) in raw.methods.iter().enumerate() {
            let upper = m.trim().to_ascii_uppercase();
            if upper.is_empty() || !upper.bytes().all(is_token_byte) {
                self.error(
                    format!("{path}.methods[{j}]"),
                    format!("invalid method {m:?}"),
                );
            } else {
                methods.push(upper);
            }
        }
        let mut headers = Vec::new();
        for (j, h) in raw.headers.iter().enumerate() {
            let name = h.name.trim().to_ascii_lowercase();
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                self.error(
                    format!("{path}.headers[{j}].name"),
                    format!("invalid header name {:?}", h.name),
                );
            }
            if let Some(v) = &h.value {
                if v.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
                    self.error(
                        format!("{path}.headers[{j}].value"),
                        "header value holds control characters",
                    );
                }
            }
            headers.push(HeaderMatch {
                name,
                value: h.value.clone(),
            });
        }
        let cluster = match clusters.iter().position(|c| c.name == raw.cluster) {
            Some(index) => index,
            None => {
                self.error(
                    format!("{path}.cluster"),
                    format!("unknown cluster {:?}", raw.cluster),
                );
                0
            }
        };
        let upgrades = match &raw.upgrades {
            None => vec!["websocket".to_string()],
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(j, u)| {
                    let token = u.trim().to_ascii_lowercase();
                    if token.is_empty() || !token.bytes().all(is_token_byte) {
                        self.error(
                            format!("{path}.upgrades[{j}]"),
                            format!("invalid protocol name {u:?}"),
                        );
                        return None;
                    }
                    Some(token)
                })
                .collect(),
        };
        Route {
            name,
            hosts,
            path_prefix,
            methods,
            headers,
            cluster,
            upgrades,
        }
    }

    fn cluster(&mut self, name: &str, raw: &RawCluster) -> Cluster {
        let path = format!("clusters.{name}");
        self.name(&path, name);
        let balancing = match raw.balancing.as_deref() {
            None => Balancing::RoundRobin,
            Some(b) => match Balancing::ALL.into_iter().find(|p| p.as_str() == b) {
                Some(p) => p,
                None => {
                    let known: Vec<_> = Balancing::ALL.iter().map(|p| p.as_str()).collect();
                    self.error(
                        format!("{path}.balancing"),
                        format!("unknown policy {b:?} (one of {})", known.join(", ")),
                    );
                    Balancing::RoundRobin
                }
            },
        };
        if let Some(h) = &raw.host_rewrite {
            if h.is_empty() || h.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'/') {
                self.error(
                    format!("{path}.host_rewrite"),
                    format!("invalid host {h:?}"),
                );
            }
        }
        let mut endpoints = Vec::new();
        let mut seen = HashSet::new();
        for (i, e) in raw.endpoints.iter().enumerate() {
            let epath = format!("{path}.endpoints[{i}]");
            let address = self.address(&format!("{epath}.address"), &e.address);
            let weight = self.int(&format!("{epath}.weight"), e.weight, 1, 1, 10_000) as u32;
            let priority = self.int(&format!("{epath}.priority"), e.priority, 0, 0, 7) as u8;
            if let Some(zone) = &e.zone {
                self.name(&format!("{epath}.zone"), zone);
            }
            if let Some(address) = address {
                if !seen.insert(address) {
                    self.error(
                        format!("{epath}.address"),
                        format!("duplicate endpoint {address}"),
                    );
                }
                endpoints.push(Endpoint {
                    address,
                    weight,
                    zone: e.zone.clone(),
                    priority,
                });
            }
        }
        let timeouts = ClusterTimeouts {
            connect: self.duration(
                &format!("{path}.timeouts.connect"),
                raw.timeouts.connect.as_deref(),
                2_000,
            ),
            response_header: self.duration(
                &format!("{path}.timeouts.response_header"),
                raw.timeouts.response_header.as_deref(),
                30_000,
            ),
            total: raw
                .timeouts
                .total
                .as_deref()
                .map(|t| self.duration(&format!("{path}.timeouts.total"), Some(t), 30_000)),
        };
        let pool = Pool {
            max_idle_per_endpoint: self.int(
                &format!("{path}.pool.max_idle_per_endpoint"),
                raw.pool.max_idle_per_endpoint,
                64,
                0,
                10_000,
            ),
            idle_timeout: self.duration(
                &format!("{path}.pool.idle_timeout"),
                raw.pool.idle_timeout.as_deref(),
                60_000,
            ),
        };
        let membership = MemberPolicy {
            self_registration: raw.self_registration.unwrap_or(false),
            health_threshold: self.int(
                &format!("{path}.health_threshold"),
                raw.health_threshold,
                0,
                0,
                100,
            ) as u8,
            remove_after: self.duration(
                &format!("{path}.remove_after"),
                raw.remove_after.as_deref(),
                30_000,
            ),
        };
        let outlier = raw.outlier.as_ref().map(|o| {
            let p = format!("{path}.outlier");
            Outlier {
                consecutive_failures: self.int(
                    &format!("{p}.consecutive_failures"),
                    o.consecutive_failures,
                    5,
                    1,
                    1000,
                ) as u32,
                base_ejection: self.duration(
                    &format!("{p}.base_ejection"),
                    o.base_ejection.as_deref(),
                    10_000,
                ),
                max_ejection: self.duration(
                    &format!("{p}.max_ejection"),
                    o.max_ejection.as_deref(),
                    300_000,
                ),
                max_ejected_percent: self.int(
                    &format!("{p}.max_ejected_percent"),
                    o.max_ejected_percent,
                    50,
                    0,
                    100,
                ) as u8,
                failure_rate: o.failure_rate.map(|_| {
                    self.int(&format!("{p}.failure_rate"), o.failure_rate, 50, 1, 100) as u8
                }),
                min_requests: self.int(
                    &format!("{p}.min_requests"),
                    o.min_requests,
                    20,
                    1,
                    1_000_000,
                ) as u64,
            }
        });
        let hash_on = self.hash_on(&format!("{path}.hash_on"), raw.hash_on.as_ref());
        let circuit_breaker = self.circuit_breaker(
            &format!("{path}.circuit_breaker"),
            raw.circuit_breaker.as_ref(),
        );
        let retry = self.retry(&format!("{path}.retry"), raw.retry.as_ref());
        let affinity = raw
            .affinity
            .as_ref()
            .map(|a| self.affinity(&format!("{path}.affinity"), a));
        let slow_start = raw
            .slow_start
            .as_deref()
            .map(|s| self.duration(&format!("{path}.slow_start"), Some(s), 30_000));
        Cluster {
            name: name.to_string(),
            balancing,
            host_rewrite: raw.host_rewrite.clone(),
            endpoints,
            timeouts,
            pool,
            membership,
            outlier,
            hash_on,
            circuit_breaker,
            retry,
            affinity,
            slow_start,
            tls: raw
                .tls
                .as_ref()
                .map(|t| self.upstream_tls(&format!("{path}.tls"), t, raw.host_rewrite.as_deref())),
            failover_below: self.int(
                &format!("{path}.failover_below"),
                raw.failover_below,
                70,
                1,
                100,
            ) as u8,
            zone_spill_below: if raw.zone_aware == Some(true) {
                Some(self.int(
                    &format!("{path}.zone_spill_below"),
                    raw.zone_spill_below,
                    50,
                    1,
                    100,
                ) as u8)
            } else {
                None
            },
            health_check: raw
                .health_check
                .as_ref()
                .map(|h| self.health_check(&format!("{path}.health_check"), h)),
            panic_threshold: self.int(
                &format!("{path}.panic_threshold"),
                raw.panic_threshold,
                0,
                0,
                100,
            ) as u8,
        }
    }

    fn health_check(&mut self, path: &str, raw: &RawHealthCheck) -> HealthCheck {
        let check_path = raw.path.clone().unwrap_or_else(|| "/healthz".into());
        if !check_path.starts_with('/') || check_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            self.error(
                format!("{path}.path"),
                format!("invalid path {check_path:?}: must start with '/', no spaces"),
            );
        }
        HealthCheck {
            path: check_path,
            interval: self.duration(&format!("{path}.interval"), raw.interval.as_deref(), 5_000),
            timeout: self.duration(&format!("{path}.timeout"), raw.timeout.as_deref(), 2_000),
            healthy_threshold: self.int(
                &format!("{path}.healthy_threshold"),
                raw.healthy_threshold,
                2,
                1,
                100,
            ) as u32,
            unhealthy_threshold: self.int(
                &format!("{path}.unhealthy_threshold"),
                raw.unhealthy_threshold,
                3,
                1,
                100,
            ) as u32,
        }
    }

    fn hash_on(&mut self, path: &str, raw: Option<&RawHashOn>) -> HashOn {
        let Some(raw) = raw else {
            return HashOn::ClientIp;
        };
        let mut keys = Vec::new();
        if let Some(h) = &raw.header {
            if http_token(h) {
                keys.push(HashOn::Header(h.to_ascii_lowercase()));
            } else {
                self.error(
                    format!("{path}.header"),
                    format!("invalid header name {h:?}"),
                );
            }
        }
        if let Some(c) = &raw.cookie {
            if http_token(c) {
                keys.push(HashOn::Cookie(c.clone()));
            } else {
                self.error(
                    format!("{path}.cookie"),
                    format!("invalid cookie name {c:?}"),
                );
            }
        }
        if raw.client_ip == Some(true) {
            keys.push(HashOn::ClientIp);
        }
        if raw.path == Some(true) {
            keys.push(HashOn::Path);
        }
        match keys.len() {
            1 => keys.remove(0),
            0 if raw.header.is_some() || raw.cookie.is_some() => HashOn::ClientIp,
            _ => {
                self.error(
                    path,
                    "set exactly one of header, cookie, client_ip = true, path = true",
                );
                HashOn::ClientIp
            }
        }
    }

    /// Names end up in logs, metrics labels and (later) NATS subjects, so they are kept to a safe alphabet.
    fn name(&mut self, path: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            self.error(
                path,
                format!("invalid name {name:?}: use 1 to 64 letters, digits, '-' or '_'"),
            );
        }
    }

    fn address(&mut self, path: &str, text: &str) -> Option<SocketAddr> {
        match text.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.error(
                    path,
                    format!("invalid socket address {text:?} (expected ip:port)"),
                );
                None
            }
        }
    }

    fn int(&mut self, path: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> usize {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            self.error(path, format!("{v} is out of range {min}..={max}"));
            return default as usize;
        }
        v as usize
    }

    fn duration(&mut self, path: &str, text: Option<&str>, default_ms: u64) -> Duration {
        let Some(text) = text else {
            return Duration::from_millis(default_ms);
        };
        match duration::parse(text) {
            Ok(d) if d.is_zero() => {
                self.error(path, "must be greater than zero");
                Duration::from_millis(default_ms)
            }
            Ok(d) => d,
            Err(e) => {
                self.error(path, e);
                Duration::from_millis(default_ms)
            }
        }
    }
}

fn host_match(host: &str) -> Result<HostMatch, String> {
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host),
    };
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "invalid host {host:?}: expected a DNS name, \"*.suffix\" or \"*\""
        ));
    }
    Ok(if wildcard {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_string())
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The hash covers the routing document only, in a canonical JSON form (clusters sorted by name).
fn content_hash(
    routes: &[RawRoute],
    clusters: &BTreeMap<String, RawCluster>,
    certificates: &[RawCertificate],
) -> ContentHash {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        routes: &'a [RawRoute],
        clusters: &'a BTreeMap<String, RawCluster>,
        #[serde(skip_serializing_if = "<[RawCertificate]>::is_empty")]
        certificates: &'a [RawCertificate],
    }
    // Serializing plain structs and a BTreeMap to a Vec cannot fail.
    let bytes = serde_json::to_vec(&Doc {
        routes,
        clusters,
        certificates,
    })
    .unwrap_or_default();
    ContentHash::of(&bytes)
}

/// An RFC 9110 token (header and cookie names).
fn http_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

mod resilience;
#[cfg(test)]
mod tests;
mod tls;

/// Whether two listening addresses cannot both be bound: the same port (not 0) on the same IP, or on
/// any IP when either is unspecified (`0.0.0.0`, `::`).
fn binds_clash(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}
