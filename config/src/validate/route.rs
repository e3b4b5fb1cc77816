//! Validation of a route: its match (hosts, path, methods, headers) and the cluster it names.

use super::rewrite::Side;
use super::{is_token_byte, Validator};
use crate::model::defaults::route as d;
use crate::model::*;
use crate::raw::*;

impl Validator {
    pub(super) fn route(&mut self, i: usize, raw: &RawRoute, clusters: &[Cluster]) -> Route {
        let path = format!("routes[{i}]");
        let name = raw
            .name
            .clone()
            .unwrap_or_else(|| format!("{}{i}", d::NAME_PREFIX));
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
        let path_prefix = raw
            .path_prefix
            .clone()
            .unwrap_or_else(|| d::PATH_PREFIX.to_string());
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
            let regex = self.match_regex(&format!("{path}.headers[{j}]"), h);
            headers.push(HeaderMatch {
                name,
                value: h.value.clone(),
                regex,
            });
        }
        let query = self.param_matches(&format!("{path}.query"), &raw.query);
        let cookies = self.param_matches(&format!("{path}.cookies"), &raw.cookies);
        let answer = self.route_answer(&path, raw);
        let (cluster, split) = self.route_target(&path, raw, clusters, answer.is_some());
        let mirror = self.mirror(&path, raw.mirror.as_ref(), clusters, answer.is_some());
        let compression = self.compression(&path, raw.compression.as_ref());
        let rate_limits = self.rate_limits(&format!("{path}.rate_limits"), &raw.rate_limits);
        let upgrades = match &raw.upgrades {
            None => d::UPGRADES.iter().map(|u| u.to_string()).collect(),
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
        let max_request_body = raw.max_request_body.map(|_| {
            let path = format!("{path}.max_request_body");
            self.int(&path, raw.max_request_body, 1, 1, i64::MAX) as u64
        });
        let t = raw.timeouts.clone().unwrap_or_default();
        let timeout = |v: &mut Self, key: &str, text: &Option<String>, placeholder| {
            let path = format!("{path}.timeouts.{key}");
            text.as_deref()
                .map(|t| v.duration(&path, Some(t), placeholder))
        };
        let timeouts = RouteTimeouts {
            response_header: timeout(
                self,
                "response_header",
                &t.response_header,
                crate::model::defaults::cluster::timeouts::RESPONSE_HEADER,
            ),
            total: timeout(
                self,
                "total",
                &t.total,
                crate::model::defaults::cluster::timeouts::TOTAL_IF_INVALID,
            ),
        };
        let path_rewrite = self.path_rewrite(&path, raw.rewrite.as_ref());
        let rewrite_location = raw
            .rewrite
            .as_ref()
            .and_then(|r| r.location)
            .unwrap_or(d::REWRITE_LOCATION);
        let request_headers = self.header_ops(
            &format!("{path}.request_headers"),
            raw.request_headers.as_ref(),
            Side::Request,
        );
        let response_headers = self.header_ops(
            &format!("{path}.response_headers"),
            raw.response_headers.as_ref(),
            Side::Response,
        );
        Route {
            name,
            hosts,
            path_prefix,
            methods,
            headers,
            query,
            cookies,
            cluster,
            split,
            upgrades,
            max_request_body,
            timeouts,
            path_rewrite,
            rewrite_location,
            request_headers,
            response_headers,
            answer,
            mirror,
            compression,
            rate_limits,
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

impl Validator {
    /// A condition's regular expression, checked: not with `value`, and it compiles.
    fn match_regex(&mut self, path: &str, m: &RawHeaderMatch) -> Option<String> {
        let regex = m.regex.clone()?;
        if m.value.is_some() {
            self.error(path, "set at most one of value, regex");
        }
        if let Err(e) = super::rewrite::compile_regex(&regex) {
            self.error(format!("{path}.regex"), e);
        }
        Some(regex)
    }

    /// Query parameter or cookie conditions (`path`: e.g. `routes[0].query`).
    fn param_matches(&mut self, path: &str, raw: &[RawHeaderMatch]) -> Vec<HeaderMatch> {
        raw.iter()
            .enumerate()
            .map(|(j, m)| {
                if m.name.is_empty() || m.name.bytes().any(|b| b <= b' ' || b == 0x7f || b == b';')
                {
                    self.error(
                        format!("{path}[{j}].name"),
                        format!("invalid name {:?}", m.name),
                    );
                }
                let regex = self.match_regex(&format!("{path}[{j}]"), m);
                HeaderMatch {
                    name: m.name.clone(),
                    value: m.value.clone(),
                    regex,
                }
            })
            .collect()
    }
}
