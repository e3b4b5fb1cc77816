//! A route's conditions on values: present, equal, or matching a regular expression; and how query
//! parameters and cookies are read off the request for them, without allocating unless a parameter
//! is percent-encoded.

use edgeplane_config::model;
use http::{header, HeaderMap};

/// A condition on a header's, query parameter's or cookie's value.
#[derive(Debug)]
pub(super) enum Cond<V> {
    /// The name is there, with any value.
    Present,
    /// Some value equals this.
    Exact(V),
    /// Some value matches this expression.
    Regex(regex::Regex),
}

impl<V> Cond<V> {
    /// Compiles a validated condition; `exact` turns its value into `V`.
    pub(super) fn compile(
        m: &model::HeaderMatch,
        exact: impl Fn(&str) -> Result<V, String>,
    ) -> Result<Cond<V>, String> {
        Ok(match (&m.value, &m.regex) {
            (_, Some(re)) => Cond::Regex(edgeplane_config::compile_regex(re)?),
            (Some(v), None) => Cond::Exact(exact(v)?),
            (None, None) => Cond::Present,
        })
    }
}

impl Cond<Box<str>> {
    /// Whether `value` satisfies the condition.
    fn holds(&self, value: &str) -> bool {
        match self {
            Cond::Present => true,
            Cond::Exact(v) => &**v == value,
            Cond::Regex(re) => re.is_match(value),
        }
    }
}

/// A condition on a query parameter or a cookie: its name and what its value must be.
pub(super) type ParamCond = (Box<str>, Cond<Box<str>>);

/// A request target's path and query.
pub(super) fn split_target(target: &str) -> (&str, Option<&str>) {
    // By bytes: `?` is ASCII, so the split is on a character boundary.
    match target.bytes().position(|b| b == b'?') {
        Some(at) => (&target[..at], Some(&target[at + 1..])),
        None => (target, None),
    }
}

/// Whether every query condition holds for some parameter of `query` (names and values
/// percent-decoded, `+` as a space).
pub(super) fn query_holds(conds: &[ParamCond], query: Option<&str>) -> bool {
    conds.iter().all(|(name, cond)| {
        let Some(query) = query else {
            return false;
        };
        form_urlencoded::parse(query.as_bytes()).any(|(k, v)| k == **name && cond.holds(&v))
    })
}

/// Whether every cookie condition holds for some cookie of the request's `Cookie` headers.
pub(super) fn cookies_hold(conds: &[ParamCond], headers: &HeaderMap) -> bool {
    conds.iter().all(|(name, cond)| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(k, v)| k == &**name && cond.holds(v.trim_matches('"')))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn cond(value: Option<&str>, regex: Option<&str>) -> Cond<Box<str>> {
        let m = model::HeaderMatch {
            name: String::new(),
            value: value.map(Into::into),
            regex: regex.map(Into::into),
        };
        Cond::compile(&m, |v| Ok(v.into())).unwrap()
    }

    #[test]
    fn query_parameters_are_decoded_and_matched() {
        let conds = [
            ("beta".into(), cond(None, None)),
            ("v".into(), cond(Some("2 x"), None)),
        ];
        assert!(query_holds(&conds, Some("a=1&beta&v=2%20x")));
        assert!(query_holds(&conds, Some("v=2+x&beta=")));
        assert!(!query_holds(&conds, Some("v=2+x")), "beta missing");
        assert!(!query_holds(&conds, None));
        assert!(query_holds(&[], None), "no condition: holds");
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let conds = [("canary".into(), cond(None, Some("^(1|yes)$")))];
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("session=abc; theme=dark"),
        );
        assert!(!cookies_hold(&conds, &h));
        h.append(header::COOKIE, HeaderValue::from_static("canary=yes"));
        assert!(cookies_hold(&conds, &h));
        let mut other = HeaderMap::new();
        other.insert(header::COOKIE, HeaderValue::from_static("canary=no; x=1"));
        assert!(!cookies_hold(&conds, &other));
    }
}
