//! Idle upstream connections of one endpoint: a small LIFO stack of HTTP/1.1 senders.
//!
//! hyper-util's legacy client pool costs about 3 µs per request (key hashing, checkout bookkeeping);
//! this pool is one short critical section per checkout and per return, never held across an await.
//! LIFO keeps the warmest connections busy and lets surplus ones age out.

use crate::body::RequestBody;
use crate::breaker::ConnSlot;
use crate::error::ProxyError;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// An open HTTP/1.1 connection to an endpoint: the request sender and the connection's place in its
/// cluster's count (freed when the connection is dropped).
#[derive(Debug)]
pub struct Sender {
    send: SendRequest<RequestBody>,
    slot: ConnSlot,
}

impl std::ops::Deref for Sender {
    type Target = SendRequest<RequestBody>;
    fn deref(&self) -> &Self::Target {
        &self.send
    }
}

impl std::ops::DerefMut for Sender {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.send
    }
}

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
        while let Some(entry) = idle.pop() {
            if !entry.sender.is_closed() && entry.since.elapsed() < timeout {
                return Some(entry.sender);
            }
        }
        None
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
        sender.slot.notify();
        if sender.is_closed() {
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

/// Opens a new HTTP/1.1 connection to `address`, with TCP_NODELAY, within `timeout`, holding `slot`
/// for its life.
pub async fn connect(
    address: SocketAddr,
    timeout: Duration,
    slot: ConnSlot,
) -> Result<Sender, ProxyError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err(ProxyError::Connect(e.to_string())),
        Err(_) => return Err(ProxyError::Connect(format!("timed out after {timeout:?}"))),
    };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ProxyError::Connect(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%address, error = %e, "upstream connection ended with an error");
        }
    });
    Ok(Sender { send: sender, slot })
}
