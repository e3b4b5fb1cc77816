use crate::model::{Balancing, HostMatch, LimitKey, LimitMode, LimitScope};
use crate::{from_json, from_toml, ConfigError};

const MINIMAL: &str = r#"
[[node.listeners]]
address = "127.0.0.1:8080"

[[routes]]
cluster = "api"

[clusters.api]
[[clusters.api.endpoints]]
address = "127.0.0.1:9001"
"#;

fn errors(text: &str) -> Vec<String> {
    match from_toml(text) {
        Ok(_) => panic!("config should be rejected"),
        Err(e) => e.lines(),
    }
}

#[test]
fn default_config_is_valid() {
    let c = crate::default_config().expect("shipped default must validate");
    assert_eq!(c.routing.clusters[0].endpoints.len(), 2);
}

#[test]
fn minimal_config_gets_defaults() {
    let c = from_toml(MINIMAL).unwrap();
    assert_eq!(c.node.id, "edge-1");
    assert_eq!(c.node.limits.max_header_bytes, 16_384);
    let r = &c.routing.routes[0];
    assert_eq!(r.name, "route0");
    assert_eq!(r.path_prefix, "/");
    assert!(r.hosts.is_empty());
    assert_eq!(c.routing.clusters[0].balancing, Balancing::RoundRobin);
    assert_eq!(c.routing.clusters[0].endpoints[0].weight, 1);
}

#[test]
fn hosts_are_normalised() {
    let c = from_toml(&MINIMAL.replace(
        "cluster = \"api\"",
        "hosts = [\"API.Example.com\", \"*.example.org\"]\ncluster = \"api\"",
    ))
    .unwrap();
    assert_eq!(
        c.routing.routes[0].hosts,
        vec![
            HostMatch::Exact("api.example.com".into()),
            HostMatch::Suffix(".example.org".into())
        ]
    );
}

#[test]
fn every_error_is_reported_with_its_path() {
    let text = r#"
[node]
id = "bad id"
workers = -1
admin = "localhost"

[[node.listeners]]
address = "0.0.0.0:80"
[[node.listeners]]
address = "0.0.0.0:80"

[node.limits]
max_header_bytes = 100

[node.timeouts]
idle = "ten seconds"
header_read = "0s"

[[routes]]
name = "a"
hosts = ["exa mple.com", "*."]
path_prefix = "api"
methods = ["GE T"]
headers = [{ name = "bad header" }]
cluster = "nope"

[[routes]]
name = "a"
cluster = "api"

[clusters.api]
balancing = "fastest"
[[clusters.api.endpoints]]
address = "10.0.0.1:80"
weight = 0
[[clusters.api.endpoints]]
address = "10.0.0.1:80"
priority = 9
[[clusters.api.endpoints]]
address = "10.0.0:80"
"#;
    let got = errors(text);
    let expect = [
        "node.id: invalid name \"bad id\"",
        "node.workers: -1 is out of range",
        "node.admin: invalid socket address \"localhost\"",
        "node.listeners[1].address: duplicate listener address 0.0.0.0:80",
        "node.limits.max_header_bytes: 100 is out of range 8192..=1048576",
        "node.timeouts.header_read: must be greater than zero",
        "node.timeouts.idle: invalid duration \"ten seconds\"",
        "routes[0].hosts[0]: invalid host \"exa mple.com\"",
        "routes[0].hosts[1]: invalid host \"*.\"",
        "routes[0].path_prefix: must start with '/'",
        "routes[0].methods[0]: invalid method \"GE T\"",
        "routes[0].headers[0].name: invalid header name \"bad header\"",
        "routes[0].cluster: unknown cluster \"nope\"",
        "routes[1].name: duplicate route name \"a\"",
        "clusters.api.balancing: unknown policy \"fastest\"",
        "clusters.api.endpoints[0].weight: 0 is out of range 1..=10000",
        "clusters.api.endpoints[1].priority: 9 is out of range 0..=7",
        "clusters.api.endpoints[1].address: duplicate endpoint 10.0.0.1:80",
        "clusters.api.endpoints[2].address: invalid socket address \"10.0.0:80\"",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "unexpected extra errors: {got:#?}");
}

#[test]
fn listeners_are_required() {
    let got = errors("[[routes]]\ncluster = \"x\"\n[clusters.x]\n");
    assert!(got
        .iter()
        .any(|e| e.starts_with("node.listeners: at least one listener")));
}

