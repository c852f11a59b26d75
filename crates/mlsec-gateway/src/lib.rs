//! `mlsec gateway`: a secure reverse proxy in front of model servers.
//!
//! Every request goes through one pipeline ([`handler`]): path and header checks, authentication
//! (API keys or JWTs; deny by default), the policy's route and model grants, body limits and
//! validation (OpenAI parameters, OIP tensors, JSON Schemas, prompt templates), the guard hook,
//! limits (rate, concurrency, token quotas; in memory or shared through Redis), the upstream call
//! (streamed responses passed through chunk by chunk, usage read on the way), then metrics and
//! one hash-chained audit record.
//!
//! # Brief overview
//! - [`config::Config`]: `gateway.toml`, checked as a whole with locations.
//! - [`Runtime`]: what a config becomes (keys, issuers, upstreams, schemas); swapped atomically
//!   on reload while in-flight requests keep the one they started with.
//! - [`AppState`]: the runtime plus what outlives reloads (limit store, audit log, metrics,
//!   HTTP client).
//! - [`router`] and [`admin_router`]: the two axum routers, testable without sockets.
//! - [`server::run`]: listeners, TLS, SIGHUP reload and graceful shutdown.
//!
//! API keys, JWT issuers, limits, metrics, the audit chain, the error type and the listeners
//! come from `mlsec-server`, shared with every mlsec server; this crate adds the proxy's
//! config, routes, validation, templates, guard hook and upstream pool.

#![forbid(unsafe_code)]

pub mod abuse;
pub mod config;
pub mod guard;
pub mod handler;
pub mod monitor;
pub mod oip;
pub mod output;
pub mod proxy;
pub mod redact;
pub mod routes;
pub mod server;
pub mod stages;
pub mod template;
pub mod validate;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Router;

/// The shared server plumbing, re-exported under the paths the gateway's modules use.
pub use mlsec_server::{audit, error, jwt, keys, limits, metrics};

use crate::config::{
    Config, ConfigErrors, FailMode, ModelConfig, Policy, Protocol, TemplateConfig,
};

