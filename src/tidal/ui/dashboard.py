"""The dashboard: a page at ``/`` and its files under ``/ui/static/``, all inside the installation (no CDN).

The page is a small client of the management API: its script reads ``/api/v1`` with the session cookie and
draws the Overview, Models, Runs, Monitoring and Loop views in the browser. So the dashboard has no data path
of its own: the roles, the CSRF check and the events that name who acted are the API's, enforced by the same
code, and what the dashboard shows is what ``tidal ... --json`` prints. The charts are uPlot (1.6.32, MIT,
50 KB minified), taken from the npm registry (``npm pack uplot``) and committed under ``static/``; every chart
goes through ``charts.js``, the helper the offline HTML reports inline too (:mod:`tidal.core.charts`).
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, HTTPException
from fastapi.responses import Response

STATIC = "/ui/static"
#: The files served, with their media types (every other name is a 404).
FILES = {"app.js": "text/javascript", "app.css": "text/css", "uPlot.iife.min.js": "text/javascript",
         "uPlot.min.css": "text/css", "charts.js": "text/javascript"}
#: Scripts and styles from this server only; nothing framed; no inline script.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def read(name: str) -> bytes:
    """One of the dashboard's files, from the installed package."""
    return (resources.files("tidal.ui") / "static" / name).read_bytes()


def add_dashboard(app: FastAPI) -> None:
    """``/`` (the page) and ``/ui/static/{name}`` (its script, style and charting library) on ``app``."""
    cache: dict[str, bytes] = {}

    def cached(name: str) -> bytes:
        if name not in cache:
            cache[name] = read(name)
        return cache[name]

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return Response(cached("index.html"), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Cache-Control": "no-cache"})

    @app.get("/ui", include_in_schema=False)
    def index_alias() -> Response:
        return index()

    @app.get(f"{STATIC}/{{name}}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in FILES:
            raise HTTPException(404, "no such file")
        return Response(cached(name), media_type=FILES[name],
                        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


__all__ = ["CSP", "FILES", "STATIC", "add_dashboard", "read"]
