//! mlsec-redteam integration tests, on the models and data `scripts/redteam_fixtures.py` made
//! with scikit-learn and skl2onnx (`fixtures/redteam/`): each attack and audit against a model
//! whose weakness is known.

#![allow(clippy::unwrap_used, clippy::float_cmp)]

mod classifier;
mod membership;
mod models;
mod never_panics;

use std::path::PathBuf;

use mlsec_redteam::data::{self, Dataset};
use mlsec_redteam::model::{Classifier, Layout};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/redteam")
        .join(name)
}

pub fn load(model: &str, data: &str, layout: Option<&str>) -> (Classifier, Dataset) {
    let d = data::read(&fixture(data), None, &[], None).unwrap();
    let m = Classifier::load(
        &fixture(model),
        Some(d.width()),
        layout.and_then(Layout::parse),
    )
    .unwrap();
    (m, d)
}
