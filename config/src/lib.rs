//! edgeplane's declarative model.
//!
//! A config is parsed in two stages, as in sozu and vector: serde first reads the text (TOML for files,
//! JSON for the bus) into the permissive structs of [`raw`], then [`validate`] checks the whole document
//! at once and returns either the validated [`model`] types, whose fields cannot hold a wrong value, or
//! every error found, each with its path (`clusters.api.endpoints[2].address: ...`).
//!
//! The model has two halves. [`model::Node`] is local to one process (its id, listeners, limits) and
//! only changes with a restart; [`model::Routing`] (routes and clusters) is the dynamic document that
//! hot reload, and later the bus, replace whole. Its [`ContentHash`] identifies a version.
//!
//! This crate knows nothing of hyper or NATS.

pub mod duration;
mod error;
mod hash;
pub mod model;
pub mod raw;
mod validate;

pub use error::{ConfigError, FieldError};
pub use hash::ContentHash;
pub use model::{Config, Routing};
pub use validate::{validate, validate_document};

use std::path::Path;

/// The shipped default config: a node on 127.0.0.1:8080 balancing over two local upstreams.
pub const DEFAULT_TOML: &str = include_str!("../default.toml");

/// Parses and validates a complete node config (node settings and routing) written in TOML.
pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        format: "TOML",
        message: e.to_string(),
    })?;
    validate(raw)
}

/// Parses and validates a complete node config written in JSON (the same model as TOML).
pub fn from_json(text: &str) -> Result<Config, ConfigError> {
    let raw: raw::RawConfig = serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
        format: "JSON",
        message: e.to_string(),
    })?;
    validate(raw)
}

/// Parses and validates a pushed routing document (routes and clusters, no `[node]`), written in JSON
/// (when its first non-blank character is `{`) or TOML. This is what `edgeplane push` publishes.
pub fn document_from_text(text: &str) -> Result<Routing, ConfigError> {
    let raw: raw::RawDocument = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })?
    } else {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            format: "TOML",
            message: e.to_string(),
        })?
    };
    validate_document(raw)
}

/// The routing part of a full config file as a document to push: the same routes and clusters,
/// without `[node]`, as canonical JSON.
pub fn document_of_file_text(text: &str) -> Result<String, ConfigError> {
    let raw: raw::RawConfig = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ConfigError::Syntax {
            format: "JSON",
            message: e.to_string(),
        })?
    } else {
        toml::from_str(text).map_err(|e| ConfigError::Syntax {
            format: "TOML",
            message: e.to_string(),
        })?
    };
    let doc = raw::RawDocument {
        routes: raw.routes,
        clusters: raw.clusters,
    };
    validate_document(doc.clone())?;
    Ok(serde_json::to_string_pretty(&doc).unwrap_or_default())
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
