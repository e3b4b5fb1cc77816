//! The permissive first stage: serde structs that mirror the text. Values that need checking (addresses,
//! durations, names, ranges) stay as text or wide integers here so that [`crate::validate`] can report
//! each problem with its path instead of stopping at the first.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole node config as written in a file.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Settings of this process.
    #[serde(default)]
    pub node: RawNode,
    /// Routes in the order written; see the config reference for precedence.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, RawCluster>,
    /// Server certificates for TLS listeners, picked by SNI; the first is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<RawCertificate>,
}

/// `[node]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Node id; defaults to `edge-1`.
    pub id: Option<String>,
    /// Zone the node runs in.
    pub zone: Option<String>,
    /// Worker threads; 0 or absent = one per core.
    pub workers: Option<i64>,
    /// Admin listener address (health endpoints).
    pub admin: Option<String>,
    /// File holding the admin API's bearer token.
    pub admin_token_file: Option<String>,
    /// One line per request: `true` (a `tracing` event on target `edgeplane::access`) or a table
    /// (lines of their own, JSON or a template).
    pub access_log: Option<RawAccessLog>,
    /// W3C trace context: generate a `traceparent` for requests without a valid one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<RawTracing>,
    /// Proxy listeners.
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    /// Resource limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Downstream timeouts.
    #[serde(default)]
    pub timeouts: RawNodeTimeouts,
    /// Where the node keeps its last applied pushed config.
    pub state_dir: Option<String>,
    /// Unix socket on which the node hands its listening sockets to a new process (binary upgrade).
    pub upgrade_socket: Option<String>,
    /// NATS: when present, the node follows the fleet's pushed config.
    pub nats: Option<RawNats>,
    /// Networks (`10.0.0.0/8`, `::1/128`, or one address) of proxies whose `X-Forwarded-For` rate
    /// limits believe.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// `[node.tracing]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// Give a request without a valid `traceparent` a new one (default false: passed as it comes).
    pub generate: Option<bool>,
    /// Share of generated trace contexts flagged sampled, in percent (default 100).
    pub sample_percent: Option<i64>,
}

/// `[node.nats]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    /// Server URLs.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Subject prefix (default `edge.v1`).
    pub prefix: Option<String>,
    /// KV bucket of the config (default `edge_config`).
    pub bucket: Option<String>,
    /// JetStream stream of the scaling events (default `edge_scale`).
    pub scale_stream: Option<String>,
    /// User (with `password`).
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// Nkey seed.
    pub nkey_seed: Option<String>,
    /// Credentials file.
    pub creds_file: Option<String>,
    /// CA certificates (PEM) for the servers.
    pub tls_ca: Option<String>,
    /// Client certificate (PEM), with `tls_key`.
    pub tls_cert: Option<String>,
    /// Client key (PEM), with `tls_cert`.
    pub tls_key: Option<String>,
    /// Refuse to connect without TLS.
    pub tls_required: Option<bool>,
    /// Expiry suspended this long after reconnecting (default `10s`).
    pub membership_grace: Option<String>,
    /// Replicas of the JetStream assets created when absent (default 1).
    pub replicas: Option<i64>,
}

/// A pushed routing document: routes and clusters only (node settings are local to each node).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDocument {
    /// Routes in order.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Clusters by name.
    #[serde(default)]
    pub clusters: BTreeMap<String, RawCluster>,
    /// Server certificates for TLS listeners, picked by SNI; the first is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<RawCertificate>,
}

/// `node.access_log`: a switch or a table.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RawAccessLog {
    /// `access_log = true`: `tracing` events; `false`: off.
    Switch(bool),
    /// `[node.access_log]`.
    Lines(RawAccessLines),
}

/// `[node.access_log]`: lines of their own.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLines {
    /// `json` (default) or `text`.
    pub format: Option<String>,
    /// With `json`: the fields, in order.
    pub fields: Option<Vec<String>>,
    /// With `text`: literal text and `$field` (or `${field}`) references.
    pub template: Option<String>,
    /// `stdout` (default), `stderr` or a file path.
    pub output: Option<String>,
    /// Lines waiting for the writer at most (default 16384).
    pub buffer_lines: Option<i64>,
}

