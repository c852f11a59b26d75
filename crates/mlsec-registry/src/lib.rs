//! A secure model registry that speaks MLflow's REST API, so MLflow clients keep working with
//! only `MLFLOW_TRACKING_URI` and `MLFLOW_TRACKING_TOKEN` changed.
//!
//! What it adds to MLflow: scoped, expiring, hashed bearer tokens with explicit denies
//! ([`auth`]); envelope encryption of every stored file, bound to what the file is
//! ([`crypt`], [`blobs`]); a sealed, scanned and signature-checked copy per model version
//! ([`models`], [`checks`]); protected aliases gated by those checks, with history and
//! rollback; and a hash-chained audit record of every request (`mlsec-server`'s audit log).
//!
//! # Brief overview
//! * [`Registry::open`] builds the state from a [`config::Config`]: metadata in SQLite or
//!   PostgreSQL ([`store::Store`]), objects in a local folder ([`blobs::Blobs`]).
//! * [`router`] is the whole HTTP API; [`ROUTES`] is its table, each route with the rule that
//!   authorises it ([`Rule`]), which a test walks.
//!
//! # Example
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = mlsec_registry::config::Config::default();
//! let registry = mlsec_registry::Registry::open(config).await?;
//! let app = mlsec_registry::router(registry);
//! # let _ = app; Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod artifacts;
pub mod auth;
pub mod backup;
pub mod blobs;
pub mod checks;
pub mod config;
pub mod crypt;
pub mod inventory;
pub mod metrics;
pub mod models;
pub mod server;
pub mod store;
pub mod tracking;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::api::{ErrorCode, MlError};
use crate::auth::{Action, Principal};

/// The registry's state, shared by every request.
pub struct Registry {
    pub store: store::Store,
    pub blobs: blobs::Blobs,
    pub config: config::Config,
    pub audit: Option<mlsec_server::audit::AuditLog>,
    /// Private folder where version files are laid out for the checks.
    pub scratch: PathBuf,
    pub metrics: metrics::Metrics,
    /// Requests per principal.
    pub limits: mlsec_server::limits::Backend,
    /// OIDC/JWT issuers, when configured, and the fetcher for their JWKS URLs.
    pub jwt: Option<(mlsec_server::jwt::Verifier, mlsec_server::jwt::Fetch)>,
}

