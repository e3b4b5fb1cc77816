//! Validation of a cluster: balancing, endpoints, priorities, timeouts, health checks, hashing.

use super::{http_token, Validator};
use crate::model::defaults::cluster as d;
use crate::model::*;
use crate::raw::*;
use std::collections::HashSet;

impl Validator {
    pub(super) fn cluster(&mut self, name: &str, raw: &RawCluster) -> Cluster {
        let path = format!("clusters.{name}");
        self.name(&path, name);
        let balancing = match raw.balancing.as_deref() {
            None => d::BALANCING,
            Some(b) => match Balancing::ALL.into_iter().find(|p| p.as_str() == b) {
                Some(p) => p,
                None => {
                    let known: Vec<_> = Balancing::ALL.iter().map(|p| p.as_str()).collect();
                    self.error(
                        format!("{path}.balancing"),
                        format!("unknown policy {b:?} (one of {})", known.join(", ")),
                    );
                    d::BALANCING
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
        let mut dns = Vec::new();
        let mut seen = HashSet::new();
        for (i, e) in raw.endpoints.iter().enumerate() {
            let epath = format!("{path}.endpoints[{i}]");
            let named = dns_name(&e.address);
            let address = match named {
                Some(_) => None,
                None => self.address(&format!("{epath}.address"), &e.address),
            };
            let weight = self.int(
                &format!("{epath}.weight"),
                e.weight,
                d::endpoint::WEIGHT as i64,
                1,
                10_000,
            ) as u32;
            let priority = self.int(
                &format!("{epath}.priority"),
                e.priority,
                d::endpoint::PRIORITY as i64,
                0,
                7,
            ) as u8;
            if let Some(zone) = &e.zone {
                self.name(&format!("{epath}.zone"), zone);
            }
            if let Some((host, port)) = named {
                if dns
                    .iter()
                    .any(|d: &DnsEndpoint| d.host == host && d.port == port)
                {
                    self.error(
                        format!("{epath}.address"),
                        format!("duplicate endpoint {host}:{port}"),
                    );
                }
                dns.push(DnsEndpoint {
                    host,
                    port,
                    weight,
                    zone: e.zone.clone(),
                    priority,
                });
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
                d::timeouts::CONNECT,
            ),
            response_header: self.duration(
                &format!("{path}.timeouts.response_header"),
                raw.timeouts.response_header.as_deref(),
                d::timeouts::RESPONSE_HEADER,
            ),
            total: raw.timeouts.total.as_deref().map(|t| {
                self.duration(
                    &format!("{path}.timeouts.total"),
                    Some(t),
                    d::timeouts::TOTAL_IF_INVALID,
                )
            }),
        };
        let pool = Pool {
            // Absent: no fixed cap (the pool follows the load, see the model's doc).
            max_idle_per_endpoint: raw.pool.max_idle_per_endpoint.map(|n| {
                self.int(
                    &format!("{path}.pool.max_idle_per_endpoint"),
                    Some(n),
                    0,
                    0,
                    100_000,
                )
            }),
            idle_timeout: self.duration(
                &format!("{path}.pool.idle_timeout"),
                raw.pool.idle_timeout.as_deref(),
                d::pool::IDLE_TIMEOUT,
            ),
        };
        let membership = MemberPolicy {
            self_registration: raw.self_registration.unwrap_or(d::SELF_REGISTRATION),
            health_threshold: self.int(
                &format!("{path}.health_threshold"),
                raw.health_threshold,
                d::HEALTH_THRESHOLD as i64,
                0,
                100,
            ) as u8,
            remove_after: self.duration(
                &format!("{path}.remove_after"),
                raw.remove_after.as_deref(),
                d::REMOVE_AFTER,
            ),
        };
        let outlier = raw.outlier.as_ref().map(|o| {
            let p = format!("{path}.outlier");
            Outlier {
                consecutive_failures: self.int(
                    &format!("{p}.consecutive_failures"),
                    o.consecutive_failures,
                    d::outlier::CONSECUTIVE_FAILURES as i64,
                    1,
                    1000,
                ) as u32,
                base_ejection: self.duration(
                    &format!("{p}.base_ejection"),
                    o.base_ejection.as_deref(),
                    d::outlier::BASE_EJECTION,
                ),
                max_ejection: self.duration(
                    &format!("{p}.max_ejection"),
                    o.max_ejection.as_deref(),
                    d::outlier::MAX_EJECTION,
                ),
                max_ejected_percent: self.int(
                    &format!("{p}.max_ejected_percent"),
                    o.max_ejected_percent,
                    d::outlier::MAX_EJECTED_PERCENT as i64,
                    0,
                    100,
                ) as u8,
                failure_rate: o.failure_rate.map(|_| {
                    self.int(
                        &format!("{p}.failure_rate"),
                        o.failure_rate,
                        d::outlier::FAILURE_RATE_IF_INVALID as i64,
                        1,
                        100,
                    ) as u8
                }),
                min_requests: self.int(
                    &format!("{p}.min_requests"),
                    o.min_requests,
                    d::outlier::MIN_REQUESTS as i64,
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
        let slow_start = raw.slow_start.as_deref().map(|s| {
            self.duration(
                &format!("{path}.slow_start"),
                Some(s),
                d::SLOW_START_IF_INVALID,
            )
        });
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
            dns,
            dns_refresh: match raw.dns_refresh.as_deref() {
                None => d::DNS_REFRESH,
                Some(t) => {
                    let at = format!("{path}.dns_refresh");
                    let every = self.duration(&at, Some(t), d::DNS_REFRESH);
                    if every < std::time::Duration::from_secs(1)
                        || every > std::time::Duration::from_secs(3600)
                    {
                        self.error(&at, "expected 1s to 1h");
                    }
                    every
                }
            },
            tls: raw
                .tls
                .as_ref()
                .map(|t| self.upstream_tls(&format!("{path}.tls"), t, raw.host_rewrite.as_deref())),
            h2c: self.h2c(&path, raw),
            rate_limits: self.rate_limits(&format!("{path}.rate_limits"), &raw.rate_limits),
            autoscale: self.autoscale(&path, raw.autoscale.as_ref()),
            failover_below: self.int(
                &format!("{path}.failover_below"),
                raw.failover_below,
                d::FAILOVER_BELOW as i64,
                1,
                100,
            ) as u8,
            zone_spill_below: if raw.zone_aware.unwrap_or(d::ZONE_AWARE) {
                Some(self.int(
                    &format!("{path}.zone_spill_below"),
                    raw.zone_spill_below,
                    d::ZONE_SPILL_BELOW as i64,
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
                d::PANIC_THRESHOLD as i64,
                0,
                100,
            ) as u8,
        }
    }

    pub(super) fn health_check(&mut self, path: &str, raw: &RawHealthCheck) -> HealthCheck {
        let check_path = raw
            .path
            .clone()
            .unwrap_or_else(|| d::health_check::PATH.into());
        if !check_path.starts_with('/') || check_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            self.error(
                format!("{path}.path"),
                format!("invalid path {check_path:?}: must start with '/', no spaces"),
            );
        }
        HealthCheck {
            path: check_path,
            interval: self.duration(
                &format!("{path}.interval"),
                raw.interval.as_deref(),
                d::health_check::INTERVAL,
            ),
            timeout: self.duration(
                &format!("{path}.timeout"),
                raw.timeout.as_deref(),
                d::health_check::TIMEOUT,
            ),
            healthy_threshold: self.int(
                &format!("{path}.healthy_threshold"),
                raw.healthy_threshold,
                d::health_check::HEALTHY_THRESHOLD as i64,
                1,
                100,
            ) as u32,
            unhealthy_threshold: self.int(
                &format!("{path}.unhealthy_threshold"),
                raw.unhealthy_threshold,
                d::health_check::UNHEALTHY_THRESHOLD as i64,
                1,
                100,
            ) as u32,
        }
    }

    /// `h2c`: cleartext only (TLS offers HTTP/2 by ALPN with `tls.h2`).
    fn h2c(&mut self, path: &str, raw: &RawCluster) -> bool {
        let on = raw.h2c.unwrap_or(false);
        if on && raw.tls.is_some() {
            self.error(
                format!("{path}.h2c"),
                "h2c is cleartext HTTP/2; with [tls], set tls.h2 = true instead",
            );
        }
        on
    }

    pub(super) fn hash_on(&mut self, path: &str, raw: Option<&RawHashOn>) -> HashOn {
        let Some(raw) = raw else {
            return d::HASH_ON;
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
            0 if raw.header.is_some() || raw.cookie.is_some() => d::HASH_ON,
            _ => {
                self.error(
                    path,
                    "set exactly one of header, cookie, client_ip = true, path = true",
                );
                d::HASH_ON
            }
        }
    }
}

/// A `name:port` endpoint address naming a host by DNS (not an IP address): the name in lower case
/// and the port. `None` for anything else (an `ip:port` is parsed as such; a malformed address is
/// reported by the socket address check).
fn dns_name(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.trim().rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&p| p != 0)?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with('-')
    };
    let is_name = host.len() <= 253
        && host.split('.').all(label_ok)
        // All-numeric dotted names are IPv4 addresses (or mistakes), never DNS names.
        && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    is_name.then(|| (host.to_ascii_lowercase(), port))
}
