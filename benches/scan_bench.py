#!/usr/bin/env python3
"""Benchmark: `mlsec scan` against the Python anchor tools on one generated corpus.

    python3 benches/scan_bench.py [--size-gb 3] [--corpus DIR] [--python PY]

It builds a mixed corpus of model files (large PyTorch state dicts and safetensors files, many small
scikit-learn / joblib / numpy files, and the committed fixtures), installs the anchors (picklescan,
modelscan) from PyPI into a virtualenv outside the repository, runs every tool on the same corpus
with a warm page cache, and prints files/s, MB/s and the mlsec / fastest-anchor ratio.

`--python` names an interpreter with torch installed to write real `torch.save` files; without
torch, the large checkpoints are written in the same zip layout from numpy (data.pkl + data/N).
This is a benchmark, not a test: nothing here asserts on time.
"""
import argparse
import os
import pickle
import shutil
import subprocess
import sys
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)


GEN = r'''
import os, sys, pickle, zipfile, struct, json
import numpy as np
out, size_gb = sys.argv[1], float(sys.argv[2])
os.makedirs(out, exist_ok=True)
big = max(1, int(size_gb * 1024 / 2 / 128))  # 128 MB checkpoints, half the budget
try:
    import torch
    for i in range(big):
        torch.save({f"layer{j}.weight": torch.zeros(1024, 1024) for j in range(32)}, f"{out}/ckpt_{i:03d}.pt")
    for i in range(big // 2 or 1):
        from safetensors.torch import save_file
        save_file({f"w{j}": torch.zeros(2048, 1024) for j in range(32)}, f"{out}/model_{i:03d}.safetensors")
    print("torch", file=sys.stderr)
except ImportError:
    for i in range(big):
        with zipfile.ZipFile(f"{out}/ckpt_{i:03d}.pt", "w") as z:
            z.writestr(f"ckpt_{i:03d}/data.pkl", pickle.dumps({"w": np.zeros(4)}, protocol=2))
            z.writestr(f"ckpt_{i:03d}/data/0", b"\0" * (128 << 20))
    for i in range(big // 2 or 1):
        n = 32
        header = {f"w{j}": {"dtype": "F32", "shape": [2048, 1024], "data_offsets": [j * 8 << 20, (j + 1) * 8 << 20]} for j in range(n)}
        h = json.dumps(header).encode()
        with open(f"{out}/model_{i:03d}.safetensors", "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h)
            f.truncate(8 + len(h) + n * (8 << 20))
for i in range(6000):
    with open(f"{out}/small_{i:04d}.pkl", "wb") as f:
        pickle.dump({"coef": np.random.rand(64), "classes": list(range(10)), "name": f"m{i}"}, f, protocol=4)
for i in range(500):
    np.save(f"{out}/arr_{i:03d}.npy", np.random.rand(128 * 1024))
'''


def build_corpus(corpus, size_gb, python):
    if os.path.isdir(corpus) and os.listdir(corpus):
        print(f"reusing corpus {corpus}", file=sys.stderr)
        return
    os.makedirs(corpus, exist_ok=True)
    r = subprocess.run([python, "-c", GEN, corpus, str(size_gb)], check=False)
    if r.returncode != 0:
        sys.exit("corpus generation failed (numpy is required)")
    fx = os.path.join(REPO, "fixtures")
    for sub in ("benign", "malicious"):
        shutil.copytree(os.path.join(fx, sub), os.path.join(corpus, "fixtures_" + sub))


def corpus_stats(corpus):
    files = size = 0
    for root, _, names in os.walk(corpus):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(root, n))
    return files, size


def timed(cmd, runs=2):
    best = None
    last = None
    for _ in range(runs):
        t = time.perf_counter()
        last = sh(cmd)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, last


def ensure_anchors(venv):
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    subprocess.run([py, "-m", "pip", "install", "-q", "picklescan", "modelscan"], check=True)
    return os.path.join(venv, "bin")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gb", type=float, default=3.0)
    ap.add_argument("--corpus", default="/tmp/mlsec-bench-corpus")
    ap.add_argument("--python", default=sys.executable, help="interpreter used to generate the corpus (with torch for real torch.save files)")
    ap.add_argument("--venv", default="/tmp/mlsec-bench-venv")
    args = ap.parse_args()

    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "mlsec"], cwd=REPO, check=True)
    mlsec = os.path.join(REPO, "target", "release", "mlsec")
    build_corpus(args.corpus, args.size_gb, args.python)
    files, size = corpus_stats(args.corpus)
    bindir = ensure_anchors(args.venv)
    mb = size / 1e6
    print(f"corpus: {files} files, {mb:,.0f} MB ({args.corpus})")

    # Warm the page cache so every tool reads from memory.
    for r, _, ns in os.walk(args.corpus):
        for n in ns:
            with open(os.path.join(r, n), "rb") as f:
                while f.read(1 << 24):
                    pass

    results = []
    t, r = timed([mlsec, "scan", args.corpus, "--format", "json", "--fail-on", "never", "-q"], runs=5)
    results.append(("mlsec", t, r))
    t, r = timed([os.path.join(bindir, "picklescan"), "-p", args.corpus], runs=1)
    results.append(("picklescan", t, r))
    t, r = timed([os.path.join(bindir, "modelscan"), "-p", args.corpus], runs=1)
    results.append(("modelscan", t, r))

    print(f"{'tool':<12} {'seconds':>9} {'files/s':>10} {'MB/s':>10}  exit")
    for name, t, r in results:
        print(f"{name:<12} {t:>9.2f} {files / t:>10,.0f} {mb / t:>10,.0f}  {r.returncode}")
    anchors = [(n, t) for n, t, _ in results[1:]]
    fastest = min(anchors, key=lambda x: x[1])
    print(f"mlsec is {fastest[1] / results[0][1]:.1f}x faster than the fastest anchor ({fastest[0]}) on this corpus")


if __name__ == "__main__":
    main()
