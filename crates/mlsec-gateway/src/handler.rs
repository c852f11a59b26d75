//! The request pipeline. Order matters and is the security argument:
//! 1. path and header checks (nothing odd reaches routing);
//! 2. authentication, then the policy's route grant (deny by default);
//! 3. body size, content type, JSON, route validation, model grant;
//! 4. the guard hook;
//! 5. limits (rate, then concurrency, then the token reservation);
//! 6. the upstream call, the response (streamed or whole), settlement, metrics, audit.
//!
//! Every refusal is an [`ApiError`] with a stable code, counted and audited, and never reaches
//! the upstream.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use crate::audit::{Latency, Record, Tokens};
use crate::config::{Protocol, RouteKind};
use crate::error::ApiError;
use crate::guard::{GuardContext, Verdict};
use crate::limits::{Decision, Limit, Rate, Reservation, Slot};
use crate::proxy::{self, Usage};
use crate::{PolicyRt, Runtime, SharedState, metrics, redact, template, validate};

/// Largest number of request headers.
pub const MAX_HEADERS: usize = 100;

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Openai(RouteKind),
    ListModels,
    GetModel(String),
    Infer {
        model: String,
        version: Option<String>,
    },
    Predict(String),
    Template(String),
    Health,
    Ready,
}

impl Route {
    pub fn kind(&self) -> Option<RouteKind> {
        Some(match self {
            Route::Openai(k) => *k,
            Route::ListModels | Route::GetModel(_) => RouteKind::Models,
            Route::Infer { .. } => RouteKind::Infer,
            Route::Predict(_) => RouteKind::Predict,
            Route::Template(_) => RouteKind::Template,
            Route::Health | Route::Ready => return None,
        })
    }
}

/// Refuses paths that could mean something else to another parser: dot segments, empty
/// segments, backslashes, encoded slashes, dots, backslashes or NULs, and control bytes.
pub fn check_path(path: &str) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::bad_request("invalid_path", format!("refused path: {why}"));
    if !path.starts_with('/') {
        return Err(bad("not absolute"));
    }
    if path.len() > 2048 {
        return Err(bad("longer than 2048 bytes"));
    }
    if path.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') {
        return Err(bad("control character or backslash"));
    }
    if path.contains("//") {
        return Err(bad("empty segment"));
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(bad("dot segment"));
    }
    let lower = path.to_ascii_lowercase();
    for enc in ["%2f", "%2e", "%5c", "%00", "%25"] {
        if lower.contains(enc) {
            return Err(bad("encoded slash, dot, backslash, NUL or percent"));
        }
    }
    Ok(())
}

