//! Header rewriting at the proxy: hop-by-hop removal (RFC 9110 section 7.6.1) and upgrade requests.
//! The forwarding headers are in [`crate::request::added_headers`].

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that apply to one connection only and are never forwarded; `Connection` first.
/// (`Keep-Alive` and `Proxy-Connection` are not among `http`'s constants.)
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::TRAILER,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Headers a `Connection` header may not name away: the message's target and framing, and the
/// request id the proxy logs and forwards (else the upstream's id and the access log's differ).
static KEPT: [HeaderName; 3] = [
    header::HOST,
    header::CONTENT_LENGTH,
    HeaderName::from_static("x-request-id"),
];

/// Index of `Upgrade` in [`HOP_BY_HOP`].
const UPGRADE_INDEX: usize = 3;

/// The host a request is for: an absolute-form target's or HTTP/2's authority (it wins over `Host`,
/// RFC 9112 section 3.2.2), else its one `Host` header. Refused (a 400, RFC 9112 section 3.2): more
/// than one `Host` header (a backend reading the last would serve another virtual host), a `Host`
/// that is not a valid authority (empty, userinfo, a path, a list, spaces), userinfo in the target,
/// and HTTP/1.1 without a host.
#[inline]
pub(crate) fn request_host<'a>(
    uri: &'a http::Uri,
    headers: &'a HeaderMap,
    version: http::Version,
) -> Result<&'a [u8], &'static str> {
    host_and_header(uri, headers, version).map(|(host, _)| host)
}

/// [`request_host`], and the request's one `Host` header if it has one (looked up once for both:
/// a header lookup costs about as much as the rest of the check).
#[inline]
pub(crate) fn host_and_header<'a>(
    uri: &'a http::Uri,
    headers: &'a HeaderMap,
    version: http::Version,
) -> Result<(&'a [u8], Option<&'a HeaderValue>), &'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    if let Some(a) = uri.authority() {
        if a.as_str().contains('@') {
            return Err("userinfo in the request target");
        }
        return Ok((a.as_str().as_bytes(), first));
    }
    match first {
        Some(h) if valid_authority(h.as_bytes()) => Ok((h.as_bytes(), first)),
        Some(_) => Err("invalid Host header"),
        None if version == http::Version::HTTP_11 => Err("missing Host header"),
        None => Ok((b"", None)),
    }
}

/// Whether `host` is a plausible `host[:port]` (RFC 3986 reg-name, IPv4 or bracketed IPv6 literal):
/// not empty, and none of `@ / , ? #`, spaces or controls. One table lookup per byte.
fn valid_authority(host: &[u8]) -> bool {
    !host.is_empty() && host.iter().all(|&b| AUTHORITY[usize::from(b)])
}

/// The bytes a `Host` value may hold: letters, digits and `-._~:[]%!$&'()*+;=`.
static AUTHORITY: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'['
                    | b']'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// Removes hop-by-hop headers, including every header named in `Connection`, and `Expect`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    HopByHop::find(headers).strip(headers);
}

/// The hop-by-hop headers a message carries, found in one pass over its names (cheap comparisons
/// of standard headers), so that only those present are looked up or removed: most messages carry
/// none, or only `Connection`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HopByHop {
    present: [bool; HOP_BY_HOP.len()],
    /// `Expect` is not hop-by-hop, but is never forwarded either: the proxy answers
    /// `100-continue` itself (hyper does when the body is read), and a response carrying one is
    /// malformed.
    expect: bool,
    any: bool,
}

impl HopByHop {
    /// The hop-by-hop headers among `headers`.
    pub(crate) fn find(headers: &HeaderMap) -> HopByHop {
        let mut found = HopByHop {
            present: [false; HOP_BY_HOP.len()],
            expect: false,
            any: false,
        };
        for name in headers.keys() {
            if let Some(i) = hop_by_hop_index(name) {
                found.present[i] = true;
                found.any = true;
            } else if name == header::EXPECT {
                found.expect = true;
                found.any = true;
            }
        }
        found
    }

    /// The protocol an HTTP/1.1 client asks to switch to (`Connection: upgrade` plus `Upgrade`),
    /// if any.
    pub(crate) fn upgrade(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        // Index 0 is `Connection`.
        if !(self.present[0] && self.present[UPGRADE_INDEX]) {
            return None;
        }
        upgrade_request(headers)
    }

    /// Whether the message has a `TE` header naming `trailers` (the client takes trailers: gRPC).
    pub(crate) fn te_trailers(&self, headers: &HeaderMap) -> bool {
        // Index 1 is `TE`.
        self.present[1]
            && headers.get_all(header::TE).iter().any(|v| {
                v.as_bytes().split(|&b| b == b',').any(|t| {
                    t.split(|&b| b == b';')
                        .next()
                        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
                })
            })
    }

    /// Removes the headers found, and every header `Connection` names except those it may never
    /// remove ([`KEPT`]).
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        if !self.any {
            return;
        }
        if self.present[0] {
            if let Some(named) = connection_named(headers) {
                for name in named.iter().filter(|n| !KEPT.contains(n)) {
                    headers.remove(name);
                }
            }
        }
        for (name, _) in HOP_BY_HOP.iter().zip(self.present).filter(|(_, p)| *p) {
            headers.remove(name);
        }
        if self.expect {
            headers.remove(header::EXPECT);
        }
    }
}

