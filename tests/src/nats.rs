//! A real nats-server for a test: its own ephemeral port, JetStream in a temporary folder, never the
//! machine's server on 4222. Stopped (killed) when dropped; [`NatsServer::stop`] and
//! [`NatsServer::restart`] simulate outages.

use crate::free_port;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct NatsServer {
    /// Its client address.
    pub addr: SocketAddr,
    args: Vec<String>,
    store: tempfile::TempDir,
    child: Option<Child>,
}

/// The nats-server binary: `$NATS_SERVER_BIN`, else `nats-server` on PATH, else Debian's
/// `/usr/sbin/nats-server`. Panics with instructions when none is found (tests never skip).
pub fn nats_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("nats-server"))
                .find(|p| p.is_file())
        })
        .unwrap_or(None);
    on_path
        .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.is_file()))
        .expect(
            "nats-server not found: set NATS_SERVER_BIN, or run scripts/test, which installs it",
        )
}

impl NatsServer {
    /// Starts a server with JetStream and any extra command-line `args` (e.g. `--user u --pass p`).
    pub fn start(args: &[&str]) -> NatsServer {
        let port = free_port();
        let mut server = NatsServer {
            addr: ([127, 0, 0, 1], port).into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.spawn();
        server
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_server_bin())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server (JetStream data stays in its folder).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server is running (not stopped by [`NatsServer::stop`]).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts it again after [`NatsServer::stop`], on the same port with the same data.
    pub fn start_again(&mut self) {
        self.spawn();
    }

    /// Starts it again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Python with nats-py: `$EDGEPLANE_PYTHON` (set by scripts/test), else the project's venv.
pub fn python_with_nats() -> PathBuf {
    if let Some(p) = std::env::var_os("EDGEPLANE_PYTHON") {
        return p.into();
    }
    let venv =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/pyvenv/bin/python");
    assert!(
        venv.is_file(),
        "no Python with nats-py and grpcio: run scripts/test (it installs one) or set EDGEPLANE_PYTHON"
    );
    venv
}

/// A cluster of nats-servers on loopback, routed to each other, with JetStream: server `i` is named
/// `s<i>`, has its own client port, cluster port, monitoring port and store.
pub struct NatsCluster {
    /// The servers, by index.
    pub servers: Vec<NatsServer>,
    monitors: Vec<u16>,
}

impl NatsCluster {
    /// Starts `n` servers routed to each other (cluster name `edge`).
    pub fn start(n: usize) -> NatsCluster {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let monitors: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let servers = (0..n)
            .map(|i| {
                let others: Vec<String> = routes
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                    .collect();
                NatsServer::start(&[
                    "--server_name",
                    &format!("s{i}"),
                    "--cluster_name",
                    "edge",
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes",
                    &others.join(","),
                    "-m",
                    &monitors[i].to_string(),
                ])
            })
            .collect();
        NatsCluster { servers, monitors }
    }

    /// Every server's client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// The index of the JetStream meta leader, as a running server's `/jsz` says, if known.
    pub fn meta_leader(&self) -> Option<usize> {
        for (i, s) in self.servers.iter().enumerate() {
            if !s.running() {
                continue;
            }
            let Some(body) = http_get(self.monitors[i], "/jsz") else {
                continue;
            };
            let json: serde_json::Value = serde_json::from_str(&body).ok()?;
            if let Some(leader) = json["meta_cluster"]["leader"].as_str() {
                return leader.strip_prefix('s')?.parse().ok();
            }
        }
        None
    }
}

/// A blocking HTTP/1.0 GET on loopback `port`: the body, if the server answered.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
}
