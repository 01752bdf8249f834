"""Issue #3, point 1: train (Elec2) → serve over real HTTP → predict → feedback → monitor; a window of
shifted inputs drifts and a window of unchanged inputs does not."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import _cli
from tests.serve.server import ServerProcess


@pytest.fixture
def served(elec2_project: Path) -> Iterator[tuple[Path, str]]:
    cli = _cli(elec2_project)
    cli("run", check=True)
    with ServerProcess(elec2_project, cli=True).start(timeout=60) as server:
        yield elec2_project, server.url


def _rows(project: Path) -> pd.DataFrame:
    raw = gzip.decompress((project / "data" / "elec2.csv.gz").read_bytes())
    return pd.read_csv(io.BytesIO(raw))


def _predict(client: httpx.Client, frame: pd.DataFrame, batch: int = 100) -> list[str]:
    ids: list[str] = []
    features = frame.drop(columns=["up"])
    for lo in range(0, len(features), batch):
        chunk = features.iloc[lo:lo + batch].to_dict(orient="records")
        resp = client.post("/predict", json={"instances": chunk})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model"] == {"name": "elec2", "version": 1}
        assert len(body["predictions"]) == len(chunk) == len(body["probabilities"]) == len(body["prediction_ids"])
        ids.extend(body["prediction_ids"])
    return ids


def _monitor(project: Path, *args: str) -> dict:
    proc = _cli(project)("monitor", "--json", *args, check=True)
    return json.loads(proc.stdout)


def test_serve_feedback_monitor_and_drift(served: tuple[Path, str]) -> None:
    project, url = served
    data = _rows(project)
    train_part = data.iloc[: int(len(data) * 0.8)]
    unchanged = train_part.sample(n=1000, random_state=1)
    with httpx.Client(base_url=url, timeout=30) as client:
        ids = _predict(client, unchanged)
        labels = [{"prediction_id": pid, "label": int(y)} for pid, y in zip(ids, unchanged["up"], strict=True)]
        resp = client.post("/feedback", json=labels)
        assert resp.status_code == 200, resp.text

    report = _monitor(project, "--window", "1000")
    assert report["window"]["rows"] == 1000
    assert report["drifted"] is False, report["alerts"]
    perf = report["performance"]
    assert perf["labelled"] == 1000
    assert 0.7 < perf["metrics"]["accuracy"] <= 1.0
    low, high = perf["ci"]
    assert low <= perf["metrics"]["accuracy"] <= high and high - low < 0.1

    shifted = unchanged.copy()
    rng = np.random.default_rng(0)
    for col in ("nswprice", "nswdemand", "vicdemand", "transfer"):
        shifted[col] = shifted[col] + train_part[col].std() * (1.0 + 0.05 * rng.standard_normal(len(shifted)))
    with httpx.Client(base_url=url, timeout=30) as client:
        _predict(client, shifted)
    drifted = _monitor(project, "--window", "1000", "--html", str(project / "report.html"))
    assert drifted["drifted"] is True and drifted["drift_share"] >= 0.5
    assert any("drift" in a for a in drifted["alerts"])
    html = (project / "report.html").read_text()
    assert "data-chart='dist-nswdemand'" in html and "nswdemand" in html and len(html) < 400_000

    listed = json.loads(_cli(project)("reports", "ls", "--json", check=True).stdout)
    assert [r["id"] for r in listed] == [drifted["id"], report["id"]]
    events = json.loads(_cli(project)("events", "--json", "--kind", "monitor.alert", check=True).stdout)
    assert len(events) == 1 and events[0]["data"]["report"] == drifted["id"]
