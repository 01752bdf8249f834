"""bench/ingest.py in its quick mode, on tiny tables: every case runs both sides, the printed table is well
formed, and both sides stored the same rows (and, for incremental SQL, the same watermark) — checked by the
bench itself, cell by cell, and read here from its JSON. Not a timing test: no figure is held to an aim.
PostgreSQL's cases run where ``TIDAL_TEST_POSTGRES_URL`` is set (CI), and say they are skipped elsewhere."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def ingest() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("ingest")
    finally:
        sys.path.remove(str(BENCH))


def test_quick_run_prints_a_table_and_both_sides_store_the_same_rows(
        ingest: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDAL_BENCH_POSTGRES_URL", raising=False)
    out = tmp_path / "ingest.json"
    assert ingest.main(["--quick", "--rows", "400", "--api-rows", "1200", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = {r["case"]: r for r in json.loads(out.read_text())["results"]}
    assert list(results) == [c.name for c in ingest.CASES]
    postgres = bool(os.environ.get("TIDAL_TEST_POSTGRES_URL"))
    for name, r in results.items():
        if name.startswith("postgres") and not postgres:
            assert r["skipped"] == "no PostgreSQL: set TIDAL_BENCH_POSTGRES_URL"
            assert re.search(rf"^{name} +skipped: no PostgreSQL", printed, re.M)
            continue
        assert r["same_rows"] is True, (name, r.get("differs"))
        want = {"api": 1200, "stream": 1200}.get(name, 40 if name.endswith("-incr") else 400)
        assert r["rows"] == want, name
        assert set(r["rows_per_s"]) == {"tidal", "pandas"} and all(v > 0 for v in r["rows_per_s"].values())
        assert r["ratio"] == pytest.approx(r["rows_per_s"]["tidal"] / r["rows_per_s"]["pandas"])
        assert r["cpu_ratio"] == pytest.approx(r["cpu_seconds"]["pandas"] / r["cpu_seconds"]["tidal"])
        # one line per case: name, rows, two rates, the ratio, and "yes" for the same rows
        line = re.compile(rf"^{re.escape(name)} +{want:,} +[\d,]+ +[\d,]+ +\d+\.\d\dx +\d+\.\d\dx  yes$", re.M)
        assert line.search(printed), (name, printed)
        if name.endswith("-incr"):  # the watermark both kept: the last new row's time
            assert r["watermark"].replace("T", " ").startswith("2026-01-01 00:07:19")
    assert printed.splitlines()[-1] == f"wrote {out}"
    assert re.search(r"^case +rows +tidal rows/s +pandas rows/s +tidal/pandas +by CPU +same rows$", printed, re.M)


def test_the_check_finds_a_changed_cell_a_lost_row_and_another_watermark(ingest: Any) -> None:
    rows = ingest.make_rows(50)
    assert ingest.same_rows(rows, rows.sample(frac=1, random_state=1)) is None  # the order may differ
    strings = rows.assign(sensor=rows["sensor"].astype(object))
    assert ingest.same_rows(rows, strings) is None  # an object column of str is the same data
    changed = rows.copy()
    changed.loc[7, "value"] = 99.0
    assert ingest.same_rows(rows, changed).startswith("column 'value':")
    assert ingest.same_rows(rows, rows.iloc[:-1]) == "50 rows against 49"
    assert ingest.same_rows(rows, rows.drop(columns="note")).startswith("columns ")
    nulls = rows.assign(count=rows["count"].fillna(0))
    assert ingest.same_rows(rows, nulls).startswith("column 'count':")


def test_a_case_whose_sides_differ_is_reported_and_fails_the_run(
        ingest: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The check is not assumed: a baseline that loses a row, or keeps another watermark, is a NO in the table
    and exit status 1."""
    original = ingest._parquet_out

    def loses_a_row(folder: Path, df: pd.DataFrame, name: str = "rows.parquet") -> Any:
        return original(folder, df.iloc[1:], name)

    monkeypatch.setattr(ingest, "_parquet_out", loses_a_row)
    out = tmp_path / "ingest.json"
    assert ingest.main(["--quick", "--rows", "300", "--only", "parquet", "--out", str(out)]) == 1
    result = json.loads(out.read_text())["results"][0]
    assert result["same_rows"] is False and result["differs"] == "300 rows against 299"
    assert "NO (300 rows against 299)" in capsys.readouterr().out
