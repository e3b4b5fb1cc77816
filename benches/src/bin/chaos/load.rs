//! A closed-loop load generator: `conns` clients, each sending GETs one after the other over a
//! keep-alive connection (or a new connection each) until stopped, counting 2xx answers and everything else (other statuses,
//! transport errors, timeouts).

use edgeplane_tests::Client;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Counts of a load run.
#[derive(Debug, Default)]
pub struct Counts {
    /// 2xx answers.
    pub ok: AtomicU64,
    /// Anything else.
    pub failed: AtomicU64,
}

/// A running load.
pub struct Load {
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `conns` clients against `target`, host `chaos.test`, path `/`.
    pub fn start(target: SocketAddr, conns: usize) -> Load {
        Self::start_with(target, conns, true)
    }

    /// [`Load::start`]; unless `keep_alive`, every request goes on a new connection.
    pub fn start_with(target: SocketAddr, conns: usize, keep_alive: bool) -> Load {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..conns)
            .map(|_| {
                let (counts, stop) = (counts.clone(), stop.clone());
                let mut client = Client::new(target);
                tokio::spawn(async move {
                    while !stop.load(Relaxed) {
                        if !keep_alive {
                            client = Client::new(target);
                        }
                        let ok = client
                            .try_get("chaos.test", "/")
                            .await
                            .is_ok_and(|r| r.status.is_success());
                        let counter = if ok { &counts.ok } else { &counts.failed };
                        counter.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        Load {
            counts,
            stop,
            tasks,
        }
    }

    /// Requests so far: (total, failed).
    pub fn now(&self) -> (u64, u64) {
        let failed = self.counts.failed.load(Relaxed);
        (self.counts.ok.load(Relaxed) + failed, failed)
    }

    /// Stops and returns (total, failed).
    pub async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let failed = self.counts.failed.load(Relaxed);
        (self.counts.ok.load(Relaxed) + failed, failed)
    }
}
