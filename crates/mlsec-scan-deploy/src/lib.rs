//! The deployment scanner: Dockerfiles, Kubernetes manifests (core workloads, KServe, Seldon,
//! Ray, Knative, Kubeflow) and repository-wide rules over them, reported in the shared findings
//! model.
//!
//! # Brief overview
//! * [`DeployScanner`]: the scanner the shared walk (`mlsec-walk`) drives; [`scan_paths`] runs
//!   it alone.
//! * [`scan_dockerfile`] and [`scan_yaml_set`]: texts given directly, for tests and other callers.
//! * [`RULES`] and [`EXAMPLES`]: the rule catalogue with positive and negative examples.

pub mod dockerfile;
pub mod k8s;
pub mod repo;
pub mod rules;
pub mod suppress;
pub mod yaml;

use std::path::PathBuf;
use std::sync::Mutex;

use mlsec_diagnostics::Report;
use mlsec_walk::{FileInput, FileScanner};

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

/// The deployment scanner as the shared walk drives it: Dockerfiles and YAML files, then the
/// repository-wide rules over what the YAML files declared ([`FileScanner::finish`]). Holds the
/// facts of one scan: use a new one per scan.
#[derive(Default)]
pub struct DeployScanner {
    facts: Mutex<Vec<repo::FileFacts>>,
}

impl FileScanner for DeployScanner {
    fn rules(&self) -> Vec<&'static mlsec_diagnostics::Rule> {
        RULES.to_vec()
    }

    fn wants(&self, file: &FileInput<'_>) -> bool {
        dockerfile::is_dockerfile(file.name())
            || k8s::is_yaml(file.name())
            || k8s::is_json_manifest(file.name(), file.head())
    }

    fn scan(&self, file: &FileInput<'_>) -> Outcome {
        let display = file.display();
        if k8s::is_yaml(file.name()) || k8s::is_json_manifest(file.name(), file.head()) {
            return match file.read_all(k8s::MAX_YAML_BYTES, "manifest") {
                Ok(bytes) => {
                    let (findings, errors, f) =
                        k8s::scan_yaml(display, &String::from_utf8_lossy(bytes));
                    if let Ok(mut all) = self.facts.lock() {
                        all.push(f);
                    }
                    Outcome {
                        findings,
                        errors,
                        ..Outcome::default()
                    }
                }
                Err(e) => e,
            };
        }
        match file.read_all(MAX_DOCKERFILE_BYTES, "Dockerfile") {
            Ok(bytes) => scan_dockerfile(display, &String::from_utf8_lossy(bytes)),
            Err(too_big_or_unreadable) => too_big_or_unreadable,
        }
    }

    fn finish(&self) -> Outcome {
        let mut facts = std::mem::take(
            &mut *self
                .facts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        // Files finish in any order; the repository rules report in path order.
        facts.sort_by(|a, b| a.path.cmp(&b.path));
        Outcome {
            findings: repo::analyse(&facts),
            ..Outcome::default()
        }
    }
}

/// Scans every deployment file under `paths`, in parallel, then runs the repository-wide rules
/// over what the YAML files declared.
pub fn scan_paths(paths: &[PathBuf]) -> Report {
    scan_paths_with(paths, mlsec_walk::WalkOptions::default())
}

