//! What an idle keep-alive connection costs once parked: heap bytes counted by dhat's allocator
//! across 200 connections that each had one request answered. The figure against nginx (RSS of 10,000
//! connections) is in BENCHMARKS.md, from benches/load/conn-memory.sh; this guards the mechanism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgeplane_proxy::NodeHandle;
use edgeplane_tests::{endpoints, eventually, Backend};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// Writes `requests` on `conn` at once and reads `wanted` whole answers.
async fn exchange(conn: &mut TcpStream, requests: &[u8], wanted: usize) {
    conn.write_all(requests).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while answers(&seen) < wanted {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the answers");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// Sends one request on `conn` and reads its whole answer.
async fn one_request(conn: &mut TcpStream) {
    exchange(conn, REQUEST, 1).await;
}

/// Complete answers in `seen`, one after another (each a 200 with a Content-Length body).
fn answers(seen: &[u8]) -> usize {
    let text = String::from_utf8_lossy(seen).into_owned();
    let (mut at, mut n) = (0, 0);
    while let Some(end) = text[at..].find("\r\n\r\n") {
        let head = &text[at..at + end];
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse().unwrap())
            })
            .expect("content-length");
        if text.len() < at + end + 4 + length {
            break;
        }
        at += end + 4 + length;
        n += 1;
    }
    n
}

async fn parked(admin: std::net::SocketAddr) -> usize {
    let mut c = TcpStream::connect(admin).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("edgeplane_connections_parked "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as usize)
}

#[tokio::test]
async fn a_parked_keep_alive_connection_holds_no_http_state() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let backend = Backend::named("b").await;
    let config = format!(
        "[node]\nid = \"test-node\"\nadmin = \"127.0.0.1:0\"\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\ncluster = \"c\"\n{}",
        endpoints("c", &[(&backend, 1)])
    );
    let node = NodeHandle::start(&edgeplane_config::from_toml(&config).unwrap())
        .await
        .unwrap();
    let addr = node.listen_addrs()[0];
    let admin = node.admin_addr().unwrap();
    // Warm: the upstream connection, the first request's one-time allocations.
    let mut warm = TcpStream::connect(addr).await.unwrap();
    one_request(&mut warm).await;
    drop(warm);
    eventually(
        Duration::from_secs(10),
        "the warm-up connection gone",
        || async { parked(admin).await == 0 },
    )
    .await;
    let before = dhat::HeapStats::get().curr_bytes;

    const N: usize = 200;
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        let mut c = TcpStream::connect(addr).await.unwrap();
        one_request(&mut c).await;
        conns.push(c);
    }
    let busy = dhat::HeapStats::get().curr_bytes;
    eventually(
        Duration::from_secs(20),
        "every idle connection parked",
        || async { parked(admin).await == N },
    )
    .await;
    let after = dhat::HeapStats::get().curr_bytes;
    let per_busy = busy.saturating_sub(before) / N;
    let per_parked = after.saturating_sub(before) / N;
    eprintln!("heap per connection: {per_busy} B before parking, {per_parked} B parked (client side included)");
    // Parked, the connection still serves: the next request is answered, and so are two pipelined
    // in one write (hyper reads both; what it had read when it parks again is put back).
    one_request(&mut conns[0]).await;
    exchange(&mut conns[1], &[REQUEST, REQUEST].concat(), 2).await;
    assert!(
        per_parked * 4 < per_busy,
        "parking gives back most of a connection's memory"
    );
    assert!(
        per_parked <= 1536,
        "a parked connection holds {per_parked} B"
    );
    node.shutdown_within(Duration::from_secs(1)).await;
}
