"""The API, the CLI and the SDK give the same answers: runs, one run, models, one version, events, reports, the
loop's state, data snapshots and one snapshot, read three ways from the same workspace and compared whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import UiServer, bearer
from tidal.workspace import Workspace
from tidal.workspace.shapes import (
    event_to_dict,
    model_detail,
    models_list,
    plain,
    report_to_dict,
    run_detail,
    run_summary,
    snapshot_detail,
    snapshot_to_dict,
)


def _cli(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> Any:
    """``tidal -C PROJECT ARGS --json``, through the CLI's own entry point (in this process: one import)."""
    from tidal.cli.main import main

    capsys.readouterr()
    assert main(["-C", str(project), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_api_cli_and_sdk_answer_alike(ui: UiServer, project: Path, admin: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    with httpx.Client(base_url=ui.url, headers=bearer(admin)) as api:
        def get(path: str, **params: Any) -> Any:
            r = api.get(path, params=params)
            assert r.status_code == 200, r.text
            return r.json()

        with Workspace.open(project) as ws:
            runs = ws.runs.list(limit=20)
            run_id = runs[0].id
            detail = ws.runs.get(run_id)
            sdk = {
                "runs": plain([run_summary(r) for r in runs]),
                "run": plain(run_detail(detail, ws.runs.log(run_id))),
                "models": plain(models_list(ws)),
                "version": plain(model_detail(ws, "elec2:2")),
                "events": plain([event_to_dict(e) for e in ws.events(limit=30)]),
                "reports": plain([report_to_dict(r, body=False) for r in ws.reports(limit=20)]),
                "report": plain(report_to_dict(ws.reports(limit=1)[0])),
                "loop": plain(ws.loop.status()),
                "snapshots": plain([snapshot_to_dict(x) for x in ws.snapshots.list(limit=20)]),
            }
            digest = sdk["snapshots"][-1]["digest"]
            sdk["snapshot"] = plain(snapshot_detail(ws, digest[:10]))
        report_id = sdk["reports"][0]["id"]
        via_api = {
            "runs": get("/api/v1/runs", limit=20)["items"],
            "run": get(f"/api/v1/runs/{run_id}"),
            "models": get("/api/v1/models")["items"],
            "version": get("/api/v1/models/elec2/versions/2"),
            "events": get("/api/v1/events", limit=30)["items"],
            "reports": get("/api/v1/reports", limit=20)["items"],
            "report": get(f"/api/v1/reports/{report_id}"),
            "loop": get("/api/v1/loop"),
            "snapshots": get("/api/v1/snapshots", limit=20)["items"],
            "snapshot": get(f"/api/v1/snapshots/{digest[:10]}"),
        }
        missing = api.get("/api/v1/snapshots/0000000000")
        assert missing.status_code == 404 and "no snapshot with digest '0000000000'" in missing.json()["error"]
    via_cli = {
        "runs": _cli(capsys, project, "runs", "ls", "--limit", "20"),
        "run": _cli(capsys, project, "runs", "show", run_id),
        "models": _cli(capsys, project, "models", "ls"),
        "version": _cli(capsys, project, "models", "show", "elec2:2"),
        "events": _cli(capsys, project, "events", "--limit", "30"),
        "reports": _cli(capsys, project, "reports", "ls", "--limit", "20"),
        "report": _cli(capsys, project, "reports", "show", report_id),
        "loop": _cli(capsys, project, "loop", "--status"),
        "snapshots": _cli(capsys, project, "snapshots", "ls", "--limit", "20"),
        "snapshot": _cli(capsys, project, "snapshots", "show", digest[:10]),
    }
    assert len(sdk["runs"]) == 3 and len(sdk["models"]) == 3 and sdk["events"] and sdk["reports"]
    snap = sdk["snapshot"]
    assert snap["digest"] == digest and snap["rows"] > 0 and snap["column_names"] and snap["versions"], snap.keys()
    assert all("sample" not in p for p in snap["profile"].values())  # the raw sample stays out of the answer
    for key in sdk:
        assert via_api[key] == sdk[key], key
        assert via_cli[key] == sdk[key], key


def test_lists_are_pages_that_walk_the_whole_list(ui: UiServer, admin: str) -> None:
    with httpx.Client(base_url=ui.url, headers=bearer(admin)) as api:
        whole = api.get("/api/v1/events", params={"limit": 1000}).json()
        assert whole["next_offset"] is None
        walked: list[Any] = []
        offset: int | None = 0
        while offset is not None:
            page = api.get("/api/v1/events", params={"limit": 7, "offset": offset}).json()
            walked = page["items"] + walked  # each page is older than the one before, oldest first within
            offset = page["next_offset"]
        assert walked == whole["items"]
        runs = api.get("/api/v1/runs", params={"limit": 2}).json()
        assert len(runs["items"]) == 2 and runs["next_offset"] == 2
        rest = api.get("/api/v1/runs", params={"limit": 2, "offset": 2}).json()
        assert len(rest["items"]) == 1 and rest["next_offset"] is None
