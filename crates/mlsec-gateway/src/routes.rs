//! The public routes, declared in one table ([`ROUTES`]), and the checks a path passes before
//! it is matched.
//!
//! A route is a method and a path pattern whose `{name}` segments capture one non-empty,
//! percent-decoded segment. Matching is exact (case-sensitive, no trailing slash, no prefix
//! matches). A path that a route serves under another method is refused with 405 and an `Allow`
//! header; every other path is 404. Generic JSON routes come from the config (`[[models]]` with
//! `protocol = "json"`) and are matched, as POST, after the table.
//!
//! To add a route: one [`RouteSpec`] line in [`ROUTES`], an [`Endpoint`] variant if it does
//! something new, and its handling in [`crate::stages::validate`] (or
//! [`crate::stages::catalogue`] for answers the gateway gives itself).

use axum::http::Method;

use crate::Runtime;
use crate::config::RouteKind;
use crate::error::ApiError;

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// An OpenAI-compatible call, forwarded to the model's upstream under the same path.
    Openai(RouteKind),
    /// `GET /v1/models`: the models the caller may use.
    ListModels,
    /// `GET /v1/models/{model}`.
    GetModel,
    /// Open Inference Protocol (KServe v2) inference.
    Infer,
    /// A prompt template rendered into a chat call.
    Template,
    /// A generic JSON prediction route declared in the config.
    Predict,
    /// Liveness: answered without authentication, neither counted nor audited.
    Health,
    /// Readiness: as [`Endpoint::Health`], 503 while draining or while the limit store is down
    /// and the gateway fails closed.
    Ready,
}

/// One line of the route table.
#[derive(Debug)]
pub struct RouteSpec {
    pub method: Method,
    /// `/`-separated segments; `{name}` captures one segment.
    pub pattern: &'static str,
    pub endpoint: Endpoint,
}

const fn get(pattern: &'static str, endpoint: Endpoint) -> RouteSpec {
    RouteSpec {
        method: Method::GET,
        pattern,
        endpoint,
    }
}

const fn post(pattern: &'static str, endpoint: Endpoint) -> RouteSpec {
    RouteSpec {
        method: Method::POST,
        pattern,
        endpoint,
    }
}

/// Every public route the gateway serves (the config adds its JSON routes).
pub const ROUTES: &[RouteSpec] = &[
    post("/v1/chat/completions", Endpoint::Openai(RouteKind::Chat)),
    post("/v1/completions", Endpoint::Openai(RouteKind::Completions)),
    post("/v1/embeddings", Endpoint::Openai(RouteKind::Embeddings)),
    post("/v1/responses", Endpoint::Openai(RouteKind::Responses)),
    get("/v1/models", Endpoint::ListModels),
    get("/v1/models/{model}", Endpoint::GetModel),
    post("/v1/templates/{template}", Endpoint::Template),
    post("/v2/models/{model}/infer", Endpoint::Infer),
    post(
        "/v2/models/{model}/versions/{version}/infer",
        Endpoint::Infer,
    ),
    get("/healthz", Endpoint::Health),
    get("/readyz", Endpoint::Ready),
];

/// A matched route and its captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    /// `{model}`, or the model a config JSON route belongs to.
    pub model: Option<String>,
    pub version: Option<String>,
    pub template: Option<String>,
}

impl Route {
    /// The kind policies grant, metrics label and the audit records; `None` for probes.
    pub fn kind(&self) -> Option<RouteKind> {
        Some(match self.endpoint {
            Endpoint::Openai(k) => k,
            Endpoint::ListModels | Endpoint::GetModel => RouteKind::Models,
            Endpoint::Infer => RouteKind::Infer,
            Endpoint::Predict => RouteKind::Predict,
            Endpoint::Template => RouteKind::Template,
            Endpoint::Health | Endpoint::Ready => return None,
        })
    }

    fn new(endpoint: Endpoint) -> Route {
        Route {
            endpoint,
            model: None,
            version: None,
            template: None,
        }
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
    let encoded = |w: &[u8]| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f' | b'e' | b'5') | (b'5', b'c') | (b'0', b'0')
            )
    };
    if path.as_bytes().windows(3).any(encoded) {
        return Err(bad("encoded slash, dot, backslash, NUL or percent"));
    }
    Ok(())
}

