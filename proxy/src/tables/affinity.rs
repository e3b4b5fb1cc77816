//! Session affinity: the proxy names the endpoint that served a client in a cookie or a response
//! header (an opaque token: the endpoint's stable address hash, the same on every node), and sends
//! the client's next requests carrying it to that endpoint while it is usable. Tokens are computed
//! from addresses, so they survive snapshot swaps and work across nodes; an unknown or stale token
//! falls back to the balancer and the response carries the new one.

use crate::tables::balancer::hashing::{address_hash, cookie};
use edgeplane_config::model::AffinityBy;
use foldhash::{HashMap, HashMapExt};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;

/// A cluster's affinity settings and token lookup, built with the snapshot.
#[derive(Debug)]
pub struct Affinity {
    by: Carrier,
    ttl_secs: u64,
    /// Token → index into the cluster's endpoints.
    tokens: HashMap<u64, usize>,
}

#[derive(Debug)]
enum Carrier {
    Cookie(String),
    Header(HeaderName),
}

impl Affinity {
    /// The lookup for `endpoints` (addresses in the cluster's endpoint order).
    pub(crate) fn new(
        config: &edgeplane_config::model::Affinity,
        endpoints: &[SocketAddr],
    ) -> Self {
        let mut tokens = HashMap::with_capacity(endpoints.len());
        for (i, &a) in endpoints.iter().enumerate() {
            tokens.insert(address_hash(a), i);
        }
        let by = match &config.by {
            AffinityBy::Cookie(name) => Carrier::Cookie(name.clone()),
            // Validation admitted only token characters, so this parses.
            AffinityBy::Header(name) => Carrier::Header(
                HeaderName::from_bytes(name.as_bytes())
                    .unwrap_or(HeaderName::from_static("x-edgeplane-affinity")),
            ),
        };
        Affinity {
            by,
            ttl_secs: config.ttl.as_secs().max(1),
            tokens,
        }
    }

    /// The token the request carries, if any and well-formed.
    pub fn requested(&self, headers: &HeaderMap) -> Option<u64> {
        let raw = match &self.by {
            Carrier::Cookie(name) => cookie(headers, name)?,
            Carrier::Header(name) => headers.get(name)?.as_bytes(),
        };
        parse_token(raw)
    }

    /// The endpoint index the token names in this snapshot.
    pub(crate) fn endpoint(&self, token: u64) -> Option<usize> {
        self.tokens.get(&token).copied()
    }

    /// The header to add to the response when the request did not already carry `address`'s token.
    pub(crate) fn response_header(
        &self,
        requested: Option<u64>,
        address: SocketAddr,
    ) -> Option<(HeaderName, HeaderValue)> {
        let token = address_hash(address);
        if requested == Some(token) {
            return None;
        }
        let value = match &self.by {
            Carrier::Cookie(name) => HeaderValue::from_str(&format!(
                "{name}={token:016x}; Path=/; Max-Age={}; HttpOnly",
                self.ttl_secs
            ))
            .ok()?,
            Carrier::Header(_) => HeaderValue::from_str(&format!("{token:016x}")).ok()?,
        };
        let name = match &self.by {
            Carrier::Cookie(_) => http::header::SET_COOKIE,
            Carrier::Header(name) => name.clone(),
        };
        Some((name, value))
    }
}

/// A token is 16 lower-case hex digits.
fn parse_token(raw: &[u8]) -> Option<u64> {
    if raw.len() != 16 {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?;
    u64::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(by: AffinityBy) -> edgeplane_config::model::Affinity {
        edgeplane_config::model::Affinity {
            by,
            ttl: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_cookie_names_the_endpoint_and_is_set_only_when_it_changes() {
        let eps: Vec<SocketAddr> = vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ];
        let a = Affinity::new(&config(AffinityBy::Cookie("ep".into())), &eps);
        let (name, value) = a.response_header(None, eps[1]).unwrap();
        assert_eq!(name, http::header::SET_COOKIE);
        let text = value.to_str().unwrap();
        assert!(text.ends_with("; Path=/; Max-Age=600; HttpOnly"), "{text}");
        let pair = text.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("other=1; {pair}").parse().unwrap(),
        );
        let token = a.requested(&h).unwrap();
        assert_eq!(a.endpoint(token), Some(1));
        assert!(
            a.response_header(Some(token), eps[1]).is_none(),
            "already set"
        );
        assert!(a.response_header(Some(token), eps[0]).is_some(), "moved");
        // Another node (another build of the lookup) reads the same token the same way.
        let b = Affinity::new(&config(AffinityBy::Cookie("ep".into())), &[eps[1]]);
        assert_eq!(b.endpoint(token), Some(0));
    }

    #[test]
    fn a_header_carries_the_token_and_garbage_is_ignored() {
        let eps: Vec<SocketAddr> = vec!["10.0.0.1:80".parse().unwrap()];
        let a = Affinity::new(&config(AffinityBy::Header("x-ep".into())), &eps);
        let (name, value) = a.response_header(None, eps[0]).unwrap();
        assert_eq!(name.as_str(), "x-ep");
        let mut h = HeaderMap::new();
        h.insert("x-ep", value);
        assert_eq!(a.requested(&h).and_then(|t| a.endpoint(t)), Some(0));
        for bad in ["", "xyz", "00000000000000000000", "zzzzzzzzzzzzzzzz"] {
            h.insert("x-ep", bad.parse().unwrap());
            assert_eq!(a.requested(&h).and_then(|t| a.endpoint(t)), None, "{bad:?}");
        }
    }
}
