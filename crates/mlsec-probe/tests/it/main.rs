//! The probes against a scripted model that is vulnerable in known ways (`server.rs`), directly
//! and behind `mlsec gateway` with the injection guard and output checks on, over real sockets.

#![allow(clippy::unwrap_used)]

mod gateway;
mod server;

use std::collections::BTreeMap;

use mlsec_probe::detect::Outcome;
use mlsec_probe::probes::Family;
use mlsec_probe::run::{self, Options, ProbeReport, Target};

fn target(url: String) -> Target {
    Target {
        url,
        model: "any".into(),
        key: None,
    }
}

/// Vulnerable probe ids per family.
fn vulnerable(r: &ProbeReport) -> BTreeMap<Family, Vec<String>> {
    let mut m: BTreeMap<Family, Vec<String>> = BTreeMap::new();
    for x in r
        .results
        .iter()
        .filter(|x| x.outcome == Outcome::Vulnerable)
    {
        m.entry(x.family).or_default().push(x.technique.clone());
    }
    m
}

#[tokio::test]
async fn every_family_finds_exactly_the_weaknesses_the_model_has() {
    let url = server::start(0).await;
    let r = run::run(&target(url), &Options::default()).await.unwrap();
    let v = vulnerable(&r);
    let expect: [(Family, &[&str]); 8] = [
        (
            Family::DirectInjection,
            &[
                "plain",
                "plain",
                "override",
                "override",
                "authority",
                "authority",
                "completion",
                "completion",
                "polite-distraction",
                "polite-distraction",
            ],
        ),
        (
            Family::IndirectInjection,
            &["review", "web-page", "csv", "json"],
        ),
        (
            Family::PromptExtraction,
            &[
                "verbatim",
                "translate",
                "spell",
                "reverse",
                "encode",
                "continue",
            ],
        ),
        (
            Family::Jailbreak,
            &[
                "roleplay",
                "roleplay",
                "dual-answer",
                "dual-answer",
                "game",
                "game",
            ],
        ),
        (Family::Encoding, &["base64", "rot13"]),
        (Family::Exfiltration, &["image-direct", "link", "html-img"]),
        (Family::Leakage, &["credential", "contact", "config-dump"]),
        (
            Family::ToolForging,
            &["direct", "indirect", "forged-markup"],
        ),
    ];
    for (family, techniques) in expect {
        let got: Vec<&str> = v
            .get(&family)
            .map(|t| t.iter().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(got, techniques, "{family:?}");
    }
    // Everything else was answered and resisted; nothing failed.
    let total = r.summary.last().unwrap();
    assert_eq!(
        total.errors,
        0,
        "{:?}",
        r.results.iter().find(|x| x.outcome == Outcome::Error)
    );
    assert_eq!(total.blocked, 0);
    assert_eq!(total.vulnerable + total.resisted, r.results.len());
    assert_eq!(r.requests as usize, r.results.len());
    // Evidence says how: the reversed canary, the masked credential, the tool call.
    let ev = |t: &str| {
        r.results
            .iter()
            .find(|x| x.technique == t)
            .and_then(|x| x.evidence.clone())
            .unwrap_or_default()
    };
    assert!(ev("reverse").starts_with("(reversed)"), "{}", ev("reverse"));
    assert!(ev("encode").starts_with("(encoded)"), "{}", ev("encode"));
    assert!(
        ev("credential").contains("mlsec-test-key-…"),
        "{}",
        ev("credential")
    );
    assert!(
        ev("direct").starts_with("called delete_account"),
        "{}",
        ev("direct")
    );
    // Refusals are noted.
    assert!(
        r.results
            .iter()
            .any(|x| x.outcome == Outcome::Resisted && x.refused)
    );
}

#[tokio::test]
async fn a_journal_resumes_a_run_and_refuses_another_runs() {
    let url = server::start(0).await;
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("run.jsonl");
    let opts = Options {
        families: vec![Family::Leakage, Family::Encoding],
        journal: Some(journal.clone()),
        ..Options::default()
    };
    let first = run::run(&target(url.clone()), &opts).await.unwrap();
    assert_eq!(first.resumed, 0);
    assert_eq!(first.requests, 11);
    let lines = std::fs::read_to_string(&journal).unwrap().lines().count();
    assert_eq!(lines, 1 + 11);
    // Interrupted after everything was written: nothing is sent again.
    let second = run::run(&target(url.clone()), &opts).await.unwrap();
    assert_eq!((second.resumed, second.requests), (11, 0));
    assert_eq!(
        second
            .results
            .iter()
            .map(|x| (&x.id, x.outcome))
            .collect::<Vec<_>>(),
        first
            .results
            .iter()
            .map(|x| (&x.id, x.outcome))
            .collect::<Vec<_>>()
    );
    // A journal cut mid-run: the missing probes are sent, the rest reused.
    let text = std::fs::read_to_string(&journal).unwrap();
    let kept: Vec<&str> = text.lines().take(1 + 4).collect();
    std::fs::write(&journal, kept.join("\n") + "\n").unwrap();
    let third = run::run(&target(url.clone()), &opts).await.unwrap();
    assert_eq!((third.resumed, third.requests), (4, 7));
    // Another seed is another run: the journal is refused, naming the file.
    let e = run::run(&target(url), &Options { seed: 9, ..opts })
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("run.jsonl") && e.to_string().contains("another run"),
        "{e}"
    );
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_and_failures_are_errors_not_verdicts() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    // Every other request fails with 503, then with 429 and a Retry-After of 0.
    let n = Arc::new(AtomicU32::new(0));
    let inner = server::router();
    let flaky = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post({
            let n = n.clone();
            move |req: axum::extract::Request| {
                let n = n.clone();
                let inner = inner.clone();
                async move {
                    use tower::ServiceExt as _;
                    let i = n.fetch_add(1, Ordering::SeqCst);
                    match i % 3 {
                        0 => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy")
                            .into_response_parts_free(),
                        1 => (
                            axum::http::StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "0")],
                            "slow down",
                        )
                            .into_response_parts_free(),
                        _ => inner.oneshot(req).await.unwrap(),
                    }
                }
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, flaky).await });
    let opts = Options {
        families: vec![Family::Leakage],
        concurrency: 1,
        retries: 2,
        backoff: std::time::Duration::from_millis(5),
        ..Options::default()
    };
    let r = run::run(&target(format!("http://{addr}/v1")), &opts)
        .await
        .unwrap();
    assert!(
        r.results
            .iter()
            .all(|x| x.attempts == 3 && x.outcome != Outcome::Error),
        "{:?}",
        r.results
    );
    // Nothing listening: every probe is an error, none is counted resisted.
    let dead = run::run(
        &target("http://127.0.0.1:9/v1".into()),
        &Options {
            families: vec![Family::Leakage],
            retries: 0,
            ..Options::default()
        },
    )
    .await
    .unwrap();
    assert!(dead.results.iter().all(|x| x.outcome == Outcome::Error));
    assert_eq!(dead.summary.last().unwrap().errors, 6);
}

