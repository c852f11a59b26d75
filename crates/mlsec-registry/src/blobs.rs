//! Encrypted objects in an object store (a local folder by default; any `object_store`
//! backend). Objects get random keys (`objects/ab/<id>`); which logical path an object holds is
//! metadata, so an overwrite or a new version becomes visible in one database commit and an
//! upload cut short leaves only an unreferenced object, never a partial file.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::crypt::{Context, CryptError, Header, Kek, Opener, Sealed, Sealer};

/// Largest single artifact accepted.
pub const MAX_ARTIFACT_BYTES: u64 = 64 << 30;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("upload body: {0}")]
    Body(String),
    #[error("artifact larger than the {MAX_ARTIFACT_BYTES}-byte limit")]
    TooLarge,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

type ByteStream = futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>;

/// Bytes read per step from a local object. object_store reads local files 8 KiB per blocking
/// task, which costs more than the decryption; whole segments per task keep downloads at disk
/// speed.
pub const LOCAL_READ: usize = crate::crypt::SEGMENT + crate::crypt::TAG;

/// An object's bytes as a stream: local files in [`LOCAL_READ`] steps, anything else as the
/// store streams it.
fn stream_of(got: object_store::GetResult) -> ByteStream {
    match got.payload {
        object_store::GetResultPayload::File(file, path) => {
            let remaining = got.range.end - got.range.start;
            let start = got.range.start;
            futures_util::stream::try_unfold(
                (Some(file), path, remaining, start, true),
                |(file, path, remaining, start, first)| async move {
                    let Some(mut file) = file else {
                        return Ok(None);
                    };
                    if remaining == 0 {
                        return Ok(None);
                    }
                    let p = path.clone();
                    let (file, buf) = tokio::task::spawn_blocking(move || {
                        use std::io::{Read, Seek, SeekFrom};
                        if first {
                            file.seek(SeekFrom::Start(start))?;
                        }
                        let want = remaining.min(LOCAL_READ as u64);
                        let mut buf = Vec::with_capacity(want as usize);
                        (&mut file).take(want).read_to_end(&mut buf)?;
                        Ok::<_, std::io::Error>((file, buf))
                    })
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: "local",
                        source: Box::new(e),
                    })?
                    .map_err(|e| object_store::Error::Generic {
                        store: "local",
                        source: Box::new(e),
                    })?;
                    if buf.is_empty() {
                        return Err(object_store::Error::Generic {
                            store: "local",
                            source: format!("{}: ended early", p.display()).into(),
                        });
                    }
                    let n = buf.len() as u64;
                    Ok(Some((
                        Bytes::from(buf),
                        (Some(file), path, remaining - n, start, false),
                    )))
                },
            )
            .boxed()
        }
        object_store::GetResultPayload::Stream(s) => s,
    }
}

/// The key-encryption keys: one per environment (objects of a version are wrapped under its
/// environment's key), and the default one for everything else (run and logged-model files,
/// and environments without their own).
#[derive(Clone, Debug)]
pub struct Keyring {
    pub default: Kek,
    pub by_env: Vec<(String, Kek)>,
}

impl Keyring {
    pub fn single(kek: Kek) -> Keyring {
        Keyring {
            default: kek,
            by_env: Vec::new(),
        }
    }

    /// The key new objects of `env` are wrapped under.
    pub fn for_env(&self, env: &str) -> &Kek {
        self.by_env
            .iter()
            .find(|(e, _)| e == env)
            .map_or(&self.default, |(_, k)| k)
    }

    /// The key that can unwrap a header.
    pub fn for_header(&self, h: &Header) -> Result<&Kek, CryptError> {
        std::iter::once(&self.default)
            .chain(self.by_env.iter().map(|(_, k)| k))
            .find(|k| k.knows(&h.kek))
            .ok_or_else(|| CryptError::UnknownKey {
                found: h.kek.clone(),
                have: self.ids().join(", "),
            })
    }

    pub fn ids(&self) -> Vec<String> {
        std::iter::once(&self.default)
            .chain(self.by_env.iter().map(|(_, k)| k))
            .map(Kek::id)
            .collect()
    }
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    keys: Keyring,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn new_object_key() -> String {
    let id = crate::store::random_id();
    format!("objects/{}/{id}", &id[..2])
}

impl Blobs {
    pub fn new(store: Arc<dyn ObjectStore>, keys: Keyring) -> Blobs {
        Blobs { store, keys }
    }

