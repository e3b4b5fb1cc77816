//! The config follower's watch is not held up by its backstop: a node reads the config bucket's keys
//! directly every second besides its watch, and while such a read is in flight (a round trip across
//! a slow link, or here, a read that is never answered) an update the watch delivers is applied at
//! once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{publisher_as, push_options, start_node};
use edgeplane_bus::Subjects;
use edgeplane_controller::publish::{push, PushOptions};
use edgeplane_proxy::fleet::join;
use edgeplane_tests::{eventually, Backend, NatsServer};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_applied_while_the_direct_reads_hang() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/nats/reads-denied.conf");
    let nats = NatsServer::start(&["-c", conf]);
    let a = Backend::named("a").await;
    let state = tempfile::tempdir().unwrap();
    let routing = |n: u32| {
        format!(
            "[[routes]]\ncluster = \"api\"\n[clusters.api]\nhealth_threshold = {n}\n\
             [[clusters.api.endpoints]]\naddress = \"{}\"\n",
            a.addr
        )
    };
    let admin = publisher_as(&nats, "admin").await;
    let opts = PushOptions {
        timeout: Duration::from_secs(10),
        ..push_options()
    };
    // The bucket exists before the node starts (the node may not create it either way).
    push(&admin, &Subjects::default(), &routing(1), &opts)
        .await
        .unwrap();

    let text = format!(
        "[node]\nid = \"w1\"\nstate_dir = \"{}\"\n[node.nats]\nurls = [\"{}\"]\nuser = \"node\"\n\
         password = \"node\"\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n{}",
        state.path().display(),
        nats.url(),
        routing(1)
    );
    let (handle, _) = start_node(&text).await;
    let controller = join(&handle).await.unwrap().unwrap();
    // Its watch delivers the first revision (its direct reads never answer).
    eventually(
        Duration::from_secs(20),
        "the node follows the bucket",
        || async { controller.state.lock().unwrap().revision > 0 },
    )
    .await;

    // Each push is applied and acknowledged as soon as the watch delivers it, although a direct read
    // is in flight most of the time (each waits out the node's 1 s request timeout; with the watch
    // held up behind them, the answer came after up to 2 s).
    for n in 2..=9 {
        let report = push(&admin, &Subjects::default(), &routing(n), &opts)
            .await
            .unwrap();
        let after = report.answered_after.get("w1").copied();
        assert!(report.applied.contains("w1"), "push {n}: {report:?}");
        assert!(
            after.is_some_and(|d| d < Duration::from_millis(500)),
            "push {n}: the node answered {after:?} after the write"
        );
    }
    // The reads were refused (the server reports refusals as errors).
    let errors = controller.stats.errors.load(Relaxed);
    assert!(errors > 0, "{errors} errors reported");
}
