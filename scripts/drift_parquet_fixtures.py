#!/usr/bin/env python3
"""Writes fixtures/drift/parquet/: Parquet files made by pyarrow and polars, with CSV twins.

The Rust tests (crates/mlsec-drift/tests/it/parquet.rs) read each file and check it against what
this script wrote: every logical type the reader maps (integers, floats with NaN and null,
strings, booleans, dates, timestamps, decimals, a list column), each codec real writers use
(snappy, zstd, gzip, lz4, none), and a shifted twin so a drift run on Parquet can be compared
with the same run on the CSV copies.

Regenerate (pinned versions):
    python3 -m venv /tmp/mlsec-parquet-venv
    /tmp/mlsec-parquet-venv/bin/pip install pyarrow==22.0.0 pandas==2.2.3 numpy==2.3.5 polars==1.35.2
    /tmp/mlsec-parquet-venv/bin/python scripts/drift_parquet_fixtures.py
"""

import datetime
import decimal
import json
import pathlib

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "drift" / "parquet"


def mixed(rows=200):
    """Every type the reader maps; the expected counts go to expected.json."""
    rng = np.random.default_rng(3)
    ints = pa.array(rng.integers(-50, 50, rows), type=pa.int64())
    floats = rng.normal(0, 1, rows).round(6)
    floats[::10] = np.nan  # 20 NaN (missing in pandas terms, non-finite numbers here)
    float_mask = np.zeros(rows, dtype=bool)
    float_mask[5::20] = True  # 10 nulls
    strings = [None if i % 25 == 0 else ["red", "green", "blue"][i % 3] for i in range(rows)]
    table = pa.table(
        {
            "i64": ints,
            "i8": pa.array(rng.integers(-100, 100, rows), type=pa.int8()),
            "u32": pa.array(rng.integers(0, 1000, rows), type=pa.uint32()),
            "f32": pa.array(floats.astype(np.float32), type=pa.float32(), mask=float_mask),
            "f64": pa.array(floats, type=pa.float64(), mask=float_mask),
            "s": pa.array(strings, type=pa.string()),
            "b": pa.array([i % 4 == 0 for i in range(rows)], type=pa.bool_()),
            "d": pa.array([datetime.date(2026, 1, 1) + datetime.timedelta(days=i) for i in range(rows)]),
            "ts": pa.array(
                [datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=i) for i in range(rows)],
                type=pa.timestamp("ms"),
            ),
            "dec": pa.array([decimal.Decimal(f"{i}.25") for i in range(rows)], type=pa.decimal128(9, 2)),
            "tags": pa.array([[f"t{i % 5}"] * (i % 3) for i in range(rows)], type=pa.list_(pa.string())),
        }
    )
    expected = {
        "rows": rows,
        "columns": [
            "i64", "i8", "u32", "f32", "f64", "s", "b", "d", "ts", "dec", "tags",
        ],
        # column -> [missing, numeric (finite or not), non_finite, text]
        "counts": {
            "i64": [0, rows, 0, 0],
            "f64": [10, rows - 10, int(np.isnan(floats[~float_mask]).sum()), 0],
            "s": [sum(s is None for s in strings), 0, 0, sum(s is not None for s in strings)],
            "b": [0, 0, 0, rows],
            "d": [0, rows, 0, 0],
            "dec": [0, rows, 0, 0],
            "tags": [0, 0, 0, rows],
        },
        "dec_min": 0.25,
        "dec_max": rows - 1 + 0.25,
        "d_min": (datetime.date(2026, 1, 1) - datetime.date(1970, 1, 1)).days,
        "ts_min": int(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp() * 1000),
    }
    return table, expected


def drift_pair(rows=2000):
    rng = np.random.default_rng(5)
    ref = pd.DataFrame({
        "x": rng.normal(0, 1, rows).round(5),
        "y": rng.normal(5, 2, rows).round(5),
        "c": rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2]),
    })
    cur = pd.DataFrame({
        "x": (rng.normal(0, 1, rows) + 0.5).round(5),
        "y": rng.normal(5, 2, rows).round(5),
        "c": rng.choice(["a", "b", "c", "d"], rows, p=[0.45, 0.3, 0.15, 0.1]),
    })
    return ref, cur


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    table, expected = mixed()
    for codec in ["snappy", "zstd", "gzip", "lz4", "none"]:
        pq.write_table(table, OUT / f"mixed.{codec}.parquet", compression=codec, row_group_size=64)
    # polars writes zstd by default, with its own page layout.
    pl.from_arrow(table.drop(["tags"])).write_parquet(OUT / "mixed.polars.parquet")
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    ref, cur = drift_pair()
    ref.to_parquet(OUT / "reference.parquet", index=False)
    cur.to_parquet(OUT / "current.parquet", index=False)
    ref.to_csv(OUT / "reference.csv", index=False)
    cur.to_csv(OUT / "current.csv", index=False)
    versions = {"pyarrow": pa.__version__, "pandas": pd.__version__, "polars": pl.__version__}
    print(f"wrote {OUT} with {versions}")


if __name__ == "__main__":
    main()