#[test]
fn unknown_fields_and_syntax_errors_are_rejected() {
    let err = from_toml(&MINIMAL.replace(
        "address = \"127.0.0.1:9001\"",
        "adress = \"127.0.0.1:9001\"",
    ))
    .unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }));
    assert!(err.to_string().contains("adress"), "{err}");
    let err = from_toml("[node\n").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }));
}

#[test]
fn json_uses_the_same_model() {
    let json = r#"{
      "node": {"listeners": [{"address": "127.0.0.1:8080"}]},
      "routes": [{"cluster": "api", "path_prefix": "/v1"}],
      "clusters": {"api": {"balancing": "least_connections", "endpoints": [{"address": "127.0.0.1:9001", "weight": 3}]}}
    }"#;
    let c = from_json(json).unwrap();
    assert_eq!(c.routing.clusters[0].balancing, Balancing::LeastConnections);
    assert_eq!(c.routing.routes[0].path_prefix, "/v1");
    let err = from_json("{\"routes\": [{\"cluster\": \"x\"}]}").unwrap_err();
    assert!(err
        .lines()
        .iter()
        .any(|l| l.starts_with("routes[0].cluster: unknown cluster")));
}

#[test]
fn hash_follows_routing_content_only() {
    let a = from_toml(MINIMAL).unwrap();
    let b = from_toml(&MINIMAL.replace("127.0.0.1:8080", "127.0.0.1:8081")).unwrap();
    let c = from_toml(&MINIMAL.replace("9001", "9002")).unwrap();
    assert_eq!(
        a.routing.hash, b.routing.hash,
        "node settings are not part of the routing hash"
    );
    assert_ne!(a.routing.hash, c.routing.hash);
    assert_eq!(a.routing.hash.to_string().len(), 64);
}

#[test]
fn nats_settings_are_validated_with_paths() {
    use crate::model::NatsAuth;
    let ok = from_toml(&format!(
        "[node.nats]\nurls = [\"nats://127.0.0.1:4222\", \"tls://nats.example.com:4443\"]\nuser = \"edge\"\npassword = \"pw\"\n{MINIMAL}"
    ))
    .unwrap();
    let nats = ok.node.nats.unwrap();
    assert_eq!(nats.prefix, "edge.v1");
    assert_eq!(nats.bucket, "edge_config");
    assert_eq!(
        nats.auth,
        NatsAuth::UserPassword("edge".into(), "pw".into())
    );

    let got = errors(&format!(
        "[node.nats]\nurls = [\"http://x:1\", \"nats://nohost\"]\nprefix = \"edge.>\"\nbucket = \"a.b\"\n\
         token = \"t\"\ncreds_file = \"/x.creds\"\ntls_cert = \"c.pem\"\n{MINIMAL}"
    ));
    for want in [
        "node.nats.urls[0]: unsupported scheme \"http\"",
        "node.nats.urls[1]: invalid server URL \"nats://nohost\"",
        "node.nats.prefix: invalid subject prefix",
        "node.nats.bucket: invalid name",
        "node.nats: choose one authentication method",
        "node.nats: set both tls_cert and tls_key, or neither",
    ] {
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "missing {want:?} in {got:#?}"
        );
    }
    let got = errors(&format!("[node.nats]\nuser = \"u\"\n{MINIMAL}"));
    assert!(
        got.iter()
            .any(|g| g == "node.nats.urls: at least one server URL is required"),
        "{got:#?}"
    );
    assert!(
        got.iter()
            .any(|g| g == "node.nats: user and password go together"),
        "{got:#?}"
    );
}

#[test]
fn pushed_documents_hold_routing_only_and_hash_like_files() {
    let doc = "[[routes]]\ncluster = \"api\"\n[clusters.api]\n[[clusters.api.endpoints]]\naddress = \"127.0.0.1:9001\"\n";
    let routing = crate::document_from_text(doc).unwrap();
    assert_eq!(
        routing.hash,
        from_toml(MINIMAL).unwrap().routing.hash,
        "same routing, same hash"
    );
    let (json, from_file) = crate::document_of_file_text(MINIMAL).unwrap();
    assert!(json.trim_start().starts_with('{'));
    assert_eq!(from_file.hash, routing.hash);
    assert_eq!(
        crate::document_from_text(&json).unwrap().hash,
        routing.hash,
        "TOML and JSON forms hash alike"
    );
    let err = crate::document_from_text(&format!("[node]\nid = \"x\"\n{doc}")).unwrap_err();
    assert!(err.to_string().contains("unknown field `node`"), "{err}");
}

