//! A real TLS client: rustls trusting the test CA, with SNI and ALPN chosen by the test, then HTTP/1.1
//! or HTTP/2 by what ALPN agreed.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a TLS request saw.
#[derive(Debug)]
pub struct TlsReply {
    /// The response status.
    pub status: StatusCode,
    /// The `x-backend` header.
    pub backend: String,
    /// The protocol ALPN agreed on, if any.
    pub alpn: Option<String>,
    /// The server's leaf certificate (DER).
    pub peer_cert: Vec<u8>,
}

/// An open TLS connection speaking HTTP/1.1 or HTTP/2, by what ALPN agreed.
pub struct TlsConn {
    sender: Sender,
    sni: String,
    /// The protocol ALPN agreed on, if any.
    pub alpn: Option<String>,
    /// The server's leaf certificate (DER).
    pub peer_cert: Vec<u8>,
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl TlsConn {
    /// Connects to `addr` with SNI `sni`, trusting `ca_pem`, offering `alpn` (10 s limit).
    pub async fn open(
        addr: SocketAddr,
        sni: &str,
        ca_pem: &str,
        alpn: &[&str],
    ) -> Result<TlsConn, String> {
        tokio::time::timeout(Duration::from_secs(10), open(addr, sni, ca_pem, alpn))
            .await
            .map_err(|_| "timed out".to_string())?
    }

    /// GET / on this connection (10 s limit): the status and `x-backend`.
    pub async fn get(&mut self) -> Result<(StatusCode, String), String> {
        tokio::time::timeout(Duration::from_secs(10), self.get_inner())
            .await
            .map_err(|_| "timed out".to_string())?
    }

    async fn get_inner(&mut self) -> Result<(StatusCode, String), String> {
        let resp = match &mut self.sender {
            Sender::H2(send) => {
                let req = Request::get(format!("https://{}/", self.sni))
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                send.send_request(req).await.map_err(|e| e.to_string())?
            }
            Sender::H1(send) => {
                send.ready().await.map_err(|e| e.to_string())?;
                let req = Request::get("/")
                    .header(http::header::HOST, self.sni.as_str())
                    .body(Empty::<Bytes>::new())
                    .map_err(|e| e.to_string())?;
                send.send_request(req).await.map_err(|e| e.to_string())?
            }
        };
        let status = resp.status();
        let backend = resp
            .headers()
            .get("x-backend")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        resp.into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((status, backend))
    }
}

/// Connects to `addr` with SNI `sni`, trusting `ca_pem`, offering `alpn`, and sends GET / with Host
/// `sni` (10 s limit).
pub async fn tls_request(
    addr: SocketAddr,
    sni: &str,
    ca_pem: &str,
    alpn: &[&str],
) -> Result<TlsReply, String> {
    let mut conn = TlsConn::open(addr, sni, ca_pem, alpn).await?;
    let (status, backend) = conn.get().await?;
    Ok(TlsReply {
        status,
        backend,
        alpn: conn.alpn,
        peer_cert: conn.peer_cert,
    })
}

async fn open(addr: SocketAddr, sni: &str, ca_pem: &str, alpn: &[&str]) -> Result<TlsConn, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from(sni.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let peer_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let io = TokioIo::new(tls);
    let sender = if alpn.as_deref() == Some("h2") {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Sender::H2(send)
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Sender::H1(send)
    };
    Ok(TlsConn {
        sender,
        sni: sni.to_string(),
        alpn,
        peer_cert,
    })
}
