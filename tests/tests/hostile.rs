//! Hostile clients through a real node: a client must not get healthy backends ejected. A malformed
//! chunked body, an upload abandoned mid-way and an upload too slow for the try's timeout are the
//! client's doing (400, or 408), never charged to the endpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use edgeplane_tests::{endpoints, node_config, Backend, Client};
use http::StatusCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `head` (and `body`) on a fresh connection; then either closes the write side at once
/// (`close`) or keeps the connection open; returns whatever the node answered within 5 s.
async fn raw(addr: std::net::SocketAddr, request: &[u8], close: bool) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    if close {
        // An abandoned upload: the client goes away.
        drop(s);
        return String::new();
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A backend that reads the whole request body before answering, as most do.
async fn reading(name: &str) -> Backend {
    use http_body_util::BodyExt;
    Backend::with(
        name,
        |req: http::Request<hyper::body::Incoming>| async move {
            let status = match req.into_body().collect().await {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::BAD_REQUEST,
            };
            edgeplane_tests::text(status, "read")
        },
    )
    .await
}

#[tokio::test]
async fn broken_or_slow_uploads_never_get_healthy_backends_ejected() {
    let (a, b) = (reading("a").await, reading("b").await);
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.outlier]\nconsecutive_failures = 3\n\
         max_ejected_percent = 100\n[clusters.c.timeouts]\nresponse_header = \"500ms\"\n{}",
        endpoints("c", &[(&a, 1), (&b, 1)])
    ));
    let (node, addr) = common::start_node(&cfg).await;
    for _ in 0..4 {
        // A malformed chunk size.
        let answer = raw(
            addr,
            b"POST / HTTP/1.1\r\nhost: h.test\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
            false,
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        // 10 KB of a declared 100,000, then gone.
        let mut abandoned =
            b"POST / HTTP/1.1\r\nhost: h.test\r\ncontent-length: 100000\r\n\r\n".to_vec();
        abandoned.extend(std::iter::repeat_n(b'x', 10_000));
        raw(addr, &abandoned, true).await;
        // 10 KB of a declared 100,000, then silence past the try's timeout.
        let mut stalled =
            b"POST / HTTP/1.1\r\nhost: h.test\r\ncontent-length: 100000\r\n\r\n".to_vec();
        stalled.extend(std::iter::repeat_n(b'x', 10_000));
        let answer = raw(addr, &stalled, false).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("client_timeout"), "{answer}");
    }
    // The abandoned uploads end on the node's side asynchronously: wait until none is in flight.
    let tables = node.tables().clone();
    edgeplane_tests::eventually(Duration::from_secs(5), "uploads settled", || async {
        tables.load().clusters[0]
            .endpoints
            .iter()
            .all(|e| e.upstream.in_flight() == 0)
    })
    .await;
    for e in &tables.load().clusters[0].endpoints {
        let u = &e.upstream;
        assert!(!u.ejected(), "{} ejected by a client's uploads", u.address);
        assert_eq!(u.failures(), 0, "{} charged a client's failure", u.address);
        assert_eq!(u.success_permille(), 1000);
    }
    let client = Client::new(addr);
    for _ in 0..4 {
        assert_eq!(client.get("h.test", "/").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn ambiguous_hosts_are_refused() {
    let a = Backend::named("a").await;
    let cfg = node_config(&format!(
        "[[routes]]\nhosts = [\"good.test\"]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&a, 1)])
    ));
    let (_node, addr) = common::start_node(&cfg).await;
    for (request, why) in [
        (
            &b"GET / HTTP/1.1\r\nhost: good.test\r\nhost: evil.test\r\nconnection: close\r\n\r\n"[..],
            "two Host headers",
        ),
        (
            b"GET / HTTP/1.1\r\nhost: evil@good.test\r\nconnection: close\r\n\r\n",
            "userinfo",
        ),
        (
            b"GET / HTTP/1.1\r\nhost: good.test/x\r\nconnection: close\r\n\r\n",
            "a path",
        ),
        (
            b"GET / HTTP/1.1\r\nhost: good.test,evil.test\r\nconnection: close\r\n\r\n",
            "a list",
        ),
        (
            b"GET / HTTP/1.1\r\nhost: \r\nconnection: close\r\n\r\n",
            "empty",
        ),
        (
            b"GET http://evil@good.test/ HTTP/1.1\r\nhost: good.test\r\nconnection: close\r\n\r\n",
            "userinfo in the target",
        ),
    ] {
        let answer = raw(addr, request, false).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{why}: {answer}");
    }
    assert_eq!(a.hits(), 0);
    let answer = raw(
        addr,
        b"GET / HTTP/1.1\r\nhost: Good.Test:80\r\nconnection: close\r\n\r\n",
        false,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn connection_never_names_away_host_or_the_request_id() {
    let a = Backend::named("a").await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&a, 1)])
    ));
    let (_node, addr) = common::start_node(&cfg).await;
    let answer = raw(
        addr,
        b"GET / HTTP/1.1\r\nhost: h.test\r\nx-request-id: client-id-1\r\nx-other: gone\r\n\
          connection: host, x-request-id, content-length, x-other, close\r\n\r\n",
        false,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The backend echoes the headers it got in its body.
    assert!(answer.contains("\nhost: h.test\n"), "{answer}");
    assert!(answer.contains("\nx-request-id: client-id-1\n"), "{answer}");
    assert!(
        !answer.contains("x-other"),
        "a header Connection names is still removed"
    );
}

