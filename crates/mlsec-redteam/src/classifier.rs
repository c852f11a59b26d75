//! `mlsec redteam classifier`: clean accuracy, accuracy under each attack per budget, the
//! smallest perturbation found per sample, and the worst examples.

use std::time::Instant;

use serde::Serialize;

use crate::RedteamError;
use crate::attack::{self, Change, Domain, Hit, HsjOptions, Target};
use crate::data::{Dataset, Unused};
use crate::model::{Classifier, Layout};
use crate::rng::Rng;

/// An `f32` as the `f64` of its shortest decimal form (0.1, not 0.10000000149011612), for
/// reports.
pub fn tidy(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's serialize_with signature
fn ser_f32<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(tidy(*v))
}

#[allow(clippy::ref_option, clippy::trivially_copy_pass_by_ref)] // serde's serialize_with signature
fn ser_opt<S: serde::Serializer>(v: &Option<f32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(x) => s.serialize_some(&tidy(*x)),
        None => s.serialize_none(),
    }
}

fn ser_opts<S: serde::Serializer>(v: &[Option<f32>], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.map(tidy)))
}

/// Examples listed in the report.
pub const MAX_WORST: usize = 10;

/// The attacks, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttackKind {
    Noise,
    WorstOfK,
    Square,
    HopSkipJump,
    Features,
}

impl AttackKind {
    pub const ALL: [AttackKind; 5] = [
        AttackKind::Noise,
        AttackKind::WorstOfK,
        AttackKind::Square,
        AttackKind::HopSkipJump,
        AttackKind::Features,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AttackKind::Noise => "noise",
            AttackKind::WorstOfK => "worst-of-k",
            AttackKind::Square => "square",
            AttackKind::HopSkipJump => "hop-skip-jump",
            AttackKind::Features => "features",
        }
    }

    pub fn parse(s: &str) -> Option<AttackKind> {
        AttackKind::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What the attacker needs.
    pub fn access(self) -> &'static str {
        match self {
            AttackKind::Noise | AttackKind::WorstOfK => "labels",
            AttackKind::Square | AttackKind::Features => "scores",
            AttackKind::HopSkipJump => "labels",
        }
    }
}

/// Settings of a classifier run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Budgets (L-inf; input units for images, share of each feature's range for tables).
    pub budgets: Vec<f32>,
    pub attacks: Vec<AttackKind>,
    /// Draws for worst-of-k noise.
    pub noise_draws: usize,
    /// Queries per sample for Square and HopSkipJump.
    pub queries: usize,
    pub square_p_init: f32,
    pub hsj_iterations: usize,
    /// Values tried per feature by the feature-wise attack.
    pub feature_grid: usize,
    /// Valid input range for images (default: the data's minimum and maximum).
    pub input_range: Option<(f32, f32)>,
    /// Declared valid ranges per feature name (tables).
    pub ranges: Vec<(String, f32, f32)>,
    /// Features that may not change (tables).
    pub frozen: Vec<String>,
    /// Force tabular treatment even for an image-shaped input.
    pub tabular: bool,
    pub seed: u64,
    /// Robust accuracy under which a finding is raised.
    pub min_accuracy: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            budgets: vec![0.02, 0.05, 0.1],
            attacks: AttackKind::ALL.to_vec(),
            noise_draws: 20,
            queries: 1000,
            square_p_init: 0.3,
            hsj_iterations: 40,
            feature_grid: 9,
            input_range: None,
            ranges: Vec::new(),
            frozen: Vec::new(),
            tabular: false,
            seed: 0,
            min_accuracy: 0.5,
        }
    }
}

/// Accuracy under one attack at one budget.
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    pub attack: AttackKind,
    /// What the attacker needs: `scores` or `labels`.
    pub access: &'static str,
    #[serde(serialize_with = "ser_f32")]
    pub budget: f32,
    /// Samples attacked (those the model classified correctly).
    pub attacked: usize,
    pub succeeded: usize,
    /// Correct and not broken, over all samples.
    pub robust_accuracy: f64,
    /// Median distance of the adversarial examples found (budget units).
    #[serde(serialize_with = "ser_opt")]
    pub median_distance: Option<f32>,
    pub queries: u64,
    pub seconds: f64,
}

