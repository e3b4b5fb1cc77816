//! Upgraded connections (WebSocket and other `Upgrade` protocols): bytes copied both ways until either
//! side closes. A tunnel outlives config reloads: it holds its endpoint, not a snapshot. It also holds
//! its downstream connection's slot: a draining node (shutdown, binary upgrade) waits for it within the
//! grace period, and cuts it when the node closes.

use crate::downstream::lifecycle::ConnHold;
use crate::upstream::InFlight;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// Waits for both sides to finish the upgrade, then copies bytes until one side closes.
pub(crate) async fn run(
    downstream: OnUpgrade,
    upstream: OnUpgrade,
    in_flight: InFlight,
    hold: Arc<ConnHold>,
) {
    let address = in_flight.upstream().address;
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(%address, error = %e, "upgrade failed");
            return;
        }
    };
    let mut down = TokioIo::new(down);
    let mut up = TokioIo::new(up);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut down, &mut up) => match copied {
            Ok((to_upstream, to_client)) => {
                tracing::debug!(%address, to_upstream, to_client, "tunnel closed");
            }
            Err(e) => tracing::debug!(%address, error = %e, "tunnel ended with an error"),
        },
        () = hold.closed() => tracing::debug!(%address, "tunnel cut: the node is closing"),
    }
    drop(in_flight);
    drop(hold);
}
