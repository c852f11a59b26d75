#!/usr/bin/env python3
"""Builds the fixtures of `mlsec redteam classifier` and `mlsec redteam membership`: small
scikit-learn classifiers trained here and exported to ONNX by skl2onnx (probabilities as a plain
[batch, classes] tensor, no ZipMap), the data they are attacked and audited with, and the
probabilities onnxruntime gives for a few rows, so the Rust tests check tract against the
reference runtime.

    python3 -m venv /tmp/rt-venv && /tmp/rt-venv/bin/pip install scikit-learn==1.5.2 \
        skl2onnx==1.19.1 onnx==1.17.0 protobuf==5.29.3 onnxruntime==1.20.1 numpy==2.1.3
    /tmp/rt-venv/bin/python scripts/redteam_fixtures.py

Writes fixtures/redteam/. What each model is, and what the tests expect of it:

* digits_mlp.onnx: an MLP on scikit-learn's 8x8 digits, pixels scaled to [0, 1]. Accurate, and
  robust to random noise of L-inf size 0.1 but not to a score-based (Square) or decision-based
  (HopSkipJump) attack of the same size. digits_test.csv: 200 held-out digits (64 pixel columns
  and `label`). digits_logits.onnx: the same network shaped like a PyTorch export (input
  [N, 1, 8, 8], raw logits out); expected.json holds its softmaxed outputs.
* credit_forest.onnx, credit_logistic.onnx: a random forest (10 trees: tract evaluates tree
  ensembles slowly, see docs/redteam.md) and a logistic regression on a
  synthetic credit table (six named features, `default` label) where the decision hangs on
  debt_ratio and late_payments. credit_test.csv: 300 held-out rows.
* member_overfit.onnx: a fully grown random forest on 500 rows of a noisy task: it memorises its
  training set (membership is exposed). member_regular.onnx: a strongly regularised logistic
  regression on the same rows (membership is not exposed). member_train.csv (the 500 members),
  member_holdout.csv (500 non-members from the same distribution), member_population.csv (2,000
  more rows: shadow data), member_ref_{0..3}.onnx: forests like member_overfit trained on random
  halves of the population (reference models for the calibrated attack).
"""
import csv
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import load_digits, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "redteam")
EXPECTED = {}


