//! The new process's side of an upgrade: take the listening sockets, warm up, say ready.

use super::fds;
use super::{Draining, Listeners, Ready, Take};
use crate::tables::Tables;
use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long each step of the exchange may take the old process.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upgrade could not take over.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    /// The Unix socket could not be reached or the exchange broke.
    #[error("upgrade socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The old process answered something else than the protocol's messages.
    #[error("upgrade socket {path}: unexpected answer: {message}")]
    Protocol {
        /// The socket's path.
        path: String,
        /// What was wrong.
        message: String,
    },
}

/// Listening sockets handed over by the old process, by configured address.
#[derive(Debug, Default)]
pub struct Inherited {
    sockets: Vec<(SocketAddr, TcpListener)>,
}

impl Inherited {
    /// The socket the old process had for `address`, if any (each is taken once).
    pub(crate) fn take(&mut self, address: SocketAddr) -> Option<TcpListener> {
        let i = self.sockets.iter().position(|(a, _)| *a == address)?;
        Some(self.sockets.swap_remove(i).1)
    }

    /// Addresses handed over that no listener took (no longer configured): they close with this.
    pub(crate) fn unused(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(a, _)| *a).collect()
    }
}

/// The old process, between the hand-over of its sockets and its drain.
#[derive(Debug)]
pub struct Predecessor {
    stream: UnixStream,
    path: String,
    endpoints: BTreeMap<String, usize>,
}

/// Asks the node offering upgrades on `path` for its listening sockets. `Ok(None)`: no node answers
/// there (no socket file, or nobody listening on it).
pub fn take_over(path: &Path) -> Result<Option<(Predecessor, Inherited)>, UpgradeError> {
    let shown = path.display().to_string();
    let io_err = |source| UpgradeError::Io {
        path: shown.clone(),
        source,
    };
    let stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(io_err(e)),
    };
    stream
        .set_read_timeout(Some(STEP_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(STEP_TIMEOUT))
        .map_err(io_err)?;
    let take = Take {
        take: "listeners".into(),
        pid: std::process::id(),
    };
    fds::write_json(&stream, &take).map_err(io_err)?;
    let (line, received) = fds::recv(&stream).map_err(io_err)?;
    let protocol = |message: String| UpgradeError::Protocol {
        path: shown.clone(),
        message,
    };
    let listeners: Listeners =
        serde_json::from_slice(&line).map_err(|e| protocol(e.to_string()))?;
    if listeners.listeners.len() != received.len() {
        return Err(protocol(format!(
            "{} addresses for {} sockets",
            listeners.listeners.len(),
            received.len()
        )));
    }
    let mut inherited = Inherited::default();
    for (address, fd) in listeners.listeners.into_iter().zip(received) {
        if !rustix::net::sockopt::socket_acceptconn(&fd).unwrap_or(false) {
            return Err(protocol(format!(
                "the socket for {address} is not a listening socket"
            )));
        }
        inherited.sockets.push((address, TcpListener::from(fd)));
    }
    Ok(Some((
        Predecessor {
            stream,
            path: shown,
            endpoints: listeners.endpoints,
        },
        inherited,
    )))
}

impl Predecessor {
    /// Endpoints per cluster in the old process when it handed over.
    pub fn endpoints(&self) -> &BTreeMap<String, usize> {
        &self.endpoints
    }

    /// Tells the old process this one serves; it stops accepting and drains. Returns its grace
    /// period. Blocking (a few milliseconds; at most ten seconds).
    pub fn ready(self) -> Result<Duration, UpgradeError> {
        let io_err = |source| UpgradeError::Io {
            path: self.path.clone(),
            source,
        };
        fds::write_json(&self.stream, &Ready { ready: true }).map_err(io_err)?;
        let line = fds::read_line(&self.stream)
            .map_err(io_err)?
            .ok_or_else(|| io_err(io::ErrorKind::UnexpectedEof.into()))?;
        let draining: Draining =
            serde_json::from_slice(&line).map_err(|e| UpgradeError::Protocol {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        Ok(Duration::from_millis(draining.grace_ms))
    }
}

/// Waits, for at most `limit`, until every cluster has at least as many endpoints in `tables` as
/// the old process had (`wanted`); a cluster the new tables no longer have is not waited for.
/// Returns the clusters still short when the time was up.
pub async fn warm_up(
    tables: &Tables,
    wanted: &BTreeMap<String, usize>,
    limit: Duration,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let snap = tables.load();
        let short: Vec<String> = snap
            .clusters
            .iter()
            .filter(|c| wanted.get(&*c.name).is_some_and(|&n| c.endpoints.len() < n))
            .map(|c| c.name.to_string())
            .collect();
        if short.is_empty() || tokio::time::Instant::now() >= deadline {
            return short;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
