//! The gateway's listeners on `mlsec-server`'s plumbing: the public one (thread per core, TLS
//! when configured; HTTP/1.1 and HTTP/2) and the admin one (metrics, health, readiness,
//! reload), SIGHUP reload, and graceful shutdown on SIGINT/SIGTERM (readiness fails first,
//! in-flight requests finish, new connections are refused).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::watch;

use mlsec_server::listen::{self, parse_addr};
pub use mlsec_server::listen::{
    AdminAuth, ConnOptions, DRAIN_TIMEOUT, HYPER_MAX_BUF, TLS_HANDSHAKE_TIMEOUT, serve, serve_with,
    tls_config,
};

use crate::error::ApiError;
use crate::{GatewayError, SharedState, config::Config};

pub fn admin_routes(state: SharedState, admin: AdminAuth) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { listen::healthz() }))
        .route("/readyz", get(ready))
        .route("/admin/reload", post(reload))
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            listen::admin_auth,
        ))
        .with_state((state, admin))
}

async fn metrics(State((state, _)): State<(SharedState, AdminAuth)>) -> Response {
    listen::openmetrics(state.metrics.encode())
}

async fn ready(State((state, _)): State<(SharedState, AdminAuth)>) -> Response {
    listen::readiness(state.is_ready().await)
}

async fn reload(State((state, admin)): State<(SharedState, AdminAuth)>) -> Response {
    let Some(path) = &admin.config_path else {
        return ApiError::new(
            StatusCode::CONFLICT,
            "no_config_file",
            "this gateway was not started from a file",
        )
        .into_response();
    };
    match state.reload(path).await {
        Ok(()) => axum::Json(serde_json::json!({"reloaded": true})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reload refused; the running configuration stays");
            ApiError::bad_request("invalid_config", e.to_string()).into_response()
        }
    }
}

/// The admin token from the configured environment variable.
pub fn admin_auth_for(
    config: &Config,
    config_path: Option<PathBuf>,
) -> Result<AdminAuth, GatewayError> {
    Ok(AdminAuth::from_env(
        "server.admin_token_env",
        config.server.admin_token_env.as_deref(),
        config_path,
    )?)
}

/// Runs the gateway from a config file until SIGINT or SIGTERM.
pub async fn run(config_path: &Path) -> Result<(), GatewayError> {
    let config = Config::load(config_path)?;
    let admin = admin_auth_for(&config, Some(config_path.to_path_buf()))?;
    let listen_addr = parse_addr("server.listen", &config.server.listen)?;
    let admin_listen = parse_addr("server.admin_listen", &config.server.admin_listen)?;
    let tls = match &config.server.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(
            &config.resolve(&t.cert),
            &config.resolve(&t.key),
        )?))),
        None => None,
    };
    let workers = config.server.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let state = crate::AppState::new(config).await?;
    let admin_l = TcpListener::bind(admin_listen)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: admin_listen,
            source,
        })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Thread per core, as nginx does: each worker has its own single-threaded event loop, its
    // own SO_REUSEPORT listener and its own upstream pool, so a request never hops threads.
    let server = &state.runtime.load().config.server;
    let conn = listen::ConnOptions {
        header_timeout: Duration::from_secs(server.header_timeout_secs),
        max_connections: server
            .max_connections
            .unwrap_or_else(|| listen::default_max_connections(1)),
        open: state.metrics.connections_open.clone(),
        refused: state.metrics.connections_refused.clone(),
    };
    let pool = listen::spawn_workers(
        "mlsec-gw",
        workers,
        listen_addr,
        || crate::router(state.clone()),
        tls.as_ref(),
        &stop_rx,
        &conn,
    )
    .await?;
    tracing::info!(
        listen = %pool.bound,
        admin = %admin_l.local_addr().map_or(admin_listen, |a| a),
        workers,
        max_connections = conn.max_connections,
        tls = tls.is_some(),
        limits = state.limits.name(),
        "mlsec gateway listening"
    );
    let health = tokio::spawn(crate::proxy::health_loop(state.clone()));
    let jwks = tokio::spawn(jwks_loop(state.clone()));
    let alerts = tokio::spawn(crate::monitor::tick_loop(state.clone()));
    let exporter = match (
        &state.audit,
        &state.runtime.load().config.audit.checkpoint_url,
    ) {
        (Some(log), Some(url)) => Some(tokio::spawn(crate::proxy::export_checkpoints(
            state.client.clone(),
            log.checkpoints(),
            url.clone(),
        ))),
        _ => None,
    };
    let a = tokio::spawn(listen::serve_with(
        admin_l,
        crate::admin_router(state.clone(), admin),
        None,
        stop_rx,
        listen::ConnOptions {
            max_connections: ADMIN_MAX_CONNECTIONS,
            ..listen::ConnOptions::default()
        },
    ));
    let p = tokio::task::spawn_blocking(move || pool.join());

    listen::wait_for_stop(|| async {
        if let Err(e) = state.reload(config_path).await {
            tracing::error!(error = %e, "reload refused; the running configuration stays");
        }
    })
    .await;
    state.ready.store(false, Ordering::Relaxed);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(p, a);
    health.abort();
    jwks.abort();
    alerts.abort();
    if let Some(audit) = &state.audit {
        // Writes the last records and a final checkpoint, then drops the checkpoint sender.
        audit.close();
    }
    if let Some(e) = exporter {
        // The exporter posts that final checkpoint and ends when the sender is gone.
        let _ = tokio::time::timeout(Duration::from_secs(15), e).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connections the admin listener holds at once (scrapers, probes, an operator).
const ADMIN_MAX_CONNECTIONS: usize = 64;

/// Refreshes remote JWKS on each issuer's interval.
async fn jwks_loop(state: SharedState) {
    loop {
        let rt = state.runtime.load_full();
        let every = rt
            .jwt
            .issuers
            .iter()
            .filter(|i| i.is_remote())
            .map(|i| i.config.refresh_secs.max(10))
            .min();
        let Some(every) = every else {
            tokio::time::sleep(Duration::from_secs(30)).await;
            continue;
        };
        tokio::time::sleep(Duration::from_secs(every)).await;
        for i in state
            .runtime
            .load()
            .jwt
            .issuers
            .iter()
            .filter(|i| i.is_remote())
        {
            if let Err(e) = i.refresh(&state.fetch).await {
                tracing::warn!(issuer = %i.config.issuer, error = %e, "JWKS refresh failed; the cached keys stay");
            }
        }
    }
}
