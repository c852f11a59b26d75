#!/usr/bin/env python3
"""Artifact throughput: mlsec registry against MLflow's own tracking server, side by side.

Both servers run on this machine on their embedded defaults (SQLite metadata, local artifact
folder; MLflow with `--serve-artifacts`, mlsec with encryption, which it always has). The same
client code drives both through the same MLflow REST calls, with the same files and the same
number of repetitions:

  * upload: PUT /api/2.0/mlflow-artifacts/artifacts/<exp>/<run>/artifacts/<file>
  * download: GET of the same path
  * register: model-versions/create from runs:/<run>/model (MLflow records a pointer; mlsec
    copies, re-encrypts, scans and checks the signature, so this row is expected to be slower)

Files: one 256 MiB file, and 64 files of 1 MiB. Each number is the median of --reps runs.

Usage: python3 benches/registry_bench.py [--mlsec target/release/mlsec] [--reps 3]
The venv /tmp/mlsec-mlflow-server-venv gets mlflow (server included) from PyPI once.
"""

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MLFLOW = "mlflow==3.17.2"
VENV = Path("/tmp/mlsec-mlflow-server-venv")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_mlflow():
    py = VENV / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import mlflow.server"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", MLFLOW], check=True)
    return VENV / "bin" / "mlflow"


class Client:
    def __init__(self, port, token=None):
        self.port, self.token = port, token

    def call(self, method, path, body=b"", json_body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return data

    def new_run(self):
        r = json.loads(self.call("POST", "/api/2.0/mlflow/runs/create", json_body={"experiment_id": "0"}))
        return r["run"]["info"]["run_id"]


def wait_up(port, proc):
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not come up")


def measure(client, files, reps):
    up, down, reg = [], [], []
    total = sum(len(d) for _, d in files)
    name = f"bench-{os.getpid()}-{time.time_ns()}"
    client.call("POST", "/api/2.0/mlflow/registered-models/create", json_body={"name": name})
    for _ in range(reps):
        run = client.new_run()
        base = f"/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model"
        t = time.perf_counter()
        for fname, data in files:
            client.call("PUT", f"{base}/{fname}", body=data)
        up.append(time.perf_counter() - t)
        t = time.perf_counter()
        for fname, data in files:
            got = client.call("GET", f"{base}/{fname}")
            assert len(got) == len(data)
        down.append(time.perf_counter() - t)
        t = time.perf_counter()
        client.call("POST", "/api/2.0/mlflow/model-versions/create",
                    json_body={"name": name, "source": f"runs:/{run}/model", "run_id": run})
        reg.append(time.perf_counter() - t)
    mib = total / (1 << 20)
    return mib / statistics.median(up), mib / statistics.median(down), statistics.median(reg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/release/mlsec"))
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    mlflow = ensure_mlflow()
    big = [("weights.bin", os.urandom(256 << 20))]
    small = [(f"shard-{i:02}.bin", os.urandom(1 << 20)) for i in range(64)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mp, rp = free_port(), free_port()
        mlf = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(mp), "--workers", "2",
             "--backend-store-uri", f"sqlite:///{tmp}/mlflow.db", "--artifacts-destination", str(tmp / "mlflow-art")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        (tmp / "reg.toml").write_text(f'[server]\nlisten = "127.0.0.1:{rp}"\n[storage]\ndata_dir = "reg"\n')
        token = subprocess.run([args.mlsec, "registry", "--config", str(tmp / "reg.toml"), "token", "create",
                                "--name", "bench", "--scope", "admin"], check=True, capture_output=True,
                               text=True).stdout.strip()
        reg = subprocess.Popen([args.mlsec, "registry", "--config", str(tmp / "reg.toml"), "serve"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, MLSEC_LOG="warn"))
        try:
            wait_up(mp, mlf)
            wait_up(rp, reg)
            for label, files in [("1 x 256 MiB", big), ("64 x 1 MiB", small)]:
                m = measure(Client(mp), files, args.reps)
                r = measure(Client(rp, token), files, args.reps)
                rows.append((label, m, r))
        finally:
            for p in (mlf, reg):
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
    print(f"{'files':<12} {'':<10} {'MLflow 3.17':>12} {'mlsec':>12} {'ratio':>7}")
    for label, m, r in rows:
        print(f"{label:<12} {'upload':<10} {m[0]:>9.0f} MiB/s {r[0]:>9.0f} MiB/s {r[0] / m[0]:>6.2f}x")
        print(f"{'':<12} {'download':<10} {m[1]:>9.0f} MiB/s {r[1]:>9.0f} MiB/s {r[1] / m[1]:>6.2f}x")
        print(f"{'':<12} {'register':<10} {m[2]*1000:>10.0f} ms {r[2]*1000:>10.0f} ms {r[2] / m[2]:>6.2f}x")
    print("mlsec encrypts every byte, and on register copies, re-encrypts and scans the version; MLflow stores plaintext and records a pointer.")


if __name__ == "__main__":
    main()