impl<'de> Deserialize<'de> for RawAccessLog {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = RawAccessLog;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false or a table of access log settings")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawAccessLog, E> {
                Ok(RawAccessLog::Switch(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawAccessLog, A::Error> {
                RawAccessLines::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawAccessLog::Lines)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

/// `[[node.listeners]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// Name used in logs; defaults to `listener<index>`.
    pub name: Option<String>,
    /// Socket address to bind, e.g. `0.0.0.0:8080`.
    pub address: String,
    /// TLS termination; absent = cleartext.
    pub tls: Option<RawListenerTls>,
}

/// `[node.listeners.tls]`: the listener terminates TLS with the routing's `[[certificates]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    /// Oldest TLS version accepted: `"1.2"` (default) or `"1.3"`.
    pub min_version: Option<String>,
    /// ALPN protocols offered, in preference order (default `["h2", "http/1.1"]`).
    pub alpn: Option<Vec<String>>,
}

/// `[[certificates]]`: a certificate chain and its private key, each from a PEM file or inline PEM.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// Path of the PEM certificate chain (leaf first).
    pub cert: Option<String>,
    /// Path of the PEM private key.
    pub key: Option<String>,
    /// The PEM certificate chain itself (for pushed configs).
    pub cert_pem: Option<String>,
    /// The PEM private key itself (for pushed configs).
    pub key_pem: Option<String>,
}

/// `[node.limits]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Open downstream connections at most; further clients wait in the accept backlog.
    pub max_connections: Option<i64>,
    /// Bytes of request line plus headers at most (431 beyond).
    pub max_header_bytes: Option<i64>,
    /// Number of request headers at most (431 beyond).
    pub max_headers: Option<i64>,
}

/// `[node.timeouts]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeTimeouts {
    /// Time allowed to receive a request's headers (slowloris guard).
    pub header_read: Option<String>,
    /// A downstream connection with no request in flight and no traffic for this long is closed.
    pub idle: Option<String>,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Option<String>,
}

/// `[[routes]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name; defaults to `route<index>`.
    pub name: Option<String>,
    /// Hosts: exact (`api.example.com`), wildcard (`*.example.com`) or `*`; empty = any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefix, starting with `/`; defaults to `/`.
    pub path_prefix: Option<String>,
    /// Methods to match; empty = any.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Headers that must be present (and equal `value` or match `regex` when given).
    #[serde(default)]
    pub headers: Vec<RawHeaderMatch>,
    /// Query parameters that must be present (and equal `value` or match `regex` when given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<RawHeaderMatch>,
    /// Cookies that must be present (and equal `value` or match `regex` when given).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<RawHeaderMatch>,
    /// Name of the cluster that serves the route; empty when the route answers itself (`redirect`
    /// or `direct`).
    #[serde(default)]
    pub cluster: String,
    /// Clusters sharing the route's traffic by weight (a canary), instead of `cluster`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weighted_clusters: Vec<RawWeightedCluster>,
    /// With `weighted_clusters`: the request property that keeps a client on the same cluster;
    /// absent = each request is drawn by weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_on: Option<RawHashOn>,
    /// Protocols a client may switch to with `Upgrade` on this route; defaults to `["websocket"]`.
    pub upgrades: Option<Vec<String>>,
    /// Largest request body accepted, in bytes (413 beyond); absent = no limit. Left out of the
    /// document's canonical form when absent, so that documents without it keep their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body: Option<i64>,
    /// Timeouts of this route's requests, overriding its cluster's; absent = the cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RawRouteTimeouts>,
    /// What the path becomes upstream; absent = as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RawRewrite>,
    /// Headers set, added or removed on the request before it goes upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<RawHeaderOps>,
    /// Headers set, added or removed on the response before it goes to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<RawHeaderOps>,
    /// Responses compressed for clients that accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<RawCompression>,
    /// A copy of sampled requests goes to a shadow cluster, its answer discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<RawMirror>,
    /// Rate limits on the route's requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RawRateLimit>,
    /// The route answers with a redirect instead of proxying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RawRedirect>,
    /// The route answers with a fixed response instead of proxying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<RawDirect>,
}

/// One of `routes[i].weighted_clusters`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeightedCluster {
    /// The cluster's name.
    #[serde(default)]
    pub cluster: String,
    /// Its share of the route's traffic, relative to the others' (0 = none, the cluster stays
    /// named).
    pub weight: Option<i64>,
}

