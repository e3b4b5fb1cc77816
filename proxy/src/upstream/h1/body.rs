//! A response body read from an own HTTP/1.1 connection, frame by frame as the client takes it. At its
//! end the connection returns to the pool (if it can carry another request) and the endpoint's
//! in-flight count drops; dropped early, the connection closes.

use super::chunked::{self, Step};
use super::Framing;
use crate::upstream::pool::Sender;
use crate::upstream::InFlight;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The error of a body the proxy streams.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
enum Decoder {
    Length(u64),
    /// Boxed: the decoder holds a trailer map, and every response moves its body a few times.
    Chunked(Box<chunked::Decoder>),
    Close,
    Done,
}

/// The body of a response from an own HTTP/1.1 connection.
#[derive(Debug)]
pub(crate) struct H1Body {
    sender: Option<Sender>,
    in_flight: Option<InFlight>,
    decoder: Decoder,
    keep_alive: bool,
    /// A failure seen but not yet reported (see [`H1Body::failed`]).
    failure: Option<String>,
}

impl H1Body {
    /// The body framed by `framing` on `sender`'s connection; `keep_alive`: whether the connection may
    /// be reused after it.
    pub(crate) fn new(
        sender: Sender,
        in_flight: InFlight,
        framing: Framing,
        keep_alive: bool,
    ) -> Self {
        let decoder = match framing {
            Framing::Empty | Framing::Length(0) => Decoder::Done,
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Box::default()),
            Framing::Close => Decoder::Close,
        };
        let mut body = H1Body {
            sender: Some(sender),
            in_flight: Some(in_flight),
            decoder,
            keep_alive,
            failure: None,
        };
        if matches!(body.decoder, Decoder::Done) {
            body.finish();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool if it can be reused.
    fn finish(&mut self) {
        self.decoder = Decoder::Done;
        let (Some(sender), Some(in_flight)) = (self.sender.take(), self.in_flight.take()) else {
            return;
        };
        let clean = sender.h1_client().is_some_and(super::Conn::is_clean);
        if self.keep_alive && clean {
            in_flight.upstream().pool.put(sender);
        }
        // Otherwise the connection closes here, and its place in the cluster's connection count
        // goes to a waiting request.
    }

    /// The upstream failed mid-body. Reported at the next poll: the client then gets what was sent
    /// before the failure (hyper writes out what it holds while the body is pending, but drops it when
    /// the body fails in the same pass).
    fn failed(
        &mut self,
        why: String,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.failure = Some(why);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reports the failure: the connection closes and the endpoint is charged a failure.
    fn fail(&mut self, why: String) -> BodyError {
        self.decoder = Decoder::Done;
        self.sender = None;
        if let Some(in_flight) = self.in_flight.take() {
            tracing::debug!(upstream = %in_flight.upstream().address, error = %why, "upstream body failed");
            in_flight.upstream().record_failure();
        }
        why.into()
    }
}

impl Body for H1Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Some(why) = this.failure.take() {
            return Poll::Ready(Some(Err(this.fail(why))));
        }
        loop {
            let Some(conn) = this.sender.as_mut().and_then(Sender::h1_client_mut) else {
                return Poll::Ready(None);
            };
            let step = match &mut this.decoder {
                Decoder::Done => return Poll::Ready(None),
                Decoder::Length(left) if !conn.rbuf.is_empty() => {
                    let n = (*left).min(conn.rbuf.len() as u64);
                    *left -= n;
                    Step::Data(conn.rbuf.split_to(n as usize).freeze())
                }
                Decoder::Close if !conn.rbuf.is_empty() => Step::Data(conn.rbuf.split().freeze()),
                Decoder::Length(_) | Decoder::Close => Step::NeedMore,
                Decoder::Chunked(d) => match d.step(&mut conn.rbuf) {
                    Ok(step) => step,
                    Err(e) => return this.failed(e.to_string(), cx),
                },
            };
            match step {
                Step::Data(data) => {
                    if matches!(this.decoder, Decoder::Length(0)) {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::Trailers(trailers) => {
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                }
                Step::End => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Step::NeedMore => match ready!(conn.poll_fill(cx)) {
                    Ok(0) if matches!(this.decoder, Decoder::Close) => {
                        this.keep_alive = false;
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(0) => {
                        return this.failed("upstream closed the connection mid-body".into(), cx)
                    }
                    Ok(_) => {}
                    Err(e) => return this.failed(e.to_string(), cx),
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.decoder, Decoder::Done | Decoder::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder {
            Decoder::Length(n) => SizeHint::with_exact(n),
            Decoder::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}
