//! The fields a limited response carries: `Retry-After` (RFC 9110) and `RateLimit-Policy` /
//! `RateLimit` of the IETF httpapi draft (draft-ietf-httpapi-ratelimit-headers-09):
//!
//! ```text
//! RateLimit-Policy: "per-ip";q=100;w=10     the limit's name, its burst, the seconds to refill it
//! RateLimit: "per-ip";r=0;t=4               requests left now, seconds until the bucket is full
//! ```

use super::gcra::{Decision, Policy};
use http::{HeaderMap, HeaderValue};

const NANOS: u64 = 1_000_000_000;

/// Whole seconds, rounded up (a client told 0 would try again at once).
fn seconds(nanos: u64) -> u64 {
    nanos.div_ceil(NANOS)
}

/// The `RateLimit-Policy` value of limit `name`: quota `burst`, window the time to refill it.
pub(crate) fn policy(name: &str, burst: u64, policy: Policy) -> HeaderValue {
    let window = seconds(policy.tolerance).max(1);
    HeaderValue::from_str(&format!("\"{name}\";q={burst};w={window}"))
        .unwrap_or(HeaderValue::from_static("\"limit\""))
}

fn state(name: &str, remaining: u64, reset: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{name}\";r={remaining};t={}", seconds(reset)))
        .unwrap_or(HeaderValue::from_static("\"limit\";r=0"))
}

/// Why a request was refused: the limit and the fields of the `429`.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The limit's name.
    pub(crate) limit: String,
    /// `Retry-After`, in seconds (at least 1).
    pub(crate) retry_after_secs: u64,
    policy: HeaderValue,
    state: HeaderValue,
}

impl Refusal {
    /// The refusal of limit `name` (whose policy field is `policy`) by `decision`.
    pub(crate) fn new(name: &str, policy: HeaderValue, decision: Decision) -> Refusal {
        Refusal {
            limit: name.to_string(),
            retry_after_secs: seconds(decision.retry_after).max(1),
            policy,
            state: state(name, 0, decision.reset),
        }
    }

    /// Adds the fields to a `429`'s headers.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        headers.insert(http::header::RETRY_AFTER, self.retry_after_secs.into());
        headers.insert("ratelimit-policy", self.policy.clone());
        headers.insert("ratelimit", self.state.clone());
    }
}

/// The fields of an admitted response: those of the limit with the fewest requests left.
#[derive(Debug)]
pub(crate) struct Granted {
    /// Requests left under the tightest limit.
    pub(crate) remaining: u64,
    policy: HeaderValue,
    state: HeaderValue,
}

impl Granted {
    /// Adds the fields to a response's headers.
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        headers.insert("ratelimit-policy", self.policy.clone());
        headers.insert("ratelimit", self.state.clone());
    }
}

/// Keeps in `granted` the fields of limit `name` if it leaves fewer requests than the one there.
pub(crate) fn grant(
    granted: &mut Option<Box<Granted>>,
    name: &str,
    policy: &HeaderValue,
    decision: Decision,
) {
    if granted
        .as_ref()
        .is_some_and(|g| g.remaining <= decision.remaining)
    {
        return;
    }
    *granted = Some(Box::new(Granted {
        remaining: decision.remaining,
        policy: policy.clone(),
        state: state(name, decision.remaining, decision.reset),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_the_draft() {
        // 100 per 10 s, burst 100: the quota refills in 10 s.
        let p = Policy::new(100_000_000, 100);
        assert_eq!(policy("per-ip", 100, p), "\"per-ip\";q=100;w=10");
        let refused = Refusal::new(
            "per-ip",
            policy("per-ip", 100, p),
            Decision {
                allowed: false,
                remaining: 0,
                retry_after: 1_500_000,
                reset: 9_999_000_000,
            },
        );
        let mut h = HeaderMap::new();
        refused.write(&mut h);
        assert_eq!(h["retry-after"], "1");
        assert_eq!(h["ratelimit"], "\"per-ip\";r=0;t=10");
        assert_eq!(h["ratelimit-policy"], "\"per-ip\";q=100;w=10");
    }
}
