//! Live-monitoring primitives for a serving path: request-feature windows compared with a
//! reference profile, a per-request out-of-distribution score, output entropy and confidence,
//! a constant-size quantile sketch, and an alert escalation policy.
//!
//! Everything here is synchronous and takes time as an argument, so a gateway drives it on its
//! request path and tests replay timelines exactly. The cost per request is constant: a push into
//! a fixed-size window buffer, one binary search per feature into the profile's order statistics,
//! and a sketch update. A full window is compared once, with the same statistics as
//! `mlsec drift`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::compare::{self, Options};
use crate::profile::Profile;
use crate::table::{Column, Format, Table};

/// Largest window, in requests.
pub const MAX_WINDOW: usize = 1_000_000;
/// Most features a monitor follows.
pub const MAX_FEATURES: usize = 256;

/// What one window of requests looked like against the reference.
#[derive(Debug, Clone, Serialize)]
pub struct WindowVerdict {
    pub index: u64,
    pub requests: usize,
    /// Features that drifted, with the reason.
    pub drifted: Vec<(String, String)>,
    /// Share of requests in the window scored out of distribution.
    pub ood_rate: f64,
}

/// One request's score.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RequestScore {
    /// 1 minus the smallest two-sided tail probability of any feature under the reference:
    /// 1.0 is outside everything the reference saw.
    pub ood_score: f64,
    pub ood: bool,
}

/// One response's class probabilities, summarised.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutputScore {
    /// Shannon entropy in nats.
    pub entropy: f64,
    /// Entropy over its maximum (ln k): 0 certain, 1 uniform.
    pub normalized_entropy: f64,
    /// The top probability.
    pub confidence: f64,
    pub low_confidence: bool,
}

/// Entropy and confidence of a probability vector (renormalised; negative or non-finite
/// entries count as zero). `None` for fewer than two classes or no mass.
pub fn output_score(probs: &[f64], low_confidence: f64) -> Option<OutputScore> {
    let clean: Vec<f64> = probs
        .iter()
        .map(|p| if p.is_finite() && *p > 0.0 { *p } else { 0.0 })
        .collect();
    let total: f64 = clean.iter().sum();
    if clean.len() < 2 || total <= 0.0 {
        return None;
    }
    let entropy: f64 = clean
        .iter()
        .filter(|p| **p > 0.0)
        .map(|p| {
            let q = p / total;
            -q * q.ln()
        })
        .sum();
    let confidence = clean.iter().copied().fold(0.0, f64::max) / total;
    Some(OutputScore {
        entropy,
        normalized_entropy: entropy / (clean.len() as f64).ln(),
        confidence,
        low_confidence: confidence < low_confidence,
    })
}

/// Monitor settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSettings {
    /// Requests per drift window.
    #[serde(default = "default_window")]
    pub window: usize,
    /// A request is out of distribution when its score reaches this.
    #[serde(default = "default_ood")]
    pub ood_score: f64,
    /// Top probability below which a response is low-confidence.
    #[serde(default = "default_low_confidence")]
    pub low_confidence: f64,
}

fn default_window() -> usize {
    1_000
}
fn default_ood() -> f64 {
    0.999
}
fn default_low_confidence() -> f64 {
    0.6
}

impl Default for MonitorSettings {
    fn default() -> MonitorSettings {
        MonitorSettings {
            window: default_window(),
            ood_score: default_ood(),
            low_confidence: default_low_confidence(),
        }
    }
}

/// Why a monitor could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    #[error("window {0}: expected 1 to {MAX_WINDOW} requests")]
    Window(usize),
    #[error("feature {0:?} is not a numeric column of the profile")]
    Feature(String),
    #[error("{0} features: at most {MAX_FEATURES}")]
    TooMany(usize),
}

/// Request features against a reference profile, window by window.
#[derive(Debug)]
pub struct Monitor {
    settings: MonitorSettings,
    reference: Table,
    names: Vec<String>,
    /// Per feature: the profile's sorted order statistics.
    quantiles: Vec<Vec<f64>>,
    /// Per feature: this window's values so far (missing ones are not pushed).
    buffers: Vec<Vec<f64>>,
    /// Per feature: values seen this window, and how many were missing.
    missing: Vec<u64>,
    requests: usize,
    ood: usize,
    index: u64,
}

