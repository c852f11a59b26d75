//! A classifier in ONNX, run in process by tract: rows of `f32` in, class probabilities out.
//!
//! The model is a black box to every attack: they see only [`Classifier::predict`] (scores) or
//! the labels derived from it, as an attacker against a deployed endpoint would. Every row
//! queried is counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::RedteamError;

/// Largest model file loaded.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
/// Largest number of classes accepted from a model's output.
pub const MAX_CLASSES: usize = 10_000;
/// Largest number of input values per row.
pub const MAX_FEATURES: usize = 1 << 20;
/// Rows per model run; larger requests are split (and run in parallel).
pub const MAX_BATCH: usize = 256;

/// How an image classifier's input is laid out, for attacks that perturb spatial windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Layout {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl Layout {
    /// Parses `HxW` or `CxHxW`.
    pub fn parse(s: &str) -> Option<Layout> {
        let parts: Vec<usize> = s
            .split(['x', 'X'])
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        let l = match parts[..] {
            [h, w] => Layout {
                channels: 1,
                height: h,
                width: w,
            },
            [c, h, w] => Layout {
                channels: c,
                height: h,
                width: w,
            },
            _ => return None,
        };
        (l.channels > 0 && l.height > 0 && l.width > 0).then_some(l)
    }

    /// Values per row.
    pub fn values(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// What the chosen output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scores {
    /// Rows already sum to one (scikit-learn's `probabilities`).
    Probabilities,
    /// Raw scores: softmax is applied (a PyTorch export's logits).
    Logits,
}

