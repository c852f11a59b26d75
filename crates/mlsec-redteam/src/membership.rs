//! `mlsec redteam membership`: can an attacker tell the records a model was trained on from
//! records it never saw?
//!
//! Members are the training rows, non-members a holdout from the same distribution. Each attack
//! gives every record a score (higher: more likely a member); the audit reports the ROC AUC and
//! the true-positive rate at 0.1% and 1% false positives (the regime that matters: confidently
//! identifying *some* people, per Carlini et al., 2022), per class, and the most exposed rows.
//!
//! - `loss`: the model's loss on the record's true label (Yeom et al., 2018).
//! - `confidence`: the model's top probability, needing no label (Salem et al., 2019).
//! - `population`: the loss calibrated per class against shadow data the model never saw
//!   (ML Privacy Meter's population attack): a record scores the share of same-class
//!   population records it beats.
//! - `reference`: calibrated per record against reference models trained on shadow data (the
//!   offline LiRA test with a fixed variance, Carlini et al., 2022): how far the target's
//!   confidence on the record sits above what models that never saw it give.

use std::collections::HashSet;

use serde::Serialize;

use crate::RedteamError;
use crate::data::{Dataset, Unused};
use crate::model::Classifier;

/// Most exposed records listed.
pub const MAX_EXPOSED: usize = 10;
/// ROC points kept per attack (for plots).
pub const MAX_ROC_POINTS: usize = 200;
/// Probabilities are clamped to [P_FLOOR, 1 - P_FLOOR] before logs.
const P_FLOOR: f64 = 1e-7;

/// Settings of a membership audit.
#[derive(Debug, Clone)]
pub struct Options {
    /// AUC over which a finding is raised.
    pub max_auc: f64,
    /// TPR at 1% FPR over which a finding is raised.
    pub max_tpr_at_1: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_auc: 0.6,
            max_tpr_at_1: 0.05,
        }
    }
}

