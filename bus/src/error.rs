//! Errors of the bus crate.

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Connection options are invalid (e.g. a credentials file that cannot be read).
    #[error("invalid NATS options: {0}")]
    Options(String),
    /// Connecting to NATS failed.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// A JetStream operation failed.
    #[error("JetStream: {0}")]
    JetStream(String),
    /// A subject token holds a character NATS subjects cannot carry.
    #[error("invalid subject token {0:?}: use letters, digits, '-' or '_'")]
    Token(String),
}
