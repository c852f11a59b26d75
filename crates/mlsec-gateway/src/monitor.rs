//! Model monitoring on the request path (`[models.monitor]` and `[monitor]`).
//!
//! For each monitored model the gateway reads the declared features of every request that
//! reaches the upstream (JSON pointers, OIP tensor columns, or prompt lengths and token counts),
//! scores the request against the model's reference profile (`mlsec drift profile`), and compares
//! each full window of requests with the profile using the same statistics as `mlsec drift`. It
//! reads the class probabilities of each response for entropy and confidence, and keeps error
//! and latency rates per window. Conditions that pass their thresholds go through the escalation
//! policy to a webhook, the log and metrics.
//!
//! The cost per request is constant: a bounded number of rows read from a body already parsed,
//! a binary search per feature, a sketch update, and one comparison per full window. Nothing
//! here waits on the network: webhooks are posted in the background.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use mlsec_drift::monitor::{
    Alert, Escalation, Escalator, Monitor, MonitorSettings, QuantileSketch, output_score,
};
use mlsec_drift::profile::Profile;
use serde_json::{Map, Value, json};

use crate::config::{Config, ModelMonitorConfig, MonitorConfig, Protocol, RouteKind};
use crate::handler::Ctx;
use crate::stages::Call;
use crate::{AppState, Runtime, metrics};

/// Rows of one request (a batch) or one response that are read; the rest are not observed.
pub const MAX_ROWS: usize = 1_024;
/// Classes of one probability row that are read.
pub const MAX_CLASSES: usize = 65_536;
/// Segments of a JSON pointer.
pub const MAX_POINTER_SEGMENTS: usize = 32;
/// Features one model follows.
pub const MAX_FEATURES: usize = mlsec_drift::monitor::MAX_FEATURES;

/// What a monitored condition is about (a closed set: these are metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    Drift,
    OodRate,
    LowConfidence,
    ErrorRate,
    Latency,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Drift => "drift",
            Condition::OodRate => "ood_rate",
            Condition::LowConfidence => "low_confidence",
            Condition::ErrorRate => "error_rate",
            Condition::Latency => "latency",
        }
    }
}

/// One step of a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    /// `*`: every element of an array, one row each.
    Each,
}

/// A value derived from an OpenAI-style request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    /// Characters of the prompt text (messages' content, `prompt` or `input`).
    PromptChars,
    /// The gateway's token estimate of the prompt.
    PromptTokens,
    /// Messages in a chat (1 for a prompt).
    Messages,
    /// Completion tokens the request may use, after the policy's clamp.
    MaxTokens,
}

const DERIVED: [(&str, Derived); 4] = [
    ("prompt_chars", Derived::PromptChars),
    ("prompt_tokens", Derived::PromptTokens),
    ("messages", Derived::Messages),
    ("max_tokens", Derived::MaxTokens),
];

/// Where a feature or the probabilities are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pointer(Vec<Seg>),
    /// An OIP tensor (`input:NAME[:COLUMN]` or `output:NAME`), one row per batch entry.
    Tensor {
        name: String,
        column: Option<usize>,
    },
    Derived(Derived),
    /// The first generated token's top log-probabilities, per choice.
    Logprobs,
}

fn pointer(text: &str) -> Result<Source, String> {
    let segs: Vec<Seg> = text[1..]
        .split('/')
        .map(|s| {
            if s == "*" {
                Seg::Each
            } else {
                Seg::Key(s.replace("~1", "/").replace("~0", "~"))
            }
        })
        .collect();
    if segs.len() > MAX_POINTER_SEGMENTS {
        return Err(format!(
            "{text:?}: more than {MAX_POINTER_SEGMENTS} pointer segments"
        ));
    }
    Ok(Source::Pointer(segs))
}

impl Source {
    /// A feature's source on a model of `protocol`.
    pub fn feature(text: &str, protocol: Protocol) -> Result<Source, String> {
        if text.starts_with('/') {
            return pointer(text);
        }
        if let Some(rest) = text.strip_prefix("input:") {
            if protocol != Protocol::Oip {
                return Err(format!(
                    "{text:?}: input tensors are read on OIP models only"
                ));
            }
            let (name, column) = match rest.split_once(':') {
                Some((n, c)) => (
                    n,
                    Some(c.parse::<usize>().map_err(|_| {
                        format!("{text:?}: the column after the tensor name must be a number")
                    })?),
                ),
                None => (rest, None),
            };
            if name.is_empty() {
                return Err(format!("{text:?}: no tensor name"));
            }
            return Ok(Source::Tensor {
                name: name.to_string(),
                column,
            });
        }
        if let Some((_, d)) = DERIVED.iter().find(|(n, _)| *n == text) {
            if protocol != Protocol::Openai {
                return Err(format!(
                    "{text:?} is read from OpenAI-style requests; this model is not one"
                ));
            }
            return Ok(Source::Derived(*d));
        }
        Err(format!(
            "{text:?}: expected a JSON pointer (/field, /instances/*/0), input:TENSOR[:COLUMN], or one of prompt_chars, prompt_tokens, messages, max_tokens"
        ))
    }

