#!/usr/bin/env python3
"""Precision check on real code: the Python, notebooks, manifests and config files of a pinned set
of ML wheels, scanned by mlsec's code, secrets and deployment scanners. Nobody here wrote this
code, so the findings per rule show where precision regresses (read the high-volume rules' hits).

    python3 benches/real_code_sweep.py [--dir /tmp/mlsec-code-sweep] [--mlsec PATH] [--before PATH]

Downloads the wheels below from PyPI (no dependencies, nothing installed or run), unpacks them,
runs `mlsec scan --only code,secrets,deploy`, and prints findings per rule and severity. With
`--before PATH` an older mlsec binary scans the same tree and the two columns are shown side by
side. Exits 0: a sweep is a measurement, not a test.
"""
import argparse
import collections
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wheels  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

WHEELS = [
    "transformers==4.46.3",
    "diffusers==0.31.0",
    "langchain-experimental==0.3.3",
    "langchain-core==0.3.21",
    "langchain-community==0.3.8",
    "llama-index-core==0.12.5",
    "mlflow-skinny==2.18.0",
    "kserve==0.14.1",
    "ray==2.39.0",
    "accelerate==1.1.1",
    "peft==0.13.2",
    "datasets==3.1.0",
    "scikit-learn==1.5.2",
    "pandas==2.2.3",
]


def fetch(root: Path) -> Path:
    return wheels.fetch(root, WHEELS, lambda n: not n.endswith((".so", ".pyd", ".dll", ".dylib")))


def per_rule(binary: Path, tree: Path) -> collections.Counter:
    r = subprocess.run([str(binary), "scan", "--only", "code,secrets,deploy", "-q", "-f", "json",
                        "--fail-on", "never", str(tree)], capture_output=True, text=True, check=False)
    report = json.loads(r.stdout)
    return collections.Counter((f["rule_id"], f["severity"]) for f in report["findings"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/mlsec-code-sweep"))
    ap.add_argument("--mlsec", type=Path, default=REPO / "target" / "release" / "mlsec")
    ap.add_argument("--before", type=Path)
    args = ap.parse_args()
    if not args.mlsec.exists():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "mlsec"], cwd=REPO, check=True)
    tree = fetch(args.dir)
    py = sum(1 for _ in tree.rglob("*.py"))
    print(f"{len(WHEELS)} wheels, {py} Python files")
    now = per_rule(args.mlsec, tree)
    before = per_rule(args.before, tree) if args.before else collections.Counter()
    keys = sorted(set(now) | set(before))
    print(f"{'rule':28} {'severity':9} {'before':>7} {'now':>7}" if args.before else f"{'rule':28} {'severity':9} {'now':>7}")
    for k in keys:
        if args.before:
            print(f"{k[0]:28} {k[1]:9} {before.get(k, 0):>7} {now.get(k, 0):>7}")
        else:
            print(f"{k[0]:28} {k[1]:9} {now.get(k, 0):>7}")
    print(f"total: {sum(now.values())}" + (f" (before: {sum(before.values())})" if args.before else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
