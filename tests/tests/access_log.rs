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
