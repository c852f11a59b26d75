#!/usr/bin/env python3
"""mlsec redteam llm against garak, on the same local OpenAI-compatible endpoint, in one run.

The endpoint is the scripted model of mlsec-probe's tests (`cargo build -p mlsec-probe
--example vulnerable_llm`), which answers in microseconds, so what is measured is each tool's
own cost per probe: building prompts, sending, reading, judging, reporting.

- garak (PyPI, pinned), generator openai.OpenAICompatible, probes encoding.InjectBase64 and
  promptinject.HijackHateHumans (a mix of generated encodings and templated injections),
  one generation each, `--parallel_attempts` equal to mlsec's `--concurrency`.
- mlsec redteam llm, its whole catalogue (56 probes), repeated with fresh seeds until it has
  sent at least as many requests as garak did.

Both are timed the same way: wall time of the whole command, median of `--reps`; the table gives
requests per second. Hits are printed too, with a caveat: the scripted model was written to fall
for mlsec's own wording, so the hit counts say nothing about coverage; only the speed compares.

Usage: python3 benches/llm_probe_bench.py [--mlsec target/release/mlsec]
    [--server target/release/examples/vulnerable_llm] [--reps 3] [--concurrency 4]
The venv /tmp/mlsec-garak-venv gets garak from PyPI once.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV = Path("/tmp/mlsec-garak-venv")
GARAK = VENV / "bin" / "garak"
PROBES = "encoding.InjectBase64,promptinject.HijackHateHumans"


def ensure_venv():
    if GARAK.exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "garak==0.17.1"], check=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def garak_once(url, concurrency, workdir):
    opts = {"openai": {"OpenAICompatible": {"uri": url, "api_key": "x",
                                            "suppressed_params": ["n", "stop", "frequency_penalty", "presence_penalty"]}}}
    env = dict(os.environ, OPENAICOMPATIBLE_API_KEY="x", XDG_DATA_HOME=str(workdir))
    t0 = time.perf_counter()
    p = subprocess.run([str(GARAK), "--model_type", "openai.OpenAICompatible", "--model_name", "any",
                        "--generator_options", json.dumps(opts), "--probes", PROBES, "--generations", "1",
                        "--parallel_attempts", str(concurrency)], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"garak failed: {p.stdout[-1500:]} {p.stderr[-1500:]}")
    reports = sorted(Path(workdir).rglob("*.report.jsonl"), key=lambda f: f.stat().st_mtime)
    attempts, fails = 0, 0
    for line in reports[-1].read_text().splitlines():
        rec = json.loads(line)
        if rec.get("entry_type") == "attempt" and rec.get("status") == 2:
            attempts += 1
        if rec.get("entry_type") == "eval":
            fails = max(fails, rec.get("total", 0) - rec.get("passed", 0))
    return wall, attempts, fails


def mlsec_once(mlsec, url, concurrency, need):
    t0 = time.perf_counter()
    sent, hits, seed = 0, 0, 0
    while sent < need or seed == 0:
        p = subprocess.run([mlsec, "redteam", "llm", "--url", url, "--model", "any", "--seed", str(seed),
                            "--concurrency", str(concurrency), "--format", "json"], capture_output=True, text=True)
        if p.returncode not in (0, 1):
            sys.exit(f"mlsec failed: {p.stderr[-1500:]}")
        r = json.loads(p.stdout)
        sent += r["requests"]
        hits += r["summary"][-1]["vulnerable"]
        seed += 1
    return time.perf_counter() - t0, sent, hits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target" / "release" / "mlsec"))
    ap.add_argument("--server", default=str(REPO / "target" / "release" / "examples" / "vulnerable_llm"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    ensure_venv()
    port = free_port()
    server = subprocess.Popen([args.server, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        import tempfile
        g, m = [], []
        with tempfile.TemporaryDirectory() as work:
            for _ in range(args.reps):
                g.append(garak_once(url, args.concurrency, work))
                m.append(mlsec_once(args.mlsec, url, args.concurrency, g[-1][1]))
        gw, gn, gf = statistics.median(x[0] for x in g), g[0][1], g[0][2]
        mw, mn, mh = statistics.median(x[0] for x in m), m[0][1], m[0][2]
        print(f"endpoint {url} (scripted model), concurrency {args.concurrency}, median of {args.reps}")
        print(f"{'tool':<8} {'requests':>9} {'wall s':>8} {'req/s':>8} {'hits':>6}")
        print(f"{'garak':<8} {gn:>9} {gw:>8.2f} {gn / gw:>8.1f} {gf:>6}")
        print(f"{'mlsec':<8} {mn:>9} {mw:>8.2f} {mn / mw:>8.1f} {mh:>6}")
        print(f"ratio (requests per second): {(mn / mw) / (gn / gw):.1f}x")
        print("hits: the scripted model falls for mlsec's wording by design; they do not compare coverage")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
