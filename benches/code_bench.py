#!/usr/bin/env python3
"""Code scanning: mlsec vs bandit, on detection (the labelled corpus) and on speed (a large tree).

Detection: `fixtures/code` labels every expected finding with `# expect: RULE` on its line.
bandit's tests are mapped to the rules they correspond to (below); a bandit result on a labelled
line with a matching rule is a hit, on any other line a false alarm. Results of unmapped bandit
tests (asserts, subprocess, ...) are not counted either way. bandit does not read notebooks.

Speed: a tree of --copies copies of the corpus' Python files plus the interpreter's standard
library (about 2,000 real-world files), scanned by `mlsec scan --only code` and `bandit -r`.

Deployment: the labelled `fixtures/deploy` (per file and rule) against checkov's Dockerfile and
Kubernetes checks (mapped below), and both timed on the Dockerfiles and manifests of the same tree.

Usage: python3 benches/code_bench.py [--copies 300] [--mlsec target/release/mlsec]
bandit and checkov are installed from PyPI into /tmp/mlsec-bench-venv. Nothing here asserts on time.
"""

import argparse
import json
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "fixtures" / "code"

# bandit test id -> mlsec rule
BANDIT_MAP = {
    "B614": "PY001",  # pytorch_load
    "B301": "PY002",  # pickle / dill / shelve / jsonpickle calls
    "B506": "PY004",  # yaml_load
    "B615": "PY011",  # huggingface_unsafe_download
    "B307": "PY020",  # eval
    "B102": "PY020",  # exec_used
    "B104": "PY050",  # hardcoded_bind_all_interfaces
    "B501": "PY060",  # request_with_no_cert_validation
    "B323": "PY060",  # unverified_context
}


# checkov Dockerfile check id -> mlsec rule
CHECKOV_MAP = {
    "CKV_DOCKER_3": "DF001",  # a user is created / USER set
    "CKV_DOCKER_8": "DF001",  # the last USER is not root
    "CKV_DOCKER_7": "DF002",  # base image uses latest / no tag
    "CKV_DOCKER_4": "DF004",  # ADD instead of COPY
}
# checkov Kubernetes check id -> mlsec rule
CHECKOV_K8S_MAP = {
    "CKV_K8S_16": "K8S001",  # privileged
    "CKV_K8S_20": "K8S002",  # allowPrivilegeEscalation
    "CKV_K8S_28": "K8S003",  # NET_RAW not dropped
    "CKV_K8S_37": "K8S003",  # capabilities not minimised
    "CKV_K8S_39": "K8S003",  # SYS_ADMIN
    "CKV_K8S_23": "K8S004",  # root containers
    "CKV_K8S_22": "K8S005",  # read-only root filesystem
    "CKV_K8S_27": "K8S006",  # docker socket (hostPath)
    "CKV_K8S_17": "K8S007",  # hostPID
    "CKV_K8S_18": "K8S007",  # hostIPC
    "CKV_K8S_19": "K8S007",  # hostNetwork
    "CKV_K8S_13": "K8S008",  # memory limits
    "CKV_K8S_31": "K8S009",  # seccomp
    "CKV_K8S_32": "K8S009",  # seccomp (annotation)
    "CKV_K8S_14": "K8S010",  # image tag latest / missing
}
DEPLOY = REPO / "fixtures" / "deploy"


def deploy_expectations():
    out = set()
    for p in sorted(DEPLOY.rglob("*")):
        if not p.is_file():
            continue
        lines = p.read_text().splitlines()
        for i, l in enumerate(lines):
            if l.strip().startswith("# expect-next:"):
                j = next(k for k in range(i + 1, len(lines)) if lines[k].strip() and not lines[k].strip().startswith("#"))
                for rule in l.split("# expect-next:")[1].split():
                    out.add((str(p.relative_to(DEPLOY)), rule))
    return out


