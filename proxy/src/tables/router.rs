//! Route matching on borrowed request data, without allocation (a percent-encoded query parameter a
//! condition reads is decoded into a small string).
//!
//! Precedence (also in docs/config.md):
//! 1. Host groups from most to least specific: the exact host, then wildcard suffixes from longest to
//!    shortest, then routes without a host condition. A request falls through to the next group when no
//!    route of a group matches.
//! 2. Within a group: longest `path_prefix` first; on equal prefixes, the route with more conditions
//!    (methods, headers, query parameters and cookies) first; then the order of the config file. The
//!    first route whose path prefix, methods, headers, query parameters and cookies all match wins.

use edgeplane_config::model::{self, HostMatch};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use std::collections::HashMap;
use std::sync::Arc;

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Route name (logs, metrics).
    pub(crate) name: Arc<str>,
    /// Index of the cluster in the snapshot; `None` for a route that answers itself or splits.
    pub(crate) cluster: Option<usize>,
    /// Clusters sharing the route's traffic by weight, instead of `cluster`.
    pub(crate) split: Option<Box<crate::tables::split::Split>>,
    path_prefix: Box<str>,
    methods: Box<[Method]>,
    headers: Box<[(HeaderName, Cond<HeaderValue>)]>,
    query: Box<[ParamCond]>,
    cookies: Box<[ParamCond]>,
    upgrades: Box<[Box<str>]>,
    order: usize,
    /// Largest request body accepted, in bytes.
    pub(crate) max_request_body: Option<u64>,
    /// Timeouts overriding the cluster's.
    pub(crate) timeouts: model::RouteTimeouts,
    /// How the path changes upstream.
    pub(crate) path_rewrite: Option<PathRewrite>,
    /// Whether the upstream's `Location` headers naming it are rewritten.
    pub(crate) rewrite_location: bool,
    /// Header operations on the request.
    pub(crate) request_headers: HeaderOps,
    /// Header operations on the response (shared with the requests in flight that need them).
    pub(crate) response_headers: Option<Arc<HeaderOps>>,
    /// The route's own answer, instead of a cluster's.
    pub(crate) answer: Option<RouteAnswer>,
    /// Response compression.
    pub(crate) compression: Option<Arc<model::Compression>>,
}

impl Route {
    /// Position of the route in the document (indexes per-route state such as metrics).
    pub(crate) fn index(&self) -> usize {
        self.order
    }

    /// Whether a client may switch to `protocol` (an `Upgrade` value) on this route: every protocol
    /// it lists, by name without version, must be among the route's `upgrades`.
    pub(crate) fn allows_upgrade(&self, protocol: &HeaderValue) -> bool {
        let Ok(text) = protocol.to_str() else {
            return false;
        };
        let mut any = false;
        for offered in text.split(',') {
            let name = offered.split('/').next().unwrap_or("").trim();
            if !self.upgrades.iter().any(|u| u.eq_ignore_ascii_case(name)) {
                return false;
            }
            any = true;
        }
        any
    }

    /// The path prefix the route requires.
    pub(crate) fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// The first condition a request fails, or `None` if the route matches it (`target`: the path,
    /// with the query if there is one).
    pub(crate) fn mismatch(
        &self,
        target: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<&'static str> {
        let (path, query) = split_target(target);
        if !path.starts_with(&*self.path_prefix) {
            Some("path does not start with the route's path_prefix")
        } else if !(self.methods.is_empty() || self.methods.contains(method)) {
            Some("method is not one of the route's methods")
        } else if !self.headers_hold(headers) {
            Some("a header condition does not hold")
        } else if !conditions::query_holds(&self.query, query) {
            Some("a query condition does not hold")
        } else if !conditions::cookies_hold(&self.cookies, headers) {
            Some("a cookie condition does not hold")
        } else {
            None
        }
    }

    /// Whether the request (its path and query split apart) matches; the conditions a route does not
    /// have cost one test each.
    #[inline(always)]
    fn matches(
        &self,
        path: &str,
        query: Option<&str>,
        method: &Method,
        headers: &HeaderMap,
    ) -> bool {
        path.starts_with(&*self.path_prefix)
            && (self.methods.is_empty() || self.methods.contains(method))
            && (self.headers.is_empty() || self.headers_hold(headers))
            && (self.query.is_empty() || conditions::query_holds(&self.query, query))
            && (self.cookies.is_empty() || conditions::cookies_hold(&self.cookies, headers))
    }

    fn headers_hold(&self, headers: &HeaderMap) -> bool {
        self.headers.iter().all(|(name, cond)| match cond {
            Cond::Present => headers.contains_key(name),
            Cond::Exact(v) => headers.get_all(name).iter().any(|h| h == v),
            Cond::Regex(re) => headers
                .get_all(name)
                .iter()
                .any(|h| h.to_str().is_ok_and(|t| re.is_match(t))),
        })
    }

    fn conditions(&self) -> usize {
        self.methods.len() + self.headers.len() + self.query.len() + self.cookies.len()
    }
}

/// Routes grouped by host, ready for lookups.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
    /// Host names as bytes: a request's host is matched as it came (ASCII, checked by the request
    /// path), without a UTF-8 check per request.
    exact: HashMap<Box<[u8]>, Vec<usize>>,
    /// Sorted from longest suffix to shortest.
    suffixes: Vec<(Box<[u8]>, Vec<usize>)>,
    any: Vec<usize>,
}

/// Why a router could not be built from a validated document (only invalid header data can do that).
#[derive(Debug, thiserror::Error)]
#[error("routes[{index}]: {message}")]
pub struct RouterError {
    index: usize,
    message: String,
}

