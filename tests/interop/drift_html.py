#!/usr/bin/env python3
"""The drift HTML report in a real browser: Debian's Chromium, headless.

mlsec writes a report for data with known drift and a hostile column name. Chromium then:
  * dumps the DOM it built: one <svg> plot per column with values, the drift table with a row per
    column, no element injected by the hostile name, and the page title intact;
  * takes a screenshot, decoded here (PNG, zlib, no dependencies): the page is not blank, both
    series' colours appear in the plots (the bars rendered), and the red "drift" marker appears.

Usage: python3 tests/interop/drift_html.py --mlsec target/debug/mlsec [--chromium /usr/bin/chromium]
Exits non-zero with the reason on any failed check.
"""

import argparse
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REFERENCE = (0x2B, 0x6C, 0xB0)  # html::REFERENCE_COLOUR
CURRENT = (0xDD, 0x6B, 0x20)  # html::CURRENT_COLOUR
DRIFT_RED = (0xC5, 0x30, 0x30)
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


def write_data(d):
    rng = random.Random(5)
    header = ["amount", "age", "country", HOSTILE.replace('"', '""')]
    ref = [",".join(["amount", "age", "country", f'"{header[3]}"'])]
    cur = list(ref)
    for i in range(3000):
        ref.append(f"{rng.gauss(50, 10):.3f},{rng.randint(18, 80)},{rng.choice(['de', 'fr', 'it'])},{rng.random():.4f}")
    for i in range(1500):
        age = "" if i % 4 == 0 else str(rng.randint(18, 80))
        cur.append(f"{rng.gauss(58, 10):.3f},{age},{rng.choice(['de', 'fr', 'it', 'xx'])},{rng.random():.4f}")
    (d / "reference.csv").write_text("\n".join(ref) + "\n")
    (d / "current.csv").write_text("\n".join(cur) + "\n")


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit, non-interlaced RGB or RGBA PNG."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("screenshot is not a PNG")
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (2, 6) or interlace:
                sys.exit(f"unexpected PNG layout: depth {depth}, colour type {colour}, interlace {interlace}")
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 0xFF
            elif f == 2:
                line[x] = (line[x] + b) & 0xFF
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def near(p, colour, tol=12):
    return all(abs(a - b) <= tol for a, b in zip(p, colour))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlsec", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_data(d)
        out = subprocess.run([args.mlsec, "drift", "--format", "html", "-o", str(d / "report.html"),
                              str(d / "reference.csv"), str(d / "current.csv")], capture_output=True, text=True)
        if out.returncode != 1:
            sys.exit(f"mlsec drift exited {out.returncode} (expected 1: drift): {out.stderr}")
        url = (d / "report.html").as_uri()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                 f"--user-data-dir={d / 'profile'}", "--window-size=1200,2600"]
        dom = subprocess.run([args.chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
        html = dom.stdout
        checks = {
            "four plots (one per column with values)": html.count("<svg") == 4,
            "a drift table row per column": html.count("<tr>") == 1 + 4,
            "the hostile name made no element": "<img" not in html,
            "the hostile name is shown as text": "&lt;img src=x" in html,
            "the title is intact": "<title>mlsec drift:" in html and "pwned" not in html.split("</title>")[0],
        }
        subprocess.run([args.chromium, *flags, f"--screenshot={d / 'shot.png'}", url],
                       capture_output=True, timeout=120)
        if not (d / "shot.png").exists():
            sys.exit("chromium wrote no screenshot")
        w, h, rows = png_pixels(d / "shot.png")
        pixels = [p for row in rows for p in row]
        white = sum(1 for p in pixels if p[0] > 245 and p[1] > 245 and p[2] > 245)
        ref = sum(1 for p in pixels if near(p, REFERENCE))
        cur = sum(1 for p in pixels if near(p, CURRENT))
        red = sum(1 for p in pixels if near(p, DRIFT_RED, 30))
        checks.update({
            f"screenshot {w}x{h} is not blank ({len(pixels) - white} non-white pixels)": len(pixels) - white > 20_000,
            f"reference bars rendered ({ref} pixels)": ref > 2_000,
            f"current bars rendered ({cur} pixels)": cur > 2_000,
            f"drift marked in red ({red} pixels)": red > 50,
        })
        failed = [k for k, ok in checks.items() if not ok]
        for k, ok in checks.items():
            print(("ok   " if ok else "FAIL ") + k)
        if failed:
            sys.exit(f"{len(failed)} check(s) failed")


if __name__ == "__main__":
    main()
