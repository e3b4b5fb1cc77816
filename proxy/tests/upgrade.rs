//! Zero-downtime binary upgrade, as an operator runs it: `edgeplane run --upgrade` takes the listening
//! sockets over from the running node, which drains and exits. Under load, across three upgrades in a
//! row, no connection is refused and no request fails; a tunnel stays on the old process until it
//! ends; a new process that fails to start leaves the old one serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use edgeplane_tests::{eventually, Backend};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;

use common::{Proc, BIN};
use edgeplane_tests::free_port;

/// `edgeplane run --config CONFIG`, with `--upgrade` if asked.
fn edgeplane_run(config: &Path, upgrade: bool) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"]).arg(config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    let child = cmd
        .env("RUST_LOG", "warn,edgeplane_proxy::upgrade=info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

/// A config file in a temporary folder: one listener, an admin listener and the upgrade socket.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    addr: SocketAddr,
    admin: SocketAddr,
    /// `[node.nats]` and its lines, or nothing.
    nats: String,
}

impl Setup {
    fn new(routing: &str, grace: &str) -> Setup {
        Self::with_nats(routing, grace, "")
    }

    fn with_nats(routing: &str, grace: &str, nats: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("edge.toml");
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let admin: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let setup = Setup {
            config,
            addr,
            admin,
            dir,
            nats: nats.to_string(),
        };
        setup.write(routing, grace, "");
        setup
    }

    fn write(&self, routing: &str, grace: &str, extra_listener: &str) {
        let text = format!(
            "[node]\nid = \"upgraded\"\nworkers = 1\nadmin = \"{}\"\nstate_dir = \"{}\"\nupgrade_socket = \"{}\"\n\
             [node.timeouts]\nshutdown_grace = \"{grace}\"\n{}\n\
             [[node.listeners]]\nname = \"http\"\naddress = \"{}\"\n{extra_listener}{routing}",
            self.admin,
            self.dir.path().join("state").display(),
            self.dir.path().join("upgrade.sock").display(),
            self.nats,
            self.addr,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    async fn first_node(&self) -> Proc {
        let proc = edgeplane_run(&self.config, false);
        let (addr, socket) = (self.addr, self.dir.path().join("upgrade.sock"));
        eventually(Duration::from_secs(20), "first node serving", || {
            let socket = socket.clone();
            async move { TcpStream::connect(addr).await.is_ok() && socket.exists() }
        })
        .await;
        proc
    }
}

fn routing_to(backend: &Backend) -> String {
    format!(
        "[[routes]]\ncluster = \"app\"\n[clusters.app]\n[[clusters.app.endpoints]]\naddress = \"{}\"\n",
        backend.addr
    )
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, refused: bool, what: String) {
        if refused {
            self.refused.fetch_add(1, Relaxed);
        } else {
            self.failed.fetch_add(1, Relaxed);
        }
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            errors.push(what);
        }
    }
}

/// One `GET /` for `app.test` on a connection of its own; the raw answer.
async fn get_once(addr: SocketAddr) -> String {
    edgeplane_tests::raw_request(
        addr,
        b"GET / HTTP/1.1\r\nhost: app.test\r\nconnection: close\r\n\r\n",
    )
    .await
}

