//! Black-box evasion attacks: each sees only scores or labels, as an attacker against a
//! deployed model does.
//!
//! - [`noise`]: uniform noise in the budget box, one draw or the worst of `k`.
//! - [`square`]: the Square attack (Andriushchenko et al., 2020), score-based random search on
//!   the margin, L-inf.
//! - [`hop_skip_jump`]: HopSkipJump (Chen et al., 2020), decision-based (labels only), L-inf:
//!   the smallest perturbation it finds for each sample, whatever the budget.
//! - [`features`]: for tabular models, a greedy search over single features within their
//!   declared ranges, reporting which features the decision hangs on.
//!
//! Perturbations live in a [`Domain`]: per feature a valid range, a scale (1 for images, the
//! feature's range for tables, so one budget means "this share of each feature's range"),
//! whether it is whole-numbered and whether it may change at all. Every point an attack queries
//! is projected into the domain first, so adversarial examples are valid inputs.
//!
//! Queries are batched across samples (and across candidates for one sample), which is where
//! the speed comes from: a model run on 256 rows costs little more than on one.

use rayon::prelude::*;
use serde::Serialize;

use crate::RedteamError;
use crate::model::{Classifier, Layout, argmax, margin};
use crate::rng::Rng;

/// Where each feature may go.
#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    pub lo: Vec<f32>,
    pub hi: Vec<f32>,
    /// One budget unit, per feature.
    pub scale: Vec<f32>,
    pub integer: Vec<bool>,
    pub frozen: Vec<bool>,
    #[serde(skip)]
    pub layout: Option<Layout>,
}

impl Domain {
    pub fn width(&self) -> usize {
        self.lo.len()
    }

    /// `x` moved into the box of size `eps` around `x0` and into the valid ranges (widened to
    /// take in `x0` itself, so a sample already outside a declared range can still move);
    /// whole-numbered features go to the nearest whole number inside both, or stay at `x0`
    /// when there is none.
    pub fn project(&self, x0: &[f32], x: &mut [f32], eps: f32) {
        for j in 0..x.len() {
            let s = self.scale[j];
            if self.frozen[j] || s <= 0.0 || !x0[j].is_finite() {
                x[j] = x0[j];
                continue;
            }
            let r = eps * s;
            let lo = (x0[j] - r).max(self.lo[j].min(x0[j]));
            let hi = (x0[j] + r).min(self.hi[j].max(x0[j]));
            if lo
                .partial_cmp(&hi)
                .is_none_or(|o| o == std::cmp::Ordering::Greater)
            {
                x[j] = x0[j];
                continue;
            }
            let mut v = if x[j].is_nan() {
                x0[j]
            } else {
                x[j].clamp(lo, hi)
            };
            if self.integer[j] {
                let (a, b) = (lo.ceil(), hi.floor());
                v = if a <= b { v.round().clamp(a, b) } else { x0[j] };
            }
            x[j] = v;
        }
    }

    /// The L-inf distance in budget units.
    pub fn distance(&self, x0: &[f32], x: &[f32]) -> f32 {
        x0.iter()
            .zip(x)
            .zip(&self.scale)
            .filter(|(_, s)| **s > 0.0)
            .map(|((a, b), s)| (a - b).abs() / s)
            .fold(0.0, f32::max)
    }

    /// Features that may change.
    pub fn mutable(&self) -> Vec<usize> {
        (0..self.width())
            .filter(|&j| !self.frozen[j] && self.scale[j] > 0.0)
            .collect()
    }
}

/// One sample's result under one attack.
#[derive(Debug, Clone)]
pub struct Hit {
    pub x: Vec<f32>,
    pub label: usize,
    pub distance: f32,
}

/// The attack surface: the model, the domain and the clean samples.
pub struct Target<'a> {
    pub model: &'a Classifier,
    pub domain: &'a Domain,
    /// Row-major clean samples.
    pub x: &'a [f32],
    pub y: &'a [usize],
}

impl Target<'_> {
    fn row(&self, i: usize) -> &[f32] {
        let d = self.domain.width();
        &self.x[i * d..(i + 1) * d]
    }
}

