//! Attacks with known outcomes: the digits MLP withstands noise but not the Square attack or
//! HopSkipJump; the credit forest's decisions hang on debt_ratio and late_payments.

use mlsec_redteam::classifier::{self, AttackKind, ClassifierReport, Options};
use mlsec_redteam::{classifier_findings, examples};

use crate::load;

fn acc(r: &ClassifierReport, attack: AttackKind, budget: f32) -> f64 {
    r.results
        .iter()
        .find(|a| a.attack == attack && a.budget == budget)
        .unwrap_or_else(|| panic!("no result for {attack:?} at {budget}"))
        .robust_accuracy
}

fn digits(budgets: Vec<f32>) -> (ClassifierReport, mlsec_redteam::data::Dataset) {
    let (m, d) = load("digits_mlp.onnx", "digits_test.csv", Some("8x8"));
    let opts = Options {
        budgets,
        queries: 300,
        hsj_iterations: 15,
        ..Options::default()
    };
    (classifier::run(&m, &d, &opts).unwrap(), d)
}

#[test]
fn digits_withstand_noise_but_not_square_or_hop_skip_jump() {
    let (r, _) = digits(vec![0.1, 0.2]);
    assert_eq!(r.mode, "image");
    assert_eq!(r.samples, 200);
    assert!(r.clean_accuracy > 0.95, "{}", r.clean_accuracy);
    // Robust to random noise of the same size...
    assert!(
        acc(&r, AttackKind::Noise, 0.1) > r.clean_accuracy - 0.03,
        "{:?}",
        r.results
    );
    assert!(
        acc(&r, AttackKind::WorstOfK, 0.1) > r.clean_accuracy - 0.1,
        "{:?}",
        r.results
    );
    // ...but not to a search that uses the scores, or the labels alone.
    assert!(acc(&r, AttackKind::Square, 0.2) < 0.3, "{:?}", r.results);
    assert!(acc(&r, AttackKind::Square, 0.1) < acc(&r, AttackKind::Noise, 0.1) - 0.2);
    assert!(
        acc(&r, AttackKind::HopSkipJump, 0.2) < 0.6,
        "{:?}",
        r.results
    );
    // Larger budgets never help the model.
    for a in [AttackKind::Square, AttackKind::HopSkipJump] {
        assert!(acc(&r, a, 0.2) <= acc(&r, a, 0.1));
    }
    // Every example is a valid input within the budget, and is misclassified.
    for e in &r.examples {
        assert!(e.distance <= 0.2 + 1e-5, "{e:?}");
        assert!(e.x.iter().all(|v| (0.0..=1.0).contains(v)));
        assert_ne!(e.label, e.adversarial_label);
    }
    assert!(!r.worst.is_empty() && r.worst.windows(2).all(|w| w[0].distance <= w[1].distance));
    // The feature-wise attack is for tables only.
    assert!(r.results.iter().all(|a| a.attack != AttackKind::Features));
    // Findings under the default threshold (0.5): Square breaks it, noise does not.
    let f = classifier_findings(&r);
    let fields: Vec<String> = f
        .findings
        .iter()
        .filter_map(|f| f.location.field.clone())
        .collect();
    assert!(fields.contains(&"square@0.2".to_string()), "{fields:?}");
    assert!(!fields.iter().any(|x| x.starts_with("noise")), "{fields:?}");
}

#[test]
fn runs_are_reproducible_and_seeds_matter() {
    let (m, d) = load("digits_mlp.onnx", "digits_test.csv", Some("8x8"));
    let opts = Options {
        budgets: vec![0.1],
        attacks: vec![AttackKind::Square, AttackKind::WorstOfK],
        queries: 100,
        ..Options::default()
    };
    let a = classifier::run(&m, &d, &opts).unwrap();
    let b = classifier::run(&m, &d, &opts).unwrap();
    assert_eq!(a.min_distance, b.min_distance);
    assert_eq!(a.queries, b.queries);
    let c = classifier::run(&m, &d, &Options { seed: 9, ..opts }).unwrap();
    assert_ne!(a.min_distance, c.min_distance);
}

