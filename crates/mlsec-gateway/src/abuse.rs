//! Abuse and model-extraction detection per principal: a policy's `[policies.<name>.abuse]`.
//!
//! Every request under such a policy becomes an `mlsec_guard::abuse::Event` (a hash and MinHash
//! signature of its prompt, whether it asks for log-probabilities or a large embedding batch,
//! the numeric input of classifier and prediction routes) in the principal's sliding window. The
//! window's features raise signals (scraping, templated sweeps, bulk extraction, PRADA), and a
//! signal leads to the policy's action:
//!
//! * `alert`: the request passes; the webhook is told (once per cool-down);
//! * `throttle`: for the cool-down, the principal gets `throttle_per_minute` requests
//!   (429 `abuse_throttled` beyond);
//! * `block`: for the cool-down, the principal is refused (403 `abuse_detected`).
//!
//! Every signal is counted (`mlsec_gateway_abuse_signals`) and goes to the audit record. The
//! windows live where the limits live: in memory, or in Redis when replicas share state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use mlsec_guard::abuse::{Event, Features, Limits, MAX_EVENTS, Signal, Window};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::RouteKind;
use crate::error::ApiError;
use crate::limits::{Backend, BackendError, timed};

/// Principals kept in memory; beyond it, those idle longest are forgotten first.
pub const MAX_PRINCIPALS: usize = 100_000;

/// What a signal leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Alert,
    Throttle,
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Throttle => "throttle",
            Action::Block => "block",
        }
    }
}

/// `[policies.<name>.abuse]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseConfig {
    #[serde(default)]
    pub action: Action,
    /// The sliding window.
    #[serde(default = "default_window")]
    pub window_secs: u64,
    /// How long a throttle or block lasts, and how often the webhook hears of one principal.
    #[serde(default = "default_cooldown")]
    pub cooldown_secs: u64,
    /// Requests a throttled principal gets per minute.
    #[serde(default = "default_throttle")]
    pub throttle_per_minute: u32,
    /// Told of every signal (JSON POST); loopback or an internal alerting endpoint.
    pub webhook: Option<String>,
    pub scrape_requests: Option<usize>,
    pub min_requests: Option<usize>,
    pub sweep_ratio: Option<f32>,
    pub bulk_ratio: Option<f32>,
    pub min_points: Option<usize>,
    pub prada_w: Option<f32>,
}

fn default_window() -> u64 {
    300
}
fn default_cooldown() -> u64 {
    600
}
fn default_throttle() -> u32 {
    6
}

impl AbuseConfig {
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        Limits {
            scrape_requests: self.scrape_requests.unwrap_or(d.scrape_requests),
            min_requests: self.min_requests.unwrap_or(d.min_requests),
            sweep_ratio: self.sweep_ratio.unwrap_or(d.sweep_ratio),
            bulk_ratio: self.bulk_ratio.unwrap_or(d.bulk_ratio),
            min_points: self.min_points.unwrap_or(d.min_points),
            prada_w: self.prada_w.unwrap_or(d.prada_w),
        }
    }

    /// Problems, with the field each is in.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=86_400).contains(&self.window_secs) {
            out.push(("window_secs", "must be 1 to 86400".to_string()));
        }
        if self.cooldown_secs == 0 {
            out.push(("cooldown_secs", "must be at least 1".to_string()));
        }
        if self.throttle_per_minute == 0 {
            out.push((
                "throttle_per_minute",
                "must be at least 1 (use action = \"block\" to refuse)".to_string(),
            ));
        }
        for (field, v) in [
            ("sweep_ratio", self.sweep_ratio),
            ("bulk_ratio", self.bulk_ratio),
            ("prada_w", self.prada_w),
        ] {
            if let Some(v) = v
                && !(v > 0.0 && v <= 1.0)
            {
                out.push((field, format!("{v} is outside (0, 1]")));
            }
        }
        if self.min_points.is_some_and(|n| n < 8) {
            out.push((
                "min_points",
                "must be at least 8 (a normality test needs data)".into(),
            ));
        }
        if self.min_requests.is_some_and(|n| n == 0 || n > MAX_EVENTS) {
            out.push(("min_requests", format!("must be 1 to {MAX_EVENTS}")));
        }
        if self.scrape_requests.is_some_and(|n| n >= MAX_EVENTS) {
            out.push((
                "scrape_requests",
                format!("must be below {MAX_EVENTS} (the events a window keeps)"),
            ));
        }
        if let Some(w) = &self.webhook
            && !(w.starts_with("http://") || w.starts_with("https://"))
        {
            out.push(("webhook", "must be an http:// or https:// URL".into()));
        }
        out
    }
}

