//! Envelope encryption of stored artifacts.
//!
//! Every object gets its own random 256-bit data key. The data key is wrapped by a
//! key-encryption key ([`Kek`]) and the wrapped key travels in the object's header. The
//! content is sealed with AES-256-GCM in segments of [`SEGMENT`] bytes, so files of any size
//! stream through in constant memory (the STREAM construction: a segment's nonce is its
//! counter, and its associated data says whether it is the last one, so segments cannot be
//! reordered, dropped or cut off the end without the open failing).
//!
//! The associated data of every segment also binds the object's [`Context`]: what the object
//! is (environment, model, version, path). An object copied to another path, another version
//! or another environment fails to open. The last segment additionally binds the SHA-256 of the
//! whole plaintext, which the caller keeps in the metadata; a wrong digest fails the open.
//!
//! Layout: `MLSECENC` `01` | header length (u32 BE) | header JSON | segments, each
//! ciphertext plus a 16-byte tag. The header holds the key id and the wrapped data key, never
//! the data key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand_core::{OsRng, RngCore};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};

/// Plaintext bytes per sealed segment.
pub const SEGMENT: usize = 1 << 20;
/// Bytes a sealed segment adds (the GCM tag).
pub const TAG: usize = 16;
/// Largest object header read.
pub const MAX_HEADER: usize = 64 << 10;
const MAGIC: &[u8; 8] = b"MLSECENC";
const FORMAT: u8 = 1;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CryptError {
    #[error("not an mlsec encrypted object (bad magic or format)")]
    NotEncrypted,
    #[error("object header: {0}")]
    Header(String),
    #[error("object was encrypted under key {found:?}, this store has {have:?}")]
    UnknownKey { found: String, have: String },
    #[error("the data key does not unwrap: wrong key-encryption key, or the header was altered")]
    Unwrap,
    #[error(
        "segment {0} failed authentication: the object was altered, moved, truncated or its digest does not match"
    )]
    Segment(u64),
    #[error("object ends inside its header or a segment")]
    Truncated,
    #[error("transit: {0}")]
    Transit(String),
    #[error("key file {path}: {detail}")]
    KeyFile { path: String, detail: String },
}

/// What an object is; bound into every segment's associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub env: String,
    /// Registered model name, empty for run and logged-model artifacts.
    pub model: String,
    /// Model version, 0 for run and logged-model artifacts.
    pub version: i64,
    /// The artifact's logical path.
    pub path: String,
}

impl Context {
    pub(crate) fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"mlsec-registry/object/v1\0");
        for part in [&self.env, &self.model] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.update(self.version.to_be_bytes());
        h.update((self.path.len() as u64).to_be_bytes());
        h.update(self.path.as_bytes());
        h.finalize().into()
    }
}

/// One local key-encryption key: 32 random bytes. Its id is a short hash of the key, so a
/// wrong key is named as such rather than failing as tampering.
#[derive(Clone)]
pub struct LocalKey {
    id: String,
    key: [u8; 32],
}

impl LocalKey {
    pub fn from_bytes(key: [u8; 32]) -> LocalKey {
        let id = Sha256::digest([b"mlsec-kek-id\0".as_slice(), &key].concat());
        LocalKey {
            id: format!("local:{}", mlsec_server::keys::hex(&id[..6])),
            key,
        }
    }

