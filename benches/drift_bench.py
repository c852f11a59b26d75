#!/usr/bin/env python3
"""Drift throughput: `mlsec drift` against Evidently's DataDriftPreset on the same files.

Both tools get the same two CSV files (a reference and a current one, --rows rows each, 20 numeric
and 5 categorical columns, 6 of them drifted) and start from the files on disk: mlsec reads them
itself, Evidently through pandas.read_csv, which is how it is used. Each tool runs --reps times as
a fresh process; the table shows the median wall time and the peak resident memory (ru_maxrss of
the child), and the ratio.

Usage: python3 benches/drift_bench.py [--mlsec target/release/mlsec] [--rows 1000000] [--reps 1]
The venv /tmp/mlsec-evidently-venv gets Evidently (pinned) from PyPI once.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# evidently 0.7.20 imports a pandas internal that pandas 3 removed: pin pandas too.
EVIDENTLY = ["evidently==0.7.20", "pandas==2.2.3"]
VENV = Path("/tmp/mlsec-evidently-venv")
PY = VENV / "bin" / "python"

GENERATE = r"""
import sys
import numpy as np
import pandas as pd
rows, out = int(sys.argv[1]), sys.argv[2]
for name, seed, drift in (("reference", 1, False), ("current", 2, True)):
    rng = np.random.default_rng(seed)
    cols = {}
    for i in range(20):
        shift = 0.5 if drift and i < 4 else 0.0
        cols[f"x{i}"] = np.round(rng.normal(i + shift, 1 + i / 10, rows), 4)
    for i in range(5):
        p = [0.5, 0.3, 0.2] if not (drift and i < 2) else [0.3, 0.3, 0.4]
        cols[f"c{i}"] = rng.choice(["red", "green", "blue"], size=rows, p=p)
    pd.DataFrame(cols).to_csv(f"{out}/{name}.csv", index=False)
"""

RUN_EVIDENTLY = r"""
import sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_csv(sys.argv[1])
cur = pd.read_csv(sys.argv[2])
snapshot = Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)
open(sys.argv[3], "w").write(snapshot.json())
"""


def ensure_venv():
    if not PY.exists() or subprocess.run([str(PY), "-c", "import evidently"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(PY), "-m", "pip", "install", "-q", *EVIDENTLY], check=True)


def measure(cmd):
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{cmd[0]} failed ({code}): {err}")
    return wall, usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/release/mlsec"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=1)
    args = ap.parse_args()
    ensure_venv()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([str(PY), "-c", GENERATE, str(args.rows), tmp], check=True)
        ref, cur = f"{tmp}/reference.csv", f"{tmp}/current.csv"
        size = (os.path.getsize(ref) + os.path.getsize(cur)) / 2**20
        tools = {
            "mlsec drift": [args.mlsec, "drift", ref, cur, "--format", "json", "--output", f"{tmp}/m.json"],
            "evidently": [str(PY), "-c", RUN_EVIDENTLY, ref, cur, f"{tmp}/e.json"],
        }
        results = {}
        for _ in range(args.reps):
            for name, cmd in tools.items():
                results.setdefault(name, []).append(measure(cmd))
        print(f"{args.rows:,} rows x 25 columns per file, {size:.0f} MiB of CSV in all, median of {args.reps}")
        print(f"{'tool':<14} {'seconds':>9} {'peak MiB':>9}")
        med = {}
        for name, runs in results.items():
            wall = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            med[name] = (wall, rss)
            print(f"{name:<14} {wall:>9.2f} {rss:>9.0f}")
        (mw, mr), (ew, er) = med["mlsec drift"], med["evidently"]
        print(f"ratio: {ew / mw:.1f}x faster, {er / mr:.1f}x less memory")


if __name__ == "__main__":
    main()