def expectations():
    out = set()
    for p in sorted(CORPUS.iterdir()):
        if p.suffix == ".py":
            sources = [(None, p.read_text())]
        elif p.suffix == ".ipynb":
            nb = json.loads(p.read_text())
            sources = [(i, "".join(c["source"])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
        else:
            continue
        for cell, src in sources:
            for n, line in enumerate(src.splitlines(), 1):
                if "# expect:" in line:
                    for rule in line.split("# expect:")[1].split():
                        out.add((p.name, cell, n, rule))
    return out


def score(label, expected, found):
    tp = len(expected & found)
    recall = tp / len(expected) if expected else 0
    precision = tp / len(found) if found else 0
    print(f"  {label:<8} found {len(found):3}  hits {tp:3}/{len(expected)}  recall {recall:.2f}  precision {precision:.2f}")
    return recall, precision


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=300)
    ap.add_argument("--mlsec", type=Path, default=REPO / "target" / "release" / "mlsec")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if not args.mlsec.exists():
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "mlsec"], cwd=REPO, check=True)
    venv = Path(tempfile.gettempdir()) / "mlsec-bench-venv"
    bandit = venv / "bin" / "bandit"
    if not bandit.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "bandit", "checkov"], check=True)
    version = subprocess.run([str(bandit), "--version"], capture_output=True, text=True).stdout.split("\n")[0]

    expected = expectations()
    print(f"detection on {CORPUS.relative_to(REPO)} ({len(expected)} labelled findings)")
    r = subprocess.run([str(args.mlsec), "scan", str(CORPUS), "--only", "code", "-f", "json", "-q", "--fail-on", "never"], capture_output=True, text=True, check=True)
    mlsec_found = {(Path(f["location"]["path"]).name, f["location"].get("cell"), f["location"].get("line"), f["rule_id"]) for f in json.loads(r.stdout)["findings"]}
    score("mlsec", expected, mlsec_found)
    r = subprocess.run([str(bandit), "-r", str(CORPUS), "-f", "json", "-q"], capture_output=True, text=True)
    bandit_found = set()
    for res in json.loads(r.stdout)["results"]:
        rule = BANDIT_MAP.get(res["test_id"])
        if rule:
            bandit_found.add((Path(res["filename"]).name, None, res["line_number"], rule))
    score(f"bandit", expected, bandit_found)
    print(f"  ({version}; its tests mapped: {', '.join(f'{k}->{v}' for k, v in BANDIT_MAP.items())})")

    checkov = venv / "bin" / "checkov"
    if checkov.exists():
        # Per file and rule (checkov reports Dockerfile checks on resources, not always on lines).
        expected_d = deploy_expectations()
        print(f"\ndetection on {DEPLOY.relative_to(REPO)} ({len(expected_d)} labelled findings, per file and rule)")
        r = subprocess.run([str(args.mlsec), "scan", str(DEPLOY), "--only", "deploy", "-f", "json", "-q", "--fail-on", "never"], capture_output=True, text=True, check=True)
        mlsec_deploy = {(str(Path(f["location"]["path"]).relative_to(DEPLOY)), f["rule_id"]) for f in json.loads(r.stdout)["findings"]}
        score("mlsec", expected_d, mlsec_deploy)
        r = subprocess.run([str(checkov), "-d", str(DEPLOY), "--framework", "dockerfile", "kubernetes", "-o", "json", "--quiet", "--compact"], capture_output=True, text=True)
        data = json.loads(r.stdout or "{}")
        reports = data if isinstance(data, list) else [data]
        found = set()
        for rep in reports:
            for res in rep.get("results", {}).get("failed_checks", []):
                rule = CHECKOV_MAP.get(res["check_id"]) or CHECKOV_K8S_MAP.get(res["check_id"])
                if rule:
                    found.add((str(Path(res["file_abs_path"]).relative_to(DEPLOY)), rule))
        score("checkov", expected_d, found)
        version_c = subprocess.run([str(checkov), "--version"], capture_output=True, text=True).stdout.strip()
        print(f"  (checkov {version_c}; checks mapped: {', '.join(f'{k}->{v}' for k, v in {**CHECKOV_MAP, **CHECKOV_K8S_MAP}.items())})")
        for family in ("DF", "K8S"):
            e = {x for x in expected_d if x[1].startswith(family)}
            print(f"  {family} rules only:")
            m = {x for x in mlsec_deploy if x[1].startswith(family)}
            c = {x for x in found if x[1].startswith(family)}
            score("mlsec", e, m)
            score("checkov", e, c)

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        shutil.copytree(stdlib, tree / "stdlib", ignore=shutil.ignore_patterns("site-packages", "test", "tests", "__pycache__", "idlelib", "lib2to3"))
        for i in range(args.copies):
            d = tree / "projects" / f"p{i:04d}"
            d.mkdir(parents=True)
            for p in CORPUS.glob("*.py"):
                shutil.copy(p, d / p.name)
            for p in DEPLOY.rglob("*"):
                if p.is_file():
                    rel = p.relative_to(DEPLOY)
                    if "Dockerfile" in p.name:
                        name = p.parent.name + "-" + p.name if p.name.endswith("Dockerfile") else p.parent.name + ".Dockerfile"
                        shutil.copy(p, d / name)
                    else:
                        (d / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(p, d / rel)
        files = [p for p in tree.rglob("*.py")]
        size = sum(p.stat().st_size for p in files)
        print(f"\nspeed on {len(files)} Python files ({size / 1e6:.1f} MB): the standard library + {args.copies} copies of the corpus")

        def best(cmd):
            t = None
            for _ in range(args.repeat):
                s = time.perf_counter()
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                d = time.perf_counter() - s
                t = d if t is None else min(t, d)
            return t

        t_mlsec = best([str(args.mlsec), "scan", str(tree), "--only", "code", "-q", "-f", "json"])
        t_bandit = best([str(bandit), "-r", str(tree), "-q", "-f", "json", "-o", "/dev/null"]) if args.repeat else None
        print(f"  mlsec   {t_mlsec:7.2f} s  {len(files) / t_mlsec:8.0f} files/s  {size / 1e6 / t_mlsec:6.1f} MB/s")
        print(f"  bandit  {t_bandit:7.2f} s  {len(files) / t_bandit:8.0f} files/s  {size / 1e6 / t_bandit:6.1f} MB/s")
        print(f"  mlsec is {t_bandit / t_mlsec:.0f}x faster than bandit")
        dockerfiles = [p for p in tree.rglob("*") if p.is_file() and "Dockerfile" in p.name]
        manifests = [p for p in tree.rglob("*") if p.suffix in (".yaml", ".yml")]
        if checkov.exists() and dockerfiles:
            n = len(dockerfiles) + len(manifests)
            mb = sum(p.stat().st_size for p in dockerfiles + manifests) / 1e6
            t_m = best([str(args.mlsec), "scan", str(tree), "--only", "deploy", "-q", "-f", "json"])
            t_c = best([str(checkov), "-d", str(tree), "--framework", "dockerfile", "kubernetes", "-o", "json", "--quiet", "--compact"])
            print(f"\nspeed on {len(dockerfiles)} Dockerfiles and {len(manifests)} YAML files ({mb:.1f} MB), checks and cross-file rules included")
            print(f"  mlsec   {t_m:7.2f} s  {n / t_m:8.0f} files/s")
            print(f"  checkov {t_c:7.2f} s  {n / t_c:8.0f} files/s")
            print(f"  mlsec is {t_c / t_m:.0f}x faster than checkov")


if __name__ == "__main__":
    main()
