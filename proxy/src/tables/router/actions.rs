//! What a route changes on the way, compiled when the snapshot is built: header operations on the
//! request and the response, and the path prefix the upstream sees; and what a route answers itself
//! (a redirect, a fixed response). Applying operations allocates nothing but what a header map needs
//! for a new entry; a route without operations costs one branch.

use bytes::Bytes;
use edgeplane_config::model;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// How a route changes the path upstream, compiled.
#[derive(Debug)]
pub(crate) enum PathRewrite {
    /// The route's `path_prefix` replaced by this.
    Prefix(Box<str>),
    /// Every match of the expression replaced (`$1`, `${name}` for groups).
    Regex(regex::Regex, Box<str>),
}

impl PathRewrite {
    /// Compiles a validated rewrite (an error only for data validation would have refused).
    pub(crate) fn compile(rewrite: &model::PathRewrite) -> Result<PathRewrite, String> {
        Ok(match rewrite {
            model::PathRewrite::Prefix(p) => PathRewrite::Prefix(p.as_str().into()),
            model::PathRewrite::Regex {
                pattern,
                replacement,
            } => PathRewrite::Regex(
                edgeplane_config::compile_regex(pattern)?,
                replacement.as_str().into(),
            ),
        })
    }

    /// The origin-form target upstream for `path` and `query` on a route with `prefix`: always
    /// starting with `/`.
    pub(crate) fn apply(&self, path: &str, query: Option<&str>, prefix: &str) -> String {
        match self {
            PathRewrite::Prefix(to) => replace_prefix(path, query, prefix, to),
            PathRewrite::Regex(re, to) => {
                let new = re.replace_all(path, &**to);
                let slash = if new.starts_with('/') { "" } else { "/" };
                match query {
                    Some(q) => format!("{slash}{new}?{q}"),
                    None => format!("{slash}{new}"),
                }
            }
        }
    }
}

/// A route's own answer, compiled.
#[derive(Debug)]
pub(crate) enum RouteAnswer {
    /// A redirect to the request's URL with some parts replaced.
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: StatusCode,
        /// The scheme, else the request's.
        scheme: Option<Box<str>>,
        /// The host (and port), else the request's.
        host: Option<Box<str>>,
        /// How the path is made.
        path: model::RedirectPath,
        /// Whether the query is left out.
        strip_query: bool,
    },
    /// A fixed response.
    Direct {
        /// Its status.
        status: StatusCode,
        /// Its body.
        body: Bytes,
        /// Its `Content-Type`.
        content_type: HeaderValue,
    },
}

impl RouteAnswer {
    /// Compiles a validated answer (an error only for data validation would have refused).
    pub(crate) fn compile(answer: &model::RouteAnswer) -> Result<RouteAnswer, String> {
        let status = |s: u16| StatusCode::from_u16(s).map_err(|e| e.to_string());
        Ok(match answer {
            model::RouteAnswer::Redirect(r) => RouteAnswer::Redirect {
                status: status(r.status)?,
                scheme: r.scheme.as_deref().map(Into::into),
                host: r.host.as_deref().map(Into::into),
                path: r.path.clone(),
                strip_query: r.strip_query,
            },
            model::RouteAnswer::Direct {
                status: s,
                body,
                content_type,
            } => RouteAnswer::Direct {
                status: status(*s)?,
                body: Bytes::from(body.clone()),
                content_type: HeaderValue::from_str(content_type).map_err(|e| e.to_string())?,
            },
        })
    }
}

/// Header operations: remove, then set (replacing), then add (beside what is there).
#[derive(Debug, Default)]
pub struct HeaderOps {
    remove: Box<[HeaderName]>,
    set: Box<[(HeaderName, HeaderValue)]>,
    add: Box<[(HeaderName, HeaderValue)]>,
}

