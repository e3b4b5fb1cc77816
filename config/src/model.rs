//! Validated types: what the rest of edgeplane consumes. Every value here has passed [`crate::validate`].

use crate::ContentHash;
use std::net::SocketAddr;
use std::time::Duration;

mod access_log;
mod autoscale;
pub mod defaults;
mod rate_limit;
mod resilience;
pub use access_log::{AccessField, AccessLines, AccessLog, LineFormat, LogOutput, TemplatePart};
pub use autoscale::{Autoscale, AutoscaleTarget};
pub use rate_limit::{IpNet, LimitKey, LimitMode, LimitScope, RateLimit};
pub use resilience::{Affinity, AffinityBy, CircuitBreaker, Retry, RetryOn, UpstreamTls};

/// A complete node config: this process's settings plus the routing document.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings of this process (restart to change).
    pub node: Node,
    /// Routes and clusters (hot-reloadable, replaced whole).
    pub routing: Routing,
}

/// Settings of one node process.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Node id (letters, digits, `-`, `_`).
    pub id: String,
    /// Zone the node runs in.
    pub zone: Option<String>,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Admin listener (health endpoints), if any.
    pub admin: Option<SocketAddr>,
    /// File holding the admin API's bearer token (else `EDGEPLANE_ADMIN_TOKEN`; else the API is closed).
    pub admin_token_file: Option<std::path::PathBuf>,
    /// One log line per request; `None` = off (the default).
    pub access_log: Option<AccessLog>,
    /// W3C trace context.
    pub tracing: Tracing,
    /// Proxy listeners, at least one.
    pub listeners: Vec<Listener>,
    /// Resource limits.
    pub limits: Limits,
    /// Downstream timeouts.
    pub timeouts: NodeTimeouts,
    /// Where the last applied pushed config is kept (default `/var/lib/edgeplane`).
    pub state_dir: std::path::PathBuf,
    /// Unix socket on which the running node hands its listening sockets to a new process started
    /// with `edgeplane run --upgrade` (zero-downtime binary upgrade); `None`: no hand-over.
    pub upgrade_socket: Option<std::path::PathBuf>,
    /// NATS settings; `None` runs from the file alone.
    pub nats: Option<Nats>,
    /// Peers whose `X-Forwarded-For` is believed: a rate limit keyed by `client_ip` takes the
    /// rightmost address not in these networks. Empty (the default): the peer's address, always.
    pub trusted_proxies: Vec<IpNet>,
}

/// W3C trace context (`traceparent`, `tracestate`) on the requests a node forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracing {
    /// Whether a request without a valid `traceparent` gets a new one (an invalid one is replaced,
    /// and its `tracestate` dropped); otherwise both pass as they came.
    pub generate: bool,
    /// Share of generated trace contexts flagged sampled, 0 to 100.
    pub sample_percent: u8,
}

/// How a node reaches NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nats {
    /// Server URLs (`nats://host:port`, `tls://host:port`).
    pub urls: Vec<String>,
    /// Subject prefix.
    pub prefix: String,
    /// Config KV bucket.
    pub bucket: String,
    /// Stream of the scaling events.
    pub scale_stream: String,
    /// Authentication.
    pub auth: NatsAuth,
    /// CA certificates for the servers.
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate and key.
    pub tls_client: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Refuse to connect without TLS.
    pub tls_required: bool,
    /// After reconnecting to NATS, heartbeat expiry and removal stay suspended this long so that
    /// publishers, which lost the bus too, can resume (default 10s).
    pub membership_grace: std::time::Duration,
    /// Replicas of the JetStream assets the node creates when they are absent: the config bucket, the
    /// nodes bucket and the scaling stream (1 to 5, default 1; 3 on a NATS cluster).
    pub replicas: usize,
}

/// One NATS authentication method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// None.
    None,
    /// User and password.
    UserPassword(String, String),
    /// Token.
    Token(String),
    /// Nkey seed.
    NkeySeed(String),
    /// Credentials file.
    CredsFile(std::path::PathBuf),
}

/// One proxy listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Name used in logs.
    pub name: String,
    /// Address to bind.
    pub address: SocketAddr,
    /// TLS termination, if any.
    pub tls: Option<ListenerTls>,
}

