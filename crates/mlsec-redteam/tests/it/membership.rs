//! Membership audits with known outcomes: a fully grown forest memorises its training rows, a
//! regularised logistic regression does not.

use mlsec_redteam::data;
use mlsec_redteam::membership::{self, Options, Verdict};
use mlsec_redteam::membership_findings;
use mlsec_redteam::model::Classifier;

use crate::fixture;

fn audit(model: &str, refs: bool) -> membership::MembershipReport {
    let read = |n: &str| data::read(&fixture(n), None, &[], None).unwrap();
    let (train, holdout, pop) = (
        read("member_train.csv"),
        read("member_holdout.csv"),
        read("member_population.csv"),
    );
    let m = Classifier::load(&fixture(model), Some(train.width()), None).unwrap();
    let references: Vec<Classifier> = if refs {
        (0..4)
            .map(|i| {
                Classifier::load(&fixture(&format!("member_ref_{i}.onnx")), Some(12), None).unwrap()
            })
            .collect()
    } else {
        Vec::new()
    };
    membership::run(
        &m,
        &train,
        &holdout,
        Some(&pop),
        &references,
        &Options::default(),
    )
    .unwrap()
}

fn auc(r: &membership::MembershipReport, attack: &str) -> f64 {
    r.attacks.iter().find(|a| a.attack == attack).unwrap().auc
}

#[test]
fn an_overfit_forest_exposes_its_training_rows() {
    let r = audit("member_overfit.onnx", true);
    assert_eq!((r.members, r.non_members), (500, 500));
    assert!(r.train_accuracy > 0.95 && r.holdout_accuracy < 0.85);
    for attack in ["loss", "population", "confidence", "reference"] {
        assert!(auc(&r, attack) > 0.65, "{attack}: {:?}", r.attacks);
    }
    assert_ne!(r.verdict, Verdict::NoMeasurableLeak);
    // A forest's scores are votes out of ten: members and the luckiest non-members tie at the
    // top, so the loss threshold cannot pick members out at 1% false positives; the reference
    // models' calibration per record can.
    let loss = r.attacks.iter().find(|a| a.attack == "loss").unwrap();
    let reference = r.attacks.iter().find(|a| a.attack == "reference").unwrap();
    assert!(reference.tpr_at_1_fpr > 0.05, "{reference:?}");
    assert!(
        reference.tpr_at_1_fpr > loss.tpr_at_1_fpr,
        "{:?}",
        r.attacks
    );
    let best = r.attacks.iter().find(|a| a.attack == r.strongest).unwrap();
    assert_eq!(best.per_class.len(), 2);
    assert!(best.per_class.iter().all(|c| c.auc.unwrap() > 0.6));
    // Some members score above every non-member.
    assert!(reference.tpr_at_0_1_fpr > 0.01, "{reference:?}");
    assert_eq!(r.exposed.len(), 10);
    assert!(r.exposed.iter().all(|e| (1..=500).contains(&e.row)));
    assert!(r.interpretation.contains("differential privacy"));
    assert!(r.interpretation.contains("at least 1,000"));
    let f = membership_findings(&r);
    assert_eq!(f.findings.len(), 1);
    assert_eq!(f.findings[0].rule.id, "RTM002");
    assert!(f.findings[0].severity >= mlsec_diagnostics::Severity::Medium);
}

#[test]
fn a_regularised_model_does_not() {
    let r = audit("member_regular.onnx", false);
    for a in &r.attacks {
        assert!(a.auc < 0.58, "{a:?}");
    }
    assert_eq!(r.verdict, Verdict::NoMeasurableLeak, "{:?}", r.attacks);
    assert!(membership_findings(&r).findings.is_empty());
    assert!(r.interpretation.starts_with("No measurable"));
}

#[test]
fn reference_models_must_fit_the_target() {
    let read = |n: &str| data::read(&fixture(n), None, &[], None).unwrap();
    let (train, holdout) = (read("member_train.csv"), read("member_holdout.csv"));
    let m = Classifier::load(&fixture("member_overfit.onnx"), Some(12), None).unwrap();
    let wrong = Classifier::load(&fixture("credit_logistic.onnx"), Some(6), None).unwrap();
    let e = membership::run(&m, &train, &holdout, None, &[wrong], &Options::default()).unwrap_err();
    assert!(e.to_string().contains("credit_logistic.onnx"), "{e}");
}
