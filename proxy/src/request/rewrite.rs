//! The client's request made into the upstream's: origin-form target (its path prefix replaced if the
//! route says so), HTTP/1.1, hop-by-hop headers out, `Host` kept or rewritten, the route's header
//! operations, an upgrade passed on only when the route allows it. The forwarding
//! headers (`X-Forwarded-*`, `Via`, request id) are prepared here and added when the request is sent
//! ([`crate::request::added_headers`]).

use crate::downstream::body::ClientBody;
use crate::error::ProxyError;
use crate::request::added_headers::AddedHeaders;
use crate::request::shared::ConnInfo;
use crate::request::shared::Shared;
use crate::request::{headers, trace_context};
use crate::tables::router::Route;
use http::uri::{PathAndQuery, Uri};
use http::{header, HeaderValue, Request, Version};

/// Turns the client's request (number `n`, matched to `route`, its `Host` header `host_header`) into
/// the upstream's. Returns the forwarding headers to add when it is sent, and the protocol of an
/// upgrade the route allows.
pub(crate) fn rewrite_request<'a>(
    shared: &'a Shared,
    conn: &'a ConnInfo,
    req: &mut Request<ClientBody>,
    n: u64,
    route: &Route,
    host_header: Option<HeaderValue>,
    host_rewrite: Option<&HeaderValue>,
) -> Result<(AddedHeaders<'a>, Option<HeaderValue>), ProxyError> {
    let hop_by_hop = headers::HopByHop::find(req.headers());
    // An upgrade the route does not allow is not forwarded: the request goes on as a plain one
    // (`Upgrade` is hop-by-hop), as a client offering `h2c` on the side expects.
    let upgrade = if req.version() == Version::HTTP_11 {
        hop_by_hop
            .upgrade(req.headers())
            .filter(|p| route.allows_upgrade(p))
    } else {
        None
    };
    let via = if req.version() == Version::HTTP_2 {
        &shared.via_h2
    } else {
        &shared.via_h1
    };
    let authority = req.uri().authority().cloned();
    if req.uri().scheme().is_some() || authority.is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    if let Some(rewrite) = &route.path_rewrite {
        let uri = req.uri();
        let path = rewrite.apply(uri.path(), uri.query(), route.path_prefix());
        *req.uri_mut() = Uri::try_from(path).map_err(|_| ProxyError::BadRequest("invalid path"))?;
    }
    *req.version_mut() = Version::HTTP_11;

    let h = req.headers_mut();
    // `Expect` goes too: hyper answers `100-continue` to the client when the body is read.
    let te_trailers = hop_by_hop.te_trailers(h);
    hop_by_hop.strip(h);
    let host = match &authority {
        Some(a) => {
            let value = HeaderValue::from_str(a.as_str())
                .map_err(|_| ProxyError::BadRequest("invalid authority"))?;
            h.insert(header::HOST, value.clone());
            Some(value)
        }
        None => host_header,
    };
    if let Some(rewrite) = host_rewrite {
        h.insert(header::HOST, rewrite.clone());
    }
    if !route.request_headers.is_empty() {
        route.request_headers.apply(h);
    }
    trace_context::ensure(h, shared.tracing, shared.id_seed, n);
    if let Some(protocol) = &upgrade {
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, protocol.clone());
    }
    let mut added = AddedHeaders::new(&conn.client_ip, &conn.proto, via, host, shared.id_seed, n);
    added.te_trailers = te_trailers;
    Ok((added, upgrade))
}
