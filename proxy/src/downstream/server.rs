//! Downstream serving: the accept loop of a listener and the life of each connection.
//!
//! HTTP/1.1 and HTTP/2 are both accepted on every listener (hyper-util's auto builder sniffs the
//! preface; on TLS listeners the client chose by ALPN, and TLS is terminated first, see [`crate::downstream::tls`]). Limits: at most `max_connections` open connections (the accept loop waits for a free
//! slot, leaving further clients in the kernel's backlog, as HAProxy's maxconn does, while idle
//! keep-alive connections close to make room, [`crate::downstream::shed`]); request headers
//! bounded in size (431) and in read time (slowloris); connections without traffic closed after the
//! idle timeout.

use crate::downstream::closing::{Ask, Closing};
use crate::downstream::head_watch::{Answering, HeadWatch};
use crate::downstream::idle::{Activity, Tracked};
pub(crate) use crate::downstream::lifecycle::{ConnHold, Phase};
use crate::downstream::shed::Shed;
use crate::request::forward;
use crate::request::shared::ConnInfo;
use crate::request::shared::Shared;
use edgeplane_config::model::{Limits, NodeTimeouts};
use http::{HeaderValue, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::{Instant, MissedTickBehavior};

/// Everything a listener needs to serve connections.
#[derive(Clone)]
pub(crate) struct Server {
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    timeouts: NodeTimeouts,
    slots: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
    open: Arc<AtomicUsize>,
    shed: Arc<Shed>,
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
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // The request-head deadline is kept by each connection's supervisor (crate::downstream::head_watch):
            // hyper's would register a timer for every request.
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes)
            .max_headers(limits.max_headers)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(limits.max_header_bytes as u32);
        Server {
            shared,
            builder: Arc::new(builder),
            timeouts,
            slots,
            open: Arc::default(),
            phase,
            shed: Arc::default(),
        }
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
        loop {
            let (stream, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(listener = %name, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
            tokio::spawn(self.clone().connection(stream, peer, permit, tls.clone()));
        }
        tracing::debug!(listener = %name, "stopped accepting");
    }

    /// Downstream connections open now, across this server's listeners.
    pub(crate) fn open_connections(&self) -> Arc<AtomicUsize> {
        self.open.clone()
    }

    async fn connection(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) {
        let hold = Arc::new(ConnHold::new(slot, self.open.clone(), self.phase.clone()));
        let _ = stream.set_nodelay(true);
        let activity = Activity::default();
        let tracked = Tracked::new(stream, activity.clone(), self.shared.bytes.clone());
        let client_ip = HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        let Some(acceptor) = tls else {
            let info = ConnInfo {
                client_ip,
                proto: HeaderValue::from_static("http"),
                hold,
            };
            return self
                .drive(TokioIo::new(tracked), info, activity, peer)
                .await;
        };
        // The handshake gets the header read timeout: a client that stalls it holds a slot no longer.
        let stream =
            match tokio::time::timeout(self.timeouts.header_read, acceptor.accept(tracked)).await {
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
        let info = ConnInfo {
            client_ip,
            proto: HeaderValue::from_static("https"),
            hold,
        };
        self.drive(TokioIo::new(stream), info, activity, peer).await;
    }

    /// Serves HTTP/1.1 or HTTP/2 (by the client's preface, which follows ALPN's choice on TLS) on an
    /// established connection until it ends, the node drains, or it idles out.
    async fn drive<I>(self, io: I, info: ConnInfo, activity: Activity, peer: SocketAddr)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        // One Arc per connection, so a request clones one reference count, not two.
        let ctx = Arc::new((self.shared.clone(), info, activity.clone()));
        let service = service_fn(move |req: Request<Incoming>| {
            let ctx = ctx.clone();
            async move {
                let answering = Answering::start(&ctx.2, req.version());
                let resp = forward::handle(&ctx.0, &ctx.1, req).await;
                Ok::<_, Infallible>(answering.respond(resp))
            }
        });
        let conn = self.builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        // Idle and drain decisions are made by a supervisor task, so that the connection's own task,
        // woken for every request, only loads one atomic besides polling the connection.
        let closing = Arc::new(Closing::default());
        let (ended, ended_rx) = oneshot::channel::<()>();
        tokio::spawn(supervise(
            activity,
            self.timeouts,
            self.phase.clone(),
            (closing.clone(), self.shed.clone()),
            ended_rx,
            peer,
        ));
        let mut graceful = false;
        std::future::poll_fn(|cx| loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return Poll::Ready(());
            }
            match closing.poll(cx) {
                Ask::Now => return Poll::Ready(()),
                Ask::Graceful if !graceful => {
                    // Polled again at once: a connection between requests closes right away.
                    graceful = true;
                    conn.as_mut().graceful_shutdown();
                }
                Ask::Graceful | Ask::Nothing => return Poll::Pending,
            }
        })
        .await;
        // Tells the supervisor the connection is gone.
        drop(ended);
    }
}

