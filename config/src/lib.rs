//! edgeplane's declarative model.
//!
//! A config is parsed in two stages, as in sozu and vector: serde first reads the text (TOML for files,
//! JSON for the bus) into the permissive structs of [`raw`], then [`validate`] checks the whole document
//! at once and returns either the validated [`model`] types, whose fields cannot hold a wrong value, or
//! every error found, each with its path (`clusters.api.endpoints[2].address: ...`).
//!
//! The model has two halves. [`model::Node`] is local to one process (its id, listeners, limits) and
//! only changes with a restart; [`model::Routing`] (routes and clusters) is the dynamic document that
//! hot reload and config pushes over the bus replace whole. Its [`ContentHash`] identifies a version.
//!
//! This crate knows nothing of hyper or NATS.

pub mod diff;
pub mod duration;
mod error;
mod hash;
pub mod model;
pub mod raw;
mod shape;
mod to_document;
mod validate;

pub use error::{ConfigError, FieldError};
pub use hash::ContentHash;
pub use model::{Config, Routing};
pub use validate::{compile_regex, validate, validate_document, REGEX_SIZE_LIMIT};

use std::path::Path;

/// The shipped default config: a node on 127.0.0.1:8080 balancing over two local upstreams.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Parses text in the model's shape; serde errors carry the format, line and column.
fn parse<T: serde::de::DeserializeOwned>(
    text: &str,
    json: bool,
    node_allowed: bool,
) -> Result<T, ConfigError> {
    let syntax = |format, message: String| ConfigError::Syntax { format, message };
    let parsed = if json {
        serde_json::from_str(text).map_err(|e| syntax("JSON", e.to_string()))
    } else {
        toml::from_str(text).map_err(|e| syntax("TOML", e.to_string()))
    };
    // The parser stops at the first error: read each element on its own to find them all. A
    // `[node]` section is a shape error of a pushed document, which the whole-text error says.
    parsed.map_err(|first| match shape::errors(text, json, node_allowed) {
        Some(all) if all.len() > 1 => ConfigError::Invalid(all),
        _ => first,
    })
}

/// Text whose first non-blank character is `{` is JSON; anything else is TOML.
fn looks_like_json(text: &str) -> bool {
    text.trim_start().starts_with('{')
}

/// Parses and validates a complete node config (node settings and routing) written in TOML.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    validate(parse(text, false, true)?)
}

/// Parses and validates a complete node config written in JSON (the same model as TOML).
pub fn from_json(text: &str) -> Result<Config, ConfigError> {
    validate(parse(text, true, true)?)
}

/// Parses and validates a pushed routing document (routes and clusters, no `[node]`), written in JSON
/// (when its first non-blank character is `{`) or TOML. This is what nodes accept from the bus.
pub fn document_from_text(text: &str) -> Result<Routing, ConfigError> {
    validate_document(parse(text, looks_like_json(text), false)?)
}

/// The routing part of any config text (a full node config or a document; `[node]` is dropped) as
/// the canonical JSON document to push, with its validated routing.
pub fn document_of_file_text(text: &str) -> Result<(String, Routing), ConfigError> {
    let raw: raw::RawConfig = parse(text, looks_like_json(text), true)?;
    let doc = raw::RawDocument {
        routes: raw.routes,
        clusters: raw.clusters,
        certificates: raw.certificates,
    };
    // Serializing plain structs and a BTreeMap cannot fail.
    let json = serde_json::to_string_pretty(&doc).unwrap_or_default();
    Ok((json, validate_document(doc)?))
}

/// Replaces (or adds) cluster `name` in `document` with the cluster of that name in `source` (any
/// config text), returning the new document as canonical JSON. Only the one cluster changes.
pub fn replace_cluster(document: &str, name: &str, source: &str) -> Result<String, ConfigError> {
    let mut doc: raw::RawConfig = parse(document, looks_like_json(document), true)?;
    let mut src: raw::RawConfig = parse(source, looks_like_json(source), true)?;
    let cluster = src.clusters.remove(name).ok_or_else(|| {
        ConfigError::Invalid(vec![FieldError {
            path: format!("clusters.{name}"),
            message: "not defined in the given file".into(),
        }])
    })?;
    doc.clusters.insert(name.to_string(), cluster);
    let out = raw::RawDocument {
        routes: doc.routes,
        clusters: doc.clusters,
        certificates: doc.certificates,
    };
    // Serializing plain structs and a BTreeMap cannot fail.
    Ok(serde_json::to_string_pretty(&out).unwrap_or_default())
}

/// Reads a config file; `.json` files are parsed as JSON, everything else as TOML.
pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        from_json(&text)
    } else {
        from_toml(&text)
    }
}

/// The shipped default config, parsed and validated.
pub fn default_config() -> Result<Config, ConfigError> {
    from_toml(DEFAULT_TOML)
}
