//! What each fuzz target (`fuzz/fuzz_targets/*.rs`, run with cargo-fuzz on nightly) does with one
//! input. The same functions replay the kept corpora (`fuzz/corpus/<target>/`) as ordinary tests on
//! stable (`tests/tests/fuzz_corpus.rs`), so every crash found stays fixed. None of them may panic,
//! whatever the input.

use edgeplane_bus::codec::decode;
use edgeplane_bus::wire::{ConfigAck, Heartbeat, NodeStatus, ScaleEvent};
use std::sync::OnceLock;

/// A fuzz target's function: one input.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (the corpus folder) and its function.
pub const TARGETS: [(&str, Target); 6] = [
    ("config", config),
    ("bus", bus),
    ("h1_response", h1_response),
    ("h1_request", h1_request),
    ("router", router),
    ("admin", admin),
];

/// The config parser and validator, TOML and JSON, node configs and pushed documents; a valid one
/// is also built into a snapshot (routes compiled, clusters made).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = [
        edgeplane_config::from_toml(text),
        edgeplane_config::from_json(text),
    ];
    for c in parsed.iter().flatten() {
        // Certificates name files: not read here.
        if c.routing.certificates.is_empty() {
            let _ = edgeplane_proxy::tables::Snapshot::build(&c.routing, None);
        }
    }
    let _ = edgeplane_config::document_from_text(text);
    let _ = edgeplane_config::document_of_file_text(text);
}

/// Every bus message decoder (heartbeats, scaling events, config acks, node status) and the subject
/// parsers.
pub fn bus(data: &[u8]) {
    let _ = decode::<Heartbeat>(data);
    let _ = decode::<ScaleEvent>(data);
    let _ = decode::<ConfigAck>(data);
    let _ = decode::<NodeStatus>(data);
    if let Ok(subject) = std::str::from_utf8(data) {
        let subjects = edgeplane_bus::Subjects::default();
        let _ = subjects.parse_heartbeat(subject);
        let _ = subjects.parse_scale(subject);
    }
}

/// The own HTTP/1.1 client's response head parser and chunked decoder.
pub fn h1_response(data: &[u8]) {
    edgeplane_proxy::upstream::h1::read_untrusted(data);
}

/// The own HTTP/1.x server's request head parser and response head encoder.
pub fn h1_request(data: &[u8]) {
    edgeplane_proxy::read_request_untrusted(data);
}

/// A routing table with exact, wildcard and catch-all hosts, prefixes, methods and header conditions.
const ROUTES: &str = r#"
[[routes]]
hosts = ["api.example.com", "*.example.com"]
path_prefix = "/v1/"
methods = ["GET", "POST"]
cluster = "c"
[[routes]]
hosts = ["*.b.example.com"]
headers = [{ name = "x-canary", value = "1" }, { name = "authorization" }]
cluster = "c"
[[routes]]
path_prefix = "/static"
cluster = "c"
[clusters.c]
[[clusters.c.endpoints]]
address = "127.0.0.1:1"
"#;

/// Route matching: the input is a method byte, then `host\npath\n`, then `name: value` lines.
pub fn router(data: &[u8]) {
    static SNAPSHOT: OnceLock<Option<edgeplane_proxy::tables::Snapshot>> = OnceLock::new();
    let Some(snapshot) = SNAPSHOT.get_or_init(|| {
        let text = format!("[[node.listeners]]\naddress = \"127.0.0.1:1\"\n{ROUTES}");
        let config = edgeplane_config::from_toml(&text).ok()?;
        edgeplane_proxy::tables::Snapshot::build(&config.routing, None).ok()
    }) else {
        return;
    };
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = [
        http::Method::GET,
        http::Method::POST,
        http::Method::PUT,
        http::Method::DELETE,
    ][usize::from(m % 4)]
    .clone();
    let mut lines = rest.split(|&b| b == b'\n');
    let raw_host = lines.next().unwrap_or_default();
    let path = std::str::from_utf8(lines.next().unwrap_or_default()).unwrap_or("/");
    let headers = headers_of(lines);
    let mut buf = [0u8; edgeplane_proxy::tables::router::MAX_HOST];
    let host = edgeplane_proxy::tables::router::normalize_host(raw_host, &mut buf);
    let _ = snapshot.router.find(host, path, &method, &headers);
    let _ = snapshot.router.explain(host, path, &method, &headers);
}

/// The admin listener's request handling (every path, the API included, with a token set): the input
/// is a method byte, then the request target, then `name: value` header lines.
pub fn admin(data: &[u8]) {
    static NODE: OnceLock<Option<(tokio::runtime::Runtime, edgeplane_proxy::NodeHandle)>> =
        OnceLock::new();
    let Some((_, node)) = NODE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        std::env::set_var("EDGEPLANE_ADMIN_TOKEN", "fuzz-token");
        let text = format!(
            "[node]\nadmin = \"127.0.0.1:0\"\n[[node.listeners]]\naddress = \"127.0.0.1:0\"\n{ROUTES}"
        );
        let config = edgeplane_config::from_toml(&text).ok()?;
        let node = runtime
            .block_on(edgeplane_proxy::NodeHandle::start(&config))
            .ok()?;
        Some((runtime, node))
    }) else {
        return;
    };
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method =
        [http::Method::GET, http::Method::POST, http::Method::DELETE][usize::from(m % 3)].clone();
    let mut lines = rest.split(|&b| b == b'\n');
    let Ok(uri) = http::Uri::try_from(lines.next().unwrap_or_default()) else {
        return;
    };
    let mut req = http::Request::new(());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers_of(lines);
    let _ = edgeplane_proxy::admin::answer(&req, node.admin_context());
}

/// `name: value` lines as headers; lines that are not one are skipped.
fn headers_of<'a>(lines: impl Iterator<Item = &'a [u8]>) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&line[..colon]),
            http::HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            headers.append(name, value);
        }
    }
    headers
}
