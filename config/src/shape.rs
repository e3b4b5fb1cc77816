//! Every shape error of a config text, not just the first: when the text does not deserialize as a
//! whole (a wrong type, an unknown field), each section, route, cluster and certificate is read on
//! its own, so that one bad field does not hide the others. A text that is not even valid TOML or
//! JSON has only the parser's one error to give.

use crate::error::FieldError;
use crate::raw::{RawCertificate, RawCluster, RawNode, RawRoute};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The sections a config (or, without `node`, a document) may have.
const SECTIONS: [&str; 4] = ["node", "routes", "clusters", "certificates"];

/// The shape errors of `text` (`json`: JSON, else TOML), each with its path, for a text that failed
/// to deserialize; `node` says whether a `[node]` section is allowed. `None` if the text does not
/// parse at all, or if no element fails on its own.
pub fn errors(text: &str, json: bool, node: bool) -> Option<Vec<FieldError>> {
    let value: Value = if json {
        serde_json::from_str(text).ok()?
    } else {
        serde_json::to_value(toml::from_str::<toml::Table>(text).ok()?).ok()?
    };
    let format = if json { "JSON" } else { "TOML" };
    let mut out = Vec::new();
    let mut fail = |path: String, message: String| {
        out.push(FieldError {
            path,
            message: format!("invalid {format}: {message}"),
        })
    };
    let Value::Object(top) = value else {
        fail("(document)".into(), "not a table".into());
        return Some(out);
    };
    for (key, v) in top {
        match key.as_str() {
            "node" if node => check::<RawNode>(v, "node".into(), &mut fail),
            "routes" => match v {
                Value::Array(routes) => {
                    for (i, r) in routes.into_iter().enumerate() {
                        check::<RawRoute>(r, format!("routes[{i}]"), &mut fail);
                    }
                }
                _ => fail("routes".into(), "expected an array of tables".into()),
            },
            "clusters" => match v {
                Value::Object(clusters) => {
                    for (name, c) in clusters {
                        check::<RawCluster>(c, format!("clusters.{name}"), &mut fail);
                    }
                }
                _ => fail("clusters".into(), "expected a table of clusters".into()),
            },
            "certificates" => match v {
                Value::Array(certs) => {
                    for (i, c) in certs.into_iter().enumerate() {
                        check::<RawCertificate>(c, format!("certificates[{i}]"), &mut fail);
                    }
                }
                _ => fail("certificates".into(), "expected an array of tables".into()),
            },
            other => {
                let known: Vec<_> = SECTIONS.iter().filter(|s| node || **s != "node").collect();
                fail(
                    other.to_string(),
                    format!("unknown section, expected one of {known:?}"),
                );
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

fn check<T: DeserializeOwned>(v: Value, path: String, fail: &mut impl FnMut(String, String)) {
    if let Err(e) = serde_json::from_value::<T>(v) {
        fail(path, e.to_string());
    }
}
