//! edgeplane's own HTTP/1.1 client for cleartext upstream connections, used for requests whose body
//! is empty or held whole (most of them); streamed uploads, upgrades and TLS upstreams go through
//! hyper's client.
//!
//! The request's task writes the request and reads the response itself: no connection task, no
//! channel between the two, and response header values share the connection's read buffer. Against
//! hyper's client this saves about a quarter of the proxy's instructions per request (BENCHMARKS.md).
//! A connection goes back to the pool when its response body has been read to its end and nothing
//! else came with it.

pub(crate) mod body;
mod chunked;
mod encode;
mod fields;
mod parse;
mod template;

pub(crate) use body::H1Body;
pub(crate) use parse::{Framing, Head};

use crate::request::added_headers::AddedHeaders;
use crate::request::request_body::RequestBody;
use bytes::BytesMut;
use http::{Method, Request};
use http_body::Body;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Bytes the read buffer grows by at first.
const READ_SIZE: usize = 16 * 1024;
/// Bytes the read buffer grows by at most (the step doubles after each read that filled it).
const MAX_READ_SIZE: usize = 128 * 1024;
/// Below this much free room, the read buffer grows before a read.
const MIN_ROOM: usize = 2 * 1024;
/// Largest body held whole that a request may carry through this client (more goes through hyper,
/// which reads the response while the body is still being written).
pub(crate) const MAX_BODY: usize = 16 * 1024;

/// One cleartext HTTP/1.1 upstream connection.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
    read_size: usize,
    /// The response-head timer, kept from request to request (see [`send_until`]): a new timer per
    /// request takes the timer driver's lock to register it and again to remove it.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The last response's header lines.
    template: template::Template,
}

/// Why a try on a connection failed.
#[derive(Debug)]
pub(crate) enum TryError {
    /// Nothing of a response came back: the connection was closed or reset before (a pooled
    /// connection the upstream had already closed, typically).
    Unanswered(String),
    /// The upstream answered with something that is not a valid response, or stopped mid-head.
    Failed(String),
}

impl Conn {
    /// A connection over `io`.
    pub(crate) fn new(io: TcpStream) -> Self {
        Conn {
            io,
            rbuf: BytesMut::new(),
            wbuf: Vec::new(),
            read_size: READ_SIZE,
            deadline: None,
            template: template::Template::default(),
        }
    }

    /// The socket, for hyper's client to take over; `None` if bytes are pending on it.
    pub(crate) fn into_io(self) -> Option<TcpStream> {
        self.rbuf.is_empty().then_some(self.io)
    }

    /// Whether the upstream closed this idle connection (or sent something unasked), seen without a
    /// system call unless the socket was reported readable.
    pub(crate) fn is_closed(&self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                !matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Reads more of the response into the read buffer; `Ok(0)` at the end of the stream.
    ///
    /// The buffer is allocated when the first response starts to arrive: a request waiting for a
    /// slow upstream holds none (16 KiB per request in flight otherwise).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() == 0 {
            ready!(self.io.poll_read_ready(cx))?;
        }
        if self.rbuf.capacity() - self.rbuf.len() < MIN_ROOM {
            self.rbuf.reserve(self.read_size);
        }
        let room = self.rbuf.capacity() - self.rbuf.len();
        let Conn { io, rbuf, .. } = self;
        let n = ready!(std::pin::pin!(io.read_buf(rbuf)).poll(cx))?;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ_SIZE);
        }
        Poll::Ready(Ok(n))
    }

    /// Moves the empty read buffer's start back to the beginning of its allocation, if nothing else
    /// holds a part of it: every response on the connection then lands in the same (cached) memory
    /// instead of walking through the buffer.
    fn rewind(&mut self) {
        if self.rbuf.is_empty() {
            // When a part is still held, the next read simply goes further on (or grows the buffer).
            let _ = self.rbuf.try_reclaim(self.read_size);
        }
    }

    /// Whether the connection holds no unread bytes (a condition for its reuse).
    fn is_clean(&self) -> bool {
        self.rbuf.is_empty()
    }
}

