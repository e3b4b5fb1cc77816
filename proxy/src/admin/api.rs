//! The JSON admin API (`/api/v1/...`): status, clusters with live endpoint state, route explanation,
//! per-node endpoint overrides (drain, disable, enable), rate limits ([`super::limits`]) and the fleet
//! ([`super::fleet`]).

use super::{error, json_reply, AdminContext, Resp};
use crate::tables::router::normalize_host;
use crate::tables::{Cluster, Endpoint};
use crate::upstream::AdminState;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

/// Answers one API request (already authorized).
pub(super) fn answer<B>(req: &Request<B>, ctx: &AdminContext) -> Resp {
    let path = req.uri().path();
    let parts: Vec<&str> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let method = req.method();
    match (method, parts.as_slice()) {
        (&Method::GET, ["status"]) => status(ctx),
        (&Method::GET, ["clusters"]) => clusters(ctx),
        (&Method::GET, ["config"]) => config(ctx),
        (&Method::GET, ["clusters", name]) => cluster(ctx, name),
        (&Method::GET, ["clusters", name, "autoscale"]) => super::fleet::autoscale(ctx, name),
        (&Method::GET, ["explain"]) => explain(ctx, req.uri().query().unwrap_or("")),
        (&Method::GET, ["limits"]) => super::limits::list(ctx),
        (&Method::GET, ["fleet"]) => super::fleet::fleet(ctx),
        (&Method::GET, ["limits", owner, name, limit]) => {
            super::limits::one(ctx, owner, name, limit, req.uri().query().unwrap_or(""))
        }
        (&Method::POST, ["clusters", name, "endpoints", address, action]) => {
            endpoint_action(ctx, name, address, action)
        }
        (
            _,
            ["status" | "clusters" | "explain" | "config" | "limits" | "fleet"] | ["clusters", _],
        )
        | (_, ["limits", _, _, _] | ["clusters", _, "autoscale"])
        | (_, ["clusters", _, "endpoints", _, _]) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {path}"),
        ),
        _ => error(StatusCode::NOT_FOUND, format!("no API endpoint {path}")),
    }
}

fn status(ctx: &AdminContext) -> Resp {
    let snap = ctx.tables.load();
    let revision = revision(ctx);
    let endpoints: usize = snap.clusters.iter().map(|c| c.endpoints.len()).sum();
    json_reply(
        StatusCode::OK,
        &json!({
            "node": ctx.node,
            "zone": ctx.zone,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": ctx.started.elapsed().as_secs(),
            "phase": format!("{:?}", *ctx.phase.borrow()).to_lowercase(),
            "revision": revision,
            "handled_revision": ctx.fleet.get().and_then(|f| f.state.lock().ok().map(|s| s.handled)),
            "hash": snap.hash.to_string(),
            "generation": snap.generation,
            "bus": ctx.fleet.get().map(bus_status),
            "routes": snap.router.routes().len(),
            "clusters": snap.clusters.len(),
            "endpoints": endpoints,
            "connections": ctx.open.load(Relaxed),
            "requests": ctx.shared.requests.load(Relaxed),
        }),
    )
}

fn revision(ctx: &AdminContext) -> u64 {
    ctx.fleet
        .get()
        .and_then(|f| f.state.lock().ok().map(|s| s.revision))
        .unwrap_or(0)
}

/// The NATS link and what membership makes of it: `frozen` names why heartbeat expiry is suspended
/// (`disconnected`, `reconnect_grace`), `held_instances` counts instances kept with their last state.
fn bus_status(f: &super::FleetView) -> Value {
    json!({
        "connected": f.bus.connected.load(Relaxed),
        "membership_frozen": f.composer.frozen().map(|r| r.reason()),
        "held_instances": f.composer.held(),
        "instances": f.composer.instances(),
    })
}

/// The routing in place: pushed revision (0 = file config), content hash of the document, and the
/// document as served, including endpoints that heartbeats and scaling events added.
fn config(ctx: &AdminContext) -> Resp {
    let snap = ctx.tables.load();
    json_reply(
        StatusCode::OK,
        &json!({
            "revision": revision(ctx),
            "hash": snap.hash.to_string(),
            "generation": snap.generation,
            "document": super::document::routing_json(&snap.routing),
        }),
    )
}

