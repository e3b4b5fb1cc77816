//! What changes between two routing documents, as written: routes (by name), clusters (by name, their
//! settings field by field), endpoints (by cluster and address) and certificates. Used by
//! `edgeplane diff` before a push or a rollout.

use crate::raw::{RawConfig, RawDocument};
use crate::ConfigError;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The changes from an old document to a new one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Diff {
    /// Routes by name (`route<index>` when unnamed).
    pub routes: Section,
    /// Whether routes present in both come in another order (matching tries them in order).
    pub routes_reordered: bool,
    /// Clusters by name; `changed` lists their settings, endpoints aside.
    pub clusters: Section,
    /// Endpoints by cluster and address (those of added or removed clusters included).
    pub endpoints: Vec<EndpointChange>,
    /// Whether the certificates differ.
    pub certificates_changed: bool,
}

/// Items added, removed and changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Section {
    /// Names only in the new document.
    pub added: Vec<String>,
    /// Names only in the old one.
    pub removed: Vec<String>,
    /// Names in both whose fields differ.
    pub changed: Vec<Changed>,
}

/// One item whose fields differ.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    /// Its name (route, cluster) or address (endpoint).
    pub name: String,
    /// Each field that differs, as a dotted path (`retry.attempts`).
    pub fields: Vec<FieldChange>,
}

/// One field's old and new value (`null`: not written).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// Dotted path within the item.
    pub field: String,
    /// As written before.
    pub old: Value,
    /// As written now.
    pub new: Value,
}

/// An endpoint added, removed or changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointChange {
    /// Its cluster.
    pub cluster: String,
    /// Its address.
    pub address: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// For `changed`: the fields that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

impl Diff {
    /// Whether the documents are the same as written (order of clusters aside).
    pub fn is_empty(&self) -> bool {
        self == &Diff::default()
    }

    /// A readable report, one line per change.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let section = |out: &mut Vec<String>, what: &str, s: &Section| {
            for n in &s.added {
                out.push(format!("+ {what} {n}"));
            }
            for n in &s.removed {
                out.push(format!("- {what} {n}"));
            }
            for c in &s.changed {
                out.push(format!("~ {what} {}: {}", c.name, fields(&c.fields)));
            }
        };
        section(&mut out, "route", &self.routes);
        if self.routes_reordered {
            out.push("~ routes reordered".into());
        }
        section(&mut out, "cluster", &self.clusters);
        for e in &self.endpoints {
            let sign = match e.change {
                "added" => "+",
                "removed" => "-",
                _ => "~",
            };
            let detail = if e.fields.is_empty() {
                String::new()
            } else {
                format!(": {}", fields(&e.fields))
            };
            out.push(format!(
                "{sign} endpoint {} {}{detail}",
                e.cluster, e.address
            ));
        }
        if self.certificates_changed {
            out.push("~ certificates".into());
        }
        out
    }
}

fn fields(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|f| format!("{} {} -> {}", f.field, f.old, f.new))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Compares two routing documents (any config text; `[node]` is ignored).
pub fn diff(old: &str, new: &str) -> Result<Diff, ConfigError> {
    let old = document(old)?;
    let new = document(new)?;
    let mut d = Diff::default();

    let routes = |doc: &RawDocument| -> Vec<(String, Value)> {
        doc.routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let name = r.name.clone().unwrap_or_else(|| format!("route{i}"));
                (name, to_value(r))
            })
            .collect()
    };
    let (old_routes, new_routes) = (routes(&old), routes(&new));
    d.routes = compare(
        &old_routes.iter().cloned().collect(),
        &new_routes.iter().cloned().collect(),
    );
    let common = |list: &[(String, Value)], other: &[(String, Value)]| -> Vec<String> {
        list.iter()
            .filter(|(n, _)| other.iter().any(|(m, _)| m == n))
            .map(|(n, _)| n.clone())
            .collect()
    };
    d.routes_reordered = common(&old_routes, &new_routes) != common(&new_routes, &old_routes);

    let clusters = |doc: &RawDocument| -> BTreeMap<String, Value> {
        doc.clusters
            .iter()
            .map(|(name, c)| {
                let mut v = to_value(c);
                if let Value::Object(map) = &mut v {
                    map.remove("endpoints");
                }
                (name.clone(), v)
            })
            .collect()
    };
    d.clusters = compare(&clusters(&old), &clusters(&new));

    let endpoints = |doc: &RawDocument| -> BTreeMap<(String, String), Value> {
        doc.clusters
            .iter()
            .flat_map(|(name, c)| {
                c.endpoints
                    .iter()
                    .map(move |e| ((name.clone(), e.address.clone()), to_value(e)))
            })
            .collect()
    };
    let (old_eps, new_eps) = (endpoints(&old), endpoints(&new));
    for ((cluster, address), v) in &new_eps {
        let change = match old_eps.get(&(cluster.clone(), address.clone())) {
            None => Some(("added", Vec::new())),
            Some(o) if o != v => Some(("changed", field_changes(o, v))),
            Some(_) => None,
        };
        if let Some((change, fields)) = change {
            d.endpoints.push(EndpointChange {
                cluster: cluster.clone(),
                address: address.clone(),
                change,
                fields,
            });
        }
    }
    for (cluster, address) in old_eps.keys() {
        if !new_eps.contains_key(&(cluster.clone(), address.clone())) {
            d.endpoints.push(EndpointChange {
                cluster: cluster.clone(),
                address: address.clone(),
                change: "removed",
                fields: Vec::new(),
            });
        }
    }
    d.endpoints
        .sort_by(|a, b| (&a.cluster, &a.address).cmp(&(&b.cluster, &b.address)));
    d.certificates_changed = to_value(&old.certificates) != to_value(&new.certificates);
    Ok(d)
}