    /// The probabilities' source on a model of `protocol`.
    pub fn probabilities(text: &str, protocol: Protocol) -> Result<Source, String> {
        if text.starts_with('/') {
            return pointer(text);
        }
        if let Some(name) = text.strip_prefix("output:") {
            if protocol != Protocol::Oip || name.is_empty() {
                return Err(format!(
                    "{text:?}: output tensors are named (output:NAME) and read on OIP models only"
                ));
            }
            return Ok(Source::Tensor {
                name: name.to_string(),
                column: None,
            });
        }
        if text == "logprobs" {
            if protocol != Protocol::Openai {
                return Err("logprobs are read from OpenAI-style responses only".into());
            }
            return Ok(Source::Logprobs);
        }
        Err(format!(
            "{text:?}: expected a JSON pointer (/probabilities, /predictions/*), output:TENSOR or logprobs"
        ))
    }
}

/// Problems of one model's `[models.monitor]`, as (field, message).
pub fn problems(
    mc: &ModelMonitorConfig,
    protocol: Protocol,
    config: &Config,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, text) in &mc.features {
        match Source::feature(text, protocol) {
            Err(e) => out.push((format!("features.{name}"), e)),
            Ok(Source::Tensor { name: t, column }) => {
                let declared = config
                    .models
                    .iter()
                    .flat_map(|m| &m.inputs)
                    .find(|i| i.name == t);
                match declared {
                    None => out.push((
                        format!("features.{name}"),
                        format!("no input tensor named {t:?} is declared in inputs"),
                    )),
                    Some(spec) => {
                        let row: Option<i64> = spec
                            .shape
                            .iter()
                            .skip(1)
                            .try_fold(1i64, |a, d| (*d >= 0).then(|| a.saturating_mul(*d)));
                        match (row, column) {
                            (Some(r), Some(c)) if c as i64 >= r => out.push((
                                format!("features.{name}"),
                                format!("column {c} is past the {r} values of a row of {t:?}"),
                            )),
                            (Some(r), None) if r != 1 => out.push((
                                format!("features.{name}"),
                                format!(
                                    "a row of {t:?} holds {r} values: name one (input:{t}:COLUMN)"
                                ),
                            )),
                            _ => {}
                        }
                    }
                }
            }
            Ok(_) => {}
        }
    }
    if mc.features.len() > MAX_FEATURES {
        out.push((
            "features".into(),
            format!("{} features: at most {MAX_FEATURES}", mc.features.len()),
        ));
    }
    match (&mc.profile, mc.features.is_empty()) {
        (Some(_), true) => out.push((
            "features".into(),
            "a profile is compared with request features: name at least one".into(),
        )),
        (None, false) if mc.record.is_none() => out.push((
            "profile".into(),
            "features are compared with a reference profile: make one with `mlsec drift profile DATA`, or set record = \"baseline.jsonl\" to capture traffic for one".into(),
        )),
        (Some(p), false) if !config.resolve(p).is_file() => out.push((
            "profile".into(),
            format!("no such file: {}", config.resolve(p).display()),
        )),
        _ => {}
    }
    if let Some(p) = &mc.probabilities
        && let Err(e) = Source::probabilities(p, protocol)
    {
        out.push(("probabilities".into(), e));
    }
    if mc.window == 0 || mc.window > mlsec_drift::monitor::MAX_WINDOW {
        out.push((
            "window".into(),
            format!("must be 1 to {} requests", mlsec_drift::monitor::MAX_WINDOW),
        ));
    }
    for (field, v) in [
        ("ood_score", mc.ood_score),
        ("low_confidence", mc.low_confidence),
        ("max_ood_rate", mc.max_ood_rate),
        ("max_low_confidence_rate", mc.max_low_confidence_rate),
        ("max_error_rate", mc.max_error_rate),
    ] {
        if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
            out.push((field.into(), "must be between 0 and 1".into()));
        }
    }
    if mc.record.is_some() && mc.features.is_empty() {
        out.push((
            "record".into(),
            "records request features: name at least one in features".into(),
        ));
    }
    if mc.record_rows == 0 {
        out.push(("record_rows".into(), "must be positive".into()));
    }
    if mc.max_latency_ms == Some(0) {
        out.push(("max_latency_ms".into(), "must be positive".into()));
    }
    out
}

/// Problems of `[monitor]`, as (field, message).
pub fn global_problems(m: &MonitorConfig) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(u) = &m.webhook
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        out.push((
            "webhook".into(),
            format!("{u:?} is not an http:// or https:// URL"),
        ));
    }
    if m.tick_secs == 0 || m.tick_secs > 3_600 {
        out.push(("tick_secs".into(), "must be 1 to 3600 seconds".into()));
    }
    for (i, e) in m.escalation.iter().enumerate() {
        if e.level.is_empty() || e.level.len() > 64 {
            out.push((
                format!("escalation[{i}].level"),
                "must be 1-64 characters".into(),
            ));
        }
    }
    out
}

/// Windowed request statistics: errors, confidence and latency.
struct Stats {
    requests: u64,
    errors: u64,
    scored: u64,
    low: u64,
    latency: QuantileSketch,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            requests: 0,
            errors: 0,
            scored: 0,
            low: 0,
            latency: QuantileSketch::new(0.01),
        }
    }
}

