//! A small model server for the tests, standing in for vLLM (OpenAI-compatible, streaming with
//! usage), Triton (OIP infer) and a JSON prediction server. It records every request it gets,
//! so tests can assert that refused requests never reached it.
//!
//! Model names steer it: `hold` streams one chunk then waits for [`Upstream::release`];
//! `chunky` streams its echo three characters at a time; `leaky` repeats its system prompt;
//! `broken` answers 500 with an internal detail the gateway must not pass on.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

#[derive(Clone, Default)]
pub struct Shared {
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub release: Arc<Notify>,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub shared: Shared,
}

impl Upstream {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("lock").clone()
    }
    pub fn count(&self) -> usize {
        self.shared.seen.lock().expect("lock").len()
    }
    pub fn release(&self) {
        self.shared.release.notify_waiters();
        self.shared.release.notify_one();
    }
}

/// Starts on 127.0.0.1 (port 0 for any).
pub async fn start(port: u16) -> Upstream {
    let shared = Shared::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let app = app(shared.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("upstream serve");
    });
    Upstream { addr, shared }
}

pub fn app(shared: Shared) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{v}/infer", post(infer_v))
        .route("/predict", post(predict))
        .route("/hook", post(hook))
        .with_state(shared)
}

fn record(s: &Shared, path: &str, headers: &HeaderMap, body: &Value) {
    s.seen.lock().expect("lock").push(Seen {
        path: path.to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
}

fn text_of(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string()
}

async fn chat(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, "/v1/chat/completions", &headers, &body);
    let model = body["model"].as_str().unwrap_or("").to_string();
    if model == "broken" {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Traceback: /srv/secret/path.py line 3",
        )
            .into_response();
    }
    let reply = if model == "leaky" {
        // Repeats its instructions, as a model tricked into it does.
        format!(
            "My instructions are: {}",
            body["messages"][0]["content"].as_str().unwrap_or("")
        )
    } else {
        format!("echo: {}", text_of(&body))
    };
    let completion = (reply.split_whitespace().count()) as u64;
    let prompt = 10u64;
    if body["stream"].as_bool() == Some(true) {
        let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
        let hold = model == "hold";
        let release = s.release.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(8);
        tokio::spawn(async move {
            let chunk = |content: &str| {
                format!(
                    "data: {}\n\n",
                    json!({"id":"c1","object":"chat.completion.chunk","created":0,"model":model,
                           "choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]})
                )
            };
            if model == "chunky" || model == "leaky" {
                // Three characters a chunk: secrets and words are cut anywhere.
                let chars: Vec<char> = reply.chars().collect();
                for piece in chars.chunks(3) {
                    let _ = tx.send(Ok(chunk(&piece.iter().collect::<String>()))).await;
                }
            } else {
                let _ = tx.send(Ok(chunk("echo:"))).await;
                if hold {
                    release.notified().await;
                }
                for w in reply.split_whitespace().skip(1) {
                    let _ = tx.send(Ok(chunk(&format!(" {w}")))).await;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            if include_usage {
                let _ = tx
                    .send(Ok(format!(
                        "data: {}\n\n",
                        json!({"id":"c1","object":"chat.completion.chunk","created":0,"model":model,"choices":[],
                               "usage":{"prompt_tokens":prompt,"completion_tokens":completion,"total_tokens":prompt+completion}})
                    )))
                    .await;
            }
            let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
        });
        let stream = futures_stream(rx);
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(stream))
            .expect("response");
    }
    axum::Json(json!({
        "id": "c1", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    }))
    .into_response()
}

fn futures_stream(
    rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> ReceiverStream {
    ReceiverStream(rx)
}

pub struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>);

impl futures_core::Stream for ReceiverStream {
    type Item = Result<String, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

async fn completions(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, "/v1/completions", &headers, &body);
    axum::Json(json!({
        "id": "t1", "object": "text_completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "text": "done", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}
    }))
    .into_response()
}

async fn embeddings(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, "/v1/embeddings", &headers, &body);
    axum::Json(json!({
        "object": "list", "model": body["model"],
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
        "usage": {"prompt_tokens": 3, "total_tokens": 3}
    }))
    .into_response()
}

async fn responses(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, "/v1/responses", &headers, &body);
    axum::Json(json!({
        "id": "r1", "object": "response", "model": body["model"], "status": "completed",
        "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}],
        "usage": {"input_tokens": 6, "output_tokens": 2, "total_tokens": 8}
    }))
    .into_response()
}

async fn infer(
    State(s): State<Shared>,
    Path(model): Path<String>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, &format!("/v2/models/{model}/infer"), &headers, &body);
    // Two-class probabilities per batch row: confident unless the row's first value is
    // negative.
    let data = body["inputs"][0]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let width = body["inputs"][0]["shape"][1].as_u64().unwrap_or(1).max(1) as usize;
    let probs: Vec<f64> = data
        .chunks(width)
        .flat_map(|row| {
            if row[0].as_f64().unwrap_or(0.0) < 0.0 {
                [0.5, 0.5]
            } else {
                [0.95, 0.05]
            }
        })
        .collect();
    let rows = probs.len() / 2;
    axum::Json(json!({"model_name": model, "outputs": [
        {"name": "y", "datatype": "FP32", "shape": [1], "data": [0.5]},
        {"name": "probs", "datatype": "FP32", "shape": [rows, 2], "data": probs},
    ]}))
    .into_response()
}

async fn infer_v(
    State(s): State<Shared>,
    Path((model, v)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(
        &s,
        &format!("/v2/models/{model}/versions/{v}/infer"),
        &headers,
        &body,
    );
    axum::Json(json!({"model_name": model, "model_version": v, "outputs": []})).into_response()
}

async fn predict(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, "/predict", &headers, &body);
    if body["fail"].as_bool() == Some(true) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "model crashed").into_response();
    }
    if body["p"] == "none" {
        return axum::Json(json!({"prediction": 1})).into_response();
    }
    // The caller picks the confidence (`p`), so tests know the truth.
    let p = body["p"].as_f64().unwrap_or(0.9);
    axum::Json(json!({"prediction": 1, "probabilities": [p, 1.0 - p]})).into_response()
}

/// The abuse webhook's receiver.
async fn hook(
    State(s): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    record(&s, "/hook", &headers, &body);
    StatusCode::NO_CONTENT.into_response()
}