def export(model, x, name):
    onx = to_onnx(model, x[:1].astype(np.float32), options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    onx.doc_string = ""
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
    # onnxruntime's probabilities for the first rows, and agreement with scikit-learn.
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rows = x[:5].astype(np.float32)
    _, probs = sess.run(None, {sess.get_inputs()[0].name: rows})
    ref = model.predict_proba(rows)
    assert np.allclose(probs, ref, atol=1e-4), (name, probs, ref)
    EXPECTED[name] = [[round(float(p), 6) for p in row] for row in probs]


def write_csv(name, header, x, y, fmt):
    with open(os.path.join(OUT, name), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for row, label in zip(x, y):
            w.writerow([fmt(v) for v in row] + [int(label)])


def compact(v):
    return ("%.6g" % v)


def digits():
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, test = order[:1500], order[1500:1700]
    mlp = MLPClassifier(hidden_layer_sizes=(48,), alpha=1e-4, max_iter=600, random_state=0)
    mlp.fit(x[train], y[train])
    print("digits mlp: train %.3f test %.3f" % (mlp.score(x[train], y[train]),
                                                mlp.score(x[test], y[test])))
    export(mlp, x[test], "digits_mlp.onnx")
    logits_model(mlp, x[test])
    header = ["p%d" % i for i in range(64)] + ["label"]
    write_csv("digits_test.csv", header, x[test], y[test], compact)


def logits_model(mlp, x):
    """The same network as a PyTorch export looks: an image-shaped input [N, 1, 8, 8] and raw
    logits out (no softmax), written with onnx.helper from the MLP's weights (torch is not
    needed for the shape, and its wheels are gigabytes)."""
    from onnx import TensorProto, helper, numpy_helper

    w1, w2 = [w.astype(np.float32) for w in mlp.coefs_]
    b1, b2 = [b.astype(np.float32) for b in mlp.intercepts_]
    inits = [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w1"], ["h1"]),
        helper.make_node("Add", ["h1", "b1"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["h3"]),
        helper.make_node("MatMul", ["h3", "w2"], ["h4"]),
        helper.make_node("Add", ["h4", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "digits_logits",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, "digits_logits.onnx")
    onnx.save(model, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rows = x[:5].astype(np.float32)
    (logits,) = sess.run(None, {"input": rows.reshape(-1, 1, 8, 8)})
    e = np.exp(logits - logits.max(1, keepdims=True))
    probs = e / e.sum(1, keepdims=True)
    assert np.allclose(probs, mlp.predict_proba(rows), atol=1e-4)
    EXPECTED["digits_logits.onnx"] = [[round(float(p), 6) for p in row] for row in probs]


def credit():
    rng = np.random.default_rng(1)
    n = 3300
    income = np.round(np.exp(rng.normal(10.8, 0.5, n)), 0)
    debt_ratio = np.round(np.clip(rng.beta(2, 5, n), 0, 1), 3)
    age = rng.integers(18, 80, n).astype(float)
    tenure = rng.integers(0, 240, n).astype(float)
    amount = np.round(np.exp(rng.normal(8.5, 1.0, n)), 0)
    late = rng.poisson(0.8, n).astype(float)
    z = 9.0 * (debt_ratio - 0.3) + 1.1 * (late - 1.0) + 0.4 * np.log(amount / income + 1e-3) + 1.0
    y = (z + rng.logistic(0, 0.6, n) > 0).astype(int)
    x = np.stack([income, debt_ratio, age, tenure, amount, late], axis=1).astype(np.float32)
    train, test = slice(0, 3000), slice(3000, 3300)
    forest = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0)
    forest.fit(x[train], y[train])
    logistic = LogisticRegression(C=1.0, max_iter=5000)
    logistic.fit(x[train], y[train])
    print("credit forest: test %.3f; logistic: test %.3f" % (forest.score(x[test], y[test]),
                                                             logistic.score(x[test], y[test])))
    export(forest, x[test], "credit_forest.onnx")
    export(logistic, x[test], "credit_logistic.onnx")
    header = ["income", "debt_ratio", "age", "tenure_months", "amount", "late_payments", "default"]
    write_csv("credit_test.csv", header, x[test], y[test], compact)


def membership():
    x, y = make_classification(n_samples=3000, n_features=12, n_informative=5, n_redundant=2,
                               flip_y=0.15, class_sep=0.8, random_state=2)
    x = x.astype(np.float32)
    members, holdout, population = slice(0, 500), slice(500, 1000), slice(1000, 3000)
    overfit = RandomForestClassifier(n_estimators=10, random_state=0)
    overfit.fit(x[members], y[members])
    regular = LogisticRegression(C=0.05, max_iter=5000)
    regular.fit(x[members], y[members])
    for name, m in [("overfit", overfit), ("regular", regular)]:
        print("member %s: train %.3f holdout %.3f" % (name, m.score(x[members], y[members]),
                                                      m.score(x[holdout], y[holdout])))
    export(overfit, x[members], "member_overfit.onnx")
    export(regular, x[members], "member_regular.onnx")
    rng = np.random.default_rng(3)
    px, py = x[population], y[population]
    for i in range(4):
        half = rng.permutation(len(px))[: len(px) // 2]
        ref = RandomForestClassifier(n_estimators=10, random_state=10 + i)
        ref.fit(px[half], py[half])
        export(ref, px, "member_ref_%d.onnx" % i)
    header = ["f%d" % i for i in range(x.shape[1])] + ["label"]
    write_csv("member_train.csv", header, x[members], y[members], compact)
    write_csv("member_holdout.csv", header, x[holdout], y[holdout], compact)
    write_csv("member_population.csv", header, px, py, compact)


def main():
    os.makedirs(OUT, exist_ok=True)
    digits()
    credit()
    membership()
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(EXPECTED, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
