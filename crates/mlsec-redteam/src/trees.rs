//! A faster evaluator for ONNX-ML tree ensembles (random forests, gradient boosting).
//!
//! tract 0.23 runs `TreeEnsembleClassifier` correctly but reaches each leaf's votes by skipping
//! through the leaf table from its start, so a row costs time in proportion to the whole
//! forest's leaves: about 150 µs per row for a 10-tree forest, where the attacks and audits
//! query a model hundreds of thousands of times. [`accelerate`] swaps that operator, after
//! tract has parsed and optimised the graph, for [`FastTrees`]: the same nodes and leaves laid
//! out flat, a walk from root to leaf, and the leaf's votes read by index. Everything around the
//! ensemble (the post-transform, the label, casts) stays tract's.
//!
//! The arithmetic is tract's, vote for vote and in the same order, so scores are bit for bit
//! the same; one difference is deliberate: tract 0.23 reads `BRANCH_GTE` nodes as leaves, and
//! this evaluator compares them as the ONNX operator says.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::{EvalContext, EvalOp, Op, StaticName, TypedOp, bail};
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};
use tract_onnx_opl::ml::tree::{Aggregate, TreeEnsemble};
use tract_onnx_opl::ml::tree_ensemble_classifier::TreeEnsembleClassifier;

/// One node: a comparison with two children, or a leaf with a range of votes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Node {
    /// For a branch, the feature compared; for a leaf, its first vote.
    a: u32,
    /// For a branch, the child when the comparison holds; for a leaf, one past its last vote.
    b: u32,
    /// For a branch, the other child.
    c: u32,
    value: f32,
    /// 0 for a leaf, else the comparison (1 `==`, 2 `!=`, 3 `<`, 4 `>`, 5 `<=`, 6 `>=`).
    cmp: u8,
    nan_is_true: bool,
}

/// A tree ensemble laid out for a root-to-leaf walk.
#[derive(Debug, Clone)]
pub struct FastTrees {
    roots: Vec<u32>,
    nodes: Vec<Node>,
    /// Per vote: the class and its weight.
    votes: Vec<(u32, f32)>,
    classes: usize,
    max_used_feature: usize,
    aggregate: Aggregate,
}

impl PartialEq for FastTrees {
    fn eq(&self, other: &Self) -> bool {
        self.roots == other.roots
            && self.nodes == other.nodes
            && self.votes.len() == other.votes.len()
            && self
                .votes
                .iter()
                .zip(&other.votes)
                .all(|(x, y)| x.0 == y.0 && x.1.to_bits() == y.1.to_bits())
            && self.classes == other.classes
            && self.aggregate == other.aggregate
    }
}
impl Eq for FastTrees {}

impl std::hash::Hash for FastTrees {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.roots.hash(state);
        self.nodes.len().hash(state);
        self.votes.len().hash(state);
        self.classes.hash(state);
    }
}

impl FastTrees {
    /// The ensemble of tract's operator, checked: every child, vote range and class in bounds
    /// and every walk from a root finite, so evaluation never indexes out of range or loops.
    pub fn from_tract(e: &TreeEnsemble) -> TractResult<Self> {
        let roots = plain_u32(&e.data.trees)?;
        let raw = plain_u32(&e.data.nodes)?;
        let leaves = plain_u32(&e.data.leaves)?;
        if raw.len() % 5 != 0 || leaves.len() % 2 != 0 {
            bail!("tree ensemble tables of unexpected shape");
        }
        let n = raw.len() / 5;
        let votes: Vec<(u32, f32)> = leaves
            .chunks_exact(2)
            .map(|v| (v[0], f32::from_bits(v[1])))
            .collect();
        if let Some((class, _)) = votes.iter().find(|(c, _)| *c as usize >= e.n_classes) {
            bail!("tree ensemble vote for class {class} of {}", e.n_classes);
        }
        let mut nodes = Vec::with_capacity(n);
        for row in raw.chunks_exact(5) {
            let cmp = (row[4] & 0xFF) as u8;
            let node = Node {
                a: row[0],
                b: row[1],
                c: row[2],
                value: f32::from_bits(row[3]),
                cmp: if (1..=6).contains(&cmp) { cmp } else { 0 },
                nan_is_true: row[4] & 0x100 != 0,
            };
            if node.cmp == 0 {
                if node.a > node.b || node.b as usize > votes.len() {
                    bail!(
                        "tree ensemble leaf with votes {}..{} of {}",
                        node.a,
                        node.b,
                        votes.len()
                    );
                }
            } else if node.b as usize >= n || node.c as usize >= n {
                bail!("tree ensemble branch to a node past the table");
            } else if node.a as usize > e.max_used_feature {
                bail!(
                    "tree ensemble branch on feature {} past the declared maximum",
                    node.a
                );
            }
            nodes.push(node);
        }
        if let Some(r) = roots.iter().find(|r| **r as usize >= n) {
            bail!("tree ensemble root {r} past the node table");
        }
        let trees = Self {
            roots,
            nodes,
            votes,
            classes: e.n_classes,
            max_used_feature: e.max_used_feature,
            aggregate: e.aggregate_fn,
        };
        trees.check_acyclic()?;
        Ok(trees)
    }

