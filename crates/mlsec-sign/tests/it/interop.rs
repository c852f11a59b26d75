//! Bundles written by model-signing 1.1.1, 1.0.1 and 0.2.0 verify; ours match theirs byte for
//! byte where the format fixes the bytes (manifest, root digest, key hint).

use base64::Engine as _;
use mlsec_sign::{
    HashAlgorithm, HashOptions, Method, PrivateKey, Signer, Trust, VerifyOptions, parse_statement,
};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::{anchors, bundle, fixtures, model, model_copy, public_key, verify};

#[test]
fn key_mode_bundles_from_model_signing_1_1_verify_on_every_curve() {
    for (sig, key, curve) in [
        ("key-p256", "p256.pub", "P-256"),
        ("key-p384", "p384.pub", "P-384"),
        ("key-p521", "p521.pub", "P-521"),
    ] {
        let v = verify(
            &model(),
            &bundle(&format!("v1.1.1/{sig}.sig")),
            &Trust::Key(public_key(key)),
        )
        .unwrap_or_else(|e| panic!("{sig}: {e}"));
        assert_eq!(
            v.resources.len(),
            5,
            "{sig}: README, config, empty, weights, vocab"
        );
        assert!(v.legacy.is_empty(), "{sig}: {:?}", v.legacy);
        let signer = serde_json::to_value(&v.signer).unwrap();
        assert_eq!(signer["method"], "key");
        assert_eq!(signer["curve"], curve);
    }
}

#[test]
fn other_serializations_verify() {
    let key = Trust::Key(public_key("p256.pub"));
    for (sig, resources, hash) in [
        ("shards-1000", 7, "sha256"),
        ("blake2b", 5, "blake2b"),
        ("blake3", 5, "blake3"),
    ] {
        let v = verify(&model(), &bundle(&format!("v1.1.1/{sig}.sig")), &key)
            .unwrap_or_else(|e| panic!("{sig}: {e}"));
        assert_eq!(v.resources.len(), resources, "{sig}");
        assert_eq!(v.serialization["hash_type"], hash);
    }
    let v = verify(
        &model().join("model.safetensors"),
        &bundle("v1.1.1/single-file.sig"),
        &key,
    )
    .unwrap();
    assert_eq!(v.resources[0]["name"], ".");
}

