//! The `edgeplane` binary as a user runs it: `check`, `run --config` with 64 MiB bodies streamed both
//! ways in bounded memory, graceful exit on SIGTERM, and requests waiting out a node that ran out of
//! file descriptors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgeplane_tests::{endpoints, eventually, Backend, Client, Generated};
use http::StatusCode;
use http_body_util::BodyExt;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use common::{Proc, BIN};
use edgeplane_tests::free_port;

async fn run_node(config: &str) -> (Proc, std::net::SocketAddr, tempfile::TempDir) {
    run_node_with(config, "").await
}

async fn run_node_with(
    config: &str,
    node_extra: &str,
) -> (Proc, std::net::SocketAddr, tempfile::TempDir) {
    run_node_limited(config, node_extra, None).await
}

/// A node process; with `max_files`, its open file limit (`ulimit -n`) is set that low.
async fn run_node_limited(
    config: &str,
    node_extra: &str,
    max_files: Option<u32>,
) -> (Proc, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edge.toml");
    let port = free_port();
    let state = dir.path().join("state");
    let text = format!(
        "[node]\nid = \"bin-node\"\nworkers = 1\nstate_dir = \"{}\"\n{node_extra}\n[[node.listeners]]\naddress = \"127.0.0.1:{port}\"\n{config}",
        state.display()
    );
    std::fs::write(&path, text).unwrap();
    let mut command = match max_files {
        None => Command::new(BIN),
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
            sh
        }
    };
    let child = command
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    eventually(Duration::from_secs(10), "node listening", || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await;
    (Proc(child), addr, dir)
}

#[test]
fn check_reports_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let mut f = std::fs::File::create(&bad).unwrap();
    writeln!(
        f,
        "[[node.listeners]]\naddress = \"0.0.0.0:80\"\n[[routes]]\ncluster = \"nope\"\n\
         [clusters.api]\n[[clusters.api.endpoints]]\naddress = \"10.0.0:80\"\nweight = 0"
    )
    .unwrap();
    let out = Command::new(BIN).arg("check").arg(&bad).output().unwrap();
    assert!(!out.status.success(), "invalid config exits non-zero");
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "routes[0].cluster: unknown cluster \"nope\"",
        "clusters.api.endpoints[0].address: invalid socket address \"10.0.0:80\"",
        "clusters.api.endpoints[0].weight: 0 is out of range",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    let good = dir.path().join("good.toml");
    std::fs::write(&good, edgeplane_config::DEFAULT_TOML).unwrap();
    let out = Command::new(BIN).arg("check").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": ok (1 routes, 1 clusters, 2 endpoints")
    );

    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success(), "run refuses an invalid config");
    assert!(String::from_utf8_lossy(&out.stderr).contains("routes[0].cluster"));
}

