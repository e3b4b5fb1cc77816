//! Idle detection for downstream connections: the socket counts its reads and writes, and a watchdog
//! sampled a few times per timeout closes the connection once the count stops moving for a whole
//! timeout. Counting costs one relaxed atomic add per I/O call; no timer is reset per request.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What one connection shares with the watcher: its I/O calls (idle detection, below) and its
/// requests (the request-head deadline, [`crate::downstream::head_watch`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Activity(pub(crate) Arc<Counters>);

/// The counters behind an [`Activity`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// I/O calls that completed: reads in the high 32 bits, writes in the low 32 (both wrap).
    pub(crate) io: AtomicU64,
    /// Requests: heads received in the high 32 bits, requests still being answered in the low 32.
    pub(crate) requests: AtomicU64,
    /// The read count when the connection last finished answering a request.
    pub(crate) reads_when_done: AtomicU32,
    /// Set once the connection no longer reads one request head at a time (HTTP/2, upgraded).
    pub(crate) exempt: AtomicBool,
    /// Set when the node drains: HTTP/1.x responses then say `Connection: close`.
    pub(crate) draining: AtomicBool,
}

/// One read in [`Counters::io`].
pub(crate) const READ: u64 = 1 << 32;

impl Counters {
    /// Reads so far (wrapping).
    pub(crate) fn reads(&self) -> u32 {
        (self.io.load(Relaxed) >> 32) as u32
    }

    /// Whether the connection is between requests: none being answered, and nothing read since the
    /// last one finished (no next request under way).
    pub(crate) fn idle(&self) -> bool {
        self.requests.load(Relaxed) as u32 == 0
            && self.reads_when_done.load(Relaxed) == self.reads()
    }
}

impl Activity {
    fn bump(&self, by: u64) {
        self.0.io.fetch_add(by, Relaxed);
    }
}

/// Tells, when sampled, whether a connection has had no I/O for a whole timeout. It keeps only the
/// last count seen and since when it has not moved (the counters and the timeout are the sampler's):
/// the watcher holds one or two per connection.
#[derive(Debug)]
pub(crate) struct Watchdog {
    seen: u64,
    quiet_since: Instant,
}

impl Watchdog {
    /// A watchdog starting at `now`.
    pub(crate) fn new(now: Instant) -> Watchdog {
        Watchdog {
            seen: 0,
            quiet_since: now,
        }
    }

    /// Samples the connection's counters `c` at `now`: true once it has had no I/O since a sample at
    /// least `timeout` ago (then a further whole quiet timeout is needed to be true again). Sampled
    /// every `timeout / 4`, it fires between one timeout and one and a quarter after the last I/O.
    pub(crate) fn expired_at(&mut self, c: &Counters, timeout: Duration, now: Instant) -> bool {
        let count = c.io.load(Relaxed);
        if count != self.seen {
            self.seen = count;
            self.quiet_since = now;
            false
        } else if now.duration_since(self.quiet_since) >= timeout {
            self.quiet_since = now;
            true
        } else {
            false
        }
    }

    /// How long the connection had been without I/O at the last sample, as of `now`.
    pub(crate) fn quiet_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.quiet_since)
    }
}

/// Byte counters shared by a node's downstream connections.
#[derive(Debug)]
pub(crate) struct ByteCounters {
    /// Bytes read from clients.
    pub(crate) received: metrics::Counter,
    /// Bytes written to clients.
    pub(crate) sent: metrics::Counter,
}

/// Bytes a connection counts locally before adding them to the shared counters: one shared atomic add
/// per 64 KiB (or at close) instead of one per I/O call.
const FLUSH_BYTES: u64 = 64 * 1024;

/// A socket that counts its I/O events in an [`Activity`] and its bytes in [`ByteCounters`].
#[derive(Debug)]
pub(crate) struct Tracked<T> {
    inner: T,
    activity: Activity,
    bytes: Arc<ByteCounters>,
    received: u64,
    sent: u64,
}

impl<T> Tracked<T> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: T, activity: Activity, bytes: Arc<ByteCounters>) -> Self {
        Tracked {
            inner,
            activity,
            bytes,
            received: 0,
            sent: 0,
        }
    }

    /// The socket underneath.
    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
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
            this.activity.bump(READ);
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
            this.activity.bump(1);
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
            this.activity.bump(1);
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

    #[test]
    fn fires_only_after_a_quiet_timeout() {
        let activity = Activity::default();
        let start = Instant::now();
        let mut dog = Watchdog::new(start);
        let at = |s: u64| start + Duration::from_secs(s);
        // Sampled every 2 s; traffic every 3 s for 30 s keeps it alive.
        let mut fired = None;
        for t in (2..=60).step_by(2) {
            if t <= 30 && t % 3 == 0 {
                activity.bump(READ);
            }
            if dog.expired_at(&activity.0, Duration::from_secs(8), at(t)) {
                fired = Some(t);
                break;
            }
        }
        // Last traffic at 30 s, seen at the 30 s sample: quiet for 8 s at the 38 s sample.
        assert_eq!(fired, Some(38));
    }

    #[test]
    fn reads_and_writes_count_apart() {
        let activity = Activity::default();
        activity.bump(READ);
        activity.bump(1);
        activity.bump(READ);
        assert_eq!(activity.0.reads(), 2);
    }
}
