#!/usr/bin/env python3
"""False-positive sweep: the model files real Python packages ship, scanned by mlsec's model
scanner. None of them is malicious, so every finding at medium or above is a false alarm (or a
file that really is broken, which the report lists for a look).

    python3 benches/benign_sweep.py [--dir /tmp/mlsec-benign-sweep] [--mlsec PATH]

Downloads the pinned wheels below from PyPI (no dependencies, nothing installed, nothing run),
unpacks them, and runs `mlsec scan --only models` over the lot. Prints the model files found by
kind, the findings per rule and severity, and every finding at medium or above. Exits 0 either
way: a sweep is a measurement, not a test.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import wheels  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# Packages that ship pickles, joblib files (several joblib versions, Python 2 and 3), NumPy
# arrays, ONNX models and protobufs, HDF5 and MATLAB data in their wheels.
WHEELS = [
    "joblib==1.4.2",
    "pandas==2.2.3",
    "scikit-learn==1.5.2",
    "numpy==2.1.3",
    "scipy==1.14.1",
    "onnx==1.17.0",
    "statsmodels==0.14.4",
    "scikit-image==0.24.0",
    "h5py==3.12.1",
    "nltk==3.9.1",
    "networkx==3.4.2",
    "astropy==6.1.6",
]

MODEL_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".npy", ".npz", ".onnx", ".pb",
                  ".h5", ".hdf5", ".keras", ".safetensors", ".gguf", ".tflite", ".bin", ".gz",
                  ".bz2", ".xz", ".lzma", ".z", ".zip", ".tar", ".p", ".sav", ".dill", ".ckpt")


def fetch(root: Path) -> Path:
    return wheels.fetch(root, WHEELS, lambda n: n.lower().endswith(MODEL_SUFFIXES))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/mlsec-benign-sweep"))
    ap.add_argument("--mlsec", type=Path, default=REPO / "target" / "release" / "mlsec")
    args = ap.parse_args()
    if not args.mlsec.exists():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "mlsec"], cwd=REPO, check=True)
    tree = fetch(args.dir)
    files = [p for p in tree.rglob("*") if p.is_file()]
    kinds = collections.Counter(p.suffix.lower() for p in files)
    r = subprocess.run([str(args.mlsec), "scan", "--only", "models", "-q", "-f", "json", "--fail-on", "never", str(tree)],
                       capture_output=True, text=True, check=False)
    report = json.loads(r.stdout)
    by_rule = collections.Counter((f["rule_id"], f["severity"]) for f in report["findings"])
    print(f"{len(files)} files from {len(WHEELS)} wheels: " + ", ".join(f"{k or '(none)'} {n}" for k, n in kinds.most_common()))
    print(f"mlsec: {len(report['findings'])} findings, {len(report.get('errors', []))} errors")
    for (rule, sev), n in sorted(by_rule.items()):
        print(f"  {rule:8} {sev:8} {n}")
    high = [f for f in report["findings"] if f["severity"] in ("medium", "high", "critical")]
    print(f"medium or above: {len(high)}")
    for f in high:
        path = str(f["location"].get("path", "")).replace(str(tree) + "/", "")
        print(f"  {f['severity']:8} {f['rule_id']:8} {path}: {f['message'][:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
