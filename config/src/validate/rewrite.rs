//! Validation of what a route changes on the way (the path's prefix upstream, the header operations
//! on the request and the response) and of what it answers itself (a redirect, a fixed response).

use super::{is_token_byte, Validator};
use crate::model::defaults::route as d;
use crate::model::{HeaderOps, PathRewrite, Redirect, RedirectPath, RouteAnswer};
use crate::raw::{RawDirect, RawHeaderOps, RawRedirect, RawRewrite, RawRoute};

/// Headers no route may set, add or remove: hop-by-hop ones (the proxy owns each hop's) and the
/// message's framing (the proxy frames what it sends).
const FRAMING_AND_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "proxy-authenticate",
];

/// Which side of the exchange a set of operations is for.
#[derive(Clone, Copy)]
pub(super) enum Side {
    Request,
    Response,
}

impl Validator {
    /// How a route's requests' path changes upstream: its prefix replaced, or a regular expression's
    /// matches replaced.
    pub(super) fn path_rewrite(
        &mut self,
        path: &str,
        raw: Option<&RawRewrite>,
    ) -> Option<PathRewrite> {
        let raw = raw?;
        match (&raw.path_prefix, &raw.regex, &raw.replacement) {
            (Some(_), Some(_), _) => {
                self.error(
                    format!("{path}.rewrite"),
                    "set at most one of path_prefix, regex",
                );
                None
            }
            (Some(prefix), None, _) => {
                let at = format!("{path}.rewrite.path_prefix");
                self.rewritten_path(&at, prefix);
                Some(PathRewrite::Prefix(prefix.clone()))
            }
            (None, Some(pattern), replacement) => {
                let at = format!("{path}.rewrite.regex");
                if let Err(e) = compile_regex(pattern) {
                    self.error(at, e);
                }
                let Some(replacement) = replacement else {
                    self.error(format!("{path}.rewrite.replacement"), "required with regex");
                    return None;
                };
                Some(PathRewrite::Regex {
                    pattern: pattern.clone(),
                    replacement: replacement.clone(),
                })
            }
            (None, None, Some(_)) => {
                self.error(format!("{path}.rewrite.replacement"), "only with regex");
                None
            }
            (None, None, None) => None,
        }
    }

    fn rewritten_path(&mut self, at: &str, prefix: &str) {
        if !prefix.starts_with('/') {
            self.error(at, format!("must start with '/': {prefix:?}"));
        } else if prefix
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
        {
            self.error(
                at,
                format!("must not hold spaces, controls, '?' or '#': {prefix:?}"),
            );
        }
    }

    /// A route's header operations on one side (`path`: e.g. `routes[0].request_headers`).
    pub(super) fn header_ops(
        &mut self,
        path: &str,
        raw: Option<&RawHeaderOps>,
        side: Side,
    ) -> HeaderOps {
        let Some(raw) = raw else {
            return HeaderOps::default();
        };
        let mut ops = HeaderOps::default();
        for (j, name) in raw.remove.iter().enumerate() {
            if let Some(name) = self.op_name(&format!("{path}.remove[{j}]"), name, side) {
                ops.remove.push(name);
            }
        }
        for (key, list, out) in [
            ("set", &raw.set, &mut ops.set),
            ("add", &raw.add, &mut ops.add),
        ] {
            for (name, value) in list {
                let at = format!("{path}.{key}.{name}");
                let name = self.op_name(&at, name, side);
                if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
                    self.error(at, "header value holds control characters");
                } else if let Some(name) = name {
                    out.push((name, value.clone()));
                }
            }
        }
        ops
    }

    /// A header name an operation may touch, lower case.
    fn op_name(&mut self, path: &str, name: &str, side: Side) -> Option<String> {
        let lower = name.trim().to_ascii_lowercase();
        if lower.is_empty() || !lower.bytes().all(is_token_byte) {
            self.error(path, format!("invalid header name {name:?}"));
            return None;
        }
        if FRAMING_AND_HOP.contains(&lower.as_str()) {
            self.error(
                path,
                format!("{lower} is hop-by-hop or framing: the proxy sets it"),
            );
            return None;
        }
        if matches!(side, Side::Request) && lower == "host" {
            self.error(path, "host: use the cluster's host_rewrite");
            return None;
        }
        Some(lower)
    }
}