/// Up to two captures, in pattern order.
type Captures<'a> = [Option<&'a str>; 2];

/// Matches `path` against one pattern; `None` when it does not fit.
fn fit<'a>(pattern: &str, path: &'a str) -> Option<Captures<'a>> {
    let mut caps: Captures<'a> = [None, None];
    let mut n = 0;
    let mut pat = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some(caps),
            (Some(p), Some(g)) if p.starts_with('{') => {
                if g.is_empty() || n == caps.len() {
                    return None;
                }
                caps[n] = Some(g);
                n += 1;
            }
            (Some(p), Some(g)) if p == g => {}
            _ => return None,
        }
    }
}

/// Matches a checked path: the route, or 405 (with `Allow`) when only the method is wrong, or
/// 404.
pub fn match_route(rt: &Runtime, method: &Method, path: &str) -> Result<Route, ApiError> {
    let mut allowed: Vec<&Method> = Vec::new();
    for spec in ROUTES {
        let Some(caps) = fit(spec.pattern, path) else {
            continue;
        };
        if spec.method != *method {
            allowed.push(&spec.method);
            continue;
        }
        let mut route = Route::new(spec.endpoint);
        let mut decoded: [Option<String>; 2] = [None, None];
        for (d, c) in decoded.iter_mut().zip(caps) {
            if let Some(c) = c {
                *d = Some(percent_decode(c).ok_or_else(ApiError::not_found)?);
            }
        }
        let [a, b] = decoded;
        if spec.endpoint == Endpoint::Template {
            route.template = a;
        } else {
            (route.model, route.version) = (a, b);
        }
        return Ok(route);
    }
    if let Some(model) = rt.json_routes.get(path) {
        if *method == Method::POST {
            let mut route = Route::new(Endpoint::Predict);
            route.model = Some(model.clone());
            return Ok(route);
        }
        allowed.push(&Method::POST);
    }
    if allowed.is_empty() {
        return Err(ApiError::not_found());
    }
    let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    Err(ApiError::method_not_allowed(method.as_str(), path, &allow))
}

/// Decodes `%XX` escapes; `None` for a bad escape, invalid UTF-8 or an empty result.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_tricks_are_refused() {
        for p in [
            "/v1/../admin",
            "/v1/./chat/completions",
            "//v1/chat/completions",
            "/v1/chat%2fcompletions",
            "/v1/chat%2Ecompletions",
            "/v1/x%00",
            "/v1/x%252f",
            "/v1\\chat",
            "relative",
            "/v1%2fchat/completions",
            "/v1/%2e%2e/admin",
            "/v1/models/%252e",
        ] {
            assert!(check_path(p).is_err(), "{p}");
        }
        assert!(check_path("/v1/chat/completions").is_ok());
        assert!(check_path("/v2/models/resnet%20v2/infer").is_ok());
    }

    #[test]
    fn patterns_capture_whole_non_empty_segments() {
        assert_eq!(
            fit("/v2/models/{model}/infer", "/v2/models/m/infer"),
            Some([Some("m"), None])
        );
        assert_eq!(
            fit(
                "/v2/models/{model}/versions/{version}/infer",
                "/v2/models/m/versions/3/infer"
            ),
            Some([Some("m"), Some("3")])
        );
        for p in [
            "/v2/models/infer",
            "/v2/models//infer",
            "/v2/models/a/b/infer",
            "/v2/models/m/infer/",
            "/v2/models/m/INFER",
            "/v2/models/m",
        ] {
            assert_eq!(fit("/v2/models/{model}/infer", p), None, "{p}");
        }
        assert_eq!(fit("/v1/models", "/v1/models/"), None);
    }

    #[test]
    fn every_pattern_is_well_formed_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for r in ROUTES {
            assert!(r.pattern.starts_with('/') && !r.pattern.ends_with('/'));
            assert!(check_path(&r.pattern.replace(['{', '}'], "")).is_ok());
            assert!(seen.insert((r.method.clone(), r.pattern)), "{}", r.pattern);
            assert!(r.method == Method::GET || r.method == Method::POST);
        }
    }

    #[test]
    fn percent_escapes_decode_or_refuse() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%e2%28"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