fn usable(c: &Cluster, e: &Endpoint) -> bool {
    e.upstream.usable(c.health_threshold)
}

fn clusters(ctx: &AdminContext) -> Resp {
    let snap = ctx.tables.load();
    let list: Vec<Value> = snap
        .clusters
        .iter()
        .map(|c| {
            json!({
                "name": &*c.name,
                "balancing": c.policy.as_str(),
                "health_threshold": c.health_threshold,
                "max_requests": c.limits.max_requests,
                "circuit_open": c.limits.max_requests.is_some_and(|m| c.state.in_flight() >= m),
                "panic": c.state.panic(),
                "zone_local": c.local.as_ref().map(|_| c.state.local_ok()),
                "endpoints": c.endpoints.len(),
                "usable": c.endpoints.iter().filter(|e| usable(c, e)).count(),
                "in_flight": c.endpoints.iter().map(|e| e.upstream.in_flight()).sum::<u32>(),
                "connections": c.state.connections(),
                "pending": c.state.pending(),
                "retries_in_flight": c.state.retries(),
                "overflow": c.state.rejected(),
                "priority_shares": priority_shares(c),
            })
        })
        .collect();
    json_reply(StatusCode::OK, &Value::Array(list))
}

/// Each priority level's share of the traffic, by priority: `{"0": 0.714, "1": 0.286}`.
fn priority_shares(c: &Cluster) -> Value {
    let shares = c.state.level_shares();
    let map: serde_json::Map<String, Value> = c
        .levels()
        .enumerate()
        .map(|(i, l)| {
            let priority = l.first().map_or(0, |e| e.priority).to_string();
            let share = f64::from(shares.get(i).copied().unwrap_or(0)) / 1000.0;
            (priority, Value::from(share))
        })
        .collect();
    Value::Object(map)
}

fn endpoint_json(c: &Cluster, e: &Endpoint) -> Value {
    let u = &e.upstream;
    let (r_in_flight, r_cpu, r_latency) = u.reported_load();
    json!({
        "address": u.address.to_string(),
        "weight": e.weight,
        "priority": e.priority,
        "zone": e.zone.as_deref(),
        "usable": usable(c, e),
        "health": u.health(),
        "draining": u.draining(),
        "ejected": u.ejected(),
        "check_failed": u.check_failed(),
        "ejections": u.outlier.lock().map_or(0, |s| s.ejections),
        "admin": u.admin_state().as_str(),
        "in_flight": u.in_flight(),
        "ewma_ms": u.ewma_latency().map(|d| d.as_secs_f64() * 1e3),
        "requests": u.requests(),
        "failures": u.failures(),
        "consecutive_failures": u.consecutive_failures(),
        "idle_connections": u.pool.idle_count(),
        "success_rate": f64::from(u.success_permille()) / 1000.0,
        "warming": u.warming(),
        "reported": { "in_flight": r_in_flight, "cpu": r_cpu, "latency_ms": r_latency.as_secs_f64() * 1e3 },
    })
}

fn cluster(ctx: &AdminContext, name: &str) -> Resp {
    let snap = ctx.tables.load();
    let Some(c) = snap.clusters.iter().find(|c| &*c.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no cluster {name:?}"));
    };
    json_reply(
        StatusCode::OK,
        &json!({
            "name": &*c.name,
            "balancing": c.policy.as_str(),
            "health_threshold": c.health_threshold,
            "priority_shares": priority_shares(c),
            "endpoints": c.endpoints.iter().map(|e| endpoint_json(c, e)).collect::<Vec<_>>(),
        }),
    )
}

