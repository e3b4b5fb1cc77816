//! TLS termination through a real node, with certificates made at test time: SNI selection (exact,
//! wildcard, default), HTTP/2 and HTTP/1.1 by ALPN (a Rust client and curl --http2), rotation of the
//! certificate files under concurrent load with zero failed requests and live connections kept, a
//! bad certificate rejected whole while the old one stays, and idle TLS connections parking.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_tests::{eventually, tls_request, Backend, Client, TestPki, TlsConn};
use http::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// Writes `content` to `path` atomically (temp file and rename), as certificate tooling does.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn tls_config(backend: &Backend, certs: &str) -> String {
    format!(
        "[[node.listeners]]\naddress = \"127.0.0.1:0\"\n[node.listeners.tls]\n\
         [[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"{}\"\n{certs}",
        backend.addr
    )
}

fn inline_cert((cert, key): &(String, String)) -> String {
    format!("[[certificates]]\ncert_pem = '''\n{cert}'''\nkey_pem = '''\n{key}'''\n")
}

#[tokio::test]
async fn sni_picks_exact_then_wildcard_then_the_default() {
    let pki = TestPki::new();
    let (default, api, wild) = (
        pki.server(&["default.test"]),
        pki.server(&["api.example.test"]),
        pki.server(&["*.example.test"]),
    );
    let backend = Backend::named("b").await;
    let cfg = tls_config(&backend, &[&default, &api, &wild].map(inline_cert).concat());
    let (_node, addr) = start_node(&cfg).await;
    for (sni, want) in [
        ("api.example.test", &api),
        ("www.example.test", &wild),
        ("default.test", &default),
    ] {
        let r = tls_request(addr, sni, &pki.ca_pem, &["http/1.1"])
            .await
            .unwrap();
        assert_eq!(r.peer_cert, der(&want.0), "{sni}");
        assert_eq!((r.status, r.backend.as_str()), (StatusCode::OK, "b"));
    }
    // An unknown name gets the default certificate, which a verifying client then refuses.
    let err = tls_request(addr, "unknown.test", &pki.ca_pem, &[])
        .await
        .unwrap_err();
    assert!(err.contains("handshake"), "{err}");
}

#[tokio::test]
async fn alpn_chooses_http2_or_http1() {
    let pki = TestPki::new();
    let cert = pki.server(&["h.test"]);
    let backend = Backend::named("b").await;
    let (_node, addr) = start_node(&tls_config(&backend, &inline_cert(&cert))).await;
    let h2 = tls_request(addr, "h.test", &pki.ca_pem, &["h2", "http/1.1"])
        .await
        .unwrap();
    assert_eq!(
        (h2.alpn.as_deref(), h2.status),
        (Some("h2"), StatusCode::OK)
    );
    let h1 = tls_request(addr, "h.test", &pki.ca_pem, &["http/1.1"])
        .await
        .unwrap();
    assert_eq!(
        (h1.alpn.as_deref(), h1.status),
        (Some("http/1.1"), StatusCode::OK)
    );
    let none = tls_request(addr, "h.test", &pki.ca_pem, &[]).await.unwrap();
    assert_eq!((none.alpn, none.status), (None, StatusCode::OK));

    // curl, as an operator would try it.
    let dir = tempfile::tempdir().unwrap();
    let ca = pki.write_ca(dir.path());
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(&ca)
        .arg("--resolve")
        .arg(format!("h.test:{}:127.0.0.1", addr.port()))
        .arg(format!("https://h.test:{}/", addr.port()))
        .output()
        .await
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200", "{out:?}");
}