/// One monitored model.
pub struct ModelMonitor {
    pub model: String,
    pub config: ModelMonitorConfig,
    features: Vec<Source>,
    probabilities: Option<Source>,
    drift: Option<Mutex<Monitor>>,
    stats: Mutex<Stats>,
    recorder: Option<Mutex<Recorder>>,
}

/// Appends feature rows to a baseline file (`record`), up to `record_rows`.
struct Recorder {
    path: std::path::PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    names: Vec<String>,
    rows: u64,
    max: u64,
}

impl Recorder {
    fn write(&mut self, row: &[Option<f64>]) {
        use std::io::Write as _;
        if self.rows >= self.max {
            return;
        }
        let mut obj = serde_json::Map::new();
        for (n, v) in self.names.iter().zip(row) {
            obj.insert(
                n.clone(),
                v.and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number),
            );
        }
        let line = Value::Object(obj).to_string();
        let done = writeln!(self.out, "{line}").and_then(|()| self.out.flush());
        match done {
            Ok(()) => {
                self.rows += 1;
                if self.rows == self.max {
                    tracing::warn!(path = %self.path.display(), rows = self.max, "monitor: record_rows reached; recording stops");
                }
            }
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "monitor: could not record a feature row; recording stops");
                self.max = self.rows;
            }
        }
    }
}

/// What one request's features showed.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The highest out-of-distribution score of the request's rows.
    pub ood_score: f64,
    pub ood: bool,
    pub rows: usize,
    /// Rows past [`MAX_ROWS`] that were not observed.
    pub skipped: usize,
    pub window: Option<mlsec_drift::monitor::WindowVerdict>,
}

/// What one response's probabilities showed.
#[derive(Debug, Clone, Copy)]
pub struct Scored {
    pub rows: usize,
    pub low: usize,
    pub max_entropy: f64,
}

/// A closed window of request statistics.
#[derive(Debug, Clone, Copy)]
pub struct StatsWindow {
    pub requests: u64,
    pub error_rate: f64,
    /// `None` when no response in the window was scored.
    pub low_confidence_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl ModelMonitor {
    /// Builds a model's monitor, reading its profile.
    pub fn new(
        model: &str,
        mc: &ModelMonitorConfig,
        protocol: Protocol,
        config: &Config,
    ) -> Result<ModelMonitor, String> {
        let mut features = Vec::new();
        for text in mc.features.values() {
            features.push(Source::feature(text, protocol)?);
        }
        let probabilities = mc
            .probabilities
            .as_deref()
            .map(|p| Source::probabilities(p, protocol))
            .transpose()?;
        let drift = match &mc.profile {
            Some(p) => {
                let path = config.resolve(p);
                let profile = Profile::read(&path).map_err(|e| format!("profile: {e}"))?;
                let names: Vec<String> = mc.features.keys().cloned().collect();
                let settings = MonitorSettings {
                    window: mc.window,
                    ood_score: mc.ood_score,
                    low_confidence: mc.low_confidence,
                };
                Some(Mutex::new(
                    Monitor::new(&profile, &names, settings)
                        .map_err(|e| format!("profile {}: {e}", path.display()))?,
                ))
            }
            None => None,
        };
        let recorder = match &mc.record {
            Some(p) => {
                let path = config.resolve(p);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("record: {}: {e}", path.display()))?;
                Some(Mutex::new(Recorder {
                    path,
                    out: std::io::BufWriter::new(file),
                    names: mc.features.keys().cloned().collect(),
                    rows: 0,
                    max: mc.record_rows,
                }))
            }
            None => None,
        };
        Ok(ModelMonitor {
            model: model.to_string(),
            config: mc.clone(),
            features,
            probabilities,
            drift,
            stats: Mutex::new(Stats::new()),
            recorder,
        })
    }

    /// Reads the request's feature rows, records them when `record` is set, and scores them
    /// (`None` without a profile).
    pub fn observe_request(&self, call: &Call) -> Option<Observed> {
        if self.drift.is_none() && self.recorder.is_none() {
            return None;
        }
        let columns: Vec<Vec<Option<f64>>> = self
            .features
            .iter()
            .map(|s| feature_values(s, call.kind, &call.body, call.checked.as_ref()))
            .collect();
        let total = columns.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let rows = total.min(MAX_ROWS);
        let row_at = |r: usize| -> Vec<Option<f64>> {
            columns
                .iter()
                // A single value applies to every row of a batch.
                .map(|col| {
                    if col.len() == 1 {
                        col[0]
                    } else {
                        col.get(r).copied().flatten()
                    }
                })
                .collect()
        };
        if let Some(rec) = &self.recorder {
            let mut rec = rec
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for r in 0..rows {
                rec.write(&row_at(r));
            }
        }
        let drift = self.drift.as_ref()?;
        let mut m = drift
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut worst: f64 = 0.0;
        let mut window = None;
        for r in 0..rows {
            let (score, verdict) = m.observe(&row_at(r));
            worst = worst.max(score.ood_score);
            if verdict.is_some() {
                window = verdict;
            }
        }
        Some(Observed {
            ood_score: worst,
            ood: worst >= self.config.ood_score,
            rows,
            skipped: total - rows,
            window,
        })
    }