#[test]
fn resilience_settings_get_defaults_and_parse() {
    use crate::model::{AffinityBy, Retry, RetryOn};
    let c = from_toml(MINIMAL).unwrap();
    let api = &c.routing.clusters[0];
    assert_eq!(api.retry, Retry::DEFAULT);
    assert_eq!(api.failover_below, 70);
    assert_eq!(api.circuit_breaker.max_pending, 1024);
    assert!(api.affinity.is_none() && api.slow_start.is_none() && api.timeouts.total.is_none());

    let c = from_toml(&format!(
        "{}[clusters.api.retry]\nattempts = 3\n\
         on = [\"reset\", \"gateway_error\"]\n\
         [clusters.api.circuit_breaker]\nmax_connections = 10\nmax_retries = 2\n\
         [clusters.api.affinity]\ncookie = \"sticky\"\nttl = \"5m\"\n\
         [clusters.api.timeouts]\ntotal = \"3s\"\n",
        MINIMAL.replace(
            "[clusters.api]\n",
            "[clusters.api]\nslow_start = \"20s\"\nfailover_below = 90\n"
        )
    ))
    .unwrap();
    let api = &c.routing.clusters[0];
    assert_eq!(api.retry.attempts, 3);
    assert_eq!(
        api.retry.on,
        RetryOn(RetryOn::RESET.0 | RetryOn::GATEWAY_ERROR.0)
    );
    assert!(api.retry.on.status(503) && !api.retry.on.status(500));
    assert_eq!(api.circuit_breaker.max_connections, Some(10));
    assert_eq!(api.circuit_breaker.max_retries, Some(2));
    assert_eq!(
        api.affinity.as_ref().unwrap().by,
        AffinityBy::Cookie("sticky".into())
    );
    assert_eq!(api.slow_start, Some(std::time::Duration::from_secs(20)));
    assert_eq!(api.timeouts.total, Some(std::time::Duration::from_secs(3)));
    assert_eq!(api.failover_below, 90);
}

