#!/usr/bin/env python3
"""Detection comparison: which committed fixtures each tool flags.

    python3 benches/compare_detection.py [--venv DIR]

Runs mlsec, picklescan and modelscan (installed from PyPI into a virtualenv outside the repo) on
every file under fixtures/ and prints, per file, whether each tool flagged it, plus totals:
misses on malicious/evasive files and false alarms on benign ones. A tool "flags" a file when it
exits with its findings code (1 for all three); a crash or "unsupported" exit is not a detection.
"""
import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flagged(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return r.returncode == 1, r.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", default="/tmp/mlsec-bench-venv")
    args = ap.parse_args()
    py = os.path.join(args.venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", args.venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "picklescan", "modelscan"], check=True)
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "mlsec"], cwd=REPO, check=True)
    tools = {
        "mlsec": lambda p: [os.path.join(REPO, "target/release/mlsec"), "scan", "-q", "--fail-on", "low", p],
        "picklescan": lambda p: [os.path.join(args.venv, "bin/picklescan"), "-p", p],
        "modelscan": lambda p: [os.path.join(args.venv, "bin/modelscan"), "-p", p],
    }
    fx = os.path.join(REPO, "fixtures")
    rows = []
    for group in ("benign", "malicious", "evasive", "malformed"):
        base = os.path.join(fx, group)
        # Folders (SavedModel, Hugging Face) are scanned as one unit.
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name)
            rows.append((group, name, {t: flagged(mk(path)) for t, mk in tools.items()}))
    names = list(tools)
    print(f"{'group':<10} {'file':<44} " + " ".join(f"{n:>11}" for n in names))
    for group, name, res in rows:
        cells = " ".join(f"{('FLAG' if res[n][0] else 'clean') + '/' + str(res[n][1]):>11}" for n in names)
        print(f"{group:<10} {name:<44} {cells}")
    print()
    for n in names:
        missed = sum(1 for g, _, r in rows if g in ("malicious", "evasive") and not r[n][0])
        total = sum(1 for g, _, _ in rows if g in ("malicious", "evasive"))
        fp = sum(1 for g, _, r in rows if g == "benign" and r[n][0])
        nb = sum(1 for g, _, _ in rows if g == "benign")
        bad = sum(1 for g, _, r in rows if g == "malformed" and not r[n][0])
        nm = sum(1 for g, _, _ in rows if g == "malformed")
        print(f"{n:<11} caught {total - missed}/{total} malicious+evasive, false alarms {fp}/{nb} benign, malformed reported {nm - bad}/{nm}")


if __name__ == "__main__":
    main()
