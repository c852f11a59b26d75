#!/usr/bin/env python3
"""mlsec redteam against IBM's Adversarial Robustness Toolbox (ART) and ML Privacy Meter, on the
same models and data, in the same run.

Classifier attacks: the digits MLP (fixtures/redteam/digits_mlp.onnx, 200 held-out digits,
pixels in [0, 1]) under L-inf budgets 0.1 and 0.2.
- Square attack: ART's SquareAttack (norm inf, p_init 0.3, 1 restart, max_iter = the query
  budget) against mlsec's square at the same query budget.
- HopSkipJump: ART's HopSkipJump (norm inf, untargeted, 40 iterations, init_eval 100,
  max_eval 1000) against mlsec's hop-skip-jump with the same iteration and probe counts; the
  share of correctly classified samples it breaks within each budget.
ART queries the ONNX model through onnxruntime (BlackBoxClassifierNeuralNetwork on the
1x8x8 layout, batch size 256), mlsec
through tract in process.

Membership: the overfit forest (member_overfit.onnx; 500 members, 500 non-members, 2,000
population rows, 4 reference forests trained on population halves).
- ML Privacy Meter 1.0.1: PopulationMetric and ReferenceMetric on a privacy_meter Model that
  runs the ONNX file through onnxruntime (its documented extension point), AUC read from its
  MetricResult.
- mlsec redteam membership with --population and the same --reference models.

Each tool is timed the same way: wall time of the whole call (model loading included),
`--reps` times, median. Success rates and AUCs come from each tool's own output. Nothing is
asserted.

Usage: python3 benches/redteam_bench.py [--mlsec target/release/mlsec] [--reps 3]
The venv /tmp/mlsec-redteam-bench gets the pinned packages from PyPI once (ART, ML Privacy
Meter and what it imports at the top: torch, opacus, tensorflow-cpu).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FX = REPO / "fixtures" / "redteam"
VENV = Path("/tmp/mlsec-redteam-bench")
PY = VENV / "bin" / "python"
PACKAGES = [
    # numpy 1.x: opacus 1.5.2 wants numpy<2; privacy_meter.model imports tensorflow, torch
    # and opacus at the top, so all three are needed even for scikit-learn-style models.
    "numpy==1.26.4", "scipy==1.14.1", "scikit-learn==1.5.2", "onnxruntime==1.20.1",
    "adversarial-robustness-toolbox==1.20.1", "privacy-meter==1.0.1", "torch==2.5.1",
    "opacus==1.5.2", "tensorflow-cpu==2.18.0", "pillow==11.0.0", "matplotlib==3.9.2",
    "pandas==2.2.3",
]

ART = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
from art.estimators.classification import BlackBoxClassifierNeuralNetwork
from art.attacks.evasion import SquareAttack, HopSkipJump
attack, model, data, eps_list, queries = sys.argv[1], sys.argv[2], sys.argv[3], [float(e) for e in sys.argv[4].split(",")], int(sys.argv[5])
t0 = time.perf_counter()
d = np.loadtxt(data, delimiter=",", skiprows=1, dtype=np.float32)
x, y = d[:, :-1].reshape(-1, 1, 8, 8), d[:, -1].astype(int)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
name = sess.get_inputs()[0].name
calls = [0]
def predict(batch):
    calls[0] += len(batch)
    return sess.run(None, {name: batch.reshape(len(batch), -1).astype(np.float32)})[1]
# The same 1x8x8 image layout mlsec is given with --image 8x8.
clf = BlackBoxClassifierNeuralNetwork(predict, input_shape=(1, 8, 8), nb_classes=10, channels_first=True, clip_values=(0.0, 1.0))
clean = predict(x).argmax(1) == y
xc, yc = x[clean], y[clean]
out = {"clean_correct": int(clean.sum()), "samples": len(y)}
if attack == "square":
    for eps in eps_list:
        a = SquareAttack(clf, norm=np.inf, eps=eps, max_iter=queries, p_init=0.3, nb_restarts=1, batch_size=256, verbose=False)
        adv = a.generate(xc, y=np.eye(10)[yc])
        broken = (predict(adv).argmax(1) != yc) & (np.abs(adv - xc).reshape(len(xc), -1).max(1) <= eps + 1e-6)
        out[str(eps)] = int(broken.sum())
else:
    a = HopSkipJump(clf, norm=np.inf, targeted=False, max_iter=40, max_eval=1000, init_eval=100, batch_size=256, verbose=False)
    adv = a.generate(xc)
    dist = np.abs(adv - xc).reshape(len(xc), -1).max(1)
    wrong = predict(adv).argmax(1) != yc
    for eps in eps_list:
        out[str(eps)] = int((wrong & (dist <= eps + 1e-6)).sum())
out["queries"] = calls[0]
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""

PRIVACY_METER = r"""
import json, sys, tempfile, time
import numpy as np, onnxruntime as ort
from privacy_meter.model import Model
from privacy_meter.dataset import Dataset
from privacy_meter.information_source import InformationSource
from privacy_meter.audit import Audit, MetricEnum
from privacy_meter.constants import InferenceGame
fx = sys.argv[1]
t0 = time.perf_counter()
def load(n):
    d = np.loadtxt(f"{fx}/{n}", delimiter=",", skiprows=1, dtype=np.float32)
    return d[:, :-1], d[:, -1].astype(int)
