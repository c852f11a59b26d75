//! Hostile and broken input: every case fails with a clear, distinct error, never a panic and
//! never a silent pass.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mlsec_sign::{
    BUNDLE_MEDIA_TYPE, Bundle, Curve, HashOptions, IN_TOTO_PAYLOAD_TYPE, IgnoredWeights, Material,
    PrivateKey, PublicKey, Signer, Trust, VerifyError, VerifyOptions, pae,
};
use serde_json::{Value, json};

use crate::{bundle, fixtures, model, model_copy, public_key, verify};

/// A correctly signed bundle around any statement: the signature is valid, so only the
/// statement checks stand between it and the model.
fn signed_bundle(key: &PrivateKey, statement: &Value) -> Vec<u8> {
    let payload = serde_json::to_vec(statement).unwrap();
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload)).unwrap();
    Bundle {
        media_type: BUNDLE_MEDIA_TYPE.into(),
        material: Material::PublicKey {
            hint: Some(key.public_key().hint()),
            raw_pem: None,
            key_details: None,
        },
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        payload,
        signature,
        tlog_entries: 0,
    }
    .to_json()
}

fn statement(resources: &[(&str, &[u8])]) -> Value {
    let mut root = sha2::Sha256::default();
    let mut list = Vec::new();
    for (name, content) in resources {
        let d = <sha2::Sha256 as sha2::Digest>::digest(content);
        sha2::Digest::update(&mut root, d);
        list.push(
            json!({"name": name, "algorithm": "sha256", "digest": mlsec_sign::hex::encode(&d)}),
        );
    }
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "m", "digest": {"sha256": mlsec_sign::hex::encode(&sha2::Digest::finalize(root))}}],
        "predicateType": "https://model_signing/signature/v1.0",
        "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false}, "resources": list},
    })
}

fn could_not_verify(r: Result<mlsec_sign::Verified, VerifyError>, needle: &str) {
    match r {
        Err(VerifyError::CouldNotVerify(m)) => {
            assert!(m.contains(needle), "expected `{needle}` in: {m}");
        }
        other => panic!("expected could-not-verify with `{needle}`, got {other:?}"),
    }
}

#[test]
fn resource_names_that_leave_the_model_are_refused() {
    let key = PrivateKey::generate(Curve::P256);
    let trust = Trust::Key(key.public_key());
    for (name, needle) in [
        ("../outside.txt", "`..`"),
        ("/etc/hostname", "absolute"),
        ("a/../../x", "`..`"),
        ("", "empty"),
        ("a//b", "empty or `.`"),
    ] {
        let b = signed_bundle(&key, &statement(&[(name, b"x")]));
        could_not_verify(verify(&model(), &b, &trust), needle);
    }
}

#[test]
fn duplicate_and_empty_manifests_are_refused() {
    let key = PrivateKey::generate(Curve::P256);
    let trust = Trust::Key(key.public_key());
    let b = signed_bundle(
        &key,
        &statement(&[("config.json", b"a"), ("config.json", b"b")]),
    );
    could_not_verify(verify(&model(), &b, &trust), "listed twice");
    let b = signed_bundle(&key, &statement(&[]));
    could_not_verify(verify(&model(), &b, &trust), "covers no file");
}

#[test]
fn inconsistent_root_digest_is_refused() {
    let key = PrivateKey::generate(Curve::P256);
    let mut st = statement(&[("config.json", b"a")]);
    st["subject"][0]["digest"]["sha256"] = json!("00".repeat(32));
    could_not_verify(
        verify(
            &model(),
            &signed_bundle(&key, &st),
            &Trust::Key(key.public_key()),
        ),
        "inconsistent",
    );
}

#[test]
fn unknown_predicates_and_serializations_are_refused() {
    let key = PrivateKey::generate(Curve::P256);
    let trust = Trust::Key(key.public_key());
    let mut st = statement(&[("config.json", b"a")]);
    st["predicateType"] = json!("https://model_signing/DigestOfDigests/v0.1");
    could_not_verify(
        verify(&model(), &signed_bundle(&key, &st), &trust),
        "not a model signature",
    );
    let mut st = statement(&[("config.json", b"a")]);
    st["predicate"]["serialization"]["hash_type"] = json!("md5");
    could_not_verify(verify(&model(), &signed_bundle(&key, &st), &trust), "md5");
}

