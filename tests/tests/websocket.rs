//! A real WebSocket echo through the proxy, surviving a config reload mid-session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::start_node;
use edgeplane_tests::node_config;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket server that echoes every message.
async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    ws.send(msg).await.unwrap();
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let upstream = echo_server().await;
    let cfg = |extra: &str| {
        node_config(&format!(
            "[[routes]]\ncluster = \"ws\"\n[clusters.ws]\n[[clusters.ws.endpoints]]\naddress = \"{upstream}\"\n{extra}"
        ))
    };
    let (node, addr) = start_node(&cfg("")).await;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{addr}/chat"), stream)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::Text(format!("hello {i}"))).await.unwrap();
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::Text(format!("hello {i}"))
        );
    }
    // A config change does not cut the tunnel.
    let next = edgeplane_config::from_toml(&cfg("[clusters.other]\n")).unwrap();
    node.tables().apply(&next.routing).unwrap();
    let big = vec![7u8; 256 * 1024];
    ws.send(Message::Binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::Binary(big));
    ws.close(None).await.unwrap();
}
