//! A rollout's plan: its waves, bake time, deadlines and gate thresholds, from command-line flags or a
//! small TOML file, validated whole (every error with its path) before anything is written.

use edgeplane_bus::rollout::{GatesRecord, PlanRecord};
use serde::Deserialize;
use std::time::Duration;

/// One wave: which nodes it adds to those serving the candidate.
#[derive(Debug, Clone, PartialEq)]
pub enum WaveSpec {
    /// `N`: this many nodes in all (earlier waves' included), the first by position.
    Count(usize),
    /// `P%`: this share of the online fleet in all, rounded up, the first by position. `100%` also
    /// takes every node that joins later.
    Percent(f64),
    /// `zone:NAME`: every node of the zone.
    Zone(String),
    /// `node:A+B`: these nodes.
    Nodes(Vec<String>),
}

impl WaveSpec {
    /// Parses one wave as written.
    pub fn parse(s: &str) -> Result<WaveSpec, String> {
        let s = s.trim();
        if let Some(zone) = s.strip_prefix("zone:") {
            return token(zone, "zone").map(|z| WaveSpec::Zone(z.to_string()));
        }
        if let Some(list) = s.strip_prefix("node:") {
            let nodes = list
                .split('+')
                .map(|n| token(n, "node id").map(str::to_string))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(WaveSpec::Nodes(nodes));
        }
        if let Some(p) = s.strip_suffix('%') {
            return match p.parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(WaveSpec::Percent(p)),
                _ => Err(format!(
                    "{s:?}: a share must be more than 0% and at most 100%"
                )),
            };
        }
        match s.parse::<usize>() {
            Ok(n) if n > 0 => Ok(WaveSpec::Count(n)),
            _ => Err(format!(
                "{s:?}: expected a node count (3), a share (10%), zone:NAME or node:ID+ID"
            )),
        }
    }

    /// Whether this wave takes the whole fleet.
    pub fn is_all(&self) -> bool {
        matches!(self, WaveSpec::Percent(p) if *p >= 100.0)
    }
}

fn token<'a>(s: &'a str, what: &str) -> Result<&'a str, String> {
    if edgeplane_bus::valid_token(s) {
        Ok(s)
    } else {
        Err(format!(
            "{s:?}: invalid {what}: use 1 to 64 letters, digits, '-' or '_'"
        ))
    }
}

/// The plan as given: every field optional (a file, then flags over it; defaults for the rest).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// Waves as written.
    pub waves: Option<Vec<String>>,
    /// Bake time of each wave (`60s`).
    pub bake: Option<String>,
    /// How long a wave's nodes have to apply the candidate.
    pub wave_timeout: Option<String>,
    /// Fewest requests the candidate's nodes must answer during a bake for the gates to judge.
    pub min_requests: Option<u64>,
    /// Nodes revert on their own this long after the driver was last heard of (`0s`: never).
    pub abandon_after: Option<String>,
    /// Gate thresholds.
    #[serde(default)]
    pub gates: GatesInput,
}

/// Gate thresholds as given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatesInput {
    /// See [`GatesRecord::max_5xx_increase_pct`].
    pub max_5xx_increase_pct: Option<f64>,
    /// See [`GatesRecord::max_5xx_factor`].
    pub max_5xx_factor: Option<f64>,
    /// See [`GatesRecord::max_proxy_error_increase_pct`].
    pub max_proxy_error_increase_pct: Option<f64>,
    /// See [`GatesRecord::max_proxy_error_factor`].
    pub max_proxy_error_factor: Option<f64>,
    /// See [`GatesRecord::max_p99_factor`].
    pub max_p99_factor: Option<f64>,
    /// See [`GatesRecord::p99_slack_ms`].
    pub p99_slack_ms: Option<f64>,
}

/// Defaults.
pub const DEFAULT_WAVES: [&str; 4] = ["1", "10%", "50%", "100%"];
/// Default bake time of a wave.
pub const DEFAULT_BAKE: Duration = Duration::from_secs(60);
/// Default time a wave's nodes have to apply the candidate.
pub const DEFAULT_WAVE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default fewest requests for the gates to judge a bake.
pub const DEFAULT_MIN_REQUESTS: u64 = 100;
/// Default time after which nodes give up on a silent driver.
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(30 * 60);

/// A validated plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The waves, the last one `100%`.
    pub waves: Vec<WaveSpec>,
    /// The waves as written (with `100%` appended when the plan did not end with it).
    pub specs: Vec<String>,
    /// Bake time of each wave.
    pub bake: Duration,
    /// How long a wave's nodes have to apply the candidate.
    pub wave_timeout: Duration,
    /// Fewest requests for the gates to judge a bake.
    pub min_requests: u64,
    /// Nodes revert on their own this long after the driver was last heard of; zero: never.
    pub abandon_after: Duration,
    /// Gate thresholds.
    pub gates: GatesRecord,
}

