//! Where request and response checks plug in, chosen by a policy's `guard`:
//! * `default` passes everything;
//! * `injection` runs `mlsec-guard`'s prompt-injection detector on every user turn (direct
//!   injection) and every tool or function result (indirect injection, with its own lower
//!   threshold) of chat, completions, responses and template calls, and refuses the request
//!   with 403 `prompt_injection`, the score and the reason codes (never the text).
//!
//! The pipeline calls [`Guard::request`] after validation and before limits are charged. What
//! responses may carry is the policy's output checks (`crate::output`).

use mlsec_guard::Source;
use serde_json::{Map, Value};

use crate::config::RouteKind;

/// What a guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Refuse with this stable code and reason (recorded in the audit log).
    Block {
        code: &'static str,
        reason: String,
    },
}

/// The context a guard sees.
pub struct GuardContext<'a> {
    pub route: RouteKind,
    pub model: &'a str,
    pub principal: &'a str,
}

pub trait Guard: Send + Sync {
    fn name(&self) -> &'static str;
    fn request(&self, ctx: &GuardContext<'_>, body: &Map<String, Value>) -> Verdict;
}

/// The `default` profile: no content checks.
pub struct PassThrough;

impl Guard for PassThrough {
    fn name(&self) -> &'static str {
        "default"
    }
    fn request(&self, _: &GuardContext<'_>, _: &Map<String, Value>) -> Verdict {
        Verdict::Pass
    }
}

/// The guard profiles a policy may name.
pub const PROFILES: &[&str] = &["default", "injection"];

/// A second tier and its grey zone.
pub type TierRt = (std::sync::Arc<mlsec_guard::tier::Tier>, (f32, f32));

/// The guard for a profile name (config checking already refused unknown names).
pub fn profile(name: &str, tier: Option<TierRt>) -> std::sync::Arc<dyn Guard> {
    match name {
        "injection" => {
            let mut g = Injection::new();
            if let Some((t, grey)) = tier {
                g.detector = g.detector.with_tier(t, grey);
            }
            std::sync::Arc::new(g)
        }
        _ => std::sync::Arc::new(PassThrough),
    }
}

/// The `injection` profile.
pub struct Injection {
    detector: mlsec_guard::Detector,
}

impl Injection {
    pub fn new() -> Self {
        Self {
            detector: mlsec_guard::Detector::builtin(),
        }
    }
}

impl Default for Injection {
    fn default() -> Self {
        Self::new()
    }
}

/// The text of a message `content`: a string, or the text parts of an array of parts.
fn content_texts<'a>(content: &'a Value, out: &mut Vec<&'a str>) {
    match content {
        Value::String(s) => out.push(s),
        Value::Array(parts) => {
            for p in parts {
                match p {
                    Value::String(s) => out.push(s),
                    Value::Object(o) => {
                        for k in ["text", "output", "content"] {
                            if let Some(v) = o.get(k) {
                                content_texts(v, out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Every text of a request the detector judges, with its source and where it sits.
pub fn request_texts<'a>(
    route: RouteKind,
    body: &'a Map<String, Value>,
) -> Vec<(&'a str, Source, String)> {
    let mut out = Vec::new();
    let mut push = |v: &'a Value, source: Source, at: String| {
        let mut texts = Vec::new();
        content_texts(v, &mut texts);
        for t in texts {
            out.push((t, source, at.clone()));
        }
    };
    match route {
        RouteKind::Chat | RouteKind::Template => {
            for (i, m) in body
                .get("messages")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("");
                let source = match role {
                    "user" => Source::User,
                    "tool" | "function" => Source::Retrieved,
                    // The caller's own instructions and the model's earlier turns.
                    _ => continue,
                };
                if let Some(c) = m.get("content") {
                    push(c, source, format!("messages[{i}]"));
                }
            }
        }
        RouteKind::Completions => {
            if let Some(p) = body.get("prompt") {
                push(p, Source::User, "prompt".into());
            }
        }
        RouteKind::Responses => match body.get("input") {
            Some(s @ Value::String(_)) => push(s, Source::User, "input".into()),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let role = item.get("role").and_then(Value::as_str);
                    let kind = item.get("type").and_then(Value::as_str);
                    let (field, source) = match (role, kind) {
                        (Some("user"), _) => ("content", Source::User),
                        (_, Some("function_call_output" | "custom_tool_call_output")) => {
                            ("output", Source::Retrieved)
                        }
                        _ => continue,
                    };
                    if let Some(c) = item.get(field) {
                        push(c, source, format!("input[{i}]"));
                    }
                }
            }
            _ => {}
        },
        RouteKind::Embeddings | RouteKind::Models | RouteKind::Infer | RouteKind::Predict => {}
    }
    out
}

impl Guard for Injection {
    fn name(&self) -> &'static str {
        "injection"
    }

    fn request(&self, ctx: &GuardContext<'_>, body: &Map<String, Value>) -> Verdict {
        for (text, source, at) in request_texts(ctx.route, body) {
            let v = self.detector.check(text, source);
            if v.injection {
                let kind = match source {
                    Source::User => "prompt injection",
                    Source::Retrieved => "indirect prompt injection in tool output",
                };
                return Verdict::Block {
                    code: "prompt_injection",
                    reason: format!(
                        "{kind} in {at} (score {:.2}: {})",
                        v.score,
                        v.reasons.join(", ")
                    ),
                };
            }
        }
        Verdict::Pass
    }
}
