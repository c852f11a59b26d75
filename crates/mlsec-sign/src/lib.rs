//! Model signing and verification, wire-compatible with OpenSSF model-signing.
//!
//! A signature is a Sigstore bundle (v0.3) holding a DSSE envelope, holding an in-toto statement
//! whose predicate lists a digest per file (or per file shard). [`sign`] builds one from a model
//! directory and a key; [`verify`] checks one against a public key or explicit trust anchors, then
//! re-hashes the model. The signature is checked before any model byte is read.

mod bundle;
mod cache;
pub mod hex;
mod keys;
mod manifest;
mod model;
pub mod x509;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};

pub use bundle::{
    BUNDLE_MEDIA_TYPE, Bundle, IN_TOTO_PAYLOAD_TYPE, MAX_BUNDLE_BYTES, Material, PREDICATE_TYPE,
    PREDICATE_TYPE_LEGACY, Statement, pae, pae_legacy, parse_statement, statement_json,
};
pub use cache::{Cache, FileIdentity};
pub use keys::{Curve, PrivateKey, PublicKey};
pub use manifest::{
    Diff, HashAlgorithm, MAX_RESOURCES, Manifest, Method, Resource, ResourceKey, Serialization,
    check_name,
};
pub use model::{
    FileEntry, GIT_PATHS, Ignored, WalkOptions, list_files, model_name, normalize_relative,
};

/// An error that names what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    interrupted: bool,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            interrupted: false,
        }
    }

    pub(crate) fn io(path: &Path, e: &std::io::Error) -> Self {
        Self::new(format!("{}: {e}", path.display()))
    }

    pub(crate) fn interrupted() -> Self {
        Self {
            message: "stopped after the first mismatch".into(),
            interrupted: true,
        }
    }

    pub(crate) fn is_interrupted(&self) -> bool {
        self.interrupted
    }
}

/// Extensions of files that hold weights or executable model content: a signed `ignore_paths`
/// entry that leaves one of these out of the signature is worth a warning.
pub const WEIGHT_EXTENSIONS: &[&str] = &[
    "safetensors",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "pkl",
    "pickle",
    "joblib",
    "gguf",
    "ggml",
    "onnx",
    "h5",
    "hdf5",
    "keras",
    "pb",
    "tflite",
    "msgpack",
    "npz",
    "npy",
    "mlmodel",
    "params",
    "model",
    "engine",
    "plan",
    "mar",
    "nemo",
];

fn looks_like_weights(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    base.rsplit_once('.')
        .is_some_and(|(_, ext)| WEIGHT_EXTENSIONS.contains(&ext))
}

/// How the model is cut and hashed, and what is left out.
#[derive(Debug, Clone)]
pub struct HashOptions {
    pub method: Method,
    pub hash: HashAlgorithm,
    pub allow_symlinks: bool,
    /// Leave out `.git`, `.gitattributes`, `.github` and `.gitignore` at the top level.
    pub ignore_git: bool,
    /// Paths to leave out: absolute, or relative to the current directory (as model-signing's CLI
    /// takes them), or relative to the model. Those outside the model are dropped.
    pub ignore_paths: Vec<PathBuf>,
}

impl Default for HashOptions {
    fn default() -> Self {
        Self {
            method: Method::Files,
            hash: HashAlgorithm::Sha256,
            allow_symlinks: false,
            ignore_git: true,
            ignore_paths: Vec::new(),
        }
    }
}

