//! Who this node is, for acknowledgements and status replies.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A node's identity for the bus.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Node id.
    pub node: String,
    /// Changes at every process start.
    pub boot_id: String,
    /// Zone.
    pub zone: Option<String>,
    /// When the process started.
    pub started: Instant,
}

impl Identity {
    /// A new identity for `node`, with a boot id from the start time and the process id.
    pub fn new(node: &str, zone: Option<String>) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Identity {
            node: node.to_string(),
            boot_id: format!("{:x}-{:x}", nanos, std::process::id()),
            zone,
            started: Instant::now(),
        }
    }
}
