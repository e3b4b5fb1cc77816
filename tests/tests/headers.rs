//! Hop-by-hop removal and forwarding headers, both directions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::node_and_client;

use edgeplane_tests::{endpoints, header_lines, node_config, text, Backend, Generated, Reply};
use http::StatusCode;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use std::convert::Infallible;

fn lines(body: &str) -> Vec<&str> {
    body.lines().skip(1).collect()
}

#[tokio::test]
async fn request_hop_by_hop_removed_and_forwarding_headers_added() {
    // A bodiless GET goes through edgeplane's own HTTP/1.1 client.
    hop_by_hop_and_forwarding(Empty::new().boxed()).await;
}

#[tokio::test]
async fn forwarding_headers_on_a_streamed_upload() {
    // A streamed upload goes through hyper's client, which gets the headers in the request's map.
    hop_by_hop_and_forwarding(Generated::new(256 * 1024).boxed()).await;
}

async fn hop_by_hop_and_forwarding(body: BoxBody<Bytes, Infallible>) {
    // Echoes the request's headers once it has read the whole body.
    let b = Backend::with("b", |req| async move {
        let headers = req.headers().clone();
        let read = req.into_body().collect().await.map(|b| b.to_bytes().len());
        assert!(read.is_ok(), "body cut: {read:?}");
        text(StatusCode::OK, format!("b\n{}", header_lines(&headers)))
    })
    .await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let req = client
        .request("shop.example.com", "/path?x=1")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("trailer", "x-sum")
        .header("upgrade", "h2c")
        .header("x-forwarded-for", "203.0.113.9")
        .header("via", "1.1 cdn")
        .header("x-end-to-end", "kept")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "spoofed.example.com")
        .body(body)
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    let got = lines(&resp.body);
    for gone in [
        "x-private",
        "keep-alive",
        "proxy-connection",
        "te:",
        "trailer",
        "upgrade",
    ] {
        assert!(
            !got.iter().any(|l| l.starts_with(gone)),
            "{gone} was forwarded: {got:#?}"
        );
    }
    // hyper's client adds nothing hop-by-hop of its own on a keep-alive request; none may come from us.
    assert!(
        !got.iter().any(|l| l.starts_with("connection:")),
        "{got:#?}"
    );
    for want in [
        "host: shop.example.com",
        "x-end-to-end: kept",
        "x-forwarded-for: 203.0.113.9, 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: shop.example.com",
        "via: 1.1 cdn, 1.1 test-node",
    ] {
        assert!(got.contains(&want), "missing {want:?} in {got:#?}");
    }
    for once in [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "via",
        "x-request-id",
    ] {
        let n = got
            .iter()
            .filter(|l| l.starts_with(&format!("{once}:")))
            .count();
        assert_eq!(n, 1, "{once} {n} times in {got:#?}");
    }
}

#[tokio::test]
async fn host_is_rewritten_per_cluster() {
    let b = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\nhost_rewrite = \"internal.svc\"\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let resp = client.get("public.example.com", "/").await;
    let got = lines(&resp.body);
    assert!(got.contains(&"host: internal.svc"), "{got:#?}");
    assert!(
        got.contains(&"x-forwarded-host: public.example.com"),
        "{got:#?}"
    );
}

#[tokio::test]
async fn response_hop_by_hop_removed() {
    let b = Backend::with("b", |_req| async {
        let mut r = Reply::new(Full::new(bytes::Bytes::from("ok")).boxed());
        let h = r.headers_mut();
        h.insert("connection", "x-upstream-private".parse().unwrap());
        h.insert("x-upstream-private", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=3".parse().unwrap());
        h.insert("x-public", "1".parse().unwrap());
        r
    })
    .await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let resp = client.get("a.test", "/").await;
    assert_eq!(resp.header("x-public"), "1");
    assert_eq!(resp.header("x-upstream-private"), "");
    assert_eq!(resp.header("keep-alive"), "");
    assert_eq!(resp.body, "ok");
}

#[tokio::test]
async fn a_request_id_is_generated_when_absent_and_kept_when_given() {
    let b = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;
    let id_of = |body: &str| {
        lines(body)
            .iter()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .map(str::to_string)
    };
    let first = id_of(&client.get("a.test", "/").await.body).expect("generated");
    let second = id_of(&client.get("a.test", "/").await.body).expect("generated");
    assert_eq!(first.len(), 32);
    assert!(first.bytes().all(|c| c.is_ascii_hexdigit()), "{first}");
    assert_ne!(first, second, "unique per request");
    assert_eq!(first[..16], second[..16], "same node seed");
    let req = client
        .request("a.test", "/")
        .header("x-request-id", "client-chosen-1")
        .body(Empty::new().boxed())
        .unwrap();
    let kept = id_of(&client.send(req).await.unwrap().body);
    assert_eq!(kept.as_deref(), Some("client-chosen-1"));
}