/// [`scan_paths`] with walk options (honouring .gitignore).
pub fn scan_paths_with(paths: &[PathBuf], opts: mlsec_walk::WalkOptions) -> Report {
    mlsec_walk::scan(paths, opts, &[&DeployScanner::default()], None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON manifests (tab-indented, and kubectl's `kind: List`) are found and checked with
    /// their lines; other JSON is not the deployment scanner's business.
    #[test]
    fn json_manifests_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pod = "{\n\t\"apiVersion\": \"v1\",\n\t\"kind\": \"Pod\",\n\t\"metadata\": {\"name\": \"p\"},\n\t\"spec\": {\"containers\": [{\n\t\t\"name\": \"c\", \"image\": \"x:1\",\n\t\t\"securityContext\": {\"privileged\": true}\n\t}]}\n}\n";
        std::fs::write(dir.path().join("pod.json"), pod).unwrap();
        let list = format!("{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{pod}]}}");
        std::fs::write(dir.path().join("list.json"), list).unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            "{\"name\": \"x\", \"kind\": 1}",
        )
        .unwrap();
        let report = scan_paths(&[dir.path().to_path_buf()]);
        let mut got: Vec<(String, Option<u32>)> = report
            .findings
            .iter()
            .filter(|f| f.rule.id == "K8S001")
            .map(|f| {
                let name = std::path::Path::new(&f.location.path).file_name().unwrap();
                (name.to_string_lossy().into_owned(), f.location.line)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [("list.json".into(), Some(7)), ("pod.json".into(), Some(7))]
        );
        assert!(
            report
                .findings
                .iter()
                .all(|f| !f.location.path.ends_with("package.json"))
        );
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }

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
            "# mlsec: ignore[DF02]\nFROM registry.local/base\nUSER 1000\n",
        );
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.findings.len(), 1, "an unknown id suppresses nothing");
    }

    #[test]
    fn continuations_heredocs_and_lines() {
        let src = "FROM python:3.11-slim\nRUN <<EOF\nFROM evil\nUSER root\nEOF\nENV A=1 \\\n    # a comment inside\n    DB_PASSWORD=x\nUSER 1000\n";
        let out = scan_dockerfile("Dockerfile", src);
        let got: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.line))
            .collect();
        assert_eq!(got, [("DF005", Some(6))]);
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: c\n    image: x:1\n    resources: {limits: {memory: 1Gi}}\n    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}\n";

    #[test]
    fn a_hardened_pod_is_clean_and_each_weakness_is_one_finding() {
        let out = scan_yaml_set(&[("p.yaml", POD)]);
        assert!(
            out.findings.is_empty() && out.errors.is_empty(),
            "{:?}",
            out.findings
        );
        let weak = POD.replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        );
        let ids: Vec<_> = scan_yaml_set(&[("p.yaml", &weak)])
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.line))
            .collect();
        assert_eq!(ids, [("K8S005", Some(11))]);
    }

    #[test]
    fn k8s_secret_values_are_never_printed() {
        let src = POD.replace(
            "    resources:",
            "    env: [{name: OPENAI_API_KEY, value: not-real-but-supersecret-42}]\n    resources:",
        );
        let out = scan_yaml_set(&[("p.yaml", &src)]);
        let f = out.findings.iter().find(|f| f.rule.id == "K8S011").unwrap();
        assert!(!format!("{f:?}").contains("supersecret"), "{f:?}");
    }

    #[test]
    fn yaml_suppressions_name_known_rules() {
        let privileged = POD.replace("allowPrivilegeEscalation: false", "privileged: true");
        let commented = privileged.replace(
            "  - name: c\n",
            "  # mlsec: ignore[K8S001] GPU driver installer, reviewed\n  - name: c\n",
        );
        let out = scan_yaml_set(&[("p.yaml", &commented)]);
        assert!(
            out.findings.is_empty() && out.errors.is_empty(),
            "{:?} {:?}",
            out.findings,
            out.errors
        );
        let annotated = privileged.replace(
            "  name: p\n",
            "  name: p\n  annotations: {ignore.mlsec.io/K8S001: GPU driver installer}\n",
        );
        assert!(scan_yaml_set(&[("p.yaml", &annotated)]).findings.is_empty());
        let typo = privileged.replace("  - name: c\n", "  # mlsec: ignore[K8S01]\n  - name: c\n");
        let out = scan_yaml_set(&[("p.yaml", &typo)]);
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        assert_eq!(out.findings.len(), 1, "an unknown id suppresses nothing");
        let typo = privileged.replace(
            "  name: p\n",
            "  name: p\n  annotations: {ignore.mlsec.io/K8S1: x}\n",
        );
        assert_eq!(scan_yaml_set(&[("p.yaml", &typo)]).errors.len(), 1);
    }

    #[test]
    fn effective_security_context_prefers_the_container() {
        // The pod says root, the container overrides with a user: not root.
        let src = POD.replace("runAsNonRoot: true", "runAsUser: 0").replace(
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: false, runAsUser: 1000",
        );
        assert!(scan_yaml_set(&[("p.yaml", &src)]).findings.is_empty());
        // The pod says non-root, the container says uid 0: root wins at container level.
        let src = POD.replace(
            "allowPrivilegeEscalation: false",
            "allowPrivilegeEscalation: false, runAsUser: 0",
        );
        let out = scan_yaml_set(&[("p.yaml", &src)]);
        assert_eq!(out.findings.len(), 1);
        assert_eq!(out.findings[0].severity, mlsec_diagnostics::Severity::High);
    }

    #[test]
    fn repository_rules_see_across_files() {
        use mlsec_diagnostics::Severity::{High, Medium};

        let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: ml}\nspec:\n  template:\n    metadata: {labels: {app: d}}\n    spec:\n      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}\n      containers:\n      - name: c\n        image: vllm/vllm-openai:v0.6.3\n        resources: {limits: {memory: 1Gi}}\n        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}\n";
        let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: d, namespace: ml}\nspec:\n  type: NodePort\n  selector: {app: d}\n";
        let out = scan_yaml_set(&[("a/deploy.yaml", deploy), ("b/svc.yaml", svc)]);
        let got: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.location.path.as_str(), f.severity))
            .collect();
        assert_eq!(
            got,
            [
                ("K8S020", "b/svc.yaml", High),
                ("K8S030", "a/deploy.yaml", Medium)
            ],
            "the Service makes the Deployment a serving workload, and the vLLM image makes exposure high"
        );
        let other_ns = svc.replace("namespace: ml", "namespace: other");
        let out = scan_yaml_set(&[("a/deploy.yaml", deploy), ("b/svc.yaml", &other_ns)]);
        let ids: Vec<_> = out
            .findings
            .iter()
            .map(|f| (f.rule.id, f.severity))
            .collect();
        assert_eq!(
            ids,
            [("K8S020", Medium)],
            "another namespace's Service selects nothing here"
        );
    }
}
