//! Hot reload of the config file: on change (polled, once the file has settled) or SIGHUP, read,
//! validate, and apply the routing document in one swap. An invalid file is logged with every error
//! and changes nothing.
//!
//! Polling the file's metadata four times a second is used rather than inotify: it sees editors that
//! replace the file, symlink swaps (Kubernetes ConfigMaps) and network filesystems alike, and costs one
//! `stat` per poll.

use crate::stamp::{self, Stamp};
use crate::tables::Tables;
use edgeplane_config::model::Node;
use edgeplane_config::ContentHash;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the file's metadata is checked.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new routing document is in place.
    Applied(ContentHash),
    /// The file's routing document is the one already applied.
    Unchanged,
    /// The file was rejected; nothing changed.
    Rejected(Vec<String>),
}

/// Watches one config file and applies it to the tables.
#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    tables: Arc<Tables>,
    node: Node,
    stamp: Option<Stamp>,
    /// A change seen at the last poll, read once the file has kept that stamp for a whole poll.
    pending: Option<Option<Stamp>>,
}

impl Reloader {
    /// A reloader for `path`, whose current content is already applied with node settings `node`.
    pub fn new(path: PathBuf, tables: Arc<Tables>, node: Node) -> Self {
        let stamp = stamp::of(&path);
        Reloader {
            path,
            tables,
            node,
            stamp,
            pending: None,
        }
    }

    /// Reads, validates and applies the file now.
    pub fn reload(&mut self) -> Outcome {
        let config = match edgeplane_config::from_file(&self.path) {
            Ok(c) => c,
            Err(e) => {
                let errors = e.lines();
                tracing::error!(path = %self.path.display(), errors = ?errors, "config rejected; keeping the current one");
                return Outcome::Rejected(errors);
            }
        };
        if config.node != self.node {
            tracing::warn!(path = %self.path.display(), "[node] settings changed; they take effect at the next restart");
        }
        if config.routing.hash == self.tables.load().hash {
            return Outcome::Unchanged;
        }
        match self.tables.apply(&config.routing) {
            Ok(snap) => {
                tracing::info!(path = %self.path.display(), hash = %snap.hash.short(), generation = snap.generation, "config applied");
                Outcome::Applied(snap.hash)
            }
            Err(e) => {
                let errors = e.lines();
                tracing::error!(path = %self.path.display(), errors = ?errors, "config rejected; keeping the current one");
                Outcome::Rejected(errors)
            }
        }
    }

    /// Reloads if the file's metadata changed since the last reload and has settled: the same at two
    /// polls in a row, so that a file caught mid-write (whose prefix may happen to be valid) is not
    /// applied. Writing the new file beside and renaming it over the old one is atomic and best.
    pub fn poll(&mut self) -> Option<Outcome> {
        let now = stamp::of(&self.path);
        if now == self.stamp {
            self.pending = None;
            return None;
        }
        if self.pending.as_ref() != Some(&now) {
            self.pending = Some(now);
            return None;
        }
        self.pending = None;
        self.stamp = now;
        Some(self.reload())
    }

    /// Polls the file and listens for SIGHUP until the task is dropped.
    pub async fn run(mut self) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        loop {
            #[cfg(unix)]
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let hup_recv = std::future::pending::<Option<()>>();
            tokio::select! {
                _ = tick.tick() => {
                    self.poll();
                }
                _ = hup_recv => {
                    tracing::info!("SIGHUP: reloading");
                    self.stamp = stamp::of(&self.path);
                    self.reload();
                }
            }
        }
    }
}
