//! `[models.monitor]` through the router: drift windows, per-request out-of-distribution
//! scores, output confidence, error rates and the escalation policy's webhook, each on traffic
//! whose truth the test decides.

use std::time::Duration;

use axum::http::StatusCode;
use mlsec_drift::profile::Profile;
use mlsec_drift::table::{Format, read};
use serde_json::{Value, json};

use crate::{H, harness_with_files};

/// A reference where `amount` and `x0` are uniform on 0..99 and `prompt_chars` on 20..59.
fn reference_profile() -> Vec<u8> {
    let mut csv = String::from("amount,x0,prompt_chars\n");
    for i in 0..5_000 {
        csv.push_str(&format!("{},{},{}\n", i % 100, (i * 7) % 100, 20 + i % 40));
    }
    let table = read(csv.as_bytes(), "reference.csv", Format::Csv).expect("reference");
    serde_json::to_vec(&Profile::of(&table)).expect("profile")
}

const MONITORED: &str = r#"
[monitor]
webhook = "{UP}/hook"
tick_secs = 1

[[monitor.escalation]]
after_secs = 0
level = "warning"
notify = ["ml-oncall"]

[[monitor.escalation]]
after_secs = 600
level = "critical"
notify = ["ml-lead"]

[[models]]
name = "scored"
protocol = "json"
upstreams = ["{UP}"]
path = "/v1/predict/scored"
upstream_path = "/predict"
schema = "any.schema.json"

[models.monitor]
profile = "reference.profile.json"
features = { amount = "/amount" }
probabilities = "/probabilities"
window = 200

[[models]]
name = "scored-oip"
protocol = "oip"
upstreams = ["{UP}"]
inputs = [{ name = "feats", datatype = "FP32", shape = [-1, 2] }]

[models.monitor]
profile = "reference.profile.json"
features = { x0 = "input:feats:1" }
probabilities = "output:probs"
window = 1000

[[models]]
name = "scored-chat"
upstreams = ["{UP}"]

[models.monitor]
profile = "reference.profile.json"
features = { prompt_chars = "prompt_chars" }
window = 1000

[[models]]
name = "recorded-chat"
upstreams = ["{UP}"]

[models.monitor]
features = { prompt_chars = "prompt_chars", messages = "messages" }
record = "baseline.jsonl"
record_rows = 3
"#;