#[test]
fn tampering_names_the_file_that_changed_was_added_or_is_missing() {
    let trust = Trust::Key(public_key("p256.pub"));
    let sig = bundle("v1.1.1/key-p256.sig");
    let dir = model_copy();
    std::fs::write(dir.path().join("model.safetensors"), b"swapped weights").unwrap();
    std::fs::write(dir.path().join("extra.pkl"), b"added").unwrap();
    std::fs::remove_file(dir.path().join("tokenizer/vocab.txt")).unwrap();
    match verify(dir.path(), &sig, &trust) {
        Err(VerifyError::Mismatch {
            diff,
            stopped_early,
        }) => {
            assert_eq!(diff.changed, ["model.safetensors"]);
            assert_eq!(diff.added, ["extra.pkl"]);
            assert_eq!(diff.missing, ["tokenizer/vocab.txt"]);
            assert!(!stopped_early);
        }
        other => panic!("{other:?}"),
    }
    // Unsigned extra files can be tolerated on request; changes still fail.
    let opts = VerifyOptions {
        ignore_unsigned_files: true,
        ..VerifyOptions::default()
    };
    let e = mlsec_sign::verify(dir.path(), &sig, &trust, &opts, None).unwrap_err();
    assert!(!e.to_string().contains("extra.pkl"), "{e}");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn fail_fast_stops_at_a_difference() {
    let dir = model_copy();
    std::fs::write(dir.path().join("model.safetensors"), b"swapped").unwrap();
    let opts = VerifyOptions {
        fail_fast: true,
        ..VerifyOptions::default()
    };
    let e = mlsec_sign::verify(
        dir.path(),
        &bundle("v1.1.1/key-p256.sig"),
        &Trust::Key(public_key("p256.pub")),
        &opts,
        None,
    )
    .unwrap_err();
    assert_eq!(e.status(), "mismatch");
    assert!(e.to_string().contains("model.safetensors"), "{e}");
}

#[test]
fn altered_bundles_are_invalid_not_errors() {
    let trust = Trust::Key(public_key("p256.pub"));
    let original: Value = serde_json::from_slice(&bundle("v1.1.1/key-p256.sig")).unwrap();
    // Re-encode the payload with one digest changed: well formed, but not what was signed.
    let mut payload = STANDARD
        .decode(original["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let at = payload.windows(6).position(|w| w == b"digest").unwrap() + 12;
    payload[at] = if payload[at] == b'0' { b'1' } else { b'0' };
    let mut b = original.clone();
    b["dsseEnvelope"]["payload"] = json!(STANDARD.encode(&payload));
    match verify(&model(), &serde_json::to_vec(&b).unwrap(), &trust) {
        Err(VerifyError::SignatureInvalid(m)) => assert!(m.contains("does not verify"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A different key: the hint already says so.
    match verify(
        &model(),
        &bundle("v1.1.1/key-p256.sig"),
        &Trust::Key(public_key("p384.pub")),
    ) {
        Err(VerifyError::SignatureInvalid(m)) => assert!(m.contains("another key"), "{m}"),
        other => panic!("{other:?}"),
    }
    // No hint (as before 1.1), wrong key: the signature check catches it.
    let mut b = original.clone();
    b["verificationMaterial"]["publicKey"] = json!({});
    let key = PrivateKey::generate(Curve::P256);
    assert_eq!(
        verify(
            &model(),
            &serde_json::to_vec(&b).unwrap(),
            &Trust::Key(key.public_key())
        )
        .unwrap_err()
        .status(),
        "invalid"
    );
}

#[test]
fn malformed_bundles_could_not_be_verified() {
    let trust = Trust::Key(public_key("p256.pub"));
    let good: Value = serde_json::from_slice(&bundle("v1.1.1/key-p256.sig")).unwrap();
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "not JSON"),
        (b"[]".to_vec(), "not a JSON object"),
        (bundle("v1.1.1/key-p256.sig")[..200].to_vec(), "not JSON"),
    ];
    let mut edit = |f: &dyn Fn(&mut Value), needle: &'static str| {
        let mut b = good.clone();
        f(&mut b);
        cases.push((serde_json::to_vec(&b).unwrap(), needle));
    };
    edit(
        &|b| b["mediaType"] = json!("application/vnd.dev.sigstore.bundle+json;version=0.1"),
        "mediaType",
    );
    edit(
        &|b| b["dsseEnvelope"]["signatures"] = json!([]),
        "not signed",
    );
    edit(
        &|b| b["dsseEnvelope"]["payload"] = json!("%%%"),
        "not base64",
    );
    edit(
        &|b| b["dsseEnvelope"]["payloadType"] = json!("text/plain"),
        "payloadType",
    );
    edit(
        &|b| drop(b.as_object_mut().unwrap().remove("verificationMaterial")),
        "verificationMaterial",
    );
    edit(
        &|b| drop(b.as_object_mut().unwrap().remove("dsseEnvelope")),
        "dsseEnvelope",
    );
    for (bytes, needle) in cases {
        let r = verify(&model(), &bytes, &trust);
        // A wrong payloadType is only seen after the signature check, which it then fails.
        match r {
            Err(VerifyError::CouldNotVerify(m)) => {
                assert!(m.contains(needle), "expected `{needle}` in: {m}");
            }
            Err(VerifyError::SignatureInvalid(_)) if needle == "payloadType" => {}
            other => panic!("`{needle}`: {other:?}"),
        }
    }
}

#[test]
fn unsupported_key_types_are_named() {
    for (file, needle) in [("rsa2048.pub", "RSA"), ("secp256k1.pub", "secp256k1")] {
        let text = std::fs::read_to_string(fixtures().join("keys").join(file)).unwrap();
        let e = PublicKey::from_pem(&text).unwrap_err().to_string();
        assert!(
            e.contains("unsupported key type") && e.contains(needle),
            "{e}"
        );
    }
    // An Ed25519 private key, built here (PKCS#8 around 32 bytes).
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend([7u8; 32]);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(&der)
    );
    let e = PrivateKey::from_pem(&pem, None).unwrap_err().to_string();
    assert!(e.contains("unsupported key type: Ed25519"), "{e}");
    let e = PrivateKey::from_pem(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("CERTIFICATE"), "{e}");
}

#[cfg(unix)]
#[test]
fn symlinks_that_leave_the_model_are_refused() {
    let key = PrivateKey::generate(Curve::P256);
    let dir = model_copy();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("weights.bin")).unwrap();
    let e = mlsec_sign::sign(
        dir.path(),
        &HashOptions::default(),
        &Signer::Key(&key),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("symbolic link"), "{e}");
    let opts = HashOptions {
        allow_symlinks: true,
        ..HashOptions::default()
    };
    let e = mlsec_sign::sign(dir.path(), &opts, &Signer::Key(&key), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("leaves the model directory"), "{e}");
    // A link that stays inside is followed when allowed.
    std::fs::remove_file(dir.path().join("weights.bin")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("config.json"),
        dir.path().join("weights.bin"),
    )
    .unwrap();
    let signed = mlsec_sign::sign(dir.path(), &opts, &Signer::Key(&key), None).unwrap();
    assert!(
        signed
            .manifest
            .resources
            .iter()
            .any(|r| r.key.path == "weights.bin")
    );
    // And verification of a model with an escaping link is an error, not a pass.
    std::fs::remove_file(dir.path().join("weights.bin")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("weights.bin")).unwrap();
    let vopts = VerifyOptions {
        allow_symlinks: true,
        ..VerifyOptions::default()
    };
    let e = mlsec_sign::verify(
        dir.path(),
        &signed.bundle.to_json(),
        &Trust::Key(key.public_key()),
        &vopts,
        None,
    )
    .unwrap_err();
    assert_eq!(e.status(), "error", "{e}");
}

#[test]
fn signed_ignore_paths_over_weights_warn_or_refuse() {
    let key = PrivateKey::generate(Curve::P256);
    let dir = model_copy();
    let opts = HashOptions {
        ignore_paths: vec![dir.path().join("model.safetensors")],
        ..HashOptions::default()
    };
    let signed = mlsec_sign::sign(dir.path(), &opts, &Signer::Key(&key), None).unwrap();
    let json = signed.bundle.to_json();
    std::fs::write(dir.path().join("model.safetensors"), b"replaced, unsigned").unwrap();
    let trust = Trust::Key(key.public_key());
    let v = mlsec_sign::verify(dir.path(), &json, &trust, &VerifyOptions::default(), None).unwrap();
    assert!(
        v.warnings.iter().any(|w| w.contains("model.safetensors")),
        "{:?}",
        v.warnings
    );
    let refuse = VerifyOptions {
        ignored_weights: IgnoredWeights::Refuse,
        ..VerifyOptions::default()
    };
    match mlsec_sign::verify(dir.path(), &json, &trust, &refuse, None) {
        Err(VerifyError::Refused(m)) => assert!(m.contains("model.safetensors"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_single_file_signature_does_not_pass_for_a_directory() {
    let e = verify(
        &model(),
        &bundle("v1.1.1/single-file.sig"),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap_err();
    assert_eq!(e.status(), "mismatch", "{e}");
}

#[test]
fn key_and_certificate_modes_are_not_mixed_up() {
    let e = verify(
        &model(),
        &bundle("v1.1.1/certificate.sig"),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--cert-chain"), "{e}");
    let e = verify(
        &model(),
        &bundle("v1.1.1/key-p256.sig"),
        &crate::anchors(&["root.pem"]),
    )
    .unwrap_err();
    assert!(e.to_string().contains("public key"), "{e}");
}

#[cfg(unix)]
#[test]
fn the_signature_is_checked_before_the_model_is_read() {
    // A named pipe in the model would block or fail any read; a wrong key must be reported
    // without touching it.
    let dir = model_copy();
    let fifo = dir.path().join("pipe");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let e = verify(
        dir.path(),
        &bundle("v1.1.1/key-p256.sig"),
        &Trust::Key(public_key("p384.pub")),
    )
    .unwrap_err();
    assert_eq!(e.status(), "invalid", "{e}");
    // With the right key the walk reaches the pipe, and refuses it instead of reading it.
    let e = verify(
        dir.path(),
        &bundle("v1.1.1/key-p256.sig"),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap_err();
    assert_eq!(e.status(), "error", "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}

#[cfg(unix)]
#[test]
fn directory_links_are_skipped_and_file_links_followed_as_model_signing_does() {
    let key = PrivateKey::generate(Curve::P256);
    let dir = model_copy();
    std::fs::create_dir(dir.path().join("shards")).unwrap();
    std::fs::write(dir.path().join("shards/part-1.bin"), b"shard").unwrap();
    std::os::unix::fs::symlink(dir.path().join("shards"), dir.path().join("shards-link")).unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("config.json"),
        dir.path().join("config-link.json"),
    )
    .unwrap();
    let opts = HashOptions {
        allow_symlinks: true,
        ..HashOptions::default()
    };
    let signed = mlsec_sign::sign(dir.path(), &opts, &Signer::Key(&key), None).unwrap();
    let names: Vec<&str> = signed
        .manifest
        .resources
        .iter()
        .map(|r| r.key.path.as_str())
        .collect();
    assert!(names.contains(&"shards/part-1.bin"), "{names:?}");
    assert!(names.contains(&"config-link.json"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("shards-link")),
        "a directory link was followed: {names:?}"
    );
    // And the signature verifies with the links in place.
    let vopts = VerifyOptions {
        allow_symlinks: true,
        ..VerifyOptions::default()
    };
    mlsec_sign::verify(
        dir.path(),
        &signed.bundle.to_json(),
        &Trust::Key(key.public_key()),
        &vopts,
        None,
    )
    .unwrap();
}
