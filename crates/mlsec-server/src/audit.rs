//! The audit log: one JSON line per request, chained by hash. Each line ends with
//! `"prev":"<hash of the line before>","hash":"<hash>"}` where hash = SHA-256(prev || "\n" ||
//! the line without its hash field). Lines are written by one thread, in order, in batches
//! (see [`AuditLog`]); shutdown writes what is queued.
//!
//! What the chain proves, and what it does not:
//! - editing, removing, inserting or reordering a line in the middle breaks the chain at that
//!   line, which [`verify`] reports;
//! - the chain alone cannot show that lines were cut off the end, or that someone with write
//!   access rewrote a line and recomputed every hash after it: both leave a valid chain.
//!   [`Checkpoint`]s close that gap: every N records or T seconds the writer signs the record
//!   count and the chain head with an Ed25519 key and exports the checkpoint (a file, and a
//!   webhook the server posts it to). Kept off the host, a checkpoint lets
//!   [`verify_checkpoint`] prove that the log still holds, unchanged, every record up to it;
//!   records written after the last exported checkpoint are only as safe as the host;
//! - whoever holds the signing key can sign checkpoints for a forged log: keep the key readable
//!   by the server alone, and compare with checkpoints exported before the host was suspect.
//!
//! A crash can leave a last line half-written. On start, [`AuditLog::open`] moves such a torn
//! tail into a recovery file beside the log (with a warning) and continues the chain from the
//! last complete record.

use std::io::{BufRead, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::hex;

/// The hash the first line of a log chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Longest audit line read by `verify`.
pub const MAX_LINE_BYTES: usize = 64 << 20;

#[derive(Debug, Clone, Serialize, Default)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub reserved: u64,
}

/// Microseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub queue_us: u64,
    pub upstream_us: u64,
    pub total_us: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Record {
    pub ts: String,
    pub request_id: String,
    /// The API key id or `jwt:<subject>`; never a secret.
    pub principal: Option<String>,
    pub policy: Option<String>,
    pub method: String,
    pub route: String,
    pub model: Option<String>,
    pub status: u16,
    pub error: Option<String>,
    pub stream: bool,
    pub tokens: Tokens,
    pub latency: Latency,
    pub upstream: Option<String>,
    pub decisions: Vec<String>,
    /// Only with `audit.include_bodies`, and redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// Records waiting for the writer, and whether the log is closing.
#[derive(Default)]
struct Queue {
    records: Vec<Record>,
    closing: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// A handle that queues records for the writer thread. Requests only push onto a vector; the
/// writer wakes every [`FLUSH_EVERY`] (or when [`WAKE_AT`] records wait), so a busy gateway
/// pays no thread wake-up per request.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
    writer: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
    checkpoints: tokio::sync::watch::Receiver<Option<Checkpoint>>,
}

/// Longest a record waits before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Queue length that wakes the writer early.
pub const WAKE_AT: usize = 4096;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Broken {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// A checkpoint key or checkpoint file that cannot be used.
    #[error("{path}: {problem}")]
    Checkpoint { path: PathBuf, problem: String },
    /// The log no longer holds what a valid checkpoint signed.
    #[error("{path}: {problem}")]
    Truncated { path: PathBuf, problem: String },
}

/// Signed checkpoints: how often, with which key, exported where.
pub struct CheckpointOptions {
    /// Ed25519 key pair (PKCS#8), from [`load_checkpoint_key`].
    pub key: Ed25519KeyPair,
    /// Sign after this many records...
    pub every_records: u64,
    /// ...or this long after the last checkpoint, when records were written since.
    pub every: Duration,
    /// The latest checkpoint, replaced atomically each time.
    pub file: PathBuf,
}

/// A signed statement that a log held `records` records ending in `head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version (1).
    pub mlsec_audit_checkpoint: u32,
    /// Records in the log up to and including the head.
    pub records: u64,
    /// The hash of the last record covered.
    pub head: String,
    /// When it was signed (RFC 3339, UTC).
    pub ts: String,
    /// The Ed25519 public key (base64), to pick the right trusted key.
    pub key: String,
    /// Ed25519 signature (base64) over [`Checkpoint::payload`].
    pub signature: String,
}

impl Checkpoint {
    /// The signed bytes.
    pub fn payload(records: u64, head: &str, ts: &str) -> String {
        format!("mlsec-audit-checkpoint/1\n{records}\n{head}\n{ts}")
    }