/// TLS settings of a listener (the certificates are in the routing, so that they rotate with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    /// Whether TLS 1.2 is accepted besides 1.3.
    pub tls12: bool,
    /// ALPN protocols offered, in preference order.
    pub alpn: Vec<String>,
}

/// A server certificate: chain and key, from files or inline PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The certificate chain.
    pub cert: Pem,
    /// The private key.
    pub key: Pem,
}

/// Where PEM text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file, read when the routing is applied (and again when it changes).
    File(std::path::PathBuf),
    /// The text itself.
    Inline(String),
}

/// Downstream resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open downstream connections at most (default 10000).
    pub max_connections: usize,
    /// Bytes of request line plus headers at most (default 16384, at least 8192).
    pub max_header_bytes: usize,
    /// Request headers at most (default 100).
    pub max_headers: usize,
}

/// Downstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeTimeouts {
    /// Time to receive a request's headers (default 10s).
    pub header_read: Duration,
    /// Idle keep-alive connections are closed after this (default 60s).
    pub idle: Duration,
    /// Grace period for in-flight requests at shutdown (default 30s).
    pub shutdown_grace: Duration,
}

/// The routing document: replaced whole on reload.
#[derive(Debug, Clone)]
pub struct Routing {
    /// Routes in the order written.
    pub routes: Vec<Route>,
    /// Clusters sorted by name.
    pub clusters: Vec<Cluster>,
    /// Server certificates for TLS listeners; the first is the default.
    pub certificates: Vec<Certificate>,
    /// Content hash of the document.
    pub hash: ContentHash,
}

impl Routing {
    /// What this routing lacks for a node with `listeners`: certificates when one of them terminates
    /// TLS. One error per TLS listener, with its path; checked when a config file is validated and
    /// when a node takes a pushed routing.
    pub fn listener_problems(&self, listeners: &[Listener]) -> Vec<crate::FieldError> {
        if !self.certificates.is_empty() {
            return Vec::new();
        }
        listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.tls.is_some())
            .map(|(i, _)| crate::FieldError {
                path: format!("node.listeners[{i}].tls"),
                message: "a TLS listener needs at least one [[certificates]] entry".into(),
            })
            .collect()
    }
}

/// A route: conditions on the request and the cluster that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Unique route name.
    pub name: String,
    /// Host conditions; empty = any host.
    pub hosts: Vec<HostMatch>,
    /// Path prefix (starts with `/`).
    pub path_prefix: String,
    /// Methods (upper case); empty = any.
    pub methods: Vec<String>,
    /// Header conditions; all must hold.
    pub headers: Vec<HeaderMatch>,
    /// Query parameter conditions (names and values percent-decoded); all must hold.
    pub query: Vec<HeaderMatch>,
    /// Cookie conditions; all must hold.
    pub cookies: Vec<HeaderMatch>,
    /// Index into [`Routing::clusters`]; `None` when the route answers itself ([`Route::answer`])
    /// or shares its traffic among clusters ([`Route::split`]).
    pub cluster: Option<usize>,
    /// Clusters sharing the route's traffic by weight, instead of [`Route::cluster`].
    pub split: Option<Split>,
    /// Protocols (lower case, without version) a client may switch to with `Upgrade`; others are
    /// not forwarded (the request goes on as a plain one).
    pub upgrades: Vec<String>,
    /// Largest request body accepted, in bytes; `None` = no limit.
    pub max_request_body: Option<u64>,
    /// Timeouts overriding the cluster's for this route's requests.
    pub timeouts: RouteTimeouts,
    /// How the path changes upstream; `None` = as sent.
    pub path_rewrite: Option<PathRewrite>,
    /// Whether `Location` headers naming the upstream are rewritten to name the client's origin.
    pub rewrite_location: bool,
    /// Header operations on the request, before it goes upstream.
    pub request_headers: HeaderOps,
    /// Header operations on the response, before it goes to the client.
    pub response_headers: HeaderOps,
    /// The route's own answer instead of a cluster's.
    pub answer: Option<RouteAnswer>,
    /// Request mirroring to a shadow cluster.
    pub mirror: Option<Mirror>,
    /// Response compression.
    pub compression: Option<Compression>,
    /// Rate limits, checked in order before the request is answered or sent upstream.
    pub rate_limits: Vec<RateLimit>,
}

