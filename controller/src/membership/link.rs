//! The node's link to the bus, as membership sees it: while it is down, and for a grace period after
//! it comes back, heartbeat silence says nothing about the backends.

use std::time::Duration;
use tokio::time::Instant;

/// Why expiry and removal are suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frozen {
    /// The node is not connected to NATS.
    Disconnected,
    /// The node reconnected recently; publishers get this long to resume.
    Grace {
        /// When expiry resumes.
        until: Instant,
    },
}

impl Frozen {
    /// A short name for logs, metrics and the admin API.
    pub fn reason(&self) -> &'static str {
        match self {
            Frozen::Disconnected => "disconnected",
            Frozen::Grace { .. } => "reconnect_grace",
        }
    }
}

/// The link's state. A node starts up (nothing is tracked before the first heartbeat arrives).
#[derive(Debug, Default)]
pub(super) struct Link {
    down: bool,
    /// Seen up at least once: only a *re*connection has publishers to wait for, not the first
    /// connection (which may be noticed a tick after the first heartbeats arrived).
    was_up: bool,
    quiet_until: Option<Instant>,
}

impl Link {
    pub(super) fn set(&mut self, up: bool, now: Instant, grace: Duration) -> bool {
        let was_up = self.was_up;
        self.was_up |= up;
        if up != self.down {
            return false;
        }
        self.down = !up;
        if up && was_up {
            self.quiet_until = Some(now + grace);
        }
        true
    }

    pub(super) fn frozen(&self, now: Instant) -> Option<Frozen> {
        if self.down {
            return Some(Frozen::Disconnected);
        }
        self.quiet_until
            .filter(|until| now < *until)
            .map(|until| Frozen::Grace { until })
    }
}
