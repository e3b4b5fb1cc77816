//! The generic cell rate algorithm (GCRA), the arithmetic of one key's bucket.
//!
//! A key's whole state is one instant, its *theoretical arrival time* (TAT): when its bucket will be
//! full again. Each admitted request pushes the TAT one `interval` (`per / rate`) into the future; a
//! request is refused when that would put the TAT more than `tolerance` (`burst × interval`) ahead of
//! now. A TAT in the past is the same as a full bucket, which is what makes forgetting such a key
//! harmless (see [`super::table`]). Times are nanoseconds since the limiter's start.

/// A limit's rate and burst, as times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The time one request costs, in nanoseconds (`per / rate`).
    pub(crate) interval: u64,
    /// How far ahead of now the TAT may be: `burst × interval`.
    pub(crate) tolerance: u64,
}

impl Policy {
    /// The policy of `rate` requests per `per_nanos` with bursts of `burst`.
    pub(crate) fn new(interval: u64, burst: u64) -> Policy {
        Policy {
            interval: interval.max(1),
            tolerance: interval.max(1).saturating_mul(burst.max(1)),
        }
    }

    /// This policy for a node holding `share` (0 to 1] of a fleet limit: the interval grows by
    /// `1 / share`, the burst shrinks to `burst × share` but never below one request.
    pub(crate) fn scaled(self, interval: u64) -> Policy {
        Policy {
            interval,
            tolerance: self.tolerance.max(interval),
        }
    }
}

/// What the bucket says of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Whether the request is within the limit.
    pub(crate) allowed: bool,
    /// Requests the key may still send at once after this one.
    pub(crate) remaining: u64,
    /// Nanoseconds until a request would be admitted again (0 when allowed).
    pub(crate) retry_after: u64,
    /// Nanoseconds until the bucket is full again.
    pub(crate) reset: u64,
}

/// Decides a request arriving at `now` on a key whose TAT is `tat`; returns the decision and the new
/// TAT (unchanged when refused).
#[inline]
pub(crate) fn decide(policy: Policy, tat: u64, now: u64) -> (Decision, u64) {
    let base = tat.max(now);
    let next = base.saturating_add(policy.interval);
    let ahead = next - now;
    if ahead > policy.tolerance {
        let waited = base - now;
        let decision = Decision {
            allowed: false,
            remaining: 0,
            retry_after: ahead - policy.tolerance,
            reset: waited,
        };
        return (decision, tat);
    }
    let decision = Decision {
        allowed: true,
        remaining: (policy.tolerance - ahead) / policy.interval,
        retry_after: 0,
        reset: ahead,
    };
    (decision, next)
}

/// Requests the key could send at once at `now` without being refused (for the admin API).
pub(crate) fn available(policy: Policy, tat: u64, now: u64) -> u64 {
    let debt = tat.saturating_sub(now);
    policy.tolerance.saturating_sub(debt) / policy.interval
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_fresh_key_gets_its_burst_then_the_rate() {
        // 10 per second, burst 3.
        let p = Policy::new(100 * MS, 3);
        let mut tat = 0;
        let now = 5_000 * MS;
        for left in [2, 1, 0] {
            let (d, t) = decide(p, tat, now);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
            tat = t;
        }
        let (d, t) = decide(p, tat, now);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 100 * MS);
        assert_eq!(t, tat, "a refusal costs nothing");
        // One interval later, exactly one more.
        let (d, t) = decide(p, tat, now + 100 * MS);
        assert!(d.allowed);
        assert!(!decide(p, t, now + 100 * MS).0.allowed);
        // A long quiet spell refills the whole burst, never more.
        assert_eq!(available(p, t, now + 60_000 * MS), 3);
    }

    #[test]
    fn the_long_run_rate_is_the_rate() {
        // 1,000 per second, burst 10, offered 5,000 per second for 10 s.
        let p = Policy::new(MS, 10);
        let (mut tat, mut admitted) = (0, 0);
        for i in 0..50_000u64 {
            let (d, t) = decide(p, tat, i * 200_000);
            tat = t;
            admitted += u64::from(d.allowed);
        }
        assert!((10_000..=10_011).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_smaller_share_slows_the_key_but_keeps_one_request_of_burst() {
        let p = Policy::new(MS, 100).scaled(4 * MS);
        assert_eq!(p.tolerance, 100 * MS);
        let tiny = Policy::new(MS, 1).scaled(50 * MS);
        assert_eq!(tiny.tolerance, 50 * MS);
        assert!(decide(tiny, 0, 1).0.allowed);
    }
}
