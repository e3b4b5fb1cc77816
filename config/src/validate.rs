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
    v.errors.extend(routing.listener_problems(&node.listeners));
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

    /// A client certificate and its key: both or neither.
    fn cert_key_pair(
        &mut self,
        path: &str,
        (cert_field, key_field): (&str, &str),
        cert: &Option<String>,
        key: &Option<String>,
    ) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        match (cert, key) {
            (Some(c), Some(k)) => Some((c.into(), k.into())),
            (None, None) => None,
            _ => {
                self.error(
                    path,
                    format!("set both {cert_field} and {key_field}, or neither"),
                );
                None
            }
        }
    }

    /// Names end up in logs, metrics labels and NATS subjects, so they are kept to a safe alphabet.
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

    fn duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration {
        let Some(text) = text else {
            return default;
        };
        match duration::parse(text) {
            Ok(d) if d.is_zero() => {
                self.error(path, "must be greater than zero");
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(path, e);
                default
            }
        }
    }
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

mod access_log;
mod autoscale;
mod cluster;
mod node;
mod rate_limit;
mod resilience;
mod rewrite;

pub use rewrite::{compile_regex, REGEX_SIZE_LIMIT};
mod route;
mod target;
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
