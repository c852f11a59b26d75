//! The request path as named stages, in the order [`crate::handler`] runs them. The order is the
//! security argument:
//! 1. [`check_request`]: path and header checks, then the route table (nothing odd reaches
//!    routing; wrong methods are 405);
//! 2. [`authenticate`]: API key or JWT (deny by default), then [`authorise`]: the policy's route
//!    grant;
//! 3. [`catalogue`]: answers the gateway gives itself (the model list);
//! 4. [`read_body`]: content type, size, JSON; [`validate`]: the route's checks and the model
//!    grant;
//! 5. [`guard`]: the policy's guard on the request; [`abuse`]: the principal's abuse and
//!    extraction signals; [`output`]: the output checks set up (a canary planted);
//! 6. [`limit`]: rate, then concurrency, then the token reservation;
//! 7. [`forward`]: the upstream call; [`respond`]: the response, streamed or whole, through the
//!    output checks;
//! 8. [`settle`]: limits released, tokens settled; [`record`]: metrics and one audit record.
//!
//! Each stage takes what it needs and returns a value or an [`ApiError`]; none reaches the
//! upstream before [`forward`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::{Map, Value, json};

use crate::audit::{Latency, Record, Tokens};
use crate::config::{Protocol, RouteKind};
use crate::error::ApiError;
use crate::guard::{GuardContext, Verdict};
use crate::handler::{Ctx, Done, Failed, Held, StreamFinish, fail};
use crate::limits::{Decision, Limit, Rate};
use crate::proxy::{self, Usage};
use crate::routes::{self, Endpoint, Route};
use crate::{
    AppState, Model, PolicyRt, Runtime, SharedState, metrics, output, redact, template, validate,
};
use mlsec_server::conn::ConnMarks;

/// Largest number of request headers.
pub const MAX_HEADERS: usize = 100;

/// Stage 1: the path, the headers, then the route table.
pub fn check_request(rt: &Runtime, parts: &Parts) -> Result<Route, ApiError> {
    if parts
        .extensions
        .get::<ConnMarks>()
        .is_some_and(ConnMarks::ambiguous)
    {
        // The listener saw a head on this connection that hyper framed one way and another
        // parser could frame the other: refuse it and everything after it, then close.
        return Err(ApiError::bad_request(
            "ambiguous_length",
            "a request on this connection gave its body length in more than one way \
             (Content-Length with Transfer-Encoding, or Content-Length twice): refused \
             (request smuggling)",
        )
        .close());
    }
    let path = parts.uri.path();
    routes::check_path(path)?;
    check_headers(&parts.headers, rt.config.server.max_header_bytes)?;
    routes::match_route(rt, &parts.method, path)
}

/// Header count and size, and request framing: more than one way to find the body's end is
/// refused (request smuggling).
pub fn check_headers(headers: &HeaderMap, max_bytes: usize) -> Result<(), ApiError> {
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("more than {MAX_HEADERS} headers"),
        ));
    }
    let total: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if total > max_bytes {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("request headers exceed {max_bytes} bytes"),
        ));
    }
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        return Err(ApiError::bad_request(
            "ambiguous_length",
            "both Transfer-Encoding and Content-Length: refused (request smuggling)",
        ));
    }
    if headers.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
        return Err(ApiError::bad_request(
            "ambiguous_length",
            "more than one Content-Length",
        ));
    }
    if let Some(te) = headers.get(header::TRANSFER_ENCODING)
        && !te.as_bytes().eq_ignore_ascii_case(b"chunked")
    {
        return Err(ApiError::bad_request(
            "ambiguous_length",
            "Transfer-Encoding other than chunked: refused (request smuggling)",
        ));
    }
    Ok(())
}

/// Health and readiness, answered before authentication.
pub async fn probe(state: &AppState, route: &Route) -> Option<Response> {
    match route.endpoint {
        Endpoint::Health => Some(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        Endpoint::Ready => {
            let ready = state.is_ready().await;
            let code = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Some(json_response(code, &json!({"ready": ready})))
        }
        _ => None,
    }
}

/// Who is calling and under which policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `key:<id>` or `jwt:<subject>`.
    pub id: String,
    pub policy: String,
}

