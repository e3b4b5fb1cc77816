//! Coalescing membership changes into rebuilds: a rebuild waits for a short quiet period after the
//! latest change, but never longer than a cap after the first one, so a burst of joins costs one
//! rebuild and a steady trickle still lands within the cap.

use std::time::Duration;
use tokio::time::Instant;

/// Quiet period after the latest change.
pub const QUIET: Duration = Duration::from_millis(20);
/// Longest wait after the first pending change.
pub const CAP: Duration = Duration::from_millis(250);

/// Pending changes and when to rebuild for them.
#[derive(Debug, Clone, Copy)]
pub struct Debounce {
    quiet: Duration,
    cap: Duration,
    /// First and latest pending change.
    pending: Option<(Instant, Instant)>,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce::new(QUIET, CAP)
    }
}

impl Debounce {
    /// A debouncer with these periods.
    pub fn new(quiet: Duration, cap: Duration) -> Self {
        Debounce {
            quiet,
            cap,
            pending: None,
        }
    }

    /// Records a change at `now`.
    pub fn touch(&mut self, now: Instant) {
        self.pending = Some(match self.pending {
            Some((first, _)) => (first, now),
            None => (now, now),
        });
    }

    /// When the pending changes should be rebuilt; `None` if nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending
            .map(|(first, last)| (last + self.quiet).min(first + self.cap))
    }

    /// Whether a rebuild is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }

    /// Forgets the pending changes (a rebuild took them in).
    pub fn clear(&mut self) {
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_waits_for_quiet_but_never_past_the_cap() {
        let mut d = Debounce::new(Duration::from_millis(20), Duration::from_millis(100));
        let t0 = Instant::now();
        assert_eq!(d.deadline(), None);
        d.touch(t0);
        assert_eq!(d.deadline(), Some(t0 + Duration::from_millis(20)));
        // A change every 10 ms keeps extending the quiet period, up to the cap.
        for i in 1..=20 {
            tokio::time::advance(Duration::from_millis(10)).await;
            let now = Instant::now();
            if d.due(now) {
                assert_eq!(now - t0, Duration::from_millis(100), "capped at {i}");
                return;
            }
            d.touch(now);
        }
        panic!("never due");
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets() {
        let mut d = Debounce::default();
        d.touch(Instant::now());
        tokio::time::advance(QUIET).await;
        assert!(d.due(Instant::now()));
        d.clear();
        assert!(!d.due(Instant::now()));
    }
}
