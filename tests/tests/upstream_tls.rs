//! TLS to upstreams through a real node and real TLS backends (certificates made at test time):
//! verification against a configured CA, the SNI name, a verification failure answered 502, mutual TLS,
//! and HTTP/2 to the upstream by ALPN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{Backend, TestPki};
use http::StatusCode;

fn cluster(backend: &Backend, tls: &str) -> String {
    format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:0\"\n[[routes]]\ncluster = \"c\"\n[clusters.c]\n\
         [clusters.c.retry]\nattempts = 0\n[clusters.c.tls]\n{tls}\
         [[clusters.c.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    )
}

#[tokio::test]
async fn verified_tls_with_sni_and_a_502_when_verification_fails() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let backend = Backend::tls("secure", pki.server_config(&["backend.internal"], false)).await;

    let ok = cluster(
        &backend,
        &format!("sni = \"backend.internal\"\nca = \"{}\"\n", ca.display()),
    );
    let (_node, client) = node_and_client(&ok).await;
    let r = client.get("u.test", "/").await;
    assert_eq!(
        (r.status, r.header("x-backend")),
        (StatusCode::OK, "secure")
    );
    assert_eq!(r.header("x-version"), "HTTP/1.1", "h2 not asked for");

    // The certificate does not cover the SNI name.
    let wrong_name = cluster(
        &backend,
        &format!("sni = \"other.internal\"\nca = \"{}\"\n", ca.display()),
    );
    let (_node2, client2) = node_and_client(&wrong_name).await;
    let r = client2.get("u.test", "/").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.header("x-edgeplane-error"), "connect_failed");

    // Another CA signed it.
    let other_dir = tempfile::tempdir().unwrap();
    let other_ca = TestPki::new().write_ca(other_dir.path());
    let untrusted = cluster(
        &backend,
        &format!(
            "sni = \"backend.internal\"\nca = \"{}\"\n",
            other_ca.display()
        ),
    );
    let (_node3, client3) = node_and_client(&untrusted).await;
    let r = client3.get("u.test", "/").await;
    assert_eq!(
        (r.status, r.header("x-edgeplane-error")),
        (StatusCode::BAD_GATEWAY, "connect_failed")
    );
    assert!(r.body.contains("TLS"), "{}", r.body);
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let (cert, key) = pki.client("edge");
    let cert = TestPki::write(dir.path(), "client.pem", &cert);
    let key = TestPki::write(dir.path(), "client.key", &key);
    let backend = Backend::tls("mtls", pki.server_config(&["m.internal"], true)).await;
    let base = format!("sni = \"m.internal\"\nca = \"{}\"\n", ca.display());

    let (_a, without) = node_and_client(&cluster(&backend, &base)).await;
    assert_eq!(
        without.get("m.test", "/").await.status,
        StatusCode::BAD_GATEWAY
    );

    let with_cert = format!(
        "{base}client_cert = \"{}\"\nclient_key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let (_b, with) = node_and_client(&cluster(&backend, &with_cert)).await;
    let r = with.get("m.test", "/").await;
    assert_eq!((r.status, r.header("x-backend")), (StatusCode::OK, "mtls"));
}

#[tokio::test]
async fn http2_to_the_upstream_when_the_cluster_asks() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let backend = Backend::tls("h2", pki.server_config(&["h2.internal"], false)).await;
    let cfg = cluster(
        &backend,
        &format!(
            "sni = \"h2.internal\"\nca = \"{}\"\nh2 = true\n",
            ca.display()
        ),
    );
    let (node, client) = node_and_client(&cfg).await;
    for _ in 0..5 {
        let r = client.get("h2.test", "/path").await;
        assert_eq!(
            (r.status, r.header("x-version")),
            (StatusCode::OK, "HTTP/2.0")
        );
    }
    // Five requests, one shared connection.
    assert_eq!(node.tables().load().clusters[0].state.connections(), 1);
}

#[tokio::test]
async fn a_missing_ca_file_rejects_the_config_with_its_path() {
    let backend = Backend::named("plain").await;
    let text = cluster(&backend, "ca = \"/nonexistent/ca.pem\"\n");
    let routing = edgeplane_config::from_toml(&text).unwrap().routing;
    let err = edgeplane_proxy::tables::Snapshot::build(&routing, None).unwrap_err();
    assert_eq!(err.lines().len(), 1);
    assert!(
        err.lines()[0].starts_with("clusters.c.tls.ca: cannot read /nonexistent/ca.pem"),
        "{:?}",
        err.lines()
    );
}