#[tokio::test]
async fn rotating_the_files_under_load_fails_no_request_and_keeps_live_connections() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("site.pem"), dir.path().join("site.key"));
    let old = pki.server(&["r.test"]);
    replace(&cert_path, &old.0);
    replace(&key_path, &old.1);
    let backend = Backend::named("b").await;
    let certs = format!(
        "[[certificates]]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let (node, addr) = start_node(&tls_config(&backend, &certs)).await;
    let mut live = TlsConn::open(addr, "r.test", &pki.ca_pem, &["http/1.1"])
        .await
        .unwrap();
    assert_eq!(live.peer_cert, der(&old.0));
    assert_eq!(live.get().await.unwrap().0, StatusCode::OK);

    // Clients opening new connections all the time.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, ok, failed, ca) =
                (stop.clone(), ok.clone(), failed.clone(), pki.ca_pem.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match tls_request(addr, "r.test", &ca, &["h2", "http/1.1"]).await {
                        Ok(r) if r.status == StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                        other => {
                            eprintln!("failed: {other:?}");
                            failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(5), "load is flowing", || async {
        ok.load(Ordering::SeqCst) > 20
    })
    .await;

    // Rotate: key first, then the certificate (a moment where they do not match is rejected and
    // retried when the second file lands).
    let new = pki.server(&["r.test"]);
    replace(&key_path, &new.1);
    replace(&cert_path, &new.0);
    eventually(
        Duration::from_secs(5),
        "new handshakes get the new certificate",
        || async {
            tls_request(addr, "r.test", &pki.ca_pem, &[])
                .await
                .is_ok_and(|r| r.peer_cert == der(&new.0))
        },
    )
    .await;
    let after = ok.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "more load after the rotation",
        || async { ok.load(Ordering::SeqCst) > after + 20 },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no request failed during the rotation"
    );
    assert_eq!(
        live.get().await.unwrap().0,
        StatusCode::OK,
        "the live connection was not cut"
    );

    // A bad certificate (a key that does not match) is rejected whole; the current one stays.
    let stranger = pki.server(&["r.test"]);
    replace(&key_path, &stranger.1);
    let generation = node.tables().load().generation;
    let err = node.tables().reload_certificates().unwrap_err();
    assert_eq!(
        err.lines(),
        vec!["certificates[0].key: the key does not match the certificate".to_string()]
    );
    assert_eq!(node.tables().load().generation, generation);
    let r = tls_request(addr, "r.test", &pki.ca_pem, &[]).await.unwrap();
    assert_eq!((r.status, r.peer_cert), (StatusCode::OK, der(&new.0)));
}

#[tokio::test]
async fn a_push_with_a_bad_certificate_is_rejected_and_changes_nothing() {
    let pki = TestPki::new();
    let good = pki.server(&["p.test"]);
    let backend = Backend::named("b").await;
    let cfg = tls_config(&backend, &inline_cert(&good));
    let (node, addr) = start_node(&cfg).await;
    let before = node.tables().load().hash;
    // Another certificate's key: valid PEM, wrong key.
    let other = pki.server(&["p.test"]);
    let bad = tls_config(&backend, &inline_cert(&(good.0.clone(), other.1.clone())));
    let routing = edgeplane_config::from_toml(&bad).unwrap().routing;
    let sink = node.sink();
    let err = sink.apply(&routing).unwrap_err().to_string();
    assert!(
        err.contains("certificates[0].key: the key does not match"),
        "{err}"
    );
    // A routing without any certificate would leave the TLS listener without one.
    let mut bare = routing.clone();
    bare.certificates.clear();
    assert!(sink.apply(&bare).unwrap_err().to_string().contains(
        "node.listeners[0].tls: a TLS listener needs at least one [[certificates]] entry"
    ));
    // Several problems: one line each (a rejected push acknowledges them one per line).
    let missing = "[[certificates]]\ncert = \"/nonexistent/a.pem\"\nkey = \"/nonexistent/a.key\"\n\
                   [[certificates]]\ncert = \"/nonexistent/b.pem\"\nkey = \"/nonexistent/b.key\"\n";
    let two = edgeplane_config::from_toml(&tls_config(&backend, missing))
        .unwrap()
        .routing;
    let lines = sink.apply(&two).unwrap_err().0;
    assert!(lines.len() >= 2, "{lines:?}");
    assert!(lines[0].starts_with("certificates[0]"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("certificates[1]")),
        "{lines:?}"
    );
    assert_eq!(node.tables().load().hash, before);
    let r = tls_request(addr, "p.test", &pki.ca_pem, &[]).await.unwrap();
    assert_eq!((r.status, r.peer_cert), (StatusCode::OK, der(&good.0)));
}

/// An idle TLS keep-alive connection parks like a cleartext one (hyper's state goes, the TLS session
/// stays), is woken by the client's next record, and serves it on the same connection, again and
/// again.
#[tokio::test]
async fn an_idle_tls_connection_parks_and_serves_its_next_requests() {
    let pki = TestPki::new();
    let cert = pki.server(&["p.test"]);
    let backend = Backend::named("b").await;
    let cfg = format!(
        "[node]\nadmin = \"127.0.0.1:0\"\n{}",
        tls_config(&backend, &inline_cert(&cert))
    );
    let (node, addr) = start_node(&cfg).await;
    let admin = Client::new(node.admin_addr().unwrap());
    let mut conn = TlsConn::open(addr, "p.test", &pki.ca_pem, &["http/1.1"])
        .await
        .unwrap();
    assert_eq!(conn.alpn.as_deref(), Some("http/1.1"));
    for round in 0..3 {
        let (status, backend) = conn.get().await.unwrap();
        assert_eq!(
            (status, backend.as_str()),
            (StatusCode::OK, "b"),
            "request {round}"
        );
        eventually(Duration::from_secs(10), "the TLS connection parked", || {
            let admin = admin.clone();
            async move { common::parked(&admin).await == 1 }
        })
        .await;
    }
    // Parked a third time, it still answers.
    let (status, _) = conn.get().await.unwrap();
    assert_eq!(status, StatusCode::OK);
}