#[test]
fn bad_resilience_settings_are_rejected_with_paths() {
    let e = errors(&format!(
        "{}\
         [clusters.api.retry]\nattempts = 11\non = [\"5xx\", \"sometimes\"]\nbackoff_base = \"1s\"\nbackoff_max = \"10ms\"\n\
         [clusters.api.circuit_breaker]\nmax_connections = 0\n\
         [clusters.api.affinity]\ncookie = \"a b\"\nheader = \"x\"\n",
        MINIMAL.replace("[clusters.api]\n", "[clusters.api]\nfailover_below = 0\n")
    ));
    let want = [
        "clusters.api.failover_below",
        "clusters.api.retry.attempts",
        "clusters.api.retry.on[1]: unknown condition \"sometimes\"",
        "clusters.api.retry.backoff_max",
        "clusters.api.circuit_breaker.max_connections",
        "clusters.api.affinity: set exactly one of cookie, header",
    ];
    for w in want {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn every_shape_error_is_reported_not_just_the_first() {
    let text = "[[node.listeners]]\naddress = \"127.0.0.1:8080\"\n[[routes]]\ncluster = \"a\"\nhots = [\"x\"]\n\
                [clusters.a]\nslow_start = 5\n[clusters.b]\nbalancing = 3\n[extra]\n";
    let lines = errors(text);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for want in [
        "routes[0]: ",
        "clusters.a: ",
        "clusters.b: ",
        "extra: invalid TOML: unknown section",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "{want} in {lines:?}"
        );
    }
    // One shape error keeps the parser's message, with its line and column.
    let one = errors("[[node.listeners]]\naddress = 5\n");
    assert_eq!(one.len(), 1);
    assert!(one[0].contains("line 2"), "{one:?}");
}

#[test]
fn listeners_and_the_admin_must_be_able_to_bind_together() {
    let clash = |node: &str, listeners: &[&str]| {
        let l: String = listeners
            .iter()
            .map(|a| format!("[[node.listeners]]\naddress = \"{a}\"\n"))
            .collect();
        from_toml(&format!(
            "[node]\n{node}\n{l}[[routes]]\ncluster = \"a\"\n[clusters.a]\n[[clusters.a.endpoints]]\naddress = \"127.0.0.1:1\"\n"
        ))
        .err()
        .map(|e| e.lines())
    };
    assert!(clash("admin = \"127.0.0.1:9000\"", &["127.0.0.1:9000"]).is_some());
    assert!(clash("admin = \"127.0.0.1:9000\"", &["0.0.0.0:9000"]).is_some());
    assert!(clash("", &["0.0.0.0:80", "127.0.0.1:80"]).is_some());
    assert!(clash(
        "admin = \"127.0.0.1:9000\"",
        &["127.0.0.2:9000", "127.0.0.1:80"]
    )
    .is_none());
    assert!(
        clash("admin = \"127.0.0.1:0\"", &["127.0.0.1:0"]).is_none(),
        "port 0: any free port"
    );
}

#[test]
fn route_limits_override_the_cluster_and_are_checked() {
    let text = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmax_request_body = 1024\n[routes.timeouts]\nresponse_header = \"250ms\"\n",
    );
    let routing = from_toml(&text).unwrap().routing;
    let r = &routing.routes[0];
    assert_eq!(r.max_request_body, Some(1024));
    let t = r.timeouts.over(routing.clusters[0].timeouts);
    assert_eq!(t.response_header, std::time::Duration::from_millis(250));
    assert_eq!(t.connect, routing.clusters[0].timeouts.connect, "kept");
    assert_eq!(t.total, None, "the cluster's: none");
    // Absent: no limit, the cluster's timeouts.
    let plain = &from_toml(MINIMAL).unwrap().routing.routes[0];
    assert_eq!(plain.max_request_body, None);
    assert_eq!(plain.timeouts, Default::default());

    let e = errors(&MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmax_request_body = 0\n[routes.timeouts]\nresponse_header = \"0s\"\ntotal = \"soon\"\n",
    ));
    for w in [
        "routes[0].max_request_body: 0 is out of range",
        "routes[0].timeouts.response_header: must be greater than zero",
        "routes[0].timeouts.total: invalid duration",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn documents_without_route_limits_keep_their_hash() {
    // The hash is of the document's canonical JSON; the new route settings are left out of it when
    // absent, so a document written before them hashes as it did (nodes of two versions report the
    // same hash for it), and one that sets them hashes differently.
    let doc: crate::raw::RawDocument = toml::from_str(
        "[[routes]]\ncluster = \"api\"\n[clusters.api]\n[[clusters.api.endpoints]]\naddress = \"127.0.0.1:9001\"\n",
    )
    .unwrap();
    let json = serde_json::to_string(&doc.routes).unwrap();
    assert!(
        !json.contains("max_request_body") && !json.contains("timeouts"),
        "{json}"
    );
    let hash = |t: &str| from_toml(t).unwrap().routing.hash;
    let with = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nmax_request_body = 5\n",
    );
    assert_ne!(hash(MINIMAL), hash(&with));
}

