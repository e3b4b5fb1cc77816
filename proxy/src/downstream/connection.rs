//! One downstream connection after its accept (and TLS handshake): the protocol sniff, then hyper's
//! HTTP/2 connection, or HTTP/1.x stretches one after another with parking between them
//! ([`crate::downstream::park`]), each served by the own HTTP/1.x server
//! ([`crate::downstream::h1`]) and by hyper's from the first request the own server leaves to it. The connection obeys its [`Closing`] word, given by the watcher
//! ([`crate::downstream::watcher`]).

use crate::downstream::answer::{answer, Ctx};
use crate::downstream::body::ClientBody;
use crate::downstream::closing::{Ask, Closing};
use crate::downstream::h1;
use crate::downstream::head_watch::Answered;
use crate::downstream::idle::Activity;
use crate::downstream::park::Socket;
use crate::downstream::rewind::Rewind;
use crate::downstream::sniff::{sniff, Protocol};
use crate::downstream::watcher::Registration;
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
    /// The own HTTP/1.x server's limits on request heads.
    pub(crate) heads: h1::HeadLimits,
}

/// A connection's task: hyper's state, boxed, while it serves, and only its socket while it is
/// parked between requests.
///
/// Every open connection holds this for as long as it lives, parked or not, so it is kept small by
/// hand (an `async fn` would hold its arguments and every local of every state at once): its
/// active stretches (the protocol sniff, then hyper's HTTP/2 connection or one HTTP/1.x connection
/// until it parks) are boxed apart, and what a parked connection needs is the socket, its word,
/// the request context and the builders to start hyper again.
pub(crate) struct Connection<S> {
    state: State<S>,
    builders: Arc<Builders>,
    ctx: Ctx,
    closing: Arc<Closing>,
    _watched: Registration,
}

/// One active stretch of a connection: it ends with the socket back when the connection parks.
type Stretch<S> = Pin<Box<dyn Future<Output = Option<Rewind<S>>> + Send>>;

enum State<S> {
    /// The sniff or hyper serving.
    Active(Stretch<S>),
    /// Between requests: waiting for the socket to become readable.
    Parked(Rewind<S>),
    /// Ended.
    Done,
}

impl<S: Socket> Connection<S> {
    /// Serves the connection on `socket` until it ends or is told to close; `watched` is its place
    /// in the watcher, left when the connection ends.
    pub(crate) fn new(
        builders: Arc<Builders>,
        socket: S,
        ctx: Ctx,
        closing: Arc<Closing>,
        watched: Registration,
    ) -> Self {
        let start = Box::pin(start(
            builders.clone(),
            Rewind::new(socket).parking_with(closing.clone()),
            ctx.clone(),
            closing.clone(),
        ));
        Connection {
            state: State::Active(start),
            builders,
            ctx,
            closing,
            _watched: watched,
        }
    }

    /// An HTTP/1.x stretch on `io`, after a park.
    fn resume(&self, io: Rewind<S>) -> Stretch<S> {
        let (builders, ctx, closing) = (
            self.builders.clone(),
            self.ctx.clone(),
            self.closing.clone(),
        );
        Box::pin(async move { http1(&builders, io, &ctx, &closing).await })
    }
}

impl<S: Socket> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let io = match &mut this.state {
                State::Active(stretch) => match stretch.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => break,
                    Poll::Ready(Some(io)) if io.has_prefix() => io,
                    Poll::Ready(Some(io)) => {
                        this.state = State::Parked(io);
                        continue;
                    }
                },
                State::Parked(io) => {
                    if this.closing.poll(cx) != Ask::Nothing {
                        break;
                    }
                    match io.get_ref().poll_read_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(_)) => break,
                        Poll::Ready(Ok(())) => {
                            match std::mem::replace(&mut this.state, State::Done) {
                                State::Parked(io) => io,
                                _ => break,
                            }
                        }
                    }
                }
                State::Done => break,
            };
            this.closing.unparked();
            this.state = State::Active(this.resume(io));
        }
        this.state = State::Done;
        Poll::Ready(())
    }
}