impl Validator {
    /// A route's own answer (`redirect` or `direct`), if it has one; `path` is the route's.
    pub(super) fn route_answer(&mut self, path: &str, raw: &RawRoute) -> Option<RouteAnswer> {
        match (&raw.redirect, &raw.direct) {
            (Some(_), Some(_)) => {
                self.error(path, "set at most one of redirect, direct");
                None
            }
            (Some(r), None) => Some(RouteAnswer::Redirect(self.redirect(path, r))),
            (None, Some(d)) => Some(self.direct(path, d)),
            (None, None) => None,
        }
    }

    fn redirect(&mut self, path: &str, raw: &RawRedirect) -> Redirect {
        let at = |key: &str| format!("{path}.redirect.{key}");
        let scheme = raw.scheme.as_ref().map(|s| s.trim().to_ascii_lowercase());
        if let Some(s) = &scheme {
            if s != "http" && s != "https" {
                self.error(at("scheme"), format!("expected http or https, not {s:?}"));
            }
        }
        if let Some(h) = &raw.host {
            let bad = h.is_empty()
                || h.bytes()
                    .any(|b| b <= b' ' || b == 0x7f || b"/?#@\\".contains(&b));
            if bad {
                self.error(at("host"), format!("not a host[:port]: {h:?}"));
            }
        }
        let path_part = match (&raw.path, &raw.path_prefix) {
            (Some(_), Some(_)) => {
                self.error(
                    format!("{path}.redirect"),
                    "set at most one of path, path_prefix",
                );
                RedirectPath::Same
            }
            (Some(p), None) => {
                self.redirect_path(&at("path"), p);
                RedirectPath::Replace(p.clone())
            }
            (None, Some(p)) => {
                self.redirect_path(&at("path_prefix"), p);
                RedirectPath::Prefix(p.clone())
            }
            (None, None) => RedirectPath::Same,
        };
        let status = raw.status.unwrap_or(i64::from(d::REDIRECT_STATUS));
        if ![301, 302, 303, 307, 308].contains(&status) {
            self.error(
                at("status"),
                format!("{status} is not 301, 302, 303, 307 or 308"),
            );
        }
        Redirect {
            scheme,
            host: raw.host.clone(),
            path: path_part,
            strip_query: raw.strip_query.unwrap_or(d::REDIRECT_STRIP_QUERY),
            status: u16::try_from(status).unwrap_or(d::REDIRECT_STATUS),
        }
    }

    fn redirect_path(&mut self, at: &str, p: &str) {
        if !p.starts_with('/') || p.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'#') {
            self.error(
                at,
                format!("must start with '/' and hold no spaces, controls or '#': {p:?}"),
            );
        }
    }

    fn direct(&mut self, path: &str, raw: &RawDirect) -> RouteAnswer {
        let status = raw.status.unwrap_or(i64::from(d::DIRECT_STATUS));
        if !(200..=599).contains(&status) {
            self.error(
                format!("{path}.direct.status"),
                format!("{status} is out of range 200..=599"),
            );
        }
        let content_type = raw
            .content_type
            .clone()
            .unwrap_or_else(|| d::DIRECT_CONTENT_TYPE.to_string());
        if content_type
            .bytes()
            .any(|b| (b < b' ' && b != b'\t') || b == 0x7f)
        {
            self.error(
                format!("{path}.direct.content_type"),
                "header value holds control characters",
            );
        }
        RouteAnswer::Direct {
            status: u16::try_from(status).unwrap_or(d::DIRECT_STATUS),
            body: raw.body.clone().unwrap_or_default(),
            content_type,
        }
    }
}

/// Longest compiled form a route's regular expression may take (a pushed routing must not make a node
/// spend much memory or time compiling it).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A route's regular expression as every node compiles it: linear-time matching, bounded size.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}
