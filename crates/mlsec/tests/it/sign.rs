//! `mlsec keygen`, `sign`, `verify`, `hash` and the conformance adapter, end to end.

use std::path::Path;

use super::{assert_valid, bin, code, repo, stderr, stdout};

fn copy_model(to: &Path) {
    let from = repo().join("fixtures/signing/model");
    for e in walk(&from) {
        let rel = e.strip_prefix(&from).unwrap();
        let dest = to.join(rel);
        if e.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&e, &dest).unwrap();
        }
    }
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

/// `mlsec verify model --key k.pub --signature model.sig` plus `extra`, in `dir`.
fn verify_k(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify",
        "model",
        "--key",
        "k.pub",
        "--signature",
        "model.sig",
    ];
    args.extend_from_slice(extra);
    mlsec(dir, &args)
}

fn mlsec(dir: &Path, args: &[&str]) -> std::process::Output {
    bin()
        .current_dir(dir)
        .env_remove("MLSEC_KEY_PASSWORD")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keygen_sign_verify_tamper() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_model(&d.join("model"));
    let o = mlsec(d, &["keygen", "--curve", "p384", "--out", "k"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(d.join("k.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    // Refuses to overwrite a key.
    assert_eq!(code(&mlsec(d, &["keygen", "--out", "k"])), 2);

    let o = mlsec(
        d,
        &[
            "sign",
            "model",
            "--key",
            "k.key",
            "--signature",
            "model.sig",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("signed model (5 file(s)"),
        "{}",
        stdout(&o)
    );

    let o = verify_k(d, &["--format", "json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "verified");
    assert_eq!(v["signer"]["method"], "key");
    assert_eq!(v["signer"]["curve"], "P-384");
    assert_eq!(v["resources"].as_array().unwrap().len(), 5);

    std::fs::write(d.join("model/config.json"), "{}").unwrap();
    let o = verify_k(d, &[]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("changed: config.json"),
        "{}",
        stderr(&o)
    );

    let o = verify_k(d, &["-f", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "mismatch");
    assert_eq!(v["diff"]["changed"][0], "config.json");

    // A damaged signature file: could not verify (2), distinct from invalid (1).
    std::fs::write(d.join("broken.sig"), "{\"mediaType\": 1}").unwrap();
    let o = mlsec(
        d,
        &[
            "verify",
            "model",
            "--key",
            "k.pub",
            "--signature",
            "broken.sig",
        ],
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("could not verify"), "{}", stderr(&o));
}

#[test]
fn a_signature_inside_the_model_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_model(&d.join("model"));
    assert_eq!(code(&mlsec(d, &["keygen", "--out", "k"])), 0);
    let o = mlsec(
        d,
        &[
            "sign",
            "model",
            "--key",
            "k.key",
            "--signature",
            "model/model.sig",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = mlsec(
        d,
        &[
            "verify",
            "model",
            "--key",
            "k.pub",
            "--signature",
            "model/model.sig",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn encrypted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_model(&d.join("model"));
    std::fs::write(d.join("pw"), "a long passphrase\n").unwrap();
    let o = mlsec(
        d,
        &["keygen", "--out", "k", "--encrypt", "--password-file", "pw"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(d.join("k.key"))
            .unwrap()
            .contains("ENCRYPTED PRIVATE KEY")
    );
    let o = mlsec(d, &["sign", "model", "--key", "k.key"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("encrypted"), "{}", stderr(&o));
    let o = bin()
        .current_dir(d)
        .env("MLSEC_KEY_PASSWORD", "a long passphrase")
        .args(["sign", "model", "--key", "k.key"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn incremental_signing_rehashes_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_model(&d.join("model"));
    assert_eq!(code(&mlsec(d, &["keygen", "--out", "k"])), 0);
    let sign = |d: &Path| {
        mlsec(
            d,
            &[
                "sign",
                "model",
                "--key",
                "k.key",
                "--cache",
                "digests.json",
                "--force",
                "-f",
                "json",
            ],
        )
    };
    let first: serde_json::Value = serde_json::from_str(&stdout(&sign(d))).unwrap();
    assert_eq!(first["stats"]["cache_hits"], 0);
    let second: serde_json::Value = serde_json::from_str(&stdout(&sign(d))).unwrap();
    assert_eq!(second["stats"]["cache_hits"], 5);
    assert_eq!(second["stats"]["bytes_hashed"], 0);
    assert_eq!(first["root_digest"], second["root_digest"]);
    // Same size, new content: the identity (ctime at least) moves, so it is hashed again.
    let weights = d.join("model/model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&weights, bytes).unwrap();
    let third: serde_json::Value = serde_json::from_str(&stdout(&sign(d))).unwrap();
    assert_eq!(third["stats"]["cache_hits"], 4);
    assert_ne!(third["root_digest"], second["root_digest"]);
    // Verification with the same cache agrees with the new signature.
    let o = mlsec(
        d,
        &[
            "verify",
            "model",
            "--key",
            "k.pub",
            "--cache",
            "digests.json",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn hash_prints_the_manifest() {
    let o = bin()
        .args(["hash", "fixtures/signing/model", "--shard-size", "1000"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  model.safetensors:0:1000\n"), "{out}");
    assert!(
        out.contains("(root, sha256 over the sha256-sharded-1000 digests above)"),
        "{out}"
    );
    let o = bin()
        .args(["hash", "fixtures/signing/model", "-f", "json"])
        .output()
        .unwrap();
    let st: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(st["predicateType"], "https://model_signing/signature/v1.0");
    let o = bin()
        .args([
            "hash",
            "fixtures/signing/model",
            "--hash",
            "blake3",
            "--shard-size",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 2);
}

#[test]
fn conformance_adapter_verifies_model_signing_bundles() {
    let root = repo().join("fixtures/signing");
    let p = |s: &str| root.join(s).display().to_string();
    let verify_model = |method: &str, bundle: &str, flag: &str, material: &str| {
        let args = [
            "verify-model",
            "--method",
            method,
            "--model-path",
            &p("model"),
            "--bundle",
            &p(bundle),
            flag,
            &p(material),
        ];
        code(&bin().args(args).output().unwrap())
    };
    assert_eq!(
        verify_model(
            "key",
            "v1.1.1/key-p256.sig",
            "--public-key",
            "keys/p256.pub"
        ),
        0
    );
    assert_eq!(
        verify_model(
            "certificate",
            "v1.1.1/certificate.sig",
            "--cert-chain",
            "certs/root.pem"
        ),
        0
    );
    assert_ne!(
        verify_model(
            "certificate",
            "v1.1.1/certificate.sig",
            "--cert-chain",
            "certs/other-root.pem"
        ),
        0
    );
    assert_ne!(
        verify_model(
            "key",
            "v1.1.1/key-p256.sig",
            "--public-key",
            "keys/p384.pub"
        ),
        0
    );

    // Unsigned extra files: refused, unless --ignore-unsigned-files.
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    std::fs::write(dir.path().join("extra.bin"), "x").unwrap();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "verify-model".to_owned(),
            "--method".into(),
            "key".into(),
            "--model-path".into(),
            dir.path().display().to_string(),
            "--bundle".into(),
            p("v1.1.1/key-p256.sig"),
            "--public-key".into(),
            p("keys/p256.pub"),
        ];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    assert_ne!(code(&bin().args(args(&[])).output().unwrap()), 0);
    assert_eq!(
        code(
            &bin()
                .args(args(&["--ignore-unsigned-files"]))
                .output()
                .unwrap()
        ),
        0
    );

    // sign-model, then verify-model, in key mode.
    let key_dir = tempfile::tempdir().unwrap();
    assert_eq!(code(&mlsec(key_dir.path(), &["keygen", "--out", "k"])), 0);
    let k = |s: &str| key_dir.path().join(s).display().to_string();
    let o = bin()
        .args([
            "sign-model",
            "--method",
            "key",
            "--model-path",
            &dir.path().display().to_string(),
            "--output-bundle",
            &k("b.sig"),
            "--private-key",
            &k("k.key"),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = bin()
        .args([
            "verify-model",
            "--method",
            "key",
            "--model-path",
            &dir.path().display().to_string(),
            "--bundle",
            &k("b.sig"),
            "--public-key",
            &k("k.pub"),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn verification_records_follow_the_schema() {
    let schema = std::fs::read_to_string(repo().join("docs/verify-result.schema.json")).unwrap();
    let root = repo().join("fixtures/signing");
    let p = |s: &str| root.join(s).display().to_string();
    let dir = tempfile::tempdir().unwrap();
    copy_model(dir.path());
    let model = dir.path().display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--key",
                &p("keys/p256.pub"),
                "--signature",
                &p("v1.1.1/key-p256.sig"),
            ],
            "verified",
        ),
        (
            &[
                "--cert-chain",
                &p("certs/root.pem"),
                "--signature",
                &p("v1.1.1/certificate.sig"),
            ],
            "verified",
        ),
        (
            &[
                "--cert-chain",
                &p("certs/root.pem"),
                "--signature",
                &p("v1.1.1/certificate-expired.sig"),
            ],
            "invalid",
        ),
        (
            &[
                "--key",
                &p("keys/p256.pub"),
                "--signature",
                &p("certs/root.pem"),
            ],
            "error",
        ),
    ];
    for (args, status) in cases {
        let o = bin()
            .args(["verify", &model, "-f", "json"])
            .args(args)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["status"], status, "{v}");
        assert_valid(&schema, &v);
    }
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let o = bin()
        .args([
            "verify",
            &model,
            "-f",
            "json",
            "--key",
            &p("keys/p256.pub"),
            "--signature",
            &p("v1.1.1/key-p256.sig"),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "mismatch");
    assert_valid(&schema, &v);
}

#[test]
fn the_signature_goes_beside_the_model_and_is_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("models")).unwrap();
    copy_model(&d.join("models/bert"));
    copy_model(&d.join("models/gpt"));
    assert_eq!(code(&mlsec(d, &["keygen", "--out", "k"])), 0);
    // Two models signed from one directory get two signatures, each beside its model.
    for m in ["models/bert/", "models/gpt"] {
        let o = mlsec(d, &["sign", m, "--key", "k.key"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
    }
    assert!(d.join("models/bert.sig").is_file());
    assert!(d.join("models/gpt.sig").is_file());
    assert!(!d.join("model.sig").exists());
    // A second signing refuses to replace the first, unless told to.
    let before = std::fs::read(d.join("models/bert.sig")).unwrap();
    let o = mlsec(d, &["sign", "models/bert", "--key", "k.key"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("already exists") && stderr(&o).contains("--force"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.join("models/bert.sig")).unwrap(), before);
    let o = mlsec(d, &["sign", "models/bert", "--key", "k.key", "--force"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // verify finds the signature beside the model by default.
    let o = mlsec(d, &["verify", "models/gpt", "--key", "k.pub"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A model signed as `.` from inside it is named after its directory.
    let o = mlsec(
        &d.join("models/gpt"),
        &["sign", ".", "--key", "../../k.key", "--force"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn verify_reports_a_missing_signature_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_model(&d.join("model"));
    assert_eq!(code(&mlsec(d, &["keygen", "--out", "k"])), 0);
    for extra in [&["--signature", "nowhere.sig"][..], &[][..]] {
        let mut args = vec!["verify", "model", "--key", "k.pub", "--format", "json"];
        args.extend_from_slice(extra);
        let o = mlsec(d, &args);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["status"], "error");
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains("nowhere.sig") || err.contains("no signature found"),
            "{err}"
        );
        assert!(!stderr(&o).is_empty());
    }
    // A key file that cannot be read is reported the same way.
    let o = mlsec(
        d,
        &[
            "verify",
            "model",
            "--key",
            "missing.pub",
            "--signature",
            "x.sig",
            "-f",
            "json",
        ],
    );
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["status"], "error");
}
