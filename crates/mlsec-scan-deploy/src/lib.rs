//! The deployment scanner: Dockerfiles today (Kubernetes and serving resources next), reported
//! in the shared findings model.

pub mod dockerfile;
pub mod rules;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use mlsec_diagnostics::{FileError, Finding, Location, Report, Stats};
use rayon::prelude::*;

pub use rules::{EXAMPLES, RULES};

/// Dockerfiles larger than this are reported, not read.
pub const MAX_DOCKERFILE_BYTES: u64 = 4 << 20;

/// What scanning one file produced: findings, and errors (an unknown rule id in a suppression).
#[derive(Debug, Default)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub errors: Vec<String>,
}

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
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_DOCKERFILE_BYTES => {
            return Outcome {
                findings: Vec::new(),
                errors: vec![format!(
                    "{} bytes, larger than the {MAX_DOCKERFILE_BYTES} read for a Dockerfile",
                    m.len()
                )],
            };
        }
        Err(e) => {
            return Outcome {
                findings: Vec::new(),
                errors: vec![format!("cannot read: {e}")],
            };
        }
        Ok(_) => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => scan_dockerfile(display, &String::from_utf8_lossy(&bytes)),
        Err(e) => Outcome {
            findings: Vec::new(),
            errors: vec![format!("cannot read: {e}")],
        },
    }
}

fn skip_dir(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    matches!(
        name,
        ".git" | ".hg" | ".svn" | "node_modules" | "__pycache__"
    ) || path.join("pyvenv.cfg").is_file()
}

/// Scans every deployment file under `paths`, in parallel.
pub fn scan_paths(paths: &[PathBuf]) -> Report {
    let start = Instant::now();
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let wanted = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(dockerfile::is_dockerfile)
    };
    for root in paths {
        if root.is_file() {
            if wanted(root) {
                files.push(root.clone());
            }
            continue;
        }
        let walker = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| !(e.file_type().is_dir() && e.depth() > 0 && skip_dir(e.path())));
        for entry in walker {
            match entry {
                Ok(e) if e.file_type().is_file() && wanted(e.path()) => {
                    files.push(e.path().to_path_buf());
                }
                Ok(_) => {}
                Err(e) => errors.push(FileError {
                    path: e
                        .path()
                        .map_or_else(|| root.display().to_string(), |p| p.display().to_string()),
                    message: format!("cannot read: {e}"),
                }),
            }
        }
    }
    let findings = Mutex::new(Vec::new());
    let file_errors = Mutex::new(Vec::new());
    let bytes: u64 = files
        .par_iter()
        .map(|p| {
            let display = p.display().to_string();
            let outcome =
                std::panic::catch_unwind(|| scan_file(p, &display)).unwrap_or_else(|_| Outcome {
                    findings: Vec::new(),
                    errors: vec!["internal error while analysing (a bug: please report it)".into()],
                });
            if let Ok(mut f) = findings.lock() {
                f.extend(outcome.findings);
            }
            if let Ok(mut e) = file_errors.lock() {
                e.extend(outcome.errors.into_iter().map(|m| FileError {
                    path: display.clone(),
                    message: m,
                }));
            }
            std::fs::metadata(p).map_or(0, |m| m.len())
        })
        .sum();
    errors.extend(file_errors.into_inner().unwrap_or_default());
    let mut report = Report {
        findings: findings.into_inner().unwrap_or_default(),
        errors,
        stats: Stats {
            files_scanned: files.len() as u64,
            files_skipped: 0,
            bytes_scanned: bytes,
            duration: start.elapsed(),
        },
        rules: RULES.to_vec(),
    };
    report.sort();
    report
}

/// A location helper for callers that report on a whole file.
pub fn file_location(display: &str) -> Location {
    Location::file(display)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_fires_on_its_positives_and_not_on_its_negatives() {
        assert_eq!(EXAMPLES.len(), RULES.len(), "every rule has examples");
        for (rule, positives, negatives) in EXAMPLES {
            assert!(
                !positives.is_empty() && !negatives.is_empty(),
                "{}",
                rule.id
            );
            for src in *positives {
                let out = scan_dockerfile("Dockerfile", src);
                assert!(
                    out.findings.iter().any(|f| f.rule.id == rule.id),
                    "{} missed:\n{src}\nfound: {:?}",
                    rule.id,
                    out.findings.iter().map(|f| &f.message).collect::<Vec<_>>()
                );
            }
            for src in *negatives {
                let out = scan_dockerfile("Dockerfile", src);
                assert!(
                    !out.findings.iter().any(|f| f.rule.id == rule.id),
                    "{} false alarm:\n{src}\nfound: {:?}",
                    rule.id,
                    out.findings.iter().map(|f| &f.message).collect::<Vec<_>>()
                );
            }
        }
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
