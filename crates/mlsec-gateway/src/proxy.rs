//! The upstream side: one pooled HTTP/1.1 + HTTP/2 client (rustls for https upstreams),
//! upstream choice (round robin over healthy upstreams, retries on other upstreams for
//! idempotent calls and for connections that never carried the request), health probes, and
//! [`Metered`], the response body that passes a stream through chunk by chunk while it reads
//! usage, times the first byte and runs the output checks on every chunk.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::ApiError;
use crate::output::Filtered;
use crate::{Model, SharedState, Upstream};

pub type Client =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Longest SSE line kept while looking for usage (longer lines pass through unread).
pub const MAX_SSE_LINE: usize = 1 << 20;

/// The shared upstream client.
pub fn client(connect_timeout_secs: u64) -> Client {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(connect_timeout_secs)));
    http.set_nodelay(true);
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match builder.with_native_roots() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no system CA certificates: https upstreams will fail to verify");
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder()
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth(),
            )
        }
    };
    let https = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https)
}

thread_local! {
    /// One pool per thread: a request's upstream connection lives on the thread that serves the
    /// request, so a proxied call wakes no other thread (the worker runtimes are single-threaded).
    static LOCAL: std::cell::OnceCell<Client> = const { std::cell::OnceCell::new() };
}

/// This thread's upstream client (created on first use with the state's settings).
pub fn local_client(state: &crate::AppState) -> Client {
    LOCAL.with(|c| c.get_or_init(|| client(state.connect_timeout_secs)).clone())
}

/// A JWKS fetcher over the shared client.
pub fn fetcher(client: Client) -> crate::jwt::Fetch {
    Arc::new(move |url: String| {
        let client = client.clone();
        Box::pin(async move {
            let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
            let req = hyper::Request::get(uri)
                .header("accept", "application/json")
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
                .await
                .map_err(|_| format!("{url}: timed out"))?
                .map_err(|e| format!("{url}: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!("{url}: HTTP {}", resp.status()));
            }
            let body = Limited::new(resp.into_body(), crate::jwt::MAX_JWKS_BYTES)
                .collect()
                .await
                .map_err(|e| format!("{url}: {e}"))?
                .to_bytes();
            String::from_utf8(body.to_vec()).map_err(|_| format!("{url}: not UTF-8"))
        })
    })
}

/// Posts each new audit checkpoint to `url` (a copy off the host), for as long as the log runs.
/// A failed post is logged and the next checkpoint tried; the file copy is always written.
pub async fn export_checkpoints(
    client: Client,
    mut checkpoints: tokio::sync::watch::Receiver<Option<crate::audit::Checkpoint>>,
    url: String,
) {
    while checkpoints.changed().await.is_ok() {
        let Some(cp) = checkpoints.borrow_and_update().clone() else {
            continue;
        };
        let body = Bytes::from(serde_json::to_vec(&cp).unwrap_or_default());
        let Ok(Ok(req)) = url.parse::<hyper::Uri>().map(|uri| {
            hyper::Request::post(uri)
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body))
        }) else {
            tracing::error!(url, "audit.checkpoint_url is not a usable URL");
            return;
        };
        match tokio::time::timeout(Duration::from_secs(10), client.request(req)).await {
            Ok(Ok(r)) if r.status().is_success() => {
                tracing::debug!(records = cp.records, "audit checkpoint exported");
            }
            Ok(Ok(r)) => {
                tracing::warn!(url, status = %r.status(), records = cp.records, "the checkpoint endpoint refused an audit checkpoint");
            }
            Ok(Err(e)) => {
                tracing::warn!(url, error = %e, records = cp.records, "could not export an audit checkpoint");
            }
            Err(_) => {
                tracing::warn!(
                    url,
                    records = cp.records,
                    "exporting an audit checkpoint timed out"
                );
            }
        }
    }
}

