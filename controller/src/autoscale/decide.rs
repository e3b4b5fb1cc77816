//! The instance count a cluster should have, from its signal: pure, one step per sample.
//!
//! Like Kubernetes' HPA, the count aims at `current × signal / target_value`, but only when the
//! signal leaves the band between `scale_down_below` and `scale_up_above` (hysteresis), never by more
//! than `max_step` at once, never sooner than `cooldown_up` / `cooldown_down` after the last change,
//! and always within `min..=max`. In predictive mode, scale-ups follow the larger of the signal and
//! its linear trend (least squares over `window`) projected `cooldown_up` ahead, so that a rising
//! load gets instances before it crosses the band; scale-downs follow the signal as it is.

use edgeplane_config::model::{Autoscale, AutoscaleTarget};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the fleet knows of a cluster's instances at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Signals {
    /// Instances serving (usable, not draining).
    pub instances: u32,
    /// Mean CPU utilisation they report, 0 to 1.
    pub cpu: Option<f64>,
    /// Requests in flight per instance.
    pub in_flight: Option<f64>,
    /// Mean latency, milliseconds.
    pub latency_ms: Option<f64>,
}

impl Signals {
    /// The value of the signal `target` follows.
    pub fn value(&self, target: AutoscaleTarget) -> Option<f64> {
        match target {
            AutoscaleTarget::Cpu => self.cpu,
            AutoscaleTarget::InFlight => self.in_flight,
            AutoscaleTarget::Latency => self.latency_ms,
        }
        .filter(|v| v.is_finite() && *v >= 0.0)
    }
}

/// One step's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    /// Instances serving now.
    pub current: u32,
    /// Instances recommended.
    pub desired: u32,
    /// Why, in a few words.
    pub reason: String,
    /// The signal's value.
    pub value: Option<f64>,
    /// Its projection (predictive mode).
    pub projected: Option<f64>,
}

/// A cluster's recommender: the last change and the signal's recent history.
#[derive(Debug, Default)]
pub struct Recommender {
    desired: Option<u32>,
    changed_at: Option<Instant>,
    history: VecDeque<(Instant, f64)>,
}

impl Recommender {
    /// The recommendation for `signals` at `now` under `cfg`.
    pub fn step(&mut self, cfg: &Autoscale, signals: &Signals, now: Instant) -> Recommendation {
        let current = signals.instances;
        let value = signals.value(cfg.target);
        if let Some(v) = value {
            self.history.push_back((now, v));
        }
        while self
            .history
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > cfg.window)
        {
            self.history.pop_front();
        }
        let projected = if cfg.predictive {
            trend(&self.history, now, cfg.cooldown_up)
        } else {
            None
        };
        let since = |d: Duration| {
            self.changed_at
                .is_none_or(|t| now.saturating_duration_since(t) >= d)
        };
        let previous = self.desired.unwrap_or(current);
        let (desired, reason) = if current < cfg.min {
            (
                cfg.min,
                format!("{current} instances, below min {}", cfg.min),
            )
        } else if current > cfg.max {
            (
                cfg.max,
                format!("{current} instances, above max {}", cfg.max),
            )
        } else if let Some(v) = value {
            let rising = projected.map_or(v, |p| p.max(v));
            let aim = |x: f64| (f64::from(current.max(1)) * x / cfg.target_value).ceil();
            if rising > cfg.scale_up_above {
                if !since(cfg.cooldown_up) {
                    (previous, "scale-up waits for cooldown_up".to_string())
                } else {
                    let want = aim(rising).min(f64::from(cfg.max)) as u32;
                    let step = want.saturating_sub(current).clamp(1, cfg.max_step);
                    let d = current.saturating_add(step).min(cfg.max);
                    let why = match projected {
                        Some(p) if p > v => format!(
                            "{} projected at {p:.2} (now {v:.2}), above {}",
                            cfg.target.name(),
                            cfg.scale_up_above
                        ),
                        _ => format!(
                            "{} at {v:.2}, above {}",
                            cfg.target.name(),
                            cfg.scale_up_above
                        ),
                    };
                    (d, why)
                }
            } else if v < cfg.scale_down_below {
                if !since(cfg.cooldown_down) {
                    (previous, "scale-down waits for cooldown_down".to_string())
                } else {
                    let want = (aim(v) as u32).max(cfg.min);
                    let step = current.saturating_sub(want).min(cfg.max_step);
                    let d = current.saturating_sub(step).max(cfg.min);
                    (
                        d,
                        format!(
                            "{} at {v:.2}, below {}",
                            cfg.target.name(),
                            cfg.scale_down_below
                        ),
                    )
                }
            } else {
                (
                    current,
                    format!("{} at {v:.2}, within the band", cfg.target.name()),
                )
            }
        } else {
            (previous, format!("no {} reported", cfg.target.name()))
        };
        if self.desired != Some(desired) {
            if self.desired.is_some() {
                self.changed_at = Some(now);
            }
            self.desired = Some(desired);
        }
        Recommendation {
            current,
            desired,
            reason,
            value,
            projected,
        }
    }
}

