//! Reading a request head for the own HTTP/1.x server: parsed with `httparse` straight out of the
//! connection's read buffer, and turned into an [`http::Request`] whose URI and header values are
//! slices of that buffer (no copy).
//!
//! The own server takes only the requests it serves in full: a well-formed HTTP/1.0 or 1.1 head
//! with no body, no upgrade, no `Expect` and not `CONNECT`. Anything else (a body, an upgrade, a
//! malformed or oversized head) is handed to hyper with the bytes read so far, so its answers
//! (400, 431, `100 Continue`, chunked uploads, tunnels) stay exactly hyper's.

use crate::downstream::body::ClientBody;
use crate::request::headers::{connection_tokens, ConnectionToken};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderName, HeaderValue, Method, Request, Uri, Version};
use std::mem::MaybeUninit;

/// Headers a head may have for the own server (more go to hyper, which applies the node's limit).
pub(crate) const MAX_HEADERS: usize = 100;

/// What the buffer holds.
// Returned once per request: a box for the request would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Parsed {
    /// A whole request the own server serves, taken off the buffer.
    Request(Head),
    /// Part of a head: read more.
    Partial,
    /// A request for hyper (see the module's docs): nothing was taken off the buffer.
    ForHyper,
}

/// A parsed request and what its connection needs to know of it.
#[derive(Debug)]
pub(crate) struct Head {
    /// The request, its body empty.
    pub(crate) request: Request<ClientBody>,
    /// Whether the client wants the connection kept open after the answer.
    pub(crate) keep_alive: bool,
    /// Whether the client accepts trailers (`TE: trailers`).
    pub(crate) trailers: bool,
}

/// Parses the head at the start of `buf`, with at most `max_headers` headers.
pub(crate) fn parse(buf: &mut BytesMut, max_headers: usize) -> Parsed {
    // Frozen, so that the request's URI and header values can be slices of it.
    let bytes = std::mem::take(buf).freeze();
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let parsed = match req.parse_with_uninit_headers(&bytes, &mut slots) {
        Ok(httparse::Status::Complete(len)) => build(&bytes, &req, max_headers).map(|h| (h, len)),
        Ok(httparse::Status::Partial) => {
            *buf = restore(bytes);
            return Parsed::Partial;
        }
        Err(_) => None,
    };
    match parsed {
        Some((head, len)) => {
            if len < bytes.len() {
                // A pipelined request's first bytes: copied, so the head's buffer is the request's.
                *buf = BytesMut::from(&bytes[len..]);
            }
            Parsed::Request(head)
        }
        None => {
            *buf = restore(bytes);
            Parsed::ForHyper
        }
    }
}

/// The buffer back as it was (no copy when nothing else holds it).
fn restore(bytes: Bytes) -> BytesMut {
    bytes
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]))
}

/// The request of a parsed head, or `None` when it is hyper's to answer.
fn build(bytes: &Bytes, req: &httparse::Request<'_, '_>, max_headers: usize) -> Option<Head> {
    let (method, path, minor) = (req.method?, req.path?, req.version?);
    if req.headers.len() > max_headers {
        return None;
    }
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    if method == Method::CONNECT {
        return None;
    }
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let uri = Uri::from_maybe_shared(bytes.slice_ref(path.as_bytes())).ok()?;
    let mut request = Request::new(ClientBody::Empty);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    let headers = request.headers_mut();
    headers.reserve(req.headers.len());
    let (mut close, mut keep, mut trailers) = (false, false, false);
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(bytes.slice_ref(h.value)).ok()?;
        if name == CONTENT_LENGTH {
            // Only a declared empty body: a length to read is hyper's.
            if value.as_bytes() != b"0" || headers.contains_key(CONTENT_LENGTH) {
                return None;
            }
        } else if name == TRANSFER_ENCODING || name == UPGRADE || name == EXPECT {
            return None;
        } else if name == CONNECTION {
            for token in connection_tokens(value.as_bytes()) {
                match token {
                    ConnectionToken::Close => close = true,
                    ConnectionToken::KeepAlive => keep = true,
                    ConnectionToken::Upgrade => return None,
                    ConnectionToken::Names(_) => {}
                }
            }
        } else if name == http::header::TE {
            trailers |= value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"));
        }
        headers.append(name, value);
    }
    let keep_alive = !close && (version == Version::HTTP_11 || keep);
    Some(Head {
        request,
        keep_alive,
        trailers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(bytes: &[u8]) -> (Parsed, BytesMut) {
        let mut buf = BytesMut::from(bytes);
        (parse(&mut buf, MAX_HEADERS), buf)
    }

    fn request(bytes: &[u8]) -> (Head, BytesMut) {
        match parsed(bytes) {
            (Parsed::Request(h), rest) => (h, rest),
            (other, _) => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn a_simple_get_is_parsed_and_taken_off_the_buffer() {
        let (head, rest) = request(
            b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\nx-a: 2\r\n\r\nGET /next",
        );
        let r = &head.request;
        assert_eq!(r.method(), Method::GET);
        assert_eq!(r.uri(), "/a?b=c");
        assert_eq!(r.version(), Version::HTTP_11);
        assert_eq!(r.headers()["host"], "example.com");
        let all: Vec<_> = r.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert!(head.keep_alive);
        assert!(!head.trailers);
        assert_eq!(&rest[..], b"GET /next");
    }

    #[test]
    fn keep_alive_follows_the_version_and_the_connection_header() {
        assert!(!request(b"GET / HTTP/1.0\r\n\r\n").0.keep_alive);
        assert!(
            request(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            !request(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n")
                .0
                .keep_alive
        );
        assert!(
            request(b"GET / HTTP/1.1\r\nTE: gzip, trailers\r\n\r\n")
                .0
                .trailers
        );
    }

    #[test]
    fn a_part_of_a_head_asks_for_more() {
        for part in [
            &b"GE"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\n",
            b"GET / HTTP/1.1\r\n\r",
        ] {
            let (p, rest) = parsed(part);
            assert!(matches!(p, Parsed::Partial), "{part:?}");
            assert_eq!(&rest[..], part);
        }
    }

    #[test]
    fn what_the_own_server_does_not_serve_is_left_whole_for_hyper() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET http://[::1 HTTP/1.1\r\n\r\n",
        ] {
            let (p, rest) = parsed(head);
            assert!(
                matches!(p, Parsed::ForHyper),
                "{:?}",
                String::from_utf8_lossy(head)
            );
            assert_eq!(&rest[..], head);
        }
    }

    #[test]
    fn a_declared_empty_body_is_served() {
        let (head, _) = request(b"DELETE /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(head.request.method(), Method::DELETE);
    }

    #[test]
    fn more_headers_than_allowed_go_to_hyper() {
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n"[..]);
        assert!(matches!(parse(&mut buf, 2), Parsed::ForHyper));
        assert!(matches!(parse(&mut buf, 3), Parsed::Request(_)));
    }
}
