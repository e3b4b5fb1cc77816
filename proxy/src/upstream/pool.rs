//! Idle upstream connections of one endpoint: small LIFO stacks of senders, one for connections of
//! edgeplane's own HTTP/1.1 client and one for hyper's. A request takes from the stack of the client it
//! will use first, so that requests hyper must carry (streamed uploads) do not turn the h1 client's
//! connections into hyper's one by one. An HTTP/2 connection stays in its stack while it lives and is
//! shared: a take hands out another sender on it.
//!
//! hyper-util's legacy client pool costs about 3 µs per request (key hashing, checkout bookkeeping);
//! this pool is one short critical section per checkout and per return, never held across an await.
//! LIFO keeps the warmest connections busy and lets surplus ones age out.
//!
//! How many stay: by default there is no fixed cap. A connection is only opened when a request finds
//! none idle, and one unused for the idle timeout closes (at a take from the top, or from the bottom
//! at a return), so with LIFO what the pool holds is what the last idle timeout's load used at once:
//! the recent peak of concurrent requests to the endpoint. A steady load therefore never closes and
//! reopens connections, whatever its concurrency (a fixed cap below it does: the former default of
//! 64 per endpoint cost 84 connects per 1,000 requests at 256 client connections over two endpoints,
//! and 16 % of the throughput), and a burst's surplus is given back one idle timeout after it. `max_idle_per_endpoint` adds a fixed cap for backends that must not
//! see more idle connections; the cluster's `max_connections` bounds busy and idle together.

pub(crate) use crate::upstream::conn::Sender;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The idle connections of one endpoint.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: Mutex<Stacks>,
    max_idle: AtomicUsize,
    idle_timeout_ms: AtomicU64,
}

#[derive(Debug, Default)]
struct Stacks {
    /// Connections of the h1 client.
    h1_client: Vec<Idle>,
    /// Connections driven by hyper (HTTP/1.1 or HTTP/2).
    hyper: Vec<Idle>,
}

impl Stacks {
    fn len(&self) -> usize {
        self.h1_client.len() + self.hyper.len()
    }

    /// Closes the coldest connection of each stack if it has been idle for `timeout`.
    fn expire_coldest(&mut self, now: Instant, timeout: Duration) {
        for stack in [&mut self.h1_client, &mut self.hyper] {
            // HTTP/2 connections are shared, not idle: their `since` is their last use.
            if stack
                .first()
                .is_some_and(|e| !e.sender.is_h2() && now.duration_since(e.since) >= timeout)
            {
                stack.remove(0);
            }
        }
    }

    /// Closes the coldest connection, hyper's first (the h1 client's are the cheaper to use).
    fn evict_coldest(&mut self) -> bool {
        let stack = if self.hyper.is_empty() {
            &mut self.h1_client
        } else {
            &mut self.hyper
        };
        (!stack.is_empty()).then(|| stack.remove(0)).is_some()
    }
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    /// An empty pool.
    pub(crate) fn new(settings: edgeplane_config::model::Pool) -> Self {
        let pool = Pool {
            idle: Mutex::new(Stacks::default()),
            max_idle: AtomicUsize::new(0),
            idle_timeout_ms: AtomicU64::new(0),
        };
        pool.configure(settings);
        pool
    }

    /// Applies new settings (a reload keeps the pool and its connections).
    pub(crate) fn configure(&self, settings: edgeplane_config::model::Pool) {
        self.max_idle.store(
            settings.max_idle_per_endpoint.unwrap_or(usize::MAX),
            Relaxed,
        );
        self.idle_timeout_ms
            .store(settings.idle_timeout.as_millis() as u64, Relaxed);
    }

    /// Number of idle connections held.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Closes every idle connection (dropping a sender ends its connection task).
    pub(crate) fn clear(&self) {
        let drained = self.idle.lock().map(|mut v| std::mem::take(&mut *v));
        drop(drained);
    }

    /// Takes the most recently returned live connection, of the h1 client if `h1_client` and there
    /// is one (else of hyper's, and the other way round), dropping dead and expired ones on the way.
    /// `now` is the request's clock (one reading serves its whole try).
    pub(crate) fn take(&self, h1_client: bool, now: Instant) -> Option<Sender> {
        let timeout = Duration::from_millis(self.idle_timeout_ms.load(Relaxed));
        let mut idle = self.idle.lock().ok()?;
        let Stacks {
            h1_client: o,
            hyper: h,
        } = &mut *idle;
        let (first, second) = if h1_client { (o, h) } else { (h, o) };
        take_from(first, now, timeout).or_else(|| take_from(second, now, timeout))
    }

    /// Keeps a new HTTP/2 connection to share it with the next requests.
    pub(crate) fn share(&self, sender: &Sender) {
        let Some(shared) = sender.share() else { return };
        if let Ok(mut idle) = self.idle.lock() {
            idle.hyper.push(Idle {
                sender: shared,
                since: Instant::now(),
            });
        }
    }

    /// Closes the coldest idle connection, if any; returns whether there was one.
    pub(crate) fn evict_one(&self) -> bool {
        self.idle.lock().is_ok_and(|mut v| v.evict_coldest())
    }

