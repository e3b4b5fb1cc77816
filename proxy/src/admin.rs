//! The admin listener: `/healthz` (the process is up), `/readyz` (a snapshot is in place and the
//! node is not draining) and `/metrics` (Prometheus). The JSON admin API comes next.

use crate::server::Phase;
use crate::tables::Tables;
use crate::telemetry::Telemetry;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves the admin endpoints until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    tables: Arc<Tables>,
    telemetry: Arc<Telemetry>,
    phase: watch::Receiver<Phase>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tables = tables.clone();
        let telemetry = telemetry.clone();
        let phase = phase.clone();
        let service = service_fn(move |req| {
            let resp = answer(&req, &tables, &telemetry, *phase.borrow());
            async move { Ok::<_, Infallible>(resp) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(
    req: &Request<Incoming>,
    tables: &Tables,
    telemetry: &Telemetry,
    phase: Phase,
) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/healthz" => (StatusCode::OK, "ok\n".to_string()),
        "/metrics" => {
            let mut resp = Response::new(Full::new(Bytes::from(telemetry.render())));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            return resp;
        }
        "/readyz" if phase == Phase::Running => {
            let snap = tables.load();
            (
                StatusCode::OK,
                format!(
                    "ready generation={} hash={}\n",
                    snap.generation,
                    snap.hash.short()
                ),
            )
        }
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "not found\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp
}