impl HeaderOps {
    /// Compiles validated operations (an error only for data validation would have refused).
    pub fn compile(ops: &model::HeaderOps) -> Result<HeaderOps, String> {
        let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).map_err(|e| e.to_string());
        let pair = |(n, v): &(String, String)| -> Result<_, String> {
            Ok((
                name(n)?,
                HeaderValue::from_str(v).map_err(|e| e.to_string())?,
            ))
        };
        Ok(HeaderOps {
            remove: ops
                .remove
                .iter()
                .map(|n| name(n))
                .collect::<Result<_, _>>()?,
            set: ops.set.iter().map(pair).collect::<Result<_, _>>()?,
            add: ops.add.iter().map(pair).collect::<Result<_, _>>()?,
        })
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies the operations to `headers`.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// `path` (which starts with `prefix`, the route's `path_prefix`) with `prefix` replaced by
/// `replacement`, and `query` kept; one slash where the two meet, and `/` rather than nothing.
pub(crate) fn replace_prefix(
    path: &str,
    query: Option<&str>,
    prefix: &str,
    replacement: &str,
) -> String {
    let rest = path.get(prefix.len()..).unwrap_or("");
    let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
    out.push_str(replacement);
    // `/api` → `/v2` on `/apix` keeps the segment as written: `/v2x`.
    match rest.strip_prefix('/') {
        Some(tail) if out.ends_with('/') => out.push_str(tail),
        _ => out.push_str(rest),
    }
    if out.is_empty() {
        out.push('/');
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_replaced_with_one_slash_where_they_meet() {
        let r = |path, prefix, to| replace_prefix(path, None, prefix, to);
        assert_eq!(r("/api/users", "/api", "/"), "/users");
        assert_eq!(r("/api", "/api", "/"), "/");
        assert_eq!(r("/api/", "/api/", "/"), "/");
        assert_eq!(r("/api/users", "/api/", "/"), "/users");
        assert_eq!(r("/api/users", "/api", "/v2"), "/v2/users");
        assert_eq!(r("/api/users", "/api/", "/v2/"), "/v2/users");
        assert_eq!(r("/apix", "/api", "/v2"), "/v2x");
        assert_eq!(r("/x", "/", "/base/"), "/base/x");
        assert_eq!(replace_prefix("/api/a", Some("q=1"), "/api", "/"), "/a?q=1");
    }

    #[test]
    fn regex_rewrites_replace_every_match_and_keep_the_query() {
        let rw = PathRewrite::compile(&model::PathRewrite::Regex {
            pattern: "^/u/(?P<id>[0-9]+)/(.*)$".into(),
            replacement: "/users/${id}/$2".into(),
        })
        .unwrap();
        assert_eq!(
            rw.apply("/u/42/posts", Some("a=1"), "/"),
            "/users/42/posts?a=1"
        );
        assert_eq!(rw.apply("/x", None, "/"), "/x", "no match: unchanged");
        let all = PathRewrite::compile(&model::PathRewrite::Regex {
            pattern: "-".into(),
            replacement: "_".into(),
        })
        .unwrap();
        assert_eq!(all.apply("/a-b-c", None, "/"), "/a_b_c");
        let strip = PathRewrite::compile(&model::PathRewrite::Regex {
            pattern: "^/api".into(),
            replacement: "".into(),
        })
        .unwrap();
        assert_eq!(strip.apply("/api", None, "/"), "/", "never an empty target");
    }

    #[test]
    fn operations_run_remove_set_add() {
        let ops = HeaderOps::compile(&model::HeaderOps {
            remove: vec!["x-internal".into()],
            set: vec![("x-env".into(), "prod".into())],
            add: vec![("x-tag".into(), "b".into())],
        })
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-internal", HeaderValue::from_static("secret"));
        h.append("x-env", HeaderValue::from_static("dev"));
        h.append("x-env", HeaderValue::from_static("test"));
        h.insert("x-tag", HeaderValue::from_static("a"));
        ops.apply(&mut h);
        assert!(h.get("x-internal").is_none());
        assert_eq!(h.get_all("x-env").iter().collect::<Vec<_>>(), ["prod"]);
        assert_eq!(h.get_all("x-tag").iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
