#!/usr/bin/env python3
"""Writes fixtures/drift/scipy-vectors.json: inputs and scipy's answers for mlsec-drift's statistics.

The Rust tests (crates/mlsec-drift/tests/it/scipy.rs) recompute every case and require agreement
to 1e-6 (absolute on statistics and p-values; relative for tiny p-values). Cases cover both of
ks_2samp's methods (exact below 10,000 per side, asymptotic above), equal and unequal sizes,
ties, shifted and unshifted samples, kstwo.sf over its regions, chi2_contingency with and without
Yates' correction, wasserstein_distance and jensenshannon.

Regenerate (pinned versions):
    python3 -m venv /tmp/mlsec-scipy-venv
    /tmp/mlsec-scipy-venv/bin/pip install scipy==1.16.3 numpy==2.3.5
    /tmp/mlsec-scipy-venv/bin/python scripts/drift_scipy_vectors.py
"""

import json
import pathlib

import numpy as np
import scipy
from scipy import stats
from scipy.spatial import distance

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "drift" / "scipy-vectors.json"


def r(x, digits=6):
    # Samples are rounded so the JSON holds them exactly and ties occur naturally.
    return [round(float(v), digits) for v in x]


def main():
    rng = np.random.default_rng(20261205)
    ks = []
    shapes = [
        (20, 20, 0.0, 1.0, 6),
        (30, 45, 0.5, 1.0, 6),
        (100, 100, 0.0, 1.0, 1),  # heavy ties
        (200, 350, 0.2, 1.0, 6),
        (1000, 64, 0.0, 1.5, 6),
        (5000, 5000, 0.03, 1.0, 6),
        (2000, 9999, 0.0, 1.0, 2),
        (12000, 3000, 0.05, 1.0, 4),  # asymptotic (kstwo.sf with n = 2400)
        (11000, 10500, 0.0, 1.0, 4),  # asymptotic, no shift
        (15000, 150, 0.4, 1.0, 4),  # asymptotic, n = 149
        (12000, 120, 0.3, 1.0, 4),  # asymptotic, n = 119 (the n <= 140 branch)
    ]
    for n1, n2, shift, scale, digits in shapes:
        a = r(rng.normal(0, 1, n1), digits)
        b = r(rng.normal(shift, scale, n2), digits)
        res = stats.ks_2samp(a, b)
        ks.append({"a": a, "b": b, "statistic": float(res.statistic), "p_value": float(res.pvalue),
                   "wasserstein": float(stats.wasserstein_distance(a, b))})

    kstwo = []
    for n in [5, 50, 140, 141, 1000, 6000, 99999, 100001, 250000]:
        for x in [0.6 / n, 1.5 / n, 0.01, 0.02, 0.05, 0.1, 0.3, 0.6]:
            if x >= 1:
                continue
            kstwo.append({"n": n, "x": x, "sf": float(stats.kstwo.sf(x, n))})

    chi2 = []
    tables = [
        ([10, 20], [12, 18]),
        ([100, 5], [80, 25]),
        ([50, 40, 10], [45, 45, 10]),
        ([500, 300, 150, 50], [400, 350, 200, 50]),
        ([1000, 1000, 0, 5], [990, 1010, 30, 5]),
        ([3, 0, 7, 11, 2], [1, 4, 9, 10, 0]),
    ]
    for ref, cur in tables:
        cols = [i for i in range(len(ref)) if ref[i] + cur[i] > 0]
        obs = np.array([[ref[i] for i in cols], [cur[i] for i in cols]])
        res = stats.chi2_contingency(obs)
        chi2.append({"reference": ref, "current": cur, "statistic": float(res.statistic),
                     "p_value": float(res.pvalue), "dof": int(res.dof)})

    js = []
    for p, q in [([1, 2, 3], [3, 2, 1]), ([0.5, 0.5, 0], [0, 0.1, 0.9]), ([10, 0, 5, 1], [9, 1, 5, 2])]:
        js.append({"p": p, "q": q, "distance": float(distance.jensenshannon(p, q))})

    chi2_sf = []
    for x, dof in [(0.5, 1), (3.84, 1), (10.0, 3), (25.0, 10), (120.0, 99), (400.0, 300), (1e-3, 5)]:
        chi2_sf.append({"x": x, "dof": dof, "sf": float(stats.chi2.sf(x, dof))})

    OUT.parent.mkdir(parents=True, exist_ok=True)
    doc = {"generator": "scripts/drift_scipy_vectors.py", "scipy": scipy.__version__, "numpy": np.__version__,
           "ks_2samp": ks, "kstwo_sf": kstwo, "chi2_contingency": chi2, "jensenshannon": js, "chi2_sf": chi2_sf}
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