/// Turns user-given ignore paths into paths relative to the model root.
pub fn resolve_ignore_paths(model: &Path, paths: &[PathBuf]) -> Vec<String> {
    let root = model.canonicalize().unwrap_or_else(|_| model.to_path_buf());
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut out = Vec::new();
    for p in paths {
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            cwd.join(p)
        };
        // The path may not exist (a signature about to be written): resolve its parent.
        let resolved = abs.canonicalize().ok().or_else(|| {
            abs.parent()
                .and_then(|d| d.canonicalize().ok())
                .and_then(|d| abs.file_name().map(|f| d.join(f)))
        });
        let rel = resolved
            .as_deref()
            .and_then(|r| r.strip_prefix(&root).ok())
            .map(Path::to_path_buf);
        let rel = rel.or_else(|| (!p.is_absolute() && model.join(p).exists()).then(|| p.clone()));
        if let Some(r) = rel.and_then(|r| r.to_str().and_then(normalize_relative)) {
            out.push(r);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn ignore_list(model: &Path, opts: &HashOptions) -> Vec<String> {
    let mut list = resolve_ignore_paths(model, &opts.ignore_paths);
    if opts.ignore_git {
        list.extend(GIT_PATHS.iter().map(|s| (*s).to_owned()));
    }
    list.sort();
    list.dedup();
    list
}

/// Measures a model: the manifest [`sign`] would sign.
pub fn hash(
    model: &Path,
    opts: &HashOptions,
    cache: Option<&Cache>,
) -> Result<(Manifest, HashStats), Error> {
    let ignore = ignore_list(model, opts);
    let is_dir = std::fs::metadata(model)
        .map_err(|e| Error::io(model, &e))?
        .is_dir();
    let method = if opts.hash == HashAlgorithm::Blake3 {
        Method::Files
    } else {
        opts.method
    };
    let serialization = Serialization {
        method,
        hash: opts.hash,
        allow_symlinks: opts.allow_symlinks,
        ignore_paths: if is_dir { ignore.clone() } else { Vec::new() },
    };
    let (files, _) = list_files(
        model,
        &WalkOptions {
            allow_symlinks: opts.allow_symlinks,
            ignore,
            only: None,
        },
    )?;
    if files.is_empty() {
        return Err(Error::new(format!(
            "{}: no files to sign (everything is empty or ignored)",
            model.display()
        )));
    }
    let hashed = model::hash_files(
        &files,
        &model::HashJob {
            serialization: &serialization,
            expected: None,
            fail_fast: false,
            cache,
        },
    )?;
    if hashed.resources.is_empty() {
        return Err(Error::new(format!(
            "{}: every file is empty, and shard serialization leaves empty files out: nothing to sign",
            model.display()
        )));
    }
    let stats = HashStats {
        files: files.len(),
        bytes_hashed: hashed.bytes_hashed,
        cache_hits: hashed.cache_hits,
    };
    Ok((
        Manifest::new(model_name(model), serialization, hashed.resources)?,
        stats,
    ))
}

/// Work done while hashing.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct HashStats {
    pub files: usize,
    pub bytes_hashed: u64,
    pub cache_hits: usize,
}

/// Who signs.
pub enum Signer<'a> {
    Key(&'a PrivateKey),
    /// `chain` holds the signing certificate first, then the certificates up to (optionally) the root.
    Certificate {
        key: &'a PrivateKey,
        chain: Vec<x509::Cert>,
    },
}

/// A signature, ready to write.
#[derive(Debug)]
pub struct Signed {
    pub bundle: Bundle,
    pub manifest: Manifest,
    pub stats: HashStats,
}

/// Hashes `model` and signs the manifest.
pub fn sign(
    model: &Path,
    opts: &HashOptions,
    signer: &Signer<'_>,
    cache: Option<&Cache>,
) -> Result<Signed, Error> {
    // Check the key material before spending time on hashing.
    let (key, material) = match signer {
        Signer::Key(k) => (
            *k,
            Material::PublicKey {
                hint: Some(k.public_key().hint()),
                raw_pem: None,
                key_details: None,
            },
        ),
        Signer::Certificate { key, chain } => {
            let leaf = chain
                .first()
                .ok_or_else(|| Error::new("certificate signing needs the signing certificate"))?;
            let cert_key = leaf.public_key().map_err(|e| {
                Error::new(format!("signing certificate `{}`: {e}", leaf.subject()))
            })?;
            if cert_key != key.public_key() {
                return Err(Error::new(format!(
                    "the signing certificate `{}` is not for this private key",
                    leaf.subject()
                )));
            }
            (
                *key,
                Material::CertificateChain(chain.iter().map(|c| c.der.clone()).collect()),
            )
        }
    };
    let (manifest, stats) = hash(model, opts, cache)?;
    let payload = statement_json(&manifest);
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload))?;
    let bundle = Bundle {
        media_type: BUNDLE_MEDIA_TYPE.into(),
        material,
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        payload,
        signature,
        tlog_entries: 0,
    };
    Ok(Signed {
        bundle,
        manifest,
        stats,
    })
}

/// What a signature is checked against. There is no implicit trust.
pub enum Trust {
    Key(PublicKey),
    /// Trust anchors: a chain must end at one of these.
    Anchors(Vec<x509::Cert>),
}

/// What a signed `ignore_paths` leaving weight files unsigned leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IgnoredWeights {
    #[default]
    Warn,
    Refuse,
}

