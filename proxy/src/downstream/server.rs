//! Downstream serving: the accept loop of a listener and the start of each connection.
//!
//! HTTP/1.1 and HTTP/2 are both accepted on every listener (the client's first bytes tell which,
//! [`crate::downstream::sniff`]; on TLS listeners the client chose by ALPN, and TLS is terminated
//! first, see [`crate::downstream::tls`]). Limits: at most `max_connections` open connections (the
//! accept loop waits for a free slot, leaving further clients in the kernel's backlog, as HAProxy's
//! maxconn does, while idle keep-alive connections close to make room, [`crate::downstream::shed`]);
//! request headers bounded in size (431) and in read time (slowloris); connections without traffic
//! closed after the idle timeout ([`crate::downstream::watcher`]). A connection is served by
//! [`crate::downstream::connection`].

use crate::downstream::closing::Closing;
use crate::downstream::connection::{Builders, Connection};
use crate::downstream::idle::{Activity, Tracked};
pub(crate) use crate::downstream::lifecycle::{ConnHold, Phase};
use crate::downstream::park::Socket;
use crate::downstream::shed::Shed;
use crate::downstream::watcher::Watcher;
use crate::request::shared::ConnInfo;
use crate::request::shared::Shared;
use edgeplane_config::model::{Limits, NodeTimeouts};
use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// A TLS connection's socket.
type Tls = tokio_rustls::server::TlsStream<Tracked<TcpStream>>;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};

/// Everything a listener needs to serve connections.
#[derive(Clone)]
pub(crate) struct Server {
    shared: Arc<Shared>,
    builders: Arc<Builders>,
    timeouts: NodeTimeouts,
    slots: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
    open: Arc<AtomicUsize>,
    shed: Arc<Shed>,
    watcher: Arc<Watcher>,
}

