//! An endpoint as a snapshot holds it: this version's settings (weight, zone, priority) beside the
//! long-lived [`Upstream`] whose live state every snapshot shares. Balancers pick among these.

use crate::upstream::Upstream;
use std::sync::Arc;

/// An endpoint in a snapshot: this version's settings plus the long-lived [`Upstream`].
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Live state, shared with the previous and next snapshots.
    pub upstream: Arc<Upstream>,
    /// Relative weight.
    pub weight: u32,
    /// Zone, if known.
    pub(crate) zone: Option<Arc<str>>,
    /// Priority (0 = primary).
    pub(crate) priority: u8,
}
