#!/usr/bin/env python3
"""Interop test: the real `mlflow` client (PyPI, 3.x and 2.x) against `mlsec registry serve`.

The registry runs as users run it (`mlsec registry serve --config FILE`, tokens made with
`mlsec registry token create`), on its embedded default (SQLite, encrypted local objects).
Each client, with only MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN set:

  * logs a pyfunc model with `registered_model_name` (3.x: a logged model; 2.x: run artifacts
    and runs/log-model), sets an alias, loads `models:/name@alias` and predicts, downloads
    the artifacts, copies the version into another model;
  * registers a clean model from `runs:/`, and sees the registry's checks as version tags
    (the pickled pyfunc is flagged by the scan, the numpy one is clean);
  * is refused the protected alias `prod` for the flagged version, and allowed it for the
    clean one; is refused writes with a read-only token, everything without a token, and does
    not see models outside its scopes in searches;
  * authenticates with Basic (MLFLOW_TRACKING_USERNAME/PASSWORD) as older setups do.

Then `mlsec registry rollback` moves an alias back, no plaintext of the model is found in the
object store, and `mlsec gateway audit verify` checks the registry's audit chain.

Each client runs twice: against the embedded default, and against the real PostgreSQL
(127.0.0.1:5432, a fresh database) with objects in a local S3 endpoint (moto's server from
PyPI), encryption on in both.

Usage: python3 tests/interop/mlflow_registry.py [--mlsec target/debug/mlsec] [--only 3|2]
       [--backend embedded|pg-s3|all]
The venvs (/tmp/mlsec-mlflow3-venv, /tmp/mlsec-mlflow2-venv, /tmp/mlsec-moto-venv) get
mlflow-skinny, pandas, numpy and moto[server] from PyPI once.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CLIENTS = {
    "3": ("mlflow-skinny==3.18.0", "/tmp/mlsec-mlflow3-venv"),
    "2": ("mlflow-skinny==2.22.5", "/tmp/mlsec-mlflow2-venv"),
}
EXTRA = ["pandas==2.2.3", "numpy==2.2.6"]
MOTO = ("moto[server]==5.2.6", "/tmp/mlsec-moto-venv")
PG = os.environ.get("MLSEC_TEST_POSTGRES_URL", "postgres://root@127.0.0.1:5432/test")


def ensure_venv(spec: str, venv: Path, module: str = "mlflow") -> Path:
    py = venv / "bin" / "python"
    want = spec.split("==")[1]
    probe = f"import {module}, sys; sys.exit({module}.__version__ != '{want}')"
    if not py.exists() or subprocess.run([str(py), "-c", probe], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        extra = EXTRA if module == "mlflow" else []
        subprocess.run([str(py), "-m", "pip", "install", "-q", spec, *extra], check=True)
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLIENT = r'''
import json, os, sys, tempfile
import numpy as np
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

prefix, tokens = sys.argv[1], json.loads(sys.argv[2])
major = int(mlflow.__version__.split(".")[0])
results = []

def check(label, fn):
    try:
        fn()
        results.append([label, True, ""])
    except Exception as e:  # report, keep going
        results.append([label, False, f"{type(e).__name__}: {e}"])

def refused(fn, code):
    try:
        fn()
    except MlflowException as e:
        assert e.error_code == code, (e.error_code, str(e))
        return str(e)
    raise AssertionError(f"expected {code}, the call succeeded")

def as_token(t):
    os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
    os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
    if t is None:
        os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    else:
        os.environ["MLFLOW_TRACKING_TOKEN"] = t

class AddN(mlflow.pyfunc.PythonModel):
    def __init__(self, n):
        self.n = n
    def predict(self, context, model_input, params=None):
        return model_input.apply(lambda c: c + self.n)

as_token(tokens["writer"])
mlflow.set_experiment(f"{prefix}-exp")
name = f"{prefix}-fraud"
c = MlflowClient()
state = {}

def log_and_register():
    with mlflow.start_run() as run:
        mlflow.log_param("n", 5)
        kw = {"name": "model"} if major >= 3 else {"artifact_path": "model"}
        info = mlflow.pyfunc.log_model(python_model=AddN(5), registered_model_name=name, **kw)
        state["run"] = run.info.run_id
    v = c.get_model_version(name, "1")
    assert v.status == "READY", v
    tags = v.tags
    # The pickled PythonModel is code: the registry's scan says so.
    assert tags["mlsec.scan"] == "findings", tags
    assert tags["mlsec.signature"] == "absent", tags
    assert len(tags["mlsec.digest"]) == 64, tags

def alias_and_load():
    c.set_registered_model_alias(name, "staging", "1")
    m = mlflow.pyfunc.load_model(f"models:/{name}@staging")
    import pandas as pd
    out = m.predict(pd.DataFrame({"x": [1, 2]}))
    assert list(out["x"]) == [6, 7], out
    assert c.get_model_version_by_alias(name, "staging").version == "1"

def download():
    d = tempfile.mkdtemp()
    p = mlflow.artifacts.download_artifacts(f"models:/{name}@staging", dst_path=d)
    files = sorted(os.listdir(p))
    assert "MLmodel" in files and "python_model.pkl" in files, files

def copy():
    mv = c.copy_model_version(f"models:/{name}@staging", f"{name}-copy")
    assert mv.version == "1", mv
    d = tempfile.mkdtemp()
    p = mlflow.artifacts.download_artifacts(f"models:/{name}-copy/1", dst_path=d)
    assert "MLmodel" in os.listdir(p)

def clean_model_from_runs_uri():
    import pandas as pd
    fingerprint = os.environ["MLSEC_TRAIN_FINGERPRINT"]
    with mlflow.start_run() as run:
        # The training data, with the content fingerprint `mlsec data audit` gave it.
        train = mlflow.data.from_pandas(pd.read_csv("train.csv"), source="train.csv", name="train")
        mlflow.log_input(train, context="training", tags={"mlsec.fingerprint": fingerprint})
        d = tempfile.mkdtemp()
        np.save(os.path.join(d, "weights.npy"), np.arange(6, dtype=np.float32))
        with open(os.path.join(d, "MLmodel"), "w") as f:
            f.write("artifact_path: model\nflavors: {}\n")
        mlflow.log_artifacts(d, "model")
    mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert mv.version == "2", mv
    v = c.get_model_version(name, "2")
    assert v.tags["mlsec.scan"] == "clean", v.tags
    # The version records the run's datasets: lineage from model to training data.
    assert v.tags["mlsec.dataset_fingerprints"] == fingerprint, v.tags
    assert json.loads(v.tags["mlsec.datasets"])[0]["context"] == "training", v.tags
    state["clean"] = "2"

def protected_alias():
    msg = refused(lambda: c.set_registered_model_alias(name, "prod", "1"), "PERMISSION_DENIED")
    assert "scan" in msg, msg
    c.set_registered_model_alias(name, "prod", state["clean"])
    assert c.get_model_version_by_alias(name, "prod").version == "2"

def alias_moves_for_rollback():
    c.set_registered_model_alias(name, "staging", "2")

def reader_cannot_write():
    as_token(tokens["reader"])
    try:
        assert c.get_model_version(name, "1").version == "1"
        refused(lambda: c.set_registered_model_alias(name, "staging", "1"), "PERMISSION_DENIED")
        refused(lambda: c.create_registered_model(f"{prefix}-new"), "PERMISSION_DENIED")
        # The reader's scopes cover this prefix's models only.
        names = [m.name for m in c.search_registered_models()]
        assert name in names and all(n.startswith(prefix) for n in names), names
        assert not any("secret" in n for n in names), names
    finally:
        as_token(tokens["writer"])

def no_token():
    as_token(None)
    try:
        refused(lambda: c.get_registered_model(name), "UNAUTHENTICATED")
    finally:
        as_token(tokens["writer"])

def basic_auth():
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    os.environ["MLFLOW_TRACKING_USERNAME"] = "ci"
    os.environ["MLFLOW_TRACKING_PASSWORD"] = tokens["reader"]
    try:
        assert MlflowClient().get_registered_model(name).name == name
    finally:
        as_token(tokens["writer"])

for label, fn in [
    ("log_model with registered_model_name", log_and_register),
    ("set alias, load models:/name@alias, predict", alias_and_load),
    ("download artifacts of models:/name@alias", download),
    ("copy_model_version into another model", copy),
    ("register from runs:/ with a logged dataset: scan clean, lineage recorded", clean_model_from_runs_uri),
    ("protected alias gated by the scan", protected_alias),
    ("alias moved (for rollback)", alias_moves_for_rollback),
    ("read-only token: reads, no writes, filtered search", reader_cannot_write),
    ("no token: refused", no_token),
    ("Basic authentication", basic_auth),
]:
    check(label, fn)
print(json.dumps(results))
'''


def make_token(mlsec, config, name, scopes):
    cmd = [mlsec, "registry", "--config", str(config), "token", "create", "--name", name]
    for s in scopes:
        cmd += ["--scope", s]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def wait_up(url, proc):
    for _ in range(200):
        if proc.poll() is not None:
            raise SystemExit(f"registry exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("registry did not come up")


class Moto:
    """moto's S3 server on a loopback port, with one bucket."""

    def __init__(self):
        py = ensure_venv(MOTO[0], Path(MOTO[1]), module="moto")
        self.port = free_port()
        self.proc = subprocess.Popen([str(py), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("moto server did not come up")

    def bucket(self, name):
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/{name}", method="PUT")).read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def psql(sql):
    base = PG.rsplit("/", 1)[0]
    subprocess.run(["psql", PG, "-q", "-c", sql], check=True, capture_output=True)
    return base


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/debug/mlsec"))
    ap.add_argument("--only", choices=sorted(CLIENTS))
    ap.add_argument("--backend", choices=["embedded", "pg-s3", "all"], default="all")
    args = ap.parse_args()
    mlsec = str(Path(args.mlsec).resolve())
    failures = 0
    backends = ["embedded", "pg-s3"] if args.backend == "all" else [args.backend]
    moto = Moto() if "pg-s3" in backends else None
    try:
        for major, (spec, venv) in CLIENTS.items():
            if args.only and major != args.only:
                continue
            py = ensure_venv(spec, Path(venv))
            for backend in backends:
                failures += run_one(mlsec, major, py, backend, moto)
    finally:
        if moto:
            moto.stop()
    if failures:
        raise SystemExit(f"{failures} check(s) failed")
    print("all checks passed")


def run_one(mlsec, major, py, backend, moto):
    failures = 0
    if True:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            port = free_port()
            config = tmp / "registry.toml"
            text = f'[server]\nlisten = "127.0.0.1:{port}"\n[storage]\ndata_dir = "data"\n'
            server_env = dict(os.environ)
            db = None
            if backend == "pg-s3":
                db = f"mlsec_interop_{os.getpid()}_{major}"
                base = psql(f"DROP DATABASE IF EXISTS {db}")
                psql(f"CREATE DATABASE {db}")
                bucket = f"models-{major}"
                moto.bucket(bucket)
                text += (f'metadata = "{base}/{db}"\nartifacts = "s3://{bucket}/registry"\n'
                         f'[storage.s3]\nendpoint = "{moto.url}"\nregion = "us-east-1"\nallow_http = true\n')
                server_env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
            config.write_text(text)
            prefix = f"v{major}"
            tokens = {
                "writer": make_token(mlsec, config, "ci", [
                    "write:experiment/*", f"write:model/{prefix}-*", "write:alias/prod"]),
                "reader": make_token(mlsec, config, "reader", [
                    "read:experiment/*", f"read:model/{prefix}-*"]),
            }
            admin = make_token(mlsec, config, "admin", ["admin"])
            log = open(tmp / "registry.log", "w")
            proc = subprocess.Popen([mlsec, "registry", "--config", str(config), "serve"],
                                    stdout=log, stderr=subprocess.STDOUT, env=server_env)
            url = f"http://127.0.0.1:{port}"
            try:
                wait_up(url, proc)
                # A model outside the reader's scopes, made by the admin.
                req = urllib.request.Request(
                    url + "/api/2.0/mlflow/registered-models/create",
                    data=json.dumps({"name": f"secret-{prefix}"}).encode(),
                    headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
                urllib.request.urlopen(req).read()
                # Training data and its fingerprint from `mlsec data audit`, for the lineage check.
                (tmp / "train.csv").write_text("x,y\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
                audit_out = subprocess.run([mlsec, "data", "audit", str(tmp / "train.csv"), "--label", "y",
                                            "--format", "json"], capture_output=True, text=True)
                fingerprint = json.loads(audit_out.stdout)["content_fingerprint"]
                env = dict(os.environ, MLFLOW_TRACKING_URI=url, MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                           GIT_PYTHON_REFRESH="quiet", MLFLOW_ENABLE_ASYNC_LOGGING="false",
                           MLSEC_TRAIN_FINGERPRINT=fingerprint)
                out = subprocess.run([str(py), "-c", CLIENT, prefix, json.dumps(tokens)],
                                     env=env, capture_output=True, text=True, cwd=tmp, timeout=600)
                try:
                    results = json.loads(out.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    print(out.stdout, out.stderr, sep="\n")
                    raise SystemExit(f"mlflow {major}.x client crashed")
                # Rollback through the CLI: staging goes back from 2 to 1.
                rb = subprocess.run([mlsec, "registry", "rollback", f"{prefix}-fraud@staging", "--url", url],
                                    env=dict(os.environ, MLSEC_REGISTRY_TOKEN=tokens["writer"]),
                                    capture_output=True, text=True)
                ok = rb.returncode == 0 and "version 2 -> version 1" in rb.stdout
                results.append(["mlsec registry rollback MODEL@ALIAS", ok, rb.stdout + rb.stderr])
                # Nothing readable at rest (the local folder; S3 objects are the same bytes).
                if backend == "embedded":
                    needle = b"python_function"
                    leaked = [str(p) for p in (tmp / "data" / "objects").rglob("*")
                              if p.is_file() and needle in p.read_bytes()]
                    results.append(["no plaintext at rest", not leaked, " ".join(leaked)])
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                log.close()
            audit = subprocess.run([mlsec, "gateway", "audit", "verify", str(tmp / "data" / "audit.jsonl")],
                                   capture_output=True, text=True)
            results.append(["audit chain verifies", audit.returncode == 0, audit.stdout + audit.stderr])
            for label, passed, detail in results:
                print(f"{'ok  ' if passed else 'FAIL'} mlflow {major}.x, {backend}: {label}" + ("" if passed else f": {detail}"))
                failures += not passed
            if failures:
                print((tmp / "registry.log").read_text()[-4000:])
            if db:
                psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    return failures


if __name__ == "__main__":
    main()
