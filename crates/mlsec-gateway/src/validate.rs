//! Request validation for the OpenAI-compatible routes: a parameter allowlist per route, clamps,
//! per-policy refusals (logprobs, n > 1, tools, system messages) and the token estimate the
//! quota reservation uses. Also the JSON Schema check of generic prediction routes.

use std::path::Path;

use serde_json::{Map, Value};

use crate::config::{Policy, RouteKind};
use crate::error::ApiError;

/// Most messages in one chat request.
pub const MAX_MESSAGES: usize = 4096;
/// Largest JSON Schema file read.
pub const MAX_SCHEMA_BYTES: u64 = 1 << 20;
/// Deepest JSON accepted in a request body (serde_json's own limit is 128).
pub const MAX_JSON_DEPTH: usize = 64;

const COMMON_SAMPLING: &[&str] = &[
    "model",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "user",
    "seed",
    "max_tokens",
    // vLLM / TGI / llama.cpp sampling extensions.
    "top_k",
    "min_p",
    "repetition_penalty",
    "length_penalty",
    "min_tokens",
    "stop_token_ids",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
];

const CHAT_ONLY: &[&str] = &[
    "messages",
    "max_completion_tokens",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "metadata",
    "store",
    "reasoning_effort",
    "service_tier",
    "modalities",
    "prediction",
    "verbosity",
];

const COMPLETIONS_ONLY: &[&str] = &["prompt", "suffix", "echo", "best_of"];

const EMBEDDINGS: &[&str] = &["model", "input", "encoding_format", "dimensions", "user"];

const RESPONSES: &[&str] = &[
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "stream",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "metadata",
    "store",
    "include",
    "truncation",
    "user",
    "top_logprobs",
    "previous_response_id",
];

/// Parameters refused whatever the policy, with the reason.
const NEVER: &[(&str, &str)] = &[
    (
        "chat_template",
        "a client-supplied chat template is code the model server runs",
    ),
    (
        "chat_template_kwargs",
        "client-supplied chat template arguments change how instructions are framed",
    ),
    (
        "add_generation_prompt",
        "client-controlled prompt framing is not allowed",
    ),
];

const ROLES: &[&str] = &[
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// What validation decided about a request.
#[derive(Debug, Clone, Default)]
pub struct Checked {
    pub model: String,
    pub stream: bool,
    /// Estimated prompt tokens (bytes / 4, plus framing per message).
    pub prompt_tokens: u64,
    /// Completion tokens the request may use (after clamping).
    pub max_tokens: u64,
    /// Human-readable decisions taken (clamps, stream usage), for the audit log.
    pub decisions: Vec<String>,
}

fn allowed(route: RouteKind, key: &str) -> bool {
    match route {
        RouteKind::Chat => COMMON_SAMPLING.contains(&key) || CHAT_ONLY.contains(&key),
        RouteKind::Completions => COMMON_SAMPLING.contains(&key) || COMPLETIONS_ONLY.contains(&key),
        RouteKind::Embeddings => EMBEDDINGS.contains(&key),
        RouteKind::Responses => RESPONSES.contains(&key),
        _ => true,
    }
}

/// Parses a JSON request body into an object (with a depth limit).
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if depth_exceeds(bytes, MAX_JSON_DEPTH) {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("request body nests deeper than {MAX_JSON_DEPTH} levels"),
        ));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )),
    }
}

/// True when brackets nest deeper than `max` (strings skipped).
fn depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    for &b in bytes {
        if in_str {
            match (esc, b) {
                (true, _) => esc = false,
                (false, b'\\') => esc = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

fn text_bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        Value::Array(a) => a.iter().map(text_bytes).sum(),
        Value::Object(o) => o.values().map(text_bytes).sum(),
        Value::Number(_) => 4,
        _ => 0,
    }
}

fn as_u64(body: &Map<String, Value>, key: &str) -> Result<Option<u64>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_parameter",
                format!("{key} must be a non-negative integer"),
            )
            .param(key)
        }),
    }
}

fn refuse(param: &str, why: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "parameter_not_allowed",
        format!("{param} is not allowed for this key: {why}"),
    )
    .param(param)
}

