//! Staged rollouts end to end: a real nats-server, six nodes serving real backends under client
//! traffic, and `edgeplane rollout` run as a user runs it (the binary, killed with SIGKILL when the
//! test says so).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Proc, BIN};
use edgeplane_bus::rollout::{Phase, RolloutRecord};
use edgeplane_bus::Subjects;
use edgeplane_controller::publish::{self, PushOptions};
use edgeplane_proxy::fleet::{join, Controller};
use edgeplane_proxy::NodeHandle;
use edgeplane_tests::{endpoints, eventually, text, Backend, Client, NatsServer};
use futures_util::StreamExt;
use hyper::StatusCode;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The tests of this file share the machine's two cores: one at a time, so that latency gates judge
/// the candidate, not the neighbours.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const IDS: [&str; 6] = ["edge-1", "edge-2", "edge-3", "edge-4", "edge-5", "edge-6"];

struct Node {
    id: &'static str,
    admin: std::net::SocketAddr,
    _handle: NodeHandle,
    controller: Controller,
    client: Client,
    /// Requests that did not get a 200 while the test ran.
    failed: Arc<AtomicU64>,
    ok: Arc<AtomicU64>,
}

impl Node {
    fn revision(&self) -> u64 {
        self.controller.state.lock().unwrap().revision
    }

    fn handled(&self) -> u64 {
        self.controller.state.lock().unwrap().handled
    }

    /// The value of an unlabelled metric on the node's `/metrics`.
    async fn metric(&self, name: &str) -> Option<f64> {
        let text = Client::new(self.admin).get("admin", "/metrics").await.body;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

struct Fleet {
    nats: NatsServer,
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
    base: u64,
    stop: Arc<AtomicBool>,
    good: Backend,
    bad: Backend,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
    }
}

fn doc(cluster: &str, backend: &Backend, extra: &str) -> String {
    format!(
        "[[routes]]\ncluster = \"{cluster}\"\n[clusters.{cluster}]\n{}{extra}",
        endpoints(cluster, &[(backend, 1)])
    )
}

impl Fleet {
    /// Six nodes on one nats-server, the base document pushed to all, client traffic on each.
    async fn start() -> Fleet {
        let nats = NatsServer::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let good = Backend::named("good").await;
        let bad = Backend::with("bad", |_| async {
            text(StatusCode::INTERNAL_SERVER_ERROR, "no")
        })
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut nodes = Vec::new();
        for (i, id) in IDS.iter().enumerate() {
            let zone = if i < 3 { "a" } else { "b" };
            nodes.push(start_node(id, zone, &nats, dir.path(), &good, &stop).await);
        }
        let publisher = publisher(&nats).await;
        eventually(
            Duration::from_secs(15),
            "six nodes answer status",
            || async {
                publish::discover(&publisher, &Subjects::default(), Duration::from_millis(200))
                    .await
                    .is_ok_and(|n| n.len() == IDS.len())
            },
        )
        .await;
        // The base document as the fleet's current revision (differs from the bootstrap by a route
        // name, so that it is a real revision).
        let base_doc = format!(
            "[[routes]]\nname = \"base\"\ncluster = \"web\"\n[clusters.web]\n{}",
            endpoints("web", &[(&good, 1)])
        );
        let report = publish::push(&publisher, &Subjects::default(), &base_doc, &push_options())
            .await
            .unwrap();
        assert_eq!(report.applied.len(), IDS.len(), "{report:?}");
        Fleet {
            nats,
            nodes,
            dir,
            base: report.revision,
            stop,
            good,
            bad,
        }
    }