/// Posts `payload` to a webhook in the background: the caller never waits, and failures are
/// logged under `what` (the webhook's config field).
pub fn notify(client: &Client, url: &str, payload: &serde_json::Value, what: &'static str) {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        tracing::warn!(url, what, "webhook: not a URL");
        return;
    };
    let req = hyper::Request::post(uri)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(payload.to_string())));
    let Ok(req) = req else {
        return;
    };
    let client = client.clone();
    let url = url.to_string();
    tokio::spawn(async move {
        match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
            Ok(Ok(r)) if r.status().is_success() => {}
            Ok(Ok(r)) => tracing::warn!(url, what, status = %r.status(), "webhook refused"),
            Ok(Err(e)) => tracing::warn!(url, what, error = %e, "webhook failed"),
            Err(_) => tracing::warn!(url, what, "webhook timed out"),
        }
    });
}

/// Upstreams of a model in the order to try them: healthy ones round robin, then the rest.
pub fn order(model: &Model) -> Vec<Arc<Upstream>> {
    let n = model.upstreams.len();
    let start = model.next.fetch_add(1, Ordering::Relaxed);
    let mut healthy = Vec::with_capacity(n);
    let mut sick = Vec::new();
    for i in 0..n {
        let u = &model.upstreams[(start + i) % n];
        if u.healthy.load(Ordering::Relaxed) {
            healthy.push(u.clone());
        } else {
            sick.push(u.clone());
        }
    }
    healthy.extend(sick);
    healthy
}

/// Sends a request to the model's upstreams. Returns the response, the upstream used and the
/// time spent waiting for response headers.
pub async fn send(
    state: &SharedState,
    model: &Model,
    method: hyper::Method,
    path_and_query: &str,
    body: Bytes,
    idempotent: bool,
) -> Result<(hyper::Response<Incoming>, Arc<Upstream>), ApiError> {
    let timeout = Duration::from_secs(model.config.timeout_secs);
    let attempts = 1 + model.config.retries as usize;
    let mut last = ApiError::upstream_quiet("upstream_unavailable");
    for upstream in order(model)
        .into_iter()
        .cycle()
        .take(attempts.min(model.upstreams.len().max(1) * 2))
    {
        let uri = format!("{}{}", upstream.base, path_and_query);
        let mut req = hyper::Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream");
        if let Some(auth) = &model.upstream_auth {
            req = req.header(hyper::header::AUTHORIZATION, auth.clone());
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| ApiError::upstream("upstream_error", &e.to_string()))?;
        match tokio::time::timeout(timeout, local_client(state).request(req)).await {
            Ok(Ok(resp)) => {
                upstream.healthy.store(true, Ordering::Relaxed);
                return Ok((resp, upstream));
            }
            Ok(Err(e)) => {
                let never_sent = e.is_connect();
                if never_sent {
                    upstream.healthy.store(false, Ordering::Relaxed);
                }
                last = ApiError::upstream("upstream_unavailable", &format!("{uri}: {e:?}"));
                if !(never_sent || idempotent) {
                    return Err(last);
                }
            }
            Err(_) => {
                last = ApiError::upstream(
                    "upstream_timeout",
                    &format!("{uri}: no response in {timeout:?}"),
                );
                if !idempotent {
                    return Err(last);
                }
            }
        }
    }
    Err(last)
}

/// Probes every upstream with a health path, forever.
pub async fn health_loop(state: SharedState) {
    loop {
        let interval = probe_all(&state).await;
        tokio::time::sleep(interval).await;
    }
}

/// Probes every upstream that has a health path once, updating its flag; returns the interval
/// until the next round.
pub async fn probe_all(state: &SharedState) -> Duration {
    let rt = state.runtime.load_full();
    for m in rt.models.values() {
        let Some(path) = &m.config.health_path else {
            continue;
        };
        for u in &m.upstreams {
            let Ok(uri) = format!("{}{path}", u.base).parse::<hyper::Uri>() else {
                continue;
            };
            let Ok(req) = hyper::Request::get(uri).body(Full::new(Bytes::new())) else {
                continue;
            };
            let ok = matches!(
                tokio::time::timeout(Duration::from_secs(5), state.client.request(req)).await,
                Ok(Ok(r)) if r.status().is_success()
            );
            if u.healthy.swap(ok, Ordering::Relaxed) != ok {
                tracing::warn!(model = %m.config.name, upstream = %u.base, healthy = ok, "upstream health changed");
            }
        }
    }
    Duration::from_secs(rt.config.server.health_interval_secs.max(1))
}