class OnnxModel(Model):
    def __init__(self, path):
        self.sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.name = self.sess.get_inputs()[0].name
        super().__init__(self.sess, None)
    def get_logits(self, x):
        return np.log(np.clip(self.sess.run(None, {self.name: np.asarray(x, np.float32)})[1], 1e-7, 1))
    def get_loss(self, x, y, per_point=True):
        p = np.clip(self.sess.run(None, {self.name: np.asarray(x, np.float32)})[1], 1e-7, 1)
        loss = -np.log(p[np.arange(len(y)), np.asarray(y)])
        return loss if per_point else loss.mean()
    def get_grad(self, x, y):
        raise NotImplementedError
    def get_intermediate_outputs(self, layers, x, forward_pass=True):
        raise NotImplementedError
(xt, yt), (xh, yh), (xp, yp) = load("member_train.csv"), load("member_holdout.csv"), load("member_population.csv")
target_ds = Dataset(data_dict={"train": {"x": xt, "y": yt}, "test": {"x": xh, "y": yh}},
                    default_input="x", default_output="y")
population_ds = Dataset(data_dict={"train": {"x": xp, "y": yp}}, default_input="x", default_output="y")
target = OnnxModel(f"{fx}/member_overfit.onnx")
refs = [OnnxModel(f"{fx}/member_ref_{i}.onnx") for i in range(4)]
out = {}
with tempfile.TemporaryDirectory() as logs:
    for key, metric, ref_info in [
        ("population_auc", MetricEnum.POPULATION, InformationSource(models=[target], datasets=[population_ds])),
        ("reference_auc", MetricEnum.REFERENCE, InformationSource(models=refs, datasets=[target_ds])),
    ]:
        audit = Audit(metrics=[metric], inference_game_type=InferenceGame.PRIVACY_LOSS_MODEL,
                      target_info_sources=[InformationSource(models=[target], datasets=[target_ds])],
                      reference_info_sources=[ref_info], logs_directory_names=[f"{logs}/{key}"])
        audit.prepare()
        r = audit.run()[0]
        r = r[0] if isinstance(r, list) else r
        out[key] = float(r.roc_auc)