/// One of `routes[i].rate_limits` or `clusters.<name>.rate_limits`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Unique among the limits of its route or cluster (default: the key, e.g. `client_ip`).
    pub name: Option<String>,
    /// Requests per `per` for one key, at least 1.
    pub rate: Option<i64>,
    /// The period of `rate` (default `1s`).
    pub per: Option<String>,
    /// Requests a key may send at once, at least 1 (default: `rate`).
    pub burst: Option<i64>,
    /// The key's parts: `client_ip`, `route`, `header:<name>`, `cookie:<name>` (default
    /// `["client_ip"]`).
    pub key: Option<Vec<String>>,
    /// `local` (default: each node on its own) or `fleet` (the nodes together, over NATS).
    pub scope: Option<String>,
    /// `enforce` (default: 429 over the limit) or `shadow` (counted only).
    pub mode: Option<String>,
    /// Keys tracked at most per node (default 100000).
    pub max_keys: Option<i64>,
    /// Admitted responses carry the `RateLimit-Policy` and `RateLimit` headers too (default false).
    pub response_headers: Option<bool>,
}

/// `[routes.compression]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompression {
    /// Encodings offered, in the proxy's order of preference: `zstd`, `br`, `gzip`.
    pub algorithms: Option<Vec<String>>,
    /// Responses declaring a smaller `Content-Length` are sent as they are (default 1024).
    pub min_size: Option<i64>,
    /// Media types compressed (`text/html`, or `text/*`).
    pub content_types: Option<Vec<String>>,
}

/// `[routes.mirror]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    /// The shadow cluster.
    #[serde(default)]
    pub cluster: String,
    /// Share of the route's requests mirrored, 0 to 100 (default 100).
    pub percent: Option<f64>,
    /// Requests with a larger body (or one of unknown length) are not mirrored (default 65536).
    pub max_body: Option<i64>,
    /// Mirrored requests in flight at most for this route on a node; beyond, not mirrored (default
    /// 64).
    pub max_concurrent: Option<i64>,
}

/// `[routes.redirect]`: each part absent = as the request had it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Host, with a port if needed.
    pub host: Option<String>,
    /// The whole path.
    pub path: Option<String>,
    /// Replaces the route's `path_prefix` at the start of the path.
    pub path_prefix: Option<String>,
    /// Leave the query out (default false: kept).
    pub strip_query: Option<bool>,
    /// 301 (default), 302, 303, 307 or 308.
    pub status: Option<i64>,
}

/// `[routes.direct]`: a fixed response.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirect {
    /// Status, 200 to 599.
    pub status: Option<i64>,
    /// Body (default empty).
    pub body: Option<String>,
    /// `Content-Type` of the body (default `text/plain; charset=utf-8`).
    pub content_type: Option<String>,
}

/// `[routes.rewrite]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    /// Replaces the route's `path_prefix` at the start of the path (`"/"` strips it).
    pub path_prefix: Option<String>,
    /// A regular expression matched against the path (without the query), with `replacement`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// What a `regex` match is replaced with (`$1`, `${name}` for its groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    /// Rewrite the `Location` of the upstream's responses that point at the upstream itself to
    /// point at the client's origin (and prefix), as nginx's `proxy_redirect default` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<bool>,
}

/// `[routes.request_headers]` / `[routes.response_headers]`: applied in the order remove, set, add.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderOps {
    /// Header names to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    /// Headers to set, replacing any value already there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to add beside any value already there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
}

/// `[routes.timeouts]`: a route's own timeouts, each overriding its cluster's.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteTimeouts {
    /// Per try: from sending the request to receiving the response headers.
    pub response_header: Option<String>,
    /// The whole request, every try and backoff included, until response headers.
    pub total: Option<String>,
}

