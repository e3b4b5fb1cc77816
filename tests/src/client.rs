//! Real clients: hyper's pooled client (HTTP/1.1 or HTTP/2 prior knowledge) and raw TCP for malformed
//! requests.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client as Legacy};
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A collected response.
#[derive(Debug)]
pub struct Resp {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Whole body as text.
    pub body: String,
    /// Whole body as received.
    pub bytes: Bytes,
}

impl Resp {
    /// A header as text, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP client for one node address.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    inner: Legacy<HttpConnector, BoxBody<Bytes, Infallible>>,
}

impl Client {
    /// An HTTP/1.1 keep-alive client.
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            inner: Legacy::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// An HTTP/2 client (prior knowledge, cleartext).
    pub fn h2(addr: SocketAddr) -> Client {
        Client {
            addr,
            inner: Legacy::builder(TokioExecutor::new())
                .http2_only(true)
                .build(HttpConnector::new()),
        }
    }

    /// A request builder for `path` on the node, with `host` as Host.
    pub fn request(&self, host: &str, path: &str) -> http::request::Builder {
        Request::get(format!("http://{}{}", self.addr, path)).header(http::header::HOST, host)
    }

    /// Sends a request and collects the response (10 s limit).
    pub async fn send(&self, req: Request<BoxBody<Bytes, Infallible>>) -> Result<Resp, String> {
        let fut = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| format!("{e:?}"))?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Resp {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                bytes: body,
            })
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| "request timed out".to_string())?
    }

    /// GET `path` with `host`; an error (transport, timeout) is returned, not a panic.
    pub async fn try_get(&self, host: &str, path: &str) -> Result<Resp, String> {
        let req = self
            .request(host, path)
            .body(Empty::new().boxed())
            .map_err(|e| e.to_string())?;
        self.send(req).await
    }

    /// GET `path` with Host `host`.
    pub async fn get(&self, host: &str, path: &str) -> Resp {
        let req = self.request(host, path).body(Empty::new().boxed()).unwrap();
        self.send(req).await.unwrap()
    }
}

/// Writes `raw` bytes on a new connection and reads until the peer closes or 5 s pass.
pub async fn raw_request(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
