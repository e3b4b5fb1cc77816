//! What the controller writes into an endpoint's live state (health, drain, reported load), through
//! the `LiveEndpoint` trait it reaches the tables by.

use super::{Upstream, DRAINING};
use std::sync::atomic::Ordering::Relaxed;

impl edgeplane_controller::LiveEndpoint for Upstream {
    fn set_health(&self, health: u8) {
        let before = self.live.health.swap(health.min(100), Relaxed);
        if before == 0 && health > 0 {
            self.start_warming();
        } else if before > 0 && health == 0 {
            // Down: its idle connections are not to be picked when it comes back.
            self.pool.clear();
        }
    }

    fn set_draining(&self, draining: bool) {
        if draining {
            self.live.flags.fetch_or(DRAINING, Relaxed);
        } else {
            self.live.flags.fetch_and(!DRAINING, Relaxed);
        }
    }

    fn set_reported(&self, in_flight: u32, cpu: f32, latency_ms: f32) {
        let l = &self.live;
        l.reported_in_flight.store(in_flight, Relaxed);
        l.reported_cpu_permille
            .store((cpu.clamp(0.0, 1.0) * 1000.0) as u32, Relaxed);
        l.reported_latency_micros
            .store((f64::from(latency_ms.max(0.0)) * 1000.0) as u64, Relaxed);
    }

    fn in_flight(&self) -> u32 {
        Upstream::in_flight(self)
    }
}
