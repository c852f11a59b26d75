//! What the registry checks on every new version: mlsec's model scanner over its files, and its
//! OMS signature (model-signing's `model.sig`) against the trusted keys. The files are
//! decrypted into a private temporary folder for the scanner, which reads and never executes
//! them, and the folder is removed when the check ends.

use std::path::Path;

use mlsec_diagnostics::Severity;
use sha2::{Digest, Sha256};

use crate::config::Policy;
use crate::store::Checks;

/// Scans and verifies a version's files laid out under `dir`. `files` is (relative path,
/// sha256, size) of each, for the digest.
pub fn check_dir(dir: &Path, files: &[(String, String, i64)], policy: &Policy) -> Checks {
    let fail_on = Severity::parse(&policy.fail_on).unwrap_or(Severity::High);
    let report = mlsec_scan_model::scan_paths(&[dir.to_path_buf()], None);
    let mut worst: Option<Severity> = None;
    let mut listed = Vec::new();
    for f in &report.findings {
        worst = worst.max(Some(f.severity));
        if f.severity >= fail_on && listed.len() < 50 {
            let path = f
                .location
                .path
                .strip_prefix(&dir.display().to_string())
                .unwrap_or(&f.location.path)
                .trim_start_matches('/');
            listed.push(format!(
                "{} {} {}: {}",
                f.severity, f.rule.id, path, f.message
            ));
        }
    }
    for e in report.errors.iter().take(50) {
        listed.push(format!("error {}: {}", e.path, e.message));
    }
    let scan = if !report.errors.is_empty() {
        "error"
    } else if worst.is_some_and(|w| w >= fail_on) {
        "findings"
    } else {
        "clean"
    };
    let (signature, signature_detail) = verify(dir, policy);
    let mut sorted: Vec<&(String, String, i64)> = files.iter().collect();
    sorted.sort();
    let mut h = Sha256::new();
    for (p, sha, _) in &sorted {
        h.update(p.as_bytes());
        h.update(b"\0");
        h.update(sha.as_bytes());
        h.update(b"\n");
    }
    Checks {
        scan: scan.into(),
        worst: worst.map(|w| w.as_str().to_owned()),
        findings: listed,
        signature: signature.into(),
        signature_detail,
        digest: mlsec_server::keys::hex(&h.finalize()),
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.2.max(0) as u64).sum(),
        // Filled from the source run by the caller.
        datasets: Vec::new(),
    }
}

fn verify(dir: &Path, policy: &Policy) -> (&'static str, String) {
    let sig = dir.join(&policy.signature_file);
    let Ok(bundle) = std::fs::read(&sig) else {
        return ("absent", format!("no {}", policy.signature_file));
    };
    if policy.trusted_keys.is_empty() {
        return (
            "error",
            "signed, but no key is trusted (policy.trusted_keys)".into(),
        );
    }
    let mut last = String::new();
    for key in &policy.trusted_keys {
        let pk = match std::fs::read_to_string(key)
            .map_err(|e| e.to_string())
            .and_then(|t| mlsec_sign::PublicKey::from_pem(&t).map_err(|e| e.to_string()))
        {
            Ok(pk) => pk,
            Err(e) => {
                last = format!("{}: {e}", key.display());
                continue;
            }
        };
        let opts = mlsec_sign::VerifyOptions {
            ignore_paths: vec![sig.clone()],
            ..mlsec_sign::VerifyOptions::default()
        };
        match mlsec_sign::verify(dir, &bundle, &mlsec_sign::Trust::Key(pk), &opts, None) {
            Ok(_) => return ("verified", format!("signed by {}", key.display())),
            Err(e) => last = e.to_string(),
        }
    }
    let status = if last.starts_with("could not verify") {
        "error"
    } else {
        "invalid"
    };
    (status, last)
}