    fn sign(key: &Ed25519KeyPair, records: u64, head: &str) -> Checkpoint {
        let ts = now_rfc3339();
        let sig = key.sign(Checkpoint::payload(records, head, &ts).as_bytes());
        Checkpoint {
            mlsec_audit_checkpoint: 1,
            records,
            head: head.to_string(),
            ts,
            key: B64.encode(key.public_key().as_ref()),
            signature: B64.encode(sig.as_ref()),
        }
    }

    /// Whether `public_key` (raw 32 bytes) signed this checkpoint.
    pub fn signed_by(&self, public_key: &[u8]) -> bool {
        let Ok(sig) = B64.decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(
                Checkpoint::payload(self.records, &self.head, &self.ts).as_bytes(),
                &sig,
            )
            .is_ok()
    }
}

/// Reads an Ed25519 private key (PKCS#8 PEM, as `mlsec gateway audit keygen` or
/// `openssl genpkey -algorithm ed25519` write it).
pub fn load_checkpoint_key(path: &Path) -> Result<Ed25519KeyPair, AuditError> {
    let bad = |problem: String| AuditError::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let der =
        pem_body(&text, "PRIVATE KEY").ok_or_else(|| bad("no PEM `PRIVATE KEY` block".into()))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|e| bad(format!("not an Ed25519 PKCS#8 key: {e}")))
}

/// Reads a checkpoint public key: the base64 line `audit keygen` wrote to `<key>.pub`.
pub fn load_public_key(path: &Path) -> Result<Vec<u8>, AuditError> {
    let bad = |problem: String| AuditError::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let key = B64
        .decode(text.trim())
        .map_err(|e| bad(format!("not a base64 public key: {e}")))?;
    if key.len() != 32 {
        return Err(bad(format!(
            "an Ed25519 public key is 32 bytes, this one is {}",
            key.len()
        )));
    }
    Ok(key)
}

/// Reads a checkpoint file the gateway exported.
pub fn load_checkpoint(path: &Path) -> Result<Checkpoint, AuditError> {
    let bad = |problem: String| AuditError::Checkpoint {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    if text.len() > 64 << 10 {
        return Err(bad("larger than 64 KiB: not a checkpoint".into()));
    }
    let cp: Checkpoint = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not an mlsec audit checkpoint: {e}")))?;
    if cp.mlsec_audit_checkpoint != 1 {
        return Err(bad(format!(
            "checkpoint format {} (this mlsec reads 1)",
            cp.mlsec_audit_checkpoint
        )));
    }
    Ok(cp)
}

/// A new Ed25519 key: (private key PEM, public key base64).
pub fn generate_checkpoint_key() -> Result<(String, String), AuditError> {
    let rng = ring::rand::SystemRandom::new();
    let bad = |problem: String| AuditError::Checkpoint {
        path: PathBuf::new(),
        problem,
    };
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| bad(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| bad(e.to_string()))?;
    let body = B64.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok((pem, B64.encode(pair.public_key().as_ref())))
}

fn pem_body(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let b64: String = text[start..stop].split_whitespace().collect();
    B64.decode(b64).ok()
}

/// Now, as RFC 3339 UTC with microseconds.
pub fn now_rfc3339() -> String {
    thread_local! {
        /// The civil time of the last second asked for on this thread (one per request).
        static SECOND: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((u64::MAX, String::new()))
        };
    }
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let mut out = String::with_capacity(27);
    SECOND.with_borrow_mut(|(at, text)| {
        if *at != secs {
            *at = secs;
            *text = civil(secs);
        }
        out.push_str(text);
    });
    let mut micros = d.subsec_micros();
    let mut digits = [b'0'; 6];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    out.push('.');
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    out.push('Z');
    out
}