/// A route's response compression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compression {
    /// Encodings offered, in the proxy's order of preference.
    pub algorithms: Vec<Encoding>,
    /// Responses declaring a smaller `Content-Length` are not compressed.
    pub min_size: u64,
    /// Media types compressed, lower case: `type/subtype`, or `type/*` for a whole type.
    pub content_types: Vec<String>,
}

/// A content coding the proxy can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Zstandard (`zstd`).
    Zstd,
    /// Brotli (`br`).
    Brotli,
    /// Gzip (`gzip`).
    Gzip,
}

impl Encoding {
    /// Every encoding, by its `Content-Encoding` name.
    pub const ALL: [(&'static str, Encoding); 3] = [
        ("zstd", Encoding::Zstd),
        ("br", Encoding::Brotli),
        ("gzip", Encoding::Gzip),
    ];

    /// The `Content-Encoding` name.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }
}

/// A route's request mirroring: copies of sampled requests go to a shadow cluster, fire and forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirror {
    /// Index into [`Routing::clusters`] of the shadow cluster.
    pub cluster: usize,
    /// Share of requests mirrored, in millionths (1,000,000 = all).
    pub per_million: u32,
    /// Largest request body mirrored, in bytes (0 = bodiless requests only).
    pub max_body: u64,
    /// Mirrored requests in flight at most, per route and node.
    pub max_concurrent: usize,
}

impl Route {
    /// Indexes into [`Routing::clusters`] of every cluster the route may send a request to.
    pub fn clusters(&self) -> impl Iterator<Item = usize> + '_ {
        let split = self.split.iter().flat_map(|s| s.clusters.iter());
        self.cluster.into_iter().chain(split.map(|w| w.cluster))
    }
}

/// A route's traffic shared among clusters by weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The clusters, in the document's order; their weights sum to more than 0.
    pub clusters: Vec<WeightedCluster>,
    /// The request property that keeps a client on one cluster; `None` = drawn per request.
    pub on: Option<HashOn>,
}

/// One cluster of a [`Split`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedCluster {
    /// Index into [`Routing::clusters`].
    pub cluster: usize,
    /// Its share, relative to the others'.
    pub weight: u32,
}

/// What a route answers itself, without an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAnswer {
    /// A redirect to the request's URL with these parts replaced.
    Redirect(Redirect),
    /// A fixed response.
    Direct {
        /// Status, 200 to 599.
        status: u16,
        /// Body.
        body: String,
        /// Its `Content-Type`.
        content_type: String,
    },
}

/// A redirect's target: each part `None` is taken from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `http` or `https`.
    pub scheme: Option<String>,
    /// Host (and port).
    pub host: Option<String>,
    /// How the path changes.
    pub path: RedirectPath,
    /// Whether the query is left out.
    pub strip_query: bool,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// How a redirect's path is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectPath {
    /// The request's path.
    Same,
    /// This path.
    Replace(String),
    /// The request's path with the route's `path_prefix` replaced by this.
    Prefix(String),
}

/// How a route changes the path upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// The route's `path_prefix` replaced by this.
    Prefix(String),
    /// Every match of `pattern` (a regular expression, validated) replaced by `replacement`.
    Regex {
        /// The expression.
        pattern: String,
        /// The replacement (`$1`, `${name}` for groups).
        replacement: String,
    },
}

/// Header operations, applied in this order: remove, set (replacing), add (beside what is there).
/// Names are lower case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderOps {
    /// Names to remove.
    pub remove: Vec<String>,
    /// Headers to set, replacing any value.
    pub set: Vec<(String, String)>,
    /// Headers to add beside any value.
    pub add: Vec<(String, String)>,
}

impl HeaderOps {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }
}

/// A route's own timeouts; each `None` leaves the cluster's in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteTimeouts {
    /// Per try, until response headers.
    pub response_header: Option<Duration>,
    /// The whole request, until response headers.
    pub total: Option<Duration>,
}

