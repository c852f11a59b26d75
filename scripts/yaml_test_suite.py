#!/usr/bin/env python3
"""Packs the official YAML test suite (github.com/yaml/yaml-test-suite, branch `data`, MIT) into
one committed file, fixtures/yaml-test-suite/cases.jsonl, that the deployment scanner's YAML
tests read without network.

    git clone -b data https://github.com/yaml/yaml-test-suite /tmp/yts
    python3 scripts/yaml_test_suite.py /tmp/yts [COMMIT]

One line per case: {"id", "name", "yaml", "error": bool, "json": [documents] or null}. `json` is
the suite's in.json (a stream of JSON values, one per document) where the suite gives one.
"""
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def json_stream(text):
    dec, out, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        v, i = dec.raw_decode(text, i)
        out.append(v)


def main():
    root = Path(sys.argv[1])
    commit = sys.argv[2] if len(sys.argv) > 2 else "unknown"
    cases = []
    for d in sorted(p.parent for p in root.rglob("in.yaml")):
        rel = d.relative_to(root).as_posix()
        name_file = d / "===" if (d / "===").exists() else d.parent / "==="
        js = d / "in.json"
        cases.append({
            "id": rel,
            "name": name_file.read_text(encoding="utf-8").strip(),
            "yaml": (d / "in.yaml").read_text(encoding="utf-8"),
            "error": (d / "error").exists(),
            "json": json_stream(js.read_text(encoding="utf-8")) if js.exists() else None,
        })
    out = REPO / "fixtures" / "yaml-test-suite"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "cases.jsonl", "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    (out / "SOURCE").write_text(
        f"yaml-test-suite, branch data, commit {commit}\nhttps://github.com/yaml/yaml-test-suite\n"
        "MIT License, Copyright (c) 2016-2020 Ingy döt Net\n"
        f"{len(cases)} cases, {sum(c['error'] for c in cases)} of them invalid YAML\n",
        encoding="utf-8")
    print(f"{len(cases)} cases -> {out / 'cases.jsonl'}")


if __name__ == "__main__":
    main()