/// Watches one connection: asks it to close gracefully when the node drains (an idle HTTP/1.x one
/// once it has been quiet for [`DRAIN_QUIET`]) or the connection has been idle for `idle`, and to close now when the node closes, when it is still silent one `idle` later
/// (e.g. an upstream stalled mid-body), or when a request head is overdue (`header_read`, see
/// [`crate::downstream::head_watch`]). Ends when the connection does.
async fn supervise(
    activity: Activity,
    timeouts: NodeTimeouts,
    mut phase: watch::Receiver<Phase>,
    (closing, shed): (Arc<Closing>, Arc<Shed>),
    mut ended: oneshot::Receiver<()>,
    peer: SocketAddr,
) {
    let mut asked_graceful = false;
    // Whether to answer the accept loop's asks for room before the next tick.
    let mut look = true;
    let mut watchdog = activity.watchdog(timeouts.idle);
    let mut head = HeadWatch::new(timeouts.header_read, Instant::now());
    // One sampling tick serves both: a quarter of the idle timeout, an eighth of the head deadline.
    let period = (timeouts.idle / 4)
        .min(timeouts.header_read / 8)
        .max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut drain = None;
    loop {
        let ask_graceful = tokio::select! {
            _ = &mut ended => return,
            changed = phase.changed() => match changed.map(|()| *phase.borrow_and_update()) {
                Ok(Phase::Running) => continue,
                Ok(Phase::Draining) => {
                    let c = &activity.0;
                    c.draining.store(true, Ordering::Relaxed);
                    if c.exempt.load(Ordering::Relaxed) {
                        // HTTP/2 gets a GOAWAY.
                        true
                    } else {
                        // HTTP/1.x: closing without telling the client could cross its next
                        // request on the wire, even after the request being answered now (whose
                        // head may be out already, without `Connection: close`). The next answer
                        // says `Connection: close`; a connection quiet for a while closes.
                        drain = Some(drain_watch(&activity));
                        continue;
                    }
                }
                Ok(Phase::Closing) | Err(_) => false,
            },
            quiet = drain_tick(&mut drain), if !asked_graceful => {
                if quiet && activity.0.idle() {
                    tracing::debug!(%peer, "idle connection closed while draining");
                    true
                } else {
                    continue;
                }
            }
            () = shed.asked(), if look && !asked_graceful => {
                if shed.take_if_idle(&activity.0) {
                    tracing::debug!(%peer, "idle connection closed to make room at the connection limit");
                    true
                } else {
                    // Not idle: look again at the next tick, not at once.
                    look = false;
                    continue;
                }
            }
            at = tick.tick() => {
                look = true;
                if !asked_graceful && shed.take_if_idle(&activity.0) {
                    tracing::debug!(%peer, "idle connection closed to make room at the connection limit");
                    true
                } else if head.overdue_at(&activity.0, at) {
                    tracing::debug!(%peer, "request head not received in time");
                    false
                } else if watchdog.expired_at(at) {
                    tracing::debug!(%peer, closing = asked_graceful, "connection idle");
                    !asked_graceful
                } else {
                    continue;
                }
            }
        };
        if ask_graceful {
            if !asked_graceful {
                asked_graceful = true;
                closing.ask(Ask::Graceful);
            }
        } else {
            closing.ask(Ask::Now);
            return;
        }
    }
}

/// How long an idle HTTP/1.x connection of a draining node must have been quiet before it closes.
const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// The sampling of an idle connection while the node drains: a tick every quarter of [`DRAIN_QUIET`].
fn drain_watch(activity: &Activity) -> (tokio::time::Interval, crate::downstream::idle::Watchdog) {
    let period = DRAIN_QUIET / 4;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    (tick, activity.watchdog(DRAIN_QUIET))
}

/// The next drain sample: whether the connection has been quiet for [`DRAIN_QUIET`]; never resolves
/// while the node is not draining.
async fn drain_tick(
    drain: &mut Option<(tokio::time::Interval, crate::downstream::idle::Watchdog)>,
) -> bool {
    match drain {
        Some((tick, quiet)) => {
            let at = tick.tick().await;
            quiet.expired_at(at)
        }
        None => std::future::pending().await,
    }
}

/// Resolves once the node leaves [`Phase::Running`] (or the node is gone).
async fn stopped(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Running).await.map(|_| ());
}
