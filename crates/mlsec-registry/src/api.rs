//! What every MLflow route shares: the error body MLflow clients understand
//! (`{"error_code": ..., "message": ...}`, which the client turns into `MlflowException` with
//! that code), the request parameters (query string for GET, JSON body otherwise) and the JSON
//! forms of the stored objects.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::store::{DbError, Experiment, LoggedModel, ModelVersion, RegisteredModel, Run, Tag};

/// Largest JSON request body.
pub const MAX_JSON_BODY: usize = 16 << 20;

/// A refused or failed request, in MLflow's error shape.
#[derive(Debug)]
pub struct MlError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl MlError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> MlError {
        MlError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", message)
    }
    pub fn not_found(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", message)
    }
    pub fn exists(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS", message)
    }
    pub fn denied(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", message)
    }
    pub fn unauthenticated(message: impl Into<String>) -> MlError {
        MlError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }
    /// A server-side failure: the detail goes to the log, the client gets a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> MlError {
        tracing::error!(error = %detail, "registry: internal error");
        MlError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "internal error (see the registry's log)",
        )
    }
}

impl From<DbError> for MlError {
    fn from(e: DbError) -> MlError {
        MlError::internal(format!("database: {e}"))
    }
}

impl IntoResponse for MlError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            axum::Json(json!({"error_code": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"mlsec-registry\""),
            );
        }
        r.extensions_mut().insert(ErrorCode(self.code));
        r
    }
}

/// The error code of a refused response, for the audit record.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

pub type Res<T = Response> = Result<T, MlError>;

pub fn ok(v: Value) -> Res {
    Ok(axum::Json(v).into_response())
}

/// Request parameters: the query string of a GET, the JSON body of anything else.
#[derive(Debug, Default)]
pub struct Params(pub Map<String, Value>);

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string; a repeated key becomes an array.
pub fn parse_query(q: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (percent_decode(k), Value::String(percent_decode(v)));
        match m.get_mut(&k) {
            Some(Value::Array(a)) => a.push(v),
            Some(old) => {
                let first = old.take();
                *old = Value::Array(vec![first, v]);
            }
            None => {
                m.insert(k, v);
            }
        }
    }
    m
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = MlError;

    async fn from_request(req: Request, _: &S) -> Result<Params, MlError> {
        if req.method() == Method::GET {
            return Ok(Params(parse_query(req.uri().query().unwrap_or(""))));
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BODY)
            .await
            .map_err(|_| {
                MlError::invalid(format!(
                    "request body unreadable or over {MAX_JSON_BODY} bytes"
                ))
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Params::default());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(Params(m)),
            Ok(_) => Err(MlError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_REQUEST",
                "the request body must be a JSON object",
            )),
            Err(e) => Err(MlError::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_REQUEST",
                format!("the request body is not valid JSON: {e}"),
            )),
        }
    }
}

impl Params {
    /// A string field (numbers are accepted as their decimal form).
    pub fn opt(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    pub fn req(&self, key: &str) -> Res<String> {
        self.opt(key).filter(|s| !s.is_empty()).ok_or_else(|| {
            MlError::invalid(format!("Missing value for required parameter '{key}'"))
        })
    }
    pub fn int(&self, key: &str) -> Res<Option<i64>> {
        match self.opt(key) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                MlError::invalid(format!("parameter '{key}' must be an integer, got {s:?}"))
            }),
        }
    }
    pub fn req_int(&self, key: &str) -> Res<i64> {
        self.int(key)?.ok_or_else(|| {
            MlError::invalid(format!("Missing value for required parameter '{key}'"))
        })
    }
    pub fn bool(&self, key: &str) -> bool {
        matches!(self.opt(key).as_deref(), Some("true" | "True" | "1"))
    }
    pub fn tags(&self, key: &str) -> Res<Vec<Tag>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|e| MlError::invalid(format!("parameter '{key}': {e}"))),
        }
    }
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.0.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
            Some(Value::String(s)) => vec![s.clone()],
            _ => Vec::new(),
        }
    }
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }
}

/// Names MLflow accepts for models and aliases, and keys of tags: bounded, printable, and no
/// path tricks (names become parts of object paths and audit records).
pub fn check_name(field: &str, name: &str) -> Res<()> {
    if name.is_empty() || name.len() > 256 {
        return Err(MlError::invalid(format!(
            "'{field}' must be 1 to 256 characters"
        )));
    }
    if name.chars().any(char::is_control)
        || name.contains(['/', '\\'])
        || name == "."
        || name == ".."
    {
        return Err(MlError::invalid(format!(
            "'{field}' {name:?} contains a control character, a slash or a path component"
        )));
    }
    Ok(())
}

fn tags_value(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

pub fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id,
        "name": e.name,
        "artifact_location": format!("mlflow-artifacts:/{}", e.id),
        "lifecycle_stage": e.lifecycle,
        "creation_time": e.created,
        "last_update_time": e.updated,
        "tags": tags_value(&e.tags),
    })
}

