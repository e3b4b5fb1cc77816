//! Gates: the candidate's nodes against the baseline's over the same bake window, from the traffic
//! counters in the nodes' status replies.

use edgeplane_bus::rollout::GatesRecord;
use edgeplane_bus::wire::{NodeStatus, Traffic, HEADER_BOUNDS_MS};
use std::collections::HashMap;

/// What a group of nodes answered during a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// Responses.
    pub answered: u64,
    /// 5xx responses.
    pub status_5xx: u64,
    /// Requests the proxy answered itself (no route, no endpoint, connect failed...).
    pub proxy_errors: u64,
    /// Time to response headers per bucket.
    pub headers_ms: Vec<u64>,
}

impl Window {
    fn add(&mut self, t: &Traffic) {
        self.answered += t.answered;
        self.status_5xx += t.status_5xx;
        self.proxy_errors += t.proxy_errors;
        if self.headers_ms.len() < t.headers_ms.len() {
            self.headers_ms.resize(t.headers_ms.len(), 0);
        }
        for (a, b) in self.headers_ms.iter_mut().zip(&t.headers_ms) {
            *a += b;
        }
    }

    /// 5xx share of the answers.
    pub fn ratio_5xx(&self) -> f64 {
        ratio(self.status_5xx, self.answered)
    }

    /// Proxy-error share of the answers.
    pub fn ratio_proxy(&self) -> f64 {
        ratio(self.proxy_errors, self.answered)
    }

    /// The 99th percentile of time to response headers (ms), interpolated within its bucket;
    /// `None` without answers.
    pub fn p99_ms(&self) -> Option<f64> {
        let total: u64 = self.headers_ms.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (total as f64 * 0.99).ceil();
        let mut seen = 0.0;
        for (i, &n) in self.headers_ms.iter().enumerate() {
            let next = seen + n as f64;
            if next >= rank && n > 0 {
                let low = if i == 0 { 0.0 } else { HEADER_BOUNDS_MS[i - 1] };
                let Some(&high) = HEADER_BOUNDS_MS.get(i) else {
                    // Slower than the last bound: report the bound.
                    return Some(low);
                };
                return Some(low + (high - low) * (rank - seen) / n as f64);
            }
            seen = next;
        }
        None
    }

    /// The figures, readable.
    pub fn describe(&self) -> String {
        format!(
            "{} requests, 5xx {:.2}%, proxy errors {:.2}%, p99 {}",
            self.answered,
            self.ratio_5xx() * 100.0,
            self.ratio_proxy() * 100.0,
            self.p99_ms()
                .map_or_else(|| "-".to_string(), |p| format!("{p:.1} ms"))
        )
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The counters of every node at the start of a window.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    at_start: HashMap<String, (String, Traffic)>,
    started: Option<std::time::Instant>,
}

impl Marks {
    /// Marks the start of a window with the nodes' reports now.
    pub fn start(statuses: &[NodeStatus]) -> Marks {
        Marks {
            at_start: statuses
                .iter()
                .filter_map(|s| {
                    let t = s.traffic.clone()?;
                    Some((s.node.clone(), (s.boot_id.clone(), t)))
                })
                .collect(),
            started: Some(std::time::Instant::now()),
        }
    }

    /// What the nodes for which `pick` holds answered since the start, from their reports now. A
    /// node that restarted since counts from its start; a node seen only now counts if it started
    /// within the window (else its counters hold traffic from before).
    pub fn window(&self, now: &[NodeStatus], pick: impl Fn(&NodeStatus) -> bool) -> Window {
        let elapsed = self.started.map_or(0, |s| s.elapsed().as_secs());
        let mut w = Window::default();
        for s in now.iter().filter(|s| pick(s)) {
            let Some(t) = &s.traffic else { continue };
            match self.at_start.get(&s.node) {
                Some((boot, t0)) if *boot == s.boot_id => w.add(&difference(t, t0)),
                _ if s.uptime_s <= elapsed => w.add(t),
                _ => {}
            }
        }
        w
    }
}

fn difference(now: &Traffic, then: &Traffic) -> Traffic {
    Traffic {
        answered: now.answered.saturating_sub(then.answered),
        status_5xx: now.status_5xx.saturating_sub(then.status_5xx),
        proxy_errors: now.proxy_errors.saturating_sub(then.proxy_errors),
        headers_ms: now
            .headers_ms
            .iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(then.headers_ms.get(i).copied().unwrap_or(0)))
            .collect(),
    }
}

/// The gates' verdict on a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Every gate holds; one line per gate.
    Pass(Vec<String>),
    /// A gate failed: which, with the figures; one line per gate.
    Fail(String, Vec<String>),
    /// Fewer requests on the candidate than the plan's minimum: not judged.
    NotEnough(u64),
}

