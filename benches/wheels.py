"""Pinned wheels from PyPI, downloaded without dependencies and unpacked, for the sweeps
(`benign_sweep.py`, `real_code_sweep.py`). Nothing is installed or run."""
import subprocess
import sys
import zipfile
from pathlib import Path


def fetch(root: Path, wheels: list, keep) -> Path:
    """Downloads `wheels` into ROOT/wheels and unpacks the members for which `keep(name)` is true
    into ROOT/tree/<wheel>; returns the tree. Both are reused when present."""
    store = root / "wheels"
    store.mkdir(parents=True, exist_ok=True)
    have = {p.name.split("-")[0].lower().replace("_", "-") for p in store.glob("*.whl")}
    want = [w for w in wheels if w.split("==")[0].lower().replace("_", "-") not in have]
    if want:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.11", "--platform", "manylinux2014_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "--platform", "any", "-d", str(store), *want],
                       check=True)
    tree = root / "tree"
    if not tree.exists():
        for whl in sorted(store.glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                for info in z.infolist():
                    if keep(info.filename):
                        z.extract(info, tree / whl.stem)
    return tree