/// Stage 2: the credential (an API key, or a JWT from a configured issuer).
pub async fn authenticate(
    state: &AppState,
    rt: &Runtime,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<Principal, ApiError> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_api_key",
            "no credentials: send Authorization: Bearer <key or token>",
        ));
    };
    let token = auth
        .to_str()
        .ok()
        .and_then(|s| {
            s.strip_prefix("Bearer ")
                .or_else(|| s.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be 'Bearer <key or token>'")
        })?;
    let principal = if token.starts_with(crate::keys::KEY_PREFIX) {
        match rt.keys.check(token) {
            Ok((id, policy)) => Principal {
                id: format!("key:{id}"),
                policy: policy.to_string(),
            },
            Err((why, id)) => {
                ctx.principal = id.map(|i| format!("key:{i}"));
                ctx.decisions
                    .push(format!("authentication failed: {}", why.as_str()));
                return Err(ApiError::unauthorized("invalid API key"));
            }
        }
    } else if token.matches('.').count() == 2 && !rt.jwt.issuers.is_empty() {
        match rt.jwt.verify(token, &state.fetch).await {
            Ok(v) => Principal {
                id: format!("jwt:{}", v.subject),
                policy: v.policy,
            },
            Err(e) => {
                ctx.decisions.push(format!("authentication failed: {e}"));
                let msg = match e {
                    crate::jwt::JwtRefusal::NoPolicy => "the token's claims grant no policy",
                    _ => "invalid bearer token",
                };
                return Err(ApiError::unauthorized(msg));
            }
        }
    } else {
        ctx.decisions
            .push("authentication failed: unrecognised credential".into());
        return Err(ApiError::unauthorized("invalid API key"));
    };
    ctx.principal = Some(principal.id.clone());
    ctx.policy = Some(principal.policy.clone());
    Ok(principal)
}

/// Stage 2b: the principal's policy exists and grants this route.
pub fn authorise(
    rt: &Runtime,
    kind: RouteKind,
    principal: &Principal,
) -> Result<Arc<PolicyRt>, ApiError> {
    let Some(pol) = rt.policies.get(&principal.policy).cloned() else {
        tracing::error!(
            principal = principal.id,
            policy = principal.policy,
            "credential maps to a policy the config does not define"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "policy_not_found",
            "this credential's policy is not configured",
        ));
    };
    if pol
        .policy
        .routes
        .as_ref()
        .is_some_and(|r| !r.contains(&kind))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "route_not_allowed",
            format!("this key may not use the {} route", kind.as_str()),
        ));
    }
    Ok(pol)
}

/// Whether the policy grants a model.
pub fn may_use(pol: &PolicyRt, model: &str) -> bool {
    pol.policy.models.iter().any(|x| x == "*" || x == model)
}

/// Stage 3: the answers the gateway gives itself (`GET /v1/models`, `GET /v1/models/{model}`);
/// `None` for routes that go upstream.
pub fn catalogue(
    rt: &Runtime,
    route: &Route,
    pol: &PolicyRt,
    ctx: &mut Ctx,
) -> Result<Option<Response>, ApiError> {
    match (route.endpoint, &route.model) {
        (Endpoint::ListModels, _) => {
            let mut names: Vec<&String> = rt.models.keys().filter(|m| may_use(pol, m)).collect();
            names.sort();
            let data: Vec<Value> = names.iter().map(|m| model_object(m)).collect();
            Ok(Some(json_response(
                StatusCode::OK,
                &json!({"object": "list", "data": data}),
            )))
        }
        (Endpoint::GetModel, Some(m)) => {
            ctx.model = Some(m.clone());
            if !rt.models.contains_key(m) || !may_use(pol, m) {
                return Err(model_not_found(m));
            }
            Ok(Some(json_response(StatusCode::OK, &model_object(m))))
        }
        _ => Ok(None),
    }
}

/// Stage 4: the body: JSON content type, the size limit (declared and actual), one JSON object.
/// With `audit.include_bodies`, a redacted copy goes to the audit record.
pub async fn read_body(
    rt: &Runtime,
    headers: &HeaderMap,
    body: Body,
    ctx: &mut Ctx,
) -> Result<Map<String, Value>, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, not {:?}",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        ));
    }
    let max = rt.config.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body exceeds {max} bytes"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
    {
        return Err(too_large());
    }
    let timeout = Duration::from_secs(rt.config.server.body_timeout_secs);
    // Most bodies arrive with their head: a first poll collects them without arming a timer.
    let mut collect = std::pin::pin!(Limited::new(body, max).collect());
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(collect.as_mut(), cx))
    })
    .await;
    let read = match first {
        std::task::Poll::Ready(read) => Ok(read),
        std::task::Poll::Pending => tokio::time::timeout(timeout, collect).await,
    };
    let Ok(read) = read else {
        return Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the request body did not arrive within {} s (server.body_timeout_secs)",
                timeout.as_secs()
            ),
        )
        .close());
    };
    let bytes = match read {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(_) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the request body could not be read",
            ));
        }
    };
    let body = validate::parse_object(&bytes)?;
    if rt.config.audit.include_bodies {
        ctx.request_body = Some(redact::redact(&String::from_utf8_lossy(&bytes)));
    }
    Ok(body)
}

