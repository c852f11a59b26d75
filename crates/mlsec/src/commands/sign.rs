//! `mlsec keygen`, `sign`, `verify`, `hash`, and the OMS conformance adapter (`sign-model`,
//! `verify-model`). The work is in `mlsec-sign`; this module reads files and prints results.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use anyhow::{Context, bail};
use mlsec_sign::{
    Cache, Curve, HashAlgorithm, HashOptions, IgnoredWeights, Method, PrivateKey, PublicKey,
    Signer, Trust, VerifyError, VerifyOptions, x509,
};

use crate::args::{
    ConformanceMethod, CurveArg, HashArg, HashArgs, HashingArgs, KeygenArgs, PasswordArgs,
    ReportFormat, SignArgs, SignModelArgs, VerifyArgs, VerifyModelArgs,
};
use crate::{EXIT_ERROR, EXIT_FINDINGS};

const PASSWORD_ENV: &str = "MLSEC_KEY_PASSWORD";

fn set_jobs(jobs: Option<usize>) -> anyhow::Result<()> {
    if let Some(jobs) = jobs {
        rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .build_global()
            .context("could not start the worker pool")?;
    }
    Ok(())
}

fn password(args: &PasswordArgs) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(file) = &args.password_file {
        let text = fs_err::read_to_string(file)?;
        return Ok(Some(
            text.lines().next().unwrap_or_default().as_bytes().to_vec(),
        ));
    }
    Ok(std::env::var_os(PASSWORD_ENV).map(std::ffi::OsString::into_encoded_bytes))
}

fn read_private_key(path: &Path, pw: Option<&[u8]>) -> anyhow::Result<PrivateKey> {
    let text = fs_err::read_to_string(path)?;
    PrivateKey::from_pem(&text, pw).with_context(|| format!("{}", path.display()))
}

fn read_public_key(path: &Path) -> anyhow::Result<PublicKey> {
    let text = fs_err::read_to_string(path)?;
    PublicKey::from_pem(&text).with_context(|| format!("{}", path.display()))
}

