//! Idle upstream connections of one endpoint: a small LIFO stack of senders. An HTTP/2 connection
//! stays in the stack while it lives and is shared: a take hands out another sender on it.
//!
//! hyper-util's legacy client pool costs about 3 µs per request (key hashing, checkout bookkeeping);
//! this pool is one short critical section per checkout and per return, never held across an await.
//! LIFO keeps the warmest connections busy and lets surplus ones age out.

pub use crate::conn::Sender;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The idle connections of one endpoint.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    max_idle: AtomicUsize,
    idle_timeout_ms: AtomicU64,
}

#[derive(Debug)]
struct Idle {
    sender: Sender,
    since: Instant,
}

impl Pool {
    /// An empty pool.
    pub fn new(settings: edgeplane_config::model::Pool) -> Self {
        let pool = Pool {
            idle: Mutex::new(Vec::new()),
            max_idle: AtomicUsize::new(0),
            idle_timeout_ms: AtomicU64::new(0),
        };
        pool.configure(settings);
        pool
    }

    /// Applies new settings (a reload keeps the pool and its connections).
    pub fn configure(&self, settings: edgeplane_config::model::Pool) {
        self.max_idle.store(settings.max_idle_per_endpoint, Relaxed);
        self.idle_timeout_ms
            .store(settings.idle_timeout.as_millis() as u64, Relaxed);
    }

    /// Number of idle connections held.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Closes every idle connection (dropping a sender ends its connection task).
    pub fn clear(&self) {
        let drained = self.idle.lock().map(|mut v| std::mem::take(&mut *v));
        drop(drained);
    }

    /// Takes the most recently returned live connection, dropping dead and expired ones on the way.
    pub fn take(&self) -> Option<Sender> {
        let timeout = Duration::from_millis(self.idle_timeout_ms.load(Relaxed));
        let mut idle = self.idle.lock().ok()?;
        while let Some(entry) = idle.last_mut() {
            if entry.sender.is_closed() || entry.since.elapsed() >= timeout {
                idle.pop();
                continue;
            }
            if entry.sender.is_h2() {
                // In use: it does not expire while requests keep coming.
                entry.since = Instant::now();
                return entry.sender.share();
            }
            return idle.pop().map(|e| e.sender);
        }
        None
    }

    /// Keeps a new HTTP/2 connection to share it with the next requests.
    pub fn share(&self, sender: &Sender) {
        let Some(shared) = sender.share() else { return };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(Idle {
                sender: shared,
                since: Instant::now(),
            });
        }
    }

    /// Closes the coldest idle connection, if any; returns whether there was one.
    pub fn evict_one(&self) -> bool {
        let evicted = self
            .idle
            .lock()
            .ok()
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)));
        evicted.is_some()
    }

    /// Returns a connection after its response finished (and wakes a request of the cluster waiting
    /// for a connection slot).
    pub fn put(&self, sender: Sender) {
        sender.notify();
        // A shared HTTP/2 sender's connection is still in the stack.
        if sender.is_closed() || sender.is_h2() {
            return;
        }
        let max = self.max_idle.load(Relaxed);
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        if idle.len() >= max {
            // The bottom of the stack is the coldest connection: let it go.
            if max == 0 {
                return;
            }
            idle.remove(0);
        }
        idle.push(Idle {
            sender,
            since: Instant::now(),
        });
    }
}
