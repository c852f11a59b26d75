//! The generated, labelled ML repository (`corpus.rs`): exact recall and precision.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use mlsec_scan_secrets::{Engine, Options, corpus};

#[test]
fn labelled_corpus_recall_and_precision() {
    let dir = tempfile::tempdir().unwrap();
    let labels = corpus::write(dir.path()).unwrap();
    let expected: BTreeSet<_> = labels.into_iter().collect();
    assert!(expected.len() >= 30, "{}", expected.len());
    let report = mlsec_scan_secrets::scan_paths(
        Engine::builtin(),
        &[dir.path().to_path_buf()],
        mlsec_walk::WalkOptions::default(),
        Options::default(),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let found: BTreeSet<_> = report
        .findings
        .iter()
        .map(|f| {
            (
                std::path::Path::new(&f.location.path)
                    .strip_prefix(dir.path())
                    .unwrap()
                    .display()
                    .to_string(),
                f.location.cell,
                f.location.line.unwrap(),
                f.rule.id.to_owned(),
            )
        })
        .collect();
    let tp = expected.intersection(&found).count();
    eprintln!(
        "labelled secrets corpus: {} expected, {} found, recall {:.2}, precision {:.2}",
        expected.len(),
        found.len(),
        tp as f64 / expected.len() as f64,
        tp as f64 / found.len().max(1) as f64
    );
    let missed: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed {missed:#?}\nfalse alarms {extra:#?}"
    );
}
