//! What consistent hashing needs: a hash that every node computes the same way (FNV-1a with a
//! SplitMix64 finaliser; not the randomized hasher of the maps), and the request key.

use edgeplane_config::model::HashOn;
use http::HeaderMap;

/// A 64-bit hash of `bytes`, identical on every node and every run.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h)
}

/// An endpoint's hash: its IP octets and port, the same on every node (no allocation).
pub(crate) fn address_hash(address: std::net::SocketAddr) -> u64 {
    let mut buf = [0u8; 18];
    let port = address.port().to_be_bytes();
    let len = match address.ip() {
        std::net::IpAddr::V4(ip) => {
            buf[..4].copy_from_slice(&ip.octets());
            4
        }
        std::net::IpAddr::V6(ip) => {
            buf[..16].copy_from_slice(&ip.octets());
            16
        }
    };
    buf[len..len + 2].copy_from_slice(&port);
    stable_hash(&buf[..len + 2])
}

/// SplitMix64's finaliser: spreads every input bit over the output.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The request's hash key for `on`, or `None` when the request lacks it (no such header or cookie).
pub(crate) fn request_key(
    on: &HashOn,
    headers: &HeaderMap,
    path: &str,
    client_ip: &[u8],
) -> Option<u64> {
    match on {
        HashOn::Header(name) => headers
            .get(name.as_str())
            .map(|v| stable_hash(v.as_bytes())),
        HashOn::Cookie(name) => cookie(headers, name).map(stable_hash),
        HashOn::ClientIp => Some(stable_hash(client_ip)),
        HashOn::Path => Some(stable_hash(path.as_bytes())),
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_configured_property() {
        let mut h = HeaderMap::new();
        h.insert("x-user", "alice".parse().unwrap());
        h.append(http::header::COOKIE, "a=1; sid=xyz".parse().unwrap());
        let ip = b"10.0.0.1";
        let k = |on: HashOn| request_key(&on, &h, "/p", ip);
        assert_eq!(
            k(HashOn::Header("x-user".into())),
            Some(stable_hash(b"alice"))
        );
        assert_eq!(k(HashOn::Cookie("sid".into())), Some(stable_hash(b"xyz")));
        assert_eq!(k(HashOn::Cookie("none".into())), None);
        assert_eq!(k(HashOn::Header("x-none".into())), None);
        assert_eq!(k(HashOn::ClientIp), Some(stable_hash(ip)));
        assert_eq!(k(HashOn::Path), Some(stable_hash(b"/p")));
        // Fixed across runs: a pinned value.
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
    }
}
