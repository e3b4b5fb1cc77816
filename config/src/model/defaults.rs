//! The value of every setting that a config may leave out, named once beside the model it fills.
//!
//! [`crate::validate`] fills these in for absent keys; with them here rather than as numbers at each
//! call, a default is said in one place, readers of the model see what an absent key means, and a
//! change to one shows in review as a change to a constant. The modules follow the TOML sections
//! (`node.timeouts` is [`node::timeouts`], `clusters.<name>.pool` is [`cluster::pool`]); each
//! constant's doc names its key. The retry defaults are those of [`Retry::DEFAULT`], which also
//! applies whole to a cluster without a `[retry]` section.
//!
//! [`Retry::DEFAULT`]: super::Retry::DEFAULT
//!
//! A few settings are off when absent (`timeouts.total`, `slow_start`, `outlier.failure_rate`, the
//! circuit-breaker limits) and so have no default. The validator still needs a value to put in their
//! place when one is written wrong, while it reports the error and the config is rejected: those
//! values are here too, named `*_IF_INVALID`, and never reach a validated config.

/// `[node]`: this process's settings.
pub mod node {
    /// `node.id`: the node's id, used in `Via` and logs.
    pub const ID: &str = "edge-1";
    /// `node.workers`: worker threads; 0 is one per core.
    pub const WORKERS: usize = 0;
    /// `node.access_log`: one log line per request, off.
    pub const ACCESS_LOG: bool = false;
    /// `[node.access_log]`.
    pub mod access_log {
        /// `format`: one JSON object per line.
        pub const FORMAT: &str = "json";
        /// `template` with `format = "text"`: nginx's `combined` order, with the duration and route.
        pub const TEMPLATE: &str =
            "$client - - [$time] \"$method $target $protocol\" $status \"$referer\" \"$user_agent\" $duration_ms $route $upstream";
        /// `output`: standard output.
        pub const OUTPUT: &str = "stdout";
        /// `buffer_lines`: lines waiting for the writer at most.
        pub const BUFFER_LINES: i64 = 16_384;
    }
    /// `node.state_dir`: where the node keeps the last pushed config it applied.
    pub const STATE_DIR: &str = "/var/lib/edgeplane";

    /// `[node.tracing]`: W3C trace context.
    pub mod tracing {
        /// `node.tracing.generate`: trace contexts pass as they come; none is made.
        pub const GENERATE: bool = false;
        /// `node.tracing.sample_percent`: every generated trace context is flagged sampled.
        pub const SAMPLE_PERCENT: u8 = 100;
    }

    /// `[[node.listeners]]`: proxy listeners.
    pub mod listener {
        /// `node.listeners[i].name`: a listener without a name is called this followed by its
        /// index (`listener0`).
        pub const NAME_PREFIX: &str = "listener";

        /// `[node.listeners.tls]`: TLS termination of a listener.
        pub mod tls {
            /// `node.listeners[i].tls.min_version`: `"1.2"`, so TLS 1.2 is accepted besides 1.3.
            pub const TLS12: bool = true;
            /// `node.listeners[i].tls.alpn`: the protocols offered by ALPN, in preference order.
            pub const ALPN: &[&str] = &["h2", "http/1.1"];
        }
    }

    /// `[node.limits]`: downstream resource limits.
    pub mod limits {
        /// `node.limits.max_connections`: open downstream connections at most.
        pub const MAX_CONNECTIONS: usize = 10_000;
        /// `node.limits.max_header_bytes`: bytes of request line plus headers at most.
        pub const MAX_HEADER_BYTES: usize = 16_384;
        /// `node.limits.max_headers`: request headers at most.
        pub const MAX_HEADERS: usize = 100;
    }

    /// `[node.timeouts]`: downstream timeouts.
    pub mod timeouts {
        use std::time::Duration;

        /// `node.timeouts.header_read`: a client has this long to send a request's headers.
        pub const HEADER_READ: Duration = Duration::from_secs(10);
        /// `node.timeouts.idle`: an idle keep-alive client connection closes after this.
        pub const IDLE: Duration = Duration::from_secs(60);
        /// `node.timeouts.shutdown_grace`: at shutdown, requests in flight get this long to finish.
        pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
    }

    /// `[node.nats]`: how the node reaches NATS.
    pub mod nats {
        use std::time::Duration;