/// Verification settings.
pub struct VerifyOptions {
    /// Extra paths the verifier leaves out (same forms as [`HashOptions::ignore_paths`]).
    pub ignore_paths: Vec<PathBuf>,
    pub ignore_git: bool,
    pub allow_symlinks: bool,
    /// Files on disk that the signature does not list are not an error.
    pub ignore_unsigned_files: bool,
    /// Stop hashing at the first difference.
    pub fail_fast: bool,
    pub ignored_weights: IgnoredWeights,
    /// Certificates are checked at this time.
    pub now: SystemTime,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            ignore_paths: Vec::new(),
            ignore_git: true,
            allow_symlinks: false,
            ignore_unsigned_files: false,
            fail_fast: false,
            ignored_weights: IgnoredWeights::Warn,
            now: SystemTime::now(),
        }
    }
}

/// Why verification did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Nothing was decided about the model: the bundle or an input could not be read or checked.
    #[error("could not verify: {0}")]
    CouldNotVerify(String),
    /// The signature is not valid for the trusted key or anchors (or the signer is not trusted).
    #[error("signature invalid: {0}")]
    SignatureInvalid(String),
    /// The signature is valid but policy refuses it.
    #[error("refused by policy: {0}")]
    Refused(String),
    /// The signature is valid but the model differs from what was signed.
    #[error("model does not match its signature: {diff}{}", if *.stopped_early { " (stopped at the first difference)" } else { "" })]
    Mismatch { diff: Diff, stopped_early: bool },
}

impl VerifyError {
    /// A short stable word for reports: `error`, `invalid`, `refused` or `mismatch`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::CouldNotVerify(_) => "error",
            Self::SignatureInvalid(_) => "invalid",
            Self::Refused(_) => "refused",
            Self::Mismatch { .. } => "mismatch",
        }
    }
}

/// Who signed, as established.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum SignerIdentity {
    Key {
        curve: String,
        key_hint: String,
    },
    Certificate {
        subject: String,
        issuer: String,
        san: Vec<String>,
        fingerprint_sha256: String,
        curve: String,
        chain: Vec<String>,
        anchor: String,
    },
}

/// A successful verification: what was checked, by which key or identity, and which files.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub status: &'static str,
    pub model: String,
    pub media_type: String,
    pub predicate_type: String,
    pub signer: SignerIdentity,
    pub serialization: Value,
    pub root_digest: String,
    pub resources: Vec<Value>,
    pub ignored: Vec<Value>,
    /// Old formats this bundle used (accepted for compatibility).
    pub legacy: Vec<String>,
    /// How verification differed from the defaults, and why.
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
    pub stats: HashStats,
}

impl fmt::Display for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match &self.signer {
            SignerIdentity::Key { curve, key_hint } => {
                format!("{curve} key {}", &key_hint[..16.min(key_hint.len())])
            }
            SignerIdentity::Certificate {
                subject, anchor, ..
            } => format!("certificate `{subject}` (anchor `{anchor}`)"),
        };
        write!(
            f,
            "verified: {} ({} resource(s), {} file(s)) signed by {who}",
            self.model,
            self.resources.len(),
            self.stats.files
        )
    }
}

fn check_dsse(
    key: &PublicKey,
    bundle: &Bundle,
    legacy: &mut Vec<String>,
) -> Result<(), VerifyError> {
    if key.verify(
        &pae(&bundle.payload_type, &bundle.payload),
        &bundle.signature,
    ) {
        return Ok(());
    }
    // model-signing 0.2 signed a mis-encoded PAE, with SHA-256 whatever the curve.
    let old = pae_legacy(&bundle.payload_type, &bundle.payload);
    if key.verify(&old, &bundle.signature)
        || key.verify_prehash(&Curve::P256.digest(&old), &bundle.signature)
    {
        legacy.push("DSSE pre-authentication encoding of model-signing 0.2".into());
        return Ok(());
    }
    Err(VerifyError::SignatureInvalid(
        "the DSSE signature does not verify: the bundle was altered or signed by another key"
            .into(),
    ))
}

