//! Output scanning: what a policy's `[policies.<name>.output]` table asks of responses.
//!
//! * Secrets (the shared rule engine) and personal data (`mlsec_guard::output`), each blocked,
//!   redacted or let through.
//! * System-prompt leakage: a random canary planted at the end of the caller's system text for
//!   each request, and long verbatim runs of that text; always blocked.
//!
//! Whole bodies: every string of the JSON is checked (a body that is not JSON is checked as
//! text), redactions rewrite it. Streams: events are checked as they arrive, over a rolling
//! window per text field (the event's JSON pointer, `/choices/0/delta/content`), so a secret
//! split across chunks is seen whole. Blocking ends the stream with an error event before the
//! chunk that completes the secret is sent. Redacting holds back the last `holdback` characters
//! of each field until the next ones show they are not the start of a secret.
//!
//! Every decision goes to the audit record; the text that caused it never does.

use std::collections::{HashMap, VecDeque};

use axum::http::StatusCode;
use bytes::Bytes;
use mlsec_guard::output::{self, Checks, Hit, Kind, Leak, Pii};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::RouteKind;
use crate::error::ApiError;

/// Largest stream event checked; a larger one ends the stream (it cannot be checked whole).
pub const MAX_EVENT_BYTES: usize = 1 << 20;
/// Characters of each field kept after release, so that a secret that started in text already
/// sent is still seen whole when it ends.
pub const TAIL_CHARS: usize = 512;

/// What to do with a kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    #[default]
    Off,
    Redact,
    Block,
}

/// `[policies.<name>.output]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    #[serde(default)]
    pub secrets: Action,
    #[serde(default)]
    pub pii: Action,
    /// The kinds of personal data looked for (all when absent).
    #[serde(default = "all_pii")]
    pub pii_kinds: Vec<Pii>,
    /// `block` plants a canary in the system text and ends responses that repeat it, or that
    /// repeat long runs of the system text (`redact` is refused: a leak is not partly kept).
    #[serde(default)]
    pub system_prompt: Action,
    /// Characters of each text field a redacting stream holds back.
    #[serde(default = "default_holdback")]
    pub holdback: usize,
}

fn all_pii() -> Vec<Pii> {
    Pii::ALL.to_vec()
}
fn default_holdback() -> usize {
    128
}

impl OutputConfig {
    /// Problems, with the field each is in.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.system_prompt == Action::Redact {
            out.push((
                "system_prompt",
                "must be \"off\" or \"block\": a leaked prompt cannot be partly kept".to_string(),
            ));
        }
        if !(16..=4096).contains(&self.holdback) {
            out.push((
                "holdback",
                format!("{} is outside 16..=4096 characters", self.holdback),
            ));
        }
        if self.pii != Action::Off && self.pii_kinds.is_empty() {
            out.push((
                "pii_kinds",
                "is empty while pii is on: name the kinds or leave it out for all".to_string(),
            ));
        }
        out
    }

    fn is_on(&self) -> bool {
        self.secrets != Action::Off || self.pii != Action::Off || self.system_prompt != Action::Off
    }

    /// The state for one response, with the canary planted in `body` (a request about to be
    /// forwarded). `None` when the policy checks nothing.
    pub fn begin(&self, route: RouteKind, body: &mut Map<String, Value>) -> Option<Scan> {
        if !self.is_on() {
            return None;
        }
        let leak = (self.system_prompt == Action::Block)
            .then(|| plant_canary(route, body))
            .flatten();
        Some(Scan {
            cfg: self.clone(),
            checks: Checks {
                secrets: self.secrets != Action::Off,
                pii: if self.pii == Action::Off {
                    Vec::new()
                } else {
                    self.pii_kinds.clone()
                },
            },
            leak,
            fields: HashMap::new(),
            queue: VecDeque::new(),
            carry: Vec::new(),
            decisions: Vec::new(),
            ended: false,
        })
    }
}

/// A canary: 16 random letters and digits, unlike anything a model says by chance.
fn canary() -> String {
    use rand_core::RngCore;
    let mut b = [0u8; 10];
    rand_core::OsRng.fill_bytes(&mut b);
    format!("mlsec{}", crate::keys::hex(&b))
}

