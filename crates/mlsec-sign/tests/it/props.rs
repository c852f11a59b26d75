//! Parsers of untrusted bytes never panic, whatever they are given.

use mlsec_sign::{Bundle, parse_statement};
use proptest::prelude::*;

fn mutate(seed: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for (at, v) in edits {
        if !b.is_empty() {
            let i = at % b.len();
            b[i] = *v;
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bundle_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Bundle::parse(&bytes);
        let _ = parse_statement(&bytes);
    }

    #[test]
    fn mutated_real_bundles_never_panic_or_verify_wrongly(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let seed = crate::bundle("v1.1.1/key-p256.sig");
        let b = mutate(&seed, &edits);
        let trust = mlsec_sign::Trust::Key(crate::public_key("p256.pub"));
        if let Ok(v) = crate::verify(&crate::model(), &b, &trust) {
            // Only edits the signature does not cover (JSON whitespace, key hint case, ...) may pass,
            // and then the signed content is unchanged.
            prop_assert_eq!(v.resources.len(), 5);
        }
    }

    #[test]
    fn key_and_certificate_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024), text in "(-----BEGIN [A-Z ]{0,24}-----\n)?[A-Za-z0-9+/=\n]{0,300}(-----END [A-Z ]{0,24}-----\n)?") {
        let _ = mlsec_sign::x509::Cert::from_der(&bytes);
        for t in [text.as_str(), &String::from_utf8_lossy(&bytes)] {
            let _ = mlsec_sign::x509::certs_from_pem(t);
            let _ = mlsec_sign::PublicKey::from_pem(t);
            let _ = mlsec_sign::PrivateKey::from_pem(t, Some(b"pw"));
        }
    }

    #[test]
    fn mutated_certificates_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let pem = std::fs::read_to_string(crate::fixtures().join("certs/leaf.pem")).unwrap();
        let der = mlsec_sign::x509::certs_from_pem(&pem).unwrap().remove(0).der;
        if let Ok(c) = mlsec_sign::x509::Cert::from_der(&mutate(&der, &edits)) {
            let _ = c.san();
            let _ = c.public_key();
            let _ = mlsec_sign::x509::verify_chain(&c, &[], std::slice::from_ref(&c), std::time::SystemTime::now());
        }
    }

    #[test]
    fn mutated_statements_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let seed: serde_json::Value = serde_json::from_slice(&crate::bundle("v1.1.1/shards-1000.sig")).unwrap();
        let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, seed["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
        let _ = parse_statement(&mutate(&payload, &edits));
    }
}