/// Why a gateway could not start or reload. Each names the file, field or model at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(
        "auth.keys_file: {} does not exist: create a key first (mlsec gateway keys create --name <name> --policy <policy>)",
        path.display()
    )]
    NoKeysFile { path: std::path::PathBuf },
    #[error("{}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("issuer {issuer}: no jwks_file or jwks_url")]
    NoJwks { issuer: String },
    #[error("issuer {issuer}: {source}")]
    Jwks {
        issuer: String,
        source: jwt::JwksError,
    },
    #[error("model {model}: environment variable {var} (upstream_api_key_env) is not set")]
    MissingEnv { model: String, var: String },
    #[error("model {model}: {var} is not a valid header value")]
    BadEnv { model: String, var: String },
    #[error(transparent)]
    Schema(#[from] validate::SchemaError),
    #[error("model {model}: monitor: {message}")]
    Monitor { model: String, message: String },
    #[error("guard: {0}")]
    Tier(#[from] mlsec_guard::tier::TierError),
    #[error("limits.redis_url: {0}")]
    Limits(limits::BackendError),
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
    #[error(transparent)]
    Listen(#[from] mlsec_server::listen::ListenError),
    #[error("{addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub use error::ApiError;

/// One upstream server of a model.
pub struct Upstream {
    /// Base URL without a trailing slash.
    pub base: String,
    pub healthy: AtomicBool,
}

/// A configured model and its upstreams.
pub struct Model {
    pub config: ModelConfig,
    pub upstreams: Vec<Arc<Upstream>>,
    pub next: AtomicUsize,
    /// `Bearer <upstream credential>`, read from the environment at load time.
    pub upstream_auth: Option<axum::http::HeaderValue>,
    pub schema: Option<jsonschema::Validator>,
    /// `[models.monitor]`, when the model has one.
    pub monitor: Option<monitor::ModelMonitor>,
}

/// A policy with its guard.
pub struct PolicyRt {
    pub name: String,
    pub policy: Policy,
    pub guard: Arc<dyn guard::Guard>,
    /// The output checks (`[policies.<name>.output]`), when the policy has any.
    pub output: Option<output::OutputConfig>,
}

/// Everything a config file becomes. Immutable; replaced whole on reload.
pub struct Runtime {
    pub config: Config,
    pub keys: keys::KeyStore,
    pub jwt: jwt::Verifier,
    pub models: HashMap<String, Arc<Model>>,
    pub templates: HashMap<String, TemplateConfig>,
    /// Generic JSON route path -> model name.
    pub json_routes: HashMap<String, String>,
    pub policies: HashMap<String, Arc<PolicyRt>>,
    /// The monitors' open conditions and escalation policy (`[monitor]`).
    pub alerts: monitor::Alerts,
}

impl Runtime {
    /// Builds a runtime from a checked config: reads the key file, JWKS files and schemas, and
    /// (through `fetch`) the JWKS URLs.
    pub async fn build(config: Config, fetch: &jwt::Fetch) -> Result<Runtime, GatewayError> {
        let keys = match &config.auth.keys_file {
            Some(p) => {
                let path = config.resolve(p);
                if !path.exists() {
                    return Err(GatewayError::NoKeysFile { path });
                }
                let file = keys::KeyFile::load(&path)?;
                keys::KeyStore::from_file(&file)
            }
            None => keys::KeyStore::default(),
        };
        let mut issuers = Vec::new();
        for j in &config.auth.jwt {
            let source = match (&j.jwks_file, &j.jwks_url) {
                (Some(f), _) => {
                    let p = config.resolve(f);
                    jwt::JwksSource::Inline(
                        std::fs::read_to_string(&p)
                            .map_err(|source| GatewayError::Read { path: p, source })?,
                    )
                }
                (None, Some(u)) => jwt::JwksSource::Url(u.clone()),
                (None, None) => {
                    return Err(GatewayError::NoJwks {
                        issuer: j.issuer.clone(),
                    });
                }
            };
            let issuer =
                jwt::Issuer::new(j.clone(), &source).map_err(|source| GatewayError::Jwks {
                    issuer: j.issuer.clone(),
                    source,
                })?;
            if issuer.is_remote()
                && let Err(e) = issuer.refresh(fetch).await
            {
                tracing::error!(issuer = %j.issuer, error = %e, "could not fetch the issuer's JWKS; its tokens are refused until a refresh succeeds");
            }
            issuers.push(Arc::new(issuer));
        }
        let mut models = HashMap::new();
        let mut json_routes = HashMap::new();
        for m in &config.models {
            let upstream_auth = match &m.upstream_api_key_env {
                Some(var) => {
                    let v = std::env::var(var).map_err(|_| GatewayError::MissingEnv {
                        model: m.name.clone(),
                        var: var.clone(),
                    })?;
                    let mut h = axum::http::HeaderValue::from_str(&format!("Bearer {v}")).map_err(
                        |_| GatewayError::BadEnv {
                            model: m.name.clone(),
                            var: var.clone(),
                        },
                    )?;
                    h.set_sensitive(true);
                    Some(h)
                }
                None => None,
            };
            let schema = match &m.schema {
                Some(s) => Some(validate::load_schema(&config.resolve(s))?),
                None => None,
            };
            let monitor = match &m.monitor {
                Some(mc) => Some(
                    monitor::ModelMonitor::new(&m.name, mc, m.protocol, &config).map_err(
                        |message| GatewayError::Monitor {
                            model: m.name.clone(),
                            message,
                        },
                    )?,
                ),
                None => None,
            };
            if m.protocol == Protocol::Json {
                json_routes.insert(
                    m.path
                        .clone()
                        .unwrap_or_else(|| format!("/v1/predict/{}", m.name)),
                    m.name.clone(),
                );
            }
            models.insert(
                m.name.clone(),
                Arc::new(Model {
                    config: m.clone(),
                    upstreams: m
                        .upstreams
                        .iter()
                        .map(|u| {
                            Arc::new(Upstream {
                                base: u.trim_end_matches('/').to_string(),
                                healthy: AtomicBool::new(true),
                            })
                        })
                        .collect(),
                    next: AtomicUsize::new(0),
                    upstream_auth,
                    schema,
                    monitor,
                }),
            );
        }
        // Loaded once, shared by every policy with the injection guard.
        let tier = match &config.guard {
            Some(g) => Some((
                Arc::new(mlsec_guard::tier::Tier::load(
                    &config.resolve(&g.onnx_model),
                    &config.resolve(&g.onnx_tokenizer),
                    g.onnx_label,
                )?),
                (g.grey[0], g.grey[1]),
            )),
            None => None,
        };
        let policies = config
            .policies
            .iter()
            .map(|(name, p)| {
                (
                    name.clone(),
                    Arc::new(PolicyRt {
                        name: name.clone(),
                        policy: p.clone(),
                        guard: guard::profile(&p.guard, tier.clone()),
                        output: p.output.clone(),
                    }),
                )
            })
            .collect();
        let templates = config
            .templates
            .iter()
            .map(|t| (t.name.clone(), t.clone()))
            .collect();
        Ok(Runtime {
            alerts: monitor::Alerts::new(&config.monitor),
            keys,
            jwt: jwt::Verifier { issuers },
            models,
            templates,
            json_routes,
            policies,
            config,
        })
    }
}

/// The gateway's state: the swappable runtime plus what outlives reloads.
pub struct AppState {
    pub runtime: ArcSwap<Runtime>,
    pub limits: limits::Backend,
    pub fail_mode: FailMode,
    pub audit: Option<audit::AuditLog>,
    pub metrics: metrics::Metrics,
    /// For health probes and JWKS fetches (requests use [`proxy::local_client`]).
    pub client: proxy::Client,
    pub connect_timeout_secs: u64,
    pub fetch: jwt::Fetch,
    pub started: Instant,
    /// Abuse windows (in memory; in Redis they live with the limits).
    pub abuse: abuse::Store,
    /// Cleared when shutdown begins, so readiness fails before listeners close.
    pub ready: AtomicBool,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    /// Builds the state for a checked config: connects the limit store, opens the audit log.
    pub async fn new(config: Config) -> Result<SharedState, GatewayError> {
        let client = proxy::client(config.server.connect_timeout_secs);
        let fetch = proxy::fetcher(client.clone());
        let limits = match config.limits.backend {
            config::LimitBackendKind::Memory => limits::Backend::Memory(limits::Memory::default()),
            config::LimitBackendKind::Redis => {
                let url = config.limits.redis_url.clone().unwrap_or_default();
                let r = limits::RedisBackend::connect(&url, &config.limits.key_prefix)
                    .await
                    .map_err(GatewayError::Limits)?;
                tracing::info!(
                    fail_mode = ?config.limits.on_backend_error,
                    "limits shared through Redis; when it is unreachable requests are {}",
                    match config.limits.on_backend_error {
                        FailMode::Open => "served without limits (fail-open)",
                        FailMode::Closed => "refused with 503 (fail-closed)",
                    }
                );
                limits::Backend::Redis(r)
            }
        };
        let log = config.resolve(&config.audit.path);
        let checkpoints = match &config.audit.checkpoint_key {
            Some(k) => Some(audit::CheckpointOptions {
                key: audit::load_checkpoint_key(&config.resolve(k))?,
                every_records: config.audit.checkpoint_every,
                every: std::time::Duration::from_secs(config.audit.checkpoint_secs),
                file: config.audit.checkpoint_file.as_ref().map_or_else(
                    || std::path::PathBuf::from(format!("{}.checkpoint.json", log.display())),
                    |f| config.resolve(f),
                ),
            }),
            None => None,
        };
        let audit = Some(audit::AuditLog::open_with(&log, checkpoints)?);
        let fail_mode = config.limits.on_backend_error;
        let connect_timeout_secs = config.server.connect_timeout_secs;
        let runtime = Runtime::build(config, &fetch).await?;
        Ok(Arc::new(AppState {
            runtime: ArcSwap::from_pointee(runtime),
            limits,
            fail_mode,
            audit,
            metrics: metrics::Metrics::default(),
            client,
            connect_timeout_secs,
            fetch,
            started: Instant::now(),
            abuse: abuse::Store::default(),
            ready: AtomicBool::new(true),
        }))
    }

    /// Ready for traffic: not draining, and, when the gateway fails closed, the limit store
    /// answers (a load balancer should not send requests that would all get 503).
    pub async fn is_ready(&self) -> bool {
        if !self.ready.load(std::sync::atomic::Ordering::Relaxed) {
            return false;
        }
        match self.fail_mode {
            FailMode::Open => true,
            FailMode::Closed => self.limits.ping().await.is_ok(),
        }
    }

    /// Re-reads the config file and swaps the runtime; on any error the old one stays.
    pub async fn reload(&self, path: &std::path::Path) -> Result<(), GatewayError> {
        let config = Config::load(path)?;
        let old = self.runtime.load();
        if config.limits.backend != old.config.limits.backend
            || config.limits.redis_url != old.config.limits.redis_url
            || config.server.listen != old.config.server.listen
            || config.server.admin_listen != old.config.server.admin_listen
            || config.audit.path != old.config.audit.path
        {
            tracing::warn!(
                "listeners, the limit store and the audit path change only on restart; the rest of the new config applies now"
            );
        }
        let rt = Runtime::build(config, &self.fetch).await?;
        self.runtime.store(Arc::new(rt));
        tracing::info!("configuration reloaded");
        Ok(())
    }
}

/// The public listener's router: every route goes through [`handler::handle`].
pub fn router(state: SharedState) -> Router {
    Router::new().fallback(handler::handle).with_state(state)
}

/// The admin listener's router: `/metrics`, `/healthz`, `/readyz`, `POST /admin/reload`.
pub fn admin_router(state: SharedState, admin: server::AdminAuth) -> Router {
    server::admin_routes(state, admin)
}