/// Worst of `k` uniform draws in the box of size `eps`, for the samples `active`.
pub fn noise(
    t: &Target,
    active: &[usize],
    eps: f32,
    k: usize,
    rng: &Rng,
) -> Result<Vec<Option<Hit>>, RedteamError> {
    let d = t.domain.width();
    let mut out = vec![None; active.len()];
    // Bounded batches of samples, k draws each.
    let per = (crate::model::MAX_BATCH * 4 / k.max(1)).max(1);
    for (block, ids) in active.chunks(per).enumerate() {
        let mut rows = Vec::with_capacity(ids.len() * k * d);
        for &i in ids {
            let mut r = rng.fork(i as u64);
            let x0 = t.row(i);
            for _ in 0..k {
                let start = rows.len();
                rows.extend(
                    x0.iter()
                        .zip(&t.domain.scale)
                        .map(|(v, s)| v + r.symmetric() * eps * s),
                );
                t.domain.project(x0, &mut rows[start..], eps);
            }
        }
        let probs = t.model.predict(&rows)?;
        let c = t.model.classes();
        for (n, &i) in ids.iter().enumerate() {
            let mut best: Option<(f32, usize)> = None;
            for draw in 0..k {
                let q = n * k + draw;
                let p = &probs[q * c..(q + 1) * c];
                let m = margin(p, t.y[i]);
                if m < 0.0 && best.is_none_or(|(bm, _)| m < bm) {
                    best = Some((m, q));
                }
            }
            if let Some((_, q)) = best {
                let x = rows[q * d..(q + 1) * d].to_vec();
                out[block * per + n] = Some(Hit {
                    distance: t.domain.distance(t.row(i), &x),
                    label: argmax(&probs[q * c..(q + 1) * c]),
                    x,
                });
            }
        }
    }
    Ok(out)
}

/// The share of the window a Square step changes, by iteration (the paper's schedule, rescaled
/// to the number of iterations).
fn square_share(p_init: f32, it: usize, iters: usize) -> f32 {
    let it = it * 10_000 / iters.max(1);
    let div = match it {
        0..=10 => 1.0,
        11..=50 => 2.0,
        51..=200 => 4.0,
        201..=500 => 8.0,
        501..=1000 => 16.0,
        1001..=2000 => 32.0,
        2001..=4000 => 64.0,
        4001..=6000 => 128.0,
        6001..=8000 => 256.0,
        _ => 512.0,
    };
    p_init / div
}

