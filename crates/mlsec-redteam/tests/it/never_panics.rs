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