/// The least-squares line through `history`, evaluated `ahead` after `now`; `None` with fewer than
/// three points or no spread in time.
fn trend(history: &VecDeque<(Instant, f64)>, now: Instant, ahead: Duration) -> Option<f64> {
    if history.len() < 3 {
        return None;
    }
    let first = history.front()?.0;
    let n = history.len() as f64;
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for (t, y) in history {
        let x = t.saturating_duration_since(first).as_secs_f64();
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
    }
    let denom = n * sxx - sx * sx;
    if denom.abs() < 1e-9 {
        return None;
    }
    let slope = (n * sxy - sx * sy) / denom;
    let intercept = (sy - slope * sx) / n;
    let at = now.saturating_duration_since(first).as_secs_f64() + ahead.as_secs_f64();
    Some((intercept + slope * at).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Autoscale {
        Autoscale {
            min: 2,
            max: 10,
            target: AutoscaleTarget::InFlight,
            target_value: 10.0,
            scale_up_above: 12.0,
            scale_down_below: 7.0,
            cooldown_up: Duration::from_secs(30),
            cooldown_down: Duration::from_secs(300),
            max_step: 3,
            predictive: false,
            window: Duration::from_secs(120),
        }
    }

    fn load(instances: u32, in_flight: f64) -> Signals {
        Signals {
            instances,
            in_flight: Some(in_flight),
            ..Signals::default()
        }
    }

    #[test]
    fn the_count_follows_the_signal_with_hysteresis_steps_and_cooldowns() {
        let c = cfg();
        let mut r = Recommender::default();
        let t0 = Instant::now();
        // Within the band: stay.
        assert_eq!(r.step(&c, &load(4, 11.0), t0).desired, 4);
        // 4 × 30 / 10 = 12 wanted, but 3 at most per step.
        assert_eq!(
            r.step(&c, &load(4, 30.0), t0 + Duration::from_secs(1))
                .desired,
            7
        );
        // Still hot 10 s later: the cooldown holds the recommendation.
        let held = r.step(&c, &load(4, 30.0), t0 + Duration::from_secs(11));
        assert_eq!(held.desired, 7);
        assert!(held.reason.contains("cooldown_up"), "{}", held.reason);
        // After it: 7 × 20 / 10 = 14, capped at max 10.
        assert_eq!(
            r.step(&c, &load(7, 20.0), t0 + Duration::from_secs(40))
                .desired,
            10
        );
        // Cold right after: scale-down waits 5 minutes.
        assert_eq!(
            r.step(&c, &load(10, 1.0), t0 + Duration::from_secs(60))
                .desired,
            10
        );
        // Then down by 3 at most, never under min.
        let t = t0 + Duration::from_secs(400);
        assert_eq!(r.step(&c, &load(10, 1.0), t).desired, 7);
        assert_eq!(
            r.step(&c, &load(3, 0.0), t + Duration::from_secs(301))
                .desired,
            2
        );
    }

    #[test]
    fn bounds_win_and_no_signal_holds() {
        let c = cfg();
        let mut r = Recommender::default();
        let t0 = Instant::now();
        assert_eq!(r.step(&c, &load(1, 5.0), t0).desired, 2);
        assert_eq!(r.step(&c, &load(15, 5.0), t0).desired, 10);
        let quiet = Signals {
            instances: 5,
            ..Signals::default()
        };
        let rec = r.step(&c, &quiet, t0);
        assert_eq!(rec.desired, 10, "no signal: the last recommendation stands");
        assert!(rec.reason.starts_with("no in_flight"));
    }

    #[test]
    fn predictive_mode_scales_ahead_of_a_rising_load() {
        let mut c = cfg();
        c.predictive = true;
        let mut plain = Recommender::default();
        let mut ahead = Recommender::default();
        let t0 = Instant::now();
        let plain_cfg = cfg();
        // In flight rising 0.1 per second from 8: inside the band for now.
        let mut last = (0, 0);
        for s in 0..30u64 {
            let v = 8.0 + 0.1 * s as f64;
            let t = t0 + Duration::from_secs(s);
            last = (
                plain.step(&plain_cfg, &load(4, v), t).desired,
                ahead.step(&c, &load(4, v), t).desired,
            );
        }
        // At 10.9 the plain recommender stays; projected 30 s ahead (13.9) the other adds.
        assert_eq!(last.0, 4);
        assert!(last.1 > 4, "{last:?}");
    }
}
