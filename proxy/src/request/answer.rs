//! The answer of a route that answers itself: a redirect built from the request's URL with the
//! route's parts replaced, or a fixed response (a maintenance page, a health answer). No upstream is
//! asked; the route's response header operations apply as to any response.

use crate::downstream::body::ClientBody;
use crate::error::ProxyError;
use crate::request::body::ProxyBody;
use crate::request::headers;
use crate::request::shared::ConnInfo;
use crate::tables::router::{replace_prefix, Route, RouteAnswer};
use edgeplane_config::model::RedirectPath;
use http::{header, HeaderValue, Request, Response};

/// The response `route` gives `req` itself.
pub(crate) fn answer(
    answer: &RouteAnswer,
    route: &Route,
    req: &Request<ClientBody>,
    conn: &ConnInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let mut resp = match answer {
        RouteAnswer::Redirect {
            status,
            scheme,
            host,
            path,
            strip_query,
        } => {
            let uri = req.uri();
            let scheme = match scheme {
                Some(s) => s,
                None => conn.proto.to_str().unwrap_or("http"),
            };
            let host = match host {
                Some(h) => h.as_ref(),
                None => {
                    let raw = headers::request_host(uri, req.headers(), req.version())
                        .map_err(ProxyError::BadRequest)?;
                    std::str::from_utf8(raw).map_err(|_| ProxyError::BadRequest("invalid host"))?
                }
            };
            let query = uri.query().filter(|_| !strip_query);
            let path = match path {
                RedirectPath::Same => replace_prefix(uri.path(), query, "", ""),
                RedirectPath::Replace(p) => replace_prefix(p, query, "", ""),
                RedirectPath::Prefix(p) => {
                    replace_prefix(uri.path(), query, route.path_prefix(), p)
                }
            };
            let location = HeaderValue::try_from(format!("{scheme}://{host}{path}"))
                .map_err(|_| ProxyError::BadRequest("the redirect's target is not a valid URL"))?;
            let mut resp = Response::new(ProxyBody::empty());
            *resp.status_mut() = *status;
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        RouteAnswer::Direct {
            status,
            body,
            content_type,
        } => {
            let mut resp = Response::new(ProxyBody::Local(Some(body.clone())));
            *resp.status_mut() = *status;
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, content_type.clone());
            resp
        }
    };
    if let Some(ops) = &route.response_headers {
        ops.apply(resp.headers_mut());
    }
    Ok(resp)
}