/// Matches a checked path exactly (case-sensitive; no trailing slash).
pub fn match_route(rt: &Runtime, method: &Method, path: &str) -> Option<Route> {
    let r = match path {
        "/v1/chat/completions" => Route::Openai(RouteKind::Chat),
        "/v1/completions" => Route::Openai(RouteKind::Completions),
        "/v1/embeddings" => Route::Openai(RouteKind::Embeddings),
        "/v1/responses" => Route::Openai(RouteKind::Responses),
        "/v1/models" => Route::ListModels,
        "/healthz" => Route::Health,
        "/readyz" => Route::Ready,
        p => {
            if let Some(m) = p.strip_prefix("/v1/models/") {
                Route::GetModel(percent_decode(m)?)
            } else if let Some(t) = p.strip_prefix("/v1/templates/") {
                Route::Template(t.to_string())
            } else if let Some(rest) = p.strip_prefix("/v2/models/") {
                let rest = rest.strip_suffix("/infer")?;
                match rest.split_once("/versions/") {
                    Some((m, v)) if !m.contains('/') && !v.contains('/') && !v.is_empty() => {
                        Route::Infer {
                            model: percent_decode(m)?,
                            version: Some(v.to_string()),
                        }
                    }
                    None if !rest.contains('/') => Route::Infer {
                        model: percent_decode(rest)?,
                        version: None,
                    },
                    _ => return None,
                }
            } else if let Some(m) = rt.json_routes.get(p) {
                Route::Predict(m.clone())
            } else {
                return None;
            }
        }
    };
    let get = matches!(
        r,
        Route::ListModels | Route::GetModel(_) | Route::Health | Route::Ready
    );
    (get == (method == Method::GET)).then_some(r)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// What the audit record and metrics collect as the request goes.
pub struct Ctx {
    pub request_id: String,
    pub method: String,
    pub route: Option<RouteKind>,
    pub model: Option<String>,
    pub principal: Option<String>,
    pub policy: Option<String>,
    pub decisions: Vec<String>,
    pub stream: bool,
    pub reserved: u64,
    pub upstream: Option<String>,
    pub queue: Duration,
    pub upstream_time: Duration,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub t0: Instant,
}

impl Ctx {
    fn new(request_id: String, method: String) -> Ctx {
        Ctx {
            request_id,
            method,
            route: None,
            model: None,
            principal: None,
            policy: None,
            decisions: Vec::new(),
            stream: false,
            reserved: 0,
            upstream: None,
            queue: Duration::ZERO,
            upstream_time: Duration::ZERO,
            request_body: None,
            response_body: None,
            t0: Instant::now(),
        }
    }
}

/// A request id: a per-process random prefix and a counter (unique, cheap, not secret).
fn request_id() -> String {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: LazyLock<String> = LazyLock::new(|| {
        use rand_core::RngCore;
        let mut b = [0u8; 6];
        rand_core::OsRng.fill_bytes(&mut b);
        crate::keys::hex(&b)
    });
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}{:012x}", *PREFIX, NEXT.fetch_add(1, Ordering::Relaxed))
}

fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Limits held by a request until it ends.
#[derive(Default)]
pub struct Held {
    slot: Option<Slot>,
    reservation: Option<Reservation>,
}

