#!/usr/bin/env python3
"""Interop test: the official `openai` Python client (PyPI) against `mlsec gateway`.

The gateway runs as users run it (`mlsec gateway --config FILE`, keys made with
`mlsec gateway keys create`), in front of the tests' model server (the `mock_upstream` example,
standing in for vLLM). The client:

  * completes normal and streamed chats (chunk by chunk, with usage), embeddings, the
    Responses API and the model list;
  * is refused with the right exception and a clear message for a wrong key, an unknown model,
    a model or parameter its key may not use, and a rate limit;
  * loses access after `mlsec gateway keys revoke` and a SIGHUP reload.

Then `mlsec gateway audit verify` checks the audit log's chain, and SIGTERM stops the gateway.

Last, docs/gateway.md's walkthrough runs as written: examples/gateway/gateway.toml unchanged
(ports 8080, 9090 and the model server on 8001), `keys create`, a streamed chat with the client,
`audit verify`.

Usage: python3 tests/interop/openai_gateway.py [--mlsec target/debug/mlsec]
       [--upstream target/debug/examples/mock_upstream] [--venv DIR]
The venv (default /tmp/mlsec-openai-venv) gets `openai` from PyPI once.
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
OPENAI_VERSION = "3.57.0"


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    probe = f"import openai, sys; sys.exit(openai.__version__ != '{OPENAI_VERSION}')"
    if not py.exists() or subprocess.run([str(py), "-c", probe], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", f"openai=={OPENAI_VERSION}"], check=True)
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLIENT = r'''
import json, sys
import openai

base, keys = sys.argv[1], json.loads(sys.argv[2])
results = []

def check(label, fn):
    try:
        fn()
        results.append([label, True, ""])
    except Exception as e:  # report, keep going
        results.append([label, False, f"{type(e).__name__}: {e}"])

def client(key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=10)

c = client(keys["default"])

def chat():
    r = c.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "echo: hi", r
    assert r.usage.prompt_tokens == 10, r.usage

def stream():
    parts, usage = [], None
    s = c.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "hi there"}],
                                  stream=True, stream_options={"include_usage": True})
    for chunk in s:
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage
    assert "".join(parts) == "echo: hi there", parts
    assert len(parts) >= 3, f"expected several chunks, got {parts}"
    assert usage is not None and usage.completion_tokens == 3, usage

def stream_without_asking_usage():
    text = "".join((ch.choices[0].delta.content or "") for ch in
                   c.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "x"}], stream=True)
                   if ch.choices)
    assert text == "echo: x", text

def embeddings():
    r = c.embeddings.create(model="chat-model", input="hello")
    assert len(r.data[0].embedding) == 3

def responses():
    r = c.responses.create(model="chat-model", input="hello")
    assert r.output_text == "ok", r

def models():
    ids = sorted(m.id for m in c.models.list())
    assert ids == ["chat-model", "other-model"], ids
    ids = [m.id for m in client(keys["narrow"]).models.list()]
    assert ids == ["chat-model"], ids

def expect(exc, code, fn):
    def run():
        try:
            fn()
        except exc as e:
            body = e.body if isinstance(e.body, dict) else {}
            assert body.get("code") == code, (code, e.body)
            assert body.get("message"), e.body
            return
        raise AssertionError(f"expected {exc.__name__}")
    return run

def wrong_key():
    client("mlsk_000000000000_" + "A" * 43).chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "x"}])

def unknown_model():
    c.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "x"}])

def forbidden_model():
    client(keys["narrow"]).chat.completions.create(model="other-model", messages=[{"role": "user", "content": "x"}])

def logprobs():
    c.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "x"}], logprobs=True, top_logprobs=3)

def rate_limited():
    lim = client(keys["limited"])
    for _ in range(3):
        lim.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "x"}])

def retry_after_header():
    lim = client(keys["limited"])
    try:
        lim.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "x"}])
    except openai.RateLimitError as e:
        assert int(e.response.headers["retry-after"]) >= 1
        return
    raise AssertionError("expected a 429")

mode = sys.argv[3]
if mode == "main":
    check("chat completion", chat)
    check("streamed chat, chunk by chunk, with usage", stream)
    check("streamed chat without asking for usage", stream_without_asking_usage)
    check("embeddings", embeddings)
    check("responses API", responses)
    check("model list follows the key's policy", models)
    check("wrong key: AuthenticationError invalid_api_key", expect(openai.AuthenticationError, "invalid_api_key", wrong_key))
    check("unknown model: NotFoundError model_not_found", expect(openai.NotFoundError, "model_not_found", unknown_model))
    check("model not granted: PermissionDeniedError model_not_allowed", expect(openai.PermissionDeniedError, "model_not_allowed", forbidden_model))
    check("logprobs not granted: PermissionDeniedError parameter_not_allowed", expect(openai.PermissionDeniedError, "parameter_not_allowed", logprobs))
    check("rate limit: RateLimitError rate_limit_exceeded", expect(openai.RateLimitError, "rate_limit_exceeded", rate_limited))
    check("429 carries Retry-After", retry_after_header)
else:
    check("revoked key after reload: AuthenticationError", expect(openai.AuthenticationError, "invalid_api_key", chat))
print(json.dumps(results))
'''


STREAM = r'''
import sys, openai
client = openai.OpenAI(base_url="http://127.0.0.1:8080/v1", api_key=sys.argv[1])
stream = client.chat.completions.create(
    model="chat-model", stream=True,
    messages=[{"role": "user", "content": "hello through the gateway"}])
text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
print(text)
'''


def walkthrough(args, py, report) -> None:
    """docs/gateway.md, steps 1 to 3 and 9, with examples/gateway/gateway.toml as shipped."""
    for port in (8001, 8080, 9090):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                report(f"walkthrough: port {port} is free", False, "something else listens there")
                return
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "gateway"
        d.mkdir()
        (d / "gateway.toml").write_text((REPO / "examples/gateway/gateway.toml").read_text())
        up = subprocess.Popen([args.upstream, "8001"], stdout=subprocess.PIPE, text=True)
        gw = None
        try:
            up.stdout.readline()
            mlsec = [str(Path(args.mlsec).resolve()), "gateway"]
            r = subprocess.run(mlsec + ["check-config"], cwd=d, capture_output=True, text=True)
            report("walkthrough: check-config on the example", r.returncode == 0, r.stdout + r.stderr)
            r = subprocess.run(mlsec + ["keys", "create", "--name", "me", "--policy", "team"], cwd=d, capture_output=True, text=True)
            key = r.stdout.strip()
            report("walkthrough: keys create", key.startswith("mlsk_"), r.stderr)
            gw = subprocess.Popen(mlsec, cwd=d, stderr=open(d / "gateway.log", "w"))
            for _ in range(200):
                try:
                    urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            out = subprocess.run([str(py), "-c", STREAM, key], capture_output=True, text=True, timeout=60)
            report("walkthrough: a streamed chat with the openai client", out.returncode == 0 and "hello" in out.stdout, out.stdout + out.stderr)
        finally:
            if gw:
                gw.send_signal(signal.SIGTERM)
                try:
                    gw.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    gw.kill()
            up.kill()
        r = subprocess.run(mlsec + ["audit", "verify", "audit.jsonl"], cwd=d, capture_output=True, text=True)
        report("walkthrough: audit verify", r.returncode == 0 and "chain intact" in r.stdout, r.stdout + r.stderr)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", default=str(REPO / "target/debug/mlsec"))
    ap.add_argument("--upstream", default=str(REPO / "target/debug/examples/mock_upstream"))
    ap.add_argument("--venv", default="/tmp/mlsec-openai-venv")
    args = ap.parse_args()
    py = ensure_venv(Path(args.venv))
    failures, passed = [], 0

    def report(label: str, ok: bool, detail: str = "") -> None:
        nonlocal passed
        if ok:
            passed += 1
            print(f"ok    {label}")
        else:
            failures.append(label)
            print(f"FAIL  {label}: {detail}")

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        up = subprocess.Popen([args.upstream, "0"], stdout=subprocess.PIPE, text=True)
        upstream_url = (up.stdout.readline() if up.stdout else "").strip()
        port, admin = free_port(), free_port()
        (d / "gateway.toml").write_text(f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"

[auth]
keys_file = "keys.json"

[audit]
path = "audit.jsonl"

[[models]]
name = "chat-model"
upstreams = ["{upstream_url}"]
responses = true

[[models]]
name = "other-model"
upstreams = ["{upstream_url}"]

[policies.default]
models = ["*"]

[policies.narrow]
models = ["chat-model"]

[policies.limited]
models = ["chat-model"]
requests_per_minute = 60
burst = 2
""")
        mlsec = [args.mlsec, "gateway", "--config", str(d / "gateway.toml")]
        r = subprocess.run(mlsec + ["check-config"], capture_output=True, text=True)
        report("mlsec gateway check-config", r.returncode == 0, r.stderr)
        keys, ids = {}, {}
        for name in ["default", "narrow", "limited"]:
            r = subprocess.run(mlsec + ["keys", "create", "--name", name, "--policy", name], capture_output=True, text=True)
            keys[name] = r.stdout.strip()
            ids[name] = keys[name].split("_")[1] if keys[name].startswith("mlsk_") else ""
        report("mlsec gateway keys create", all(k.startswith("mlsk_") for k in keys.values()), str(keys.keys()))
        stored = (d / "keys.json").read_text()
        report("keys file holds no key", not any(k.split("_", 2)[2] in stored for k in keys.values()))

        gw = subprocess.Popen(mlsec, stderr=open(d / "gateway.log", "w"))
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        try:
            out = subprocess.run([str(py), "-c", CLIENT, base, json.dumps(keys), "main"], capture_output=True, text=True, timeout=120)
            for label, ok, detail in json.loads(out.stdout or "[]") or [["client ran", False, out.stderr]]:
                report(f"openai client: {label}", ok, detail)

            r = subprocess.run(mlsec + ["keys", "revoke", ids["default"]], capture_output=True, text=True)
            report("mlsec gateway keys revoke", r.returncode == 0, r.stderr)
            gw.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            out = subprocess.run([str(py), "-c", CLIENT, base, json.dumps(keys), "revoked"], capture_output=True, text=True, timeout=60)
            for label, ok, detail in json.loads(out.stdout or "[]") or [["client ran", False, out.stderr]]:
                report(f"openai client: {label}", ok, detail)
        finally:
            gw.send_signal(signal.SIGTERM)
            try:
                code = gw.wait(timeout=40)
            except subprocess.TimeoutExpired:
                gw.kill()
                code = -1
            up.kill()
        report("SIGTERM stops the gateway cleanly", code == 0, f"exit {code}: {(d / 'gateway.log').read_text()[-2000:]}")
        r = subprocess.run([args.mlsec, "gateway", "audit", "verify", str(d / "audit.jsonl")], capture_output=True, text=True)
        report("mlsec gateway audit verify: chain intact", r.returncode == 0 and "chain intact" in r.stdout, r.stdout + r.stderr)
        log = (d / "audit.jsonl").read_text()
        report("audit log holds no key", not any(k in log for k in keys.values()))

    walkthrough(args, py, report)

    print(f"\n{passed} passed, {len(failures)} failed")
    for f in failures:
        print(f"  failed: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
