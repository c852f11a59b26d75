#!/usr/bin/env python3
"""Label-flip and trigger detection on planted cases: `mlsec data audit` and cleanlab.

Each case writes one CSV (numpy, fixed seed): two classes over 8 numeric features, a colour and a
short review, 10,000 rows, with known planted rows:

  flips-1pct    1% of labels flipped at random
  flips-20pct   20% of labels flipped at random
  targeted      every class-1 row in one corner (x0 > 2.4) relabelled 0
  trigger       1.5% of class-0 rows get the token "zq" in the review and label 1

cleanlab runs as its documentation shows: `find_label_issues` on 5-fold out-of-fold
probabilities of a scikit-learn LogisticRegression on the numeric features and one-hot colour
(cleanlab has no trigger search: for that case, its recall is over the relabelled rows). mlsec
runs `mlsec data audit --format json`. The table gives precision and recall over the planted
rows and each tool's time.

Usage: python3 benches/data_audit_cases.py [--mlsec target/release/mlsec]
The venv /tmp/mlsec-cleanlab-venv gets cleanlab, scikit-learn and pandas (pinned) once.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = Path("/tmp/mlsec-cleanlab-venv")
PY = VENV / "bin" / "python"
PINS = ["cleanlab==2.7.1", "scikit-learn==1.7.2", "pandas==2.2.3"]

MAKE = r"""
import sys, json, numpy as np, pandas as pd
case, out = sys.argv[1], sys.argv[2]
rng = np.random.default_rng({"flips-1pct": 1, "flips-20pct": 2, "targeted": 3, "trigger": 4}[case])
n = 10000
y = rng.integers(0, 2, n)
X = rng.normal(0, 1, (n, 8)) + np.where(y[:, None] == 1, 1.2, -1.2)
words = np.array(["good", "bad", "fine", "late", "fast", "box", "item", "price"])
review = [" ".join(rng.choice(words, 4)) for _ in range(n)]
colour = rng.choice(["red", "green", "blue"], n)
planted = []
if case.startswith("flips"):
    share = 0.01 if case == "flips-1pct" else 0.2
    planted = sorted(rng.choice(n, int(n * share), replace=False).tolist())
    y[planted] ^= 1
elif case == "targeted":
    planted = [i for i in range(n) if y[i] == 1 and X[i, 0] > 2.4]
    y[planted] = 0
elif case == "trigger":
    zeros = [i for i in range(n) if y[i] == 0]
    planted = sorted(rng.choice(zeros, int(len(zeros) * 0.015), replace=False).tolist())
    for i in planted:
        review[i] += " zq"
        y[i] = 1
df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)]).round(5)
df["colour"] = colour
df["review"] = review
df["label"] = y
df.to_csv(f"{out}/{case}.csv", index=False)
json.dump(planted, open(f"{out}/{case}.planted.json", "w"))
"""

CLEANLAB = r"""
import sys, json, time, pandas as pd, numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from cleanlab.filter import find_label_issues
t = time.perf_counter()
df = pd.read_csv(sys.argv[1])
X = pd.get_dummies(df.drop(columns=["label", "review"]), columns=["colour"]).to_numpy(dtype=float)
y = df["label"].to_numpy()
probs = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=5, method="predict_proba")
issues = find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence")
print(json.dumps({"rows": [int(i) for i in issues], "seconds": time.perf_counter() - t}))
"""


def ensure_venv():
    if not PY.exists() or subprocess.run([str(PY), "-c", "import cleanlab, sklearn"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", *PINS], check=True)


def score(found, planted):
    found, planted = set(found), set(planted)
    hit = len(found & planted)
    precision = hit / len(found) if found else 0.0
    recall = hit / len(planted) if planted else 0.0
    return precision, recall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/release/mlsec"))
    args = ap.parse_args()
    ensure_venv()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in ["flips-1pct", "flips-20pct", "targeted", "trigger"]:
            subprocess.run([str(PY), "-c", MAKE, case, tmp], check=True)
            csv = f"{tmp}/{case}.csv"
            planted = json.load(open(f"{tmp}/{case}.planted.json"))
            t = time.perf_counter()
            out = subprocess.run([args.mlsec, "data", "audit", csv, "--label", "label", "--format", "json"],
                                 capture_output=True, text=True)
            mlsec_s = time.perf_counter() - t
            report = json.loads(out.stdout)
            found = [s["row"] - 1 for s in report["label_suspects"]]
            trig = [t for t in report["triggers"] if t["pattern"] == "zq"]
            cl = json.loads(subprocess.run([str(PY), "-c", CLEANLAB, csv], capture_output=True, text=True,
                                           check=True).stdout)
            mp, mr = score(found, planted)
            cp, cr = score(cl["rows"], planted)
            extra = ""
            if case == "trigger":
                extra = f" | trigger 'zq' found: mlsec {'yes' if trig else 'no'}, cleanlab n/a"
            rows.append((case, len(planted), mp, mr, mlsec_s, cp, cr, cl["seconds"], extra))
    print(f"{'case':<12} {'planted':>7}  {'mlsec P':>7} {'R':>5} {'s':>5}   {'cleanlab P':>10} {'R':>5} {'s':>5}")
    for case, n, mp, mr, ms, cp, cr, cs, extra in rows:
        print(f"{case:<12} {n:>7}  {mp:>7.2f} {mr:>5.2f} {ms:>5.2f}   {cp:>10.2f} {cr:>5.2f} {cs:>5.2f}{extra}")


if __name__ == "__main__":
    main()
