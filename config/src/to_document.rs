//! A validated routing turned back into its document form ([`RawDocument`]): the shape the config
//! file, `edgeplane push` and `edgeplane diff` read. The admin API shows the routing in place this
//! way, with every default written out, so that what it shows reads like a config file and can be
//! pushed back as is. One shape, kept in `raw.rs`; nothing else rebuilds it by hand.

use crate::model::*;
use crate::raw::*;
use std::collections::BTreeMap;
use std::time::Duration;

impl Routing {
    /// The document that validates to this routing (certificates as written, inline keys included:
    /// a caller showing it to people redacts them).
    pub fn to_document(&self) -> RawDocument {
        let routes = self
            .routes
            .iter()
            .map(|r| route(r, &self.clusters))
            .collect();
        let clusters: BTreeMap<String, RawCluster> = self
            .clusters
            .iter()
            .map(|c| (c.name.clone(), cluster(c)))
            .collect();
        let certificates = self.certificates.iter().map(certificate).collect();
        RawDocument {
            routes,
            clusters,
            certificates,
        }
    }
}

/// A duration in the largest unit that writes it exactly (`5m`, `250ms`).
fn text(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms > 0 && ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

fn int(n: impl Into<u64>) -> Option<i64> {
    i64::try_from(n.into()).ok()
}

fn route(r: &Route, clusters: &[Cluster]) -> RawRoute {
    let hosts = r
        .hosts
        .iter()
        .map(|h| match h {
            HostMatch::Exact(h) => h.clone(),
            HostMatch::Suffix(s) => format!("*{s}"),
        })
        .collect();
    let headers = r.headers.iter().map(condition).collect();
    RawRoute {
        name: Some(r.name.clone()),
        hosts,
        path_prefix: Some(r.path_prefix.clone()),
        methods: r.methods.clone(),
        headers,
        query: r.query.iter().map(condition).collect(),
        cookies: r.cookies.iter().map(condition).collect(),
        cluster: r
            .cluster
            .and_then(|i| clusters.get(i))
            .map_or_else(String::new, |c| c.name.clone()),
        weighted_clusters: r.split.as_ref().map_or_else(Vec::new, |s| {
            s.clusters
                .iter()
                .map(|w| RawWeightedCluster {
                    cluster: clusters
                        .get(w.cluster)
                        .map_or_else(String::new, |c| c.name.clone()),
                    weight: Some(i64::from(w.weight)),
                })
                .collect()
        }),
        split_on: r.split.as_ref().and_then(|s| s.on.as_ref()).map(hash_on),
        upgrades: Some(r.upgrades.clone()),
        max_request_body: r.max_request_body.and_then(int),
        timeouts: (r.timeouts != RouteTimeouts::default()).then(|| RawRouteTimeouts {
            response_header: r.timeouts.response_header.map(text),
            total: r.timeouts.total.map(text),
        }),
        rewrite: rewrite(r),
        request_headers: header_ops(&r.request_headers),
        response_headers: header_ops(&r.response_headers),
        compression: r.compression.as_ref().map(|c| RawCompression {
            algorithms: Some(c.algorithms.iter().map(|e| e.name().to_string()).collect()),
            min_size: int(c.min_size),
            content_types: Some(c.content_types.clone()),
        }),
        mirror: r.mirror.map(|m| RawMirror {
            cluster: clusters
                .get(m.cluster)
                .map_or_else(String::new, |c| c.name.clone()),
            percent: Some(f64::from(m.per_million) / 10_000.0),
            max_body: int(m.max_body),
            max_concurrent: int(m.max_concurrent as u64),
        }),
        rate_limits: r.rate_limits.iter().map(rate_limit).collect(),
        redirect: match &r.answer {
            Some(RouteAnswer::Redirect(d)) => Some(redirect(d)),
            _ => None,
        },
        direct: match &r.answer {
            Some(RouteAnswer::Direct {
                status,
                body,
                content_type,
            }) => Some(RawDirect {
                status: int(*status),
                body: Some(body.clone()),
                content_type: Some(content_type.clone()),
            }),
            _ => None,
        },
    }
}

fn rate_limit(l: &RateLimit) -> RawRateLimit {
    RawRateLimit {
        name: Some(l.name.clone()),
        rate: int(l.rate),
        per: Some(text(l.per)),
        burst: int(l.burst),
        key: Some(l.key.iter().map(LimitKey::text).collect()),
        scope: Some(l.scope.name().to_string()),
        mode: Some(l.mode.name().to_string()),
        max_keys: int(l.max_keys),
        response_headers: Some(l.response_headers),
    }
}

fn rewrite(r: &Route) -> Option<RawRewrite> {
    let mut raw = RawRewrite {
        location: r.rewrite_location.then_some(true),
        ..RawRewrite::default()
    };
    match &r.path_rewrite {
        Some(PathRewrite::Prefix(prefix)) => raw.path_prefix = Some(prefix.clone()),
        Some(PathRewrite::Regex {
            pattern,
            replacement,
        }) => {
            raw.regex = Some(pattern.clone());
            raw.replacement = Some(replacement.clone());
        }
        None if !r.rewrite_location => return None,
        None => {}
    }
    Some(raw)
}

fn condition(m: &HeaderMatch) -> RawHeaderMatch {
    RawHeaderMatch {
        name: m.name.clone(),
        value: m.value.clone(),
        regex: m.regex.clone(),
    }
}

fn redirect(r: &Redirect) -> RawRedirect {
    let (path, path_prefix) = match &r.path {
        RedirectPath::Same => (None, None),
        RedirectPath::Replace(p) => (Some(p.clone()), None),
        RedirectPath::Prefix(p) => (None, Some(p.clone())),
    };
    RawRedirect {
        scheme: r.scheme.clone(),
        host: r.host.clone(),
        path,
        path_prefix,
        strip_query: Some(r.strip_query),
        status: int(r.status),
    }
}

fn header_ops(ops: &HeaderOps) -> Option<RawHeaderOps> {
    let pairs = |list: &[(String, String)]| list.iter().cloned().collect();
    (!ops.is_empty()).then(|| RawHeaderOps {
        remove: ops.remove.clone(),
        set: pairs(&ops.set),
        add: pairs(&ops.add),
    })
}

fn cluster(c: &Cluster) -> RawCluster {
    RawCluster {
        balancing: Some(c.balancing.as_str().to_string()),
        host_rewrite: c.host_rewrite.clone(),
        endpoints: c
            .endpoints
            .iter()
            .map(endpoint)
            .chain(c.dns.iter().map(|d| RawEndpoint {
                address: format!("{}:{}", d.host, d.port),
                weight: int(d.weight),
                zone: d.zone.clone(),
                priority: int(d.priority),
            }))
            .collect(),
        dns_refresh: (c.dns_refresh != crate::model::defaults::cluster::DNS_REFRESH)
            .then(|| text(c.dns_refresh)),
        timeouts: RawClusterTimeouts {
            connect: Some(text(c.timeouts.connect)),
            response_header: Some(text(c.timeouts.response_header)),
            total: c.timeouts.total.map(text),
        },
        pool: RawPool {
            max_idle_per_endpoint: c.pool.max_idle_per_endpoint.and_then(|n| int(n as u64)),
            idle_timeout: Some(text(c.pool.idle_timeout)),
        },
        self_registration: Some(c.membership.self_registration),
        health_threshold: int(c.membership.health_threshold),
        remove_after: Some(text(c.membership.remove_after)),
        panic_threshold: int(c.panic_threshold),
        zone_aware: Some(c.zone_spill_below.is_some()),
        zone_spill_below: c.zone_spill_below.and_then(int),
        outlier: c.outlier.as_ref().map(outlier),
        hash_on: Some(hash_on(&c.hash_on)),
        circuit_breaker: Some(circuit_breaker(&c.circuit_breaker)),
        health_check: c.health_check.as_ref().map(health_check),
        retry: Some(retry(&c.retry)),
        slow_start: c.slow_start.map(text),
        affinity: c.affinity.as_ref().map(affinity),
        failover_below: int(c.failover_below),
        tls: c.tls.as_ref().map(upstream_tls),
        h2c: c.h2c.then_some(true),
        rate_limits: c.rate_limits.iter().map(rate_limit).collect(),
        autoscale: c.autoscale.as_ref().map(|a| RawAutoscale {
            min: int(a.min),
            max: int(a.max),
            target: Some(a.target.name().to_string()),
            target_value: Some(a.target_value),
            scale_up_above: Some(a.scale_up_above),
            scale_down_below: Some(a.scale_down_below),
            cooldown_up: Some(text(a.cooldown_up)),
            cooldown_down: Some(text(a.cooldown_down)),
            max_step: int(a.max_step),
            predictive: Some(a.predictive),
            window: Some(text(a.window)),
        }),
    }
}

fn endpoint(e: &Endpoint) -> RawEndpoint {
    RawEndpoint {
        address: e.address.to_string(),
        weight: int(e.weight),
        zone: e.zone.clone(),
        priority: int(e.priority),
    }
}

fn outlier(o: &Outlier) -> RawOutlier {
    RawOutlier {
        consecutive_failures: int(o.consecutive_failures),
        base_ejection: Some(text(o.base_ejection)),
        max_ejection: Some(text(o.max_ejection)),
        max_ejected_percent: int(o.max_ejected_percent),
        failure_rate: o.failure_rate.and_then(int),
        min_requests: int(o.min_requests),
    }
}

fn hash_on(h: &HashOn) -> RawHashOn {
    let mut raw = RawHashOn::default();
    match h {
        HashOn::Header(name) => raw.header = Some(name.clone()),
        HashOn::Cookie(name) => raw.cookie = Some(name.clone()),
        HashOn::ClientIp => raw.client_ip = Some(true),
        HashOn::Path => raw.path = Some(true),
    }
    raw
}

fn circuit_breaker(cb: &CircuitBreaker) -> RawCircuitBreaker {
    RawCircuitBreaker {
        max_requests: cb.max_requests.and_then(int),
        max_connections: cb.max_connections.and_then(int),
        max_pending: int(cb.max_pending),
        max_retries: cb.max_retries.and_then(int),
    }
}

fn health_check(h: &HealthCheck) -> RawHealthCheck {
    RawHealthCheck {
        path: Some(h.path.clone()),
        interval: Some(text(h.interval)),
        timeout: Some(text(h.timeout)),
        healthy_threshold: int(h.healthy_threshold),
        unhealthy_threshold: int(h.unhealthy_threshold),
    }
}

fn retry(r: &Retry) -> RawRetry {
    RawRetry {
        attempts: int(r.attempts),
        on: Some(r.on.names().into_iter().map(String::from).collect()),
        backoff_base: Some(text(r.backoff_base)),
        backoff_max: Some(text(r.backoff_max)),
        budget_percent: int(r.budget_percent),
        min_concurrent: int(r.min_concurrent),
        buffer_body: int(r.buffer_body as u64),
    }
}

fn affinity(a: &Affinity) -> RawAffinity {
    let (cookie, header) = match &a.by {
        AffinityBy::Cookie(name) => (Some(name.clone()), None),
        AffinityBy::Header(name) => (None, Some(name.clone())),
    };
    RawAffinity {
        cookie,
        header,
        ttl: Some(text(a.ttl)),
    }
}

fn upstream_tls(t: &UpstreamTls) -> RawUpstreamTls {
    let path = |p: &std::path::Path| p.display().to_string();
    RawUpstreamTls {
        sni: t.sni.clone(),
        ca: t.ca.as_deref().map(path),
        client_cert: t.client.as_ref().map(|(cert, _)| path(cert)),
        client_key: t.client.as_ref().map(|(_, key)| path(key)),
        h2: Some(t.h2),
    }
}

fn certificate(c: &Certificate) -> RawCertificate {
    let mut raw = RawCertificate::default();
    match &c.cert {
        Pem::File(p) => raw.cert = Some(p.display().to_string()),
        Pem::Inline(t) => raw.cert_pem = Some(t.clone()),
    }
    match &c.key {
        Pem::File(p) => raw.key = Some(p.display().to_string()),
        Pem::Inline(t) => raw.key_pem = Some(t.clone()),
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::text;
    use std::time::Duration;

    /// Every setting away from its default, so that a field the conversion forgot shows.
    const EVERYTHING: &str = "[[node.listeners]]\naddress = \"127.0.0.1:1\"\n\
        [[routes]]\nname = \"r\"\nhosts = [\"*.example.com\", \"a.test\"]\npath_prefix = \"/api\"\n\
        methods = [\"GET\"]\nheaders = [{ name = \"x-a\" }, { name = \"x-b\", value = \"1\" }, { name = \"x-c\", regex = \"^v[0-9]$\" }]\n\
        query = [{ name = \"beta\" }, { name = \"v\", value = \"2\" }]\ncookies = [{ name = \"canary\", regex = \"^(1|yes)$\" }]\n\
        cluster = \"c\"\nupgrades = [\"websocket\", \"h2c\"]\nmax_request_body = 1000\n\
        [routes.timeouts]\nresponse_header = \"2s\"\ntotal = \"9s\"\n\
        [routes.rewrite]\npath_prefix = \"/v2/\"\nlocation = true\n\
        [routes.request_headers]\nremove = [\"x-internal\"]\nset = { x-env = \"prod\" }\nadd = { x-a = \"1\" }\n\
        [routes.response_headers]\nset = { server = \"edge\" }\n\
        [[routes.rate_limits]]\nname = \"per-key\"\nrate = 50\nper = \"1m\"\nburst = 5\nkey = [\"header:x-api-key\", \"client_ip\"]\n\
        scope = \"fleet\"\nmode = \"shadow\"\nmax_keys = 1000\nresponse_headers = true\n\
        [[routes.rate_limits]]\nrate = 9\n\
        [[routes]]\ncluster = \"d\"\n[routes.compression]\nalgorithms = [\"gzip\", \"br\"]\nmin_size = 10\ncontent_types = [\"text/*\"]\n[routes.mirror]\ncluster = \"c\"\npercent = 12.5\nmax_body = 0\nmax_concurrent = 3\n[routes.rewrite]\nregex = \"^/u/(?P<id>[0-9]+)$\"\nreplacement = \"/users/${id}\"\n\
        [[routes]]\nhosts = [\"old.test\"]\n[routes.redirect]\nscheme = \"https\"\nhost = \"new.test\"\n\
        path_prefix = \"/v2\"\nstrip_query = true\nstatus = 308\n\
        [[routes]]\nhosts = [\"canary.test\"]\nweighted_clusters = [{ cluster = \"c\", weight = 95 }, { cluster = \"d\", weight = 5 }]\n\
        [routes.split_on]\ncookie = \"uid\"\n\
        [[routes]]\nhosts = [\"down.test\"]\n[routes.direct]\nstatus = 503\nbody = \"maintenance\"\n\
        [clusters.c]\nbalancing = \"adaptive\"\nhost_rewrite = \"api.internal\"\nslow_start = \"20s\"\n\
        failover_below = 80\npanic_threshold = 30\nzone_aware = true\nzone_spill_below = 40\n\
        self_registration = true\nhealth_threshold = 20\nremove_after = \"90s\"\n\
        [clusters.c.retry]\nattempts = 2\non = [\"reset\", \"429\"]\nbackoff_base = \"10ms\"\n\
        backoff_max = \"1s\"\nbudget_percent = 10\nmin_concurrent = 4\nbuffer_body = 1000\n\
        [clusters.c.circuit_breaker]\nmax_requests = 100\nmax_connections = 50\nmax_pending = 7\n\
        max_retries = 3\n\
        [clusters.c.affinity]\nheader = \"x-ep\"\nttl = \"5m\"\n\
        [clusters.c.timeouts]\nconnect = \"300ms\"\nresponse_header = \"3s\"\ntotal = \"4s\"\n\
        [clusters.c.pool]\nmax_idle_per_endpoint = 9\nidle_timeout = \"45s\"\n\
        [clusters.c.outlier]\nconsecutive_failures = 4\nbase_ejection = \"7s\"\nmax_ejection = \"2m\"\n\
        max_ejected_percent = 30\nfailure_rate = 60\nmin_requests = 11\n\
        [clusters.c.health_check]\npath = \"/h\"\ninterval = \"3s\"\ntimeout = \"1500ms\"\n\
        healthy_threshold = 4\nunhealthy_threshold = 5\n\
        [clusters.c.hash_on]\ncookie = \"sid\"\n\
        [clusters.c.tls]\nsni = \"api.internal\"\nca = \"/etc/ca.pem\"\nclient_cert = \"/c.pem\"\n\
        client_key = \"/k.pem\"\nh2 = true\n\
        [[clusters.c.rate_limits]]\nname = \"all\"\nrate = 1000\nkey = [\"route\"]\n\
        [clusters.c.autoscale]\nmin = 2\nmax = 9\ntarget = \"in_flight\"\ntarget_value = 8.0\nscale_up_above = 12.0\n\
        scale_down_below = 4.0\ncooldown_up = \"10s\"\ncooldown_down = \"1m\"\nmax_step = 2\npredictive = true\nwindow = \"90s\"\n\
        [[clusters.c.endpoints]]\naddress = \"127.0.0.1:9\"\nweight = 3\nzone = \"z\"\npriority = 1\n\
        [clusters.d]\nbalancing = \"ring_hash\"\nh2c = true\ndns_refresh = \"5s\"\n[clusters.d.hash_on]\nheader = \"x-user\"\n\
        [[clusters.d.endpoints]]\naddress = \"127.0.0.1:10\"\n\
        [[clusters.d.endpoints]]\naddress = \"api.internal:8080\"\nweight = 2\n\
        [[certificates]]\ncert = \"/cert.pem\"\n\
        key_pem = \"-----BEGIN PRIVATE KEY-----\\nAA==\\n-----END PRIVATE KEY-----\\n\"\n";

    #[test]
    fn the_document_validates_back_to_the_same_routing() {
        let routing = crate::from_toml(EVERYTHING).unwrap().routing;
        let json = serde_json::to_string(&routing.to_document()).unwrap();
        let back = crate::document_from_text(&json).unwrap();
        assert_eq!(back.routes, routing.routes);
        assert_eq!(back.clusters, routing.clusters);
        assert_eq!(back.certificates, routing.certificates);
        // Written out again, it is the same document: nothing is lost or added on the way.
        assert_eq!(serde_json::to_string(&back.to_document()).unwrap(), json);
    }

    #[test]
    fn the_defaults_are_written_out() {
        let routing = crate::document_from_text(
            "[[routes]]\ncluster = \"c\"\n[clusters.c]\n[[clusters.c.endpoints]]\naddress = \"127.0.0.1:9\"\n",
        )
        .unwrap();
        let doc = routing.to_document();
        let c = &doc.clusters["c"];
        assert_eq!(c.balancing.as_deref(), Some("round_robin"));
        assert_eq!(doc.routes[0].name.as_deref(), Some("route0"));
        assert_eq!(doc.routes[0].upgrades, Some(vec!["websocket".to_string()]));
        let retry = c.retry.as_ref().unwrap();
        assert_eq!(retry.on, Some(vec!["connect_failure".to_string()]));
        assert_eq!(retry.backoff_base.as_deref(), Some("25ms"));
    }

    #[test]
    fn durations_are_written_in_their_largest_exact_unit() {
        assert_eq!(text(Duration::from_millis(250)), "250ms");
        assert_eq!(text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(text(Duration::from_secs(10)), "10s");
        assert_eq!(text(Duration::from_secs(300)), "5m");
        assert_eq!(text(Duration::from_secs(7200)), "2h");
        assert_eq!(text(Duration::ZERO), "0ms");
    }
}