/// A validated call, ready for the guard, the limits and the upstream.
pub struct Call {
    pub kind: RouteKind,
    pub model_name: String,
    pub model: Arc<Model>,
    /// OpenAI-shaped calls: the clamped parameters and the token estimate.
    pub checked: Option<validate::Checked>,
    pub upstream_path: String,
    pub body: Map<String, Value>,
}

/// Stage 4b: the route's own checks (OpenAI parameters, templates, OIP tensors, JSON Schema),
/// the model grant and the model's protocol.
pub fn validate(
    rt: &Runtime,
    route: &Route,
    path: &str,
    mut body: Map<String, Value>,
    pol: &PolicyRt,
    ctx: &mut Ctx,
) -> Result<Call, ApiError> {
    let kind = route.kind().unwrap_or(RouteKind::Models);
    let (model_name, checked, upstream_path) = match (route.endpoint, &route.model) {
        (Endpoint::Openai(k), _) => {
            let c = validate::openai_request(k, &mut body, &pol.policy)?;
            (c.model.clone(), Some(c), path.to_string())
        }
        (Endpoint::Template, _) => {
            let name = route.template.as_deref().unwrap_or_default();
            let c = render_template(rt, name, &mut body, pol, ctx)?;
            (c.model.clone(), Some(c), "/v1/chat/completions".to_string())
        }
        (Endpoint::Infer, Some(model)) => {
            let m = rt
                .models
                .get(model)
                .filter(|_| may_use(pol, model))
                .ok_or_else(|| model_not_found(model))?;
            if m.config.protocol != Protocol::Oip {
                return Err(ApiError::bad_request(
                    "wrong_protocol",
                    format!("model {model:?} is not served over the Open Inference Protocol"),
                ));
            }
            crate::oip::check_infer(&body, &m.config.inputs)?;
            let up = m.config.upstream_model.as_deref().unwrap_or(model);
            let path = match &route.version {
                Some(v) => format!("/v2/models/{up}/versions/{v}/infer"),
                None => format!("/v2/models/{up}/infer"),
            };
            (model.clone(), None, path)
        }
        (Endpoint::Predict, Some(model)) => {
            let m = rt.models.get(model).ok_or_else(|| model_not_found(model))?;
            if !may_use(pol, model) {
                return Err(model_not_allowed(model));
            }
            if let Some(s) = &m.schema {
                validate::against_schema(s, &Value::Object(body.clone()))?;
            }
            let path = m
                .config
                .upstream_path
                .clone()
                .unwrap_or_else(|| path.to_string());
            (model.clone(), None, path)
        }
        _ => return Err(ApiError::not_found()),
    };
    ctx.model = Some(model_name.clone());
    if let Some(c) = &checked {
        ctx.decisions.extend(c.decisions.iter().cloned());
        ctx.stream = c.stream;
    }
    let Some(model) = rt.models.get(&model_name).cloned() else {
        return Err(model_not_found(&model_name));
    };
    if !may_use(pol, &model_name) {
        return Err(model_not_allowed(&model_name));
    }
    match kind {
        RouteKind::Chat
        | RouteKind::Completions
        | RouteKind::Embeddings
        | RouteKind::Responses
        | RouteKind::Template
            if model.config.protocol != Protocol::Openai =>
        {
            return Err(ApiError::bad_request(
                "wrong_protocol",
                format!("model {model_name:?} is not an OpenAI-compatible model"),
            ));
        }
        RouteKind::Responses if !model.config.responses => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_supported",
                format!("model {model_name:?} does not serve /v1/responses"),
            ));
        }
        _ => {}
    }
    Ok(Call {
        kind,
        model_name,
        model,
        checked,
        upstream_path,
        body,
    })
}

/// Parameters a template route takes besides `variables`.
const TEMPLATE_PARAMS: &[&str] = &[
    "variables",
    "stream",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "user",
];

/// Renders a template route's body into a chat call and validates it as one.
fn render_template(
    rt: &Runtime,
    name: &str,
    body: &mut Map<String, Value>,
    pol: &PolicyRt,
    ctx: &mut Ctx,
) -> Result<validate::Checked, ApiError> {
    let Some(t) = rt.templates.get(name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "template_not_found",
            format!("no template named {name:?}"),
        ));
    };
    if let Some(k) = body.keys().find(|k| !TEMPLATE_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(
            "unknown_parameter",
            format!("unknown parameter {k:?} for a template route"),
        )
        .param(k.clone()));
    }
    let Some(Value::Object(vars)) = body.remove("variables") else {
        return Err(
            ApiError::bad_request("invalid_parameter", "variables must be an object")
                .param("variables"),
        );
    };
    let (messages, decisions) = template::render(t, &vars)?;
    ctx.decisions.extend(decisions);
    body.insert("model".into(), Value::String(t.model.clone()));
    body.insert("messages".into(), Value::Array(messages));
    // The system message is the gateway's own.
    let mut p = pol.policy.clone();
    p.allow_system_messages = true;
    validate::openai_request(RouteKind::Chat, body, &p)
}

