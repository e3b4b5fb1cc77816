//! One request of the own HTTP/1.x server, from its parsed head to the end of its response: the
//! request path answers it while the client's socket is watched for a close, then the response goes
//! out framed as [`crate::downstream::h1::response`] decided: a body at hand goes out with the head
//! in one write, a streamed one frame by frame.

use crate::downstream::answer::{answer, Ctx};
use crate::downstream::closing::{Ask, Closing};
use crate::downstream::h1::head::Head;
use crate::downstream::h1::response::{self, Asked, Framing};
use crate::downstream::h1::wire::{self, until_now};
use crate::downstream::head_watch::Answered;
use crate::downstream::park::Socket;
use crate::downstream::rewind::Rewind;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Response};
use http_body::{Body, Frame};
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::Poll;
use tokio::io::{AsyncRead, ReadBuf};

/// How an exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered; the connection stays open for the next request.
    KeepAlive,
    /// Answered; the connection closes (said in the response, or implied by its framing).
    Close,
    /// Not answered in full: the client left, the socket failed, the response body failed, or the
    /// connection was told to close now. Nothing more can be written.
    Broken,
}

/// Answers the request of `head`; `buf` keeps what the client sends meanwhile.
pub(crate) async fn exchange<S: Socket>(
    io: &mut Rewind<S>,
    buf: &mut BytesMut,
    ctx: &Ctx,
    closing: &Closing,
    head: Head,
) -> Outcome {
    let Head {
        request,
        keep_alive,
        trailers,
    } = head;
    let mut asked = Asked {
        version: request.version(),
        head: request.method() == Method::HEAD,
        keep_alive,
    };
    // Pinned here, in the connection's state, and polled through a reference: the request's future
    // is a few kilobytes (boxing it costs mimalloc's slower path for blocks over 1 KiB, and moving
    // it into a callee's state copies it). In a block of its own, so that writing the response
    // reuses its room in the connection's state.
    let resp = {
        let answering = std::pin::pin!(answer(ctx.clone(), request));
        in_flight(io, buf, closing, answering).await
    };
    let Some(resp) = resp else {
        return Outcome::Broken;
    };
    // Told to close gracefully while answering: this is the connection's last response.
    asked.keep_alive &= closing.asked() == Ask::Nothing;
    match write_response(io, closing, resp, asked, trailers).await {
        Ok(true) => Outcome::KeepAlive,
        Ok(false) => Outcome::Close,
        Err(e) => {
            tracing::debug!(peer = %ctx.1.peer, error = %e, "response not sent in full");
            Outcome::Broken
        }
    }
}

/// Waits for the response to the request of `fut`; `None` when the client closes or resets its
/// connection first (the request is dropped, as hyper's server does) or the connection is told to
/// close now. Bytes the client sends meanwhile (a pipelined request) are kept in `buf`, up to
/// [`PIPELINED`] (more wait in the socket).
async fn in_flight<S: Socket, F>(
    io: &mut Rewind<S>,
    buf: &mut BytesMut,
    closing: &Closing,
    mut fut: Pin<&mut F>,
) -> Option<Response<Answered>>
where
    F: Future<Output = Result<Response<Answered>, Infallible>>,
{
    std::future::poll_fn(|cx| {
        if let Poll::Ready(Ok(resp)) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(resp));
        }
        if closing.poll(cx) == Ask::Now {
            return Poll::Ready(None);
        }
        while buf.len() < PIPELINED {
            let mut room = [0u8; 256];
            let mut read = ReadBuf::new(&mut room);
            match Pin::new(&mut *io).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(None),
                Poll::Ready(Ok(())) => buf.extend_from_slice(read.filled()),
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Pending => break,
            }
        }
        Poll::Pending
    })
    .await
}

/// Bytes of a next request read while one is answered, at most.
const PIPELINED: usize = 1024;