/// One attack's result.
#[derive(Debug, Clone, Serialize)]
pub struct AttackScore {
    pub attack: &'static str,
    pub auc: f64,
    pub tpr_at_0_1_fpr: f64,
    pub tpr_at_1_fpr: f64,
    /// max(TPR - FPR): the attacker's advantage at its best threshold.
    pub advantage: f64,
    pub per_class: Vec<ClassScore>,
    /// ROC points (false-positive rate, true-positive rate), at most [`MAX_ROC_POINTS`].
    pub roc: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassScore {
    pub class: usize,
    pub members: usize,
    pub non_members: usize,
    pub auc: Option<f64>,
}

/// A training record the strongest attack singles out.
#[derive(Debug, Clone, Serialize)]
pub struct Exposed {
    /// 1-based data row of the training file.
    pub row: usize,
    pub label: usize,
    pub score: f64,
    /// The model's probability of the true label.
    pub confidence: f64,
    /// Holdout records scoring at least as high (0: nothing unseen looks this much like a member).
    pub holdout_at_or_above: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct MembershipReport {
    pub model: String,
    pub train: String,
    pub holdout: String,
    pub population: Option<String>,
    pub references: Vec<String>,
    pub members: usize,
    pub non_members: usize,
    pub unused: Vec<(String, Unused)>,
    /// Holdout rows that also occur in the training file (they blur the audit).
    pub overlap: usize,
    pub train_accuracy: f64,
    pub holdout_accuracy: f64,
    pub attacks: Vec<AttackScore>,
    /// The attack with the highest AUC.
    pub strongest: &'static str,
    /// The attack that finds most members at 1% false positives (ties: the strongest); its
    /// scores rank [`MembershipReport::exposed`].
    pub exposed_by: &'static str,
    pub exposed: Vec<Exposed>,
    /// The smallest false-positive rate the holdout can resolve (1 / non-members).
    pub fpr_resolution: f64,
    pub verdict: Verdict,
    pub interpretation: String,
    pub max_auc: f64,
    pub max_tpr_at_1: f64,
    pub queries: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    NoMeasurableLeak,
    Leaks,
    LeaksBadly,
}

/// Per-record model outputs.
struct Signals {
    /// ln p(true label).
    log_p: Vec<f64>,
    /// Top probability.
    top: Vec<f64>,
    /// ln(p / (1 - p)) of the true label.
    logit: Vec<f64>,
    correct: usize,
}

fn signals(model: &Classifier, data: &Dataset) -> Result<Signals, RedteamError> {
    let probs = model.predict(&data.x)?;
    let c = model.classes();
    let mut s = Signals {
        log_p: Vec::with_capacity(data.rows()),
        top: Vec::with_capacity(data.rows()),
        logit: Vec::with_capacity(data.rows()),
        correct: 0,
    };
    for (i, row) in probs.chunks(c).enumerate() {
        let y = data.y[i];
        let p = f64::from(row[y]).clamp(P_FLOOR, 1.0 - P_FLOOR);
        s.log_p.push(p.ln());
        s.logit.push((p / (1.0 - p)).ln());
        s.top
            .push(f64::from(row.iter().copied().fold(0.0, f32::max)));
        if crate::model::argmax(row) == y {
            s.correct += 1;
        }
    }
    Ok(s)
}

fn check(model: &Classifier, data: &Dataset) -> Result<(), RedteamError> {
    if data.width() != model.features() {
        return Err(RedteamError::Data {
            path: data.path.clone(),
            problem: format!(
                "{} feature columns but {} takes {} values per row",
                data.width(),
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
    Ok(())
}

/// ROC AUC of `pos` over `neg` (ties count half), by ranks.
pub fn auc(pos: &[f64], neg: &[f64]) -> Option<f64> {
    if pos.is_empty() || neg.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0.total_cmp(&all[i].0).is_eq() {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (p, n) = (pos.len() as f64, neg.len() as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// The highest TPR at a threshold that lets at most `fpr * |neg|` non-members through.
pub fn tpr_at(pos: &[f64], neg: &[f64], fpr: f64) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return 0.0;
    }
    let mut n: Vec<f64> = neg.to_vec();
    n.sort_by(|a, b| b.total_cmp(a));
    let allowed = (fpr * n.len() as f64).floor() as usize;
    // Scores strictly above the (allowed+1)-th highest non-member.
    let t = n[allowed.min(n.len() - 1)];
    pos.iter().filter(|&&s| s > t).count() as f64 / pos.len() as f64
}

/// The ROC curve: one point per distinct score, thinned to [`MAX_ROC_POINTS`] (the first and
/// last kept), and the attacker's advantage, max over thresholds of TPR - FPR.
pub fn roc(pos: &[f64], neg: &[f64]) -> (Vec<(f64, f64)>, f64) {
    let mut all: Vec<(f64, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (p, n) = (pos.len().max(1) as f64, neg.len().max(1) as f64);
    let (mut tp, mut fp, mut best) = (0.0, 0.0, 0.0f64);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        while i < all.len() && all[i].0.total_cmp(&s).is_eq() {
            if all[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        best = best.max(tp / p - fp / n);
        points.push((fp / n, tp / p));
    }
    if points.len() > MAX_ROC_POINTS {
        let step = points.len().div_ceil(MAX_ROC_POINTS - 1);
        let last = points[points.len() - 1];
        points = points.into_iter().step_by(step).collect();
        points.push(last);
    }
    (points, best)
}

/// Empirical CDF of `x` within sorted `sorted` (share of values <= x).
fn ecdf(sorted: &[f64], x: f64) -> f64 {
    if sorted.is_empty() {
        return 0.5;
    }
    sorted.partition_point(|v| *v <= x) as f64 / sorted.len() as f64
}

/// Runs the audit. `population` is shadow data the model never saw; `references` are models
/// trained on shadow data (not on `train`).
pub fn run(
    model: &Classifier,
    train: &Dataset,
    holdout: &Dataset,
    population: Option<&Dataset>,
    references: &[Classifier],
    opts: &Options,
) -> Result<MembershipReport, RedteamError> {
    let start = std::time::Instant::now();
    let q0 = model.queries();
    for d in [Some(train), Some(holdout), population]
        .into_iter()
        .flatten()
    {
        check(model, d)?;
    }
    for r in references {
        if r.features() != model.features() || r.classes() != model.classes() {
            return Err(RedteamError::Model {
                path: r.path().to_path_buf(),
                problem: format!(
                    "a reference model must take the target's input ({} values) and give its classes ({}); it takes {} and gives {}",
                    model.features(),
                    model.classes(),
                    r.features(),
                    r.classes()
                ),
            });
        }
    }
    let st = signals(model, train)?;
    let sh = signals(model, holdout)?;
    let c = model.classes();
    let mut attacks: Vec<(&'static str, Vec<f64>, Vec<f64>)> = vec![
        ("loss", st.log_p.clone(), sh.log_p.clone()),
        ("confidence", st.top.clone(), sh.top.clone()),
    ];
    if let Some(pop) = population {
        let sp = signals(model, pop)?;
        let mut by_class: Vec<Vec<f64>> = vec![Vec::new(); c];
        for (i, v) in sp.logit.iter().enumerate() {
            by_class[pop.y[i]].push(*v);
        }
        for v in &mut by_class {
            v.sort_by(f64::total_cmp);
        }
        let score = |d: &Dataset, s: &Signals| -> Vec<f64> {
            (0..d.rows())
                .map(|i| ecdf(&by_class[d.y[i]], s.logit[i]))
                .collect()
        };
        attacks.push(("population", score(train, &st), score(holdout, &sh)));
    }
    if !references.is_empty() {
        let refs_t: Vec<Signals> = references
            .iter()
            .map(|r| signals(r, train))
            .collect::<Result<_, _>>()?;
        let refs_h: Vec<Signals> = references
            .iter()
            .map(|r| signals(r, holdout))
            .collect::<Result<_, _>>()?;
        // Fixed variance: pooled over every record's reference logits.
        let mut resid = Vec::new();
        let means = |refs: &[Signals], n: usize| -> Vec<f64> {
            (0..n)
                .map(|i| refs.iter().map(|s| s.logit[i]).sum::<f64>() / refs.len() as f64)
                .collect()
        };
        let (mt, mh) = (means(&refs_t, train.rows()), means(&refs_h, holdout.rows()));
        for (refs, m) in [(&refs_t, &mt), (&refs_h, &mh)] {
            for s in refs.as_slice() {
                resid.extend(s.logit.iter().zip(m.iter()).map(|(v, m)| v - m));
            }
        }
        let var = resid.iter().map(|r| r * r).sum::<f64>() / resid.len().max(1) as f64;
        let sd = var.sqrt().max(1e-3);
        let z = |s: &Signals, m: &[f64]| -> Vec<f64> {
            s.logit.iter().zip(m).map(|(v, m)| (v - m) / sd).collect()
        };
        attacks.push(("reference", z(&st, &mt), z(&sh, &mh)));
    }
    let mut scored = Vec::new();
    for (name, pos, neg) in &attacks {
        let per_class = (0..c)
            .map(|k| {
                let p: Vec<f64> = (0..train.rows())
                    .filter(|&i| train.y[i] == k)
                    .map(|i| pos[i])
                    .collect();
                let n: Vec<f64> = (0..holdout.rows())
                    .filter(|&i| holdout.y[i] == k)
                    .map(|i| neg[i])
                    .collect();
                ClassScore {
                    class: k,
                    members: p.len(),
                    non_members: n.len(),
                    auc: auc(&p, &n),
                }
            })
            .filter(|cs| cs.members + cs.non_members > 0)
            .collect();
        let (roc, advantage) = roc(pos, neg);
        scored.push(AttackScore {
            attack: name,
            auc: auc(pos, neg).unwrap_or(0.5),
            tpr_at_0_1_fpr: tpr_at(pos, neg, 0.001),
            tpr_at_1_fpr: tpr_at(pos, neg, 0.01),
            advantage,
            per_class,
            roc,
        });
    }
    let strongest = scored
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.auc.total_cmp(&b.1.auc))
        .map_or(0, |(i, _)| i);
    let name = attacks[strongest].0;
    let by = scored
        .iter()
        .enumerate()
        .max_by(|a, b| {
            a.1.tpr_at_1_fpr
                .total_cmp(&b.1.tpr_at_1_fpr)
                .then_with(|| (a.0 == strongest).cmp(&(b.0 == strongest)))
        })
        .map_or(strongest, |(i, _)| i);
    let (exposed_by, pos, neg) = &attacks[by];
    let mut sorted_neg = neg.clone();
    sorted_neg.sort_by(f64::total_cmp);
    let mut order: Vec<usize> = (0..train.rows()).collect();
    order.sort_by(|&a, &b| pos[b].total_cmp(&pos[a]).then(a.cmp(&b)));
    let exposed = order
        .iter()
        .take(MAX_EXPOSED)
        .map(|&i| Exposed {
            row: train.source_rows[i],
            label: train.y[i],
            score: pos[i],
            confidence: st.log_p[i].exp(),
            holdout_at_or_above: sorted_neg.len() - sorted_neg.partition_point(|v| *v < pos[i]),
        })
        .collect();
    let best = &scored[strongest];
    // The best rates at low false positives may come from another attack than the best AUC
    // (calibrated attacks pick out a few members confidently).
    let tpr1 = scored.iter().map(|a| a.tpr_at_1_fpr).fold(0.0, f64::max);
    let tpr01 = scored.iter().map(|a| a.tpr_at_0_1_fpr).fold(0.0, f64::max);
    // Badly: a strong average signal, or confident identification of some members (at 0.1%
    // false positives only when the holdout can resolve it).
    let verdict = if best.auc >= 0.75 || tpr1 >= 0.2 || (tpr01 >= 0.02 && holdout.rows() >= 1000) {
        Verdict::LeaksBadly
    } else if best.auc > opts.max_auc || tpr1 > opts.max_tpr_at_1 {
        Verdict::Leaks
    } else {
        Verdict::NoMeasurableLeak
    };
    let fpr_resolution = 1.0 / holdout.rows() as f64;
    let train_accuracy = st.correct as f64 / train.rows() as f64;
    let holdout_accuracy = sh.correct as f64 / holdout.rows() as f64;
    let interpretation = interpret(
        verdict,
        best,
        name,
        (tpr1, tpr01),
        train_accuracy,
        holdout_accuracy,
        holdout.rows(),
    );
    let hashes: HashSet<Vec<u32>> = (0..train.rows())
        .map(|i| train.row(i).iter().map(|v| v.to_bits()).collect())
        .collect();
    let overlap = (0..holdout.rows())
        .filter(|&i| {
            hashes.contains(
                &holdout
                    .row(i)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
            )
        })
        .count();
    let mut unused = vec![
        (train.path.clone(), train.unused.clone()),
        (holdout.path.clone(), holdout.unused.clone()),
    ];
    if let Some(p) = population {
        unused.push((p.path.clone(), p.unused.clone()));
    }
    unused.retain(|(_, u)| u.total() > 0);
    Ok(MembershipReport {
        model: model.path().display().to_string(),
        train: train.path.clone(),
        holdout: holdout.path.clone(),
        population: population.map(|p| p.path.clone()),
        references: references
            .iter()
            .map(|r| r.path().display().to_string())
            .collect(),
        members: train.rows(),
        non_members: holdout.rows(),
        unused,
        overlap,
        train_accuracy,
        holdout_accuracy,
        strongest: name,
        exposed_by,
        attacks: scored,
        exposed,
        fpr_resolution,
        verdict,
        interpretation,
        max_auc: opts.max_auc,
        max_tpr_at_1: opts.max_tpr_at_1,
        queries: model.queries() - q0,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn interpret(
    verdict: Verdict,
    best: &AttackScore,
    name: &str,
    (tpr1, tpr01): (f64, f64),
    train_acc: f64,
    holdout_acc: f64,
    non_members: usize,
) -> String {
    let gap = (train_acc - holdout_acc) * 100.0;
    let mut s = match verdict {
        Verdict::NoMeasurableLeak => format!(
            "No measurable membership leakage: the strongest attack ({name}) tells members from non-members little better than a coin (AUC {:.3}). Training and holdout accuracy differ by {gap:.1} points.",
            best.auc
        ),
        Verdict::Leaks | Verdict::LeaksBadly => format!(
            "The model leaks which records it was trained on: the {name} attack reaches AUC {:.3}, and the attacks find up to {:.1}% of members at a 1% false-positive rate ({:.1}% at 0.1%). Training accuracy is {:.1}% against {:.1}% on the holdout, a {gap:.1}-point gap: the model memorises its training set. If the records are about people, an attacker with a record can learn that its owner was in the training data. Reduce memorisation (stronger regularisation, early stopping, smaller trees or fewer epochs, more data) and, for sensitive data, train with differential privacy (DP-SGD, or a DP library for the model family) and re-run this audit.",
            best.auc,
            tpr1 * 100.0,
            tpr01 * 100.0,
            train_acc * 100.0,
            holdout_acc * 100.0
        ),
    };
    if non_members < 1000 {
        s.push_str(&format!(
            " With {non_members} non-members, the rate at 0.1% false positives rests on fewer than one non-member: use a holdout of at least 1,000 records to read it."
        ));
    }
    s
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are the point of these tests
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_counts() {
        assert_eq!(auc(&[3.0, 4.0], &[1.0, 2.0]), Some(1.0));
        assert_eq!(auc(&[1.0, 2.0], &[3.0, 4.0]), Some(0.0));
        assert_eq!(auc(&[1.0], &[1.0]), Some(0.5));
        // 5 of 6 pairs ordered, one tie: (5 + 0.5) / 6.
        let a = auc(&[2.0, 3.0, 1.0], &[1.0, 0.0]).unwrap_or_default();
        assert!((a - 5.5 / 6.0).abs() < 1e-12, "{a}");
        assert_eq!(auc(&[], &[1.0]), None);
    }

    #[test]
    fn tpr_at_low_fpr_lets_through_at_most_the_allowed_non_members() {
        let neg: Vec<f64> = (0..1000).map(f64::from).collect();
        let pos = [999.5, 998.5, 990.5, 10.0];
        // 0.1% of 1,000: one non-member may pass, so the threshold is the second highest (998).
        assert_eq!(tpr_at(&pos, &neg, 0.001), 0.5);
        // 1%: ten may pass, threshold 989.
        assert_eq!(tpr_at(&pos, &neg, 0.01), 0.75);
        let (points, adv) = roc(&[1.0, 1.0], &[0.0, 0.0]);
        assert!((adv - 1.0).abs() < 1e-12);
        assert_eq!(points, vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)]);
        let many: Vec<f64> = (0..5000).map(f64::from).collect();
        let (points, _) = roc(&many, &many);
        assert!(points.len() <= MAX_ROC_POINTS + 1 && points.last() == Some(&(1.0, 1.0)));
    }
}
