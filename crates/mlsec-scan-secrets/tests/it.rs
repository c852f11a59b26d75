//! The generated, labelled ML repository (`corpus.rs`): exact recall and precision.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use mlsec_scan_secrets::{Engine, Options};
use mlsec_test_support::corpus;

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
                // Labels count notebook lines inside the cell.
                if f.location.cell.is_some() {
                    f.location.cell_line.unwrap()
                } else {
                    f.location.line.unwrap()
                },
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

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

#[test]
fn history_finds_deleted_secrets_once_with_their_commit() {
    use mlsec_scan_secrets::history::{History, scan_history};
    use mlsec_test_support::templates::expand;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    let a = expand("hf_${alpha:34}", 1);
    std::fs::write(d.join(".env"), format!("HF_TOKEN={a}\n")).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "add token"]);
    let c1 = git(d, &["rev-parse", "HEAD"]);
    // Many commits that keep the same blob: it is still scanned once.
    for i in 0..5 {
        std::fs::write(d.join("notes.txt"), format!("{i}\n")).unwrap();
        git(d, &["add", "."]);
        git(d, &["commit", "-q", "-m", "notes"]);
    }
    std::fs::remove_file(d.join(".env")).unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "remove token"]);
    let c_rm = git(d, &["rev-parse", "HEAD"]);
    let b = expand("WANDB_API_KEY=${hex:40}", 2);
    std::fs::write(d.join("train.sh"), format!("export {b}\n")).unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "train"]);
    let c3 = git(d, &["rev-parse", "HEAD"]);
    let c = expand("gsk_${alnum:52}", 3);
    std::fs::write(d.join("app.py"), format!("GROQ = '{c}'\n")).unwrap();
    git(d, &["add", "app.py"]);

    let engine = Engine::builtin();
    let summary = |h: &History| -> Vec<(String, String, Option<String>)> {
        let r = scan_history(engine, d, h, Options::default());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r.findings
            .iter()
            .map(|f| {
                (
                    f.rule.id.to_owned(),
                    f.location.path.clone(),
                    f.location.field.clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        summary(&History::default()),
        [
            (
                "huggingface-token".into(),
                ".env".into(),
                Some(format!("commit:{c1}"))
            ),
            (
                "wandb-key".into(),
                "train.sh".into(),
                Some(format!("commit:{c3}"))
            ),
        ],
        "the deleted token is still in history, found once, at the commit that added it"
    );
    let since = History {
        since: Some(c_rm),
        staged: false,
    };
    assert_eq!(summary(&since).len(), 1, "only commits after --since");
    let staged = History {
        since: None,
        staged: true,
    };
    assert_eq!(
        summary(&staged),
        [("groq-key".into(), "app.py".into(), None)],
        "staged content only"
    );
    let not_repo = tempfile::tempdir().unwrap();
    let r = scan_history(
        engine,
        not_repo.path(),
        &History::default(),
        Options::default(),
    );
    assert!(
        r.errors[0].message.contains("not a git repository"),
        "{:?}",
        r.errors
    );
}