/// [`get_once`] is answered 200.
async fn assert_answers_200(addr: SocketAddr) {
    let answer = get_once(addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Keep-alive clients that send requests one after another, reconnecting when the node closes
/// their connection (`Connection: close` while it drains), and clients that open a new connection
/// for every request.
fn load(
    addr: SocketAddr,
    keep_alive: usize,
    fresh: usize,
) -> (
    Arc<AtomicBool>,
    Arc<Tally>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for i in 0..keep_alive + fresh {
        let (stop, tally) = (stop.clone(), tally.clone());
        let reuse = i < keep_alive;
        tasks.push(tokio::spawn(async move {
            let mut sender = None;
            while !stop.load(Relaxed) {
                if sender.is_none() {
                    let stream = match TcpStream::connect(addr).await {
                        Ok(s) => s,
                        Err(e) => {
                            tally.fail(true, format!("connect: {e}"));
                            continue;
                        }
                    };
                    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                    tokio::spawn(conn);
                    sender = Some(s);
                }
                let s = sender.as_mut().unwrap();
                if s.ready().await.is_err() {
                    // Closed after a `Connection: close` answer: a new connection, no request lost.
                    sender = None;
                    continue;
                }
                let req = http::Request::get("/")
                    .header("host", "app.test")
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap();
                match s.send_request(req).await {
                    Ok(resp) if resp.status() == 200 => {
                        match resp.into_body().collect().await {
                            Ok(_) => tally.ok.fetch_add(1, Relaxed),
                            Err(e) => {
                                tally.fail(false, format!("body: {e}"));
                                0
                            }
                        };
                    }
                    Ok(resp) => tally.fail(false, format!("status {}", resp.status())),
                    Err(e) => {
                        tally.fail(false, format!("request: {e:?}"));
                        sender = None;
                    }
                }
                if !reuse {
                    sender = None;
                }
            }
        }));
    }
    (stop, tally, tasks)
}

/// Upgrades `upgrades` times in turn, starting from `current`: each time the old process must exit 0
/// by itself and the new one must serve `served` requests of the load, and for a second, before
/// the next upgrade. Returns the last process.
async fn upgrade_in_turn(
    setup: &Setup,
    mut current: Proc,
    tally: &Arc<Tally>,
    upgrades: usize,
    served: u64,
) -> Proc {
    for generation in 2..=upgrades + 1 {
        let mut next = edgeplane_run(&setup.config, true);
        let status = current
            .exited(
                Duration::from_secs(30),
                &format!("generation {}", generation - 1),
            )
            .await;
        assert!(status.success(), "the old process exits cleanly: {status}");
        assert!(next.alive(), "generation {generation} serves");
        let (before, since) = (tally.ok.load(Relaxed), Instant::now());
        eventually(
            Duration::from_secs(10),
            "requests served by the new process",
            || {
                let tally = tally.clone();
                async move {
                    tally.ok.load(Relaxed) > before + served
                        && since.elapsed() > Duration::from_secs(1)
                }
            },
        )
        .await;
        current = next;
    }
    current
}

/// Stops the load; asserts that nothing was refused and nothing failed; the requests answered.
async fn finish(
    stop: Arc<AtomicBool>,
    tally: &Tally,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) -> u64 {
    stop.store(true, Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, refused, failed) = (
        tally.ok.load(Relaxed),
        tally.refused.load(Relaxed),
        tally.failed.load(Relaxed),
    );
    let errors = tally.errors.lock().unwrap().clone();
    assert_eq!((refused, failed), (0, 0), "{ok} ok; errors: {errors:?}");
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_upgrades_in_a_row_under_load_refuse_nothing_and_fail_nothing() {
    let backend = Backend::named("b").await;
    let setup = Setup::new(&routing_to(&backend), "10s");
    let current = setup.first_node().await;
    let (stop, tally, tasks) = load(setup.addr, 6, 2);
    let start = Instant::now();
    eventually(Duration::from_secs(10), "load flowing", || {
        let tally = tally.clone();
        async move { tally.ok.load(Relaxed) > 500 }
    })
    .await;
    // Each new process serves alone for a second and 1,000 requests at least before the next upgrade.
    let mut current = upgrade_in_turn(&setup, current, &tally, 3, 1000).await;
    let ok = finish(stop, &tally, tasks).await;
    let elapsed = start.elapsed();
    let rate = ok as f64 / elapsed.as_secs_f64();
    eprintln!("{ok} requests in {elapsed:?} ({rate:.0}/s) across 3 upgrades: 0 refused, 0 failed");
    assert!(
        rate >= 1000.0,
        "the load must reach 1,000 req/s, got {rate:.0}/s"
    );
    // The admin listener was handed over too.
    let admin = TcpStream::connect(setup.admin).await;
    assert!(admin.is_ok(), "the admin listener still answers");
    assert!(current.alive());
}

/// A backend that answers any request with `101` (`Upgrade: websocket`), then echoes bytes.
async fn echo_upgrade_backend() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let answer = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
                if s.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// Sends `text` through the tunnel and reads it back.
async fn echo(tunnel: &mut TcpStream, text: &[u8]) {
    tunnel.write_all(text).await.unwrap();
    let mut back = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(10), tunnel.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(back, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_stays_on_the_old_process_until_it_ends() {
    let upstream = echo_upgrade_backend().await;
    let routing = format!(
        "[[routes]]\ncluster = \"ws\"\n[clusters.ws]\n[[clusters.ws.endpoints]]\naddress = \"{upstream}\"\n"
    );
    // A long grace: the old process leaving soon after the tunnel ends shows it waited for the
    // tunnel, not for the grace period.
    let setup = Setup::new(&routing, "60s");
    let mut old = setup.first_node().await;
    let mut tunnel = TcpStream::connect(setup.addr).await.unwrap();
    tunnel
        .write_all(b"GET /chat HTTP/1.1\r\nhost: ws.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(tunnel.read(&mut byte).await.unwrap(), 1, "101 head");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    echo(&mut tunnel, b"before").await;

    let sock = setup.dir.path().join("upgrade.sock");
    let first_inode = std::fs::metadata(&sock).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let mut new = edgeplane_run(&setup.config, true);
    // The new process serves: a fresh request gets through while the old one is draining.
    let addr = setup.addr;
    eventually(
        Duration::from_secs(20),
        "the new process took over",
        || async move {
            edgeplane_tests::raw_request(
                addr,
                b"GET / HTTP/1.1\r\nhost: ws.test\r\nconnection: close\r\n\r\n",
            )
            .await
            .starts_with("HTTP/1.1 ")
        },
    )
    .await;
    // Takeover confirmed when the socket file is the new process's: it renames its own over it
    // once the old one said it drains.
    eventually(
        Duration::from_secs(20),
        "the new process owns the upgrade socket",
        || {
            let sock = sock.clone();
            let first = first_inode.as_ref().ok().copied();
            async move {
                let now = std::fs::metadata(&sock)
                    .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
                    .ok();
                now.is_some() && now != first
            }
        },
    )
    .await;
    echo(&mut tunnel, b"during the drain").await;
    assert!(old.alive(), "the old process keeps the tunnel");
    drop(tunnel);
    let closed = Instant::now();
    let status = old
        .exited(
            Duration::from_secs(20),
            "old process after its tunnel ended",
        )
        .await;
    assert!(status.success(), "{status}");
    assert!(closed.elapsed() < Duration::from_secs(20));
    assert!(new.alive());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_that_cannot_start_leaves_the_old_one_serving() {
    let backend = Backend::named("b").await;
    let routing = routing_to(&backend);
    let setup = Setup::new(&routing, "10s");
    let mut old = setup.first_node().await;
    // The new config adds a listener on a port another program holds: the new process takes the
    // sockets over, then fails to bind that one and exits.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap();
    setup.write(
        &routing,
        "10s",
        &format!("[[node.listeners]]\nname = \"extra\"\naddress = \"{taken}\"\n"),
    );
    let mut failing = edgeplane_run(&setup.config, true);
    let status = failing
        .exited(Duration::from_secs(20), "the failing new process")
        .await;
    assert!(!status.success(), "it reports its failure");
    assert!(old.alive(), "the old process goes on");
    let addr = setup.addr;
    assert_answers_200(addr).await;

    // With the config fixed, the next upgrade goes through.
    drop(blocker);
    setup.write(&routing, "10s", "");
    let mut new = edgeplane_run(&setup.config, true);
    let status = old.exited(Duration::from_secs(30), "old process").await;
    assert!(status.success());
    assert!(new.alive());
    assert_answers_200(addr).await;
}

#[tokio::test]
async fn upgrade_without_a_running_node_starts_on_fresh_sockets() {
    let backend = Backend::named("b").await;
    let setup = Setup::new(&routing_to(&backend), "10s");
    let mut node = edgeplane_run(&setup.config, true);
    let addr = setup.addr;
    eventually(Duration::from_secs(20), "node serving", || async move {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert!(node.alive());
    assert_answers_200(addr).await;
    // Whoever connects to the upgrade socket gets the listening sockets: only the node's user may.
    let sock = setup.dir.path().join("upgrade.sock");
    eventually(Duration::from_secs(10), "upgrade socket offered", || {
        let sock = sock.clone();
        async move { sock.exists() }
    })
    .await;
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
}

/// One `edgeplane heartbeat` process announcing `backend` as instance `id` of cluster `api`.
fn heartbeat(id: &str, backend: &Backend, nats: &edgeplane_tests::NatsServer) -> Proc {
    let child = Command::new(BIN)
        .args(["heartbeat", "--cluster", "api", "--instance", id, "--addr"])
        .arg(backend.addr.to_string())
        .args(["--interval", "500ms", "--server"])
        .arg(nats.url())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Proc(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_fleet_node_serves_its_self_registered_endpoints_from_its_first_request() {
    // A self-registered cluster starts empty in a new process: its endpoints arrive by heartbeat.
    // The new process takes traffic only once it has as many as the old one had.
    let nats = edgeplane_tests::NatsServer::start(&[]);
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let routing = "[[routes]]\ncluster = \"api\"\n[clusters.api]\nself_registration = true\n";
    let setup = Setup::with_nats(
        routing,
        "10s",
        &format!("[node.nats]\nurls = [\"{}\"]\n", nats.url()),
    );
    let current = setup.first_node().await;
    let _beats = (heartbeat("a", &a, &nats), heartbeat("b", &b, &nats));
    let addr = setup.addr;
    eventually(Duration::from_secs(20), "both instances registered", || {
        let (a, b) = (&a, &b);
        async move {
            let _ = get_once(addr).await;
            a.hits() > 0 && b.hits() > 0
        }
    })
    .await;
    let (stop, tally, tasks) = load(setup.addr, 4, 2);
    let _current = upgrade_in_turn(&setup, current, &tally, 2, 500).await;
    finish(stop, &tally, tasks).await;
}

#[tokio::test]
async fn a_file_that_is_not_a_socket_at_the_upgrade_path_is_left_alone() {
    let backend = Backend::named("b").await;
    let setup = Setup::new(&routing_to(&backend), "10s");
    let path = setup.dir.path().join("upgrade.sock");
    std::fs::write(&path, "not a socket").unwrap();
    let mut node = edgeplane_run(&setup.config, false);
    let addr = setup.addr;
    eventually(Duration::from_secs(20), "node serving", || async move {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert!(node.alive(), "the node serves, without upgrades");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a socket");
}
