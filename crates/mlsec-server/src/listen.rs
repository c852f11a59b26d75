//! Listeners: thread-per-core workers (one single-threaded event loop and one SO_REUSEPORT
//! listener each, as nginx runs workers), TLS through rustls with HTTP/1.1 and HTTP/2 (ALPN),
//! graceful drain, the admin listener's token check, health and readiness answers, and the
//! signal loop (SIGHUP reloads, SIGINT/SIGTERM stop).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::conn::{ConnMarks, Framing, Watched};
use crate::error::ApiError;

/// How long shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a TLS handshake may take.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// hyper's own read buffer cap; a server's `max_header_bytes` check is the real limit and
/// answers with a JSON error, this only stops a peer that never ends its headers.
pub const HYPER_MAX_BUF: usize = 1 << 20;
/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// A listener or TLS setup that failed, naming the file, address or setting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    #[error("{path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error("certificate and key: {0}")]
    CertKey(String),
    #[error("{addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{field}: {message}")]
    Setting { field: String, message: String },
    #[error("worker thread: {0}")]
    Worker(String),
}

/// Loads a certificate chain and key, and offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, ListenError> {
    let tls_err = |path: &Path, e: &dyn std::fmt::Display| ListenError::Tls {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, &e))?;
    if certs.is_empty() {
        return Err(tls_err(cert, &"no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, &e))?;
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ListenError::CertKey(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// How a listener treats connections.
#[derive(Debug, Clone)]
pub struct ConnOptions {
    /// A connection must send its first byte, and every request head, within this time.
    pub header_timeout: Duration,
    /// Most connections open at once on this listener; past it, new ones are closed at once
    /// (so descriptors never run out and open connections keep being served).
    pub max_connections: usize,
    /// Connections open now.
    pub open: prometheus_client::metrics::gauge::Gauge,
    /// Connections closed at accept because the cap was reached.
    pub refused: prometheus_client::metrics::counter::Counter,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_connections: default_max_connections(1),
            open: prometheus_client::metrics::gauge::Gauge::default(),
            refused: prometheus_client::metrics::counter::Counter::default(),
        }
    }
}

/// The header timeout when the config gives none.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection cap for one of `listeners` listeners when the config gives none: the
/// process's descriptor limit less a reserve for files and upstream connections, shared
/// between the listeners, and never more than 10,000.
pub fn default_max_connections(listeners: usize) -> usize {
    let nofile = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(1024);
    // Half the remaining descriptors for client connections: each proxied request may hold
    // an upstream connection too.
    (nofile.saturating_sub(64) / 2 / listeners.max(1)).clamp(16, 10_000)
}

fn http_builder(opts: &ConnOptions) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .max_buf_size(HYPER_MAX_BUF)
        .header_read_timeout(opts.header_timeout)
        .timer(hyper_util::rt::TokioTimer::new());
    b.http2()
        .max_header_list_size(HYPER_MAX_BUF as u32)
        .timer(hyper_util::rt::TokioTimer::new());
    b
}

/// Serves one listener until `stop` turns true, then drains for at most [`DRAIN_TIMEOUT`], with
/// the default [`ConnOptions`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: watch::Receiver<bool>,
) {
    serve_with(listener, app, tls, stop, ConnOptions::default()).await;
}

/// Counts a connection open while it lives.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The app for one connection: every request carries the connection's [`ConnMarks`].
#[derive(Clone)]
struct Marked {
    app: Router,
    marks: ConnMarks,
}

impl tower::Service<axum::http::Request<hyper::body::Incoming>> for Marked {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower::Service<axum::http::Request<hyper::body::Incoming>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<axum::http::Request<hyper::body::Incoming>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.marks.clone());
        self.app.call(req)
    }
}

/// Logs at most one line per this interval for a recurring accept problem.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A warning that repeats at most every [`LOG_EVERY`], saying how often it happened meanwhile.
#[derive(Default)]
struct Throttled {
    last: Option<std::time::Instant>,
    quiet: u64,
}

impl Throttled {
    fn hit(&mut self) -> Option<u64> {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.quiet += 1;
            return None;
        }
        self.last = Some(std::time::Instant::now());
        Some(std::mem::take(&mut self.quiet))
    }
}

