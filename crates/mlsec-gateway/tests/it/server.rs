//! The gateway on real sockets: framing attacks that hyper sees first, TLS with HTTP/2, and
//! graceful shutdown with a stream in flight.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{chat, harness};

async fn listen(
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (
    std::net::SocketAddr,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = watch::channel(false);
    let h = tokio::spawn(mlsec_gateway::server::serve(l, app, tls, rx));
    (addr, tx, h)
}

/// As [`listen`], with connection options.
async fn listen_with(
    app: axum::Router,
    opts: mlsec_gateway::server::ConnOptions,
) -> (std::net::SocketAddr, watch::Sender<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = watch::channel(false);
    tokio::spawn(mlsec_gateway::server::serve_with(l, app, None, rx, opts));
    (addr, tx)
}

async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn smuggling_and_oversized_requests_are_refused_on_the_wire() {
    let h = harness().await;
    let (addr, _stop, _) = listen(h.app.clone(), None).await;
    let key = h.key("default").to_string();
    let body = chat("chat-model").to_string();
    let cases = [
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
        ),
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nTransfer-Encoding: xchunked\r\nConnection: close\r\n\r\n{body}"
        ),
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 3\r\nContent-Length: 40\r\nConnection: close\r\n\r\n{body}"
        ),
        format!(
            "POST /v1/../admin/reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(20_000)
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let out = raw(addr, c.as_bytes()).await;
        let status: u16 = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "case {i}: {out}");
    }
    assert_eq!(h.up.count(), 0, "nothing reached the upstream");
}

fn status_and_code(out: &str) -> (u16, String) {
    let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let code = out
        .split("\r\n\r\n")
        .nth(1)
        .and_then(|b| serde_json::from_str::<serde_json::Value>(b.trim()).ok())
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

#[tokio::test]
async fn a_body_length_given_two_ways_is_refused_even_with_a_valid_body() {
    let h = harness().await;
    let (addr, _stop, _) = listen(h.app.clone(), None).await;
    let key = h.key("default").to_string();
    let body = chat("chat-model").to_string();
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n"
    );
    let n = body.len();
    let cases = [
        format!("{head}Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"),
        format!("{head}Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n{chunked}"),
        format!("{head}Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n{body}"),
        format!("{head}Content-Length: {n}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{chunked}"),
        // Pipelined behind an honest request: both are refused (the connection is marked
        // before either is answered).
        format!(
            "{head}Content-Length: {n}\r\n\r\n{body}{head}Content-Length: {n}\r\nContent-Length: {n}\r\n\r\n{body}"
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let out = raw(addr, c.as_bytes()).await;
        let last = out.rfind("HTTP/1.1 ").map_or("", |at| &out[at..]);
        assert_eq!(
            status_and_code(last),
            (400, "ambiguous_length".to_string()),
            "case {i}: {out}"
        );
        assert!(
            last.to_ascii_lowercase().contains("connection: close"),
            "case {i}: {out}"
        );
    }
    assert_eq!(h.up.count(), 0, "nothing reached the upstream");

    // On a kept-alive connection: an honest request is served, the ambiguous one after it is
    // refused and the connection closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("{head}Content-Length: {n}\r\n\r\n{body}").as_bytes())
        .await
        .expect("write");
    let mut buf = vec![0u8; 8192];
    let got = s.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..got]).starts_with("HTTP/1.1 200"));
    s.write_all(
        format!("{head}Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n{chunked}")
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert_eq!(
        status_and_code(&rest),
        (400, "ambiguous_length".to_string()),
        "{rest}"
    );
    assert_eq!(
        h.up.count(),
        1,
        "only the honest request reached the upstream"
    );
}

