//! Rule examples are templates expanded here, so that the repository holds nothing that looks
//! like a live credential; then behaviour: views, suppressors, validators, redaction.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use mlsec_diagnostics::Severity;
use mlsec_test_support::templates::expand;

const EXAMPLE_PATH: &str = "examples/kaggle/settings.env";

#[test]
fn every_rule_finds_its_examples_and_not_its_negatives() {
    let engine = Engine::builtin();
    let mut failures = Vec::new();
    for (i, r) in engine.rules().rules.iter().enumerate() {
        if r.examples.is_empty() || r.negatives.is_empty() {
            failures.push(format!("{}: needs examples and negatives", r.id));
        }
        for (j, ex) in r.examples.iter().enumerate() {
            let text = expand(ex, (i * 100 + j) as u64 + 7);
            let found = engine.scan_text(EXAMPLE_PATH, &text, Options::default());
            if !found.iter().any(|f| f.rule.id == r.id) {
                failures.push(format!("{} missed: {text}", r.id));
            }
        }
        for (j, ex) in r.negatives.iter().enumerate() {
            let text = expand(ex, (i * 100 + j) as u64 + 50_007);
            let found = engine.scan_text(EXAMPLE_PATH, &text, Options::default());
            if let Some(f) = found.iter().find(|f| f.rule.id == r.id) {
                failures.push(format!("{} false alarm on {text}: {:?}", r.id, f.evidence));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn ids(path: &str, text: &str) -> Vec<&'static str> {
    Engine::builtin()
        .scan_text(path, text, Options::default())
        .iter()
        .map(|f| f.rule.id)
        .collect()
}

#[test]
fn secrets_are_redacted_everywhere_unless_asked() {
    let token = expand("${github:ghp}", 3);
    let findings =
        Engine::builtin().scan_text("a.py", &format!("T = '{token}'\n"), Options::default());
    assert_eq!(findings.len(), 1);
    let printed = format!("{findings:?}");
    assert!(!printed.contains(&token[4..]), "{printed}");
    let shown = Engine::builtin().scan_text(
        "a.py",
        &format!("T = '{token}'\n"),
        Options {
            show_secrets: true,
            ..Options::default()
        },
    );
    assert_eq!(shown[0].evidence.as_deref(), Some(token.as_str()));
    // Two different secrets on the same line have different fingerprints; the same secret
    // moved to another line keeps its fingerprint.
    let other = expand("${github:ghp}", 4);
    let a = Engine::builtin().scan_text("a.py", &format!("T = '{token}'\n"), Options::default());
    let b =
        Engine::builtin().scan_text("a.py", &format!("\n\nT = '{token}'\n"), Options::default());
    let c = Engine::builtin().scan_text("a.py", &format!("T = '{other}'\n"), Options::default());
    assert_eq!(a[0].fingerprint(), b[0].fingerprint());
    assert_ne!(a[0].fingerprint(), c[0].fingerprint());
}

#[test]
fn notebooks_report_cell_line_and_file_line() {
    let key = expand("${hex:40}", 11);
    let hf = expand("hf_${alpha:34}", 12);
    let cohere = expand("${alnum:40}", 14);
    let nb = serde_json::json!({
        "cells": [
            {"cell_type": "markdown", "source": ["# Setup\n"]},
            {"cell_type": "code", "source": ["import os\n", format!("os.environ[\"WANDB_API_KEY\"] = \"{key}\"\n")],
             "outputs": [
                {"output_type": "stream", "text": [format!("token: {hf}\n"), format!("Using Cohere key {cohere} for the embeddings of this run\n")]},
                {"output_type": "display_data", "data": {"image/png": STANDARD.encode(expand("${alnum:400}", 13)), "text/plain": ["<Figure>"]}}
             ]}
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5
    });
    let text = serde_json::to_string_pretty(&nb).unwrap();
    let found = Engine::builtin().scan_text("train.ipynb", &text, Options::default());
    let w = found
        .iter()
        .find(|f| f.rule.id == "wandb-key")
        .expect("key in a code cell, JSON-escaped quotes");
    // Both positions are fields: the cell and the line in it, and the line of the .ipynb file.
    let raw_line = text.lines().position(|l| l.contains(&key)).unwrap() + 1;
    assert_eq!(
        (w.location.cell, w.location.cell_line, w.location.line),
        (Some(1), Some(2), Some(raw_line as u32))
    );
    let h = found
        .iter()
        .find(|f| f.rule.id == "huggingface-token")
        .expect("key printed in an output");
    assert_eq!(h.location.field.as_deref(), Some("/cells/1/outputs/0"));
    // serde_json, like nbformat, writes `outputs` before `source`: both still map to their lines.
    let raw_line = text.lines().position(|l| l.contains(&hf)).unwrap() + 1;
    assert!(
        text.find(&hf) < text.find(&key),
        "the output is written before the source"
    );
    assert_eq!(h.location.line, Some(raw_line as u32), "{:?}", h.location);
    // A keyword key printed inside a sentence of an output.
    let c = found
        .iter()
        .find(|f| f.rule.id == "cohere-key")
        .expect("key inside longer output text");
    assert_eq!(c.location.field.as_deref(), Some("/cells/1/outputs/0"));
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn ml_artefacts_are_not_secrets() {
    let h40 = expand("${hex:40}", 21);
    let h64 = expand("${hex:64}", 22);
    let h32 = expand("${hex:32}", 23);
    for (path, text) in [
        (
            "requirements.txt",
            format!("torch==2.3.0 --hash=sha256:{h64}\n"),
        ),
        (
            "model.dvc",
            format!("outs:\n- md5: {h32}\n  path: model.pt\n"),
        ),
        (
            "weights.bin.lfs",
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{h64}\nsize 1\n"),
        ),
        ("config.json", format!("{{\"_commit_hash\": \"{h40}\"}}\n")),
        (
            "load.py",
            format!("AutoModel.from_pretrained('x', revision='{h40}')\n"),
        ),
        (
            "serve.py",
            format!("m = mlflow.pyfunc.load_model('runs:/{h32}/model')\n"),
        ),
        (
            "k8s.yaml",
            format!("image: vllm/vllm-openai@sha256:{h64}\n"),
        ),
        ("poetry.lock", format!("content-hash = \"{h64}\"\n")),
        (
            "secrets.enc.yaml",
            format!("api_key: ENC[AES256_GCM,data:{h40},iv:x,tag:y,type:str]\n"),
        ),
        ("vault.yml", format!("$ANSIBLE_VAULT;1.1;AES256\n{h64}\n")),
        (
            "app.py",
            "OPENAI_API_KEY = os.environ[\"OPENAI_API_KEY\"]\nHF_TOKEN = '<your-token>'\n"
                .to_owned(),
        ),
    ] {
        assert!(
            ids(path, &text).is_empty(),
            "{path}: {:?}\n{text}",
            ids(path, &text)
        );
    }
}

#[test]
fn inline_allow_comments() {
    let key = expand("${hex:40}", 31);
    for line in [
        format!("WANDB_API_KEY={key}  # mlsec:allow rotated, test account\n"),
        format!("WANDB_API_KEY={key}  # gitleaks:allow\n"),
        format!("WANDB_API_KEY={key}  # pragma: allowlist secret\n"),
        format!("# pragma: allowlist nextline secret\nWANDB_API_KEY={key}\n"),
    ] {
        assert!(ids(".env", &line).is_empty(), "{line}");
    }
    assert_eq!(
        ids(".env", &format!("WANDB_API_KEY={key}\n")),
        ["wandb-key"]
    );
}

#[test]
fn unused_allow_comments_are_reported_when_asked() {
    let key = expand("${hex:40}", 32);
    let text = format!(
        "WANDB_API_KEY={key}  # mlsec:allow test account\nWANDB_PROJECT=x  # mlsec:allow stale\n"
    );
    let opts = Options {
        report_unused_ignores: true,
        ..Options::default()
    };
    let found = Engine::builtin().scan_text(".env", &text, opts);
    let got: Vec<_> = found.iter().map(|f| (f.rule.id, f.location.line)).collect();
    assert_eq!(got, [("IGN001", Some(2))]);
    assert!(ids(".env", &text).is_empty(), "off by default");
}

#[test]
fn service_account_json_is_one_finding() {
    let sa = expand(
        r#"{"type": "service_account", "project_id": "p", "private_key_id": "${hex:40}", "private_key": "${pem-escaped:PRIVATE}", "client_email": "x@p.iam.gserviceaccount.com"}"#,
        41,
    );
    assert_eq!(ids("sa.json", &sa), ["gcp-service-account"]);
    // The same key alone is a private key.
    let key = expand("${pem:PRIVATE}", 41);
    assert_eq!(ids("key.pem", &key), ["private-key"]);
}

#[test]
fn base64_in_kubernetes_secrets_and_code() {
    let url = expand(
        "postgresql://ml:${alnum:20}@db.acme.internal:5432/features",
        51,
    );
    let enc = STANDARD.encode(&url);
    let y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\ndata:\n  DATABASE_URL: {enc}\n"
    );
    let found = Engine::builtin().scan_text("secret.yaml", &y, Options::default());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].rule.id, found[0].location.line),
        ("database-url", Some(5))
    );
    let sealed = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nspec:\n  encryptedData:\n    DATABASE_URL: AgBy8hCi...\n";
    assert!(ids("sealed.yaml", sealed).is_empty());
}

#[test]
fn validators_reject_look_alikes() {
    // A GitHub-shaped token with a wrong checksum, a publishable Stripe key, a JWT whose header
    // is not JSON: all quiet. A Stripe test key is reported at medium.
    let bad = format!("ghp_{}", expand("${alnum:36}", 61));
    assert!(ids("a.py", &format!("t = '{bad}'\n")).is_empty());
    let test_key = expand("sk_test_${alnum:24}", 62);
    let f = Engine::builtin().scan_text(
        "a.py",
        &format!("stripe.api_key = '{test_key}'\n"),
        Options::default(),
    );
    assert_eq!(f[0].severity, Severity::Medium);
}

#[test]
fn user_rules_extend_and_replace() {
    let mut set = RuleSet::builtin();
    let n = set.rules.len();
    let user = RuleSet::parse(
        "[[rules]]\nid = \"acme-token\"\nregex = '''{L}(acme_[a-z0-9]{32}){R}'''\nkeywords = [\"acme_\"]\n",
        "acme.toml",
    )
    .unwrap();
    set.extend(user);
    assert_eq!(set.rules.len(), n + 1);
    let engine = Engine::new(set);
    let text = expand("x = 'acme_${hex:32}'", 71);
    let f = engine.scan_text("a.py", &text, Options::default());
    assert_eq!(
        f.iter().map(|f| f.rule.id).collect::<Vec<_>>(),
        ["acme-token"]
    );
}

proptest::proptest! {
    #[test]
    fn never_panics_on_text(s in "[ -~\n\t]{0,400}") {
        let _ = Engine::builtin().scan_text("a.env", &s, Options::default());
        let _ = Engine::builtin().scan_text("a.ipynb", &s, Options::default());
    }

    #[test]
    fn never_panics_on_token_soup(parts in proptest::collection::vec(proptest::sample::select(vec![
        "hf_", "sk-proj-", "T3BlbkFJ", "ghp_", "npm_", "AKIA", "eyJ", ".", "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----",
        "\\n", "\n", "\"", "'", "=", ": ", "wandb", "WANDB_API_KEY", "postgres://", "a:b@", "kind: Secret\n", "data:\n  k: ",
        "b64decode(\"", "\")", "aGVsbG86d29ybGQ=", "0123456789abcdef", "ABCDEFGHIJKLMNOP", "{\"cells\": [", "]}", "${", "}",
    ]), 0..60)) {
        let s = parts.concat();
        let _ = Engine::builtin().scan_text("a.env", &s, Options::default());
        let _ = Engine::builtin().scan_text("n.ipynb", &s, Options::default());
    }
}

/// A file larger than one window: secrets at the start, across a window edge, on a minified
/// line longer than a window, and at the end, each found once with its line in the whole file.
/// (Small windows here; `scan_large` uses the same code with `MAX_FILE_BYTES`.)
#[test]
fn large_text_is_scanned_in_windows_with_file_lines() {
    const WINDOW: u64 = 4096;
    const OVERLAP: u64 = 256;
    let engine = Engine::builtin();
    let token = |seed| expand("HF_TOKEN=hf_${alpha:34}", seed);
    let filler = "# ordinary configuration line, nothing to see here at all\n";
    let mut text = String::new();
    let mut expected = Vec::new();
    let mut line = 1u32;
    text.push_str(&token(1));
    text.push('\n');
    expected.push(line);
    line += 1;
    // Fill to just before the first window edge, then a secret that straddles it.
    while (text.len() as u64) < WINDOW - 20 {
        text.push_str(filler);
        line += 1;
    }
    text.push_str(&token(2));
    text.push('\n');
    expected.push(line);
    line += 1;
    // A minified line longer than a window, with a secret deep inside it.
    text.push_str("{\"k\":\"");
    text.push_str(&"a".repeat(3 * WINDOW as usize));
    text.push_str("\", \"t\": \"");
    text.push_str(&token(3)[9..]);
    text.push_str("\"}\n");
    expected.push(line);
    line += 1;
    for _ in 0..200 {
        text.push_str(filler);
        line += 1;
    }
    text.push_str(&token(4));
    expected.push(line);
    let data = text.as_bytes();
    let found = engine
        .scan_windows("big.env", &data, Options::default(), WINDOW, OVERLAP)
        .unwrap();
    let mut lines: Vec<u32> = found
        .iter()
        .filter(|f| f.rule.id == "huggingface-token")
        .map(|f| f.location.line.unwrap())
        .collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        expected,
        "{:?}",
        found
            .iter()
            .map(|f| (&f.location, &f.evidence))
            .collect::<Vec<_>>()
    );
    // The secret on the minified line is at its real column.
    let deep = found
        .iter()
        .find(|f| f.location.line == Some(expected[2]))
        .unwrap();
    let whole = engine.scan_text("big.env", &text, Options::default());
    let same = whole
        .iter()
        .find(|f| f.location.line == Some(expected[2]))
        .unwrap();
    assert_eq!(deep.location.column, same.location.column);
    // And the windowed scan agrees with a whole-file scan, finding for finding.
    let key = |f: &Finding| (f.rule.id, f.location.line, f.location.column);
    let mut a: Vec<_> = found.iter().map(key).collect();
    let mut b: Vec<_> = whole.iter().map(key).collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);
}