/// The Square attack (L-inf) with `queries` model queries per sample.
pub fn square(
    t: &Target,
    active: &[usize],
    eps: f32,
    queries: usize,
    p_init: f32,
    rng: &Rng,
) -> Result<Vec<Option<Hit>>, RedteamError> {
    let d = t.domain.width();
    let c = t.model.classes();
    let n = active.len();
    let mut rngs: Vec<Rng> = active.iter().map(|&i| rng.fork(i as u64)).collect();
    // Start: vertical stripes of +-eps for images, +-eps per feature for tables.
    let mut best = Vec::with_capacity(n * d);
    for (k, &i) in active.iter().enumerate() {
        let x0 = t.row(i);
        let start = best.len();
        match t.domain.layout {
            Some(l) => {
                let signs: Vec<f32> = (0..l.channels * l.width).map(|_| rngs[k].sign()).collect();
                for (j, (v, s)) in x0.iter().zip(&t.domain.scale).enumerate() {
                    let (ch, col) = (j / (l.height * l.width), j % l.width);
                    best.push(v + signs[ch * l.width + col] * eps * s);
                }
            }
            None => best.extend(
                x0.iter()
                    .zip(&t.domain.scale)
                    .map(|(v, s)| v + rngs[k].sign() * eps * s),
            ),
        }
        t.domain.project(x0, &mut best[start..], eps);
    }
    let probs = t.model.predict(&best)?;
    let mut best_margin: Vec<f32> = (0..n)
        .map(|k| margin(&probs[k * c..(k + 1) * c], t.y[active[k]]))
        .collect();
    let mut best_label: Vec<usize> = (0..n).map(|k| argmax(&probs[k * c..(k + 1) * c])).collect();
    let iters = queries.saturating_sub(1);
    let mutable = t.domain.mutable();
    let mut cand = vec![0.0f32; n * d];
    for it in 0..iters {
        let live: Vec<usize> = (0..n).filter(|&k| best_margin[k] >= 0.0).collect();
        if live.is_empty() || mutable.is_empty() {
            break;
        }
        let p = square_share(p_init, it, iters);
        let mut rows = Vec::with_capacity(live.len() * d);
        for &k in &live {
            let x0 = t.row(active[k]);
            let cur = &best[k * d..(k + 1) * d];
            let row = &mut cand[k * d..(k + 1) * d];
            row.copy_from_slice(cur);
            let r = &mut rngs[k];
            if let Some(l) = t.domain.layout {
                {
                    let area = (l.height * l.width) as f32;
                    let s = ((p * area).sqrt().round() as usize)
                        .clamp(1, l.height.min(l.width).saturating_sub(1).max(1));
                    let h0 = r.below(l.height - s + 1);
                    let w0 = r.below(l.width - s + 1);
                    for ch in 0..l.channels {
                        let sign = r.sign();
                        for h in h0..h0 + s {
                            for w in w0..w0 + s {
                                let j = ch * l.height * l.width + h * l.width + w;
                                row[j] = x0[j] + sign * eps * t.domain.scale[j];
                            }
                        }
                    }
                }
            } else {
                let m = ((p * mutable.len() as f32).ceil() as usize).clamp(1, mutable.len());
                for _ in 0..m {
                    let j = mutable[r.below(mutable.len())];
                    row[j] = x0[j] + r.sign() * eps * t.domain.scale[j];
                }
            }
            t.domain.project(x0, row, eps);
            rows.extend_from_slice(row);
        }
        let probs = t.model.predict(&rows)?;
        for (q, &k) in live.iter().enumerate() {
            let p = &probs[q * c..(q + 1) * c];
            let m = margin(p, t.y[active[k]]);
            if m < best_margin[k] {
                best_margin[k] = m;
                best_label[k] = argmax(p);
                best[k * d..(k + 1) * d].copy_from_slice(&rows[q * d..(q + 1) * d]);
            }
        }
    }
    Ok((0..n)
        .map(|k| {
            (best_margin[k] < 0.0).then(|| {
                let x = best[k * d..(k + 1) * d].to_vec();
                Hit {
                    distance: t.domain.distance(t.row(active[k]), &x),
                    label: best_label[k],
                    x,
                }
            })
        })
        .collect())
}

/// Settings of [`hop_skip_jump`].
#[derive(Debug, Clone, Copy)]
pub struct HsjOptions {
    /// Gradient-estimation probes at the first iteration (growing with sqrt(iteration)).
    pub init_evals: usize,
    /// At most this many probes per estimate.
    pub max_evals: usize,
    pub iterations: usize,
    /// Queries per sample, all steps included.
    pub queries: usize,
}

impl Default for HsjOptions {
    fn default() -> Self {
        HsjOptions {
            init_evals: 100,
            max_evals: 1000,
            iterations: 40,
            queries: 5000,
        }
    }
}

/// Clean samples of another class HopSkipJump compares a sample with to find its start.
pub const MAX_START_CANDIDATES: usize = 2_048;

/// HopSkipJump (L-inf, untargeted): for each sample the smallest adversarial perturbation
/// found from labels alone. Starting points are the clean samples the model assigns another
/// class (the nearest one), else random points in the domain.
pub fn hop_skip_jump(
    t: &Target,
    active: &[usize],
    clean_labels: &[usize],
    opts: HsjOptions,
    rng: &Rng,
) -> Result<Vec<Option<Hit>>, RedteamError> {
    active
        .par_iter()
        .map(|&i| hsj_one(t, i, clean_labels, opts, &mut rng.fork(i as u64)))
        .collect()
}

/// Labels of points `x + s * dir` (or projected points) in one batch.
struct Probe<'a, 'b> {
    t: &'a Target<'b>,
    x0: &'a [f32],
    y: usize,
    used: usize,
    budget: usize,
}

impl Probe<'_, '_> {
    /// Whether each row is adversarial (the predicted class differs from the true one).
    fn adversarial(&mut self, rows: &[f32]) -> Result<Vec<bool>, RedteamError> {
        let n = rows.len() / self.t.domain.width();
        self.used += n;
        Ok(self
            .t
            .model
            .labels(rows)?
            .into_iter()
            .map(|l| l != self.y)
            .collect())
    }

