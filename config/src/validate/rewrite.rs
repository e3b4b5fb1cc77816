//! Validation of what a route changes on the way: the path's prefix upstream and the header
//! operations on the request and the response.

use super::{is_token_byte, Validator};
use crate::model::HeaderOps;
use crate::raw::{RawHeaderOps, RawRewrite};

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
    /// The path prefix a route's requests get upstream in place of its `path_prefix`.
    pub(super) fn path_rewrite(&mut self, path: &str, raw: Option<&RawRewrite>) -> Option<String> {
        let prefix = raw?.path_prefix.clone()?;
        let path = format!("{path}.rewrite.path_prefix");
        if !prefix.starts_with('/') {
            self.error(path, format!("must start with '/': {prefix:?}"));
        } else if prefix
            .bytes()
            .any(|b| b <= b' ' || b == 0x7f || b == b'?' || b == b'#')
        {
            self.error(
                path,
                format!("must not hold spaces, controls, '?' or '#': {prefix:?}"),
            );
        }
        Some(prefix)
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