impl Monitor {
    /// A monitor of `features` (numeric columns of `profile`).
    pub fn new(
        profile: &Profile,
        features: &[String],
        settings: MonitorSettings,
    ) -> Result<Monitor, MonitorError> {
        if settings.window == 0 || settings.window > MAX_WINDOW {
            return Err(MonitorError::Window(settings.window));
        }
        if features.len() > MAX_FEATURES {
            return Err(MonitorError::TooMany(features.len()));
        }
        let reference = profile.to_table();
        let mut quantiles = Vec::new();
        for f in features {
            let col = reference
                .column(f)
                .filter(|c| !c.values.is_empty())
                .ok_or_else(|| MonitorError::Feature(f.clone()))?;
            quantiles.push(col.values.clone());
        }
        Ok(Monitor {
            buffers: vec![Vec::with_capacity(settings.window); features.len()],
            missing: vec![0; features.len()],
            names: features.to_vec(),
            quantiles,
            reference,
            settings,
            requests: 0,
            ood: 0,
            index: 0,
        })
    }

    /// The features followed, in order.
    pub fn features(&self) -> &[String] {
        &self.names
    }

    /// Records one request's feature values (in [`Monitor::features`] order; `None` when the
    /// request lacked one). Returns the request's score and, when it completes a window, the
    /// window's verdict.
    pub fn observe(&mut self, values: &[Option<f64>]) -> (RequestScore, Option<WindowVerdict>) {
        let mut min_tail: f64 = 1.0;
        for (i, v) in values.iter().enumerate().take(self.names.len()) {
            match v {
                Some(x) if x.is_finite() => {
                    min_tail = min_tail.min(tail(&self.quantiles[i], *x));
                    self.buffers[i].push(*x);
                }
                _ => self.missing[i] += 1,
            }
        }
        for i in values.len()..self.names.len() {
            self.missing[i] += 1;
        }
        let score = 1.0 - min_tail;
        let ood = score >= self.settings.ood_score;
        self.requests += 1;
        self.ood += usize::from(ood);
        let verdict = (self.requests >= self.settings.window).then(|| self.close_window());
        (
            RequestScore {
                ood_score: score,
                ood,
            },
            verdict,
        )
    }

    fn close_window(&mut self) -> WindowVerdict {
        self.index += 1;
        let rows = self.requests as u64;
        let columns = self
            .names
            .iter()
            .zip(self.buffers.iter_mut().zip(&mut self.missing))
            .map(|(name, (buf, missing))| {
                let mut col = Column::new(name.clone());
                col.present = rows;
                col.missing = *missing;
                col.numeric = buf.len() as u64;
                col.values = std::mem::replace(buf, Vec::with_capacity(self.settings.window));
                crate::stats::sort(&mut col.values);
                *missing = 0;
                col
            })
            .collect::<Vec<Column>>();
        let window = Table {
            rows,
            columns,
            ..Table::empty(format!("window {}", self.index), Format::Jsonl)
        };
        // Only the followed features of the reference take part.
        let reference = Table {
            columns: self
                .names
                .iter()
                .filter_map(|n| self.reference.column(n).cloned())
                .collect(),
            ..self.reference.clone()
        };
        let (cols, _) = compare::compare(&reference, &window, &Options::default());
        let drifted = cols
            .iter()
            .filter(|c| c.drift)
            .map(|c| {
                let why = c
                    .signals
                    .iter()
                    .filter(|s| s.kind != compare::SignalKind::NotTested)
                    .map(|s| s.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ");
                (c.name.clone(), why)
            })
            .collect();
        let verdict = WindowVerdict {
            index: self.index,
            requests: self.requests,
            drifted,
            ood_rate: self.ood as f64 / self.requests.max(1) as f64,
        };
        self.requests = 0;
        self.ood = 0;
        verdict
    }
}

/// Two-sided tail probability of `x` under the ECDF of sorted `q`: 0 outside the range seen.
fn tail(q: &[f64], x: f64) -> f64 {
    if q.is_empty() {
        return 1.0;
    }
    if x < q[0] || x > q[q.len() - 1] {
        return 0.0;
    }
    let below = q.partition_point(|v| *v < x) as f64;
    let at_or_below = q.partition_point(|v| *v <= x) as f64;
    let n = q.len() as f64;
    // Mid-rank ECDF, so a value at the median has tail 1.
    let f = f64::midpoint(below, at_or_below) / n;
    (2.0 * f.min(1.0 - f) + 1.0 / n).clamp(0.0, 1.0)
}

/// A quantile sketch with relative accuracy (DDSketch): logarithmic buckets, constant cost per
/// value, memory bounded by the range of magnitudes (about 1,000 buckets cover 1 µs to 1,000 s
/// at 1%). For non-negative values such as latencies; negative values count in the zero bucket.
#[derive(Debug, Clone)]
pub struct QuantileSketch {
    gamma_ln: f64,
    buckets: HashMap<i32, u64>,
    zeros: u64,
    count: u64,
}

/// Buckets a sketch keeps at most; past it the lowest buckets merge (accuracy lost only at
/// the bottom of the range).
pub const MAX_SKETCH_BUCKETS: usize = 4_096;

impl QuantileSketch {
    /// A sketch whose quantiles are within `relative_accuracy` (e.g. 0.01) of a true value.
    pub fn new(relative_accuracy: f64) -> QuantileSketch {
        let a = relative_accuracy.clamp(1e-4, 0.5);
        QuantileSketch {
            gamma_ln: ((1.0 + a) / (1.0 - a)).ln(),
            buckets: HashMap::new(),
            zeros: 0,
            count: 0,
        }
    }

