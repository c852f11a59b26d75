//! The opt-in digest cache behind incremental signing and verification.
//!
//! What it trusts: that a file whose device, inode, size, modification time and status-change
//! time (ctime) are all unchanged still has the content it had when it was hashed. Writing a file
//! always moves its ctime, and user space cannot set ctime back (only a clock change or raw
//! disk access can), so this catches every ordinary edit, `touch -d`, `cp --preserve`, and
//! rename-over. It does not protect against someone who can write the cache file itself or the
//! block device: keep the cache where the model's writers cannot reach, or do not use it.

use std::collections::HashMap;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::manifest::HashAlgorithm;

/// Cache files bigger than this are refused rather than parsed.
pub const MAX_CACHE_BYTES: u64 = 256 << 20;

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileIdentity {
    #[cfg(unix)]
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    pub fn of(meta: &Metadata) -> Self {
        let ns = |t: std::io::Result<std::time::SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128)
        };
        Self {
            dev: 0,
            ino: 0,
            size: meta.len(),
            mtime_ns: ns(meta.modified()),
            ctime_ns: ns(meta.created()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    identity: FileIdentity,
    digest: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    version: u32,
    /// Keyed by `<hash>\t<resource name>`.
    entries: HashMap<String, Entry>,
}

/// A digest cache kept in one JSON file. Used only when asked for (`--cache FILE`).
#[derive(Debug)]
pub struct Cache {
    path: PathBuf,
    stored: Mutex<Stored>,
}

const VERSION: u32 = 1;

impl Cache {
    /// Opens the cache at `path`; a missing file is an empty cache, a damaged one is an error.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let stored = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored {
                version: VERSION,
                ..Stored::default()
            },
            Err(e) => return Err(Error::io(path, &e)),
            Ok(m) if m.len() > MAX_CACHE_BYTES => {
                return Err(Error::new(format!(
                    "{}: digest cache is larger than {MAX_CACHE_BYTES} bytes",
                    path.display()
                )));
            }
            Ok(_) => {
                let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e))?;
                let s: Stored = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::new(format!("{}: not a digest cache: {e}", path.display()))
                })?;
                if s.version != VERSION {
                    return Err(Error::new(format!(
                        "{}: digest cache version {} (expected {VERSION})",
                        path.display(),
                        s.version
                    )));
                }
                s
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            stored: Mutex::new(stored),
        })
    }

    fn key(name: &str, alg: HashAlgorithm) -> String {
        format!("{}\t{name}", alg.name())
    }

    pub fn get(&self, name: &str, alg: HashAlgorithm, identity: &FileIdentity) -> Option<Vec<u8>> {
        let stored = self.stored.lock().ok()?;
        let e = stored.entries.get(&Self::key(name, alg))?;
        if e.identity != *identity {
            return None;
        }
        crate::hex::decode(&e.digest).filter(|d| d.len() == alg.len())
    }

    pub fn put(&self, name: &str, alg: HashAlgorithm, identity: &FileIdentity, digest: &[u8]) {
        if let Ok(mut stored) = self.stored.lock() {
            stored.entries.insert(
                Self::key(name, alg),
                Entry {
                    identity: *identity,
                    digest: crate::hex::encode(digest),
                },
            );
        }
    }

    /// Writes the cache back, atomically (temporary file, then rename).
    pub fn save(&self) -> Result<(), Error> {
        let stored = self
            .stored
            .lock()
            .map_err(|_| Error::new("digest cache lock poisoned"))?;
        let bytes = serde_json::to_vec(&*stored).map_err(|e| Error::new(e.to_string()))?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, &e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, &e))
    }
}
