//! An upstream connection: HTTP/1.1 or HTTP/2, cleartext or TLS, and its place in the cluster's
//! connection count. A cleartext connection starts on edgeplane's own HTTP/1.1 client ([`crate::upstream::h1`])
//! and is handed to hyper's client for good when a request needs it (a streamed body, an upgrade). HTTP/2 connections are shared: every clone of a [`Sender`] multiplexes on the
//! same connection, which closes (and frees its place) when the last clone goes.

use crate::error::{ConnectCause, ProxyError};
use crate::request::request_body::RequestBody;
use crate::upstream::cluster_state::ConnSlot;
use crate::upstream::h1;
use crate::upstream::tls::TlsClient;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{header, Request, Uri, Version};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// A request sender on one upstream connection.
#[derive(Debug)]
pub(crate) struct Sender {
    inner: Inner,
    slot: Arc<ConnSlot>,
}

#[derive(Debug)]
enum Inner {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
    /// A cleartext connection of edgeplane's own HTTP/1.1 client ([`crate::upstream::h1`]).
    H1Client(Box<h1::Conn>),
}

impl Sender {
    /// Waits until the connection can take a request; an error means it is gone.
    pub(crate) async fn ready(&mut self) -> hyper::Result<()> {
        match &mut self.inner {
            Inner::H1(s) => s.ready().await,
            Inner::H2(s) => s.ready().await,
            Inner::H1Client(_) => Ok(()),
        }
    }

    /// Whether the connection is closed.
    pub(crate) fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::H1(s) => s.is_closed(),
            Inner::H2(s) => s.is_closed(),
            Inner::H1Client(c) => c.is_closed(),
        }
    }

    /// Whether this is a shared HTTP/2 connection.
    pub(crate) fn is_h2(&self) -> bool {
        matches!(self.inner, Inner::H2(_))
    }

    /// Another sender on the same HTTP/2 connection.
    pub(crate) fn share(&self) -> Option<Sender> {
        match &self.inner {
            Inner::H2(s) => Some(Sender {
                inner: Inner::H2(s.clone()),
                slot: self.slot.clone(),
            }),
            Inner::H1(_) | Inner::H1Client(_) => None,
        }
    }

    /// The own HTTP/1.1 connection, if this is one.
    pub(crate) fn h1_client(&self) -> Option<&h1::Conn> {
        match &self.inner {
            Inner::H1Client(c) => Some(c),
            _ => None,
        }
    }

    /// The own HTTP/1.1 connection, if this is one.
    pub(crate) fn h1_client_mut(&mut self) -> Option<&mut h1::Conn> {
        match &mut self.inner {
            Inner::H1Client(c) => Some(c),
            _ => None,
        }
    }

    /// This connection driven by hyper's HTTP/1.1 client from now on (for a request the h1 client
    /// does not take: a streamed body, an upgrade). Other connections are returned as they are.
    pub(crate) async fn into_hyper(self, address: SocketAddr) -> Result<Sender, ProxyError> {
        match self.inner {
            Inner::H1Client(c) => match c.into_io() {
                Some(io) => h1(TokioIo::new(io), address, self.slot).await,
                None => Err(ProxyError::Connect(
                    ConnectCause::Other,
                    "connection holds unread bytes".into(),
                )),
            },
            inner => Ok(Sender {
                inner,
                slot: self.slot,
            }),
        }
    }

    /// Wakes a request of the cluster waiting for a connection slot (this one went idle).
    pub(crate) fn notify(&self) {
        self.slot.notify();
    }

    /// The protocol's own sender (an HTTP/2 request must go through [`to_h2`] first).
    pub(crate) fn protocol(&mut self) -> Protocol<'_> {
        match &mut self.inner {
            Inner::H1(s) => Protocol::H1(s),
            Inner::H2(s) => Protocol::H2(s),
            Inner::H1Client(c) => Protocol::H1Client(c),
        }
    }
}

/// A connection's sender by protocol.
#[derive(Debug)]
pub(crate) enum Protocol<'a> {
    /// HTTP/1.1.
    H1(&'a mut http1::SendRequest<RequestBody>),
    /// HTTP/2.
    H2(&'a mut http2::SendRequest<RequestBody>),
    /// HTTP/1.1 by edgeplane's own client.
    H1Client(&'a mut h1::Conn),
}

/// An HTTP/1.1-shaped upstream request made fit for HTTP/2: version 2, the authority from `Host`
/// into the target (`:authority`), no `Host` header, scheme `https` over TLS else `http` (h2c).
pub(crate) fn to_h2(mut req: Request<RequestBody>, tls: bool) -> Request<RequestBody> {
    *req.version_mut() = Version::HTTP_2;
    let authority = req
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok());
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
    if parts.authority.is_none() {
        parts.authority = authority;
    }
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

/// Opens a connection to `address` (TCP_NODELAY; the TCP connect and the TLS handshake each within
/// `timeout`), holding `slot` for its life: HTTP/1.1, or HTTP/2 when `tls` offered it and the
/// endpoint agreed, or cleartext HTTP/2 with prior knowledge (`h2c`, without TLS).
pub(crate) async fn connect(
    address: SocketAddr,
    timeout: Duration,
    slot: ConnSlot,
    tls: Option<&TlsClient>,
    h2c: bool,
) -> Result<Sender, ProxyError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            let cause = ConnectCause::of(&e);
            if cause == ConnectCause::Local {
                slot.give_back_quietly();
            }
            return Err(ProxyError::Connect(cause, e.to_string()));
        }
        Err(_) => {
            return Err(ProxyError::Connect(
                ConnectCause::TimedOut,
                format!("timed out after {timeout:?}"),
            ))
        }
    };
    let _ = stream.set_nodelay(true);
    let slot = Arc::new(slot);
    let Some(tls) = tls else {
        if h2c {
            return http2_conn(TokioIo::new(stream), address, slot).await;
        }
        return Ok(Sender {
            inner: Inner::H1Client(Box::new(h1::Conn::new(stream))),
            slot,
        });
    };
    let (stream, h2) = match tokio::time::timeout(timeout, tls.connect(stream, address)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return Err(ProxyError::Connect(
                ConnectCause::Other,
                format!("TLS: {e}"),
            ))
        }
        Err(_) => {
            return Err(ProxyError::Connect(
                ConnectCause::Other,
                format!("TLS handshake timed out after {timeout:?}"),
            ))
        }
    };
    if !h2 {
        return h1(TokioIo::new(stream), address, slot).await;
    }
    http2_conn(TokioIo::new(stream), address, slot).await
}

async fn http2_conn<I>(
    io: I,
    address: SocketAddr,
    slot: Arc<ConnSlot>,
) -> Result<Sender, ProxyError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (send, conn) = http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .handshake(io)
        .await
        .map_err(|e| ProxyError::Connect(ConnectCause::Other, e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%address, error = %e, "upstream h2 connection ended with an error");
        }
    });
    Ok(Sender {
        inner: Inner::H2(send),
        slot,
    })
}

async fn h1<I>(io: I, address: SocketAddr, slot: Arc<ConnSlot>) -> Result<Sender, ProxyError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (send, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|e| ProxyError::Connect(ConnectCause::Other, e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(%address, error = %e, "upstream connection ended with an error");
        }
    });
    Ok(Sender {
        inner: Inner::H1(send),
        slot,
    })
}
