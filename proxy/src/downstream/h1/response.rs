//! Encoding a response head for the own HTTP/1.x server, with the framing of its body and whether
//! the connection stays open: the rules hyper's server follows (RFC 9112 §6), so a client sees the
//! same head from either.

use crate::downstream::h1::date;
use crate::request::headers::{connection_tokens, ConnectionToken};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::response::Parts;
use http::{HeaderValue, StatusCode, Version};
use http_body::SizeHint;

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (a response to `HEAD`, 1xx, 204, 304, or an empty body with its length written).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (an HTTP/1.0 client and a body of unknown length).
    Close,
}

/// What the head of a response depends on besides the response.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked {
    /// The request's version.
    pub(crate) version: Version,
    /// Whether the request was `HEAD`.
    pub(crate) head: bool,
    /// Whether the connection may stay open after this response (the client's wish, and the node's).
    pub(crate) keep_alive: bool,
}

/// A response's encoded head and what follows it.
#[derive(Debug)]
pub(crate) struct Encoded {
    /// The status line and the headers, with the blank line.
    pub(crate) head: Vec<u8>,
    /// The body's framing.
    pub(crate) framing: Framing,
    /// Whether the connection stays open after the body.
    pub(crate) keep_alive: bool,
}

/// Encodes the head of a response whose body has `hint` (and is already at its end when `ended`).
/// One pass over the headers writes them and notes the few that decide the framing.
pub(crate) fn encode(parts: &Parts, hint: &SizeHint, ended: bool, asked: Asked) -> Encoded {
    let status = parts.status;
    let headers = &parts.headers;
    let mut out = Vec::with_capacity(128 + headers.len() * 48);
    status_line(&mut out, status, asked.version);
    let mut seen = Seen::default();
    for (name, value) in headers {
        if *name == CONTENT_LENGTH {
            seen.length(value);
            continue;
        } else if *name == TRANSFER_ENCODING {
            seen.transfer_encoding = true;
            continue;
        } else if *name == CONNECTION {
            seen.connection(value);
        } else if *name == DATE {
            seen.date = true;
        }
        line(&mut out, name.as_str().as_bytes(), value);
    }
    let bodyless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let may_have_length = !status.is_informational() && status != StatusCode::NO_CONTENT;
    let chunked_allowed = asked.version == Version::HTTP_11 && !bodyless && !asked.head;
    // An empty body says so, whatever length the headers declare (except where a response never
    // has a body: a HEAD's or a 304's length is the one a GET would have had).
    let declared = if ended && !(asked.head || status == StatusCode::NOT_MODIFIED) {
        None
    } else {
        seen.declared()
    };
    let exact = if ended { Some(0) } else { hint.exact() };
    let te = chunked_allowed && seen.transfer_encoding;
    let mut framing = if te {
        Framing::Chunked
    } else if let Some(len) = declared.or(exact) {
        Framing::Length(len)
    } else if chunked_allowed {
        Framing::Chunked
    } else if bodyless || asked.head {
        Framing::None
    } else {
        Framing::Close
    };
    // An interim status as the final answer (only an upstream gone wrong sends one to a request
    // that did not ask to upgrade) leaves the client unsure where the next response starts.
    let keep_alive =
        asked.keep_alive && framing != Framing::Close && !seen.close && !status.is_informational();
    match framing {
        Framing::Chunked => {
            let mut last_chunked = false;
            if te {
                for v in headers.get_all(TRANSFER_ENCODING) {
                    line(&mut out, b"transfer-encoding", v);
                    last_chunked = is_chunked(v);
                }
            }
            if !last_chunked {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
        }
        Framing::Length(len) if may_have_length => {
            // A response to HEAD says what a GET would have had: the declared length, or none.
            if !(asked.head && declared.is_none() && len == 0) {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        Framing::Length(_) | Framing::None | Framing::Close => {}
    }
    if bodyless || asked.head {
        framing = Framing::None;
    }
    // The connection's fate, said where the version needs it.
    if asked.version == Version::HTTP_10 {
        if keep_alive && !seen.keep_alive {
            out.extend_from_slice(b"connection: keep-alive\r\n");
        }
    } else if !keep_alive && !seen.close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !seen.date {
        out.extend_from_slice(b"date: ");
        date::append(&mut out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Encoded {
        head: out,
        framing,
        keep_alive,
    }
}

/// What the response's own headers say about framing and the connection.
#[derive(Default)]
struct Seen {
    /// The `Content-Length` (`Err` when invalid or conflicting).
    length: Option<Result<u64, ()>>,
    transfer_encoding: bool,
    close: bool,
    keep_alive: bool,
    date: bool,
}

impl Seen {
    fn length(&mut self, value: &HeaderValue) {
        let parsed = parse_length(value.as_bytes()).ok_or(());
        self.length = match self.length {
            None => Some(parsed),
            Some(Ok(n)) if parsed == Ok(n) => Some(Ok(n)),
            Some(_) => Some(Err(())),
        };
    }

    fn connection(&mut self, value: &HeaderValue) {
        for token in connection_tokens(value.as_bytes()) {
            self.close |= token == ConnectionToken::Close;
            self.keep_alive |= token == ConnectionToken::KeepAlive;
        }
    }

    /// The declared length, when valid.
    fn declared(&self) -> Option<u64> {
        self.length.and_then(Result::ok)
    }
}

/// A `Content-Length` value: digits only (surrounding whitespace allowed), no overflow.
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// The status line, in the client's version.
fn status_line(out: &mut Vec<u8>, status: StatusCode, version: Version) {
    if version == Version::HTTP_11 && status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(if version == Version::HTTP_10 {
        b"HTTP/1.0 "
    } else {
        b"HTTP/1.1 "
    });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    // A reason must be written: many parsers expect one.
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &HeaderValue) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Whether a `Transfer-Encoding` value ends with `chunked`.
fn is_chunked(v: &HeaderValue) -> bool {
    v.as_bytes()
        .rsplit(|b| *b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;

    const GET11: Asked = Asked {
        version: Version::HTTP_11,
        head: false,
        keep_alive: true,
    };

    fn encoded(
        resp: Response<()>,
        hint: SizeHint,
        ended: bool,
        asked: Asked,
    ) -> (String, Framing, bool) {
        let (parts, ()) = resp.into_parts();
        let e = encode(&parts, &hint, ended, asked);
        let text = String::from_utf8(e.head).unwrap();
        // The date changes: checked apart.
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        let date = lines
            .iter()
            .position(|l| l.starts_with("date: "))
            .expect("a date");
        lines.remove(date);
        (lines.join("\r\n"), e.framing, e.keep_alive)
    }

    fn exact(n: u64) -> SizeHint {
        SizeHint::with_exact(n)
    }

    #[test]
    fn a_known_length_is_written_and_kept_alive() {
        let resp = Response::builder().header("x-a", "1").body(()).unwrap();
        let (head, framing, keep) = encoded(resp, exact(2), false, GET11);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-length: 2\r\n\r\n"
        );
        assert_eq!(framing, Framing::Length(2));
        assert!(keep);
    }

    #[test]
    fn an_unknown_length_is_chunked_for_1_1_and_close_delimited_for_1_0() {
        let resp = || Response::builder().status(404).body(()).unwrap();
        let (head, framing, keep) = encoded(resp(), SizeHint::new(), false, GET11);
        assert_eq!(
            head,
            "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!((framing, keep), (Framing::Chunked, true));
        let asked = Asked {
            version: Version::HTTP_10,
            ..GET11
        };
        let (head, framing, keep) = encoded(resp(), SizeHint::new(), false, asked);
        assert_eq!(head, "HTTP/1.0 404 Not Found\r\n\r\n");
        assert_eq!((framing, keep), (Framing::Close, false));
    }

    #[test]
    fn a_declared_length_wins_and_an_empty_body_says_zero() {
        let resp = Response::builder()
            .header("content-length", "7")
            .body(())
            .unwrap();
        let (head, framing, _) = encoded(resp, SizeHint::new(), false, GET11);
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\n");
        assert_eq!(framing, Framing::Length(7));
        let resp = Response::builder().body(()).unwrap();
        let (head, framing, _) = encoded(resp, SizeHint::new(), true, GET11);
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(framing, Framing::Length(0));
    }

    #[test]
    fn head_204_and_304_have_no_body() {
        let asked = Asked {
            head: true,
            ..GET11
        };
        let resp = Response::builder()
            .header("content-length", "5")
            .body(())
            .unwrap();
        let (head, framing, _) = encoded(resp, exact(0), true, asked);
        assert_eq!(head, "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
        assert_eq!(framing, Framing::None);
        let resp = Response::builder().body(()).unwrap();
        let (head, _, _) = encoded(resp, exact(0), true, asked);
        assert_eq!(head, "HTTP/1.1 200 OK\r\n\r\n");
        let resp = Response::builder()
            .status(204)
            .header("content-length", "0")
            .body(())
            .unwrap();
        let (head, framing, _) = encoded(resp, exact(0), true, GET11);
        assert_eq!(head, "HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(framing, Framing::None);
        let resp = Response::builder()
            .status(304)
            .header("content-length", "9")
            .body(())
            .unwrap();
        let (head, framing, _) = encoded(resp, exact(0), true, GET11);
        assert_eq!(
            head,
            "HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n"
        );
        assert_eq!(framing, Framing::None);
    }

    #[test]
    fn the_connection_closes_when_asked_by_either_side() {
        let resp = Response::builder().body(()).unwrap();
        let asked = Asked {
            keep_alive: false,
            ..GET11
        };
        let (head, _, keep) = encoded(resp, exact(0), true, asked);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        assert!(!keep);
        let resp = Response::builder()
            .header("connection", "close")
            .body(())
            .unwrap();
        let (head, _, keep) = encoded(resp, exact(0), true, GET11);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        );
        assert!(!keep);
    }

    #[test]
    fn an_http_1_0_client_kept_alive_is_told_so() {
        let asked = Asked {
            version: Version::HTTP_10,
            ..GET11
        };
        let resp = Response::builder().body(()).unwrap();
        let (head, _, keep) = encoded(resp, exact(2), false, asked);
        assert_eq!(
            head,
            "HTTP/1.0 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n"
        );
        assert!(keep);
    }

    #[test]
    fn a_date_is_written_unless_given() {
        let resp = Response::builder().header("date", "x").body(()).unwrap();
        let (parts, ()) = resp.into_parts();
        let e = encode(&parts, &exact(0), true, GET11);
        assert_eq!(
            e.head,
            b"HTTP/1.1 200 OK\r\ndate: x\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42 "), Some(42));
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None, "{bad:?}");
        }
        let resp = Response::builder()
            .header("content-length", "3")
            .header("content-length", "4")
            .body(())
            .unwrap();
        let (_, framing, _) = encoded(resp, SizeHint::new(), false, GET11);
        assert_eq!(framing, Framing::Chunked);
    }

    #[test]
    fn a_transfer_encoding_given_is_kept_with_chunked_last() {
        let resp = Response::builder()
            .header("transfer-encoding", "gzip")
            .body(())
            .unwrap();
        let (head, framing, _) = encoded(resp, SizeHint::new(), false, GET11);
        assert_eq!(
            head,
            "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        assert_eq!(framing, Framing::Chunked);
    }
}