impl Server {
    /// A server with the node's limits; `slots` counts open connections across all listeners.
    pub(crate) fn new(
        shared: Arc<Shared>,
        limits: Limits,
        timeouts: NodeTimeouts,
        slots: Arc<Semaphore>,
        phase: watch::Receiver<Phase>,
    ) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            // The request-head deadline is kept by the watcher (crate::downstream::head_watch):
            // hyper's would register a timer for every request.
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes)
            .max_headers(limits.max_headers)
            .keep_alive(true);
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32);
        let shed = Arc::new(Shed::default());
        Server {
            shared,
            builders: Arc::new(Builders {
                http1,
                http2,
                heads: crate::downstream::h1::HeadLimits {
                    max_bytes: limits.max_header_bytes,
                    max_headers: limits.max_headers,
                },
            }),
            timeouts,
            slots,
            open: Arc::default(),
            watcher: Watcher::new(timeouts, shed.clone(), phase.clone()),
            phase,
            shed,
        }
    }

    /// The task that watches every connection of this server's listeners (idle timeout, head
    /// deadline, draining, shedding, parking); ends when the node closes its connections.
    pub(crate) fn watch(&self) -> impl Future<Output = ()> + Send + 'static {
        self.watcher.clone().run()
    }

    /// Accepts connections until the node leaves [`Phase::Running`]; with `tls`, each one starts
    /// with a TLS handshake.
    pub(crate) async fn serve(
        self,
        listener: TcpListener,
        name: Arc<str>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let mut phase = self.phase.clone();
        let mut logged = None;
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        self.accept_failed(&name, &e, &mut logged).await;
                        continue;
                    }
                },
                () = stopped(&mut phase) => break,
            };
            // A slot for the client just accepted; at the limit, it waits for one (the accept loop
            // with it, leaving further clients in the backlog) while an idle keep-alive connection
            // makes room (crate::downstream::shed).
            let permit = match self.slots.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(TryAcquireError::Closed) => break,
                Err(TryAcquireError::NoPermits) => {
                    self.shed.ask();
                    let p = tokio::select! {
                        p = self.slots.clone().acquire_owned() => p,
                        () = stopped(&mut phase) => break,
                    };
                    self.shed.settle();
                    match p {
                        Ok(p) => p,
                        Err(_) => break,
                    }
                }
            };
            self.connection(stream, peer, permit, tls.as_ref());
        }
        tracing::debug!(listener = %name, "stopped accepting");
    }

    /// Downstream connections parked at the watcher's last sweep, across this server's listeners.
    pub(crate) fn parked_connections(&self) -> Arc<AtomicUsize> {
        self.watcher.parked()
    }

    /// Downstream connections open now, across this server's listeners.
    pub(crate) fn open_connections(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    /// An accept failed (out of file descriptors, typically: `EMFILE`, `ENFILE`): logged at most once
    /// a second, and the loop backs off briefly instead of spinning.
    ///
    /// Closing an idle keep-alive connection to free a descriptor, as at the connection limit, was
    /// tried and withdrawn: a connection just accepted counts as idle until its first request is
    /// read, and closing it with that request unread resets the client.
    async fn accept_failed(
        &self,
        listener: &str,
        error: &std::io::Error,
        logged: &mut Option<std::time::Instant>,
    ) {
        if logged.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1)) {
            tracing::warn!(listener, %error, "accept failed");
            *logged = Some(std::time::Instant::now());
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    /// Starts serving a connection just accepted: its task's future is a [`Connection`], which keeps
    /// only what the connection needs for its life; a TLS connection's handshake is boxed in it.
    fn connection(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        tls: Option<&tokio_rustls::TlsAcceptor>,
    ) {
        let hold = Arc::new(ConnHold::new(slot, self.open.clone(), self.phase.clone()));
        let _ = stream.set_nodelay(true);
        let activity = Activity::default();
        let tracked = Tracked::new(stream, activity.clone(), self.shared.bytes.clone());
        let client_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        let closing = Arc::new(Closing::default());
        let Some(acceptor) = tls.cloned() else {
            let watched =
                self.watcher
                    .register(&activity, &closing, Tracked::<TcpStream>::PARKABLE);
            let info = ConnInfo {
                client_ip,
                peer,
                proto: HeaderValue::from_static("http"),
                hold,
            };
            let ctx = Arc::new((self.shared.clone(), info, activity));
            tokio::spawn(Connection::new(
                self.builders.clone(),
                tracked,
                ctx,
                closing,
                watched,
            ));
            return;
        };
        let (builders, shared, watcher) = (
            self.builders.clone(),
            self.shared.clone(),
            self.watcher.clone(),
        );
        let header_read = self.timeouts.header_read;
        tokio::spawn(Box::pin(async move {
            // The handshake gets the header read timeout: a client that stalls it holds a slot no
            // longer.
            let stream = match tokio::time::timeout(header_read, acceptor.accept(tracked)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let watched = watcher.register(&activity, &closing, Tls::PARKABLE);
            let info = ConnInfo {
                client_ip,
                peer,
                proto: HeaderValue::from_static("https"),
                hold,
            };
            let ctx = Arc::new((shared, info, activity));
            Connection::new(builders, stream, ctx, closing, watched).await;
        }));
    }
}

/// Resolves once the node leaves [`Phase::Running`] (or the node is gone).
async fn stopped(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Running).await.map(|_| ());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open connection holds its task for as long as it lives, parked or not. tokio 1.54's
    /// task is a 32-byte header, the scheduler and task id (16), the future behind an 8-byte stage
    /// tag, and a 48-byte trailer, aligned to 128 bytes on x86-64 and aarch64: a future of at most
    /// 152 bytes keeps a connection's task within 256 bytes (the next step is 384).
    #[test]
    fn a_connection_is_a_small_future() {
        let size = std::mem::size_of::<Connection<Tracked<TcpStream>>>();
        assert!(size <= 152, "a connection's future is {size} bytes");
    }
}
