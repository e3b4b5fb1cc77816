//! The running node's side of an upgrade: offer the listening sockets on a Unix socket.

use super::fds;
use super::{Draining, Listeners, Ready, Take};
use crate::tables::Tables;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long the old process waits for the new one to say it serves (building tables, joining the
/// fleet and warming up take seconds at most).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the upgrade socket could not be offered.
#[derive(Debug, thiserror::Error)]
pub enum OfferError {
    /// Another process answers on the path.
    #[error("{0}: another process already offers upgrades there")]
    Taken(String),
    /// Binding failed.
    #[error("{path}: {source}")]
    Io {
        /// The socket's path.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// What a node hands over: its listening sockets (duplicates, closed with the offer) by configured
/// address, and the tables whose endpoint counts the new process waits for.
struct Handover {
    sockets: Vec<(SocketAddr, OwnedFd)>,
    tables: Arc<Tables>,
    grace: Duration,
}

/// A node's listening sockets, offered to a new process on a Unix socket until dropped. Dropping it
/// closes its copies of the sockets and, unless they were handed over, removes the socket file.
#[derive(Debug)]
pub struct Offer {
    path: PathBuf,
    /// Device and inode of the socket file this offer bound.
    file: Option<(u64, u64)>,
    done: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl Offer {
    /// Offers `sockets` on `path`. A stale socket file (nobody listening) is replaced; with `replace`
    /// (this process took over from the one listening there), a live one is too, atomically.
    pub fn bind(
        path: &Path,
        sockets: Vec<(SocketAddr, OwnedFd)>,
        tables: Arc<Tables>,
        grace: Duration,
        replace: bool,
    ) -> Result<Offer, OfferError> {
        let shown = path.display().to_string();
        let io_err = |source| OfferError::Io {
            path: shown.clone(),
            source,
        };
        let listener = if replace {
            bind_replacing(path).map_err(io_err)?
        } else {
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if !m.file_type().is_socket() {
                    return Err(io_err(io::Error::other("exists and is not a socket")));
                }
            }
            match UnixStream::connect(path) {
                Ok(_) => return Err(OfferError::Taken(shown)),
                // A socket file nobody listens on: left by a node that died.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    std::fs::remove_file(path).map_err(io_err)?;
                }
                Err(_) => {}
            }
            UnixListener::bind(path).map_err(io_err)?
        };
        let file = std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        // Whoever connects gets the listening sockets: only this user may (the peer is checked too).
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io_err)?;
        let (done_tx, done) = watch::channel(false);
        let handover = Arc::new(Handover {
            sockets,
            tables,
            grace,
        });
        let task = tokio::spawn(serve(listener, handover, done_tx));
        tracing::info!(path = %shown, "offering the listening sockets for binary upgrades");
        Ok(Offer {
            path: path.to_path_buf(),
            file,
            done,
            task,
        })
    }

    /// Resolves once a new process has taken the sockets over and serves: this node must then stop
    /// accepting (it already told the new process it does) and drain.
    pub async fn handed_over(&mut self) {
        let _ = self.done.wait_for(|d| *d).await;
        if !*self.done.borrow() {
            // The offer's task is gone without a hand-over: never resolve.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Offer {
    fn drop(&mut self) {
        self.task.abort();
        if *self.done.borrow() {
            // The path belongs to the new process now.
            return;
        }
        let still_ours = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if still_ours.is_some() && still_ours == self.file {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds a fresh socket at `path` while another process listens there: bound next to it and renamed
/// over it, so that the path always answers.
fn bind_replacing(path: &Path) -> io::Result<UnixListener> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".{}", std::process::id()));
    let temp = PathBuf::from(temp);
    if temp.as_os_str().len() > 107 {
        // No room for a neighbour name: a moment without a socket file.
        let _ = std::fs::remove_file(path);
        return UnixListener::bind(path);
    }
    let _ = std::fs::remove_file(&temp);
    let listener = UnixListener::bind(&temp)?;
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temp, path)?;
    Ok(listener)
}

/// Answers new processes one at a time until one has taken over.
async fn serve(listener: UnixListener, handover: Arc<Handover>, done: watch::Sender<bool>) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "upgrade socket: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let stream = match stream.into_std().and_then(|s| {
            s.set_nonblocking(false)?;
            Ok(s)
        }) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "upgrade socket: cannot use a connection");
                continue;
            }
        };
        let handover = handover.clone();
        match tokio::task::spawn_blocking(move || exchange(&stream, &handover)).await {
            Ok(Ok(true)) => {
                tracing::info!("binary upgrade: the new process serves; draining");
                let _ = done.send(true);
                return;
            }
            Ok(Ok(false)) => {
                tracing::warn!("binary upgrade abandoned by the new process; still serving")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "binary upgrade failed; still serving")
            }
            Err(e) => tracing::warn!(error = %e, "binary upgrade failed; still serving"),
        }
    }
}

/// One hand-over (blocking). `Ok(true)`: the new process serves and was told this one drains.
fn exchange(stream: &UnixStream, handover: &Handover) -> io::Result<bool> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    let own = rustix::process::geteuid();
    if peer.uid != own && !peer.uid.is_root() {
        return Err(io::Error::other(format!(
            "refused: process {} runs as uid {}, not as this node's",
            peer.pid.as_raw_nonzero(),
            peer.uid.as_raw()
        )));
    }
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let Some(line) = fds::read_line(stream)? else {
        return Ok(false);
    };
    let take: Take = serde_json::from_slice(&line).map_err(io::Error::other)?;
    if take.take != "listeners" {
        return Err(io::Error::other(format!("unknown request {:?}", take.take)));
    }
    tracing::info!(
        pid = take.pid,
        "binary upgrade: handing the listening sockets over"
    );
    let endpoints = handover
        .tables
        .load()
        .clusters
        .iter()
        .map(|c| (c.name.to_string(), c.endpoints.len()))
        .collect();
    let message = Listeners {
        listeners: handover.sockets.iter().map(|(a, _)| *a).collect(),
        endpoints,
    };
    let mut line = serde_json::to_vec(&message).map_err(io::Error::other)?;
    line.push(b'\n');
    let borrowed: Vec<_> = handover.sockets.iter().map(|(_, fd)| fd.as_fd()).collect();
    fds::send(stream, &line, &borrowed)?;
    stream.set_read_timeout(Some(READY_TIMEOUT))?;
    let Some(line) = fds::read_line(stream)? else {
        return Ok(false);
    };
    let ready: Ready = serde_json::from_slice(&line).map_err(io::Error::other)?;
    if !ready.ready {
        return Ok(false);
    }
    let grace_ms = u64::try_from(handover.grace.as_millis()).unwrap_or(u64::MAX);
    fds::write_json(
        stream,
        &Draining {
            draining: true,
            grace_ms,
        },
    )?;
    Ok(true)
}
