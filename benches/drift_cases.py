#!/usr/bin/env python3
"""Drift accuracy on cases with known truth: `mlsec drift` and Evidently's DataDriftPreset.

Each case writes a reference and a current CSV (numpy, fixed seeds) where the truth per column is
known, runs both tools on the same files, and counts right and wrong verdicts:

  small-window     20 windows of 100 rows against 20,000 unchanged rows, 25 columns: every
                   alarm is false
  missing-spike    x0's missing rate goes from 1% to 20%, its values unchanged: drift
  half-sigma       x1 shifts by half a standard deviation (2,000 rows): drift
  trivial-shift    x0 shifts by 0.03 std in 100,000 rows per side: no drift (not material)
  all-nan          x0 has no values in the current data: drift (and no crash)
  mixed-type       10% of x0's current values are text ("1,234.50"): drift
  new-category     10% of cat's current values are a category the reference never had: drift

Usage: python3 benches/drift_cases.py [--mlsec target/release/mlsec]
The venv /tmp/mlsec-evidently-venv gets Evidently (pinned) from PyPI once.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_bench import PY, REPO, ensure_venv  # noqa: E402

CASES = r"""
import sys, numpy as np, pandas as pd
out = sys.argv[1]
def frame(rng, rows, cols=24):
    d = {f"x{i}": np.round(rng.normal(i, 1 + i / 10, rows), 5) for i in range(cols)}
    d["cat"] = rng.choice(["red", "green", "blue"], size=rows, p=[0.5, 0.3, 0.2])
    return pd.DataFrame(d)
def save(df, name):
    df.to_csv(f"{out}/{name}.csv", index=False)
rng = np.random.default_rng(7)
save(frame(rng, 20000), "small-window.ref")
for w in range(20):
    save(frame(rng, 100), f"small-window.cur{w}")
ref = frame(rng, 5000, 4); ref.loc[rng.random(5000) < 0.01, "x0"] = np.nan; save(ref, "missing-spike.ref")
cur = frame(rng, 1000, 4); cur.loc[rng.random(1000) < 0.2, "x0"] = np.nan; save(cur, "missing-spike.cur")
save(frame(rng, 20000, 4), "half-sigma.ref")
cur = frame(rng, 2000, 4); cur["x1"] = cur["x1"] + 0.5 * 1.1; save(cur, "half-sigma.cur")
save(frame(rng, 100000, 2), "trivial-shift.ref")
cur = frame(rng, 100000, 2); cur["x0"] = cur["x0"] + 0.03; save(cur, "trivial-shift.cur")
save(frame(rng, 2000, 4), "all-nan.ref")
cur = frame(rng, 2000, 4); cur["x0"] = np.nan; save(cur, "all-nan.cur")
save(frame(rng, 3000, 4), "mixed-type.ref")
cur = frame(rng, 1000, 4).astype({"x0": object}); cur.loc[rng.random(1000) < 0.1, "x0"] = "1,234.50"; save(cur, "mixed-type.cur")
save(frame(rng, 5000, 4), "new-category.ref")
cur = frame(rng, 2000, 4); cur.loc[rng.random(2000) < 0.1, "cat"] = "purple"; save(cur, "new-category.cur")
"""

EVIDENTLY = r"""
import sys, json, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
try:
    ref = pd.read_csv(sys.argv[1]); cur = pd.read_csv(sys.argv[2])
    snap = json.loads(Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur).json())
    print(json.dumps({"ok": True, "metrics": snap["metrics"]}))
except Exception as e:
    print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"[:200]}))
"""

# case -> {column: truth}; columns not listed are unchanged (truth False).
TRUTH = {
    "missing-spike": {"x0": True},
    "half-sigma": {"x1": True},
    "trivial-shift": {"x0": False},
    "all-nan": {"x0": True},
    "mixed-type": {"x0": True},
    "new-category": {"cat": True},
}


def evidently(ref, cur):
    out = subprocess.run([str(PY), "-c", EVIDENTLY, ref, cur], capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else {"ok": False, "error": out.stderr[-200:]}
    if not res["ok"]:
        return None, res["error"]
    verdicts = {}
    for m in res["metrics"]:
        name = m["metric_name"]
        g = re.match(r"ValueDrift\(column=(.*),method=(.*),threshold=(.*)\)", name)
        if not g:
            continue
        col, method, threshold = g.group(1), g.group(2), float(g.group(3))
        v = m["value"]
        verdicts[col] = v < threshold if "p_value" in method else v >= threshold
    return verdicts, None


def mlsec(binary, ref, cur):
    out = subprocess.run([binary, "drift", "--format", "json", ref, cur], capture_output=True, text=True)
    if out.returncode not in (0, 1):
        return None, out.stderr.strip()[-200:]
    return {c["name"]: c["drift"] for c in json.loads(out.stdout)["columns"]}, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/release/mlsec"))
    args = ap.parse_args()
    ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(PY), "-c", CASES, tmp], check=True)
        rows = []
        # small-window: false alarms over 20 windows x 25 columns.
        alarms = {"mlsec": 0, "evidently": 0}
        errors = {"mlsec": None, "evidently": None}
        for w in range(20):
            ref, cur = f"{tmp}/small-window.ref.csv", f"{tmp}/small-window.cur{w}.csv"
            for tool, fn in (("mlsec", lambda r, c: mlsec(args.mlsec, r, c)), ("evidently", evidently)):
                v, err = fn(ref, cur)
                if v is None:
                    errors[tool] = err
                    continue
                alarms[tool] += sum(v.values())
        rows.append(("small-window", "500 unchanged column checks",
                     f"{500 - alarms['mlsec']}/500 right", f"{500 - alarms['evidently']}/500 right"))
        for case, truth in TRUTH.items():
            ref, cur = f"{tmp}/{case}.ref.csv", f"{tmp}/{case}.cur.csv"
            cells = []
            for tool, fn in (("mlsec", lambda r, c: mlsec(args.mlsec, r, c)), ("evidently", evidently)):
                v, err = fn(ref, cur)
                if v is None:
                    cells.append(f"error: {err}")
                    continue
                right = sum(1 for col, d in v.items() if d == truth.get(col, False))
                missed = [col for col, want in truth.items() if want and not v.get(col, False)]
                false = [col for col, d in v.items() if d and not truth.get(col, False)]
                note = ""
                if missed:
                    note += f" missed {','.join(missed)}"
                if false:
                    note += f" false {','.join(false)}"
                cells.append(f"{right}/{len(v)} right{note}")
            want = ", ".join(f"{c} {'drift' if t else 'no drift'}" for c, t in truth.items())
            rows.append((case, want, cells[0], cells[1]))
        print(f"{'case':<14} {'truth':<28} {'mlsec drift':<26} evidently")
        for r in rows:
            print(f"{r[0]:<14} {r[1]:<28} {r[2]:<26} {r[3]}")
        for tool, err in errors.items():
            if err:
                print(f"{tool} failed on a window: {err}")


if __name__ == "__main__":
    main()
