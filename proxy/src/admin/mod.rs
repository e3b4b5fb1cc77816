//! The admin listener: `/healthz` (the process is up), `/readyz` (a snapshot is in place and the node
//! is not draining), `/metrics` (Prometheus) and the JSON admin API under `/api/v1/` ([`api`]).
//!
//! Authentication: with a token configured (`[node] admin_token_file`, or `EDGEPLANE_ADMIN_TOKEN`),
//! everything but `/healthz` and `/readyz` needs `Authorization: Bearer <token>`; without one,
//! `/metrics` is open and the API answers 401, so that an unconfigured node never exposes its controls.
//!
//! Limits: [`MAX_CONNECTIONS`] connections, [`HEADER_READ_TIMEOUT`] per request head (and idle
//! keep-alive), 16 KiB heads; accept errors are backed off.

mod api;
mod document;
mod fleet;
mod limits;

use crate::downstream::server::Phase;
use crate::request::shared::Shared;
use crate::tables::Tables;
use crate::telemetry::Telemetry;
use bytes::Bytes;
use edgeplane_bus::BusStats;
use edgeplane_controller::composer::Composer;
use edgeplane_controller::state::ConfigState;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::rt::TokioTimer;
use std::convert::Infallible;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::sync::Semaphore;

/// What the admin endpoints read and change.
pub struct AdminContext {
    /// The routing tables.
    pub(crate) tables: Arc<Tables>,
    /// Metrics.
    pub(crate) telemetry: Arc<Telemetry>,
    /// Running or draining.
    pub(crate) phase: watch::Receiver<Phase>,
    /// Node id.
    pub(crate) node: String,
    /// Node zone.
    pub(crate) zone: Option<String>,
    /// When the node started.
    pub(crate) started: Instant,
    /// Open downstream connections.
    pub(crate) open: Arc<AtomicUsize>,
    /// Request counters.
    pub(crate) shared: Arc<Shared>,
    /// The bearer token the API requires, if configured.
    pub(crate) token: Option<String>,
    /// The controller's state, once the node follows NATS.
    pub(crate) fleet: OnceLock<FleetView>,
}

/// What the admin API shows of a node's controller.
#[derive(Debug, Clone)]
pub(crate) struct FleetView {
    /// The pushed revision in place and the newest handled.
    pub(crate) state: Arc<Mutex<ConfigState>>,
    /// Membership: frozen or not, instances held.
    pub(crate) composer: Arc<Composer>,
    /// The NATS connection.
    pub(crate) bus: Arc<BusStats>,
    /// Every node of the fleet, from their announcements.
    pub(crate) nodes: Arc<edgeplane_controller::fleet_view::FleetNodes>,
    /// Autoscale recommendations and the lease.
    pub(crate) autoscale: Arc<crate::autoscale::AutoscaleView>,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// Connections the admin listener holds open at most; the next one waits for a free place.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request head, and the longest an idle keep-alive connection stays.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head the admin listener reads.
const MAX_HEAD: usize = 16 * 1024;

/// Serves the admin endpoints until the task is aborted: at most [`MAX_CONNECTIONS`] at once, each
/// closed if a request head takes longer than [`HEADER_READ_TIMEOUT`] (idle keep-alive included), so
/// that idle clients of the admin listener cannot use up the node's file descriptors.
pub(crate) async fn serve(listener: TcpListener, ctx: Arc<AdminContext>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut logged: Option<std::time::Instant> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning (and log once a second).
                if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(error = %e, "admin accept failed");
                    logged = Some(std::time::Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let ctx = ctx.clone();
        let service = service_fn(move |req| {
            let resp = answer(&req, &ctx);
            async move { Ok::<_, Infallible>(resp) }
        });
        tokio::spawn(async move {
            let _slot = slot;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Warns at start when the admin listener is reachable beyond this host and has no token: `/metrics`
/// is open to anyone who can connect.
pub(crate) fn warn_if_exposed(address: std::net::SocketAddr, token: Option<&str>) {
    if token.is_none() && !address.ip().is_loopback() {
        tracing::warn!(%address, "the admin listener is not on loopback and has no token: /metrics is open to the network (set [node] admin_token_file, or bind it to loopback)");
    }
}

/// A response with a body and content type.
fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, "text/plain; charset=utf-8", body.into())
}

/// The answer to one admin request (only its method, target and headers are read): what the listener
/// sends, and what the fuzz target `admin` drives with arbitrary requests.
pub fn answer<B>(req: &Request<B>, ctx: &AdminContext) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match path {
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" => return ready(ctx),
        _ => {}
    }
    let is_api = path.starts_with("/api/");
    if let Err(resp) = authorize(req, ctx.token.as_deref(), is_api) {
        return resp;
    }
    match (req.method(), path) {
        (&Method::GET, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            ctx.telemetry.render(),
        ),
        _ if is_api => api::answer(req, ctx),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn ready(ctx: &AdminContext) -> Response<Full<Bytes>> {
    if *ctx.phase.borrow() != Phase::Running {
        return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
    }
    let snap = ctx.tables.load();
    text(
        StatusCode::OK,
        format!(
            "ready generation={} hash={}\n",
            snap.generation,
            snap.hash.short()
        ),
    )
}

/// Checks the bearer token. Without a configured token, only non-API paths pass.
#[allow(clippy::result_large_err)]
fn authorize<B>(
    req: &Request<B>,
    token: Option<&str>,
    is_api: bool,
) -> Result<(), Response<Full<Bytes>>> {
    let unauthorized = |why: &str| {
        let body = serde_json::json!({ "error": why });
        let mut r = reply(
            StatusCode::UNAUTHORIZED,
            "application/json",
            format!("{body:#}\n"),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"edgeplane-admin\""),
        );
        r
    };
    let Some(token) = token else {
        return if is_api {
            Err(unauthorized(
                "the admin API needs a token: set [node] admin_token_file or EDGEPLANE_ADMIN_TOKEN",
            ))
        } else {
            Ok(())
        };
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match given {
        Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(unauthorized("invalid token")),
        None => Err(unauthorized("missing Authorization: Bearer <token>")),
    }
}

/// The credentials of a `Bearer` authorization (the scheme is case-insensitive, RFC 9110 section
/// 11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON admin API response.
pub(super) type Resp = Response<Full<Bytes>>;

/// A JSON body with `status`.
pub(super) fn json_reply(status: StatusCode, value: &serde_json::Value) -> Resp {
    reply(status, "application/json", format!("{value:#}\n"))
}

/// A JSON error: `{"error": message}`.
pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json_reply(status, &serde_json::json!({ "error": message.into() }))
}
