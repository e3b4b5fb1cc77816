//! The bus against a real nats-server started by the test (ephemeral port, JetStream in a temp dir).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_nats::jetstream;
use edgeplane_bus::jetstream::{config_bucket, CONFIG_KEY};
use edgeplane_bus::wire::Heartbeat;
use edgeplane_bus::{decode, encode, BusOptions, BusStats, Credentials, Subjects};
use edgeplane_tests::{eventually, NatsServer};
use futures_util::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

fn options(server: &NatsServer, credentials: Credentials) -> BusOptions {
    BusOptions {
        urls: vec![server.url()],
        credentials,
        name: "edgeplane-test".into(),
        retry_initial: false,
        ..BusOptions::default()
    }
}

#[tokio::test]
async fn user_password_and_token_auth() {
    let server = NatsServer::start(&["--user", "edge", "--pass", "s3cret"]);
    let stats = Arc::new(BusStats::default());
    let good = Credentials::UserPassword {
        user: "edge".into(),
        password: "s3cret".into(),
    };
    let client = options(&server, good).connect(stats.clone()).await.unwrap();
    client.flush().await.unwrap();
    eventually(Duration::from_secs(5), "connect counted", || async {
        stats.connects.load(Relaxed) >= 1
    })
    .await;
    let bad = Credentials::UserPassword {
        user: "edge".into(),
        password: "wrong".into(),
    };
    assert!(
        options(&server, bad).connect(Arc::default()).await.is_err(),
        "wrong password refused"
    );

    let server = NatsServer::start(&["--auth", "t0ken"]);
    options(&server, Credentials::Token("t0ken".into()))
        .connect(Arc::default())
        .await
        .unwrap();
    assert!(options(&server, Credentials::None)
        .connect(Arc::default())
        .await
        .is_err());
}

#[tokio::test]
async fn config_bucket_is_created_once_and_keeps_history() {
    let server = NatsServer::start(&[]);
    let client = options(&server, Credentials::None)
        .connect(Arc::default())
        .await
        .unwrap();
    let js = jetstream::new(client.clone());
    let kv = config_bucket(&js, "edge_config", 8, 1).await.unwrap();
    let r1 = kv.put(CONFIG_KEY, "one".into()).await.unwrap();
    // A second node opening the same bucket gets the same one.
    let kv2 = config_bucket(&jetstream::new(client), "edge_config", 8, 1)
        .await
        .unwrap();
    let r2 = kv2.put(CONFIG_KEY, "two".into()).await.unwrap();
    assert!(r2 > r1);
    // Compare-and-set: an update from an old revision is refused.
    assert!(kv.update(CONFIG_KEY, "stale".into(), r1).await.is_err());
    assert!(kv.update(CONFIG_KEY, "three".into(), r2).await.is_ok());
    // The current value comes first on a watch with history (a node booting late converges).
    let mut watch = kv.watch_with_history(CONFIG_KEY).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first.value[..], b"three");
    let mut history = kv.history(CONFIG_KEY).await.unwrap();
    let mut values = Vec::new();
    while let Some(entry) = history.next().await {
        values.push(String::from_utf8(entry.unwrap().value.to_vec()).unwrap());
    }
    assert_eq!(values, ["one", "two", "three"]);
}

#[tokio::test]
async fn heartbeats_round_trip_and_slow_consumers_are_counted() {
    let server = NatsServer::start(&[]);
    let stats = Arc::new(BusStats::default());
    let mut opts = options(&server, Credentials::None);
    opts.subscription_capacity = 8;
    let client = opts.connect(stats.clone()).await.unwrap();
    let subjects = Subjects::default();
    let mut sub = client
        .subscribe(subjects.heartbeats_of("api").unwrap())
        .await
        .unwrap();
    let hb = Heartbeat {
        schema: 1,
        instance: "i-1".into(),
        boot_id: "b".into(),
        seq: 1,
        address: "127.0.0.1:9001".into(),
        weight: 1,
        zone: None,
        health: 90,
        in_flight: 0,
        cpu: 0.1,
        latency_ms: 2.0,
        ttl_ms: 3000,
        draining: false,
    };
    client
        .publish(subjects.heartbeat("api", "i-1").unwrap(), encode(&hb))
        .await
        .unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(subjects.parse_heartbeat(&msg.subject), Some(("api", "i-1")));
    assert_eq!(decode::<Heartbeat>(&msg.payload).unwrap(), hb);

    // Flood the subscription without reading it: the client drops and reports a slow consumer.
    for seq in 2..2_000 {
        let hb = Heartbeat { seq, ..hb.clone() };
        client
            .publish(subjects.heartbeat("api", "i-1").unwrap(), encode(&hb))
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    eventually(Duration::from_secs(10), "slow consumer counted", || async {
        stats.slow_consumers.load(Relaxed) > 0
    })
    .await;
}
