//! The audit log: one JSON line per request, chained by hash. Each line ends with
//! `"prev":"<hash of the line before>","hash":"<hash>"}` where hash = SHA-256(prev || "\n" ||
//! the line without its hash field). Editing, removing or reordering a line breaks the chain
//! at that line, which [`verify`] reports. Lines are written by one thread, in order, in
//! batches (see [`AuditLog`]); shutdown writes what is queued.

use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;
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
}

impl AuditLog {
    /// Opens (appending) and starts the writer. The chain continues from the file's last line;
    /// a file whose last line is not a valid record refuses to open rather than fork the chain.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut prev = GENESIS.to_string();
        if let Ok(f) = std::fs::File::open(path) {
            let mut last = None;
            let mut n = 0;
            for line in std::io::BufReader::new(f).lines() {
                let line = line.map_err(io)?;
                n += 1;
                if !line.trim().is_empty() {
                    last = Some(line);
                }
            }
            if let Some(l) = last {
                prev = split(&l)
                    .map(|(_, h)| h.to_string())
                    .ok_or_else(|| AuditError::Broken {
                        path: path.to_path_buf(),
                        line: n,
                        problem: "the last line is not an audit record; move the file aside to start a new chain".into(),
                    })?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let display = path.display().to_string();
        let s2 = shared.clone();
        let handle = std::thread::Builder::new()
            .name("mlsec-audit".into())
            .spawn(move || writer(file, &s2, prev, &display))
            .map_err(io)?;
        Ok(AuditLog {
            shared,
            writer: Arc::new(Mutex::new(Some(handle))),
        })
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

fn writer(file: std::fs::File, shared: &Shared, mut prev: String, path: &str) {
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
                let (line, hash) = chain_line(&r, &prev);
                if let Err(e) = out.write_all(line.as_bytes()) {
                    tracing::error!(path, error = %e, "audit log write failed");
                }
                prev = hash;
            }
            if let Err(e) = out.flush() {
                tracing::error!(path, error = %e, "audit log flush failed");
            }
        }
        if closing {
            return;
        }
    }
}

/// The line (with newline) and its hash.
pub fn chain_line(r: &Record, prev: &str) -> (String, String) {
    let mut body = serde_json::to_string(r).unwrap_or_else(|_| "{}".into());
    body.pop(); // the closing brace
    body.push_str(&format!(",\"prev\":\"{prev}\""));
    let hash = line_hash(prev, &body);
    (format!("{body},\"hash\":\"{hash}\"}}\n"), hash)
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
}