/// Stage 5: the policy's guard on the request.
pub fn guard(
    pol: &PolicyRt,
    call: &Call,
    principal: &Principal,
    ctx: &mut Ctx,
) -> Result<(), ApiError> {
    let g = GuardContext {
        route: call.kind,
        model: &call.model_name,
        principal: &principal.id,
    };
    match pol.guard.request(&g, &call.body) {
        Verdict::Pass => Ok(()),
        Verdict::Block { code, reason } => {
            ctx.decisions.push(format!(
                "guard {} blocked the request: {reason}",
                pol.guard.name()
            ));
            Err(ApiError::new(StatusCode::FORBIDDEN, code, reason))
        }
    }
}

/// Stage 5b: abuse and extraction signals for the principal (policies with `abuse`): the
/// request joins the principal's window; a signal leads to the policy's action, and a throttle
/// or block in force applies.
pub async fn abuse(
    state: &AppState,
    pol: &PolicyRt,
    call: &Call,
    principal: &Principal,
    ctx: &mut Ctx,
) -> Result<(), ApiError> {
    use crate::abuse::{self as ab, Action, Flag};
    let Some(cfg) = &pol.policy.abuse else {
        return Ok(());
    };
    let key = format!("{}:{}", pol.name, principal.id);
    let now = ab::now_ms();
    let event = ab::event(call.kind, &call.body, now);
    let seen = match state.abuse.push(&state.limits, &key, event, cfg).await {
        Ok(s) => s,
        Err(e) => return store_down(state, ctx, &e),
    };
    let signals = cfg.limits().signals(&seen.features);
    let mut active = seen.flag;
    if !signals.is_empty() {
        let detail = ab::describe(&signals, &seen.features);
        for s in &signals {
            state
                .metrics
                .abuse_signals
                .get_or_create(&metrics::AbuseLabel {
                    policy: pol.name.clone(),
                    signal: s.code(),
                    action: cfg.action.as_str(),
                })
                .inc();
        }
        ctx.decisions
            .push(format!("abuse: {detail}: action {}", cfg.action.as_str()));
        let cooldown = cfg.cooldown_secs * 1000;
        let mut told = 0;
        if seen.notify {
            if let Some(url) = &cfg.webhook {
                let p = ab::payload(
                    &pol.name,
                    &principal.id,
                    cfg.action,
                    &signals,
                    &seen.features,
                );
                crate::proxy::notify(&state.client, url, &p, "abuse.webhook");
            }
            told = now + cooldown;
        }
        let flag = (cfg.action != Action::Alert).then(|| Flag {
            action: cfg.action,
            signals: detail,
            until_ms: now + cooldown,
        });
        if let Err(e) = state
            .abuse
            .flag(&state.limits, &key, flag.clone(), told)
            .await
        {
            store_down(state, ctx, &e)?;
        }
        active = flag.or(active);
    }
    match active {
        Some(f) if f.action == Action::Block => Err(ab::blocked(&f)),
        Some(f) if f.action == Action::Throttle => {
            let rate = Rate::per_second(f64::from(cfg.throttle_per_minute) / 60.0, 1);
            match state.limits.rate(&format!("abuse:{key}"), rate).await {
                Ok(Decision::Allow) => Ok(()),
                Ok(Decision::Deny(_, secs)) => Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "abuse_throttled",
                    format!(
                        "this principal is throttled to {} requests a minute: {}",
                        cfg.throttle_per_minute, f.signals
                    ),
                )
                .retry_after(secs)),
                Err(e) => store_down(state, ctx, &e),
            }
        }
        _ => Ok(()),
    }
}

/// Stage 5c: the policy's output checks, set up for this call's response (a canary planted in
/// its system text).
pub fn output(pol: &PolicyRt, call: &mut Call) -> Option<output::Scan> {
    pol.output
        .as_ref()
        .and_then(|o| o.begin(call.kind, &mut call.body))
}

/// Stage 6: rate, then concurrency, then the token reservation. What was taken is returned
/// even on refusal, so [`settle`] gives it back.
pub async fn limit(
    state: &AppState,
    pol: &PolicyRt,
    principal: &Principal,
    call: &Call,
    ctx: &mut Ctx,
) -> Result<Held, Failed> {
    let q0 = Instant::now();
    let tokens = call
        .checked
        .as_ref()
        .map(|c| c.prompt_tokens + c.max_tokens);
    let held = apply_limits(state, pol, &principal.id, tokens, ctx).await?;
    ctx.queue = q0.elapsed();
    ctx.reserved = held.reservation.as_ref().map_or(0, |r| r.tokens);
    Ok(held)
}

