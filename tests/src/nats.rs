//! A real nats-server for a test: its own ephemeral port, JetStream in a temporary folder, never the
//! machine's server on 4222. Stopped (killed) when dropped; [`NatsServer::stop`] and
//! [`NatsServer::restart`] simulate outages.

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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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
        "no Python with nats-py: run scripts/test (it installs one) or set EDGEPLANE_PYTHON"
    );
    venv
}
