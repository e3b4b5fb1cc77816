//! The node's own HTTP/1.x server for the requests that make up nearly all proxied traffic: a
//! well-formed request without a body, answered with any response. Everything else a client sends
//! (a request with a body, an upgrade, `Expect`, `CONNECT`, a malformed or oversized head) goes to
//! hyper's server with the bytes read so far put back ([`head`] says exactly which), so those
//! answers, and their tests, are hyper's.
//!
//! Why its own: hyper's HTTP/1.x server allocates an 8 KiB write buffer when a connection starts and
//! reads each request into an 8 KiB buffer, then into a second one while the request is answered
//! (its header values keep the first); 24 KiB per connection with a request in flight, where nginx
//! needs about 10. It also dispatches through more code than a proxy's plain request needs. Here a
//! head is read into a 1 KiB buffer (grown while a head needs it, up to `max_header_bytes`); the
//! request's URI and header values are slices of it; the response head is encoded into a vector
//! sized for it and written with the body's first bytes in one `writev`; and once a response is out
//! with nothing more read, the connection parks at once, holding no buffer at all
//! ([`crate::downstream::park`]), as nginx frees an idle keep-alive connection's buffers.

mod date;
mod exchange;
mod head;
mod response;
mod wire;

use crate::downstream::answer::Ctx;
use crate::downstream::closing::{Ask, Closing};
use crate::downstream::park::Socket;
use crate::downstream::rewind::Rewind;
use bytes::BytesMut;
use exchange::Outcome;
use head::Parsed;
use std::task::Poll;

/// The first read buffer of a request head (more is taken while a head needs it).
const FIRST_READ: usize = 1024;

/// The node's limits on request heads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// Bytes of request line and headers at most (`max_header_bytes`).
    pub(crate) max_bytes: usize,
    /// Headers at most (`max_headers`).
    pub(crate) max_headers: usize,
}

/// How the own server's stretch of a connection ended.
#[derive(Debug)]
pub(crate) enum Ended<S> {
    /// Idle between requests and asked to park: it waits for the client with nothing but its socket.
    Park(Rewind<S>),
    /// The connection is over.
    Closed,
    /// A request for hyper: its bytes are put back in front of the socket.
    Hyper(Rewind<S>),
}

/// Serves requests on `io` until the connection ends, parks, or meets a request for hyper.
pub(crate) async fn serve<S: Socket>(
    mut io: Rewind<S>,
    ctx: &Ctx,
    closing: &Closing,
    limits: HeadLimits,
) -> Ended<S> {
    let mut buf = BytesMut::new();
    loop {
        match read_head(&mut io, &mut buf, closing, limits).await {
            Next::Head(Parsed::Request(head)) => {
                match exchange::exchange(&mut io, &mut buf, ctx, closing, head).await {
                    Outcome::KeepAlive => {}
                    Outcome::Close => {
                        wire::shutdown(&mut io, closing).await;
                        return Ended::Closed;
                    }
                    Outcome::Broken => return Ended::Closed,
                }
            }
            Next::Head(Parsed::ForHyper) => {
                io.put_back(buf.freeze());
                return Ended::Hyper(io);
            }
            Next::Park => return Ended::Park(io),
            Next::Head(Parsed::Partial) | Next::Closed => return Ended::Closed,
        }
    }
}

/// What comes next on a connection.
// Returned once per request: a box for the request would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
enum Next {
    /// A head (or one for hyper) at the start of the buffer.
    Head(Parsed),
    /// The connection was idle and asked to park (nothing read, no buffer held).
    Park,
    /// The client closed, the socket failed, or the connection was told to close.
    Closed,
}