fn limit_error(limit: Limit, secs: u64) -> ApiError {
    let what = match limit {
        Limit::Rate => "request rate",
        Limit::Concurrency => "concurrent requests",
        Limit::TokensPerMinute => "tokens per minute",
        Limit::TokensPerDay => "tokens per day",
    };
    let code = match limit {
        Limit::Rate => "rate_limit_exceeded",
        Limit::Concurrency => "concurrency_limit_exceeded",
        Limit::TokensPerMinute | Limit::TokensPerDay => "token_quota_exceeded",
    };
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        code,
        format!("limit reached: {what}; retry after {secs} s"),
    )
    .retry_after(secs)
}

/// The limit store failed: fail open (serve, note it) or closed (refuse).
fn store_down(
    state: &AppState,
    ctx: &mut Ctx,
    e: &crate::limits::BackendError,
) -> Result<(), ApiError> {
    state.metrics.backend_errors.inc();
    match state.fail_mode {
        crate::config::FailMode::Open => {
            tracing::warn!(error = %e, "limit store unavailable: serving without limits (fail-open)");
            ctx.decisions
                .push("limit store unavailable: fail-open, not limited".into());
            Ok(())
        }
        crate::config::FailMode::Closed => {
            tracing::error!(error = %e, "limit store unavailable: refusing (fail-closed)");
            ctx.decisions
                .push("limit store unavailable: fail-closed".into());
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "limits_unavailable",
                "limits cannot be checked right now",
            )
            .retry_after(1))
        }
    }
}

async fn apply_limits(
    state: &AppState,
    pol: &PolicyRt,
    principal: &str,
    tokens: Option<u64>,
    ctx: &mut Ctx,
) -> Result<Held, Failed> {
    let p = &pol.policy;
    let route = ctx.route.map_or("unknown", RouteKind::as_str);
    let reject = |state: &AppState, limit: Limit, secs: u64| {
        state
            .metrics
            .limiter_rejections
            .get_or_create(&metrics::Reason {
                route,
                reason: limit.as_str(),
            })
            .inc();
        limit_error(limit, secs)
    };
    let rate = p
        .requests_per_second
        .or(p.requests_per_minute.map(|m| m / 60.0))
        .map(|rps| {
            Rate::per_second(
                rps,
                p.burst.unwrap_or_else(|| (rps.ceil() as u32).clamp(1, 100)),
            )
        });
    if let Some(rate) = rate {
        match state.limits.rate(principal, rate).await {
            Ok(Decision::Allow) => {}
            Ok(Decision::Deny(l, s)) => return Err(fail(reject(state, l, s))),
            Err(e) => store_down(state, ctx, &e).map_err(fail)?,
        }
    }
    let mut held = Held::default();
    if let Some(limit) = p.concurrency {
        let request_id = ctx.request_id.clone();
        match state.limits.acquire(principal, limit, &request_id).await {
            Ok(Some(slot)) => held.slot = Some(slot),
            Ok(None) => return Err(fail(reject(state, Limit::Concurrency, 1))),
            Err(e) => store_down(state, ctx, &e).map_err(fail)?,
        }
    }
    if let Some(n) = tokens
        && (p.tokens_per_minute.is_some() || p.tokens_per_day.is_some())
    {
        for (limit, l) in [
            (Limit::TokensPerMinute, p.tokens_per_minute),
            (Limit::TokensPerDay, p.tokens_per_day),
        ] {
            if let Some(l) = l
                && n > l
            {
                return Err((
                    ApiError::bad_request(
                        "request_exceeds_quota",
                        format!(
                            "this request may use {n} tokens (prompt estimate plus max_tokens), more than the {} quota of {l}",
                            limit.as_str(),
                        ),
                    ),
                    held,
                ));
            }
        }
        match state
            .limits
            .reserve(
                &format!("tok:{principal}"),
                n,
                p.tokens_per_minute,
                p.tokens_per_day,
            )
            .await
        {
            Ok(Ok(r)) => held.reservation = Some(r),
            Ok(Err(Decision::Deny(l, s))) => return Err((reject(state, l, s), held)),
            Ok(Err(Decision::Allow)) => {}
            Err(e) => {
                if let Err(err) = store_down(state, ctx, &e) {
                    return Err((err, held));
                }
            }
        }
    }
    Ok(held)
}

/// What the upstream answered.
pub struct Upstreamed {
    pub response: hyper::Response<hyper::body::Incoming>,
    pub upstream: Arc<crate::Upstream>,
    /// When the request was sent.
    pub sent: Instant,
}

