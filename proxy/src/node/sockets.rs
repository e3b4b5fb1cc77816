//! The node's listening sockets: taken over from a predecessor (binary upgrade) or bound anew, and
//! copies of them to hand to a successor.

use super::StartError;
use crate::upgrade::Inherited;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use tokio::net::TcpListener;

/// A copy of a listening socket's descriptor.
pub(super) fn dup(name: &str, listener: &TcpListener) -> Result<OwnedFd, StartError> {
    listener
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| StartError::Bind {
            name: name.to_string(),
            address: listener.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
            source,
        })
}

/// The listening socket for `address`: the one handed over by a binary upgrade, else a new one.
pub(super) fn bind(
    name: &str,
    address: SocketAddr,
    inherited: &mut Inherited,
) -> Result<TcpListener, StartError> {
    let err = |source| StartError::Bind {
        name: name.to_string(),
        address,
        source,
    };
    if let Some(listener) = inherited.take(address) {
        listener.set_nonblocking(true).map_err(err)?;
        tracing::info!(listener = %name, %address, "listening socket taken over");
        return TcpListener::from_std(listener).map_err(err);
    }
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(address).map_err(err)?;
    socket.listen(4096).map_err(err)
}