/// One sample's weakest point.
#[derive(Debug, Clone, Serialize)]
pub struct Example {
    /// 1-based data row.
    pub row: usize,
    pub label: usize,
    pub adversarial_label: usize,
    pub attack: AttackKind,
    #[serde(serialize_with = "ser_f32")]
    pub distance: f32,
    /// Values changed (for tables, by the feature-wise attack: every change; else the count).
    pub changed: usize,
    pub changes: Vec<NamedChange>,
    #[serde(skip)]
    pub x: Vec<f32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NamedChange {
    pub feature: String,
    #[serde(serialize_with = "ser_f32")]
    pub from: f32,
    #[serde(serialize_with = "ser_f32")]
    pub to: f32,
}

/// How often a feature was changed in successful feature-wise attacks.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureWeakness {
    pub feature: String,
    pub flips: usize,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierReport {
    pub model: String,
    pub data: String,
    pub mode: &'static str,
    pub scores: crate::model::Scores,
    pub classes: usize,
    pub samples: usize,
    pub unused: Unused,
    pub clean_accuracy: f64,
    pub domain: DomainSummary,
    pub results: Vec<AttackResult>,
    /// Per sample (data row order): the smallest perturbation found, if any.
    #[serde(serialize_with = "ser_opts")]
    pub min_distance: Vec<Option<f32>>,
    /// Of the samples classified correctly, the share broken within the largest budget.
    pub broken_share: f64,
    pub worst: Vec<Example>,
    pub feature_weakness: Vec<FeatureWeakness>,
    pub queries: u64,
    pub seconds: f64,
    pub seed: u64,
    pub min_accuracy: f64,
    /// Every example found, best per sample (for `--save-examples`).
    #[serde(skip)]
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainSummary {
    pub budget_unit: &'static str,
    pub frozen: Vec<String>,
    pub integer: Vec<String>,
    pub layout: Option<Layout>,
}

/// Builds the perturbation domain for `data` under `opts`.
pub fn domain(model: &Classifier, data: &Dataset, opts: &Options) -> Result<Domain, RedteamError> {
    let d = data.width();
    let n = data.rows();
    let err = |problem: String| RedteamError::Options { problem };
    let image = model.layout().is_some() && !opts.tabular;
    let mut lo = vec![f32::INFINITY; d];
    let mut hi = vec![f32::NEG_INFINITY; d];
    let mut integer = vec![true; d];
    for i in 0..n {
        for (j, v) in data.row(i).iter().enumerate() {
            lo[j] = lo[j].min(*v);
            hi[j] = hi[j].max(*v);
            integer[j] &= v.fract() == 0.0;
        }
    }
    let mut frozen = vec![false; d];
    for name in &opts.frozen {
        let j = data
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| err(format!("--frozen {name}: no such feature in {}", data.path)))?;
        frozen[j] = true;
    }
    if image {
        let (a, b) = opts.input_range.unwrap_or_else(|| {
            (
                lo.iter().copied().fold(f32::INFINITY, f32::min),
                hi.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            )
        });
        if a.partial_cmp(&b) != Some(std::cmp::Ordering::Less) {
            return Err(err(format!("input range {a}..{b} is empty")));
        }
        return Ok(Domain {
            lo: vec![a; d],
            hi: vec![b; d],
            scale: vec![1.0; d],
            integer: vec![false; d],
            frozen,
            layout: model.layout(),
        });
    }
    for (name, a, b) in &opts.ranges {
        let j = data
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| err(format!("--range {name}: no such feature in {}", data.path)))?;
        if a.partial_cmp(b)
            .is_none_or(|o| o == std::cmp::Ordering::Greater)
        {
            return Err(err(format!("--range {name}={a}:{b}: the range is empty")));
        }
        lo[j] = *a;
        hi[j] = *b;
    }
    let scale = lo.iter().zip(&hi).map(|(a, b)| (b - a).max(0.0)).collect();
    Ok(Domain {
        lo,
        hi,
        scale,
        integer,
        frozen,
        layout: None,
    })
}