/// Reads until `buf` starts with a whole head (or one for hyper). Between requests it holds no
/// buffer: it waits for the socket to become readable, and parks when the watcher asks.
async fn read_head<S: Socket>(
    io: &mut Rewind<S>,
    buf: &mut BytesMut,
    closing: &Closing,
    limits: HeadLimits,
) -> Next {
    loop {
        if buf.is_empty() {
            *buf = BytesMut::new();
            match readable(io, closing).await {
                Next::Head(_) => {}
                other => return other,
            }
        } else {
            match head::parse(buf, limits.max_headers) {
                Parsed::Partial if buf.len() >= limits.max_bytes => {
                    return Next::Head(Parsed::ForHyper)
                }
                Parsed::Partial => {}
                done => return Next::Head(done),
            }
        }
        if buf.capacity() == buf.len() {
            let room = buf.len().max(FIRST_READ);
            buf.reserve(room.min(limits.max_bytes.saturating_sub(buf.len())).max(1));
        }
        let read = std::future::poll_fn(|cx| {
            let (ask, park) = closing.poll_word(cx);
            if ask != Ask::Nothing {
                // Told to close: within a head, a connection closes at once.
                return Poll::Ready(Err(Next::Closed));
            }
            match wire::poll_read_buf(io, cx, buf) {
                // Readable but nothing to read after all (a readiness left from the last request):
                // still idle, so it may park.
                Poll::Pending if park && buf.is_empty() => Poll::Ready(Err(Next::Park)),
                other => other.map(Ok),
            }
        })
        .await;
        match read {
            Ok(Ok(n)) if n > 0 => {}
            Ok(Ok(_)) => return Next::Closed,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "connection ended while reading a request head");
                return Next::Closed;
            }
            Err(next) => return next,
        }
    }
}

/// Waits until the client sends (`Head`, with nothing parsed), the watcher asks the idle connection
/// to park, or it is told to close.
async fn readable<S: Socket>(io: &mut Rewind<S>, closing: &Closing) -> Next {
    if io.has_prefix() {
        return Next::Head(Parsed::Partial);
    }
    // Moved in whole: a closure that only reads through it would capture a shared reference, which
    // needs the socket to be `Sync`.
    std::future::poll_fn(move |cx| {
        let io: &mut Rewind<S> = &mut *io;
        let (ask, park) = closing.poll_word(cx);
        if ask != Ask::Nothing {
            return Poll::Ready(Next::Closed);
        }
        match io.get_ref().poll_read_ready(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Next::Head(Parsed::Partial)),
            Poll::Ready(Err(_)) => Poll::Ready(Next::Closed),
            Poll::Pending if park => Poll::Ready(Next::Park),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Reads `data` as the own server reads a client's bytes: request heads one after another (as
/// pipelined), each answered with a response head that carries the request's headers, for every
/// version, method and keep-alive combination the encoder distinguishes. For the fuzz target
/// `h1_request` and its corpus replay: whatever `data` holds, this returns, never panics.
pub(crate) fn read_untrusted(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    for _ in 0..4 {
        let Parsed::Request(head) = head::parse(&mut buf, head::MAX_HEADERS) else {
            return;
        };
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.headers = head.request.headers().clone();
        for (status, ended) in [(200, false), (204, true), (304, true), (404, false)] {
            parts.status = http::StatusCode::from_u16(status).unwrap_or_default();
            for (head_request, keep_alive) in [(false, true), (true, false)] {
                let asked = response::Asked {
                    version: head.request.version(),
                    head: head_request,
                    keep_alive: keep_alive && head.keep_alive,
                };
                let hint = http_body::SizeHint::default();
                let _ = response::encode(&parts, &hint, ended, asked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::idle::Tracked;
    use tokio::net::TcpStream;

    fn output_size<A, B, C, D, Fut, F: FnOnce(A, B, C, D) -> Fut>(_: &F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// Every connection serving a request holds this future (boxed, with the request's own future
    /// pinned inside it): it is what a request in flight costs besides its buffers. (5,416 bytes in
    /// a debug build; 6,440 while the request's finished future kept its room during the write.)
    #[test]
    fn the_server_is_a_small_future() {
        let serve = |io: Rewind<Tracked<TcpStream>>,
                     ctx: &'static Ctx,
                     closing: &'static Closing,
                     limits: HeadLimits| super::serve(io, ctx, closing, limits);
        let size = output_size(&serve);
        assert!(size <= 5600, "the server's future is {size} bytes");
    }
}
