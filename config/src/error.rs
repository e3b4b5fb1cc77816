//! Errors of parsing and validation.

use std::fmt;

/// One validation error: where it is in the document and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending value, e.g. `clusters.api.endpoints[2].address`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config could not be loaded. A config that fails is never partly applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file's path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML/JSON or does not have the model's shape (unknown field, wrong type).
    #[error("invalid {format}: {message}")]
    Syntax {
        /// `TOML` or `JSON`.
        format: &'static str,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The document parsed but breaks rules of the model; every error found is listed.
    #[error("{} error(s):\n{}", .0.len(), join_lines(.0))]
    Invalid(Vec<FieldError>),
}

impl ConfigError {
    /// Every error as one line each (`path: message`), for logs, acks and the `check` command.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

fn join_lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}
