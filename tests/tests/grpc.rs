//! gRPC through a real node: a grpcio server (Python, tests/py/grpc_server.py) behind an `h2c`
//! cluster, a grpcio client (tests/py/grpc_client.py) in front: unary, server-, client- and
//! bidirectional streaming calls, statuses and trailers passed through, `grpc-status` counted, and a
//! trailers-only UNAVAILABLE retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_tests::{node_config, python_with_nats};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The grpcio server, killed when dropped.
struct GrpcServer {
    child: Child,
    port: u16,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py").join(name)
}

fn grpc_server() -> GrpcServer {
    let mut child = Command::new(python_with_nats())
        .arg(script("grpc_server.py"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port from the gRPC server: {line:?}"));
    GrpcServer { child, port }
}

/// Runs the client against `address` (`key`: the server's fail-once state to use); its calls'
/// outcomes by name.
fn grpc_calls(
    address: std::net::SocketAddr,
    key: &str,
) -> std::collections::HashMap<String, Value> {
    let out = Command::new(python_with_nats())
        .arg(script("grpc_client.py"))
        .arg(address.to_string())
        .arg(key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["call"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn config(port: u16, retry: &str, log: &Path) -> String {
    node_config(&format!(
        "[[routes]]\nname = \"grpc\"\ncluster = \"echo\"\n[clusters.echo]\nh2c = true\n{retry}\n\
         [[clusters.echo.endpoints]]\naddress = \"127.0.0.1:{port}\"\n",
    ))
    .replace(
        "[node]\n",
        &format!(
            "[node]\nadmin = \"127.0.0.1:0\"\naccess_log = {{ output = {log:?}, \
             fields = [\"target\", \"status\", \"grpc_status\", \"upstream\"] }}\n"
        ),
    )
}

fn grpc_count(node: &edgeplane_proxy::NodeHandle, status: &str) -> u64 {
    let series = format!(
        "edgeplane_grpc_responses_total{{route=\"grpc\",cluster=\"echo\",grpc_status=\"{status}\"}}"
    );
    node.telemetry()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_pass_through_an_h2c_cluster() {
    let server = grpc_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let (node, addr) = start_node(&config(server.port, "", &log)).await;
    let calls = tokio::task::spawn_blocking(move || grpc_calls(addr, "plain"))
        .await
        .unwrap();

    let say = &calls["say"];
    assert_eq!(say["status"], "OK", "{say}");
    assert_eq!(say["messages"][0], "echo:hello");
    assert_eq!(
        say["trailers"]["x-served-by"], "grpc-server",
        "trailers forwarded: {say}"
    );
    let nf = &calls["not-found"];
    assert_eq!(
        (nf["status"].as_str(), nf["details"].as_str()),
        (Some("NOT_FOUND"), Some("no such thing")),
        "{nf}"
    );
    assert_eq!(
        calls["unavailable-once"]["status"], "UNAVAILABLE",
        "no retry configured"
    );
    let count = &calls["count"];
    assert_eq!(
        count["messages"],
        serde_json::json!(["0", "1", "2", "3", "4"]),
        "{count}"
    );
    assert_eq!(count["trailers"]["x-served-by"], "grpc-server");
    assert_eq!(calls["sum"]["messages"][0], "6", "{}", calls["sum"]);
    assert_eq!(
        calls["chat"]["messages"],
        serde_json::json!(["re:x", "re:y", "re:z"]),
        "{}",
        calls["chat"]
    );

    // Statuses are counted per route and cluster, and logged, when each call's response ends.
    edgeplane_tests::eventually(
        std::time::Duration::from_secs(5),
        "six calls counted",
        || async {
            grpc_count(&node, "OK") == 4
                && grpc_count(&node, "NOT_FOUND") == 1
                && grpc_count(&node, "UNAVAILABLE") == 1
        },
    )
    .await;
    let mut lines = Vec::new();
    edgeplane_tests::eventually(
        std::time::Duration::from_secs(5),
        "six access log lines",
        || {
            lines = std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let enough = lines.len() >= 6;
            async move { enough }
        },
    )
    .await;
    let not_found = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["grpc_status"] == 5)
        .unwrap_or_else(|| panic!("no NOT_FOUND line in {lines:#?}"));
    assert_eq!(not_found["target"], "/edge.Echo/Say");
    assert_eq!(not_found["status"], 200);
    assert_eq!(not_found["upstream"], format!("127.0.0.1:{}", server.port));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trailers_only_unavailable_is_retried_when_configured() {
    let server = grpc_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let retry =
        "[clusters.echo.retry]\nattempts = 2\non = [\"unavailable\", \"resource_exhausted\"]";
    let (node, addr) = start_node(&config(server.port, retry, &log)).await;
    let calls = tokio::task::spawn_blocking(move || grpc_calls(addr, "retried"))
        .await
        .unwrap();
    let once = &calls["unavailable-once"];
    assert_eq!(once["status"], "OK", "retried after UNAVAILABLE: {once}");
    assert_eq!(once["messages"][0], "echo:unavailable-once:retried");
    // The other calls are unchanged by the policy: a NOT_FOUND is not retried.
    assert_eq!(calls["not-found"]["status"], "NOT_FOUND");
    assert_eq!(
        calls["chat"]["messages"],
        serde_json::json!(["re:x", "re:y", "re:z"])
    );
    edgeplane_tests::eventually(
        std::time::Duration::from_secs(5),
        "calls counted",
        || async { grpc_count(&node, "OK") == 5 && grpc_count(&node, "UNAVAILABLE") == 0 },
    )
    .await;
    let retries = node.telemetry().render().lines().find_map(|l| {
        l.strip_prefix("edgeplane_upstream_retries_total{cluster=\"echo\"}")?
            .trim()
            .parse::<u64>()
            .ok()
    });
    assert_eq!(retries, Some(1), "one retry");
}

#[test]
fn h2c_with_tls_and_unknown_grpc_conditions_are_rejected_with_paths() {
    let text = node_config(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\nh2c = true\n[clusters.c.tls]\nh2 = true\n\
         [clusters.c.retry]\non = [\"unavailable\", \"grpc_unavailable\"]\n",
    );
    let err = edgeplane_config::from_toml(&text).unwrap_err().lines();
    for want in [
        "clusters.c.h2c: h2c is cleartext HTTP/2",
        "clusters.c.retry.on[1]",
    ] {
        assert!(err.iter().any(|l| l.starts_with(want)), "{want}: {err:#?}");
    }
}
