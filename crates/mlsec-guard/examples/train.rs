//! Trains the guard's linear layer and reports grouped cross-validation.
//!
//! ```text
//! python3 scripts/guard_data.py                       # target/guard-data/corpus.jsonl
//! cargo run --release -p mlsec-guard --example train -- target/guard-data/corpus.jsonl \
//!     [--out crates/mlsec-guard/model/guard.bin]
//! ```
//!
//! Cross-validation is grouped by attack family: for each family, a model trained without any of
//! it (and without the benign fold being scored) is scored on it, so no family is ever in train
//! and test at once. The threshold is set at 1% false positives on the out-of-fold benign scores;
//! the table gives recall at that threshold per family, for the dictionary layers alone, the
//! model alone and both combined, and the false-positive rate on the hard negatives (benign text
//! about instructions, code and security). The final model is trained on everything, and its
//! thresholds are calibrated on out-of-fold benign scores the same way. Training is deterministic:
//! the same corpus gives the same bytes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use mlsec_guard::model::{self, DIM, Model};
use mlsec_guard::{Detector, Source, normalize};

struct Row {
    feats: Vec<(u32, f32)>,
    /// Buckets of the dictionary's reason codes.
    codes: Vec<u32>,
    label: bool,
    family: String,
    fold: u64,
    rule_score: f32,
}

/// A small deterministic generator for shuffles.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
}

const EPOCHS: usize = 10;
const L2: f32 = 1e-6;
const RATE: f32 = 0.5;
/// How strongly a reason code's weight is pulled back to its prior.
const PRIOR_PULL: f32 = 0.05;

