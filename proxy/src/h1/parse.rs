//! An upstream response head: parsed in place (header values share the read buffer), and how its
//! body is framed (RFC 9112 section 6.3).

use bytes::BytesMut;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};

/// Most header lines a response head may carry (hyper's default too).
pub const MAX_HEADERS: usize = 100;
/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a response to `HEAD`, a 204 or a 304).
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the upstream closes the connection.
    Close,
}

/// A complete response head.
#[derive(Debug)]
pub struct Head {
    /// Status, version and headers.
    pub response: Response<()>,
    /// How the body that follows is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request after this response's body.
    pub keep_alive: bool,
}

/// What the buffer held.
#[derive(Debug)]
pub enum Parsed {
    /// Not a whole head yet: read more.
    Partial,
    /// An interim (1xx) response, consumed: the final one follows.
    Interim,
    /// A final response head, consumed from the buffer.
    Complete(Head),
}

/// Parses the response head at the start of `buf` (the answer to a `HEAD` request if `head_request`),
/// removing it from `buf` when complete. Errors name what was wrong.
pub fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Parsed, &'static str> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut lines);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err("response head too large")
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err("too many response headers"),
        Err(_) => return Err("invalid response head"),
    };
    let code = res.code.unwrap_or(0);
    let version = if res.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    // Offsets of names and values, so that the values can share the head's bytes once split off.
    let base = buf.as_ptr() as usize;
    let count = res.headers.len();
    let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
    for (span, line) in spans.iter_mut().zip(res.headers.iter()) {
        let at = |s: &[u8]| (s.as_ptr() as usize - base) as u32;
        let (name, value) = (at(line.name.as_bytes()), at(line.value));
        *span = (
            name,
            name + line.name.len() as u32,
            value,
            value + line.value.len() as u32,
        );
    }
    let head = buf.split_to(len).freeze();
    if (100..200).contains(&code) {
        if code == 101 {
            return Err("101 Switching Protocols to a request that asked no upgrade");
        }
        return Ok(Parsed::Interim);
    }
    let status = StatusCode::from_u16(code).map_err(|_| "invalid response status")?;
    let mut headers = HeaderMap::with_capacity(count);
    for &(ns, ne, vs, ve) in &spans[..count] {
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name =
            HeaderName::from_bytes(&head[ns..ne]).map_err(|_| "invalid response header name")?;
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| "invalid response header value")?;
        headers.append(name, value);
    }
    let (framing, keep_alive) = framing(&headers, status, version, head_request)?;
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    *response.headers_mut() = headers;
    Ok(Parsed::Complete(Head {
        response,
        framing,
        keep_alive,
    }))
}

/// The body's framing and whether the connection stays usable after it.
fn framing(
    headers: &HeaderMap,
    status: StatusCode,
    version: Version,
    head_request: bool,
) -> Result<(Framing, bool), &'static str> {
    let mut keep_alive = match version {
        Version::HTTP_10 => has_token(headers, header::CONNECTION, "keep-alive"),
        _ => !has_token(headers, header::CONNECTION, "close"),
    };
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if headers.contains_key(header::TRANSFER_ENCODING) {
            // Transfer-Encoding overrides Content-Length; a message with both is suspect, so the
            // connection is not reused after it (RFC 9112 section 6.3, item 3).
            if headers.contains_key(header::CONTENT_LENGTH) {
                keep_alive = false;
            }
            if last_coding_is_chunked(headers) {
                Framing::Chunked
            } else {
                keep_alive = false;
                Framing::Close
            }
        } else if headers.contains_key(header::CONTENT_LENGTH) {
            Framing::Length(content_length(headers).ok_or("invalid content-length")?)
        } else {
            keep_alive = false;
            Framing::Close
        };
    Ok((framing, keep_alive))
}

/// Whether a comma-separated header lists `token` (case-insensitively).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

fn last_coding_is_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
}

/// The one length every `Content-Length` value (and list element) agrees on.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let digits = part.trim_ascii();
            if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = digits
                .iter()
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            if length.is_some_and(|l| l != n) {
                return None;
            }
            length = Some(n);
        }
    }
    length
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(text: &str, head_request: bool) -> (Head, BytesMut) {
        let mut buf = BytesMut::from(text);
        match parse(&mut buf, head_request) {
            Ok(Parsed::Complete(head)) => (head, buf),
            other => panic!("not complete: {other:?}"),
        }
    }

    #[test]
    fn a_head_is_consumed_and_the_body_stays() {
        let (head, rest) = complete(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nX-A: 2\r\n\r\nok",
            false,
        );
        assert_eq!(head.response.status(), StatusCode::OK);
        assert_eq!(head.framing, Framing::Length(2));
        assert!(head.keep_alive);
        let all: Vec<_> = head.response.headers().get_all("x-a").iter().collect();
        assert_eq!(all, ["1", "2"]);
        assert_eq!(&rest[..], b"ok");
    }

    #[test]
    fn partial_heads_wait_and_oversized_ones_fail() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(matches!(parse(&mut buf, false), Ok(Parsed::Partial)));
        assert_eq!(buf.len(), 27, "nothing consumed");
        let mut big = BytesMut::from("HTTP/1.1 200 OK\r\nX-Big: ");
        big.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(
            parse(&mut big, false).err(),
            Some("response head too large")
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let cases = [
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
                false,
                Framing::Chunked,
                false,
            ),
            (
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
                false,
                Framing::Close,
                false,
            ),
            ("HTTP/1.1 200 OK\r\n\r\n", false, Framing::Close, false),
            (
                "HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                false,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
                true,
                Framing::Empty,
                true,
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nConnection: close\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n",
                false,
                Framing::Length(3),
                false,
            ),
            (
                "HTTP/1.0 200 OK\r\nContent-Length: 3\r\nConnection: Keep-Alive\r\n\r\n",
                false,
                Framing::Length(3),
                true,
            ),
        ];
        for (text, head_request, framing, keep_alive) in cases {
            let (head, _) = complete(text, head_request);
            assert_eq!(
                (head.framing, head.keep_alive),
                (framing, keep_alive),
                "{text:?}"
            );
        }
    }

    #[test]
    fn bad_heads_are_errors() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(text);
            assert!(parse(&mut buf, false).is_err(), "{text:?}");
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(matches!(parse(&mut buf, false), Ok(Parsed::Interim)));
        assert!(matches!(parse(&mut buf, false), Ok(Parsed::Complete(_))));
        assert!(buf.is_empty());
    }
}