impl RouteTimeouts {
    /// The cluster's timeouts with this route's in their place.
    pub fn over(self, cluster: ClusterTimeouts) -> ClusterTimeouts {
        ClusterTimeouts {
            connect: cluster.connect,
            response_header: self.response_header.unwrap_or(cluster.response_header),
            total: self.total.or(cluster.total),
        }
    }
}

/// A host condition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HostMatch {
    /// The host equals this (lower case, without port).
    Exact(String),
    /// The host ends with this suffix, which starts with a dot (`*.example.com` → `.example.com`).
    Suffix(String),
}

/// A header condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Header name, lower case (a query parameter's or cookie's name as written).
    pub name: String,
    /// Exact value, or `None` for presence only (or for `regex`).
    pub value: Option<String>,
    /// A regular expression some value must match (validated), instead of `value`.
    pub regex: Option<String>,
}

/// A cluster of interchangeable upstream endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Unique cluster name.
    pub name: String,
    /// Balancing policy.
    pub balancing: Balancing,
    /// Host header sent upstream instead of the client's.
    pub host_rewrite: Option<String>,
    /// Endpoints (addresses unique within the cluster).
    pub endpoints: Vec<Endpoint>,
    /// Endpoints named by DNS: each address a name resolves to is an endpoint with these settings.
    pub dns: Vec<DnsEndpoint>,
    /// How often the names of `dns` are resolved again.
    pub dns_refresh: Duration,
    /// Rate limits on every request sent to the cluster, checked after the route's.
    pub rate_limits: Vec<RateLimit>,
    /// Instance-count recommendations; `None` = none.
    pub autoscale: Option<Autoscale>,
    /// Upstream timeouts.
    pub timeouts: ClusterTimeouts,
    /// Upstream connection pool settings.
    pub pool: Pool,
    /// How heartbeats may change the cluster's membership and health.
    pub membership: MemberPolicy,
    /// Passive outlier detection, if enabled.
    pub outlier: Option<Outlier>,
    /// What the consistent-hashing policies hash.
    pub hash_on: HashOn,
    /// Circuit-breaker limits on this node.
    pub circuit_breaker: CircuitBreaker,
    /// Retries on another endpoint.
    pub retry: Retry,
    /// An endpoint that joins or comes back gets a weight ramping from 10 % to full over this time.
    pub slow_start: Option<Duration>,
    /// Session affinity, if configured.
    pub affinity: Option<Affinity>,
    /// A priority level whose usable share (percent of its endpoints) falls below this gives the
    /// missing part of its traffic to the next level (default 70, as Envoy's overprovisioning of 1.4).
    pub failover_below: u8,
    /// TLS to the endpoints, if any.
    pub tls: Option<UpstreamTls>,
    /// Cleartext HTTP/2 with prior knowledge (h2c) to the endpoints, instead of HTTP/1.1.
    pub h2c: bool,
    /// Panic mode below this percentage of usable endpoints (0 = off).
    pub panic_threshold: u8,
    /// Active HTTP health checks, if configured.
    pub health_check: Option<HealthCheck>,
    /// Zone-aware routing: spill over below this percentage of usable local endpoints (`None` = off).
    pub zone_spill_below: Option<u8>,
}

/// Active HTTP health checks of a cluster's endpoints: a 2xx or 3xx answer passes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path to GET.
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Check timeout.
    pub timeout: Duration,
    /// Passes to come back.
    pub healthy_threshold: u32,
    /// Failures to go out.
    pub unhealthy_threshold: u32,
}

/// The request property consistent hashing keys on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashOn {
    /// A header's value (name in lower case).
    Header(String),
    /// A cookie's value.
    Cookie(String),
    /// The client's IP address.
    ClientIp,
    /// The request path.
    Path,
}

/// Passive outlier detection: endpoints that fail repeatedly are taken out for a growing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlier {
    /// Consecutive failures (connect errors, upstream errors, timeouts) that eject an endpoint.
    pub consecutive_failures: u32,
    /// First ejection's length; the n-th lasts `base × 2^(n-1)`, up to `max_ejection`.
    pub base_ejection: Duration,
    /// Longest ejection.
    pub max_ejection: Duration,
    /// At most this percentage of the cluster's endpoints is ejected at once.
    pub max_ejected_percent: u8,
    /// Also eject when the failure rate (EWMA of recent requests, percent) reaches this.
    pub failure_rate: Option<u8>,
    /// Requests an endpoint must have served before its failure rate counts.
    pub min_requests: u64,
}

