//! Endpoints named by DNS through a real node: a name that resolves (`localhost`) serves; a name
//! that does not resolve at start leaves its cluster without endpoints (503) while the rest is
//! served, and is counted as failed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{eventually, node_config, Backend};
use http::StatusCode;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_endpoints_are_resolved_off_the_request_path() {
    let b = Backend::named("b").await;
    let text = node_config(&format!(
        "[[routes]]\nhosts = [\"named.test\"]\ncluster = \"named\"\n\
         [[routes]]\nhosts = [\"missing.test\"]\ncluster = \"missing\"\n\
         [clusters.named]\ndns_refresh = \"1s\"\n[[clusters.named.endpoints]]\naddress = \"localhost:{}\"\n\
         [clusters.missing]\n[[clusters.missing.endpoints]]\naddress = \"no-such-host.invalid:80\"\n",
        b.addr.port()
    ))
    .replace("[node]\n", "[node]\nadmin = \"127.0.0.1:0\"\n");
    let (node, client) = node_and_client(&text).await;

    // `localhost` may also resolve to ::1, where nothing listens: the default retry on connect
    // failures sends those requests to 127.0.0.1, so every request is served.
    for _ in 0..20 {
        let resp = client.get("named.test", "/").await;
        assert_eq!(
            (resp.status, resp.header("x-backend")),
            (StatusCode::OK, "b")
        );
    }
    let resp = client.get("missing.test", "/").await;
    assert_eq!(resp.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.header("x-edgeplane-error"), "no_endpoint");

    let count = |name: &str, result: &str| {
        let series =
            format!("edgeplane_dns_resolutions_total{{name=\"{name}\",result=\"{result}\"}}");
        node.telemetry()
            .render()
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    assert!(count("no-such-host.invalid:80", "failed") >= 1);
    // Resolved again every second (dns_refresh), never on the request path.
    let port = b.addr.port();
    let name = format!("localhost:{port}");
    let first = count(&name, "ok");
    eventually(
        Duration::from_secs(5),
        "localhost resolved again",
        || async { count(&name, "ok") > first },
    )
    .await;
}