/// The text of a request a principal chose: the last user turn, the prompt, the input.
fn prompt_of(route: RouteKind, body: &Map<String, Value>) -> String {
    let join = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|x| match x {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o
                    .get("text")
                    .or_else(|| o.get("content"))
                    .and_then(Value::as_str)
                    .map(String::from),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    };
    match route {
        RouteKind::Chat | RouteKind::Template => body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| {
                m.iter()
                    .rev()
                    .find(|x| x.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|m| m.get("content"))
            .map(join)
            .unwrap_or_default(),
        RouteKind::Completions => body.get("prompt").map(join).unwrap_or_default(),
        RouteKind::Responses => match body.get("input") {
            Some(Value::Array(items)) => items
                .iter()
                .rev()
                .find(|x| x.get("role").and_then(Value::as_str) == Some("user"))
                .and_then(|m| m.get("content"))
                .map(join)
                .unwrap_or_default(),
            Some(v) => join(v),
            None => String::new(),
        },
        RouteKind::Embeddings => body.get("input").map(join).unwrap_or_default(),
        _ => String::new(),
    }
}

/// Embedding batches from this size count as bulk.
pub const BULK_EMBEDDINGS: usize = 16;

fn is_bulk(route: RouteKind, body: &Map<String, Value>) -> bool {
    let truthy = |k: &str| match body.get(k) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x > 0.0),
        _ => false,
    };
    match route {
        RouteKind::Embeddings => body
            .get("input")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() >= BULK_EMBEDDINGS),
        _ => truthy("logprobs") || truthy("top_logprobs") || truthy("echo"),
    }
}

/// The numbers of a classifier or prediction input, in document order (at most 64).
fn point_of(route: RouteKind, body: &Map<String, Value>) -> Vec<f32> {
    fn walk(v: &Value, out: &mut Vec<f32>) {
        if out.len() >= mlsec_guard::abuse::MAX_DIMS {
            return;
        }
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    out.push(x as f32);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    match route {
        RouteKind::Infer => {
            for i in body
                .get("inputs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(d) = i.get("data") {
                    walk(d, &mut out);
                }
            }
        }
        RouteKind::Predict => {
            for v in body.values() {
                walk(v, &mut out);
            }
        }
        _ => {}
    }
    out
}

/// The event for one request.
pub fn event(route: RouteKind, body: &Map<String, Value>, t_ms: u64) -> Event {
    Event::new(
        t_ms,
        &prompt_of(route, body),
        is_bulk(route, body),
        point_of(route, body),
    )
}

/// A principal under a throttle or block.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub action: Action,
    pub signals: String,
    pub until_ms: u64,
}

#[derive(Default)]
struct Entry {
    window: Window,
    flag: Option<Flag>,
    notified_until: u64,
}

/// Where windows live.
#[derive(Default)]
pub struct Store {
    memory: Mutex<HashMap<String, Entry>>,
}

/// What the store answered for one request.
pub struct Seen {
    pub features: Features,
    /// A throttle or block in force before this request.
    pub flag: Option<Flag>,
    /// Whether the webhook should hear of signals now (not told within the cool-down).
    pub notify: bool,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// Adds `e` to the principal's window and returns the features and any flag in force.
    pub async fn push(
        &self,
        backend: &Backend,
        key: &str,
        e: Event,
        cfg: &AbuseConfig,
    ) -> Result<Seen, BackendError> {
        match backend {
            Backend::Memory(_) => Ok(self.push_memory(key, e, cfg)),
            Backend::Redis(r) => push_redis(r, key, e, cfg).await,
        }
    }

