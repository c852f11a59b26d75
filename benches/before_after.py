#!/usr/bin/env python3
"""Benchmark: two mlsec binaries (a change's before and after) on the same trees, same way.

    python3 benches/before_after.py --before OLD/mlsec --after target/release/mlsec [--rounds 5] TREE...

For each tree it runs `mlsec scan TREE --format json -q` with each binary, alternating, `--rounds`
times after one warm-up each (page cache warm for both), and prints the median wall time, the
ratio after/before, and the files counted and findings reported by each (a refactoring that
changes them is not only a refactoring). `--only` passes a scanner selection through.
This is a benchmark, not a test: nothing here asserts on time.
"""
import argparse
import json
import statistics
import subprocess
import time


def run(binary, tree, only):
    cmd = [binary, "scan", tree, "--format", "json", "-q"]
    if only:
        cmd += ["--only", only]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    try:
        report = json.loads(p.stdout)
        summary = report["summary"]
        return elapsed, summary["files_scanned"], summary["files_skipped"], len(report["findings"])
    except (ValueError, KeyError):
        return elapsed, None, None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="")
    ap.add_argument("trees", nargs="+")
    args = ap.parse_args()
    print(f"| tree | before s (median of {args.rounds}) | after s | after/before | files scanned+skipped before | after | findings before | after |")
    print("|---|---|---|---|---|---|---|---|")
    for tree in args.trees:
        times = {"before": [], "after": []}
        last = {}
        for name in ("before", "after"):
            run(getattr(args, name), tree, args.only)  # warm-up
        for _ in range(args.rounds):
            for name in ("before", "after"):
                elapsed, scanned, skipped, findings = run(getattr(args, name), tree, args.only)
                times[name].append(elapsed)
                last[name] = (scanned, skipped, findings)
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        fb, fa = last["before"], last["after"]
        print(f"| {tree} | {b:.3f} | {a:.3f} | {a / b:.2f} | {fb[0]}+{fb[1]} | {fa[0]}+{fa[1]} | {fb[2]} | {fa[2]} |")


if __name__ == "__main__":
    main()