/// Through the walk: a text file over `MAX_FILE_BYTES` is scanned, not skipped.
#[test]
fn a_text_file_over_the_read_limit_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = expand("HF_TOKEN=hf_${alpha:34}\n", 9);
    text.push_str(&"x".repeat((MAX_FILE_BYTES + 10) as usize));
    text.push('\n');
    std::fs::write(dir.path().join("big.env"), &text).unwrap();
    let r = scan_paths(
        Engine::builtin(),
        &[dir.path().to_path_buf()],
        WalkOptions::default(),
        Options::default(),
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(
        r.findings.iter().any(|f| f.rule.id == "huggingface-token"),
        "{:?}",
        r.findings
    );
    assert_eq!(r.stats.files_skipped, 0, "{:?}", r.stats);
}

/// Keys published in vendors' documentation (built here from parts) are examples, not
/// credentials; one character changed, each is a finding again.
#[test]
fn documentation_example_keys_are_not_secrets() {
    let examples = [
        [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
            ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ]
        .concat(),
        ["sk_", "test_", "4eC39HqLyjWDarjtT1zdp7dc"].concat(),
        [
            "xoxb-",
            "17653672481-19874698323-",
            "pdFZKVeTuE8sk7oOcBrzbqgy",
        ]
        .concat(),
    ];
    for ex in &examples {
        let text = format!("TOKEN = \"{ex}\"\n");
        assert_eq!(ids("app.py", &text), Vec::<&str>::new(), "{text}");
        let mut changed = ex.clone();
        let last = changed.pop().unwrap();
        changed.push(if last == 'c' { 'd' } else { 'c' });
        let text = format!("TOKEN = \"{changed}\"\n");
        assert_eq!(ids("app.py", &text).len(), 1, "{text}");
    }
}
