//! `Location` rewriting on a route with `rewrite.location`: an upstream that redirects to itself
//! (its own address, or the `Host` it was sent) would send the client to a name it cannot reach; the
//! proxy puts the client's own origin there instead, and maps a replaced path prefix back, as
//! nginx's `proxy_redirect default` does (traefik/traefik#5809).

use crate::downstream::body::ClientBody;
use crate::request::headers;
use crate::tables::router::{PathRewrite, Route};
use http::{header, HeaderMap, HeaderValue, Request};
use std::net::SocketAddr;

/// What a route's responses' `Location` headers are rewritten with, for one request.
#[derive(Debug)]
pub(crate) struct LocationRewrite {
    /// `scheme://host` the client used.
    client_origin: String,
    /// The `Host` the upstream was sent (lower case).
    upstream_host: String,
    /// The prefix the upstream saw and the route's own, when the route replaces one.
    prefixes: Option<(Box<str>, Box<str>)>,
}

impl LocationRewrite {
    /// The rewrite for `req` (from a client on `scheme`) on `route`, whose cluster sends `Host:
    /// host_rewrite` if set; `None` unless the route asks for it.
    #[inline(always)]
    pub(crate) fn of(
        route: &Route,
        req: &Request<ClientBody>,
        scheme: &HeaderValue,
        host_rewrite: Option<&HeaderValue>,
    ) -> Option<Box<LocationRewrite>> {
        if !route.rewrite_location {
            return None;
        }
        let raw = headers::request_host(req.uri(), req.headers(), req.version()).ok()?;
        let client_host = std::str::from_utf8(raw).ok()?;
        let upstream_host = host_rewrite
            .and_then(|h| h.to_str().ok())
            .unwrap_or(client_host);
        let scheme = scheme.to_str().unwrap_or("http");
        let prefixes = match &route.path_rewrite {
            Some(PathRewrite::Prefix(to)) => Some((to.clone(), route.path_prefix().into())),
            _ => None,
        };
        Some(Box::new(LocationRewrite {
            client_origin: format!("{scheme}://{client_host}"),
            upstream_host: upstream_host.to_ascii_lowercase(),
            prefixes,
        }))
    }

    /// Rewrites `headers`' `Location` if it names the upstream (`endpoint` or the Host it was sent)
    /// or starts with the prefix the upstream saw.
    pub(crate) fn apply(&self, headers: &mut HeaderMap, endpoint: SocketAddr) {
        let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else {
            return;
        };
        let (origin, path) = split_origin(location);
        let ours = match origin {
            None => None,
            Some((_, authority)) => {
                let authority = authority.to_ascii_lowercase();
                let named = authority == self.upstream_host || authority == endpoint.to_string();
                if !named {
                    return;
                }
                Some(self.client_origin.as_str())
            }
        };
        let path = match &self.prefixes {
            Some((upstream, client)) if path.starts_with(&**upstream) => {
                let rest = &path[upstream.len()..];
                let joined = match (client.ends_with('/'), rest.strip_prefix('/')) {
                    (true, Some(tail)) => format!("{client}{tail}"),
                    _ => format!("{client}{rest}"),
                };
                std::borrow::Cow::Owned(joined)
            }
            _ if ours.is_none() => return,
            _ => std::borrow::Cow::Borrowed(path),
        };
        let new = format!("{}{path}", ours.unwrap_or(""));
        if let Ok(value) = HeaderValue::try_from(new) {
            headers.insert(header::LOCATION, value);
        }
    }
}

/// An absolute URL's `(scheme, authority)` and the rest (path, query, fragment); a relative
/// reference is all rest.
fn split_origin(location: &str) -> (Option<(&str, &str)>, &str) {
    let Some((scheme, after)) = location.split_once("://") else {
        return (None, location);
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return (None, location);
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    (Some((scheme, &after[..end])), &after[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(prefixes: Option<(&str, &str)>) -> LocationRewrite {
        LocationRewrite {
            client_origin: "https://api.example.com".into(),
            upstream_host: "backend.internal:8080".into(),
            prefixes: prefixes.map(|(a, b)| (a.into(), b.into())),
        }
    }

    fn apply(rw: &LocationRewrite, location: &str) -> String {
        let mut h = HeaderMap::new();
        h.insert(header::LOCATION, HeaderValue::from_str(location).unwrap());
        rw.apply(&mut h, ([10, 0, 0, 5], 8080).into());
        h[header::LOCATION].to_str().unwrap().to_string()
    }

    #[test]
    fn locations_naming_the_upstream_name_the_client_origin() {
        let plain = rw(None);
        assert_eq!(
            apply(&plain, "http://10.0.0.5:8080/login?next=/a"),
            "https://api.example.com/login?next=/a"
        );
        assert_eq!(
            apply(&plain, "http://Backend.Internal:8080/x"),
            "https://api.example.com/x"
        );
        assert_eq!(
            apply(&plain, "https://other.example.org/x"),
            "https://other.example.org/x",
            "not ours: kept"
        );
        assert_eq!(apply(&plain, "/relative"), "/relative");
    }

    #[test]
    fn a_replaced_prefix_is_mapped_back() {
        let mapped = rw(Some(("/", "/api/")));
        assert_eq!(
            apply(&mapped, "http://10.0.0.5:8080/login"),
            "https://api.example.com/api/login"
        );
        assert_eq!(apply(&mapped, "/login"), "/api/login");
        let v2 = rw(Some(("/internal/v2/", "/v1/")));
        assert_eq!(apply(&v2, "/internal/v2/orders/7"), "/v1/orders/7");
        assert_eq!(apply(&v2, "/elsewhere"), "/elsewhere");
    }
}
