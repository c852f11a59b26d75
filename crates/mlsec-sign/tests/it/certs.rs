//! Certificate mode: explicit anchors only, time, usage, CA constraints, and chains signed by
//! ECDSA, RSA and Ed25519 issuers.

use std::time::{Duration, SystemTime};

use base64::Engine as _;

use mlsec_sign::{Trust, VerifyError, VerifyOptions};

use crate::{anchors, bundle, model, verify};

fn invalid(sig: &str, trust: &Trust, needle: &str) {
    match verify(&model(), &bundle(sig), trust) {
        Err(VerifyError::SignatureInvalid(m)) => {
            assert!(m.contains(needle), "{sig}: expected `{needle}` in: {m}");
        }
        other => panic!("{sig}: expected an invalid signature (`{needle}`), got {other:?}"),
    }
}

#[test]
fn no_anchor_means_no_trust() {
    invalid(
        "v1.1.1/certificate.sig",
        &Trust::Anchors(Vec::new()),
        "never trusted on its own",
    );
}

#[test]
fn a_chain_to_another_root_is_not_trusted() {
    invalid(
        "v1.1.1/certificate.sig",
        &anchors(&["other-root.pem"]),
        "does not chain",
    );
}

#[test]
fn the_leaf_itself_is_not_enough_unless_named_as_anchor() {
    // The bundle carries leaf + intermediate; naming the leaf as the anchor trusts exactly it.
    verify(
        &model(),
        &bundle("v1.1.1/certificate.sig"),
        &anchors(&["leaf.pem"]),
    )
    .unwrap();
}

#[test]
fn validity_is_checked_at_the_current_time() {
    invalid(
        "v1.1.1/certificate-expired.sig",
        &anchors(&["root.pem"]),
        "expired",
    );
    invalid(
        "v1.1.1/certificate-not-yet-valid.sig",
        &anchors(&["root.pem"]),
        "not valid yet",
    );
    // The good chain, checked a century from now, has expired too.
    let opts = VerifyOptions {
        now: SystemTime::now() + Duration::from_hours(100 * 365 * 24),
        ..VerifyOptions::default()
    };
    let e = mlsec_sign::verify(
        &model(),
        &bundle("v1.1.1/certificate.sig"),
        &anchors(&["root.pem"]),
        &opts,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
}

#[test]
fn the_leaf_must_be_allowed_to_sign() {
    invalid(
        "v1.1.1/certificate-no-signing-usage.sig",
        &anchors(&["root.pem"]),
        "digitalSignature",
    );
}

#[test]
fn only_a_ca_may_issue() {
    invalid(
        "v1.1.1/certificate-issued-by-non-ca.sig",
        &anchors(&["root.pem"]),
        "not a CA",
    );
}

#[test]
fn chains_signed_by_rsa_issuers_verify() {
    // model-signing's own certificate fixtures (certtool) and many enterprise PKIs sign their
    // chains with RSA; the leaf key is ECDSA.
    let v = verify(
        &model(),
        &bundle("v1.1.1/certificate-rsa-issuer.sig"),
        &anchors(&["root.pem"]),
    )
    .unwrap();
    let mlsec_sign::SignerIdentity::Certificate { issuer, .. } = v.signer else {
        panic!("{:?}", v.signer)
    };
    assert!(issuer.contains("RSA intermediate"), "{issuer}");
    // The RSA signature is really checked: one flipped bit in the leaf's signature fails.
    let mut b: serde_json::Value =
        serde_json::from_slice(&bundle("v1.1.1/certificate-rsa-issuer.sig")).unwrap();
    let raw = &mut b["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"];
    let engine = base64::engine::general_purpose::STANDARD;
    let mut der = engine.decode(raw.as_str().unwrap()).unwrap();
    let last = der.len() - 1;
    der[last] ^= 1;
    *raw = serde_json::Value::String(engine.encode(&der));
    let e = verify(
        &model(),
        &serde_json::to_vec(&b).unwrap(),
        &anchors(&["root.pem"]),
    )
    .unwrap_err();
    assert_ne!(e.status(), "verified", "{e}");
}

#[test]
fn pem_bundles_with_several_certificates_are_read() {
    let both = format!(
        "{}{}",
        std::fs::read_to_string(crate::fixtures().join("certs/other-root.pem")).unwrap(),
        std::fs::read_to_string(crate::fixtures().join("certs/root.pem")).unwrap()
    );
    let certs = mlsec_sign::x509::certs_from_pem(&both).unwrap();
    assert_eq!(certs.len(), 2);
    verify(
        &model(),
        &bundle("v1.1.1/certificate.sig"),
        &Trust::Anchors(certs),
    )
    .unwrap();
    assert!(mlsec_sign::x509::certs_from_pem("no pem here").is_err());
}