/// Stage 7: the upstream call (the model name rewritten to the upstream's), with the model's
/// retries and timeout.
pub async fn forward(
    state: &SharedState,
    call: &mut Call,
    ctx: &mut Ctx,
) -> Result<Upstreamed, ApiError> {
    if let Some(up) = &call.model.config.upstream_model
        && call.body.contains_key("model")
    {
        call.body.insert("model".into(), Value::String(up.clone()));
    }
    let out = Bytes::from(serde_json::to_vec(&std::mem::take(&mut call.body)).unwrap_or_default());
    let sent = Instant::now();
    let (response, upstream) = proxy::send(
        state,
        &call.model,
        Method::POST,
        &call.upstream_path,
        out,
        false,
    )
    .await?;
    ctx.upstream = Some(upstream.base.clone());
    ctx.upstream_time = sent.elapsed();
    Ok(Upstreamed {
        response,
        upstream,
        sent,
    })
}

/// Stage 7b: the response. Upstream 5xx become `upstream_error`; event streams pass through
/// chunk by chunk under the guard and settle when they end; whole bodies are size-limited,
/// guarded and metered here.
pub async fn respond(
    state: &SharedState,
    rt: &Arc<Runtime>,
    call: &Call,
    up: Upstreamed,
    held: Held,
    mut scan: Option<output::Scan>,
    ctx: &mut Ctx,
) -> Result<Done, Failed> {
    let Upstreamed {
        response,
        upstream,
        sent,
    } = up;
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let is_sse = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if status.is_server_error() {
        let detail = Limited::new(response.into_body(), 4096)
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        return Err((
            ApiError::upstream(
                "upstream_error",
                &format!("{}: HTTP {status}: {detail}", upstream.base),
            ),
            held,
        ));
    }

    if is_sse && status.is_success() {
        let finish = Box::new(StreamFinish {
            state: state.clone(),
            rt: rt.clone(),
            ctx: std::mem::replace(ctx, Ctx::new(String::new(), String::new())),
            held,
            status,
        });
        let filter = scan.map(|s| Box::new(s) as Box<dyn proxy::StreamFilter>);
        let body = proxy::Metered::new(response.into_body(), sent, finish, filter);
        let mut out = Response::new(Body::new(body));
        *out.status_mut() = status;
        out.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        out.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        out.headers_mut()
            .insert("x-accel-buffering", HeaderValue::from_static("no"));
        return Ok(Done::Streaming(out));
    }

    let max = rt.config.server.max_response_bytes;
    let bytes = match Limited::new(response.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let code = if e.is::<http_body_util::LengthLimitError>() {
                "upstream_response_too_large"
            } else {
                "upstream_error"
            };
            return Err((
                ApiError::upstream(code, &format!("{}: {e}", upstream.base)),
                held,
            ));
        }
    };
    state
        .metrics
        .ttft
        .get_or_create(&metrics::ModelLabel {
            model: label_model(rt, &call.model_name),
        })
        .observe(ctx.upstream_time.as_secs_f64());
    let usage = proxy::usage_in_body(&bytes);
    let bytes = match scan.as_mut().map(|s| (s.whole(&bytes), s.take_decisions())) {
        None | Some((Ok(None), _)) => bytes,
        Some((Ok(Some(rewritten)), decisions)) => {
            ctx.decisions.extend(decisions);
            rewritten
        }
        Some((Err(output::Blocked(e)), decisions)) => {
            ctx.decisions.extend(decisions);
            return Err((e, held));
        }
    };
    if status.is_success() {
        crate::monitor::on_response(state, call, &bytes, ctx);
    }
    if rt.config.audit.include_bodies {
        ctx.response_body = Some(redact::redact(&String::from_utf8_lossy(&bytes)));
    }
    let mut out = Response::new(Body::from(bytes));
    *out.status_mut() = status;
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    Ok(Done::Now(out, held, usage))
}

/// Stage 8: the concurrency slot goes back and the token reservation is settled against the
/// usage the upstream reported (kept whole when a successful call reported none; nothing
/// charged for a failed one).
pub async fn settle(state: &AppState, held: &Held, usage: Option<Usage>, status: StatusCode) {
    if let Some(slot) = &held.slot {
        state.limits.release(slot).await;
    }
    if let Some(r) = &held.reservation {
        let used = match (usage, status.is_success()) {
            (Some(u), _) => u.prompt + u.completion,
            (None, false) => 0,
            (None, true) => r.tokens,
        };
        if let Err(e) = state.limits.settle(r, used).await {
            tracing::warn!(error = %e, "could not settle a token reservation");
        }
    }
}

