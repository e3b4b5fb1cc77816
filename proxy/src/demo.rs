//! `edgeplane demo`: two small upstreams on the default config's endpoint addresses, so that the shipped
//! default config shows real balancing with nothing else installed.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binds a demo upstream named `name` on `address` and serves it in the background. Each response says
/// which upstream answered and echoes the forwarding headers the proxy added.
pub async fn spawn_upstream(name: String, address: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let name = name.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let body = describe(&name, &req);
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(local)
}

fn describe(name: &str, req: &Request<Incoming>) -> String {
    let header = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    };
    format!(
        "hello from {name}: {} {} (host={}, x-forwarded-for={}, via={})\n",
        req.method(),
        req.uri(),
        header("host"),
        header("x-forwarded-for"),
        header("via"),
    )
}
