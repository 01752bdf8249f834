"""The report a version gets over a window of logged predictions, its JSON, its summary and its HTML."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tidal.core.charts import HELPER, LIBRARY, STYLE, asset, read_specs
from tidal.core.entities import Prediction, Report
from tidal.monitor import build_report, frame_of, render_html, summarize
from tidal.spec.model import MonitorSpec

from ._synthetic import COLUMNS, SHIFTED, START, classifier_rows, predictions_for, toy_version

SPEC = MonitorSpec()


def _report(rows: int = 3_000, *, shift: float = 0.0, flip: float = 0.0, seed: int = 5, at: int = 0,
            spec: MonitorSpec = SPEC) -> Report:
    mv = toy_version()
    predictions = predictions_for(classifier_rows(rows, seed, shift=shift), flip=flip, seed=seed)
    return build_report(mv, predictions, spec, metrics=["accuracy", "roc_auc"], report_id=f"r{seed}-{at}",
                        now=START + timedelta(hours=at))


def test_an_unchanged_window_raises_no_alert() -> None:
    report = _report()
    assert report.drift_share == 0.0 and not report.drifted
    assert summarize(report) == [] and report.alerts == []
    body = report.body
    assert body["performance"]["status"] == "ok" and body["performance"]["labelled"] > 1_000
    assert not body["prediction_drift"]["drifted"]
    assert [c["column"] for c in body["drift"]["columns"]] == [*COLUMNS, "colour", "member"]
    assert body["window"]["rows"] == 3_000 and body["window"]["versions"] == {"toy:1": 3_000}
    assert body["window"]["first"] == START.isoformat()


def test_a_shifted_and_worse_window_raises_every_alert() -> None:
    spec = MonitorSpec.model_validate({"drift": {"share": 0.2}})
    report = _report(shift=0.3, flip=0.3, spec=spec)
    assert report.drifted and report.drift_share == 5 / 22
    lines = summarize(report)
    assert [a["kind"] for a in report.body["alerts"]] == ["data_drift", "performance"]
    assert len(lines) == 2 and lines == report.alerts
    assert lines[0].startswith("data drift: 5 of 22 features drifted") and all(c in lines[0] for c in SHIFTED)
    assert lines[1].startswith("performance: accuracy")
    # prediction drift is a note: reported, shown, but no alert (see the report module's docstring)
    assert [n["kind"] for n in report.body["notes"]] == ["prediction_drift"]
    noted = summarize(report, notes=True)
    assert noted[:2] == lines and noted[2].startswith("note: prediction drift:") and "score" in noted[2]


def test_features_drifting_below_the_share_are_a_note() -> None:
    report = _report(shift=0.3)  # 5 of 22 < 50%
    assert not report.drifted and report.alerts == []
    assert [n["kind"] for n in report.body["notes"]] == ["prediction_drift", "feature_drift"]
    assert "5 of 22 features drifted, under the dataset threshold of 50%" in summarize(report, notes=True)[1]


def test_the_body_is_json_and_holds_no_raw_rows() -> None:
    report = _report(shift=0.3)
    text = json.dumps(report.body, allow_nan=False)
    assert json.loads(text) == report.body
    json.dumps(report.window, allow_nan=False)
    assert len(text) < 40_000  # summaries only: 3,000 rows x 22 columns would be ~1 MB
    column = report.body["drift"]["columns"][0]
    for key in ("test", "statistic", "threshold", "drifted", "n_reference", "n_current",
                "null_share_reference", "null_share_current", "plot", "why"):
        assert key in column
    assert sum(column["plot"]["current"]) + column["plot"]["below"] + column["plot"]["above"] == 3_000


def test_odd_windows_do_not_crash() -> None:
    mv = toy_version()
    empty = build_report(mv, [], SPEC, metrics=[], report_id="e", now=START)
    assert not empty.drifted and empty.body["window"]["rows"] == 0
    assert empty.body["performance"]["status"] == "no labels"
    odd = [Prediction(id=str(i), time=START, model="toy", version=1,
                      inputs={"f00": "abc", "colour": ["not", "hashable"], "new": 1} if i % 2 else {},
                      output="maybe", proba=None, label="?") for i in range(40)]
    report = build_report(mv, odd, SPEC, metrics=[], report_id="o", now=START)
    json.dumps(report.body, allow_nan=False)
    by = {c["column"]: c for c in report.body["drift"]["columns"]}
    assert by["f01"]["status"] == "missing" and by["f00"]["status"] == "empty"
    assert by["colour"]["unseen"] == 20
    assert report.body["performance"]["unusable"] == 40


def test_frame_of_lays_the_window_out() -> None:
    mv = toy_version()
    predictions = predictions_for(classifier_rows(10, 1), labelled=1.0)
    frame = frame_of(predictions, mv)
    assert list(frame.columns[:22]) == [*COLUMNS, "colour", "member"]
    assert {"__prediction", "__score", "__label", "__proba", "__time"} <= set(frame.columns)
    assert np.allclose(frame["__score"], [p.proba[1] for p in predictions])  # type: ignore[index]


def test_html_renders_every_feature_the_table_and_the_trends_and_stays_small(tmp_path: Path) -> None:
    mv = toy_version()
    reports = [_report(shift=0.1 * i, seed=10 + i, at=i) for i in range(4)]
    path = render_html(list(reversed(reports)), mv, tmp_path / "out" / "monitor.html")
    html = path.read_text()
    specs = read_specs(html)
    # a chart per feature and per output, the two trends, the statistics, the drift per feature over time
    assert len(specs) == 22 + 2 + 2 + 1 + 1 and html.count("<div class='chart' data-spec=") == len(specs)
    assert "<table class='drift'>" in html and "wasserstein" in html and "threshold" in html
    assert "Recent windows" in html and "r13-3" in html  # the newest in detail
    # the library and the helper inlined exactly once; nothing fetched at view time
    assert html.count(asset(LIBRARY)) == 1 and html.count(asset(HELPER)) == 1 and html.count(asset(STYLE)) == 1
    assert html.count("<script") == 4 and not re.search(r"(src|href)=['\"]?https?:", html)
    assert path.stat().st_size < 150_000
    # no raw data: the window's values do not appear, only counts and statistics (the edges to 6 digits)
    assert len(re.findall(r"\d\.\d{10,}", html)) == 0


def test_html_charts_are_in_value_units(tmp_path: Path) -> None:
    mv = toy_version()
    reports = [_report(shift=0.1 * i, seed=10 + i, at=i) for i in range(3)]
    specs = {s.get("name"): s for s in read_specs(render_html(reports, mv, tmp_path / "m.html").read_text()).values()}
    newest = reports[-1].body
    by = {c["column"]: c for c in newest["drift"]["columns"]}
    # a numeric feature: its training-quantile edges on the value axis, the counts of both sides
    plot = by["f00"]["plot"]
    dist = specs["dist-f00"]
    assert dist["kind"] == "distribution" and dist["plot"]["type"] == "numeric"
    assert dist["plot"]["edges"] == pytest.approx(plot["edges"], rel=1e-5)
    assert dist["plot"]["reference"] == plot["reference"] and dist["plot"]["current"] == plot["current"]
    # a categorical one: its categories and their counts
    colour = specs["dist-colour"]["plot"]
    assert colour["type"] == "categorical" and colour["categories"] == by["colour"]["plot"]["categories"]
    # the trends: x is each report's time (Unix seconds, UTC), the metric with its interval, the drift share
    perf = specs["performance"]
    assert perf["time"] and perf["x"] == [r.created_at.timestamp() for r in reports]
    assert [s["label"] for s in perf["series"]] == ["accuracy", "lower", "upper"] and perf["band"] == [3, 2]
    assert perf["series"][0]["values"][-1] == pytest.approx(newest["performance"]["value"], rel=1e-5)
    assert perf["series"][1]["values"][-1] == pytest.approx(newest["performance"]["ci"][0], rel=1e-5)
    assert specs["drift"]["series"][0]["values"] == pytest.approx([r.drift_share for r in reports], rel=1e-5)
    per_feature = {s["label"]: s["values"] for s in specs["drift-per-feature"]["series"]}
    assert per_feature["f00"][-1] == pytest.approx(by["f00"]["statistic"], rel=1e-3) and len(per_feature) == 22
    stats = specs["statistics"]
    assert stats["kind"] == "bars" and stats["categories"][:2] == ["f00", "f01"]


def test_html_escapes_names_from_user_data(tmp_path: Path) -> None:
    mv = toy_version()
    evil = "<script>alert(1)</script>"
    predictions = [Prediction(id=str(i), time=START, model="toy", version=1, inputs={"colour": evil, "f00": 0.1},
                              output=1, proba=[0.4, 0.6]) for i in range(30)]
    report = build_report(mv, predictions, SPEC, metrics=[], report_id="x", now=START)
    html = render_html([report], mv, tmp_path / "x.html").read_text()
    assert evil not in html and "&lt;script&gt;" in html


def test_html_with_no_reports_says_so(tmp_path: Path) -> None:
    assert "No monitoring reports yet" in render_html([], toy_version(), tmp_path / "none.html").read_text()
