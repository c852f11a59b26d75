//! `mlsec gateway check-config`, `keys create|list|revoke` and `audit verify` as a user runs them.

use std::path::Path;
use std::process::Output;

fn mlsec(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mlsec"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const VALID: &str = r#"
[auth]
keys_file = "keys.json"

[[models]]
name = "llama"
upstreams = ["http://127.0.0.1:8000"]

[policies.team]
models = ["llama"]
"#;

#[test]
fn check_config_reports_every_error_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), VALID).unwrap();
    let o = mlsec(dir.path(), &["gateway", "check-config"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("valid (1 models, 1 policies"));

    let bad = VALID.replace("http://127.0.0.1:8000", "gopher://x")
        + "\n[policies.other]\nmodels = [\"nope\"]\n";
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let o = mlsec(
        dir.path(),
        &["gateway", "--config", "bad.toml", "check-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "error: bad.toml:7:14: models[0].upstreams[0]: must be an http:// or https:// URL"
        ),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:13:11: policies.other.models[0]: no model named \"nope\""),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");

    let o = mlsec(
        dir.path(),
        &["gateway", "--config", "missing.toml", "check-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("missing.toml"));
}

#[test]
fn check_config_reports_every_type_error_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let bad = r#"
[server]
max_body_bytes = "big"

[auth]
keys_file = "keys.json"

[[models]]
name = "a"
upstreams = ["http://127.0.0.1:8000"]
timeout_secs = "x"

[[models]]
name = "b"
upstreams = "http://127.0.0.1:8000"

[policies.team]
models = ["a"]
max_tokens = -5
"#;
    std::fs::write(dir.path().join("g.toml"), bad).unwrap();
    let o = mlsec(
        dir.path(),
        &["gateway", "--config", "g.toml", "check-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    for want in [
        "g.toml:2:2: server:",
        "models[0]: invalid type: string \"x\"",
        "g.toml:13:1: models[1]:",
        "g.toml:17:11: policies.team:",
        "4 error(s)",
    ] {
        assert!(err.contains(want), "{want}: {err}");
    }
    std::fs::write(dir.path().join("s.toml"), "[server\nlisten = 1").unwrap();
    let o = mlsec(
        dir.path(),
        &["gateway", "--config", "s.toml", "check-config"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("s.toml:1:"), "{}", text(&o.stderr));
}

#[test]
fn keys_are_shown_once_and_stored_as_salted_hashes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gateway.toml"), VALID).unwrap();
    let o = mlsec(
        dir.path(),
        &[
            "gateway", "keys", "create", "--name", "ci", "--policy", "team",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let key = text(&o.stdout).trim().to_string();
    assert!(key.starts_with("mlsk_") && key.len() > 50, "{key}");
    assert!(text(&o.stderr).contains("only time the key is shown"));
    let id = &key[5..17];
    let stored = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
    assert!(!stored.contains(&key[18..]), "the secret is not stored");
    assert!(stored.contains(id));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "keys file is private: {mode:o}");
    }

    let o = mlsec(dir.path(), &["gateway", "keys", "list"]);
    let list = text(&o.stdout);
    assert!(
        list.contains(id) && list.contains("active") && list.contains("team"),
        "{list}"
    );
    assert!(!list.contains(&key[18..]));

    let o = mlsec(dir.path(), &["gateway", "keys", "revoke", id]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let list = text(&mlsec(dir.path(), &["gateway", "keys", "list"]).stdout);
    assert!(list.contains("revoked"), "{list}");

    let o = mlsec(dir.path(), &["gateway", "keys", "revoke", "000000000000"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mlsec(
        dir.path(),
        &[
            "gateway", "keys", "create", "--name", "x", "--policy", "admin",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("no policy named \"admin\" (have: team)"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn audit_verify_exits_1_on_a_broken_chain() {
    use mlsec_gateway::audit::{GENESIS, Record, chain_line};
    let dir = tempfile::tempdir().unwrap();
    let mut prev = GENESIS.to_string();
    let mut log = String::new();
    for i in 0..3 {
        let (line, h) = chain_line(
            &Record {
                request_id: format!("r{i}"),
                status: 200,
                ..Record::default()
            },
            &prev,
        );
        log.push_str(&line);
        prev = h;
    }
    std::fs::write(dir.path().join("a.jsonl"), &log).unwrap();
    let o = mlsec(dir.path(), &["gateway", "audit", "verify", "a.jsonl"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("3 records, chain intact"));
    std::fs::write(dir.path().join("a.jsonl"), log.replace("\"r1\"", "\"rX\"")).unwrap();
    let o = mlsec(dir.path(), &["gateway", "audit", "verify", "a.jsonl"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stdout).contains("a.jsonl:2: hash mismatch"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn audit_verify_says_an_empty_log_proves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.jsonl"), "").unwrap();
    let o = mlsec(dir.path(), &["gateway", "audit", "verify", "a.jsonl"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("no records"),
        "{}",
        text(&o.stdout)
    );
    assert!(!text(&o.stdout).contains("intact"));
}

#[test]
fn audit_keygen_and_verify_against_a_checkpoint_catch_a_cut_log() {
    use mlsec_gateway::audit::{AuditLog, CheckpointOptions, Record, load_checkpoint_key};
    let dir = tempfile::tempdir().unwrap();
    let o = mlsec(
        dir.path(),
        &["gateway", "audit", "keygen", "--out", "cp.pem"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(dir.path().join("cp.pem.pub").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("cp.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the private key is readable by its owner only"
        );
    }
    let o = mlsec(
        dir.path(),
        &["gateway", "audit", "keygen", "--out", "cp.pem"],
    );
    assert_ne!(
        o.status.code(),
        Some(0),
        "an existing key is never overwritten"
    );

    let log = AuditLog::open_with(
        &dir.path().join("a.jsonl"),
        Some(CheckpointOptions {
            key: load_checkpoint_key(&dir.path().join("cp.pem")).unwrap(),
            every_records: 1000,
            every: std::time::Duration::from_hours(1),
            file: dir.path().join("cp.json"),
        }),
    )
    .unwrap();
    for i in 0..4 {
        log.record(Record {
            request_id: format!("r{i}"),
            ..Record::default()
        });
    }
    log.close();
    let args = [
        "gateway",
        "audit",
        "verify",
        "a.jsonl",
        "--checkpoint",
        "cp.json",
        "--public-key",
        "cp.pem.pub",
    ];
    let o = mlsec(dir.path(), &args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("covers 4"), "{}", text(&o.stdout));

    let log_text = std::fs::read_to_string(dir.path().join("a.jsonl")).unwrap();
    let kept: Vec<&str> = log_text.lines().take(2).collect();
    std::fs::write(dir.path().join("a.jsonl"), kept.join("\n") + "\n").unwrap();
    let o = mlsec(dir.path(), &args);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("cut off the end"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn the_shipped_example_config_is_valid_and_binds_loopback_only() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/gateway/gateway.toml");
    let dir = tempfile::tempdir().unwrap();
    let o = mlsec(
        dir.path(),
        &[
            "gateway",
            "--config",
            example.to_str().unwrap(),
            "check-config",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let config = mlsec_gateway::config::Config::load(&example).unwrap();
    for addr in [&config.server.listen, &config.server.admin_listen] {
        assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    }
    for m in &config.models {
        for u in &m.upstreams {
            assert!(u.starts_with("http://127.0.0.1:"), "{u}");
        }
    }
}
