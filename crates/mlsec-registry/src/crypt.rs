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
    fn digest(&self) -> [u8; 32] {
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

/// A key-encryption key from a local key file: 32 random bytes, hex-encoded.
#[derive(Clone)]
pub struct Kek {
    id: String,
    key: [u8; 32],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    kek: String,
    /// Base64 of nonce || sealed data key.
    wrapped: String,
    segment: usize,
}

impl Kek {
    /// A key from its 32 bytes; the id is a short hash of the key, so a wrong key is named as
    /// such rather than failing as tampering.
    pub fn from_bytes(key: [u8; 32]) -> Kek {
        let id = Sha256::digest([b"mlsec-kek-id\0".as_slice(), &key].concat());
        Kek {
            id: format!("local:{}", mlsec_server::keys::hex(&id[..6])),
            key,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads a key file (64 hex characters), or creates one readable by the owner only when
    /// `create` and it does not exist.
    pub fn load(path: &std::path::Path, create: bool) -> Result<Kek, CryptError> {
        let err = |detail: String| CryptError::KeyFile {
            path: path.display().to_string(),
            detail,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let t = text.trim();
                if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(err("expected 64 hex characters (a 256-bit key)".into()));
                }
                let mut key = [0u8; 32];
                for (i, k) in key.iter_mut().enumerate() {
                    *k = u8::from_str_radix(&t[2 * i..2 * i + 2], 16)
                        .map_err(|e| err(e.to_string()))?;
                }
                Ok(Kek::from_bytes(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let mut key = [0u8; 32];
                OsRng.fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(path).map_err(|e| err(e.to_string()))?;
                std::io::Write::write_all(
                    &mut f,
                    format!("{}\n", mlsec_server::keys::hex(&key)).as_bytes(),
                )
                .map_err(|e| err(e.to_string()))?;
                Ok(Kek::from_bytes(key))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always valid for AES-256-GCM.
        LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.key).unwrap_or_else(|_| {
                unreachable!("32-byte key");
            }),
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

    fn unwrap_key(&self, wrapped: &str, ctx: &[u8; 32]) -> Result<[u8; 32], CryptError> {
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
    /// A sealer under a fresh data key, and the object header to write before the segments.
    pub fn new(kek: &Kek, ctx: &Context) -> (Sealer, Vec<u8>) {
        let mut data_key = [0u8; 32];
        OsRng.fill_bytes(&mut data_key);
        let c = ctx.digest();
        let header = Header {
            kek: kek.id.clone(),
            wrapped: kek.wrap(&data_key, &c),
            segment: SEGMENT,
        };
        let json = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = Vec::with_capacity(13 + json.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&(json.len() as u32).to_be_bytes());
        out.extend_from_slice(&json);
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &data_key).unwrap_or_else(|_| unreachable!("32 bytes")),
        );
        (
            Sealer {
                key,
                ctx: c,
                counter: 0,
                pending: Vec::with_capacity(SEGMENT + TAG),
                hasher: Sha256::new(),
                size: 0,
            },
            out,
        )
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

/// Decrypts one object as its bytes arrive. Feed ciphertext with [`Opener::push`]; it returns
/// authenticated plaintext. [`Opener::finish`] checks the last segment and the digest.
pub struct Opener {
    ctx: [u8; 32],
    expected: [u8; 32],
    key: Option<LessSafeKey>,
    kek: Kek,
    buf: Vec<u8>,
    counter: u64,
}

impl Opener {
    /// `sha256` is the plaintext digest the metadata recorded (hex).
    pub fn new(kek: &Kek, ctx: &Context, sha256: &str) -> Opener {
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
            key: None,
            kek: kek.clone(),
            buf: Vec::new(),
            counter: 0,
        }
    }

    fn read_header(&mut self) -> Result<bool, CryptError> {
        if self.buf.len() < 13 {
            return Ok(false);
        }
        if &self.buf[..8] != MAGIC || self.buf[8] != FORMAT {
            return Err(CryptError::NotEncrypted);
        }
        let len =
            u32::from_be_bytes([self.buf[9], self.buf[10], self.buf[11], self.buf[12]]) as usize;
        if len > MAX_HEADER {
            return Err(CryptError::Header(format!(
                "{len} bytes, over the {MAX_HEADER}-byte limit"
            )));
        }
        let Some(json) = self.buf.get(13..13 + len) else {
            return Ok(false);
        };
        let header: Header =
            serde_json::from_slice(json).map_err(|e| CryptError::Header(e.to_string()))?;
        if header.segment != SEGMENT {
            return Err(CryptError::Header(format!(
                "segment size {} (this release writes {SEGMENT})",
                header.segment
            )));
        }
        if header.kek != self.kek.id {
            return Err(CryptError::UnknownKey {
                found: header.kek,
                have: self.kek.id.clone(),
            });
        }
        let dk = self.kek.unwrap_key(&header.wrapped, &self.ctx)?;
        self.key = Some(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &dk).unwrap_or_else(|_| unreachable!("32 bytes")),
        ));
        self.buf.drain(..13 + len);
        Ok(true)
    }

    /// Takes ciphertext; returns the plaintext of the segments it completed. A whole segment
    /// is opened only when more bytes show it is not the last one.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, CryptError> {
        self.buf.extend_from_slice(data);
        if self.key.is_none() && !self.read_header()? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        while self.buf.len() > SEGMENT + TAG {
            let mut seg: Vec<u8> = self.buf.drain(..SEGMENT + TAG).collect();
            let aad = segment_aad(&self.ctx, self.counter, None);
            let key = self.key.as_ref().ok_or(CryptError::Truncated)?;
            let plain = key
                .open_in_place(segment_nonce(self.counter), Aad::from(&aad), &mut seg)
                .map_err(|_| CryptError::Segment(self.counter))?;
            out.extend_from_slice(plain);
            self.counter += 1;
        }
        Ok(out)
    }

    /// Opens the last segment, which also proves the digest.
    pub fn finish(mut self) -> Result<Vec<u8>, CryptError> {
        if self.key.is_none() && !self.read_header()? {
            return Err(CryptError::Truncated);
        }
        if self.buf.len() < TAG {
            return Err(CryptError::Truncated);
        }
        let aad = segment_aad(&self.ctx, self.counter, Some(&self.expected));
        let key = self.key.as_ref().ok_or(CryptError::Truncated)?;
        let plain = key
            .open_in_place(segment_nonce(self.counter), Aad::from(&aad), &mut self.buf)
            .map_err(|_| CryptError::Segment(self.counter))?;
        Ok(plain.to_vec())
    }
}

/// Encrypts a whole buffer (tests and small objects).
pub fn seal_all(kek: &Kek, ctx: &Context, data: &[u8]) -> (Vec<u8>, Sealed) {
    let (mut s, mut out) = Sealer::new(kek, ctx);
    out.extend(s.push(data));
    let (tail, sealed) = s.finish();
    out.extend(tail);
    (out, sealed)
}

/// Decrypts a whole buffer.
pub fn open_all(
    kek: &Kek,
    ctx: &Context,
    sha256: &str,
    data: &[u8],
) -> Result<Vec<u8>, CryptError> {
    let mut o = Opener::new(kek, ctx, sha256);
    let mut out = o.push(data)?;
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
        let k = kek(1);
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
            let (sealer, mut out) = Sealer::new(&k, &ctx("model.pkl"));
            let mut sealer = sealer;
            for chunk in data.chunks(70_001) {
                out.extend(sealer.push(chunk));
            }
            let (tail, sealed) = sealer.finish();
            out.extend(tail);
            assert_eq!(sealed.size, len as u64);
            let segments = len.div_ceil(SEGMENT).max(1);
            assert!(out.len() >= len + segments * TAG, "{len}");
            let mut o = Opener::new(&k, &ctx("model.pkl"), &sealed.sha256);
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
        let (ct, sealed) = seal_all(&k, &ctx("a/b"), &data);
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
        let (ct, _) = seal_all(&kek(4), &ctx("x"), b"secret weights");
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
