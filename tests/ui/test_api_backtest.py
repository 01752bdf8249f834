"""A backtest started from the management API runs beside the requests: 202 with a job to poll, one at a time,
its result as `tidal backtest --json` gives it, and a failure said as a failure (never a result), with events
that name who started it. Over a real `tidal ui` on a real workspace (Elec2's first 3,000 rows)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ui.conftest import UiServer, bearer, make_project
from tidal.workspace import Workspace


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[UiServer, str, str]]:
    root = make_project(tmp_path_factory.mktemp("backtest") / "elec2")
    spec = root / "tidal.yaml"
    spec.write_text(spec.read_text().replace("    - accuracy >= 0.999\n", ""))  # the fixture's impossible gate
    with Workspace.open(root) as ws:
        operator, viewer = ws.tokens.create("ops", role="operator")[1], ws.tokens.create("eyes", role="viewer")[1]
    srv = UiServer(root).wait()
    try:
        yield srv, operator, viewer
    finally:
        srv.stop()


def _wait(srv: UiServer, job: dict[str, Any], token: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = httpx.get(f"{srv.url}/api/v1/backtests/jobs/{job['id']}", headers=bearer(token)).json()
        if got["status"] != "running":
            return got
        time.sleep(0.2)
    raise AssertionError(f"the backtest job did not finish in {timeout}s")


def _events(srv: UiServer, token: str, kind: str) -> list[dict[str, Any]]:
    return httpx.get(f"{srv.url}/api/v1/events", params={"kind": kind, "limit": 100},
                     headers=bearer(token)).json()["items"]


def test_a_backtest_runs_as_a_job_one_at_a_time_and_answers_its_result(site: tuple[UiServer, str, str]) -> None:
    srv, operator, viewer = site
    h = bearer(operator)
    r = httpx.post(f"{srv.url}/api/v1/backtests", json={}, headers=h)
    assert r.status_code == 202, r.text
    job = r.json()
    me = httpx.get(f"{srv.url}/api/v1/whoami", headers=h).json()["actor"]
    assert job["status"] == "running" and job["by"] == me and job["finished_at"] is None
    assert r.headers["location"] == f"/api/v1/backtests/jobs/{job['id']}"
    # while it runs: a second start is refused with the running job, and the API goes on answering
    again = httpx.post(f"{srv.url}/api/v1/backtests", json={}, headers=h)
    assert again.status_code == 409
    assert again.json()["error"].startswith(f"a backtest is running already (started by {me} at ")
    assert again.json()["job"]["id"] == job["id"]
    assert httpx.get(f"{srv.url}/api/v1/backtests/jobs/{job['id']}", headers=bearer(viewer)).json()["status"] \
        in ("running", "done")
    done = _wait(srv, job, viewer)
    assert done["status"] == "done" and "error" not in done, done
    result = done["result"]
    assert result["rows"] == 2400 and {"loop", "static", "periodic", "last_label"} <= set(result)
    # the same result is the workspace's backtest.done event, which outlives the server; started names who
    assert _events(srv, viewer, "backtest.done")[-1]["data"] == result
    started = _events(srv, viewer, "backtest.started")[-1]
    assert started["data"] == {"actor": me, "job": job["id"]}
    listed = httpx.get(f"{srv.url}/api/v1/backtests", headers=bearer(viewer)).json()["items"]
    assert listed[-1]["data"] == result
    # once it is done, another may start
    nxt = httpx.post(f"{srv.url}/api/v1/backtests", json={}, headers=h)
    assert nxt.status_code == 202
    assert _wait(srv, nxt.json(), viewer)["status"] == "done"


def test_a_viewer_cannot_start_one_and_an_unknown_job_is_a_404(site: tuple[UiServer, str, str]) -> None:
    srv, _, viewer = site
    r = httpx.post(f"{srv.url}/api/v1/backtests", json={}, headers=bearer(viewer))
    assert r.status_code == 403 and "has the role viewer; this needs" in r.json()["error"]
    r = httpx.get(f"{srv.url}/api/v1/backtests/jobs/0123456789ab", headers=bearer(viewer))
    assert r.status_code == 404
    assert r.json()["error"] == "no backtest job '0123456789ab' on this server"


def test_a_failed_backtest_is_a_failed_job_and_an_event_never_a_result(site: tuple[UiServer, str, str]) -> None:
    srv, operator, viewer = site
    data = srv.root / "data" / "elec2.csv"
    done_before = len(_events(srv, viewer, "backtest.done"))
    hidden = data.with_name("elsewhere.csv")
    data.rename(hidden)
    try:
        r = httpx.post(f"{srv.url}/api/v1/backtests", json={}, headers=bearer(operator))
        assert r.status_code == 202, r.text
        job = _wait(srv, r.json(), viewer)
    finally:
        hidden.rename(data)
    assert job["status"] == "failed" and "result" not in job
    assert "elec2.csv" in job["error"]["error"] and "internal error" not in job["error"]["error"]
    failed = _events(srv, viewer, "backtest.failed")[-1]
    assert failed["data"]["job"] == job["id"] and failed["data"]["actor"] == job["by"]
    assert failed["data"]["error"] == job["error"]["error"]
    assert len(_events(srv, viewer, "backtest.done")) == done_before
    assert "Traceback" not in srv.log.read_text()