#[tokio::test]
async fn a_response_head_beyond_64_kib_is_refused_even_in_one_read() {
    let big = Backend::with("big", |_req| async {
        let mut r = edgeplane_tests::text(StatusCode::OK, "x");
        r.headers_mut()
            .insert("x-big", "a".repeat(100 * 1024).parse().unwrap());
        r
    })
    .await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&big, 1)])
    ));
    let (_node, addr) = common::start_node(&cfg).await;
    let r = Client::new(addr).get("h.test", "/").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.header("x-edgeplane-error"), "upstream_error");
}

/// A raw backend answering every request (read up to the end of its chunked body) with `response`.
async fn raw_backend(response: &'static [u8]) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(5).any(|w| w == b"0\r\n\r\n") {
                        seen.clear();
                        if s.write_all(response).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn transfer_encoding_wins_over_content_length_on_hyper_s_client_path_too() {
    let backend = raw_backend(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{backend}\"\n"
    ));
    let (_node, addr) = common::start_node(&cfg).await;
    // A chunked upload is streamed, so it takes hyper's client.
    let answer = raw(
        addr,
        b"POST / HTTP/1.1\r\nhost: h.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
          4\r\ndata\r\n0\r\n\r\n",
        false,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("content-length: 3"), "{answer}");
    assert!(answer.contains("hello"), "the whole body: {answer}");
}

/// Writes `request` on a fresh connection and returns the response head (up to its blank line).
async fn head(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !out.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn only_the_upgrades_a_route_allows_reach_a_backend() {
    let echo = Backend::named("echo").await;
    // Answers every upgrade with a switch to h2c, whatever was asked.
    let switcher = Backend::with("switcher", |_req| async {
        let mut r = edgeplane_tests::text(StatusCode::SWITCHING_PROTOCOLS, "");
        r.headers_mut()
            .insert("connection", "upgrade".parse().unwrap());
        r.headers_mut().insert("upgrade", "h2c".parse().unwrap());
        r
    })
    .await;
    let cfg = node_config(&format!(
        "[[routes]]\nhosts = [\"echo.test\"]\ncluster = \"e\"\n\
         [[routes]]\nhosts = [\"switch.test\"]\ncluster = \"s\"\n\
         [[routes]]\nhosts = [\"none.test\"]\ncluster = \"e\"\nupgrades = []\n\
         [clusters.e]\n{}[clusters.s]\n{}",
        endpoints("e", &[(&echo, 1)]),
        endpoints("s", &[(&switcher, 1)])
    ));
    let (_node, addr) = common::start_node(&cfg).await;
    // h2c is not allowed by default, nor websocket on a route that allows nothing: a plain request
    // reaches the backend, without the upgrade.
    for request in [
        &b"GET / HTTP/1.1\r\nhost: echo.test\r\nconnection: upgrade, http2-settings, close\r\n\
           upgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: none.test\r\nconnection: upgrade, close\r\nupgrade: websocket\r\n\r\n",
    ] {
        let answer = raw(addr, request, false).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("\nupgrade:"),
            "{answer}"
        );
    }
    // A websocket request answered with a switch to h2c: no tunnel.
    let answer = head(
        addr,
        b"GET / HTTP/1.1\r\nhost: switch.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
          sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
}
