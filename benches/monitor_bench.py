#!/usr/bin/env python3
"""Windowed monitoring: mlsec's windows against a saved profile, and Evidently per window.

A stream of 60 windows of 1,000 requests (6 numeric features) is compared window by window with
a 20,000-row reference. Windows 1-40 come from the reference's distribution; in windows 41-60
feature f0 shifts by half a standard deviation. The truth per window is known, so both tools get
a count of right verdicts as well as a time.

- mlsec: `mlsec drift profile` once, then `mlsec drift PROFILE stream.jsonl --window 1000`: the
  same comparison the gateway's `[models.monitor]` runs on each full window, against the same
  kind of profile.
- Evidently (0.7.20, PyPI): the reference loaded once, then `Report([DataDriftPreset()])` per
  window, the way teams run it over batches of logged requests. A window counts as drifted when
  any column is.

Both are measured the same way: wall time of the whole run, `--reps` times, median. Neither
time is asserted.

Usage: python3 benches/monitor_bench.py [--mlsec target/release/mlsec] [--reps 3]
The venv /tmp/mlsec-evidently-venv gets Evidently (pinned) from PyPI once.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_bench import PY, REPO, ensure_venv  # noqa: E402

WINDOWS, ROWS, SHIFT_FROM = 60, 1000, 41

GENERATE = r"""
import sys, json, numpy as np, pandas as pd
out, windows, rows, shift_from = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(11)
def frame(n):
    return pd.DataFrame({f"f{i}": np.round(rng.normal(i, 1 + i / 5, n), 5) for i in range(6)})
frame(20000).to_csv(f"{out}/reference.csv", index=False)
with open(f"{out}/stream.jsonl", "w") as f:
    for w in range(1, windows + 1):
        df = frame(rows)
        if w >= shift_from:
            df["f0"] = df["f0"] + 0.5
        df.to_csv(f"{out}/window{w}.csv", index=False)
        for rec in df.to_dict(orient="records"):
            f.write(json.dumps(rec) + "\n")
"""

EVIDENTLY = r"""
import sys, json, pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
out, windows = sys.argv[1], int(sys.argv[2])
ref = pd.read_csv(f"{out}/reference.csv")
verdicts = []
for w in range(1, windows + 1):
    cur = pd.read_csv(f"{out}/window{w}.csv")
    snap = json.loads(Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur).json())
    drifted = False
    for m in snap["metrics"]:
        if m["metric_name"].startswith("DriftedColumnsCount"):
            drifted = m["value"]["count"] > 0
    verdicts.append(drifted)
print(json.dumps(verdicts))
"""


def timed(cmd):
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode not in (0, 1):
        sys.exit(f"{cmd[0]} failed ({out.returncode}): {out.stderr[-400:]}")
    return wall, out.stdout


def mlsec_run(binary, tmp):
    profile = f"{tmp}/reference.profile.json"
    w1, _ = timed([binary, "drift", "profile", f"{tmp}/reference.csv", "-o", profile])
    w2, out = timed([binary, "drift", profile, f"{tmp}/stream.jsonl", "--window", str(ROWS), "--format", "json"])
    verdicts = [bool(json.loads(line)["drifted"]) for line in out.splitlines() if line.strip()]
    return w1 + w2, verdicts


def evidently_run(tmp):
    wall, out = timed([str(PY), "-c", EVIDENTLY, tmp, str(WINDOWS)])
    return wall, json.loads(out.strip().splitlines()[-1])


def score(verdicts):
    truth = [w >= SHIFT_FROM for w in range(1, WINDOWS + 1)]
    if len(verdicts) != len(truth):
        return f"{len(verdicts)} verdicts for {len(truth)} windows"
    false_alarms = sum(v and not t for v, t in zip(verdicts, truth))
    found = sum(v and t for v, t in zip(verdicts, truth))
    return f"{found}/{sum(truth)} shifted found, {false_alarms}/{len(truth) - sum(truth)} false alarms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/release/mlsec"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(PY), "-c", GENERATE, tmp, str(WINDOWS), str(ROWS), str(SHIFT_FROM)], check=True)
        times = {"mlsec": [], "evidently": []}
        verdicts = {}
        for _ in range(args.reps):
            t, verdicts["mlsec"] = mlsec_run(args.mlsec, tmp)
            times["mlsec"].append(t)
            t, verdicts["evidently"] = evidently_run(tmp)
            times["evidently"].append(t)
        m = statistics.median(times["mlsec"])
        e = statistics.median(times["evidently"])
        print(f"{WINDOWS} windows x {ROWS} rows, 6 features, f0 shifted by 0.5 std from window {SHIFT_FROM}; "
              f"median of {args.reps}")
        print(f"{'tool':<10} {'seconds':>8}  verdicts")
        print(f"{'mlsec':<10} {m:>8.2f}  {score(verdicts['mlsec'])}")
        print(f"{'evidently':<10} {e:>8.2f}  {score(verdicts['evidently'])}")
        print(f"ratio (evidently / mlsec): {e / m:.1f}x")


if __name__ == "__main__":
    main()
