//! Validation of rate limits (`rate_limits` of routes and clusters) and of the node's
//! `trusted_proxies`.

use super::{is_token_byte, Validator};
use crate::model::defaults::rate_limit as d;
use crate::model::{IpNet, LimitKey, LimitMode, LimitScope, RateLimit};
use crate::raw::RawRateLimit;
use std::collections::HashSet;
use std::time::Duration;

impl Validator {
    /// The limits at `path` (e.g. `routes[0].rate_limits`), names unique among them.
    pub(super) fn rate_limits(&mut self, path: &str, raw: &[RawRateLimit]) -> Vec<RateLimit> {
        let mut names = HashSet::new();
        let mut limits = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let limit = self.rate_limit(&at, r);
            if !names.insert(limit.name.clone()) {
                self.error(
                    format!("{at}.name"),
                    format!(
                        "duplicate rate limit name {:?}; give each limit its own `name`",
                        limit.name
                    ),
                );
            }
            limits.push(limit);
        }
        limits
    }

    fn rate_limit(&mut self, path: &str, raw: &RawRateLimit) -> RateLimit {
        let rate = match raw.rate {
            None => {
                self.error(
                    format!("{path}.rate"),
                    "missing: requests per `per`, 1 or more",
                );
                1
            }
            Some(r) => self.int(&format!("{path}.rate"), Some(r), 1, 1, d::MAX_RATE) as u64,
        };
        let per = self.duration(&format!("{path}.per"), raw.per.as_deref(), d::PER);
        if per < Duration::from_millis(1) || per > d::MAX_PER {
            self.error(format!("{path}.per"), "expected 1ms to 24h");
        }
        let burst = match raw.burst {
            None => rate,
            Some(b) => self.int(&format!("{path}.burst"), Some(b), 1, 1, d::MAX_RATE) as u64,
        };
        let key = self.limit_key(path, raw.key.as_deref());
        let name = match &raw.name {
            Some(n) => n.clone(),
            // Made from the key, in the names' alphabet: `header-x-api-key_client_ip`.
            None => key
                .iter()
                .map(|k| k.text())
                .collect::<Vec<_>>()
                .join("_")
                .chars()
                .map(|c| match c {
                    'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' => c,
                    _ => '-',
                })
                .take(64)
                .collect(),
        };
        self.name(&format!("{path}.name"), &name);
        let scope = match raw.scope.as_deref() {
            None | Some("local") => LimitScope::Local,
            Some("fleet") => LimitScope::Fleet,
            Some(other) => {
                self.error(
                    format!("{path}.scope"),
                    format!("unknown scope {other:?}; expected local or fleet"),
                );
                LimitScope::Local
            }
        };
        let mode = match raw.mode.as_deref() {
            None | Some("enforce") => LimitMode::Enforce,
            Some("shadow") => LimitMode::Shadow,
            Some(other) => {
                self.error(
                    format!("{path}.mode"),
                    format!("unknown mode {other:?}; expected enforce or shadow"),
                );
                LimitMode::Enforce
            }
        };
        let max_keys = self.int(
            &format!("{path}.max_keys"),
            raw.max_keys,
            d::MAX_KEYS,
            d::MIN_MAX_KEYS,
            d::MAX_MAX_KEYS,
        ) as u64;
        RateLimit {
            name,
            rate,
            per,
            burst,
            key,
            scope,
            mode,
            max_keys,
            response_headers: raw.response_headers.unwrap_or(d::RESPONSE_HEADERS),
        }
    }

    fn limit_key(&mut self, path: &str, raw: Option<&[String]>) -> Vec<LimitKey> {
        let Some(raw) = raw else {
            return vec![LimitKey::ClientIp];
        };
        if raw.is_empty() {
            self.error(
                format!("{path}.key"),
                "name at least one part: client_ip, route, header:<name> or cookie:<name>",
            );
        }
        let mut key = Vec::with_capacity(raw.len());
        for (i, part) in raw.iter().enumerate() {
            let at = format!("{path}.key[{i}]");
            let text = part.trim();
            let parsed = match text.split_once(':') {
                None if text == "client_ip" => Some(LimitKey::ClientIp),
                None if text == "route" => Some(LimitKey::Route),
                Some(("header", name)) => {
                    let name = name.trim().to_ascii_lowercase();
                    if name.is_empty() || !name.bytes().all(is_token_byte) {
                        self.error(&at, format!("invalid header name {name:?}"));
                    }
                    Some(LimitKey::Header(name))
                }
                Some(("cookie", name)) => {
                    let name = name.trim();
                    if name.is_empty() || !name.bytes().all(is_token_byte) {
                        self.error(&at, format!("invalid cookie name {name:?}"));
                    }
                    Some(LimitKey::Cookie(name.to_string()))
                }
                _ => {
                    self.error(
                        &at,
                        format!(
                            "unknown key kind {text:?}; expected client_ip, route, \
                             header:<name> or cookie:<name>"
                        ),
                    );
                    None
                }
            };
            if let Some(k) = parsed {
                if key.contains(&k) {
                    self.error(&at, format!("{text:?} is listed twice"));
                } else {
                    key.push(k);
                }
            }
        }
        key
    }

    /// `node.trusted_proxies`: networks or single addresses.
    pub(super) fn trusted_proxies(&mut self, raw: &[String]) -> Vec<IpNet> {
        let mut nets = Vec::with_capacity(raw.len());
        for (i, text) in raw.iter().enumerate() {
            match ip_net(text.trim()) {
                Some(net) => nets.push(net),
                None => self.error(
                    format!("node.trusted_proxies[{i}]"),
                    format!(
                        "invalid network {text:?}: expected an address with its prefix length \
                         (10.0.0.0/8, fd00::/8) or one address"
                    ),
                ),
            }
        }
        nets
    }
}

/// `10.0.0.0/8`, `::1/128` or one address; host bits must be zero.
fn ip_net(text: &str) -> Option<IpNet> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<std::net::IpAddr>().ok()?, p.parse::<u8>().ok()?),
        None => {
            let a = text.parse::<std::net::IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return None;
    }
    // Host bits set (10.0.0.1/8) are a typo more often than not: refused rather than masked.
    (masked(addr, prefix) == addr).then_some(IpNet { addr, prefix })
}

fn masked(addr: std::net::IpAddr, prefix: u8) -> std::net::IpAddr {
    use std::net::IpAddr;
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}
