//! Idle detection for downstream connections: the socket counts its reads and writes, and a watchdog
//! that wakes a few times per timeout closes the connection once the count stops moving for a whole
//! timeout. Counting costs one relaxed atomic add per I/O call; no timer is reset per request.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// A shared count of I/O events on one connection.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<AtomicU64>);

impl Activity {
    fn bump(&self) {
        self.0.fetch_add(1, Relaxed);
    }

    /// A watchdog for this connection with the given idle timeout.
    pub fn watchdog(&self, timeout: Duration) -> Watchdog {
        let mut tick = tokio::time::interval_at(Instant::now() + timeout / 4, timeout / 4);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Watchdog {
            activity: self.clone(),
            timeout,
            tick,
            seen: 0,
            quiet_since: Instant::now(),
        }
    }
}

/// Resolves once a connection has had no I/O for its timeout (and again after each further timeout).
#[derive(Debug)]
pub struct Watchdog {
    activity: Activity,
    timeout: Duration,
    tick: Interval,
    seen: u64,
    quiet_since: Instant,
}

impl Watchdog {
    /// Waits until the connection has been idle for the whole timeout.
    pub async fn expired(&mut self) {
        loop {
            let now = self.tick.tick().await;
            let count = self.activity.0.load(Relaxed);
            if count != self.seen {
                self.seen = count;
                self.quiet_since = now;
            } else if now.duration_since(self.quiet_since) >= self.timeout {
                // The next expiry needs another whole quiet timeout.
                self.quiet_since = now;
                return;
            }
        }
    }
}

/// Byte counters shared by a node's downstream connections.
#[derive(Debug)]
pub struct ByteCounters {
    /// Bytes read from clients.
    pub received: metrics::Counter,
    /// Bytes written to clients.
    pub sent: metrics::Counter,
}

/// Bytes a connection counts locally before adding them to the shared counters: one shared atomic add
/// per 64 KiB (or at close) instead of one per I/O call.
const FLUSH_BYTES: u64 = 64 * 1024;

/// A socket that counts its I/O events in an [`Activity`] and its bytes in [`ByteCounters`].
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    activity: Activity,
    bytes: Arc<ByteCounters>,
    received: u64,
    sent: u64,
}

impl<T> Tracked<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Activity, bytes: Arc<ByteCounters>) -> Self {
        Tracked {
            inner,
            activity,
            bytes,
            received: 0,
            sent: 0,
        }
    }

    fn count_received(&mut self, n: usize) {
        self.received += n as u64;
        if self.received >= FLUSH_BYTES {
            self.bytes
                .received
                .increment(std::mem::take(&mut self.received));
        }
    }

    fn count_sent(&mut self, n: usize) {
        self.sent += n as u64;
        if self.sent >= FLUSH_BYTES {
            self.bytes.sent.increment(std::mem::take(&mut self.sent));
        }
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        self.bytes.received.increment(self.received);
        self.bytes.sent.increment(self.sent);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if r.is_ready() {
            this.activity.bump();
            let n = buf.filled().len().saturating_sub(before);
            this.count_received(n);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(res) = &r {
            this.activity.bump();
            if let Ok(n) = res {
                this.count_sent(*n);
            }
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(res) = &r {
            this.activity.bump();
            if let Ok(n) = res {
                this.count_sent(*n);
            }
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_quiet_timeout() {
        let activity = Activity::default();
        let mut dog = activity.watchdog(Duration::from_secs(8));
        let start = Instant::now();
        // Traffic every 3 s for 30 s keeps it alive.
        let keep_busy = async {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                activity.bump();
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            () = dog.expired() => {}
            () = keep_busy => {}
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(38),
            "fired too early: {waited:?}"
        );
        assert!(
            waited <= Duration::from_secs(42),
            "fired too late: {waited:?}"
        );
    }
}
