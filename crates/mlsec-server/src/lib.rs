//! What every mlsec server shares, so that the gateway, the registry and the next servers
//! authenticate, limit, audit, measure and listen the same way.
//!
//! # Brief overview
//! * [`error::ApiError`]: the one error type of every route, with a stable `code` and an
//!   OpenAI-shaped JSON body (the official clients raise the right exception); 5xx details go to
//!   the log, never to the client.
//! * [`keys`]: API keys (`mlsk_<id>_<secret>`), stored as salted SHA-256 and compared in
//!   constant time; [`jwt`]: JWT issuers with JWKS from a file or a URL, refreshed and refetched
//!   on unknown key ids.
//! * [`limits`]: GCRA rate, concurrency leases and token quotas, in memory or shared through
//!   Redis (one Lua script per decision, on the Redis server's clock).
//! * [`metrics`]: Prometheus/OpenMetrics families with closed label sets.
//! * [`audit`]: the hash-chained JSON-lines audit log and its verifier.
//! * [`listen`]: thread-per-core listeners with TLS and HTTP/2, graceful drain, the admin
//!   token check, health and readiness answers, and the signal loop.
//!
//! # Example
//! ```
//! use axum::response::IntoResponse;
//! use mlsec_server::error::ApiError;
//!
//! let response = ApiError::not_found().into_response();
//! assert_eq!(response.status(), 404);
//! ```
#![forbid(unsafe_code)]

pub mod audit;
pub mod conn;
pub mod error;
pub mod jwt;
pub mod keys;
pub mod limits;
pub mod listen;
pub mod metrics;