/// A loaded classifier.
pub struct Classifier {
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    /// The input's shape after the batch dimension (`[64]`, `[1, 28, 28]`).
    row_shape: Vec<usize>,
    features: usize,
    output: usize,
    output_name: String,
    classes: usize,
    scores: Scores,
    layout: Option<Layout>,
    queries: AtomicU64,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("path", &self.path)
            .field("row_shape", &self.row_shape)
            .field("classes", &self.classes)
            .field("scores", &self.scores)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// Loads `path`. `features` is the row width the data has, used where the model leaves its
    /// input width open; `layout` declares an image layout for a flat input.
    pub fn load(
        path: &Path,
        features: Option<usize>,
        layout: Option<Layout>,
    ) -> Result<Classifier, RedteamError> {
        // tract parses the file: a malformed model that trips it is an error naming the file.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Classifier::load_unguarded(path, features, layout)
        }))
        .unwrap_or_else(|_| {
            Err(RedteamError::Model {
                path: path.to_path_buf(),
                problem: "the ONNX reader failed on this file: it is corrupt or uses an operator tract does not run".into(),
            })
        })
    }

    fn load_unguarded(
        path: &Path,
        features: Option<usize>,
        layout: Option<Layout>,
    ) -> Result<Classifier, RedteamError> {
        let err = |problem: String| RedteamError::Model {
            path: path.to_path_buf(),
            problem,
        };
        let size = fs_err::metadata(path)
            .map_err(|e| err(e.to_string()))?
            .len();
        if size > MAX_MODEL_BYTES {
            return Err(err(format!(
                "{size} bytes, more than the {MAX_MODEL_BYTES} a model may be"
            )));
        }
        let mut m = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| err(format!("not a model tract can read: {e:#}")))?;
        let inputs = m.input_outlets().map_err(|e| err(e.to_string()))?.len();
        if inputs != 1 {
            return Err(err(format!(
                "has {inputs} inputs; a classifier here takes one tensor of rows"
            )));
        }
        let declared = m.input_fact(0).map_err(|e| err(e.to_string()))?.clone();
        let dims: Vec<Option<usize>> = declared
            .shape
            .dims()
            .map(|d| {
                d.concretize()
                    .and_then(|t| t.to_i64().ok())
                    .and_then(|v| usize::try_from(v).ok())
            })
            .collect();
        let row_shape: Vec<usize> = match dims.len() {
            0 | 1 => match features {
                Some(f) => vec![f],
                None => return Err(err("the input has no row dimension".into())),
            },
            2 => vec![dims[1].or(features).ok_or_else(|| {
                err("the input's width is not declared and no data gives it".into())
            })?],
            _ => dims[1..]
                .iter()
                .map(|d| {
                    d.ok_or_else(|| {
                        err(format!(
                            "the input shape {dims:?} leaves a dimension other than the batch open"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let width = row_shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&w| w > 0 && w <= MAX_FEATURES)
            .ok_or_else(|| {
                err(format!(
                    "input shape {row_shape:?} is empty or over {MAX_FEATURES} values"
                ))
            })?;
        let layout = match (layout, row_shape.as_slice()) {
            (Some(l), _) if l.values() != width => {
                return Err(err(format!(
                    "--image {}x{}x{} has {} values but the input row has {width}",
                    l.channels,
                    l.height,
                    l.width,
                    l.values()
                )));
            }
            (Some(l), _) => Some(l),
            (None, [c, h, w]) => Some(Layout {
                channels: *c,
                height: *h,
                width: *w,
            }),
            (None, [h, w]) => Some(Layout {
                channels: 1,
                height: *h,
                width: *w,
            }),
            _ => None,
        };
        let batch = m.symbols.sym("N");
        let mut shape: TVec<TDim> = tvec![batch.to_dim()];
        shape.extend(row_shape.iter().map(|&d| d.to_dim()));
        m.set_input_fact(0, InferenceFact::dt_shape(f32::datum_type(), shape))
            .map_err(|e| err(e.to_string()))?;
        let mut typed = m
            .into_optimized()
            .map_err(|e| err(format!("cannot be prepared to run: {e:#}")))?;
        // Tree ensembles run through mlsec's evaluator: the same scores, some 50 times faster.
        crate::trees::accelerate(&mut typed)
            .map_err(|e| err(format!("has a tree ensemble that cannot be run: {e:#}")))?;
        // The output: a float tensor [batch, classes], preferring one named for probabilities.
        let mut candidates = Vec::new();
        let outlets = typed
            .output_outlets()
            .map_err(|e| err(e.to_string()))?
            .to_vec();
        for (i, o) in outlets.iter().enumerate() {
            let fact = typed.outlet_fact(*o).map_err(|e| err(e.to_string()))?;
            if fact.datum_type.is_float() && fact.rank() == 2 {
                let name = typed.node(o.node).name.clone();
                candidates.push((i, name));
            }
        }
        let Some((output, output_name)) = candidates
            .iter()
            .find(|(_, n)| n.to_ascii_lowercase().contains("prob"))
            .or_else(|| candidates.last())
            .cloned()
        else {
            return Err(err(
                "has no float output of shape [batch, classes] to read scores from".into(),
            ));
        };
        let plan = typed
            .into_runnable()
            .map_err(|e| err(format!("cannot be prepared to run: {e:#}")))?;
        let mut c = Classifier {
            path: path.to_path_buf(),
            plan,
            row_shape,
            features: width,
            output,
            output_name,
            classes: 0,
            scores: Scores::Probabilities,
            layout,
            queries: AtomicU64::new(0),
        };
        // One run on a zero row: the class count, and whether the output is probabilities.
        let probe = c.raw(&vec![0.0; width], 1)?;
        c.classes = probe.len();
        if c.classes < 2 || c.classes > MAX_CLASSES {
            return Err(err(format!(
                "output {:?} has {} classes; expected 2 to {MAX_CLASSES}",
                c.output_name, c.classes
            )));
        }
        let sum: f32 = probe.iter().sum();
        c.scores = if probe.iter().all(|p| (0.0..=1.0).contains(p)) && (sum - 1.0).abs() < 1e-3 {
            Scores::Probabilities
        } else {
            Scores::Logits
        };
        c.queries.store(0, Ordering::Relaxed);
        Ok(c)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn features(&self) -> usize {
        self.features
    }
    pub fn classes(&self) -> usize {
        self.classes
    }
    pub fn scores(&self) -> Scores {
        self.scores
    }
    pub fn output_name(&self) -> &str {
        &self.output_name
    }
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }
    /// The input's shape after the batch dimension.
    pub fn row_shape(&self) -> &[usize] {
        &self.row_shape
    }
    /// Rows queried so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// The raw output rows for `n` rows of input (`rows.len() == n * features`).
    fn raw(&self, rows: &[f32], n: usize) -> Result<Vec<f32>, RedteamError> {
        let run = |e: TractError| RedteamError::Run {
            path: self.path.clone(),
            problem: format!("{e:#}"),
        };
        let mut shape = vec![n];
        shape.extend(&self.row_shape);
        let input = Tensor::from_shape(&shape, rows).map_err(run)?;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.plan.run(tvec![input.into_tvalue()])
        }))
        .map_err(|_| RedteamError::Run {
            path: self.path.clone(),
            problem: "the model's run failed inside tract".into(),
        })?
        .map_err(run)?;
        let t = out
            .get(self.output)
            .ok_or_else(|| RedteamError::Run {
                path: self.path.clone(),
                problem: "the model returned fewer outputs than it declares".into(),
            })?
            .cast_to::<f32>()
            .map_err(run)?
            .into_owned();
        let v: Vec<f32> = t
            .to_plain_array_view::<f32>()
            .map_err(run)?
            .iter()
            .copied()
            .collect();
        if n == 0
            || !v.len().is_multiple_of(n)
            || (self.classes != 0 && v.len() != n * self.classes)
        {
            return Err(RedteamError::Run {
                path: self.path.clone(),
                problem: format!(
                    "output {:?} has {} values for {n} rows",
                    self.output_name,
                    v.len()
                ),
            });
        }
        Ok(v)
    }

    /// Class probabilities for `rows` (row-major, `features` values each): one `Vec` of
    /// `classes` values per row. Logits are put through softmax; probabilities are clamped and
    /// renormalised. Each row counts as one query.
    pub fn predict(&self, rows: &[f32]) -> Result<Vec<f32>, RedteamError> {
        let d = self.features;
        if !rows.len().is_multiple_of(d) {
            return Err(RedteamError::Run {
                path: self.path.clone(),
                problem: format!(
                    "{} values is not a whole number of {d}-value rows",
                    rows.len()
                ),
            });
        }
        let n = rows.len() / d;
        self.queries.fetch_add(n as u64, Ordering::Relaxed);
        let chunks: Vec<&[f32]> = rows.chunks(MAX_BATCH * d).collect();
        let outs: Vec<Result<Vec<f32>, RedteamError>> = if chunks.len() > 1 {
            chunks
                .par_iter()
                .map(|c| self.raw(c, c.len() / d))
                .collect()
        } else {
            chunks.iter().map(|c| self.raw(c, c.len() / d)).collect()
        };
        let mut all = Vec::with_capacity(n * self.classes);
        for o in outs {
            all.extend(o?);
        }
        for row in all.chunks_mut(self.classes) {
            normalise(row, self.scores);
        }
        Ok(all)
    }

    /// The predicted class of each row.
    pub fn labels(&self, rows: &[f32]) -> Result<Vec<usize>, RedteamError> {
        Ok(self
            .predict(rows)?
            .chunks(self.classes)
            .map(argmax)
            .collect())
    }
}

/// Turns one output row into probabilities in place; a row with a non-finite value becomes
/// uniform (the model gave no usable score).
pub fn normalise(row: &mut [f32], scores: Scores) {
    if row.iter().any(|v| !v.is_finite()) {
        let u = 1.0 / row.len() as f32;
        row.fill(u);
        return;
    }
    match scores {
        Scores::Logits => {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            for v in row.iter_mut() {
                *v /= sum;
            }
        }
        Scores::Probabilities => {
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = v.clamp(0.0, 1.0);
                sum += *v;
            }
            if sum > 0.0 {
                for v in row.iter_mut() {
                    *v /= sum;
                }
            } else {
                row.fill(1.0 / row.len() as f32);
            }
        }
    }
}

