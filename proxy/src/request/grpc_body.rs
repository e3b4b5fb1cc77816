//! A gRPC call's response body, watched for its status: the `grpc-status` of its trailers (or of the
//! response head, for a trailers-only answer) is what the call ended with. When the body ends, or is
//! dropped first (the client cancelled: `CANCELLED`), the status is handed to the request's end
//! (metrics, the access log line).

use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// What to do with the call's final status.
pub(crate) type OnEnd = Box<dyn FnOnce(u32) + Send>;

/// A response body of a gRPC call.
pub(crate) struct GrpcBody<B> {
    inner: B,
    /// The status seen so far (in the response head, or trailers).
    status: Option<u32>,
    /// The status a client takes when the answer has none (by its HTTP status).
    fallback: u32,
    on_end: Option<OnEnd>,
}

impl<B> std::fmt::Debug for GrpcBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcBody")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl<B: Body> GrpcBody<B> {
    /// Watches `inner`, the body of an answer with `http_status` and the `head_status` its headers
    /// carried (a trailers-only answer); `on_end` gets the final status.
    pub(crate) fn new(inner: B, http_status: u16, head_status: Option<u32>, on_end: OnEnd) -> Self {
        let fallback = match http_status {
            // A 200 without a status: the stream ended without trailers.
            200 => 13,
            s => crate::grpc::from_http(s),
        };
        let mut body = GrpcBody {
            inner,
            status: head_status,
            fallback,
            on_end: Some(on_end),
        };
        if body.inner.is_end_stream() {
            body.end(None);
        }
        body
    }

    /// Hands the final status on, once (`cut`: the status of a body that stopped short).
    fn end(&mut self, cut: Option<u32>) {
        if let Some(on_end) = self.on_end.take() {
            on_end(cut.or(self.status).unwrap_or(self.fallback));
        }
    }
}

impl<B> Drop for GrpcBody<B> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            // Dropped before its end: the client went away, or cancelled the call.
            on_end(self.status.unwrap_or(1));
        }
    }
}

impl<B: Body + Unpin> Body for GrpcBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(code) = f.trailers_ref().and_then(crate::grpc::status) {
                    this.status = Some(code);
                }
                if this.inner.is_end_stream() {
                    this.end(None);
                }
            }
            // The upstream's stream broke: the client sees the call fail as INTERNAL.
            Some(Err(_)) => this.end(Some(13)),
            None => this.end(None),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, StreamBody};
    use std::sync::{Arc, Mutex};

    fn watched<B: Body + Unpin>(
        body: B,
        http: u16,
        head: Option<u32>,
    ) -> (GrpcBody<B>, Arc<Mutex<Vec<u32>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let on_end: OnEnd = Box::new(move |code| s.lock().unwrap().push(code));
        (GrpcBody::new(body, http, head, on_end), seen)
    }

    fn frames(
        trailer_status: Option<&str>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let mut list = vec![Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x01x")))];
        if let Some(code) = trailer_status {
            let mut t = http::HeaderMap::new();
            t.insert("grpc-status", code.parse().unwrap());
            list.push(Ok(Frame::trailers(t)));
        }
        StreamBody::new(futures_util::stream::iter(list))
    }

    #[tokio::test]
    async fn the_status_comes_from_trailers_the_head_or_the_http_status() {
        let (body, seen) = watched(frames(Some("5")), 200, None);
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [5]);

        let (body, seen) = watched(http_body_util::Empty::<Bytes>::new(), 200, Some(14));
        drop(body);
        assert_eq!(
            *seen.lock().unwrap(),
            [14],
            "trailers-only: reported once, at once"
        );

        let (body, seen) = watched(frames(None), 200, None);
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [13], "no trailers: INTERNAL");

        let (body, seen) = watched(
            http_body_util::Full::new(Bytes::from_static(b"x")),
            503,
            None,
        );
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), [14], "HTTP 503: UNAVAILABLE");

        let (body, seen) = watched(frames(Some("0")), 200, None);
        drop(body);
        assert_eq!(
            *seen.lock().unwrap(),
            [1],
            "dropped before its end: CANCELLED"
        );
    }
}
