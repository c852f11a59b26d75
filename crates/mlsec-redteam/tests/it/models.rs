//! tract runs the scikit-learn exports as onnxruntime does.

use std::collections::BTreeMap;

use mlsec_redteam::RedteamError;
use mlsec_redteam::data;
use mlsec_redteam::model::{Classifier, Scores};

use crate::fixture;

#[test]
fn tract_matches_onnxruntime_on_every_fixture_model() {
    let expected: BTreeMap<String, Vec<Vec<f32>>> =
        serde_json::from_slice(&std::fs::read(fixture("expected.json")).unwrap()).unwrap();
    assert_eq!(expected.len(), 10);
    for (name, rows) in &expected {
        let data_file = match name.as_str() {
            n if n.starts_with("digits") => "digits_test.csv",
            n if n.starts_with("credit") => "credit_test.csv",
            n if n.starts_with("member_ref") => "member_population.csv",
            _ => "member_train.csv",
        };
        let d = data::read(&fixture(data_file), None, &[], None).unwrap();
        let m = Classifier::load(&fixture(name), Some(d.width()), None).unwrap();
        let scores = if name.contains("logits") {
            Scores::Logits
        } else {
            Scores::Probabilities
        };
        assert_eq!(m.scores(), scores, "{name}");
        let got = m.predict(&d.x[..5 * d.width()]).unwrap();
        let c = m.classes();
        assert_eq!(c, rows[0].len(), "{name}");
        for (i, row) in rows.iter().enumerate() {
            for (k, p) in row.iter().enumerate() {
                let g = got[i * c + k];
                assert!(
                    (g - p).abs() < 1e-4,
                    "{name} row {i} class {k}: tract {g}, onnxruntime {p}"
                );
            }
        }
        assert_eq!(m.queries(), 5);
    }
}

#[test]
fn a_model_that_is_not_onnx_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.onnx");
    std::fs::write(&p, b"this is not a protobuf at all \xff\xff\xff").unwrap();
    let e = Classifier::load(&p, Some(4), None).unwrap_err();
    assert!(matches!(e, RedteamError::Model { .. }), "{e}");
    assert!(e.to_string().contains("model.onnx"), "{e}");
    let e = Classifier::load(&dir.path().join("absent.onnx"), Some(4), None).unwrap_err();
    assert!(e.to_string().contains("absent.onnx"), "{e}");
}

#[test]
fn data_problems_name_the_file_and_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    std::fs::write(&p, "a,b,label\n1,2,0\n1,,1\n1,x,0\n3,4,7\n5,6,1\n").unwrap();
    let d = data::read(&p, None, &[], Some(2)).unwrap();
    assert_eq!(d.rows(), 2);
    assert_eq!(d.source_rows, vec![1, 5]);
    assert_eq!(d.unused.invalid, 3);
    let first = d.unused.first.clone().unwrap();
    assert!(
        first.contains("data row 2") && first.contains("b is missing"),
        "{first}"
    );
    // Text labels need the class names.
    std::fs::write(&p, "a,label\n1,cat\n2,dog\n").unwrap();
    let e = data::read(&p, None, &[], None).unwrap_err();
    assert!(e.to_string().contains("--classes"), "{e}");
    let d = data::read(&p, None, &["dog".into(), "cat".into()], None).unwrap();
    assert_eq!(d.y, vec![1, 0]);
    let e = data::read(&p, Some("nope"), &[], None).unwrap_err();
    assert!(e.to_string().contains("no label column \"nope\""), "{e}");
}

#[test]
fn an_image_shaped_input_gives_its_layout_and_logits_become_probabilities() {
    let m = Classifier::load(&fixture("digits_logits.onnx"), None, None).unwrap();
    assert_eq!(m.row_shape(), &[1, 8, 8]);
    assert_eq!(m.features(), 64);
    assert_eq!(
        m.layout(),
        Some(mlsec_redteam::model::Layout {
            channels: 1,
            height: 8,
            width: 8
        })
    );
    assert_eq!(m.output_name(), "logits");
    // The same network as digits_mlp.onnx: the same classes on the test digits.
    let d = data::read(&fixture("digits_test.csv"), None, &[], None).unwrap();
    let mlp = Classifier::load(&fixture("digits_mlp.onnx"), Some(64), None).unwrap();
    assert_eq!(m.labels(&d.x).unwrap(), mlp.labels(&d.x).unwrap());
    // A declared layout that does not fit the input is an error naming the flag.
    let e = Classifier::load(
        &fixture("digits_mlp.onnx"),
        Some(64),
        mlsec_redteam::model::Layout::parse("9x9"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--image 1x9x9"), "{e}");
}