/// `explain?host=&path=&method=&header=name:value...`: the route a request would take, and why.
fn explain(ctx: &AdminContext, query: &str) -> Resp {
    let mut host = String::new();
    let mut path = "/".to_string();
    let mut method = Method::GET;
    let mut headers = HeaderMap::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "host" => host = v.into_owned(),
            "path" => path = v.into_owned(),
            "method" => match Method::from_bytes(v.as_bytes()) {
                Ok(m) => method = m,
                Err(_) => return error(StatusCode::BAD_REQUEST, format!("invalid method {v:?}")),
            },
            "header" => {
                let parsed = v.split_once(':').and_then(|(n, val)| {
                    Some((
                        HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                        HeaderValue::from_str(val.trim()).ok()?,
                    ))
                });
                match parsed {
                    Some((n, val)) => {
                        headers.append(n, val);
                    }
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("invalid header {v:?} (name:value)"),
                        )
                    }
                }
            }
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter {other:?}"),
                )
            }
        }
    }
    let snap = ctx.tables.load();
    let mut buf = [0u8; crate::tables::router::MAX_HOST];
    let host = normalize_host(host.as_bytes(), &mut buf);
    let ex = snap.router.explain(host, &path, &method, &headers);
    let considered: Vec<Value> = ex
        .considered
        .iter()
        .map(|c| {
            json!({
                "route": &*c.route.name,
                "group": c.group,
                "path_prefix": c.route.path_prefix(),
                "result": c.mismatch.unwrap_or("matched"),
            })
        })
        .collect();
    let describe = |i: usize| {
        snap.clusters.get(i).map_or(Value::Null, |c| {
            json!({
                "name": &*c.name,
                "balancing": c.policy.as_str(),
                "usable_endpoints": c.endpoints.iter().filter(|e| usable(c, e)).map(|e| e.upstream.address.to_string()).collect::<Vec<_>>(),
            })
        })
    };
    let (route, cluster, weighted) = match ex.route {
        Some(r) => {
            let weighted = r.split.as_ref().map(|_| {
                let shares = snap
                    .routing
                    .routes
                    .get(r.index())
                    .and_then(|m| m.split.as_ref());
                shares.map_or_else(Vec::new, |s| {
                    s.clusters
                        .iter()
                        .map(|w| json!({ "weight": w.weight, "cluster": describe(w.cluster) }))
                        .collect()
                })
            });
            (
                Value::from(&*r.name),
                r.cluster.map_or(Value::Null, describe),
                weighted,
            )
        }
        None => (Value::Null, Value::Null, None),
    };
    let no_endpoint = |c: &Value| {
        c["usable_endpoints"]
            .as_array()
            .is_some_and(|a| a.is_empty())
    };
    let outcome = match (&ex.route, &cluster, &weighted) {
        (None, _, _) => "no route matches: the client gets 404",
        (Some(_), Value::Object(_), _) if no_endpoint(&cluster) => {
            "no usable endpoint: the client gets 503"
        }
        (Some(_), _, Some(_)) => {
            "proxied to one of the weighted clusters (a cluster without usable endpoints answers 503)"
        }
        _ => "proxied",
    };
    json_reply(
        StatusCode::OK,
        &json!({
            "request": { "host": host, "path": path, "method": method.as_str() },
            "route": route,
            "cluster": cluster,
            "weighted_clusters": weighted,
            "outcome": outcome,
            "considered": considered,
        }),
    )
}

fn endpoint_action(ctx: &AdminContext, cluster: &str, address: &str, action: &str) -> Resp {
    let state = match action {
        "drain" => AdminState::Draining,
        "disable" => AdminState::Disabled,
        "enable" => AdminState::Enabled,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action {other:?} (drain, disable or enable)"),
            )
        }
    };
    let Ok(address) = address.parse::<SocketAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("invalid address {address:?} (ip:port)"),
        );
    };
    let snap = ctx.tables.load();
    let Some(c) = snap.clusters.iter().find(|c| &*c.name == cluster) else {
        return error(StatusCode::NOT_FOUND, format!("no cluster {cluster:?}"));
    };
    let Some(e) = c.endpoints.iter().find(|e| e.upstream.address == address) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no endpoint {address} in cluster {cluster:?}"),
        );
    };
    e.upstream.set_admin_state(state);
    tracing::info!(%cluster, %address, admin = state.as_str(), "endpoint override set through the admin API");
    json_reply(StatusCode::OK, &endpoint_json(c, e))
}