        /// `node.nats.prefix`: the fleet's subject prefix.
        pub const PREFIX: &str = "edge.v1";
        /// `node.nats.bucket`: the KV bucket holding the routing document.
        pub const BUCKET: &str = "edge_config";
        /// `node.nats.scale_stream`: the JetStream stream of the scaling events.
        pub const SCALE_STREAM: &str = "edge_scale";
        /// `node.nats.tls_required`: connecting without TLS is allowed.
        pub const TLS_REQUIRED: bool = false;
        /// `node.nats.membership_grace`: after a reconnect, heartbeat expiry stays suspended this long.
        pub const MEMBERSHIP_GRACE: Duration = Duration::from_secs(10);
        /// `node.nats.replicas`: replicas of the JetStream assets the node creates when absent.
        pub const REPLICAS: usize = 1;
    }
}

/// `[clusters.<name>.autoscale]` (`max` is required).
pub mod autoscale {
    use std::time::Duration;
    /// `min`: one instance.
    pub const MIN: i64 = 1;
    /// Largest `min`, `max` and `max_step`.
    pub const LIMIT: i64 = 100_000;
    /// `target_value` for `target = "cpu"`: 60 % utilisation.
    pub const CPU: f64 = 0.6;
    /// `target_value` for `target = "in_flight"`: 10 requests per instance.
    pub const IN_FLIGHT: f64 = 10.0;
    /// `target_value` for `target = "latency"`: 100 ms.
    pub const LATENCY_MS: f64 = 100.0;
    /// `scale_up_above`: 1.2 × `target_value` (capped at 1 for cpu).
    pub const UP_FACTOR: f64 = 1.2;
    /// `scale_down_below`: 0.7 × `target_value`.
    pub const DOWN_FACTOR: f64 = 0.7;
    /// `cooldown_up`: 30 s.
    pub const COOLDOWN_UP: Duration = Duration::from_secs(30);
    /// `cooldown_down`: 5 minutes.
    pub const COOLDOWN_DOWN: Duration = Duration::from_secs(300);
    /// `max_step`: four instances per recommendation.
    pub const MAX_STEP: i64 = 4;
    /// `window`: the predictive trend over 2 minutes.
    pub const WINDOW: Duration = Duration::from_secs(120);
}

/// `[[routes.rate_limits]]` and `[[clusters.<name>.rate_limits]]` (`burst` defaults to `rate`).
pub mod rate_limit {
    use std::time::Duration;
    /// `per`: rates are per second unless told.
    pub const PER: Duration = Duration::from_secs(1);
    /// Longest `per`: one day.
    pub const MAX_PER: Duration = Duration::from_secs(86_400);
    /// Largest `rate` and `burst`.
    pub const MAX_RATE: i64 = 1_000_000_000;
    /// `max_keys`: 100,000 keys, about 2.9 MB per limit and node (docs/config.md).
    pub const MAX_KEYS: i64 = 100_000;
    /// Smallest `max_keys`: one set of the key table.
    pub const MIN_MAX_KEYS: i64 = 8;
    /// Largest `max_keys`.
    pub const MAX_MAX_KEYS: i64 = 100_000_000;
    /// `response_headers`: only refused responses carry the rate-limit headers.
    pub const RESPONSE_HEADERS: bool = false;
}

/// `[[routes]]`: a route's match.
pub mod route {
    /// `[routes.compression]`.
    pub mod compression {
        /// `algorithms`: all three, Zstandard first.
        pub const ALGORITHMS: [&str; 3] = ["zstd", "br", "gzip"];
        /// `min_size`: responses under 1 KiB gain little.
        pub const MIN_SIZE: i64 = 1024;
        /// `content_types`: text formats (Envoy's default list, with `text/javascript` and
        /// `application/xml`).
        pub const CONTENT_TYPES: [&str; 10] = [
            "text/html",
            "text/plain",
            "text/css",
            "text/javascript",
            "text/xml",
            "application/javascript",
            "application/json",
            "application/xml",
            "application/xhtml+xml",
            "image/svg+xml",
        ];
    }
    /// `[routes.mirror]`.
    pub mod mirror {
        /// `percent`: every request.
        pub const PERCENT: f64 = 100.0;
        /// `max_body`: bodies up to 64 KiB are mirrored.
        pub const MAX_BODY: i64 = 65_536;
        /// `max_concurrent`: mirrored requests in flight per route and node.
        pub const MAX_CONCURRENT: i64 = 64;
    }
    /// `routes[i].name`: a route without a name is called this followed by its index (`route0`).
    pub const NAME_PREFIX: &str = "route";
    /// `routes[i].path_prefix`: every path.
    pub const PATH_PREFIX: &str = "/";
    /// `routes[i].upgrades`: the protocols a client may switch to with `Upgrade`.
    pub const UPGRADES: &[&str] = &["websocket"];
    /// `routes[i].rewrite.location`: the upstream's `Location` headers pass unchanged.
    pub const REWRITE_LOCATION: bool = false;
    /// `routes[i].redirect.status`: moved permanently.
    pub const REDIRECT_STATUS: u16 = 301;
    /// `routes[i].redirect.strip_query`: the query is kept.
    pub const REDIRECT_STRIP_QUERY: bool = false;
    /// `routes[i].direct.status`: OK.
    pub const DIRECT_STATUS: u16 = 200;
    /// `routes[i].direct.content_type`: plain text.
    pub const DIRECT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
}