fn read_certs(paths: &[PathBuf]) -> anyhow::Result<Vec<x509::Cert>> {
    let mut out = Vec::new();
    for p in paths {
        let text = fs_err::read_to_string(p)?;
        out.extend(
            x509::certs_from_pem(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        );
    }
    Ok(out)
}

fn open_cache(path: Option<&PathBuf>) -> anyhow::Result<Option<Cache>> {
    path.map(|p| Cache::open(p).map_err(anyhow::Error::from))
        .transpose()
}

fn hash_options(h: &HashingArgs, extra_ignore: &[PathBuf]) -> anyhow::Result<HashOptions> {
    let hash = match h.hash {
        HashArg::Sha256 => HashAlgorithm::Sha256,
        HashArg::Blake2b => HashAlgorithm::Blake2b,
        HashArg::Blake3 => HashAlgorithm::Blake3,
    };
    let method = match h.shard_size {
        None => Method::Files,
        Some(0) => bail!("--shard-size must be at least 1 byte"),
        Some(_) if hash == HashAlgorithm::Blake3 => bail!(
            "blake3 already hashes one file on every core; it is not sharded (drop --shard-size)"
        ),
        Some(shard_size) => Method::Shards { shard_size },
    };
    let mut ignore_paths = h.walk.ignore_paths.clone();
    ignore_paths.extend(extra_ignore.iter().cloned());
    Ok(HashOptions {
        method,
        hash,
        allow_symlinks: h.walk.allow_symlinks,
        ignore_git: !h.walk.no_ignore_git_paths,
        ignore_paths,
    })
}

fn write_private(path: &Path, text: &str, force: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| {
        format!(
            "{}: cannot create{}",
            path.display(),
            if force { "" } else { " (exists? pass --force)" }
        )
    })?;
    f.write_all(text.as_bytes())
        .with_context(|| path.display().to_string())
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let curve = match args.curve {
        CurveArg::P256 => Curve::P256,
        CurveArg::P384 => Curve::P384,
        CurveArg::P521 => Curve::P521,
    };
    let pw = if args.encrypt {
        Some(password(&args.password)?.with_context(|| {
            format!("--encrypt needs a password: --password-file FILE or {PASSWORD_ENV}")
        })?)
    } else {
        None
    };
    let key = PrivateKey::generate(curve);
    let private = key.to_pkcs8_pem(pw.as_deref())?;
    let public = key.public_key().to_pem();
    let (priv_path, pub_path) = (with_suffix(&args.out, "key"), with_suffix(&args.out, "pub"));
    if !args.force && pub_path.exists() {
        bail!(
            "{}: exists (pass --force to replace it)",
            pub_path.display()
        );
    }
    write_private(&priv_path, &private, args.force)?;
    fs_err::write(&pub_path, public)?;
    eprintln!(
        "wrote {} ({curve}{}) and {}",
        priv_path.display(),
        if args.encrypt { ", encrypted" } else { "" },
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_bundle(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // Write next to the target and rename, so a reader never sees half a signature.
    let tmp = with_suffix(path, "tmp");
    fs_err::write(&tmp, bytes)?;
    fs_err::rename(&tmp, path)?;
    Ok(())
}

/// `MODEL_PATH.sig` beside the model: `models/bert/` gives `models/bert.sig`, `w.safetensors`
/// gives `w.safetensors.sig`, and `.` is named after the directory it is.
fn signature_beside(model: &Path) -> anyhow::Result<PathBuf> {
    // Rebuilt from its components, the path loses a trailing `/`.
    let clean: PathBuf = model.components().collect();
    let named = if matches!(
        clean.components().next_back(),
        Some(std::path::Component::Normal(_))
    ) {
        clean
    } else {
        model
            .canonicalize()
            .with_context(|| format!("{}: cannot resolve the model path", model.display()))?
    };
    Ok(with_suffix(&named, "sig"))
}

pub fn sign(args: &SignArgs) -> anyhow::Result<ExitCode> {
    set_jobs(args.hashing.jobs)?;
    let signature = match &args.signature {
        Some(p) => p.clone(),
        None => signature_beside(&args.model)?,
    };
    if !args.force && fs_err::symlink_metadata(&signature).is_ok() {
        bail!(
            "{}: already exists; pass --force to replace it, or --signature to write elsewhere",
            signature.display()
        );
    }
    let pw = password(&args.password)?;
    let key = read_private_key(&args.key, pw.as_deref())?;
    let opts = hash_options(&args.hashing, std::slice::from_ref(&signature))?;
    let cache = open_cache(args.hashing.cache.as_ref())?;
    let signer = match &args.cert {
        None => Signer::Key(&key),
        Some(leaf) => {
            let mut chain = read_certs(std::slice::from_ref(leaf))?;
            chain.truncate(1);
            chain.extend(read_certs(&args.cert_chain)?);
            check_signing_cert(&chain[0])?;
            Signer::Certificate { key: &key, chain }
        }
    };
    let start = Instant::now();
    let signed = mlsec_sign::sign(&args.model, &opts, &signer, cache.as_ref())
        .with_context(|| format!("signing {}", args.model.display()))?;
    write_bundle(&signature, &signed.bundle.to_json())?;
    if let Some(c) = &cache {
        c.save()?;
    }
    let secs = start.elapsed().as_secs_f64();
    let s = signed.stats;
    match args.format {
        ReportFormat::Text => println!(
            "signed {} ({} file(s), {} resource(s), {:.1} MB hashed{} in {secs:.2} s) -> {}",
            args.model.display(),
            s.files,
            signed.manifest.resources.len(),
            s.bytes_hashed as f64 / 1e6,
            if s.cache_hits > 0 {
                format!(", {} from cache", s.cache_hits)
            } else {
                String::new()
            },
            signature.display()
        ),
        ReportFormat::Json => println!(
            "{}",
            serde_json::json!({
                "status": "signed",
                "model": args.model.display().to_string(),
                "signature": signature.display().to_string(),
                "root_digest": mlsec_sign::hex::encode(&signed.manifest.root_digest()),
                "serialization": signed.manifest.serialization.to_json(),
                "resources": signed.manifest.resources.len(),
                "stats": s,
            })
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// A certificate that no verifier will accept should not be used to sign.
fn check_signing_cert(leaf: &x509::Cert) -> anyhow::Result<()> {
    // The same checks verification makes, with the leaf as its own anchor.
    match x509::verify_chain(leaf, &[], std::slice::from_ref(leaf), SystemTime::now()) {
        Ok(_) => Ok(()),
        Err(e) => bail!("signing certificate: {e}"),
    }
}

/// The signature to check: the one named, else `MODEL_PATH.sig`, else `model.sig` here.
fn signature_to_check(args: &VerifyArgs) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.signature {
        return Ok(p.clone());
    }
    let beside = signature_beside(&args.model)?;
    let here = PathBuf::from("model.sig");
    for candidate in [&beside, &here] {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    bail!(
        "no signature found: looked for {} and {} (name one with --signature)",
        beside.display(),
        here.display()
    )
}

pub fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    set_jobs(args.jobs)?;
    // What has to be read before verifying: a failure here is reported like a failed
    // verification, in the format asked for (JSON included), with exit code 2.
    let prepared = (|| -> anyhow::Result<_> {
        let signature = signature_to_check(args)?;
        let trust = match &args.key {
            Some(k) => Trust::Key(read_public_key(k)?),
            None => Trust::Anchors(read_certs(&args.cert_chain)?),
        };
        let bundle = read_bundle(&signature)?;
        let cache = open_cache(args.cache.as_ref())?;
        Ok((signature, trust, bundle, cache))
    })();
    let (signature, trust, bundle, cache) = match prepared {
        Ok(p) => p,
        Err(e) if args.format == ReportFormat::Json => {
            let shown = args.signature.as_ref().map(|p| p.display().to_string());
            let value = serde_json::json!({
                "status": "error",
                "model": args.model.display().to_string(),
                "signature": shown,
                "error": format!("{e:#}"),
            });
            let mut out: Box<dyn Write> = match &args.output {
                Some(p) => Box::new(fs_err::File::create(p)?),
                None => Box::new(std::io::stdout().lock()),
            };
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            eprintln!("mlsec: error: {e:#}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
        Err(e) => return Err(e),
    };
    let mut ignore_paths = args.walk.ignore_paths.clone();
    ignore_paths.push(signature.clone());
    let opts = VerifyOptions {
        ignore_paths,
        ignore_git: !args.walk.no_ignore_git_paths,
        allow_symlinks: args.walk.allow_symlinks,
        ignore_unsigned_files: args.ignore_unsigned_files,
        fail_fast: args.fail_fast,
        ignored_weights: if args.refuse_ignored_weights {
            IgnoredWeights::Refuse
        } else {
            IgnoredWeights::Warn
        },
        now: SystemTime::now(),
    };
    let result = mlsec_sign::verify(&args.model, &bundle, &trust, &opts, cache.as_ref());
    if let (Some(c), Ok(_)) = (&cache, &result) {
        c.save()?;
    }
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(fs_err::File::create(p)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let code = match &result {
        Ok(_) => ExitCode::SUCCESS,
        Err(VerifyError::CouldNotVerify(_)) => ExitCode::from(EXIT_ERROR),
        Err(_) => ExitCode::from(EXIT_FINDINGS),
    };
    match (args.format, &result) {
        (ReportFormat::Json, Ok(v)) => {
            let mut value = serde_json::to_value(v)?;
            value["signature"] = signature.display().to_string().into();
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
        (ReportFormat::Json, Err(e)) => {
            let mut value = serde_json::json!({"status": e.status(), "model": args.model.display().to_string(), "signature": signature.display().to_string(), "error": e.to_string()});
            if let VerifyError::Mismatch {
                diff,
                stopped_early,
            } = e
            {
                value["diff"] = serde_json::to_value(diff)?;
                value["stopped_early"] = (*stopped_early).into();
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        }
        (ReportFormat::Text, Ok(v)) => {
            for w in &v.warnings {
                eprintln!("mlsec: warning: {w}");
            }
            for l in &v.legacy {
                eprintln!("mlsec: note: legacy bundle: {l}");
            }
            for n in &v.notes {
                eprintln!("mlsec: note: {n}");
            }
            writeln!(out, "{v}")?;
        }
        (ReportFormat::Text, Err(e)) => eprintln!("mlsec: {e}"),
    }
    Ok(code)
}

fn read_bundle(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = fs_err::metadata(path)?;
    if meta.len() > mlsec_sign::MAX_BUNDLE_BYTES {
        bail!(
            "{}: {} bytes, larger than any signature ({} allowed)",
            path.display(),
            meta.len(),
            mlsec_sign::MAX_BUNDLE_BYTES
        );
    }
    Ok(fs_err::read(path)?)
}

pub fn hash(args: &HashArgs) -> anyhow::Result<ExitCode> {
    set_jobs(args.hashing.jobs)?;
    let opts = hash_options(&args.hashing, &[])?;
    let cache = open_cache(args.hashing.cache.as_ref())?;
    let (manifest, _) = mlsec_sign::hash(&args.model, &opts, cache.as_ref())?;
    if let Some(c) = &cache {
        c.save()?;
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        ReportFormat::Json => out.write_all(&mlsec_sign::statement_json(&manifest))?,
        ReportFormat::Text => {
            for r in &manifest.resources {
                writeln!(out, "{}  {}", mlsec_sign::hex::encode(&r.digest), r.key)?;
            }
            writeln!(
                out,
                "{}  (root, sha256 over the {} digests above)",
                mlsec_sign::hex::encode(&manifest.root_digest()),
                manifest.serialization.resource_algorithm()
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn sign_model(args: &SignModelArgs) -> anyhow::Result<ExitCode> {
    let key_path = args
        .private_key
        .as_ref()
        .context("--private-key is required")?;
    let key = read_private_key(
        key_path,
        password(&PasswordArgs {
            password_file: None,
        })?
        .as_deref(),
    )?;
    let mut ignore_paths = args.ignore_paths.clone();
    ignore_paths.push(args.output_bundle.clone());
    let opts = HashOptions {
        ignore_paths,
        ..HashOptions::default()
    };
    let signer = match args.method {
        ConformanceMethod::Key => Signer::Key(&key),
        ConformanceMethod::Certificate => {
            let leaf = args
                .signing_cert
                .as_ref()
                .context("--signing-cert is required for --method certificate")?;
            let mut chain = read_certs(std::slice::from_ref(leaf))?;
            chain.truncate(1);
            chain.extend(read_certs(&args.cert_chain)?);
            Signer::Certificate { key: &key, chain }
        }
        ConformanceMethod::Sigstore => bail!(
            "keyless Sigstore signing needs Fulcio and Rekor, which this build does not reach"
        ),
    };
    let signed = mlsec_sign::sign(&args.model_path, &opts, &signer, None)?;
    write_bundle(&args.output_bundle, &signed.bundle.to_json())?;
    Ok(ExitCode::SUCCESS)
}

pub fn verify_model(args: &VerifyModelArgs) -> anyhow::Result<ExitCode> {
    let trust = match args.method {
        ConformanceMethod::Key => Trust::Key(read_public_key(
            args.public_key
                .as_ref()
                .context("--public-key is required for --method key")?,
        )?),
        ConformanceMethod::Certificate => Trust::Anchors(read_certs(&args.cert_chain)?),
        ConformanceMethod::Sigstore => bail!(
            "keyless Sigstore verification needs the transparency log, which this build does not reach"
        ),
    };
    let bundle = read_bundle(&args.bundle)?;
    let mut ignore_paths = args.ignore_paths.clone();
    ignore_paths.push(args.bundle.clone());
    let opts = VerifyOptions {
        ignore_paths,
        ignore_unsigned_files: args.ignore_unsigned_files,
        ..VerifyOptions::default()
    };
    match mlsec_sign::verify(&args.model_path, &bundle, &trust, &opts, None) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("mlsec: {e}");
            Ok(ExitCode::from(
                if matches!(e, VerifyError::CouldNotVerify(_)) {
                    EXIT_ERROR
                } else {
                    EXIT_FINDINGS
                },
            ))
        }
    }
}
