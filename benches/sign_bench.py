#!/usr/bin/env python3
"""Signing and verification throughput: mlsec vs OpenSSF model-signing vs `openssl dgst`.

Builds a model folder of --size-gb GB (sharded weights like a Hugging Face checkpoint, plus the
small files around them), warms the page cache, then times in the same run:

  openssl dgst -sha256, one process per file, all cores   the hashing limit for files+sha256
  mlsec sign / verify, files+sha256                       target: within 10% of that limit
  mlsec sign / verify, blake3                             target: several times faster
  mlsec sign, shards+sha256 (--shard-size)                one big file on every core
  mlsec verify --cache (nothing changed)                  incremental verification
  model_signing sign key / verify key (CLI, files+sha256) the reference implementation

Each figure is the best of --repeat runs. Throughput is model bytes / wall time.

Usage:
  python3 benches/sign_bench.py [--size-gb 4] [--dir /tmp/mlsec-sign-bench] [--repeat 3]
      [--mlsec target/release/mlsec] [--python VENV_PYTHON_WITH_model_signing]

Without --python, a venv with model-signing is created under /tmp/mlsec-interop-venv (the same
one tests/interop/model_signing.py uses). Benchmarks are not tests: nothing here asserts on time.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd, repeat, env=None, check=True):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run([str(c) for c in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        dt = time.perf_counter() - t
        if check and r.returncode != 0:
            sys.exit(f"failed ({r.returncode}): {' '.join(map(str, cmd))}\n{r.stderr.decode(errors='replace')}")
        best = dt if best is None else min(best, dt)
    return best


def build_model(d: Path, size_gb: float) -> int:
    d.mkdir(parents=True, exist_ok=True)
    shards = 8
    per = int(size_gb * 1e9 / shards)
    total = 0
    block = os.urandom(16 << 20)
    for i in range(shards):
        p = d / f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        if not p.exists() or p.stat().st_size != per:
            with open(p, "wb") as f:
                left = per
                while left:
                    n = min(left, len(block))
                    f.write(block[:n])
                    left -= n
                    # Vary the content so no two blocks are equal.
                    block = block[1:] + block[:1]
        total += per
    for name, text in [("config.json", '{"hidden_size": 4096}\n'), ("tokenizer.json", "{}\n" * 1000), ("README.md", "# bench\n")]:
        (d / name).write_text(text)
        total += len(text)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=4.0)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "mlsec-sign-bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mlsec", type=Path, default=REPO / "target" / "release" / "mlsec")
    ap.add_argument("--python", type=Path, help="a Python with model-signing installed")
    ap.add_argument("--skip-reference", action="store_true", help="do not time model_signing")
    args = ap.parse_args()

    if not args.mlsec.exists():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "mlsec"], cwd=REPO, check=True)
    py = args.python
    if py is None and not args.skip_reference:
        venv = Path(tempfile.gettempdir()) / "mlsec-interop-venv"
        py = venv / "bin" / "python"
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(py), "-m", "pip", "install", "-q", "model-signing==1.1.1", "pyopenssl"], check=True)

    model = args.dir / "model"
    work = args.dir / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    size = build_model(model, args.size_gb)
    files = sorted(p for p in model.iterdir() if p.is_file())
    cores = os.cpu_count() or 1
    print(f"model: {len(files)} files, {size / 1e9:.2f} GB in {model}; {cores} cores; best of {args.repeat}")
    # Warm the page cache: every tool then measures hashing, not the disk.
    for p in files:
        with open(p, "rb") as f:
            while f.read(64 << 20):
                pass

    m = args.mlsec
    subprocess.run([m, "keygen", "--out", work / "k", "--force"], check=True, stderr=subprocess.DEVNULL)
    key, pub, sig = work / "k.key", work / "k.pub", work / "model.sig"
    rows = []

    def row(label, seconds):
        rows.append((label, seconds))
        print(f"  {label:<58} {seconds:7.2f} s  {size / 1e9 / seconds:6.2f} GB/s", flush=True)

    # The limit: openssl over every file, one process per file, as many at once as cores.
    xargs = ["sh", "-c", f"ls {model}/* | xargs -P {cores} -n 1 openssl dgst -sha256 > /dev/null"]
    row(f"openssl dgst -sha256, {cores} parallel (limit)", timed(xargs, args.repeat))
    row("openssl dgst -sha256, 1 process", timed(["sh", "-c", f"openssl dgst -sha256 {model}/* > /dev/null"], args.repeat))
    row("mlsec sign, files+sha256", timed([m, "sign", model, "--key", key, "--signature", sig], args.repeat))
    row("mlsec verify, files+sha256", timed([m, "verify", model, "--key", pub, "--signature", sig], args.repeat))
    b3 = work / "b3.sig"
    row("mlsec sign, blake3", timed([m, "sign", model, "--key", key, "--signature", b3, "--hash", "blake3"], args.repeat))
    row("mlsec verify, blake3", timed([m, "verify", model, "--key", pub, "--signature", b3], args.repeat))
    sh = work / "shards.sig"
    row("mlsec sign, shards(64 MB)+sha256", timed([m, "sign", model, "--key", key, "--signature", sh, "--shard-size", str(64 << 20)], args.repeat))
    cache = work / "digests.json"
    subprocess.run([m, "sign", model, "--key", key, "--signature", sig, "--cache", cache], check=True, stdout=subprocess.DEVNULL)
    row("mlsec verify --cache, nothing changed (incremental)", timed([m, "verify", model, "--key", pub, "--signature", sig, "--cache", cache], args.repeat))
    single = max(files, key=lambda p: p.stat().st_size)
    one = work / "one.sig"
    one_size = single.stat().st_size
    t_one_sha = timed([m, "sign", single, "--key", key, "--signature", one], args.repeat)
    t_one_b3 = timed([m, "sign", single, "--key", key, "--signature", one, "--hash", "blake3"], args.repeat)
    print(f"  one {one_size / 1e9:.2f} GB file: sha256 {one_size / 1e9 / t_one_sha:.2f} GB/s, blake3 {one_size / 1e9 / t_one_b3:.2f} GB/s ({t_one_sha / t_one_b3:.1f}x)")

    if not args.skip_reference:
        ms = [py, "-m", "model_signing"]
        ref = work / "ref.sig"
        row("model_signing sign key (files+sha256)", timed([*ms, "sign", "key", model, "--private_key", key, "--signature", ref], args.repeat))
        row("model_signing verify key (files+sha256)", timed([*ms, "verify", "key", model, "--signature", ref, "--public_key", pub], args.repeat))
        api = "import sys, model_signing as m; c = m.signing.Config().use_elliptic_key_signer(private_key=sys.argv[2]); c.set_hashing_config(m.hashing.Config().use_file_serialization(hashing_algorithm='blake3')); c.sign(sys.argv[1], sys.argv[3])"
        row("model_signing sign key (files+blake3, API)", timed([py, "-c", api, model, key, work / "ref-b3.sig"], args.repeat))

    t = dict(rows)
    limit = t[f"openssl dgst -sha256, {cores} parallel (limit)"]
    print("\nratios")
    print(f"  mlsec sign sha256 / openssl limit time:        {t['mlsec sign, files+sha256'] / limit:.2f} (1.00 = at the limit; target <= 1.10)")
    print(f"  mlsec verify sha256 / openssl limit time:      {t['mlsec verify, files+sha256'] / limit:.2f}")
    print(f"  blake3 speed-up over sha256 (sign):            {t['mlsec sign, files+sha256'] / t['mlsec sign, blake3']:.1f}x")
    if not args.skip_reference:
        print(f"  mlsec sign vs model_signing sign:              {t['model_signing sign key (files+sha256)'] / t['mlsec sign, files+sha256']:.1f}x faster")
        print(f"  mlsec verify vs model_signing verify:          {t['model_signing verify key (files+sha256)'] / t['mlsec verify, files+sha256']:.1f}x faster")
        print(f"  mlsec blake3 verify vs model_signing verify:   {t['model_signing verify key (files+sha256)'] / t['mlsec verify, blake3']:.1f}x faster")
        print(f"  mlsec blake3 sign vs model_signing blake3 sign: {t['model_signing sign key (files+blake3, API)'] / t['mlsec sign, blake3']:.1f}x faster")
    print(f"  incremental verify vs full verify:             {t['mlsec verify, files+sha256'] / t['mlsec verify --cache, nothing changed (incremental)']:.0f}x faster")


if __name__ == "__main__":
    main()