/// One header condition of a route.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderMatch {
    /// Header name (case-insensitive); for `query` and `cookies`, the parameter's or cookie's name
    /// (case-sensitive).
    pub name: String,
    /// Exact value; absent (and no `regex`) = only has to be present.
    pub value: Option<String>,
    /// A regular expression some value must match (unanchored: write `^...$` for the whole value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// `[clusters.<name>]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `round_robin` (default), `weighted_round_robin` or `least_connections`.
    pub balancing: Option<String>,
    /// Host header sent upstream instead of the client's.
    pub host_rewrite: Option<String>,
    /// Upstream endpoints.
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
    /// Upstream timeouts.
    #[serde(default)]
    pub timeouts: RawClusterTimeouts,
    /// Upstream connection pool.
    #[serde(default)]
    pub pool: RawPool,
    /// Whether backend instances join by heartbeat alone (default false: only listed, scaled or
    /// heartbeating-at-a-listed-address endpoints serve).
    pub self_registration: Option<bool>,
    /// Endpoints whose heartbeat health score (0 to 100) is below this are skipped (default 0: only
    /// endpoints that are down are skipped).
    pub health_threshold: Option<i64>,
    /// How long a self-registered instance stays down (heartbeats missed) before it is removed.
    pub remove_after: Option<String>,
    /// Below this percentage of usable endpoints (best priority), spread over all of them regardless
    /// of health (panic mode); 0 = off (default).
    pub panic_threshold: Option<i64>,
    /// Prefer endpoints in the node's zone (default false).
    pub zone_aware: Option<bool>,
    /// With `zone_aware`: spill over to every zone when fewer than this percentage of the local
    /// zone's endpoints are usable (default 50).
    pub zone_spill_below: Option<i64>,
    /// Passive outlier detection; absent = off.
    pub outlier: Option<RawOutlier>,
    /// What consistent hashing (`ring_hash`, `maglev`) hashes; default the client IP.
    pub hash_on: Option<RawHashOn>,
    /// Limits that shed load before the upstreams drown; absent = none.
    pub circuit_breaker: Option<RawCircuitBreaker>,
    /// Active HTTP health checks; absent = none.
    pub health_check: Option<RawHealthCheck>,
    /// Retries on another endpoint; absent = one retry on connect failures.
    pub retry: Option<RawRetry>,
    /// An endpoint that joins or comes back ramps its weight from 10 % to full over this time;
    /// absent = off.
    pub slow_start: Option<String>,
    /// How often endpoints named by DNS are resolved again (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_refresh: Option<String>,
    /// Session affinity by a proxy-set cookie or header; absent = off.
    pub affinity: Option<RawAffinity>,
    /// Percentage of usable endpoints below which a priority level gives part of its traffic to the
    /// next level (default 70).
    pub failover_below: Option<i64>,
    /// TLS to the endpoints; absent = cleartext.
    pub tls: Option<RawUpstreamTls>,
    /// Cleartext HTTP/2 with prior knowledge to the endpoints (gRPC); default false (HTTP/1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2c: Option<bool>,
    /// Rate limits on every request sent to the cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RawRateLimit>,
    /// Instance-count recommendations on the bus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<RawAutoscale>,
}

/// `[clusters.<name>.autoscale]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutoscale {
    /// Fewest instances (default 1).
    pub min: Option<i64>,
    /// Most instances (required).
    pub max: Option<i64>,
    /// `cpu` (default), `in_flight` or `latency`.
    pub target: Option<String>,
    /// The signal's aim per instance (default: cpu 0.6, in_flight 10, latency 100 ms).
    pub target_value: Option<f64>,
    /// Add instances above this (default 1.2 × target_value).
    pub scale_up_above: Option<f64>,
    /// Remove instances below this (default 0.7 × target_value).
    pub scale_down_below: Option<f64>,
    /// After a change, wait this long before adding (default 30s).
    pub cooldown_up: Option<String>,
    /// After a change, wait this long before removing (default 5m).
    pub cooldown_down: Option<String>,
    /// Instances changed at most per recommendation (default 4).
    pub max_step: Option<i64>,
    /// Scale up ahead of a rising signal (default false).
    pub predictive: Option<bool>,
    /// Window of the predictive trend (default 2m).
    pub window: Option<String>,
}

/// `[clusters.<name>.tls]`: connections to the endpoints use TLS, verified.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// Name sent as SNI and verified against the certificate (default: `host_rewrite`, else the
    /// endpoint's IP address).
    pub sni: Option<String>,
    /// CA certificates (PEM file) to verify the endpoints with; default the system's roots.
    pub ca: Option<String>,
    /// Client certificate chain (PEM file) for mutual TLS, with `client_key`.
    pub client_cert: Option<String>,
    /// Client private key (PEM file), with `client_cert`.
    pub client_key: Option<String>,
    /// Offer HTTP/2 by ALPN and use it when the endpoint agrees (default false: HTTP/1.1).
    pub h2: Option<bool>,
}

