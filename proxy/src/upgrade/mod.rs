//! Zero-downtime binary upgrade: a running node hands its listening sockets to a new process, as
//! HAProxy's `expose-fd listeners` and Pingora's graceful upgrade do.
//!
//! A node with `node.upgrade_socket` offers its sockets on that Unix socket ([`Offer`]). A new process
//! started with `edgeplane run --upgrade` connects to it ([`take_over`]) and the two speak
//! newline-delimited JSON over that one connection:
//!
//! 1. new → old: `{"take":"listeners","pid":…}`;
//! 2. old → new: `{"listeners":[address…],"endpoints":{cluster: count…}}`, the listening sockets
//!    attached in that order (`SCM_RIGHTS`): the same sockets, not copies, so connections waiting in
//!    their accept queues are not lost and no connection is ever refused;
//! 3. the new process builds its tables on the sockets it was given (binding any new address), joins
//!    the fleet, waits until its clusters have as many endpoints as the old one reported (heartbeats
//!    take a moment to arrive), starts accepting, then sends `{"ready":true}`;
//! 4. old → new: `{"draining":true,"grace_ms":…}`; the old process stops accepting, leaves the fleet,
//!    lets its requests and tunnels finish within `shutdown_grace`, and exits. The new one then takes
//!    the upgrade socket's path over for the next upgrade.
//!
//! If the new process fails before step 3, the old one never stopped and goes on serving.

mod fds;
mod offer;
mod take;

pub use offer::{Offer, OfferError};
pub use take::{take_over, warm_up, Inherited, Predecessor, UpgradeError};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Longest line either side sends or accepts.
const MAX_LINE: usize = 64 * 1024;

/// Most sockets one node hands over (listeners and the admin listener).
const MAX_SOCKETS: usize = 64;

/// Step 1: the new process asks for the listeners.
#[derive(Debug, Serialize, Deserialize)]
struct Take {
    take: String,
    pid: u32,
}

/// Step 2: the sockets' configured addresses, in the order of the attached descriptors, and the
/// endpoints each cluster has in the old process.
#[derive(Debug, Serialize, Deserialize)]
struct Listeners {
    listeners: Vec<SocketAddr>,
    endpoints: BTreeMap<String, usize>,
}

/// Step 3: the new process serves.
#[derive(Debug, Serialize, Deserialize)]
struct Ready {
    ready: bool,
}

/// Step 4: the old process has stopped accepting and drains.
#[derive(Debug, Serialize, Deserialize)]
struct Draining {
    draining: bool,
    grace_ms: u64,
}
