//! Sigstore bundles, signed statements and certificates: every parser `mlsec verify` runs on
//! untrusted bytes before (or instead of) checking a signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_sign::{Bundle, Material, parse_statement, x509};

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Bundle::parse(data) {
        let _ = parse_statement(&b.payload);
        if let Material::CertificateChain(chain) = &b.material {
            let certs: Vec<_> = chain.iter().filter_map(|d| x509::Cert::from_der(d).ok()).collect();
            if let Some((leaf, rest)) = certs.split_first() {
                let _ = x509::verify_chain(leaf, rest, &certs, std::time::SystemTime::UNIX_EPOCH);
                let _ = leaf.san();
                let _ = leaf.public_key();
            }
        }
    }
    let _ = parse_statement(data);
    let _ = x509::Cert::from_der(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = x509::certs_from_pem(text);
        let _ = mlsec_sign::PublicKey::from_pem(text);
        let _ = mlsec_sign::PrivateKey::from_pem(text, Some(b"pw"));
    }
});
