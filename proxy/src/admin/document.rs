//! The routing in place as a JSON routing document, in the config file's shape, so that what the admin
//! API shows can be read like a config file and pushed back (`edgeplane push` accepts JSON).

use edgeplane_config::model::{
    AffinityBy, Certificate, CircuitBreaker, HashOn, HostMatch, Pem, Retry, Routing,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

fn duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `routing` as a document: `{"routes": [...], "clusters": {...}}`.
pub(super) fn routing_json(routing: &Routing) -> Value {
    let routes: Vec<Value> = routing
        .routes
        .iter()
        .map(|r| {
            let hosts: Vec<String> = r
                .hosts
                .iter()
                .map(|h| match h {
                    HostMatch::Exact(h) => h.clone(),
                    HostMatch::Suffix(s) => format!("*{s}"),
                })
                .collect();
            let headers: Vec<Value> = r
                .headers
                .iter()
                .map(|h| match &h.value {
                    Some(v) => json!({ "name": h.name, "value": v }),
                    None => json!({ "name": h.name }),
                })
                .collect();
            json!({
                "name": r.name,
                "hosts": hosts,
                "path_prefix": r.path_prefix,
                "methods": r.methods,
                "headers": headers,
                "cluster": routing.clusters.get(r.cluster).map_or("", |c| c.name.as_str()),
            })
        })
        .collect();
    let mut clusters = Map::new();
    for c in &routing.clusters {
        let endpoints: Vec<Value> = c
            .endpoints
            .iter()
            .map(|e| {
                let mut v = json!({
                    "address": e.address.to_string(),
                    "weight": e.weight,
                    "priority": e.priority,
                });
                if let (Some(zone), Some(obj)) = (&e.zone, v.as_object_mut()) {
                    obj.insert("zone".into(), Value::from(zone.as_str()));
                }
                v
            })
            .collect();
        let mut cluster = json!({
            "balancing": c.balancing.as_str(),
            "self_registration": c.membership.self_registration,
            "health_threshold": c.membership.health_threshold,
            "panic_threshold": c.panic_threshold,
            "zone_aware": c.zone_spill_below.is_some(),
            "remove_after": duration(c.membership.remove_after),
            "timeouts": {
                "connect": duration(c.timeouts.connect),
                "response_header": duration(c.timeouts.response_header),
            },
            "pool": {
                "max_idle_per_endpoint": c.pool.max_idle_per_endpoint,
                "idle_timeout": duration(c.pool.idle_timeout),
            },
            "endpoints": endpoints,
        });
        if let Some(obj) = cluster.as_object_mut() {
            if let Some(h) = &c.host_rewrite {
                obj.insert("host_rewrite".into(), Value::from(h.as_str()));
            }
            let hash_on = match &c.hash_on {
                HashOn::Header(h) => json!({ "header": h }),
                HashOn::Cookie(n) => json!({ "cookie": n }),
                HashOn::ClientIp => json!({ "client_ip": true }),
                HashOn::Path => json!({ "path": true }),
            };
            obj.insert("hash_on".into(), hash_on);
            if let Some(spill) = c.zone_spill_below {
                obj.insert("zone_spill_below".into(), Value::from(spill));
            }
            if let Some(hc) = &c.health_check {
                obj.insert(
                    "health_check".into(),
                    json!({
                        "path": hc.path,
                        "interval": duration(hc.interval),
                        "timeout": duration(hc.timeout),
                        "healthy_threshold": hc.healthy_threshold,
                        "unhealthy_threshold": hc.unhealthy_threshold,
                    }),
                );
            }
            obj.insert(
                "circuit_breaker".into(),
                circuit_breaker(&c.circuit_breaker),
            );
            obj.insert("retry".into(), retry(&c.retry));
            obj.insert("failover_below".into(), Value::from(c.failover_below));
            if let Some(t) = &c.tls {
                let mut v = Map::new();
                if let Some(sni) = &t.sni {
                    v.insert("sni".into(), Value::from(sni.as_str()));
                }
                if let Some(ca) = &t.ca {
                    v.insert("ca".into(), Value::from(ca.display().to_string()));
                }
                if let Some((cert, key)) = &t.client {
                    v.insert(
                        "client_cert".into(),
                        Value::from(cert.display().to_string()),
                    );
                    v.insert("client_key".into(), Value::from(key.display().to_string()));
                }
                v.insert("h2".into(), Value::from(t.h2));
                obj.insert("tls".into(), Value::Object(v));
            }
            if let Some(w) = c.slow_start {
                obj.insert("slow_start".into(), Value::from(duration(w)));
            }
            if let Some(a) = &c.affinity {
                let mut v = match &a.by {
                    AffinityBy::Cookie(name) => json!({ "cookie": name }),
                    AffinityBy::Header(name) => json!({ "header": name }),
                };
                if let Some(o) = v.as_object_mut() {
                    o.insert("ttl".into(), Value::from(duration(a.ttl)));
                }
                obj.insert("affinity".into(), v);
            }
            if let (Some(t), Some(timeouts)) = (c.timeouts.total, obj.get_mut("timeouts")) {
                if let Some(o) = timeouts.as_object_mut() {
                    o.insert("total".into(), Value::from(duration(t)));
                }
            }
            if let Some(o) = &c.outlier {
                obj.insert(
                    "outlier".into(),
                    json!({
                        "consecutive_failures": o.consecutive_failures,
                        "base_ejection": duration(o.base_ejection),
                        "max_ejection": duration(o.max_ejection),
                        "max_ejected_percent": o.max_ejected_percent,
                        "failure_rate": o.failure_rate,
                        "min_requests": o.min_requests,
                    }),
                );
            }
        }
        clusters.insert(c.name.clone(), cluster);
    }
    let mut doc = json!({ "routes": routes, "clusters": clusters });
    if !routing.certificates.is_empty() {
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("certificates".into(), certificates(&routing.certificates));
        }
    }
    doc
}

