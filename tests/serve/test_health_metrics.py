"""The model's health on ``/metrics`` (issue #15, point 4): the gauges a Grafana user expects — champion version,
drift share and per-feature drift, live and estimated accuracy, labelled share, the loop's state and its last
retrain — read from the workspace at scrape time, by one server process and by two workers alike.

The Elec2 serve project (tests/serve/conftest.py); its predictions and labels go through the real server,
the report is the one `tidal monitor` stores, and Prometheus's own parser reads the scrape.
"""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ELEC2
from tests.serve.server import ServerProcess
from tidal.loop.state import state_key
from tidal.serve.health_metrics import HealthCollector, loop_state
from tidal.workspace import Workspace


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    hits = [v for got, v in found.get(name, []) if all(got.get(k) == w for k, w in labels.items())]
    assert len(hits) == 1, (name, labels, found.get(name))
    return hits[0]


def rows(n: int) -> pd.DataFrame:
    raw = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes())
    return pd.read_csv(io.BytesIO(raw)).iloc[20_000:20_000 + n]


def test_one_process_shows_the_gauges_beside_its_counters(project: Path) -> None:
    with ServerProcess(project) as server:
        assert httpx.post(f"{server.url}/predict", json={"instances": rows(1).drop(columns=["up"]).to_dict(
            orient="records")}).status_code == 200
        found = scrape(server.url)
    assert value(found, "tidal_champion_version", model="elec2") == 1
    assert value(found, "tidal_loop_state", model="elec2", state="idle") == 1
    assert value(found, "tidal_rows_predicted_total", model="elec2") == 1


def test_the_health_gauges_follow_the_workspace(project: Path) -> None:
    """Two workers (prometheus_client's multiprocess mode: the gauges are added to each scrape's registry)."""
    with ServerProcess(project, workers=2).start(timeout=90) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        before = scrape(server.url)
        assert value(before, "tidal_champion_version", model="elec2") == 1
        assert value(before, "tidal_loop_state", model="elec2", state="idle") == 1
        assert value(before, "tidal_loop_state", model="elec2", state="retraining") == 0
        assert "tidal_drift_share" not in before and "tidal_last_retrain_timestamp_seconds" not in before  # no data

        frame = rows(200)
        shifted = frame.drop(columns=["up"]).assign(nswprice=lambda f: f["nswprice"] * 4 + 0.2)
        ids: list[str] = []
        for lo in range(0, len(shifted), 20):
            answer = http.post("/predict", json={"instances": shifted.iloc[lo:lo + 20].to_dict(orient="records")})
            assert answer.status_code == 200, answer.text
            ids += answer.json()["prediction_ids"]
        labels = frame["up"].tolist()
        for lo in range(0, 120, 20):  # 120 of the 200 get their label
            fed = http.post("/feedback", json=[{"prediction_id": i, "label": int(y)}
                                               for i, y in zip(ids[lo:lo + 20], labels[lo:lo + 20], strict=True)])
            assert fed.status_code == 200, fed.text
        with Workspace.open(project) as ws:
            report = ws.monitor()
            ws.store.put_state(state_key("elec2"), {**(ws.store.get_state(state_key("elec2")) or {}), "failures": 2,
                                                    "last_retrain": "2026-12-01T10:00:00+00:00"})
        import time

        time.sleep(5.2)  # past the collector's cache (CACHE_SECONDS)
        after = scrape(server.url)

    assert value(after, "tidal_drift_share", model="elec2", version="1") == pytest.approx(report.drift_share)
    assert value(after, "tidal_dataset_drifted", model="elec2", version="1") == float(report.drifted)
    assert value(after, "tidal_feature_drifted", model="elec2", version="1", feature="nswprice") == 1
    stat = value(after, "tidal_feature_drift_statistic", model="elec2", version="1", feature="nswprice")
    column = next(c for c in report.body["drift"]["columns"] if c["column"] == "nswprice")
    assert stat == pytest.approx(column["statistic"])
    accuracy = report.body["performance"]["metrics"]["accuracy"]
    assert value(after, "tidal_live_metric", model="elec2", version="1", metric="accuracy") == pytest.approx(accuracy)
    low = value(after, "tidal_live_metric_ci", metric="accuracy", bound="low")
    assert low <= accuracy <= value(after, "tidal_live_metric_ci", metric="accuracy", bound="high")
    assert value(after, "tidal_labelled_share", model="elec2", version="1") == pytest.approx(120 / 200)
    assert value(after, "tidal_window_rows", model="elec2", version="1") == 200
    estimated = report.body["estimate"]
    if isinstance(estimated.get("value"), float):
        assert value(after, "tidal_estimated_metric", metric=estimated["metric"]) == pytest.approx(estimated["value"])
    assert value(after, "tidal_report_timestamp_seconds", version="1") == pytest.approx(report.created_at.timestamp())
    assert value(after, "tidal_loop_retrain_failures", model="elec2") == 2
    assert value(after, "tidal_last_retrain_timestamp_seconds", model="elec2") == \
        datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()
    # the server's own counters are still there, beside the workspace's gauges
    assert value(after, "tidal_rows_predicted_total", model="elec2") == 200


def test_the_loop_state_of_a_stored_state() -> None:
    assert loop_state({}) == "idle"
    assert loop_state({"in_progress": {"trigger": "drift"}}) == "retraining"
    assert loop_state({"trial": {"version": 3}}) == "trial"
    assert loop_state({"watch": {"version": 3}}) == "watching"
    assert loop_state({"paused": True, "in_progress": {"trigger": "drift"}}) == "paused"


def test_a_store_that_cannot_be_read_leaves_the_scrape_working(project: Path) -> None:
    with Workspace.open(project) as ws:
        collector = HealthCollector(ws.store, "elec2", cache_seconds=0)
        assert {m.name for m in collector.collect()} >= {"tidal_champion_version", "tidal_loop_state"}

        def broken(*_: object, **__: object) -> None:
            raise OSError("the database is gone")

        ws.store.get_alias = broken  # type: ignore[method-assign]
        assert list(collector.collect()) == []