/// Whether `req` can go through this client: not an `upgrade` (a protocol switch the route lets
/// through; routing knows it, so no header is looked up here), and a body that is empty or held
/// whole and at most [`MAX_BODY`] long.
pub(crate) fn eligible(req: &Request<RequestBody>, upgrade: bool) -> bool {
    if upgrade {
        return false;
    }
    match req.body() {
        RequestBody::Buffered(b) => b.as_ref().map_or(0, |b| b.len()) <= MAX_BODY,
        RequestBody::Streamed(incoming) => incoming.is_end_stream(),
    }
}

/// [`send`], given up when `deadline` passes first (`None`). The connection's timer is reused and
/// left where it is when it would fire earlier than `deadline` (the deadline of a request before):
/// if it does fire early, it is moved to `deadline` then. Requests take milliseconds and timeouts
/// seconds, so a connection's timer moves about once per timeout, not once per request. It may also
/// fire after the connection went idle: a spurious wake-up of the task that last polled it.
pub(crate) async fn send_until(
    conn: &mut Conn,
    req: &Request<RequestBody>,
    added: &AddedHeaders<'_>,
    deadline: Instant,
) -> Option<Result<Head, TryError>> {
    let mut timer = match conn.deadline.take() {
        Some(mut timer) => {
            if timer.deadline() > deadline {
                // It must not fire late.
                timer.as_mut().reset(deadline);
            }
            timer
        }
        None => Box::pin(tokio::time::sleep_until(deadline)),
    };
    let result = {
        let mut sending = std::pin::pin!(send(conn, req, added));
        std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = sending.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            loop {
                ready!(timer.as_mut().poll(cx));
                if timer.deadline() >= deadline {
                    return Poll::Ready(None);
                }
                timer.as_mut().reset(deadline);
            }
        })
        .await
    };
    conn.deadline = Some(timer);
    result
}

/// Sends `req` (see [`eligible`]) on `conn` and reads the response head. The request stays with the
/// caller, to be sent elsewhere if this connection turns out dead.
pub(crate) async fn send(
    conn: &mut Conn,
    req: &Request<RequestBody>,
    added: &AddedHeaders<'_>,
) -> Result<Head, TryError> {
    let body = match req.body() {
        RequestBody::Buffered(b) => b.as_ref(),
        RequestBody::Streamed(_) => None,
    };
    encode::request(req, body, added, &mut conn.wbuf);
    conn.rewind();
    if let Err(e) = conn.io.write_all(&conn.wbuf).await {
        return Err(TryError::Unanswered(e.to_string()));
    }
    let head_request = req.method() == Method::HEAD;
    let mut answered = !conn.rbuf.is_empty();
    loop {
        if !conn.rbuf.is_empty() {
            match parse::parse(&mut conn.rbuf, head_request, &mut conn.template) {
                Ok(parse::Parsed::Complete(head)) => return Ok(head),
                Ok(parse::Parsed::Interim) => continue,
                Ok(parse::Parsed::Partial) => {}
                Err(e) => return Err(TryError::Failed(e.to_string())),
            }
        }
        match std::future::poll_fn(|cx| conn.poll_fill(cx)).await {
            Ok(0) if answered => {
                return Err(TryError::Failed(
                    "connection closed in the response head".into(),
                ))
            }
            Ok(0) => {
                return Err(TryError::Unanswered(
                    "connection closed before a response".into(),
                ))
            }
            Ok(_) => answered = true,
            Err(e) if answered => return Err(TryError::Failed(e.to_string())),
            Err(e) => return Err(TryError::Unanswered(e.to_string())),
        }
    }
}

/// Reads `data` as an upstream's answer would be read: the response head parser, then, for a
/// chunked body, the chunked decoder over what follows. For the fuzz target `h1_response` and its
/// corpus replay: whatever `data` holds, this returns (an error or a result), never panics.
pub fn read_untrusted(data: &[u8]) {
    let mut buf = bytes::BytesMut::from(data);
    let mut template = template::Template::default();
    // Twice on the same connection template, as a keep-alive connection would.
    for _ in 0..2 {
        let Ok(parse::Parsed::Complete(head)) = parse::parse(&mut buf, false, &mut template) else {
            return;
        };
        if head.framing == parse::Framing::Chunked {
            let mut decoder = chunked::Decoder::default();
            loop {
                match decoder.step(&mut buf) {
                    Ok(chunked::Step::End) => break,
                    Ok(chunked::Step::NeedMore) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