/// A connection's first stretch: the protocol sniff, then HTTP/2 until the connection ends, or
/// HTTP/1.x until it ends or parks.
async fn start<S: Socket>(
    builders: Arc<Builders>,
    mut io: Rewind<S>,
    ctx: Ctx,
    closing: Arc<Closing>,
) -> Option<Rewind<S>> {
    let peer = ctx.1.peer;
    // Waiting for its first bytes is as good as parked: no park word needed.
    closing.parking(true);
    let protocol = match until_closed(&closing, sniff(&mut io)).await {
        Some(Ok(Some(p))) => p,
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection ended before its first request");
            return None;
        }
        Some(Ok(None)) | None => return None,
    };
    closing.unparked();
    if protocol == Protocol::Http2 {
        ctx.2 .0.exempt.store(true, Relaxed);
        http2(&builders, io, &ctx, &closing).await;
        return None;
    }
    http1(&builders, io, &ctx, &closing).await
}

/// An HTTP/2 connection, until it ends or is told to close.
async fn http2<S: Socket>(builders: &Builders, io: Rewind<S>, ctx: &Ctx, closing: &Closing) {
    let peer = ctx.1.peer;
    let conn = builders.http2.serve_connection(
        TokioIo::new(io),
        service(ctx, |ctx, req| Box::pin(answer(ctx, req))),
    );
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

/// One active stretch of an HTTP/1.x connection: the own server ([`crate::downstream::h1`]) serves
/// requests until the connection ends (`None`) or parks (its socket back); a request it leaves to
/// hyper is served by hyper's connection, until that one ends or parks.
async fn http1<S: Socket>(
    builders: &Builders,
    io: Rewind<S>,
    ctx: &Ctx,
    closing: &Closing,
) -> Option<Rewind<S>> {
    match h1::serve(io, ctx, closing, builders.heads).await {
        h1::Ended::Park(io) => {
            closing.parking(true);
            tracing::trace!(peer = %ctx.1.peer, "parked");
            Some(io)
        }
        h1::Ended::Closed => None,
        // Boxed: hyper's connection is large and rarely needed.
        h1::Ended::Hyper(io) => Box::pin(hyper_http1(builders, io, ctx, closing)).await,
    }
}

/// hyper's HTTP/1.x connection: it serves requests until the connection ends (`None`) or parks (its
/// socket back, with what hyper had read of a next request put back).
async fn hyper_http1<S: Socket>(
    builders: &Builders,
    io: Rewind<S>,
    ctx: &Ctx,
    closing: &Closing,
) -> Option<Rewind<S>> {
    let peer = ctx.1.peer;
    let mut conn = builders
        .http1
        .serve_connection(TokioIo::new(io), service(ctx, answer))
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

/// The request service of a connection: each request answered by [`answer`], its future made by
/// `future` (for HTTP/1.x, `answer` itself: hyper's dispatcher keeps the future in place; for
/// HTTP/2, boxed: hyper moves each stream's future into a task of its own, which copies it whole
/// twice and once more as it ends, and a box makes those copies a pointer's instead of the
/// request's few kilobytes of state: callgrind 39.7k → 37.1k instructions per request at one stream
/// per connection).
fn service<W, Fut>(
    ctx: &Ctx,
    future: W,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = http::Response<Answered>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
       + Sync
       + Unpin
       + 'static
where
    W: Fn(Ctx, Request<ClientBody>) -> Fut + Copy + Send + Sync + Unpin + 'static,
    Fut: Future<Output = Result<http::Response<Answered>, Infallible>> + Send + 'static,
{
    let ctx = ctx.clone();
    service_fn(move |req: Request<Incoming>| future(ctx.clone(), req.map(ClientBody::Hyper)))
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
