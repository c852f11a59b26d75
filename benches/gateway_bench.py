#!/usr/bin/env python3
"""Gateway overhead: the model server hit directly, through an nginx pass-through proxy, and
through `mlsec gateway` with authentication (API key), limits (rate, concurrency, token quota),
validation, audit log and metrics on, all in one run on loopback, driven by wrk.

The model server is the tests' `mock_upstream` (release build): the same upstream for all three.
For each target:
  * latency: wrk with 1 connection for --secs seconds; p50/p99 (the added latency is the
    difference to the direct run);
  * throughput: wrk with --conns connections; max req/s;
  * CPU per request: the proxy process's user+system time (from /proc, all its processes for
    nginx) during each run, divided by the requests served, at 1 and at --conns connections.
Targets are measured in alternating rounds and each figure is the median over the rounds.
Nothing here asserts on time.

Two more gateway targets measure the content checks: `guard = "injection"` alone, and the
guard with output checks (secrets and PII redacted, the system-prompt canary) and abuse windows.

With --before PATH, a second mlsec binary (an older build) runs as a further target in the same
rounds, so a change is measured before and after in one run.

Usage: python3 benches/gateway_bench.py [--secs 10] [--conns 32] [--rounds 3] [--before PATH]
nginx and wrk come from Debian (apt-get install nginx-light wrk).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
BODY = ('{"model":"chat-model","messages":[{"role":"system","content":"You answer questions about Acme invoices, '
        'briefly and politely."},{"role":"user","content":"hello there"}],"max_tokens":16}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_secs(pids) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICK


def family(pid: int):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(p) for p in out]


def wait_up(url: str) -> None:
    for _ in range(400):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, key: str, conns: int, secs: int, threads: int):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        + (f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else "")
        + "done = function(summary, latency, requests)\n"
        + '  io.write(string.format("p50_us %d\\np99_us %d\\nrequests %d\\nerrors %d\\n", latency:percentile(50), latency:percentile(99), summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n'
        + "end\n"
    )
    script.close()
    r = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{secs}s", "-s", script.name, url + "/v1/chat/completions"],
        capture_output=True, text=True,
    )
    os.unlink(script.name)
    vals = dict(re.findall(r"^(\w+) (\d+)$", r.stdout, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", r.stdout)
    return {
        "p50_us": int(vals["p50_us"]), "p99_us": int(vals["p99_us"]), "requests": int(vals["requests"]),
        "errors": int(vals["errors"]) + (int(non2xx.group(1)) if non2xx else 0), "rps": rps,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=int, default=10)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path, help="an older mlsec binary to measure in the same rounds")
    args = ap.parse_args()
    for tool in ["wrk", "nginx"]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install wrk nginx-light")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "mlsec", "-p", "mlsec-gateway", "--bins", "--example", "mock_upstream"],
                   cwd=REPO, check=True)
    mlsec = REPO / "target/release/mlsec"
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        try:
            up = subprocess.Popen([REPO / "target/release/examples/mock_upstream", "0"], stdout=subprocess.PIPE, text=True)
            procs.append(up)
            upstream = up.stdout.readline().strip()
            up_port = int(upstream.rsplit(":", 1)[1])

            nginx_port = free_port()
            (d / "logs").mkdir()
            (d / "nginx.conf").write_text(f"""
