//! edgeplane's own HTTP/1.1 upstream client against raw upstreams: every body framing, interim
//! responses, HEAD, connection reuse, and pooled connections the upstream closed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::node_config;
use http::StatusCode;
use http_body_util::{BodyExt, Empty};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a raw upstream does after a reply.
#[derive(Clone, Copy, PartialEq)]
enum After {
    KeepOpen,
    Close,
}

/// A raw HTTP/1.1 upstream answering each request (bodiless) with `reply(method, path)`; returns its
/// address and the number of connections it accepted.
async fn raw_upstream(
    reply: fn(&str, &str) -> (&'static [u8], After),
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, SeqCst);
            tokio::spawn(serve(stream, reply));
        }
    });
    (addr, accepted)
}

async fn serve(mut stream: TcpStream, reply: fn(&str, &str) -> (&'static [u8], After)) {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        while !seen.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte).await {
                Ok(1) => seen.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&seen).into_owned();
        seen.clear();
        let mut line = head.split(' ');
        let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
        let (bytes, after) = reply(method, path);
        if stream.write_all(bytes).await.is_err() {
            return;
        }
        if after == After::Close {
            return;
        }
    }
}

fn config(upstream: SocketAddr) -> String {
    node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{upstream}\"\n"
    ))
}

#[tokio::test]
async fn every_framing_reaches_the_client() {
    let (upstream, _) = raw_upstream(|method, path| match (method, path) {
        (_, "/chunked") => (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
            After::KeepOpen,
        ),
        (_, "/close") => (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end",
            After::Close,
        ),
        (_, "/interim") => (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            After::KeepOpen,
        ),
        (_, "/none") => (b"HTTP/1.1 204 No Content\r\n\r\n", After::KeepOpen),
        ("HEAD", _) => (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", After::KeepOpen),
        _ => (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", After::KeepOpen),
    })
    .await;
    let (_node, client) = node_and_client(&config(upstream)).await;
    // Twice each, so that the second one runs on a reused connection where there is one.
    for _ in 0..2 {
        let r = client.get("a", "/chunked").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello world"));
        let r = client.get("a", "/close").await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "until the end")
        );
        let r = client.get("a", "/interim").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
        let r = client.get("a", "/none").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::NO_CONTENT, ""));
        let head = client
            .request("a", "/len")
            .method("HEAD")
            .body(Empty::new().boxed())
            .unwrap();
        let r = client.send(head).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-length"), "5");
        assert_eq!(r.body, "");
    }
}

#[tokio::test]
async fn a_kept_alive_connection_carries_every_request() {
    let (upstream, accepted) = raw_upstream(|_, _| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            After::KeepOpen,
        )
    })
    .await;
    let (_node, client) = node_and_client(&config(upstream)).await;
    for _ in 0..20 {
        let r = client.get("a", "/").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(accepted.load(SeqCst), 1, "one upstream connection for all");
}

#[tokio::test]
async fn connections_the_upstream_closes_or_asks_to_close_are_not_reused() {
    // Closed right after the answer, without saying so (as an upstream's idle timeout would): the next
    // request must not fail on the dead pooled connection.
    let (silent, silent_accepted) = raw_upstream(|_, _| {
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            After::Close,
        )
    })
    .await;
    // Asked to close but left open: reusing it would be wrong.
    let (asked, asked_accepted) = raw_upstream(|_, _| {
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            After::KeepOpen,
        )
    })
    .await;
    for (upstream, accepted) in [(silent, silent_accepted), (asked, asked_accepted)] {
        let (_node, client) = node_and_client(&config(upstream)).await;
        for _ in 0..20 {
            let r = client.get("a", "/").await;
            assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
        }
        assert_eq!(accepted.load(SeqCst), 20, "a new connection per request");
    }
}

#[tokio::test]
async fn a_body_longer_than_announced_is_not_reused_and_a_short_one_fails() {
    // Five bytes after a Content-Length of 2: the client gets the 2, and the connection is dropped
    // (the extra bytes would be read as the next response).
    let (upstream, accepted) = raw_upstream(|_, path| match path {
        "/long" => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokXXX",
            After::KeepOpen,
        ),
        _ => (
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
            After::Close,
        ),
    })
    .await;
    let (_node, client) = node_and_client(&config(upstream)).await;
    for _ in 0..3 {
        let r = client.get("a", "/long").await;
        assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    }
    assert_eq!(accepted.load(SeqCst), 3);
    let req = client
        .request("a", "/short")
        .body(Empty::new().boxed())
        .unwrap();
    assert!(
        client.send(req).await.is_err(),
        "a cut body is an error for the client"
    );
}