    /// A candidate: the base document with one more route, `/v2`, to the same backend.
    fn v2(&self) -> PathBuf {
        self.write(
            "v2.toml",
            &doc(
                "web",
                &self.good,
                "[[routes]]\nname = \"v2\"\npath_prefix = \"/v2\"\ncluster = \"web\"\n",
            ),
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--server", &self.nats.url()])
            .env_remove("EDGEPLANE_NATS_URL")
            .env("RUST_LOG", "warn");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        eprintln!(
            "$ edgeplane {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn spawn(&self, args: &[&str]) -> Proc {
        Proc(
            self.cmd(args)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        )
    }

    async fn record(&self) -> Option<RolloutRecord> {
        let out = self.run(&["rollout", "status", "--json"]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_json::from_str(text.trim()).ok()
    }

    fn revisions(&self) -> Vec<(&'static str, u64)> {
        self.nodes.iter().map(|n| (n.id, n.revision())).collect()
    }

    fn failed(&self, nodes: &[&str]) -> u64 {
        self.nodes
            .iter()
            .filter(|n| nodes.contains(&n.id))
            .map(|n| n.failed.load(Relaxed))
            .sum()
    }
}

/// A node in `zone` following `nats`, serving `good` until its first push, with its own client
/// traffic (about 200 requests a second, one at a time) until `stop`.
async fn start_node(
    id: &'static str,
    zone: &str,
    nats: &NatsServer,
    dir: &Path,
    good: &Backend,
    stop: &Arc<AtomicBool>,
) -> Node {
    let config = format!(
        "[node]\nid = \"{id}\"\nzone = \"{zone}\"\nadmin = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n{}",
        dir.join(id).display(),
        nats.url(),
        doc("web", good, "")
    );
    let config = edgeplane_config::from_toml(&config).unwrap();
    let handle = NodeHandle::start(&config).await.unwrap();
    let addr = handle.listen_addrs()[0];
    let controller = join(&handle).await.unwrap().expect("node has [node.nats]");
    let (failed, ok) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (f, o, s, client) = (failed.clone(), ok.clone(), stop.clone(), Client::new(addr));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(5));
        while !s.load(Relaxed) {
            every.tick().await;
            match client.try_get("rollout.test", "/").await {
                Ok(r) if r.status == StatusCode::OK => o.fetch_add(1, Relaxed),
                _ => f.fetch_add(1, Relaxed),
            };
        }
    });
    Node {
        id,
        admin: handle.admin_addr().unwrap(),
        _handle: handle,
        controller,
        client: Client::new(addr),
        failed,
        ok,
    }
}

/// `push --dry-run FILE`, run again until `nodes` nodes answered (a node just started may not be
/// subscribed yet).
async fn loop_until_answers(fleet: &Fleet, file: &str, nodes: usize) -> Output {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let out = fleet.run(&["push", "--dry-run", file]);
        let text = stdout(&out);
        let answered = text.matches("  valid     ").count() + text.matches("  invalid   ").count();
        if answered >= nodes || tokio::time::Instant::now() > deadline {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn push_options() -> PushOptions {
    PushOptions {
        bucket: "edge_config".into(),
        replicas: 1,
        expect_revision: None,
        force: false,
        discover: Duration::from_millis(300),
        timeout: Duration::from_secs(5),
    }
}

async fn publisher(nats: &NatsServer) -> async_nats::Client {
    edgeplane_bus::BusOptions {
        urls: vec![nats.url()],
        retry_initial: false,
        ..edgeplane_bus::BusOptions::default()
    }
    .connect(Default::default())
    .await
    .unwrap()
}

/// The node ids in rollout order (the documented position: SHA-256 of the id).
fn order() -> Vec<&'static str> {
    let mut ids = IDS.to_vec();
    ids.sort_by_key(|id| edgeplane_bus::rollout::position(id));
    ids
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The figure `N ms` after `marker` in a line of `text`.
fn millis_after(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// Runs `f` while no other test of this file runs.
async fn alone<F: std::future::Future<Output = ()>>(f: F) {
    let _one = ONE_AT_A_TIME.lock().await;
    f.await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_rollout_goes_through_every_wave() {
    alone(async {
        let fleet = Fleet::start().await;
        let candidate = fleet.v2();
        let candidate = candidate.to_str().unwrap();

        // Bad input first: an invalid plan and an invalid file are refused whole, nothing written.
        let bad_plan = fleet.run(&[
            "rollout",
            candidate,
            "--waves",
            "0,abc,100%,5",
            "--bake",
            "soon",
        ]);
        assert_eq!(bad_plan.status.code(), Some(2));
        let err = String::from_utf8_lossy(&bad_plan.stderr);
        for path in ["waves[0]", "waves[1]", "waves[3]", "bake"] {
            assert!(err.contains(path), "{path} missing in: {err}");
        }
        let invalid = fleet.write("invalid.toml", "[[routes]]\ncluster = \"nope\"\n");
        let out = fleet.run(&["rollout", invalid.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("routes[0].cluster"));
        assert!(fleet.record().await.is_none(), "nothing was written");

        let out = fleet.run(&[
            "rollout",
            candidate,
            "--waves",
            "1,50%",
            "--bake",
            "1500ms",
            "--sample-every",
            "250ms",
            "--min-requests",
            "20",
            // A shared two-core machine: latency between identical nodes varies more than in a
            // datacenter; the 5xx and proxy-error gates keep their defaults.
            "--max-p99-factor",
            "4",
            "--p99-slack-ms",
            "250",
        ]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        for wave in ["wave 1 (1)", "wave 2 (50%)", "wave 3 (100%)"] {
            assert!(text.contains(wave), "{wave} missing: {text}");
        }
        let first = order()[0];
        assert!(
            text.contains(&format!("wave 1 (1): {first} ")),
            "the first node by position goes first: {text}"
        );
        let rec = fleet.record().await.unwrap();
        assert_eq!(rec.phase, Phase::Completed);
        let completed = rec.completed_revision.unwrap();
        eventually(
            Duration::from_secs(5),
            "every node on the completed revision",
            || async { fleet.revisions().iter().all(|(_, r)| *r == completed) },
        )
        .await;
        assert_eq!(rec.waves.len(), 3);
        assert!(rec.waves.iter().all(|w| w.passed_ms.is_some()));
        assert_eq!(fleet.failed(&IDS), 0, "no request failed");
        // Served by the candidate's new route everywhere.
        for n in &fleet.nodes {
            assert_eq!(
                n.client.get("rollout.test", "/v2/x").await.status,
                StatusCode::OK
            );
            assert!(n.ok.load(Relaxed) > 0);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_answering_500s_stops_at_the_first_wave_and_rolls_back() {
    alone(async {
        let fleet = Fleet::start().await;
        let candidate = fleet.write("bad.toml", &doc("web", &fleet.bad, ""));
        let out = fleet.run(&[
            "rollout",
            candidate.to_str().unwrap(),
            "--waves",
            "1,50%",
            "--bake",
            "20s",
            "--sample-every",
            "250ms",
            "--min-requests",
            "20",
        ]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("gate failed: 5xx ratio"), "{text}");
        let took =
            millis_after(&text, "back on the base revision ").expect("rollback time reported");
        eprintln!("ROLLBACK_MS {took}");
        let first = order()[0];
        let rec = fleet.record().await.unwrap();
        assert_eq!(rec.phase, Phase::RolledBack);
        assert_eq!(rec.waves.len(), 1, "stopped at the first wave");
        assert_eq!(rec.waves[0].nodes, [first]);
        assert!(rec.reason.contains("5xx ratio"), "{}", rec.reason);
        assert!(
            fleet.revisions().iter().all(|(_, r)| *r == fleet.base),
            "{:?}",
            fleet.revisions()
        );
        let others: Vec<&str> = IDS.iter().copied().filter(|id| *id != first).collect();
        for n in fleet.nodes.iter().filter(|n| n.id != first) {
            assert_eq!(
                n.handled(),
                fleet.base,
                "{} never handled the candidate",
                n.id
            );
        }
        assert_eq!(
            fleet.failed(&others),
            0,
            "traffic on the baseline nodes unaffected"
        );
        assert!(
            fleet.failed(&[first]) > 0,
            "the wave's node did serve the bad candidate"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_rejected_by_a_node_or_not_applied_in_time_rolls_back() {
    alone(async {
        let fleet = Fleet::start().await;
        // Valid as a document, but no node can load the certificate files it names.
        let candidate = fleet.write(
            "certs.toml",
            &doc("web", &fleet.good, "[[certificates]]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n"),
        );
        let target = order()[3];
        let waves = format!("node:{target},100%");
        let out = fleet.run(&[
            "rollout", candidate.to_str().unwrap(), "--waves", &waves, "--bake", "1s",
            "--sample-every", "250ms", "--min-requests", "0",
        ]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains(&format!("{target} rejected the candidate")), "{text}");
        let rec = fleet.record().await.unwrap();
        assert_eq!(rec.phase, Phase::RolledBack);
        let node = fleet.nodes.iter().find(|n| n.id == target).unwrap();
        assert_eq!(node.revision(), fleet.base);
        assert_eq!(node.handled(), rec.candidate, "the node handled (rejected) it");
        for n in fleet.nodes.iter().filter(|n| n.id != target) {
            assert_eq!(n.handled(), fleet.base, "{} never got it", n.id);
        }
        assert_eq!(fleet.failed(&IDS), 0);

        // A node that answers status requests but never applies anything (a wedged controller,
        // here a plain NATS client of the test): its wave misses its deadline and rolls back.
        let ghost = publisher(&fleet.nats).await;
        let mut requests = ghost.subscribe("edge.v1.status").await.unwrap();
        ghost.flush().await.unwrap();
        let base = fleet.base;
        let answering = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let status = format!(
                    r#"{{"schema":1,"node":"edge-ghost","boot_id":"g","version":"0","revision":{base},"hash":"h","uptime_s":1,"requests":0,"connections":0}}"#
                );
                if let Some(reply) = req.reply {
                    ghost.publish(reply, status.into()).await.unwrap();
                }
            }
        });
        let v2 = fleet.v2();
        let out = fleet.run(&[
            "rollout", v2.to_str().unwrap(), "--waves", "node:edge-ghost+edge-1", "--bake", "1s",
            "--wave-timeout", "2s", "--sample-every", "250ms", "--min-requests", "0",
        ]);
        answering.abort();
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains("wave 1: edge-ghost did not apply the candidate within 2s"),
            "{text}"
        );
        assert_eq!(fleet.record().await.unwrap().phase, Phase::RolledBack);
        eventually(Duration::from_secs(5), "edge-1 back on the base", || async {
            fleet.revisions().iter().all(|(_, r)| *r == base)
        })
        .await;
        assert_eq!(fleet.failed(&IDS), 0);
    })
    .await;
}

/// Starts a rollout with a long first bake in the background and waits until its first wave serves
/// the candidate; returns the driver and the wave's node.
async fn driver_in_first_bake(
    fleet: &Fleet,
    file: &Path,
    bake: &str,
    base: u64,
) -> (Proc, &'static str) {
    let driver = fleet.spawn(&[
        "rollout",
        file.to_str().unwrap(),
        "--waves",
        "1,50%",
        "--bake",
        bake,
        "--sample-every",
        "250ms",
        "--min-requests",
        "0",
        "--max-p99-factor",
        "4",
        "--p99-slack-ms",
        "250",
    ]);
    let first = order()[0];
    eventually(
        Duration::from_secs(15),
        "the first wave serves the candidate",
        || async {
            let node = fleet.nodes.iter().find(|n| n.id == first).unwrap();
            node.revision() > base
        },
    )
    .await;
    (driver, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_driver_leaves_the_fleet_as_it_was_until_resume_or_abort() {
    alone(async {
        let fleet = Fleet::start().await;
        let candidate = fleet.v2();
        let (mut driver, first) = driver_in_first_bake(&fleet, &candidate, "2s", fleet.base).await;
        driver.signal("-KILL");
        driver.exited(Duration::from_secs(5), "killed driver").await;
        let cand = fleet
            .nodes
            .iter()
            .find(|n| n.id == first)
            .unwrap()
            .revision();

        // The fleet stays as it was: the wave's node on the candidate, the others on the base.
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            for n in &fleet.nodes {
                let want = if n.id == first { cand } else { fleet.base };
                assert_eq!(n.revision(), want, "{} moved without a driver", n.id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A plain push is refused while the rollout is active; a second rollout too.
        let other = fleet.write(
            "other.toml",
            &doc(
                "web",
                &fleet.good,
                "[[routes]]\nname = \"x\"\npath_prefix = \"/x\"\ncluster = \"web\"\n",
            ),
        );
        let other = other.to_str().unwrap();
        assert_eq!(fleet.run(&["push", other]).status.code(), Some(4));
        assert_eq!(fleet.run(&["rollout", other]).status.code(), Some(3));
        let status = stdout(&fleet.run(&["rollout", "status"]));
        assert!(
            status.contains("Running") && status.contains("candidate"),
            "{status}"
        );
        // Each node's metrics and `edgeplane fleet` say which side of the rollout it is on.
        for n in &fleet.nodes {
            assert_eq!(n.metric("edgeplane_rollout_active").await, Some(1.0));
            assert_eq!(n.metric("edgeplane_rollout_wave").await, Some(1.0));
            assert_eq!(n.metric("edgeplane_rollout_waves").await, Some(3.0));
            assert_eq!(
                n.metric("edgeplane_rollout_candidate_revision").await,
                Some(cand as f64)
            );
            let on = if n.id == first { 1.0 } else { 0.0 };
            assert_eq!(
                n.metric("edgeplane_rollout_serving_candidate").await,
                Some(on),
                "{}",
                n.id
            );
        }
        let listing = stdout(&fleet.run(&["fleet"]));
        let line = |id: &str| {
            listing
                .lines()
                .find(|l| l.starts_with(id))
                .unwrap_or("")
                .to_string()
        };
        assert!(line(first).contains("candidate"), "{listing}");
        let other_node = IDS.iter().find(|id| **id != first).unwrap();
        assert!(line(other_node).contains(" base "), "{listing}");
        // The killed driver wrote the record less than 10 s ago: taking over needs --force.
        let out = fleet.run(&["rollout", "resume"]);
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));

        // Resume finishes it.
        let out = fleet.run(&["rollout", "resume", "--force", "--sample-every", "250ms"]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        let rec = fleet.record().await.unwrap();
        assert_eq!(rec.phase, Phase::Completed);
        let completed = rec.completed_revision.unwrap();
        eventually(
            Duration::from_secs(5),
            "every node on the completed revision",
            || async { fleet.revisions().iter().all(|(_, r)| *r == completed) },
        )
        .await;

        // Again with a driver killed mid-rollout, then aborted: every node back on the base.
        let base = completed;
        let (mut driver, first) = driver_in_first_bake(&fleet, Path::new(other), "30s", base).await;
        driver.signal("-KILL");
        driver.exited(Duration::from_secs(5), "killed driver").await;
        let out = fleet.run(&["rollout", "abort"]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        let took =
            millis_after(&text, "back on the base revision in ").expect("abort time reported");
        eprintln!("ABORT_MS {took}");
        assert!(
            fleet.revisions().iter().all(|(_, r)| *r == base),
            "{:?} (first {first})",
            fleet.revisions()
        );
        assert_eq!(fleet.record().await.unwrap().phase, Phase::Aborted);
        assert_eq!(fleet.failed(&IDS), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_and_dry_run_change_nothing_and_report_per_node() {
    alone(async {
        let fleet = Fleet::start().await;
        let v2 = fleet.v2();
        let v2 = v2.to_str().unwrap();

        // diff: text, JSON, exit codes like diff(1).
        let out = fleet.run(&["diff", v2]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("+ route v2"), "{text}");
        assert!(text.contains("- route base"), "{text}");
        let out = fleet.run(&["diff", v2, "--json"]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["revision"], fleet.base);
        // The candidate's first route is unnamed: `route0`; the base's is `base`.
        assert_eq!(
            json["changes"]["routes"]["added"],
            serde_json::json!(["route0", "v2"])
        );
        assert_eq!(
            json["changes"]["routes"]["removed"],
            serde_json::json!(["base"])
        );
        assert_eq!(json["same"], false);
        let base_doc = format!(
            "[[routes]]\nname = \"base\"\ncluster = \"web\"\n[clusters.web]\n{}",
            endpoints("web", &[(&fleet.good, 1)])
        );
        let same = fleet.write("same.toml", &base_doc);
        let out = fleet.run(&["diff", same.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        let invalid = fleet.write("invalid.toml", "[[routes]]\ncluster = \"nope\"\n");
        let invalid = invalid.to_str().unwrap();
        let out = fleet.run(&["diff", invalid]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("routes[0].cluster"));

        // push --dry-run: every node checks, nothing is written.
        let out = fleet.run(&["push", "--dry-run", v2]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert_eq!(text.matches("  valid     edge-").count(), IDS.len(), "{text}");

        // A node's own constraint: one that terminates TLS needs certificates in any routing, so
        // it alone finds the same document invalid.
        let pki = edgeplane_tests::TestPki::new();
        let (cert, key) = pki.server(&["tls.test"]);
        let tls_node = format!(
            "[node]\nid = \"edge-tls\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\n\
             [[node.listeners]]\naddress = \"127.0.0.1:0\"\n[node.listeners.tls]\n{}\
             [[certificates]]\ncert_pem = '''\n{cert}'''\nkey_pem = '''\n{key}'''\n",
            fleet.dir.path().join("edge-tls").display(),
            fleet.nats.url(),
            doc("web", &fleet.good, "")
        );
        let tls_node = NodeHandle::start(&edgeplane_config::from_toml(&tls_node).unwrap())
            .await
            .unwrap();
        let _tls_controller = join(&tls_node).await.unwrap().unwrap();
        let out = loop_until_answers(&fleet, v2, IDS.len() + 1).await;
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert_eq!(text.matches("  valid     edge-").count(), IDS.len(), "{text}");
        assert!(text.contains("  invalid   edge-tls"), "{text}");
        assert!(
            text.contains("node.listeners[0].tls: a TLS listener needs at least one [[certificates]]"),
            "{text}"
        );
        let certs = fleet.write(
            "certs.toml",
            &doc(
                "web",
                &fleet.good,
                "[[certificates]]\ncert = \"/nonexistent/cert.pem\"\nkey = \"/nonexistent/key.pem\"\n",
            ),
        );
        let out = fleet.run(&["push", "--dry-run", certs.to_str().unwrap()]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert_eq!(text.matches("  invalid   edge-").count(), IDS.len() + 1, "{text}");
        assert!(text.contains("cannot read /nonexistent/cert.pem"), "{text}");
        assert_eq!(fleet.run(&["push", "--dry-run", invalid]).status.code(), Some(2));
        // Nothing changed anywhere.
        assert!(fleet.revisions().iter().all(|(_, r)| *r == fleet.base));
        assert!(fleet.nodes.iter().all(|n| n.handled() == fleet.base));
        let out = fleet.run(&["diff", same.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "current is still the base document");
        assert_eq!(fleet.failed(&IDS), 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_waves_take_joiners_promote_ends_bakes_and_events_tell_the_story() {
    alone(async {
        let mut fleet = Fleet::start().await;
        let watcher = publisher(&fleet.nats).await;
        let mut events = watcher.subscribe("edge.v1.event.rollout").await.unwrap();
        watcher.flush().await.unwrap();
        let candidate = fleet.v2();
        let mut driver = fleet.spawn(&[
            "rollout",
            candidate.to_str().unwrap(),
            "--waves",
            "zone:a",
            "--bake",
            "5m",
            "--sample-every",
            "250ms",
            "--min-requests",
            "0",
            "--max-p99-factor",
            "4",
            "--p99-slack-ms",
            "250",
        ]);
        let zone_a = ["edge-1", "edge-2", "edge-3"];
        let base = fleet.base;
        let on_candidate = |f: &Fleet| -> Vec<&'static str> {
            f.nodes
                .iter()
                .filter(|n| n.revision() > base)
                .map(|n| n.id)
                .collect()
        };
        eventually(
            Duration::from_secs(15),
            "zone a on the candidate",
            || async { on_candidate(&fleet) == zone_a },
        )
        .await;

        // Nodes that join now: one in zone a takes the candidate, one in zone b the base.
        let (nats, dir, good, stop) = (&fleet.nats, fleet.dir.path(), &fleet.good, &fleet.stop);
        let joiner_a = start_node("edge-7", "a", nats, dir, good, stop).await;
        let joiner_b = start_node("edge-8", "b", nats, dir, good, stop).await;
        let cand = fleet.nodes[0].revision();
        eventually(
            Duration::from_secs(15),
            "the joiners follow their zone",
            || async { joiner_a.revision() == cand && joiner_b.revision() == base },
        )
        .await;
        fleet.nodes.push(joiner_a);
        fleet.nodes.push(joiner_b);

        // The bake is 5 minutes: promote ends it, twice (zone a, then the implied 100%).
        let out = fleet.run(&["rollout", "promote"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(
            stdout(&out).contains("asked the rollout's driver"),
            "{}",
            stdout(&out)
        );
        eventually(
            Duration::from_secs(15),
            "wave 2 puts every node on the candidate",
            || async { fleet.nodes.iter().all(|n| n.revision() == cand) },
        )
        .await;
        eventually(Duration::from_secs(10), "wave 2 bakes", || async {
            fleet
                .record()
                .await
                .is_some_and(|r| r.waves.len() == 2 && r.waves[1].applied_ms.is_some())
        })
        .await;
        assert_eq!(fleet.run(&["rollout", "promote"]).status.code(), Some(0));
        let status = driver.exited(Duration::from_secs(20), "driver").await;
        assert_eq!(status.code(), Some(0));
        let rec = fleet.record().await.unwrap();
        assert_eq!(rec.phase, Phase::Completed);
        assert_eq!(
            rec.waves[0].nodes, zone_a,
            "the joiner came after the wave started"
        );
        let completed = rec.completed_revision.unwrap();
        eventually(
            Duration::from_secs(5),
            "every node on the completed revision",
            || async { fleet.revisions().iter().all(|(_, r)| *r == completed) },
        )
        .await;

        // The events, in order.
        let mut kinds = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_millis(500), events.next()).await
        {
            let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
            kinds.push(e["kind"].as_str().unwrap().to_string());
        }
        assert_eq!(
            kinds,
            [
                "started",
                "wave_started",
                "promoted",
                "wave_passed",
                "wave_started",
                "promoted",
                "wave_passed",
                "completed"
            ]
        );
        assert_eq!(fleet.failed(&IDS), 0);
    })
    .await;
}
