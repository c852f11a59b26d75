//! Limits shared by replicas through the real Redis server, and the fail-open/fail-closed
//! behaviour when it goes away (cut by a TCP relay the test controls).

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use tokio::task::JoinHandle;

use super::{chat, harness_with};

fn redis_url() -> String {
    std::env::var("MLSEC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_addr() -> String {
    redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_string()
}

fn prefix() -> String {
    use rand_core::RngCore;
    format!("mlsec:test:{:x}:", rand_core::OsRng.next_u64())
}

fn limits(url: &str, prefix: &str, mode: &str) -> String {
    format!(
        "\n[limits]\nbackend = \"redis\"\nredis_url = \"{url}\"\nkey_prefix = \"{prefix}\"\non_backend_error = \"{mode}\"\n"
    )
}

/// Two replicas with the same keys file and the same Redis prefix.
async fn replicas(mode: &str) -> (super::H, super::H) {
    let p = prefix();
    let a = harness_with("", Some(&limits(&redis_url(), &p, mode))).await;
    let b = harness_with("", Some(&limits(&redis_url(), &p, mode))).await;
    std::fs::copy(
        a.dir.path().join("keys.json"),
        b.dir.path().join("keys.json"),
    )
    .expect("copy keys");
    b.state.reload(&b.config_path).await.expect("reload b");
    let mut b = b;
    b.keys.clone_from(&a.keys);
    (a, b)
}

#[tokio::test]
async fn rate_limits_hold_across_replicas() {
    let (a, b) = replicas("closed").await;
    let r1 = a
        .post("/v1/chat/completions", "strict", &chat("chat-model"))
        .await;
    let r2 = b
        .post("/v1/chat/completions", "strict", &chat("chat-model"))
        .await;
    let r3 = a
        .post("/v1/chat/completions", "strict", &chat("chat-model"))
        .await;
    let r4 = b
        .post("/v1/chat/completions", "strict", &chat("chat-model"))
        .await;
    assert_eq!(
        [r1.status, r2.status, r3.status, r4.status].map(|s| s.as_u16()),
        [200, 200, 429, 429],
        "the burst of 2 is shared"
    );
    assert!(r4.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn concurrency_and_tokens_hold_across_replicas() {
    let (a, b) = replicas("closed").await;
    let (_, s) = a.open_stream("conc", "a").await;
    let r = b
        .post("/v1/chat/completions", "conc", &chat("chat-model"))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "concurrency_limit_exceeded")
    );
    a.up.release();
    let _ = http_body_util::BodyExt::collect(s).await;
    // Released (asynchronously) once the stream ended.
    let mut ok = false;
    for _ in 0..100 {
        if b.post("/v1/chat/completions", "conc", &chat("chat-model"))
            .await
            .status
            == StatusCode::OK
        {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(ok, "the slot was released in Redis");

    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for h in [&a, &b, &a] {
            v.push(
                h.post("/v1/chat/completions", "tokens", &chat("chat-model"))
                    .await
                    .status
                    .as_u16(),
            );
        }
        v
    };
    assert_eq!(statuses, [200, 200, 429], "token quota settled and shared");
}

/// Relays TCP to Redis until cut.
struct Relay {
    port: u16,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start() -> Relay {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let t2 = tasks.clone();
        let target = redis_addr();
        let accept = tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut r) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut r).await;
                    }
                });
                t2.lock().expect("lock").push(h);
            }
        });
        Relay {
            port,
            tasks,
            accept,
        }
    }

    fn cut(&self) {
        self.accept.abort();
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

/// The public listener's readiness.
async fn readyz(h: &super::H) -> StatusCode {
    let req = axum::http::Request::get("/readyz")
        .body(axum::body::Body::empty())
        .expect("request");
    super::send(&h.app, req).await.status
}

async fn after_redis_dies(mode: &str) -> (super::Resp, super::H) {
    let relay = Relay::start().await;
    let url = format!("redis://127.0.0.1:{}", relay.port);
    let h = harness_with("", Some(&limits(&url, &prefix(), mode))).await;
    let r = h
        .post("/v1/chat/completions", "strict", &chat("chat-model"))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "works while Redis is up: {}",
        r.text
    );
    assert_eq!(readyz(&h).await, StatusCode::OK, "ready while Redis is up");
    relay.cut();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let r = h
        .post("/v1/chat/completions", "strict", &chat("chat-model"))
        .await;
    (r, h)
}

#[tokio::test]
async fn fail_closed_refuses_when_redis_is_down() {
    let (r, h) = after_redis_dies("closed").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::SERVICE_UNAVAILABLE, "limits_unavailable"),
        "{}",
        r.text
    );
    assert!(r.headers.contains_key("retry-after"));
    let audit = h.audit_n(2).await;
    assert!(audit[1]["decisions"].to_string().contains("fail-closed"));
    assert_eq!(
        readyz(&h).await,
        StatusCode::SERVICE_UNAVAILABLE,
        "a load balancer must stop sending requests that would all get 503"
    );
}

#[tokio::test]
async fn fail_open_serves_and_says_so_when_redis_is_down() {
    let (r, h) = after_redis_dies("open").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let audit = h.audit_n(2).await;
    assert!(audit[1]["decisions"].to_string().contains("fail-open"));
    assert_eq!(readyz(&h).await, StatusCode::OK, "fail-open still serves");
}

#[tokio::test]
async fn a_redis_store_that_is_down_at_start_is_an_error_naming_the_setting() {
    let up = super::upstream::start(0).await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("fraud.schema.json"), "{}").expect("w");
    let text = super::config_text(&up.url(), &limits("redis://127.0.0.1:9", "x:", "closed"));
    let cfg =
        mlsec_gateway::config::Config::parse(&text, std::path::Path::new("g.toml"), dir.path())
            .expect("valid");
    let e = mlsec_gateway::AppState::new(cfg)
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, mlsec_gateway::GatewayError::Limits(_)), "{e:?}");
    assert!(e.to_string().contains("limits.redis_url"), "{e}");
}

/// Abuse windows and blocks live in Redis: a templated sweep spread over two replicas is seen
/// as one, and the block one replica sets holds on the other.
#[tokio::test]
async fn abuse_windows_are_shared_across_replicas() {
    let (a, b) = replicas("closed").await;
    let mut blocked_at = None;
    for i in 0..30 {
        let p = format!(
            "Translate the product title 'Blue kettle number {}' into {}. Reply with the title only.",
            i * 3,
            ["French", "German", "Polish", "Greek"][i % 4]
        );
        let g = if i % 2 == 0 { &a } else { &b };
        let r = g
            .post(
                "/v1/chat/completions",
                "sweeper",
                &super::ask("chat-model", &p),
            )
            .await;
        if r.status == StatusCode::FORBIDDEN {
            assert_eq!(r.code(), "abuse_detected", "{}", r.text);
            blocked_at = Some(i);
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let at = blocked_at.expect("the sweep across replicas was blocked");
    // Each replica alone saw half the requests: only shared windows reach min_requests this early.
    assert!(at < 20, "{at}");
    for g in [&a, &b] {
        let r = g
            .post("/v1/chat/completions", "sweeper", &chat("chat-model"))
            .await;
        assert_eq!(r.code(), "abuse_detected", "{}", r.text);
    }
    let r = a
        .post("/v1/chat/completions", "watched", &chat("chat-model"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}
