//! Validated rate limits: a route's `[[routes.rate_limits]]` and a cluster's
//! `[[clusters.<name>.rate_limits]]`.

use std::time::Duration;

/// One rate limit: a rate and a burst per key, enforced or only counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Unique among the limits of its route (or cluster); names the limit in metrics, in the admin
    /// API and, for fleet limits, on the bus.
    pub name: String,
    /// Requests admitted per `per`, in the long run, for one key.
    pub rate: u64,
    /// The period `rate` counts over.
    pub per: Duration,
    /// Requests a key may send at once after a quiet spell (at least 1).
    pub burst: u64,
    /// What a key is made of: every part, in order.
    pub key: Vec<LimitKey>,
    /// Whether the limit holds per node or for the fleet together.
    pub scope: LimitScope,
    /// Whether requests over the limit are refused or only counted.
    pub mode: LimitMode,
    /// Keys tracked at most on one node; beyond, the eviction rule of docs/config.md applies.
    pub max_keys: u64,
    /// Whether admitted responses carry the `RateLimit-Policy` and `RateLimit` headers too (refused
    /// ones always do).
    pub response_headers: bool,
}

impl RateLimit {
    /// The time one request costs: `per / rate`, in nanoseconds (at least 1).
    pub fn interval_nanos(&self) -> u64 {
        let per = u64::try_from(self.per.as_nanos()).unwrap_or(u64::MAX);
        (per / self.rate.max(1)).max(1)
    }
}

/// One part of a rate limit's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LimitKey {
    /// The client's address (from `X-Forwarded-For` when the peer is a trusted proxy).
    ClientIp,
    /// The route (or cluster) itself: one key for all its requests.
    Route,
    /// A request header's value (name lower case); a request without it is not limited by this
    /// limit.
    Header(String),
    /// A cookie's value; a request without it is not limited by this limit.
    Cookie(String),
}

impl LimitKey {
    /// The key part as written in the config: `client_ip`, `route`, `header:<name>`,
    /// `cookie:<name>`.
    pub fn text(&self) -> String {
        match self {
            LimitKey::ClientIp => "client_ip".to_string(),
            LimitKey::Route => "route".to_string(),
            LimitKey::Header(h) => format!("header:{h}"),
            LimitKey::Cookie(c) => format!("cookie:{c}"),
        }
    }
}

/// Where a rate limit holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Each node admits the rate on its own.
    Local,
    /// The nodes together admit about the rate, sharing their demand over NATS.
    Fleet,
}

impl LimitScope {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            LimitScope::Local => "local",
            LimitScope::Fleet => "fleet",
        }
    }
}

/// What happens to a request over a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitMode {
    /// Refused with `429 Too Many Requests`.
    Enforce,
    /// Counted in the metrics and let through.
    Shadow,
}

impl LimitMode {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            LimitMode::Enforce => "enforce",
            LimitMode::Shadow => "shadow",
        }
    }
}

/// A network of trusted proxies: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network's address (host bits zero).
    pub addr: std::net::IpAddr,
    /// Prefix length: 0..=32 for IPv4, 0..=128 for IPv6.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside the network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str, prefix: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn networks_hold_their_addresses_only() {
        let n = net("10.1.0.0", 16);
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(net("0.0.0.0", 0).contains("8.8.8.8".parse().unwrap()));
        assert!(!net("0.0.0.0", 0).contains("::1".parse().unwrap()));
        assert!(net("fd00::", 8).contains("fd12::1".parse().unwrap()));
        assert!(net("127.0.0.1", 32).contains("127.0.0.1".parse().unwrap()));
        assert!(!net("127.0.0.1", 32).contains("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn the_interval_is_the_period_over_the_rate() {
        let l = RateLimit {
            name: "a".into(),
            rate: 100,
            per: Duration::from_secs(1),
            burst: 1,
            key: vec![LimitKey::ClientIp],
            scope: LimitScope::Local,
            mode: LimitMode::Enforce,
            max_keys: 10,
            response_headers: false,
        };
        assert_eq!(l.interval_nanos(), 10_000_000);
    }
}