/// The axum handler behind every public route.
pub async fn handle(State(state): State<SharedState>, req: Request) -> Response {
    let rt = state.runtime.load_full();
    let mut ctx = Ctx::new(request_id(), req.method().to_string());
    let rid = ctx.request_id.clone();
    let mut resp = match pipeline(&state, &rt, req, &mut ctx).await {
        Ok(Done::Now(resp, held, usage)) => {
            let status = resp.status();
            complete(&state, &rt, ctx, held, usage, status, None, None).await;
            resp
        }
        Ok(Done::Streaming(resp) | Done::Probe(resp)) => resp,
        Err((e, held)) => {
            if e.status.is_client_error() && e.status != StatusCode::TOO_MANY_REQUESTS {
                state
                    .metrics
                    .validation_rejections
                    .get_or_create(&metrics::Reason {
                        route: ctx.route.map_or("unknown", RouteKind::as_str),
                        reason: e.code,
                    })
                    .inc();
            }
            let status = e.status;
            ctx.decisions.push(format!("refused: {}", e.code));
            complete(&state, &rt, ctx, held, None, status, Some(e.code), None).await;
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

enum Done {
    Now(Response, Held, Option<Usage>),
    Streaming(Response),
    /// Health and readiness: neither counted nor audited (probes would flood both).
    Probe(Response),
}

type Failed = (ApiError, Held);

fn fail(e: ApiError) -> Failed {
    (e, Held::default())
}

fn check_headers(headers: &HeaderMap, max_bytes: usize) -> Result<(), ApiError> {
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

/// Authenticates: (principal, policy name).
async fn authenticate(
    state: &SharedState,
    rt: &Runtime,
    headers: &HeaderMap,
    ctx: &mut Ctx,
) -> Result<(String, String), ApiError> {
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
    if token.starts_with(crate::keys::KEY_PREFIX) {
        match rt.keys.check(token) {
            Ok((id, policy)) => Ok((format!("key:{id}"), policy.to_string())),
            Err((why, id)) => {
                ctx.principal = id.map(|i| format!("key:{i}"));
                ctx.decisions
                    .push(format!("authentication failed: {}", why.as_str()));
                Err(ApiError::unauthorized("invalid API key"))
            }
        }
    } else if token.matches('.').count() == 2 && !rt.jwt.issuers.is_empty() {
        match rt.jwt.verify(token, &state.fetch).await {
            Ok(v) => Ok((format!("jwt:{}", v.subject), v.policy)),
            Err(e) => {
                ctx.decisions.push(format!("authentication failed: {e}"));
                let msg = match e {
                    crate::jwt::JwtRefusal::NoPolicy => "the token's claims grant no policy",
                    _ => "invalid bearer token",
                };
                Err(ApiError::unauthorized(msg))
            }
        }
    } else {
        ctx.decisions
            .push("authentication failed: unrecognised credential".into());
        Err(ApiError::unauthorized("invalid API key"))
    }
}

async fn pipeline(
    state: &SharedState,
    rt: &Arc<Runtime>,
    req: Request,
    ctx: &mut Ctx,
) -> Result<Done, Failed> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    check_path(path).map_err(fail)?;
    check_headers(&parts.headers, rt.config.server.max_header_bytes).map_err(fail)?;
    let Some(route) = match_route(rt, &parts.method, path) else {
        // Right path, wrong method?
        let other = if parts.method == Method::GET {
            Method::POST
        } else {
            Method::GET
        };
        return Err(fail(if match_route(rt, &other, path).is_some() {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} is not allowed on {path}", parts.method),
            )
        } else {
            ApiError::not_found()
        }));
    };
    match route {
        Route::Health => {
            return Ok(Done::Probe(json_response(
                StatusCode::OK,
                &json!({"status": "ok"}),
            )));
        }
        Route::Ready => {
            let ready = state.ready.load(std::sync::atomic::Ordering::Relaxed);
            let code = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok(Done::Probe(json_response(code, &json!({"ready": ready}))));
        }
        _ => {}
    }
    let kind = route.kind().unwrap_or(RouteKind::Models);
    ctx.route = Some(kind);

    let (principal, policy_name) = authenticate(state, rt, &parts.headers, ctx)
        .await
        .map_err(fail)?;
    ctx.principal = Some(principal.clone());
    ctx.policy = Some(policy_name.clone());
    let Some(pol) = rt.policies.get(&policy_name).cloned() else {
        tracing::error!(
            principal,
            policy = policy_name,
            "credential maps to a policy the config does not define"
        );
        return Err(fail(ApiError::new(
            StatusCode::FORBIDDEN,
            "policy_not_found",
            "this credential's policy is not configured",
        )));
    };
    if pol
        .policy
        .routes
        .as_ref()
        .is_some_and(|r| !r.contains(&kind))
    {
        return Err(fail(ApiError::new(
            StatusCode::FORBIDDEN,
            "route_not_allowed",
            format!("this key may not use the {} route", kind.as_str()),
        )));
    }
    let may_use = |m: &str| pol.policy.models.iter().any(|x| x == "*" || x == m);

    match &route {
        Route::ListModels => {
            let mut names: Vec<&String> = rt.models.keys().filter(|m| may_use(m)).collect();
            names.sort();
            let data: Vec<Value> = names.iter().map(|m| model_object(m)).collect();
            return Ok(Done::Now(
                json_response(StatusCode::OK, &json!({"object": "list", "data": data})),
                Held::default(),
                None,
            ));
        }
        Route::GetModel(m) => {
            ctx.model = Some(m.clone());
            if !rt.models.contains_key(m) || !may_use(m) {
                return Err(fail(model_not_found(m)));
            }
            return Ok(Done::Now(
                json_response(StatusCode::OK, &model_object(m)),
                Held::default(),
                None,
            ));
        }
        _ => {}
    }

    // The body: content type, size, JSON.
    let ct = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(fail(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "Content-Type must be application/json, not {:?}",
                if ct.is_empty() { "(none)" } else { ct }
            ),
        )));
    }
    let max = rt.config.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("request body exceeds {max} bytes"),
        )
    };
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
    {
        return Err(fail(too_large()));
    }
    let bytes = match Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(fail(too_large())),
        Err(_) => {
            return Err(fail(ApiError::bad_request(
                "invalid_body",
                "the request body could not be read",
            )));
        }
    };
    let mut body = validate::parse_object(&bytes).map_err(fail)?;
    if rt.config.audit.include_bodies {
        ctx.request_body = Some(redact::redact(&String::from_utf8_lossy(&bytes)));
    }

    // Route validation: the model, its protocol, the parameters.
    let (model_name, checked, upstream_path) = match &route {
        Route::Openai(k) => {
            let c = validate::openai_request(*k, &mut body, &pol.policy).map_err(fail)?;
            (c.model.clone(), Some(c), parts.uri.path().to_string())
        }
        Route::Template(name) => {
            let Some(t) = rt.templates.get(name) else {
                return Err(fail(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "template_not_found",
                    format!("no template named {name:?}"),
                )));
            };
            if let Some(k) = body.keys().find(|k| {
                ![
                    "variables",
                    "stream",
                    "max_tokens",
                    "temperature",
                    "top_p",
                    "seed",
                    "user",
                ]
                .contains(&k.as_str())
            }) {
                return Err(fail(
                    ApiError::bad_request(
                        "unknown_parameter",
                        format!("unknown parameter {k:?} for a template route"),
                    )
                    .param(k.clone()),
                ));
            }
            let Some(Value::Object(vars)) = body.remove("variables") else {
                return Err(fail(
                    ApiError::bad_request("invalid_parameter", "variables must be an object")
                        .param("variables"),
                ));
            };
            let (messages, decisions) = template::render(t, &vars).map_err(fail)?;
            ctx.decisions.extend(decisions);
            body.insert("model".into(), Value::String(t.model.clone()));
            body.insert("messages".into(), Value::Array(messages));
            // The system message is the gateway's own.
            let mut p = pol.policy.clone();
            p.allow_system_messages = true;
            let c = validate::openai_request(RouteKind::Chat, &mut body, &p).map_err(fail)?;
            (c.model.clone(), Some(c), "/v1/chat/completions".to_string())
        }
        Route::Infer { model, version } => {
            let m = rt
                .models
                .get(model)
                .filter(|_| may_use(model))
                .ok_or_else(|| fail(model_not_found(model)))?;
            if m.config.protocol != Protocol::Oip {
                return Err(fail(ApiError::bad_request(
                    "wrong_protocol",
                    format!("model {model:?} is not served over the Open Inference Protocol"),
                )));
            }
            crate::oip::check_infer(&body, &m.config.inputs).map_err(fail)?;
            let up = m.config.upstream_model.as_deref().unwrap_or(model);
            let path = match version {
                Some(v) => format!("/v2/models/{up}/versions/{v}/infer"),
                None => format!("/v2/models/{up}/infer"),
            };
            (model.clone(), None, path)
        }
        Route::Predict(model) => {
            let m = rt
                .models
                .get(model)
                .ok_or_else(|| fail(model_not_found(model)))?;
            if !may_use(model) {
                return Err(fail(model_not_allowed(model)));
            }
            if let Some(s) = &m.schema {
                validate::against_schema(s, &Value::Object(body.clone())).map_err(fail)?;
            }
            let path = m
                .config
                .upstream_path
                .clone()
                .unwrap_or_else(|| parts.uri.path().to_string());
            (model.clone(), None, path)
        }
        _ => return Err(fail(ApiError::not_found())),
    };
    ctx.model = Some(model_name.clone());
    if let Some(c) = &checked {
        ctx.decisions.extend(c.decisions.iter().cloned());
        ctx.stream = c.stream;
    }
    let Some(model) = rt.models.get(&model_name).cloned() else {
        return Err(fail(model_not_found(&model_name)));
    };
    if !may_use(&model_name) {
        return Err(fail(model_not_allowed(&model_name)));
    }
    match kind {
        RouteKind::Chat
        | RouteKind::Completions
        | RouteKind::Embeddings
        | RouteKind::Responses
        | RouteKind::Template
            if model.config.protocol != Protocol::Openai =>
        {
            return Err(fail(ApiError::bad_request(
                "wrong_protocol",
                format!("model {model_name:?} is not an OpenAI-compatible model"),
            )));
        }
        RouteKind::Responses if !model.config.responses => {
            return Err(fail(ApiError::new(
                StatusCode::NOT_FOUND,
                "route_not_supported",
                format!("model {model_name:?} does not serve /v1/responses"),
            )));
        }
        _ => {}
    }

    // The guard hook.
    let gctx = GuardContext {
        route: kind,
        model: &model_name,
        principal: &principal,
    };
    if let Verdict::Block { code, reason } = pol.guard.request(&gctx, &body) {
        ctx.decisions.push(format!(
            "guard {} blocked the request: {reason}",
            pol.guard.name()
        ));
        return Err(fail(ApiError::new(StatusCode::FORBIDDEN, code, reason)));
    }

    // Limits.
    let q0 = Instant::now();
    let tokens = checked.as_ref().map(|c| c.prompt_tokens + c.max_tokens);
    let rid = ctx.request_id.clone();
    let held = apply_limits(state, &pol, &principal, &rid, tokens, ctx).await?;
    ctx.queue = q0.elapsed();
    ctx.reserved = held.reservation.as_ref().map_or(0, |r| r.tokens);

    // Upstream.
    if let Some(up) = &model.config.upstream_model
        && body.contains_key("model")
    {
        body.insert("model".into(), Value::String(up.clone()));
    }
    let out = Bytes::from(serde_json::to_vec(&Value::Object(body)).unwrap_or_default());
    let sent = Instant::now();
    let (resp, upstream) =
        match proxy::send(state, &model, Method::POST, &upstream_path, out, false).await {
            Ok(x) => x,
            Err(e) => return Err((e, held)),
        };
    ctx.upstream = Some(upstream.base.clone());
    ctx.upstream_time = sent.elapsed();
    let status = resp.status();
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let is_sse = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));

    if status.is_server_error() {
        let detail = Limited::new(resp.into_body(), 4096)
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
        let guard = pol.guard.clone();
        let (route_k, model_s, principal_s) = (kind, model_name.clone(), principal.clone());
        let chunk_guard: proxy::ChunkGuard = Box::new(move |chunk: &[u8]| {
            let g = GuardContext {
                route: route_k,
                model: &model_s,
                principal: &principal_s,
            };
            match guard.response_chunk(&g, chunk) {
                Verdict::Pass => None,
                Verdict::Block { code, reason } => {
                    let e = ApiError::new(StatusCode::FORBIDDEN, code, reason);
                    Some(Bytes::from(format!("data: {}\n\n", e.body())))
                }
            }
        });
        let body = proxy::Metered::new(resp.into_body(), sent, finish, Some(chunk_guard));
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
    let bytes = match Limited::new(resp.into_body(), max).collect().await {
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
            model: label_model(rt, &model_name),
        })
        .observe(ctx.upstream_time.as_secs_f64());
    let usage = proxy::usage_in_body(&bytes);
    if let Verdict::Block { code, reason } = pol.guard.response_chunk(&gctx, &bytes) {
        ctx.decisions.push(format!(
            "guard {} blocked the response: {reason}",
            pol.guard.name()
        ));
        return Err((ApiError::new(StatusCode::FORBIDDEN, code, reason), held));
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

fn label_model(rt: &Runtime, m: &str) -> String {
    if rt.models.contains_key(m) {
        m.to_string()
    } else {
        "unknown".to_string()
    }
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
    state: &SharedState,
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
    state: &SharedState,
    pol: &PolicyRt,
    principal: &str,
    request_id: &str,
    tokens: Option<u64>,
    ctx: &mut Ctx,
) -> Result<Held, Failed> {
    let p = &pol.policy;
    let route = ctx.route.map_or("unknown", RouteKind::as_str);
    let reject = |state: &SharedState, limit: Limit, secs: u64| {
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
        match state.limits.acquire(principal, limit, request_id).await {
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
            if l.is_some_and(|l| n > l) {
                return Err((
                    ApiError::bad_request(
                        "request_exceeds_quota",
                        format!(
                            "this request may use {n} tokens (prompt estimate plus max_tokens), more than the {} quota of {}",
                            limit.as_str(),
                            l.unwrap_or(0)
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

/// Releases limits, settles tokens, counts and audits one finished request.
#[allow(clippy::too_many_arguments)]
async fn complete(
    state: &SharedState,
    rt: &Runtime,
    ctx: Ctx,
    held: Held,
    usage: Option<Usage>,
    status: StatusCode,
    error: Option<&'static str>,
    ttft: Option<Duration>,
) {
    if let Some(slot) = &held.slot {
        state.limits.release(slot).await;
    }
    if let Some(r) = &held.reservation {
        // No usage from the upstream: keep the reservation (the conservative count). A failed
        // call used nothing.
        let used = match (usage, status.is_success()) {
            (Some(u), _) => u.prompt + u.completion,
            (None, false) => 0,
            (None, true) => r.tokens,
        };
        if let Err(e) = state.limits.settle(r, used).await {
            tracing::warn!(error = %e, "could not settle a token reservation");
        }
    }
    let route = ctx.route.map_or("unknown", RouteKind::as_str);
    let model = ctx
        .model
        .as_deref()
        .map_or_else(|| "unknown".to_string(), |m| label_model(rt, m));
    let total = ctx.t0.elapsed();
    state
        .metrics
        .requests
        .get_or_create(&metrics::Req {
            route,
            model: model.clone(),
            status: status.as_u16(),
        })
        .inc();
    state
        .metrics
        .duration
        .get_or_create(&metrics::RouteModel {
            route,
            model: model.clone(),
        })
        .observe(total.as_secs_f64());
    if let Some(t) = ttft {
        state
            .metrics
            .ttft
            .get_or_create(&metrics::ModelLabel {
                model: model.clone(),
            })
            .observe(t.as_secs_f64());
    }
    if let Some(u) = usage {
        state
            .metrics
            .tokens
            .get_or_create(&metrics::TokenKind {
                model: model.clone(),
                kind: "prompt",
            })
            .inc_by(u.prompt);
        state
            .metrics
            .tokens
            .get_or_create(&metrics::TokenKind {
                model,
                kind: "completion",
            })
            .inc_by(u.completion);
    }
    if let Some(audit) = &state.audit {
        let u = usage.unwrap_or_default();
        audit.record(Record {
            ts: now_rfc3339(),
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

struct StreamFinish {
    state: SharedState,
    rt: Arc<Runtime>,
    ctx: Ctx,
    held: Held,
    status: StatusCode,
}

impl proxy::Finish for StreamFinish {
    fn finish(
        self: Box<Self>,
        usage: Option<Usage>,
        ttft: Option<Duration>,
        outcome: &'static str,
    ) {
        let StreamFinish {
            state,
            rt,
            mut ctx,
            held,
            status,
        } = *self;
        if outcome != "ok" {
            ctx.decisions.push(format!("stream ended: {outcome}"));
        }
        let error = match outcome {
            "ok" => None,
            o => Some(o),
        };
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                complete(&state, &rt, ctx, held, usage, status, error, ttft).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_tricks_are_refused() {
        for p in [
            "/v1/../admin",
            "/v1/./chat/completions",
            "/v1//chat/completions",
            "/v1%2fchat/completions",
            "/v1/chat%2Fcompletions",
            "/v1/%2e%2e/admin",
            "/v1\\chat",
            "/v1/models/%00",
            "/v1/models/%252e",
        ] {
            assert!(check_path(p).is_err(), "{p}");
        }
        assert!(check_path("/v1/chat/completions").is_ok());
        assert!(check_path("/v2/models/resnet%20v2/infer").is_ok());
    }

    #[test]
    fn dates_are_rfc3339() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 27, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
