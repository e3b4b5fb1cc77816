//! The response side of the request path: the upstream's answer made into the client's response
//! (hop-by-hop headers out, the affinity header in, the body streamed), or a tunnel opened for an
//! upgrade the route allows.

use crate::downstream::lifecycle::ConnHold;
use crate::error::ProxyError;
use crate::request::attempts::{AffinityHeader, Settled};
use crate::request::body::{ProxyBody, UpstreamBody};
use crate::request::compress::Compress;
use crate::request::headers;
use crate::request::location::LocationRewrite;
use crate::request::send::Answer;
use crate::tables::router::HeaderOps;
use crate::upstream::h1::H1Body;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use std::sync::Arc;

/// The response to send downstream for a settled request: an upgraded tunnel, or the upstream's
/// response streamed with the route's header operations (`ops`) and `Location` rewriting applied. `downstream_upgrade`: the
/// protocol the request asked to switch to (allowed by its route), with the client connection's
/// upgrade and its hold.
pub(crate) fn respond(
    settled: Settled,
    ops: Option<&HeaderOps>,
    location: Option<&LocationRewrite>,
    downstream_upgrade: Option<(&HeaderValue, (OnUpgrade, Arc<ConnHold>))>,
    compress: Option<&Compress>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let Settled {
        answer,
        in_flight,
        affinity,
    } = settled;
    let (mut resp, sender) = match answer {
        Answer::Hyper(resp, sender) => (resp, sender),
        Answer::H1Client(head, sender) => {
            // A 101 never gets here: the h1 client refuses one (it only takes non-upgrade requests).
            // The h1 client keeps hop-by-hop headers out of the map as it parses.
            let mut resp = head.response;
            if let Some((name, value)) = affinity {
                resp.headers_mut().append(name, value);
            }
            if let Some(ops) = ops {
                ops.apply(resp.headers_mut());
            }
            if let Some(l) = location {
                l.apply(resp.headers_mut(), in_flight.upstream().address);
            }
            let body = H1Body::new(sender, in_flight, head.framing, head.keep_alive);
            let mut resp = resp.map(|()| ProxyBody::H1Client(body));
            if let Some(c) = compress {
                c.apply(&mut resp);
            }
            return Ok(resp);
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some((asked, (downstream, hold))) = downstream_upgrade else {
            return Err(ProxyError::Upstream(
                "101 Switching Protocols to a request that asked no upgrade".into(),
            ));
        };
        // The tunnel opens only to the protocol asked for (and allowed by the route): a 101 to
        // another one would smuggle it past the route's conditions.
        if !same_protocol(asked, resp.headers().get(header::UPGRADE)) {
            return Err(ProxyError::Upstream(
                "101 Switching Protocols to another protocol than the one asked".into(),
            ));
        }
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(crate::downstream::tunnel::run(
            downstream,
            upstream_upgrade,
            in_flight,
            hold,
        ));
        return Ok(resp.map(|_| ProxyBody::empty()));
    }
    response_headers(resp.headers_mut(), affinity);
    if let Some(ops) = ops {
        ops.apply(resp.headers_mut());
    }
    if let Some(l) = location {
        l.apply(resp.headers_mut(), in_flight.upstream().address);
    }
    let mut resp = resp.map(|body| ProxyBody::Upstream(UpstreamBody::new(body, sender, in_flight)));
    if let Some(c) = compress {
        c.apply(&mut resp);
    }
    Ok(resp)
}

/// Whether a 101's `Upgrade` names one of the protocols the request asked for (names compared without
/// case; a version, if the request gave one, must match too).
fn same_protocol(asked: &HeaderValue, answered: Option<&HeaderValue>) -> bool {
    let (Ok(asked), Some(Ok(answered))) = (asked.to_str(), answered.map(|a| a.to_str())) else {
        return false;
    };
    let answered = answered.trim();
    asked.split(',').any(|a| {
        let a = a.trim();
        a.eq_ignore_ascii_case(answered)
            || (!a.contains('/')
                && answered
                    .split('/')
                    .next()
                    .is_some_and(|name| name.trim().eq_ignore_ascii_case(a)))
    })
}

/// The upstream's response headers made fit for the client: no hop-by-hop headers, plus the affinity
/// cookie or header if one is set. A response framed by `Transfer-Encoding` loses any
/// `Content-Length` too (RFC 9112 section 6.3: the encoding wins), as on the h1 client's path: the
/// body is re-framed for the client, and a stale length would cut it.
fn response_headers(h: &mut HeaderMap, affinity: AffinityHeader) {
    if h.contains_key(header::TRANSFER_ENCODING) {
        h.remove(header::CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(h);
    if let Some((name, value)) = affinity {
        h.append(name, value);
    }
}
