//! `/metrics` on the admin listener: request counters and histograms move with traffic, every name is in
//! the catalog, promtool accepts the output, a real Prometheus scrapes it, and a config push moves the
//! controller's metrics.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_bus::Subjects;
use edgeplane_controller::publish::{push, PushOptions};
use edgeplane_proxy::fleet::join;
use edgeplane_proxy::telemetry::{Kind, CATALOG};
use edgeplane_tests::{
    endpoints, eventually, promtool_bin, raw_request, Backend, Client, NatsServer, Prometheus,
};
use std::net::SocketAddr;
use std::time::Duration;

fn config(backend: &Backend, extra_node: &str) -> String {
    format!(
        "[node]\nid = \"m1\"\nzone = \"z1\"\nadmin = \"127.0.0.1:0\"\n{extra_node}\n\
         [[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"api\"\nhosts = [\"m.test\"]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(backend, 1)])
    )
}

async fn scrape(admin: SocketAddr) -> String {
    let r = Client::new(admin).get("admin", "/metrics").await;
    assert_eq!(r.status, http::StatusCode::OK);
    assert!(r
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    r.body
}

/// The value of the sample line `series` (name with labels, exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_traffic_are_catalogued_and_pass_promtool() {
    let a = Backend::named("a").await;
    let (node, addr) = start_node(&config(&a, "")).await;
    let admin = node.admin_addr().unwrap();
    let client = Client::new(addr);
    for _ in 0..3 {
        assert_eq!(client.get("m.test", "/").await.status, http::StatusCode::OK);
    }
    assert_eq!(
        client.get("other.test", "/").await.status,
        http::StatusCode::NOT_FOUND
    );

    // A connection that closes adds its bytes at close.
    let raw = b"GET / HTTP/1.1\r\nHost: m.test\r\nConnection: close\r\n\r\n";
    let answer = raw_request(addr, raw).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eventually(Duration::from_secs(5), "bytes counted at close", || async {
        let text = scrape(admin).await;
        sample(&text, "edgeplane_downstream_received_bytes_total") >= Some(raw.len() as f64)
            && sample(&text, "edgeplane_downstream_sent_bytes_total") >= Some(answer.len() as f64)
    })
    .await;

    let text = scrape(admin).await;
    let ok = "{route=\"api\",cluster=\"c\",class=\"2xx\"}";
    assert_eq!(
        sample(&text, &format!("edgeplane_requests_total{ok}")),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("edgeplane_request_duration_seconds_count{ok}")
        ),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            "edgeplane_requests_total{route=\"none\",cluster=\"none\",class=\"4xx\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "edgeplane_proxy_errors_total{cluster=\"none\",kind=\"no_route\"}"
        ),
        Some(1.0)
    );
    let ep = format!("{{cluster=\"c\",endpoint=\"{}\"}}", a.addr);
    assert_eq!(
        sample(&text, &format!("edgeplane_endpoint_requests_total{ep}")),
        Some(4.0)
    );
    assert_eq!(
        sample(&text, &format!("edgeplane_endpoint_health{ep}")),
        Some(100.0)
    );
    assert_eq!(
        sample(&text, &format!("edgeplane_endpoint_in_flight{ep}")),
        Some(0.0)
    );
    assert!(
        text.contains("edgeplane_node_info{node=\"m1\",zone=\"z1\",version=\""),
        "{text}"
    );
    assert_eq!(sample(&text, "edgeplane_snapshot_generation"), Some(1.0));

    // Every family is in the catalog, with its kind.
    let mut families = 0;
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        let entry = CATALOG
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the catalog"));
        let want = match entry.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        assert_eq!(kind, want, "{name}");
        families += 1;
    }
    assert!(families >= 10, "{text}");

    // Every sample's label names are the ones the catalog lists for its family.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let series = line.rsplit_once(' ').unwrap().0;
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let entry = CATALOG
            .iter()
            .find(|e| e.name == name)
            .or_else(|| {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))?;
                CATALOG.iter().find(|e| e.name == family)
            })
            .unwrap_or_else(|| panic!("{name} is not in the catalog"));
        let listed: Vec<&str> = entry.labels.split(", ").filter(|l| !l.is_empty()).collect();
        for pair in labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
        {
            let label = pair.split_once('=').unwrap().0;
            assert!(
                listed.contains(&label) || label == "le",
                "{name}: label {label} is not in the catalog's {listed:?}"
            );
        }
    }

    // promtool lints the exposition format.
    let mut child = std::process::Command::new(promtool_bin())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn encode_query(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_request_counter() {
    let a = Backend::named("a").await;
    let (node, addr) = start_node(&config(&a, "")).await;
    let prometheus = Prometheus::scraping(node.admin_addr().unwrap());
    let client = Client::new(addr);
    for _ in 0..5 {
        client.get("m.test", "/").await;
    }
    let query = encode_query("sum(edgeplane_requests_total{route=\"api\",class=\"2xx\"})");
    let api = Client::new(prometheus.addr);
    eventually(
        Duration::from_secs(60),
        "Prometheus reports 5 requests",
        || {
            let (api, query) = (api.clone(), query.clone());
            async move {
                let req = api
                    .request("prometheus", &format!("/api/v1/query?query={query}"))
                    .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                    .unwrap();
                let Ok(r) = api.send(req).await else {
                    return false;
                };
                let Ok(json) = serde_json::from_str::<serde_json::Value>(&r.body) else {
                    return false;
                };
                json["data"]["result"][0]["value"][1].as_str() == Some("5")
            }
        },
    )
    .await;

    // Every query of the shipped Grafana dashboard is valid PromQL for this Prometheus.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/grafana-dashboard.json")).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let req = api
                .request(
                    "prometheus",
                    &format!("/api/v1/query?query={}", encode_query(&expr)),
                )
                .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
                .unwrap();
            let r = api.send(req).await.unwrap();
            let json: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(json["status"], "success", "{expr}: {}", r.body);
            checked += 1;
        }
    }
    assert!(checked >= 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_moves_the_config_metrics() {
    let nats = NatsServer::start(&[]);
    let state = tempfile::tempdir().unwrap();
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let extra = format!(
        "state_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]",
        state.path().display(),
        nats.url()
    );
    let (node, _addr) = start_node(&config(&a, &extra)).await;
    let _controller = join(&node).await.unwrap().unwrap();
    let admin = node.admin_addr().unwrap();
    let publisher = common::publisher(&nats).await;
    let doc = format!(
        "[[routes]]\nname = \"api\"\nhosts = [\"m.test\"]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    );
    let options = PushOptions {
        bucket: "edge_config".into(),
        replicas: 1,
        expect_revision: None,
        force: false,
        discover: Duration::from_millis(300),
        timeout: Duration::from_secs(5),
    };
    // The node connects in the background; push until it has applied one revision.
    eventually(Duration::from_secs(15), "the node applies a push", || {
        let (publisher, doc, options) = (&publisher, doc.clone(), &options);
        async move {
            let _ = push(publisher, &Subjects::default(), &doc, options).await;
            sample(
                &scrape(admin).await,
                "edgeplane_config_applies_total{result=\"applied\"}",
            ) == Some(1.0)
        }
    })
    .await;
    let text = scrape(admin).await;
    assert_eq!(
        sample(&text, "edgeplane_config_push_apply_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "edgeplane_config_revision").unwrap() >= 1.0);
    assert_eq!(sample(&text, "edgeplane_bus_connects_total"), Some(1.0));
    assert_eq!(
        sample(&text, "edgeplane_bus_decode_errors_total"),
        Some(0.0)
    );
    assert!(sample(&text, "edgeplane_bus_messages_received_total").unwrap() >= 1.0);
}
