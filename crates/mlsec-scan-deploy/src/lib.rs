//! The deployment scanner: Dockerfiles today (Kubernetes and serving resources next), reported
//! in the shared findings model.

pub mod dockerfile;
pub mod rules;

use std::path::{Path, PathBuf};

use mlsec_diagnostics::Report;

pub use rules::{EXAMPLES, RULES};

/// Dockerfiles larger than this are reported, not read.
pub const MAX_DOCKERFILE_BYTES: u64 = 4 << 20;

pub use mlsec_walk::Outcome;

/// Scans one Dockerfile's text.
pub fn scan_dockerfile(display: &str, src: &str) -> Outcome {
    let mut out = Outcome::default();
    for ins in dockerfile::parse(src) {
        for id in &ins.suppressed {
            if !RULES.iter().any(|r| r.id == id) {
                out.errors.push(format!(
                    "{display}:{}: suppression names unknown rule `{id}` (see `mlsec rules`)",
                    ins.line
                ));
            }
        }
    }
    out.findings = dockerfile::check(display, src);
    out
}

fn scan_file(path: &Path, display: &str) -> Outcome {
    match mlsec_walk::read_limited(path, MAX_DOCKERFILE_BYTES, "Dockerfile") {
        Ok(bytes) => scan_dockerfile(display, &String::from_utf8_lossy(&bytes)),
        Err(too_big_or_unreadable) => too_big_or_unreadable,
    }
}

fn is_deploy_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(dockerfile::is_dockerfile)
}

/// Scans every deployment file under `paths`, in parallel.
pub fn scan_paths(paths: &[PathBuf]) -> Report {
    mlsec_walk::scan_tree(paths, &is_deploy_file, &scan_file, RULES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_fires_on_its_positives_and_not_on_its_negatives() {
        assert_eq!(EXAMPLES.len(), RULES.len(), "every rule has examples");
        let failures = mlsec_diagnostics::example_failures(EXAMPLES, |src| {
            scan_dockerfile("Dockerfile", src).findings
        });
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn secrets_are_never_printed() {
        let out = scan_dockerfile(
            "Dockerfile",
            "FROM python:3.11\nENV HF_TOKEN=not-a-real-token-supersecret\nUSER 1\n",
        );
        let f = out.findings.iter().find(|f| f.rule.id == "DF005").unwrap();
        assert!(!format!("{f:?}").contains("supersecret"), "{f:?}");
    }

    #[test]
    fn suppressions_and_unknown_ids() {
        let src = "# mlsec: ignore[DF002] internal mirror pins by digest at deploy time\nFROM registry.local/base\nUSER 1000\n";
        let out = scan_dockerfile("Dockerfile", src);
        assert!(
            out.findings.is_empty() && out.errors.is_empty(),
            "{:?} {:?}",
            out.findings,
            out.errors
        );
        let out = scan_dockerfile(
            "Dockerfile",
            "# mlsec: ignore[DF02]\nFROM python\nUSER 1000\n",
        );
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.findings.len(), 1, "an unknown id suppresses nothing");
    }

    #[test]
    fn continuations_heredocs_and_lines() {
        let src = "FROM python:3.11\nRUN <<EOF\nFROM evil\nUSER root\nEOF\nENV A=1 \\\n    # a comment inside\n    DB_PASSWORD=x\nUSER 1000\n";
        let out = scan_dockerfile("Dockerfile", src);
        let got: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.line))
            .collect();
        assert_eq!(got, [("DF005", Some(6))]);
    }
}
