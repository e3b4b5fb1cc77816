//! Following the node's NATS connection from the controller's tasks: a request to the server that is
//! in flight when the connection drops is lost and would only fail at its timeout (seconds), so the
//! followers race every such wait against the next (re)connection and start over on the new one.

use edgeplane_bus::BusStats;
use std::future::Future;
use tokio::sync::watch;

/// The connections seen by one follower since it started setting up.
pub(crate) struct Link(watch::Receiver<u64>);

impl Link {
    /// Starts following `stats`' connections from now on.
    pub(crate) fn new(stats: &BusStats) -> Link {
        let mut rx = stats.link.subscribe();
        rx.mark_unchanged();
        Link(rx)
    }

    /// Waits for `fut`, unless the client (re)connects first: then `None`, and whatever `fut` was
    /// waiting for has to be asked again on the new connection.
    pub(crate) async fn unless_reconnected<T>(
        &mut self,
        fut: impl Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            out = fut => Some(out),
            () = self.reconnected() => None,
        }
    }

    /// Resolves at the next (re)connection (never, once the connection's counters are gone).
    pub(crate) async fn reconnected(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
