"""``tidal monitor`` shows a classifier's performance estimated before the labels arrive, beside the
realised value (issue #11, point 4): a real project, real `tidal run` and `tidal monitor` subprocesses,
predictions and labels through the SDK as a user's service would send them."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import ELEC2, _cli
from tidal.workspace import Workspace

FIRST, ROWS, LABELLED = 3000, 600, 150  # the project trains on the first 3,000 rows; the next 600 are traffic


def test_monitor_sets_the_estimate_beside_the_realised_value(small_project: Path) -> None:
    run = _cli(small_project)
    run("run", check=True)
    text = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode()
    lines = text.splitlines()
    traffic = pd.read_csv(io.StringIO("\n".join([lines[0], *lines[1 + FIRST:1 + FIRST + ROWS]])))
    truth = traffic.pop("up").to_numpy()
    with Workspace.open(small_project) as ws:
        answer = ws.predict(traffic)
        ws.feedback([{"prediction_id": i, "label": int(y)}
                     for i, y in zip(answer.prediction_ids[:LABELLED], truth[:LABELLED], strict=True)])
    hits = np.asarray(answer.predictions) == truth

    shown = run("monitor", "--window", str(ROWS), "--html", "m.html", check=True).stdout
    with Workspace.open(small_project) as ws:
        (report,) = ws.reports()
    body = report.body  # the stored report
    est = body["estimate"]
    assert est["status"] == "estimated" and est["metric"] == "accuracy"
    assert est["rows"] == est["unlabelled"] == ROWS - LABELLED and est["labelled"] == LABELLED
    # 450 rows: the realised share's own noise is about 0.02; the estimate lands within 3.5 of those
    assert abs(est["value"] - hits[LABELLED:].mean()) < 0.07, (est, hits[LABELLED:].mean())
    assert est["realised"] == body["performance"]["value"] == hits[:LABELLED].mean()
    assert est["calibration"]["method"] in ("isotonic", "none") and est["calibration"]["ece_raw"] >= 0

    line = next(x for x in shown.splitlines() if x.startswith("estimated accuracy"))
    assert f"{est['value']:.4f}" in line
    assert f"on {ROWS - LABELLED} unlabelled predictions; realised {hits[:LABELLED].mean():.4f} on {LABELLED} " \
           "labelled" in line
    html = (small_project / "m.html").read_text()
    assert "Performance before the labels arrive" in html and f"{ROWS - LABELLED:,} of {ROWS - LABELLED:,}" in html