    /// Returns a connection after its response finished (and wakes a request of the cluster waiting
    /// for a connection slot).
    pub(crate) fn put(&self, sender: Sender) {
        sender.notify();
        // A shared HTTP/2 sender's connection is still in the stack. The own client's connections
        // are checked for a close when taken, not here: the check polls the socket's readiness
        // (about 150 instructions, and a system call when it was just read from), and it is made at
        // the take anyway.
        if sender.is_h2() || (sender.h1_client().is_none() && sender.is_closed()) {
            return;
        }
        let max = self.max_idle.load(Relaxed);
        let timeout = Duration::from_millis(self.idle_timeout_ms.load(Relaxed));
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        // Surplus from an earlier, larger load sits at the bottom, where takes never look: one of
        // its connections closes per return once unused for the idle timeout, so the pool shrinks
        // to what the load uses even while its top is always busy.
        let now = Instant::now();
        idle.expire_coldest(now, timeout);
        if idle.len() >= max {
            // The bottom of a stack is its coldest connection: let it go.
            if max == 0 {
                return;
            }
            idle.evict_coldest();
        }
        let entry = Idle { sender, since: now };
        if entry.sender.h1_client().is_some() {
            idle.h1_client.push(entry);
        } else {
            idle.hyper.push(entry);
        }
    }
}

/// The most recently returned live connection of `stack`, dropping dead and expired ones (idle for
/// `timeout` at `now`) on the way.
fn take_from(stack: &mut Vec<Idle>, now: Instant, timeout: Duration) -> Option<Sender> {
    while let Some(entry) = stack.last_mut() {
        if entry.sender.is_closed() || now.saturating_duration_since(entry.since) >= timeout {
            stack.pop();
            continue;
        }
        if entry.sender.is_h2() {
            // In use: it does not expire while requests keep coming.
            entry.since = now;
            return entry.sender.share();
        }
        return stack.pop().map(|e| e.sender);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::conn;
    use crate::upstream::Upstream;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_take_prefers_connections_of_the_client_the_request_will_use() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Upstream::new(
            addr,
            Pool::new(edgeplane_config::model::Pool {
                max_idle_per_endpoint: Some(8),
                idle_timeout: Duration::from_secs(60),
            }),
            Default::default(),
        );
        let mut peers = Vec::new();
        let open = || async {
            let slot = up.cluster.try_connection(None).unwrap();
            let (sender, peer) = tokio::join!(
                conn::connect(addr, Duration::from_secs(5), slot, None, false),
                listener.accept()
            );
            (sender.unwrap(), peer.unwrap().0)
        };
        let (own, p1) = open().await;
        let (hyper, p2) = open().await;
        peers.extend([p1, p2]);
        let hyper = hyper.into_hyper(addr).await.unwrap();
        assert!(own.h1_client().is_some() && hyper.h1_client().is_none());
        // The h1 client's connection is the most recent, yet a request for hyper gets hyper's.
        up.pool.put(hyper);
        up.pool.put(own);
        assert_eq!(up.pool.idle_count(), 2);
        let taken = up.pool.take(false, Instant::now()).unwrap();
        assert!(taken.h1_client().is_none(), "hyper's for a hyper request");
        up.pool.put(taken);
        let taken = up.pool.take(true, Instant::now()).unwrap();
        assert!(
            taken.h1_client().is_some(),
            "the h1 client's for a request for the h1 client"
        );
        // Either kind when the preferred stack is empty.
        let other = up.pool.take(true, Instant::now()).unwrap();
        assert!(other.h1_client().is_none());
        assert!(up.pool.take(true, Instant::now()).is_none());
        // The coldest goes first when full, hyper's before the h1 client's.
        up.pool.put(other);
        up.pool.put(taken);
        assert!(up.pool.evict_one());
        assert!(up
            .pool
            .take(false, Instant::now())
            .unwrap()
            .h1_client()
            .is_some());
    }

    #[tokio::test]
    async fn without_a_cap_the_pool_keeps_what_the_load_used_and_returns_age_out_the_coldest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeout = Duration::from_secs(60);
        let up = Upstream::new(
            addr,
            Pool::new(edgeplane_config::model::Pool {
                max_idle_per_endpoint: None,
                idle_timeout: timeout,
            }),
            Default::default(),
        );
        let mut peers = Vec::new();
        let mut senders = Vec::new();
        // 200 requests at once needed 200 connections: all of them stay when they return.
        for _ in 0..200 {
            let slot = up.cluster.try_connection(None).unwrap();
            let (sender, peer) = tokio::join!(
                conn::connect(addr, Duration::from_secs(5), slot, None, false),
                listener.accept()
            );
            senders.push(sender.unwrap());
            peers.push(peer.unwrap().0);
        }
        for s in senders {
            up.pool.put(s);
        }
        assert_eq!(up.pool.idle_count(), 200);
        // The load shrinks to one request at a time: it keeps reusing the top; the bottom one,
        // unused for the idle timeout, closes at the next return.
        {
            let mut idle = up.pool.idle.lock().unwrap();
            let coldest = &mut idle.h1_client[0];
            coldest.since = Instant::now().checked_sub(timeout).unwrap();
        }
        let s = up.pool.take(true, Instant::now()).unwrap();
        up.pool.put(s);
        assert_eq!(up.pool.idle_count(), 199);
        // Only connections past the timeout go: the next return closes none.
        let s = up.pool.take(true, Instant::now()).unwrap();
        up.pool.put(s);
        assert_eq!(up.pool.idle_count(), 199);
        assert_eq!(up.cluster.opened(), 200);
    }
}