/// Unix seconds as RFC 3339 UTC (`2026-12-04T18:10:00Z`).
pub fn rfc3339(secs: u64) -> String {
    format!("{}Z", civil(secs))
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix seconds (Howard Hinnant's civil-from-days algorithm).
fn civil(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl AuditLog {
    /// Opens (appending) and starts the writer, without checkpoints.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_with(path, None)
    }

    /// Opens (appending) and starts the writer. The chain continues from the file's last
    /// record. A torn last line (no newline: a crash mid-write) is moved into
    /// `<log>.torn-<unix seconds>` with a warning; a complete last line that is not a record
    /// refuses to open rather than fork the chain.
    pub fn open_with(
        path: &Path,
        checkpoints: Option<CheckpointOptions>,
    ) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let (prev, records) = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
        {
            Ok(mut f) => recover(path, &mut f)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (GENESIS.to_string(), 0),
            Err(e) => return Err(io(e)),
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let (tx, rx) = tokio::sync::watch::channel(None);
        let display = path.display().to_string();
        let s2 = shared.clone();
        let chain = Chain {
            prev,
            records,
            checkpoints,
            last_checkpoint: (records, Instant::now()),
            published: tx,
        };
        let handle = std::thread::Builder::new()
            .name("mlsec-audit".into())
            .spawn(move || writer(file, &s2, chain, &display))
            .map_err(io)?;
        Ok(AuditLog {
            shared,
            writer: Arc::new(Mutex::new(Some(handle))),
            checkpoints: rx,
        })
    }

    /// The latest checkpoint signed (`None` until the first), to export elsewhere.
    pub fn checkpoints(&self) -> tokio::sync::watch::Receiver<Option<Checkpoint>> {
        self.checkpoints.clone()
    }

    /// Queues a record (never blocks on I/O).
    pub fn record(&self, r: Record) {
        let Ok(mut q) = self.shared.queue.lock() else {
            tracing::error!("audit queue poisoned; a record was not written");
            return;
        };
        q.records.push(r);
        if q.records.len() == WAKE_AT {
            self.shared.wake.notify_one();
        }
    }

    /// Writes what is queued and stops the writer (at shutdown).
    pub fn close(&self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.closing = true;
        }
        self.shared.wake.notify_one();
        if let Some(h) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = h.join();
        }
    }
}

/// The writer's view of the chain.
struct Chain {
    prev: String,
    records: u64,
    checkpoints: Option<CheckpointOptions>,
    last_checkpoint: (u64, Instant),
    published: tokio::sync::watch::Sender<Option<Checkpoint>>,
}

impl Chain {
    /// Signs and exports a checkpoint when one is due (or `force`d at shutdown).
    fn checkpoint(&mut self, path: &str, force: bool) {
        let Some(opts) = &self.checkpoints else {
            return;
        };
        let (at, when) = self.last_checkpoint;
        let new = self.records - at;
        if new == 0 || !(force || new >= opts.every_records || when.elapsed() >= opts.every) {
            return;
        }
        let cp = Checkpoint::sign(&opts.key, self.records, &self.prev);
        let tmp = opts.file.with_extension("tmp");
        let written = serde_json::to_vec_pretty(&cp)
            .map_err(std::io::Error::other)
            .and_then(|mut bytes| {
                bytes.push(b'\n');
                std::fs::write(&tmp, bytes)
            })
            .and_then(|()| std::fs::rename(&tmp, &opts.file));
        if let Err(e) = written {
            tracing::error!(path, file = %opts.file.display(), error = %e, "could not write the audit checkpoint");
        }
        self.last_checkpoint = (self.records, Instant::now());
        self.published.send_replace(Some(cp));
    }
}

fn writer(file: std::fs::File, shared: &Shared, mut chain: Chain, path: &str) {
    let mut out = BufWriter::new(file);
    let mut batch = Vec::new();
    loop {
        let closing = {
            let Ok(q) = shared.queue.lock() else { return };
            let Ok((mut q, _)) = shared
                .wake
                .wait_timeout_while(q, FLUSH_EVERY, |q| q.records.len() < WAKE_AT && !q.closing)
            else {
                return;
            };
            std::mem::swap(&mut batch, &mut q.records);
            q.closing
        };
        if !batch.is_empty() {
            for r in batch.drain(..) {
                let (line, hash) = chain_line(&r, &chain.prev);
                if let Err(e) = out.write_all(line.as_bytes()) {
                    tracing::error!(path, error = %e, "audit log write failed");
                }
                chain.prev = hash;
                chain.records += 1;
            }
            if let Err(e) = out.flush() {
                tracing::error!(path, error = %e, "audit log flush failed");
            }
        }
        chain.checkpoint(path, closing);
        if closing {
            return;
        }
    }
}

