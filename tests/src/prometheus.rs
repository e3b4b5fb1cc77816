//! A real Prometheus for a test: scrapes one target every 200 ms, stores in a temporary folder, serves
//! its query API on an ephemeral loopback port. Killed when dropped. Also `promtool`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A tool from `$VAR`, else PATH, else `target/tools/prometheus/` (where scripts/test installs it).
fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/prometheus")
        .join(name);
    on_path
        .or_else(|| Some(local).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("{name} not found: set {var}, or run scripts/test, which installs it")
        })
}

/// The promtool binary.
pub fn promtool_bin() -> PathBuf {
    tool("PROMTOOL_BIN", "promtool")
}

/// A running Prometheus.
pub struct Prometheus {
    /// Its HTTP address.
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, path `/metrics`) every 500 ms (a scrape of a
    /// debug build on a loaded 2-core machine can take longer than 200 ms).
    pub fn scraping(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 500ms\n  scrape_timeout: 500ms\nscrape_configs:\n  \
                 - job_name: edgeplane\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = Command::new(tool("PROMETHEUS_BIN", "prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Prometheus {
            addr,
            _dir: dir,
            child,
        }
    }
}