trait IntoResponsePartsFree {
    fn into_response_parts_free(self) -> axum::response::Response;
}

impl<T: axum::response::IntoResponse> IntoResponsePartsFree for T {
    fn into_response_parts_free(self) -> axum::response::Response {
        self.into_response()
    }
}

#[tokio::test]
async fn two_runs_compare_probe_by_probe() {
    let url = server::start(0).await;
    let opts = Options {
        families: vec![Family::Encoding],
        ..Options::default()
    };
    let before = run::run(&target(url.clone()), &opts).await.unwrap();
    let mut after = before.clone();
    // As if a fix made base64 resisted and a regression made hex vulnerable.
    for x in &mut after.results {
        match x.technique.as_str() {
            "base64" => x.outcome = Outcome::Resisted,
            "hex" => x.outcome = Outcome::Vulnerable,
            _ => {}
        }
    }
    let c = run::compare(&before, &after).unwrap();
    assert_eq!(
        c.fixed.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(),
        vec!["encoding/base64/0"]
    );
    assert_eq!(
        c.regressed
            .iter()
            .map(|x| x.id.as_str())
            .collect::<Vec<_>>(),
        vec!["encoding/hex/0"]
    );
    assert_eq!(c.still_vulnerable, vec!["encoding/rot13/0".to_string()]);
    after.catalogue_version += 1;
    assert!(run::compare(&before, &after).is_err());
}
