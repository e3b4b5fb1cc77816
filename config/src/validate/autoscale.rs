//! Validation of `[clusters.<name>.autoscale]`.

use super::Validator;
use crate::model::defaults::autoscale as d;
use crate::model::{Autoscale, AutoscaleTarget};
use crate::raw::RawAutoscale;

impl Validator {
    pub(super) fn autoscale(
        &mut self,
        path: &str,
        raw: Option<&RawAutoscale>,
    ) -> Option<Autoscale> {
        let raw = raw?;
        let path = format!("{path}.autoscale");
        let min = self.int(&format!("{path}.min"), raw.min, d::MIN, 1, d::LIMIT) as u32;
        let max = match raw.max {
            None => {
                self.error(
                    format!("{path}.max"),
                    "missing: the most instances to recommend",
                );
                min
            }
            Some(m) => {
                self.int(&format!("{path}.max"), Some(m), i64::from(min), 1, d::LIMIT) as u32
            }
        };
        if raw.max.is_some() && max < min {
            self.error(format!("{path}.max"), format!("{max} is below min ({min})"));
        }
        let target = match raw.target.as_deref() {
            None | Some("cpu") => AutoscaleTarget::Cpu,
            Some("in_flight") => AutoscaleTarget::InFlight,
            Some("latency") => AutoscaleTarget::Latency,
            Some(other) => {
                self.error(
                    format!("{path}.target"),
                    format!("unknown target {other:?}; expected cpu, in_flight or latency"),
                );
                AutoscaleTarget::Cpu
            }
        };
        let (default_value, ceiling) = match target {
            AutoscaleTarget::Cpu => (d::CPU, 1.0),
            AutoscaleTarget::InFlight => (d::IN_FLIGHT, 1e6),
            AutoscaleTarget::Latency => (d::LATENCY_MS, 3.6e6),
        };
        let number = |v: &mut Self, key: &str, value: Option<f64>, default: f64| -> f64 {
            let x = value.unwrap_or(default);
            if !x.is_finite() || x <= 0.0 || x > ceiling {
                v.error(
                    format!("{path}.{key}"),
                    format!(
                        "{x} is out of range: above 0, at most {ceiling} for target {}",
                        target.name()
                    ),
                );
                return default;
            }
            x
        };
        let target_value = number(self, "target_value", raw.target_value, default_value);
        let up = number(
            self,
            "scale_up_above",
            raw.scale_up_above,
            (target_value * d::UP_FACTOR).min(ceiling),
        );
        let down = number(
            self,
            "scale_down_below",
            raw.scale_down_below,
            target_value * d::DOWN_FACTOR,
        );
        if !(down < target_value && target_value < up) {
            self.error(
                format!("{path}.target_value"),
                format!(
                    "expected scale_down_below ({down}) < target_value ({target_value}) < scale_up_above ({up})"
                ),
            );
        }
        let cooldown_up = self.duration(
            &format!("{path}.cooldown_up"),
            raw.cooldown_up.as_deref(),
            d::COOLDOWN_UP,
        );
        let cooldown_down = self.duration(
            &format!("{path}.cooldown_down"),
            raw.cooldown_down.as_deref(),
            d::COOLDOWN_DOWN,
        );
        let window = self.duration(&format!("{path}.window"), raw.window.as_deref(), d::WINDOW);
        let max_step = self.int(
            &format!("{path}.max_step"),
            raw.max_step,
            d::MAX_STEP,
            1,
            d::LIMIT,
        ) as u32;
        Some(Autoscale {
            min,
            max,
            target,
            target_value,
            scale_up_above: up,
            scale_down_below: down,
            cooldown_up,
            cooldown_down,
            max_step,
            predictive: raw.predictive.unwrap_or(false),
            window,
        })
    }
}