/// Finds where the chain stands in an existing log: (last hash, records). A torn tail is moved
/// aside and cut off.
fn recover(path: &Path, f: &mut std::fs::File) -> Result<(String, u64), AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = f.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok((GENESIS.to_string(), 0));
    }
    // Count lines, and find where the last complete one starts and ends.
    let mut reader = std::io::BufReader::with_capacity(1 << 16, &mut *f);
    let (mut pos, mut records) = (0u64, 0u64);
    let (mut last_start, mut last_end) = (0u64, 0u64);
    let mut line_start = 0u64;
    loop {
        let buf = reader.fill_buf().map_err(io)?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        for i in memchr::memchr_iter(b'\n', buf) {
            let end = pos + i as u64 + 1;
            if end - line_start > 1 {
                records += 1;
                last_start = line_start;
                last_end = end;
            }
            line_start = end;
        }
        pos += n as u64;
        reader.consume(n);
    }
    drop(reader);
    if line_start < len {
        // A last line without its newline: written in part when the process died.
        let mut tail = Vec::new();
        f.seek(SeekFrom::Start(line_start)).map_err(io)?;
        f.take(MAX_LINE_BYTES as u64)
            .read_to_end(&mut tail)
            .map_err(io)?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = PathBuf::from(format!("{}.torn-{secs}", path.display()));
        std::fs::write(&aside, &tail).map_err(|source| AuditError::Io {
            path: aside.clone(),
            source,
        })?;
        f.set_len(line_start).map_err(io)?;
        f.sync_all().map_err(io)?;
        tracing::warn!(
            log = %path.display(),
            moved_to = %aside.display(),
            bytes = len - line_start,
            "the audit log ended in a half-written line (a crash mid-write?): moved it aside; the chain continues from the last complete record"
        );
    }
    if records == 0 {
        return Ok((GENESIS.to_string(), 0));
    }
    let mut last = vec![0u8; (last_end - last_start) as usize];
    f.seek(SeekFrom::Start(last_start)).map_err(io)?;
    f.read_exact(&mut last).map_err(io)?;
    let text = String::from_utf8_lossy(&last);
    let prev = split(text.trim_end_matches(['\n', '\r']))
        .map(|(_, h)| h.to_string())
        .ok_or_else(|| AuditError::Broken {
            path: path.to_path_buf(),
            line: usize::try_from(records).unwrap_or(usize::MAX),
            problem:
                "the last line is not an audit record; move the file aside to start a new chain"
                    .into(),
        })?;
    Ok((prev, records))
}

/// The line (with newline) and its hash.
pub fn chain_line(r: &Record, prev: &str) -> (String, String) {
    let mut bytes = Vec::with_capacity(512);
    // serde_json writes UTF-8 only; an empty object stands in if serializing ever failed.
    let mut line = match serde_json::to_writer(&mut bytes, r).map(|()| String::from_utf8(bytes)) {
        Ok(Ok(mut text)) => {
            text.pop(); // the closing brace
            text
        }
        _ => String::from("{"),
    };
    line.push_str(",\"prev\":\"");
    line.push_str(prev);
    line.push('"');
    let hash = line_hash(prev, &line);
    line.push_str(",\"hash\":\"");
    line.push_str(&hash);
    line.push_str("\"}\n");
    (line, hash)
}

fn line_hash(prev: &str, body_without_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(body_without_hash.as_bytes());
    hex(&h.finalize())
}

/// Splits a line into (body without the hash field, hash).
fn split(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_suffix("\"}")?;
    let (body, hash) = body.rsplit_once(",\"hash\":\"")?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some((body, hash))
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: usize,
    pub last_hash: String,
}

/// Checks every line's hash and its link to the line before.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    walk(path, |_, _| {})
}

/// What a log holds compared with a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointReport {
    /// The whole log's chain.
    pub log: Verified,
    /// Records the checkpoint covers (all present and unchanged).
    pub covered: u64,
    /// Records written after the checkpoint (not covered by it).
    pub after: u64,
}

