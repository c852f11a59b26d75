//! The request path: [`handle`] runs the named stages of [`crate::stages`] in order, turns a
//! refusal into its response, and settles and records every request once (streams when they
//! end). Every refusal is an [`ApiError`] with a stable code, counted and audited, and never
//! reaches the upstream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::RouteKind;
use crate::error::ApiError;
use crate::limits::{Reservation, Slot};
use crate::proxy::{self, Usage};
use crate::stages::{self, Call};
use crate::{Runtime, SharedState, metrics};

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
    pub fn new(request_id: String, method: String) -> Ctx {
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

pub use mlsec_server::audit::now_rfc3339;

/// Limits held by a request until it ends.
#[derive(Default)]
pub struct Held {
    pub(crate) slot: Option<Slot>,
    pub(crate) reservation: Option<Reservation>,
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

/// How a request that was not refused ended.
pub enum Done {
    /// A whole response; settle and record now.
    Now(Response, Held, Option<Usage>),
    /// A stream; settled and recorded by [`StreamFinish`] when it ends.
    Streaming(Response),
    /// Health and readiness: neither counted nor audited (probes would flood both).
    Probe(Response),
}

/// A refusal and the limits taken before it.
pub type Failed = (ApiError, Held);

pub(crate) fn fail(e: ApiError) -> Failed {
    (e, Held::default())
}

/// The stages, in order.
async fn pipeline(
    state: &SharedState,
    rt: &Arc<Runtime>,
    req: Request,
    ctx: &mut Ctx,
) -> Result<Done, Failed> {
    let (parts, body) = req.into_parts();
    let route = stages::check_request(rt, &parts).map_err(fail)?;
    if let Some(resp) = stages::probe(state, &route).await {
        return Ok(Done::Probe(resp));
    }
    let kind = route.kind().unwrap_or(RouteKind::Models);
    ctx.route = Some(kind);
    let principal = stages::authenticate(state, rt, &parts.headers, ctx)
        .await
        .map_err(fail)?;
    let pol = stages::authorise(rt, kind, &principal).map_err(fail)?;
    if let Some(resp) = stages::catalogue(rt, &route, &pol, ctx).map_err(fail)? {
        return Ok(Done::Now(resp, Held::default(), None));
    }
    let body = stages::read_body(rt, &parts.headers, body, ctx)
        .await
        .map_err(fail)?;
    let mut call: Call =
        stages::validate(rt, &route, parts.uri.path(), body, &pol, ctx).map_err(fail)?;
    stages::guard(&pol, &call, &principal, ctx).map_err(fail)?;
    stages::abuse(state, &pol, &call, &principal, ctx)
        .await
        .map_err(fail)?;
    let scan = stages::output(&pol, &mut call);
    let held = stages::limit(state, &pol, &principal, &call, ctx).await?;
    crate::monitor::on_request(state, rt, &call, ctx);
    let up = match stages::forward(state, &mut call, ctx).await {
        Ok(up) => up,
        Err(e) => return Err((e, held)),
    };
    stages::respond(state, rt, &call, up, held, scan, ctx).await
}

/// Settles and records one finished request.
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
    stages::settle(state, &held, usage, status).await;
    stages::record(state, rt, ctx, usage, status, error, ttft);
}

/// Settles and records a stream when it ends.
pub(crate) struct StreamFinish {
    pub(crate) state: SharedState,
    pub(crate) rt: Arc<Runtime>,
    pub(crate) ctx: Ctx,
    pub(crate) held: Held,
    pub(crate) status: StatusCode,
}

impl proxy::Finish for StreamFinish {
    fn finish(
        self: Box<Self>,
        usage: Option<Usage>,
        ttft: Option<Duration>,
        outcome: &'static str,
        decisions: Vec<String>,
    ) {
        let StreamFinish {
            state,
            rt,
            mut ctx,
            held,
            status,
        } = *self;
        ctx.decisions.extend(decisions);
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
    fn dates_are_rfc3339() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 27, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