/// Stage 8b: request metrics and one audit record.
pub fn record(
    state: &AppState,
    rt: &Runtime,
    ctx: Ctx,
    usage: Option<Usage>,
    status: StatusCode,
    error: Option<&'static str>,
    ttft: Option<Duration>,
) {
    let route = ctx.route.map_or("unknown", RouteKind::as_str);
    let model = ctx
        .model
        .as_deref()
        .map_or_else(|| "unknown".to_string(), |m| label_model(rt, m));
    let total = ctx.t0.elapsed();
    crate::monitor::on_finish(state, rt, ctx.model.as_deref(), status, total);
    let m = &state.metrics;
    m.requests
        .get_or_create(&metrics::Req {
            route,
            model: model.clone(),
            status: status.as_u16(),
        })
        .inc();
    m.duration
        .get_or_create(&metrics::RouteModel {
            route,
            model: model.clone(),
        })
        .observe(total.as_secs_f64());
    if let Some(t) = ttft {
        m.ttft
            .get_or_create(&metrics::ModelLabel {
                model: model.clone(),
            })
            .observe(t.as_secs_f64());
    }
    if let Some(u) = usage {
        for (kind, n) in [("prompt", u.prompt), ("completion", u.completion)] {
            m.tokens
                .get_or_create(&metrics::TokenKind {
                    model: model.clone(),
                    kind,
                })
                .inc_by(n);
        }
    }
    if let Some(audit) = &state.audit {
        let u = usage.unwrap_or_default();
        audit.record(Record {
            ts: crate::handler::now_rfc3339(),
            request_id: ctx.request_id,
            principal: ctx.principal,
            policy: ctx.policy,
            method: ctx.method,
            route: route.to_string(),
            model: ctx.model,
            status: status.as_u16(),
            error: error.map(str::to_string),
            stream: ctx.stream,
            tokens: Tokens {
                prompt: u.prompt,
                completion: u.completion,
                reserved: ctx.reserved,
            },
            latency: Latency {
                queue_us: ctx.queue.as_micros() as u64,
                upstream_us: ctx.upstream_time.as_micros() as u64,
                total_us: total.as_micros() as u64,
            },
            upstream: ctx.upstream,
            decisions: ctx.decisions,
            request_body: ctx.request_body,
            response_body: ctx.response_body,
        });
    }
}

fn model_object(m: &str) -> Value {
    json!({"id": m, "object": "model", "created": 0, "owned_by": "mlsec-gateway"})
}

fn model_not_found(m: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "model_not_found",
        format!("the model {m:?} does not exist or you do not have access to it"),
    )
    .param("model")
}

fn model_not_allowed(m: &str) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "model_not_allowed",
        format!("this key may not use the model {m:?}"),
    )
    .param("model")
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The model as a metric label: configured names only (a caller cannot mint label values).
fn label_model(rt: &Runtime, m: &str) -> String {
    if rt.models.contains_key(m) {
        m.to_string()
    } else {
        "unknown".to_string()
    }
}

#[cfg(test)]
mod tests {
    //! Each stage on its own, on a runtime built from a config text (no files, no sockets).

    use super::*;
    use crate::config::Config;

    const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 64

[auth]
keys_file = "keys.json"

[[models]]
name = "chat"
upstreams = ["http://127.0.0.1:9"]

[[models]]
name = "tensor"
protocol = "oip"
upstreams = ["http://127.0.0.1:9"]
inputs = [{ name = "x", datatype = "FP32", shape = [-1, 3] }]

[policies.chat_only]
models = ["chat"]
routes = ["chat", "models"]

[policies.all]
models = ["*"]
"#;

    async fn runtime() -> Runtime {
        let dir = tempfile::tempdir().expect("tmp");
        let keys = crate::keys::KeyFile {
            version: 1,
            keys: vec![],
        };
        keys.save(&dir.path().join("keys.json")).expect("keys");
        let config =
            Config::parse(CONFIG, std::path::Path::new("g.toml"), dir.path()).expect("valid");
        let fetch: crate::jwt::Fetch =
            Arc::new(|_| Box::pin(async { Err("no network in unit tests".to_string()) }));
        Runtime::build(config, &fetch).await.expect("runtime")
    }

