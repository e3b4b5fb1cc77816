//! What the proxy knows of gRPC (the gRPC over HTTP/2 protocol): which requests are gRPC calls, the
//! `grpc-status` of an answer, and the names of the status codes.

use http::HeaderMap;

/// The status codes' names, by code (0 to 16).
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The name of status `code` (`OUT_OF_RANGE_CODE` beyond 16).
pub(crate) fn code_name(code: u32) -> &'static str {
    NAMES
        .get(code as usize)
        .copied()
        .unwrap_or("OUT_OF_RANGE_CODE")
}

/// Whether a request is a gRPC call: `content-type: application/grpc`, alone or with a `+format`
/// (not gRPC-Web, whose status travels in the body).
pub(crate) fn is_call(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.strip_prefix(b"application/grpc")
            .is_some_and(|rest| rest.is_empty() || rest[0] == b'+' || rest[0] == b';')
    })
}

/// The `grpc-status` in a header map (response headers of a trailers-only answer, or trailers).
pub(crate) fn status(headers: &HeaderMap) -> Option<u32> {
    std::str::from_utf8(headers.get("grpc-status")?.as_bytes())
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The status a gRPC client takes from an answer without `grpc-status`, by its HTTP status (the
/// gRPC HTTP-to-status mapping).
pub(crate) fn from_http(status: u16) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_statuses_and_names() {
        let mut h = HeaderMap::new();
        assert!(!is_call(&h));
        for (ct, call) in [
            ("application/grpc", true),
            ("application/grpc+proto", true),
            ("application/grpc-web", false),
            ("application/json", false),
        ] {
            h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_call(&h), call, "{ct}");
        }
        h.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(status(&h), Some(14));
        assert_eq!(code_name(14), "UNAVAILABLE");
        assert_eq!(code_name(99), "OUT_OF_RANGE_CODE");
        assert_eq!(from_http(503), 14);
    }
}