    /// Every walk from a root reaches a leaf: the branches reachable from the roots form no
    /// cycle (checked once, so the walk needs no step limit).
    fn check_acyclic(&self) -> TractResult<()> {
        // 0 unseen, 1 on the current path, 2 done.
        let mut state = vec![0u8; self.nodes.len()];
        for &root in &self.roots {
            let mut stack = vec![(root as usize, false)];
            while let Some((i, leaving)) = stack.pop() {
                if leaving {
                    state[i] = 2;
                    continue;
                }
                match state[i] {
                    2 => continue,
                    1 => bail!("tree ensemble with a cycle through node {i}"),
                    _ => {}
                }
                state[i] = 1;
                stack.push((i, true));
                let node = self.nodes[i];
                if node.cmp != 0 {
                    for child in [node.b as usize, node.c as usize] {
                        if state[child] == 1 {
                            bail!("tree ensemble with a cycle through node {child}");
                        }
                        if state[child] == 0 {
                            stack.push((child, false));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    // BRANCH_EQ and BRANCH_NEQ compare exactly, as the operator (and tract) define them.
    #[allow(clippy::float_cmp)]
    fn leaf(&self, root: u32, row: &[f32]) -> Node {
        let mut node = self.nodes[root as usize];
        while node.cmp != 0 {
            let x = row[node.a as usize];
            let holds = if x.is_nan() {
                node.nan_is_true
            } else {
                match node.cmp {
                    1 => x == node.value,
                    2 => x != node.value,
                    3 => x < node.value,
                    4 => x > node.value,
                    5 => x <= node.value,
                    _ => x >= node.value,
                }
            };
            node = self.nodes[if holds { node.b } else { node.c } as usize];
        }
        node
    }

    /// Scores of each row (`rows.len() / features` of them) into `out`, `classes` per row.
    fn eval_rows(&self, rows: &[f32], features: usize, out: &mut [f32]) {
        let mut counts = vec![0usize; self.classes];
        for (row, scores) in rows
            .chunks_exact(features)
            .zip(out.chunks_exact_mut(self.classes))
        {
            for &root in &self.roots {
                let leaf = self.leaf(root, row);
                for &(class, weight) in &self.votes[leaf.a as usize..leaf.b as usize] {
                    let total = &mut scores[class as usize];
                    match self.aggregate {
                        Aggregate::Sum => *total += weight,
                        Aggregate::Avg => {
                            *total += weight;
                            counts[class as usize] += 1;
                        }
                        Aggregate::Max => *total = total.max(weight),
                        Aggregate::Min => *total = total.min(weight),
                    }
                }
            }
            if self.aggregate == Aggregate::Avg {
                for (total, count) in scores.iter_mut().zip(&mut counts) {
                    if *count > 1 {
                        *total /= *count as f32;
                    }
                    *count = 0;
                }
            }
        }
    }
}

fn plain_u32(t: &Tensor) -> TractResult<Vec<u32>> {
    Ok(t.to_plain_array_view::<u32>()?.iter().copied().collect())
}

impl Op for FastTrees {
    fn name(&self) -> StaticName {
        "mlsec.FastTreeEnsembleClassifier".into()
    }

    op_as_typed_op!();
}

impl EvalOp for FastTrees {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if inputs.len() != 1 {
            bail!("tree ensemble expects one input, got {}", inputs.len());
        }
        let input = inputs[0].cast_to::<f32>()?;
        let (n, features) = match input.shape() {
            [f] => (1, *f),
            [n, f] => (*n, *f),
            other => bail!("tree ensemble input of shape {other:?}"),
        };
        if features <= self.max_used_feature {
            bail!(
                "input has {features} features, the tree ensemble uses feature #{}",
                self.max_used_feature
            );
        }
        let rows = input.to_plain_array_view::<f32>()?;
        let rows: Vec<f32> = rows.iter().copied().collect();
        let mut out = vec![0f32; n * self.classes];
        self.eval_rows(&rows, features, &mut out);
        let t = if input.rank() == 1 {
            Tensor::from_shape(&[self.classes], &out)?
        } else {
            Tensor::from_shape(&[n, self.classes], &out)?
        };
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for FastTrees {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = &inputs[0].shape[0];
        Ok(tvec!(f32::fact([n.clone(), self.classes.into()])))
    }

    as_op!();
}

/// Replaces each tract `TreeEnsembleClassifier` in `model` with [`FastTrees`]; how many.
pub fn accelerate(model: &mut TypedModel) -> TractResult<usize> {
    let mut swapped = 0;
    for node in model.nodes_mut() {
        if let Some(op) = node.op_as::<TreeEnsembleClassifier>() {
            let fast = FastTrees::from_tract(&op.ensemble)?;
            node.op = Box::new(fast);
            swapped += 1;
        }
    }
    Ok(swapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx_opl::ml::tree::TreeEnsembleData;

    fn optimized(path: &str, features: usize) -> TypedModel {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path);
        let mut m = tract_onnx::onnx().model_for_path(&path).unwrap();
        let batch = m.symbols.sym("N");
        m.set_input_fact(
            0,
            InferenceFact::dt_shape(f32::datum_type(), tvec![batch.to_dim(), features.to_dim()]),
        )
        .unwrap();
        m.into_optimized().unwrap()
    }

    fn outputs(model: TypedModel, rows: &[f32], features: usize) -> Vec<Vec<f32>> {
        let plan = model.into_runnable().unwrap();
        let input = Tensor::from_shape(&[rows.len() / features, features], rows).unwrap();
        plan.run(tvec![input.into_tvalue()])
            .unwrap()
            .iter()
            .filter_map(|t| t.cast_to::<f32>().ok().map(std::borrow::Cow::into_owned))
            .map(|t| {
                t.to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect()
            })
            .collect()
    }

    #[test]
    fn forests_score_bit_for_bit_as_tract_does() {
        for (path, features) in [
            ("fixtures/redteam/credit_forest.onnx", 6),
            ("fixtures/redteam/member_overfit.onnx", 12),
            ("fixtures/redteam/member_ref_0.onnx", 12),
        ] {
            let reference = optimized(path, features);
            let mut fast = reference.clone();
            assert_eq!(accelerate(&mut fast).unwrap(), 1, "{path}");
            assert!(
                fast.nodes()
                    .iter()
                    .all(|n| n.op_as::<TreeEnsembleClassifier>().is_none()),
                "{path}"
            );
            // Rows across and beyond the data's range, with NaN and the thresholds' edges.
            let mut rng = crate::rng::Rng::new(7);
            let mut rows: Vec<f32> = (0..300 * features)
                .map(|_| (rng.unit() - 0.3) * 40.0)
                .collect();
            rows[3] = f32::NAN;
            rows[features + 1] = f32::INFINITY;
            let want = outputs(reference, &rows, features);
            let got = outputs(fast, &rows, features);
            assert_eq!(want.len(), got.len());
            for (w, g) in want.iter().zip(&got) {
                assert_eq!(w.len(), g.len());
                for (a, b) in w.iter().zip(g) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{path}: {a} vs {b}");
                }
            }
        }
    }

    fn ensemble(nodes: &[[u32; 5]], leaves: &[(u32, f32)], aggregate: Aggregate) -> TreeEnsemble {
        let flat: Vec<u32> = nodes.iter().flatten().copied().collect();
        let votes: Vec<u32> = leaves.iter().flat_map(|(c, w)| [*c, w.to_bits()]).collect();
        TreeEnsemble {
            data: TreeEnsembleData {
                trees: Arc::new(tensor1(&[0u32])),
                nodes: Arc::new(Tensor::from_shape(&[nodes.len(), 5], &flat).unwrap()),
                leaves: Arc::new(Tensor::from_shape(&[leaves.len(), 2], &votes).unwrap()),
            },
            max_used_feature: 0,
            n_classes: 2,
            aggregate_fn: aggregate,
        }
    }

    const LE: u32 = 5;
    const GE: u32 = 6;

    #[test]
    fn comparisons_nan_and_aggregates_follow_the_operator() {
        // feature 0 >= 1.5 -> leaf 1 (class 1), else leaf 2 (class 0); NaN goes true.
        let e = ensemble(
            &[
                [0, 1, 2, 1.5f32.to_bits(), GE | 0x100],
                [0, 1, 0, 0, 0],
                [1, 3, 0, 0, 0],
            ],
            &[(1, 1.0), (0, 0.25), (0, 0.75)],
            Aggregate::Avg,
        );
        let t = FastTrees::from_tract(&e).unwrap();
        let mut out = vec![0.0; 6];
        t.eval_rows(&[2.0, 1.0, f32::NAN], 1, &mut out);
        assert_eq!(out, vec![0.0, 1.0, 0.5, 0.0, 0.0, 1.0]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        /// Any tables: refused with an error, or every row evaluates without a panic or a
        /// hang, `classes` scores per row.
        #[test]
        fn any_tables_are_refused_or_run(
            nodes in proptest::collection::vec(
                (0u32..4, 0u32..8, 0u32..8, -2f32..2.0, 0u32..8, proptest::prelude::any::<bool>()),
                1..12,
            ),
            leaves in proptest::collection::vec((0u32..3, -1f32..1.0), 0..10),
            rows in proptest::collection::vec(-3f32..3.0, 0..12),
            aggregate in 0usize..4,
        ) {
            let nodes: Vec<[u32; 5]> = nodes
                .iter()
                .map(|&(a, b, c, v, cmp, nan)| [a, b, c, v.to_bits(), cmp | if nan { 0x100 } else { 0 }])
                .collect();
            let aggregate = [Aggregate::Sum, Aggregate::Avg, Aggregate::Max, Aggregate::Min][aggregate];
            let mut e = ensemble(&nodes, &leaves, aggregate);
            e.max_used_feature = 3;
            if let Ok(t) = FastTrees::from_tract(&e) {
                let rows = &rows[..rows.len() / 4 * 4];
                let mut out = vec![0.0; rows.len() / 4 * 2];
                t.eval_rows(rows, 4, &mut out);
            }
        }
    }

    #[test]
    fn hostile_tables_are_refused_not_run() {
        type Case = (Vec<[u32; 5]>, Vec<(u32, f32)>, &'static str);
        let cases: Vec<Case> = vec![
            (vec![[0, 0, 0, 0, LE]], vec![], "cycle"),
            (
                vec![[0, 1, 2, 0, LE], [0, 1, 0, 0, 0]],
                vec![(0, 1.0)],
                "past the table",
            ),
            (vec![[0, 5, 0, 0, 0]], vec![(0, 1.0)], "votes"),
            (vec![[0, 1, 0, 0, 0]], vec![(9, 1.0)], "class 9"),
            (vec![[3, 1, 1, 0, LE], [0, 0, 0, 0, 0]], vec![], "feature 3"),
        ];
        for (nodes, leaves, want) in cases {
            let e = ensemble(&nodes, &leaves, Aggregate::Sum);
            let problem = FastTrees::from_tract(&e).unwrap_err().to_string();
            assert!(problem.contains(want), "{want}: {problem}");
        }
    }
}
