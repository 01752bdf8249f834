"""The management API over a workspace whose metadata store is PostgreSQL: tokens, roles, an action naming
its actor, a revoke seen at once, and the same answers as the SDK."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.contract.conftest import postgres_url  # noqa: F401  (the fixture: a fresh schema per test)
from tests.ui.conftest import UiServer, bearer, make_project
from tidal.workspace import Workspace
from tidal.workspace.shapes import models_list, plain

pytestmark = pytest.mark.postgres


def test_the_api_on_a_postgresql_store(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    root = make_project(tmp_path / "pg", store_url=postgres_url)
    with Workspace.open(root) as ws:
        assert ws.settings.store_url.startswith("postgresql")
        admin = ws.tokens.create("root", role="admin")[1]
        viewer = ws.tokens.create("reader", role="viewer")[1]
        expected = plain(models_list(ws))
    srv = UiServer(root)
    try:
        srv.wait()
        assert httpx.get(f"{srv.url}/api/v1/models").status_code == 401
        assert httpx.get(f"{srv.url}/api/v1/models", headers=bearer(viewer)).json()["items"] == expected
        r = httpx.post(f"{srv.url}/api/v1/models/elec2/promote", json={"version": 1}, headers=bearer(viewer))
        assert r.status_code == 403
        r = httpx.post(f"{srv.url}/api/v1/models/elec2/promote", json={"version": 1}, headers=bearer(admin))
        assert r.json() == {"name": "elec2", "alias": "champion", "from": 2, "to": 1}
        moved = httpx.get(f"{srv.url}/api/v1/events", params={"kind": "alias.moved", "limit": 1},
                          headers=bearer(admin)).json()["items"][0]
        assert moved["data"]["actor"].startswith("token:root#")
        with Workspace.open(root) as ws:
            ws.tokens.revoke("reader")
        assert httpx.get(f"{srv.url}/api/v1/models", headers=bearer(viewer)).status_code == 401
    finally:
        srv.stop()