/// Checks the chain, then that a checkpoint signed by `public_key` still matches the log: the
/// log holds at least as many records, and the record the checkpoint ends on hashes to its
/// head. A shorter log was cut; a different head means records up to the checkpoint were
/// rewritten (hashes recomputed).
pub fn verify_checkpoint(
    path: &Path,
    checkpoint: &Checkpoint,
    public_key: &[u8],
) -> Result<CheckpointReport, AuditError> {
    if !checkpoint.signed_by(public_key) {
        return Err(AuditError::Checkpoint {
            path: path.to_path_buf(),
            problem: "the checkpoint's signature does not verify with the given public key".into(),
        });
    }
    let mut at = None;
    let log = walk(path, |n, hash| {
        if n == checkpoint.records {
            at = Some(hash.to_string());
        }
    })?;
    let truncated = |problem: String| AuditError::Truncated {
        path: path.to_path_buf(),
        problem,
    };
    match at {
        None => Err(truncated(format!(
            "the log holds {} records but the checkpoint signed at {} covers {}: records were cut off the end",
            log.records, checkpoint.ts, checkpoint.records
        ))),
        Some(h) if h != checkpoint.head => Err(truncated(format!(
            "record {} hashes to {h}, but the checkpoint signed at {} says {}: the log was rewritten up to it",
            checkpoint.records, checkpoint.ts, checkpoint.head
        ))),
        Some(_) => Ok(CheckpointReport {
            covered: checkpoint.records,
            after: log.records as u64 - checkpoint.records,
            log,
        }),
    }
}

