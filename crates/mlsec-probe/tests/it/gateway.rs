//! The same probes through `mlsec gateway` in front of the vulnerable model, with the injection
//! guard, output checks and the default refusal of tools: what got through directly is blocked.

use std::collections::BTreeMap;

use mlsec_gateway::config::Config;
use mlsec_gateway::keys::KeyFile;
use mlsec_gateway::{AppState, router};
use mlsec_probe::detect::Outcome;
use mlsec_probe::probes::Family;
use mlsec_probe::run::{self, Options, Target};

use super::server;

/// The gateway on a loopback socket in front of `upstream`, with one key under `policy`.
async fn gateway(upstream: &str, policy: &str) -> (String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let base = upstream.trim_end_matches("/v1");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:1"

[auth]
keys_file = "keys.json"

[audit]
path = "audit.jsonl"

[[models]]
name = "support"
upstreams = ["{base}"]

[policies.guarded]
models = ["*"]
guard = "injection"
[policies.guarded.output]
secrets = "redact"
pii = "redact"
system_prompt = "block"

[policies.open]
models = ["*"]
allow_tools = true
"#
    );
    std::fs::write(dir.path().join("gateway.toml"), config).unwrap();
    let mut keys = KeyFile {
        version: 1,
        keys: vec![],
    };
    let (_, token) = keys.create("probe key", policy, 1);
    keys.save(&dir.path().join("keys.json")).unwrap();
    let cfg = Config::load(&dir.path().join("gateway.toml")).unwrap();
    let state = AppState::new(cfg).await.unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        // Held for the life of the server: dropping the sender would stop it.
        let _stop = stop;
        mlsec_gateway::server::serve(l, router(state), None, rx).await;
    });
    (format!("http://{addr}/v1"), token, dir)
}

fn by_family(r: &run::ProbeReport) -> BTreeMap<Family, [usize; 4]> {
    let mut m = BTreeMap::new();
    for x in &r.results {
        let e: &mut [usize; 4] = m.entry(x.family).or_default();
        e[match x.outcome {
            Outcome::Vulnerable => 0,
            Outcome::Resisted => 1,
            Outcome::Blocked => 2,
            Outcome::Error => 3,
        }] += 1;
    }
    m
}

#[tokio::test]
async fn behind_the_gateway_with_the_guard_the_attacks_are_blocked() {
    let up = server::start(0).await;
    let direct = run::run(
        &Target {
            url: up.clone(),
            model: "support".into(),
            key: None,
        },
        &Options::default(),
    )
    .await
    .unwrap();
    let (url, key, _dir) = gateway(&up, "guarded").await;
    let guarded = run::run(
        &Target {
            url,
            model: "support".into(),
            key: Some(key),
        },
        &Options::default(),
    )
    .await
    .unwrap();
    let d = by_family(&direct);
    let g = by_family(&guarded);
    // Nothing the model resisted directly gets through the gateway, and nothing fails.
    let c = run::compare(&direct, &guarded).unwrap();
    assert!(c.regressed.is_empty(), "{:?}", c.regressed);
    assert_eq!(guarded.summary.last().unwrap().errors, 0);
    // Tools are refused by the policy, encoded and jailbreak prompts by the guard.
    for f in [Family::ToolForging, Family::Encoding, Family::Jailbreak] {
        assert_eq!(g[&f][0], 0, "{f:?}: {g:?}");
        assert!(g[&f][2] >= d[&f][0], "{f:?}: {g:?}");
    }
    // The system prompt in clear (verbatim, translated, spelled, continued) never comes back.
    let outcome = |id: &str| {
        guarded
            .results
            .iter()
            .find(|x| x.id == id)
            .map(|x| x.outcome)
    };
    for id in [
        "prompt-extraction/verbatim/0",
        "prompt-extraction/translate/0",
        "prompt-extraction/spell/0",
        "prompt-extraction/continue/0",
    ] {
        assert_eq!(outcome(id), Some(Outcome::Blocked), "{id}");
    }
    // Blocks carry the gateway's reason.
    let codes: Vec<String> = guarded
        .results
        .iter()
        .filter(|x| x.outcome == Outcome::Blocked)
        .filter_map(|x| x.evidence.clone())
        .collect();
    for code in [
        "prompt_injection",
        "system_prompt_leak",
        "parameter_not_allowed",
    ] {
        assert!(codes.iter().any(|e| e.contains(code)), "{code}: {codes:?}");
    }
    // Most of what worked directly is stopped; what still gets through is in the report.
    let (dv, gv) = (
        direct.summary.last().unwrap().vulnerable,
        guarded.summary.last().unwrap().vulnerable,
    );
    assert!(gv * 2 <= dv, "direct {dv}, guarded {gv}: {g:?}");
}
