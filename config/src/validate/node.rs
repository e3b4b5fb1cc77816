//! Validation of the node's own settings: `[node]` (id, listeners, limits, timeouts, admin) and
//! `[node.nats]`.

use super::{binds_clash, Validator};
use crate::model::defaults::node as d;
use crate::model::*;
use crate::raw::*;
use std::collections::HashSet;

impl Validator {
    pub(super) fn node(&mut self, raw: &RawNode) -> Node {
        let id = raw.id.clone().unwrap_or_else(|| d::ID.to_string());
        self.name("node.id", &id);
        if let Some(zone) = &raw.zone {
            self.name("node.zone", zone);
        }
        let workers = self.int("node.workers", raw.workers, d::WORKERS as i64, 0, 1024);
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
            let name = l
                .name
                .clone()
                .unwrap_or_else(|| format!("{}{i}", d::listener::NAME_PREFIX));
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
                d::limits::MAX_CONNECTIONS as i64,
                1,
                1_000_000,
            ),
            max_header_bytes: self.int(
                "node.limits.max_header_bytes",
                raw.limits.max_header_bytes,
                d::limits::MAX_HEADER_BYTES as i64,
                8_192,
                1 << 20,
            ),
            max_headers: self.int(
                "node.limits.max_headers",
                raw.limits.max_headers,
                d::limits::MAX_HEADERS as i64,
                1,
                1_000,
            ),
        };
        let t = &raw.timeouts;
        let timeouts = NodeTimeouts {
            header_read: self.duration(
                "node.timeouts.header_read",
                t.header_read.as_deref(),
                d::timeouts::HEADER_READ,
            ),
            idle: self.duration("node.timeouts.idle", t.idle.as_deref(), d::timeouts::IDLE),
            shutdown_grace: self.duration(
                "node.timeouts.shutdown_grace",
                t.shutdown_grace.as_deref(),
                d::timeouts::SHUTDOWN_GRACE,
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
            access_log: self.access_log(raw.access_log.as_ref()),
            tracing: Tracing {
                generate: raw
                    .tracing
                    .as_ref()
                    .and_then(|t| t.generate)
                    .unwrap_or(d::tracing::GENERATE),
                sample_percent: self.int(
                    "node.tracing.sample_percent",
                    raw.tracing.as_ref().and_then(|t| t.sample_percent),
                    i64::from(d::tracing::SAMPLE_PERCENT),
                    0,
                    100,
                ) as u8,
            },
            listeners,
            limits,
            timeouts,
            state_dir: raw.state_dir.as_deref().unwrap_or(d::STATE_DIR).into(),
            upgrade_socket,
            nats,
            trusted_proxies: self.trusted_proxies(&raw.trusted_proxies),
        }
    }

    pub(super) fn nats(&mut self, raw: &RawNats) -> Nats {
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
        let prefix = raw.prefix.clone().unwrap_or_else(|| d::nats::PREFIX.into());
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
        let bucket = raw.bucket.clone().unwrap_or_else(|| d::nats::BUCKET.into());
        self.name(&format!("{path}.bucket"), &bucket);
        let scale_stream = raw
            .scale_stream
            .clone()
            .unwrap_or_else(|| d::nats::SCALE_STREAM.into());
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
        let tls_client =
            self.cert_key_pair(path, ("tls_cert", "tls_key"), &raw.tls_cert, &raw.tls_key);
        Nats {
            urls: raw.urls.clone(),
            prefix,
            bucket,
            scale_stream,
            auth,
            tls_ca: raw.tls_ca.as_ref().map(Into::into),
            tls_client,
            tls_required: raw.tls_required.unwrap_or(d::nats::TLS_REQUIRED),
            membership_grace: self.duration(
                &format!("{path}.membership_grace"),
                raw.membership_grace.as_deref(),
                d::nats::MEMBERSHIP_GRACE,
            ),
            replicas: self.int(
                &format!("{path}.replicas"),
                raw.replicas,
                d::nats::REPLICAS as i64,
                1,
                5,
            ),
        }
    }
}
