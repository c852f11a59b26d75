#!/usr/bin/env python3
"""Secrets scanning: mlsec vs detect-secrets on detection (the generated labelled ML repository)
and on speed (a tree of at least --mb megabytes), with ripgrep searching the same tree for the
rules' keywords as the practical limit.

Detection: `cargo run --example secrets_corpus` writes the corpus the Rust test scores, with
labels.json. A tool's finding on a labelled file line is a hit, on any other line a false alarm
(rule names are not compared: the tools' types differ). Notebook findings are placed by their raw
file line.

Speed: the CPython standard library's text files (hard-linked, repeated until the tree holds
--mb MB) plus copies of the corpus. mlsec and ripgrep scan all of it; detect-secrets, which
runs at about 1 MB/s, scans a --ds-mb MB slice and its rate is reported. CPU seconds are the
children's user+system time. Nothing here asserts on time.

Usage: python3 benches/secrets_bench.py [--mb 500] [--ds-mb 20] [--mlsec target/release/mlsec]
detect-secrets is installed from PyPI into /tmp/mlsec-bench-venv; ripgrep from Debian.
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "crates" / "mlsec-scan-secrets" / "rules" / "default.toml"
TEXT_SUFFIXES = {".py", ".txt", ".json", ".cfg", ".toml", ".md", ".rst", ".yaml", ".yml", ".ini", ".html", ".csv"}


def timed(cmd, **kw):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r, wall, cpu


def score(name, expected, found):
    tp = len(expected & found)
    recall = tp / len(expected) if expected else 0
    precision = tp / len(found) if found else 0
    print(f"  {name:<15} found {len(found):3}  hits {tp:3}/{len(expected)}  recall {recall:.2f}  precision {precision:.2f}")


def mlsec_found(mlsec, root):
    r = subprocess.run([str(mlsec), "scan", str(root), "--only", "secrets", "-f", "json", "-q", "--fail-on", "never"],
                       capture_output=True, text=True, check=True)
    found = set()
    for f in json.loads(r.stdout)["findings"]:
        path = str(Path(f["location"]["path"]).relative_to(root))
        m = re.search(r"at file line (\d+)", f["message"])
        line = int(m.group(1)) if m else f["location"]["line"]
        found.add((path, line))
    return found


def detect_secrets_found(ds, root):
    r = subprocess.run([str(ds), "scan", "--all-files", "."], capture_output=True, text=True, cwd=root)
    data = json.loads(r.stdout)
    return {(path, item["line_number"]) for path, items in data["results"].items() for item in items}


def build_tree(tree, corpus, target_mb):
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [p for p in stdlib.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES
               and "site-packages" not in p.parts and p.stat().st_size < 4 << 20]
    total, copy = 0, 0
    while total < target_mb * 1e6:
        base = tree / f"stdlib{copy}"
        for p in sources:
            dst = base / p.relative_to(stdlib)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dst)
            total += p.stat().st_size
        for i in range(50):
            shutil.copytree(corpus, tree / f"projects{copy}" / f"p{i:02d}")
            total += sum(f.stat().st_size for f in corpus.rglob("*") if f.is_file())
        copy += 1
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=500)
    ap.add_argument("--ds-mb", type=int, default=20)
    ap.add_argument("--mlsec", type=Path, default=REPO / "target" / "release" / "mlsec")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "mlsec", "-p", "mlsec-test-support", "--bins", "--examples"], cwd=REPO, check=True)
    venv = Path(tempfile.gettempdir()) / "mlsec-bench-venv"
    ds = venv / "bin" / "detect-secrets"
    if not ds.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "detect-secrets"], check=True)
    rg = shutil.which("rg")
    if rg is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "ripgrep"], check=False, capture_output=True)
        rg = shutil.which("rg")
    ds_version = subprocess.run([str(ds), "--version"], capture_output=True, text=True).stdout.strip()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus, labels_path = tmp / "corpus", tmp / "labels.json"
        subprocess.run([str(REPO / "target" / "release" / "examples" / "secrets_corpus"), str(corpus), str(labels_path)], check=True)
        labels = json.loads(labels_path.read_text())
        expected = {(l["path"], l["file_line"]) for l in labels}
        print(f"detection on the generated ML repository ({len(expected)} labelled secrets, by file line)")
        score("mlsec", expected, mlsec_found(args.mlsec, corpus))
        score(f"detect-secrets", expected, detect_secrets_found(ds, corpus))
        print(f"  (detect-secrets {ds_version}, default plugins and filters)")

        tree = tmp / "tree"
        size = build_tree(tree, corpus, args.mb)
        files = sum(1 for p in tree.rglob("*") if p.is_file())
        print(f"\nspeed on {files} files, {size / 1e6:.0f} MB (CPython's text files repeated, plus corpus copies)")
        # Warm the page cache so that every tool reads from memory.
        subprocess.run(f"find {tree} -type f -print0 | xargs -0 cat > /dev/null", shell=True)
        r, wall, cpu = timed([str(args.mlsec), "scan", str(tree), "--only", "secrets", "-q", "-f", "json", "-o", "/dev/null"])
        print(f"  mlsec           {wall:6.2f} s  {size / 1e6 / wall:7.1f} MB/s  {size / 1e6 / cpu:7.1f} MB per CPU-second")
        mlsec_cpu_rate = size / 1e6 / cpu
        keywords = sorted({k for r in tomllib.loads(RULES.read_text())["rules"] for k in r.get("keywords", [])})
        kw_file = tmp / "keywords.txt"
        kw_file.write_text("\n".join(keywords) + "\n")
        if rg:
            rg_version = subprocess.run([rg, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
            r, wall, cpu = timed([rg, "-i", "-F", "-c", "-f", str(kw_file), "--no-ignore", "--hidden", str(tree)])
            print(f"  ripgrep         {wall:6.2f} s  {size / 1e6 / wall:7.1f} MB/s  {size / 1e6 / cpu:7.1f} MB per CPU-second"
                  f"  ({rg_version}: the {len(keywords)} rule keywords, no regexes, no validation)")
        # detect-secrets on a slice: files drawn at random (fixed seed) from the whole tree, so the
        # mix of source, configs and notebooks is the tree's.
        slice_dir = tmp / "slice"
        taken = 0
        pool = sorted(p for p in tree.rglob("*") if p.is_file())
        random.Random(0).shuffle(pool)
        for p in pool:
            if taken >= args.ds_mb * 1e6:
                break
            if p.is_file():
                dst = slice_dir / p.relative_to(tree)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.link(p, dst)
                taken += p.stat().st_size
        r, wall, cpu = timed([str(ds), "scan", "--all-files", "."], cwd=slice_dir)
        ds_rate = taken / 1e6 / cpu
        print(f"  detect-secrets  {wall:6.2f} s  {taken / 1e6 / wall:7.1f} MB/s  {ds_rate:7.1f} MB per CPU-second  (on a {taken / 1e6:.0f} MB slice)")
        print(f"  mlsec uses {mlsec_cpu_rate / ds_rate:.0f}x less CPU per MB than detect-secrets")


if __name__ == "__main__":
    main()
