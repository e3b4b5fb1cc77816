//! The body of a client's request as the request path sees it: hyper's, for requests hyper's
//! connections read (HTTP/2, and the HTTP/1.x requests the node's own server hands to hyper), or
//! none, for the requests without a body that the own HTTP/1.x server reads
//! ([`crate::downstream::h1`]).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A client request's body.
#[derive(Debug)]
pub(crate) enum ClientBody {
    /// Read by hyper.
    Hyper(Incoming),
    /// The request has no body.
    Empty,
}

impl From<Incoming> for ClientBody {
    fn from(body: Incoming) -> Self {
        ClientBody::Hyper(body)
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ClientBody::Hyper(body) => Pin::new(body).poll_frame(cx),
            ClientBody::Empty => Poll::Ready(None),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Hyper(body) => body.is_end_stream(),
            ClientBody::Empty => true,
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Hyper(body) => body.size_hint(),
            ClientBody::Empty => SizeHint::with_exact(0),
        }
    }
}
