//! Response compression through a real node: gzip, brotli and zstd by `Accept-Encoding`, decoded
//! back to the backend's bytes; responses that are already encoded, ranges, small ones, unlisted
//! media types, `no-transform` and `HEAD` are left alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, node_config, Backend, Client, Resp};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use std::io::Read;

/// The page the backend serves at `/page` (20 KiB of HTML).
fn page() -> String {
    "<p>the same paragraph of a long page, again and again</p>\n".repeat(350)
}

async fn backend() -> Backend {
    Backend::with("b", |req| async move {
        let path = req.uri().path().to_string();
        let (ct, body, extra): (&str, Vec<u8>, Option<(&str, &str)>) = match path.as_str() {
            "/page" => ("text/html; charset=utf-8", page().into_bytes(), None),
            "/small" => ("text/html", b"<p>hi</p>".to_vec(), None),
            "/png" => ("image/png", vec![0x89; 4096], None),
            "/gzipped" => (
                "text/html",
                page().into_bytes(),
                Some(("content-encoding", "gzip")),
            ),
            "/fixed" => (
                "text/html",
                page().into_bytes(),
                Some(("cache-control", "no-transform")),
            ),
            _ => ("text/plain", b"not found".to_vec(), None),
        };
        let len = body.len();
        let mut r = Response::new(Full::new(body.into()).boxed());
        r.headers_mut().insert("content-type", ct.parse().unwrap());
        r.headers_mut()
            .insert("content-length", len.to_string().parse().unwrap());
        r.headers_mut().insert("etag", "\"v1\"".parse().unwrap());
        if let Some((k, v)) = extra {
            r.headers_mut().insert(k, v.parse().unwrap());
        }
        *r.status_mut() = StatusCode::OK;
        r
    })
    .await
}

async fn get(client: &Client, path: &str, headers: &[(&str, &str)], method: &str) -> Resp {
    let mut req = client.request("z.test", path).method(method);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client
        .send(req.body(http_body_util::Empty::new().boxed()).unwrap())
        .await
        .unwrap()
}

fn decode(encoding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(data).unwrap(),
        other => panic!("unexpected encoding {other:?}"),
    }
    out
}

#[tokio::test]
async fn responses_are_compressed_by_accept_encoding() {
    let b = backend().await;
    let text = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[routes.compression]\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    ));
    let (_node, client) = node_and_client(&text).await;

    for (accept, want) in [
        ("gzip", "gzip"),
        ("br", "br"),
        ("zstd", "zstd"),
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip;q=1, br;q=0.5", "gzip"),
    ] {
        let r = get(&client, "/page", &[("accept-encoding", accept)], "GET").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header("content-encoding"), want, "{accept}");
        assert_eq!(r.header("vary"), "accept-encoding");
        assert_eq!(r.header("etag"), "W/\"v1\"", "a strong ETag becomes weak");
        assert!(
            r.headers.get("content-length").is_none()
                || r.header("content-length") == r.bytes.len().to_string()
        );
        assert!(
            r.bytes.len() < page().len() / 5,
            "{accept}: {} bytes",
            r.bytes.len()
        );
        assert_eq!(decode(want, &r.bytes), page().as_bytes(), "{accept}");
    }

    // Left alone: no Accept-Encoding, a range, HEAD, small, unlisted type, encoded, no-transform.
    let untouched = |r: &Resp| r.headers.get("content-encoding").is_none();
    let r = get(&client, "/page", &[], "GET").await;
    assert!(untouched(&r) && r.bytes == page().as_bytes());
    let r = get(
        &client,
        "/page",
        &[("accept-encoding", "gzip"), ("range", "bytes=0-9")],
        "GET",
    )
    .await;
    assert!(untouched(&r), "never for ranges");
    let r = get(&client, "/page", &[("accept-encoding", "gzip")], "HEAD").await;
    assert!(untouched(&r));
    assert_eq!(r.header("content-length"), page().len().to_string());
    for path in ["/small", "/png", "/fixed"] {
        let r = get(&client, path, &[("accept-encoding", "gzip, br")], "GET").await;
        assert!(untouched(&r), "{path}: {:?}", r.headers);
        assert_eq!(r.header("etag"), "\"v1\"");
    }
    let r = get(&client, "/gzipped", &[("accept-encoding", "br")], "GET").await;
    assert_eq!(
        r.header("content-encoding"),
        "gzip",
        "an encoded response is not encoded again"
    );
    assert_eq!(r.bytes, page().as_bytes());
}

#[test]
fn invalid_compression_settings_are_rejected_with_paths() {
    let text = node_config(
        "[[routes]]\ncluster = \"c\"\n[routes.compression]\nalgorithms = [\"gzip\", \"lz4\", \"gzip\"]\n\
         min_size = -1\ncontent_types = [\"text\", \"text/*\"]\n[clusters.c]\n",
    );
    let err = edgeplane_config::from_toml(&text).unwrap_err().lines();
    for want in [
        "routes[0].compression.algorithms[1]: unknown encoding \"lz4\"",
        "routes[0].compression.algorithms[2]: \"gzip\" is listed twice",
        "routes[0].compression.min_size: -1 is out of range",
        "routes[0].compression.content_types[0]: expected type/subtype",
    ] {
        assert!(err.iter().any(|l| l.starts_with(want)), "{want}: {err:#?}");
    }
}
