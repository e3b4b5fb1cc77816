//! One request in flight on an endpoint, counted from the pick until its response ends.

use super::Upstream;
use crate::upstream::cluster_state::Admission;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Holds one in-flight request on an endpoint (and its place in the cluster's circuit breaker, if
/// any); dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Upstream>, Option<Admission>);

impl InFlight {
    /// Keeps the request's circuit-breaker place until the request ends.
    pub(crate) fn holding(mut self, admission: Option<Admission>) -> InFlight {
        self.1 = admission;
        self
    }

    /// The endpoint the request went to.
    pub(crate) fn upstream(&self) -> &Arc<Upstream> {
        &self.0
    }

    /// Takes the circuit-breaker place out, to hand it to the request's next try.
    pub(crate) fn take_admission(&mut self) -> Option<Admission> {
        self.1.take()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Upstream {
    /// Marks a request as started; the guard ends it when dropped.
    pub(crate) fn start_request(self: &Arc<Self>) -> InFlight {
        self.stats.in_flight.fetch_add(1, Relaxed);
        self.stats.requests.fetch_add(1, Relaxed);
        InFlight(self.clone(), None)
    }
}