/// How heartbeats may change a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberPolicy {
    /// Unknown instances join by heartbeat alone (default false).
    pub self_registration: bool,
    /// Endpoints whose health score is below this are skipped (0..=100, default 0). An endpoint that
    /// is down (health 0, or heartbeats expired) is always skipped.
    pub health_threshold: u8,
    /// A self-registered instance that stopped heartbeating is removed this long after it went down
    /// (default 30s).
    pub remove_after: Duration,
}

/// Balancing policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balancing {
    /// Each endpoint in turn, ignoring weights.
    RoundRobin,
    /// nginx's smooth weighted round robin.
    WeightedRoundRobin,
    /// Fewest in-flight requests relative to weight.
    LeastConnections,
    /// Lowest latency EWMA × (in-flight + 1) / weight over every endpoint.
    LeastResponseTime,
    /// Two random endpoints, the one with the lower peak-EWMA latency × (in-flight + 1) / weight.
    PowerOfTwo,
    /// Random, with probability proportional to weight × health score.
    Random,
    /// Consistent hashing on a ring of virtual nodes (weights scale each endpoint's share).
    RingHash,
    /// Consistent hashing with Maglev's lookup table (weights scale each endpoint's share).
    Maglev,
    /// Two random endpoints, the one with the better score: peak-EWMA latency × (in-flight + 1),
    /// divided by weight, health and success rate, so that failing fast does not look fast.
    Adaptive,
}

impl Balancing {
    /// The name used in config files.
    pub fn as_str(self) -> &'static str {
        match self {
            Balancing::RoundRobin => "round_robin",
            Balancing::WeightedRoundRobin => "weighted_round_robin",
            Balancing::LeastConnections => "least_connections",
            Balancing::LeastResponseTime => "least_response_time",
            Balancing::PowerOfTwo => "power_of_two",
            Balancing::Random => "random",
            Balancing::RingHash => "ring_hash",
            Balancing::Maglev => "maglev",
            Balancing::Adaptive => "adaptive",
        }
    }

    /// Every policy, for error messages and docs.
    pub const ALL: [Balancing; 9] = [
        Balancing::RoundRobin,
        Balancing::WeightedRoundRobin,
        Balancing::LeastConnections,
        Balancing::LeastResponseTime,
        Balancing::PowerOfTwo,
        Balancing::Random,
        Balancing::RingHash,
        Balancing::Maglev,
        Balancing::Adaptive,
    ];
}

/// One upstream endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Socket address.
    pub address: SocketAddr,
    /// Relative weight, 1..=10000.
    pub weight: u32,
    /// Zone.
    pub zone: Option<String>,
    /// Priority (0 = primary).
    pub priority: u8,
}

/// An endpoint named by DNS (`address = "api.internal:8080"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DnsEndpoint {
    /// The name, lower case.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Each resolved address's weight, 1..=10000.
    pub weight: u32,
    /// Zone.
    pub zone: Option<String>,
    /// Priority (0 = primary).
    pub priority: u8,
}

/// Upstream timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterTimeouts {
    /// TCP connect (default 2s).
    pub connect: Duration,
    /// Per try: from sending the request until its response headers arrive (default 30s).
    pub response_header: Duration,
    /// Whole request, every try and backoff included, until response headers (default none).
    pub total: Option<Duration>,
}

/// Upstream connection pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    /// A fixed cap on the idle keep-alive connections kept per endpoint; `None` (the default): no
    /// fixed cap. Either way a connection unused for `idle_timeout` is closed, and the pool is LIFO,
    /// so what stays is what the load of the last `idle_timeout` used at once: the recent peak of
    /// concurrent requests to the endpoint.
    pub max_idle_per_endpoint: Option<usize>,
    /// Idle connections older than this are closed (default 60s).
    pub idle_timeout: Duration,
}