/// Runs every attack in `opts` against `model` on `data`.
pub fn run(
    model: &Classifier,
    data: &Dataset,
    opts: &Options,
) -> Result<ClassifierReport, RedteamError> {
    let start = Instant::now();
    if data.width() != model.features() {
        return Err(RedteamError::Data {
            path: data.path.clone(),
            problem: format!(
                "{} feature columns ({}...) but {} takes {} values per row",
                data.width(),
                data.names
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                model.path().display(),
                model.features()
            ),
        });
    }
    if let Some(bad) = data.y.iter().find(|&&y| y >= model.classes()) {
        return Err(RedteamError::Data {
            path: data.path.clone(),
            problem: format!("label {bad} but the model has {} classes", model.classes()),
        });
    }
    if opts.budgets.is_empty() || opts.budgets.iter().any(|b| !(*b > 0.0 && b.is_finite())) {
        return Err(RedteamError::Options {
            problem: "budgets must be positive numbers".into(),
        });
    }
    let dom = domain(model, data, opts)?;
    let image = dom.layout.is_some();
    let n = data.rows();
    let q0 = model.queries();
    let clean = model.labels(&data.x)?;
    let correct: Vec<usize> = (0..n).filter(|&i| clean[i] == data.y[i]).collect();
    let clean_accuracy = correct.len() as f64 / n as f64;
    let target = Target {
        model,
        domain: &dom,
        x: &data.x,
        y: &data.y,
    };
    let rng = Rng::new(opts.seed);
    let mut results = Vec::new();
    let mut best: Vec<Option<Example>> = vec![None; n];
    let mut weakness = vec![0usize; data.width()];
    let max_budget = opts.budgets.iter().copied().fold(0.0, f32::max);
    let mut keep = |i: usize, attack: AttackKind, hit: &Hit, changes: Option<&[Change]>| {
        if best[i].as_ref().is_some_and(|b| b.distance <= hit.distance) {
            return;
        }
        let x0 = data.row(i);
        let changed = x0
            .iter()
            .zip(&hit.x)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        let named = changes.map_or_else(Vec::new, |cs| {
            cs.iter()
                .map(|c| NamedChange {
                    feature: data.names[c.feature].clone(),
                    from: c.from,
                    to: c.to,
                })
                .collect()
        });
        best[i] = Some(Example {
            row: data.source_rows[i],
            label: data.y[i],
            adversarial_label: hit.label,
            attack,
            distance: hit.distance,
            changed,
            changes: named,
            x: hit.x.clone(),
        });
    };
    let mut record =
        |attack: AttackKind, budget: f32, hits: &[Option<f32>], queries: u64, seconds: f64| {
            let mut d: Vec<f32> = hits.iter().flatten().copied().collect();
            d.sort_by(f32::total_cmp);
            let succeeded = d.len();
            results.push(AttackResult {
                attack,
                access: attack.access(),
                budget,
                attacked: correct.len(),
                succeeded,
                robust_accuracy: (correct.len() - succeeded) as f64 / n as f64,
                median_distance: d.get(d.len() / 2).copied(),
                queries,
                seconds,
            });
        };
    for &attack in &opts.attacks {
        if attack == AttackKind::Features && image {
            continue;
        }
        if attack == AttackKind::HopSkipJump {
            let t0 = Instant::now();
            let q = model.queries();
            let hits = attack::hop_skip_jump(
                &target,
                &correct,
                &clean,
                HsjOptions {
                    iterations: opts.hsj_iterations,
                    queries: opts.queries.max(200),
                    ..HsjOptions::default()
                },
                &rng.fork(0x0048_534a),
            )?;
            let (secs, used) = (t0.elapsed().as_secs_f64(), model.queries() - q);
            for (k, h) in hits.iter().enumerate() {
                if let Some(h) = h.as_ref().filter(|h| h.distance <= max_budget) {
                    keep(correct[k], attack, h, None);
                }
            }
            for &b in &opts.budgets {
                let within: Vec<Option<f32>> = hits
                    .iter()
                    .map(|h| h.as_ref().map(|h| h.distance).filter(|d| *d <= b + 1e-6))
                    .collect();
                record(attack, b, &within, used, secs);
            }
            continue;
        }
        for (bi, &b) in opts.budgets.iter().enumerate() {
            let t0 = Instant::now();
            let q = model.queries();
            let stream = rng.fork(((attack as u64) << 8) | bi as u64);
            let hits: Vec<Option<(Hit, Option<Vec<Change>>)>> = match attack {
                AttackKind::Noise => attack::noise(&target, &correct, b, 1, &stream)?
                    .into_iter()
                    .map(|h| h.map(|h| (h, None)))
                    .collect(),
                AttackKind::WorstOfK => {
                    attack::noise(&target, &correct, b, opts.noise_draws.max(1), &stream)?
                        .into_iter()
                        .map(|h| h.map(|h| (h, None)))
                        .collect()
                }
                AttackKind::Square => attack::square(
                    &target,
                    &correct,
                    b,
                    opts.queries.max(2),
                    opts.square_p_init,
                    &stream,
                )?
                .into_iter()
                .map(|h| h.map(|h| (h, None)))
                .collect(),
                AttackKind::Features => {
                    attack::features(&target, &correct, b, opts.feature_grid.max(2))?
                        .into_iter()
                        .map(|h| h.map(|(h, c)| (h, Some(c))))
                        .collect()
                }
                AttackKind::HopSkipJump => unreachable!("handled above"),
            };
            let (secs, used) = (t0.elapsed().as_secs_f64(), model.queries() - q);
            for (k, h) in hits.iter().enumerate() {
                if let Some((h, changes)) = h {
                    keep(correct[k], attack, h, changes.as_deref());
                    if bi + 1 == opts.budgets.len()
                        && let Some(cs) = changes
                    {
                        for c in cs {
                            weakness[c.feature] += 1;
                        }
                    }
                }
            }
            let d: Vec<Option<f32>> = hits
                .iter()
                .map(|h| h.as_ref().map(|(h, _)| h.distance))
                .collect();
            record(attack, b, &d, used, secs);
        }
    }
    let min_distance: Vec<Option<f32>> = best
        .iter()
        .map(|b| b.as_ref().map(|e| e.distance))
        .collect();
    let examples: Vec<Example> = best.into_iter().flatten().collect();
    let mut worst = examples.clone();
    worst.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.row.cmp(&b.row)));
    worst.truncate(MAX_WORST);
    let mut feature_weakness: Vec<FeatureWeakness> = weakness
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 0)
        .map(|(j, c)| FeatureWeakness {
            feature: data.names[j].clone(),
            flips: *c,
        })
        .collect();
    feature_weakness.sort_by(|a, b| b.flips.cmp(&a.flips).then(a.feature.cmp(&b.feature)));
    let broken_share = if correct.is_empty() {
        0.0
    } else {
        examples.len() as f64 / correct.len() as f64
    };
    let names = |f: &[bool]| -> Vec<String> {
        f.iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(j, _)| data.names[j].clone())
            .collect()
    };
    Ok(ClassifierReport {
        model: model.path().display().to_string(),
        data: data.path.clone(),
        mode: if image { "image" } else { "tabular" },
        scores: model.scores(),
        classes: model.classes(),
        samples: n,
        unused: data.unused.clone(),
        clean_accuracy,
        domain: DomainSummary {
            budget_unit: if image {
                "input units (L-inf)"
            } else {
                "share of each feature's range (L-inf)"
            },
            frozen: names(&dom.frozen),
            integer: if image {
                Vec::new()
            } else {
                names(&dom.integer)
            },
            layout: dom.layout,
        },
        results,
        min_distance,
        broken_share,
        worst,
        feature_weakness,
        queries: model.queries() - q0,
        seconds: start.elapsed().as_secs_f64(),
        seed: opts.seed,
        min_accuracy: opts.min_accuracy,
        examples,
    })
}
