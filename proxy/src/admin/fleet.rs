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
    // The first request starts this node's view of the fleet (controller::fleet_view).
    let following = f.nodes.is_wanted();
    f.nodes.want();
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
            "following": following,
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

/// `GET /api/v1/clusters/{name}/autoscale`: the cluster's recommendation as this node computes it,
/// its signals and settings, and whether this node leads (publishes).
pub(super) fn autoscale(ctx: &AdminContext, name: &str) -> Resp {
    let Some(f) = ctx.fleet.get() else {
        return error(
            StatusCode::NOT_FOUND,
            "this node runs without [node.nats]: autoscale recommendations need the fleet",
        );
    };
    let clusters = f
        .autoscale
        .clusters
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let Some(v) = clusters.get(name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("cluster {name:?} has no [clusters.{name}.autoscale], or none computed yet"),
        );
    };
    let (c, s, r) = (&v.config, &v.signals, &v.recommendation);
    json_reply(
        StatusCode::OK,
        &json!({
            "cluster": name,
            "leader": f.autoscale.leader.load(std::sync::atomic::Ordering::Relaxed),
            "current": r.current,
            "desired": r.desired,
            "reason": r.reason,
            "signals": {
                "instances": s.instances,
                "cpu": s.cpu,
                "in_flight": s.in_flight,
                "latency_ms": s.latency_ms,
                "value": r.value,
                "projected": r.projected,
            },
            "settings": {
                "min": c.min,
                "max": c.max,
                "target": c.target.name(),
                "target_value": c.target_value,
                "scale_up_above": c.scale_up_above,
                "scale_down_below": c.scale_down_below,
                "cooldown_up_s": c.cooldown_up.as_secs_f64(),
                "cooldown_down_s": c.cooldown_down.as_secs_f64(),
                "max_step": c.max_step,
                "predictive": c.predictive,
                "window_s": c.window.as_secs_f64(),
            },
        }),
    )
}