#[test]
fn credit_decisions_hang_on_the_features_that_make_them() {
    let (m, d) = load("credit_forest.onnx", "credit_test.csv", None);
    assert_eq!(d.label_column, "default");
    // The score- and label-based searches are covered on digits; a forest's queries are
    // slow in tract (docs/redteam.md).
    let opts = Options {
        budgets: vec![0.05, 0.2],
        attacks: vec![AttackKind::Noise, AttackKind::Features],
        feature_grid: 5,
        ..Options::default()
    };
    let r = classifier::run(&m, &d, &opts).unwrap();
    assert_eq!(r.mode, "tabular");
    assert!(r.clean_accuracy > 0.75, "{}", r.clean_accuracy);
    assert!(
        acc(&r, AttackKind::Features, 0.2) < r.clean_accuracy - 0.2,
        "{:?}",
        r.results
    );
    assert!(
        acc(&r, AttackKind::Noise, 0.05) > r.clean_accuracy - 0.1,
        "{:?}",
        r.results
    );
    let top: Vec<&str> = r
        .feature_weakness
        .iter()
        .take(2)
        .map(|f| f.feature.as_str())
        .collect();
    assert!(top.contains(&"debt_ratio"), "{:?}", r.feature_weakness);
    // Whole-numbered features stay whole, every value stays in the data's range.
    let late = d.names.iter().position(|n| n == "late_payments").unwrap();
    assert!(r.domain.integer.contains(&"late_payments".to_string()));
    for e in &r.examples {
        assert_eq!(e.x[late].fract(), 0.0, "{e:?}");
        for c in &e.changes {
            assert_ne!(c.from, c.to);
        }
    }
}

#[test]
fn frozen_features_and_declared_ranges_hold() {
    let (m, d) = load("credit_forest.onnx", "credit_test.csv", None);
    let all: Vec<String> = d.names.clone();
    let opts = Options {
        budgets: vec![0.2],
        attacks: vec![
            AttackKind::Features,
            AttackKind::Square,
            AttackKind::WorstOfK,
        ],
        queries: 100,
        frozen: all,
        ..Options::default()
    };
    let r = classifier::run(&m, &d, &opts).unwrap();
    assert!(r.examples.is_empty(), "nothing may change: {:?}", r.results);
    for a in &r.results {
        assert!((a.robust_accuracy - r.clean_accuracy).abs() < 1e-12);
    }
    // Only debt_ratio may move, and only within 0.2..0.4.
    let frozen: Vec<String> = d
        .names
        .iter()
        .filter(|n| *n != "debt_ratio")
        .cloned()
        .collect();
    let opts = Options {
        budgets: vec![0.5],
        attacks: vec![AttackKind::Features],
        frozen,
        ranges: vec![("debt_ratio".into(), 0.2, 0.4)],
        ..Options::default()
    };
    let r = classifier::run(&m, &d, &opts).unwrap();
    assert!(!r.examples.is_empty());
    for e in &r.examples {
        assert_eq!(e.changes.len(), 1);
        assert_eq!(e.changes[0].feature, "debt_ratio");
        // Within the range, or (for a row already below it) moved toward it.
        let c = &e.changes[0];
        assert!(c.to <= 0.4 && c.to >= c.from.min(0.2), "{e:?}");
        if c.from >= 0.2 {
            assert!(c.to >= 0.2, "{e:?}");
        }
    }
    let e = classifier::run(
        &m,
        &d,
        &Options {
            frozen: vec!["salary".into()],
            ..Options::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("--frozen salary"), "{e}");
}

#[test]
fn data_that_does_not_fit_the_model_is_an_error() {
    let (m, _) = load("credit_forest.onnx", "credit_test.csv", None);
    let (_, digits) = load("digits_mlp.onnx", "digits_test.csv", None);
    let e = classifier::run(&m, &digits, &Options::default()).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("digits_test.csv") && s.contains("64 feature columns"),
        "{s}"
    );
}

#[test]
fn examples_are_saved_in_the_models_input_format() {
    let (m, d) = load("digits_mlp.onnx", "digits_test.csv", Some("8x8"));
    let opts = Options {
        budgets: vec![0.2],
        attacks: vec![AttackKind::Square],
        queries: 200,
        ..Options::default()
    };
    let r = classifier::run(&m, &d, &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let n = examples::save(&r, &d.names, &d.label_column, m.row_shape(), dir.path()).unwrap();
    assert_eq!(n, r.examples.len());
    assert!(n > 100);
    let npy = std::fs::read(dir.path().join("adversarial.npy")).unwrap();
    let hlen = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + hlen]).unwrap();
    assert!(header.contains(&format!("'shape': ({n}, 64)")), "{header}");
    assert_eq!(npy.len(), 10 + hlen + n * 64 * 4);
    // The saved rows are adversarial when fed back to the model.
    let xs: Vec<f32> = npy[10 + hlen..]
        .chunks(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let labels = m.labels(&xs).unwrap();
    let csv = std::fs::read_to_string(dir.path().join("adversarial.csv")).unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .ends_with("label,adversarial_label,attack,distance,source_row")
    );
    for (line, got) in lines.zip(&labels) {
        let cells: Vec<&str> = line.split(',').collect();
        let truth: usize = cells[64].parse().unwrap();
        assert_ne!(*got, truth, "{line}");
        assert_eq!(cells[66], "square");
    }
}