/// Logistic regression by AdaGrad SGD, classes balanced.
fn train(rows: &[&Row]) -> (Vec<f32>, f32) {
    let mut w = vec![0.0f32; DIM];
    // The dictionary's codes start at their prior weights.
    let mut prior = vec![0.0f32; DIM];
    for (code, weight) in priors() {
        if let Some(b) = model::rule_bucket(&code) {
            w[b as usize] = weight;
            prior[b as usize] = weight;
        }
    }
    let mut g2 = vec![1e-6f32; DIM];
    let (mut b, mut gb) = (0.0f32, 1e-6f32);
    let pos = rows.iter().filter(|r| r.label).count().max(1) as f32;
    let neg = rows.iter().filter(|r| !r.label).count().max(1) as f32;
    let (wp, wn) = (
        rows.len() as f32 / (2.0 * pos),
        rows.len() as f32 / (2.0 * neg),
    );
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut rng = Lcg(42);
    for _ in 0..EPOCHS {
        for i in (1..order.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for &k in &order {
            let r = rows[k];
            let norm = 1.0 / (r.feats.len() as f32 + model::SHRINK);
            let mut z = b;
            for &(f, s) in &r.feats {
                z += s * w[f as usize] * norm;
            }
            for &c in &r.codes {
                z += w[c as usize];
            }
            let p = 1.0 / (1.0 + (-z).exp());
            let y = if r.label { 1.0 } else { 0.0 };
            let cw = if r.label { wp } else { wn };
            let g = (p - y) * cw;
            for &(f, s) in &r.feats {
                let f = f as usize;
                let gi = g * s * norm + L2 * w[f];
                g2[f] += gi * gi;
                w[f] -= RATE * gi / g2[f].sqrt();
            }
            // The dictionary's codes learn too, pulled back to their prior (not to zero): a family
            // the data lacks keeps its weight, one the data contradicts loses some.
            for &c in &r.codes {
                let c = c as usize;
                let gi = g + PRIOR_PULL * (w[c] - prior[c]);
                g2[c] += gi * gi;
                w[c] -= RATE * gi / g2[c].sqrt();
            }
            gb += g * g;
            b -= RATE * g / gb.sqrt();
        }
    }
    (w, b)
}

fn logit(w: &[f32], b: f32, r: &Row) -> f32 {
    let norm = 1.0 / (r.feats.len() as f32 + model::SHRINK);
    let z: f32 = r.feats.iter().map(|&(f, s)| s * w[f as usize]).sum();
    let c: f32 = r.codes.iter().map(|&c| w[c as usize]).sum();
    b + c + z * norm
}

/// The prior log-odds of each reason code: its dictionary weight times the scale.
fn priors() -> Vec<(String, f32)> {
    model::RULE_CODES
        .iter()
        .map(|c| {
            (
                (*c).to_owned(),
                model::PRIOR_SCALE * Detector::code_weight(c),
            )
        })
        .collect()
}

/// The value above which `fpr` of `scores` lie.
fn threshold_at(scores: &mut [f32], fpr: f64) -> f32 {
    scores.sort_by(f32::total_cmp);
    let k = ((scores.len() as f64) * (1.0 - fpr)).ceil() as usize;
    let k = k.min(scores.len().saturating_sub(1));
    // Flag strictly above the benign score at the quantile.
    scores.get(k).copied().unwrap_or(0.0) + 1e-6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let corpus = args
        .next()
        .unwrap_or_else(|| "target/guard-data/corpus.jsonl".into());
    let mut out = "crates/mlsec-guard/model/guard.bin".to_owned();
    while let Some(a) = args.next() {
        if a == "--out" {
            out = args.next().expect("--out PATH");
        }
    }
    let text = std::fs::read_to_string(&corpus)
        .unwrap_or_else(|e| panic!("{corpus}: {e} (build it with scripts/guard_data.py)"));
    let rules = Detector::rules_only();
    let mut rows = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["text"].as_str().unwrap();
        let mut feats = Vec::new();
        model::features(&normalize::fold(t).folded, &mut feats);
        // Benign folds by text, hard negatives by template: a template is never in both.
        let key = if v["family"] == "hard_negative" {
            v["group"].as_str().unwrap()
        } else {
            t
        };
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let mut codes: Vec<u32> = Detector::evidence(t)
            .iter()
            .filter_map(|(c, _)| model::rule_bucket(c))
            .collect();
        codes.sort_unstable();
        codes.dedup();
        rows.push(Row {
            feats,
            codes,
            label: v["label"].as_i64() == Some(1),
            family: v["family"].as_str().unwrap().to_owned(),
            fold: h % 5,
            rule_score: rules.check(t, Source::User).score,
        });
    }
    let families: Vec<String> = {
        let mut f: Vec<String> = rows
            .iter()
            .filter(|r| r.label)
            .map(|r| r.family.clone())
            .collect();
        f.sort();
        f.dedup();
        f
    };
    eprintln!(
        "{} rows ({} attacks in {} families), {} benign",
        rows.len(),
        rows.iter().filter(|r| r.label).count(),
        families.len(),
        rows.iter().filter(|r| !r.label).count()
    );

    // Grouped cross-validation: family held out, benign fold held out.
    println!(
        "| family held out | attacks | dictionary alone | detector (model with dictionary features) |"
    );
    println!("|---|---|---|---|");
    let (mut n_all, mut r_all, mut m_all) = (0usize, 0usize, 0usize);
    let mut hard = (0usize, 0usize);
    let rules_thr = {
        let mut s: Vec<f32> = rows
            .iter()
            .filter(|r| !r.label)
            .map(|r| r.rule_score)
            .collect();
        threshold_at(&mut s, 0.01)
    };
    let mut hard_rules = (0usize, 0usize);
    for r in rows.iter().filter(|r| r.family == "hard_negative") {
        hard_rules.0 += usize::from(r.rule_score >= rules_thr);
        hard_rules.1 += 1;
    }
    for fam in &families {
        let mut benign = Vec::new();
        let mut attack: Vec<(f32, f32)> = Vec::new();
        let mut hard_z = Vec::new();
        for k in 0..5u64 {
            let train_rows: Vec<&Row> = rows
                .iter()
                .filter(|r| {
                    if r.label {
                        &r.family != fam
                    } else {
                        r.fold != k
                    }
                })
                .collect();
            let (w, b) = train(&train_rows);
            for r in rows.iter().filter(|r| !r.label && r.fold == k) {
                let z = logit(&w, b, r);
                benign.push(z);
                if r.family == "hard_negative" {
                    hard_z.push(z);
                }
            }
            for r in rows.iter().filter(|r| r.label && &r.family == fam) {
                attack.push((r.rule_score, logit(&w, b, r)));
            }
        }
        let t = threshold_at(&mut benign, 0.01);
        let n = attack.len();
        let r_rules = attack.iter().filter(|a| a.0 >= rules_thr).count();
        let r_model = attack.iter().filter(|a| a.1 >= t).count();
        hard.0 += hard_z.iter().filter(|&&z| z >= t).count();
        hard.1 += hard_z.len();
        n_all += n;
        r_all += r_rules;
        m_all += r_model;
        let pct = |x: usize| 100.0 * x as f64 / n.max(1) as f64;
        println!(
            "| {fam} | {} | {:.1}% | {:.1}% |",
            n / 5,
            pct(r_rules),
            pct(r_model)
        );
    }
    let pct = |x: usize| 100.0 * x as f64 / n_all.max(1) as f64;
    println!(
        "| **all** | {} | {:.1}% | {:.1}% |",
        n_all / 5,
        pct(r_all),
        pct(m_all)
    );
    println!(
        "\nRecall at 1% false positives on out-of-fold benign text. Hard negatives (benign text about instructions, code and security; folds by template) flagged: detector {:.2}% ({} of {}), dictionary alone {:.2}% ({} of {}).",
        100.0 * hard.0 as f64 / hard.1.max(1) as f64,
        hard.0,
        hard.1,
        100.0 * hard_rules.0 as f64 / hard_rules.1.max(1) as f64,
        hard_rules.0,
        hard_rules.1
    );

    // The final model: all rows; thresholds from 5-fold out-of-fold benign scores.
    let mut oof_z = Vec::new();
    for k in 0..5u64 {
        let train_rows: Vec<&Row> = rows.iter().filter(|r| r.label || r.fold != k).collect();
        let (w, b) = train(&train_rows);
        oof_z.extend(
            rows.iter()
                .filter(|r| !r.label && r.fold == k)
                .map(|r| logit(&w, b, r)),
        );
    }
    let logit_threshold = threshold_at(&mut oof_z.clone(), 0.01);
    let z3 = threshold_at(&mut oof_z, 0.03);
    let user_threshold = 0.5;
    let retrieved_threshold = 1.0 / (1.0 + (-(z3 - logit_threshold)).exp());
    let all: Vec<&Row> = rows.iter().collect();
    let (weights, bias) = train(&all);
    let m = Model {
        weights,
        quantized: Vec::new(),
        scale: 0.0,
        bias,
        logit_threshold,
        user_threshold,
        retrieved_threshold,
    };
    let bytes = m.to_bytes();
    std::fs::write(&out, &bytes).unwrap_or_else(|e| panic!("{out}: {e}"));
    let mut by_family: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *by_family.entry(&r.family).or_default() += 1;
    }
    eprintln!(
        "wrote {out} ({} bytes): logit threshold {logit_threshold:.3}, user {user_threshold:.3}, retrieved {retrieved_threshold:.3}; rows per family {by_family:?}",
        bytes.len()
    );
}
