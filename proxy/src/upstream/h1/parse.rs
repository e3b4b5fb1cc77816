//! An upstream response head: parsed in place (header values share the read buffer), and how its
//! body is framed (RFC 9112 section 6.3). The framing is read off the header lines as they are
//! turned into the header map, and hop-by-hop headers never enter the map: what the map holds is
//! what goes to the client.

use super::fields::{Fields, Span};
use super::template::{Line, Template};
use crate::request::headers::{self};
use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version};

/// Most header lines a response head may carry (hyper's default too).
pub(super) const MAX_HEADERS: usize = 100;
/// Largest response head accepted.
pub(super) const MAX_HEAD: usize = 64 * 1024;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
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
pub(crate) struct Head {
    /// Status, version and headers, without hop-by-hop headers (RFC 9110 section 7.6.1) or a
    /// `Content-Length` that `Transfer-Encoding` overrides.
    pub(crate) response: Response<()>,
    /// How the body that follows is delimited.
    pub(crate) framing: Framing,
    /// Whether the connection may carry another request after this response's body.
    pub(crate) keep_alive: bool,
}

/// What the buffer held.
#[derive(Debug)]
pub(super) enum Parsed {
    /// Not a whole head yet: read more.
    Partial,
    /// An interim (1xx) response, consumed: the final one follows.
    Interim,
    /// A final response head, consumed from the buffer.
    Complete(Head),
}

/// Parses the response head at the start of `buf` (the answer to a `HEAD` request if `head_request`),
/// removing it from `buf` when complete. `template` holds the connection's last response's header
/// lines, and then this one's. Errors name what was wrong.
#[inline]
pub(super) fn parse(
    buf: &mut BytesMut,
    head_request: bool,
    template: &mut Template,
) -> Result<Parsed, &'static str> {
    // Left uninitialised (httparse writes what it uses): 3 KiB not zeroed for every response.
    let mut lines = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut lines);
    let len = match parsed {
        // The limit holds for a head that arrived whole in one read, too.
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => {
            return Err("response head too large")
        }
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
    let mut spans: [Span; MAX_HEADERS] = [(0, 0, 0, 0); MAX_HEADERS];
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
    let mut fields = Fields::default();
    let mut headers = match template.fill(&head, &spans[..count], &mut fields) {
        Some(filled) => filled?,
        None => header_map(&head, &spans[..count], &mut fields, template)?,
    };
    if fields.transfer_encoding && fields.has_length {
        // RFC 9112 section 6.3, item 3: Transfer-Encoding overrides it, and it is not forwarded.
        headers.remove(header::CONTENT_LENGTH);
    }
    for name in fields.named.iter().flatten() {
        headers.remove(name);
    }
    let (framing, keep_alive) = framing(&fields, status, version, head_request)?;
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

/// The header map of the lines at `spans` in `head`, each name looked up; `template` learns them.
fn header_map(
    head: &Bytes,
    spans: &[Span],
    fields: &mut Fields,
    template: &mut Template,
) -> Result<HeaderMap, &'static str> {
    template.clear();
    let mut headers = HeaderMap::with_capacity(spans.len());
    for &(ns, ne, vs, ve) in spans {
        let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
        let name =
            HeaderName::from_bytes(&head[ns..ne]).map_err(|_| "invalid response header name")?;
        let raw = &head[vs..ve];
        if headers::is_hop_by_hop(&name) {
            fields.hop_by_hop(&name, raw);
            template.push(&head[ns..ne], Line::HopByHop(name));
            continue;
        }
        if name == header::CONTENT_LENGTH {
            fields.content_length(raw);
            template.push(&head[ns..ne], Line::Length);
        } else {
            template.push(&head[ns..ne], Line::Value);
        }
        let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
            .map_err(|_| "invalid response header value")?;
        headers.append(name, value);
    }
    template.keep(&headers);
    Ok(headers)
}

/// The body's framing and whether the connection stays usable after it.
fn framing(
    fields: &Fields,
    status: StatusCode,
    version: Version,
    head_request: bool,
) -> Result<(Framing, bool), &'static str> {
    let mut keep_alive = match version {
        Version::HTTP_10 => fields.keep_alive,
        _ => !fields.close,
    };
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Empty
        } else if fields.transfer_encoding {
            // Transfer-Encoding overrides Content-Length; a message with both is suspect, so the
            // connection is not reused after it (RFC 9112 section 6.3, item 3).
            if fields.has_length {
                keep_alive = false;
            }
            if fields.chunked {
                Framing::Chunked
            } else {
                keep_alive = false;
                Framing::Close
            }
        } else if fields.has_length {
            Framing::Length(fields.length.ok_or("invalid content-length")?)
        } else {
            keep_alive = false;
            Framing::Close
        };
    Ok((framing, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(text: &str, head_request: bool) -> (Head, BytesMut) {
        let mut buf = BytesMut::from(text);
        match parse(&mut buf, head_request, &mut Template::default()) {
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
    fn hop_by_hop_headers_stay_out_of_the_map() {
        let (head, _) = complete(
            "HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n\
             X-Hop: 1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nTrailer: x-sum\r\n\
             Upgrade: h2c\r\nProxy-Connection: keep-alive\r\nX-Kept: yes\r\n\r\n",
            false,
        );
        let names: Vec<_> = head.response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(
            names,
            ["x-kept"],
            "content-length goes too: chunked overrides it"
        );
        assert_eq!(head.framing, Framing::Chunked);
        assert!(!head.keep_alive, "both framings: not reused");
        let (head, _) = complete(
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
            false,
        );
        let names: Vec<_> = head.response.headers().keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["content-length"]);
        assert!(!head.keep_alive);
    }

    #[test]
    fn partial_heads_wait_and_oversized_ones_fail() {
        let mut buf = BytesMut::from("HTTP/1.1 200 OK\r\nContent-Le");
        assert!(matches!(
            parse(&mut buf, false, &mut Template::default()),
            Ok(Parsed::Partial)
        ));
        assert_eq!(buf.len(), 27, "nothing consumed");
        let mut big = BytesMut::from("HTTP/1.1 200 OK\r\nX-Big: ");
        big.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(
            parse(&mut big, false, &mut Template::default()).err(),
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
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\nContent-Length: 4\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4, 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 4,\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        ] {
            let mut buf = BytesMut::from(text);
            assert!(
                parse(&mut buf, false, &mut Template::default()).is_err(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn interim_responses_are_skipped() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        );
        assert!(matches!(
            parse(&mut buf, false, &mut Template::default()),
            Ok(Parsed::Interim)
        ));
        assert!(matches!(
            parse(&mut buf, false, &mut Template::default()),
            Ok(Parsed::Complete(_))
        ));
        assert!(buf.is_empty());
    }
}