/// `[clusters.<name>.retry]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Retries after the first try (default 1; 0 = off).
    pub attempts: Option<i64>,
    /// Conditions: `connect_failure`, `reset`, `timeout`, `5xx`, `gateway_error`, `429` (default
    /// `["connect_failure"]`).
    pub on: Option<Vec<String>>,
    /// First backoff (default 25ms).
    pub backoff_base: Option<String>,
    /// Longest backoff (default 250ms).
    pub backoff_max: Option<String>,
    /// Retries in flight at most, as a percentage of requests in flight (default 20).
    pub budget_percent: Option<i64>,
    /// Retries always allowed at once (default 3).
    pub min_concurrent: Option<i64>,
    /// Bodies up to this many bytes are buffered for replay (default 65536).
    pub buffer_body: Option<i64>,
}

/// `[clusters.<name>.affinity]`: exactly one of `cookie` and `header`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAffinity {
    /// Name of the cookie the proxy sets.
    pub cookie: Option<String>,
    /// Name of the header the proxy sets and the client sends back.
    pub header: Option<String>,
    /// Cookie lifetime (default 1h).
    pub ttl: Option<String>,
}

/// `[clusters.<name>.health_check]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// Path to GET on each endpoint (default `/healthz`).
    pub path: Option<String>,
    /// Time between checks of an endpoint (default 5s).
    pub interval: Option<String>,
    /// A check slower than this fails (default 2s).
    pub timeout: Option<String>,
    /// Consecutive passes that bring a failed endpoint back (default 2).
    pub healthy_threshold: Option<i64>,
    /// Consecutive failures that take an endpoint out (default 3).
    pub unhealthy_threshold: Option<i64>,
}

/// `[clusters.<name>.circuit_breaker]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCircuitBreaker {
    /// Requests in flight to the cluster at most, on this node; beyond, 503 at once.
    pub max_requests: Option<i64>,
    /// Open upstream connections at most, busy and idle.
    pub max_connections: Option<i64>,
    /// With `max_connections`: requests waiting for a connection at most (default 1024).
    pub max_pending: Option<i64>,
    /// Retries in flight at most.
    pub max_retries: Option<i64>,
}

/// `[clusters.<name>.hash_on]`: exactly one key.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHashOn {
    /// A request header's value.
    pub header: Option<String>,
    /// A cookie's value.
    pub cookie: Option<String>,
    /// The client's IP address.
    pub client_ip: Option<bool>,
    /// The request path (without the query).
    pub path: Option<bool>,
}

/// `[clusters.<name>.outlier]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    /// Consecutive failures that eject an endpoint (default 5).
    pub consecutive_failures: Option<i64>,
    /// First ejection's length; each further ejection doubles it (default 10s).
    pub base_ejection: Option<String>,
    /// Longest ejection (default 5m).
    pub max_ejection: Option<String>,
    /// At most this share of a cluster's endpoints is ejected at once, in percent (default 50).
    pub max_ejected_percent: Option<i64>,
    /// Also eject an endpoint whose recent failure rate reaches this percentage (absent = off).
    pub failure_rate: Option<i64>,
    /// Requests an endpoint must have served before its failure rate counts (default 20).
    pub min_requests: Option<i64>,
}

/// `[[clusters.<name>.endpoints]]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    /// `ip:port`.
    pub address: String,
    /// Relative weight, 1 to 10000; default 1.
    pub weight: Option<i64>,
    /// Zone of the endpoint.
    pub zone: Option<String>,
    /// Priority, 0 (primary, default) to 7.
    pub priority: Option<i64>,
}

/// `[clusters.<name>.timeouts]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClusterTimeouts {
    /// TCP connect to an endpoint.
    pub connect: Option<String>,
    /// Per try: from sending the request to receiving the response headers (504 beyond).
    pub response_header: Option<String>,
    /// The whole request, every try and backoff included, until response headers.
    pub total: Option<String>,
}

/// `[clusters.<name>.pool]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    /// Idle keep-alive connections kept per endpoint.
    pub max_idle_per_endpoint: Option<i64>,
    /// Idle connections older than this are closed.
    pub idle_timeout: Option<String>,
}