/// Token usage reported by an upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
}

#[derive(serde::Deserialize)]
struct UsageFields {
    #[serde(rename = "prompt_tokens")]
    prompt: Option<u64>,
    #[serde(rename = "input_tokens")]
    input: Option<u64>,
    #[serde(rename = "completion_tokens")]
    completion: Option<u64>,
    #[serde(rename = "output_tokens")]
    output: Option<u64>,
}

#[derive(serde::Deserialize)]
struct UsageOnly {
    usage: Option<UsageFields>,
    response: Option<Box<UsageOnly>>,
}

/// Usage from a JSON response or SSE event (chat, completions, embeddings, responses), reading
/// only the `usage` fields: the rest is skipped, not built into a tree.
pub fn usage_in_body(bytes: &[u8]) -> Option<Usage> {
    let u: UsageOnly = serde_json::from_slice(bytes).ok()?;
    let f = u.usage.or_else(|| u.response.and_then(|r| r.usage))?;
    Some(Usage {
        prompt: f.prompt.or(f.input)?,
        completion: f.completion.or(f.output).unwrap_or(0),
    })
}

/// Reads SSE `data:` lines as they pass, keeping only an incomplete last line.
#[derive(Default)]
pub struct SseScan {
    carry: Vec<u8>,
    skipping: bool,
    pub usage: Option<Usage>,
}

impl SseScan {
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while let Some(nl) = memchr_nl(rest) {
            let (line, after) = rest.split_at(nl);
            rest = &after[1..];
            if self.skipping {
                self.skipping = false;
                self.carry.clear();
                continue;
            }
            if self.carry.is_empty() {
                self.line(line);
            } else {
                let mut full = std::mem::take(&mut self.carry);
                full.extend_from_slice(line);
                self.line(&full);
            }
        }
        if !self.skipping {
            if self.carry.len() + rest.len() > MAX_SSE_LINE {
                self.carry.clear();
                self.skipping = true;
            } else {
                self.carry.extend_from_slice(rest);
            }
        }
    }

    fn line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        if !contains(data, b"\"usage\"") {
            return;
        }
        if let Some(u) = usage_in_body(data.trim_ascii()) {
            self.usage = Some(u);
        }
    }
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Sees each chunk of a stream and says what the client gets instead (the output checks).
pub trait StreamFilter: Send {
    fn chunk(&mut self, data: &[u8]) -> Filtered;
    /// At the stream's end: what is still held back.
    fn finish(&mut self) -> Bytes;
    /// What was decided, for the audit record.
    fn decisions(&mut self) -> Vec<String>;
}

impl StreamFilter for crate::output::Scan {
    fn chunk(&mut self, data: &[u8]) -> Filtered {
        crate::output::Scan::chunk(self, data)
    }
    fn finish(&mut self) -> Bytes {
        crate::output::Scan::finish(self)
    }
    fn decisions(&mut self) -> Vec<String> {
        self.take_decisions()
    }
}

/// What happens when a response ends (normally, with an error, or by the client leaving).
pub trait Finish: Send + 'static {
    fn finish(
        self: Box<Self>,
        usage: Option<Usage>,
        ttft: Option<Duration>,
        outcome: &'static str,
        decisions: Vec<String>,
    );
}

/// A streamed upstream body, passed through frame by frame.
pub struct Metered {
    inner: Incoming,
    scan: SseScan,
    sent_at: Instant,
    ttft: Option<Duration>,
    finish: Option<Box<dyn Finish>>,
    filter: Option<Box<dyn StreamFilter>>,
    /// The filter ended the stream (`"blocked"`), or the upstream ended and what the filter
    /// held back went out (`"ok"`): the next poll ends the body.
    done: Option<&'static str>,
}

