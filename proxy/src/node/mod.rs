//! A running node: tables, listeners, admin endpoint and the shutdown sequence, wired together.

use crate::admin;
use crate::downstream::server::{Phase, Server};
use crate::request::shared::Shared;
use crate::tables::{BuildError, Snapshot, Tables};
use crate::telemetry::access_writer::AccessLogger;
use crate::telemetry::Telemetry;
use crate::upgrade::Inherited;
use edgeplane_config::model::Node as NodeConfig;
use edgeplane_config::Config;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

mod sink;
mod sockets;

use sink::Sink;
use sockets::{bind, dup};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot bind {name} on {address}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address asked for.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The routing tables could not be built.
    #[error(transparent)]
    Tables(#[from] BuildError),
    /// A TLS listener could not be configured.
    #[error("TLS listener {name}: {message}")]
    Tls {
        /// Listener name.
        name: String,
        /// Why.
        message: String,
    },
    /// The admin token file could not be read or is empty.
    #[error("admin token: {0}")]
    AdminToken(String),
    /// The access log's file could not be opened (or its writer started).
    #[error("access log: {0}")]
    AccessLog(String),
}

/// A node that serves traffic until [`NodeHandle::shutdown_within`].
#[derive(Debug)]
pub struct NodeHandle {
    tables: Arc<Tables>,
    shared: Arc<Shared>,
    telemetry: Arc<Telemetry>,
    admin_context: Arc<admin::AdminContext>,
    open: Arc<std::sync::atomic::AtomicUsize>,
    config: NodeConfig,
    routing: edgeplane_config::Routing,
    listeners: Vec<SocketAddr>,
    admin: Option<SocketAddr>,
    phase: watch::Sender<Phase>,
    /// Opens the accept loops of a node started held ([`NodeHandle::start_with`]).
    accepting: watch::Sender<bool>,
    /// A copy of each listening socket (proxy listeners, then the admin's), by configured address,
    /// for a binary upgrade to hand over; closed when the node drains.
    sockets: Vec<(SocketAddr, OwnedFd)>,
    slots: Arc<Semaphore>,
    /// The proxy listeners' accept loops (the admin's serves on while the node drains).
    accept_loops: Vec<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
}

impl NodeHandle {
    /// Binds every listener, builds the first snapshot and starts serving. Must run in a tokio runtime.
    pub async fn start(config: &Config) -> Result<NodeHandle, StartError> {
        Self::start_with(config, Inherited::default(), true).await
    }