    fn parts(method: &str, path: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn ctx() -> Ctx {
        Ctx::new("t".into(), "POST".into())
    }

    fn principal(policy: &str) -> Principal {
        Principal {
            id: "key:t".into(),
            policy: policy.into(),
        }
    }

    #[tokio::test]
    async fn check_request_routes_by_table_and_refuses_wrong_methods_and_framing() {
        let rt = runtime().await;
        let r = check_request(
            &rt,
            &parts("POST", "/v2/models/tensor/versions/7/infer", &[]),
        )
        .expect("route");
        assert_eq!(
            (r.endpoint, r.model.as_deref(), r.version.as_deref()),
            (Endpoint::Infer, Some("tensor"), Some("7"))
        );
        let e = check_request(&rt, &parts("PUT", "/v1/chat/completions", &[])).unwrap_err();
        assert_eq!((e.status.as_u16(), e.allow.as_deref()), (405, Some("POST")));
        let e = check_request(&rt, &parts("POST", "/v1/nothing", &[])).unwrap_err();
        assert_eq!(e.code, "route_not_found");
        let e = check_request(
            &rt,
            &parts(
                "POST",
                "/v1/chat/completions",
                &[("content-length", "4"), ("transfer-encoding", "chunked")],
            ),
        )
        .unwrap_err();
        assert_eq!(e.code, "ambiguous_length");
        let e = check_request(&rt, &parts("POST", "/v1/%2e%2e/admin", &[])).unwrap_err();
        assert_eq!(e.code, "invalid_path");
    }

    #[tokio::test]
    async fn authorise_needs_a_configured_policy_that_grants_the_route() {
        let rt = runtime().await;
        assert!(authorise(&rt, RouteKind::Chat, &principal("chat_only")).is_ok());
        let e = authorise(&rt, RouteKind::Embeddings, &principal("chat_only"))
            .map(|_| ())
            .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "route_not_allowed"));
        let e = authorise(&rt, RouteKind::Chat, &principal("gone"))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(e.code, "policy_not_found");
    }

    #[tokio::test]
    async fn catalogue_lists_only_granted_models() {
        let rt = runtime().await;
        let pol = authorise(&rt, RouteKind::Models, &principal("chat_only")).expect("pol");
        let list = check_request(&rt, &parts("GET", "/v1/models", &[])).expect("route");
        let resp = catalogue(&rt, &list, &pol, &mut ctx())
            .expect("ok")
            .expect("answered here");
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let v: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["data"][0]["id"], "chat");
        let one = check_request(&rt, &parts("GET", "/v1/models/tensor", &[])).expect("route");
        let e = catalogue(&rt, &one, &pol, &mut ctx()).unwrap_err();
        assert_eq!(
            e.code, "model_not_found",
            "an ungranted model is not revealed"
        );
        let chat = check_request(&rt, &parts("POST", "/v1/chat/completions", &[])).expect("route");
        assert!(
            catalogue(&rt, &chat, &pol, &mut ctx())
                .expect("ok")
                .is_none()
        );
    }

    #[tokio::test]
    async fn read_body_takes_one_json_object_within_the_limit() {
        const JSON: &[(&str, &str)] = &[("content-type", "application/json")];
        let rt = runtime().await;
        let read = |h: &'static [(&'static str, &'static str)], b: &'static str| {
            let rt = &rt;
            async move {
                let p = parts("POST", "/v1/chat/completions", h);
                read_body(rt, &p.headers, Body::from(b), &mut ctx()).await
            }
        };
        let ok = read(
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"a":1}"#,
        )
        .await
        .expect("object");
        assert_eq!(ok["a"], 1);
        let codes = [
            read(&[("content-type", "text/plain")], "{}").await,
            read(&[], "{}").await,
            read(JSON, "[1]").await,
            read(JSON, "{").await,
            read(
                JSON,
                r#"{"a":"0123456789012345678901234567890123456789012345678901234567890123"}"#,
            )
            .await,
        ]
        .map(|r| r.map(|_| ()).unwrap_err().code);
        assert_eq!(codes[0], "unsupported_media_type");
        assert_eq!(codes[1], "unsupported_media_type");
        assert_ne!(codes[2], "");
        assert_ne!(codes[3], "");
        assert_eq!(codes[4], "request_too_large");
    }

    #[tokio::test]
    async fn validate_checks_the_model_grant_and_protocol() {
        let rt = runtime().await;
        let pol = authorise(&rt, RouteKind::Chat, &principal("chat_only")).expect("pol");
        let chat = check_request(&rt, &parts("POST", "/v1/chat/completions", &[])).expect("r");
        let body = |m: &str| {
            json!({"model": m, "messages": [{"role": "user", "content": "hi"}]})
                .as_object()
                .cloned()
                .expect("object")
        };
        let call = validate(
            &rt,
            &chat,
            "/v1/chat/completions",
            body("chat"),
            &pol,
            &mut ctx(),
        )
        .expect("valid");
        assert_eq!(
            (call.model_name.as_str(), call.kind),
            ("chat", RouteKind::Chat)
        );
        assert!(call.checked.is_some_and(|c| c.max_tokens > 0));
        let e = validate(
            &rt,
            &chat,
            "/v1/chat/completions",
            body("tensor"),
            &pol,
            &mut ctx(),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(e.code, "model_not_allowed");
        let all = authorise(&rt, RouteKind::Chat, &principal("all")).expect("pol");
        let e = validate(
            &rt,
            &chat,
            "/v1/chat/completions",
            body("tensor"),
            &all,
            &mut ctx(),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(e.code, "wrong_protocol");
    }
}
