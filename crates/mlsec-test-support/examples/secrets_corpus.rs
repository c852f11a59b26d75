//! Writes the labelled secrets corpus to a directory, with `labels.json` beside it, for
//! `benches/secrets_bench.py` (which scores other tools on the same files).
//!
//! Usage: cargo run --release -p mlsec-test-support --example secrets_corpus -- DIR LABELS.json

use mlsec_test_support::corpus;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(labels_path)) = (args.next(), args.next()) else {
        eprintln!("usage: secrets_corpus DIR LABELS.json");
        std::process::exit(2);
    };
    let dir = std::path::PathBuf::from(dir);
    let (files, labels, texts) = corpus::generate();
    for (path, text) in &files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)?;
    }
    let lines = corpus::file_lines(&files, &labels, &texts);
    let out: Vec<_> = labels
        .iter()
        .zip(lines)
        .map(|((path, cell, line, rule), file_line)| {
            serde_json::json!({"path": path, "cell": cell, "line": line, "rule": rule, "file_line": file_line})
        })
        .collect();
    std::fs::write(labels_path, serde_json::to_string_pretty(&out)?)?;
    Ok(())
}
