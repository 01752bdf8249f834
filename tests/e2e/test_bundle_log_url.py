"""``tidal serve --bundle DIR --log-url URL``: a bundle whose prediction log is a PostgreSQL database (issue
#12, point 4: "its prediction log local, or at a URL"). Runs when TIDAL_TEST_POSTGRES_URL is set (.ci/run
sets it), in a schema of its own dropped afterwards."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import _cli
from tests.contract.conftest import postgres_url  # noqa: F401  (the fixture: a fresh schema per test)
from tests.serve.server import ServerProcess
from tidal.storage import open_prediction_log


def _rows(project: Path, n: int = 5) -> list[dict[str, Any]]:
    with open(project / "data" / "elec2.csv") as f:
        rows = list(csv.DictReader(f))[-n:]
    return [{k: float(v) for k, v in row.items() if k != "up"} for row in rows]


def test_bundle_serves_with_its_log_on_postgres(small_project: Path, tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    cli = _cli(small_project)
    cli("run", check=True)
    bundle = tmp_path / "bundle"
    cli("export", "elec2@champion", str(bundle), check=True)
    rows = _rows(small_project)

    served = ServerProcess(bundle, bundle=True, log=tmp_path / "server.log", args=["--log-url", postgres_url])
    with served as server:
        answer = httpx.post(f"{server.url}/predict", json={"instances": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        first = body["prediction_ids"][0]
        fed = httpx.post(f"{server.url}/feedback", json={"prediction_id": first, "label": 1}, timeout=30)
        assert fed.status_code == 200 and fed.json() == {"stored": 1}, fed.text
    # a second server on the same log (the bundle restarted, or another replica) continues it
    with ServerProcess(bundle, bundle=True, log=tmp_path / "server2.log",
                       args=["--log-url", postgres_url]) as server:
        again = httpx.post(f"{server.url}/predict", json={"instances": rows[:1]}, timeout=30)
        assert again.status_code == 200, again.text
        late = httpx.post(f"{server.url}/feedback", json={"prediction_id": body["prediction_ids"][1], "label": 0},
                          timeout=30)
        assert late.status_code == 200, late.text

    log = open_prediction_log(postgres_url)  # read back from PostgreSQL itself, not through the server
    try:
        stored = log.get(first)
        assert stored.label == 1 and stored.proba == body["probabilities"][0]
        assert stored.model == "elec2" and stored.version == body["model"]["version"]
        assert log.get(body["prediction_ids"][1]).label == 0
        assert len(log.window(model="elec2")) == len(rows) + 1
    finally:
        log.close()
    # the bundle's own folder holds no SQLite log: the predictions went to the URL only
    assert not list((bundle / ".tidal-bundle").glob("predictions.db*"))
