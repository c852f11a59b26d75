//! The labelled corpus (`fixtures/code`): every `# expect: RULE` comment must be found on its
//! line, and nothing else may be reported. Plus never-panic properties.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/code")
}

/// (file name, cell, line, rule) for every `# expect:` comment.
fn expectations() -> BTreeSet<(String, Option<u32>, u32, String)> {
    let mut out = BTreeSet::new();
    let mut add = |file: &str, cell: Option<u32>, src: &str| {
        for (i, line) in src.lines().enumerate() {
            if let Some(at) = line.find("# expect:") {
                for id in line[at + 9..].split_whitespace() {
                    out.insert((file.to_owned(), cell, i as u32 + 1, id.to_owned()));
                }
            }
        }
    };
    for e in std::fs::read_dir(corpus()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if name.ends_with(".py") {
            add(&name, None, &std::fs::read_to_string(&p).unwrap());
        } else if name.ends_with(".ipynb") {
            let nb: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            for (i, cell) in nb["cells"].as_array().unwrap().iter().enumerate() {
                if cell["cell_type"] == "code" {
                    let src: String = cell["source"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap())
                        .collect();
                    add(&name, Some(i as u32), &src);
                }
            }
        }
    }
    out
}

#[test]
fn labelled_corpus_recall_and_precision() {
    let expected = expectations();
    assert!(
        expected.len() >= 30,
        "the corpus should stay meaningful: {}",
        expected.len()
    );
    let report = mlsec_scan_code::scan_paths(&[corpus()]);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let found: BTreeSet<_> = report
        .findings
        .iter()
        .map(|f| {
            let file = Path::new(&f.location.path)
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            (
                file,
                f.location.cell,
                f.location.cell_line.or(f.location.line).unwrap_or(0),
                f.rule.id.to_owned(),
            )
        })
        .collect();
    let missed: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    let tp = expected.intersection(&found).count();
    eprintln!(
        "labelled corpus: {} expected, {} found, recall {:.2}, precision {:.2}",
        expected.len(),
        found.len(),
        tp as f64 / expected.len() as f64,
        tp as f64 / found.len().max(1) as f64
    );
    assert!(
        missed.is_empty() && extra.is_empty(),
        "missed: {missed:#?}\nfalse alarms: {extra:#?}"
    );
    // Every rule (but the parse-error one) is exercised by the corpus.
    for r in mlsec_scan_code::RULES.iter().filter(|r| r.id != "PY900") {
        assert!(
            expected.iter().any(|e| e.3 == r.id),
            "{} has no labelled example",
            r.id
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn python_scanner_never_panics(src in "[ -~\n\t]{0,400}") {
        let _ = mlsec_scan_code::scan_python("p.py", &src);
    }

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(prop::sample::select(vec![
        "import torch as T\n", "T.load(", ")", "(", "**", "{'weights_only': ", "False", "}", ",", "x", " = ", "\n",
        "def f():\n", "    ", "lambda: ", "eval(", "llm.invoke(", ".content", "f'{", "'", "\"", "[", "]", "%time\n", "!ls\n",
        "from transformers import pipeline as p\n", "p('x', model='a/b', revision=", "not ", " + ", ".", "# mlsec: ignore[PY001]",
    ]), 0..80)) {
        let src: String = tokens.concat();
        let _ = mlsec_scan_code::scan_python("p.py", &src);
        let nb = serde_json::json!({"cells": [{"cell_type": "code", "source": src}]});
        let _ = mlsec_scan_code::scan_notebook("n.ipynb", &serde_json::to_vec(&nb).unwrap());
    }

    #[test]
    fn notebook_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = mlsec_scan_code::scan_notebook("n.ipynb", &bytes);
    }
}

#[test]
fn fuzz_regressions_become_findings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let out = mlsec_scan_code::scan_notebook("f.ipynb", &data);
        if let Ok(src) = std::str::from_utf8(&data) {
            let _ = mlsec_scan_code::scan_python("f.py", src);
        }
        if p.file_name().unwrap().to_str().unwrap().contains("ruff") {
            // A panic inside ruff's parser: reported on the file, not a crash.
            assert!(
                out.findings
                    .iter()
                    .any(|f| f.rule.id == "PY900" && f.message.contains("parser failed")),
                "{:?}",
                out.findings
            );
        }
    }
}