    fn aead(&self) -> LessSafeKey {
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.key).unwrap_or_else(|_| unreachable!("32 bytes")),
        )
    }

    fn wrap(&self, data_key: &[u8; 32], ctx: &[u8; 32]) -> String {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let mut buf = data_key.to_vec();
        let aad = wrap_aad(&self.id, ctx);
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut buf,
            )
            .unwrap_or_else(|_| unreachable!("sealing 32 bytes cannot fail"));
        B64.encode([nonce.as_slice(), &buf].concat())
    }

    fn unwrap(&self, wrapped: &str, ctx: &[u8; 32]) -> Result<[u8; 32], CryptError> {
        let raw = B64.decode(wrapped).map_err(|_| CryptError::Unwrap)?;
        if raw.len() != 12 + 32 + TAG {
            return Err(CryptError::Unwrap);
        }
        let (nonce, sealed) = raw.split_at(12);
        let mut buf = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptError::Unwrap)?;
        let aad = wrap_aad(&self.id, ctx);
        let plain = self
            .aead()
            .open_in_place(nonce, Aad::from(&aad), &mut buf)
            .map_err(|_| CryptError::Unwrap)?;
        let mut key = [0u8; 32];
        key.copy_from_slice(plain);
        Ok(key)
    }
}

fn parse_key_line(t: &str) -> Option<[u8; 32]> {
    let t = t.trim();
    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, k) in key.iter_mut().enumerate() {
        *k = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

/// A local key file: the current key on the first line, earlier keys (still able to unwrap,
/// never used to wrap) on the lines after it. Each line is 64 hex characters.
#[derive(Clone)]
struct LocalKeys {
    path: Option<std::path::PathBuf>,
    keys: Arc<RwLock<Vec<LocalKey>>>,
    /// The file's (modification time, length) when last read: a rotation by another process
    /// is picked up before the next wrap.
    seen: Arc<RwLock<Option<(std::time::SystemTime, u64)>>>,
}

fn file_stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl LocalKeys {
    /// Re-reads the file if it changed since it was last read.
    fn refresh(&self) {
        let Some(p) = &self.path else { return };
        let stamp = file_stamp(p);
        if self.seen.read().is_ok_and(|s| *s == stamp) {
            return;
        }
        if let Ok(fresh) = read_key_file(p) {
            if let Ok(mut w) = self.keys.write() {
                *w = fresh;
            }
            if let Ok(mut s) = self.seen.write() {
                *s = stamp;
            }
        }
    }
}

/// rustls (under reqwest and object_store) needs one process-wide crypto provider: ring, as
/// everywhere in mlsec. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn read_key_file(path: &std::path::Path) -> Result<Vec<LocalKey>, CryptError> {
    let err = |detail: String| CryptError::KeyFile {
        path: path.display().to_string(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut keys = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let k = parse_key_line(line).ok_or_else(|| {
            err(format!(
                "line {}: expected 64 hex characters (a 256-bit key)",
                n + 1
            ))
        })?;
        keys.push(LocalKey::from_bytes(k));
    }
    if keys.is_empty() {
        return Err(err("expected 64 hex characters (a 256-bit key)".into()));
    }
    Ok(keys)
}

fn write_key_file(
    path: &std::path::Path,
    keys: &[[u8; 32]],
    create_new: bool,
) -> Result<(), CryptError> {
    let err = |detail: String| CryptError::KeyFile {
        path: path.display().to_string(),
        detail,
    };
    let tmp = path.with_extension("tmp");
    let target = if create_new {
        path.to_path_buf()
    } else {
        tmp.clone()
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&target).map_err(|e| err(e.to_string()))?;
    let mut text = String::new();
    for k in keys {
        text.push_str(&mlsec_server::keys::hex(k));
        text.push('\n');
    }
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(|e| err(e.to_string()))?;
    f.sync_all().map_err(|e| err(e.to_string()))?;
    if !create_new {
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// OpenBao / Vault transit: the data key never leaves in clear, the key-encryption key never
/// leaves OpenBao. The wrapped value is transit's ciphertext of (data key || context digest),
/// so a data key unwrapped for another object's context is refused here.
#[derive(Clone)]
pub struct Transit {
    /// `http://127.0.0.1:8200`
    pub address: String,
    /// The transit key's name.
    pub key: String,
    /// The transit mount, `transit` by default.
    pub mount: String,
    token: String,
    client: reqwest::Client,
}

impl Transit {
    pub fn new(address: &str, mount: &str, key: &str, token: String) -> Transit {
        install_crypto_provider();
        Transit {
            address: address.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            mount: mount.trim_matches('/').to_owned(),
            token,
            client: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        op: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, CryptError> {
        let url = format!("{}/v1/{}/{op}/{}", self.address, self.mount, self.key);
        let err = |detail: String| CryptError::Transit(format!("{url}: {detail}"));
        let resp = self
            .client
            .post(&url)
            .header("X-Vault-Token", &self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| err(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let why = v
                .get("errors")
                .map_or_else(|| v.to_string(), ToString::to_string);
            return Err(err(format!("{status}: {why}")));
        }
        Ok(v)
    }

    async fn wrap(&self, data_key: &[u8; 32], ctx: &[u8; 32]) -> Result<String, CryptError> {
        let plain = B64.encode([data_key.as_slice(), ctx].concat());
        let v = self
            .call("encrypt", serde_json::json!({"plaintext": plain}))
            .await?;
        v["data"]["ciphertext"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CryptError::Transit("encrypt: no ciphertext in the answer".into()))
    }

    async fn unwrap(&self, wrapped: &str, ctx: &[u8; 32]) -> Result<[u8; 32], CryptError> {
        let v = self
            .call("decrypt", serde_json::json!({"ciphertext": wrapped}))
            .await?;
        let plain = v["data"]["plaintext"]
            .as_str()
            .and_then(|p| B64.decode(p).ok())
            .ok_or(CryptError::Unwrap)?;
        if plain.len() != 64 || plain[32..] != ctx[..] {
            return Err(CryptError::Unwrap);
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(&plain[..32]);
        Ok(key)
    }

    async fn rewrap(&self, wrapped: &str) -> Result<String, CryptError> {
        let v = self
            .call("rewrap", serde_json::json!({"ciphertext": wrapped}))
            .await?;
        v["data"]["ciphertext"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| CryptError::Transit("rewrap: no ciphertext in the answer".into()))
    }

    /// Makes a new version of the transit key (new data keys are wrapped under it; old
    /// versions still unwrap until `rewrap` has moved every object).
    pub async fn rotate(&self) -> Result<(), CryptError> {
        let url = format!(
            "{}/v1/{}/keys/{}/rotate",
            self.address, self.mount, self.key
        );
        let resp = self
            .client
            .post(&url)
            .header("X-Vault-Token", &self.token)
            .send()
            .await
            .map_err(|e| CryptError::Transit(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(CryptError::Transit(format!("{url}: {}", resp.status())));
        }
        Ok(())
    }
}

/// The key-encryption key: a local key file, or a transit key in OpenBao/Vault.
#[derive(Clone)]
pub enum Kek {
    Local(LocalKeysHandle),
    Transit(Transit),
}

/// Local keys, re-read from their file when an object names a key id not in memory (another
/// process rotated the file).
#[derive(Clone)]
pub struct LocalKeysHandle(LocalKeys);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Kek {
    /// One local key, held in memory only (tests, fuzzing).
    pub fn from_bytes(key: [u8; 32]) -> Kek {
        Kek::Local(LocalKeysHandle(LocalKeys {
            path: None,
            keys: Arc::new(RwLock::new(vec![LocalKey::from_bytes(key)])),
            seen: Arc::new(RwLock::new(None)),
        }))
    }

    /// Reads a key file, or creates one (mode 0600) when `create` and it does not exist.
    pub fn load(path: &std::path::Path, create: bool) -> Result<Kek, CryptError> {
        if create && !path.exists() {
            let mut key = [0u8; 32];
            OsRng.fill_bytes(&mut key);
            write_key_file(path, &[key], true)?;
        }
        let stamp = file_stamp(path);
        let keys = read_key_file(path)?;
        Ok(Kek::Local(LocalKeysHandle(LocalKeys {
            path: Some(path.to_path_buf()),
            keys: Arc::new(RwLock::new(keys)),
            seen: Arc::new(RwLock::new(stamp)),
        })))
    }

    /// Puts a new current key at the top of a key file; the old ones stay below it to unwrap
    /// until every object is rewrapped.
    pub fn rotate_key_file(path: &std::path::Path) -> Result<(), CryptError> {
        let old = read_key_file(path)?;
        let mut new = [0u8; 32];
        OsRng.fill_bytes(&mut new);
        let mut all = vec![new];
        all.extend(old.iter().map(|k| k.key));
        write_key_file(path, &all, false)
    }

    /// Drops every key but the current one from a key file (after a full rewrap).
    pub fn prune_key_file(path: &std::path::Path) -> Result<usize, CryptError> {
        let keys = read_key_file(path)?;
        write_key_file(path, &[keys[0].key], false)?;
        Ok(keys.len() - 1)
    }

    /// Whether this key-encryption key can unwrap what `id` wrapped.
    pub fn knows(&self, id: &str) -> bool {
        match self {
            Kek::Local(_) => self.local_key(id).is_ok(),
            Kek::Transit(_) => self.id() == id,
        }
    }

    /// The id new objects are wrapped under.
    pub fn id(&self) -> String {
        match self {
            Kek::Local(h) => {
                h.0.refresh();
                h.0.keys
                    .read()
                    .map_or_else(|_| String::new(), |k| k[0].id.clone())
            }
            Kek::Transit(t) => format!("transit:{}", t.key),
        }
    }

    fn local_key(&self, id: &str) -> Result<LocalKey, CryptError> {
        let Kek::Local(h) = self else {
            return Err(CryptError::UnknownKey {
                found: id.to_owned(),
                have: self.id(),
            });
        };
        let find = |keys: &Vec<LocalKey>| keys.iter().find(|k| k.id == id).cloned();
        if let Some(k) = h.0.keys.read().ok().and_then(|k| find(&k)) {
            return Ok(k);
        }
        // Another process may have rotated the file: read it again.
        h.0.refresh();
        if let Some(k) = h.0.keys.read().ok().and_then(|k| find(&k)) {
            return Ok(k);
        }
        Err(CryptError::UnknownKey {
            found: id.to_owned(),
            have: self.id(),
        })
    }

    async fn wrap(
        &self,
        data_key: &[u8; 32],
        ctx: &[u8; 32],
    ) -> Result<(String, String), CryptError> {
        match self {
            Kek::Local(_) => {
                let id = self.id();
                let k = self.local_key(&id)?;
                Ok((id, k.wrap(data_key, ctx)))
            }
            Kek::Transit(t) => Ok((self.id(), t.wrap(data_key, ctx).await?)),
        }
    }

    async fn unwrap(&self, h: &Header, ctx: &[u8; 32]) -> Result<[u8; 32], CryptError> {
        match self {
            Kek::Local(_) => self.local_key(&h.kek)?.unwrap(&h.wrapped, ctx),
            Kek::Transit(t) => {
                if h.kek != self.id() {
                    return Err(CryptError::UnknownKey {
                        found: h.kek.clone(),
                        have: self.id(),
                    });
                }
                t.unwrap(&h.wrapped, ctx).await
            }
        }
    }

    fn unwrap_sync(&self, h: &Header, ctx: &[u8; 32]) -> Result<[u8; 32], CryptError> {
        self.local_key(&h.kek)?.unwrap(&h.wrapped, ctx)
    }

    /// A header wrapped under the current key, or `None` when it already is.
    pub async fn rewrap(&self, h: &Header, ctx: &Context) -> Result<Option<Header>, CryptError> {
        let c = ctx.digest();
        match self {
            Kek::Local(_) => {
                if h.kek == self.id() {
                    return Ok(None);
                }
                let dk = self.local_key(&h.kek)?.unwrap(&h.wrapped, &c)?;
                let (kek, wrapped) = self.wrap(&dk, &c).await?;
                Ok(Some(Header {
                    kek,
                    wrapped,
                    segment: h.segment,
                }))
            }
            Kek::Transit(t) => {
                if h.kek != self.id() {
                    return Err(CryptError::UnknownKey {
                        found: h.kek.clone(),
                        have: self.id(),
                    });
                }
                // Prove the header belongs here before asking for a rewrap.
                t.unwrap(&h.wrapped, &c).await?;
                let new = t.rewrap(&h.wrapped).await?;
                let version = |w: &str| w.split(':').nth(1).map(str::to_owned);
                if version(&new) == version(&h.wrapped) {
                    return Ok(None);
                }
                Ok(Some(Header {
                    kek: h.kek.clone(),
                    wrapped: new,
                    segment: h.segment,
                }))
            }
        }
    }
}

/// The header every object starts with: which key wrapped its data key, and the wrapped key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub kek: String,
    /// Local: base64 of nonce || sealed data key. Transit: transit's ciphertext.
    pub wrapped: String,
    pub segment: usize,
}

impl Header {
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut out = Vec::with_capacity(13 + json.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        out
    }

    /// The header at the start of `buf` and its length, or `None` if more bytes are needed.
    pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, CryptError> {
        if buf.len() < 13 {
            return Ok(None);
        }
        if &buf[..8] != MAGIC || buf[8] != FORMAT {
            return Err(CryptError::NotEncrypted);
        }
        let len = u32::from_be_bytes([buf[9], buf[10], buf[11], buf[12]]) as usize;
        if len > MAX_HEADER {
            return Err(CryptError::Header(format!(
                "{len} bytes, over the {MAX_HEADER}-byte limit"
            )));
        }
        let Some(json) = buf.get(13..13 + len) else {
            return Ok(None);
        };
        let h: Header =
            serde_json::from_slice(json).map_err(|e| CryptError::Header(e.to_string()))?;
        if h.segment != SEGMENT {
            return Err(CryptError::Header(format!(
                "segment size {} (this release writes {SEGMENT})",
                h.segment
            )));
        }
        Ok(Some((h, 13 + len)))
    }
}

/// A fresh data key wrapped under `kek` for `ctx`: the key, and the header bytes to write.
pub async fn seal_header(kek: &Kek, ctx: &Context) -> Result<([u8; 32], Vec<u8>), CryptError> {
    let mut dk = [0u8; 32];
    OsRng.fill_bytes(&mut dk);
    let (kek_id, wrapped) = kek.wrap(&dk, &ctx.digest()).await?;
    let h = Header {
        kek: kek_id,
        wrapped,
        segment: SEGMENT,
    };
    Ok((dk, h.to_bytes()))
}

/// The data key of an object whose header is `h`.
pub async fn open_header(kek: &Kek, ctx: &Context, h: &Header) -> Result<[u8; 32], CryptError> {
    kek.unwrap(h, &ctx.digest()).await
}

fn wrap_aad(kek_id: &str, ctx: &[u8; 32]) -> Vec<u8> {
    [b"mlsec-dek\0".as_slice(), kek_id.as_bytes(), b"\0", ctx].concat()
}

fn segment_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn segment_aad(ctx: &[u8; 32], counter: u64, last: Option<&[u8; 32]>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + 8 + 1 + 32);
    aad.extend_from_slice(ctx);
    aad.extend_from_slice(&counter.to_be_bytes());
    match last {
        Some(digest) => {
            aad.push(1);
            aad.extend_from_slice(digest);
        }
        None => aad.push(0),
    }
    aad
}

/// Encrypts one object as its bytes arrive: [`Sealer::header`] first, then
/// [`Sealer::push`] per chunk (returns whole sealed segments), then [`Sealer::finish`].
pub struct Sealer {
    key: LessSafeKey,
    ctx: [u8; 32],
    counter: u64,
    pending: Vec<u8>,
    hasher: Sha256,
    size: u64,
}

/// What [`Sealer::finish`] learned about the plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub size: u64,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
}

impl Sealer {
    /// A sealer under data key `dk` (from [`seal_header`]).
    pub fn new(dk: &[u8; 32], ctx: &Context) -> Sealer {
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, dk).unwrap_or_else(|_| unreachable!("32 bytes")),
        );
        Sealer {
            key,
            ctx: ctx.digest(),
            counter: 0,
            pending: Vec::with_capacity(SEGMENT + TAG),
            hasher: Sha256::new(),
            size: 0,
        }
    }

    /// Takes plaintext; returns the segments it completed, sealed (possibly none).
    pub fn push(&mut self, mut data: &[u8]) -> Vec<u8> {
        self.hasher.update(data);
        self.size += data.len() as u64;
        let mut out = Vec::new();
        while !data.is_empty() {
            let room = SEGMENT - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            // A full segment is sealed only once more data shows it is not the last.
            if self.pending.len() == SEGMENT && !data.is_empty() {
                self.seal_pending(None, &mut out);
            }
        }
        out
    }

    fn seal_pending(&mut self, last: Option<&[u8; 32]>, out: &mut Vec<u8>) {
        let aad = segment_aad(&self.ctx, self.counter, last);
        let mut buf = std::mem::take(&mut self.pending);
        self.key
            .seal_in_place_append_tag(segment_nonce(self.counter), Aad::from(&aad), &mut buf)
            .unwrap_or_else(|_| unreachable!("a segment is far below GCM's limit"));
        self.counter += 1;
        out.extend_from_slice(&buf);
        self.pending = buf;
        self.pending.clear();
    }

    /// Plaintext bytes taken so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Seals the last segment (always present, possibly empty).
    pub fn finish(mut self) -> (Vec<u8>, Sealed) {
        let digest: [u8; 32] = self.hasher.clone().finalize().into();
        let mut out = Vec::new();
        self.seal_pending(Some(&digest), &mut out);
        (
            out,
            Sealed {
                size: self.size,
                sha256: mlsec_server::keys::hex(&digest),
            },
        )
    }
}

/// Decrypts the segments of one object as they arrive (after its header). Feed ciphertext
/// with [`Opener::push`]; it returns authenticated plaintext. [`Opener::finish`] checks the
/// last segment and the digest.
pub struct Opener {
    ctx: [u8; 32],
    expected: [u8; 32],
    key: LessSafeKey,
    buf: Vec<u8>,
    counter: u64,
}

impl Opener {
    /// `sha256` is the plaintext digest the metadata recorded (hex).
    pub fn new(dk: &[u8; 32], ctx: &Context, sha256: &str) -> Opener {
        let mut expected = [0u8; 32];
        if sha256.len() == 64 {
            for (i, e) in expected.iter_mut().enumerate() {
                *e = u8::from_str_radix(sha256.get(2 * i..2 * i + 2).unwrap_or("zz"), 16)
                    .unwrap_or(0);
            }
        }
        Opener {
            ctx: ctx.digest(),
            expected,
            key: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, dk).unwrap_or_else(|_| unreachable!("32 bytes")),
            ),
            buf: Vec::new(),
            counter: 0,
        }
    }

    /// Takes ciphertext; returns the plaintext of the segments it completed. A whole segment
    /// is opened only when more bytes show it is not the last one.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, CryptError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.buf.len() > SEGMENT + TAG {
            // The segment keeps its buffer; only what follows it is moved.
            let rest = self.buf.split_off(SEGMENT + TAG);
            let mut seg = std::mem::replace(&mut self.buf, rest);
            let aad = segment_aad(&self.ctx, self.counter, None);
            let n = self
                .key
                .open_in_place(segment_nonce(self.counter), Aad::from(&aad), &mut seg)
                .map_err(|_| CryptError::Segment(self.counter))?
                .len();
            seg.truncate(n);
            if out.is_empty() {
                out = seg;
            } else {
                out.extend_from_slice(&seg);
            }
            self.counter += 1;
        }
        Ok(out)
    }

    /// Opens the last segment, which also proves the digest.
    pub fn finish(mut self) -> Result<Vec<u8>, CryptError> {
        if self.buf.len() < TAG {
            return Err(CryptError::Truncated);
        }
        let aad = segment_aad(&self.ctx, self.counter, Some(&self.expected));
        let plain = self
            .key
            .open_in_place(segment_nonce(self.counter), Aad::from(&aad), &mut self.buf)
            .map_err(|_| CryptError::Segment(self.counter))?;
        Ok(plain.to_vec())
    }
}

