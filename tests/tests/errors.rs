//! Every status the proxy produces itself, and the downstream limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{node_and_client, start_node};
use edgeplane_tests::{endpoints, eventually, node_config, raw_request, Backend, Reply};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn no_route_no_endpoint_connect_failure_and_timeout() {
    let slow = Backend::with("slow", |_req| async {
        // The scenario itself: an upstream slower than the cluster's response_header timeout.
        tokio::time::sleep(Duration::from_secs(3)).await;
        Reply::new(Full::new(bytes::Bytes::from("late")).boxed())
    })
    .await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let text = node_config(&format!(
        r#"
[[routes]]
hosts = ["empty.test"]
cluster = "empty"
[[routes]]
hosts = ["down.test"]
cluster = "down"
[[routes]]
hosts = ["slow.test"]
cluster = "slow"
[clusters.empty]
[clusters.down]
[[clusters.down.endpoints]]
address = "{closed}"
[clusters.slow.timeouts]
response_header = "200ms"
{}
"#,
        endpoints("slow", &[(&slow, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    for (host, status, code) in [
        ("nowhere.test", StatusCode::NOT_FOUND, "no_route"),
        ("empty.test", StatusCode::SERVICE_UNAVAILABLE, "no_endpoint"),
        ("down.test", StatusCode::BAD_GATEWAY, "connect_failed"),
        ("slow.test", StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
    ] {
        let resp = client.get(host, "/").await;
        assert_eq!(resp.status, status, "{host}");
        assert_eq!(resp.header("x-edgeplane-error"), code, "{host}");
        assert!(
            resp.body.starts_with(&status.as_u16().to_string()),
            "short body: {:?}",
            resp.body
        );
    }
}

#[tokio::test]
async fn upstream_that_breaks_mid_response_cuts_the_client() {
    // An upstream that sends headers and part of the body, then closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                .await;
            drop(s);
        }
    });
    let text = node_config(&format!("[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{addr}\"\n"));
    let (_node, addr) = start_node(&text).await;
    // Headers were sent already, so the client sees 200 and then a cut body, never a hang.
    let started = std::time::Instant::now();
    let out = raw_request(addr, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the proxy closed the client connection"
    );
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.len() < 200, "{out}");
}

#[tokio::test]
async fn malformed_and_oversized_requests_get_4xx() {
    let b = Backend::named("b").await;
    let text = node_config(&format!(
        "[node.limits]\nmax_header_bytes = 8192\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, addr) = start_node(&text).await;
    let out = raw_request(addr, b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "missing Host: {out}");
    let out = raw_request(addr, b"GARBAGE\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 400"), "garbage: {out}");
    let big = format!(
        "GET / HTTP/1.1\r\nhost: a\r\nx-big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let out = raw_request(addr, big.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 431"), "oversized headers: {out}");
    assert_eq!(b.hits(), 0, "nothing malformed reached the upstream");
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let b = Backend::named("b").await;
    let text = node_config(&format!(
        "[node.timeouts]\nheader_read = \"300ms\"\nidle = \"400ms\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, addr) = start_node(&text).await;
    // Slowloris: half a request, then nothing.
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = Vec::new();
        slow.read_to_end(&mut buf).await
    })
    .await;
    assert!(
        closed.is_ok(),
        "a client that never finishes its headers is cut off"
    );

    // Idle keep-alive connection: one request, then silence.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buf = Vec::new();
        idle.read_to_end(&mut buf).await.map(|_| buf)
    })
    .await
    .expect("idle connection closed by the proxy")
    .unwrap();
    assert!(String::from_utf8_lossy(&closed).starts_with("HTTP/1.1 200"));
}