fn authenticate(
    bundle: &Bundle,
    trust: &Trust,
    now: SystemTime,
    legacy: &mut Vec<String>,
) -> Result<SignerIdentity, VerifyError> {
    let cnv = VerifyError::CouldNotVerify;
    match (trust, &bundle.material) {
        (Trust::Key(key), Material::PublicKey { hint, raw_pem, .. }) => {
            if let Some(h) = hint {
                if !h.eq_ignore_ascii_case(&key.hint()) {
                    return Err(VerifyError::SignatureInvalid(format!("signed by another key: the bundle names key {h}, the given key is {}", key.hint())));
                }
            } else if let Some(pem) = raw_pem {
                legacy.push("public key embedded in the bundle (model-signing before 1.1)".into());
                // The Sigstore spec says DER (SubjectPublicKeyInfo); model-signing 1.0 wrote PEM.
                let embedded = if pem.first() == Some(&0x30) {
                    PublicKey::from_spki_der(pem)
                } else {
                    PublicKey::from_pem(&String::from_utf8_lossy(pem))
                }
                .map_err(|e| cnv(format!("bundle.verificationMaterial.publicKey.rawBytes: {e}")))?;
                if &embedded != key {
                    return Err(VerifyError::SignatureInvalid("signed by another key: the key embedded in the bundle is not the given key".into()));
                }
            } else {
                legacy.push("no key hint in the bundle (model-signing before 1.1)".into());
            }
            check_dsse(key, bundle, legacy)?;
            Ok(SignerIdentity::Key { curve: key.curve().to_string(), key_hint: key.hint() })
        }
        (Trust::Anchors(anchors), Material::CertificateChain(chain)) => {
            let certs: Vec<x509::Cert> = chain.iter().enumerate().map(|(i, d)| x509::Cert::from_der(d).map_err(|e| cnv(format!("bundle certificate {i}: {e}")))).collect::<Result<_, _>>()?;
            let (leaf, rest) = certs.split_first().expect("bundle parser refuses an empty chain");
            let valid = x509::verify_chain(leaf, rest, anchors, now).map_err(|e| match e {
                x509::ChainError::Untrusted(m) => VerifyError::SignatureInvalid(format!("untrusted signer: {m}")),
                x509::ChainError::Unsupported(m) | x509::ChainError::Malformed(m) => cnv(m),
            })?;
            let key = leaf.public_key().map_err(|e| cnv(format!("signing certificate `{}`: {e}", leaf.subject())))?;
            check_dsse(&key, bundle, legacy)?;
            Ok(SignerIdentity::Certificate {
                subject: leaf.subject(),
                issuer: leaf.issuer(),
                san: leaf.san(),
                fingerprint_sha256: leaf.fingerprint(),
                curve: key.curve().to_string(),
                chain: valid.path.iter().map(x509::Cert::subject).collect(),
                anchor: valid.path.last().map(x509::Cert::subject).unwrap_or_default(),
            })
        }
        (Trust::Key(_), Material::CertificateChain(_)) => Err(cnv("the bundle was signed with a certificate: verify it with trust anchors (--cert-chain), not a public key".into())),
        (Trust::Anchors(_), Material::PublicKey { .. }) => Err(cnv("the bundle was signed with a bare key: verify it with that public key (--key), not certificates".into())),
        (_, Material::Certificate(_)) => Err(cnv("keyless Sigstore bundles need the transparency log, which offline verification cannot reach".into())),
    }
}

