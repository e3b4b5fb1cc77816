//! The processes a scenario runs: edgeplane nodes (`edgeplane run`, the release binary), heartbeat
//! publishers (`edgeplane heartbeat`), each killed when dropped, and the node's admin endpoint read
//! as Prometheus text.

use anyhow::{bail, Context as _};
use edgeplane_tests::Client;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The edgeplane binary under test: `$EDGEPLANE_BIN`, else the workspace's release build.
pub fn edgeplane_bin() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("EDGEPLANE_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/edgeplane"),
        PathBuf::from,
    );
    if !path.is_file() {
        bail!(
            "{} not found: run `cargo build --release` or set EDGEPLANE_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// A free loopback port (bound, then released for the child to bind).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(free_ports::<1>()?[0])
}

/// `N` different free loopback ports: all are held until the last is found (ports picked one after
/// another, each released at once, can come back the same).
pub fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let held = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0; N];
    for (port, listener) in ports.iter_mut().zip(&held) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

/// One `edgeplane run` process.
pub struct EdgeNode {
    /// Its id.
    pub id: String,
    /// Its proxy listener.
    pub addr: SocketAddr,
    scraper: Client,
    child: Child,
    /// Its config file and folder.
    file: PathBuf,
    dir: PathBuf,
    /// Binary upgrades so far.
    generation: usize,
}

impl EdgeNode {
    /// Starts node `id` with `[node.nats]` lines `nats` (none if empty) and routing `routing`,
    /// keeping its state in `dir`; returns once its admin endpoint is ready.
    pub async fn start(
        id: &str,
        dir: &Path,
        nats: &str,
        routing: &str,
    ) -> anyhow::Result<EdgeNode> {
        let [port, admin_port] = free_ports()?;
        let nats = if nats.is_empty() {
            String::new()
        } else {
            format!("[node.nats]\n{nats}\n")
        };
        let text = format!(
            "[node]\nid = \"{id}\"\nadmin = \"127.0.0.1:{admin_port}\"\nstate_dir = \"{}\"\n\
             upgrade_socket = \"{}\"\n{nats}[[node.listeners]]\naddress = \"127.0.0.1:{port}\"\n{routing}",
            dir.join(id).display(),
            dir.join(format!("{id}.sock")).display()
        );
        let file = dir.join(format!("{id}.toml"));
        std::fs::write(&file, text)?;
        let child = Command::new(edgeplane_bin()?)
            .args(["run", "--config"])
            .arg(&file)
            .env("RUST_LOG", node_log())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.join(format!("{id}.log")),
            )?))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start edgeplane")?;
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let node = EdgeNode {
            id: id.into(),
            addr: ([127, 0, 0, 1], port).into(),
            scraper: Client::new(admin),
            child,
            file,
            dir: dir.to_path_buf(),
            generation: 1,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !node.ready().await {
            if Instant::now() > deadline {
                bail!(
                    "node {id} not ready within 20 s (log: {})",
                    dir.join(format!("{id}.log")).display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(node)
    }

    /// Binary upgrade: starts `edgeplane run --upgrade` on the same config and waits for the old
    /// process to exit by itself; how long that took.
    pub async fn upgrade(&mut self) -> anyhow::Result<Duration> {
        self.generation += 1;
        let log = self
            .dir
            .join(format!("{}.gen{}.log", self.id, self.generation));
        let next = Command::new(edgeplane_bin()?)
            .args(["run", "--upgrade", "--config"])
            .arg(&self.file)
            .env("RUST_LOG", node_log())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start edgeplane --upgrade")?;
        let started = Instant::now();
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the old process did not exit within 60 s")??;
        if !status.success() {
            bail!("the old process exited with {status}");
        }
        self.child = next;
        Ok(started.elapsed())
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn ready(&self) -> bool {
        self.scraper
            .try_get("admin", "/readyz")
            .await
            .is_ok_and(|r| r.status.is_success())
    }

    /// The value of metric `name` (with its label set written as in the exposition, e.g.
    /// `edgeplane_cluster_endpoints{cluster="api"}`), if the node exposes it.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.scraper.try_get("admin", "/metrics").await.ok()?.body;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

/// One `edgeplane heartbeat` process for instance `id` of cluster `api` at `addr`.
pub fn heartbeat(
    id: &str,
    addr: SocketAddr,
    nats_url: &str,
    interval: &str,
) -> anyhow::Result<Child> {
    Command::new(edgeplane_bin()?)
        .args(["heartbeat", "--cluster", "api", "--instance", id, "--addr"])
        .arg(addr.to_string())
        .args(["--interval", interval, "--server", nats_url])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start edgeplane heartbeat")
}

/// A backend in a process of its own (this binary, `chaos backend NAME ADDR`), so that it can die,
/// hang and come back as a real one does: SIGKILL, SIGSTOP, a new process on the same address.
pub struct BackendProc {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
}

impl BackendProc {
    /// Starts backend `name` on `addr` (port 0: a free one); returns once it answers.
    pub async fn start(name: &str, addr: SocketAddr) -> anyhow::Result<BackendProc> {
        let addr = if addr.port() == 0 {
            ([127, 0, 0, 1], free_port()?).into()
        } else {
            addr
        };
        let child = Command::new(std::env::current_exe()?)
            .args(["backend", name])
            .arg(addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start a backend process")?;
        let client = Client::new(addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !client
            .try_get("backend", "/")
            .await
            .is_ok_and(|r| r.status.is_success())
        {
            if Instant::now() > deadline {
                bail!("backend {name} not answering on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(BackendProc { addr, child })
    }

    /// SIGKILL: the kernel resets its connections and refuses new ones.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// SIGSTOP (`true`) or SIGCONT: stopped, it still accepts connections (the kernel completes
    /// handshakes into the backlog) and reads nothing, so requests hang.
    pub async fn pause(&self, stop: bool) -> anyhow::Result<()> {
        let pid = self.child.id().context("backend already gone")?;
        let signal = if stop { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await?;
        if !status.success() {
            bail!("kill {signal} {pid} failed");
        }
        Ok(())
    }
}

/// The backend process's main: `backend NAME ADDR` serves until killed.
pub async fn serve_backend(name: &str, addr: &str) -> anyhow::Result<()> {
    let _backend = edgeplane_tests::Backend::named_at(name, addr.parse()?).await;
    std::future::pending::<()>().await;
    Ok(())
}

/// The nodes' log filter: `CHAOS_NODE_LOG` (e.g. `info,edgeplane_proxy=debug` to see each retry and
/// failure), `info` by default.
fn node_log() -> String {
    std::env::var("CHAOS_NODE_LOG").unwrap_or_else(|_| "info".into())
}
