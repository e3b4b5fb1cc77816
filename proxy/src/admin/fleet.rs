//! `GET /api/v1/fleet`: every node this node knows from the fleet's announcements and the nodes
//! bucket (id, zone, version, applied revision, last seen, uptime, request rate, open connections),
//! with fleet totals. 404 on a node without `[node.nats]`.

use super::{error, json_reply, AdminContext, Resp};
use http::StatusCode;
use serde_json::json;

/// `GET /api/v1/fleet`.
pub(super) fn fleet(ctx: &AdminContext) -> Resp {
    let Some(f) = ctx.fleet.get() else {
        return error(
            StatusCode::NOT_FOUND,
            "this node runs without [node.nats]: it knows no fleet",
        );
    };
    let nodes = f.nodes.nodes();
    let online: Vec<_> = nodes.iter().filter(|n| n.online).collect();
    let newest = online.iter().map(|n| n.status.revision).max().unwrap_or(0);
    let list: Vec<_> = nodes
        .iter()
        .map(|n| {
            let s = &n.status;
            json!({
                "id": s.node,
                "zone": s.zone,
                "version": s.version,
                "boot_id": s.boot_id,
                "revision": s.revision,
                "handled_revision": s.handled,
                "hash": s.hash,
                "online": n.online,
                "last_seen_s": (n.last_seen_s * 10.0).round() / 10.0,
                "uptime_s": s.uptime_s,
                "requests": s.requests,
                "requests_per_s": n.requests_per_s.map(|r| (r * 10.0).round() / 10.0),
                "connections": s.connections,
            })
        })
        .collect();
    json_reply(
        StatusCode::OK,
        &json!({
            "nodes": list,
            "totals": {
                "nodes": nodes.len(),
                "online": online.len(),
                "newest_revision": newest,
                "on_newest_revision": online.iter().filter(|n| n.status.revision == newest).count(),
                "requests_per_s": online.iter().filter_map(|n| n.requests_per_s).sum::<f64>().round(),
                "connections": online.iter().map(|n| n.status.connections).sum::<u64>(),
            },
        }),
    )
}
