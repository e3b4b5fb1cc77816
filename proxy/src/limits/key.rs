//! A request's key for one limit: its parts (client address, route, header, cookie) hashed into 64
//! bits.
//!
//! The hash is this file's own and stable across versions and hosts: fleet limits name keys by it on
//! the bus, so nodes of different releases must agree. Each part is hashed as its length then its
//! bytes, eight at a time, so that `("ab", "c")` and `("a", "bc")` differ.

use edgeplane_config::model::{IpNet, LimitKey};
use http::HeaderMap;
use std::net::IpAddr;

/// What a request offers to key a limit with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySource<'a> {
    /// The request's headers.
    pub(crate) headers: &'a HeaderMap,
    /// The peer's address, as text (`ConnInfo::client_ip`).
    pub(crate) peer: &'a [u8],
    /// The node's trusted proxies.
    pub(crate) trusted: &'a [IpNet],
}

/// The request's key for a limit keyed by `parts`; `None` when a header or cookie it needs is
/// missing (the limit does not apply).
#[inline]
pub(crate) fn request_key(parts: &[LimitKey], source: &KeySource<'_>) -> Option<u64> {
    let mut h = Hasher::new();
    for part in parts {
        match part {
            LimitKey::ClientIp => client_ip(source, |ip| h.part(ip)),
            // The limiter is the route's or the cluster's own: a constant part suffices.
            LimitKey::Route => h.part(b""),
            LimitKey::Header(name) => h.part(source.headers.get(name.as_str())?.as_bytes()),
            LimitKey::Cookie(name) => h.part(cookie(source.headers, name)?),
        }
    }
    Some(h.finish())
}

/// The key of the given part values, in the order of the limit's parts (the admin API's lookup).
pub(crate) fn key_of(values: &[&[u8]]) -> u64 {
    let mut h = Hasher::new();
    for v in values {
        h.part(v);
    }
    h.finish()
}

/// Calls `f` with the client's address: the peer's, or, when the peer is a trusted proxy, the
/// rightmost address of `X-Forwarded-For` that is not a trusted proxy (the leftmost if all are).
fn client_ip(source: &KeySource<'_>, f: impl FnOnce(&[u8])) {
    if source.trusted.is_empty() || !trusted(source.trusted, source.peer) {
        return f(source.peer);
    }
    let mut chosen: Option<&[u8]> = None;
    // Later headers were added by later hops: walk them, and their entries, from the right.
    let values = source.headers.get_all("x-forwarded-for");
    'walk: for value in values.iter().rev() {
        for entry in value.as_bytes().rsplit(|&b| b == b',') {
            let entry = entry.trim_ascii();
            if entry.is_empty() {
                continue;
            }
            chosen = Some(entry);
            if !trusted(source.trusted, entry) {
                break 'walk;
            }
        }
    }
    f(chosen.unwrap_or(source.peer))
}

fn trusted(nets: &[IpNet], addr: &[u8]) -> bool {
    let Some(ip) = std::str::from_utf8(addr)
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok())
    else {
        return false;
    };
    nets.iter().any(|n| n.contains(ip))
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    for value in headers.get_all(http::header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            if let Some(rest) = pair.strip_prefix(name.as_bytes()) {
                if let Some(v) = rest.strip_prefix(b"=") {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// 64-bit multiply-rotate hash over 8-byte words with a strong final mix (the finaliser of
/// MurmurHash3). Not keyed: a key's hash is the same on every node.
struct Hasher(u64);

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

impl Hasher {
    fn new() -> Hasher {
        Hasher(0x6A09_E667_F3BC_C908)
    }

    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w.wrapping_mul(K2))
            .rotate_left(31)
            .wrapping_mul(K1);
    }

    #[inline]
    fn part(&mut self, bytes: &[u8]) {
        self.word(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^= h >> 33;
        h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(headers: &'a HeaderMap, peer: &'a str, trusted: &'a [IpNet]) -> KeySource<'a> {
        KeySource {
            headers,
            peer: peer.as_bytes(),
            trusted,
        }
    }

    fn net(s: &str, prefix: u8) -> IpNet {
        IpNet {
            addr: s.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn the_hash_is_stable_and_parts_are_delimited() {
        // Fixed values: a change here breaks fleet limits between releases.
        assert_eq!(key_of(&[b"10.0.0.1"]), 0x75f9_0ab4_1647_3e08);
        assert_ne!(key_of(&[b"ab", b"c"]), key_of(&[b"a", b"bc"]));
        assert_ne!(key_of(&[b""]), key_of(&[]));
    }

    #[test]
    fn a_missing_header_or_cookie_leaves_the_request_unlimited() {
        let mut h = HeaderMap::new();
        let parts = [LimitKey::Header("x-api-key".into())];
        assert_eq!(request_key(&parts, &source(&h, "1.2.3.4", &[])), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(
            request_key(&parts, &source(&h, "1.2.3.4", &[])),
            Some(key_of(&[b"k1"]))
        );
        let parts = [LimitKey::Cookie("sid".into()), LimitKey::ClientIp];
        assert_eq!(request_key(&parts, &source(&h, "1.2.3.4", &[])), None);
        h.insert("cookie", "a=1; sid=xyz; sidx=2".parse().unwrap());
        assert_eq!(
            request_key(&parts, &source(&h, "1.2.3.4", &[])),
            Some(key_of(&[b"xyz", b"1.2.3.4"]))
        );
    }

    #[test]
    fn forwarded_for_counts_only_from_a_trusted_peer() {
        let trusted = [net("10.0.0.0", 8)];
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        h.append("x-forwarded-for", "10.1.1.1".parse().unwrap());
        let ip = [LimitKey::ClientIp];
        // Untrusted peer: its own address, whatever the header says.
        assert_eq!(
            request_key(&ip, &source(&h, "198.51.100.7", &trusted)),
            Some(key_of(&[b"198.51.100.7"]))
        );
        // Trusted peer: the rightmost untrusted hop, not the client-written leftmost entry.
        assert_eq!(
            request_key(&ip, &source(&h, "10.0.0.2", &trusted)),
            Some(key_of(&[b"203.0.113.9"]))
        );
        // Trusted peer without the header: the peer.
        let empty = HeaderMap::new();
        assert_eq!(
            request_key(&ip, &source(&empty, "10.0.0.2", &trusted)),
            Some(key_of(&[b"10.0.0.2"]))
        );
    }
}
