//! The deployment scanner: Dockerfiles, Kubernetes manifests (core workloads, KServe, Seldon,
//! Ray, Knative, Kubeflow) and repository-wide rules over them, reported in the shared findings
//! model.

pub mod dockerfile;
pub mod k8s;
pub mod repo;
pub mod rules;
pub mod suppress;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// Scans YAML texts as one repository: per-object rules on each, then the cross-file rules.
/// `files` are (display path, text) pairs.
pub fn scan_yaml_set(files: &[(&str, &str)]) -> Outcome {
    let mut out = Outcome::default();
    let mut facts = Vec::new();
    for (display, src) in files {
        let (findings, errors, f) = k8s::scan_yaml(display, src);
        out.findings.extend(findings);
        out.errors.extend(errors);
        facts.push(f);
    }
    out.findings.extend(repo::analyse(&facts));
    out
}

fn is_deploy_file(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| dockerfile::is_dockerfile(n) || k8s::is_yaml(n))
}

/// Scans every deployment file under `paths`, in parallel, then runs the repository-wide rules
/// over what the YAML files declared.
pub fn scan_paths(paths: &[PathBuf]) -> Report {
    let facts = Mutex::new(Vec::new());
    let scan_file = |path: &Path, display: &str| -> Outcome {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if k8s::is_yaml(name) {
            return match mlsec_walk::read_limited(path, k8s::MAX_YAML_BYTES, "YAML file") {
                Ok(bytes) => {
                    let (findings, errors, f) =
                        k8s::scan_yaml(display, &String::from_utf8_lossy(&bytes));
                    if let Ok(mut all) = facts.lock() {
                        all.push(f);
                    }
                    Outcome { findings, errors }
                }
                Err(e) => e,
            };
        }
        match mlsec_walk::read_limited(path, MAX_DOCKERFILE_BYTES, "Dockerfile") {
            Ok(bytes) => scan_dockerfile(display, &String::from_utf8_lossy(&bytes)),
            Err(too_big_or_unreadable) => too_big_or_unreadable,
        }
    };
    let mut report = mlsec_walk::scan_tree(paths, &is_deploy_file, &scan_file, RULES);
    let mut facts = facts.into_inner().unwrap_or_default();
    // Files finish in any order; the repository rules report in path order.
    facts.sort_by(|a, b| a.path.cmp(&b.path));
    report.findings.extend(repo::analyse(&facts));
    report.sort();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_fires_on_its_positives_and_not_on_its_negatives() {
        assert_eq!(
            EXAMPLES.len() + rules::K8S_EXAMPLES.len(),
            RULES.len(),
            "every rule has examples"
        );
        let mut failures = mlsec_diagnostics::example_failures(EXAMPLES, |src| {
            scan_dockerfile("Dockerfile", src).findings
        });
        failures.extend(mlsec_diagnostics::example_failures(
            rules::K8S_EXAMPLES,
            |src| scan_yaml_set(&[("deploy/app.yaml", src)]).findings,
        ));
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
