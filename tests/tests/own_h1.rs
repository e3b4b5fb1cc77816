//! The node's own HTTP/1.x server on the wire, driven by raw TCP clients: pipelined requests,
//! HTTP/1.0 with and without keep-alive, HEAD, `Connection: close`, a response of unknown length,
//! and requests it hands to hyper (bodies, `Expect`) on the same connection as its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::start_node;
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::{eventually, node_config, Client};
use edgeplane_tests::{text, Backend};
use http::StatusCode;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A node in front of a backend answering `path` (and `body=N` with the request body's length),
/// and `/pieces` with a body of unknown length.
async fn setup() -> (NodeHandle, SocketAddr, Backend) {
    let backend = Backend::with(
        "b",
        |req: http::Request<hyper::body::Incoming>| async move {
            let path = req.uri().path().to_string();
            if path == "/pieces" {
                // A stream of frames: a body whose length is not known in advance (sent chunked).
                let pieces = ["one,", "two,", "three"]
                    .map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from_static(p.as_bytes()))));
                let body = StreamBody::new(futures_util::stream::iter(pieces));
                return http::Response::new(body.boxed());
            }
            let body = req.into_body().collect().await.unwrap().to_bytes();
            text(StatusCode::OK, format!("{path} body={}", body.len()))
        },
    )
    .await;
    let config = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    ));
    let (node, addr) = start_node(&config).await;
    (node, addr, backend)
}

/// A client connection that reads responses one at a time.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

/// One response: its head (status line and headers, lower-cased names as sent) and body.
struct Resp {
    head: String,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, raw: &[u8]) {
        self.s.write_all(raw).await.unwrap();
    }

    /// Reads more bytes; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk))
            .await
            .expect("no answer within 5 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn until(&mut self, what: &[u8]) -> usize {
        loop {
            if let Some(i) = self.buf.windows(what.len()).position(|w| w == what) {
                return i + what.len();
            }
            assert!(
                self.fill().await,
                "closed before {:?}",
                String::from_utf8_lossy(what)
            );
        }
    }

    /// Reads one response to a request that was not HEAD (`head_request` false) or was.
    async fn response(&mut self, head_request: bool) -> Resp {
        let end = self.until(b"\r\n\r\n").await;
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let mut resp = Resp {
            head,
            body: Vec::new(),
        };
        if head_request {
            return resp;
        }
        if resp.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = self.until(b"\r\n").await;
                let line = String::from_utf8(self.buf.drain(..line_end).collect()).unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                while self.buf.len() < size + 2 {
                    assert!(self.fill().await, "closed within a chunk");
                }
                resp.body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
                if size == 0 {
                    return resp;
                }
            }
        }
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        while self.buf.len() < len {
            assert!(self.fill().await, "closed within a body");
        }
        resp.body = self.buf.drain(..len).collect();
        resp
    }

    /// Whether the node closed the connection (after everything sent was read).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill().await
    }
}

