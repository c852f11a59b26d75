//! Red-team testing of models before and after deployment.
//!
//! `mlsec redteam classifier` attacks an ONNX classifier in process (tract, no Python) with
//! black-box evasion attacks and reports how its accuracy falls with the attacker's budget;
//! `mlsec redteam membership` measures how well an attacker can tell the model's training
//! records from records it never saw.
//!
//! # Brief overview
//! - [`model::Classifier`] loads and runs an ONNX classifier: rows of `f32` in, probabilities
//!   out, every query counted.
//! - [`data`] reads labelled rows with `mlsec-drift`'s readers (CSV, TSV, JSON Lines, Parquet).
//! - [`attack`] holds the attacks (noise, worst-of-k, Square, HopSkipJump, feature-wise) over a
//!   [`attack::Domain`] that keeps every queried point a valid input.
//! - [`classifier::run`] and [`membership::run`] produce the serialisable reports;
//!   [`classifier_findings`] and [`membership_findings`] turn them into the shared findings
//!   model (rules `RTM001`-`RTM003`); [`html`] renders either as a self-contained page.
//! - [`examples`] writes adversarial examples for adversarial training and regression tests.
//!
//! ```no_run
//! use mlsec_redteam::{classifier, data, model::Classifier};
//! let data = data::read("test.csv".as_ref(), Some("label"), &[], None).unwrap();
//! let model = Classifier::load("model.onnx".as_ref(), Some(data.width()), None).unwrap();
//! let report = classifier::run(&model, &data, &classifier::Options::default()).unwrap();
//! println!("clean {:.3}", report.clean_accuracy);
//! ```

#![forbid(unsafe_code)]

pub mod attack;
pub mod classifier;
pub mod data;
pub mod examples;
pub mod html;
pub mod membership;
pub mod model;
pub mod rng;
pub mod trees;

use std::path::PathBuf;

use mlsec_diagnostics::{Finding, Location, Report, Rule, Severity};

/// The version of the JSON reports' shape (`docs/redteam-report.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

const CHEAT_SHEET: &str =
    "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedteamError {
    #[error("{}: {problem}", path.display())]
    Model { path: PathBuf, problem: String },
    #[error("{}: running the model: {problem}", path.display())]
    Run { path: PathBuf, problem: String },
    #[error("{path}: {problem}")]
    Data { path: String, problem: String },
    #[error("{problem}")]
    Options { problem: String },
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub static RTM_FRAGILE: Rule = Rule {
    id: "RTM001",
    name: "adversarial-fragility",
    summary: "A black-box attack within the budget brings the classifier's accuracy below the threshold",
    severity: Severity::High,
    cwe: &["CWE-1039"],
    owasp: &["ML01"],
    what: "Attacks the classifier with the scores or labels an API gives (uniform noise, worst-of-k noise, the Square attack, HopSkipJump, feature-wise changes within declared ranges) at each budget and compares the accuracy left with --min-accuracy.",
    why: "Inputs changed within a small budget, invisible to a person or within a field's plausible range, make the model answer wrongly: a stop sign read as a speed limit, a fraudulent transaction scored as safe. An attacker needs nothing but API access.",
    example: "square at eps 0.1: accuracy 0.995 -> 0.110 (176 of 199 correct samples broken)",
    remediation: "Train on the adversarial examples found (--save-examples), add input validation and range checks for tabular features, limit the precision of returned scores (labels only stops score-based attacks), rate-limit and monitor queries (mlsec gateway), and re-run this test in CI.",
    references: &[
        CHEAT_SHEET,
        "https://arxiv.org/abs/1912.00049",
        "https://arxiv.org/abs/1904.02144",
    ],
};

pub static RTM_MEMBERSHIP: Rule = Rule {
    id: "RTM002",
    name: "membership-leakage",
    summary: "An attacker can tell the model's training records from records it never saw",
    severity: Severity::High,
    cwe: &["CWE-359"],
    owasp: &["ML04", "ML03"],
    what: "Scores training and holdout records with loss, confidence, population-calibrated and reference-model attacks and reports the ROC AUC and the true-positive rate at 0.1% and 1% false positives.",
    why: "A model that memorises its training set reveals who was in it: that a patient's record trained a medical model is itself sensitive. The same memorisation enables model inversion.",
    example: "reference attack: AUC 0.84, 31.2% of members found at 1% false positives",
    remediation: "Regularise (weight decay, early stopping, smaller trees), train on more data, and for sensitive records train with differential privacy (DP-SGD); re-run the audit to confirm.",
    references: &[CHEAT_SHEET, "https://arxiv.org/abs/2112.03570"],
};