/// `[clusters.<name>]`: a cluster of upstream endpoints.
pub mod cluster {
    use crate::model::{Balancing, HashOn};
    use std::time::Duration;

    /// `clusters.<name>.dns_refresh`: names resolved again every 30 s.
    pub const DNS_REFRESH: Duration = Duration::from_secs(30);

    /// `clusters.<name>.balancing`: each endpoint in turn (also what an unknown policy stands in for).
    pub const BALANCING: Balancing = Balancing::RoundRobin;
    /// `clusters.<name>.self_registration`: unknown instances do not join by heartbeat alone.
    pub const SELF_REGISTRATION: bool = false;
    /// `clusters.<name>.health_threshold`: no endpoint is skipped for its health score (only those
    /// that are down).
    pub const HEALTH_THRESHOLD: u8 = 0;
    /// `clusters.<name>.remove_after`: a self-registered instance that went down is removed after this.
    pub const REMOVE_AFTER: Duration = Duration::from_secs(30);
    /// `clusters.<name>.panic_threshold`: percentage of usable endpoints below which panic mode
    /// spreads over all of them; 0 is off.
    pub const PANIC_THRESHOLD: u8 = 0;
    /// `clusters.<name>.zone_aware`: endpoints in the node's zone are not preferred.
    pub const ZONE_AWARE: bool = false;
    /// `clusters.<name>.zone_spill_below`: with `zone_aware`, traffic spills to every zone below this
    /// percentage of usable local endpoints.
    pub const ZONE_SPILL_BELOW: u8 = 50;
    /// `clusters.<name>.failover_below`: a priority level with a smaller usable share (percent) gives
    /// the missing part of its traffic to the next level (Envoy's overprovisioning of 1.4).
    pub const FAILOVER_BELOW: u8 = 70;
    /// `[clusters.<name>.hash_on]`: consistent hashing keys on the client's IP address.
    pub const HASH_ON: HashOn = HashOn::ClientIp;
    /// `clusters.<name>.slow_start`: off when absent; stands in for an invalid value.
    pub const SLOW_START_IF_INVALID: Duration = Duration::from_secs(30);

    /// `[[clusters.<name>.endpoints]]`: one upstream endpoint.
    pub mod endpoint {
        /// `clusters.<name>.endpoints[i].weight`: relative weight.
        pub const WEIGHT: u32 = 1;
        /// `clusters.<name>.endpoints[i].priority`: primary.
        pub const PRIORITY: u8 = 0;
    }

    /// `[clusters.<name>.timeouts]`: upstream timeouts.
    pub mod timeouts {
        use std::time::Duration;

        /// `clusters.<name>.timeouts.connect`: TCP connect to an endpoint.
        pub const CONNECT: Duration = Duration::from_secs(2);
        /// `clusters.<name>.timeouts.response_header`: per try, from sending the request until its
        /// response headers arrive.
        pub const RESPONSE_HEADER: Duration = Duration::from_secs(30);
        /// `clusters.<name>.timeouts.total`: no limit when absent; stands in for an invalid value.
        pub const TOTAL_IF_INVALID: Duration = Duration::from_secs(30);
    }

    /// `[clusters.<name>.pool]`: the upstream connection pool.
    pub mod pool {
        use std::time::Duration;

        /// `clusters.<name>.pool.idle_timeout`: idle upstream connections older than this are closed.
        pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
    }

    /// `[clusters.<name>.outlier]`: passive outlier detection (the section is off when absent).
    pub mod outlier {
        use std::time::Duration;