#[test]
fn signer_ignore_paths_are_honoured() {
    let dir = model_copy();
    std::fs::write(dir.path().join("README.md"), "changed after signing").unwrap();
    let v = verify(
        dir.path(),
        &bundle("v1.1.1/key-p256-ignore-readme.sig"),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap();
    assert!(
        v.ignored.iter().any(|i| i["name"] == "README.md"),
        "{:?}",
        v.ignored
    );
    assert!(
        v.warnings.is_empty(),
        "README.md is not a weight file: {:?}",
        v.warnings
    );
}

#[test]
fn certificate_mode_verifies_against_the_root_or_the_intermediate() {
    for anchor in ["root.pem", "intermediate.pem"] {
        let v = verify(
            &model(),
            &bundle("v1.1.1/certificate.sig"),
            &anchors(&[anchor]),
        )
        .unwrap_or_else(|e| panic!("{anchor}: {e}"));
        let signer = serde_json::to_value(&v.signer).unwrap();
        assert_eq!(signer["method"], "certificate");
        assert_eq!(signer["subject"], "CN=mlsec model release,O=mlsec test PKI");
        assert_eq!(signer["san"][0], "email:ml-release@example.com");
    }
}

#[test]
fn legacy_bundles_verify_and_say_so() {
    let v = verify(
        &model(),
        &bundle("v1.0.1/key-p384.sig"),
        &Trust::Key(public_key("p384.pub")),
    )
    .unwrap();
    assert!(
        v.legacy.iter().any(|l| l.contains("embedded")),
        "{:?}",
        v.legacy
    );
    assert!(
        v.resources.iter().any(|r| r["name"] == ".gitattributes"),
        "1.0.1 signed the git files, and they are checked"
    );
    verify(
        &model(),
        &bundle("v1.0.1/certificate.sig"),
        &anchors(&["root.pem"]),
    )
    .unwrap();

    let v = verify(
        &model(),
        &bundle("v0.2.0/key-p256.sig"),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap();
    assert_eq!(v.predicate_type, "https://model_signing/Digests/v0.1");
    assert!(
        v.legacy.iter().any(|l| l.contains("pre-authentication")),
        "{:?}",
        v.legacy
    );
}

#[test]
fn legacy_bundles_still_catch_tampering() {
    let dir = model_copy();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let e = verify(
        dir.path(),
        &bundle("v0.2.0/key-p256.sig"),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap_err();
    assert_eq!(e.status(), "mismatch", "{e}");
    assert!(e.to_string().contains("changed: config.json"), "{e}");
}

fn payload_of(bundle_bytes: &[u8]) -> Value {
    let b: Value = serde_json::from_slice(bundle_bytes).unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn our_manifest_equals_model_signings() {
    // Same files, same names, same order, same digests, same root digest.
    let theirs = payload_of(&bundle("v1.1.1/key-p256.sig"));
    let (ours, _) = mlsec_sign::hash(&model(), &HashOptions::default(), None).unwrap();
    let ours: Value = serde_json::from_slice(&mlsec_sign::statement_json(&ours)).unwrap();
    assert_eq!(ours["subject"], theirs["subject"]);
    assert_eq!(
        ours["predicate"]["resources"],
        theirs["predicate"]["resources"]
    );

    let theirs = payload_of(&bundle("v1.1.1/shards-1000.sig"));
    let opts = HashOptions {
        method: Method::Shards { shard_size: 1000 },
        ..HashOptions::default()
    };
    let (ours, _) = mlsec_sign::hash(&model(), &opts, None).unwrap();
    let ours: Value = serde_json::from_slice(&mlsec_sign::statement_json(&ours)).unwrap();
    assert_eq!(ours["subject"], theirs["subject"]);
    assert_eq!(
        ours["predicate"]["resources"],
        theirs["predicate"]["resources"]
    );

    for (sig, hash) in [
        ("blake2b", HashAlgorithm::Blake2b),
        ("blake3", HashAlgorithm::Blake3),
    ] {
        let theirs = payload_of(&bundle(&format!("v1.1.1/{sig}.sig")));
        let (ours, _) = mlsec_sign::hash(
            &model(),
            &HashOptions {
                hash,
                ..HashOptions::default()
            },
            None,
        )
        .unwrap();
        let ours: Value = serde_json::from_slice(&mlsec_sign::statement_json(&ours)).unwrap();
        assert_eq!(
            ours["predicate"]["resources"], theirs["predicate"]["resources"],
            "{sig}"
        );
    }
}

#[test]
fn key_hint_is_sha256_of_the_pem_model_signing_writes() {
    let pem = std::fs::read(fixtures().join("keys/p256.pub")).unwrap();
    let expected = mlsec_sign::hex::encode(&Sha256::digest(&pem));
    assert_eq!(public_key("p256.pub").hint(), expected);
    let b: Value = serde_json::from_slice(&bundle("v1.1.1/key-p256.sig")).unwrap();
    assert_eq!(
        b["verificationMaterial"]["publicKey"]["hint"],
        expected.as_str()
    );
}

#[test]
fn our_bundles_have_model_signings_shape_and_verify() {
    for curve in [
        mlsec_sign::Curve::P256,
        mlsec_sign::Curve::P384,
        mlsec_sign::Curve::P521,
    ] {
        let key = PrivateKey::generate(curve);
        let signed =
            mlsec_sign::sign(&model(), &HashOptions::default(), &Signer::Key(&key), None).unwrap();
        let json = signed.bundle.to_json();
        let b: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            b["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        assert_eq!(
            b["dsseEnvelope"]["payloadType"],
            "application/vnd.in-toto+json"
        );
        assert_eq!(
            b["verificationMaterial"]["publicKey"]["hint"],
            key.public_key().hint().as_str()
        );
        let p = payload_of(&json);
        assert_eq!(p["predicateType"], "https://model_signing/signature/v1.0");
        assert_eq!(
            p["predicate"]["serialization"]["ignore_paths"],
            serde_json::json!([".git", ".gitattributes", ".github", ".gitignore"])
        );
        // The statement parses back to the same manifest.
        let st = parse_statement(&signed.bundle.payload).unwrap();
        assert_eq!(st.manifest, signed.manifest);
        mlsec_sign::verify(
            &model(),
            &json,
            &Trust::Key(key.public_key()),
            &VerifyOptions::default(),
            None,
        )
        .unwrap();
    }
}

#[test]
fn a_pre_1_1_bundle_whose_embedded_key_is_der_verifies() {
    // The Sigstore bundle spec makes publicKey.rawBytes DER; model-signing 1.0 wrote PEM there.
    let engine = base64::engine::general_purpose::STANDARD;
    let mut b: serde_json::Value = serde_json::from_slice(&bundle("v1.0.1/key-p384.sig")).unwrap();
    let raw = &mut b["verificationMaterial"]["publicKey"]["rawBytes"];
    let pem = String::from_utf8(engine.decode(raw.as_str().unwrap()).unwrap()).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = engine.decode(body).unwrap();
    assert_eq!(der[0], 0x30, "SubjectPublicKeyInfo is a SEQUENCE");
    *raw = serde_json::Value::String(engine.encode(&der));
    let trust = Trust::Key(public_key("p384.pub"));
    let v = verify(&model(), &serde_json::to_vec(&b).unwrap(), &trust).unwrap();
    assert_eq!(v.status, "verified");
    // Another key embedded as DER is still another key.
    let other = public_key("p256.pub");
    let e = verify(
        &model(),
        &serde_json::to_vec(&b).unwrap(),
        &Trust::Key(other),
    )
    .unwrap_err();
    assert_ne!(e.status(), "verified");
}

#[test]
fn unknown_fields_in_the_dsse_envelope_are_refused() {
    for (pointer, field) in [
        ("/dsseEnvelope", "extra"),
        ("/dsseEnvelope/signatures/0", "extra"),
    ] {
        let mut b: serde_json::Value =
            serde_json::from_slice(&bundle("v1.1.1/key-p256.sig")).unwrap();
        b.pointer_mut(pointer)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .insert(field.into(), serde_json::json!("x"));
        let e = verify(
            &model(),
            &serde_json::to_vec(&b).unwrap(),
            &Trust::Key(public_key("p256.pub")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown field `extra`"), "{pointer}: {e}");
    }
    // keyid is part of DSSE and stays accepted.
    let mut b: serde_json::Value = serde_json::from_slice(&bundle("v1.1.1/key-p256.sig")).unwrap();
    b["dsseEnvelope"]["signatures"][0]["keyid"] = serde_json::json!("");
    verify(
        &model(),
        &serde_json::to_vec(&b).unwrap(),
        &Trust::Key(public_key("p256.pub")),
    )
    .unwrap();
}