    fn exhausted(&self) -> bool {
        self.used >= self.budget
    }

    /// `x` clipped into the L-inf ball of radius `r` (budget units) around `x0`.
    fn clip(&self, x: &[f32], r: f32) -> Vec<f32> {
        let mut v = x.to_vec();
        self.t.domain.project(self.x0, &mut v, r);
        v
    }

    /// The boundary between `x0` and the adversarial `adv` along L-inf clipping: a batched
    /// 16-way search, three rounds (1/4096 of the distance).
    fn boundary(&mut self, adv: &[f32]) -> Result<Vec<f32>, RedteamError> {
        let d = self.t.domain.width();
        let (mut lo, mut hi) = (0.0f32, self.t.domain.distance(self.x0, adv));
        let mut best = adv.to_vec();
        for _ in 0..3 {
            let steps = 16;
            let mut rows = Vec::with_capacity(steps * d);
            let radii: Vec<f32> = (1..=steps)
                .map(|k| lo + (hi - lo) * k as f32 / (steps + 1) as f32)
                .collect();
            for &r in &radii {
                rows.extend(self.clip(adv, r));
            }
            let adv_at = self.adversarial(&rows)?;
            match adv_at.iter().position(|&a| a) {
                Some(k) => {
                    hi = radii[k];
                    best = rows[k * d..(k + 1) * d].to_vec();
                    if k > 0 {
                        lo = radii[k - 1];
                    }
                }
                None => {
                    lo = radii[steps - 1];
                }
            }
        }
        Ok(best)
    }
}

fn hsj_one(
    t: &Target,
    i: usize,
    clean_labels: &[usize],
    opts: HsjOptions,
    rng: &mut Rng,
) -> Result<Option<Hit>, RedteamError> {
    let d = t.domain.width();
    let x0 = t.row(i);
    let y = t.y[i];
    let mut probe = Probe {
        t,
        x0,
        y,
        used: 0,
        budget: opts.queries,
    };
    let big = f32::MAX;
    // Start: the nearest sample the model puts in another class, else random points. Past
    // MAX_START_CANDIDATES such samples, an even spread of that many is searched, so the search
    // stays linear in the data.
    let others: Vec<usize> = (0..t.y.len()).filter(|&j| clean_labels[j] != y).collect();
    let stride = others.len().div_ceil(MAX_START_CANDIDATES).max(1);
    let start = others
        .iter()
        .step_by(stride)
        .map(|&j| (t.domain.distance(x0, t.row(j)), j))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, j)| {
            let mut v = t.row(j).to_vec();
            t.domain.project(x0, &mut v, big);
            v
        });
    let mut adv = match start {
        Some(v) if probe.adversarial(&v)?[0] => v,
        _ => {
            let mut rows = Vec::with_capacity(100 * d);
            for _ in 0..100 {
                let s = rows.len();
                rows.extend(
                    t.domain
                        .lo
                        .iter()
                        .zip(&t.domain.hi)
                        .map(|(lo, hi)| lo + rng.unit() * (hi - lo)),
                );
                t.domain.project(x0, &mut rows[s..], big);
            }
            let adv_at = probe.adversarial(&rows)?;
            match adv_at.iter().position(|&a| a) {
                Some(k) => rows[k * d..(k + 1) * d].to_vec(),
                None => return Ok(None),
            }
        }
    };
    adv = probe.boundary(&adv)?;
    let mut dist = t.domain.distance(x0, &adv);
    let mutable = t.domain.mutable();
    for it in 0..opts.iterations {
        if probe.exhausted() || dist <= 0.0 || mutable.is_empty() {
            break;
        }
        // Gradient direction at the boundary, from the signs of random probes.
        let evals = ((opts.init_evals as f32 * ((it + 1) as f32).sqrt()) as usize)
            .min(opts.max_evals)
            .min(opts.queries.saturating_sub(probe.used))
            .max(2);
        let delta = (dist / d as f32).max(1e-6);
        let mut dirs = Vec::with_capacity(evals * d);
        let mut rows = Vec::with_capacity(evals * d);
        for _ in 0..evals {
            let s = dirs.len();
            dirs.extend((0..d).map(|_| rng.symmetric()));
            let u = &dirs[s..];
            rows.extend(
                adv.iter()
                    .zip(u)
                    .zip(&t.domain.scale)
                    .map(|((a, u), sc)| a + delta * u * sc),
            );
            t.domain.project(x0, &mut rows[s..], big);
        }
        let signs: Vec<f32> = probe
            .adversarial(&rows)?
            .into_iter()
            .map(|a| if a { 1.0 } else { -1.0 })
            .collect();
        let mean = signs.iter().sum::<f32>() / signs.len() as f32;
        let baseline = if mean.abs() < 1.0 { mean } else { 0.0 };
        let mut grad = vec![0.0f32; d];
        for (k, s) in signs.iter().enumerate() {
            for j in 0..d {
                grad[j] += (s - baseline) * dirs[k * d + j];
            }
        }
        // Geometric step along sign(grad), all halvings in one batch.
        let step = dist / ((it + 1) as f32).sqrt();
        let halvings = 10;
        let mut rows = Vec::with_capacity(halvings * d);
        for h in 0..halvings {
            let e = step / (1u32 << h) as f32;
            let s = rows.len();
            rows.extend(
                adv.iter()
                    .zip(&grad)
                    .zip(&t.domain.scale)
                    .map(|((a, g), sc)| a + e * g.signum() * sc),
            );
            t.domain.project(x0, &mut rows[s..], big);
        }
        let ok = probe.adversarial(&rows)?;
        let Some(h) = ok.iter().position(|&a| a) else {
            continue;
        };
        let stepped = rows[h * d..(h + 1) * d].to_vec();
        let next = probe.boundary(&stepped)?;
        let nd = t.domain.distance(x0, &next);
        if nd < dist {
            adv = next;
            dist = nd;
        }
    }
    let label = t.model.labels(&adv)?[0];
    Ok((label != y).then(|| Hit {
        x: adv.clone(),
        label,
        distance: dist,
    }))
}