impl Router {
    /// Every route, in document order.
    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Compiles validated routes.
    pub(crate) fn new(routes: &[model::Route]) -> Result<Router, RouterError> {
        let mut router = Router::default();
        for (order, r) in routes.iter().enumerate() {
            let err = |message: String| RouterError {
                index: order,
                message,
            };
            let methods = r
                .methods
                .iter()
                .map(|m| Method::from_bytes(m.as_bytes()).map_err(|e| err(e.to_string())))
                .collect::<Result<_, _>>()?;
            let headers = r
                .headers
                .iter()
                .map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes())
                        .map_err(|e| err(e.to_string()))?;
                    let cond =
                        Cond::compile(h, |v| HeaderValue::from_str(v).map_err(|e| e.to_string()))
                            .map_err(err)?;
                    Ok((name, cond))
                })
                .collect::<Result<_, _>>()?;
            let params = |list: &[model::HeaderMatch]| {
                list.iter()
                    .map(|m| {
                        let cond = Cond::compile(m, |v| Ok(v.into())).map_err(err)?;
                        Ok((m.name.as_str().into(), cond))
                    })
                    .collect::<Result<Box<[_]>, RouterError>>()
            };
            let (query, cookies) = (params(&r.query)?, params(&r.cookies)?);
            let index = router.routes.len();
            router.routes.push(Route {
                name: r.name.as_str().into(),
                cluster: r.cluster,
                split: r
                    .split
                    .as_ref()
                    .map(|s| Box::new(crate::tables::split::Split::compile(s))),
                path_prefix: r.path_prefix.as_str().into(),
                methods,
                headers,
                query,
                cookies,
                upgrades: r.upgrades.iter().map(|u| u.as_str().into()).collect(),
                order,
                max_request_body: r.max_request_body,
                timeouts: r.timeouts,
                path_rewrite: r
                    .path_rewrite
                    .as_ref()
                    .map(PathRewrite::compile)
                    .transpose()
                    .map_err(err)?,
                rewrite_location: r.rewrite_location,
                request_headers: HeaderOps::compile(&r.request_headers).map_err(err)?,
                response_headers: match r.response_headers.is_empty() {
                    true => None,
                    false => Some(Arc::new(
                        HeaderOps::compile(&r.response_headers).map_err(err)?,
                    )),
                },
                compression: r.compression.clone().map(Arc::new),
                answer: r
                    .answer
                    .as_ref()
                    .map(RouteAnswer::compile)
                    .transpose()
                    .map_err(err)?,
            });
            if r.hosts.is_empty() {
                router.any.push(index);
            }
            for h in &r.hosts {
                match h {
                    HostMatch::Exact(name) => router
                        .exact
                        .entry(name.as_bytes().into())
                        .or_default()
                        .push(index),
                    HostMatch::Suffix(suffix) => {
                        match router
                            .suffixes
                            .iter_mut()
                            .find(|(s, _)| **s == *suffix.as_bytes())
                        {
                            Some((_, list)) => list.push(index),
                            None => router
                                .suffixes
                                .push((suffix.as_bytes().into(), vec![index])),
                        }
                    }
                }
            }
        }
        router
            .suffixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        let routes = &router.routes;
        let order = |list: &mut Vec<usize>| {
            list.sort_by(|&a, &b| {
                let (a, b) = (&routes[a], &routes[b]);
                b.path_prefix
                    .len()
                    .cmp(&a.path_prefix.len())
                    .then(b.conditions().cmp(&a.conditions()))
                    .then(a.order.cmp(&b.order))
            })
        };
        router.exact.values_mut().for_each(order);
        router.suffixes.iter_mut().for_each(|(_, l)| order(l));
        order(&mut router.any);
        Ok(router)
    }

    /// Finds the route for a request. `host` must be lower case without port (see [`normalize_host`]);
    /// `target` is the path, with the query if the request has one.
    pub fn find(
        &self,
        host: &[u8],
        target: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Option<&Route> {
        let (path, query) = split_target(target);
        let first = |list: &[usize]| {
            list.iter()
                .map(|&i| &self.routes[i])
                .find(|r| r.matches(path, query, method, headers))
        };
        if let Some(list) = self.exact.get(host) {
            if let Some(r) = first(list) {
                return Some(r);
            }
        }
        for (suffix, list) in &self.suffixes {
            if host.len() > suffix.len() && host.ends_with(suffix) {
                if let Some(r) = first(list) {
                    return Some(r);
                }
            }
        }
        first(&self.any)
    }
}

/// Longest host name accepted for matching; longer hosts only match routes without a host condition.
pub const MAX_HOST: usize = 255;

/// Strips the port (and IPv6 brackets' port) from a Host value and lower-cases it into `buf` when it
/// has upper-case letters, so that the common, already lower-case host is used as it is. A host
/// longer than [`MAX_HOST`] becomes empty.
pub fn normalize_host<'a>(raw: &'a [u8], buf: &'a mut [u8; MAX_HOST]) -> &'a [u8] {
    let host = if raw.first() == Some(&b'[') {
        match raw.iter().position(|&b| b == b']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.iter().rposition(|&b| b == b':') {
            Some(colon) => &raw[..colon],
            None => raw,
        }
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.len() > MAX_HOST {
        return b"";
    }
    if host.iter().any(u8::is_ascii_uppercase) {
        let out = &mut buf[..host.len()];
        out.copy_from_slice(host);
        out.make_ascii_lowercase();
        out
    } else {
        host
    }
}

mod actions;
mod conditions;
mod explain;

use conditions::{split_target, Cond, ParamCond};

pub use actions::HeaderOps;
pub(crate) use actions::{replace_prefix, PathRewrite, RouteAnswer};
#[cfg(test)]
mod tests;
