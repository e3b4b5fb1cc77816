//! Rate limits in the admin API: `GET /api/v1/limits` lists every limit with its counts;
//! `GET /api/v1/limits/<route|cluster>/<name>/<limit>?key=<part>&key=<part>` shows one key's state
//! (one `key` parameter per part of the limit's key, in order: the client address, a header's or a
//! cookie's value; none for a part `route`).

use super::{error, json_reply, AdminContext, Resp};
use crate::limits::{gcra, key, now, Limiter, Owner};
use edgeplane_config::model::LimitKey;
use http::StatusCode;
use serde_json::{json, Value};

/// `GET /api/v1/limits`.
pub(super) fn list(ctx: &AdminContext) -> Resp {
    let snap = ctx.tables.load();
    let now = now();
    let limits: Vec<Value> = snap.limits.all().map(|l| summary(l, now)).collect();
    json_reply(StatusCode::OK, &json!({ "limits": limits }))
}

fn summary(l: &Limiter, now: u64) -> Value {
    json!({
        "owner": l.owner.name(),
        "name": &*l.owner_name,
        "limit": l.spec.name,
        "rate": l.spec.rate,
        "per_ms": l.spec.per.as_millis() as u64,
        "burst": l.spec.burst,
        "key": l.spec.key.iter().map(LimitKey::text).collect::<Vec<_>>(),
        "scope": l.spec.scope.name(),
        "mode": l.spec.mode.name(),
        "max_keys": l.spec.max_keys,
        "capacity": l.table.capacity(),
        "active_keys": l.table.active_keys(now),
        "evictions": l.table.evictions(),
        "fleet": l.fleet.as_ref().map(|s| json!({
            "nodes": s.nodes(),
            "share": s.part_ppm.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6,
        })),
    })
}

/// `GET /api/v1/limits/<owner>/<name>/<limit>?key=...`.
pub(super) fn one(ctx: &AdminContext, owner: &str, name: &str, limit: &str, query: &str) -> Resp {
    let owner = match owner {
        "route" => Owner::Route,
        "cluster" => Owner::Cluster,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no limit owner {other:?} (route or cluster)"),
            )
        }
    };
    let snap = ctx.tables.load();
    let Some(l) = snap.limits.find(owner, name, limit) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no rate limit {limit:?} on {} {name:?}", owner.name()),
        );
    };
    let values: Vec<String> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .collect();
    let needed: Vec<&LimitKey> = l
        .spec
        .key
        .iter()
        .filter(|k| **k != LimitKey::Route)
        .collect();
    if values.len() != needed.len() {
        let parts: Vec<String> = needed.iter().map(|k| k.text()).collect();
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "give one key parameter per part of the limit's key, in order: {parts:?} ({} given)",
                values.len()
            ),
        );
    }
    let mut given = values.iter();
    let parts: Vec<&[u8]> = l
        .spec
        .key
        .iter()
        .map(|k| match k {
            LimitKey::Route => &b""[..],
            _ => given.next().map_or(&b""[..], |v| v.as_bytes()),
        })
        .collect();
    let hash = key::key_of(&parts);
    let now = now();
    let state = l.table.peek(hash, now, l.policy);
    let interval = state.map_or(0, |s| s.1).max(l.policy.interval);
    let policy = l.policy.scaled(interval);
    let available = state.map_or(gcra::available(policy, 0, now), |s| s.0);
    let mut body = summary(l, now);
    if let Value::Object(m) = &mut body {
        m.insert("key_values".into(), json!(values));
        m.insert("key_hash".into(), json!(format!("{hash:016x}")));
        m.insert("tracked".into(), json!(state.is_some()));
        m.insert("available".into(), json!(available));
        m.insert("node_rate_per_s".into(), json!(1e9 / interval as f64));
    }
    json_reply(StatusCode::OK, &body)
}
