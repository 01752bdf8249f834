"""The dashboard's files ship inside the package and are served by ``tidal ui`` from there, with no CDN;
``GET /api/v1/session`` answers a signed-out page with 200 and a signed-in one with its role and CSRF token;
``tidal serve --ui`` sends ``/`` and ``/ui/...`` to the dashboard (issue #15, point 3)."""

from __future__ import annotations

import asyncio
import re
from importlib import resources
from typing import Any

import httpx

from tests.ui.conftest import UiServer, bearer
from tidal.ui.dashboard import CSP, FILES, read
from tidal.ui.server import Mounted


def test_every_file_is_package_data_and_the_page_loads_nothing_from_elsewhere() -> None:
    static = resources.files("tidal.ui") / "static"
    for name in [*FILES, "index.html", "uPlot.LICENSE"]:
        assert (static / name).is_file(), name
    page = read("index.html").decode()
    assert re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page) == [
        "/ui/static/uPlot.min.css", "/ui/static/app.css", "/ui/static/uPlot.iife.min.js", "/ui/static/charts.js",
        "/ui/static/app.js"]
    assert "http://" not in page and "https://" not in page and "<script>" not in page
    assert "fetch(\"/api/v1\" + path" in read("app.js").decode()  # the page's one data path is the API
    assert "innerHTML" not in read("app.js").decode()  # API text goes in as text nodes, never as markup


def test_tidal_ui_serves_the_page_and_its_files_and_nothing_else(ui: UiServer) -> None:
    r = httpx.get(f"{ui.url}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP and "frame-ancestors 'none'" in CSP
    assert httpx.get(f"{ui.url}/ui").text == r.text
    for name, media in FILES.items():
        got = httpx.get(f"{ui.url}/ui/static/{name}")
        assert got.status_code == 200 and got.headers["content-type"].startswith(media)
        assert got.content == read(name)
    missing = httpx.get(f"{ui.url}/ui/static/../auth.py")
    assert missing.status_code == 404
    assert httpx.get(f"{ui.url}/ui/static/tidal.yaml").json() == {"error": "no such file"}


def test_the_session_route_answers_signed_out_signed_in_and_forged(ui: UiServer, admin: str) -> None:
    out = httpx.get(f"{ui.url}/api/v1/session")
    assert out.status_code == 200 and out.json()["signed_in"] is False and out.json()["csrf_token"] is None
    with httpx.Client(base_url=ui.url) as c:
        opened = c.post("/api/v1/session", json={"token": admin}).json()
        me = c.get("/api/v1/session").json()
        assert me["signed_in"] is True and me["role"] == "admin" and me["via"] == "cookie"
        assert me["csrf_token"] == opened["csrf_token"]
    by_bearer = httpx.get(f"{ui.url}/api/v1/session", headers=bearer(admin)).json()
    assert by_bearer["via"] == "bearer" and by_bearer["csrf_token"] is None
    forged = httpx.get(f"{ui.url}/api/v1/session", cookies={"tidal_session": "e30.bm9wZQ"})
    assert (forged.status_code, forged.json()["error"]) == (401, "the session cookie is not valid")


def test_serve_ui_sends_the_dashboard_paths_to_the_api_and_the_rest_to_the_model() -> None:
    seen: list[tuple[str, str]] = []

    def app(name: str) -> Any:
        async def call(scope: Any, receive: Any, send: Any) -> None:
            seen.append((name, scope["path"]))
        return call

    mounted = Mounted(app("api"), app("model"))
    for path in ("/", "/ui", "/ui/static/app.js", "/api/v1/runs", "/predict", "/healthz", "/uix"):
        asyncio.run(mounted({"type": "http", "path": path}, None, None))
    assert seen == [("api", "/"), ("api", "/ui"), ("api", "/ui/static/app.js"), ("api", "/api/v1/runs"),
                    ("model", "/predict"), ("model", "/healthz"), ("model", "/uix")]
