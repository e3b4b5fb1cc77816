//! The access log: off by default; on, one line per request with its outcome and request id.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_tests::{endpoints, Backend};
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn access_lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("edgeplane::access"))
            .map(str::to_string)
            .collect()
    }
}

async fn run(access_log: bool) -> Vec<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // A current-thread test runtime: every task of the node logs through this thread's subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let b = Backend::named("b").await;
    let text = format!(
        "[node]\naccess_log = {access_log}\n[node.tracing]\ngenerate = true\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"web\"\nhosts = [\"a.test\"]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&b, 1)])
    );
    let (_node, client) = node_and_client(&text).await;
    client.get("a.test", "/hello?x=1").await;
    client.get("nowhere.test", "/").await;
    captured.access_lines()
}

#[tokio::test]
async fn one_line_per_request_when_on_and_none_by_default() {
    assert!(run(false).await.is_empty(), "off by default");
    let lines = run(true).await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let ok = &lines[0];
    for part in [
        "method=GET",
        "host=a.test",
        "path=/hello",
        "status=200",
        "route=web",
        "cluster=c",
        "request_id=",
        "trace_id=",
    ] {
        assert!(ok.contains(part), "{part} missing in {ok}");
    }
    // The generated trace context's id, 32 hex digits (node.tracing.generate).
    let trace = ok.split("trace_id=").nth(1).unwrap();
    let trace = trace.split_whitespace().next().unwrap().trim_matches('"');
    assert!(
        trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()),
        "{ok}"
    );
    assert!(
        lines[1].contains("status=404") && lines[1].contains("route=none"),
        "{}",
        lines[1]
    );
}

/// A node writing its access log to `log` as configured by `table` (the `[node.access_log]` body).
async fn lines_node(
    table: &str,
    log: &std::path::Path,
) -> (
    edgeplane_proxy::NodeHandle,
    edgeplane_tests::Client,
    Backend,
) {
    let b = Backend::named("b").await;
    let text = format!(
        "[node]\n[node.access_log]\n{table}\noutput = {:?}\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"web\"\nhosts = [\"a.test\"]\ncluster = \"c\"\n\
         [[routes]]\nname = \"gone\"\nhosts = [\"gone.test\"]\ncluster = \"dead\"\n\
         [clusters.c]\n{}[clusters.dead]\n[[clusters.dead.endpoints]]\naddress = \"127.0.0.1:1\"\n",
        log,
        endpoints("c", &[(&b, 1)])
    );
    let (node, client) = node_and_client(&text).await;
    (node, client, b)
}

/// The log's lines once it holds `n` (the writer thread writes them soon after each response).
async fn wait_lines(log: &std::path::Path, n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    edgeplane_tests::eventually(
        std::time::Duration::from_secs(5),
        "access log lines written",
        || {
            lines = std::fs::read_to_string(log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let enough = lines.len() >= n;
            async move { enough }
        },
    )
    .await;
    lines
}

#[tokio::test]
async fn json_lines_hold_the_chosen_fields_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (_node, client, b) = lines_node(
        "format = \"json\"\nfields = [\"status\", \"method\", \"target\", \"route\", \"cluster\", \"upstream\", \"error\", \"user_agent\", \"time\", \"duration_ms\"]",
        &log,
    )
    .await;
    let req = client
        .request("a.test", "/hello/%22q%22?x=1")
        .header("user-agent", "curl/8 \"quoted\"")
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    assert_eq!(client.send(req).await.unwrap().status, 200);
    assert_eq!(client.get("gone.test", "/").await.status, 502);
    assert_eq!(client.get("nowhere.test", "/").await.status, 404);
    let lines = wait_lines(&log, 3).await;
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ok = &parsed[0];
    // The chosen fields, in their order (serde_json's map sorts keys, so read the line itself).
    let order = [
        "status",
        "method",
        "target",
        "route",
        "cluster",
        "upstream",
        "error",
        "user_agent",
        "time",
        "duration_ms",
    ];
    assert_eq!(ok.as_object().unwrap().len(), order.len(), "{ok}");
    let at: Vec<usize> = order
        .iter()
        .map(|k| lines[0].find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{}", lines[0]);
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["target"], "/hello/%22q%22?x=1");
    assert_eq!(ok["route"], "web");
    assert_eq!(ok["upstream"], b.addr.to_string());
    assert_eq!(ok["error"], serde_json::Value::Null);
    assert_eq!(ok["user_agent"], "curl/8 \"quoted\"");
    assert!(ok["duration_ms"].as_f64().unwrap() >= 0.0);
    let time = ok["time"].as_str().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.starts_with("20"),
        "{time}"
    );
    let failed = &parsed[1];
    assert_eq!(failed["status"], 502, "{failed}");
    assert_eq!(failed["error"], "connect_failed");
    assert_eq!(failed["upstream"], "127.0.0.1:1");
    let unrouted = &parsed[2];
    assert_eq!(unrouted["error"], "no_route", "{unrouted}");
    assert_eq!(unrouted["upstream"], serde_json::Value::Null);
}

#[tokio::test]
async fn text_lines_follow_the_template_and_the_file_follows_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (_node, client, _b) = lines_node(
        "format = \"text\"\ntemplate = '$client \"$method $target $protocol\" $status ${route}/$cluster ua=\"$user_agent\" $$'",
        &log,
    )
    .await;
    let req = client
        .request("a.test", "/p?q=1")
        .header("user-agent", "a\"b")
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    client.send(req).await.unwrap();
    let lines = wait_lines(&log, 1).await;
    assert_eq!(
        lines[0],
        "127.0.0.1 \"GET /p?q=1 HTTP/1.1\" 200 web/c ua=\"a\\x22b\" $"
    );

    // logrotate's default: the file is moved away and the node goes on in a new one.
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    edgeplane_tests::eventually(
        std::time::Duration::from_secs(5),
        "a new access log after rotation",
        || {
            let client = client.clone();
            let log = log.clone();
            async move {
                client.get("a.test", "/after").await;
                std::fs::read_to_string(&log).is_ok_and(|t| t.contains("/after"))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn an_unwritable_access_log_stops_the_start_with_its_path() {
    let config = edgeplane_config::from_toml(
        "[node]\n[node.access_log]\noutput = \"/nonexistent-dir/access.log\"\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n\
         [[routes]]\ncluster = \"c\"\n[clusters.c]\n",
    )
    .unwrap();
    let Err(err) = edgeplane_proxy::NodeHandle::start(&config).await else {
        panic!("the node must not start");
    };
    let text = err.to_string();
    assert!(
        text.contains("access log: cannot open /nonexistent-dir/access.log"),
        "{text}"
    );
}
