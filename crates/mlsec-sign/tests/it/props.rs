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
    fn mutated_statements_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let seed: serde_json::Value = serde_json::from_slice(&crate::bundle("v1.1.1/shards-1000.sig")).unwrap();
        let payload = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, seed["dsseEnvelope"]["payload"].as_str().unwrap()).unwrap();
        let _ = parse_statement(&mutate(&payload, &edits));
    }
}