pub fn run_artifact_dir(r: &Run) -> String {
    format!("{}/{}/artifacts", r.experiment_id, r.id)
}

pub fn run_json(r: &Run) -> Value {
    let mut info = json!({
        "run_id": r.id,
        "run_uuid": r.id,
        "experiment_id": r.experiment_id,
        "run_name": r.name,
        "user_id": r.user_id,
        "status": r.status,
        "start_time": r.start_time,
        "artifact_uri": format!("mlflow-artifacts:/{}", run_artifact_dir(r)),
        "lifecycle_stage": r.lifecycle,
    });
    if let Some(e) = r.end_time {
        info["end_time"] = json!(e);
    }
    let mut tags = r.data.tags.clone();
    if !r.data.models.is_empty() {
        crate::store::set_tag(
            &mut tags,
            "mlflow.log-model.history",
            Some(&Value::Array(r.data.models.clone()).to_string()),
        );
    }
    json!({
        "info": info,
        "data": {
            "metrics": r.data.metrics,
            "params": tags_value(&r.data.params),
            "tags": tags_value(&tags),
        },
        "inputs": if r.data.inputs.is_null() { json!({}) } else { r.data.inputs.clone() },
        "outputs": {"model_outputs": r.data.outputs},
    })
}

pub fn logged_model_dir(m: &LoggedModel) -> String {
    format!("{}/models/{}/artifacts", m.experiment_id, m.id)
}

pub fn logged_model_json(m: &LoggedModel) -> Value {
    let mut info = json!({
        "model_id": m.id,
        "experiment_id": m.experiment_id,
        "name": m.name,
        "artifact_uri": format!("mlflow-artifacts:/{}", logged_model_dir(m)),
        "creation_timestamp_ms": m.created,
        "last_updated_timestamp_ms": m.updated,
        "status": m.status,
        "tags": tags_value(&m.data.tags),
    });
    if let Some(r) = &m.run_id {
        info["source_run_id"] = json!(r);
    }
    if let Some(t) = &m.model_type {
        info["model_type"] = json!(t);
    }
    json!({
        "info": info,
        "data": {"params": tags_value(&m.data.params), "metrics": m.data.metrics},
    })
}

/// The tags a version shows: its own, then what the registry checked (`mlsec.*`).
pub fn version_tags(v: &ModelVersion) -> Vec<Tag> {
    let mut tags = v.tags.clone();
    let c = &v.checks;
    let mut add = |k: &str, val: &str| crate::store::set_tag(&mut tags, k, Some(val));
    add("mlsec.env", &v.env);
    add("mlsec.scan", &c.scan);
    if let Some(w) = &c.worst {
        add("mlsec.scan.worst", w);
    }
    add("mlsec.signature", &c.signature);
    add("mlsec.digest", &c.digest);
    if !c.datasets.is_empty() {
        add(
            "mlsec.datasets",
            &serde_json::to_string(&c.datasets).unwrap_or_default(),
        );
        let fingerprints: Vec<&str> = c
            .datasets
            .iter()
            .filter_map(|d| d.fingerprint.as_deref())
            .collect();
        if !fingerprints.is_empty() {
            add("mlsec.dataset_fingerprints", &fingerprints.join(","));
        }
    }
    tags
}

pub fn version_json(v: &ModelVersion, aliases: &[String]) -> Value {
    let mut out = json!({
        "name": v.name,
        "version": v.version.to_string(),
        "creation_timestamp": v.created,
        "last_updated_timestamp": v.updated,
        "current_stage": v.stage,
        "description": v.description,
        "source": v.source,
        "status": v.status,
        "tags": tags_value(&version_tags(v)),
        "aliases": aliases,
        "storage_location": format!("mlflow-artifacts:/{}", v.storage),
    });
    if let Some(r) = &v.run_id {
        out["run_id"] = json!(r);
    }
    if let Some(m) = &v.model_id {
        out["model_id"] = json!(m);
    }
    out
}

pub fn registered_json(m: &RegisteredModel, latest: &[Value], aliases: &[(String, i64)]) -> Value {
    json!({
        "name": m.name,
        "creation_timestamp": m.created,
        "last_updated_timestamp": m.updated,
        "description": m.description,
        "tags": tags_value(&m.tags),
        "latest_versions": latest,
        "aliases": aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect::<Vec<_>>(),
    })
}

/// One clause of an MLflow search filter: `field op 'value'`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub field: String,
    pub op: String,
    pub value: String,
}

