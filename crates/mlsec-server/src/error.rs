//! The one error type every handler returns. Its JSON body has the OpenAI error shape (so the
//! official clients show the message) and a stable `code`; 5xx details go to the log only.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A request the gateway refused or could not serve.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, documented, machine-readable: `invalid_api_key`, `model_not_found`, ...
    pub code: &'static str,
    /// For the client: what was wrong and, where useful, which field.
    pub message: String,
    /// The parameter at fault, if any.
    pub param: Option<String>,
    /// Seconds, for 429 and 503 responses.
    pub retry_after: Option<u64>,
    /// The methods a 405 names in its `Allow` header.
    pub allow: Option<String>,
    /// Close the connection after this response (its framing cannot be trusted).
    pub close: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            allow: None,
            close: false,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    #[must_use]
    pub fn param(mut self, param: impl Into<String>) -> ApiError {
        self.param = Some(param.into());
        self
    }

    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// Asks for the connection to be closed after the response.
    #[must_use]
    pub fn close(mut self) -> ApiError {
        self.close = true;
        self
    }

    /// A 405 naming the methods the path does take.
    pub fn method_not_allowed(method: &str, path: &str, allow: &[&str]) -> ApiError {
        let allow = allow.join(", ");
        let mut e = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; allowed: {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_api_key", message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "route_not_found", "no such route")
    }

    /// An upstream or internal failure: the client sees the code, the log sees the detail.
    pub fn upstream(code: &'static str, detail: &str) -> ApiError {
        tracing::warn!(code, detail, "upstream failure");
        ApiError::upstream_quiet(code)
    }

    /// The same, without logging (for a failure that may yet be retried).
    pub fn upstream_quiet(code: &'static str) -> ApiError {
        let status = if code == "upstream_timeout" {
            StatusCode::GATEWAY_TIMEOUT
        } else {
            StatusCode::BAD_GATEWAY
        };
        ApiError::new(status, code, "the model server could not be reached")
    }

    /// The OpenAI `type` field.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind(),
                "code": self.code,
                "param": self.param,
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(v) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mlsec-gateway\""),
            );
        }
        resp
    }
}