/// The index of the largest value (the first on ties).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// `p[label]` minus the largest other probability: negative once the row is misclassified.
pub fn margin(row: &[f32], label: usize) -> f32 {
    let own = row.get(label).copied().unwrap_or(0.0);
    let other = row
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != label)
        .map(|(_, v)| *v)
        .fold(f32::NEG_INFINITY, f32::max);
    own - other
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // exact values are the point of these tests
mod tests {
    use super::*;

    #[test]
    fn layouts_parse() {
        assert_eq!(
            Layout::parse("8x8"),
            Some(Layout {
                channels: 1,
                height: 8,
                width: 8
            })
        );
        assert_eq!(Layout::parse("3x32x32").map(|l| l.values()), Some(3072));
        assert_eq!(Layout::parse("0x8"), None);
        assert_eq!(Layout::parse("8"), None);
        assert_eq!(Layout::parse("axb"), None);
    }

    #[test]
    fn scores_become_probabilities() {
        let mut logits = [1.0, 2.0, 3.0];
        normalise(&mut logits, Scores::Logits);
        assert!((logits.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(argmax(&logits), 2);
        let mut bad = [f32::NAN, 1.0];
        normalise(&mut bad, Scores::Probabilities);
        assert_eq!(bad, [0.5, 0.5]);
        assert!(margin(&[0.2, 0.7, 0.1], 1) > 0.0);
        assert!(margin(&[0.2, 0.7, 0.1], 0) < 0.0);
    }
}