/// Walks the chain, calling `on_record(number, hash)` for each record (numbered from 1).
fn walk(path: &Path, mut on_record: impl FnMut(u64, &str)) -> Result<Verified, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    };
    let broken = |line, problem: String| AuditError::Broken {
        path: path.to_path_buf(),
        line,
        problem,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut reader = std::io::BufReader::new(f);
    let mut prev = GENESIS.to_string();
    let mut n = 0;
    let mut records = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let read = reader
            .by_ref()
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if read == 0 {
            break;
        }
        n += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(broken(
                n,
                format!("line longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let line = std::str::from_utf8(&buf)
            .map_err(|_| broken(n, "not UTF-8".into()))?
            .trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            continue;
        }
        let (body, hash) = split(line)
            .ok_or_else(|| broken(n, "not an audit record (no hash field at the end)".into()))?;
        let linked = body
            .rsplit_once(",\"prev\":\"")
            .map(|(_, p)| p.trim_end_matches('"'))
            .ok_or_else(|| broken(n, "no prev field".into()))?;
        if linked != prev {
            return Err(broken(
                n,
                format!(
                    "chain broken: links to {linked}, the line before hashes to {prev} (a line was removed, inserted or reordered)"
                ),
            ));
        }
        if serde_json::from_str::<serde_json::Value>(&format!("{body}}}")).is_err() {
            return Err(broken(n, "not valid JSON".into()));
        }
        let want = line_hash(&prev, body);
        if want != hash {
            return Err(broken(n, "hash mismatch: the record was modified".into()));
        }
        prev = hash.to_string();
        records += 1;
        on_record(records as u64, hash);
    }
    Ok(Verified {
        records,
        last_hash: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, n: usize) {
        let mut prev = GENESIS.to_string();
        let mut text = String::new();
        for i in 0..n {
            let r = Record {
                request_id: format!("r{i}"),
                status: 200,
                ..Record::default()
            };
            let (line, h) = chain_line(&r, &prev);
            text.push_str(&line);
            prev = h;
        }
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn a_chain_verifies_and_any_edit_breaks_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.jsonl");
        write(&p, 5);
        assert_eq!(verify(&p).expect("ok").records, 5);
        let text = std::fs::read_to_string(&p).expect("read");

        std::fs::write(&p, text.replace("\"status\":200", "\"status\":201")).expect("w");
        assert!(matches!(
            verify(&p),
            Err(AuditError::Broken { line: 1, .. })
        ));

        let lines: Vec<&str> = text.lines().collect();
        let dropped = [lines[0], lines[2], lines[3], lines[4]].join("\n");
        std::fs::write(&p, dropped).expect("w");
        assert!(matches!(
            verify(&p),
            Err(AuditError::Broken { line: 2, .. })
        ));

        let swapped = [lines[1], lines[0]].join("\n");
        std::fs::write(&p, swapped).expect("w");
        assert!(matches!(
            verify(&p),
            Err(AuditError::Broken { line: 1, .. })
        ));
    }

    fn rec(i: usize) -> Record {
        Record {
            request_id: format!("r{i}"),
            status: 200,
            ..Record::default()
        }
    }

    fn key() -> (Ed25519KeyPair, Vec<u8>) {
        let (pem, public) = generate_checkpoint_key().expect("key");
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("k.pem"), pem).expect("w");
        let pair = load_checkpoint_key(&dir.path().join("k.pem")).expect("load");
        (pair, B64.decode(public).expect("b64"))
    }

    #[test]
    fn dates_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_400_000), "2026-12-04T16:00:00Z");
        assert_eq!(now_rfc3339().len(), 27);
    }

    #[test]
    fn a_torn_last_line_is_moved_aside_and_the_chain_continues() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.jsonl");
        write(&p, 3);
        let mut text = std::fs::read_to_string(&p).expect("read");
        text.push_str("{\"ts\":\"2026-12-04T00:00:00Z\",\"request_id\":\"half");
        std::fs::write(&p, &text).expect("w");
        let log = AuditLog::open(&p).expect("opens despite the torn line");
        log.record(rec(3));
        log.close();
        let v = verify(&p).expect("chain intact");
        assert_eq!(v.records, 4);
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".torn-"))
            .collect();
        assert_eq!(aside.len(), 1);
        let kept = std::fs::read_to_string(aside[0].path()).expect("read");
        assert!(kept.ends_with("\"half"), "{kept}");
    }

    #[test]
    fn a_complete_last_line_that_is_not_a_record_refuses_to_open() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.jsonl");
        write(&p, 2);
        let mut text = std::fs::read_to_string(&p).expect("read");
        text.push_str("not a record\n");
        std::fs::write(&p, &text).expect("w");
        assert!(matches!(
            AuditLog::open(&p),
            Err(AuditError::Broken { line: 3, .. })
        ));
    }

    #[test]
    fn checkpoints_catch_cut_and_rewritten_logs() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.jsonl");
        let cp_file = dir.path().join("a.checkpoint.json");
        let (pair, public) = key();
        let log = AuditLog::open_with(
            &p,
            Some(CheckpointOptions {
                key: pair,
                every_records: 1000,
                every: Duration::from_hours(1),
                file: cp_file.clone(),
            }),
        )
        .expect("open");
        let mut rx = log.checkpoints();
        for i in 0..5 {
            log.record(rec(i));
        }
        log.close();
        let cp = load_checkpoint(&cp_file).expect("a final checkpoint at close");
        assert_eq!(cp.records, 5);
        assert_eq!(rx.borrow_and_update().as_ref(), Some(&cp));
        let r = verify_checkpoint(&p, &cp, &public).expect("intact");
        assert_eq!((r.covered, r.after), (5, 0));

        let text = std::fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = text.lines().collect();

        // Cut the last two lines: the chain is still valid, the checkpoint says otherwise.
        std::fs::write(&p, lines[..3].join("\n") + "\n").expect("w");
        assert_eq!(verify(&p).expect("chain alone looks fine").records, 3);
        assert!(matches!(
            verify_checkpoint(&p, &cp, &public),
            Err(AuditError::Truncated { .. })
        ));

        // Rewrite the first record and recompute every hash after it.
        let mut prev = GENESIS.to_string();
        let mut forged = String::new();
        for i in 0..5 {
            let mut r = rec(i);
            if i == 0 {
                r.status = 403;
            }
            let (line, h) = chain_line(&r, &prev);
            forged.push_str(&line);
            prev = h;
        }
        std::fs::write(&p, forged).expect("w");
        assert_eq!(verify(&p).expect("a recomputed chain").records, 5);
        let e = verify_checkpoint(&p, &cp, &public).expect_err("rewritten");
        assert!(e.to_string().contains("rewritten"), "{e}");

        // A checkpoint checked with another key is refused.
        let (_, other) = key();
        assert!(matches!(
            verify_checkpoint(&p, &cp, &other),
            Err(AuditError::Checkpoint { .. })
        ));
        let mut tampered = cp.clone();
        tampered.records = 3;
        assert!(!tampered.signed_by(&public));
    }

    #[test]
    fn checkpoints_come_every_n_records() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("a.jsonl");
        let (pair, public) = key();
        let log = AuditLog::open_with(
            &p,
            Some(CheckpointOptions {
                key: pair,
                every_records: 3,
                every: Duration::from_hours(1),
                file: dir.path().join("cp.json"),
            }),
        )
        .expect("open");
        let mut rx = log.checkpoints();
        for i in 0..3 {
            log.record(rec(i));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while rx.borrow_and_update().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let cp = rx.borrow().clone().expect("a checkpoint after 3 records");
        assert_eq!(cp.records, 3);
        assert!(cp.signed_by(&public));
        log.close();
    }
}
