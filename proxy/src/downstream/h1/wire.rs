//! The own HTTP/1.x server's I/O on the client's socket: reads into the connection's buffer, writes
//! of several slices at once, and waits that end when the connection is told to close now.

use crate::downstream::closing::{Ask, Closing};
use bytes::BytesMut;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::{pin, Pin};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Reads what the socket has into `buf`'s spare room (which must not be empty): the bytes read,
/// 0 at the end of the stream.
pub(crate) fn poll_read_buf<R: AsyncRead + Unpin>(
    io: &mut R,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    debug_assert!(buf.capacity() > buf.len());
    pin!(io.read_buf(buf)).poll(cx)
}

/// Writes all of `slices` (in one `writev` when the socket takes them at once), then flushes.
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    io: &mut W,
    closing: &Closing,
    slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut slices = slices;
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = until_now(
            closing,
            std::future::poll_fn(|cx| Pin::new(&mut *io).poll_write_vectored(cx, slices)),
        )
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    until_now(
        closing,
        std::future::poll_fn(|cx| Pin::new(&mut *io).poll_flush(cx)),
    )
    .await
}

/// Shuts the socket's sending side (a FIN, or a TLS `close_notify`), as a connection ends.
pub(crate) async fn shutdown<W: AsyncWrite + Unpin>(io: &mut W, closing: &Closing) {
    let _ = until_now(
        closing,
        std::future::poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)),
    )
    .await;
}

/// `fut`'s output, or an error once the connection is told to close now.
pub(crate) async fn until_now<T, F>(closing: &Closing, fut: F) -> io::Result<T>
where
    F: Future<Output = io::Result<T>>,
{
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(out);
        }
        if closing.poll(cx) == Ask::Now {
            return Poll::Ready(Err(io::ErrorKind::ConnectionAborted.into()));
        }
        Poll::Pending
    })
    .await
}