    /// Reads the response's class probabilities (`None` when none are configured; zero rows
    /// when the response held none).
    pub fn observe_response(&self, body: &[u8]) -> Option<(Scored, Vec<f64>)> {
        let source = self.probabilities.as_ref()?;
        let rows = serde_json::from_slice::<Value>(body)
            .map(|v| probability_rows(source, &v))
            .unwrap_or_default();
        let mut scored = Scored {
            rows: 0,
            low: 0,
            max_entropy: 0.0,
        };
        let mut entropies = Vec::new();
        for r in rows.iter().take(MAX_ROWS) {
            if let Some(s) = output_score(r, self.config.low_confidence) {
                scored.rows += 1;
                scored.low += usize::from(s.low_confidence);
                scored.max_entropy = scored.max_entropy.max(s.normalized_entropy);
                entropies.push(s.normalized_entropy);
            }
        }
        let mut st = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.scored += scored.rows as u64;
        st.low += scored.low as u64;
        Some((scored, entropies))
    }

    /// Counts a finished request; returns the window of statistics it closed, if any.
    pub fn finish(&self, status: StatusCode, latency: Duration) -> Option<StatsWindow> {
        let mut st = self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.requests += 1;
        st.errors += u64::from(status.is_server_error());
        st.latency.add(latency.as_secs_f64() * 1e3);
        if st.requests < self.config.window as u64 {
            return None;
        }
        let w = StatsWindow {
            requests: st.requests,
            error_rate: st.errors as f64 / st.requests as f64,
            low_confidence_rate: (st.scored > 0).then(|| st.low as f64 / st.scored as f64),
            p99_ms: st.latency.quantile(0.99),
        };
        *st = Stats::new();
        Some(w)
    }
}

/// A number from a JSON value: numbers, booleans (0 or 1) and numeric strings.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

/// The values at a pointer: one per row, `None` where the path breaks (so the rows of
/// features with the same `*` structure stay aligned).
fn at_pointer<'a>(v: &'a Value, segs: &[Seg], out: &mut Vec<Option<&'a Value>>) {
    if out.len() >= MAX_ROWS {
        return;
    }
    match segs.split_first() {
        None => out.push(Some(v)),
        Some((Seg::Key(k), rest)) => {
            let next = match v {
                Value::Object(m) => m.get(k),
                Value::Array(a) => k.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            match next {
                Some(n) => at_pointer(n, rest, out),
                None => out.push(None),
            }
        }
        Some((Seg::Each, rest)) => match v {
            Value::Array(a) => {
                for x in a {
                    at_pointer(x, rest, out);
                    if out.len() >= MAX_ROWS {
                        return;
                    }
                }
            }
            _ => out.push(None),
        },
    }
}

/// The numbers of a tensor's `data` (flattened when nested), at most `limit`.
fn tensor_data(t: &Value, limit: usize) -> Vec<f64> {
    fn walk(v: &Value, out: &mut Vec<f64>, limit: usize) {
        match v {
            Value::Array(a) => {
                for x in a {
                    if out.len() >= limit {
                        return;
                    }
                    walk(x, out, limit);
                }
            }
            other => out.push(number(other).unwrap_or(f64::NAN)),
        }
    }
    let mut out = Vec::new();
    if let Some(d) = t.get("data") {
        walk(d, &mut out, limit);
    }
    out
}

/// A named tensor of an OIP body's `inputs` or `outputs` list, and the values in one row of it.
fn tensor<'a>(list: Option<&'a Value>, name: &str) -> Option<(&'a Value, usize)> {
    let t = list?
        .as_array()?
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some(name))?;
    let shape: Vec<u64> = t
        .get("shape")
        .and_then(Value::as_array)
        .map(|s| s.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let row = if shape.len() <= 1 {
        1
    } else {
        shape[1..]
            .iter()
            .try_fold(1u64, |a, d| a.checked_mul(*d))
            .unwrap_or(0)
    };
    Some((t, usize::try_from(row).unwrap_or(0)))
}

/// Characters of prompt text: strings, and the `text` and `content` of parts.
fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(text_chars).sum(),
        Value::Object(m) => ["text", "content"]
            .iter()
            .filter_map(|k| m.get(*k))
            .map(text_chars)
            .sum(),
        _ => 0,
    }
}

