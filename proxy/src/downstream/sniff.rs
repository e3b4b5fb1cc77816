//! Which HTTP version a client speaks, from its first bytes: HTTP/2 clients open with a fixed preface
//! (RFC 9113 §3.4; on TLS whether or not ALPN chose h2), anything else is HTTP/1.x. The bytes read
//! are put back for the protocol's parser. Reads stop as soon as the answer is known (three bytes for
//! nearly every HTTP/1.x request), so the sniff costs one small read.

use crate::downstream::rewind::Rewind;
use bytes::Bytes;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The HTTP/2 connection preface.
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.0 or 1.1.
    Http1,
    /// HTTP/2 with prior knowledge (or by ALPN).
    Http2,
}

/// Reads the client's first bytes (put back in `io`) until they tell its protocol; `None` when the
/// client closed before sending anything.
pub(crate) async fn sniff<T: AsyncRead + Unpin>(
    io: &mut Rewind<T>,
) -> io::Result<Option<Protocol>> {
    let mut buf = [0u8; PREFACE.len()];
    let mut have = 0;
    let answer = loop {
        let n = io.read(&mut buf[have..]).await?;
        if n == 0 {
            if have == 0 {
                return Ok(None);
            }
            // Closed mid-preface: HTTP/1's parser answers what there is.
            break Protocol::Http1;
        }
        have += n;
        if buf[..have] != PREFACE[..have] {
            break Protocol::Http1;
        }
        if have == PREFACE.len() {
            break Protocol::Http2;
        }
    };
    io.put_back(Bytes::copy_from_slice(&buf[..have]));
    Ok(Some(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sniffed(chunks: &[&'static [u8]]) -> (Option<Protocol>, Vec<u8>) {
        let mut io = Rewind::new(reader(chunks));
        let p = sniff(&mut io).await.unwrap();
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        (p, rest)
    }

    /// A client writing `chunks` one after another, then closing.
    fn reader(chunks: &[&'static [u8]]) -> tokio::io::DuplexStream {
        use tokio::io::AsyncWriteExt;
        let (client, mut server) = tokio::io::duplex(64);
        let chunks = chunks.to_vec();
        tokio::spawn(async move {
            for c in chunks {
                server.write_all(c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        client
    }

    #[tokio::test]
    async fn http1_is_told_from_the_first_bytes_and_nothing_is_lost() {
        let (p, rest) = sniffed(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]).await;
        assert_eq!(p, Some(Protocol::Http1));
        assert_eq!(rest, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (p, rest) = sniffed(&[b"P", b"R", b"O", b"PFIND / HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(p, Some(Protocol::Http1));
        assert_eq!(rest, b"PROPFIND / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn the_http2_preface_in_pieces_is_http2() {
        let (p, rest) = sniffed(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12"]).await;
        assert_eq!(p, Some(Protocol::Http2));
        assert_eq!(rest, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12");
    }

    #[tokio::test]
    async fn a_client_that_closes_at_once_sent_nothing() {
        let (p, rest) = sniffed(&[]).await;
        assert_eq!(p, None);
        assert!(rest.is_empty());
        let (p, rest) = sniffed(&[b"PRI * "]).await;
        assert_eq!(p, Some(Protocol::Http1));
        assert_eq!(rest, b"PRI * ");
    }
}