/// One feature's change in a tabular adversarial example.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub feature: usize,
    pub from: f32,
    pub to: f32,
}

/// A feature-wise adversarial example and its changes.
pub type FeatureHit = (Hit, Vec<Change>);

/// Greedy feature-wise search within the budget: at each step every unchanged feature is tried
/// at `grid` values across its box (all candidates of all samples in one batch) and the change
/// that lowers the margin most is kept, until the label flips or no change helps.
pub fn features(
    t: &Target,
    active: &[usize],
    eps: f32,
    grid: usize,
) -> Result<Vec<Option<FeatureHit>>, RedteamError> {
    let d = t.domain.width();
    let c = t.model.classes();
    let mutable = t.domain.mutable();
    let n = active.len();
    let mut cur: Vec<Vec<f32>> = active.iter().map(|&i| t.row(i).to_vec()).collect();
    let mut changed: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut cur_margin = vec![f32::INFINITY; n];
    let mut done = vec![false; n];
    let mut hit_label = vec![0usize; n];
    for _step in 0..mutable.len() {
        // Candidates: (sample, feature, value).
        let mut cands: Vec<(usize, usize)> = Vec::new();
        let mut rows = Vec::new();
        for k in 0..n {
            if done[k] {
                continue;
            }
            let x0 = t.row(active[k]);
            for &j in &mutable {
                if changed[k].contains(&j) {
                    continue;
                }
                let r = eps * t.domain.scale[j];
                let (lo, hi) = (
                    (x0[j] - r).max(t.domain.lo[j]),
                    (x0[j] + r).min(t.domain.hi[j]),
                );
                let mut values: Vec<f32> = (0..grid)
                    .map(|g| lo + (hi - lo) * g as f32 / (grid - 1).max(1) as f32)
                    .collect();
                if t.domain.integer[j] {
                    for v in &mut values {
                        *v = v.round();
                    }
                }
                values.dedup();
                for v in values {
                    if v.to_bits() == cur[k][j].to_bits() {
                        continue;
                    }
                    let s = rows.len();
                    rows.extend_from_slice(&cur[k]);
                    rows[s + j] = v;
                    t.domain.project(x0, &mut rows[s..s + d], eps);
                    cands.push((k, j));
                }
            }
        }
        if cands.is_empty() {
            break;
        }
        let probs = t.model.predict(&rows)?;
        let mut best: Vec<Option<(f32, usize)>> = vec![None; n];
        for (q, &(k, _)) in cands.iter().enumerate() {
            let m = margin(&probs[q * c..(q + 1) * c], t.y[active[k]]);
            if best[k].is_none_or(|(bm, _)| m < bm) {
                best[k] = Some((m, q));
            }
        }
        let mut progress = false;
        for k in 0..n {
            let Some((m, q)) = best[k] else {
                done[k] = true;
                continue;
            };
            if m >= cur_margin[k] && cur_margin[k].is_finite() {
                done[k] = true;
                continue;
            }
            progress = true;
            cur_margin[k] = m;
            cur[k].copy_from_slice(&rows[q * d..(q + 1) * d]);
            changed[k].push(cands[q].1);
            if m < 0.0 {
                done[k] = true;
                hit_label[k] = argmax(&probs[q * c..(q + 1) * c]);
            }
        }
        if !progress {
            break;
        }
    }
    Ok((0..n)
        .map(|k| {
            (cur_margin[k] < 0.0).then(|| {
                let x0 = t.row(active[k]);
                let mut changes: Vec<Change> = (0..d)
                    .filter(|&j| cur[k][j].to_bits() != x0[j].to_bits())
                    .map(|j| Change {
                        feature: j,
                        from: x0[j],
                        to: cur[k][j],
                    })
                    .collect();
                changes.sort_by_key(|c| c.feature);
                (
                    Hit {
                        distance: t.domain.distance(x0, &cur[k]),
                        label: hit_label[k],
                        x: cur[k].clone(),
                    },
                    changes,
                )
            })
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are the point of these tests
mod tests {
    use super::*;

    fn domain(d: usize) -> Domain {
        Domain {
            lo: vec![0.0; d],
            hi: vec![10.0; d],
            scale: vec![10.0; d],
            integer: vec![false; d],
            frozen: vec![false; d],
            layout: None,
        }
    }

    #[test]
    fn projection_keeps_box_range_integers_and_frozen_features() {
        let mut dm = domain(4);
        dm.integer[1] = true;
        dm.frozen[2] = true;
        let x0 = [5.0, 5.0, 5.0, 9.5];
        let mut x = [9.0, 6.7, 1.0, 12.0];
        dm.project(&x0, &mut x, 0.1);
        assert_eq!(x, [6.0, 6.0, 5.0, 10.0]);
        assert!((dm.distance(&x0, &x) - 0.1).abs() < 1e-6);
        // Rounding never leaves the box or the range: 5.4 rounds to 5, and an upper bound of
        // 5.5 keeps 6 out.
        let mut x = [5.0, 5.4, 5.0, 9.5];
        dm.project(&x0, &mut x, 0.04);
        assert_eq!(x[1], 5.0);
        dm.hi[1] = 5.5;
        let mut x = [5.0, 5.9, 5.0, 9.5];
        dm.project(&x0, &mut x, 0.1);
        assert_eq!(x[1], 5.0);
        // A whole-numbered feature at 2.5 with no whole number in reach stays put.
        let x0 = [5.0, 2.5, 5.0, 9.5];
        let mut x = [5.0, 2.9, 5.0, 9.5];
        dm.project(&x0, &mut x, 0.04);
        assert_eq!(x[1], 2.5);
        // A sample already outside a declared range can still move, toward it.
        let x0 = [12.0, 5.0, 5.0, 9.5];
        let mut x = [11.0, 5.0, 5.0, 9.5];
        dm.project(&x0, &mut x, 0.1);
        assert_eq!(x[0], 11.0);
        let mut x = [f32::NAN, 5.0, 5.0, 9.5];
        dm.project(&x0, &mut x, 0.1);
        assert_eq!(x[0], 12.0);
    }

    #[test]
    fn the_square_schedule_shrinks() {
        assert_eq!(square_share(0.8, 0, 1000), 0.8);
        assert!(square_share(0.8, 999, 1000) < square_share(0.8, 100, 1000));
    }
}