/// Parses `a = 'x' AND b LIKE 'y%'` (the subset registry searches use). Anything else is an
/// error naming the part not understood, never silently ignored.
pub fn parse_filter(filter: &str) -> Res<Vec<Clause>> {
    let mut out = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        // The field ends at whitespace or an operator outside backticks.
        let mut in_ticks = false;
        let field_end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '`' {
                    in_ticks = !in_ticks;
                }
                !in_ticks && (c.is_whitespace() || "=!<>".contains(c))
            })
            .map(|(i, _)| i)
            .ok_or_else(|| {
                MlError::invalid(format!("filter {filter:?}: expected `field op 'value'`"))
            })?;
        let mut field = rest[..field_end].to_owned();
        if let Some(f) = field
            .strip_prefix("tags.`")
            .and_then(|f| f.strip_suffix('`'))
        {
            field = format!("tags.{f}");
        } else if let Some(f) = field.strip_prefix('`').and_then(|f| f.strip_suffix('`')) {
            let unquoted = f.to_owned();
            field = unquoted;
        }
        rest = rest[field_end..].trim_start();
        let op_end = rest
            .find(['\'', '"'])
            .ok_or_else(|| MlError::invalid(format!("filter {filter:?}: values must be quoted")))?;
        let op = rest[..op_end].trim().to_ascii_uppercase();
        if !["=", "!=", "LIKE", "ILIKE"].contains(&op.as_str()) {
            return Err(MlError::invalid(format!(
                "filter {filter:?}: unsupported operator {op:?}"
            )));
        }
        let quote = rest[op_end..].chars().next().unwrap_or('\'');
        let body = &rest[op_end + 1..];
        let close = body
            .find(quote)
            .ok_or_else(|| MlError::invalid(format!("filter {filter:?}: unterminated string")))?;
        out.push(Clause {
            field,
            op,
            value: body[..close].to_owned(),
        });
        rest = body[close + 1..].trim_start();
        if rest.is_empty() {
            break;
        }
        let Some(r) = rest
            .strip_prefix("AND ")
            .or_else(|| rest.strip_prefix("and "))
        else {
            return Err(MlError::invalid(format!(
                "filter {filter:?}: clauses are joined by AND, at {rest:?}"
            )));
        };
        rest = r.trim_start();
    }
    Ok(out)
}

/// SQL `LIKE`: `%` any run, `_` one character; `fold` for `ILIKE`. Dynamic programming over
/// (pattern, text) positions, so no pattern is exponential.
fn like(pattern: &str, text: &str, fold: bool) -> bool {
    let norm = |s: &str| -> Vec<char> {
        if fold {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    let (p, t) = (norm(pattern), norm(text));
    // row[j]: pattern prefix matches text prefix of length j.
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        match pc {
            '%' => {
                let mut any = false;
                for j in 0..=t.len() {
                    any |= row[j];
                    next[j] = any;
                }
            }
            c => {
                for j in 1..=t.len() {
                    next[j] = row[j - 1] && (*c == '_' || t[j - 1] == *c);
                }
            }
        }
        row = next;
    }
    row[t.len()]
}

impl Clause {
    pub fn matches(&self, actual: Option<&str>) -> bool {
        let Some(a) = actual else {
            return self.op == "!=";
        };
        match self.op.as_str() {
            "=" => a == self.value,
            "!=" => a != self.value,
            "LIKE" => like(&self.value, a, false),
            _ => like(&self.value, a, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match_like_mlflow() {
        let c = parse_filter("name = 'fraud' AND tags.`team x` LIKE 'ri%'").unwrap();
        assert_eq!(
            c[0],
            Clause {
                field: "name".into(),
                op: "=".into(),
                value: "fraud".into()
            }
        );
        assert_eq!(c[1].field, "tags.team x");
        assert!(c[1].matches(Some("risk")));
        assert!(!c[1].matches(Some("Risk")));
        let i = parse_filter("name ILIKE '%RAUD'").unwrap();
        assert!(i[0].matches(Some("fraud")));
        let u = parse_filter("name LIKE 'a_c'").unwrap();
        assert!(u[0].matches(Some("abc")) && !u[0].matches(Some("abbc")));
        assert!(parse_filter("").unwrap().is_empty());
        for bad in [
            "name = fraud",
            "name ~ 'x'",
            "name = 'x' OR name = 'y'",
            "name = 'x",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in ".{0,200}", t in ".{0,40}") {
            if let Ok(cs) = parse_filter(&s) {
                for c in cs {
                    let _ = c.matches(Some(&t));
                }
            }
            let _ = parse_filter(&format!("name LIKE '{t}' AND tags.`{t}` = '{s}'"));
            let _ = parse_query(&s);
            let _ = check_name("name", &s);
            let _ = crate::artifacts::check_path(&s);
            let _ = crate::auth::token_from_header(&s);
            let _ = s.parse::<crate::auth::Scope>();
        }
    }

    #[test]
    fn query_strings() {
        let q = parse_query("name=a%20b&experiment_ids=1&experiment_ids=2&x=%zz+y");
        assert_eq!(q["name"], "a b");
        assert_eq!(q["experiment_ids"], json!(["1", "2"]));
        assert_eq!(q["x"], "%zz y");
        assert!(check_name("name", "ok name").is_ok());
        for bad in ["", "a/b", "..", "a\u{0}b"] {
            assert!(check_name("name", bad).is_err(), "{bad:?}");
        }
    }
}