/// Plants a canary at the end of the first system (or developer) message, or the Responses
/// `instructions`, and returns the leak detector for that text. `None` when there is no system
/// text: then there is nothing to leak.
fn plant_canary(route: RouteKind, body: &mut Map<String, Value>) -> Option<Leak> {
    let c = canary();
    let mark = format!("\n\n<!-- {c} -->");
    let mut system = String::new();
    let mut planted = false;
    match route {
        RouteKind::Chat | RouteKind::Template => {
            for m in body
                .get_mut("messages")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                let role = m.get("role").and_then(Value::as_str).unwrap_or("");
                if !matches!(role, "system" | "developer") {
                    continue;
                }
                match m.get_mut("content") {
                    Some(Value::String(s)) => {
                        system.push_str(s);
                        system.push('\n');
                        if !planted {
                            s.push_str(&mark);
                            planted = true;
                        }
                    }
                    Some(Value::Array(parts)) => {
                        for p in parts {
                            if let Some(Value::String(t)) = p.get_mut("text") {
                                system.push_str(t);
                                system.push('\n');
                                if !planted {
                                    t.push_str(&mark);
                                    planted = true;
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        RouteKind::Responses => {
            if let Some(Value::String(s)) = body.get_mut("instructions") {
                system.push_str(s);
                s.push_str(&mark);
                planted = true;
            }
        }
        _ => {}
    }
    planted.then(|| Leak::new(&system, Some(c)))
}

/// Keys whose values are protocol, not text the model wrote.
fn is_protocol_key(k: &str) -> bool {
    matches!(
        k,
        "id" | "object"
            | "model"
            | "role"
            | "type"
            | "finish_reason"
            | "system_fingerprint"
            | "status"
            | "item_id"
            | "call_id"
            | "tool_call_id"
            | "service_tier"
            | "created"
    )
}

/// Every string the model wrote, by JSON pointer.
fn leaves(v: &Value, at: &mut String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => out.push((at.clone(), s.clone())),
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                let n = at.len();
                at.push('/');
                at.push_str(&i.to_string());
                leaves(x, at, out);
                at.truncate(n);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                if is_protocol_key(k) {
                    continue;
                }
                let n = at.len();
                at.push('/');
                at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                leaves(x, at, out);
                at.truncate(n);
            }
        }
        _ => {}
    }
}

/// A response refused by the output checks.
#[derive(Debug)]
pub struct Blocked(pub ApiError);

/// What a stream chunk becomes.
#[derive(Debug)]
pub enum Filtered {
    /// Send these bytes (possibly none: held back).
    Send(Bytes),
    /// Send these bytes and end the stream.
    End(Bytes),
}

/// One event held back.
struct Event {
    raw: Vec<u8>,
    json: Option<Value>,
    /// Text fields: pointer and text (as it will be sent).
    texts: Vec<(String, String)>,
    changed: bool,
    /// `[DONE]` or the end of the stream: everything is released.
    last: bool,
}

/// A field's text already sent (its tail), and whether a private key being redacted is still
/// open (everything is key until its end marker).
#[derive(Default)]
struct Field {
    sent: String,
    open_key: bool,
    /// The last characters of a redacted key, to see an end marker cut across events.
    key_tail: String,
}

/// The output checks for one response.
pub struct Scan {
    cfg: OutputConfig,
    checks: Checks,
    leak: Option<Leak>,
    fields: HashMap<String, Field>,
    queue: VecDeque<Event>,
    carry: Vec<u8>,
    decisions: Vec<String>,
    ended: bool,
}

impl Scan {
    fn action(&self, k: &Kind) -> Action {
        match k {
            Kind::Secret(_) => self.cfg.secrets,
            Kind::Pii(_) => self.cfg.pii,
            Kind::Canary | Kind::SystemPrompt => Action::Block,
        }
    }

    fn note(&mut self, d: String) {
        if !self.decisions.contains(&d) {
            self.decisions.push(d);
        }
    }

    /// The decisions so far, for the audit record.
    pub fn take_decisions(&mut self) -> Vec<String> {
        std::mem::take(&mut self.decisions)
    }

    fn hits(&mut self, text: &str) -> Vec<Hit> {
        let mut hits = output::find(text, &self.checks);
        if let Some(l) = self.leak.as_mut()
            && let Some(h) = l.check(text)
        {
            hits.push(h);
        }
        hits
    }

    fn blocked(&mut self, kind: &Kind, at: &str) -> ApiError {
        let (code, what) = match kind {
            Kind::Secret(_) => ("output_secret", "a secret"),
            Kind::Pii(_) => ("output_pii", "personal data"),
            Kind::Canary | Kind::SystemPrompt => ("system_prompt_leak", "the system prompt"),
        };
        self.note(format!("output: blocked {} at {at}", kind.code()));
        ApiError::new(
            StatusCode::FORBIDDEN,
            code,
            format!(
                "the response was stopped: it contains {what} ({}) at {at}",
                kind.code()
            ),
        )
    }

    /// Checks a whole body; returns it rewritten when something was redacted.
    pub fn whole(&mut self, body: &[u8]) -> Result<Option<Bytes>, Blocked> {
        let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
            let text = String::from_utf8_lossy(body).into_owned();
            let hits = self.hits(&text);
            if hits.is_empty() {
                return Ok(None);
            }
            return Ok(Some(Bytes::from(self.apply("body", &text, &hits, true)?)));
        };
        let mut texts = Vec::new();
        leaves(&v, &mut String::new(), &mut texts);
        let mut changed = false;
        for (at, text) in texts {
            let hits = self.hits(&text);
            if hits.is_empty() {
                continue;
            }
            let new = self.apply(&at, &text, &hits, true)?;
            if let Some(slot) = v.pointer_mut(&at) {
                *slot = Value::String(new);
                changed = true;
            }
        }
        Ok(changed.then(|| Bytes::from(serde_json::to_vec(&v).unwrap_or_default())))
    }

    /// Blocks, or redacts the hits of one whole text (`final_`: no more text follows).
    fn apply(
        &mut self,
        at: &str,
        text: &str,
        hits: &[Hit],
        final_: bool,
    ) -> Result<String, Blocked> {
        if let Some(h) = hits.iter().find(|h| self.action(&h.kind) == Action::Block) {
            let kind = h.kind.clone();
            return Err(Blocked(self.blocked(&kind, at)));
        }
        let red: Vec<Hit> = hits
            .iter()
            .filter(|h| {
                self.action(&h.kind) == Action::Redact && (final_ || h.span.end < text.len())
            })
            .cloned()
            .collect();
        for h in &red {
            self.note(format!("output: redacted {} at {at}", h.kind.code()));
        }
        Ok(output::redact(text, &red))
    }

    /// One chunk of an event stream.
    pub fn chunk(&mut self, data: &[u8]) -> Filtered {
        if self.ended {
            return Filtered::Send(Bytes::new());
        }
        self.carry.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some((end, sep)) = event_end(&self.carry) {
            let raw: Vec<u8> = self.carry.drain(..end + sep).collect();
            if let Err(e) = self.event(raw, &mut out) {
                return self.end(out, e);
            }
        }
        if self.carry.len() > MAX_EVENT_BYTES {
            let e = ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_event_too_large",
                format!(
                    "an event of the upstream's stream is larger than {MAX_EVENT_BYTES} bytes and cannot be checked"
                ),
            );
            self.note("output: stream ended, an event too large to check".into());
            return self.end(out, Blocked(e));
        }
        Filtered::Send(Bytes::from(out))
    }

    /// The end of the stream: what is still held back, checked as final.
    pub fn finish(&mut self) -> Bytes {
        if self.ended {
            return Bytes::new();
        }
        let mut out = Vec::new();
        if !self.carry.is_empty() {
            let raw = std::mem::take(&mut self.carry);
            if let Err(Blocked(e)) = self.event(raw, &mut out) {
                self.ended = true;
                out.extend_from_slice(format!("data: {}\n\n", e.body()).as_bytes());
                return Bytes::from(out);
            }
        }
        self.release(true, &mut out);
        Bytes::from(out)
    }

    fn end(&mut self, mut out: Vec<u8>, Blocked(e): Blocked) -> Filtered {
        self.ended = true;
        self.queue.clear();
        out.extend_from_slice(format!("data: {}\n\n", e.body()).as_bytes());
        Filtered::End(Bytes::from(out))
    }

    fn redacting(&self) -> bool {
        self.cfg.secrets == Action::Redact || self.cfg.pii == Action::Redact
    }

    fn event(&mut self, raw: Vec<u8>, out: &mut Vec<u8>) -> Result<(), Blocked> {
        let data = sse_data(&raw);
        let last = data.trim() == "[DONE]";
        let json = if last {
            None
        } else {
            serde_json::from_str::<Value>(&data).ok()
        };
        let mut texts = Vec::new();
        match &json {
            Some(v) => leaves(v, &mut String::new(), &mut texts),
            None if !last && !data.is_empty() => texts.push(("data".to_string(), data)),
            None => {}
        }
        let changed = self.inside_keys(&mut texts);
        let keys: Vec<String> = texts.iter().map(|(k, _)| k.clone()).collect();
        self.queue.push_back(Event {
            raw,
            json,
            texts,
            changed,
            last,
        });
        for k in keys {
            self.check_field(&k, last)?;
        }
        self.release(last, out);
        Ok(())
    }

    /// Drops the text of fields inside a redacted private key, up to and including its end
    /// marker. Returns whether a text changed.
    fn inside_keys(&mut self, texts: &mut [(String, String)]) -> bool {
        let mut changed = false;
        for (k, t) in texts.iter_mut() {
            let Some(f) = self.fields.get_mut(k.as_str()) else {
                continue;
            };
            if !f.open_key {
                continue;
            }
            let seen = format!("{}{t}", f.key_tail);
            changed = true;
            if let Some(end) = output::private_key_end(&seen) {
                let keep = end.saturating_sub(f.key_tail.len());
                f.open_key = false;
                f.key_tail.clear();
                t.replace_range(..keep.min(t.len()), "");
            } else {
                let mut cut = seen.len().saturating_sub(80);
                while !seen.is_char_boundary(cut) {
                    cut += 1;
                }
                f.key_tail = seen[cut..].to_string();
                t.clear();
            }
        }
        changed
    }

    /// Checks one field's window: its sent tail and every held piece of it.
    fn check_field(&mut self, key: &str, final_: bool) -> Result<(), Blocked> {
        let mut window = self
            .fields
            .get(key)
            .map(|f| f.sent.clone())
            .unwrap_or_default();
        let base = window.len();
        // (event, text index, start in window)
        let mut pieces = Vec::new();
        for (e, ev) in self.queue.iter().enumerate() {
            for (i, (k, t)) in ev.texts.iter().enumerate() {
                if k == key {
                    pieces.push((e, i, window.len()));
                    window.push_str(t);
                }
            }
        }
        let hits = self.hits(&window);
        if hits.is_empty() {
            return Ok(());
        }
        if let Some(h) = hits.iter().find(|h| self.action(&h.kind) == Action::Block) {
            let kind = h.kind.clone();
            return Err(Blocked(self.blocked(&kind, key)));
        }
        let mut red: Vec<Hit> = hits
            .into_iter()
            .filter(|h| {
                self.action(&h.kind) == Action::Redact
                    && (final_ || h.span.end < window.len() || h.is_open(&window))
                    && h.span.end > base
            })
            .collect();
        // From the last, so earlier offsets stay true.
        red.sort_by_key(|h| std::cmp::Reverse(h.span.start));
        for h in red {
            if h.is_open(&window) {
                // The rest of the key comes in later events: drop it as it comes.
                let f = self.fields.entry(key.to_string()).or_default();
                f.open_key = true;
                let from = h.span.start.max(window.len().saturating_sub(80));
                let mut from = from;
                while !window.is_char_boundary(from) {
                    from += 1;
                }
                f.key_tail = window[from..].to_string();
            }
            if h.span.start < base {
                self.note(format!(
                    "output: redacted {} at {key} after part of it was sent (raise holdback)",
                    h.kind.code()
                ));
            } else {
                self.note(format!("output: redacted {} at {key}", h.kind.code()));
            }
            let mut marked = false;
            for &(e, i, start) in pieces.iter().rev() {
                let ev = &mut self.queue[e];
                let t = &mut ev.texts[i].1;
                let end = start + t.len();
                let (s, x) = (h.span.start.max(start), h.span.end.min(end));
                if s >= x {
                    continue;
                }
                let (ls, lx) = (s - start, x - start);
                if !(t.is_char_boundary(ls) && t.is_char_boundary(lx)) {
                    continue;
                }
                // The marker goes where the secret starts; the other pieces lose their part.
                let first = h.span.start >= start;
                let mark = if first && !marked {
                    marked = true;
                    format!("[REDACTED:{}]", h.kind.code())
                } else {
                    String::new()
                };
                t.replace_range(ls..lx, &mark);
                ev.changed = true;
            }
        }
        Ok(())
    }

    /// Sends the events no longer needed to decide anything.
    fn release(&mut self, all: bool, out: &mut Vec<u8>) {
        let hold = if self.redacting() {
            self.cfg.holdback
        } else {
            0
        };
        while let Some(front) = self.queue.front() {
            // Held while fewer than `hold` characters of one of its fields came after it.
            let keep = !all
                && hold > 0
                && front.texts.iter().any(|(k, _)| {
                    let after: usize = self
                        .queue
                        .iter()
                        .skip(1)
                        .flat_map(|e| &e.texts)
                        .filter(|(k2, _)| k2 == k)
                        .map(|(_, t)| t.chars().count())
                        .sum();
                    after < hold
                });
            if keep {
                break;
            }
            let Some(ev) = self.queue.pop_front() else {
                break;
            };
            for (k, t) in &ev.texts {
                let f = self.fields.entry(k.clone()).or_default();
                f.sent.push_str(t);
                let n = f.sent.chars().count();
                if n > TAIL_CHARS {
                    let cut = f
                        .sent
                        .char_indices()
                        .nth(n - TAIL_CHARS)
                        .map_or(0, |(i, _)| i);
                    f.sent.drain(..cut);
                }
            }
            out.extend_from_slice(&serialize(ev));
        }
    }
}

/// An event as it goes out: as it came when nothing changed.
fn serialize(ev: Event) -> Vec<u8> {
    if !ev.changed || ev.last {
        return ev.raw;
    }
    let mut json = ev.json;
    let data = match &mut json {
        Some(v) => {
            for (at, t) in ev.texts {
                if let Some(slot) = v.pointer_mut(&at) {
                    *slot = Value::String(t);
                }
            }
            serde_json::to_string(v).unwrap_or_default()
        }
        None => ev.texts.into_iter().map(|(_, t)| t).collect(),
    };
    // Keep the event's other fields (`event:`, `id:`), then the new data.
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&ev.raw).lines() {
        if !line.starts_with("data:") && !line.is_empty() {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// Where the first event in `buf` ends: the index of its blank line and the separator's length.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some((i, 2));
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// The data of an event: its `data:` lines joined by newlines.
fn sse_data(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("data:") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(secrets: Action, pii: Action, system: Action) -> OutputConfig {
        OutputConfig {
            secrets,
            pii,
            pii_kinds: all_pii(),
            system_prompt: system,
            holdback: 64,
        }
    }

    fn hf() -> String {
        let tail: String = (0..34u8)
            .map(|i| char::from(b'a' + (i * 5 + 1) % 26))
            .collect();
        format!("hf_{}", tail.to_uppercase().replacen('B', "x", 2))
    }

    fn chat_event(piece: &str) -> Vec<u8> {
        format!(
            "data: {}\n\n",
            json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":piece}}]})
        )
        .into_bytes()
    }

    /// Feeds `text` cut into `n`-byte pieces (each its own event, each event cut in two
    /// chunks), and returns what the client got.
    fn stream(scan: &mut Scan, text: &str, n: usize) -> (String, bool) {
        let mut got = Vec::new();
        let bytes: Vec<char> = text.chars().collect();
        let mut events: Vec<Vec<u8>> = bytes
            .chunks(n)
            .map(|c| chat_event(&c.iter().collect::<String>()))
            .collect();
        events.push(b"data: [DONE]\n\n".to_vec());
        for ev in events {
            let (a, b) = ev.split_at(ev.len() / 2);
            for part in [a, b] {
                match scan.chunk(part) {
                    Filtered::Send(x) => got.extend_from_slice(&x),
                    Filtered::End(x) => {
                        got.extend_from_slice(&x);
                        return (String::from_utf8_lossy(&got).into_owned(), true);
                    }
                }
            }
        }
        got.extend_from_slice(&scan.finish());
        (String::from_utf8_lossy(&got).into_owned(), false)
    }

    /// The content the client reassembles from the events.
    fn content(sse: &str) -> String {
        sse.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    #[test]
    fn a_secret_split_across_chunks_is_blocked_before_it_is_complete() {
        let key = hf();
        let text = format!("Here is the token you asked for: {key} -- keep it safe.");
        for n in [1, 3, 7, 20] {
            let mut s = cfg(Action::Block, Action::Off, Action::Off)
                .begin(RouteKind::Chat, &mut Map::new())
                .expect("on");
            let (got, ended) = stream(&mut s, &text, n);
            assert!(ended, "piece size {n}: {got}");
            assert!(got.contains("output_secret"), "{got}");
            assert!(
                !content(&got).contains(&key),
                "piece size {n}: the whole key was sent"
            );
            assert!(
                s.take_decisions()
                    .iter()
                    .any(|d| d.contains("blocked secret:"))
            );
        }
    }

    #[test]
    fn a_secret_split_across_chunks_is_redacted_and_the_rest_kept() {
        let key = hf();
        let text = format!("Token: {key} and mail ana@example.org, then more words to finish.");
        for n in [1, 2, 5, 11] {
            let mut s = cfg(Action::Redact, Action::Redact, Action::Off)
                .begin(RouteKind::Chat, &mut Map::new())
                .expect("on");
            let (got, ended) = stream(&mut s, &text, n);
            assert!(!ended, "{got}");
            let c = content(&got);
            assert!(!c.contains(&key[..12]), "piece size {n}: {c}");
            assert!(!c.contains("ana@example.org"), "piece size {n}: {c}");
            assert!(c.starts_with("Token: [REDACTED:secret:"), "{c}");
            assert!(c.contains("[REDACTED:pii:email]"), "{c}");
            assert!(c.ends_with(", then more words to finish."), "{c}");
            assert!(got.ends_with("data: [DONE]\n\n"), "{got}");
        }
    }

    #[test]
    fn clean_streams_pass_unchanged_and_unheld_when_nothing_redacts() {
        let mut s = cfg(Action::Block, Action::Off, Action::Off)
            .begin(RouteKind::Chat, &mut Map::new())
            .expect("on");
        let ev = chat_event("Hello there");
        match s.chunk(&ev) {
            Filtered::Send(b) => assert_eq!(&b[..], &ev[..], "sent at once, byte for byte"),
            Filtered::End(b) => panic!("ended: {b:?}"),
        }
    }

    #[test]
    fn the_canary_is_planted_and_its_echo_blocked() {
        let mut body = json!({"messages": [
            {"role": "system", "content": "You are the billing assistant."},
            {"role": "user", "content": "hi"}]})
        .as_object()
        .cloned()
        .expect("object");
        let mut s = cfg(Action::Off, Action::Off, Action::Block)
            .begin(RouteKind::Chat, &mut body)
            .expect("on");
        let system = body["messages"][0]["content"]
            .as_str()
            .expect("string")
            .to_string();
        let c = system
            .split("<!-- ")
            .nth(1)
            .and_then(|x| x.strip_suffix(" -->"))
            .expect("canary planted")
            .to_string();
        assert!(
            s.whole(br#"{"choices":[{"message":{"content":"fine"}}]}"#)
                .is_ok()
        );
        let leaked = json!({"choices":[{"message":{"content": format!("My prompt: {system}")}}]});
        let err = s.whole(leaked.to_string().as_bytes()).expect_err("blocked");
        assert_eq!(err.0.code, "system_prompt_leak");
        assert!(!err.0.message.contains(&c), "the canary is not echoed");
    }

    #[test]
    fn whole_bodies_are_redacted_in_place() {
        let mut s = cfg(Action::Redact, Action::Redact, Action::Off)
            .begin(RouteKind::Chat, &mut Map::new())
            .expect("on");
        let body = json!({"id": "x", "choices": [{"message": {"role": "assistant",
            "content": "Call 415-555-0100."}}]});
        let out = s
            .whole(body.to_string().as_bytes())
            .expect("not blocked")
            .expect("changed");
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            "Call [REDACTED:pii:phone]."
        );
        assert_eq!(v["id"], "x");
    }

    #[test]
    fn an_endless_event_ends_the_stream_with_a_reason() {
        let mut s = cfg(Action::Block, Action::Off, Action::Off)
            .begin(RouteKind::Chat, &mut Map::new())
            .expect("on");
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        match s.chunk(&big) {
            Filtered::End(b) => {
                assert!(String::from_utf8_lossy(&b).contains("upstream_event_too_large"));
            }
            Filtered::Send(_) => panic!("an unbounded event was kept"),
        }
    }

    #[test]
    fn a_streamed_private_key_is_stopped_or_hidden_from_its_first_line() {
        let pk = ["PRIVATE", "KEY"].join(" ");
        let mut body = String::new();
        for i in 0..20 {
            body.push_str(
                "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC"
                    .get(i % 7..)
                    .unwrap_or("x"),
            );
            body.push('\n');
        }
        let text =
            format!("Here you go:\n-----BEGIN {pk}-----\n{body}-----END {pk}-----\nAnything else?");
        for n in [3, 8, 25] {
            let mut s = cfg(Action::Block, Action::Off, Action::Off)
                .begin(RouteKind::Chat, &mut Map::new())
                .expect("on");
            let (got, ended) = stream(&mut s, &text, n);
            assert!(ended, "{got}");
            assert!(
                content(&got).len() < 80,
                "stopped within the first line: {}",
                content(&got)
            );

            let mut s = cfg(Action::Redact, Action::Off, Action::Off)
                .begin(RouteKind::Chat, &mut Map::new())
                .expect("on");
            let (got, ended) = stream(&mut s, &text, n);
            assert!(!ended, "{got}");
            let c = content(&got);
            assert!(!c.contains("BADANBgkq"), "piece size {n}: {c}");
            assert!(c.starts_with("Here you go:\n"), "{c}");
            assert!(c.ends_with("\nAnything else?"), "piece size {n}: {c}");
            assert!(c.contains("[REDACTED:secret:private-key]"), "{c}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any bytes cut anywhere: no panic, and what is sent never grows without bound.
        #[test]
        fn any_stream_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048), step in 1usize..64) {
            let mut body = json!({"messages": [{"role": "system", "content": "Be brief and kind to every customer who writes."}]})
                .as_object().cloned().expect("object");
            let mut s = cfg(Action::Redact, Action::Redact, Action::Block).begin(RouteKind::Chat, &mut body).expect("on");
            let mut sent = 0usize;
            for c in data.chunks(step) {
                match s.chunk(c) {
                    Filtered::Send(b) | Filtered::End(b) => sent += b.len(),
                }
            }
            sent += s.finish().len();
            proptest::prop_assert!(sent <= 2 * data.len() + 4096);
            let _ = s.whole(&data);
        }

        /// A secret anywhere in a stream, cut anywhere: with blocking on, the whole secret never
        /// reaches the client.
        #[test]
        fn a_blocked_secret_never_goes_out_whole(prefix in "[a-z ]{0,80}", suffix in "[a-z ]{0,40}", n in 1usize..12) {
            let key = hf();
            let mut s = cfg(Action::Block, Action::Off, Action::Off).begin(RouteKind::Chat, &mut Map::new()).expect("on");
            let (got, ended) = stream(&mut s, &format!("{prefix} {key}. {suffix}"), n);
            proptest::prop_assert!(ended);
            proptest::prop_assert!(!content(&got).contains(&key));
        }
    }
}