/// Certificates as written, except inline private keys, which the API never shows.
fn certificates(certs: &[Certificate]) -> Value {
    let entries: Vec<Value> = certs
        .iter()
        .map(|c| {
            let mut v = Map::new();
            match &c.cert {
                Pem::File(p) => v.insert("cert".into(), Value::from(p.display().to_string())),
                Pem::Inline(t) => v.insert("cert_pem".into(), Value::from(t.as_str())),
            };
            match &c.key {
                Pem::File(p) => v.insert("key".into(), Value::from(p.display().to_string())),
                Pem::Inline(_) => v.insert("key_pem".into(), Value::from("<redacted>")),
            };
            Value::Object(v)
        })
        .collect();
    Value::Array(entries)
}

fn circuit_breaker(cb: &CircuitBreaker) -> Value {
    let mut v = Map::new();
    for (name, limit) in [
        ("max_requests", cb.max_requests),
        ("max_connections", cb.max_connections),
        ("max_retries", cb.max_retries),
    ] {
        if let Some(l) = limit {
            v.insert(name.into(), Value::from(l));
        }
    }
    v.insert("max_pending".into(), Value::from(cb.max_pending));
    Value::Object(v)
}

fn retry(r: &Retry) -> Value {
    json!({
        "attempts": r.attempts,
        "on": r.on.names(),
        "backoff_base": duration(r.backoff_base),
        "backoff_max": duration(r.backoff_max),
        "budget_percent": r.budget_percent,
        "min_concurrent": r.min_concurrent,
        "buffer_body": r.buffer_body,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_reads_back_as_the_same_routing() {
        let text = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n\
            [[routes]]\nname = \"r\"\nhosts = [\"*.example.com\"]\npath_prefix = \"/api\"\ncluster = \"c\"\n\
            [clusters.c]\nbalancing = \"adaptive\"\nslow_start = \"20s\"\nfailover_below = 80\n\
            panic_threshold = 30\nzone_aware = true\n\
            [clusters.c.retry]\nattempts = 2\non = [\"reset\", \"429\"]\nbudget_percent = 10\n\
            [clusters.c.circuit_breaker]\nmax_requests = 100\nmax_connections = 50\nmax_pending = 7\n\
            [clusters.c.affinity]\nheader = \"x-ep\"\nttl = \"5m\"\n\
            [clusters.c.timeouts]\ntotal = \"4s\"\n\
            [clusters.c.outlier]\nconsecutive_failures = 4\n\
            [clusters.c.health_check]\npath = \"/h\"\n\
            [clusters.c.hash_on]\ncookie = \"sid\"\n\
            [clusters.c.tls]\nsni = \"api.internal\"\nh2 = true\n\
            [[clusters.c.endpoints]]\naddress = \"127.0.0.1:9\"\nweight = 3\nzone = \"z\"\npriority = 1\n";
        let routing = edgeplane_config::from_toml(text).unwrap().routing;
        let doc = super::routing_json(&routing).to_string();
        let back = edgeplane_config::document_from_text(&doc).unwrap();
        assert_eq!(back.routes, routing.routes);
        assert_eq!(back.clusters, routing.clusters);
    }
}