pub type Shared = Arc<Registry>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("metadata store {url}: {source}")]
    Store { url: String, source: store::DbError },
    #[error(transparent)]
    Crypt(#[from] crypt::CryptError),
    #[error(transparent)]
    Blobs(#[from] blobs::BlobError),
    #[error("audit log: {0}")]
    Audit(#[from] mlsec_server::audit::AuditError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Removes the password from a database URL before it is shown.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl Registry {
    /// Opens the stores a configuration names, creating the embedded defaults if missing.
    pub async fn open(config: config::Config) -> Result<Shared, OpenError> {
        Registry::open_with(config, true).await
    }

    /// As [`Registry::open`]; `audit` false opens without the audit log (the CLI's token
    /// commands, which must not write into a log a running server owns).
    pub async fn open_with(config: config::Config, audit: bool) -> Result<Shared, OpenError> {
        config.validate()?;
        let data = &config.storage.data_dir;
        fs_err::create_dir_all(data).map_err(|source| OpenError::Io {
            path: data.display().to_string(),
            source,
        })?;
        let url = config.metadata_url();
        let store = store::Store::open(&url)
            .await
            .map_err(|source| OpenError::Store {
                url: redact_url(&url),
                source,
            })?;
        let kek_for = |key_file: &std::path::Path,
                       transit_key: Option<&str>|
         -> Result<crypt::Kek, OpenError> {
            match &config.storage.transit {
                Some(t) => {
                    let token =
                        std::env::var(&t.token_env).map_err(|_| config::ConfigError::Field {
                            field: "storage.transit.token_env",
                            detail: format!("{} is not set", t.token_env),
                        })?;
                    Ok(crypt::Kek::Transit(crypt::Transit::new(
                        &t.address,
                        &t.mount,
                        transit_key.unwrap_or(&t.key),
                        token,
                    )))
                }
                None => Ok(crypt::Kek::load(key_file, true)?),
            }
        };
        let mut keys = blobs::Keyring::single(kek_for(&config.key_file(), None)?);
        for e in &config.environments {
            let file = e
                .key_file
                .clone()
                .unwrap_or_else(|| data.join(format!("kek-{}", e.name)));
            let transit = config.storage.transit.as_ref().map(|t| {
                e.transit_key
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", t.key, e.name))
            });
            keys.by_env
                .push((e.name.clone(), kek_for(&file, transit.as_deref())?));
        }
        let location = config.artifacts_location();
        let blobs = if location.starts_with("s3://") {
            blobs::Blobs::s3(&location, &config.storage.s3, keys)?
        } else {
            blobs::Blobs::local(std::path::Path::new(&location), keys)?
        };
        let scratch = data.join("scratch");
        fs_err::create_dir_all(&scratch).map_err(|source| OpenError::Io {
            path: scratch.display().to_string(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700));
        }
        let limits = match (config.limits.backend.as_str(), &config.limits.redis_url) {
            ("redis", Some(url)) => mlsec_server::limits::Backend::Redis(
                mlsec_server::limits::RedisBackend::connect(url, &config.limits.redis_prefix)
                    .await
                    .map_err(|e| config::ConfigError::Field {
                        field: "limits.redis_url",
                        detail: e.to_string(),
                    })?,
            ),
            _ => mlsec_server::limits::Backend::Memory(mlsec_server::limits::Memory::default()),
        };
        let jwt = if config.jwt.is_empty() {
            None
        } else {
            let fetch = jwks_fetcher();
            let mut issuers = Vec::new();
            for j in &config.jwt {
                let source = match (&j.jwks_file, &j.jwks_url) {
                    (Some(f), _) => mlsec_server::jwt::JwksSource::Inline(
                        fs_err::read_to_string(f).map_err(|source| OpenError::Io {
                            path: f.display().to_string(),
                            source,
                        })?,
                    ),
                    (None, Some(u)) => mlsec_server::jwt::JwksSource::Url(u.clone()),
                    (None, None) => unreachable!("validate() requires one"),
                };
                let issuer = mlsec_server::jwt::Issuer::new(j.clone(), &source).map_err(|e| {
                    config::ConfigError::Field {
                        field: "jwt",
                        detail: format!("issuer {}: {e}", j.issuer),
                    }
                })?;
                if issuer.is_remote()
                    && let Err(e) = issuer.refresh(&fetch).await
                {
                    tracing::error!(issuer = %j.issuer, error = %e, "could not fetch the issuer's JWKS; its tokens are refused until a fetch succeeds");
                }
                issuers.push(Arc::new(issuer));
            }
            Some((mlsec_server::jwt::Verifier { issuers }, fetch))
        };
        let audit = if audit {
            Some(mlsec_server::audit::AuditLog::open(&config.audit_file())?)
        } else {
            None
        };
        Ok(Arc::new(Registry {
            store,
            blobs,
            config,
            audit,
            scratch,
            metrics: metrics::Metrics::default(),
            limits,
            jwt,
        }))
    }
}

/// Fetches JWKS documents (bounded, 10 s) with reqwest.
fn jwks_fetcher() -> mlsec_server::jwt::Fetch {
    crypt::install_crypto_provider();
    let client = reqwest::Client::new();
    Arc::new(move |url: String| {
        let client = client.clone();
        Box::pin(async move {
            let resp = client
                .get(&url)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{url}: HTTP {}", resp.status()));
            }
            let body = resp.bytes().await.map_err(|e| format!("{url}: {e}"))?;
            if body.len() > mlsec_server::jwt::MAX_JWKS_BYTES {
                return Err(format!(
                    "{url}: larger than {} bytes",
                    mlsec_server::jwt::MAX_JWKS_BYTES
                ));
            }
            String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
        })
    })
}

/// Who a presented token is: a registry token, or a JWT from a configured issuer.
async fn principal_for(s: &Registry, token: &str) -> Result<Principal, auth::AuthError> {
    if token.starts_with(auth::TOKEN_PREFIX) {
        return auth::authenticate(&s.store, token).await;
    }
    let Some((verifier, fetch)) = &s.jwt else {
        return Err(auth::AuthError::Invalid);
    };
    let v = verifier
        .verify(token, fetch)
        .await
        .map_err(|e| auth::AuthError::Jwt(e.to_string()))?;
    let scopes = s
        .config
        .jwt_scopes
        .get(&v.policy)
        .map(|list| list.iter().filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_default();
    Ok(Principal {
        id: format!("jwt:{}", v.subject),
        scopes,
    })
}

/// What [`Registry::rewrap`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewrapped {
    pub rewrapped: usize,
    pub current: usize,
    /// Changed by someone else meanwhile; their new object is already under the current key.
    pub raced: usize,
}

impl Registry {
    /// Rewraps every object's data key under the current key-encryption key (after a
    /// rotation). Contents are not decrypted; each object is rewritten under a new name and
    /// switched in the metadata only if it did not change meanwhile, so the server can keep
    /// serving.
    pub async fn rewrap(&self) -> Result<Rewrapped, OpenError> {
        let mut out = Rewrapped::default();
        for a in self
            .store
            .all_artifacts()
            .await
            .map_err(|source| OpenError::Store {
                url: redact_url(&self.config.metadata_url()),
                source,
            })?
        {
            let ctx = crypt::Context {
                env: a.env.clone(),
                model: a.model.clone(),
                version: a.version,
                path: a.path.clone(),
            };
            match self.blobs.rewrap(&a.object, &ctx).await? {
                None => out.current += 1,
                Some(new) => {
                    let switched = self
                        .store
                        .swap_object(&a.path, &a.object, &new)
                        .await
                        .map_err(|source| OpenError::Store {
                            url: redact_url(&self.config.metadata_url()),
                            source,
                        })?;
                    if switched {
                        self.blobs.delete(&a.object).await?;
                        out.rewrapped += 1;
                    } else {
                        self.blobs.delete(&new).await?;
                        out.raced += 1;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// How a route is authorised. Every route has one; `authorization_covers_every_route` walks
/// [`ROUTES`] to prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Health and version: no token.
    Public,
    /// An admin token (metrics).
    Admin,
    /// A valid token, then the handler checks `Action` on the experiment the request names.
    Experiment(Action),
    /// A valid token, then the handler checks `Action` on the model (and version environment).
    Model(Action),
    /// A valid token, then the handler checks `Action` on the owner of the artifact path.
    Artifact(Action),
}

const API: &str = "/api/2.0/mlflow";
const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";

/// Every route: method, path (axum syntax), rule.
pub const ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/health", Rule::Public),
    ("GET", "/version", Rule::Public),
    ("GET", "/metrics", Rule::Admin),
    // experiments
    (
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Rule::Experiment(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/experiments/get",
        Rule::Experiment(Action::Read),
    ),
    (
        "GET",
        "/api/2.0/mlflow/experiments/get-by-name",
        Rule::Experiment(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlflow/experiments/search",
        Rule::Experiment(Action::Read),
    ),
    (
        "GET",
        "/api/2.0/mlflow/experiments/search",
        Rule::Experiment(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlflow/experiments/set-experiment-tag",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/experiments/delete",
        Rule::Experiment(Action::Write),
    ),
    // runs
    (
        "POST",
        "/api/2.0/mlflow/runs/create",
        Rule::Experiment(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/runs/get",
        Rule::Experiment(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/update",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/delete",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/log-batch",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/log-metric",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/log-parameter",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/set-tag",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/delete-tag",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/log-inputs",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/outputs",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/log-model",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/runs/search",
        Rule::Experiment(Action::Read),
    ),
    // logged models (MLflow 3)
    (
        "POST",
        "/api/2.0/mlflow/logged-models",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/logged-models/search",
        Rule::Experiment(Action::Read),
    ),
    (
        "GET",
        "/api/2.0/mlflow/logged-models/{id}",
        Rule::Experiment(Action::Read),
    ),
    (
        "PATCH",
        "/api/2.0/mlflow/logged-models/{id}",
        Rule::Experiment(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/logged-models/{id}",
        Rule::Experiment(Action::Write),
    ),
    (
        "PATCH",
        "/api/2.0/mlflow/logged-models/{id}/tags",
        Rule::Experiment(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/logged-models/{id}/tags/{key}",
        Rule::Experiment(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/logged-models/{id}/params",
        Rule::Experiment(Action::Write),
    ),
    // registered models
    (
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        Rule::Model(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/registered-models/get",
        Rule::Model(Action::Read),
    ),
    (
        "PATCH",
        "/api/2.0/mlflow/registered-models/update",
        Rule::Model(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/registered-models/rename",
        Rule::Model(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/registered-models/delete",
        Rule::Model(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/registered-models/search",
        Rule::Model(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        Rule::Model(Action::Read),
    ),
    (
        "GET",
        "/api/2.0/mlflow/registered-models/get-latest-versions",
        Rule::Model(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlflow/registered-models/set-tag",
        Rule::Model(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/registered-models/delete-tag",
        Rule::Model(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        Rule::Model(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/registered-models/alias",
        Rule::Model(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/registered-models/alias",
        Rule::Model(Action::Read),
    ),
    // versions
    (
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        Rule::Model(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/model-versions/get",
        Rule::Model(Action::Read),
    ),
    (
        "PATCH",
        "/api/2.0/mlflow/model-versions/update",
        Rule::Model(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/model-versions/delete",
        Rule::Model(Action::Write),
    ),
    (
        "GET",
        "/api/2.0/mlflow/model-versions/search",
        Rule::Model(Action::Read),
    ),
    (
        "GET",
        "/api/2.0/mlflow/model-versions/get-download-uri",
        Rule::Model(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlflow/model-versions/transition-stage",
        Rule::Model(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlflow/model-versions/set-tag",
        Rule::Model(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow/model-versions/delete-tag",
        Rule::Model(Action::Write),
    ),
    // mlsec additions
    (
        "GET",
        "/api/2.0/mlsec/aliases/history",
        Rule::Model(Action::Read),
    ),
    (
        "POST",
        "/api/2.0/mlsec/aliases/rollback",
        Rule::Model(Action::Write),
    ),
    (
        "POST",
        "/api/2.0/mlsec/model-versions/promote",
        Rule::Model(Action::Write),
    ),
    // artifacts
    (
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts",
        Rule::Artifact(Action::Read),
    ),
    (
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts/{*path}",
        Rule::Artifact(Action::Read),
    ),
    (
        "PUT",
        "/api/2.0/mlflow-artifacts/artifacts/{*path}",
        Rule::Artifact(Action::Write),
    ),
    (
        "DELETE",
        "/api/2.0/mlflow-artifacts/artifacts/{*path}",
        Rule::Artifact(Action::Write),
    ),
];

fn handler(method: &str, path: &str) -> MethodRouter<Shared> {
    use crate::{artifacts as a, models as m, tracking as t};
    let filter = match method {
        "GET" => MethodFilter::GET,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        _ => MethodFilter::DELETE,
    };
    let rest = if path.starts_with("/api/2.0/mlflow/") {
        &path[API.len()..]
    } else {
        path
    };
    match (method, rest) {
        (_, "/health") => on(filter, || async { "OK" }),
        (_, "/version") => on(filter, || async { env!("CARGO_PKG_VERSION") }),
        (_, "/metrics") => on(filter, metrics_route),
        (_, "/experiments/create") => on(filter, t::create_experiment),
        (_, "/experiments/get") => on(filter, t::get_experiment),
        (_, "/experiments/get-by-name") => on(filter, t::get_experiment_by_name),
        (_, "/experiments/search") => on(filter, t::search_experiments),
        (_, "/experiments/set-experiment-tag") => on(filter, t::set_experiment_tag),
        (_, "/experiments/delete") => on(filter, t::delete_experiment),
        (_, "/runs/create") => on(filter, t::create_run),
        (_, "/runs/get") => on(filter, t::get_run),
        (_, "/runs/update") => on(filter, t::update_run),
        (_, "/runs/delete") => on(filter, t::delete_run),
        (_, "/runs/log-batch") => on(filter, t::log_batch),
        (_, "/runs/log-metric") => on(filter, t::log_metric),
        (_, "/runs/log-parameter") => on(filter, t::log_param),
        (_, "/runs/set-tag") => on(filter, t::set_run_tag),
        (_, "/runs/delete-tag") => on(filter, t::delete_run_tag),
        (_, "/runs/log-inputs") => on(filter, t::log_inputs),
        (_, "/runs/outputs") => on(filter, t::log_outputs),
        (_, "/runs/log-model") => on(filter, t::log_model),
        (_, "/runs/search") => on(filter, t::search_runs),
        ("POST", "/logged-models") => on(filter, t::create_logged_model),
        (_, "/logged-models/search") => on(filter, t::search_logged_models),
        ("GET", "/logged-models/{id}") => on(filter, t::get_logged_model),
        ("PATCH", "/logged-models/{id}") => on(filter, t::finalize_logged_model),
        ("DELETE", "/logged-models/{id}") => on(filter, t::delete_logged_model),
        (_, "/logged-models/{id}/tags") => on(filter, t::set_logged_model_tags),
        (_, "/logged-models/{id}/tags/{key}") => on(filter, t::delete_logged_model_tag),
        (_, "/logged-models/{id}/params") => on(filter, t::log_logged_model_params),
        (_, "/registered-models/create") => on(filter, m::create_registered_model),
        (_, "/registered-models/get") => on(filter, m::get_registered_model),
        (_, "/registered-models/update") => on(filter, m::update_registered_model),
        (_, "/registered-models/rename") => on(filter, m::rename_registered_model),
        (_, "/registered-models/delete") => on(filter, m::delete_registered_model),
        (_, "/registered-models/search") => on(filter, m::search_registered_models),
        (_, "/registered-models/get-latest-versions") => on(filter, m::get_latest_versions),
        (_, "/registered-models/set-tag") => on(filter, m::set_registered_model_tag),
        (_, "/registered-models/delete-tag") => on(filter, m::delete_registered_model_tag),
        ("POST", "/registered-models/alias") => on(filter, m::set_alias),
        ("DELETE", "/registered-models/alias") => on(filter, m::delete_alias),
        ("GET", "/registered-models/alias") => on(filter, m::get_by_alias),
        (_, "/model-versions/create") => on(filter, m::create_version),
        (_, "/model-versions/get") => on(filter, m::get_version),
        (_, "/model-versions/update") => on(filter, m::update_version),
        (_, "/model-versions/delete") => on(filter, m::delete_version),
        (_, "/model-versions/search") => on(filter, m::search_versions),
        (_, "/model-versions/get-download-uri") => on(filter, m::download_uri),
        (_, "/model-versions/transition-stage") => on(filter, m::transition_stage),
        (_, "/model-versions/set-tag") => on(filter, m::set_version_tag),
        (_, "/model-versions/delete-tag") => on(filter, m::delete_version_tag),
        (_, "/api/2.0/mlsec/aliases/history") => on(filter, m::alias_history),
        (_, "/api/2.0/mlsec/aliases/rollback") => on(filter, m::rollback_alias),
        (_, "/api/2.0/mlsec/model-versions/promote") => on(filter, m::promote),
        ("GET", ARTIFACTS) => on(filter, a::list),
        ("GET", _) if path.starts_with(ARTIFACTS) => on(filter, a::download),
        ("PUT", _) if path.starts_with(ARTIFACTS) => on(filter, a::upload),
        ("DELETE", _) if path.starts_with(ARTIFACTS) => on(filter, a::delete),
        _ => unreachable!("ROUTES lists {method} {path} without a handler"),
    }
}

/// The whole API. Requests pass the audit layer (every request, answered or refused, is
/// recorded), then each route's authorisation rule.
pub fn router(state: Shared) -> Router {
    let mut r: Router<Shared> = Router::new();
    for (method, path, rule) in ROUTES {
        let h = handler(method, path);
        let h = match rule {
            Rule::Public => h,
            Rule::Admin => h
                .route_layer(axum::middleware::from_fn(require_admin))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    authenticate,
                )),
            _ => h.route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                authenticate,
            )),
        };
        let path: &'static str = path;
        let h = h.layer(axum::middleware::map_response(
            move |mut resp: Response| async move {
                resp.extensions_mut().insert(Pattern(path));
                resp
            },
        ));
        r = r.route(path, h);
    }
    r.fallback(|req: Request| async move {
        let known = ROUTES.iter().any(|(_, p, _)| *p == req.uri().path());
        if known {
            MlError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "BAD_REQUEST",
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            )
        } else {
            MlError::new(
                StatusCode::NOT_FOUND,
                "ENDPOINT_NOT_FOUND",
                format!("no endpoint {} {}", req.method(), req.uri().path()),
            )
        }
    })
    .method_not_allowed_fallback(|req: Request| async move {
        MlError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "BAD_REQUEST",
            format!("{} is not allowed on {}", req.method(), req.uri().path()),
        )
    })
    .layer(axum::middleware::from_fn_with_state(state.clone(), audit))
    .with_state(state)
}

async fn metrics_route(State(s): State<Shared>) -> Response {
    mlsec_server::listen::openmetrics(s.metrics.encode())
}

async fn require_admin(req: Request, next: Next) -> Response {
    match req.extensions().get::<Principal>() {
        Some(p) if p.is_admin() => next.run(req).await,
        _ => MlError::denied("this route needs an admin token").into_response(),
    }
}

/// The route pattern that answered, for metric labels (a closed set).
#[derive(Debug, Clone, Copy)]
struct Pattern(&'static str);

/// Who made the request, for the audit layer (set by [`authenticate`]).
#[derive(Debug, Clone)]
struct Who(String);

async fn authenticate(State(s): State<Shared>, mut req: Request, next: Next) -> Response {
    let header = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let result = match header {
        None => Err(auth::AuthError::Missing),
        Some(h) => match auth::token_from_header(h) {
            Ok(t) => principal_for(&s, &t).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(p) => {
            let l = &s.config.limits;
            if l.requests_per_minute > 0 {
                let rate = mlsec_server::limits::Rate::per_second(
                    f64::from(l.requests_per_minute) / 60.0,
                    l.burst,
                );
                match s.limits.rate(&format!("rate:{}", p.id), rate).await {
                    Ok(mlsec_server::limits::Decision::Deny(_, retry)) => {
                        let mut r = MlError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "REQUEST_LIMIT_EXCEEDED",
                            format!(
                                "token {} is over {} requests per minute; retry in {retry} s",
                                p.id, l.requests_per_minute
                            ),
                        )
                        .into_response();
                        r.headers_mut().insert(
                            axum::http::header::RETRY_AFTER,
                            axum::http::HeaderValue::from(retry),
                        );
                        r.extensions_mut().insert(Who(p.id.clone()));
                        return r;
                    }
                    Ok(_) => {}
                    // A limit store that does not answer fails closed: refusing is safer than
                    // serving without the limit the operator asked for.
                    Err(e) => {
                        return MlError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "TEMPORARILY_UNAVAILABLE",
                            format!("limit store unavailable: {e}"),
                        )
                        .into_response();
                    }
                }
            }
            let who = Who(p.id.clone());
            req.extensions_mut().insert::<Principal>(p);
            let mut resp = next.run(req).await;
            resp.extensions_mut().insert(who);
            resp
        }
        Err(auth::AuthError::Store) => MlError::internal("token store unavailable").into_response(),
        Err(e) => MlError::unauthenticated(e.to_string()).into_response(),
    }
}

async fn audit(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let route = match req.uri().query() {
        Some(q) => format!("{}?{}", req.uri().path(), q),
        None => req.uri().path().to_owned(),
    };
    let resp = next.run(req).await;
    let pattern = resp
        .extensions()
        .get::<Pattern>()
        .map_or("unmatched", |p| p.0);
    s.metrics
        .requests
        .get_or_create(&metrics::Req {
            route: pattern,
            method: metrics::closed(
                method.as_str(),
                &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
            ),
            status: resp.status().as_u16(),
        })
        .inc();
    s.metrics
        .duration
        .get_or_create(&metrics::Route { route: pattern })
        .observe(start.elapsed().as_secs_f64());
    if let Some(log) = &s.audit {
        let principal = resp.extensions().get::<Who>().map(|w| w.0.clone());
        let error = resp.extensions().get::<ErrorCode>().map(|c| c.0.to_owned());
        let total = start.elapsed().as_micros() as u64;
        log.record(mlsec_server::audit::Record {
            ts: mlsec_server::audit::now_rfc3339(),
            request_id: store::random_id(),
            principal,
            method: method.to_string(),
            route: route.chars().take(2048).collect(),
            status: resp.status().as_u16(),
            error,
            latency: mlsec_server::audit::Latency {
                total_us: total,
                ..Default::default()
            },
            ..Default::default()
        });
    }
    resp
}
