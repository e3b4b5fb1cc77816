//! W3C trace context (`traceparent`, `tracestate`): a request's trace id for the access log, and,
//! with `node.tracing.generate`, a new `traceparent` for a request that has no valid one (an invalid
//! one is replaced and its `tracestate` dropped, as the recommendation says). The proxy makes no span
//! of its own: a valid context passes unchanged.

use crate::request::added_headers::generated_id;
use edgeplane_config::model::Tracing;
use http::{HeaderMap, HeaderName, HeaderValue};

static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The trace id of a valid `traceparent` value: `version-traceid-parentid-flags`, lower-case hex,
/// version `00` exactly 55 bytes (a later version may append fields), ids not all zeros.
pub(crate) fn trace_id(value: &[u8]) -> Option<&str> {
    let hex = |s: &[u8]| {
        !s.is_empty()
            && s.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |s: &[u8]| s.iter().any(|&b| b != b'0');
    if value.len() < 55 || value.get(2) != Some(&b'-') || value.get(35) != Some(&b'-') {
        return None;
    }
    if value.get(52) != Some(&b'-') {
        return None;
    }
    let (version, trace, parent, flags) =
        (&value[..2], &value[3..35], &value[36..52], &value[53..55]);
    let later = value.len() > 55 && value[55] == b'-';
    let fits = (version == b"00" && value.len() == 55)
        || (version != b"00" && (value.len() == 55 || later));
    if !(hex(version) && version != b"ff" && hex(trace) && hex(parent) && hex(flags) && fits) {
        return None;
    }
    (nonzero(trace) && nonzero(parent))
        .then(|| std::str::from_utf8(trace).ok())
        .flatten()
}

/// The request's trace id: its valid `traceparent`'s, else the one [`ensure`] gives it when
/// generating, else none.
pub(crate) fn request_trace_id(
    headers: &HeaderMap,
    tracing: Tracing,
    seed: u64,
    n: u64,
) -> Option<String> {
    if let Some(id) = headers
        .get(&TRACEPARENT)
        .and_then(|v| trace_id(v.as_bytes()))
    {
        return Some(id.to_string());
    }
    tracing
        .generate
        .then(|| String::from_utf8_lossy(&generated_trace(seed, n)).into_owned())
}

/// With `tracing.generate`: gives request number `n` a new `traceparent` unless it has a valid one.
pub(crate) fn ensure(headers: &mut HeaderMap, tracing: Tracing, seed: u64, n: u64) {
    if !tracing.generate {
        return;
    }
    if headers.get_all(&TRACEPARENT).iter().count() == 1
        && headers
            .get(&TRACEPARENT)
            .and_then(|v| trace_id(v.as_bytes()))
            .is_some()
    {
        return;
    }
    headers.remove(&TRACEPARENT);
    headers.remove(&TRACESTATE);
    let parent = mix(seed ^ n.rotate_left(29));
    let sampled = (parent % 100) < u64::from(tracing.sample_percent);
    let trace = generated_trace(seed, n);
    let mut value = Vec::with_capacity(55);
    value.extend_from_slice(b"00-");
    value.extend_from_slice(&trace);
    value.extend_from_slice(format!("-{parent:016x}-").as_bytes());
    value.extend_from_slice(if sampled { b"01" } else { b"00" });
    if let Ok(v) = HeaderValue::from_bytes(&value) {
        headers.insert(TRACEPARENT.clone(), v);
    }
}

/// The trace id made for request number `n`: the node's seed, then the request's number mixed, so
/// that the right-most bytes, which samplers downstream read, look random.
fn generated_trace(seed: u64, n: u64) -> [u8; 32] {
    generated_id(seed, mix(n.wrapping_add(seed)))
}

/// A 64-bit mixer (SplitMix64's finaliser), never 0 for the parent id.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_contexts_are_recognised_and_others_not() {
        assert_eq!(
            trace_id(VALID.as_bytes()),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "",
        ] {
            assert_eq!(trace_id(bad.as_bytes()), None, "{bad}");
        }
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes";
        assert!(
            trace_id(later.as_bytes()).is_some(),
            "a later version may add fields"
        );
    }

    #[test]
    fn generating_keeps_valid_contexts_and_replaces_the_rest() {
        let on = Tracing {
            generate: true,
            sample_percent: 100,
        };
        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static(VALID));
        h.insert(&TRACESTATE, HeaderValue::from_static("v=1"));
        ensure(&mut h, on, 7, 1);
        assert_eq!(h[&TRACEPARENT], VALID);
        assert_eq!(h[&TRACESTATE], "v=1");

        let mut h = HeaderMap::new();
        h.insert(&TRACEPARENT, HeaderValue::from_static("garbage"));
        h.insert(&TRACESTATE, HeaderValue::from_static("v=1"));
        ensure(&mut h, on, 7, 2);
        let made = h[&TRACEPARENT].to_str().unwrap().to_string();
        assert!(trace_id(made.as_bytes()).is_some(), "{made}");
        assert!(made.ends_with("-01"), "sampled at 100 %: {made}");
        assert!(
            h.get(&TRACESTATE).is_none(),
            "dropped with an invalid parent"
        );
        assert_eq!(
            request_trace_id(&h, on, 7, 2).as_deref(),
            Some(&made[3..35])
        );

        let off = Tracing {
            generate: false,
            sample_percent: 100,
        };
        let mut h = HeaderMap::new();
        ensure(&mut h, off, 7, 3);
        assert!(h.is_empty());
        assert_eq!(request_trace_id(&h, off, 7, 3), None);
        let never = Tracing {
            generate: true,
            sample_percent: 0,
        };
        ensure(&mut h, never, 7, 4);
        assert!(h[&TRACEPARENT].to_str().unwrap().ends_with("-00"));
    }
}