/// The fields that bound a completion's length on a route. An upstream may honour any of them
/// (vLLM reads `max_completion_tokens` before `max_tokens`; others read only `max_tokens`), so
/// every one present is clamped, not only the one the gateway prefers.
fn token_fields(route: RouteKind) -> &'static [&'static str] {
    match route {
        RouteKind::Chat => &["max_completion_tokens", "max_tokens"],
        RouteKind::Responses => &["max_output_tokens"],
        _ => &["max_tokens"],
    }
}

/// Clamps every length bound of the request to the policy's ceiling (setting one when none is
/// given, dropping explicit nulls, which some servers read as "unbounded"), and `min_tokens` to
/// what is granted. Returns the most tokens one completion may use.
fn clamp_tokens(
    route: RouteKind,
    body: &mut Map<String, Value>,
    ceiling: u64,
    checked: &mut Checked,
) -> Result<u64, ApiError> {
    let fields = token_fields(route);
    let mut granted: Option<u64> = None;
    for &field in fields {
        let asked = as_u64(body, field)?;
        if asked.is_none() && body.remove(field).is_some() {
            checked.decisions.push(format!(
                "removed {field}: null (read as unbounded by some servers)"
            ));
        }
        let Some(n) = asked else { continue };
        let g = if n > ceiling {
            checked
                .decisions
                .push(format!("clamped {field} from {n} to {ceiling}"));
            body.insert(field.to_string(), Value::from(ceiling));
            ceiling
        } else {
            n
        };
        granted = Some(granted.map_or(g, |x| x.max(g)));
    }
    let granted = if let Some(g) = granted {
        g
    } else {
        let field = fields.last().copied().unwrap_or("max_tokens");
        checked
            .decisions
            .push(format!("set {field} to the policy ceiling {ceiling}"));
        body.insert(field.to_string(), Value::from(ceiling));
        ceiling
    };
    if let Some(min) = as_u64(body, "min_tokens")?
        && min > granted
    {
        checked
            .decisions
            .push(format!("clamped min_tokens from {min} to {granted}"));
        body.insert("min_tokens".into(), Value::from(granted));
    }
    Ok(granted)
}

