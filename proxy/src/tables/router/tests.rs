use super::*;
use edgeplane_config::model::HeaderMatch;

fn route(name: &str, hosts: &[&str], prefix: &str, cluster: usize) -> model::Route {
    model::Route {
        name: name.into(),
        hosts: hosts
            .iter()
            .map(|h| match h.strip_prefix('*') {
                Some(s) => HostMatch::Suffix(s.into()),
                None => HostMatch::Exact((*h).into()),
            })
            .collect(),
        path_prefix: prefix.into(),
        methods: vec![],
        headers: vec![],
        query: vec![],
        cookies: vec![],
        cluster: Some(cluster),
        split: None,
        mirror: None,
        compression: None,
        rate_limits: Vec::new(),
        upgrades: vec!["websocket".into()],
        max_request_body: None,
        timeouts: Default::default(),
        path_rewrite: None,
        rewrite_location: false,
        request_headers: Default::default(),
        response_headers: Default::default(),
        answer: None,
    }
}

fn find<'a>(r: &'a Router, host: &str, path: &str) -> Option<&'a str> {
    r.find(host.as_bytes(), path, &Method::GET, &HeaderMap::new())
        .map(|r| &*r.name)
}

#[test]
fn precedence() {
    let router = Router::new(&[
        route("catch-all", &[], "/", 0),
        route("wild", &["*.example.com"], "/", 1),
        route("deep-wild", &["*.eu.example.com"], "/", 1),
        route("api", &["api.example.com"], "/api", 2),
        route("api-v2", &["api.example.com"], "/api/v2", 3),
    ])
    .unwrap();
    assert_eq!(
        find(&router, "api.example.com", "/api/v2/x"),
        Some("api-v2")
    );
    assert_eq!(find(&router, "api.example.com", "/api/v1"), Some("api"));
    // Nothing in the exact group matches "/": falls through to the wildcard.
    assert_eq!(find(&router, "api.example.com", "/"), Some("wild"));
    assert_eq!(find(&router, "x.eu.example.com", "/"), Some("deep-wild"));
    assert_eq!(find(&router, "www.example.com", "/"), Some("wild"));
    // A wildcard does not match the bare domain.
    assert_eq!(find(&router, "example.com", "/"), Some("catch-all"));
    assert_eq!(find(&router, "other.org", "/anything"), Some("catch-all"));
}

#[test]
fn no_catch_all_means_no_route() {
    let router = Router::new(&[route("api", &["api.example.com"], "/api", 0)]).unwrap();
    assert_eq!(find(&router, "api.example.com", "/other"), None);
    assert_eq!(find(&router, "x.org", "/api"), None);
}

#[test]
fn methods_and_headers() {
    let mut canary = route("canary", &[], "/", 1);
    canary.headers = vec![HeaderMatch {
        name: "x-canary".into(),
        value: Some("1".into()),
        regex: None,
    }];
    let mut writes = route("writes", &[], "/", 2);
    writes.methods = vec!["POST".into(), "PUT".into()];
    let mut has_auth = route("auth", &[], "/", 3);
    has_auth.headers = vec![HeaderMatch {
        name: "authorization".into(),
        value: None,
        regex: None,
    }];
    let router = Router::new(&[route("base", &[], "/", 0), canary, writes, has_auth]).unwrap();

    let mut h = HeaderMap::new();
    assert_eq!(
        router
            .find(b"a", "/", &Method::GET, &h)
            .unwrap()
            .name
            .as_ref(),
        "base"
    );
    assert_eq!(
        router
            .find(b"a", "/", &Method::POST, &h)
            .unwrap()
            .name
            .as_ref(),
        "writes"
    );
    h.insert("x-canary", HeaderValue::from_static("1"));
    assert_eq!(
        router
            .find(b"a", "/", &Method::GET, &h)
            .unwrap()
            .name
            .as_ref(),
        "canary"
    );
    h.insert("x-canary", HeaderValue::from_static("2"));
    assert_eq!(
        router
            .find(b"a", "/", &Method::GET, &h)
            .unwrap()
            .name
            .as_ref(),
        "base"
    );
    h.insert("authorization", HeaderValue::from_static("Bearer x"));
    assert_eq!(
        router
            .find(b"a", "/", &Method::GET, &h)
            .unwrap()
            .name
            .as_ref(),
        "auth"
    );
}

#[test]
fn equal_routes_keep_file_order() {
    let router = Router::new(&[route("first", &[], "/", 0), route("second", &[], "/", 1)]).unwrap();
    assert_eq!(find(&router, "a", "/"), Some("first"));
}

#[test]
fn host_normalisation() {
    let mut buf = [0u8; MAX_HOST];
    assert_eq!(
        normalize_host(b"API.Example.COM:8080", &mut buf),
        b"api.example.com"
    );
    let mut buf = [0u8; MAX_HOST];
    assert_eq!(normalize_host(b"example.com.", &mut buf), b"example.com");
    let mut buf = [0u8; MAX_HOST];
    assert_eq!(normalize_host(b"[::1]:8080", &mut buf), b"[::1]");
    let mut buf = [0u8; MAX_HOST];
    assert_eq!(normalize_host(b"plain", &mut buf), b"plain");
    let long = vec![b'a'; 300];
    let mut buf = [0u8; MAX_HOST];
    assert_eq!(normalize_host(&long, &mut buf), b"");
}
