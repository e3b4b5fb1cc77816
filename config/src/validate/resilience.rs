//! Validation of a cluster's resilience settings: retries, circuit-breaker limits, affinity.

use super::{http_token, Validator};
use crate::model::defaults::cluster::{affinity, circuit_breaker, retry};
use crate::model::{Affinity, AffinityBy, CircuitBreaker, Retry, RetryOn};
use crate::raw::{RawAffinity, RawCircuitBreaker, RawRetry};

impl Validator {
    pub(super) fn retry(&mut self, path: &str, raw: Option<&RawRetry>) -> Retry {
        let Some(raw) = raw else {
            return Retry::DEFAULT;
        };
        let mut on = RetryOn::default();
        match &raw.on {
            None => on = retry::ON,
            Some(list) => {
                for (i, name) in list.iter().enumerate() {
                    match RetryOn::NAMES.iter().find(|(n, _)| n == name) {
                        Some((_, c)) => on.0 |= c.0,
                        None => {
                            let known: Vec<_> = RetryOn::NAMES.iter().map(|(n, _)| *n).collect();
                            self.error(
                                format!("{path}.on[{i}]"),
                                format!("unknown condition {name:?} (one of {})", known.join(", ")),
                            );
                        }
                    }
                }
            }
        }
        let backoff_base = self.duration(
            &format!("{path}.backoff_base"),
            raw.backoff_base.as_deref(),
            retry::BACKOFF_BASE,
        );
        let backoff_max = self.duration(
            &format!("{path}.backoff_max"),
            raw.backoff_max.as_deref(),
            retry::BACKOFF_MAX.max(backoff_base),
        );
        if backoff_max < backoff_base {
            self.error(
                format!("{path}.backoff_max"),
                format!("{backoff_max:?} is shorter than backoff_base {backoff_base:?}"),
            );
        }
        Retry {
            attempts: self.int(
                &format!("{path}.attempts"),
                raw.attempts,
                retry::ATTEMPTS as i64,
                0,
                10,
            ) as u32,
            on,
            backoff_base,
            backoff_max,
            budget_percent: self.int(
                &format!("{path}.budget_percent"),
                raw.budget_percent,
                retry::BUDGET_PERCENT as i64,
                0,
                100,
            ) as u8,
            min_concurrent: self.int(
                &format!("{path}.min_concurrent"),
                raw.min_concurrent,
                retry::MIN_CONCURRENT as i64,
                0,
                100_000,
            ) as u32,
            buffer_body: self.int(
                &format!("{path}.buffer_body"),
                raw.buffer_body,
                retry::BUFFER_BODY as i64,
                0,
                16 * 1024 * 1024,
            ),
        }
    }

    pub(super) fn circuit_breaker(
        &mut self,
        path: &str,
        raw: Option<&RawCircuitBreaker>,
    ) -> CircuitBreaker {
        let Some(raw) = raw else {
            return CircuitBreaker {
                max_pending: circuit_breaker::MAX_PENDING,
                ..CircuitBreaker::default()
            };
        };
        let mut limit = |field: &str, value: Option<i64>| {
            value.map(|_| {
                self.int(
                    &format!("{path}.{field}"),
                    value,
                    circuit_breaker::LIMIT_IF_INVALID as i64,
                    1,
                    10_000_000,
                ) as u32
            })
        };
        CircuitBreaker {
            max_requests: limit("max_requests", raw.max_requests),
            max_connections: limit("max_connections", raw.max_connections),
            max_retries: limit("max_retries", raw.max_retries),
            max_pending: self.int(
                &format!("{path}.max_pending"),
                raw.max_pending,
                circuit_breaker::MAX_PENDING as i64,
                0,
                10_000_000,
            ) as u32,
        }
    }

    pub(super) fn affinity(&mut self, path: &str, raw: &RawAffinity) -> Affinity {
        let by = match (&raw.cookie, &raw.header) {
            (Some(c), None) => {
                if !http_token(c) {
                    self.error(
                        format!("{path}.cookie"),
                        format!("invalid cookie name {c:?}"),
                    );
                }
                AffinityBy::Cookie(c.clone())
            }
            (None, Some(h)) => {
                if !http_token(h) {
                    self.error(
                        format!("{path}.header"),
                        format!("invalid header name {h:?}"),
                    );
                }
                AffinityBy::Header(h.to_ascii_lowercase())
            }
            _ => {
                self.error(path, "set exactly one of cookie, header");
                AffinityBy::Cookie(String::new())
            }
        };
        Affinity {
            by,
            ttl: self.duration(&format!("{path}.ttl"), raw.ttl.as_deref(), affinity::TTL),
        }
    }
}