    pub fn add(&mut self, x: f64) {
        self.count += 1;
        if !(x.is_finite() && x > 1e-12) {
            self.zeros += 1;
            return;
        }
        let key = (x.ln() / self.gamma_ln).ceil() as i32;
        *self.buckets.entry(key).or_default() += 1;
        if self.buckets.len() > MAX_SKETCH_BUCKETS {
            let mut keys: Vec<i32> = self.buckets.keys().copied().collect();
            keys.sort_unstable();
            if let (Some(lo), Some(next)) = (keys.first(), keys.get(1)) {
                let n = self.buckets.remove(lo).unwrap_or(0);
                *self.buckets.entry(*next).or_default() += n;
            }
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The value at quantile `q` (0 to 1), or `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.count - 1) as f64).round() as u64;
        if rank < self.zeros {
            return Some(0.0);
        }
        let mut keys: Vec<(&i32, &u64)> = self.buckets.iter().collect();
        keys.sort_unstable_by_key(|(k, _)| **k);
        let mut seen = self.zeros;
        for (k, n) in keys {
            seen += n;
            if seen > rank {
                // The bucket's midpoint in relative terms.
                let upper = (f64::from(*k) * self.gamma_ln).exp();
                let gamma = self.gamma_ln.exp();
                return Some(2.0 * upper / (1.0 + gamma));
            }
        }
        None
    }
}

/// One step of an escalation policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Seconds the condition must have lasted before this step.
    pub after_secs: u64,
    /// `warning`, `critical`, ... (passed through to the receiver).
    pub level: String,
    /// Who is told (names the receiver routes on).
    pub notify: Vec<String>,
}

/// An alert to deliver.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub key: String,
    /// `firing` or `resolved`.
    pub state: &'static str,
    pub level: String,
    pub notify: Vec<String>,
    pub message: String,
    /// When the condition started (seconds, the caller's clock).
    pub since: u64,
    pub at: u64,
}

/// Turns conditions over time into alerts: each step of the policy fires once when the
/// condition has lasted its `after_secs`, and a `resolved` alert follows when it clears.
#[derive(Debug, Clone)]
pub struct Escalator {
    policy: Vec<Escalation>,
    open: HashMap<String, (u64, usize)>,
}

impl Escalator {
    /// Steps are ordered by `after_secs`.
    pub fn new(mut policy: Vec<Escalation>) -> Escalator {
        policy.sort_by_key(|s| s.after_secs);
        Escalator {
            policy,
            open: HashMap::new(),
        }
    }

    /// Reports whether `key`'s condition holds at `now`; returns the alerts due.
    pub fn update(&mut self, key: &str, active: bool, now: u64, message: &str) -> Vec<Alert> {
        let mut out = Vec::new();
        if active {
            let (since, sent) = self.open.entry(key.to_string()).or_insert((now, 0));
            let since = *since;
            while let Some(step) = self.policy.get(*sent) {
                if now.saturating_sub(since) < step.after_secs {
                    break;
                }
                out.push(Alert {
                    key: key.to_string(),
                    state: "firing",
                    level: step.level.clone(),
                    notify: step.notify.clone(),
                    message: message.to_string(),
                    since,
                    at: now,
                });
                *sent += 1;
            }
        } else if let Some((since, sent)) = self.open.remove(key)
            && sent > 0
        {
            let step = &self.policy[sent - 1];
            out.push(Alert {
                key: key.to_string(),
                state: "resolved",
                level: step.level.clone(),
                notify: step.notify.clone(),
                message: message.to_string(),
                since,
                at: now,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Format, read};

    fn profile(rows: usize) -> Profile {
        let mut s = String::from("len,score\n");
        for i in 0..rows {
            let x = (i % 100) as f64;
            s.push_str(&format!("{},{}\n", x, (i % 7) as f64 / 7.0));
        }
        Profile::of(&read(s.as_bytes(), "ref.csv", Format::Csv).unwrap())
    }

    #[test]
    fn windows_report_drift_only_where_it_starts() {
        let p = profile(5_000);
        let settings = MonitorSettings {
            window: 500,
            ..MonitorSettings::default()
        };
        let mut m = Monitor::new(&p, &["len".to_string(), "score".to_string()], settings).unwrap();
        let mut verdicts = Vec::new();
        for i in 0..1_500usize {
            let shift = if i >= 1_000 { 40.0 } else { 0.0 };
            let len = (i % 100) as f64 + shift;
            let (_, v) = m.observe(&[Some(len), Some((i % 7) as f64 / 7.0)]);
            verdicts.extend(v);
        }
        assert_eq!(verdicts.len(), 3);
        assert!(
            verdicts[0].drifted.is_empty() && verdicts[1].drifted.is_empty(),
            "{verdicts:?}"
        );
        assert_eq!(verdicts[2].drifted.len(), 1);
        assert_eq!(verdicts[2].drifted[0].0, "len");
        // A shift by 40 on 0..99 puts 40% of the window past the reference's maximum.
        assert!(
            (verdicts[2].ood_rate - 0.4).abs() < 0.02,
            "{}",
            verdicts[2].ood_rate
        );
        assert!(verdicts[0].ood_rate < 1e-12);
    }

    #[test]
    fn ood_scores_grow_towards_the_tails() {
        let p = profile(5_000);
        let mut m = Monitor::new(&p, &["len".to_string()], MonitorSettings::default()).unwrap();
        let mid = m.observe(&[Some(50.0)]).0;
        let edge = m.observe(&[Some(0.5)]).0;
        let out = m.observe(&[Some(500.0)]).0;
        assert!(mid.ood_score < 0.1 && !mid.ood, "{mid:?}");
        assert!(edge.ood_score > 0.9 && edge.ood_score < 1.0, "{edge:?}");
        assert!(out.ood && out.ood_score > 1.0 - 1e-12, "{out:?}");
        assert!(Monitor::new(&p, &["nope".to_string()], MonitorSettings::default()).is_err());
    }

    #[test]
    fn entropy_and_confidence() {
        let u = output_score(&[0.25, 0.25, 0.25, 0.25], 0.6).unwrap();
        assert!((u.normalized_entropy - 1.0).abs() < 1e-12 && u.low_confidence);
        let c = output_score(&[0.97, 0.02, 0.01], 0.6).unwrap();
        assert!(
            c.normalized_entropy < 0.2 && !c.low_confidence && (c.confidence - 0.97).abs() < 1e-12
        );
        assert!(output_score(&[1.0], 0.6).is_none());
        assert!(output_score(&[f64::NAN, -1.0], 0.6).is_none());
    }

    #[test]
    fn the_sketch_is_within_its_relative_accuracy() {
        let mut s = QuantileSketch::new(0.01);
        let mut values: Vec<f64> = (1..=100_000).map(|i| f64::from(i) * 1e-5).collect();
        for v in &values {
            s.add(*v);
        }
        values.sort_by(f64::total_cmp);
        for q in [0.01, 0.5, 0.9, 0.99, 0.999] {
            let exact = values[(q * (values.len() - 1) as f64).round() as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= 0.0101 * exact,
                "q={q}: {got} vs {exact}"
            );
        }
        assert!(s.buckets.len() < 1_000);
        assert_eq!(s.count(), 100_000);
    }

    #[test]
    fn escalation_follows_the_policy_and_resolves_once() {
        let mut e = Escalator::new(vec![
            Escalation {
                after_secs: 900,
                level: "critical".into(),
                notify: vec!["lead".into()],
            },
            Escalation {
                after_secs: 0,
                level: "warning".into(),
                notify: vec!["oncall".into()],
            },
        ]);
        let fired = e.update("drift/fraud", true, 100, "drift");
        assert_eq!(fired.len(), 1);
        assert_eq!(
            (fired[0].level.as_str(), fired[0].state),
            ("warning", "firing")
        );
        assert!(e.update("drift/fraud", true, 600, "drift").is_empty());
        let fired = e.update("drift/fraud", true, 1_000, "drift");
        assert_eq!(
            (fired[0].level.as_str(), fired[0].notify.as_slice()),
            ("critical", &["lead".to_string()][..])
        );
        assert!(e.update("drift/fraud", true, 5_000, "drift").is_empty());
        let resolved = e.update("drift/fraud", false, 5_100, "drift");
        assert_eq!(
            (
                resolved[0].state,
                resolved[0].level.as_str(),
                resolved[0].since
            ),
            ("resolved", "critical", 100)
        );
        assert!(e.update("drift/fraud", false, 5_200, "drift").is_empty());
        // A condition that clears before the first step never alerts.
        let mut quiet = Escalator::new(vec![Escalation {
            after_secs: 60,
            level: "warning".into(),
            notify: vec![],
        }]);
        assert!(quiet.update("k", true, 0, "x").is_empty());
        assert!(quiet.update("k", false, 30, "x").is_empty());
    }
}
