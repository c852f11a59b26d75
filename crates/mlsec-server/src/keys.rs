//! API keys. A key is shown once, when created: `mlsk_<id>_<secret>`. The store keeps the id,
//! a random salt and SHA-256(salt || secret); presented secrets are compared in constant time.
//! The id is not secret and is what logs and the audit trail name.
//!
//! SHA-256 rather than a password hash: the secret is 256 random bits, so there is nothing to
//! brute-force, and the check stays in the microseconds a gateway can afford per request.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every key starts with this, so secret scanners (ours included) can recognise a leaked one.
pub const KEY_PREFIX: &str = "mlsk_";
/// Largest key file read.
pub const MAX_KEYS_FILE_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub name: String,
    pub policy: String,
    /// Hex.
    pub salt: String,
    /// Hex SHA-256(salt || secret).
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    #[serde(default)]
    pub revoked: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub keys: Vec<KeyRecord>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a key file: {detail}")]
    Format { path: String, detail: String },
    #[error("{path}: larger than the {MAX_KEYS_FILE_BYTES}-byte limit")]
    TooLarge { path: String },
    #[error("no key with id {0:?}")]
    NoSuchKey(String),
}

impl KeyFile {
    /// Reads a key file; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<KeyFile, KeyError> {
        let p = path.display().to_string();
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeyFile {
                    version: 1,
                    keys: Vec::new(),
                });
            }
            Err(source) => return Err(KeyError::Io { path: p, source }),
        };
        if meta.len() > MAX_KEYS_FILE_BYTES {
            return Err(KeyError::TooLarge { path: p });
        }
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: p.clone(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| KeyError::Format {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        if file.version != 1 {
            return Err(KeyError::Format {
                path: p,
                detail: format!("version {} (this release reads version 1)", file.version),
            });
        }
        Ok(file)
    }

    /// Writes atomically (a temporary file renamed over the old one), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let p = path.display().to_string();
        let io = |source| KeyError::Io {
            path: p.clone(),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("keys")
        ));
        let text = serde_json::to_string_pretty(self).map_err(|e| KeyError::Format {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(text.as_bytes()).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds a key and returns the secret token, which is not stored anywhere.
    pub fn create(&mut self, name: &str, policy: &str, now: u64) -> (KeyRecord, String) {
        let mut id_bytes = [0u8; 6];
        let mut secret = [0u8; 32];
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut id_bytes);
        OsRng.fill_bytes(&mut secret);
        OsRng.fill_bytes(&mut salt);
        let id = hex(&id_bytes);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let record = KeyRecord {
            id: id.clone(),
            name: name.to_string(),
            policy: policy.to_string(),
            salt: hex(&salt),
            hash: hex(&digest(&salt, secret.as_bytes())),
            created: now,
            revoked: false,
        };
        self.keys.push(record.clone());
        (record, format!("{KEY_PREFIX}{id}_{secret}"))
    }

    pub fn revoke(&mut self, id: &str) -> Result<(), KeyError> {
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyError::NoSuchKey(id.to_string()))?;
        k.revoked = true;
        Ok(())
    }
}

/// Keys ready for lookup by id.
#[derive(Debug, Default)]
pub struct KeyStore {
    by_id: HashMap<String, Stored>,
}

#[derive(Debug)]
struct Stored {
    salt: Vec<u8>,
    hash: [u8; 32],
    policy: String,
    revoked: bool,
}

/// Why a presented key was refused (for the audit log; the client always sees one message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyRefusal {
    Malformed,
    Unknown,
    Revoked,
    Mismatch,
}

impl KeyRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRefusal::Malformed => "malformed key",
            KeyRefusal::Unknown => "unknown key id",
            KeyRefusal::Revoked => "revoked key",
            KeyRefusal::Mismatch => "wrong secret for key id",
        }
    }
}

impl KeyStore {
    pub fn from_file(file: &KeyFile) -> KeyStore {
        let by_id = file
            .keys
            .iter()
            .filter_map(|k| {
                let salt = unhex(&k.salt)?;
                let hash: [u8; 32] = unhex(&k.hash)?.try_into().ok()?;
                Some((
                    k.id.clone(),
                    Stored {
                        salt,
                        hash,
                        policy: k.policy.clone(),
                        revoked: k.revoked,
                    },
                ))
            })
            .collect();
        KeyStore { by_id }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The key id and its policy, or why the token was refused (with the id when one parsed).
    pub fn check<'a>(
        &'a self,
        token: &str,
    ) -> Result<(String, &'a str), (KeyRefusal, Option<String>)> {
        let rest = token
            .strip_prefix(KEY_PREFIX)
            .ok_or((KeyRefusal::Malformed, None))?;
        let (id, secret) = rest.split_once('_').ok_or((KeyRefusal::Malformed, None))?;
        if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || secret.len() > 256 {
            return Err((KeyRefusal::Malformed, None));
        }
        let Some(k) = self.by_id.get(id) else {
            return Err((KeyRefusal::Unknown, Some(id.to_string())));
        };
        let presented = digest(&k.salt, secret.as_bytes());
        if !bool::from(presented.ct_eq(&k.hash)) {
            return Err((KeyRefusal::Mismatch, Some(id.to_string())));
        }
        if k.revoked {
            return Err((KeyRefusal::Revoked, Some(id.to_string())));
        }
        Ok((id.to_string(), &k.policy))
    }
}

fn digest(salt: &[u8], secret: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(secret);
    h.finalize().into()
}

/// Lower-case hexadecimal.
pub fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

/// Hex to bytes; `None` on an odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_key_checks_and_wrong_ones_do_not() {
        let mut f = KeyFile {
            version: 1,
            keys: vec![],
        };
        let (rec, token) = f.create("ci", "default", 1);
        assert!(token.starts_with("mlsk_"));
        assert!(
            !serde_json::to_string(&f)
                .expect("json")
                .contains(&token[18..])
        );
        let store = KeyStore::from_file(&f);
        assert_eq!(store.check(&token).expect("valid").0, rec.id);
        let mut wrong = token.clone();
        wrong.pop();
        wrong.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(
            store.check(&wrong).expect_err("wrong").0,
            KeyRefusal::Mismatch
        );
        assert_eq!(
            store.check("mlsk_000000000000_x").expect_err("unknown").0,
            KeyRefusal::Unknown
        );
        assert_eq!(
            store.check("Bearer").expect_err("malformed").0,
            KeyRefusal::Malformed
        );
        f.revoke(&rec.id).expect("revoke");
        let store = KeyStore::from_file(&f);
        assert_eq!(
            store.check(&token).expect_err("revoked").0,
            KeyRefusal::Revoked
        );
    }
}