pub static RTM_UNCHECKED: Rule = Rule {
    id: "RTM003",
    name: "redteam-rows-not-used",
    summary: "Rows of the test data could not be used",
    severity: Severity::Low,
    cwe: &["CWE-20"],
    owasp: &["ML01"],
    what: "Counts rows the reader could not parse, rows past its limit, and rows with a missing or non-numeric feature or a label that is not a class of the model.",
    why: "Results hold only for the rows used; rows left out silently would overstate robustness or privacy.",
    example: "digits.csv: 3 rows not used (data row 7: p12 is missing)",
    remediation: "Fix or remove the rows, or give --classes for text labels.",
    references: &[CHEAT_SHEET],
};

pub static RULES: &[&Rule] = &[&RTM_FRAGILE, &RTM_MEMBERSHIP, &RTM_UNCHECKED];

fn unused_findings(report: &mut Report, path: &str, unused: &data::Unused) {
    if unused.total() > 0 {
        report.findings.push(Finding::new(
            &RTM_UNCHECKED,
            Location::file(path),
            format!(
                "{} rows not used ({} unreadable, {} past the row limit, {} invalid){}",
                unused.total(),
                unused.unreadable,
                unused.not_read,
                unused.invalid,
                unused
                    .first
                    .as_ref()
                    .map(|f| format!("; first: {f}"))
                    .unwrap_or_default()
            ),
        ));
    }
}

/// Findings of a classifier run: one per attack and budget under the accuracy threshold.
pub fn classifier_findings(r: &classifier::ClassifierReport) -> Report {
    let mut report = Report {
        rules: RULES.to_vec(),
        ..Report::default()
    };
    for a in &r.results {
        if a.robust_accuracy < r.min_accuracy {
            report.findings.push(
                Finding::new(
                    &RTM_FRAGILE,
                    Location::file(&r.model).field(format!("{}@{}", a.attack.as_str(), a.budget)),
                    format!(
                        "{} at eps {}: accuracy {:.3} -> {:.3} ({} of {} correct samples broken, {} access)",
                        a.attack.as_str(),
                        a.budget,
                        r.clean_accuracy,
                        a.robust_accuracy,
                        a.succeeded,
                        a.attacked,
                        a.access
                    ),
                )
                .evidence(format!("below --min-accuracy {}", r.min_accuracy)),
            );
        }
    }
    if r.clean_accuracy < r.min_accuracy {
        report.findings.push(Finding::new(
            &RTM_FRAGILE,
            Location::file(&r.model).field("clean"),
            format!(
                "clean accuracy {:.3} is already below --min-accuracy {} on {}",
                r.clean_accuracy, r.min_accuracy, r.data
            ),
        ));
    }
    unused_findings(&mut report, &r.data, &r.unused);
    report.sort();
    report
}

/// Findings of a membership audit.
pub fn membership_findings(r: &membership::MembershipReport) -> Report {
    let mut report = Report {
        rules: RULES.to_vec(),
        ..Report::default()
    };
    if r.verdict != membership::Verdict::NoMeasurableLeak
        && let Some(best) = r.attacks.iter().find(|a| a.attack == r.strongest)
    {
        let low = r
            .attacks
            .iter()
            .max_by(|a, b| a.tpr_at_1_fpr.total_cmp(&b.tpr_at_1_fpr))
            .unwrap_or(best);
        let mut f = Finding::new(
            &RTM_MEMBERSHIP,
            Location::file(&r.model),
            format!(
                "{} attack: AUC {:.3}; {} attack: {:.1}% of members found at 1% false positives ({:.1}% at 0.1%); train accuracy {:.3}, holdout {:.3}",
                best.attack,
                best.auc,
                low.attack,
                low.tpr_at_1_fpr * 100.0,
                low.tpr_at_0_1_fpr * 100.0,
                r.train_accuracy,
                r.holdout_accuracy
            ),
        )
        .evidence(format!(
            "thresholds: AUC {} and TPR@1%FPR {}",
            r.max_auc, r.max_tpr_at_1
        ));
        if r.verdict == membership::Verdict::Leaks {
            f = f.severity(Severity::Medium);
        }
        report.findings.push(f);
    }
    for (path, u) in &r.unused {
        unused_findings(&mut report, path, u);
    }
    report.sort();
    report
}
