//! What the response head's header lines tell the framing (`Connection`, `Transfer-Encoding`,
//! `Content-Length`), gathered as the lines are read, by the parser or by a filled template; and
//! where each line sits in the head.

use crate::request::headers::{self, ConnectionToken};
use http::{header, HeaderName};

/// Where a header line's name and value are in the head: name start and end, value start and end.
pub(super) type Span = (u32, u32, u32, u32);

/// What the framing needs of a head's header lines, gathered as they are read.
#[derive(Debug, Default)]
pub(super) struct Fields {
    /// `Connection: close`.
    pub(super) close: bool,
    /// `Connection: keep-alive`.
    pub(super) keep_alive: bool,
    /// Other headers `Connection` names: they apply to this hop only.
    pub(super) named: Option<Vec<HeaderName>>,
    /// A `Transfer-Encoding` line was seen.
    pub(super) transfer_encoding: bool,
    /// The last coding of the last `Transfer-Encoding` line is `chunked`.
    pub(super) chunked: bool,
    /// A `Content-Length` line was seen.
    pub(super) has_length: bool,
    /// The one length every `Content-Length` value (and list element) agrees on; `None` once two
    /// disagree or one is not a number.
    pub(super) length: Option<u64>,
}

impl Fields {
    /// Takes note of the hop-by-hop header `name: value`.
    pub(super) fn hop_by_hop(&mut self, name: &HeaderName, value: &[u8]) {
        if name == header::CONNECTION {
            for token in headers::connection_tokens(value) {
                match token {
                    ConnectionToken::Close => self.close = true,
                    ConnectionToken::KeepAlive => self.keep_alive = true,
                    ConnectionToken::Upgrade => {}
                    ConnectionToken::Names(n) => self.named.get_or_insert_with(Vec::new).push(n),
                }
            }
        } else if name == header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            self.chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
    }

    /// Takes note of a `Content-Length` value.
    pub(super) fn content_length(&mut self, value: &[u8]) {
        let first = !self.has_length;
        self.has_length = true;
        if !first && self.length.is_none() {
            return;
        }
        for part in value.split(|&b| b == b',') {
            let digits = part.trim_ascii();
            let n =
                if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit)
                {
                    None
                } else {
                    Some(
                        digits
                            .iter()
                            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
                    )
                };
            match (n, self.length) {
                (Some(n), Some(l)) if n == l => {}
                (Some(n), None) if first => self.length = Some(n),
                _ => {
                    self.length = None;
                    return;
                }
            }
        }
    }
}