    /// A local folder (created if missing).
    pub fn local(root: &FsPath, kek: Keyring) -> Result<Blobs, BlobError> {
        fs_err::create_dir_all(root).map_err(|source| BlobError::Io {
            path: root.display().to_string(),
            source,
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(root)?;
        Ok(Blobs::new(Arc::new(fs), kek))
    }

    /// An S3-compatible bucket (`s3://BUCKET[/PREFIX]`). Credentials from the environment.
    pub fn s3(url: &str, cfg: &crate::config::S3, kek: Keyring) -> Result<Blobs, BlobError> {
        crate::crypt::install_crypto_provider();
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &cfg.region {
            b = b.with_region(r);
        }
        b = b.with_allow_http(cfg.allow_http);
        let s3 = b.build()?;
        let store: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                prefix.trim_matches('/'),
            ))
        };
        Ok(Blobs::new(store, kek))
    }

    /// The default key-encryption key.
    pub fn kek(&self) -> &Kek {
        &self.keys.default
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// Encrypts a stream into a new object. On any error the partial upload is aborted.
    pub async fn put_stream<S, E>(
        &self,
        ctx: &Context,
        mut body: S,
    ) -> Result<(String, Sealed), BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let key = new_object_key();
        let upload = self.store.put_multipart(&Path::from(key.as_str())).await?;
        let mut w = WriteMultipart::new(upload);
        let (dk, header) = match crate::crypt::seal_header(self.keys.for_env(&ctx.env), ctx).await {
            Ok(x) => x,
            Err(e) => {
                let _ = w.abort().await;
                return Err(e.into());
            }
        };
        let mut sealer = Sealer::new(&dk, ctx);
        w.write(&header);
        let result: Result<Sealed, BlobError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
                let out = sealer.push(&chunk);
                if sealer.size() > MAX_ARTIFACT_BYTES {
                    return Err(BlobError::TooLarge);
                }
                if !out.is_empty() {
                    w.wait_for_capacity(4).await?;
                    w.write(&out);
                }
            }
            let (tail, sealed) = sealer.finish();
            w.write(&tail);
            Ok(sealed)
        }
        .await;
        match result {
            Ok(sealed) => {
                w.finish().await?;
                Ok((key, sealed))
            }
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// Opens an object and reads its header: the rest of the stream, the header, the bytes
    /// read so far and where the segments start in them.
    async fn head(&self, object: &str) -> Result<(ByteStream, Header, Vec<u8>, usize), BlobError> {
        let mut inner = stream_of(self.store.get(&Path::from(object)).await?);
        let mut head = Vec::new();
        loop {
            if let Some((h, at)) = Header::parse(&head)? {
                return Ok((inner, h, head, at));
            }
            match inner.next().await {
                Some(chunk) => head.extend_from_slice(&chunk?),
                None => return Err(CryptError::Truncated.into()),
            }
        }
    }

    /// Decrypts an object as a stream of authenticated plaintext. A failure mid-way ends the
    /// stream with an error (the client sees a cut transfer, never altered bytes).
    pub async fn open_stream(
        &self,
        object: &str,
        ctx: &Context,
        sha256: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, BlobError>> + Send + 'static, BlobError> {
        // The header first: its key is unwrapped (perhaps by OpenBao) before any byte goes out.
        let (inner, header, head, at) = self.head(object).await?;
        let dk = crate::crypt::open_header(self.keys.for_header(&header)?, ctx, &header).await?;
        let mut opener = Opener::new(&dk, ctx, sha256);
        let first = opener.push(&head[at..])?;
        let first = futures_util::stream::iter((!first.is_empty()).then(|| Ok(Bytes::from(first))));
        Ok(first.chain(futures_util::stream::unfold(
            (inner, Some(opener)),
            |(mut inner, opener)| async move {
                let mut opener = opener?;
                loop {
                    match inner.next().await {
                        Some(Ok(chunk)) => match opener.push(&chunk) {
                            Ok(plain) if plain.is_empty() => {}
                            Ok(plain) => {
                                return Some((Ok(Bytes::from(plain)), (inner, Some(opener))));
                            }
                            Err(e) => return Some((Err(e.into()), (inner, None))),
                        },
                        Some(Err(e)) => return Some((Err(e.into()), (inner, None))),
                        None => {
                            return Some((
                                opener.finish().map(Bytes::from).map_err(Into::into),
                                (inner, None),
                            ));
                        }
                    }
                }
            },
        )))
    }

    /// Decrypts an object into memory.
    pub async fn read_all(
        &self,
        object: &str,
        ctx: &Context,
        sha256: &str,
    ) -> Result<Vec<u8>, BlobError> {
        let mut s = Box::pin(self.open_stream(object, ctx, sha256).await?);
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c?);
        }
        Ok(out)
    }

    /// Re-encrypts an object under another context (a new version, another environment),
    /// writing the plaintext to `tee` on the way when given (the checks' scratch copy), so
    /// the content is decrypted once.
    pub async fn copy(
        &self,
        object: &str,
        from: &Context,
        sha256: &str,
        to: &Context,
        tee: Option<&FsPath>,
    ) -> Result<(String, Sealed), BlobError> {
        let s = Box::pin(self.open_stream(object, from, sha256).await?);
        let Some(dest) = tee else {
            return self.put_stream(to, s).await;
        };
        let io = |source| BlobError::Io {
            path: dest.display().to_string(),
            source,
        };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let file = std::fs::File::create(dest).map_err(io)?;
        let file = std::sync::Arc::new(std::sync::Mutex::new(std::io::BufWriter::with_capacity(
            1 << 20,
            file,
        )));
        let path = dest.to_path_buf();
        let f2 = file.clone();
        let teed = s.then(move |chunk| {
            let f = f2.clone();
            let path = path.clone();
            async move {
                let chunk = chunk?;
                let c = chunk.clone();
                tokio::task::spawn_blocking(move || {
                    use std::io::Write;
                    f.lock()
                        .map_err(|_| std::io::Error::other("poisoned"))?
                        .write_all(&c)
                })
                .await
                .map_err(|e| BlobError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(e),
                })?
                .map_err(|source| BlobError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
                Ok::<_, BlobError>(chunk)
            }
        });
        let out = self.put_stream(to, Box::pin(teed)).await?;
        let mut w = file
            .lock()
            .map_err(|_| io(std::io::Error::other("poisoned")))?;
        std::io::Write::flush(&mut *w).map_err(io)?;
        Ok(out)
    }

    /// Rewraps an object's data key under the current key-encryption key: a new object with
    /// the new header and the same sealed segments (the content is not decrypted). Returns the
    /// new object's key, or `None` when the object is already under the current key.
    pub async fn rewrap(&self, object: &str, ctx: &Context) -> Result<Option<String>, BlobError> {
        let (mut inner, header, head, at) = self.head(object).await?;
        let Some(new) = self.keys.for_env(&ctx.env).rewrap(&header, ctx).await? else {
            return Ok(None);
        };
        let key = new_object_key();
        let upload = self.store.put_multipart(&Path::from(key.as_str())).await?;
        let mut w = WriteMultipart::new(upload);
        w.write(&new.to_bytes());
        w.write(&head[at..]);
        let copied: Result<(), BlobError> = async {
            while let Some(chunk) = inner.next().await {
                let chunk = chunk?;
                w.wait_for_capacity(4).await?;
                w.write(&chunk);
            }
            Ok(())
        }
        .await;
        match copied {
            Ok(()) => {
                w.finish().await?;
                Ok(Some(key))
            }
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    pub async fn delete(&self, object: &str) -> Result<(), BlobError> {
        match self.store.delete(&Path::from(object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies an object's stored bytes (encrypted) into a local file; returns its size.
    pub async fn raw_to_file(&self, object: &str, dest: &FsPath) -> Result<u64, BlobError> {
        use tokio::io::AsyncWriteExt;
        let io = |source| BlobError::Io {
            path: dest.display().to_string(),
            source,
        };
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let mut f = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut s = stream_of(self.store.get(&Path::from(object)).await?);
        let mut n = 0u64;
        while let Some(c) = s.next().await {
            let c = c?;
            n += c.len() as u64;
            f.write_all(&c).await.map_err(io)?;
        }
        f.flush().await.map_err(io)?;
        Ok(n)
    }

    /// Stores a local file's bytes as they are under `object` (a restore).
    pub async fn put_raw_file(&self, object: &str, src: &FsPath) -> Result<(), BlobError> {
        use tokio::io::AsyncReadExt;
        let io = |source| BlobError::Io {
            path: src.display().to_string(),
            source,
        };
        let mut f = tokio::fs::File::open(src).await.map_err(io)?;
        let upload = self.store.put_multipart(&Path::from(object)).await?;
        let mut w = WriteMultipart::new(upload);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let k = match f.read(&mut buf).await {
                Ok(k) => k,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(io(e));
                }
            };
            if k == 0 {
                break;
            }
            w.wait_for_capacity(4).await?;
            w.write(&buf[..k]);
        }
        w.finish().await?;
        Ok(())
    }

    /// Raw object bytes (tests of tampering and of what is at rest).
    pub async fn raw(&self, object: &str) -> Result<Bytes, BlobError> {
        Ok(self.store.get(&Path::from(object)).await?.bytes().await?)
    }

    /// Overwrites raw object bytes (tests of tampering).
    pub async fn put_raw(&self, object: &str, data: Bytes) -> Result<(), BlobError> {
        self.store.put(&Path::from(object), data.into()).await?;
        Ok(())
    }
}
