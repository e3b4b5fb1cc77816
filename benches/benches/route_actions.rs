#![allow(clippy::expect_used)] // A bench that cannot build its input has nothing to measure.

//! What a route's header operations cost per request: three (remove one, set one, add one) on a
//! request's headers as a browser sends them, against no operation at all (issue 19: the request
//! path stays allocation-light).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use edgeplane_config::model;
use edgeplane_proxy::tables::router::HeaderOps;
use http::{HeaderMap, HeaderValue};
use std::hint::black_box;

/// Request headers as a browser sends them to an API.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "application/json"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("x-internal-token", "4f1c2a"),
        ("cookie", "session=abc123; theme=dark"),
        ("x-request-id", "0f8e2c1d9b7a6e5f"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h
}

fn header_ops(c: &mut Criterion) {
    let three = HeaderOps::compile(&model::HeaderOps {
        remove: vec!["x-internal-token".into()],
        set: vec![("x-env".into(), "prod".into())],
        add: vec![("x-tag".into(), "edge".into())],
    })
    .expect("valid operations");
    let none = HeaderOps::default();
    let mut group = c.benchmark_group("route_header_ops");
    for (name, ops) in [("none", &none), ("three", &three)] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                request_headers,
                |h| ops.apply(black_box(h)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, header_ops);
criterion_main!(benches);