/// One feature's values for a request: one per row (at most [`MAX_ROWS`]), or a single value
/// for every row.
pub fn feature_values(
    source: &Source,
    kind: RouteKind,
    body: &Map<String, Value>,
    checked: Option<&crate::validate::Checked>,
) -> Vec<Option<f64>> {
    match source {
        Source::Pointer(segs) => {
            let mut found = Vec::new();
            match segs.split_first() {
                Some((Seg::Key(k), rest)) => match body.get(k) {
                    Some(v) => at_pointer(v, rest, &mut found),
                    None => found.push(None),
                },
                _ => found.push(None),
            }
            found.into_iter().map(|v| v.and_then(number)).collect()
        }
        Source::Tensor { name, column } => {
            let Some((t, row)) = tensor(body.get("inputs"), name) else {
                return vec![None];
            };
            if row == 0 {
                return vec![None];
            }
            let c = column.unwrap_or(0);
            let data = tensor_data(t, MAX_ROWS.saturating_mul(row));
            (0..data.len() / row)
                .map(|r| data.get(r * row + c).copied().filter(|x| x.is_finite()))
                .collect()
        }
        Source::Derived(d) => {
            let v = match d {
                Derived::PromptTokens => checked.map(|c| c.prompt_tokens as f64),
                Derived::MaxTokens => checked.map(|c| c.max_tokens as f64),
                Derived::Messages => Some(match body.get("messages") {
                    Some(Value::Array(a)) => a.len() as f64,
                    _ => 1.0,
                }),
                Derived::PromptChars => Some(match kind {
                    RouteKind::Chat | RouteKind::Template => body
                        .get("messages")
                        .and_then(Value::as_array)
                        .map_or(0, |ms| {
                            ms.iter()
                                .filter_map(|m| m.get("content"))
                                .map(text_chars)
                                .sum()
                        }) as f64,
                    _ => ["prompt", "input"]
                        .iter()
                        .filter_map(|k| body.get(*k))
                        .map(text_chars)
                        .sum::<usize>() as f64,
                }),
            };
            vec![v]
        }
        Source::Logprobs => vec![None],
    }
}

/// The probability rows of a response body (at most [`MAX_ROWS`]).
pub fn probability_rows(source: &Source, body: &Value) -> Vec<Vec<f64>> {
    let row_of = |v: &Value| -> Option<Vec<f64>> {
        match v {
            Value::Array(a) if a.iter().all(Value::is_number) => Some(
                a.iter()
                    .take(MAX_CLASSES)
                    .map(|x| number(x).unwrap_or(0.0))
                    .collect(),
            ),
            // {"cat": 0.9, "dog": 0.1}
            Value::Object(m) if !m.is_empty() && m.values().all(Value::is_number) => Some(
                m.values()
                    .take(MAX_CLASSES)
                    .map(|x| number(x).unwrap_or(0.0))
                    .collect(),
            ),
            _ => None,
        }
    };
    match source {
        Source::Pointer(segs) => {
            let mut found = Vec::new();
            at_pointer(body, segs, &mut found);
            let mut rows = Vec::new();
            for v in found.into_iter().flatten() {
                match row_of(v) {
                    Some(r) => rows.push(r),
                    // A batch: an array of rows.
                    None => {
                        if let Value::Array(a) = v {
                            rows.extend(a.iter().take(MAX_ROWS).filter_map(row_of));
                        }
                    }
                }
            }
            rows
        }
        Source::Tensor { name, .. } => {
            let Some((t, _)) = tensor(body.get("outputs"), name) else {
                return Vec::new();
            };
            let classes = t
                .get("shape")
                .and_then(Value::as_array)
                .and_then(|s| s.last())
                .and_then(Value::as_u64)
                .and_then(|k| usize::try_from(k).ok())
                .filter(|k| (2..=MAX_CLASSES).contains(k));
            let Some(k) = classes else {
                return Vec::new();
            };
            let data = tensor_data(t, MAX_ROWS.saturating_mul(k));
            data.chunks_exact(k).map(<[f64]>::to_vec).collect()
        }
        Source::Logprobs => body
            .get("choices")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .take(MAX_ROWS)
                    .filter_map(|c| {
                        let lp = c.get("logprobs")?;
                        // Chat: content[0].top_logprobs[].logprob; completions:
                        // top_logprobs[0] {token: logprob}.
                        let values: Vec<f64> =
                            if let Some(first) = lp.get("content").and_then(|x| x.get(0)) {
                                first
                                    .get("top_logprobs")?
                                    .as_array()?
                                    .iter()
                                    .filter_map(|t| t.get("logprob").and_then(number))
                                    .collect()
                            } else {
                                lp.get("top_logprobs")?
                                    .get(0)?
                                    .as_object()?
                                    .values()
                                    .filter_map(number)
                                    .collect()
                            };
                        Some(values.into_iter().take(MAX_CLASSES).map(f64::exp).collect())
                    })
                    .collect()
            })
            .unwrap_or_default(),
        Source::Derived(_) => Vec::new(),
    }
}

/// Conditions that hold now, by key (`model/condition`), with their last message.
type OpenConditions = HashMap<String, (Condition, String)>;

/// Open conditions and the escalation policy, shared by a runtime's models.
pub struct Alerts {
    escalator: Mutex<(Escalator, OpenConditions)>,
    pub webhook: Option<String>,
    pub tick: Duration,
}

impl Alerts {
    pub fn new(m: &MonitorConfig) -> Alerts {
        let policy = if m.escalation.is_empty() {
            vec![Escalation {
                after_secs: 0,
                level: "warning".into(),
                notify: Vec::new(),
            }]
        } else {
            m.escalation.clone()
        };
        Alerts {
            escalator: Mutex::new((Escalator::new(policy), HashMap::new())),
            webhook: m.webhook.clone(),
            tick: Duration::from_secs(m.tick_secs.max(1)),
        }
    }