fn document(text: &str) -> Result<RawDocument, ConfigError> {
    let raw: RawConfig = crate::parse(text, crate::looks_like_json(text), true)?;
    Ok(RawDocument {
        routes: raw.routes,
        clusters: raw.clusters,
        certificates: raw.certificates,
    })
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Plain structs, maps and strings: serializing cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn compare(old: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Section {
    let mut s = Section::default();
    for (name, v) in new {
        match old.get(name) {
            None => s.added.push(name.clone()),
            Some(o) if o != v => s.changed.push(Changed {
                name: name.clone(),
                fields: field_changes(o, v),
            }),
            Some(_) => {}
        }
    }
    s.removed = old
        .keys()
        .filter(|n| !new.contains_key(*n))
        .cloned()
        .collect();
    s
}

/// Every leaf that differs between two objects, as dotted paths (arrays are leaves).
fn field_changes(old: &Value, new: &Value) -> Vec<FieldChange> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    flatten("", old, &mut a);
    flatten("", new, &mut b);
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (o, n) = (
                a.get(k).cloned().unwrap_or(Value::Null),
                b.get(k).cloned().unwrap_or(Value::Null),
            );
            (o != n).then(|| FieldChange {
                field: k.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"
[[routes]]
name = "api"
path_prefix = "/api"
cluster = "api"
[[routes]]
name = "web"
cluster = "web"
[clusters.api]
[[clusters.api.endpoints]]
address = "10.0.0.1:80"
[[clusters.api.endpoints]]
address = "10.0.0.2:80"
[clusters.web]
[[clusters.web.endpoints]]
address = "10.0.1.1:80"
"#;

    #[test]
    fn the_same_document_has_no_diff() {
        let d = diff(OLD, OLD).unwrap();
        assert!(d.is_empty() && d.lines().is_empty());
    }

    #[test]
    fn routes_clusters_and_endpoints_added_removed_changed() {
        let new = r#"
[[routes]]
name = "web"
cluster = "web"
[[routes]]
name = "api"
path_prefix = "/v2"
cluster = "api"
[[routes]]
name = "static"
cluster = "static"
[clusters.api]
balancing = "least_connections"
[[clusters.api.endpoints]]
address = "10.0.0.1:80"
weight = 5
[[clusters.api.endpoints]]
address = "10.0.0.3:80"
[clusters.static]
[[clusters.static.endpoints]]
address = "10.0.2.1:80"
"#;
        let d = diff(OLD, new).unwrap();
        assert_eq!(d.routes.added, ["static"]);
        assert!(d.routes.removed.is_empty());
        assert_eq!(d.routes.changed.len(), 1);
        assert_eq!(d.routes.changed[0].fields[0].field, "path_prefix");
        assert!(d.routes_reordered);
        assert_eq!(d.clusters.added, ["static"]);
        assert_eq!(d.clusters.removed, ["web"]);
        assert_eq!(d.clusters.changed[0].name, "api");
        assert_eq!(d.clusters.changed[0].fields[0].field, "balancing");
        let eps: Vec<(&str, &str)> = d
            .endpoints
            .iter()
            .map(|e| (e.address.as_str(), e.change))
            .collect();
        assert_eq!(
            eps,
            [
                ("10.0.0.1:80", "changed"),
                ("10.0.0.2:80", "removed"),
                ("10.0.0.3:80", "added"),
                ("10.0.2.1:80", "added"),
                ("10.0.1.1:80", "removed"),
            ]
        );
        let lines = d.lines();
        assert!(
            lines.contains(&"~ endpoint api 10.0.0.1:80: weight null -> 5".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"~ route api: path_prefix \"/api\" -> \"/v2\"".to_string()));
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["clusters"]["removed"][0], "web");
    }

    #[test]
    fn json_and_toml_of_the_same_document_do_not_differ() {
        let json = r#"{"routes":[{"name":"api","path_prefix":"/api","cluster":"api"},{"name":"web","cluster":"web"}],
            "clusters":{"api":{"endpoints":[{"address":"10.0.0.1:80"},{"address":"10.0.0.2:80"}]},
                        "web":{"endpoints":[{"address":"10.0.1.1:80"}]}}}"#;
        assert!(diff(OLD, json).unwrap().is_empty());
    }

    #[test]
    fn an_unparsable_document_is_an_error() {
        assert!(diff(OLD, "[[routes]\n").is_err());
    }
}
