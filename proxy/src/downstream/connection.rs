//! One downstream connection after its accept (and TLS handshake): the protocol sniff, then hyper's
//! HTTP/2 connection, or HTTP/1.x connections one after another with parking between them
//! ([`crate::downstream::park`]). The connection obeys its [`Closing`] word, given by the watcher
//! ([`crate::downstream::watcher`]).

use crate::downstream::closing::{Ask, Closing};
use crate::downstream::head_watch::{Answered, Answering};
use crate::downstream::idle::Activity;
use crate::downstream::park::Socket;
use crate::downstream::rewind::Rewind;
use crate::downstream::sniff::{sniff, Protocol};
use crate::request::forward;
use crate::request::shared::{ConnInfo, Shared};
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;

/// hyper's builders for both protocols, configured with the node's limits.
pub(crate) struct Builders {
    pub(crate) http1: http1::Builder,
    pub(crate) http2: http2::Builder<TokioExecutor>,
}

/// What a request needs of its connection, in one Arc, so a request clones one reference count.
pub(crate) type Ctx = Arc<(Arc<Shared>, ConnInfo, Activity)>;

/// Serves the connection on `socket` until it ends or is told to close.
///
/// This is the future of the connection's task, alive as long as the connection: it keeps only what
/// a parked connection needs (the socket, its word, the request context), and each active stretch of
/// it, with hyper's state, is boxed.
pub(crate) async fn serve<S: Socket>(
    builders: Arc<Builders>,
    socket: S,
    ctx: Ctx,
    closing: Arc<Closing>,
    peer: SocketAddr,
) {
    let mut io = Rewind::new(socket).parking_with(closing.clone());
    // Waiting for its first bytes is as good as parked: no park word needed.
    closing.parking(true);
    let protocol = match until_closed(&closing, sniff(&mut io)).await {
        Some(Ok(Some(p))) => p,
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended before its first request");
            return;
        }
        Some(Ok(None)) | None => return,
    };
    closing.unparked();
    if protocol == Protocol::Http2 {
        ctx.2 .0.exempt.store(true, Relaxed);
        return Box::pin(http2(&builders, io, &ctx, &closing, peer)).await;
    }
    loop {
        let active = Box::pin(http1(&builders, io, &ctx, &closing, peer));
        let Some(back) = active.await else {
            return;
        };
        io = back;
        if !io.has_prefix() {
            let readable = std::future::poll_fn(|cx| {
                if closing.poll(cx) != Ask::Nothing {
                    return Poll::Ready(false);
                }
                io.get_ref().poll_read_ready(cx).map(|r| r.is_ok())
            });
            if !readable.await {
                return;
            }
        }
        closing.unparked();
    }
}

/// An HTTP/2 connection, until it ends or is told to close.
async fn http2<S: Socket>(
    builders: &Builders,
    io: Rewind<S>,
    ctx: &Ctx,
    closing: &Closing,
    peer: SocketAddr,
) {
    let conn = builders
        .http2
        .serve_connection(TokioIo::new(io), service(ctx));
    let mut conn = std::pin::pin!(conn);
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
                graceful = true;
                conn.as_mut().graceful_shutdown();
            }
            Ask::Graceful | Ask::Nothing => return Poll::Pending,
        }
    })
    .await;
}

/// One active stretch of an HTTP/1.x connection: hyper serves requests until the connection ends
/// (`None`) or parks (its socket back, with what hyper had read of a next request put back).
async fn http1<S: Socket>(
    builders: &Builders,
    io: Rewind<S>,
    ctx: &Ctx,
    closing: &Closing,
    peer: SocketAddr,
) -> Option<Rewind<S>> {
    let mut conn = builders
        .http1
        .serve_connection(TokioIo::new(io), service(ctx))
        .with_upgrades();
    if !run_http1(&mut conn, closing, &ctx.2, peer).await {
        return None;
    }
    // None when the connection became a tunnel: the socket is the tunnel's.
    let parts = conn.into_parts()?;
    let mut io = parts.io.into_inner();
    io.put_back(parts.read_buf);
    tracing::trace!(%peer, "parked");
    Some(io)
}

/// Runs one hyper HTTP/1.x connection until it ends (false) or has parked (true).
async fn run_http1<I, Svc, B>(
    conn: &mut http1::UpgradeableConnection<I, Svc>,
    closing: &Closing,
    activity: &Activity,
    peer: SocketAddr,
) -> bool
where
    Svc: hyper::service::HttpService<Incoming, ResBody = B> + Unpin,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut graceful = false;
    let mut parking = false;
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(result) = Pin::new(&mut *conn).poll(cx) {
            if let Err(e) = &result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return Poll::Ready(parking && result.is_ok());
        }
        let (ask, park) = closing.poll_word(cx);
        match ask {
            Ask::Now => return Poll::Ready(false),
            Ask::Graceful if !graceful => {
                // Polled again at once: a connection between requests closes right away.
                graceful = true;
                Pin::new(&mut *conn).graceful_shutdown();
                continue;
            }
            Ask::Graceful | Ask::Nothing => {}
        }
        if park && !parking && !graceful {
            // Between two polls of hyper nothing moves: idle now means hyper closes at once.
            parking = activity.0.idle();
            closing.parking(parking);
            if parking {
                Pin::new(&mut *conn).graceful_shutdown();
                continue;
            }
        }
        return Poll::Pending;
    })
    .await
}

/// The request service of a connection.
fn service(
    ctx: &Ctx,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = http::Response<Answered>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
       + Sync
       + Unpin
       + 'static {
    let ctx = ctx.clone();
    service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move {
            let answering = Answering::start(&ctx.2, req.version());
            let resp = forward::handle(&ctx.0, &ctx.1, req).await;
            Ok::<_, Infallible>(answering.respond(resp))
        }
    })
}

/// `fut`'s output, or `None` once the connection is told to close (gracefully or now).
async fn until_closed<F: Future>(closing: &Closing, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        if closing.poll(cx) != Ask::Nothing {
            return Poll::Ready(None);
        }
        fut.as_mut().poll(cx).map(Some)
    })
    .await
}
