//! The h1 client against a raw socket peer on loopback.

use super::*;
use crate::request::request_body::RequestBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn pair() -> (Conn, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (
        Conn::new(client.expect("connect")),
        accepted.expect("accept").0,
    )
}

fn get() -> Request<RequestBody> {
    Request::get("/x")
        .header("host", "a")
        .body(RequestBody::Buffered(None))
        .expect("request")
}

static V: http::HeaderValue = http::HeaderValue::from_static("x");

/// AddedHeaders headers for a test request.
fn fwd() -> AddedHeaders<'static> {
    AddedHeaders::new(&V, &V, &V, None, 0, 0)
}

/// Reads one request head from the peer's side.
async fn read_head(peer: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        peer.read_exact(&mut byte).await.expect("read");
        seen.push(byte[0]);
    }
    String::from_utf8(seen).expect("utf-8")
}

#[tokio::test]
async fn a_response_in_pieces_after_an_interim_one() {
    let (mut conn, mut peer) = pair().await;
    let server = tokio::spawn(async move {
        let head = read_head(&mut peer).await;
        for piece in [
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 20"[..],
            b"0 OK\r\nContent-Length: 2\r\nX-A",
            b": b\r\n\r\nok",
        ] {
            peer.write_all(piece).await.expect("write");
            peer.flush().await.expect("flush");
            tokio::task::yield_now().await;
        }
        (head, peer)
    });
    let head = send(&mut conn, &get(), &fwd()).await.expect("answered");
    let (seen, _peer) = server.await.expect("server");
    assert_eq!(
        seen,
        "GET /x HTTP/1.1\r\nhost: a\r\nx-forwarded-for: x\r\nx-forwarded-proto: x\r\nvia: x\r\n\
         x-request-id: 00000000000000000000000000000000\r\n\r\n"
    );
    assert_eq!(head.response.status(), 200);
    assert_eq!(head.response.headers()["x-a"], "b");
    assert_eq!(head.framing, Framing::Length(2));
    assert_eq!(&conn.rbuf[..], b"ok", "the body stays for the body reader");
}

#[tokio::test]
async fn a_closed_connection_is_unanswered_and_seen_closed() {
    let (mut conn, peer) = pair().await;
    assert!(!conn.is_closed(), "an open idle connection");
    drop(peer);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while !conn.is_closed() {
        assert!(tokio::time::Instant::now() < deadline, "close never seen");
        tokio::task::yield_now().await;
    }
    match send(&mut conn, &get(), &fwd()).await {
        Err(TryError::Unanswered(_)) => {}
        other => panic!("expected unanswered, got {other:?}"),
    }
}

#[tokio::test]
async fn garbage_and_a_cut_head_are_failures() {
    for reply in [&b"SMTP ready\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\nContent-"] {
        let (mut conn, mut peer) = pair().await;
        let server = tokio::spawn(async move {
            read_head(&mut peer).await;
            peer.write_all(reply).await.expect("write");
        });
        match send(&mut conn, &get(), &fwd()).await {
            Err(TryError::Failed(_)) => {}
            other => panic!("expected a failure for {reply:?}, got {other:?}"),
        }
        server.await.expect("server");
    }
}

#[test]
fn only_requests_without_a_streamed_body_or_upgrade_are_eligible() {
    assert!(eligible(&get(), false));
    let big = Request::post("/")
        .body(RequestBody::Buffered(Some(vec![0u8; MAX_BODY + 1].into())))
        .expect("request");
    assert!(!eligible(&big, false));
    assert!(!eligible(&get(), true));
}

/// A request waiting for its response holds no read buffer: it is allocated when the response
/// starts to arrive.
#[tokio::test]
async fn no_read_buffer_until_the_response_arrives() {
    let (mut conn, mut peer) = pair().await;
    let waiting = std::future::poll_fn(|cx| Poll::Ready(conn.poll_fill(cx).is_pending())).await;
    assert!(waiting, "nothing to read yet");
    assert_eq!(conn.rbuf.capacity(), 0, "no buffer while waiting");
    peer.write_all(b"HTTP/1.1 200 OK\r\n").await.expect("write");
    let n = std::future::poll_fn(|cx| conn.poll_fill(cx))
        .await
        .expect("read");
    assert_eq!(n, 17);
    assert!(
        conn.rbuf.capacity() >= READ_SIZE,
        "allocated once bytes came"
    );
}

#[tokio::test]
async fn responses_land_at_the_start_of_the_read_buffer_once_it_is_free() {
    let (mut conn, _peer) = pair().await;
    conn.rbuf.reserve(READ_SIZE);
    let start = conn.rbuf.as_ptr();
    // The second time through, the map comes from the connection's template, which must not hold
    // on to the buffer either.
    for value in ["b", "c"] {
        conn.rbuf.extend_from_slice(
            format!("HTTP/1.1 204 No Content\r\nX-A: {value}\r\n\r\n").as_bytes(),
        );
        let head = match parse::parse(&mut conn.rbuf, false, &mut conn.template) {
            Ok(parse::Parsed::Complete(head)) => head,
            other => panic!("not complete: {other:?}"),
        };
        assert_eq!(head.response.headers()["x-a"], value);
        assert_ne!(
            conn.rbuf.as_ptr(),
            start,
            "the head was split off the front"
        );
        conn.rewind();
        assert_ne!(conn.rbuf.as_ptr(), start, "not while the head is alive");
        drop(head);
        conn.rewind();
        assert_eq!(conn.rbuf.as_ptr(), start, "back at the start");
    }
}

/// A connection's timer outlives its requests: one armed for an earlier, shorter deadline must not
/// cut a later request short, and one armed further out must not let a shorter deadline pass.
#[tokio::test]
async fn the_reused_deadline_fires_neither_early_nor_late() {
    use std::time::Duration;
    let (mut conn, mut peer) = pair().await;
    let (answer, mut answers) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let server = tokio::spawn(async move {
        // Each request is answered after the delay the test asks for; none after the last.
        while let Some(delay) = answers.recv().await {
            read_head(&mut peer).await;
            tokio::time::sleep(delay).await;
            peer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .expect("write");
        }
        peer
    });
    let ms = Duration::from_millis;
    let now = tokio::time::Instant::now;

    answer.send(ms(0)).expect("server");
    let first = send_until(&mut conn, &get(), &fwd(), now() + ms(50)).await;
    assert!(matches!(first, Some(Ok(_))), "first: {first:?}");

    // The timer still points at the first request's deadline, which passes while this one waits.
    answer.send(ms(300)).expect("server");
    let second = send_until(&mut conn, &get(), &fwd(), now() + ms(10_000)).await;
    assert!(matches!(second, Some(Ok(_))), "cut short: {second:?}");

    // Now armed 10 s out; this request's deadline is much nearer and no answer comes.
    drop(answer);
    let started = now();
    let third = send_until(&mut conn, &get(), &fwd(), started + ms(200)).await;
    let took = started.elapsed();
    assert!(third.is_none(), "expected the deadline, got {third:?}");
    assert!(took >= ms(200), "fired early, after {took:?}");
    assert!(took < ms(5_000), "fired late, after {took:?}");
    drop(server);
}