out["seconds"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def ensure_venv():
    if PY.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", *PACKAGES], check=True)


def timed(cmd, reps, parse, ok=(0,)):
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if p.returncode not in ok:
            sys.exit(f"{cmd[:4]} failed ({p.returncode}): {p.stdout[-500:]} {p.stderr[-2000:]}")
        try:
            result = parse(p.stdout)
        except ValueError:
            sys.exit(f"{cmd[:4]}: unreadable output: {p.stdout[-500:]} {p.stderr[-2000:]}")
    return statistics.median(times), result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target" / "release" / "mlsec"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args()
    ensure_venv()
    eps = "0.1,0.2"
    model, data = str(FX / "digits_mlp.onnx"), str(FX / "digits_test.csv")
    with tempfile.TemporaryDirectory() as tmp:
        art = Path(tmp) / "art_attack.py"  # not art.py: it would shadow the package
        art.write_text(ART)
        pm = Path(tmp) / "privacy_meter_audit.py"
        pm.write_text(PRIVACY_METER)
        rows = []
        for attack, mlsec_attack, q in [("square", "square", args.queries), ("hsj", "hop-skip-jump", 40_000)]:
            t_art, r_art = timed([str(PY), str(art), attack, model, data, eps, str(args.queries)], args.reps, json.loads)
            t_ml, r_ml = timed(
                [args.mlsec, "redteam", "classifier", model, "--data", data, "--image", "8x8",
                 "--attacks", mlsec_attack, "--budget", eps, "--queries", str(q), "--format", "json"],
                args.reps, json.loads, ok=(0, 1))
            for e in eps.split(","):
                res = next(r for r in r_ml["results"] if abs(r["budget"] - float(e)) < 1e-6)
                rows.append((attack, e, r_art[e] / r_art["clean_correct"], res["succeeded"] / res["attacked"],
                             t_art, t_ml, r_art["seconds"], r_ml["seconds"], r_art["queries"], r_ml["queries"]))
        print("success: share of correctly classified samples broken within eps; s: wall time of the whole call;")
        print("in-process: the attack alone (ART: after its imports; mlsec: its report's seconds)")
        print(f"{'attack':<8} {'eps':>5} {'ART success':>12} {'mlsec success':>14} {'ART s':>7} {'mlsec s':>8} {'ratio':>7} "
              f"{'ART in-proc':>11} {'mlsec in-proc':>13} {'ART queries':>12} {'mlsec queries':>14}")
        for a, e, sa, sm, ta, tm, ia, im, qa, qm in rows:
            print(f"{a:<8} {e:>5} {sa:>12.3f} {sm:>14.3f} {ta:>7.2f} {tm:>8.2f} {ta / tm:>6.1f}x {ia:>11.2f} {im:>13.2f} {qa:>12} {qm:>14}")
        t_pm, r_pm = timed([str(PY), str(pm), str(FX)], args.reps, lambda s: json.loads(s.strip().splitlines()[-1]))
        t_ml, r_ml = timed(
            [args.mlsec, "redteam", "membership", str(FX / "member_overfit.onnx"),
             "--train", str(FX / "member_train.csv"), "--holdout", str(FX / "member_holdout.csv"),
             "--population", str(FX / "member_population.csv")]
            + sum([["--reference", str(FX / f"member_ref_{i}.onnx")] for i in range(4)], [])
            + ["--format", "json"], args.reps, json.loads, ok=(0, 1))
        auc = {a["attack"]: a["auc"] for a in r_ml["attacks"]}
        print(f"\nmembership (member_overfit.onnx)   {'Privacy Meter':>14} {'mlsec':>8}")
        print(f"population attack AUC             {r_pm['population_auc']:>14.3f} {auc['population']:>8.3f}")
        print(f"reference attack AUC              {r_pm['reference_auc']:>14.3f} {auc['reference']:>8.3f}")
        print(f"loss attack AUC (mlsec only)      {'-':>14} {auc['loss']:>8.3f}")
        print(f"wall time, s (median of {args.reps})       {t_pm:>14.2f} {t_ml:>8.2f}   ratio {t_pm / t_ml:.1f}x")
        print(f"in-process, s (after imports)      {r_pm['seconds']:>14.2f} {r_ml['seconds']:>8.2f}")


if __name__ == "__main__":
    main()