/// Whether `name` is a hop-by-hop header (not counting those a `Connection` header names).
#[inline]
pub(crate) fn is_hop_by_hop(name: &HeaderName) -> bool {
    hop_by_hop_index(name).is_some()
}

/// The position of `name` in [`HOP_BY_HOP`]. Names of other lengths are rejected by one comparison,
/// which is most of them.
#[inline]
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    let s = name.as_str();
    match s.len() {
        2 | 7 | 10 | 16 | 17 | 18 => HOP_BY_HOP.iter().position(|h| h.as_str() == s),
        _ => None,
    }
}

/// Header names listed in `Connection`, other than tokens that name no header to forward; `None`
/// (no allocation) in the usual case of `keep-alive`, `close` or `upgrade` alone.
fn connection_named(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Option<Vec<HeaderName>> = None;
    for value in headers.get_all(header::CONNECTION) {
        for token in connection_tokens(value.as_bytes()) {
            if let ConnectionToken::Names(name) = token {
                names.get_or_insert_with(Vec::new).push(name);
            }
        }
    }
    names
}

/// One element of a `Connection` header's list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConnectionToken {
    /// `close`.
    Close,
    /// `keep-alive`.
    KeepAlive,
    /// `upgrade`.
    Upgrade,
    /// A header that applies to this connection only (it must not be forwarded).
    Names(HeaderName),
}

/// The elements of one `Connection` value, case-insensitively; elements naming no valid header are
/// skipped. The usual value, a lone `keep-alive` or `close`, is recognised without tokenising.
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = ConnectionToken> + '_ {
    let lone = if value.eq_ignore_ascii_case(b"keep-alive") {
        Some(ConnectionToken::KeepAlive)
    } else if value.eq_ignore_ascii_case(b"close") {
        Some(ConnectionToken::Close)
    } else {
        None
    };
    let list = if lone.is_some() { &b""[..] } else { value };
    lone.into_iter().chain(
        list.split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .filter_map(|token| {
                if token.is_empty() {
                    None
                } else if token.eq_ignore_ascii_case(b"close") {
                    Some(ConnectionToken::Close)
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    Some(ConnectionToken::KeepAlive)
                } else if token.eq_ignore_ascii_case(b"upgrade") {
                    Some(ConnectionToken::Upgrade)
                } else {
                    HeaderName::from_bytes(token)
                        .ok()
                        .map(ConnectionToken::Names)
                }
            }),
    )
}

/// The protocol an HTTP/1.1 client asks to switch to (`Connection: upgrade` plus `Upgrade`), if any.
fn upgrade_request(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|t| {
                t.split(',')
                    .any(|tok| tok.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    });
    if asks {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_has_one_valid_host() {
        let host = |uri: &str, hosts: &[&str], v| {
            let mut h = HeaderMap::new();
            for value in hosts {
                h.append(header::HOST, HeaderValue::from_str(value).unwrap());
            }
            let uri: http::Uri = uri.parse().unwrap();
            request_host(&uri, &h, v).map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let v11 = http::Version::HTTP_11;
        assert_eq!(host("/", &["a.test:8080"], v11).unwrap(), "a.test:8080");
        assert_eq!(host("/", &["[::1]:80"], v11).unwrap(), "[::1]:80");
        assert_eq!(host("http://b.test/x", &["a.test"], v11).unwrap(), "b.test");
        assert_eq!(host("/", &[], http::Version::HTTP_10).unwrap(), "");
        for (uri, hosts) in [
            ("/", &["a.test", "b.test"][..]),
            ("http://b.test/", &["a.test", "a.test"]),
            ("/", &[]),
            ("/", &[""]),
            ("/", &["u@a.test"]),
            ("/", &["a.test/x"]),
            ("/", &["a.test,b.test"]),
            ("/", &["a test"]),
            ("http://u@b.test/", &["b.test"]),
        ] {
            assert!(host(uri, hosts, v11).is_err(), "{uri} {hosts:?}");
        }
    }

    #[test]
    fn connection_cannot_name_away_host_length_or_request_id() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("host, content-length, x-request-id, x-gone"),
        );
        for name in ["host", "content-length", "x-request-id", "x-gone"] {
            h.insert(name, HeaderValue::from_static("1"));
        }
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host", "x-request-id"]);
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, close"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TRAILER, HeaderValue::from_static("x-checksum"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        assert!(HopByHop::find(&h).te_trailers(&h));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
    }

    #[test]
    fn a_lone_keep_alive_line_does_not_hide_the_names_of_another() {
        let mut h = HeaderMap::new();
        h.append(header::CONNECTION, HeaderValue::from_static("Keep-Alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("x-hop").is_none());
        assert_eq!(h.get("x-kept").map(|v| v.as_bytes()), Some(&b"yes"[..]));
    }

    #[test]
    fn connection_elements() {
        use ConnectionToken::*;
        let all = |v: &str| connection_tokens(v.as_bytes()).collect::<Vec<_>>();
        assert_eq!(all("Keep-Alive"), [KeepAlive]);
        assert_eq!(all("close"), [Close]);
        assert_eq!(
            all(" close ,X-Hop,,upgrade, bad name"),
            [Close, Names(HeaderName::from_static("x-hop")), Upgrade]
        );
        assert_eq!(all(""), []);
    }

    #[test]
    fn detects_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(HopByHop::find(&h).upgrade(&h), None);
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        assert_eq!(HopByHop::find(&h).upgrade(&h), None);
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(HopByHop::find(&h).upgrade(&h).unwrap(), "websocket");
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }
}
