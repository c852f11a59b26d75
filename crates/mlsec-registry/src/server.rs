//! Serving the registry on `mlsec-server`'s listener (TLS when configured, HTTP/1.1 and
//! HTTP/2, graceful drain on SIGINT/SIGTERM), and a small client for the CLI's commands that
//! talk to a running registry (`mlsec registry rollback`).

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use mlsec_server::listen;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::{OpenError, Registry};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    #[error("server.listen {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Opens the registry and serves it until SIGINT or SIGTERM.
pub async fn run(config: crate::config::Config) -> Result<(), ServeError> {
    let addr = listen::parse_addr("server.listen", &config.server.listen)?;
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(c), Some(k)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            listen::tls_config(c, k)?,
        ))),
        _ => None,
    };
    let state = Registry::open(config).await?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = crate::router(state.clone());
    let server = tokio::spawn(listen::serve(listener, app, tls.clone(), stop_rx));
    tracing::info!(
        listen = %bound,
        tls = tls.is_some(),
        metadata = %crate::redact_url(&state.config.metadata_url()),
        artifacts = %state.config.artifacts_location(),
        kek = %state.blobs.kek().id(),
        "mlsec registry listening"
    );
    listen::wait_for_stop(|| async {}).await;
    tracing::info!("mlsec registry: stopping (draining requests in flight)");
    let _ = stop_tx.send(true);
    let _ = server.await;
    if let Some(a) = &state.audit {
        a.close();
    }
    Ok(())
}

/// A JSON call to a running registry over plain HTTP (loopback administration).
pub async fn call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<(u16, serde_json::Value), String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let uri = format!("{}{path}", base.trim_end_matches('/'));
    let req = axum::http::Request::builder()
        .method(method)
        .uri(&uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| format!("{uri}: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{uri}: {e}"))?
        .to_bytes();
    let v = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    Ok((status, v))
}