    /// [`NodeHandle::start`] on the listening sockets a binary upgrade handed over (by configured
    /// address; other addresses are bound afresh). Unless `accept`, the listeners accept nothing
    /// until [`NodeHandle::accept`]: the old process goes on serving from the same sockets meanwhile.
    pub async fn start_with(
        config: &Config,
        mut inherited: Inherited,
        accept: bool,
    ) -> Result<NodeHandle, StartError> {
        let node = &config.node;
        let telemetry = Telemetry::new();
        // Metrics are served on the admin listener, and a fleet node reports its answered requests
        // in status replies (rollout gates); a node with neither records nothing per request.
        let recording = (node.admin.is_some() || node.nats.is_some()).then(|| telemetry.clone());
        let zone = node.zone.as_deref().map(Arc::from);
        let first = Snapshot::build_with(&config.routing, None, recording.clone(), zone)?;
        let tables = Arc::new(Tables::new(first));
        let mut shared = Shared::new(tables.clone(), &node.id, recording.as_ref());
        shared.access_log = match &node.access_log {
            Some(config) => Some(Arc::new(
                AccessLogger::start(config, recording.as_deref())
                    .map_err(|e| StartError::AccessLog(e.to_string()))?,
            )),
            None => None,
        };
        shared.tracing = node.tracing;
        shared.trusted_proxies = node.trusted_proxies.clone();
        let shared = Arc::new(shared);
        let (phase, phase_rx) = watch::channel(Phase::Running);
        let slots = Arc::new(Semaphore::new(node.limits.max_connections));
        let server = Server::new(
            shared.clone(),
            node.limits,
            node.timeouts,
            slots.clone(),
            phase_rx.clone(),
        );

        let open = server.open_connections();
        crate::telemetry::collect_node(
            &telemetry,
            node,
            tables.clone(),
            (open.clone(), server.parked_connections()),
        );
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        for l in &node.listeners {
            let tls = match &l.tls {
                Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
                    crate::downstream::tls::server_config(t, tables.clone()).map_err(|e| {
                        StartError::Tls {
                            name: l.name.clone(),
                            message: e.to_string(),
                        }
                    })?,
                ))),
                None => None,
            };
            let listener = bind(&l.name, l.address, &mut inherited)?;
            sockets.push((l.address, dup(&l.name, &listener)?));
            bound.push((l.name.clone(), listener, tls));
        }
        let admin_listener = match node.admin {
            Some(address) => {
                let listener = bind("admin", address, &mut inherited)?;
                sockets.push((address, dup("admin", &listener)?));
                Some(listener)
            }
            None => None,
        };
        for address in inherited.unused() {
            tracing::info!(%address, "a listener handed over is no longer configured; closing it");
        }
        drop(inherited);
        let (accepting, accept_rx) = watch::channel(accept);

        let mut listeners = Vec::new();
        let mut accept_loops = Vec::new();
        // Endpoints named by DNS: resolved once before serving (for 2 s at most: a slow name does
        // not hold the node's start), then on their own task.
        let mut resolver = crate::upstream::resolver::Resolver::default();
        let first = resolver.round(&tables);
        if tokio::time::timeout(std::time::Duration::from_secs(2), first)
            .await
            .is_err()
        {
            resolver.retry_soon();
        }
        let mut tasks = vec![
            tokio::spawn(telemetry.clone().upkeep()),
            tokio::spawn(crate::upstream::outlier::run(tables.clone())),
            tokio::spawn(crate::upstream::health_check::run(tables.clone())),
            tokio::spawn(crate::upstream::resolver::run(tables.clone(), resolver)),
            tokio::spawn(server.watch()),
        ];
        if node.listeners.iter().any(|l| l.tls.is_some()) {
            tasks.push(tokio::spawn(crate::downstream::tls::watch(tables.clone())));
        }
        for (name, listener, tls) in bound {
            let local = listener.local_addr().map_err(|source| StartError::Bind {
                name: name.clone(),
                address: listener.local_addr().unwrap_or(([0, 0, 0, 0], 0).into()),
                source,
            })?;
            tracing::info!(listener = %name, address = %local, "listening");
            listeners.push(local);
            accept_loops.push(tokio::spawn(gated(
                accept_rx.clone(),
                server.clone().serve(listener, name.into(), tls),
            )));
        }
        let admin_context = Arc::new(admin::AdminContext {
            tables: tables.clone(),
            telemetry: telemetry.clone(),
            phase: phase_rx,
            node: node.id.clone(),
            zone: node.zone.clone(),
            started: std::time::Instant::now(),
            open: open.clone(),
            shared: shared.clone(),
            token: admin_token(node)?,
            fleet: std::sync::OnceLock::new(),
        });
        let admin = match admin_listener {
            Some(l) => {
                let local = l.local_addr().ok();
                tracing::info!(address = ?local, api = admin_context.token.is_some(), "admin listening");
                if let Some(address) = local {
                    admin::warn_if_exposed(address, admin_context.token.as_deref());
                }
                tasks.push(tokio::spawn(gated(
                    accept_rx.clone(),
                    admin::serve(l, admin_context.clone()),
                )));
                local
            }
            None => None,
        };
        let snap = tables.load();
        tracing::info!(node = %node.id, hash = %snap.hash.short(), routes = config.routing.routes.len(),
            clusters = snap.clusters.len(), "node started");
        Ok(NodeHandle {
            tables,
            shared,
            telemetry,
            admin_context,
            open,
            config: node.clone(),
            routing: config.routing.clone(),
            listeners,
            admin,
            phase,
            accepting,
            sockets,
            slots,
            accept_loops,
            tasks,
        })
    }

    /// Starts accepting on a node started held.
    pub fn accept(&self) {
        let _ = self.accepting.send(true);
    }

    /// Copies of the listening sockets with their configured addresses, for a binary upgrade's
    /// [`crate::upgrade::Offer`].
    pub fn listening_sockets(&self) -> std::io::Result<Vec<(SocketAddr, OwnedFd)>> {
        self.sockets
            .iter()
            .map(|(a, fd)| Ok((*a, fd.try_clone()?)))
            .collect()
    }

    /// The node's metrics (to add collectors, or render them).
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// What the admin endpoints read (the controller registers its config state there).
    pub fn admin_context(&self) -> &Arc<admin::AdminContext> {
        &self.admin_context
    }

    /// The routing tables (to apply new routing documents).
    pub fn tables(&self) -> &Arc<Tables> {
        &self.tables
    }

    /// What the controller may change and read: the tables and the node's counters.
    pub fn sink(&self) -> Arc<dyn edgeplane_controller::RoutingSink> {
        Arc::new(Sink {
            tables: self.tables.clone(),
            shared: self.shared.clone(),
            open: self.open.clone(),
            listeners: self.config.listeners.clone(),
            traffic: self.telemetry.traffic().clone(),
        })
    }

    /// The node settings it started with.
    pub(crate) fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// The routing document the node started with.
    pub(crate) fn initial_routing(&self) -> &edgeplane_config::Routing {
        &self.routing
    }

    /// Bound proxy listener addresses, in config order (useful with port 0).
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listeners
    }

    /// Bound admin address, if the node has an admin listener.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish for up to `grace` (the
    /// binary passes `timeouts.shutdown_grace`), then close what is left. Returns the number of
    /// connections that had to be cut.
    pub async fn shutdown_within(mut self, grace: Duration) -> usize {
        tracing::info!(grace = ?grace, "draining");
        let started = tokio::time::Instant::now();
        let _ = self.phase.send(Phase::Draining);
        // A node started held and never opened: its loops end without accepting.
        self.accepting = watch::channel(false).0;
        // The accept loops end: each client accepted meanwhile is served (it gets its slot before the
        // drain below takes the free ones). With the last copies of the sockets closed, new clients are
        // then refused at once rather than left in a backlog nobody accepts from (unless a new process
        // took the sockets over).
        let loops = async {
            for l in &mut self.accept_loops {
                let _ = l.await;
            }
        };
        let _ = tokio::time::timeout(grace, loops).await;
        self.sockets.clear();
        let total = self.config.limits.max_connections as u32;
        let left = grace.saturating_sub(started.elapsed());
        let drained = tokio::time::timeout(left, self.slots.acquire_many(total)).await;
        let cut = match drained {
            Ok(_) => 0,
            Err(_) => total as usize - self.slots.available_permits(),
        };
        let _ = self.phase.send(Phase::Closing);
        for t in self.accept_loops.iter().chain(&self.tasks) {
            t.abort();
        }
        if cut > 0 {
            tracing::warn!(
                connections = cut,
                "grace period over; closing remaining connections"
            );
        }
        tracing::info!("stopped");
        cut
    }
}

/// The admin API's token: from `admin_token_file`, else `$EDGEPLANE_ADMIN_TOKEN`, else none. An
/// unreadable or empty file is an error (`edgeplane check` reports it too).
pub fn admin_token(node: &NodeConfig) -> Result<Option<String>, StartError> {
    let token = match &node.admin_token_file {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| StartError::AdminToken(format!("cannot read {}: {e}", path.display())))?,
        None => match std::env::var("EDGEPLANE_ADMIN_TOKEN") {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(StartError::AdminToken("the token is empty".into()));
    }
    Ok(Some(token))
}

/// Runs `serve` once the node accepts.
async fn gated(mut accept: watch::Receiver<bool>, serve: impl std::future::Future<Output = ()>) {
    if accept.wait_for(|a| *a).await.is_ok() {
        serve.await;
    }
}