/// Checks and rewrites an OpenAI-style request body in place.
pub fn openai_request(
    route: RouteKind,
    body: &mut Map<String, Value>,
    policy: &Policy,
) -> Result<Checked, ApiError> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "model must be a non-empty string",
            )
            .param("model"));
        }
        None => {
            return Err(
                ApiError::bad_request("missing_parameter", "model is required").param("model"),
            );
        }
    };
    for (k, why) in NEVER {
        if body.contains_key(*k) {
            return Err(refuse(k, why));
        }
    }
    if let Some(k) = body.keys().find(|k| !allowed(route, k)) {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("unknown parameter {k:?} for this route"),
        )
        .param(k.clone()));
    }
    let mut checked = Checked {
        model,
        ..Checked::default()
    };
    checked.stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(
                ApiError::bad_request("invalid_parameter", "stream must be a boolean")
                    .param("stream"),
            );
        }
    };

    if !policy.allow_logprobs {
        for k in ["logprobs", "top_logprobs"] {
            match body.get(k) {
                None | Some(Value::Null | Value::Bool(false)) => {}
                Some(Value::Number(n))
                    if n.as_u64() == Some(0) && route == RouteKind::Completions => {}
                Some(_) => return Err(refuse(k, "log-probabilities help extract the model")),
            }
        }
    }
    for k in ["n", "best_of"] {
        if let Some(n) = as_u64(body, k)?
            && n > u64::from(policy.max_n)
        {
            return Err(refuse(k, &format!("at most {} choices", policy.max_n)));
        }
    }
    if !policy.allow_tools {
        for k in ["tools", "tool_choice", "functions", "function_call"] {
            if body.get(k).is_some_and(|v| !v.is_null()) {
                return Err(refuse(k, "tool use is not granted"));
            }
        }
    }

    match route {
        RouteKind::Chat => {
            let Some(Value::Array(msgs)) = body.get("messages") else {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    "messages must be an array",
                )
                .param("messages"));
            };
            if msgs.is_empty() || msgs.len() > MAX_MESSAGES {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("messages must hold 1 to {MAX_MESSAGES} messages"),
                )
                .param("messages"));
            }
            for (i, m) in msgs.iter().enumerate() {
                let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_parameter",
                        format!("messages[{i}].role must be a string"),
                    )
                    .param(format!("messages[{i}].role"))
                })?;
                if !ROLES.contains(&role) {
                    return Err(ApiError::bad_request(
                        "invalid_parameter",
                        format!("messages[{i}].role {role:?} is not a known role"),
                    )
                    .param(format!("messages[{i}].role")));
                }
                if matches!(role, "system" | "developer") && !policy.allow_system_messages {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "system_message_not_allowed",
                        "this key may not send system or developer messages: the gateway owns the instructions",
                    )
                    .param(format!("messages[{i}]")));
                }
                checked.prompt_tokens +=
                    4 + text_bytes(m.get("content").unwrap_or(&Value::Null)).div_ceil(4);
            }
        }
        RouteKind::Completions => {
            let p = body.get("prompt").ok_or_else(|| {
                ApiError::bad_request("missing_parameter", "prompt is required").param("prompt")
            })?;
            checked.prompt_tokens = text_bytes(p).div_ceil(4) + 1;
        }
        RouteKind::Embeddings => {
            let i = body.get("input").ok_or_else(|| {
                ApiError::bad_request("missing_parameter", "input is required").param("input")
            })?;
            checked.prompt_tokens = text_bytes(i).div_ceil(4) + 1;
        }
        RouteKind::Responses => {
            let i = body.get("input").ok_or_else(|| {
                ApiError::bad_request("missing_parameter", "input is required").param("input")
            })?;
            if !policy.allow_system_messages
                && body.get("instructions").is_some_and(|v| !v.is_null())
            {
                return Err(ApiError::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "system_message_not_allowed",
                    "this key may not send instructions: the gateway owns them",
                )
                .param("instructions"));
            }
            checked.prompt_tokens = text_bytes(i).div_ceil(4)
                + body
                    .get("instructions")
                    .map_or(0, |v| text_bytes(v).div_ceil(4))
                + 1;
        }
        _ => {}
    }

    if route != RouteKind::Embeddings {
        let granted = clamp_tokens(route, body, u64::from(policy.max_tokens), &mut checked)?;
        let n = as_u64(body, "n")?
            .unwrap_or(1)
            .max(as_u64(body, "best_of")?.unwrap_or(1));
        checked.max_tokens = granted.saturating_mul(n);
    }

    if checked.stream && matches!(route, RouteKind::Chat | RouteKind::Completions) {
        let opts = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        match opts {
            Value::Object(o) => {
                if o.get("include_usage") != Some(&Value::Bool(true)) {
                    o.insert("include_usage".into(), Value::Bool(true));
                    checked
                        .decisions
                        .push("asked the upstream for usage on the stream".into());
                }
            }
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    "stream_options must be an object",
                )
                .param("stream_options"));
            }
        }
    }
    Ok(checked)
}

/// Why a route's JSON Schema file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: larger than the {MAX_SCHEMA_BYTES}-byte limit for a schema", path.display())]
    TooLarge { path: std::path::PathBuf },
    #[error("{}: not JSON: {source}", path.display())]
    NotJson {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: not a valid JSON Schema: {reason}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        reason: String,
    },
}

/// Reads and compiles a JSON Schema file.
pub fn load_schema(path: &Path) -> Result<jsonschema::Validator, SchemaError> {
    let read = |source| SchemaError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.len() > MAX_SCHEMA_BYTES {
        return Err(SchemaError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let v: Value = serde_json::from_str(&text).map_err(|source| SchemaError::NotJson {
        path: path.to_path_buf(),
        source,
    })?;
    jsonschema::validator_for(&v).map_err(|e| SchemaError::Invalid {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Checks a body against a route's schema; the first few violations name their JSON pointer.
pub fn against_schema(schema: &jsonschema::Validator, body: &Value) -> Result<(), ApiError> {
    let errors: Vec<String> = schema
        .iter_errors(body)
        .take(5)
        .map(|e| {
            let at = e.instance_path.to_string();
            format!("{}: {e}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "schema_violation",
            format!(
                "request does not match the route's schema: {}",
                errors.join("; ")
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_limit_ignores_brackets_in_strings() {
        assert!(!depth_exceeds(br#"{"a":"[[[[[[[[[[[[[[[[[[[["}"#, 3));
        assert!(depth_exceeds(b"[[[[", 3));
    }
}