impl PlanInput {
    /// Reads a plan file (TOML).
    pub fn from_toml(text: &str) -> Result<PlanInput, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![format!("plan: {}", e.message())])
    }

    /// Lays `over` (flags) over this (a file): a field given in both takes `over`'s.
    pub fn merged(self, over: PlanInput) -> PlanInput {
        let g = self.gates;
        let o = over.gates;
        PlanInput {
            waves: over.waves.or(self.waves),
            bake: over.bake.or(self.bake),
            wave_timeout: over.wave_timeout.or(self.wave_timeout),
            min_requests: over.min_requests.or(self.min_requests),
            abandon_after: over.abandon_after.or(self.abandon_after),
            gates: GatesInput {
                max_5xx_increase_pct: o.max_5xx_increase_pct.or(g.max_5xx_increase_pct),
                max_5xx_factor: o.max_5xx_factor.or(g.max_5xx_factor),
                max_proxy_error_increase_pct: o
                    .max_proxy_error_increase_pct
                    .or(g.max_proxy_error_increase_pct),
                max_proxy_error_factor: o.max_proxy_error_factor.or(g.max_proxy_error_factor),
                max_p99_factor: o.max_p99_factor.or(g.max_p99_factor),
                p99_slack_ms: o.p99_slack_ms.or(g.p99_slack_ms),
            },
        }
    }

    /// Validates the plan whole: every error, with its path.
    pub fn validate(self) -> Result<Plan, Vec<String>> {
        let mut errors = Vec::new();
        let mut specs: Vec<String> = self
            .waves
            .unwrap_or_else(|| DEFAULT_WAVES.iter().map(|s| s.to_string()).collect());
        let mut waves = Vec::new();
        if specs.is_empty() {
            errors.push("waves: at least one wave".to_string());
        }
        for (i, s) in specs.iter().enumerate() {
            match WaveSpec::parse(s) {
                Ok(w) => waves.push(w),
                Err(e) => errors.push(format!("waves[{i}]: {e}")),
            }
        }
        let all_at = specs
            .iter()
            .position(|s| WaveSpec::parse(s).is_ok_and(|w| w.is_all()));
        if let Some(i) = all_at {
            if i + 1 != specs.len() {
                errors.push(format!(
                    "waves[{}]: no wave can follow 100% (every node is on the candidate)",
                    i + 1
                ));
            }
        }
        if !waves.last().is_some_and(WaveSpec::is_all) && errors.is_empty() {
            // A rollout ends with every node on the candidate.
            specs.push("100%".into());
            waves.push(WaveSpec::Percent(100.0));
        }
        let mut duration =
            |field: &str, v: Option<String>, default: Duration, zero_ok: bool| match v
                .map(|s| edgeplane_config::duration::parse(&s))
            {
                None => default,
                Some(Ok(d)) if zero_ok || !d.is_zero() => d,
                Some(Ok(_)) => {
                    errors.push(format!("{field}: must be more than zero"));
                    default
                }
                Some(Err(e)) => {
                    errors.push(format!("{field}: {e}"));
                    default
                }
            };
        let bake = duration("bake", self.bake, DEFAULT_BAKE, false);
        let wave_timeout = duration(
            "wave_timeout",
            self.wave_timeout,
            DEFAULT_WAVE_TIMEOUT,
            false,
        );
        let abandon_after = duration(
            "abandon_after",
            self.abandon_after,
            DEFAULT_ABANDON_AFTER,
            true,
        );
        if !abandon_after.is_zero() && abandon_after < Duration::from_secs(60) {
            errors.push(
                "abandon_after: at least 60s (or 0s: never), so that a driver's short pause \
                 does not revert the fleet"
                    .into(),
            );
        }
        let d = GatesRecord::default();
        let g = self.gates;
        let mut number = |field: &str, v: Option<f64>, default: f64, min: f64| match v {
            None => default,
            Some(x) if x.is_finite() && x >= min => x,
            Some(x) => {
                errors.push(format!(
                    "gates.{field}: {x} must be a number of at least {min}"
                ));
                default
            }
        };
        let gates = GatesRecord {
            max_5xx_increase_pct: number(
                "max_5xx_increase_pct",
                g.max_5xx_increase_pct,
                d.max_5xx_increase_pct,
                0.0,
            ),
            max_5xx_factor: number("max_5xx_factor", g.max_5xx_factor, d.max_5xx_factor, 1.0),
            max_proxy_error_increase_pct: number(
                "max_proxy_error_increase_pct",
                g.max_proxy_error_increase_pct,
                d.max_proxy_error_increase_pct,
                0.0,
            ),
            max_proxy_error_factor: number(
                "max_proxy_error_factor",
                g.max_proxy_error_factor,
                d.max_proxy_error_factor,
                1.0,
            ),
            max_p99_factor: number("max_p99_factor", g.max_p99_factor, d.max_p99_factor, 1.0),
            p99_slack_ms: number("p99_slack_ms", g.p99_slack_ms, d.p99_slack_ms, 0.0),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Plan {
            waves,
            specs,
            bake,
            wave_timeout,
            min_requests: self.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS),
            abandon_after,
            gates,
        })
    }
}