worker_processes auto;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    upstream model {{ server 127.0.0.1:{up_port}; keepalive 64; }}
    server {{
        listen 127.0.0.1:{nginx_port};
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
""")
            ng = subprocess.Popen(["nginx", "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"])
            procs.append(ng)

            def gateway(binary: Path, sub: str, guard: str = "default", extra: str = ""):
                g = d / sub
                g.mkdir()
                gw_port, admin_port = free_port(), free_port()
                (g / "gateway.toml").write_text(f"""
[server]
listen = "127.0.0.1:{gw_port}"
admin_listen = "127.0.0.1:{admin_port}"

[auth]
keys_file = "keys.json"

[audit]
path = "audit.jsonl"

[[models]]
name = "chat-model"
upstreams = ["{upstream}"]

[policies.bench]
models = ["chat-model"]
requests_per_second = 1000000
burst = 100000
concurrency = 10000
tokens_per_minute = 100000000000
max_tokens = 64
guard = "{guard}"
{extra}
""")
                cfg = ["--config", str(g / "gateway.toml")]
                key = subprocess.run([binary, "gateway", *cfg, "keys", "create", "--name", "bench", "--policy", "bench"],
                                     capture_output=True, text=True, check=True).stdout.strip()
                gw = subprocess.Popen([binary, "gateway", *cfg], stderr=subprocess.DEVNULL, env={**os.environ, "MLSEC_LOG": "warn"})
                procs.append(gw)
                return gw_port, key, gw

            gw_port, key, gw = gateway(mlsec, "now")
            targets = [
                ("direct (mock upstream)", f"http://127.0.0.1:{up_port}", "", None),
                ("nginx pass-through", f"http://127.0.0.1:{nginx_port}", "", ng.pid),
                ("mlsec gateway (auth, limits, validation, audit, metrics)", f"http://127.0.0.1:{gw_port}", key, gw.pid),
            ]
            g_port, g_key, g_gw = gateway(mlsec, "guarded", "injection")
            targets.append(("mlsec gateway, guard = injection", f"http://127.0.0.1:{g_port}", g_key, g_gw.pid))
            all_on = """
[policies.bench.output]
secrets = "redact"
pii = "redact"
system_prompt = "block"

[policies.bench.abuse]
action = "alert"
"""
            a_port, a_key, a_gw = gateway(mlsec, "all", "injection", all_on)
            targets.append(("mlsec gateway, guard + output checks + abuse", f"http://127.0.0.1:{a_port}", a_key, a_gw.pid))
            if args.before:
                b_port, b_key, b_gw = gateway(args.before.resolve(), "before")
                targets.append(("mlsec gateway, --before build", f"http://127.0.0.1:{b_port}", b_key, b_gw.pid))
            for _, url, _, _ in targets:
                wait_up(url + "/")
            # Rounds alternate the targets (so drift on a shared machine hits all of them); each
            # figure is the median over rounds.
            runs = {name: [] for name, _, _, _ in targets}
            for _, url, k, _ in targets:
                wrk(url, k, 4, 2, 1)  # warm connections and pools
            for _ in range(args.rounds):
                for name, url, k, pid in targets:
                    pids = family(pid) if pid else []
                    c0 = cpu_secs(pids)
                    lat = wrk(url, k, 1, args.secs, 1)
                    c1 = cpu_secs(pids)
                    thr = wrk(url, k, args.conns, args.secs, 2)
                    c2 = cpu_secs(pids)
                    cpu1 = (c1 - c0) * 1e6 / max(lat["requests"], 1) if pid else None
                    cpu_us = (c2 - c1) * 1e6 / max(thr["requests"], 1) if pid else None
                    runs[name].append((lat, thr, cpu_us, cpu1))
                    if lat["errors"] or thr["errors"]:
                        print(f"warning: {name}: {lat['errors'] + thr['errors']} failed requests", file=sys.stderr)
            med = lambda xs: sorted(xs)[len(xs) // 2]
            rows = []
            for name, _, _, pid in targets:
                rs = runs[name]
                lat = {"p50_us": med([r[0]["p50_us"] for r in rs]), "p99_us": med([r[0]["p99_us"] for r in rs])}
                thr = {"rps": med([r[1]["rps"] for r in rs]), "p50_us": med([r[1]["p50_us"] for r in rs])}
                cpu = med([r[2] for r in rs]) if pid else None
                cpu1 = med([r[3] for r in rs]) if pid else None
                rows.append((name, lat, thr, cpu, cpu1))

            direct = rows[0][1]
            print(f"\n1 connection: p50/p99 and what the proxy adds; {args.conns} connections: p50, max req/s, CPU per request")
            print(f"{'target':<58} {'p50 µs':>7} {'p99 µs':>7} {'+p50':>6} {'+p99':>6} {'p50@' + str(args.conns):>8} {'max req/s':>10} {'CPU µs/req@1':>13} {'@' + str(args.conns):>6}")
            for name, lat, thr, cpu, cpu1 in rows:
                add50 = lat["p50_us"] - direct["p50_us"]
                add99 = lat["p99_us"] - direct["p99_us"]
                cpu_s = f"{cpu:.1f}" if cpu is not None else "-"
                cpu1_s = f"{cpu1:.1f}" if cpu1 is not None else "-"
                print(f"{name:<58} {lat['p50_us']:>7} {lat['p99_us']:>7} {add50:>6} {add99:>6} {thr['p50_us']:>8} {thr['rps']:>10.0f} {cpu1_s:>13} {cpu_s:>6}")
            ng_cpu, ng_cpu1 = rows[1][3], rows[1][4]
            for name, _, _, cpu, cpu1 in rows[2:]:
                print(f"\n{name}: CPU per request / nginx's: {cpu1 / ng_cpu1:.2f}x at 1 connection, {cpu / ng_cpu:.2f}x at {args.conns}")
            print(f"mlsec added p50 latency: {rows[2][1]['p50_us'] - direct['p50_us']} µs (nginx: {rows[1][1]['p50_us'] - direct['p50_us']} µs)")
            off, on = rows[2][2]["rps"], rows[3][2]["rps"]
            print(f"guard = injection: max req/s {on:.0f} vs {off:.0f} without ({100 * (off - on) / off:.1f}% lower), "
                  f"p50 at 1 connection +{rows[3][1]['p50_us'] - rows[2][1]['p50_us']} µs")
            full = rows[4][2]["rps"]
            print(f"guard + output checks (secrets, PII redacted; canary) + abuse windows: max req/s {full:.0f} "
                  f"({100 * (off - full) / off:.1f}% lower than without), p50 at 1 connection "
                  f"+{rows[4][1]['p50_us'] - rows[2][1]['p50_us']} µs")
            n = sum(1 for _ in open(d / "now" / "audit.jsonl"))
            print(f"audit records written: {n}")
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