    /// Reports whether `model`'s `condition` holds at `now` (seconds); returns the alerts due.
    pub fn set(
        &self,
        model: &str,
        condition: Condition,
        active: bool,
        message: String,
        now: u64,
    ) -> Vec<(Condition, Alert)> {
        let key = format!("{model}/{}", condition.as_str());
        let mut g = self
            .escalator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (esc, open) = &mut *g;
        let alerts = esc.update(&key, active, now, &message);
        if active {
            open.insert(key, (condition, message));
        } else {
            open.remove(&key);
        }
        alerts.into_iter().map(|a| (condition, a)).collect()
    }

    /// Re-checks open conditions at `now`: steps whose time has come fire.
    pub fn tick(&self, now: u64) -> Vec<(Condition, Alert)> {
        let mut g = self
            .escalator
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (esc, open) = &mut *g;
        let mut out = Vec::new();
        for (key, (condition, message)) in open.iter() {
            out.extend(
                esc.update(key, true, now, message)
                    .into_iter()
                    .map(|a| (*condition, a)),
            );
        }
        out
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The model a key names (`model/condition`).
fn model_of(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(m, _)| m)
}

/// Sends alerts: the log, metrics, and the webhook (in the background).
pub fn deliver(state: &AppState, rt: &Runtime, alerts: Vec<(Condition, Alert)>) {
    for (condition, a) in alerts {
        let model = model_of(&a.key).to_string();
        state
            .metrics
            .alerts
            .get_or_create(&metrics::AlertLabel {
                model: model.clone(),
                condition: condition.as_str(),
                state: a.state,
            })
            .inc();
        tracing::warn!(
            model,
            condition = condition.as_str(),
            state = a.state,
            level = a.level,
            notify = ?a.notify,
            message = a.message,
            "model monitor alert"
        );
        if let Some(url) = &rt.alerts.webhook {
            let payload = json!({
                "event": "mlsec.gateway.monitor",
                "ts": crate::handler::now_rfc3339(),
                "model": model,
                "condition": condition.as_str(),
                "state": a.state,
                "level": a.level,
                "notify": a.notify,
                "message": a.message,
                "since": a.since,
                "at": a.at,
            });
            crate::proxy::notify(&state.client, url, &payload, "monitor.webhook");
        }
    }
}

/// Stage 6b: a monitored model's request features, scored and windowed.
pub fn on_request(state: &AppState, rt: &Runtime, call: &Call, ctx: &mut Ctx) {
    let Some(mon) = &call.model.monitor else {
        return;
    };
    let Some(o) = mon.observe_request(call) else {
        return;
    };
    let label = metrics::ModelLabel {
        model: call.model_name.clone(),
    };
    state
        .metrics
        .ood_score
        .get_or_create(&label)
        .observe(o.ood_score);
    if o.ood {
        state.metrics.ood_requests.get_or_create(&label).inc();
    }
    ctx.decisions.push(format!(
        "monitor: ood score {:.4}{}",
        o.ood_score,
        if o.ood { " (out of distribution)" } else { "" }
    ));
    if o.skipped > 0 {
        ctx.decisions.push(format!(
            "monitor: {} rows observed, {} past the {MAX_ROWS}-row limit not observed",
            o.rows, o.skipped
        ));
    }
    if let Some(w) = o.window {
        state
            .metrics
            .drift_windows
            .get_or_create(&metrics::WindowLabel {
                model: call.model_name.clone(),
                drift: if w.drifted.is_empty() { "no" } else { "yes" },
            })
            .inc();
        state
            .metrics
            .drifted_features
            .get_or_create(&label)
            .set(i64::try_from(w.drifted.len()).unwrap_or(i64::MAX));
        let t = now();
        let drift_msg = if w.drifted.is_empty() {
            format!("window {}: no feature drifted", w.index)
        } else {
            format!(
                "window {} ({} rows): {}",
                w.index,
                w.requests,
                w.drifted
                    .iter()
                    .map(|(f, why)| format!("{f}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        let mut alerts = rt.alerts.set(
            &call.model_name,
            Condition::Drift,
            !w.drifted.is_empty(),
            drift_msg,
            t,
        );
        alerts.extend(rt.alerts.set(
            &call.model_name,
            Condition::OodRate,
            w.ood_rate > mon.config.max_ood_rate,
            format!(
                "window {}: {:.1}% of rows out of distribution (threshold {:.1}%)",
                w.index,
                w.ood_rate * 100.0,
                mon.config.max_ood_rate * 100.0
            ),
            t,
        ));
        deliver(state, rt, alerts);
    }
}

/// Stage 7c: a monitored model's response probabilities.
pub fn on_response(state: &AppState, call: &Call, body: &[u8], ctx: &mut Ctx) {
    let Some(mon) = &call.model.monitor else {
        return;
    };
    let Some((s, entropies)) = mon.observe_response(body) else {
        return;
    };
    let label = metrics::ModelLabel {
        model: call.model_name.clone(),
    };
    if s.rows == 0 {
        state.metrics.unscored.get_or_create(&label).inc();
        ctx.decisions
            .push("monitor: no class probabilities found in the response".into());
        return;
    }
    let h = state.metrics.output_entropy.get_or_create(&label);
    for e in entropies {
        h.observe(e);
    }
    if s.low > 0 {
        state
            .metrics
            .low_confidence
            .get_or_create(&label)
            .inc_by(s.low as u64);
        ctx.decisions.push(format!(
            "monitor: {} of {} outputs low-confidence",
            s.low, s.rows
        ));
    }
}

/// Stage 8c: a finished request's status and latency, and the conditions of a closed window.
pub fn on_finish(
    state: &AppState,
    rt: &Runtime,
    model: Option<&str>,
    status: StatusCode,
    latency: Duration,
) {
    let Some((name, mon)) = model.and_then(|m| {
        rt.models
            .get(m)
            .and_then(|x| x.monitor.as_ref())
            .map(|mon| (m, mon))
    }) else {
        return;
    };
    let Some(w) = mon.finish(status, latency) else {
        return;
    };
    let t = now();
    let c = &mon.config;
    let mut alerts = rt.alerts.set(
        name,
        Condition::ErrorRate,
        w.error_rate > c.max_error_rate,
        format!(
            "{:.1}% of the last {} requests failed (threshold {:.1}%)",
            w.error_rate * 100.0,
            w.requests,
            c.max_error_rate * 100.0
        ),
        t,
    );
    if let Some(rate) = w.low_confidence_rate {
        alerts.extend(rt.alerts.set(
            name,
            Condition::LowConfidence,
            rate > c.max_low_confidence_rate,
            format!(
                "{:.1}% of outputs in the last {} requests were low-confidence (threshold {:.1}%)",
                rate * 100.0,
                w.requests,
                c.max_low_confidence_rate * 100.0
            ),
            t,
        ));
    }
    if let (Some(max), Some(p99)) = (c.max_latency_ms, w.p99_ms) {
        alerts.extend(rt.alerts.set(
            name,
            Condition::Latency,
            p99 > max as f64,
            format!(
                "p99 latency {p99:.0} ms over the last {} requests (threshold {max} ms)",
                w.requests
            ),
            t,
        ));
    }
    deliver(state, rt, alerts);
}

/// Re-checks open conditions on the configured tick, for as long as the gateway runs.
pub async fn tick_loop(state: crate::SharedState) {
    loop {
        let every = state.runtime.load().alerts.tick;
        tokio::time::sleep(every).await;
        let rt = state.runtime.load_full();
        let alerts = rt.alerts.tick(now());
        deliver(&state, &rt, alerts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(source: &str, protocol: Protocol, body: &Value) -> Vec<Vec<f64>> {
        probability_rows(
            &Source::probabilities(source, protocol).expect("source"),
            body,
        )
    }

    #[test]
    fn sources_parse_by_protocol() {
        assert!(Source::feature("/a/~1b/*", Protocol::Json).is_ok());
        assert_eq!(
            Source::feature("/a/~1b/*", Protocol::Json).unwrap(),
            Source::Pointer(vec![Seg::Key("a".into()), Seg::Key("/b".into()), Seg::Each])
        );
        assert!(Source::feature("input:x:2", Protocol::Oip).is_ok());
        assert!(Source::feature("input:x:2", Protocol::Json).is_err());
        assert!(Source::feature("input:x:two", Protocol::Oip).is_err());
        assert!(Source::feature("prompt_chars", Protocol::Openai).is_ok());
        assert!(Source::feature("prompt_chars", Protocol::Oip).is_err());
        assert!(Source::feature("amount", Protocol::Json).is_err());
        assert!(Source::probabilities("logprobs", Protocol::Json).is_err());
        assert!(Source::probabilities("output:", Protocol::Oip).is_err());
        let deep = format!("/{}", vec!["a"; 40].join("/"));
        assert!(Source::feature(&deep, Protocol::Json).is_err());
    }

    #[test]
    fn probabilities_are_read_from_every_shape() {
        assert_eq!(
            rows(
                "/probabilities",
                Protocol::Json,
                &json!({"probabilities": [0.2, 0.8]})
            ),
            vec![vec![0.2, 0.8]]
        );
        assert_eq!(
            rows(
                "/predictions",
                Protocol::Json,
                &json!({"predictions": [[0.2, 0.8], [0.5, 0.5]]})
            )
            .len(),
            2
        );
        assert_eq!(
            rows(
                "/predictions/*/scores",
                Protocol::Json,
                &json!({"predictions": [{"scores": {"cat": 0.9, "dog": 0.1}}, {"scores": [0.3, 0.7]}]})
            ),
            vec![vec![0.9, 0.1], vec![0.3, 0.7]]
        );
        assert_eq!(
            rows(
                "output:probs",
                Protocol::Oip,
                &json!({"outputs": [{"name": "probs", "shape": [2, 3], "datatype": "FP32", "data": [0.1, 0.2, 0.7, 0.3, 0.3, 0.4]}]})
            ),
            vec![vec![0.1, 0.2, 0.7], vec![0.3, 0.3, 0.4]]
        );
        let lp = rows(
            "logprobs",
            Protocol::Openai,
            &json!({"choices": [{"logprobs": {"content": [{"token": "yes", "logprob": -0.1, "top_logprobs": [{"token": "yes", "logprob": -0.1}, {"token": "no", "logprob": -2.4}]}]}}]}),
        );
        assert_eq!(lp.len(), 1);
        assert!((lp[0][0] - (-0.1f64).exp()).abs() < 1e-12);
        let legacy = rows(
            "logprobs",
            Protocol::Openai,
            &json!({"choices": [{"logprobs": {"top_logprobs": [{"A": -0.5, "B": -1.0}]}}]}),
        );
        assert_eq!(legacy[0].len(), 2);
        // Nothing usable: no rows (counted as unscored by the caller), never a panic.
        for body in [
            json!({"probabilities": "high"}),
            json!({"outputs": [{"name": "probs", "shape": [1, 1], "data": [1.0]}]}),
            json!([1, 2]),
        ] {
            assert!(rows("/probabilities", Protocol::Json, &body).is_empty());
            assert!(rows("output:probs", Protocol::Oip, &body).is_empty());
        }
    }

    #[test]
    fn pointer_rows_stay_aligned_and_bounded() {
        let body = json!({"instances": [{"a": 1, "b": 2}, {"b": 3}, {"a": "4.5", "b": true}]});
        let mut out = Vec::new();
        let Source::Pointer(segs) = Source::feature("/instances/*/a", Protocol::Json).unwrap()
        else {
            unreachable!()
        };
        at_pointer(&body, &segs, &mut out);
        let nums: Vec<Option<f64>> = out.into_iter().map(|v| v.and_then(number)).collect();
        assert_eq!(nums, vec![Some(1.0), None, Some(4.5)]);
        let big = json!({"xs": vec![1; 5_000]});
        let mut out = Vec::new();
        at_pointer(&big, &[Seg::Key("xs".into()), Seg::Each], &mut out);
        assert_eq!(out.len(), MAX_ROWS);
    }

    #[test]
    fn alerts_escalate_and_resolve_per_model_and_condition() {
        let a = Alerts::new(&MonitorConfig {
            webhook: None,
            escalation: vec![
                Escalation {
                    after_secs: 0,
                    level: "warning".into(),
                    notify: vec!["oncall".into()],
                },
                Escalation {
                    after_secs: 600,
                    level: "critical".into(),
                    notify: vec!["lead".into()],
                },
            ],
            tick_secs: 10,
        });
        let fired = a.set("org/fraud", Condition::Drift, true, "amount".into(), 1_000);
        assert_eq!(fired.len(), 1);
        assert_eq!(model_of(&fired[0].1.key), "org/fraud");
        assert!(a.tick(1_300).is_empty());
        let later = a.tick(1_700);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].1.level, "critical");
        // Another model's condition is its own.
        assert_eq!(
            a.set("other", Condition::Drift, true, "x".into(), 1_700)
                .len(),
            1
        );
        let resolved = a.set("org/fraud", Condition::Drift, false, "ok".into(), 1_800);
        assert_eq!(resolved[0].1.state, "resolved");
        assert!(
            a.tick(5_000)
                .iter()
                .all(|(_, x)| model_of(&x.key) == "other")
        );
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<f64>().prop_map(|x| json!(x)),
            (-5i64..5).prop_map(|x| json!(x)),
            "[a-z0-9.~/*]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 256, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("inputs".to_string()),
                        Just("outputs".to_string()),
                        Just("name".to_string()),
                        Just("shape".to_string()),
                        Just("data".to_string()),
                        Just("choices".to_string()),
                        Just("logprobs".to_string()),
                        Just("content".to_string()),
                        Just("top_logprobs".to_string()),
                        Just("a".to_string()),
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn any_body_never_panics_and_stays_bounded(v in json_value()) {
            let body = match &v {
                Value::Object(m) => m.clone(),
                other => {
                    let mut m = Map::new();
                    m.insert("a".into(), other.clone());
                    m
                }
            };
            for (text, protocol) in [
                ("/a/*/*", Protocol::Json),
                ("/inputs/0/data/*", Protocol::Json),
                ("input:x:1", Protocol::Oip),
                ("prompt_chars", Protocol::Openai),
                ("messages", Protocol::Openai),
            ] {
                let s = Source::feature(text, protocol).expect("source");
                for k in [RouteKind::Chat, RouteKind::Completions, RouteKind::Predict] {
                    proptest::prop_assert!(feature_values(&s, k, &body, None).len() <= MAX_ROWS);
                }
            }
            for (text, protocol) in [
                ("/a", Protocol::Json),
                ("/a/*", Protocol::Json),
                ("output:x", Protocol::Oip),
                ("logprobs", Protocol::Openai),
            ] {
                let s = Source::probabilities(text, protocol).expect("source");
                for r in probability_rows(&s, &v) {
                    proptest::prop_assert!(r.len() <= MAX_CLASSES);
                }
            }
        }
    }
}