#[test]
fn check_reports_every_shape_error_a_bind_clash_and_an_unreadable_token_file() {
    let dir = tempfile::tempdir().unwrap();
    // Two wrong types in two clusters and an unknown key in a route: serde alone stops at the first.
    let shapes = dir.path().join("shapes.toml");
    std::fs::write(
        &shapes,
        "[[node.listeners]]\naddress = \"127.0.0.1:8080\"\n[[routes]]\ncluster = \"a\"\nhots = [\"x\"]\n\
         [clusters.a]\nslow_start = 5\n[[clusters.a.endpoints]]\naddress = \"127.0.0.1:1\"\n\
         [clusters.b]\nbalancing = 3\n[[clusters.b.endpoints]]\naddress = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(&shapes)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "routes[0]: invalid TOML: unknown field `hots`",
        "clusters.a: invalid TOML",
        "clusters.b: invalid TOML",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The admin on a listener's port, and a token file that cannot be read.
    let check_with_admin = |admin: &str| {
        let file = dir.path().join("clash.toml");
        std::fs::write(
            &file,
            format!(
                "[node]\nadmin = \"{admin}\"\nadmin_token_file = \"{}\"\n\
                 [[node.listeners]]\naddress = \"0.0.0.0:8080\"\n[[routes]]\ncluster = \"a\"\n\
                 [clusters.a]\n[[clusters.a.endpoints]]\naddress = \"127.0.0.1:1\"\n",
                dir.path().join("missing.token").display()
            ),
        )
        .unwrap();
        let out = Command::new(BIN).arg("check").arg(&file).output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = check_with_admin("127.0.0.1:8080");
    assert!(
        text.contains("node.listeners[0].address: 0.0.0.0:8080 is also the admin listener's"),
        "{text}"
    );
    let text = check_with_admin("127.0.0.1:9901");
    assert!(
        text.contains("node.admin_token_file: admin token: cannot read"),
        "{text}"
    );
}

const BODY: u64 = 64 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_both_ways_in_bounded_memory() {
    let sink = Backend::counting_sink("sink").await;
    let source = Backend::streaming_source("source", BODY).await;
    let config = format!(
        "[[routes]]\npath_prefix = \"/up\"\ncluster = \"sink\"\n[[routes]]\npath_prefix = \"/down\"\ncluster = \"source\"\n\
         [clusters.sink]\n{}[clusters.source]\n{}",
        endpoints("sink", &[(&sink, 1)]),
        endpoints("source", &[(&source, 1)])
    );
    let (node, addr, _dir) = run_node(&config).await;
    let client = Client::new(addr);
    // Warm up, then take the baseline.
    assert_eq!(client.get("a", "/up").await.status, StatusCode::OK);
    let baseline = node.peak_rss_kib();

    let upload = client
        .request("a", "/up")
        .method("POST")
        .body(Generated::new(BODY).boxed())
        .unwrap();
    let resp = client.send(upload).await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body, BODY.to_string(), "upstream received every byte");

    let download = http::Request::get(format!("http://{addr}/down"))
        .header(http::header::HOST, "a")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let plain = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let mut resp = tokio::time::timeout(Duration::from_secs(30), plain.request(download))
        .await
        .unwrap()
        .unwrap();
    let mut received = 0u64;
    while let Some(frame) = resp.body_mut().frame().await {
        received += frame
            .unwrap()
            .into_data()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
    }
    assert_eq!(received, BODY, "client received every byte");

    let peak = node.peak_rss_kib();
    let grown_mib = (peak.saturating_sub(baseline)) / 1024;
    eprintln!("proxy peak RSS: baseline {baseline} KiB, after 2 x 64 MiB {peak} KiB");
    assert!(
        grown_mib < 16,
        "proxy memory grew by {grown_mib} MiB moving 64 MiB each way: bodies are buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (r, a) = (release.clone(), arrived.clone());
    let slow = Backend::with("slow", move |_req| {
        let (r, a) = (r.clone(), a.clone());
        async move {
            a.store(true, std::sync::atomic::Ordering::SeqCst);
            r.notified().await;
            edgeplane_tests::Reply::new(
                http_body_util::Full::new(bytes::Bytes::from("done")).boxed(),
            )
        }
    })
    .await;
    let (mut node, addr, _dir) = run_node(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
        endpoints("c", &[(&slow, 1)])
    ))
    .await;
    let client = Client::new(addr);
    let in_flight = tokio::spawn(async move { client.get("a", "/").await });
    eventually(
        Duration::from_secs(5),
        "request reached the backend",
        || {
            let a = arrived.clone();
            async move { a.load(std::sync::atomic::Ordering::SeqCst) }
        },
    )
    .await;
    node.signal("-TERM");
    eventually(
        Duration::from_secs(5),
        "listener closed after SIGTERM",
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
    assert!(
        node.0.try_wait().unwrap().is_none(),
        "still running while a request is in flight"
    );
    release.notify_one();
    let resp = in_flight.await.unwrap();
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.body, "done");
    let mut status = None;
    eventually(Duration::from_secs(10), "process exited", || {
        status = node.0.try_wait().unwrap();
        let done = status.is_some();
        async move { done }
    })
    .await;
    assert!(status.unwrap().success(), "clean exit after drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_prints_the_fleet_report_and_exits_accordingly() {
    let nats = edgeplane_tests::NatsServer::start(&[]);
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let routing = |backend: &Backend| {
        format!(
            "[[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
            endpoints("c", &[(backend, 1)])
        )
    };
    let nats_section = format!("[node.nats]\nurls = [\"{}\"]", nats.url());
    let (_node, addr, dir) = run_node_with(&routing(&a), &nats_section).await;
    let client = Client::new(addr);
    assert_eq!(client.get("a", "/").await.header("x-backend"), "a");

    let doc = dir.path().join("routing.toml");
    std::fs::write(&doc, routing(&b)).unwrap();
    let push = |extra: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.arg("push")
            .arg(&doc)
            .args(["--server", &nats.url(), "--timeout", "5"])
            .args(extra);
        cmd.output().unwrap()
    };
    // The node connects in the background; push until it is discovered and answers.
    let mut out = push(&[]);
    let started = std::time::Instant::now();
    while !String::from_utf8_lossy(&out.stdout).contains("applied   bin-node") {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "node never applied: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Make the next push a new revision, so it is not reported as unchanged.
        std::fs::write(
            &doc,
            format!(
                "{}\n[[routes]]\nname = \"x{}\"\npath_prefix = \"/x\"\ncluster = \"c\"\n",
                routing(&b),
                started.elapsed().as_nanos()
            ),
        )
        .unwrap();
        out = push(&[]);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(client.get("a", "/").await.header("x-backend"), "b");

    let again = push(&[]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("unchanged: revision"));

    let conflict = push(&["--expect-revision", "999"]);
    assert_eq!(
        conflict.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&conflict.stderr)
    );
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("revision conflict"));

    let nats_cmd = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["--server", &nats.url()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let history = nats_cmd(&["history"]);
    assert!(
        history.lines().filter(|l| l.contains("hash ")).count() >= 1,
        "{history}"
    );
    let fleet = nats_cmd(&["fleet"]);
    assert!(
        fleet
            .lines()
            .any(|l| l.starts_with("bin-node") && l.contains("now")),
        "{fleet}"
    );
    // A second revision (back to `a`), then a rollback to the first one (`b`).
    std::fs::write(&doc, routing(&a)).unwrap();
    assert!(push(&[]).status.success());
    assert_eq!(client.get("a", "/").await.header("x-backend"), "a");
    let rollback = nats_cmd(&["rollback"]);
    assert!(
        rollback.starts_with("rolling back to revision"),
        "{rollback}"
    );
    assert!(rollback.contains("applied   bin-node"), "{rollback}");
    assert_eq!(
        client.get("a", "/").await.header("x-backend"),
        "b",
        "rolled back"
    );

    std::fs::write(&doc, "[[routes]]\ncluster = \"nope\"\n").unwrap();
    let invalid = push(&[]);
    assert_eq!(
        invalid.status.code(),
        Some(2),
        "an invalid document: exit 2"
    );
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("routes[0].cluster: unknown cluster"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_and_scale_commands_change_a_running_node() {
    let nats = edgeplane_tests::NatsServer::start(&[]);
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let h = healthy.clone();
    let backend = Backend::with("hb", move |req| {
        let ok = h.load(std::sync::atomic::Ordering::SeqCst);
        async move {
            let status = if req.uri().path() == "/healthz" && !ok {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            edgeplane_tests::text(status, "hb")
        }
    })
    .await;
    let scaled = Backend::named("scaled").await;
    let config = "[[routes]]\ncluster = \"api\"\n[clusters.api]\nself_registration = true\nremove_after = \"1s\"\n";
    let nats_section = format!("[node.nats]\nurls = [\"{}\"]", nats.url());
    let (_node, addr, _dir) = run_node_with(config, &nats_section).await;
    let client = Client::new(addr);
    let served_by = |want: &'static str| {
        let client = client.clone();
        move || {
            let client = client.clone();
            async move {
                let r = client.get("x", "/").await;
                match want {
                    "none" => r.status == StatusCode::SERVICE_UNAVAILABLE,
                    name => r.status == StatusCode::OK && r.header("x-backend") == name,
                }
            }
        }
    };
    assert!(
        served_by("none")().await,
        "no endpoint before any heartbeat"
    );

    let heartbeat = Command::new(BIN)
        .args(["heartbeat", "--cluster", "api", "--instance", "i-1"])
        .args(["--addr", &backend.addr.to_string(), "--interval", "100ms"])
        .args(["--probe", &format!("http://{}/healthz", backend.addr)])
        .args(["--drain", "2s", "--server", &nats.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let heartbeat = Proc(heartbeat);
    eventually(
        Duration::from_secs(10),
        "the instance joins",
        served_by("hb"),
    )
    .await;
    healthy.store(false, std::sync::atomic::Ordering::SeqCst);
    eventually(
        Duration::from_secs(10),
        "a failing probe takes it out",
        served_by("none"),
    )
    .await;
    healthy.store(true, std::sync::atomic::Ordering::SeqCst);
    eventually(
        Duration::from_secs(10),
        "a passing probe brings it back",
        served_by("hb"),
    )
    .await;

    // Stopping the heartbeat drains the instance: with nothing in flight it leaves at once.
    heartbeat.signal("-TERM");
    let mut child = heartbeat;
    let status = child.0.wait().unwrap();
    assert!(status.success());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
    assert!(out.contains("i-1 is draining"), "{out}");
    eventually(
        Duration::from_secs(5),
        "the drained instance leaves",
        served_by("none"),
    )
    .await;

    let scale = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["scale", "--cluster", "api", "--server", &nats.url()])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = scale(&[
        "--id",
        "add-1",
        "add",
        &scaled.addr.to_string(),
        "--weight",
        "3",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("stored as #"), "{out}");
    eventually(
        Duration::from_secs(10),
        "scaled endpoint serves",
        served_by("scaled"),
    )
    .await;
    let (code, out) = scale(&["--id", "add-1", "add", &scaled.addr.to_string()]);
    assert_eq!(code, Some(0));
    assert!(out.contains("already stored"), "{out}");
    let (code, out) = scale(&["weight", &scaled.addr.to_string(), "0"]);
    assert_eq!(code, Some(2), "an invalid event is refused: {out}");
    assert!(out.contains("weight: 0 is out of range"), "{out}");
    let (code, _) = scale(&["drain", &scaled.addr.to_string(), "--deadline", "5s"]);
    assert_eq!(code, Some(0));
    eventually(
        Duration::from_secs(10),
        "drained endpoint leaves",
        served_by("none"),
    )
    .await;
}

/// A node out of file descriptors (many clients, each with a request in flight, each needing an
/// upstream connection) does not fail the requests it cannot open a connection for: they wait for a
/// connection to come back and are answered on it. The node's counter shows the connects that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_out_a_node_without_file_descriptors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The backend's own latency: a connection comes back every 200 ms per request it served.
    let slow = Backend::with("slow", |_req| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        edgeplane_tests::text(StatusCode::OK, "slow")
    })
    .await;
    let admin_port = free_port();
    let (_node, addr, _dir) = run_node_limited(
        &format!(
            "[[routes]]\npath_prefix = \"/here\"\n[routes.direct]\nbody = \"here\"\n\
             [[routes]]\ncluster = \"c\"\n[clusters.c]\n{}",
            endpoints("c", &[(&slow, 1)])
        ),
        &format!("admin = \"127.0.0.1:{admin_port}\""),
        Some(96),
    )
    .await;
    /// Sends one request on `c` and reads its answer (one read: the answers are small).
    async fn ask(c: &mut tokio::net::TcpStream, path: &str) -> String {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("answered within 10 s")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
    // 48 client connections, accepted first (each asks the node itself, no upstream), then a request
    // in flight to the upstream on each at once: 48 upstream connections more do not fit in 96
    // descriptors with the node's own (listeners, the runtime's, logs).
    let mut conns = Vec::new();
    for _ in 0..48 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(ask(&mut c, "/here").await.starts_with("HTTP/1.1 200"));
        conns.push(c);
    }
    let requests: Vec<_> = conns
        .into_iter()
        .map(|mut c| tokio::spawn(async move { (ask(&mut c, "/").await, c) }))
        .collect();
    let mut conns = Vec::new();
    for r in requests {
        let (answer, c) = r.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        conns.push(c);
    }
    // The client's connections hold the node's descriptors: closed, the admin listener can accept
    // again.
    drop(conns);
    let metrics = Client::new(([127, 0, 0, 1], admin_port).into())
        .get("admin", "/metrics")
        .await
        .body;
    let local: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("edgeplane_upstream_local_connect_errors_total{cluster=\"c\"} ")
        })
        .map_or(0.0, |v| v.trim().parse().unwrap());
    assert!(local > 0.0, "no connect ran out of descriptors:\n{metrics}");
}
