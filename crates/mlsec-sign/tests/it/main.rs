//! Integration tests: bundles written by the real model-signing package (`fixtures/signing`), our
//! own bundles, and hostile input.
#![allow(clippy::unwrap_used)]

mod certs;
mod hostile;
mod interop;
mod props;

use std::path::{Path, PathBuf};

use mlsec_sign::{PublicKey, Trust, Verified, VerifyError, VerifyOptions, x509};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/signing")
}

pub fn model() -> PathBuf {
    fixtures().join("model")
}

pub fn bundle(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap()
}

pub fn public_key(name: &str) -> PublicKey {
    PublicKey::from_pem(&std::fs::read_to_string(fixtures().join("keys").join(name)).unwrap())
        .unwrap()
}

pub fn anchors(names: &[&str]) -> Trust {
    let mut certs = Vec::new();
    for n in names {
        certs.extend(
            x509::certs_from_pem(
                &std::fs::read_to_string(fixtures().join("certs").join(n)).unwrap(),
            )
            .unwrap(),
        );
    }
    Trust::Anchors(certs)
}

pub fn verify(model: &Path, bundle: &[u8], trust: &Trust) -> Result<Verified, VerifyError> {
    mlsec_sign::verify(model, bundle, trust, &VerifyOptions::default(), None)
}

/// A copy of the fixture model in a temporary directory, to change.
pub fn model_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&model(), dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir(&dest).unwrap();
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}
