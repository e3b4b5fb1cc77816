//! Parking idle HTTP/1.x connections: a keep-alive connection quiet for a while gives back everything
//! hyper holds for it (its 8 KiB read and write buffers, the slot for a request's future, the cached
//! header map: about 30 KiB) and waits for its socket to become readable with nothing but the socket,
//! as nginx frees an idle keep-alive connection's buffers. The next request's first bytes wake it, and
//! a new hyper connection takes over from there.
//!
//! The watcher ([`crate::downstream::watcher`]) asks a connection to park once it has been without
//! I/O for 250 ms and answers no request (it parks within half a second of its last answer). The
//! connection's own task checks again that it is idle (between two polls of hyper, so nothing moves
//! meanwhile), then asks hyper to close it gracefully: an idle hyper connection finishes at once, and
//! its socket, with anything hyper had read of a next request, comes back through
//! [`Parkable`], which skips the socket's shutdown while parking. Only cleartext connections park:
//! a TLS session may hold decrypted bytes that no socket readiness would announce.

use crate::downstream::closing::Closing;
use crate::downstream::idle::Tracked;
use crate::downstream::rewind::Rewind;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    const PARKABLE: bool = false;

    fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

/// The socket as hyper's HTTP/1.x connection holds it: as is, except that a connection parking
/// keeps its socket open when hyper shuts it down.
#[derive(Debug)]
pub(crate) struct Parkable<T> {
    pub(crate) inner: Rewind<T>,
    pub(crate) closing: Arc<Closing>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Parkable<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Parkable<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing.is_parked() {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
