#![allow(clippy::expect_used)] // A bench that cannot build its input has nothing to measure.

//! What a route's rate limit costs per request (issue 20: at most 100 ns at 100,000 distinct keys):
//! one limit keyed by client address, checked exactly as the request path does (key hash, bucket
//! table, GCRA), for one client and for 100,000 clients taking turns, against a limit that never
//! refuses (the load benchmark's case) and one most requests are over.

use criterion::{criterion_group, criterion_main, Criterion};
use edgeplane_config::model::{LimitKey, LimitMode, LimitScope, RateLimit};
use edgeplane_proxy::limits::StandaloneLimit;
use http::HeaderMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn limit(rate: u64) -> RateLimit {
    RateLimit {
        name: "per-ip".into(),
        rate,
        per: Duration::from_secs(1),
        burst: rate,
        key: vec![LimitKey::ClientIp],
        scope: LimitScope::Local,
        mode: LimitMode::Enforce,
        max_keys: 100_000,
        response_headers: false,
    }
}

/// `n` distinct IPv4 addresses as text, spread over 10.0.0.0/8, each in a 16-byte cell of one
/// buffer (a request's client address sits in its connection's memory, already in cache: the bench
/// should not add a cache miss per request to fetch it).
fn clients(n: u32) -> Vec<([u8; 16], usize)> {
    (0..n)
        .map(|i| {
            let [_, b, c, d] = (i.wrapping_mul(2_654_435_761) >> 8 | 0x0a00_0000).to_be_bytes();
            let text = format!("10.{b}.{c}.{d}");
            let mut cell = [0u8; 16];
            cell[..text.len()].copy_from_slice(text.as_bytes());
            (cell, text.len())
        })
        .collect()
}

fn rate_limit(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("rate_limit_check");
    for (name, rate, keys) in [
        ("never_refuses_1_key", 1_000_000_000, 1),
        ("never_refuses_100k_keys", 1_000_000_000, 100_000),
        ("mostly_refuses_100k_keys", 1, 100_000),
    ] {
        let l = StandaloneLimit::new(&limit(rate));
        let ips = clients(keys);
        // The request's arrival time is read once per request anyway (for its metrics): the
        // limit takes it from there, so the bench advances a clock by 1 µs per request instead.
        let start = Instant::now();
        // Every key tracked before measuring.
        for (ip, len) in &ips {
            black_box(l.admits(&headers, &ip[..*len], start));
        }
        let (mut i, mut tick) = (0, 0u64);
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % ips.len();
                tick += 1;
                let (ip, len) = &ips[i];
                let at = start + Duration::from_micros(tick);
                l.admits(black_box(&headers), black_box(&ip[..*len]), at)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, rate_limit);
criterion_main!(benches);