impl Plan {
    /// The plan as stored in the rollout record.
    pub fn record(&self) -> PlanRecord {
        PlanRecord {
            waves: self.specs.clone(),
            bake_ms: millis(self.bake),
            wave_timeout_ms: millis(self.wave_timeout),
            min_requests: self.min_requests,
            abandon_after_ms: millis(self.abandon_after),
            gates: self.gates,
        }
    }

    /// The plan of a stored record (a resumed rollout).
    pub fn of_record(r: &PlanRecord) -> Result<Plan, Vec<String>> {
        let mut errors = Vec::new();
        let waves = r
            .waves
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                WaveSpec::parse(s)
                    .map_err(|e| errors.push(format!("plan.waves[{i}]: {e}")))
                    .ok()
            })
            .collect();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Plan {
            waves,
            specs: r.waves.clone(),
            bake: Duration::from_millis(r.bake_ms),
            wave_timeout: Duration::from_millis(r.wave_timeout_ms),
            min_requests: r.min_requests,
            abandon_after: Duration::from_millis(r.abandon_after_ms),
            gates: r.gates,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waves(list: &[&str]) -> PlanInput {
        PlanInput {
            waves: Some(list.iter().map(|s| s.to_string()).collect()),
            ..PlanInput::default()
        }
    }

    #[test]
    fn parses_every_kind_of_wave() {
        assert_eq!(WaveSpec::parse("1"), Ok(WaveSpec::Count(1)));
        assert_eq!(WaveSpec::parse("12.5%"), Ok(WaveSpec::Percent(12.5)));
        assert_eq!(
            WaveSpec::parse("zone:eu-1"),
            Ok(WaveSpec::Zone("eu-1".into()))
        );
        assert_eq!(
            WaveSpec::parse("node:edge-1+edge-2"),
            Ok(WaveSpec::Nodes(vec!["edge-1".into(), "edge-2".into()]))
        );
        for bad in ["0", "0%", "101%", "-1", "x", "zone:", "node:a+", "node:a b"] {
            assert!(WaveSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_an_implied_last_wave() {
        let p = PlanInput::default().validate().unwrap();
        assert_eq!(p.specs, ["1", "10%", "50%", "100%"]);
        assert_eq!(
            (p.bake, p.min_requests),
            (DEFAULT_BAKE, DEFAULT_MIN_REQUESTS)
        );
        let p = waves(&["node:a", "25%"]).validate().unwrap();
        assert_eq!(p.specs, ["node:a", "25%", "100%"], "ends with every node");
    }

    #[test]
    fn every_error_with_its_path() {
        let input = PlanInput {
            waves: Some(vec!["1".into(), "x".into(), "100%".into(), "zone:a".into()]),
            bake: Some("soon".into()),
            wave_timeout: Some("0s".into()),
            abandon_after: Some("5s".into()),
            gates: GatesInput {
                max_5xx_factor: Some(0.5),
                p99_slack_ms: Some(f64::NAN),
                ..GatesInput::default()
            },
            ..PlanInput::default()
        };
        let errors = input.validate().unwrap_err();
        let paths: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "waves[1]",
                "waves[3]",
                "bake",
                "wave_timeout",
                "abandon_after",
                "gates.max_5xx_factor",
                "gates.p99_slack_ms"
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn a_file_with_flags_over_it() {
        let file = PlanInput::from_toml(
            "waves = [\"zone:eu\", \"100%\"]\nbake = \"5m\"\n[gates]\nmax_p99_factor = 2.0\n",
        )
        .unwrap();
        let flags = PlanInput {
            bake: Some("30s".into()),
            ..PlanInput::default()
        };
        let p = file.merged(flags).validate().unwrap();
        assert_eq!(p.specs, ["zone:eu", "100%"]);
        assert_eq!(p.bake, Duration::from_secs(30));
        assert_eq!(p.gates.max_p99_factor, 2.0);
        assert_eq!(Plan::of_record(&p.record()).unwrap(), p);
        assert!(PlanInput::from_toml("wave = 1").unwrap_err()[0].starts_with("plan:"));
    }
}
