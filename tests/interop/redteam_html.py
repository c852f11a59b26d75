#!/usr/bin/env python3
"""The red-team HTML reports in a real browser: Debian's Chromium, headless.

mlsec attacks the digits fixture (its data copied under a hostile file name) and audits the
overfit forest's membership. Chromium then:
  * dumps each page's DOM: the accuracy plot with one line per attack, the result table, the
    weakest samples drawn as pixel images, the ROC plot with one curve per membership attack,
    no element injected by the hostile name, and the titles intact;
  * takes screenshots, decoded by drift_html.py's PNG reader: the pages are not blank and the
    plot lines' colours appear (the SVG rendered).

Usage: python3 tests/interop/redteam_html.py --mlsec target/debug/mlsec [--chromium /usr/bin/chromium]
Exits non-zero with the reason on any failed check.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_html import near, png_pixels  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent
FX = REPO / "fixtures" / "redteam"
BLUE = (0x2B, 0x6C, 0xB0)  # html::COLOURS[0]
ORANGE = (0xDD, 0x6B, 0x20)  # html::COLOURS[1]
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def render(chromium, d, page, name):
    url = page.as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={d / ('profile-' + name)}", "--window-size=1200,2400"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    shot = d / f"{name}.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    if not shot.exists():
        sys.exit(f"chromium wrote no screenshot of {name}")
    w, h, rows = png_pixels(shot)
    pixels = [p for row in rows for p in row]
    return dom.stdout, pixels, (w, h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    checks = {}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        data = d / f"{HOSTILE}.csv"
        shutil.copy(FX / "digits_test.csv", data)
        page = d / "classifier.html"
        out = subprocess.run([args.mlsec, "redteam", "classifier", str(FX / "digits_mlp.onnx"), "--data", str(data),
                              "--image", "8x8", "--attacks", "noise,square,hop-skip-jump", "--budget", "0.05,0.1,0.2",
                              "--queries", "300", "--max-samples", "50", "--format", "html", "-o", str(page)],
                             capture_output=True, text=True)
        if out.returncode != 1:
            sys.exit(f"mlsec redteam classifier exited {out.returncode} (expected 1: fragile): {out.stderr}")
        html, pixels, (w, h) = render(args.chromium, d, page, "classifier")
        white = sum(1 for p in pixels if min(p) > 245)
        checks.update({
            "accuracy plot with one line per attack": html.count('class="series"') == 3,
            "a result row per attack and budget": html.split('id="results"')[1].split("</table>")[0].count("<tr>") == 1 + 9,
            "weakest samples drawn as pixels (clean and adversarial)": html.count('class="pixels"') >= 2,
            "the hostile file name made no element": "<img" not in html,
            "the hostile file name is shown as text": "&lt;img src=x" in html,
            "the title is intact": "pwned" not in html.split("</title>")[0],
            f"classifier screenshot {w}x{h} is not blank": len(pixels) - white > 20_000,
            "the first attack's line rendered": sum(1 for p in pixels if near(p, BLUE)) > 100,
            "the second attack's line rendered": sum(1 for p in pixels if near(p, ORANGE)) > 100,
        })
        page = d / "membership.html"
        out = subprocess.run([args.mlsec, "redteam", "membership", str(FX / "member_overfit.onnx"),
                              "--train", str(FX / "member_train.csv"), "--holdout", str(FX / "member_holdout.csv"),
                              "--population", str(FX / "member_population.csv"),
                              "--reference", str(FX / "member_ref_0.onnx"), "--reference", str(FX / "member_ref_1.onnx"),
                              "--format", "html", "-o", str(page)], capture_output=True, text=True)
        if out.returncode != 1:
            sys.exit(f"mlsec redteam membership exited {out.returncode} (expected 1: leaks): {out.stderr}")
        html, pixels, (w, h) = render(args.chromium, d, page, "membership")
        white = sum(1 for p in pixels if min(p) > 245)
        checks.update({
            "ROC plot with one curve per membership attack": html.count('class="series"') == 4,
            "the verdict card says it leaks": 'class="card bad" id="verdict"' in html,
            "ten exposed records listed": html.split('id="exposed"')[1].split("</table>")[0].count("<tr>") == 11,
            f"membership screenshot {w}x{h} is not blank": len(pixels) - white > 20_000,
            "the ROC curves rendered": sum(1 for p in pixels if near(p, BLUE) or near(p, ORANGE)) > 100,
        })
    failed = [k for k, ok in checks.items() if not ok]
    for k, ok in checks.items():
        print(("ok   " if ok else "FAIL ") + k)
    if failed:
        sys.exit(f"{len(failed)} check(s) failed")


if __name__ == "__main__":
    main()