/// Judges the candidate's window against the baseline's (`None`: no baseline to compare with, then
/// only the absolute increases apply and p99 is not judged).
pub fn judge(
    wave: &Window,
    baseline: Option<&Window>,
    gates: &GatesRecord,
    min_requests: u64,
) -> Verdict {
    if wave.answered < min_requests.max(1) {
        return Verdict::NotEnough(wave.answered);
    }
    let mut lines = Vec::new();
    let mut failed = None;
    let mut record = |name: &str, ok: bool, line: String| {
        if !ok && failed.is_none() {
            failed = Some(format!("{name}: {line}"));
        }
        lines.push(format!(
            "{} {name}: {line}",
            if ok { "ok  " } else { "FAIL" }
        ));
    };
    let ratio_gate = |w: f64, b: Option<f64>, inc_pct: f64, factor: f64| -> (bool, String) {
        let base = b.unwrap_or(0.0);
        let over_increase = w > base + inc_pct / 100.0;
        // The factor only with a baseline, and not for differences under 0.1 point.
        let over_factor = b.is_some() && w > base * factor && w - base > 0.001;
        let limit = if b.is_some() {
            format!("limit: baseline +{inc_pct} points and x{factor}")
        } else {
            format!("limit: {inc_pct}% (no baseline)")
        };
        (
            !(over_increase || over_factor),
            format!(
                "candidate {:.2}% vs baseline {}, {limit}",
                w * 100.0,
                b.map_or_else(|| "-".into(), |b| format!("{:.2}%", b * 100.0))
            ),
        )
    };
    let (ok, line) = ratio_gate(
        wave.ratio_5xx(),
        baseline.map(Window::ratio_5xx),
        gates.max_5xx_increase_pct,
        gates.max_5xx_factor,
    );
    record("5xx ratio", ok, line);
    let (ok, line) = ratio_gate(
        wave.ratio_proxy(),
        baseline.map(Window::ratio_proxy),
        gates.max_proxy_error_increase_pct,
        gates.max_proxy_error_factor,
    );
    record("proxy-error ratio", ok, line);
    match (wave.p99_ms(), baseline.and_then(Window::p99_ms)) {
        (Some(w), Some(b)) => {
            let limit = b * gates.max_p99_factor + gates.p99_slack_ms;
            record(
                "p99",
                w <= limit,
                format!("candidate {w:.1} ms vs baseline {b:.1} ms, limit {limit:.1} ms"),
            );
        }
        _ => lines.push("n/a  p99: no baseline to compare with".into()),
    }
    match failed {
        Some(f) => Verdict::Fail(f, lines),
        None => Verdict::Pass(lines),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(answered: u64, s5: u64, proxy: u64, bucket: usize) -> Window {
        let mut headers_ms = vec![0; HEADER_BOUNDS_MS.len() + 1];
        headers_ms[bucket] = answered;
        Window {
            answered,
            status_5xx: s5,
            proxy_errors: proxy,
            headers_ms,
        }
    }

    fn gates() -> GatesRecord {
        GatesRecord::default()
    }

    #[test]
    fn equal_figures_pass() {
        let w = window(1000, 2, 0, 4);
        assert!(matches!(
            judge(&w, Some(&w.clone()), &gates(), 100),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn a_wave_answering_500s_fails_the_5xx_gate() {
        let wave = window(1000, 500, 0, 4);
        let base = window(5000, 0, 0, 4);
        let Verdict::Fail(why, lines) = judge(&wave, Some(&base), &gates(), 100) else {
            panic!()
        };
        assert!(
            why.starts_with("5xx ratio: candidate 50.00% vs baseline 0.00%"),
            "{why}"
        );
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn small_differences_pass_large_factors_fail() {
        let base = window(10_000, 10, 0, 4); // 0.1%
                                             // 0.15%: 1.5x and +0.05 points: passes.
        assert!(matches!(
            judge(&window(10_000, 15, 0, 4), Some(&base), &gates(), 100),
            Verdict::Pass(_)
        ));
        // 0.5%: under +1 point, but 5x and +0.4 points: fails.
        assert!(matches!(
            judge(&window(10_000, 50, 0, 4), Some(&base), &gates(), 100),
            Verdict::Fail(..)
        ));
        // One stray 5xx among 10 000 on an error-free baseline: under 0.1 point, passes.
        assert!(matches!(
            judge(
                &window(10_000, 1, 0, 4),
                Some(&window(10_000, 0, 0, 4)),
                &gates(),
                100
            ),
            Verdict::Pass(_)
        ));
    }

    #[test]
    fn proxy_errors_and_latency_are_gates_too() {
        let base = window(1000, 0, 0, 4); // 3..5 ms
        let Verdict::Fail(why, _) = judge(&window(1000, 0, 30, 4), Some(&base), &gates(), 100)
        else {
            panic!()
        };
        assert!(why.starts_with("proxy-error ratio"), "{why}");
        let slow = window(1000, 0, 0, 16); // 300..500 ms
        let Verdict::Fail(why, _) = judge(&slow, Some(&base), &gates(), 100) else {
            panic!()
        };
        assert!(why.starts_with("p99"), "{why}");
    }

    #[test]
    fn too_little_traffic_is_not_judged_and_no_baseline_is_absolute() {
        assert_eq!(
            judge(&window(10, 10, 0, 4), None, &gates(), 100),
            Verdict::NotEnough(10)
        );
        assert!(matches!(
            judge(&window(1000, 5, 0, 4), None, &gates(), 100),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            judge(&window(1000, 20, 0, 4), None, &gates(), 100),
            Verdict::Fail(..)
        ));
    }

    #[test]
    fn p99_interpolates_within_its_bucket() {
        let mut w = window(100, 0, 0, 0);
        w.headers_ms[0] = 98;
        w.headers_ms[10] = 2; // 30..50 ms
        let p = w.p99_ms().unwrap();
        assert!(p > 30.0 && p <= 50.0, "{p}");
        assert_eq!(Window::default().p99_ms(), None);
    }
}
