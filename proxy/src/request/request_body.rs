//! The request body sent upstream: streamed from the client (noting how far the upload got, so that a
//! client's broken upload is never charged to the endpoint, and cutting it at the route's
//! `max_request_body`) or buffered whole for a replay.

use crate::downstream::body::ClientBody;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A request body sent upstream: streamed from the client, or buffered whole so that the request can
/// be replayed on a retry.
#[derive(Debug)]
pub(crate) enum RequestBody {
    /// Streamed from the client.
    Streamed(Upload),
    /// Buffered; `None` once sent (or empty).
    Buffered(Option<Bytes>),
}

/// Why a request body stopped: the client's connection failed, or the body outgrew its route's limit.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A streamed body went past its route's `max_request_body`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {0} bytes")]
pub(crate) struct TooLarge(u64);

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Streamed(inner) => Pin::new(inner).poll_frame(cx),
            RequestBody::Buffered(data) => Poll::Ready(once(data)),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Streamed(inner) => inner.is_end_stream(),
            RequestBody::Buffered(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Streamed(inner) => inner.size_hint(),
            RequestBody::Buffered(data) => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// A request body streamed from the client, noting how far it got: an upload that breaks (a malformed
/// chunk, a client gone mid-body) or has not finished when the try times out is the client's doing,
/// not the endpoint's, and must not be charged to it.
#[derive(Debug)]
pub(crate) struct Upload {
    inner: ClientBody,
    state: Arc<UploadState>,
    /// Bytes the body may have at most (the route's `max_request_body`).
    limit: Option<u64>,
    /// Bytes read so far.
    read: u64,
    /// A copy of the body as it streams, for a replay (a gRPC call with retries on its statuses).
    copy: Option<Box<Copy>>,
}

/// A streamed body's copy: its chunks, up to a limit.
#[derive(Debug)]
struct Copy {
    chunks: Vec<Bytes>,
    len: u64,
    limit: u64,
}

/// How a streamed upload went, shared with the request's handler.
#[derive(Debug, Default)]
pub(crate) struct UploadState {
    done: AtomicBool,
    failed: AtomicBool,
    /// The body went past its route's limit.
    too_large: AtomicBool,
    /// The last read from the client found nothing to read: the upload waits on the client (else
    /// on the upstream taking what was read).
    starved: AtomicBool,
    /// The whole body, once read, when it was copied as it streamed (within the copy's limit).
    copied: std::sync::Mutex<Option<Bytes>>,
}

impl UploadState {
    /// Whether the whole body was read from the client.
    pub(crate) fn done(&self) -> bool {
        self.done.load(Relaxed)
    }

    /// Whether reading the body from the client failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Relaxed)
    }

    /// Whether the body went past its route's `max_request_body`.
    pub(crate) fn too_large(&self) -> bool {
        self.too_large.load(Relaxed)
    }

    /// The whole body copied as it streamed, once it was read to its end (taken once).
    pub(crate) fn take_copy(&self) -> Option<Bytes> {
        if !self.done() {
            return None;
        }
        self.copied.lock().ok()?.take()
    }

    /// Whether the upload is unfinished because the client is not sending (rather than because the
    /// upstream is not reading).
    pub(crate) fn waiting_on_client(&self) -> bool {
        !self.done() && self.starved.load(Relaxed)
    }
}

impl Upload {
    /// Streams `inner`, reporting to `state`, cut after `limit` bytes if there is one; with
    /// `copy_up_to`, keeps a copy of a body of at most that many bytes for a replay.
    pub(crate) fn new(
        inner: ClientBody,
        state: Arc<UploadState>,
        limit: Option<u64>,
        copy_up_to: Option<u64>,
    ) -> Upload {
        if inner.is_end_stream() {
            state.done.store(true, Relaxed);
        }
        Upload {
            inner,
            state,
            limit,
            read: 0,
            copy: copy_up_to.map(|limit| {
                Box::new(Copy {
                    chunks: Vec::new(),
                    len: 0,
                    limit,
                })
            }),
        }
    }

    /// Copies a frame that passed (a body with trailers, or over the limit, is not copied).
    fn copy_frame(&mut self, frame: &Frame<Bytes>) {
        let Some(copy) = &mut self.copy else { return };
        match frame.data_ref() {
            Some(d) if copy.len + d.len() as u64 <= copy.limit => {
                copy.len += d.len() as u64;
                copy.chunks.push(d.clone());
            }
            _ => self.copy = None,
        }
    }

    /// The body was read whole: its copy, if kept, is ready for a replay.
    fn copy_done(&mut self) {
        let Some(copy) = self.copy.take() else { return };
        let whole = match copy.chunks.len() {
            0 => Bytes::new(),
            1 => copy.chunks[0].clone(),
            _ => {
                let mut all = bytes::BytesMut::with_capacity(copy.len as usize);
                for c in &copy.chunks {
                    all.extend_from_slice(c);
                }
                all.freeze()
            }
        };
        if let Ok(mut slot) = self.state.copied.lock() {
            *slot = Some(whole);
        }
    }
}

impl Body for Upload {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) else {
            self.state.starved.store(true, Relaxed);
            return Poll::Pending;
        };
        self.state.starved.store(false, Relaxed);
        if let (Some(Ok(f)), Some(limit)) = (&frame, self.limit) {
            let len = f.data_ref().map_or(0, |d| d.len() as u64);
            self.read = self.read.saturating_add(len);
            if self.read > limit {
                self.state.too_large.store(true, Relaxed);
                return Poll::Ready(Some(Err(Box::new(TooLarge(limit)))));
            }
        }
        if let Some(Ok(f)) = &frame {
            self.copy_frame(f);
        }
        match &frame {
            None => {
                self.copy_done();
                self.state.done.store(true, Relaxed);
            }
            Some(Err(_)) => self.state.failed.store(true, Relaxed),
            Some(Ok(_)) if self.inner.is_end_stream() => {
                self.copy_done();
                self.state.done.store(true, Relaxed);
            }
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame.map(|f| f.map_err(BodyError::from)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The one frame of a body held whole, then its end.
pub(crate) fn once(data: &mut Option<Bytes>) -> Option<Result<Frame<Bytes>, BodyError>> {
    data.take().map(|d| Ok(Frame::data(d)))
}
