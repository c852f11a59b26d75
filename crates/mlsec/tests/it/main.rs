//! End-to-end tests of the `mlsec` binary: exit codes, stdout/stderr separation, output files,
//! the JSON and SARIF contracts, and `mlsec rules`.
#![allow(clippy::unwrap_used)]

mod drift;
mod gateway;
mod guard;
mod redteam;
mod registry;
mod sign;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mlsec"));
    c.env_remove("NO_COLOR").current_dir(repo());
    c
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

/// Validates `instance` against a JSON Schema, failing with every violation listed.
#[track_caller]
fn assert_valid(schema_text: &str, instance: &serde_json::Value) -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    validator
}

/// The rule ids of a JSON report's findings, in order.
fn rule_ids(report: &serde_json::Value) -> Vec<&str> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[test]
fn benign_folder_exits_0_with_empty_stdout() {
    let o = run(&["scan", "fixtures/benign"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "");
    assert!(stderr(&o).starts_with("scanned "), "{}", stderr(&o));
    assert!(stderr(&o).contains("0 critical, 0 high, 0 medium, 0 low, 0 info"));
}

#[test]
fn malicious_file_exits_1_and_names_the_global() {
    let o = run(&["scan", "fixtures/malicious/torch_zip.pt"]);
    assert_eq!(code(&o), 1);
    let out = stdout(&o);
    assert!(out.contains("PKL001"), "{out}");
    assert!(out.contains("posix.system(\"echo MLSEC_MARKER\")"), "{out}");
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn fail_on_threshold() {
    // Only a medium finding (custom ONNX operator).
    let f = "fixtures/malicious/onnx_custom_op.onnx";
    assert_eq!(code(&run(&["scan", f])), 0);
    assert_eq!(code(&run(&["scan", f, "--fail-on", "medium"])), 1);
    assert_eq!(
        code(&run(&[
            "scan",
            "fixtures/malicious/torch_zip.pt",
            "--fail-on",
            "never"
        ])),
        0
    );
    // --min-severity filters what is reported.
    let o = run(&["scan", f, "--min-severity", "high"]);
    assert_eq!(stdout(&o), "");
}

#[test]
fn missing_path_exits_2() {
    let o = run(&["scan", "does/not/exist.pt"]);
    assert_eq!(code(&o), 2);
    // Errors go to stderr in every format, and into the JSON and SARIF reports.
    assert!(
        stderr(&o).contains("does/not/exist.pt: cannot read"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("1 error"), "{}", stderr(&o));
    for format in ["json", "sarif"] {
        let o = run(&["scan", "does/not/exist.pt", "--format", format]);
        assert_eq!(code(&o), 2);
        assert!(stdout(&o).contains("does/not/exist.pt"), "{}", stdout(&o));
        assert!(
            stderr(&o).contains("does/not/exist.pt: cannot read"),
            "{format}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn one_walk_counts_each_file_once_and_every_scanner_skips_the_same_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pickle = std::fs::read(repo().join("fixtures/malicious/torch_zip.pt")).unwrap();
    // The same malicious model in every directory the walk never enters unless named.
    for skipped in [
        ".git/objects",
        "node_modules/pkg",
        "venv/lib",
        "__pycache__",
    ] {
        std::fs::create_dir_all(d.join(skipped)).unwrap();
        std::fs::write(d.join(skipped).join("model.pt"), &pickle).unwrap();
    }
    std::fs::write(d.join("venv/pyvenv.cfg"), "").unwrap();
    // A file the model, code and secrets scanners all want (a .py in a model folder), a YAML
    // file for the deployment and secrets scanners, and a model.
    std::fs::create_dir_all(d.join("hf")).unwrap();
    std::fs::write(d.join("hf/config.json"), "{}").unwrap();
    std::fs::write(d.join("hf/modeling.py"), "import torch\ntorch.load(p)\n").unwrap();
    std::fs::write(
        d.join("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: a\n    image: x\n",
    )
    .unwrap();
    std::fs::write(d.join("model.pt"), &pickle).unwrap();
    let o = run(&["scan", d.to_str().unwrap(), "--format", "json", "-q"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        report["summary"]["files_scanned"], 4,
        "{}",
        report["summary"]
    );
    assert_eq!(
        report["summary"]["files_skipped"], 0,
        "{}",
        report["summary"]
    );
    let paths: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"]["path"].as_str().unwrap())
        .collect();
    for skipped in [".git", "node_modules", "venv", "__pycache__"] {
        assert!(
            !paths.iter().any(|p| p.contains(skipped)),
            "{skipped} was entered: {paths:?}"
        );
    }
    let ids = rule_ids(&report);
    for scanner_rule in ["PKL001", "HF002", "PY001", "K8S004"] {
        assert!(
            ids.contains(&scanner_rule),
            "{scanner_rule} missing: {ids:?}"
        );
    }
    // Named on the command line, a skipped directory is scanned.
    let o = run(&["scan", d.join("node_modules").to_str().unwrap(), "-q"]);
    assert_eq!(code(&o), 1);
}

#[test]
fn a_fifo_or_device_named_on_the_command_line_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.pkl");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let o = run(&["scan", path]);
        assert_eq!(code(&o), 2, "{path}");
        assert!(
            stderr(&o).contains(&format!("{path}: ")) && stderr(&o).contains("not a regular file"),
            "{}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains(
            "scanned 0 files (0 B) in 0.00s: 0 critical, 0 high, 0 medium, 0 low, 0 info\n"
        ));
    }
}

#[test]
fn bad_arguments_exit_2() {
    assert_eq!(code(&run(&["scan"])), 2);
    assert_eq!(code(&run(&["scan", "x", "--format", "yaml"])), 2);
    assert_eq!(code(&run(&["--version"])), 0);
}

#[test]
fn json_output_file_matches_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.json");
    let o = run(&[
        "scan",
        "fixtures/malicious",
        "fixtures/evasive",
        "--format",
        "json",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "", "report goes to the file, not stdout");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_valid(include_str!("../../../../docs/report.schema.json"), &v);
    assert!(v["summary"]["findings"]["critical"].as_u64().unwrap() > 20);
}

#[test]
fn sarif_matches_official_schema() {
    let o = run(&[
        "scan",
        "fixtures/malicious",
        "fixtures/evasive",
        "fixtures/malformed",
        "--format",
        "sarif",
    ]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid(
        include_str!("../../../mlsec-diagnostics/tests/it/data/sarif-schema-2.1.0.json"),
        &v,
    );
    let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    // Every scanner rule; `mlsec rules` also lists the registry inventory's, drift's, the
    // data audit's and the red-team tools', which a scan does not run.
    let others = mlsec_registry::inventory::RULES.len()
        + mlsec_drift::RULES.len()
        + mlsec_drift::audit::RULES.len()
        + mlsec_redteam::RULES.len()
        + mlsec_probe::report::RULES.len();
    assert_eq!(rules.len() + others, mlsec_rule_count());
    // GitHub code scanning needs region.startLine on every result.
    let results = v["runs"][0]["results"].as_array().unwrap();
    assert!(results.len() > 50);
    for r in results {
        let start = &r["locations"][0]["physicalLocation"]["region"]["startLine"];
        assert!(start.as_u64().is_some_and(|l| l >= 1), "{r}");
    }
    // Rule names are distinct (secret rules included), and the catalogue pipes into `head`.
    let names: std::collections::BTreeSet<String> = rules
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), rules.len());
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::io::Read as _;
    let mut child = bin()
        .args(["rules", "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 4];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `rules` offers only the formats it has; `scan --min-severity` has no `never`.
    let o = run(&["rules", "--format", "sarif"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("possible values: text, json"),
        "{}",
        stderr(&o)
    );
    let o = run(&["scan", "fixtures/benign", "--min-severity", "never"]);
    assert_eq!(code(&o), 2);
}

fn mlsec_rule_count() -> usize {
    let o = run(&["rules", "--format", "json"]);
    serde_json::from_str::<serde_json::Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn rules_lists_and_documents() {
    let o = run(&["rules"]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    for id in [
        "PKL001", "ARC001", "ST001", "GGUF002", "ONNX002", "KER001", "TF001", "HF001",
    ] {
        assert!(out.contains(id), "{id} missing from `mlsec rules`");
    }
    let o = run(&["rules", "PKL001"]);
    let out = stdout(&o);
    assert!(
        out.contains("What it does") && out.contains("Why is this bad?") && out.contains("CWE-502"),
        "{out}"
    );
    assert_eq!(code(&run(&["rules", "NOPE999"])), 2);
}

#[test]
fn text_output_snapshot() {
    let o = run(&[
        "scan",
        "fixtures/evasive/torch_name_mismatch.pt",
        "fixtures/malformed/safetensors_overlap.safetensors",
        "--color",
        "never",
    ]);
    insta::assert_snapshot!(stdout(&o));
}

#[test]
fn forced_colour() {
    let o = run(&[
        "scan",
        "fixtures/malicious/system_p0.pkl",
        "--color",
        "always",
    ]);
    assert!(stdout(&o).contains('\x1b'));
}

#[test]
fn closed_stdout_is_not_an_error() {
    let mut child = bin()
        .args(["scan", "fixtures", "--format", "json", "--fail-on", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn renamed_files_are_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("README.txt");
    std::fs::copy(repo().join("fixtures/malicious/system_p4.pkl"), &target).unwrap();
    let o = run(&["scan", dir.path().to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("posix.system"));
}

#[test]
fn symlinked_model_files_are_scanned() {
    // Hugging Face caches link snapshot files to blobs.
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let snap = dir.path().join("snapshots");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::copy(
        repo().join("fixtures/malicious/torch_zip.pt"),
        blobs.join("abc123"),
    )
    .unwrap();
    std::os::unix::fs::symlink(blobs.join("abc123"), snap.join("pytorch_model.bin")).unwrap();
    std::os::unix::fs::symlink(&snap, snap.join("loop")).unwrap();
    let o = run(&["scan", snap.to_str().unwrap()]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("pytorch_model.bin"), "{}", stdout(&o));
}

#[test]
fn code_scanner_through_the_cli() {
    // --only picks the scanners; code findings carry line, column and notebook cell.
    let o = run(&[
        "scan",
        "fixtures/code",
        "--only",
        "code",
        "-f",
        "json",
        "--fail-on",
        "never",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let schema = std::fs::read_to_string(repo().join("docs/report.schema.json")).unwrap();
    assert_valid(&schema, &v);
    let findings = v["findings"].as_array().unwrap();
    let nb = findings
        .iter()
        .find(|f| {
            f["location"]["path"]
                .as_str()
                .unwrap()
                .ends_with("finetune.ipynb")
                && f["rule_id"] == "PY001"
        })
        .unwrap();
    assert_eq!(nb["location"]["cell"], 2);
    assert_eq!(nb["location"]["cell_line"], 3);
    // And the line of the .ipynb file, for editors and code scanning.
    let raw =
        std::fs::read_to_string(repo().join(nb["location"]["path"].as_str().unwrap())).unwrap();
    let line = nb["location"]["line"].as_u64().unwrap() as usize;
    assert!(
        raw.lines().nth(line - 1).unwrap().contains("torch.load"),
        "{nb}"
    );
    assert!(
        findings
            .iter()
            .all(|f| f["rule_id"].as_str().unwrap().starts_with("PY")),
        "--only code runs only the code scanner"
    );

    let o = run(&["scan", "fixtures/code", "--only", "code", "-f", "sarif"]);
    assert_eq!(code(&o), 1, "high findings fail the default gate");
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let py = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .ends_with("train_and_serve.py")
        })
        .unwrap();
    assert!(
        py["locations"][0]["physicalLocation"]["region"]["startLine"]
            .as_u64()
            .unwrap()
            > 1
    );

    // --only models leaves Python alone; an unknown suppression id is an error (exit 2).
    let o = run(&["scan", "fixtures/code", "--only", "models", "-f", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v["findings"].as_array().unwrap().is_empty());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.py"),
        "import torch\ntorch.load('m')  # mlsec: ignore[PY01] typo\n",
    )
    .unwrap();
    let o = run(&["scan", dir.path().to_str().unwrap(), "--only", "code"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("unknown rule `PY01`"), "{}", stderr(&o));
    // `mlsec rules` documents the code rules too.
    let o = run(&["rules", "PY020"]);
    assert!(stdout(&o).contains("eval-model-output"), "{}", stdout(&o));
}

#[test]
fn deploy_scanner_through_the_cli() {
    let o = run(&["scan", "fixtures/deploy", "--only", "deploy", "-f", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let schema = std::fs::read_to_string(repo().join("docs/report.schema.json")).unwrap();
    assert_valid(&schema, &v);
    let ids = rule_ids(&v);
    assert!(
        ids.iter()
            .all(|i| i.starts_with("DF") || i.starts_with("K8S")),
        "{ids:?}"
    );
    for id in ["DF005", "K8S011", "K8S020", "K8S040"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    for secret in ["not-a-real-token", "placeholder-for-a-real-token"] {
        assert!(
            !stdout(&o).contains(secret),
            "secret values are never printed"
        );
    }
    // Kubernetes findings carry the line and the field they are about.
    let k = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule_id"] == "K8S011")
        .unwrap();
    assert!(k["location"]["line"].as_u64().is_some(), "{k}");
    assert!(
        k["location"]["field"]
            .as_str()
            .unwrap()
            .ends_with(".env[0].value"),
        "{k}"
    );
    // --gitignore leaves out what git ignores, and only when asked.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("vendor")).unwrap();
    std::fs::write(dir.path().join(".gitignore"), "vendor/\n").unwrap();
    std::fs::write(
        dir.path().join("vendor/Dockerfile"),
        "FROM python\nUSER 1000\n",
    )
    .unwrap();
    let d = dir.path().to_str().unwrap();
    assert_eq!(
        code(&run(&["scan", d, "--only", "deploy", "--fail-on", "low"])),
        1
    );
    assert_eq!(
        code(&run(&[
            "scan",
            d,
            "--only",
            "deploy",
            "--gitignore",
            "--fail-on",
            "low"
        ])),
        0
    );
    // By default every scanner runs.
    let o = run(&["scan", "fixtures/deploy", "fixtures/code", "-f", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let ids = rule_ids(&v);
    assert!(
        ids.iter().any(|i| i.starts_with("DF")) && ids.iter().any(|i| i.starts_with("PY")),
        "{ids:?}"
    );
}

#[test]
fn baselines_keep_old_findings_from_failing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("app.py");
    std::fs::write(
        &src,
        "import torch\nm = torch.load('old.pt', weights_only=False)\n",
    )
    .unwrap();
    let base = dir.path().join("baseline.json");
    let d = dir.path().to_str().unwrap();
    let b = base.to_str().unwrap();
    let o = run(&["scan", d, "--only", "code", "--write-baseline", b]);
    assert_eq!(
        code(&o),
        1,
        "writing a baseline still reports: {}",
        stderr(&o)
    );
    assert_eq!(
        code(&run(&["scan", d, "--only", "code", "--baseline", b])),
        0
    );
    // Code moved down a line: same finding, still baselined.
    std::fs::write(
        &src,
        "import torch\n\n\nm = torch.load('old.pt', weights_only=False)\n",
    )
    .unwrap();
    assert_eq!(
        code(&run(&["scan", d, "--only", "code", "--baseline", b])),
        0
    );
    // A new finding fails.
    std::fs::write(&src, "import torch\nm = torch.load('old.pt', weights_only=False)\nn = torch.load('new.pt', weights_only=False)\n").unwrap();
    let o = run(&["scan", d, "--only", "code", "--baseline", b, "-f", "json"]);
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 1);
    assert!(
        v["findings"][0]["evidence"]
            .as_str()
            .unwrap()
            .contains("new.pt")
    );
    // A damaged baseline is an error, not "no baseline".
    std::fs::write(&base, "{}").unwrap();
    assert_eq!(
        code(&run(&["scan", d, "--only", "code", "--baseline", b])),
        2
    );
}

#[test]
fn secrets_scanner_through_the_cli() {
    use mlsec_test_support::templates::expand;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let token = expand("hf_${alpha:34}", 5);
    std::fs::write(dir.path().join(".env"), format!("HF_TOKEN={token}\n")).unwrap();
    let schema = std::fs::read_to_string(repo().join("docs/report.schema.json")).unwrap();

    // Found in a dotfile, redacted in every format unless asked.
    for format in ["text", "json", "sarif"] {
        let o = run(&["scan", d, "--only", "secrets", "-f", format]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stdout(&o).contains("huggingface-token"), "{}", stdout(&o));
        assert!(!stdout(&o).contains(&token[3..]), "redacted in {format}");
    }
    let o = run(&[
        "scan",
        d,
        "--only",
        "secrets",
        "-f",
        "json",
        "--show-secrets",
    ]);
    assert!(stdout(&o).contains(&token));
    assert_valid(&schema, &serde_json::from_str(&stdout(&o)).unwrap());

    // A gitleaks configuration adds rules.
    let acme = expand("acme_${hex:32}", 6);
    std::fs::write(dir.path().join("app.py"), format!("KEY = '{acme}'\n")).unwrap();
    let cfg = dir.path().join("gitleaks.toml");
    std::fs::write(
        &cfg,
        "title = \"ours\"\n[[rules]]\nid = \"acme-key\"\nregex = '''acme_[a-f0-9]{32}'''\nkeywords = [\"acme_\"]\n",
    )
    .unwrap();
    let o = run(&[
        "scan",
        d,
        "--only",
        "secrets",
        "-f",
        "json",
        "--secrets-config",
        cfg.to_str().unwrap(),
    ]);
    assert!(rule_ids(&serde_json::from_str(&stdout(&o)).unwrap()).contains(&"acme-key"));
    // One rule that cannot load is an error naming it; the other rules still run, and Go's
    // regex dialect (a literal `{`, ASCII `\d`) is read as gitleaks reads it.
    std::fs::write(
        &cfg,
        "[[allowlists]]\nregexes = ['''^\\$(?:\\d+|{\\d+})$''']\n[[rules]]\nid = \"bad\"\nregex = '''(unclosed'''\n[[rules]]\nid = \"acme-key\"\nregex = '''acme_[a-f\\d]{32}'''\nkeywords = [\"acme_\"]\n",
    )
    .unwrap();
    let o = run(&[
        "scan",
        d,
        "--only",
        "secrets",
        "-f",
        "json",
        "--secrets-config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("gitleaks.toml: rule `bad`") && stderr(&o).contains("left out"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(rule_ids(&v).contains(&"acme-key"), "{v}");
    assert!(v["errors"].to_string().contains("rule `bad`"), "{v}");
    std::fs::remove_file(dir.path().join("app.py")).unwrap();
    std::fs::remove_file(&cfg).unwrap();

    // Baselines: accept today's secret; a new secret still fails; --update-baseline accepts it;
    // --report-unused-ignores names the stale entry once the first secret is gone.
    let base = dir.path().join("baseline.json");
    let b = base.to_str().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    assert_eq!(
        code(&run(&[
            "scan",
            d,
            "--only",
            "secrets",
            "--write-baseline",
            b
        ])),
        1
    );
    assert_eq!(
        code(&run(&["scan", d, "--only", "secrets", "--baseline", b])),
        0
    );
    let other = expand("hf_${alpha:34}", 7);
    std::fs::write(
        dir.path().join(".env"),
        format!("HF_TOKEN={token}\nHF_TOKEN_2={other}\n"),
    )
    .unwrap();
    assert_eq!(
        code(&run(&["scan", d, "--only", "secrets", "--baseline", b])),
        1,
        "a new secret on a new line"
    );
    let o = run(&[
        "scan",
        d,
        "--only",
        "secrets",
        "--baseline",
        b,
        "--update-baseline",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::write(dir.path().join(".env"), format!("HF_TOKEN_2={other}\n")).unwrap();
    assert_eq!(
        code(&run(&["scan", d, "--only", "secrets", "--baseline", b])),
        0
    );
    let o = run(&[
        "scan",
        d,
        "--only",
        "secrets",
        "--baseline",
        b,
        "--report-unused-ignores",
        "-f",
        "json",
        "--fail-on",
        "low",
    ]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        rule_ids(&serde_json::from_str(&stdout(&o)).unwrap()),
        ["IGN001"]
    );
}

#[test]
fn git_history_and_staged_through_the_cli() {
    use mlsec_test_support::templates::expand;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let git = |args: &[&str]| {
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
            .current_dir(d)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    git(&["init", "-q"]);
    std::fs::write(d.join("README.md"), "hello\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let p = d.to_str().unwrap();
    assert_eq!(code(&run(&["scan", "--git", p])), 0);
    assert_eq!(code(&run(&["scan", "--git", "--staged", p])), 0);
    std::fs::write(
        d.join(".env"),
        format!("{}\n", expand("HF_TOKEN=hf_${alpha:34}", 9)),
    )
    .unwrap();
    git(&["add", ".env"]);
    let o = run(&["scan", "--git", "--staged", p, "-f", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(
        rule_ids(&serde_json::from_str(&stdout(&o)).unwrap()),
        ["huggingface-token"]
    );
    assert_eq!(code(&run(&["scan", "--git", p])), 0, "not committed yet");
    let o = run(&["scan", "--staged", p]);
    assert_eq!(code(&o), 2, "--staged needs --git: {}", stderr(&o));
}
