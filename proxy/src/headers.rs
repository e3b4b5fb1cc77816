//! Header rewriting at the proxy: hop-by-hop removal (RFC 9110 section 7.6.1) and forwarding headers.

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

/// `X-Forwarded-For`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes hop-by-hop headers, including every header named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names (cheap comparisons of standard headers) finds which hop-by-hop headers
    // are present, so only those are removed: most messages carry none, or only `Connection`.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return;
    }
    // Index 0 is `Connection`: the headers it names go too.
    if present[0] {
        if let Some(named) = connection_named(headers) {
            for name in named {
                headers.remove(name);
            }
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(present).filter(|(_, p)| *p) {
        headers.remove(name);
    }
}

/// The position of `name` in [`HOP_BY_HOP`]. Names of other lengths are rejected by one comparison,
/// which is most of them.
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
        // The usual value, a lone `keep-alive` or `close`, names nothing: no tokenising.
        let bytes = value.as_bytes();
        if bytes.eq_ignore_ascii_case(b"keep-alive") || bytes.eq_ignore_ascii_case(b"close") {
            continue;
        }
        let Ok(text) = value.to_str() else { continue };
        for token in text.split(',').map(str::trim) {
            if token.is_empty()
                || token.eq_ignore_ascii_case("close")
                || token.eq_ignore_ascii_case("keep-alive")
                || token.eq_ignore_ascii_case("upgrade")
            {
                continue;
            }
            if let Ok(name) = HeaderName::from_bytes(token.as_bytes()) {
                names.get_or_insert_with(Vec::new).push(name);
            }
        }
    }
    names
}

/// The protocol an HTTP/1.1 client asks to switch to (`Connection: upgrade` plus `Upgrade`), if any.
pub fn upgrade_request(headers: &HeaderMap) -> Option<HeaderValue> {
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

/// Appends the client's address to `X-Forwarded-For` (joining earlier values into one line).
pub fn append_forwarded_for(headers: &mut HeaderMap, client: &HeaderValue) {
    let mut previous = headers.get_all(&X_FORWARDED_FOR).iter().peekable();
    if previous.peek().is_none() {
        headers.insert(X_FORWARDED_FOR.clone(), client.clone());
        return;
    }
    let mut joined = Vec::with_capacity(64);
    for v in previous {
        joined.extend_from_slice(v.as_bytes());
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(client.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
}

/// Appends this proxy to `Via` (RFC 9110 section 7.6.3).
pub fn append_via(headers: &mut HeaderMap, ours: &HeaderValue) {
    match headers.get(header::VIA) {
        None => {
            headers.insert(header::VIA, ours.clone());
        }
        Some(existing) => {
            let mut joined = existing.as_bytes().to_vec();
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(ours.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                headers.insert(header::VIA, v);
            }
        }
    }
}

/// `x-request-id`: kept from the client when present, else generated, and sent upstream.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied request id kept; a longer one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// Makes sure the request carries an `x-request-id`: the client's if it has a usable one, else 32 hex
/// digits from the node's `seed` and the request's sequence number `n` (unique per node and restart).
pub fn ensure_request_id(h: &mut HeaderMap, seed: u64, n: u64) {
    if h.get(&X_REQUEST_ID)
        .is_some_and(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
    {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (i, word) in [seed, n].into_iter().enumerate() {
        for j in 0..16 {
            id[i * 16 + j] = HEX[((word >> (60 - 4 * j)) & 0xf) as usize];
        }
    }
    if let Ok(v) = HeaderValue::from_bytes(&id) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn detects_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert_eq!(upgrade_request(&h), None);
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_request(&h).unwrap(), "websocket");
    }

    #[test]
    fn forwarded_for_and_via_append() {
        let mut h = HeaderMap::new();
        let client = HeaderValue::from_static("127.0.0.1");
        append_forwarded_for(&mut h, &client);
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1");
        h.append(
            X_FORWARDED_FOR.clone(),
            HeaderValue::from_static("10.0.0.2"),
        );
        append_forwarded_for(&mut h, &client);
        assert_eq!(h[&X_FORWARDED_FOR], "127.0.0.1, 10.0.0.2, 127.0.0.1");
        let via = HeaderValue::from_static("1.1 edge-1");
        append_via(&mut h, &via);
        append_via(&mut h, &via);
        assert_eq!(h[header::VIA], "1.1 edge-1, 1.1 edge-1");
    }
}
