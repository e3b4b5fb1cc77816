//! NATS over TLS with a real nats-server that requires and verifies client certificates (made at test
//! time): the bus connects with the configured CA and client certificate, refuses without them, and a
//! node configured with `[node.nats] tls_*` takes a config push over that connection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{push_options, start_node};
use edgeplane_bus::{BusOptions, Subjects, TlsFiles};
use edgeplane_controller::publish::push;
use edgeplane_proxy::fleet::join;
use edgeplane_tests::{endpoints, eventually, Backend, Client, NatsServer, TestPki};
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Files {
    ca: PathBuf,
    client: (PathBuf, PathBuf),
    _dir: tempfile::TempDir,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as files; and a server that
/// requires TLS and verifies clients against the CA.
fn tls_server(pki: &TestPki) -> (NatsServer, Files) {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let (srv_cert, srv_key) = pki.server(&["127.0.0.1", "localhost"]);
    let (cli_cert, cli_key) = pki.client("edge-node");
    let ca = pki.write_ca(dir.path());
    let (sc, sk) = (
        write("server.pem", &srv_cert),
        write("server.key", &srv_key),
    );
    let client = (
        write("client.pem", &cli_cert),
        write("client.key", &cli_key),
    );
    let arg = |p: &Path| p.display().to_string();
    let nats = NatsServer::start(&[
        "--tlsverify",
        "--tlscert",
        &arg(&sc),
        "--tlskey",
        &arg(&sk),
        "--tlscacert",
        &arg(&ca),
    ]);
    (
        nats,
        Files {
            ca,
            client,
            _dir: dir,
        },
    )
}

fn options(nats: &NatsServer, tls: TlsFiles) -> BusOptions {
    BusOptions {
        urls: vec![nats.url()],
        tls,
        retry_initial: false,
        ..BusOptions::default()
    }
}

#[tokio::test]
async fn the_bus_connects_with_the_ca_and_client_certificate_and_refuses_without() {
    let pki = TestPki::new();
    let (nats, files) = tls_server(&pki);
    let full = TlsFiles {
        ca: Some(files.ca.clone()),
        client: Some(files.client.clone()),
        required: true,
    };
    let client = options(&nats, full.clone())
        .connect(Default::default())
        .await
        .unwrap();
    let mut sub = client.subscribe("tls.check").await.unwrap();
    client
        .publish("tls.check", "over tls".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let msg = tokio::time::timeout(
        Duration::from_secs(5),
        futures_util::StreamExt::next(&mut sub),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&msg.payload[..], b"over tls");

    let no_client_cert = TlsFiles {
        client: None,
        ..full.clone()
    };
    assert!(options(&nats, no_client_cert)
        .connect(Default::default())
        .await
        .is_err());
    let other_ca = tempfile::tempdir().unwrap();
    let wrong_ca = TlsFiles {
        ca: Some(TestPki::new().write_ca(other_ca.path())),
        ..full
    };
    assert!(options(&nats, wrong_ca)
        .connect(Default::default())
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_takes_a_push_over_tls() {
    let pki = TestPki::new();
    let (nats, files) = tls_server(&pki);
    let state = tempfile::tempdir().unwrap();
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let routing = |x: &Backend| {
        format!(
            "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
            endpoints("c", &[(x, 1)])
        )
    };
    let text = format!(
        "[node]\nid = \"tls-node\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
         tls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\ntls_required = true\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n{}",
        state.path().display(),
        nats.url(),
        files.ca.display(),
        files.client.0.display(),
        files.client.1.display(),
        routing(&a)
    );
    let (handle, addr) = start_node(&text).await;
    let _controller = join(&handle).await.unwrap().expect("node has [node.nats]");
    let publisher = options(
        &nats,
        TlsFiles {
            ca: Some(files.ca.clone()),
            client: Some(files.client.clone()),
            required: true,
        },
    )
    .connect(Default::default())
    .await
    .unwrap();
    let opts = push_options();
    let client = Client::new(addr);
    eventually(
        Duration::from_secs(10),
        "the node applies the push",
        || async {
            let _ = push(&publisher, &Subjects::default(), &routing(&b), &opts).await;
            client.get("t.test", "/").await.header("x-backend") == "b"
        },
    )
    .await;
}