    fn push_memory(&self, key: &str, e: Event, cfg: &AbuseConfig) -> Seen {
        let now = e.t_ms;
        let mut map = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_PRINCIPALS && !map.contains_key(key) {
            let idle = now.saturating_sub(cfg.window_secs * 1000);
            map.retain(|_, en| {
                en.window.events().back().is_some_and(|x| x.t_ms >= idle)
                    || en.flag.as_ref().is_some_and(|f| f.until_ms > now)
            });
            if map.len() >= MAX_PRINCIPALS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, en)| en.window.events().back().map_or(0, |x| x.t_ms))
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let en = map.entry(key.to_string()).or_default();
        let features = en.window.push(e, cfg.window_secs * 1000);
        let flag = en.flag.clone().filter(|f| f.until_ms > now);
        let notify = en.notified_until <= now;
        Seen {
            features,
            flag,
            notify,
        }
    }

    /// Records a throttle or block, and that the webhook was told.
    pub async fn flag(
        &self,
        backend: &Backend,
        key: &str,
        flag: Option<Flag>,
        notified_until: u64,
    ) -> Result<(), BackendError> {
        match backend {
            Backend::Memory(_) => {
                let mut map = self
                    .memory
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let en = map.entry(key.to_string()).or_default();
                if flag.is_some() {
                    en.flag = flag;
                }
                en.notified_until = en.notified_until.max(notified_until);
                Ok(())
            }
            Backend::Redis(r) => flag_redis(r, key, flag, notified_until).await,
        }
    }
}

