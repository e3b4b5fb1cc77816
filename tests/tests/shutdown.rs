//! Graceful shutdown: in-flight requests finish, new connections are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_tests::{endpoints, eventually, node_config, Backend, Client, Reply};
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn in_flight_requests_finish_and_new_ones_are_refused() {
    let release = Arc::new(tokio::sync::Notify::new());
    let arrived = Arc::new(AtomicBool::new(false));
    let (r, a) = (release.clone(), arrived.clone());
    let slow = Backend::with("slow", move |_req| {
        let (r, a) = (r.clone(), a.clone());
        async move {
            a.store(true, Ordering::SeqCst);
            r.notified().await;
            Reply::new(Full::new(bytes::Bytes::from("finished")).boxed())
        }
    })
    .await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&slow, 1)])
    ));
    let (node, addr) = start_node(&text).await;
    let client = Client::new(addr);
    let in_flight = tokio::spawn(async move { client.get("a", "/").await });
    eventually(
        Duration::from_secs(5),
        "request reached the backend",
        || {
            let a = arrived.clone();
            async move { a.load(Ordering::SeqCst) }
        },
    )
    .await;

    let shutdown = tokio::spawn(node.shutdown_within(Duration::from_secs(10)));
    eventually(Duration::from_secs(5), "listener closed", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    assert!(
        !shutdown.is_finished(),
        "shutdown waits for the in-flight request"
    );
    release.notify_one();
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body, "finished");
    assert_eq!(shutdown.await.unwrap(), 0, "no connection had to be cut");
}

#[tokio::test]
async fn grace_period_bounds_the_wait() {
    let stuck = Backend::with("stuck", |_req| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&stuck, 1)])
    ));
    let (node, addr) = start_node(&text).await;
    let client = Client::new(addr);
    let req = tokio::spawn(async move {
        client
            .send(
                client
                    .request("a", "/")
                    .body(http_body_util::Empty::new().boxed())
                    .unwrap(),
            )
            .await
    });
    eventually(
        Duration::from_secs(5),
        "request reached the backend",
        || async { stuck.hits() == 1 },
    )
    .await;
    let started = std::time::Instant::now();
    let cut = node.shutdown_within(Duration::from_millis(300)).await;
    assert_eq!(cut, 1);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(req.await.unwrap().is_err(), "the stuck request was cut");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_gets_one_more_answer_with_connection_close() {
    // Closing an idle HTTP/1.1 connection the moment the node drains could cross the client's next
    // request on the wire (a failed request): the connection stays until it has been quiet for a
    // second, and the request that comes first is answered, with `Connection: close`.
    let backend = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&backend, 1)])
    ));
    let (node, addr) = start_node(&text).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let get = || {
        http::Request::get("/")
            .header("host", "a")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap()
    };
    let first = sender.send_request(get()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("connection").is_none());
    first.into_body().collect().await.unwrap();

    let shutdown = tokio::spawn(node.shutdown_within(Duration::from_secs(10)));
    eventually(Duration::from_secs(5), "listener closed", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    sender
        .ready()
        .await
        .expect("the idle connection is still open");
    let last = sender
        .send_request(get())
        .await
        .expect("answered while draining");
    assert_eq!(last.status(), StatusCode::OK);
    assert_eq!(last.headers()["connection"], "close");
    last.into_body().collect().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the connection closes after that answer")
        .unwrap()
        .unwrap();
    assert_eq!(shutdown.await.unwrap(), 0, "no connection had to be cut");
}

#[tokio::test]
async fn a_connection_left_idle_while_draining_closes_after_a_quiet_second() {
    let backend = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&backend, 1)])
    ));
    let (node, addr) = start_node(&text).await;
    let client = Client::new(addr);
    assert_eq!(client.get("a", "/").await.status, StatusCode::OK);
    let started = std::time::Instant::now();
    // The pooled keep-alive connection is never used again: the drain ends once it has been quiet.
    assert_eq!(node.shutdown_within(Duration::from_secs(30)).await, 0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "drained in {took:?}"
    );
}