fn body(r: &Resp) -> &str {
    std::str::from_utf8(&r.body).unwrap()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (_node, addr, _b) = setup().await;
    let mut c = Conn::open(addr).await;
    c.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    for path in ["/1", "/2", "/3"] {
        let r = c.response(false).await;
        assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
        assert_eq!(body(&r), format!("{path} body=0"));
        assert!(
            r.header("date").is_some_and(|d| d.ends_with(" GMT")),
            "{}",
            r.head
        );
    }
    // And the connection goes on.
    c.send(b"GET /4 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(body(&c.response(false).await), "/4 body=0");
}

#[tokio::test]
async fn http_1_0_closes_unless_kept_alive() {
    let (_node, addr, _b) = setup().await;
    let mut c = Conn::open(addr).await;
    c.send(b"GET /a HTTP/1.0\r\nHost: a\r\n\r\n").await;
    let r = c.response(false).await;
    assert!(r.head.starts_with("HTTP/1.0 200 OK\r\n"), "{}", r.head);
    assert_eq!(body(&r), "/a body=0");
    assert!(
        c.closed().await,
        "an HTTP/1.0 connection without keep-alive stayed open"
    );

    let mut c = Conn::open(addr).await;
    for path in ["/b", "/c"] {
        c.send(
            format!("GET {path} HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n").as_bytes(),
        )
        .await;
        let r = c.response(false).await;
        assert_eq!(r.header("connection"), Some("keep-alive"), "{}", r.head);
        assert_eq!(body(&r), format!("{path} body=0"));
    }
    // A body of unknown length to an HTTP/1.0 client ends with the connection.
    c.send(b"GET /pieces HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let end = c.until(b"\r\n\r\n").await;
    let head = String::from_utf8(c.buf.drain(..end).collect()).unwrap();
    assert!(
        !head.to_ascii_lowercase().contains("transfer-encoding"),
        "{head}"
    );
    while c.fill().await {}
    assert_eq!(c.buf, b"one,two,three");
}

#[tokio::test]
async fn head_and_connection_close() {
    let (_node, addr, _b) = setup().await;
    let mut c = Conn::open(addr).await;
    c.send(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let r = c.response(true).await;
    assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", r.head);
    assert_eq!(r.header("content-length"), Some("9"), "{}", r.head);
    // No body bytes followed the head: the next response starts right away.
    c.send(b"GET /g HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    let r = c.response(false).await;
    assert_eq!(body(&r), "/g body=0");
    assert_eq!(r.header("connection"), Some("close"), "{}", r.head);
    assert!(
        c.closed().await,
        "the connection stayed open after Connection: close"
    );
}

#[tokio::test]
async fn a_body_of_unknown_length_is_chunked() {
    let (_node, addr, _b) = setup().await;
    let mut c = Conn::open(addr).await;
    for _ in 0..2 {
        c.send(b"GET /pieces HTTP/1.1\r\nHost: a\r\n\r\n").await;
        let r = c.response(false).await;
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{}", r.head);
        assert_eq!(body(&r), "one,two,three");
    }
}

#[tokio::test]
async fn requests_with_bodies_go_to_hyper_on_the_same_connection() {
    let (_node, addr, _b) = setup().await;
    let mut c = Conn::open(addr).await;
    c.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(body(&c.response(false).await), "/first body=0");
    c.send(b"POST /len HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    assert_eq!(body(&c.response(false).await), "/len body=5");
    c.send(b"POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert_eq!(body(&c.response(false).await), "/chunks body=3");
    c.send(b"PUT /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = c.response(true).await;
    assert!(
        interim.head.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{}",
        interim.head
    );
    c.send(b"ok").await;
    assert_eq!(body(&c.response(false).await), "/expect body=2");
    // A declared empty body stays with the own server; then plain requests again.
    c.send(b"DELETE /empty HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /last HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert_eq!(body(&c.response(false).await), "/empty body=0");
    assert_eq!(body(&c.response(false).await), "/last body=0");
}

#[tokio::test]
async fn a_head_in_pieces_and_a_large_one_are_read_whole() {
    let (_node, addr, _b) = setup().await;
    let mut c = Conn::open(addr).await;
    for piece in [&b"GET /sl"[..], b"ow HTTP/1.1\r\nHo", b"st: a\r\n", b"\r\n"] {
        c.send(piece).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(body(&c.response(false).await), "/slow body=0");
    // Past the first 1 KiB read buffer, within the node's head limit.
    let big = "x".repeat(6000);
    c.send(format!("GET /big HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    assert_eq!(body(&c.response(false).await), "/big body=0");
}

/// A connection between requests parks, whether its last answer came from a backend or from the
/// node itself (answered at once), and serves its next request when woken.
#[tokio::test]
async fn an_idle_connection_parks_after_proxied_and_local_answers() {
    let backend = Backend::named("b").await;
    let config = format!(
        "[node]\nid = \"test-node\"\nadmin = \"127.0.0.1:0\"\n[[node.listeners]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nhosts = [\"a\"]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    );
    let (node, addr) = start_node(&config).await;
    let admin = Client::new(node.admin_addr().unwrap());
    let mut c = Conn::open(addr).await;
    for (host, status) in [
        ("a", "200"),
        ("nowhere", "404"),
        ("a", "200"),
        ("nowhere", "404"),
    ] {
        // Exactly the size of the node's first read buffer (a read that fills it leaves the socket
        // marked readable).
        let start = format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Pad: ");
        let pad = "p".repeat(1024 - start.len() - 4);
        c.send(format!("{start}{pad}\r\n\r\n").as_bytes()).await;
        let r = c.response(false).await;
        assert!(
            r.head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{}",
            r.head
        );
        eventually(Duration::from_secs(10), "the connection parked", || {
            let admin = admin.clone();
            async move { common::parked(&admin).await == 1 }
        })
        .await;
    }
}