#[test]
fn route_rewrites_are_checked_with_paths() {
    let ok = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\npath_prefix = \"/api\"\n[routes.rewrite]\npath_prefix = \"/\"\n\
         [routes.request_headers]\nremove = [\"X-Internal\"]\nset = { \"X-Env\" = \"prod\" }\n\
         [routes.response_headers]\nadd = { server = \"edge\" }\n",
    );
    let r = &from_toml(&ok).unwrap().routing.routes[0];
    assert_eq!(
        r.path_rewrite,
        Some(crate::model::PathRewrite::Prefix("/".into()))
    );
    assert_eq!(r.request_headers.remove, ["x-internal"]);
    assert_eq!(r.request_headers.set, [("x-env".into(), "prod".into())]);
    assert_eq!(r.response_headers.add, [("server".into(), "edge".into())]);

    let e = errors(&MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\n[routes.rewrite]\npath_prefix = \"v2\"\n\
         [routes.request_headers]\nremove = [\"bad name\"]\nset = { host = \"x\", connection = \"close\" }\n\
         add = { x-a = \"1\\r\\nx-b: 2\" }\n\
         [routes.response_headers]\nset = { content-length = \"1\" }\n",
    ));
    for w in [
        "routes[0].rewrite.path_prefix: must start with '/'",
        "routes[0].request_headers.remove[0]: invalid header name",
        "routes[0].request_headers.set.host: host: use the cluster's host_rewrite",
        "routes[0].request_headers.set.connection: connection is hop-by-hop or framing",
        "routes[0].request_headers.add.x-a: header value holds control characters",
        "routes[0].response_headers.set.content-length: content-length is hop-by-hop or framing",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn routes_that_answer_themselves_are_checked_with_paths() {
    let ok = MINIMAL.replace(
        "[[routes]]\ncluster = \"api\"\n",
        "[[routes]]\ncluster = \"api\"\n[[routes]]\nhosts = [\"old.test\"]\n[routes.redirect]\nscheme = \"https\"\n\
         [[routes]]\nhosts = [\"down.test\"]\n[routes.direct]\nstatus = 503\nbody = \"back soon\"\n",
    );
    let routing = from_toml(&ok).unwrap().routing;
    assert_eq!(routing.routes[0].cluster, Some(0));
    assert_eq!(routing.routes[1].cluster, None);
    assert!(matches!(
        &routing.routes[1].answer,
        Some(crate::model::RouteAnswer::Redirect(r)) if r.status == 301 && r.scheme.as_deref() == Some("https")
    ));
    assert!(matches!(
        &routing.routes[2].answer,
        Some(crate::model::RouteAnswer::Direct { status: 503, body, .. }) if body == "back soon"
    ));

    let e = errors(&MINIMAL.replace(
        "[[routes]]\ncluster = \"api\"\n",
        "[[routes]]\ncluster = \"api\"\n[routes.direct]\n\
         [[routes]]\n[routes.redirect]\nscheme = \"ftp\"\nhost = \"a/b\"\npath = \"x\"\npath_prefix = \"/y\"\nstatus = 200\n\
         [[routes]]\n[routes.direct]\nstatus = 99\n[routes.redirect]\n\
         [[routes]]\nhosts = [\"none.test\"]\n",
    ));
    for w in [
        "routes[0].cluster: a route that answers itself",
        "routes[1].redirect.scheme: expected http or https",
        "routes[1].redirect.host: not a host[:port]",
        "routes[1].redirect: set at most one of path, path_prefix",
        "routes[1].redirect.status: 200 is not 301",
        "routes[2]: set at most one of redirect, direct",
        "routes[3].cluster: required",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn regex_rewrites_compile_or_are_rejected_with_paths() {
    let ok = MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\n[routes.rewrite]\nregex = \"^/old/(.*)$\"\nreplacement = \"/new/$1\"\n",
    );
    let r = &from_toml(&ok).unwrap().routing.routes[0];
    assert!(
        matches!(&r.path_rewrite, Some(crate::model::PathRewrite::Regex { replacement, .. }) if replacement == "/new/$1")
    );
    for (rewrite, want) in [
        (
            "regex = \"(unclosed\"\nreplacement = \"/\"",
            "routes[0].rewrite.regex: invalid regular expression",
        ),
        (
            "regex = \"^/a\"",
            "routes[0].rewrite.replacement: required with regex",
        ),
        (
            "replacement = \"/b\"",
            "routes[0].rewrite.replacement: only with regex",
        ),
        (
            "regex = \"^/a\"\nreplacement = \"/b\"\npath_prefix = \"/\"",
            "routes[0].rewrite: set at most one of path_prefix, regex",
        ),
        // Bounded: a pushed expression cannot make every node compile something huge.
        (
            "regex = \"(\\\\w{100}){100}\"\nreplacement = \"/\"",
            "routes[0].rewrite.regex: invalid regular expression",
        ),
    ] {
        let e = errors(&MINIMAL.replace(
            "cluster = \"api\"\n",
            &format!("cluster = \"api\"\n[routes.rewrite]\n{rewrite}\n"),
        ));
        assert!(
            e.iter().any(|l| l.contains(want)),
            "{want} missing from {e:#?}"
        );
    }
}

#[test]
fn match_conditions_are_checked_with_paths() {
    let e = errors(&MINIMAL.replace(
        "cluster = \"api\"\n",
        "cluster = \"api\"\nheaders = [{ name = \"x-a\", value = \"1\", regex = \"^1$\" }, { name = \"x-b\", regex = \"(\" }]\n\
         query = [{ name = \"\" }]\ncookies = [{ name = \"a;b\" }, { name = \"c\", regex = \"[\" }]\n",
    ));
    for w in [
        "routes[0].headers[0]: set at most one of value, regex",
        "routes[0].headers[1].regex: invalid regular expression",
        "routes[0].query[0].name: invalid name",
        "routes[0].cookies[0].name: invalid name",
        "routes[0].cookies[1].regex: invalid regular expression",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn weighted_routes_are_checked_with_paths() {
    let ok = MINIMAL.replace(
        "[[routes]]\ncluster = \"api\"\n",
        "[[routes]]\nweighted_clusters = [{ cluster = \"api\", weight = 95 }, { cluster = \"canary\", weight = 5 }]\n\
         split_on = { cookie = \"uid\" }\n\
         [[routes]]\nhosts = [\"drained.test\"]\nweighted_clusters = [{ cluster = \"api\", weight = 1 }, { cluster = \"canary\", weight = 0 }]\n\
         [clusters.canary]\n[[clusters.canary.endpoints]]\naddress = \"127.0.0.1:9002\"\n",
    );
    let routing = from_toml(&ok).unwrap().routing;
    let r = &routing.routes[0];
    assert_eq!(r.cluster, None);
    let split = r.split.as_ref().unwrap();
    let named: Vec<_> = split
        .clusters
        .iter()
        .map(|w| (routing.clusters[w.cluster].name.as_str(), w.weight))
        .collect();
    assert_eq!(named, [("api", 95), ("canary", 5)]);
    assert_eq!(split.on, Some(crate::model::HashOn::Cookie("uid".into())));
    assert_eq!(routing.routes[1].split.as_ref().unwrap().on, None);
    assert_eq!(r.clusters().count(), 2);

    let e = errors(&MINIMAL.replace(
        "[[routes]]\ncluster = \"api\"\n",
        "[[routes]]\nweighted_clusters = [{ cluster = \"api\", weight = 0 }, { cluster = \"api2\", weight = 0 }]\n\
         [[routes]]\nweighted_clusters = [{ cluster = \"nope\", weight = 5 }, { cluster = \"api\", weight = -1 }, { weight = 1 }]\n\
         [[routes]]\ncluster = \"api\"\nweighted_clusters = [{ cluster = \"api\", weight = 1 }]\n\
         [[routes]]\ncluster = \"api\"\nsplit_on = { header = \"x-user\" }\n\
         [[routes]]\nweighted_clusters = [{ cluster = \"api\" }, { cluster = \"api\", weight = 1 }]\nsplit_on = { header = \"bad header\" }\n\
         [[routes]]\nhosts = [\"down.test\"]\nweighted_clusters = [{ cluster = \"api\", weight = 1 }]\n[routes.direct]\n\
         [clusters.api2]\n[[clusters.api2.endpoints]]\naddress = \"127.0.0.1:9002\"\n",
    ));
    for w in [
        "routes[0].weighted_clusters: the weights sum to 0",
        "routes[1].weighted_clusters[0].cluster: unknown cluster \"nope\"",
        "routes[1].weighted_clusters[1].weight: -1 is out of range",
        "routes[1].weighted_clusters[2].cluster: required",
        "routes[2]: set at most one of cluster, weighted_clusters",
        "routes[3].split_on: only with weighted_clusters",
        "routes[4].weighted_clusters[0].weight: required",
        "routes[4].weighted_clusters[1].cluster: cluster \"api\" is named twice",
        "routes[4].split_on.header: invalid header name",
        "routes[5].weighted_clusters: a route that answers itself",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn access_logs_are_a_switch_or_lines_checked_with_paths() {
    use crate::model::{AccessField, AccessLog, LineFormat, LogOutput};
    let node = |extra: &str| {
        MINIMAL.replace(
            "[[node.listeners]]",
            &format!("[node]\n{extra}\n[[node.listeners]]"),
        )
    };
    let on = from_toml(&node("access_log = true")).unwrap();
    assert_eq!(on.node.access_log, Some(AccessLog::Tracing));
    assert_eq!(
        from_toml(&node("access_log = false"))
            .unwrap()
            .node
            .access_log,
        None
    );
    assert_eq!(from_toml(MINIMAL).unwrap().node.access_log, None);

    let json = from_toml(&node(
        "[node.access_log]\nfields = [\"status\", \"route\", \"trace_id\"]\noutput = \"/var/log/edge/access.log\"",
    ))
    .unwrap();
    let Some(AccessLog::Lines(lines)) = json.node.access_log else {
        panic!("lines expected");
    };
    assert_eq!(
        lines.format,
        LineFormat::Json(vec![
            AccessField::Status,
            AccessField::Route,
            AccessField::TraceId
        ])
    );
    assert_eq!(
        lines.output,
        LogOutput::File("/var/log/edge/access.log".into())
    );
    let text = from_toml(&node(
        "[node.access_log]\nformat = \"text\"\noutput = \"stderr\"",
    ))
    .unwrap();
    assert!(matches!(
        text.node.access_log,
        Some(AccessLog::Lines(l)) if matches!(l.format, LineFormat::Template(_)) && l.output == LogOutput::Stderr
    ));

    let e = errors(&node(
        "[node.access_log]\nformat = \"xml\"\nbuffer_lines = 0\noutput = \"\"",
    ));
    for w in [
        "node.access_log.format: expected json or text, not \"xml\"",
        "node.access_log.buffer_lines: 0 is out of range",
        "node.access_log.output: expected stdout, stderr or a file path",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
    let e = errors(&node(
        "[node.access_log]\nfields = [\"status\", \"colour\", \"status\"]\ntemplate = \"$status\"",
    ));
    for w in [
        "node.access_log.fields[1]: unknown field \"colour\"; expected one of time, client",
        "node.access_log.fields[2]: \"status\" is listed twice",
        "node.access_log.template: only with format = \"text\"",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
    let e = errors(&node(
        "[node.access_log]\nformat = \"text\"\ntemplate = \"$client $bogus\"\nfields = [\"status\"]",
    ));
    for w in [
        "node.access_log.template: unknown field \"$bogus\"",
        "node.access_log.fields: only with format = \"json\"",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
    let e = errors(&node("access_log = \"yes\""));
    assert!(
        e.iter().any(|l| l.contains("true, false or a table")),
        "{e:#?}"
    );
    let e = errors(&node("[node.access_log]\ncolour = \"blue\""));
    assert!(e.iter().any(|l| l.contains("colour")), "{e:#?}");
}

#[test]
fn endpoints_named_by_dns_are_kept_apart_and_checked() {
    let ok = MINIMAL.replace(
        "address = \"127.0.0.1:9001\"\n",
        "address = \"127.0.0.1:9001\"\n[[clusters.api.endpoints]]\naddress = \"API.internal:8080\"\nweight = 3\n\
         [[clusters.api.endpoints]]\naddress = \"localhost:9002\"\n",
    );
    let c = &from_toml(&ok).unwrap().routing.clusters[0];
    assert_eq!(c.endpoints.len(), 1);
    let names: Vec<_> = c
        .dns
        .iter()
        .map(|d| (d.host.as_str(), d.port, d.weight))
        .collect();
    assert_eq!(names, [("api.internal", 8080, 3), ("localhost", 9002, 1)]);
    assert_eq!(c.dns_refresh, std::time::Duration::from_secs(30));

    let e = errors(&MINIMAL.replace(
        "address = \"127.0.0.1:9001\"\n",
        "address = \"a.test:1\"\n[[clusters.api.endpoints]]\naddress = \"a.test:1\"\n\
         [[clusters.api.endpoints]]\naddress = \"bad..name:80\"\n[[clusters.api.endpoints]]\naddress = \"a.test:0\"\n",
    )
    .replace("[clusters.api]\n", "[clusters.api]\ndns_refresh = \"500ms\"\n"));
    for w in [
        "clusters.api.endpoints[1].address: duplicate endpoint a.test:1",
        "clusters.api.endpoints[2].address: invalid socket address",
        "clusters.api.endpoints[3].address: invalid socket address",
        "clusters.api.dns_refresh: expected 1s to 1h",
    ] {
        assert!(e.iter().any(|l| l.contains(w)), "{w} missing from {e:#?}");
    }
}

#[test]
fn bad_rate_limits_are_rejected_with_paths() {
    let text = r#"
[node]
trusted_proxies = ["10.0.0.0/8", "10.0.0.1/8", "nope", "::1", "fd00::/200"]
[[node.listeners]]
address = "127.0.0.1:80"
[[routes]]
cluster = "api"
[[routes.rate_limits]]
rate = 0
burst = 0
[[routes.rate_limits]]
rate = 5
key = ["ip", "header:bad header", "client_ip", "client_ip"]
scope = "global"
mode = "dry"
per = "0s"
[[routes.rate_limits]]
name = "x"
rate = 5
key = []
max_keys = 1
[[routes.rate_limits]]
name = "x"
[clusters.api]
[[clusters.api.rate_limits]]
rate = 1
per = "25h"
[[clusters.api.endpoints]]
address = "10.0.0.1:80"
"#;
    let got = errors(text);
    let expect = [
        "node.trusted_proxies[1]: invalid network \"10.0.0.1/8\"",
        "node.trusted_proxies[2]: invalid network \"nope\"",
        "node.trusted_proxies[4]: invalid network \"fd00::/200\"",
        "routes[0].rate_limits[0].rate: 0 is out of range 1..=",
        "routes[0].rate_limits[0].burst: 0 is out of range 1..=",
        "routes[0].rate_limits[1].per: must be greater than zero",
        "routes[0].rate_limits[1].key[0]: unknown key kind \"ip\"",
        "routes[0].rate_limits[1].key[1]: invalid header name \"bad header\"",
        "routes[0].rate_limits[1].key[3]: \"client_ip\" is listed twice",
        "routes[0].rate_limits[1].scope: unknown scope \"global\"",
        "routes[0].rate_limits[1].mode: unknown mode \"dry\"",
        "routes[0].rate_limits[2].key: name at least one part",
        "routes[0].rate_limits[2].max_keys: 1 is out of range 8..=",
        "routes[0].rate_limits[3].rate: missing",
        "routes[0].rate_limits[3].name: duplicate rate limit name \"x\"",
        "clusters.api.rate_limits[0].per: expected 1ms to 24h",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "unexpected extra errors: {got:#?}");
}

#[test]
fn rate_limits_take_their_defaults() {
    let text = "[node]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[[node.listeners]]\naddress = \"127.0.0.1:80\"\n\
        [[routes]]\ncluster = \"api\"\n[[routes.rate_limits]]\nrate = 20\n\
        [[routes.rate_limits]]\nrate = 1\nkey = [\"header:X-Api-Key\", \"cookie:sid\"]\n\
        [clusters.api]\n[[clusters.api.endpoints]]\naddress = \"10.0.0.1:80\"\n";
    let config = from_toml(text).unwrap();
    let limits = &config.routing.routes[0].rate_limits;
    assert_eq!(limits[0].name, "client_ip");
    assert_eq!((limits[0].rate, limits[0].burst), (20, 20));
    assert_eq!(limits[0].per, std::time::Duration::from_secs(1));
    assert_eq!(limits[0].scope, LimitScope::Local);
    assert_eq!(limits[0].mode, LimitMode::Enforce);
    assert_eq!(limits[0].max_keys, 100_000);
    assert_eq!(limits[1].name, "header-x-api-key_cookie-sid");
    assert_eq!(
        limits[1].key,
        vec![
            LimitKey::Header("x-api-key".into()),
            LimitKey::Cookie("sid".into())
        ]
    );
    assert_eq!(config.node.trusted_proxies.len(), 2);
    assert!(config.node.trusted_proxies[1].contains("::1".parse().unwrap()));
}

#[test]
fn bad_autoscale_sections_are_rejected_with_paths() {
    let text = r#"
[[node.listeners]]
address = "127.0.0.1:80"
[[routes]]
cluster = "a"
[clusters.a]
[clusters.a.autoscale]
min = 5
max = 2
target = "cpu"
target_value = 1.5
cooldown_up = "0s"
[clusters.b]
[clusters.b.autoscale]
target = "memory"
scale_up_above = 0.5
scale_down_below = 0.55
max_step = 0
"#;
    let got = errors(text);
    let expect = [
        "clusters.a.autoscale.max: 2 is below min (5)",
        "clusters.a.autoscale.target_value: 1.5 is out of range",
        "clusters.a.autoscale.cooldown_up: must be greater than zero",
        "clusters.b.autoscale.max: missing",
        "clusters.b.autoscale.target: unknown target \"memory\"",
        "clusters.b.autoscale.target_value: expected scale_down_below (0.55) < target_value (0.6) < scale_up_above (0.5)",
        "clusters.b.autoscale.max_step: 0 is out of range 1..=",
    ];
    for e in expect {
        assert!(
            got.iter().any(|g| g.starts_with(e)),
            "missing {e:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expect.len(), "unexpected extra errors: {got:#?}");
}