/// Reads one response with a `content-length` body from a raw connection.
async fn read_response(conn: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {text:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn the_head_deadline_spares_keep_alive_waits_and_slow_bodies() {
    let b = Backend::counting_sink("b").await;
    let text = node_config(&format!(
        "[node.timeouts]\nheader_read = \"300ms\"\nidle = \"30s\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, addr) = start_node(&text).await;

    // A keep-alive connection that waits longer than header_read between requests stays open: that
    // wait is idleness, bounded by the idle timeout.
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    let mut one = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(1200), conn.read(&mut one)).await;
    assert!(
        waited.is_err(),
        "a waiting keep-alive connection was closed: {waited:?}"
    );
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));

    // A request body sent slowly, for longer than header_read, is not a late head.
    conn.write_all(b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 9\r\n\r\naaa")
        .await
        .unwrap();
    for _ in 0..2 {
        // The scenario itself: a client that uploads slowly.
        tokio::time::sleep(Duration::from_millis(350)).await;
        conn.write_all(b"aaa").await.unwrap();
    }
    let resp = read_response(&mut conn).await;
    assert!(
        resp.starts_with("HTTP/1.1 200") && resp.ends_with("\r\n\r\n9"),
        "{resp}"
    );

    // A head that starts after a finished request and never ends is cut off.
    conn.write_all(b"GET / HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).await.map(|_| rest)
    })
    .await
    .expect("an unfinished head is cut off")
    .unwrap();
    assert!(closed.is_empty(), "{closed:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "cut before header_read: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_a_busy_one_to_end() {
    let (b, release) = Backend::held("b").await;
    let text = node_config(&format!(
        "[node.limits]\nmax_connections = 2\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, addr) = start_node(&text).await;
    // Two connections, each with a request the backend holds: busy, not idle.
    let busy = |n: u8| {
        tokio::spawn(raw_request(
            addr,
            format!("GET /{n} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
                .leak()
                .as_bytes(),
        ))
    };
    let (first, second) = (busy(1), busy(2));
    eventually(Duration::from_secs(5), "both requests held", || async {
        b.hits() == 2
    })
    .await;
    // The third connection is accepted by the kernel but not served while two busy ones are open.
    let third = tokio::spawn(raw_request(
        addr,
        b"GET /3 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
    ));
    let not_yet = tokio::time::timeout(Duration::from_millis(300), async {
        eventually(Duration::from_secs(1), "third request served", || async {
            b.hits() > 2
        })
        .await;
    })
    .await;
    assert!(
        not_yet.is_err(),
        "third connection was served while two busy ones held the limit"
    );
    release.add_permits(3);
    for out in [first, second, third] {
        let out = out.await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}

#[tokio::test]
async fn at_the_limit_an_idle_keep_alive_connection_makes_room() {
    let b = Backend::named("b").await;
    // Idle keep-alive connections would otherwise hold their slots for the whole idle timeout.
    let text = node_config(&format!(
        "[node.limits]\nmax_connections = 2\n[node.timeouts]\nidle = \"5m\"\n\
         [[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, addr) = start_node(&text).await;
    let hold = |n: u8| async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET /{n} HTTP/1.1\r\nhost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        s
    };
    let (mut first, mut second) = (hold(1).await, hold(2).await);
    let started = std::time::Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        raw_request(
            addr,
            b"GET /3 HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
        ),
    )
    .await
    .expect("a new client is served at the limit");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // One of the two idle connections was closed to make room.
    let shed = u8::from(closed(&mut first).await) + u8::from(closed(&mut second).await);
    assert_eq!(shed, 1, "exactly one idle connection made room");
}

/// Whether the node closed `s` (EOF or reset within 200 ms; an open idle connection reads nothing).
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn upstream_stalled_mid_body_is_cut_after_the_idle_timeout() {
    // An upstream that sends headers and part of the body, then stalls with the socket open.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                .await;
            held.push(s);
        }
    });
    let text = node_config(&format!(
        "[node.timeouts]\nidle = \"300ms\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{upstream}\"\n"
    ));
    let (_node, addr) = start_node(&text).await;
    let started = std::time::Instant::now();
    let out = raw_request(addr, b"GET / HTTP/1.1\r\nhost: a\r\n\r\n").await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stalled response cut after about two idle timeouts"
    );
}
