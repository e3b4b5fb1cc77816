//! A node's life as its connections see it: the phase (running, draining, closing) they watch, and
//! the hold that keeps a downstream connection counted (its `max_connections` slot, its place in the
//! open-connections gauge) for as long as it, or the tunnel it became, lives. Below the server, the
//! request path and tunnels, which all hold one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, OwnedSemaphorePermit};

/// Where a node is in its life; connections watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Serving.
    Running,
    /// Stop accepting; let in-flight requests finish, then close each connection.
    Draining,
    /// Close every connection now.
    Closing,
}

/// What keeps a downstream connection counted, its `max_connections` slot and its place in the
/// open-connections gauge, for as long as its HTTP connection or the tunnel it was upgraded to lives
/// (so a draining node waits for tunnels too); a tunnel also learns from it when the node closes.
#[derive(Debug)]
pub(crate) struct ConnHold {
    _slot: OwnedSemaphorePermit,
    _open: OpenGuard,
    phase: watch::Receiver<Phase>,
}

impl ConnHold {
    /// Holds `slot` and counts the connection in `open` until dropped.
    pub(crate) fn new(
        slot: OwnedSemaphorePermit,
        open: Arc<AtomicUsize>,
        phase: watch::Receiver<Phase>,
    ) -> ConnHold {
        open.fetch_add(1, Ordering::Relaxed);
        ConnHold {
            _slot: slot,
            _open: OpenGuard(open),
            phase,
        }
    }

    /// Resolves when the node closes its remaining connections (or is gone).
    pub(crate) async fn closed(&self) {
        let mut phase = self.phase.clone();
        let _ = phase.wait_for(|p| *p == Phase::Closing).await;
    }
}

/// Counts a connection as open until dropped.
#[derive(Debug)]
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
