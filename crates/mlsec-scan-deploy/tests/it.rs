//! The labelled deployment corpus (`fixtures/deploy`): `# expect-next: RULE` comments name what
//! must be found on the next instruction; nothing else may be reported. Plus never-panic properties.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;

use proptest::prelude::*;

#[test]
fn labelled_corpus_recall_and_precision() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/deploy");
    let mut expected = BTreeSet::new();
    for e in walkdir::WalkDir::new(&root) {
        let e = e.unwrap();
        if !e.file_type().is_file() {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(rest) = l.trim().strip_prefix("# expect-next:") {
                let next = (i + 1..lines.len())
                    .find(|&j| !lines[j].trim().is_empty() && !lines[j].trim().starts_with('#'))
                    .unwrap();
                for id in rest.split_whitespace() {
                    expected.insert((
                        e.path().strip_prefix(&root).unwrap().display().to_string(),
                        next as u32 + 1,
                        id.to_owned(),
                    ));
                }
            }
        }
    }
    assert!(expected.len() >= 10, "{}", expected.len());
    let report = mlsec_scan_deploy::scan_paths(std::slice::from_ref(&root));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let found: BTreeSet<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                Path::new(&f.location.path)
                    .strip_prefix(&root)
                    .unwrap()
                    .display()
                    .to_string(),
                f.location.line.unwrap(),
                f.rule.id.to_owned(),
            )
        })
        .collect();
    let tp = expected.intersection(&found).count();
    eprintln!(
        "labelled deploy corpus: {} expected, {} found, recall {:.2}, precision {:.2}",
        expected.len(),
        found.len(),
        tp as f64 / expected.len() as f64,
        tp as f64 / found.len().max(1) as f64
    );
    assert_eq!(found, expected);
    for r in mlsec_scan_deploy::RULES {
        assert!(
            expected.iter().any(|e| e.2 == r.id),
            "{} has no labelled example",
            r.id
        );
    }
}

proptest! {
    #[test]
    fn dockerfile_parser_never_panics(src in "[ -~\n\t\\\\]{0,600}") {
        let _ = mlsec_scan_deploy::scan_dockerfile("Dockerfile", &src);
    }

    #[test]
    fn dockerfile_token_soup_never_panics(tokens in proptest::collection::vec(prop::sample::select(vec![
        "FROM ", "python", ":", "latest", " AS ", "b", "\n", "USER ", "root", "0", "ENV ", "A=", "HF_TOKEN", "=x", " \\\n",
        "# mlsec: ignore[", "DF001", "]", "<<EOF", "EOF", "CMD ", "[\"jupyter\", ", "\"--ip=0.0.0.0\"", "ADD ", "https://x", "$", "@sha256:00",
    ]), 0..60)) {
        let _ = mlsec_scan_deploy::scan_dockerfile("Dockerfile", &tokens.concat());
    }

    #[test]
    fn yaml_scanner_never_panics(src in "[ -~\n\t]{0,600}") {
        let _ = mlsec_scan_deploy::scan_yaml_set(&[("a.yaml", &src)]);
    }

    #[test]
    fn manifest_token_soup_never_panics(tokens in proptest::collection::vec(prop::sample::select(vec![
        "apiVersion: ", "v1", "apps/v1", "serving.kserve.io/v1beta1", "ray.io/v1", "\nkind: ", "Pod", "Deployment",
        "InferenceService", "RayCluster", "Service", "NetworkPolicy", "HorizontalPodAutoscaler", "\nspec:", "\n  ",
        "\n    ", "template:", "containers:", "- ", "name: ", "image: ", "x:latest", "securityContext: ", "{", "}", "[", "]",
        ", ", "privileged: true", "runAsUser: 0", "hostPath: ", "path: /", "selector: ", "app: a", "matchExpressions: ",
        "operator: In", "values: [a]", "s3://b/k", "namespace: prod", "namespace: dev", "&a ", "*a", "---\n", "# mlsec: ignore[",
        "K8S001", "] r\n", "predictor:", "model:", "env: ", "value: v", "HF_TOKEN", ": ", "\n",
        "\"", "'", "''", "\\", "|", ">-", " # c", "$patch: delete", "runAsGroup: 0", "kind: List\nitems: ",
        "args: [jupyter, --ServerApp.token=]", "{\"kind\": \"Pod\"}", "\t",
    ]), 0..80)) {
        let _ = mlsec_scan_deploy::scan_yaml_set(&[("deploy/prod/a.yaml", &tokens.concat())]);
    }
}

#[test]
fn fuzz_regressions_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        let src = String::from_utf8_lossy(&bytes);
        let _ = mlsec_scan_deploy::scan_yaml_set(&[("a.yaml", &src)]);
        let _ = mlsec_scan_deploy::scan_dockerfile("Dockerfile", &src);
    }
}