/// Serves one listener until `stop` turns true, then drains for at most [`DRAIN_TIMEOUT`].
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    opts: ConnOptions,
) {
    let graceful = GracefulShutdown::new();
    let builder = http_builder(&opts);
    let mut cap_log = Throttled::default();
    let mut accept_log = Throttled::default();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a peer that left: keep serving the
                    // connections already open, and try again shortly.
                    if let Some(more) = accept_log.hit() {
                        tracing::warn!(error = %e, repeated = more, "accept failed; open connections are still served");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        if opts.open.get() >= opts.max_connections as i64 {
            opts.refused.inc();
            if let Some(more) = cap_log.hit() {
                tracing::warn!(
                    max_connections = opts.max_connections,
                    refused_since_last_line = more,
                    "connection cap reached: new connections are closed until others end (server.max_connections)"
                );
            }
            drop(stream);
            continue;
        }
        opts.open.inc();
        let open = Open(opts.open.clone());
        let _ = stream.set_nodelay(true);
        let marks = ConnMarks::default();
        let svc = hyper_util::service::TowerToHyperService::new(Marked {
            app: app.clone(),
            marks: marks.clone(),
        });
        match &tls {
            None => {
                let io = Watched::new(stream, opts.header_timeout, Some(Framing::new(marks)));
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), svc)
                    .into_owned();
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    let _open = open;
                    if let Err(e) = fut.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let header_timeout = opts.header_timeout;
                tokio::spawn(async move {
                    let _open = open;
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
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let framing = (!h2).then(|| Framing::new(marks));
                    let io = Watched::new(tls, header_timeout, framing);
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(io), svc)
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

/// A listener with SO_REUSEPORT, so every worker thread accepts on the same port.
pub fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
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

/// Worker threads serving one address.
pub struct Workers {
    /// The address bound (the port the OS chose when asked for port 0).
    pub bound: SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Waits for every worker to finish draining (after `stop` turned true).
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Starts `workers` threads, each with its own current-thread runtime, its own SO_REUSEPORT
/// listener on `addr` and its own router from `make_app` (so per-thread state such as an
/// upstream pool never crosses threads). Returns once every listener is bound.
pub async fn spawn_workers(
    name: &str,
    workers: usize,
    addr: SocketAddr,
    make_app: impl Fn() -> Router,
    tls: Option<&tokio_rustls::TlsAcceptor>,
    stop: &watch::Receiver<bool>,
    opts: &ConnOptions,
) -> Result<Workers, ListenError> {
    let mut threads = Vec::with_capacity(workers);
    let mut bound = addr;
    for i in 0..workers.max(1) {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<SocketAddr, ListenError>>();
        let app = make_app();
        let tls = tls.cloned();
        let stop = stop.clone();
        let opts = opts.clone();
        let t = std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(ListenError::Worker(format!("runtime: {e}"))));
                        return;
                    }
                };
                rt.block_on(async move {
                    match reuseport_listener(bound) {
                        Ok(l) => {
                            let _ = tx.send(l.local_addr().map_err(|source| ListenError::Bind {
                                addr: bound,
                                source,
                            }));
                            serve_with(l, app, tls, stop, opts).await;
                        }
                        Err(source) => {
                            let _ = tx.send(Err(ListenError::Bind {
                                addr: bound,
                                source,
                            }));
                        }
                    }
                });
            })
            .map_err(|e| ListenError::Worker(e.to_string()))?;
        threads.push(t);
        bound = rx
            .await
            .map_err(|_| ListenError::Worker("a worker thread stopped at start".into()))??;
    }
    Ok(Workers { bound, threads })
}

/// Parses a `host:port` setting, naming the field when it is not one.
pub fn parse_addr(field: &str, value: &str) -> Result<SocketAddr, ListenError> {
    value.parse().map_err(|e| ListenError::Setting {
        field: field.to_owned(),
        message: format!("{e}"),
    })
}

/// The admin listener's credential.
#[derive(Clone, Default)]
pub struct AdminAuth {
    /// The token's bytes; none means loopback-only access without a token.
    pub token: Option<Arc<[u8]>>,
    pub config_path: Option<PathBuf>,
}

impl AdminAuth {
    /// The admin token read from the environment variable `var` (named by the setting
    /// `field`), at least [`MIN_ADMIN_TOKEN`] characters; none when no variable is configured.
    pub fn from_env(
        field: &str,
        var: Option<&str>,
        config_path: Option<PathBuf>,
    ) -> Result<AdminAuth, ListenError> {
        let setting = |message: String| ListenError::Setting {
            field: field.to_owned(),
            message,
        };
        let token = match var {
            Some(var) => {
                let v = std::env::var(var).map_err(|_| setting(format!("{var} is not set")))?;
                if v.len() < MIN_ADMIN_TOKEN {
                    return Err(setting(format!(
                        "{var} is shorter than {MIN_ADMIN_TOKEN} characters"
                    )));
                }
                Some(Arc::from(v.into_bytes().into_boxed_slice()))
            }
            None => None,
        };
        Ok(AdminAuth { token, config_path })
    }
}

/// Middleware for the admin listener: with a token configured, every request must carry it as
/// `Authorization: Bearer` (compared in constant time).
pub async fn admin_auth(
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

/// `GET /healthz`: the process answers.
pub fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 when `ready`, else 503 (a load balancer stops sending traffic).
pub fn readiness(ready: bool) -> Response {
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(serde_json::json!({"ready": ready}))).into_response()
}

/// An OpenMetrics text body as a response.
pub fn openmetrics(body: String) -> Response {
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    (h, body).into_response()
}

/// Waits for SIGINT or SIGTERM, calling `on_hangup` for each SIGHUP meanwhile.
pub async fn wait_for_stop<F, Fut>(mut on_hangup: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
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
                _ = hup.recv() => on_hangup().await,
                _ = term.recv() => return,
                _ = tokio::signal::ctrl_c() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = &mut on_hangup;
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_name_the_file_or_the_setting() {
        let e = tls_config(Path::new("/nonexistent/cert.pem"), Path::new("/k.pem")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/cert.pem: "), "{e}");
        let e = parse_addr("server.listen", "localhost").unwrap_err();
        assert!(e.to_string().starts_with("server.listen: "), "{e}");
        let e = AdminAuth::from_env("server.admin_token_env", Some("MLSEC_TEST_UNSET_VAR"), None)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "server.admin_token_env: MLSEC_TEST_UNSET_VAR is not set"
        );
        assert!(
            AdminAuth::from_env("x", None, None)
                .unwrap()
                .token
                .is_none()
        );
    }

    #[test]
    fn readiness_is_503_when_not_ready() {
        assert_eq!(readiness(true).status(), StatusCode::OK);
        assert_eq!(readiness(false).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