/// Writes the response; whether the connection stays open after it.
async fn write_response<S: Socket>(
    io: &mut Rewind<S>,
    closing: &Closing,
    resp: Response<Answered>,
    asked: Asked,
    trailers: bool,
) -> io::Result<bool> {
    let (parts, mut body) = resp.into_parts();
    let ended = body.is_end_stream();
    let encoded = response::encode(&parts, &body.size_hint(), ended, asked);
    drop(parts);
    let mut out = Out {
        framing: encoded.framing,
        head: Some(encoded.head),
        left: match encoded.framing {
            Framing::Length(n) => n,
            _ => u64::MAX,
        },
        trailers,
    };
    if ended || matches!(out.framing, Framing::None | Framing::Length(0)) {
        drop(body);
        out.put(io, closing, &[], Some(None)).await?;
        return Ok(encoded.keep_alive);
    }
    loop {
        let frame = if out.head.is_some() {
            // A body at hand goes out with the head; else the head goes alone at once.
            match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    out.put(io, closing, &[], None).await?;
                    continue;
                }
            }
        } else {
            until_now(
                closing,
                std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx).map(Ok)),
            )
            .await?
        };
        let frame: Frame<Bytes> = match frame {
            None => {
                out.check_complete()?;
                out.put(io, closing, &[], Some(None)).await?;
                break;
            }
            Some(Err(e)) => return Err(io::Error::other(e)),
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(mut data) => {
                let whole = data.len() as u64 <= out.left;
                if !whole {
                    data.truncate(out.left as usize);
                }
                if let Framing::Length(_) = out.framing {
                    out.left -= data.len() as u64;
                }
                let last = body.is_end_stream() || out.left == 0;
                out.put(io, closing, &data, last.then_some(None)).await?;
                if !whole {
                    return Err(io::Error::other("response body longer than its length"));
                }
                if last {
                    break;
                }
            }
            Err(frame) => {
                out.check_complete()?;
                let trailers = frame.into_trailers().ok();
                out.put(io, closing, &[], Some(trailers.as_ref())).await?;
                break;
            }
        }
    }
    Ok(encoded.keep_alive)
}

/// The response on its way out.
struct Out {
    framing: Framing,
    /// The head, until written.
    head: Option<Vec<u8>>,
    /// Bytes still to send of a body of known length.
    left: u64,
    /// Whether the client takes trailers.
    trailers: bool,
}

impl Out {
    /// At the body's end: an error when it was shorter than its length.
    fn check_complete(&self) -> io::Result<()> {
        if matches!(self.framing, Framing::Length(_)) && self.left > 0 {
            return Err(io::Error::other("response body shorter than its length"));
        }
        Ok(())
    }

    /// Writes the head if not yet written, then `data` framed, and the body's end when `end` is
    /// given (with the trailers, for a chunked body to a client that takes them).
    async fn put<W: tokio::io::AsyncWrite + Unpin>(
        &mut self,
        io: &mut W,
        closing: &Closing,
        data: &[u8],
        end: Option<Option<&HeaderMap>>,
    ) -> io::Result<()> {
        let head = self.head.take();
        let chunked = self.framing == Framing::Chunked;
        let mut size = [0u8; 18];
        let mut tail = Vec::new();
        let mut slices: [IoSlice<'_>; 4] = [IoSlice::new(&[]); 4];
        let mut n = 0;
        if let Some(head) = &head {
            slices[n] = IoSlice::new(head);
            n += 1;
        }
        if !data.is_empty() {
            if chunked {
                let len = chunk_size(&mut size, data.len());
                slices[n] = IoSlice::new(&size[..len]);
                n += 1;
            }
            slices[n] = IoSlice::new(data);
            n += 1;
        }
        if chunked {
            if !data.is_empty() {
                tail.extend_from_slice(b"\r\n");
            }
            if let Some(trailers) = end {
                tail.extend_from_slice(b"0\r\n");
                for (name, value) in trailers.into_iter().flatten().filter(|_| self.trailers) {
                    tail.extend_from_slice(name.as_str().as_bytes());
                    tail.extend_from_slice(b": ");
                    tail.extend_from_slice(value.as_bytes());
                    tail.extend_from_slice(b"\r\n");
                }
                tail.extend_from_slice(b"\r\n");
            }
        }
        if !tail.is_empty() {
            slices[n] = IoSlice::new(&tail);
            n += 1;
        }
        wire::write_all(io, closing, &mut slices[..n]).await
    }
}

/// Writes the chunk-size line of a chunk of `len` bytes into `out`; its length.
fn chunk_size(out: &mut [u8; 18], len: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = ((usize::BITS - len.leading_zeros()).max(1)).div_ceil(4) as usize;
    for (i, slot) in out[..digits].iter_mut().enumerate() {
        *slot = HEX[(len >> (4 * (digits - 1 - i))) & 0xf];
    }
    out[digits] = b'\r';
    out[digits + 1] = b'\n';
    digits + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_lowercase_hex_lines() {
        let mut out = [0u8; 18];
        for (len, line) in [
            (1, "1\r\n"),
            (15, "f\r\n"),
            (16, "10\r\n"),
            (16384, "4000\r\n"),
        ] {
            let n = chunk_size(&mut out, len);
            assert_eq!(std::str::from_utf8(&out[..n]).unwrap(), line);
        }
        let n = chunk_size(&mut out, usize::MAX);
        assert_eq!(n, 18);
    }
}