async fn monitored() -> H {
    let profile = reference_profile();
    harness_with_files(
        MONITORED,
        None,
        &[
            ("reference.profile.json", &profile),
            ("any.schema.json", br#"{"type":"object"}"#),
        ],
    )
    .await
}

impl H {
    /// The monitor webhook's deliveries so far, once at least `n` have arrived.
    async fn hooks(&self, n: usize) -> Vec<Value> {
        for _ in 0..300 {
            let got: Vec<Value> = self
                .up
                .seen()
                .into_iter()
                .filter(|s| s.path == "/hook" && s.body["event"] == "mlsec.gateway.monitor")
                .map(|s| s.body)
                .collect();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("fewer than {n} monitor webhook deliveries");
    }

    async fn predict(&self, amount: f64, p: f64, fail: bool) -> StatusCode {
        self.post(
            "/v1/predict/scored",
            "default",
            &json!({"amount": amount, "p": p, "fail": fail}),
        )
        .await
        .status
    }
}

fn conditions(hooks: &[Value], state: &str, level: &str) -> Vec<String> {
    let mut c: Vec<String> = hooks
        .iter()
        .filter(|h| h["state"] == state && h["level"] == level)
        .map(|h| h["condition"].as_str().unwrap_or("").to_string())
        .collect();
    c.sort();
    c
}

#[tokio::test]
async fn drift_ood_and_low_confidence_alert_escalate_and_resolve() {
    let h = monitored().await;
    // Window 1: traffic like the reference, confident outputs. Nothing fires.
    for i in 0..200 {
        assert_eq!(
            h.predict(f64::from(i % 100), 0.9, false).await,
            StatusCode::OK
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        h.up.seen().iter().all(|s| s.path != "/hook"),
        "a window like the reference raised an alert"
    );
    // Window 2: amounts shifted past anything the reference saw, outputs near coin flips.
    for i in 0..200 {
        assert_eq!(
            h.predict(f64::from(150 + i % 100), 0.55, false).await,
            StatusCode::OK
        );
    }
    let hooks = h.hooks(3).await;
    assert_eq!(
        conditions(&hooks, "firing", "warning"),
        ["drift", "low_confidence", "ood_rate"]
    );
    let drift = hooks
        .iter()
        .find(|x| x["condition"] == "drift")
        .expect("drift");
    assert_eq!(drift["model"], "scored");
    assert_eq!(drift["notify"], json!(["ml-oncall"]));
    assert!(
        drift["message"].as_str().unwrap_or("").contains("amount"),
        "{drift}"
    );
    // Each request's score is in its audit record.
    let audit = h.audit_n(400).await;
    let decisions = |r: &Value| r["decisions"].to_string();
    assert!(decisions(&audit[10]).contains("monitor: ood score 0."));
    assert!(!decisions(&audit[10]).contains("out of distribution"));
    assert!(
        decisions(&audit[390]).contains("ood score 1.0000 (out of distribution)"),
        "{}",
        audit[390]
    );
    assert!(decisions(&audit[390]).contains("low-confidence"));

    // Ten minutes on, the open conditions escalate to the second step.
    let rt = h.state.runtime.load_full();
    let later = rt.alerts.tick(mlsec_gateway::monitor::now() + 700);
    assert_eq!(later.len(), 3);
    mlsec_gateway::monitor::deliver(&h.state, &rt, later);
    let hooks = h.hooks(6).await;
    let critical: Vec<&Value> = hooks.iter().filter(|x| x["level"] == "critical").collect();
    assert_eq!(critical.len(), 3);
    assert!(critical.iter().all(|x| x["notify"] == json!(["ml-lead"])));

    // Window 3: back to normal. Each condition resolves once, at its last level.
    for i in 0..200 {
        assert_eq!(
            h.predict(f64::from(i % 100), 0.9, false).await,
            StatusCode::OK
        );
    }
    let hooks = h.hooks(9).await;
    assert_eq!(
        conditions(&hooks, "resolved", "critical"),
        ["drift", "low_confidence", "ood_rate"]
    );

    let metrics = h.state.metrics.encode();
    for line in [
        r#"mlsec_gateway_monitor_ood_requests_total{model="scored"} 200"#,
        r#"mlsec_gateway_monitor_drift_windows_total{model="scored",drift="yes"} 1"#,
        r#"mlsec_gateway_monitor_drift_windows_total{model="scored",drift="no"} 2"#,
        r#"mlsec_gateway_monitor_low_confidence_total{model="scored"} 200"#,
        r#"mlsec_gateway_monitor_alerts_total{model="scored",condition="drift",state="firing"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn error_rates_alert_and_unreadable_outputs_are_counted() {
    let h = monitored().await;
    // 10% of calls fail upstream: past the default 5% threshold.
    for i in 0..200 {
        let fail = i % 10 == 0;
        let s = h.predict(f64::from(i % 100), 0.9, fail).await;
        assert_eq!(s.is_success(), !fail);
    }
    let hooks = h.hooks(1).await;
    assert_eq!(conditions(&hooks, "firing", "warning"), ["error_rate"]);
    assert!(
        hooks[0]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("10.0% of the last 200 requests failed")
    );
    // A response without the declared probabilities is counted, and said in the audit record.
    let r = h
        .post(
            "/v1/predict/scored",
            "default",
            &json!({"amount": 5, "p": "none"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let metrics = h.state.metrics.encode();
    assert!(
        metrics.contains(r#"mlsec_gateway_monitor_unscored_total{model="scored"} 1"#),
        "{metrics}"
    );
    let audit = h.audit_n(201).await;
    assert!(
        audit[200]["decisions"]
            .to_string()
            .contains("no class probabilities found"),
        "{}",
        audit[200]
    );
}

#[tokio::test]
async fn oip_batches_are_scored_row_by_row_and_llm_prompts_by_length() {
    let h = monitored().await;
    // Three rows; the second's column 1 is far outside the reference and its first value is
    // negative (the upstream answers it with a coin flip).
    let batch = json!({"inputs": [{"name": "feats", "datatype": "FP32", "shape": [3, 2],
        "data": [1.0, 50.0, -1.0, 5000.0, 2.0, 20.0]}]});
    let r = h
        .post("/v2/models/scored-oip/infer", "default", &batch)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let inside = json!({"inputs": [{"name": "feats", "datatype": "FP32", "shape": [1, 2],
        "data": [1.0, 50.0]}]});
    let r = h
        .post("/v2/models/scored-oip/infer", "default", &inside)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ask = |n: usize| json!({"model": "scored-chat", "messages": [{"role": "user", "content": "a".repeat(n)}]});
    assert_eq!(
        h.post("/v1/chat/completions", "default", &ask(40))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.post("/v1/chat/completions", "default", &ask(4_000))
            .await
            .status,
        StatusCode::OK
    );
    let audit = h.audit_n(4).await;
    let d: Vec<String> = audit.iter().map(|r| r["decisions"].to_string()).collect();
    assert!(d[0].contains("(out of distribution)"), "{}", d[0]);
    assert!(d[0].contains("1 of 3 outputs low-confidence"), "{}", d[0]);
    assert!(!d[1].contains("out of distribution"), "{}", d[1]);
    assert!(!d[1].contains("low-confidence"), "{}", d[1]);
    assert!(!d[2].contains("out of distribution"), "{}", d[2]);
    assert!(d[3].contains("(out of distribution)"), "{}", d[3]);
}

#[tokio::test]
async fn a_baseline_is_recorded_for_a_profile_when_there_is_none_yet() {
    let h = monitored().await;
    for n in [10, 20, 30, 40] {
        let body = json!({"model": "recorded-chat", "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "q".repeat(n)}]});
        let r = h.post("/v1/chat/completions", "default", &body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let path = h.dir.path().join("baseline.jsonl");
    let text = std::fs::read_to_string(&path).expect("baseline written");
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    // record_rows = 3: the fourth request is not recorded. Numbers only, never the prompt.
    assert_eq!(
        rows,
        [18, 28, 38].map(|n| json!({"messages": 2.0, "prompt_chars": f64::from(n)}))
    );
    assert!(!text.contains("qqq"));
    // The baseline becomes a profile.
    let table = mlsec_drift::table::read_path(&path).expect("reads");
    let profile = Profile::of(&table);
    assert_eq!(profile.rows, 3);
    assert!(profile.columns.iter().any(|c| c.name == "prompt_chars"));
    // Without a profile nothing is scored.
    let audit = h.audit_n(4).await;
    assert!(!audit[0]["decisions"].to_string().contains("ood score"));
}

#[test]
fn monitor_configs_are_checked_with_the_field_at_fault() {
    let base = std::env::temp_dir();
    let cases = [
        (
            "[models.monitor]\nfeatures = { a = \"/a\" }\n",
            "models[0].monitor.profile",
            "mlsec drift profile",
        ),
        (
            "[models.monitor]\nprofile = \"nope.json\"\nfeatures = { a = \"amount\" }\n",
            "models[0].monitor.features.a",
            "expected a JSON pointer",
        ),
        (
            "[models.monitor]\nprofile = \"nope.json\"\nfeatures = { a = \"/a\" }\n",
            "models[0].monitor.profile",
            "no such file",
        ),
        (
            "[models.monitor]\nprobabilities = \"output:probs\"\nwindow = 0\n",
            "models[0].monitor.probabilities",
            "OIP models only",
        ),
        (
            "[models.monitor]\nrecord = \"b.jsonl\"\n",
            "models[0].monitor.record",
            "name at least one",
        ),
        (
            "[models.monitor]\nmax_error_rate = 1.5\n",
            "models[0].monitor.max_error_rate",
            "between 0 and 1",
        ),
    ];
    for (monitor, field, message) in cases {
        let text = format!(
            "[auth]\nkeys_file = \"k.json\"\n[policies.p]\nmodels = [\"*\"]\n[[models]]\nname = \"m\"\nprotocol = \"json\"\nupstreams = [\"http://127.0.0.1:9\"]\nschema = \"s.json\"\n{monitor}"
        );
        let errs = mlsec_gateway::config::Config::parse(
            &text,
            std::path::Path::new("gateway.toml"),
            &base,
        )
        .expect_err(monitor);
        let hit = errs
            .0
            .iter()
            .find(|e| e.path == field)
            .unwrap_or_else(|| panic!("{field} not in {errs}"));
        assert!(hit.message.contains(message), "{hit}");
        assert!(hit.line_col.is_some(), "{hit}");
    }
    let text = "[auth]\nkeys_file = \"k.json\"\n[policies.p]\nmodels = [\"*\"]\n[monitor]\nwebhook = \"ftp://x\"\n";
    let errs =
        mlsec_gateway::config::Config::parse(text, std::path::Path::new("gateway.toml"), &base)
            .expect_err("bad webhook");
    assert!(errs.0.iter().any(|e| e.path == "monitor.webhook"), "{errs}");
}