#[tokio::test]
async fn idle_connections_are_closed_and_the_cap_keeps_descriptors_for_real_requests() {
    let h = harness().await;
    let opts = mlsec_gateway::server::ConnOptions {
        header_timeout: Duration::from_millis(500),
        max_connections: 3,
        ..Default::default()
    };
    let refused = opts.refused.clone();
    let (addr, _stop) = listen_with(h.app.clone(), opts).await;

    // A connection that never sends a byte is closed after the header timeout.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let t = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf))
        .await
        .expect("closed before 5 s");
    assert!(matches!(n, Ok(0) | Err(_)), "closed without an answer");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // Three idle connections fill the cap: a fourth is closed at once, and counted.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut extra = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let n = tokio::time::timeout(Duration::from_millis(300), extra.read(&mut buf))
        .await
        .expect("closed at once, well before the header timeout");
    assert!(matches!(n, Ok(0) | Err(_)));
    assert!(refused.get() >= 1);

    // Once the idle ones time out, real requests are served again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let key = h.key("default").to_string();
    let body = chat("chat-model").to_string();
    let out = raw(
        addr,
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    drop(held);
}

#[tokio::test]
async fn a_body_sent_a_byte_at_a_time_is_cut_off() {
    let h = harness().await;
    let text = std::fs::read_to_string(&h.config_path)
        .expect("config")
        .replace(
            "max_header_bytes = 8192",
            "max_header_bytes = 8192\nbody_timeout_secs = 1",
        );
    std::fs::write(&h.config_path, text).expect("write");
    let config = mlsec_gateway::config::Config::load(&h.config_path).expect("config");
    let state = mlsec_gateway::AppState::new(config).await.expect("state");
    let (addr, _stop, _) = listen(mlsec_gateway::router(state), None).await;
    let key = h.key("default").to_string();
    let body = chat("chat-model").to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("head");
    let t = std::time::Instant::now();
    let mut out = Vec::new();
    for b in body.bytes() {
        if s.write_all(&[b]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await
        {
            out.extend_from_slice(&buf[..n]);
            break;
        }
        if t.elapsed() > Duration::from_secs(5) {
            break;
        }
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(
        status_and_code(&out),
        (408, "request_timeout".to_string()),
        "{out}"
    );
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(h.up.count(), 0);
}

#[tokio::test]
async fn methods_other_than_the_routes_own_are_refused_on_the_wire() {
    let h = harness().await;
    let (addr, _stop, _) = listen(h.app.clone(), None).await;
    let key = h.key("default").to_string();
    let body = chat("chat-model").to_string();
    for method in ["PUT", "PATCH", "DELETE", "TRACE", "OPTIONS", "FROB", "GET"] {
        let req = format!(
            "{method} /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let out = raw(addr, req.as_bytes()).await;
        assert!(out.starts_with("HTTP/1.1 405"), "{method}: {out}");
        assert!(
            out.to_ascii_lowercase().contains("\r\nallow: post\r\n"),
            "{method}: {out}"
        );
    }
    assert_eq!(h.up.count(), 0, "nothing reached the upstream");
}

#[tokio::test]
async fn tls_with_http2_serves_requests() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = harness().await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("c.pem"), cert.cert.pem()).expect("w");
    std::fs::write(dir.path().join("k.pem"), cert.signing_key.serialize_pem()).expect("w");
    let cfg =
        mlsec_gateway::server::tls_config(&dir.path().join("c.pem"), &dir.path().join("k.pem"))
            .expect("tls");
    let (addr, _stop, _) = listen(
        h.app.clone(),
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
    )
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let mut client_cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").expect("name"),
            tcp,
        )
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2");
    tokio::spawn(conn);
    let req = hyper::Request::post(format!(
        "https://localhost:{}/v1/chat/completions",
        addr.port()
    ))
    .header("content-type", "application/json")
    .header("authorization", format!("Bearer {}", h.key("default")))
    .body(http_body_util::Full::new(bytes::Bytes::from(
        chat("chat-model").to_string(),
    )))
    .expect("req");
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
}

#[tokio::test]
async fn shutdown_drains_in_flight_streams_and_refuses_new_connections() {
    let h = harness().await;
    let (addr, stop, served) = listen(h.app.clone(), None).await;
    let key = h.key("default").to_string();
    let body = serde_json::json!({"model": "hold", "stream": true, "messages": [{"role": "user", "content": "a b"}]}).to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("200 OK"));

    stop.send(true).expect("stop");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no new connections while draining"
    );
    assert!(!served.is_finished(), "waits for the stream");
    h.up.release();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("serve returns")
        .expect("join");
}