/// Checks `bundle_bytes` against `trust`, then the model against the signed manifest.
pub fn verify(
    model: &Path,
    bundle_bytes: &[u8],
    trust: &Trust,
    opts: &VerifyOptions,
    cache: Option<&Cache>,
) -> Result<Verified, VerifyError> {
    let cnv = VerifyError::CouldNotVerify;
    let bundle = Bundle::parse(bundle_bytes).map_err(|e| cnv(e.to_string()))?;
    let mut legacy = Vec::new();
    let mut notes = Vec::new();
    let mut warnings = Vec::new();
    let signer = authenticate(&bundle, trust, opts.now, &mut legacy)?;
    if bundle.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(cnv(format!(
            "bundle.dsseEnvelope.payloadType: `{}` is not an in-toto statement",
            bundle.payload_type
        )));
    }
    let statement =
        parse_statement(&bundle.payload).map_err(|e| cnv(format!("signed statement: {e}")))?;
    if statement.predicate_type == PREDICATE_TYPE_LEGACY {
        legacy.push(format!(
            "predicate {PREDICATE_TYPE_LEGACY} (model-signing 0.2)"
        ));
    }
    let expected = &statement.manifest;
    let ser = &expected.serialization;
    let meta = std::fs::metadata(model).map_err(|e| cnv(format!("{}: {e}", model.display())))?;
    let single_file = expected.resources.iter().all(|r| r.key.path == ".");
    if meta.is_file() != single_file {
        return Err(VerifyError::Mismatch {
            diff: Diff {
                changed: vec![format!(
                    "{} is a {} but the signature covers a {}",
                    model.display(),
                    if meta.is_file() { "file" } else { "directory" },
                    if single_file {
                        "single file"
                    } else {
                        "directory"
                    }
                )],
                ..Diff::default()
            },
            stopped_early: false,
        });
    }

    // What to leave out: the verifier's own choices, then what the signer recorded.
    // The default git paths are left out unless the signer signed them (model-signing before
    // 1.1 did): a file that was signed is checked, not reported missing.
    let mut own = resolve_ignore_paths(model, &opts.ignore_paths);
    if opts.ignore_git {
        for g in GIT_PATHS {
            let signed = expected.resources.iter().any(|r| {
                r.key.path == g
                    || r.key
                        .path
                        .strip_prefix(g)
                        .is_some_and(|rest| rest.starts_with('/'))
            });
            if signed {
                notes.push(format!(
                    "`{g}` is signed, so it is checked although git paths are left out by default"
                ));
            } else {
                own.push(g.to_owned());
            }
        }
    }
    let mut ignore = own.clone();
    let mut signed_rules = Vec::new();
    for p in &ser.ignore_paths {
        match normalize_relative(p) {
            Some(n) => {
                if !own.contains(&n) {
                    signed_rules.push(n.clone());
                }
                ignore.push(n);
            }
            None => warnings.push(format!("signed ignore path `{p}` does not name anything inside the model and is not applied")),
        }
    }
    let only = opts
        .ignore_unsigned_files
        .then(|| expected.paths().into_iter().map(str::to_owned).collect());
    let allow_symlinks = opts.allow_symlinks || ser.allow_symlinks;
    let (files, ignored) = list_files(
        model,
        &WalkOptions {
            allow_symlinks,
            ignore,
            only,
        },
    )
    .map_err(|e| cnv(e.to_string()))?;

    let weights: Vec<&Ignored> = ignored
        .iter()
        .filter(|i| signed_rules.contains(&i.rule) && looks_like_weights(&i.name))
        .collect();
    if !weights.is_empty() {
        let names = weights
            .iter()
            .map(|i| format!("{} (by `{}`)", i.name, i.rule))
            .collect::<Vec<_>>()
            .join(", ");
        let msg = format!("the signature's ignore_paths leave weight files unsigned: {names}");
        if opts.ignored_weights == IgnoredWeights::Refuse {
            return Err(VerifyError::Refused(msg));
        }
        warnings.push(msg);
    }

    let expected_map: HashMap<String, Vec<u8>> = expected
        .resources
        .iter()
        .map(|r| (r.key.to_string(), r.digest.clone()))
        .collect();
    let hashed = model::hash_files(
        &files,
        &model::HashJob {
            serialization: ser,
            expected: Some(&expected_map),
            fail_fast: opts.fail_fast,
            cache,
        },
    )
    .map_err(|e| cnv(e.to_string()))?;
    let actual: HashMap<String, &Vec<u8>> = hashed
        .resources
        .iter()
        .map(|r| (r.key.to_string(), &r.digest))
        .collect();
    let mut diff = Diff::default();
    for r in &expected.resources {
        let name = r.key.to_string();
        match actual.get(&name) {
            Some(d) if **d == r.digest => {}
            Some(_) => diff.changed.push(name),
            None if hashed.stopped_early => {}
            None => diff.missing.push(name),
        }
    }
    let mut added: Vec<String> = actual
        .keys()
        .filter(|k| !expected_map.contains_key(*k))
        .cloned()
        .collect();
    added.sort();
    diff.added = added;
    if !diff.is_empty() || hashed.stopped_early {
        return Err(VerifyError::Mismatch {
            diff,
            stopped_early: hashed.stopped_early,
        });
    }
    let stats = HashStats {
        files: files.len(),
        bytes_hashed: hashed.bytes_hashed,
        cache_hits: hashed.cache_hits,
    };
    Ok(Verified {
        status: "verified",
        model: model.display().to_string(),
        media_type: bundle.media_type.clone(),
        predicate_type: statement.predicate_type.clone(),
        signer,
        serialization: ser.to_json(),
        root_digest: hex::encode(&expected.root_digest()),
        resources: expected.resources.iter().map(|r| json!({"name": r.key.to_string(), "algorithm": r.algorithm, "digest": hex::encode(&r.digest)})).collect(),
        ignored: ignored.iter().map(|i| json!({"name": i.name, "rule": i.rule})).collect(),
        legacy,
        notes,
        warnings,
        stats,
    })
}
