//! The response body the proxy sends downstream: an upstream body streamed frame by frame, or a short
//! body the proxy made itself.
//!
//! Streaming the upstream body is also where a request ends: when its last frame passes, the upstream
//! connection goes back to the pool and the endpoint's in-flight count drops. A body dropped before its
//! end (the client went away) drops the connection instead, since it is mid-message.

use crate::error::{ProxyError, ERROR_HEADER};
use crate::request::compress::CompressBody;
use crate::request::grpc_body::GrpcBody;
pub(crate) use crate::upstream::h1::body::BodyError;
use crate::upstream::h1::H1Body;
use crate::upstream::pool::Sender;
use crate::upstream::InFlight;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// A body sent to the client.
#[derive(Debug)]
pub(crate) enum ProxyBody {
    /// Streamed from an upstream through hyper's client.
    Upstream(UpstreamBody),
    /// Streamed from an upstream through edgeplane's own HTTP/1.1 client.
    H1Client(H1Body),
    /// Made by the proxy; `None` once sent.
    Local(Option<Bytes>),
    /// A gRPC call's answer, watched for its status.
    Grpc(Box<GrpcBody<ProxyBody>>),
    /// An answer compressed as it streams.
    Compressed(Box<CompressBody<ProxyBody>>),
}

impl Default for ProxyBody {
    fn default() -> Self {
        ProxyBody::empty()
    }
}

impl From<CompressBody<ProxyBody>> for ProxyBody {
    fn from(body: CompressBody<ProxyBody>) -> Self {
        ProxyBody::Compressed(Box::new(body))
    }
}

impl ProxyBody {
    /// A body made by the proxy.
    pub(crate) fn local(text: impl Into<Bytes>) -> Self {
        ProxyBody::Local(Some(text.into()))
    }

    /// No body.
    pub(crate) fn empty() -> Self {
        ProxyBody::Local(None)
    }
}

/// An upstream response body plus what to release when it ends.
#[derive(Debug)]
pub(crate) struct UpstreamBody {
    inner: Incoming,
    finish: Option<Finish>,
}

#[derive(Debug)]
struct Finish {
    sender: Sender,
    in_flight: InFlight,
}

impl UpstreamBody {
    /// Wraps `inner`; at its end, `sender` returns to the endpoint's pool and `in_flight` is released.
    pub(crate) fn new(inner: Incoming, sender: Sender, in_flight: InFlight) -> Self {
        let mut body = UpstreamBody {
            inner,
            finish: Some(Finish { sender, in_flight }),
        };
        if body.inner.is_end_stream() {
            body.finished();
        }
        body
    }

    fn finished(&mut self) {
        if let Some(f) = self.finish.take() {
            f.in_flight.upstream().pool.put(f.sender);
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    #[inline(always)]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            ProxyBody::Local(data) => Poll::Ready(crate::request::request_body::once(data)),
            ProxyBody::H1Client(b) => Pin::new(b).poll_frame(cx),
            ProxyBody::Grpc(b) => Pin::new(&mut **b).poll_frame(cx),
            ProxyBody::Compressed(b) => Pin::new(&mut **b).poll_frame(cx),
            ProxyBody::Upstream(up) => {
                let frame = ready!(Pin::new(&mut up.inner).poll_frame(cx));
                match &frame {
                    None => up.finished(),
                    Some(Ok(_)) if up.inner.is_end_stream() => up.finished(),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if let Some(f) = up.finish.take() {
                            tracing::debug!(upstream = %f.in_flight.upstream().address, error = %e, "upstream body failed");
                            f.in_flight.upstream().record_failure();
                        }
                    }
                }
                Poll::Ready(frame.map(|r| r.map_err(BodyError::from)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(data) => data.is_none(),
            ProxyBody::Upstream(up) => up.inner.is_end_stream(),
            ProxyBody::H1Client(b) => b.is_end_stream(),
            ProxyBody::Grpc(b) => b.is_end_stream(),
            ProxyBody::Compressed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ProxyBody::Upstream(up) => up.inner.size_hint(),
            ProxyBody::H1Client(b) => b.size_hint(),
            ProxyBody::Grpc(b) => b.size_hint(),
            ProxyBody::Compressed(b) => b.size_hint(),
        }
    }
}

/// The proxy's own response for `error`: its status, a one-line body and the
/// [`crate::error::ERROR_HEADER`].
pub(crate) fn error_response(error: ProxyError) -> http::Response<ProxyBody> {
    let status = error.status();
    let body = format!("{} {}\n", status.as_u16(), error);
    let mut resp = http::Response::new(ProxyBody::local(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let ProxyError::RateLimited(refusal) = &error {
        refusal.write(h);
    }
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(ERROR_HEADER, http::HeaderValue::from_static(error.code()));
    resp
}
