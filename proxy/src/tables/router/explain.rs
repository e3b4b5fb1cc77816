//! Why a request takes the route it takes: the same search as [`Router::find`], recording every route
//! tried and why it did not match. For the admin API's `explain`; never on the request path.

use super::{Route, Router};
use http::{HeaderMap, Method};

/// One route tried.
#[derive(Debug)]
pub(crate) struct Considered<'a> {
    /// The route.
    pub(crate) route: &'a Route,
    /// The host group it was tried in (`exact host "a.example"`, `wildcard "*.example"`, `any host`).
    pub(crate) group: String,
    /// Why it did not match; `None` for the route that matched.
    pub(crate) mismatch: Option<&'static str>,
}

/// The outcome of a search.
#[derive(Debug)]
pub struct Explanation<'a> {
    /// The route taken, if any.
    pub(crate) route: Option<&'a Route>,
    /// Every route tried, in order, the taken one last.
    pub(crate) considered: Vec<Considered<'a>>,
}

impl Router {
    /// [`Router::find`] with its reasons.
    pub fn explain<'a>(
        &'a self,
        host: &[u8],
        path: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Explanation<'a> {
        let mut groups: Vec<(String, &[usize])> = Vec::new();
        if let Some(list) = self.exact.get(host) {
            let host = String::from_utf8_lossy(host);
            groups.push((format!("exact host {host:?}"), list));
        }
        for (suffix, list) in &self.suffixes {
            if host.len() > suffix.len() && host.ends_with(suffix) {
                let suffix = String::from_utf8_lossy(suffix);
                groups.push((format!("wildcard \"*{suffix}\""), list));
            }
        }
        groups.push(("any host".to_string(), &self.any));
        let mut considered = Vec::new();
        for (group, list) in groups {
            for route in list.iter().filter_map(|&i| self.routes.get(i)) {
                let mismatch = route.mismatch(path, method, headers);
                considered.push(Considered {
                    route,
                    group: group.clone(),
                    mismatch,
                });
                if mismatch.is_none() {
                    return Explanation {
                        route: Some(route),
                        considered,
                    };
                }
            }
        }
        Explanation {
            route: None,
            considered,
        }
    }
}
