//! Listeners: the public one (TLS when configured; HTTP/1.1 and HTTP/2) and the admin one,
//! SIGHUP reload, and graceful shutdown on SIGINT/SIGTERM (readiness fails first, in-flight
//! requests finish, new connections are refused).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::{AppState, SharedState, config::Config};

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's own read buffer cap; the pipeline's `max_header_bytes` check is the real limit and
/// answers with a JSON error, this only stops a peer that never ends its headers.
pub const HYPER_MAX_BUF: usize = 1 << 20;

/// The admin listener's credential.
#[derive(Clone, Default)]
pub struct AdminAuth {
    /// The token's bytes; none means loopback-only access without a token.
    pub token: Option<Arc<[u8]>>,
    pub config_path: Option<PathBuf>,
}

pub fn admin_routes(state: SharedState, admin: AdminAuth) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready))
        .route("/admin/reload", post(reload))
        .fallback(|| async { ApiError::not_found() })
        .layer(axum::middleware::from_fn_with_state(
            admin.clone(),
            admin_auth,
        ))
        .with_state((state, admin))
}

async fn admin_auth(
    State(admin): State<AdminAuth>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(token) = &admin.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(token)) {
            return ApiError::unauthorized("admin token required").into_response();
        }
    }
    next.run(req).await
}

async fn metrics(State((state, _)): State<(SharedState, AdminAuth)>) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    (h, state.metrics.encode()).into_response()
}

async fn ready(State((state, _)): State<(SharedState, AdminAuth)>) -> Response {
    let ready = state.ready.load(Ordering::Relaxed);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(serde_json::json!({"ready": ready}))).into_response()
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
            ApiError::bad_request("invalid_config", e).into_response()
        }
    }
}

/// Loads the server certificate chain and key.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .max_buf_size(HYPER_MAX_BUF)
        .header_read_timeout(Duration::from_secs(30))
        .timer(hyper_util::rt::TokioTimer::new());
    b.http2()
        .max_header_list_size(HYPER_MAX_BUF as u32)
        .timer(hyper_util::rt::TokioTimer::new());
    b
}

/// Serves one listener until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = http_builder();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        match &tls {
            None => {
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .into_owned();
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                        .into_owned();
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: some connections were still open after {DRAIN_TIMEOUT:?}");
    }
}

/// The admin token from the configured environment variable.
pub fn admin_auth_for(config: &Config, config_path: Option<PathBuf>) -> Result<AdminAuth, String> {
    let token = match &config.server.admin_token_env {
        Some(var) => {
            let v = std::env::var(var)
                .map_err(|_| format!("server.admin_token_env: {var} is not set"))?;
            if v.len() < 16 {
                return Err(format!(
                    "server.admin_token_env: {var} is shorter than 16 characters"
                ));
            }
            Some(Arc::from(v.into_bytes().into_boxed_slice()))
        }
        None => None,
    };
    Ok(AdminAuth { token, config_path })
}

/// A listener with SO_REUSEPORT, so every worker thread accepts on the same port.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Runs the gateway from a config file until SIGINT or SIGTERM.
pub async fn run(config_path: &Path) -> Result<(), String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let admin = admin_auth_for(&config, Some(config_path.to_path_buf()))?;
    let listen: SocketAddr = config
        .server
        .listen
        .parse()
        .map_err(|e| format!("server.listen: {e}"))?;
    let admin_listen: SocketAddr = config
        .server
        .admin_listen
        .parse()
        .map_err(|e| format!("server.admin_listen: {e}"))?;
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
    let state = AppState::new(config).await?;
    let admin_l = TcpListener::bind(admin_listen)
        .await
        .map_err(|e| format!("{admin_listen}: {e}"))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    // Thread per core, as nginx does: each worker has its own single-threaded event loop, its
    // own SO_REUSEPORT listener and its own upstream pool, so a request never hops threads.
    let mut threads = Vec::with_capacity(workers);
    let mut bound = listen;
    for i in 0..workers {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<SocketAddr, String>>();
        let app = crate::router(state.clone());
        let tls = tls.clone();
        let stop = stop_rx.clone();
        let t = std::thread::Builder::new()
            .name(format!("mlsec-gw-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(format!("worker runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    match reuseport_listener(bound) {
                        Ok(l) => {
                            let _ = tx.send(l.local_addr().map_err(|e| e.to_string()));
                            serve(l, app, tls, stop).await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("{bound}: {e}")));
                        }
                    }
                });
            })
            .map_err(|e| format!("worker thread: {e}"))?;
        threads.push(t);
        bound = rx
            .await
            .map_err(|_| "a worker thread stopped at start".to_string())??;
    }
    tracing::info!(
        listen = %bound,
        admin = %admin_l.local_addr().map_or(admin_listen, |a| a),
        workers,
        tls = tls.is_some(),
        limits = state.limits.name(),
        "mlsec gateway listening"
    );
    let health = tokio::spawn(crate::proxy::health_loop(state.clone()));
    let jwks = tokio::spawn(jwks_loop(state.clone()));
    let a = tokio::spawn(serve(
        admin_l,
        crate::admin_router(state.clone(), admin),
        None,
        stop_rx,
    ));
    let p = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    });

    signals(&state, config_path).await;
    state.ready.store(false, Ordering::Relaxed);
    tracing::info!("shutting down: draining in-flight requests");
    let _ = stop_tx.send(true);
    let _ = tokio::join!(p, a);
    health.abort();
    jwks.abort();
    if let Some(audit) = &state.audit {
        audit.close();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGINT/SIGTERM, reloading on SIGHUP meanwhile.
async fn signals(state: &SharedState, config_path: &Path) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut hup), Ok(mut term)) = (
            signal(SignalKind::hangup()),
            signal(SignalKind::terminate()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if let Err(e) = state.reload(config_path).await {
                        tracing::error!(error = %e, "reload refused; the running configuration stays");
                    }
                }
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = config_path;
        let _ = state;
        let _ = tokio::signal::ctrl_c().await;
    }
}

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