/// Encrypts a whole buffer under a local key (tests, fuzzing).
pub fn seal_all(kek: &Kek, ctx: &Context, data: &[u8]) -> Result<(Vec<u8>, Sealed), CryptError> {
    let mut dk = [0u8; 32];
    OsRng.fill_bytes(&mut dk);
    let kek_id = kek.id();
    let wrapped = kek.local_key(&kek_id)?.wrap(&dk, &ctx.digest());
    let mut out = Header {
        kek: kek_id,
        wrapped,
        segment: SEGMENT,
    }
    .to_bytes();
    let mut s = Sealer::new(&dk, ctx);
    out.extend(s.push(data));
    let (tail, sealed) = s.finish();
    out.extend(tail);
    Ok((out, sealed))
}

/// Decrypts a whole buffer under a local key (tests, fuzzing).
pub fn open_all(
    kek: &Kek,
    ctx: &Context,
    sha256: &str,
    data: &[u8],
) -> Result<Vec<u8>, CryptError> {
    let (h, at) = Header::parse(data)?.ok_or(CryptError::Truncated)?;
    let dk = kek.unwrap_sync(&h, &ctx.digest())?;
    let mut o = Opener::new(&dk, ctx, sha256);
    let mut out = o.push(&data[at..])?;
    out.extend(o.finish()?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(path: &str) -> Context {
        Context {
            env: "dev".into(),
            model: "fraud".into(),
            version: 3,
            path: path.into(),
        }
    }

    fn kek(b: u8) -> Kek {
        Kek::from_bytes([b; 32])
    }

    #[test]
    fn round_trips_across_segment_boundaries_in_any_chunking() {
        for len in [
            0,
            1,
            SEGMENT - 1,
            SEGMENT,
            SEGMENT + 1,
            2 * SEGMENT,
            2 * SEGMENT + 7,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let dk = [9u8; 32];
            let mut sealer = Sealer::new(&dk, &ctx("model.pkl"));
            let mut out = Vec::new();
            for chunk in data.chunks(70_001) {
                out.extend(sealer.push(chunk));
            }
            let (tail, sealed) = sealer.finish();
            out.extend(tail);
            assert_eq!(sealed.size, len as u64);
            let segments = len.div_ceil(SEGMENT).max(1);
            assert_eq!(out.len(), len + segments * TAG, "{len}");
            let mut o = Opener::new(&dk, &ctx("model.pkl"), &sealed.sha256);
            let mut back = Vec::new();
            for chunk in out.chunks(99_991) {
                back.extend(o.push(chunk).unwrap());
            }
            back.extend(o.finish().unwrap());
            assert_eq!(back, data, "{len}");
        }
    }

    #[test]
    fn moved_altered_truncated_or_misdigested_objects_do_not_open() {
        let k = kek(2);
        let data = vec![7u8; SEGMENT + 100];
        let (ct, sealed) = seal_all(&k, &ctx("a/b"), &data).unwrap();
        // Another path, version, model or environment.
        for other in [
            ctx("a/c"),
            Context {
                version: 4,
                ..ctx("a/b")
            },
            Context {
                model: "other".into(),
                ..ctx("a/b")
            },
            Context {
                env: "prod".into(),
                ..ctx("a/b")
            },
        ] {
            assert!(matches!(
                open_all(&k, &other, &sealed.sha256, &ct),
                Err(CryptError::Unwrap)
            ));
        }
        // A flipped byte in the first or the last segment.
        for at in [ct.len() - 5, ct.len() - 200, 400] {
            let mut bad = ct.clone();
            bad[at] ^= 1;
            assert!(
                open_all(&k, &ctx("a/b"), &sealed.sha256, &bad).is_err(),
                "{at}"
            );
        }
        // Cut after the first segment: the first segment now poses as the last.
        let header_len = ct.len() - (data.len() + 2 * TAG);
        let cut = &ct[..header_len + SEGMENT + TAG];
        assert!(matches!(
            open_all(&k, &ctx("a/b"), &sealed.sha256, cut),
            Err(CryptError::Segment(0))
        ));
        // The right bytes under a different recorded digest.
        let wrong = "00".repeat(32);
        assert!(matches!(
            open_all(&k, &ctx("a/b"), &wrong, &ct),
            Err(CryptError::Segment(1))
        ));
        // Another key is named, not reported as tampering.
        assert!(matches!(
            open_all(&kek(3), &ctx("a/b"), &sealed.sha256, &ct),
            Err(CryptError::UnknownKey { .. })
        ));
        assert!(matches!(
            open_all(&k, &ctx("a/b"), &sealed.sha256, b"plain"),
            Err(CryptError::Truncated)
        ));
        assert!(matches!(
            open_all(&k, &ctx("a/b"), &sealed.sha256, b"plain text here"),
            Err(CryptError::NotEncrypted)
        ));
    }

    #[test]
    fn the_header_never_holds_the_data_key_in_clear() {
        let (ct, _) = seal_all(&kek(4), &ctx("x"), b"secret weights").unwrap();
        assert!(!ct.windows(14).any(|w| w == b"secret weights"));
    }

    #[test]
    fn key_files_are_created_private_and_junk_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kek");
        let a = Kek::load(&p, true).unwrap();
        let b = Kek::load(&p, false).unwrap();
        assert_eq!(a.id(), b.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&p, "nothex").unwrap();
        let e = Kek::load(&p, false).unwrap_err().to_string();
        assert!(e.contains("kek") && e.contains("64 hex"), "{e}");
        std::fs::remove_file(&p).unwrap();
        // Rotation: a new current key, the old one kept to unwrap; pruning drops it.
        let a = Kek::load(&p, true).unwrap();
        let (ct, sealed) = seal_all(&a, &ctx("r"), b"weights").unwrap();
        let old_id = a.id();
        Kek::rotate_key_file(&p).unwrap();
        let b = Kek::load(&p, false).unwrap();
        assert_ne!(old_id, b.id());
        assert_eq!(
            a.id(),
            b.id(),
            "a running process wraps under the new key at once"
        );
        assert_eq!(
            open_all(&b, &ctx("r"), &sealed.sha256, &ct).unwrap(),
            b"weights"
        );
        // A process holding the old file learns the new key when it meets it.
        let (ct2, sealed2) = seal_all(&b, &ctx("r"), b"new").unwrap();
        assert_eq!(
            open_all(&a, &ctx("r"), &sealed2.sha256, &ct2).unwrap(),
            b"new"
        );
        assert_eq!(Kek::prune_key_file(&p).unwrap(), 1);
        let c = Kek::load(&p, false).unwrap();
        assert!(matches!(
            open_all(&c, &ctx("r"), &sealed.sha256, &ct),
            Err(CryptError::UnknownKey { .. })
        ));
        assert!(Kek::load(&dir.path().join("missing"), false).is_err());
    }

    proptest! {
        #[test]
        fn opening_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = open_all(&kek(5), &ctx("p"), &"ab".repeat(32), &data);
            let mut framed = b"MLSECENC\x01".to_vec();
            framed.extend_from_slice(&data);
            let _ = open_all(&kek(5), &ctx("p"), "zz", &framed);
        }
    }
}
