use super::*;

fn fwd<'a>(
    client: &'a HeaderValue,
    proto: &'a HeaderValue,
    via: &'a HeaderValue,
    host: Option<&str>,
) -> AddedHeaders<'a> {
    let host = host.map(|h| HeaderValue::from_str(h).unwrap());
    AddedHeaders::new(client, proto, via, host, 0x0123_4567_89ab_cdef, 42)
}

/// The lines the h1 client's writer produces for `map`, sorted.
fn written(f: &AddedHeaders<'_>, map: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    let mut w = Written::default();
    for (name, value) in map {
        if !f.write_header(name, value, map, &mut w, &mut out) {
            line(&mut out, name, |o| o.extend_from_slice(value.as_bytes()));
        }
    }
    f.write_rest(w, &mut out);
    let mut lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .split_terminator("\r\n")
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The lines of `map` after [`AddedHeaders::apply`], sorted.
fn applied(f: &mut AddedHeaders<'_>, map: &HeaderMap) -> Vec<String> {
    let mut map = map.clone();
    f.apply(&mut map);
    let mut lines: Vec<String> = map
        .iter()
        .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
        .collect();
    lines.sort();
    lines
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (n, v) in pairs {
        m.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

#[test]
fn writer_and_map_agree() {
    let client = HeaderValue::from_static("127.0.0.1");
    let proto = HeaderValue::from_static("http");
    let via = HeaderValue::from_static("1.1 edge-1");
    let long_id = "x".repeat(MAX_REQUEST_ID + 1);
    let cases: Vec<HeaderMap> = vec![
        map(&[("host", "a.test")]),
        map(&[
            ("host", "a.test"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.0.0.2, 10.0.0.3"),
            ("via", "1.0 cdn"),
            ("via", "1.1 lb"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "spoofed.test"),
            ("x-request-id", "client-1"),
            ("x-request-id", "client-2"),
            ("accept", "*/*"),
        ]),
        map(&[("x-request-id", ""), ("x-request-id", "late")]),
        map(&[("x-request-id", &long_id)]),
    ];
    for m in &cases {
        for host in [Some("a.test"), None] {
            let mut f = fwd(&client, &proto, &via, host);
            let by_writer = written(&f, m);
            let by_map = applied(&mut f, m);
            assert_eq!(by_writer, by_map, "for {m:?}");
        }
    }
}

#[test]
fn values_as_sent() {
    let client = HeaderValue::from_static("127.0.0.1");
    let proto = HeaderValue::from_static("https");
    let via = HeaderValue::from_static("1.1 edge-1");
    let m = map(&[
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-for", "10.0.0.2"),
        ("via", "1.0 cdn"),
        ("x-forwarded-host", "spoofed.test"),
        ("x-forwarded-proto", "http"),
    ]);
    let f = fwd(&client, &proto, &via, Some("shop.test"));
    assert_eq!(
        written(&f, &m),
        [
            "via: 1.0 cdn, 1.1 edge-1",
            "x-forwarded-for: 203.0.113.9, 10.0.0.2, 127.0.0.1",
            "x-forwarded-host: shop.test",
            "x-forwarded-proto: https",
            "x-request-id: 0123456789abcdef000000000000002a",
        ]
    );
    // No host known: the client's X-Forwarded-Host does not pass as ours.
    let f = fwd(&client, &proto, &via, None);
    assert!(!written(&f, &m)
        .iter()
        .any(|l| l.starts_with("x-forwarded-host")));
}

#[test]
fn applied_once_until_reset() {
    let client = HeaderValue::from_static("127.0.0.1");
    let proto = HeaderValue::from_static("http");
    let via = HeaderValue::from_static("1.1 edge-1");
    let mut f = fwd(&client, &proto, &via, Some("a.test"));
    let mut m = map(&[("x-forwarded-for", "203.0.113.9")]);
    f.apply(&mut m);
    f.apply(&mut m);
    assert_eq!(m[&X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
    assert_eq!(m[header::VIA], "1.1 edge-1");
    // In the map already: the writer adds nothing more.
    let mut out = Vec::new();
    let mut w = Written::default();
    for (name, value) in &m {
        assert!(!f.write_header(name, value, &m, &mut w, &mut out));
    }
    f.write_rest(w, &mut out);
    assert!(out.is_empty());
    f.reset();
    let mut fresh = map(&[("x-forwarded-for", "203.0.113.9")]);
    f.apply(&mut fresh);
    assert_eq!(fresh[&X_FORWARDED_FOR], "203.0.113.9, 127.0.0.1");
}

#[test]
fn access_log_id() {
    let m = map(&[("x-request-id", "abc")]);
    assert_eq!(request_id(&m, 1, 2), "abc");
    assert_eq!(
        request_id(&HeaderMap::new(), 1, 2),
        "00000000000000010000000000000002"
    );
}