        /// `clusters.<name>.outlier.consecutive_failures`: consecutive failures that eject an endpoint.
        pub const CONSECUTIVE_FAILURES: u32 = 5;
        /// `clusters.<name>.outlier.base_ejection`: the first ejection's length; each further one
        /// doubles it.
        pub const BASE_EJECTION: Duration = Duration::from_secs(10);
        /// `clusters.<name>.outlier.max_ejection`: the longest ejection.
        pub const MAX_EJECTION: Duration = Duration::from_secs(300);
        /// `clusters.<name>.outlier.max_ejected_percent`: at most this percentage of the endpoints is
        /// ejected at once.
        pub const MAX_EJECTED_PERCENT: u8 = 50;
        /// `clusters.<name>.outlier.min_requests`: requests an endpoint must have served before its
        /// failure rate counts.
        pub const MIN_REQUESTS: u64 = 20;
        /// `clusters.<name>.outlier.failure_rate`: off when absent; stands in for an invalid value.
        pub const FAILURE_RATE_IF_INVALID: u8 = 50;
    }

    /// `[clusters.<name>.health_check]`: active HTTP health checks (the section is off when absent).
    pub mod health_check {
        use std::time::Duration;

        /// `clusters.<name>.health_check.path`: the path to GET on each endpoint.
        pub const PATH: &str = "/healthz";
        /// `clusters.<name>.health_check.interval`: time between checks of an endpoint.
        pub const INTERVAL: Duration = Duration::from_secs(5);
        /// `clusters.<name>.health_check.timeout`: a check slower than this fails.
        pub const TIMEOUT: Duration = Duration::from_secs(2);
        /// `clusters.<name>.health_check.healthy_threshold`: consecutive passes that bring a failed
        /// endpoint back.
        pub const HEALTHY_THRESHOLD: u32 = 2;
        /// `clusters.<name>.health_check.unhealthy_threshold`: consecutive failures that take an
        /// endpoint out.
        pub const UNHEALTHY_THRESHOLD: u32 = 3;
    }

    /// `[clusters.<name>.retry]`: retries on another endpoint; the values are [`Retry::DEFAULT`]'s,
    /// which also applies whole when the section is absent.
    ///
    /// [`Retry::DEFAULT`]: crate::model::Retry::DEFAULT
    pub mod retry {
        use crate::model::{Retry, RetryOn};
        use std::time::Duration;

        /// `clusters.<name>.retry.attempts`: retries after the first try (0 is off).
        pub const ATTEMPTS: u32 = Retry::DEFAULT.attempts;
        /// `clusters.<name>.retry.on`: the failures retried (connect failures only).
        pub const ON: RetryOn = Retry::DEFAULT.on;
        /// `clusters.<name>.retry.backoff_base`: the first backoff.
        pub const BACKOFF_BASE: Duration = Retry::DEFAULT.backoff_base;
        /// `clusters.<name>.retry.backoff_max`: the longest backoff (when `backoff_base` is longer,
        /// `backoff_base`).
        pub const BACKOFF_MAX: Duration = Retry::DEFAULT.backoff_max;
        /// `clusters.<name>.retry.budget_percent`: retries in flight at most, as a percentage of the
        /// cluster's requests in flight.
        pub const BUDGET_PERCENT: u8 = Retry::DEFAULT.budget_percent;
        /// `clusters.<name>.retry.min_concurrent`: retries always allowed in flight at once.
        pub const MIN_CONCURRENT: u32 = Retry::DEFAULT.min_concurrent;
        /// `clusters.<name>.retry.buffer_body`: request bodies up to this many bytes are buffered for
        /// replay.
        pub const BUFFER_BODY: usize = Retry::DEFAULT.buffer_body;
    }

    /// `[clusters.<name>.circuit_breaker]`: limits on this node (each off when absent).
    pub mod circuit_breaker {
        /// `clusters.<name>.circuit_breaker.max_pending`: with `max_connections`, requests waiting for
        /// a connection at most.
        pub const MAX_PENDING: u32 = 1024;
        /// `max_requests`, `max_connections`, `max_retries`: off when absent; stands in for an
        /// invalid value.
        pub const LIMIT_IF_INVALID: u32 = 1024;
    }

    /// `[clusters.<name>.affinity]`: session affinity (the section is off when absent).
    pub mod affinity {
        use std::time::Duration;

        /// `clusters.<name>.affinity.ttl`: the cookie's lifetime (`Max-Age`).
        pub const TTL: Duration = Duration::from_secs(3600);
    }

    /// `[clusters.<name>.tls]`: TLS to the endpoints (the section is cleartext when absent).
    pub mod tls {
        /// `clusters.<name>.tls.h2`: HTTP/2 is not offered by ALPN; HTTP/1.1 is used.
        pub const H2: bool = false;
    }
}
