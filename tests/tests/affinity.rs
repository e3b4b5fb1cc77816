//! Session affinity through a real node: the proxy sets a cookie (or header) naming the endpoint that
//! served, the client's next requests stick to it across snapshot swaps, and move (with a new token)
//! when that endpoint is out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::node_and_client;
use edgeplane_proxy::upstream::AdminState;
use edgeplane_tests::{endpoints, node_config, Backend, Client, Resp};
use http_body_util::{BodyExt, Empty};

async fn get_with(client: &Client, name: &str, value: &str) -> Resp {
    let req = client
        .request("a.test", "/")
        .header(name, value)
        .body(Empty::new().boxed())
        .unwrap();
    client.send(req).await.unwrap()
}

#[tokio::test]
async fn a_cookie_keeps_a_client_on_its_endpoint_across_swaps_until_it_is_out() {
    let (a, b, c) = (
        Backend::named("a").await,
        Backend::named("b").await,
        Backend::named("c").await,
    );
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.affinity]\ncookie = \"ep\"\nttl = \"10m\"\n{}",
        endpoints("c", &[(&a, 1), (&b, 1), (&c, 1)])
    ));
    let (node, client) = node_and_client(&cfg).await;
    let first = client.get("a.test", "/").await;
    let set = first.header("set-cookie").to_string();
    assert!(
        set.starts_with("ep=") && set.contains("Max-Age=600"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let owner = first.header("x-backend").to_string();
    for _ in 0..10 {
        let r = get_with(&client, "cookie", &cookie).await;
        assert_eq!(
            r.header("x-backend"),
            owner,
            "round robin would have moved it"
        );
        assert_eq!(r.header("set-cookie"), "", "no new cookie while it sticks");
    }
    // A snapshot swap (the same routing applied again, as a reload or push does) keeps it.
    let routing = edgeplane_config::from_toml(&cfg).unwrap().routing;
    node.tables().apply(&routing).unwrap();
    assert_eq!(
        get_with(&client, "cookie", &cookie)
            .await
            .header("x-backend"),
        owner
    );

    // The owner is taken out: the client moves and gets a new cookie, then sticks to the new one.
    let snapshot = node.tables().load();
    let out = snapshot.clusters[0]
        .endpoints
        .iter()
        .find(|e| {
            [&a, &b, &c]
                .iter()
                .any(|x| x.addr == e.upstream.address && x.name == owner)
        })
        .unwrap();
    out.upstream.set_admin_state(AdminState::Disabled);
    let moved = get_with(&client, "cookie", &cookie).await;
    assert_ne!(moved.header("x-backend"), owner);
    let new_cookie = moved
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(new_cookie, cookie);
    let new_owner = moved.header("x-backend").to_string();
    for _ in 0..5 {
        assert_eq!(
            get_with(&client, "cookie", &new_cookie)
                .await
                .header("x-backend"),
            new_owner
        );
    }
}

#[tokio::test]
async fn a_header_carries_affinity_and_a_forged_token_is_ignored() {
    let (a, b) = (Backend::named("a").await, Backend::named("b").await);
    let cfg = node_config(&format!(
        "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[clusters.c.affinity]\nheader = \"x-ep\"\n{}",
        endpoints("c", &[(&a, 1), (&b, 1)])
    ));
    let (_node, client) = node_and_client(&cfg).await;
    let first = client.get("a.test", "/").await;
    let token = first.header("x-ep").to_string();
    assert_eq!(token.len(), 16, "{token:?}");
    for _ in 0..6 {
        assert_eq!(
            get_with(&client, "x-ep", &token).await.header("x-backend"),
            first.header("x-backend")
        );
    }
    let forged = get_with(&client, "x-ep", "0123456789abcdef").await;
    assert_eq!(forged.status, http::StatusCode::OK);
    assert_eq!(forged.header("x-ep").len(), 16, "a real token replaces it");
}
