//! The request-head deadline of a downstream HTTP/1.x connection (slowloris guard), kept without a
//! timer per request.
//!
//! A connection must deliver a complete request head within `header_read`: from its accept, and from
//! the first byte that follows a finished request. Each request counts itself in the connection's
//! [`Activity`] ([`Answering`], held by the response body until hyper drops it), and the connection's
//! watcher ([`crate::downstream::watcher`]) samples those counters ([`HeadWatch`]). Waiting for the next request without sending
//! anything is idleness, left to the idle timeout. HTTP/2 and upgraded connections are exempt: their
//! reads are not request heads.
//!
//! hyper's own `header_read_timeout` registered a boxed timer for every request; these counters cost
//! the request path three relaxed atomic operations instead (about 1,400 instructions less per request
//! under callgrind, see BENCHMARKS.md).

use crate::downstream::idle::{Activity, Counters};
use crate::request::body::{BodyError, ProxyBody};
use bytes::Bytes;
use http::{Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// One head in [`Counters::requests`] (the low half counts requests being answered).
const HEAD: u64 = 1 << 32;

/// One request of a connection being answered, until the response body is dropped.
#[derive(Debug)]
pub(crate) struct Answering(Activity);

impl Answering {
    /// Counts a request whose head was just received.
    pub(crate) fn start(activity: &Activity, version: Version) -> Answering {
        let c = &activity.0;
        if version == Version::HTTP_2 {
            c.exempt.store(true, Relaxed);
        }
        c.requests.fetch_add(HEAD | 1, Relaxed);
        Answering(activity.clone())
    }

    /// The response to send, holding this request as answered until its body is done.
    pub(crate) fn respond(self, mut resp: Response<ProxyBody>) -> Response<Answered> {
        let c = &self.0 .0;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // From here on the connection is a tunnel.
            c.exempt.store(true, Relaxed);
        } else if c.draining.load(Relaxed) && !c.exempt.load(Relaxed) {
            // An HTTP/1.x client told to close after this response never races a close of the
            // connection with its next request.
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp.map(|body| Answered {
            body,
            _answering: self,
        })
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        let c = &self.0 .0;
        // Reads up to here belonged to this request; the watcher sees this before the count drops.
        c.reads_when_done.store(c.reads(), Release);
        c.requests.fetch_sub(1, AcqRel);
    }
}

/// A response body that keeps its request counted as being answered.
#[derive(Debug)]
pub(crate) struct Answered {
    body: ProxyBody,
    _answering: Answering,
}

impl Body for Answered {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The watcher's view of the head deadline, from samples of the connection's counters.
#[derive(Debug)]
pub(crate) struct HeadWatch {
    /// Since when a head has been awaited with bytes arriving (or since the accept).
    waiting_since: Option<Instant>,
    heads: u32,
}

impl HeadWatch {
    /// The watch of a connection accepted at `accepted`: its first head is due from then.
    pub(crate) fn new(accepted: Instant) -> HeadWatch {
        HeadWatch {
            waiting_since: Some(accepted),
            heads: 0,
        }
    }

    /// Samples the connection at `now`: true when a head has been due for the whole `timeout`. A head
    /// that started arriving between two samples counts from the later one, so sampled every
    /// `timeout / 8`, the cut comes between one timeout and one and a quarter after the first byte.
    pub(crate) fn overdue_at(&mut self, c: &Counters, timeout: Duration, now: Instant) -> bool {
        if c.exempt.load(Relaxed) {
            return false;
        }
        let requests = c.requests.load(Acquire);
        let (heads, answering) = ((requests >> 32) as u32, requests as u32);
        if heads != self.heads || answering > 0 {
            self.heads = heads;
            self.waiting_since = None;
            return false;
        }
        match self.waiting_since {
            Some(since) => now.duration_since(since) >= timeout,
            None => {
                if c.reads() != c.reads_when_done.load(Acquire) {
                    self.waiting_since = Some(now);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::downstream::idle::READ;

    const TEN: Duration = Duration::from_secs(10);

    fn read(a: &Activity) {
        a.0.io.fetch_add(READ, Relaxed);
    }

    #[test]
    fn a_silent_new_connection_is_due_from_its_accept() {
        let a = Activity::default();
        let t0 = Instant::now();
        let mut w = HeadWatch::new(t0);
        assert!(!w.overdue_at(&a.0, TEN, t0 + Duration::from_secs(9)));
        assert!(w.overdue_at(&a.0, TEN, t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_head_trickling_after_a_request_is_due_from_its_first_sample() {
        let a = Activity::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = HeadWatch::new(t0);
        read(&a);
        let answering = Answering::start(&a, Version::HTTP_11);
        assert!(!w.overdue_at(&a.0, TEN, s(1)));
        // The request's body is read while it is answered: not a head.
        read(&a);
        assert!(!w.overdue_at(&a.0, TEN, s(2)));
        drop(answering);
        // Keep-alive silence is not a late head, however long.
        assert!(!w.overdue_at(&a.0, TEN, s(3)));
        assert!(!w.overdue_at(&a.0, TEN, s(100)));
        // The next head starts arriving and never ends.
        read(&a);
        assert!(!w.overdue_at(&a.0, TEN, s(101)));
        assert!(!w.overdue_at(&a.0, TEN, s(110)));
        assert!(w.overdue_at(&a.0, TEN, s(111)));
    }

    #[test]
    fn a_request_between_samples_restarts_the_wait() {
        let a = Activity::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut w = HeadWatch::new(t0);
        read(&a);
        drop(Answering::start(&a, Version::HTTP_11));
        assert!(!w.overdue_at(&a.0, TEN, s(10)));
        assert!(!w.overdue_at(&a.0, TEN, s(30)));
    }

    #[test]
    fn http2_and_upgraded_connections_are_exempt() {
        for version in [Version::HTTP_2, Version::HTTP_11] {
            let a = Activity::default();
            let t0 = Instant::now();
            let mut w = HeadWatch::new(t0);
            let answering = Answering::start(&a, version);
            if version == Version::HTTP_11 {
                let resp = Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .body(ProxyBody::empty())
                    .unwrap();
                drop(answering.respond(resp));
            } else {
                drop(answering);
            }
            read(&a);
            assert!(!w.overdue_at(&a.0, TEN, t0 + Duration::from_secs(1)));
            assert!(
                !w.overdue_at(&a.0, TEN, t0 + Duration::from_secs(60)),
                "{version:?}"
            );
        }
    }
}
