//! A socket with bytes put back in front of it: what the protocol sniff read
//! ([`crate::downstream::sniff`]), or what hyper had read of a next request when its connection
//! parked ([`crate::downstream::park`]). Reads drain those bytes first; writes pass through; a
//! shutdown is skipped while the connection parks (hyper shuts the socket down when its connection
//! ends, and a parking connection ends hyper's but keeps the socket).

use crate::downstream::closing::Closing;
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `inner`, read from after `prefix`.
#[derive(Debug)]
pub(crate) struct Rewind<T> {
    prefix: Bytes,
    inner: T,
    /// The connection's word, telling whether it parks.
    parking: Option<Arc<Closing>>,
}

impl<T> Rewind<T> {
    /// `inner` with nothing put back.
    pub(crate) fn new(inner: T) -> Self {
        Rewind {
            prefix: Bytes::new(),
            inner,
            parking: None,
        }
    }

    /// The socket of a connection that may park: shutdowns are skipped while `closing` says it is
    /// parked.
    pub(crate) fn parking_with(mut self, closing: Arc<Closing>) -> Self {
        self.parking = Some(closing);
        self
    }

    /// Puts `bytes` back in front of what is still to be read (before anything put back earlier).
    pub(crate) fn put_back(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.prefix = if self.prefix.is_empty() {
            bytes
        } else {
            let mut joined = Vec::with_capacity(bytes.len() + self.prefix.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.prefix);
            joined.into()
        };
    }

    /// Whether bytes put back are still to be read.
    pub(crate) fn has_prefix(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// The socket underneath.
    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        if !this.prefix.is_empty() {
            return Poll::Ready(Ok(()));
        }
        // Its memory goes with it.
        this.prefix = Bytes::new();
        // The rest of what the socket has, in the same read: a parser that got only the prefix
        // would read again into a buffer it first grows (hyper doubles its 8 KiB read buffer when
        // its free room is short of 8 KiB: 16 KiB for every connection after a sniff). The socket's
        // error, if any, comes with the next read, after the prefix.
        if buf.remaining() > 0 {
            let _ = Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
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
        if this.parking.as_ref().is_some_and(|c| c.is_parked()) {
            return Pin::new(&mut this.inner).poll_flush(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn bytes_put_back_are_read_first_latest_first() {
        let mut r = Rewind::new(&b" world"[..]);
        r.put_back(Bytes::from_static(b"lo,"));
        r.put_back(Bytes::from_static(b"hel"));
        assert!(r.has_prefix());
        let mut out = String::new();
        r.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello, world");
        assert!(!r.has_prefix());
    }

    #[tokio::test]
    async fn the_read_that_ends_the_prefix_also_takes_what_the_socket_has() {
        let mut r = Rewind::new(&b" world"[..]);
        r.put_back(Bytes::from_static(b"hello,"));
        let mut buf = [0u8; 64];
        let n = r.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello, world");
    }

    #[tokio::test]
    async fn a_small_read_takes_part_of_the_prefix() {
        let mut r = Rewind::new(&b""[..]);
        r.put_back(Bytes::from_static(b"abcdef"));
        let mut two = [0u8; 2];
        r.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        assert!(r.has_prefix());
    }
}
