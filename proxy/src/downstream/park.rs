//! Parking idle HTTP/1.x connections: a keep-alive connection quiet for a while gives back everything
//! hyper holds for it (its 8 KiB read and write buffers, the slot for a request's future, the cached
//! header map: about 22 KiB) and waits for its socket to become readable with nothing but the socket,
//! as nginx frees an idle keep-alive connection's buffers. The next request's first bytes wake it, and
//! a new hyper connection takes over from there.
//!
//! The watcher ([`crate::downstream::watcher`]) asks a connection to park once it has been without
//! I/O for 250 ms and answers no request (it parks within half a second of its last answer). The
//! connection's own task checks again that it is idle (between two polls of hyper, so nothing moves
//! meanwhile), then asks hyper to close it gracefully: an idle hyper connection finishes at once, and
//! its socket, with anything hyper had read of a next request, comes back through
//! [`crate::downstream::rewind::Rewind`], which skips the socket's shutdown while parking (for TLS,
//! no `close_notify` goes out: the session goes on).
//!
//! TLS connections park too (their rustls session stays, hyper's buffers go): a session may hold
//! decrypted bytes, a peer's `close_notify` or TLS bytes still to send that no socket readiness
//! would announce, so a parked TLS connection wakes at once when it does.

use crate::downstream::idle::Tracked;
use std::io;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A downstream socket, as far as parking goes.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether a connection on it may park.
    const PARKABLE: bool;

    /// Ready when bytes can be read (only polled on parkable sockets). Polling keeps no state: a
    /// parked connection's task holds nothing for it.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl Socket for Tracked<TcpStream> {
    const PARKABLE: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_ref().poll_read_ready(cx)
    }
}

impl Socket for tokio_rustls::server::TlsStream<Tracked<TcpStream>> {
    const PARKABLE: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (tcp, session) = self.get_ref();
        // Plaintext or a close_notify already taken off the socket, or records still to write:
        // hyper must run to see them (a new hyper connection reads, or flushes, and parks again
        // once idle).
        if !session.wants_read() || session.wants_write() {
            return Poll::Ready(Ok(()));
        }
        tcp.get_ref().poll_read_ready(cx)
    }
}