impl Metered {
    /// `filter` sees every chunk and decides what the client gets.
    pub fn new(
        inner: Incoming,
        sent_at: Instant,
        finish: Box<dyn Finish>,
        filter: Option<Box<dyn StreamFilter>>,
    ) -> Metered {
        Metered {
            inner,
            scan: SseScan::default(),
            sent_at,
            ttft: None,
            finish: Some(finish),
            filter,
            done: None,
        }
    }

    fn end(&mut self, outcome: &'static str) {
        if let Some(f) = self.finish.take() {
            let decisions = self
                .filter
                .as_mut()
                .map(|g| g.decisions())
                .unwrap_or_default();
            f.finish(self.scan.usage, self.ttft, outcome, decisions);
        }
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            if let Some(outcome) = self.done {
                self.end(outcome);
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    let rest = self.filter.as_mut().map(|g| g.finish()).unwrap_or_default();
                    if rest.is_empty() {
                        self.end("ok");
                        return Poll::Ready(None);
                    }
                    self.done = Some("ok");
                    return Poll::Ready(Some(Ok(Frame::data(rest))));
                }
                Poll::Ready(Some(Err(e))) => {
                    self.end("upstream_error");
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Some(data) = frame.data_ref() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    if self.ttft.is_none() {
                        self.ttft = Some(self.sent_at.elapsed());
                    }
                    let data = data.clone();
                    self.scan.feed(&data);
                    let Some(g) = self.filter.as_mut() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    match g.chunk(&data) {
                        // Held back whole: read on rather than send an empty frame.
                        Filtered::Send(b) if b.is_empty() => {}
                        Filtered::Send(b) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                        Filtered::End(b) => {
                            self.done = Some("blocked");
                            return Poll::Ready(Some(Ok(Frame::data(b))));
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self.filter {
            // What the filter holds back goes out after the upstream's end.
            Some(_) => self.done.is_some() && self.finish.is_none(),
            None => self.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.filter {
            // The filter may change the length.
            Some(_) => SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        // The client went away before the end: settle with what was seen.
        self.end("client_closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_found_across_chunk_boundaries() {
        let stream = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut s = SseScan::default();
            s.feed(&stream[..cut]);
            s.feed(&stream[cut..]);
            assert_eq!(
                s.usage,
                Some(Usage {
                    prompt: 12,
                    completion: 3
                }),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn usage_is_read_from_whole_bodies_of_every_shape() {
        let chat = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
        assert_eq!(
            usage_in_body(chat),
            Some(Usage {
                prompt: 3,
                completion: 4
            })
        );
        let emb = br#"{"data":[],"usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        assert_eq!(
            usage_in_body(emb),
            Some(Usage {
                prompt: 2,
                completion: 0
            })
        );
        let resp = br#"{"usage":{"input_tokens":5,"output_tokens":6}}"#;
        assert_eq!(
            usage_in_body(resp),
            Some(Usage {
                prompt: 5,
                completion: 6
            })
        );
        assert_eq!(usage_in_body(b"not json"), None);
        assert_eq!(usage_in_body(br#"{"usage":null}"#), None);
    }

    #[test]
    fn responses_api_usage_is_read() {
        let v = br#"{"type":"response.completed","response":{"usage":{"input_tokens":5,"output_tokens":7}}}"#;
        assert_eq!(
            usage_in_body(v),
            Some(Usage {
                prompt: 5,
                completion: 7
            })
        );
    }

    #[test]
    fn an_endless_line_is_skipped_not_kept() {
        let mut s = SseScan::default();
        let big = vec![b'x'; MAX_SSE_LINE + 10];
        s.feed(b"data: ");
        s.feed(&big);
        assert!(s.carry.len() <= MAX_SSE_LINE);
        s.feed(b"\ndata: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n");
        assert_eq!(
            s.usage,
            Some(Usage {
                prompt: 1,
                completion: 1
            })
        );
    }
}