/// Windows in Redis: a list of JSON events per principal (trimmed to the events a window keeps,
/// expiring with the window), a flag key with the cool-down as its expiry, and a "told" key.
async fn push_redis(
    r: &crate::limits::RedisBackend,
    key: &str,
    e: Event,
    cfg: &AbuseConfig,
) -> Result<Seen, BackendError> {
    let (mut c, prefix) = r.connection();
    let k = format!("{prefix}abuse:{key}");
    let (raw, flag, told): (Vec<String>, Option<String>, Option<String>) = timed(
        redis::pipe()
            .cmd("LRANGE")
            .arg(format!("{k}:events"))
            .arg(0)
            .arg(-1)
            .cmd("GET")
            .arg(format!("{k}:flag"))
            .cmd("GET")
            .arg(format!("{k}:told"))
            .query_async(&mut c),
    )
    .await?;
    let mut window = Window::from_events(
        raw.iter()
            .filter_map(|s| serde_json::from_str::<Event>(s).ok()),
    );
    let now = e.t_ms;
    let features = window.push(e, cfg.window_secs * 1000);
    let newest = window
        .events()
        .back()
        .map(|x| serde_json::to_string(x).unwrap_or_default())
        .unwrap_or_default();
    timed(
        redis::pipe()
            .cmd("RPUSH")
            .arg(format!("{k}:events"))
            .arg(newest)
            .ignore()
            .cmd("LTRIM")
            .arg(format!("{k}:events"))
            .arg(-(MAX_EVENTS as i64))
            .arg(-1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(format!("{k}:events"))
            .arg(cfg.window_secs * 1000)
            .ignore()
            .query_async::<()>(&mut c),
    )
    .await?;
    let flag = flag.and_then(|s| {
        let (action, rest) = s.split_once('|')?;
        let (until, signals) = rest.split_once('|')?;
        let action = match action {
            "throttle" => Action::Throttle,
            "block" => Action::Block,
            _ => Action::Alert,
        };
        let until_ms = until.parse().ok()?;
        (until_ms > now).then(|| Flag {
            action,
            signals: signals.to_string(),
            until_ms,
        })
    });
    Ok(Seen {
        features,
        flag,
        notify: told.is_none(),
    })
}

async fn flag_redis(
    r: &crate::limits::RedisBackend,
    key: &str,
    flag: Option<Flag>,
    notified_until: u64,
) -> Result<(), BackendError> {
    let (mut c, prefix) = r.connection();
    let k = format!("{prefix}abuse:{key}");
    let now = now_ms();
    let mut pipe = redis::pipe();
    if let Some(f) = flag {
        pipe.cmd("SET")
            .arg(format!("{k}:flag"))
            .arg(format!(
                "{}|{}|{}",
                f.action.as_str(),
                f.until_ms,
                f.signals
            ))
            .arg("PX")
            .arg(f.until_ms.saturating_sub(now).max(1))
            .ignore();
    }
    if notified_until > now {
        pipe.cmd("SET")
            .arg(format!("{k}:told"))
            .arg("1")
            .arg("PX")
            .arg(notified_until - now)
            .ignore();
    }
    timed(pipe.query_async::<()>(&mut c)).await
}

/// A short account of the features behind signals, for the audit and the webhook.
pub fn describe(signals: &[Signal], f: &Features) -> String {
    signals
        .iter()
        .map(|s| match s {
            Signal::Scraping => format!(
                "scraping ({} requests in the window, {:.0}% distinct)",
                f.requests,
                f.unique_ratio * 100.0
            ),
            Signal::TemplatedSweep => format!(
                "templated_sweep ({:.0}% near-duplicate prompts over {} requests)",
                f.sweep_ratio * 100.0,
                f.requests
            ),
            Signal::BulkExtraction => format!(
                "bulk_extraction ({:.0}% of {} requests ask for log-probabilities or embedding batches)",
                f.bulk_ratio * 100.0,
                f.requests
            ),
            Signal::Prada => format!(
                "prada (Shapiro-Wilk W {:.3} over {} query distances)",
                f.prada_w.unwrap_or(0.0),
                f.points
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The webhook's payload.
pub fn payload(
    policy: &str,
    principal: &str,
    action: Action,
    signals: &[Signal],
    f: &Features,
) -> Value {
    json!({
        "event": "mlsec.gateway.abuse",
        "ts": crate::handler::now_rfc3339(),
        "policy": policy,
        "principal": principal,
        "action": action.as_str(),
        "signals": signals.iter().map(|s| s.code()).collect::<Vec<_>>(),
        "detail": describe(signals, f),
        "features": f,
    })
}

/// The refusal for a principal under a block.
pub fn blocked(flag: &Flag) -> ApiError {
    let secs = flag.until_ms.saturating_sub(now_ms()).div_ceil(1000).max(1);
    ApiError::new(
        StatusCode::FORBIDDEN,
        "abuse_detected",
        format!(
            "requests from this principal are refused for {secs} s more: {}",
            flag.signals
        ),
    )
    .retry_after(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    #[test]
    fn events_take_the_last_user_turn_bulk_flags_and_numeric_inputs() {
        let chat = obj(json!({"messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": [{"type": "text", "text": "second question"}]}],
            "logprobs": true}));
        assert_eq!(prompt_of(RouteKind::Chat, &chat), "second question");
        assert!(is_bulk(RouteKind::Chat, &chat));
        let emb = obj(json!({"input": vec!["x"; 20]}));
        assert!(is_bulk(RouteKind::Embeddings, &emb));
        assert!(!is_bulk(RouteKind::Embeddings, &obj(json!({"input": "x"}))));
        let infer = obj(
            json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [[1.0, 2.5, -3.0]]}]}),
        );
        assert_eq!(point_of(RouteKind::Infer, &infer), vec![1.0, 2.5, -3.0]);
        let predict = obj(json!({"amount": 12.5, "age": 40, "country": "PT"}));
        assert_eq!(point_of(RouteKind::Predict, &predict).len(), 2);
    }

    #[test]
    fn config_problems_name_their_fields() {
        let c: AbuseConfig = toml::from_str(
            "throttle_per_minute = 0\nsweep_ratio = 1.5\nmin_points = 3\nwebhook = \"ftp://x\"",
        )
        .expect("parses");
        let fields: Vec<&str> = c.problems().iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                "throttle_per_minute",
                "sweep_ratio",
                "min_points",
                "webhook"
            ]
        );
    }
}
