//! Damaged models never panic: truncations and byte flips of a real export load as a model or
//! fail with an error naming the file.

use mlsec_redteam::model::Classifier;
use proptest::prelude::*;

use crate::fixture;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn damaged_models_never_panic(cut in 0usize..15_496, flips in proptest::collection::vec((0usize..15_496, any::<u8>()), 0..8)) {
        let mut bytes = std::fs::read(fixture("digits_mlp.onnx")).unwrap();
        for (at, v) in flips {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= v;
            }
        }
        bytes.truncate(cut.max(1));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("damaged.onnx");
        std::fs::write(&p, &bytes).unwrap();
        if let Ok(m) = Classifier::load(&p, Some(64), None) {
            // A model that loads runs on a row or fails with an error, never a panic.
            let _ = m.predict(&[0.5; 64]);
        } else {
            let e = Classifier::load(&p, Some(64), None).unwrap_err();
            prop_assert!(e.to_string().contains("damaged.onnx"), "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// A damaged forest reaches mlsec's tree-ensemble evaluator with whatever tables tract
    /// decoded: it loads and runs, or fails with an error naming the file.
    #[test]
    fn damaged_forests_never_panic(flips in proptest::collection::vec((0usize..20_000, any::<u8>()), 1..8)) {
        let mut bytes = std::fs::read(fixture("credit_forest.onnx")).unwrap();
        let len = bytes.len();
        for (at, v) in flips {
            bytes[at % len] ^= v;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("damaged.onnx");
        std::fs::write(&p, &bytes).unwrap();
        match Classifier::load(&p, Some(6), None) {
            Ok(m) => {
                let _ = m.predict(&[0.5, f32::NAN, 1e30, -1e30, 0.0, 3.0]);
            }
            Err(e) => prop_assert!(e.to_string().contains("damaged.onnx"), "{}", e),
        }
    }
}

use mlsec_redteam::attack::{self, Domain, HsjOptions, Target};
use mlsec_redteam::rng::Rng;

fn logistic() -> &'static Classifier {
    static MODEL: std::sync::OnceLock<Classifier> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| Classifier::load(&fixture("credit_logistic.onnx"), Some(6), None).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Any rows, ranges, budgets and feature flags: every attack returns, and every example it
    /// reports is misclassified, inside the valid ranges, within the budget, whole where the
    /// feature is whole and unchanged where it is frozen.
    #[test]
    fn attacks_keep_their_examples_in_the_domain(
        rows in proptest::collection::vec(proptest::collection::vec(-1e6f32..1e6, 6), 1..6),
        spans in proptest::collection::vec((-1e5f32..1e5, 0f32..1e5), 6),
        flags in proptest::collection::vec((any::<bool>(), any::<bool>()), 6),
        eps in prop_oneof![Just(0.0f32), 1e-6f32..1.0, Just(10.0f32)],
        seed in any::<u64>(),
    ) {
        let m = logistic();
        let domain = Domain {
            lo: spans.iter().map(|s| s.0).collect(),
            hi: spans.iter().map(|s| s.0 + s.1).collect(),
            scale: spans.iter().map(|s| s.1).collect(),
            integer: flags.iter().map(|f| f.0).collect(),
            frozen: flags.iter().map(|f| f.1).collect(),
            layout: None,
        };
        // Samples start inside the domain, as data rows do.
        let mut x: Vec<f32> = Vec::new();
        for r in &rows {
            let start = x.len();
            x.extend(r);
            let x0 = x[start..].to_vec();
            domain.project(&x0, &mut x[start..], f32::MAX);
        }
        let clean = m.labels(&x).unwrap();
        let y = clean.clone();
        let t = Target { model: m, domain: &domain, x: &x, y: &y };
        let active: Vec<usize> = (0..rows.len()).collect();
        let rng = Rng::new(seed);
        let check = |i: usize, h: &attack::Hit, budget: f32| {
            let x0 = &x[i * 6..(i + 1) * 6];
            assert_ne!(h.label, y[i]);
            assert_ne!(m.labels(&h.x).unwrap()[0], y[i]);
            assert!(h.distance <= budget * 1.0001 + 1e-6, "{} > {budget}", h.distance);
            for (j, (v, v0)) in h.x.iter().zip(x0).enumerate() {
                assert!(*v >= domain.lo[j].min(*v0) && *v <= domain.hi[j].max(*v0), "{j}: {:?}", h.x);
                if domain.frozen[j] || domain.scale[j] == 0.0 {
                    assert_eq!(v.to_bits(), v0.to_bits());
                }
                if domain.integer[j] && v0.fract() == 0.0 {
                    assert_eq!(v.fract(), 0.0, "{j}: {:?}", h.x);
                }
            }
        };
        for (i, h) in attack::noise(&t, &active, eps, 3, &rng).unwrap().iter().enumerate() {
            if let Some(h) = h { check(i, h, eps); }
        }
        for (i, h) in attack::square(&t, &active, eps, 20, 0.3, &rng).unwrap().iter().enumerate() {
            if let Some(h) = h { check(i, h, eps); }
        }
        for (i, h) in attack::features(&t, &active, eps, 3).unwrap().iter().enumerate() {
            if let Some((h, _)) = h { check(i, h, eps); }
        }
        let opts = HsjOptions { iterations: 3, queries: 300, ..HsjOptions::default() };
        for (i, h) in attack::hop_skip_jump(&t, &active, &clean, opts, &rng).unwrap().iter().enumerate() {
            if let Some(h) = h { check(i, h, f32::MAX); }
        }
    }
}
